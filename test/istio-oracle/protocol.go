// Package oracle answers, with istio.io/istio's own config generator and Envoy simulator, what
// Istio does with a scenario: which listener, chain, route and cluster a call from a proxy hits,
// the xDS a proxy receives (counts and serialized bytes), and whether Istio's validation and
// analyzers accept the configs. It is test infrastructure for meshtune's TypeScript tests
// (test/helpers/istio-oracle.ts): one JSON request per line on stdin, one JSON answer per line on
// file descriptor 3 (stdout belongs to Go's testing package, which prints failures there).
package oracle

// Request is one scenario and the questions asked of it.
type Request struct {
	ID int `json:"id"`
	// Kube holds Kubernetes objects (Namespaces, Services, Endpoints/EndpointSlices, Pods) as YAML.
	Kube string `json:"kube"`
	// Configs holds Istio configs (Sidecar, VirtualService, ServiceEntry, ...) as YAML.
	Configs string `json:"configs"`
	// Mesh is a MeshConfig in YAML, applied over Istio's defaults.
	Mesh    string       `json:"mesh,omitempty"`
	Proxies []ProxyQuery `json:"proxies"`
	// Analyze runs Istio's analyzers (as `istioctl analyze --use-kube=false -A`) over Kube+Configs.
	Analyze bool `json:"analyze,omitempty"`
}

// ProxyQuery names a proxy and what to ask about it.
type ProxyQuery struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	IP        string            `json:"ip"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Type is "sidecar" (default) or "router" (a gateway).
	Type string `json:"type,omitempty"`
	// Interception is the proxy's capture mode: REDIRECT (default) or TPROXY.
	Interception string `json:"interception,omitempty"`
	Calls        []Call `json:"calls,omitempty"`
	// XDS asks for the generated CDS/LDS/RDS/EDS/ECDS sizes; Names adds resource names and chains.
	XDS   bool `json:"xds,omitempty"`
	Names bool `json:"names,omitempty"`
}

// Call is one connection or request, as simulation.Call takes it.
type Call struct {
	Address  string            `json:"address,omitempty"`
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"` // http, http2, tcp
	TLS      string            `json:"tls,omitempty"`      // plaintext, tls, mtls
	Alpn     string            `json:"alpn,omitempty"`
	Host     string            `json:"host,omitempty"`
	Sni      string            `json:"sni,omitempty"`
	Path     string            `json:"path,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Mode     string            `json:"mode,omitempty"` // outbound (default), inbound, gateway
}

// Hit is where a call went.
type Hit struct {
	Listener    string `json:"listener,omitempty"`
	FilterChain string `json:"filterChain,omitempty"`
	RouteConfig string `json:"routeConfig,omitempty"`
	VirtualHost string `json:"virtualHost,omitempty"`
	Route       string `json:"route,omitempty"`
	Cluster     string `json:"cluster,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Sizes is one xDS type's resources for a proxy.
type Sizes struct {
	Count int      `json:"count"`
	Bytes int      `json:"bytes"`
	Names []string `json:"names,omitempty"`
}

// Chain is one listener filter chain and the filters on it, in order.
type Chain struct {
	Listener string `json:"listener"`
	// ListenerFilters are the listener's own filters (TLS inspector, original_src, ...).
	ListenerFilters []string `json:"listenerFilters"`
	Name            string   `json:"name"`
	NetworkFilters  []string `json:"networkFilters"`
	HTTPFilters     []string `json:"httpFilters,omitempty"`
}

// ProxyAnswer is what Istio generated for one proxy.
type ProxyAnswer struct {
	Name  string           `json:"name"`
	Calls []Hit            `json:"calls,omitempty"`
	XDS   map[string]Sizes `json:"xds,omitempty"`
	// GenerateMs is the time Istio took to build this proxy's CDS+LDS+RDS+EDS+ECDS.
	GenerateMs float64 `json:"generateMs,omitempty"`
	Chains     []Chain `json:"chains,omitempty"`
}

// Verdict is Istio's validation of one config object.
type Verdict struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Error     string `json:"error,omitempty"`
	Warning   string `json:"warning,omitempty"`
}

// Message is one analyzer message.
type Message struct {
	Code     string `json:"code"`
	Level    string `json:"level"`
	Resource string `json:"resource"`
	Text     string `json:"text"`
}

// Answer is the reply to one Request.
type Answer struct {
	ID         int           `json:"id"`
	Error      string        `json:"error,omitempty"`
	Validation []Verdict     `json:"validation"`
	Proxies    []ProxyAnswer `json:"proxies"`
	Analysis   []Message     `json:"analysis,omitempty"`
	SetupMs    float64       `json:"setupMs"`
}
