package oracle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	kubeyaml "k8s.io/apimachinery/pkg/util/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
)

// parseConfigs decodes every document of an Istio config stream and runs each through the
// validation istiod's webhook applies (schema.ValidateConfig). Invalid objects are reported and
// left out, as the API server's webhook would have refused them.
func parseConfigs(stream string) ([]config.Config, []Verdict, error) {
	var valid []config.Config
	var verdicts []Verdict
	dec := kubeyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(stream)), 512*1024)
	t0 := time.Now()
	for {
		obj := crd.IstioKind{}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("configs: %v", err)
		}
		if reflect.DeepEqual(obj, crd.IstioKind{}) {
			continue
		}
		gvk := obj.GroupVersionKind()
		s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(resource.FromKubernetesGVK(&gvk))
		v := Verdict{Kind: obj.Kind, Name: obj.Name, Namespace: obj.Namespace}
		if !ok {
			v.Error = "not an Istio config kind"
			verdicts = append(verdicts, v)
			continue
		}
		cfg, err := crd.ConvertObject(s, &obj, "")
		if err != nil {
			v.Error = err.Error()
			verdicts = append(verdicts, v)
			continue
		}
		if cfg.Namespace == "" {
			cfg.Namespace = "default"
			v.Namespace = "default"
		}
		if cfg.CreationTimestamp.IsZero() {
			cfg.CreationTimestamp = t0
		}
		warn, err := s.ValidateConfig(*cfg)
		if warn != nil {
			v.Warning = warn.Error()
		}
		if err != nil {
			v.Error = err.Error()
		} else {
			valid = append(valid, *cfg)
		}
		verdicts = append(verdicts, v)
	}
	return valid, verdicts, nil
}
