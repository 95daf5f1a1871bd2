// SPDX-License-Identifier: GPL-2.0
/* Ambient mode: the semantics of istio-cni's in-pod rules (istio/istio
 * cni/pkg/iptables/iptables.go, golden files cni/pkg/iptables/testdata/default.golden,
 * default_ipv6.golden, dns_pod_enabled_and_off_globally.golden, hostprobe.golden), without
 * iptables. Included by meshtune.bpf.c after its maps and helpers.
 *
 *  outbound (cgroup/connect4|6, an enrolled pod's processes)
 *    nat OUTPUT  -d 169.254.7.127 -p tcp -j ACCEPT                 -> probe address: untouched
 *                ! -o lo -p udp --dport 53 -j REDIRECT 15053        -> sendmsg/connect: 127.0.0.1:15053
 *                ! -d 127.0.0.1 -p tcp --dport 53 ! mark -j REDIRECT 15053
 *                -p tcp -m mark --mark 0x111 -j ACCEPT               -> only replies carry it: no connect
 *                ! -d 127.0.0.1 -o lo -j ACCEPT                      -> loopback and own IPs: untouched
 *                ! -d 127.0.0.1 -p tcp ! --mark 0x539 -j REDIRECT 15001 -> 127.0.0.1:15001
 *    ztunnel's own sockets are never redirected: they belong to ztunnel's cgroup, not the pod's
 *    (the hook looks the pod up from the calling task's cgroup), and they carry SO_MARK 0x539.
 *  inbound (sk_lookup on the pod's netns: the TPROXY rules' semantics, the connection keeps its
 *  original destination as its local address, as TPROXY gives ztunnel)
 *    mangle PRERT -s 169.254.7.127 -p tcp -j ACCEPT                  -> probe: untouched
 *                 ! -d 127.0.0.1 -p tcp -i lo -j ACCEPT              -> arrivals on lo: untouched
 *                 -p tcp --dport 15008 -j TPROXY 15008               -> HBONE: ztunnel's 15008
 *                                                                      listener, assigned
 *                 --ctstate RELATED,ESTABLISHED -j ACCEPT            -> sk_lookup sees new
 *                                                                      connections only
 *                 ! -d 127.0.0.1 -p tcp ! --mark 0x539 -j TPROXY 15006 -> ztunnel's 15006 listener
 *    ztunnel's marked packets reach the app over lo (the "-i lo" rule), so the mark needs no
 *    test of its own here; the CONNMARK 0x111 rules route replies of TPROXYed flows back to
 *    ztunnel's transparent sockets, which sk_assign'ed sockets need no help with. */

#define SOCK_DGRAM	 2
#define IPPROTO_TCP	 6
#define LOOPBACK_IFINDEX 1 /* include/net/flow.h: lo is the first device of every netns */

const volatile __u16 zt_outbound_port = 15001;
const volatile __u16 zt_dns_port = 15053;
const volatile __u32 zt_mark = 0x539, zt_mark_mask = 0xfff;

/* ztunnel's in-pod inbound listener, by the pod IP it serves (pod IPs are unique on a node).
 * Written by the agent (`pods ambient`) with the listener it takes from ztunnel (pidfd_getfd). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 8192);
	__type(key, struct mt_addr);
	__type(value, __u64);
} ztunnel_inbound SEC(".maps");

/* ztunnel's own connections to the pods it serves (its inbound delivery), by the 4-tuple the
 * accepting side will see: noted before the SYN leaves (sockops TCP_CONNECT_CB, not gated by
 * callback flags) for sockets carrying ztunnel's mark, so sk_lookup leaves them to the normal
 * lookup even when ztunnel keeps the client's address as the source (IP_TRANSPARENT). */
struct zt_tuple {
	__u32 family;
	__u32 client[4];
	__u32 server[4];
	__u32 client_port; /* host order */
	__u32 server_port; /* host order */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct zt_tuple);
	__type(value, __u8);
} zt_delivery SEC(".maps");

/* An enrolled pod's netns cookie by its IP (the agent writes it with the listener): a mark does
 * not cross namespaces (skb_scrub_packet), so only connections made inside the destination pod's
 * own netns are ztunnel's deliveries; its outbound connections to other pods are not. sk_lookup
 * programs cannot read a netns cookie themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct mt_addr);
	__type(value, struct mt_ambient_ip);
} ambient_netns SEC(".maps");

/* The node's own addresses: traffic the host originates (kubelet probes, hostNetwork pods) is
 * not captured inbound, as istio-cni's host rule SNATs it to 169.254.7.127 (hostprobe.golden:
 * POSTROUTING `-m owner --socket-exists -j SNAT`), which the in-pod rules then accept. Written by
 * the agent (`pods nodeips`). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct mt_addr);
	__type(value, __u8);
} node_ips SEC(".maps");

/* ztunnel's in-pod HBONE listener (15008), by pod IP: assigned explicitly, as TPROXY --on-port
 * 15008 does, so no other socket on that port in the pod ever receives a tunnel connection. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 8192);
	__type(key, struct mt_addr);
	__type(value, __u64);
} ztunnel_hbone SEC(".maps");

/* The DNS server a UDP socket asked, so the reply from 127.0.0.1:15053 reads as from it (the
 * socket's last query; resolvers ask their servers one at a time). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mt_endpoint);
} dns_orig SEC(".maps");

/* Istio's kubelet-probe SNAT addresses (pkg/config/constants: HostProbeSNATIP and
 * HostProbeSNATIPV6 = fd16:9254:7127:1337:ffff:ffff:ffff:ffff). */
static __always_inline int is_probe_addr(__u32 family, const __u32 ip[4])
{
	if (family == AF_INET)
		return ip[0] == bpf_htonl(0xa9fe077f);
	return ip[0] == bpf_htonl(0xfd169254) && ip[1] == bpf_htonl(0x71271337) &&
	       ip[2] == 0xffffffff && ip[3] == 0xffffffff;
}

static __always_inline int is_localhost(__u32 family, const __u32 ip[4])
{
	if (family == AF_INET)
		return ip[0] == bpf_htonl(0x7f000001);
	return !ip[0] && !ip[1] && !ip[2] && ip[3] == bpf_htonl(1);
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is IPv4 on the wire: judged as IPv4, as
 * iptables (which sees the IPv4 packet) judges it. */
static __always_inline __u32 unmapped(__u32 family, const __u32 ip[4], __u32 out[4])
{
	if (family == AF_INET6 && !ip[0] && !ip[1] && ip[2] == bpf_htonl(0xffff)) {
		out[0] = ip[3];
		out[1] = out[2] = out[3] = 0;
		return AF_INET;
	}
	out[0] = ip[0];
	out[1] = ip[1];
	out[2] = ip[2];
	out[3] = ip[3];
	return family;
}

/* A destination that leaves over lo: loopback (any 127/8, ::1), the unspecified address (the
 * kernel connects it to loopback), or one of the pod's own IPs. */
static __always_inline int over_lo(const struct mt_pod *pod, __u32 family, const __u32 ip[4])
{
	struct mt_addr a = {};
	struct mt_pod *self;
	a.family = unmapped(family, ip, a.ip);
	if (a.family == AF_INET ?
		    (bpf_ntohl(a.ip[0]) >> 24) == 127 || !a.ip[0] :
		    is_localhost(a.family, a.ip) || !(a.ip[0] | a.ip[1] | a.ip[2] | a.ip[3]))
		return 1;
	self = bpf_map_lookup_elem(&pod_ips, &a);
	return self && self->id == pod->id;
}

static __always_inline int zt_marked(struct bpf_sock *sk)
{
	return sk && (sk->mark & zt_mark_mask) == zt_mark;
}

static __always_inline void remember_dns(struct bpf_sock *sk, __u32 family, const __u32 ip[4],
					 __u16 port)
{
	struct mt_endpoint *e;
	if (!sk)
		return;
	e = bpf_sk_storage_get(&dns_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (e)
		endpoint(e, family, ip, port);
}

/* sockops TCP_CONNECT_CB: a ztunnel-marked socket's tuple, for mt_ambient_lookup. */
static __always_inline void ambient_note_connect(struct bpf_sock_ops *s)
{
	struct zt_tuple t = { .family = s->family };
	struct bpf_sock *sk = s->sk;
	__u8 one = 1;
	if (!sk || !zt_marked(sk))
		return;
	if (t.family == AF_INET) {
		t.client[0] = s->local_ip4;
		t.server[0] = s->remote_ip4;
	} else if (t.family == AF_INET6) {
		t.client[0] = s->local_ip6[0];
		t.client[1] = s->local_ip6[1];
		t.client[2] = s->local_ip6[2];
		t.client[3] = s->local_ip6[3];
		t.server[0] = s->remote_ip6[0];
		t.server[1] = s->remote_ip6[1];
		t.server[2] = s->remote_ip6[2];
		t.server[3] = s->remote_ip6[3];
	} else {
		return;
	}
	t.client_port = s->local_port;
	t.server_port = bpf_ntohl(s->remote_port);
	struct mt_addr dst = { .family = t.family };
	__builtin_memcpy(dst.ip, t.server, sizeof(dst.ip));
	struct mt_ambient_ip *owner = bpf_map_lookup_elem(&ambient_netns, &dst);
	if (!owner || owner->netns != bpf_get_netns_cookie(s))
		return;
	bpf_map_update_elem(&zt_delivery, &t, &one, BPF_ANY);
}

/* One connect() of an enrolled ambient pod (TCP, or connected UDP to port 53). */
static __always_inline enum verdict ambient_decide(struct bpf_sock_addr *ctx,
						   const struct mt_pod *pod, __u32 family,
						   const __u32 ip[4], __u16 port)
{
	struct bpf_sock *sk = ctx->sk;
	int dns = port == 53 && (pod->flags & MT_POD_AMBIENT_DNS);

	if (zt_marked(sk)) {
		count(MT_AMBIENT_SKIP_MARK);
		return PASS;
	}
	if (ctx->type == SOCK_DGRAM) {
		if (!dns || over_lo(pod, family, ip)) /* ! -o lo -p udp --dport 53 */
			return PASS;
		remember_dns(sk, family, ip, port);
		count(MT_AMBIENT_DNS);
		return TO_DNS;
	}
	__u32 v[4], vf = unmapped(family, ip, v);
	if (is_probe_addr(vf, v)) {
		count(MT_AMBIENT_SKIP_PROBE);
		return PASS;
	}
	if (dns && !is_localhost(vf, v)) { /* ! -d 127.0.0.1 -p tcp --dport 53 */
		save(ctx, family, ip, port, MT_ORIG_APP, pod->id);
		count(MT_AMBIENT_DNS);
		return TO_DNS;
	}
	if (over_lo(pod, family, ip)) {
		count(MT_AMBIENT_SKIP_LOCAL);
		return PASS;
	}
	save(ctx, family, ip, port, MT_ORIG_APP, pod->id);
	learn(pod->id, family, ip, port);
	count(MT_AMBIENT_REDIRECTED);
	return TO_ZTUNNEL;
}

/* Unconnected UDP DNS (sendto): the same rule as a connected socket's connect(). */
static __always_inline int ambient_sendmsg(struct bpf_sock_addr *ctx, __u32 family,
					   const __u32 ip[4])
{
	struct mt_pod *pod;
	__u16 port = bpf_ntohs(ctx->user_port);
	if (ctx->type != SOCK_DGRAM || port != 53)
		return 0;
	pod = current_pod();
	if (!pod || !(pod->flags & MT_POD_AMBIENT) || !(pod->flags & MT_POD_AMBIENT_DNS))
		return 0;
	if (zt_marked(ctx->sk)) {
		count(MT_AMBIENT_SKIP_MARK);
		return 0;
	}
	if (over_lo(pod, family, ip))
		return 0;
	remember_dns(ctx->sk, family, ip, port);
	count(MT_AMBIENT_DNS);
	return 1;
}

SEC("cgroup/sendmsg4")
int mt_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip4, 0, 0, 0 };
	if (ambient_sendmsg(ctx, AF_INET, ip)) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons(zt_dns_port);
	}
	return 1;
}

SEC("cgroup/sendmsg6")
int mt_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	if (ambient_sendmsg(ctx, AF_INET6, ip)) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
		ctx->user_port = bpf_htons(zt_dns_port);
	}
	return 1;
}

/* A reply from ztunnel's DNS port reads as from the server the query was sent to (resolvers
 * drop answers from another address). Only sockets that sent a redirected query have storage. */
static __always_inline struct mt_endpoint *dns_reply(struct bpf_sock_addr *ctx, __u32 family)
{
	struct mt_endpoint *e;
	if (ctx->type != SOCK_DGRAM || bpf_ntohs(ctx->user_port) != zt_dns_port || !ctx->sk)
		return NULL;
	e = bpf_sk_storage_get(&dns_orig, ctx->sk, 0, 0);
	if (!e || e->family != family)
		return NULL;
	count(MT_AMBIENT_DNS_REPLY);
	return e;
}

SEC("cgroup/recvmsg4")
int mt_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct mt_endpoint *e;
	if (ctx->user_ip4 != bpf_htonl(0x7f000001))
		return 1;
	e = dns_reply(ctx, AF_INET);
	if (e) {
		ctx->user_ip4 = e->ip[0];
		ctx->user_port = bpf_htons(e->port);
	}
	return 1;
}

SEC("cgroup/recvmsg6")
int mt_recvmsg6(struct bpf_sock_addr *ctx)
{
	struct mt_endpoint *e;
	if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] ||
	    ctx->user_ip6[3] != bpf_htonl(1))
		return 1;
	e = dns_reply(ctx, AF_INET6);
	if (e) {
		ctx->user_ip6[0] = e->ip[0];
		ctx->user_ip6[1] = e->ip[1];
		ctx->user_ip6[2] = e->ip[2];
		ctx->user_ip6[3] = e->ip[3];
		ctx->user_port = bpf_htons(e->port);
	}
	return 1;
}

/* Attached to each enrolled pod's network namespace (a BPF_SK_LOOKUP link per pod). */
SEC("sk_lookup")
int mt_ambient_lookup(struct bpf_sk_lookup *ctx)
{
	struct mt_addr a = { .family = ctx->family };
	__u32 remote[4] = {};
	struct bpf_sock *sk;
	long err;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	/* Each field read on its own path (barrier_var): clang otherwise offsets the ctx pointer, a
	 * dereference the verifier refuses ("dereference of modified ctx ptr"). */
	if (ctx->family == AF_INET) {
		__u32 l = ctx->local_ip4, r = ctx->remote_ip4;
		barrier_var(l);
		barrier_var(r);
		a.ip[0] = l;
		remote[0] = r;
	} else {
		__u32 l0 = ctx->local_ip6[0], l1 = ctx->local_ip6[1], l2 = ctx->local_ip6[2],
		      l3 = ctx->local_ip6[3];
		__u32 r0 = ctx->remote_ip6[0], r1 = ctx->remote_ip6[1], r2 = ctx->remote_ip6[2],
		      r3 = ctx->remote_ip6[3];
		barrier_var(l0);
		barrier_var(l3);
		barrier_var(r0);
		barrier_var(r3);
		a.ip[0] = l0;
		a.ip[1] = l1;
		a.ip[2] = l2;
		a.ip[3] = l3;
		remote[0] = r0;
		remote[1] = r1;
		remote[2] = r2;
		remote[3] = r3;
	}
	/* "-i lo": lo's own index for loopback addresses; a connection to the pod's eth0 address
	 * from inside the pod also loops over lo, but reports eth0's index (the route keeps the FIB
	 * device, net/ipv4/route.c ip_route_output_key_hash_rcu), so it is known by its source: the
	 * pod itself, or ztunnel's marked delivery (zt_delivery). */
	struct zt_tuple t = { .family = ctx->family,
			      .client_port = bpf_ntohs(ctx->remote_port),
			      .server_port = ctx->local_port };
	__builtin_memcpy(t.client, remote, sizeof(remote));
	__builtin_memcpy(t.server, a.ip, sizeof(a.ip));
	int from_self = remote[0] == a.ip[0] && remote[1] == a.ip[1] && remote[2] == a.ip[2] &&
			remote[3] == a.ip[3];
	/* A delivery's tuple is used once: its SYN's retransmissions match the request socket
	 * before any listener lookup, and a later connection reusing the tuple is not ztunnel's. */
	int delivery = bpf_map_delete_elem(&zt_delivery, &t) == 0;
	struct mt_addr from = { .family = ctx->family };
	__builtin_memcpy(from.ip, remote, sizeof(remote));
	if (ctx->ingress_ifindex == LOOPBACK_IFINDEX || is_localhost(ctx->family, a.ip) ||
	    from_self || is_probe_addr(ctx->family, remote) || delivery ||
	    bpf_map_lookup_elem(&node_ips, &from)) {
		count(MT_AMBIENT_INBOUND_PASS);
		return SK_PASS;
	}
	/* HBONE to ztunnel's 15008 listener, everything else to its 15006 one. */
	sk = bpf_map_lookup_elem(ctx->local_port == tunnel_port ? (void *)&ztunnel_hbone :
								  (void *)&ztunnel_inbound,
				 &a);
	if (!sk) {
		/* Enrolled but ztunnel is not there: refuse, as TPROXY to a missing listener does,
		 * rather than hand the app a connection that skipped ztunnel's policy. */
		count(MT_AMBIENT_NO_ZTUNNEL);
		return SK_DROP;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		count(MT_AMBIENT_NO_ZTUNNEL);
		return SK_DROP;
	}
	count(MT_AMBIENT_INBOUND);
	return SK_PASS;
}
