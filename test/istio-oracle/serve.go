package oracle

import (
	"net/http"
	"testing"
	"time"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
)

// Serve answers one request. Istio's fake discovery server and simulator take a *testing.T;
// whatever they register with t.Cleanup is released when the caller's subtest ends.
func Serve(t *testing.T, req *Request) Answer {
	ans := Answer{ID: req.ID, Validation: []Verdict{}, Proxies: []ProxyAnswer{}}
	configs, verdicts, err := parseConfigs(req.Configs)
	if err != nil {
		ans.Error = err.Error()
		return ans
	}
	if verdicts != nil {
		ans.Validation = verdicts
	}
	if req.Analyze {
		msgs, err := analyze(t.TempDir(), req)
		if err != nil {
			ans.Error = "analyze: " + err.Error()
			return ans
		}
		ans.Analysis = msgs
	}
	if len(req.Proxies) == 0 {
		return ans
	}
	opts := xds.FakeOptions{KubernetesObjectString: req.Kube, Configs: configs}
	if req.Mesh != "" {
		m, err := mesh.ApplyMeshConfigDefaults(req.Mesh)
		if err != nil {
			ans.Error = "mesh: " + err.Error()
			return ans
		}
		opts.MeshConfig = m
	}
	t0 := time.Now()
	s := xds.NewFakeDiscoveryServer(t, opts)
	ans.SetupMs = ms(time.Since(t0))
	for _, q := range req.Proxies {
		ans.Proxies = append(ans.Proxies, answerProxy(t, s, q))
	}
	return ans
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// proxyFor builds the model.Proxy istiod would hold for a connected sidecar or gateway.
func proxyFor(s *xds.FakeDiscoveryServer, q ProxyQuery) *model.Proxy {
	p := &model.Proxy{
		Type:            model.SidecarProxy,
		ID:              q.Name + "." + q.Namespace,
		ConfigNamespace: q.Namespace,
		Labels:          q.Labels,
		IPAddresses:     []string{q.IP},
		Metadata: &model.NodeMetadata{
			Namespace:    q.Namespace,
			Labels:       q.Labels,
			IstioVersion: IstioVersion,
		},
	}
	if q.Interception != "" {
		p.Metadata.InterceptionMode = model.TrafficInterceptionMode(q.Interception)
	}
	if q.Type == "router" {
		p.Type = model.Router
	}
	return s.SetupProxy(p)
}

func answerProxy(t *testing.T, s *xds.FakeDiscoveryServer, q ProxyQuery) ProxyAnswer {
	p := proxyFor(s, q)
	out := ProxyAnswer{Name: q.Name}
	if len(q.Calls) > 0 {
		sim := simulation.NewSimulation(t, s, p)
		for _, c := range q.Calls {
			out.Calls = append(out.Calls, hit(sim.Run(toSimCall(c))))
		}
	}
	if q.XDS || q.Names {
		out.XDS, out.GenerateMs, out.Chains = generate(t, s, p, q.Names)
	}
	return out
}

func toSimCall(c Call) simulation.Call {
	h := http.Header{}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	sc := simulation.Call{
		Address:    c.Address,
		Port:       c.Port,
		Path:       c.Path,
		Protocol:   simulation.Protocol(c.Protocol),
		TLS:        simulation.TLSMode(c.TLS),
		Alpn:       c.Alpn,
		HostHeader: c.Host,
		Headers:    h,
		Sni:        c.Sni,
		CallMode:   simulation.CallModeOutbound,
	}
	if sc.Protocol == "" {
		sc.Protocol = simulation.HTTP
	}
	if c.Mode != "" {
		sc.CallMode = simulation.CallMode(c.Mode)
	}
	return sc
}

func hit(r simulation.Result) Hit {
	h := Hit{
		Listener:    r.ListenerMatched,
		FilterChain: r.FilterChainMatched,
		RouteConfig: r.RouteConfigMatched,
		VirtualHost: r.VirtualHostMatched,
		Route:       r.RouteMatched,
		Cluster:     r.ClusterMatched,
	}
	if r.Error != nil {
		h.Error = r.Error.Error()
	}
	return h
}
