// SPDX-License-Identifier: GPL-2.0
/* meshtune datapath: iptables-free capture for meshed pods, and sockmap splicing of the pairs it
 * created. Attached once per node to the kubepods cgroup; only pods the agent lists in `pods`
 * (by pod cgroup id) are touched.
 *
 *  cgroup/connect4|6  app connect(dst)       -> 127.0.0.1|::1:proxy_port   (Istio outbound capture)
 *                     proxy -> same-node meshed pod IP:port -> same IP:inbound_port (its inbound capture)
 *                     proxy -> own app from 127.0.0.6|::6 marked for delivery splice
 *                     original destination saved by socket cookie; app edges counted per pod
 *  sockops            ACTIVE_ESTABLISHED: cookie entry -> entry keyed by the client endpoint
 *                     PASSIVE_ESTABLISHED: that entry -> the accepted socket's sk_storage;
 *                     both sockets of such a pair (and only those) -> sockhash
 *  cgroup/getsockopt  SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST from the accepted socket's storage
 *  sk_msg             sendmsg on a spliced socket -> peer's ingress queue (BPF_F_INGRESS)
 *  sk_skb/verdict     no-op SK_PASS, attached only where the kernel loses receive wakeups for
 *                     sockmap sockets without a verdict program (see the loader's probe)
 *
 * Capture rules follow istio/istio tools/istio-iptables/pkg/capture/run.go (1.25): excluded
 * outbound ports first; 127.0.0.6/::6-sourced traffic returns; the proxy uid to a local
 * non-loopback address goes to ISTIO_IN_REDIRECT (15006), other proxy traffic returns; app
 * traffic to loopback or over lo returns; excluded ranges return; included ports, then
 * included ranges ("*" = all) go to ISTIO_REDIRECT (15001). Same-node peers are "local" here
 * because their IPs are in pod_ips.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "meshtune.h"

#define AF_INET		     2
#define AF_INET6	     10
#define SOCK_STREAM	     1
#define SOL_IP		     0
#define SOL_IPV6	     41
#define SO_ORIGINAL_DST	     80
#define IP6T_SO_ORIGINAL_DST 80

/* Set by the loader before load. */
const volatile __u16 proxy_port = 15001;
const volatile __u16 inbound_port = 15006;
const volatile __u16 tunnel_port =
	15008; /* HBONE: never redirected inbound (run.go InboundTunnelPort) */
const volatile __u32 proxy_uid = 1337;
const volatile __u32 pod_level = 1; /* cgroup level of the attach cgroup + 1 */
const volatile __u8 splice = 1; /* 0: capture only (no sockhash inserts) */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MT_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Meshed pods by pod cgroup id, and by pod IP (for same-node peers). Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct mt_pod);
} pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct mt_addr);
	__type(value, struct mt_pod);
} pod_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mt_pod_port);
	__type(value, __u32);
} pod_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mt_pod_cidr);
	__type(value, __u8);
} pod_cidrs_exclude SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mt_pod_cidr);
	__type(value, __u8);
} pod_cidrs_include SEC(".maps");

/* Node-wide exclusions (loader flags), on top of each pod's own. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} excluded_ports SEC(".maps");

struct cidr_key {
	__u32 prefixlen;
	__u32 ip[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr_key);
	__type(value, __u8);
} excluded_cidrs SEC(".maps");

/* connect() -> original destination, until the socket is established. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct mt_orig);
} origdst_by_cookie SEC(".maps");

/* The connection (the client's 4-tuple and netns, gen 0) -> original destination, from the
 * client's ESTABLISHED to the server's. Not the client endpoint alone: Linux gives one ephemeral
 * port to connections to different destinations, which would then overwrite each other's. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mt_pair);
	__type(value, struct mt_orig);
} origdst_by_peer SEC(".maps");

/* The accepted socket's original destination: lives and dies with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mt_orig);
} origdst_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct mt_pair);
	__type(value, __u64);
} sock_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mt_gate);
} splice_gate SEC(".maps");

/* Each spliced socket's entry and its peer's key (mt_spliced). A TCP socket stays in a sockhash
 * until close() (sock_map_close; tcp_bpf has had no unhash handler since 5.16), also across
 * connect(AF_UNSPEC) and after the kernel has ended the connection; keys carry the connection's
 * generation (mt_pair.gen), so such an entry never meets a new connection. A socket that connects
 * again has its old entry removed first: its insert would otherwise meet meshtune's own psock
 * (EBUSY), which must not read as someone else's, and the old connection's queued bytes would be
 * read on the new one. Entries are never removed at TCP_CLOSE: dropping the psock drops the bytes
 * spliced to a reader that has not read them yet. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mt_spliced);
} spliced_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mt_edge_key);
	__type(value, struct mt_edge);
} l4_edges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mt_meta);
} meta SEC(".maps");

static __always_inline void count(enum mt_reason r)
{
	__u32 k = r;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
}

/* The calling process's pod: the first ancestor cgroup below the attach point the agent listed.
 * bpf_get_current_ancestor_cgroup_id(level) is 0 once level passes the task's own cgroup
 * (include/uapi/linux/bpf.h), which ends the walk. */
static __always_inline struct mt_pod *current_pod(void)
{
	for (int i = 0; i < MT_POD_LEVELS; i++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(pod_level + i);
		struct mt_pod *p;
		if (!id)
			return NULL;
		p = bpf_map_lookup_elem(&pods, &id);
		if (p)
			return p;
	}
	return NULL;
}

/* istio-iptables exempts the proxy by UID and by GID (-m owner --uid-owner / --gid-owner): the
 * pod's own values when the agent set them (OpenShift-style arbitrary UIDs), else the node's. */
static __always_inline int is_proxy(const struct mt_pod *pod)
{
	__u64 ug = bpf_get_current_uid_gid();
	__u32 uid = (__u32)ug, gid = (__u32)(ug >> 32);

	if (!pod->proxy_uid)
		return uid == proxy_uid;
	return uid == pod->proxy_uid || (pod->proxy_gid && gid == pod->proxy_gid);
}

/* Addresses that mean the same thing in every pod: loopback, and Istio's inbound passthrough
 * sources 127.0.0.6 / ::6 (run.go). Keys built from them need the netns cookie. */
static __always_inline int pod_local(__u32 family, const __u32 ip[4])
{
	if (family == AF_INET)
		return (bpf_ntohl(ip[0]) >> 24) == 127;
	if (ip[0] || ip[1])
		return 0;
	if (!ip[2])
		return ip[3] == bpf_htonl(1) || ip[3] == bpf_htonl(6);
	return ip[2] == bpf_htonl(0xffff) && (bpf_ntohl(ip[3]) >> 24) == 127;
}

static __always_inline int is_passthrough_src(__u32 family, const __u32 ip[4])
{
	if (family == AF_INET)
		return ip[0] == bpf_htonl(0x7f000006);
	return !ip[0] && !ip[1] && !ip[2] && ip[3] == bpf_htonl(6);
}

static __always_inline void v4mapped(__u32 family, const __u32 ip[4], __u32 out[4])
{
	if (family == AF_INET) {
		out[0] = 0;
		out[1] = 0;
		out[2] = bpf_htonl(0xffff);
		out[3] = ip[0];
	} else {
		out[0] = ip[0];
		out[1] = ip[1];
		out[2] = ip[2];
		out[3] = ip[3];
	}
}

static __always_inline int node_excluded(__u32 family, const __u32 ip[4], __u16 port)
{
	struct cidr_key k = { .prefixlen = 128 };
	if (bpf_map_lookup_elem(&excluded_ports, &port)) {
		count(MT_SKIP_EXCLUDED_PORT);
		return 1;
	}
	v4mapped(family, ip, k.ip);
	if (bpf_map_lookup_elem(&excluded_cidrs, &k)) {
		count(MT_SKIP_EXCLUDED_CIDR);
		return 1;
	}
	return 0;
}

static __always_inline __u32 port_rules(__u32 pod, __u16 port)
{
	struct mt_pod_port k = { .pod = pod, .port = port };
	__u32 *v = bpf_map_lookup_elem(&pod_ports, &k);
	return v ? *v : 0;
}

static __always_inline int in_cidrs(void *trie, __u32 pod, __u32 family, const __u32 ip[4])
{
	struct mt_pod_cidr k = { .prefixlen = 32 + 128, .pod = pod };
	v4mapped(family, ip, k.ip);
	return bpf_map_lookup_elem(trie, &k) != NULL;
}

/* Connection generations (mt_pair.gen): one per recorded connect(), so a socket that connects
 * again, on the same 4-tuple even, is a new connection to the sockhash. */
__u64 next_gen = 1;

static __always_inline void save(void *ctx, __u32 family, const __u32 ip[4], __u16 port, __u32 kind,
				 __u32 pod)
{
	struct mt_orig o = { .dst = { .port = port, .family = family },
			     .kind = kind,
			     .pod = pod,
			     .gen = __sync_fetch_and_add(&next_gen, 1) };
	__u64 cookie = bpf_get_socket_cookie(ctx);
	o.dst.ip[0] = ip[0];
	o.dst.ip[1] = ip[1];
	o.dst.ip[2] = ip[2];
	o.dst.ip[3] = ip[3];
	bpf_map_update_elem(&origdst_by_cookie, &cookie, &o, BPF_ANY);
}

static __always_inline void learn(__u32 pod, __u32 family, const __u32 ip[4], __u16 port)
{
	struct mt_edge_key k = { .pod = pod, .family = family, .port = port };
	__u64 now = bpf_ktime_get_ns();
	struct mt_edge *e, n = { .count = 1, .first_ns = now, .last_ns = now };
	k.ip[0] = ip[0];
	k.ip[1] = ip[1];
	k.ip[2] = ip[2];
	k.ip[3] = ip[3];
	e = bpf_map_lookup_elem(&l4_edges, &k);
	if (!e) {
		if (bpf_map_update_elem(&l4_edges, &k, &n, BPF_NOEXIST) == 0)
			return;
		e = bpf_map_lookup_elem(&l4_edges, &k); /* another CPU inserted it first */
		if (!e) {
			count(MT_L4_EDGE_FAIL);
			return;
		}
	}
	__sync_fetch_and_add(&e->count, 1);
	e->last_ns = now;
}

static __always_inline void endpoint(struct mt_endpoint *e, __u32 family, const __u32 ip[4],
				     __u32 port)
{
	e->family = family;
	e->port = port;
	e->ip[0] = ip[0];
	e->ip[1] = ip[1];
	e->ip[2] = ip[2];
	e->ip[3] = ip[3];
}

enum verdict { PASS, TO_PROXY, TO_INBOUND, TO_ZTUNNEL, TO_DNS };

#include "ambient.bpf.h"

/* Decide for one connect(); src is the socket's bound address (0 when unbound). */
static __always_inline enum verdict decide(struct bpf_sock_addr *ctx, __u32 family,
					   const __u32 ip[4], __u16 port, const __u32 src[4])
{
	struct mt_addr a = { .family = family };
	struct mt_pod *pod, *peer;
	__u32 rules;

	if (ctx->type != SOCK_STREAM && !(ctx->type == SOCK_DGRAM && port == 53)) {
		count(MT_SKIP_NOT_TCP);
		return PASS;
	}
	pod = current_pod();
	if (!pod) {
		count(MT_SKIP_NOT_MESHED);
		return PASS;
	}
	if (pod->flags & MT_POD_AMBIENT)
		return ambient_decide(ctx, pod, family, ip, port);
	if (ctx->type != SOCK_STREAM) {
		count(MT_SKIP_NOT_TCP);
		return PASS;
	}
	rules = port_rules(pod->id, port);
	if (rules & MT_PORT_OUT_EXCLUDE) {
		count(MT_SKIP_EXCLUDED_PORT);
		return PASS;
	}
	a.ip[0] = ip[0];
	a.ip[1] = ip[1];
	a.ip[2] = ip[2];
	a.ip[3] = ip[3];
	if (is_proxy(pod)) {
		if (is_passthrough_src(family, src)) {
			save(ctx, family, ip, port, MT_ORIG_DELIVERY, pod->id);
			count(MT_INBOUND_DELIVERY);
			return PASS;
		}
		peer = bpf_map_lookup_elem(&pod_ips, &a);
		if (!peer || !(peer->flags & MT_POD_IN_REDIRECT)) {
			count(MT_SKIP_UID);
			return PASS;
		}
		if (port == proxy_port || port == inbound_port || port == tunnel_port) {
			count(MT_SKIP_PROXY_PORT);
			return PASS;
		}
		/* run.go handleInboundPortsInclude: "*" minus excluded ports, or the listed ports. */
		rules = port_rules(peer->id, port);
		if ((rules & MT_PORT_IN_EXCLUDE) ||
		    (!(peer->flags & MT_POD_IN_ALL) && !(rules & MT_PORT_IN_INCLUDE))) {
			count(MT_SKIP_INBOUND_EXCLUDED);
			return PASS;
		}
		save(ctx, family, ip, port, MT_ORIG_INBOUND, pod->id);
		count(MT_REDIRECTED_INBOUND);
		return TO_INBOUND;
	}
	if (pod_local(family, ip) || is_passthrough_src(family, src)) {
		count(MT_SKIP_LOOPBACK);
		return PASS;
	}
	peer = bpf_map_lookup_elem(&pod_ips, &a); /* the pod's own IP goes over lo: not captured */
	if (peer && peer->id == pod->id) {
		count(MT_SKIP_LOOPBACK);
		return PASS;
	}
	if (port == proxy_port) {
		count(MT_SKIP_PROXY_PORT);
		return PASS;
	}
	if (node_excluded(family, ip, port))
		return PASS;
	if (in_cidrs(&pod_cidrs_exclude, pod->id, family, ip)) {
		count(MT_SKIP_EXCLUDED_CIDR);
		return PASS;
	}
	if (!(rules & MT_PORT_OUT_INCLUDE) && !(pod->flags & MT_POD_OUT_ALL) &&
	    !in_cidrs(&pod_cidrs_include, pod->id, family, ip)) {
		count(MT_SKIP_NOT_INCLUDED);
		return PASS;
	}
	save(ctx, family, ip, port, MT_ORIG_APP, pod->id);
	learn(pod->id, family, ip, port);
	count(MT_REDIRECTED);
	return TO_PROXY;
}

static __always_inline __u16 port_of(enum verdict v)
{
	return v == TO_PROXY   ? proxy_port :
	       v == TO_INBOUND ? inbound_port :
	       v == TO_ZTUNNEL ? zt_outbound_port :
				 zt_dns_port;
}

SEC("cgroup/connect4")
int mt_connect4(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip4, 0, 0, 0 };
	__u32 src[4] = {};
	struct bpf_sock *sk = ctx->sk;
	enum verdict v;

	if (sk)
		src[0] = sk->src_ip4;
	v = decide(ctx, AF_INET, ip, bpf_ntohs(ctx->user_port), src);
	if (v != PASS && v != TO_INBOUND)
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	if (v != PASS)
		ctx->user_port = bpf_htons(port_of(v));
	return 1;
}

SEC("cgroup/connect6")
int mt_connect6(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u32 src[4] = {};
	struct bpf_sock *sk = ctx->sk;
	enum verdict v;

	if (sk) {
		src[0] = sk->src_ip6[0];
		src[1] = sk->src_ip6[1];
		src[2] = sk->src_ip6[2];
		src[3] = sk->src_ip6[3];
	}
	v = decide(ctx, AF_INET6, ip, bpf_ntohs(ctx->user_port), src);
	if (v != PASS && v != TO_INBOUND) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	if (v != PASS)
		ctx->user_port = bpf_htons(port_of(v));
	return 1;
}

/* Works on the copied pair, not the ctx: clang otherwise emits ctx pointer arithmetic the
 * verifier rejects. */
static __always_inline void pair_of(struct bpf_sock_ops *s, __u32 family, struct mt_pair *p)
{
	p->family = family;
	if (family == AF_INET) {
		p->local_ip[0] = s->local_ip4;
		p->remote_ip[0] = s->remote_ip4;
	} else {
		p->local_ip[0] = s->local_ip6[0];
		p->local_ip[1] = s->local_ip6[1];
		p->local_ip[2] = s->local_ip6[2];
		p->local_ip[3] = s->local_ip6[3];
		p->remote_ip[0] = s->remote_ip6[0];
		p->remote_ip[1] = s->remote_ip6[1];
		p->remote_ip[2] = s->remote_ip6[2];
		p->remote_ip[3] = s->remote_ip6[3];
	}
	p->local_port = s->local_port; /* host order */
	p->remote_port = bpf_ntohl(s->remote_port); /* network order in the upper half */
}

#define EBUSY 16

/* The key of the connection's other end: the same 4-tuple seen from there, same netns and gen. */
static __always_inline void reverse(const struct mt_pair *p, struct mt_pair *r)
{
	*r = *p;
	r->local_ip[0] = p->remote_ip[0];
	r->local_ip[1] = p->remote_ip[1];
	r->local_ip[2] = p->remote_ip[2];
	r->local_ip[3] = p->remote_ip[3];
	r->remote_ip[0] = p->local_ip[0];
	r->remote_ip[1] = p->local_ip[1];
	r->remote_ip[2] = p->local_ip[2];
	r->remote_ip[3] = p->local_ip[3];
	r->local_port = p->remote_port;
	r->remote_port = p->local_port;
}

/* A socket that connects again (connect(AF_UNSPEC), then connect), captured or not: its old entry
 * goes, with the psock and whatever of the old connection it still queues. */
static __always_inline void forget_old(struct bpf_sock_ops *s)
{
	struct bpf_sock *sk = s->sk;
	struct mt_spliced *mine = sk ? bpf_sk_storage_get(&spliced_sk, sk, 0, 0) : NULL;

	if (!mine || !mine->self.family)
		return;
	bpf_map_delete_elem(&sock_pairs, &mine->self);
	mine->self.family = 0;
	mine->peer.family = 0;
	count(MT_SOCKMAP_RECONNECTED);
}

static __always_inline void insert(struct bpf_sock_ops *s, struct mt_pair *p)
{
	struct bpf_sock *sk =
		s->sk; /* read once: the verifier tracks the null check on this copy */
	struct mt_spliced *mine;
	struct mt_gate *g;
	__u32 k = 0;
	long err;

	if (!splice || !sk)
		return;
	g = bpf_map_lookup_elem(&splice_gate, &k);
	if (!g)
		return;
	if (g->reason != MT_GATE_OPEN) {
		count(MT_SOCKMAP_GATED);
		return;
	}
	/* No record, no splice: a psock of meshtune's without one would read as another program's,
	 * and sk_msg would not know the peer. */
	mine = bpf_sk_storage_get(&spliced_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!mine) {
		count(MT_SOCKMAP_INSERT_FAIL);
		return;
	}
	err = bpf_sock_hash_update(s, &sock_pairs, p, BPF_NOEXIST);
	if (err == 0) {
		mine->self = *p;
		reverse(p, &mine->peer);
		count(MT_SOCKMAP_INSERTED);
		return;
	}
	count(MT_SOCKMAP_INSERT_FAIL);
	if (err != -EBUSY)
		return;
	/* Someone else's psock: stop taking sockets from them (see mt_gate). The reason is written
	 * last (in program order; readers only show the age, and only when it is sane). */
	count(MT_SOCKMAP_INSERT_BUSY);
	g->closed_ns = bpf_ktime_get_ns();
	asm volatile("" ::: "memory");
	g->reason = MT_GATE_BUSY;
}

SEC("sockops")
int mt_sockops(struct bpf_sock_ops *s)
{
	struct mt_pair p = {}, conn;
	struct mt_orig *o;
	__u32 op = s->op;
	__u32 family = s->family;

	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		ambient_note_connect(s);
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	pair_of(s, family, &p);
	if (pod_local(family, p.local_ip) || pod_local(family, p.remote_ip))
		p.netns = bpf_get_netns_cookie(s);

	/* The client is ESTABLISHED on the SYN-ACK, before it sends the ACK that makes the accepted
	 * socket ESTABLISHED (RFC 9293 3.5), so the entry below is there when the server side looks.
	 * Accepted sockets run these programs because a child socket inherits the listener's cgroup
	 * (net/core/sock.c sk_clone_lock -> cgroup_sk_clone). */
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		/* A socket we redirected (or marked): hand its destination to the accepting side. */
		__u64 cookie = bpf_get_socket_cookie(s);
		forget_old(s);
		o = bpf_map_lookup_elem(&origdst_by_cookie, &cookie);
		if (!o)
			return 1;
		bpf_map_update_elem(&origdst_by_peer, &p, o, BPF_ANY); /* p.gen is 0 here */
		p.gen = o->gen;
		bpf_map_delete_elem(&origdst_by_cookie, &cookie);
		insert(s, &p);
		return 1;
	}
	reverse(&p, &conn); /* the client's view of this connection */
	o = bpf_map_lookup_elem(&origdst_by_peer, &conn);
	if (!o)
		return 1;
	struct bpf_sock *sk =
		s->sk; /* read once: the verifier tracks the null check on this copy */
	if (sk) {
		struct mt_orig *st =
			bpf_sk_storage_get(&origdst_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st) {
			*st = *o;
			count(MT_ORIGDST_SAVED);
		}
	}
	p.gen = o->gen;
	bpf_map_delete_elem(&origdst_by_peer, &conn);
	insert(s, &p);
	return 1;
}

static __always_inline int same_tuple(struct sk_msg_md *m, const struct mt_pair *k)
{
	if (m->family != k->family || m->local_port != k->local_port ||
	    bpf_ntohl(m->remote_port) != k->remote_port)
		return 0;
	if (m->family == AF_INET)
		return m->local_ip4 == k->local_ip[0] && m->remote_ip4 == k->remote_ip[0];
	return m->local_ip6[0] == k->local_ip[0] && m->local_ip6[1] == k->local_ip[1] &&
	       m->local_ip6[2] == k->local_ip[2] && m->local_ip6[3] == k->local_ip[3] &&
	       m->remote_ip6[0] == k->remote_ip[0] && m->remote_ip6[1] == k->remote_ip[1] &&
	       m->remote_ip6[2] == k->remote_ip[2] && m->remote_ip6[3] == k->remote_ip[3];
}

SEC("sk_msg")
int mt_sk_msg(struct sk_msg_md *m)
{
	struct bpf_sock *sk = m->sk;
	struct mt_spliced *mine;
	struct mt_pair peer;

	/* The peer's key was written when this socket was spliced (insert), for the 4-tuple it had
	 * then: a socket connected elsewhere since (and not seen again at ESTABLISHED) is not spliced. */
	mine = sk ? bpf_sk_storage_get(&spliced_sk, sk, 0, 0) : NULL;
	if (!mine || !mine->peer.family || !same_tuple(m, &mine->self)) {
		count(MT_SOCKMAP_MISS);
		return SK_PASS;
	}
	peer = mine->peer;
	/* On failure the helper leaves the message alone: SK_PASS then takes the normal TCP path. */
	if (bpf_msg_redirect_hash(m, &sock_pairs, &peer, BPF_F_INGRESS) == SK_PASS)
		count(MT_SOCKMAP_REDIRECTED);
	else
		count(MT_SOCKMAP_MISS);
	return SK_PASS;
}

SEC("sk_skb") /* attached as BPF_SK_SKB_VERDICT by the loader */
int mt_skb_verdict(struct __sk_buff *skb)
{
	count(MT_SKB_VERDICT);
	return SK_PASS;
}

/* Runs after the kernel's own getsockopt and may override optval/optlen and reset retval
 * (Documentation/bpf/prog_cgroup_sockopt.rst): sockets we did not redirect keep the kernel's answer. */
SEC("cgroup/getsockopt")
int mt_getsockopt(struct bpf_sockopt *ctx)
{
	struct mt_orig *o;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	if (!ctx->sk)
		return 1;
	o = bpf_sk_storage_get(&origdst_sk, ctx->sk, 0, 0);
	if (!o || o->kind == MT_ORIG_DELIVERY) {
		count(MT_ORIGDST_MISS);
		return 1; /* not ours: the kernel's own answer (conntrack) stands */
	}
	if (ctx->level == SOL_IP && o->dst.family == AF_INET) {
		struct sockaddr_in *sin = ctx->optval;
		if ((void *)(sin + 1) > ctx->optval_end)
			return 1;
		sin->sin_family = AF_INET;
		sin->sin_port = bpf_htons(o->dst.port);
		sin->sin_addr.s_addr = o->dst.ip[0];
		ctx->optlen = sizeof(*sin);
	} else if (ctx->level == SOL_IPV6 && o->dst.family == AF_INET6) {
		struct sockaddr_in6 *sin6 = ctx->optval;
		if ((void *)(sin6 + 1) > ctx->optval_end)
			return 1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = bpf_htons(o->dst.port);
		sin6->sin6_flowinfo = 0;
		sin6->sin6_addr.in6_u.u6_addr32[0] = o->dst.ip[0];
		sin6->sin6_addr.in6_u.u6_addr32[1] = o->dst.ip[1];
		sin6->sin6_addr.in6_u.u6_addr32[2] = o->dst.ip[2];
		sin6->sin6_addr.in6_u.u6_addr32[3] = o->dst.ip[3];
		sin6->sin6_scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	} else {
		return 1;
	}
	ctx->retval = 0;
	count(MT_ORIGDST_ANSWERED);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
