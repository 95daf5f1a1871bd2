/* Shared between meshtune.bpf.c and the loader. */
#ifndef MESHTUNE_H
#define MESHTUNE_H

#define MT_PIN_DIR	   "/sys/fs/bpf/meshtune"
#define MT_MAX_CGROUP_PATH 256
#define MT_POD_LEVELS	   4 /* pod cgroups sit 1..4 levels below the attach cgroup (QoS slices) */

/* Why a connection/message took the path it did (Cilium-style per-reason accounting). */
enum mt_reason {
	MT_REDIRECTED = 0, /* app connect() redirected to its pod's proxy */
	MT_SKIP_UID, /* the proxy's own traffic to a non-meshed or remote destination */
	MT_SKIP_LOOPBACK, /* destination already local (loopback or the pod's own IP) */
	MT_SKIP_EXCLUDED_PORT,
	MT_SKIP_EXCLUDED_CIDR,
	MT_SKIP_PROXY_PORT, /* already aimed at the proxy */
	MT_SKIP_NOT_TCP,
	MT_ORIGDST_SAVED, /* original destination handed from the client socket to the accepted one */
	MT_ORIGDST_ANSWERED, /* getsockopt(SO_ORIGINAL_DST) answered */
	MT_ORIGDST_MISS, /* getsockopt asked for a socket we did not redirect */
	MT_SOCKMAP_INSERTED, /* socket of a redirected pair added to the sockhash */
	MT_SOCKMAP_INSERT_FAIL,
	MT_SOCKMAP_REDIRECTED, /* sk_msg spliced a message to the peer */
	MT_SOCKMAP_MISS, /* sk_msg found no peer: normal TCP path */
	MT_SKIP_NOT_MESHED, /* connect() from a pod that is not meshed (or no pod at all) */
	MT_SKIP_NOT_INCLUDED, /* outside includeOutboundIPRanges / includeOutboundPorts */
	MT_REDIRECTED_INBOUND, /* proxy -> same-node meshed pod: sent to that pod's inbound port */
	MT_SKIP_INBOUND_EXCLUDED, /* ... but that port is not captured inbound there */
	MT_INBOUND_DELIVERY, /* proxy -> its own app from 127.0.0.6 / ::6 (inbound passthrough) */
	MT_L4_EDGE_FAIL, /* L4 edge map update failed */
	MT_SKB_VERDICT, /* no-op SK_SKB verdict ran (kernel wakeup workaround) */
	MT_AMBIENT_REDIRECTED, /* ambient pod connect() -> ztunnel's in-pod outbound port */
	MT_AMBIENT_SKIP_MARK, /* a socket carrying ztunnel's mark 0x539/0xfff */
	MT_AMBIENT_SKIP_LOCAL, /* 127.0.0.1, or a destination that leaves over lo */
	MT_AMBIENT_SKIP_PROBE, /* to or from the kubelet probe SNAT address */
	MT_AMBIENT_DNS, /* DNS (UDP or TCP 53) -> ztunnel's in-pod DNS port */
	MT_AMBIENT_DNS_REPLY, /* a reply from the DNS port shown as from the server asked */
	MT_AMBIENT_INBOUND, /* sk_lookup: inbound connection handed to ztunnel's inbound listener */
	MT_AMBIENT_INBOUND_PASS, /* sk_lookup: HBONE port, loopback, lo or probe: normal lookup */
	MT_AMBIENT_NO_ZTUNNEL, /* sk_lookup: enrolled pod with no ztunnel listener: refused */
	MT_SOCKMAP_INSERT_BUSY, /* EBUSY: another program owns the socket's psock; splice gate closed */
	MT_SOCKMAP_GATED, /* a pair not spliced because the splice gate is closed */
	MT_SOCKMAP_RECONNECTED, /* a spliced socket connected again (connect(AF_UNSPEC), connect): its
				   old entry removed first, then spliced as new */
	MT_REASON_MAX,
};

/* Per-pod settings the agent writes (Istio's traffic.sidecar.istio.io annotations). */
#define MT_POD_OUT_ALL 1 /* includeOutboundIPRanges "*" */
#define MT_POD_IN_ALL  2 /* includeInboundPorts "*" */
#define MT_POD_IN_REDIRECT \
	4 /* inbound captured by REDIRECT (not TPROXY): 15006 may be dialled directly */
#define MT_POD_AMBIENT	   8 /* ambient pod: outbound to ztunnel's in-pod listeners, no sidecar */
#define MT_POD_AMBIENT_DNS 16 /* ... and its DNS (UDP/TCP 53) to ztunnel's DNS proxy */

struct mt_pod {
	__u32 id; /* agent-assigned, unique on the node, never 0 */
	__u32 flags;
	/* The pod's proxy runs as this UID or GID (istio-iptables -u/-g, from the istio-proxy
	 * container's securityContext); its own connections are never captured. 0: unset, the
	 * loader's node-wide proxy_uid applies. */
	__u32 proxy_uid;
	__u32 proxy_gid;
};

/* Per-pod port rules, one bit each. */
#define MT_PORT_OUT_EXCLUDE 1
#define MT_PORT_OUT_INCLUDE 2
#define MT_PORT_IN_EXCLUDE  4
#define MT_PORT_IN_INCLUDE  8
struct mt_pod_port {
	__u32 pod;
	__u32 port;
};

/* LPM key: the pod id is part of the prefix, so one trie holds every pod's ranges.
 * v4 addresses as ::ffff:a.b.c.d. prefixlen = 32 + address bits. */
struct mt_pod_cidr {
	__u32 prefixlen;
	__u32 pod;
	__u32 ip[4];
};

/* An address as pod_ips keys it (v4 in ip[0], network order). */
struct mt_addr {
	__u32 family;
	__u32 ip[4];
};

/* A TCP endpoint: address (v4 in ip[0], network order) and port (host order). */
struct mt_endpoint {
	__u32 ip[4];
	__u32 port;
	__u32 family;
};

#define MT_ORIG_APP	 1 /* app -> own proxy (outbound capture) */
#define MT_ORIG_INBOUND	 2 /* proxy -> same-node peer's inbound port */
#define MT_ORIG_DELIVERY 4 /* proxy -> own app (inbound passthrough) */
struct mt_orig {
	struct mt_endpoint dst;
	__u32 kind;
	__u32 pod;
	__u64 gen; /* this connect()'s generation, handed to the accepting side (mt_pair.gen) */
};

/* sockhash key: the socket's own 4-tuple, plus netns: the namespace cookie when either end is
 * pod-local (loopback, 127.0.0.6, ::6: the same in every pod), else 0 (pod IPs are unique on the
 * node), so keys of different pods never collide. */
struct mt_pair {
	__u64 netns;
	__u32 local_ip[4];
	__u32 remote_ip[4];
	__u32 local_port; /* host order */
	__u32 remote_port; /* host order */
	__u32 family;
	__u32 pad;
	/* The connection's generation: a number the datapath gives each recorded connect(), which
	 * both ends learn at ESTABLISHED. An entry stays until its socket is closed by its owner
	 * (sock_map_close), also after the connection ended; a new connection reusing the 4-tuple,
	 * even on the same socket, gets a new key, so it is never spliced into the old socket. */
	__u64 gen;
};

/* A spliced socket's own entry and its peer's (sk_storage): sk_msg redirects by `peer` without
 * rebuilding it per message; `self` is removed when the socket connects again. */
struct mt_spliced {
	struct mt_pair self;
	struct mt_pair peer;
};

/* Connect-time L4 learning: per pod and original destination. */
struct mt_edge_key {
	__u32 pod;
	__u32 family;
	__u32 ip[4];
	__u32 port;
};
struct mt_edge {
	__u64 count;
	__u64 first_ns; /* CLOCK_MONOTONIC */
	__u64 last_ns;
};

/* An ambient pod IP's owner: its netns cookie (deliveries are recognised inside it) and the pod
 * id (`unambient` removes only its own keys, never those of a pod that reuses the IP). */
struct mt_ambient_ip {
	__u64 netns;
	__u32 pod;
	__u32 pad;
};

/* The splice gate: open (reason 0) until the kernel refuses meshtune a socket with EBUSY, which
 * means another program already holds that socket's psock (net/core/sock_map.c sock_map_link: a
 * socket takes one msg_parser / verdict program, whoever inserts it second gets -EBUSY). Whoever
 * that is, splicing on would take from it the sockets meshtune reaches first, so new pairs stop
 * being spliced (capture goes on) until `meshtune-bpf splice-gate open`. Spliced pairs keep going. */
#define MT_GATE_OPEN	0
#define MT_GATE_BUSY	1 /* closed by the datapath on EBUSY */
#define MT_GATE_CLOSED	2 /* closed by `meshtune-bpf splice-gate close` */
#define MT_GATE_FOREIGN 3 /* closed by the agent's recheck: another program attached after load */
struct mt_gate {
	__u32 reason;
	__u32 pad;
	__u64 closed_ns; /* CLOCK_MONOTONIC */
};

/* Recorded by the loader next to the programs, read back by `status`. */
struct mt_meta {
	char cgroup[MT_MAX_CGROUP_PATH];
	__u32 proxy_port;
	__u32 proxy_uid;
	__u32 inbound_port;
	__u32 skb_verdict;
	__u32 ambient; /* the ambient programs were loaded (the node passed the "ambient" probes) */
	__u32 splice; /* loaded with sockmap splicing (not --no-splice, no hazard, no other user) */
};

#endif
