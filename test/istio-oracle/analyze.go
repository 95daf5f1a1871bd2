package oracle

import (
	"os"
	"path/filepath"
	"strings"

	"istio.io/istio/pkg/config/analysis/analyzers"
	"istio.io/istio/pkg/config/analysis/local"
	"istio.io/istio/pkg/config/resource"
)

// analyze runs every Istio analyzer over the objects as `istioctl analyze --use-kube=false -A
// --meshConfigFile` does (istioctl/pkg/analyze/analyze.go): all namespaces, Istio's default
// resources added, the files as one source.
func analyze(dir string, req *Request) ([]Message, error) {
	sa := local.NewIstiodAnalyzer(analyzers.AllCombined(), "", resource.Namespace("istio-system"), nil)
	if req.Mesh != "" {
		path := filepath.Join(dir, "mesh.yaml")
		if err := os.WriteFile(path, []byte(req.Mesh), 0o600); err != nil {
			return nil, err
		}
		if err := sa.AddFileKubeMeshConfig(path); err != nil {
			return nil, err
		}
	}
	if err := sa.AddDefaultResources(); err != nil {
		return nil, err
	}
	src := []local.ReaderSource{
		{Name: "kube.yaml", Reader: strings.NewReader(req.Kube)},
		{Name: "configs.yaml", Reader: strings.NewReader(req.Configs)},
	}
	if err := sa.AddReaderKubeSource(src); err != nil {
		return nil, err
	}
	cancel := make(chan struct{})
	res, err := sa.Analyze(cancel)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(res.Messages))
	for _, m := range res.Messages.SortedDedupedCopy() {
		msg := Message{Code: m.Type.Code(), Level: m.Type.Level().String(), Text: m.String()}
		if m.Resource != nil && m.Resource.Origin != nil {
			msg.Resource = m.Resource.Origin.FriendlyName()
		}
		out = append(out, msg)
	}
	return out, nil
}
