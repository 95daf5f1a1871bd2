package oracle

import (
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"istio.io/istio/pilot/pkg/model"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/util/sets"
)

// generate builds one proxy's CDS, LDS, RDS, EDS and ECDS with istiod's generators and measures
// each resource as it travels in a DiscoveryResponse (wrapped in Any).
func generate(t *testing.T, s *xds.FakeDiscoveryServer, p *model.Proxy, names bool) (map[string]Sizes, float64, []Chain) {
	t0 := time.Now()
	clusters := s.Clusters(p)
	listeners := s.Listeners(p)
	routes := s.RoutesFromListeners(p, listeners)
	endpoints := s.Endpoints(p)
	ecdsNames := sets.New[string]()
	for _, l := range listeners {
		for _, fc := range allChains(l) {
			for _, f := range fc.Filters {
				if f.GetConfigDiscovery() != nil {
					ecdsNames.Insert(f.Name)
				}
			}
			if h := httpManager(fc); h != nil {
				for _, f := range h.HttpFilters {
					if f.GetConfigDiscovery() != nil {
						ecdsNames.Insert(f.Name)
					}
				}
			}
		}
	}
	var ecds model.Resources
	if ecdsNames.Len() > 0 {
		gen := s.Discovery.Generators[v3.ExtensionConfigurationType]
		w := &model.WatchedResource{TypeUrl: v3.ExtensionConfigurationType, ResourceNames: ecdsNames}
		res, _, err := gen.Generate(p, w, &model.PushRequest{Push: s.PushContext(), Forced: true})
		if err != nil {
			t.Fatalf("ECDS: %v", err)
		}
		ecds = res
	}
	took := ms(time.Since(t0))

	out := map[string]Sizes{}
	out["cds"] = measure(t, clusters, func(m proto.Message) string { return nameOf(m) }, names)
	out["lds"] = measure(t, listeners, func(m proto.Message) string { return nameOf(m) }, names)
	out["rds"] = measure(t, routes, func(m proto.Message) string { return nameOf(m) }, names)
	out["eds"] = measure(t, endpoints, func(m proto.Message) string { return nameOf(m) }, names)
	e := Sizes{}
	for _, r := range ecds {
		e.Count++
		e.Bytes += proto.Size(r.Resource)
		if names {
			e.Names = append(e.Names, r.Name)
		}
	}
	out["ecds"] = e

	var chains []Chain
	if names {
		for _, l := range listeners {
			lf := []string{}
			for _, f := range l.ListenerFilters {
				lf = append(lf, f.Name)
			}
			for _, fc := range allChains(l) {
				c := Chain{Listener: l.Name, ListenerFilters: lf, Name: fc.Name, NetworkFilters: []string{}}
				for _, f := range fc.Filters {
					c.NetworkFilters = append(c.NetworkFilters, f.Name)
				}
				if h := httpManager(fc); h != nil {
					for _, f := range h.HttpFilters {
						c.HTTPFilters = append(c.HTTPFilters, f.Name)
					}
				}
				chains = append(chains, c)
			}
		}
	}
	return out, took, chains
}

type named interface{ GetName() string }

type clusterLoadAssignment interface{ GetClusterName() string }

func nameOf(m proto.Message) string {
	if n, ok := m.(named); ok {
		return n.GetName()
	}
	if n, ok := m.(clusterLoadAssignment); ok {
		return n.GetClusterName()
	}
	return ""
}

func measure[T proto.Message](t *testing.T, msgs []T, name func(proto.Message) string, names bool) Sizes {
	s := Sizes{}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		s.Count++
		s.Bytes += proto.Size(a)
		if names {
			s.Names = append(s.Names, name(m))
		}
	}
	return s
}

func allChains(l *listener.Listener) []*listener.FilterChain {
	if l.DefaultFilterChain != nil {
		return append(append([]*listener.FilterChain{}, l.FilterChains...), l.DefaultFilterChain)
	}
	return l.FilterChains
}

func httpManager(fc *listener.FilterChain) *hcm.HttpConnectionManager {
	for _, f := range fc.Filters {
		if f.Name != "envoy.filters.network.http_connection_manager" || f.GetTypedConfig() == nil {
			continue
		}
		h := &hcm.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err == nil {
			return h
		}
	}
	return nil
}
