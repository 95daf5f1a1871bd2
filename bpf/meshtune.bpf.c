// SPDX-License-Identifier: GPL-2.0
/* meshtune datapath: iptables-free redirection to the sidecar and sockmap splicing.
 *
 *  cgroup/connect4|6  app connect(dst) -> 127.0.0.1|::1:proxy_port; dst saved by socket cookie
 *  sockops            on the app socket's ESTABLISHED: cookie entry -> entry keyed by its
 *                     local endpoint (what the proxy's accepted socket sees as its peer);
 *                     local pairs -> sockhash
 *  cgroup/getsockopt  SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST answered from that entry
 *  sk_msg             sendmsg on a spliced socket -> peer's ingress queue (BPF_F_INGRESS)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "meshtune.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

/* Set by the loader before load. */
const volatile __u16 proxy_port = 15001;
const volatile __u32 proxy_uid = 1337;
const volatile __u8 splice = 1; /* 0: redirect only (no sockhash inserts) */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MT_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* connect() -> original destination, until the socket is established. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct mt_endpoint);
} origdst_by_cookie SEC(".maps");

/* App socket's local endpoint -> original destination (the proxy asks by its peer). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mt_endpoint);
	__type(value, struct mt_endpoint);
} origdst_by_peer SEC(".maps");

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
	__type(value, struct mt_meta);
} meta SEC(".maps");

static __always_inline void count(enum mt_reason r)
{
	__u32 k = r;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
}

/* CIDR keys hold v4 addresses as ::ffff:a.b.c.d so one trie serves both families. */
static __always_inline int excluded(__u32 family, const __u32 ip[4], __u16 port)
{
	struct cidr_key k = { .prefixlen = 128 };
	if (bpf_map_lookup_elem(&excluded_ports, &port)) {
		count(MT_SKIP_EXCLUDED_PORT);
		return 1;
	}
	if (family == AF_INET) {
		k.ip[2] = bpf_htonl(0xffff);
		k.ip[3] = ip[0];
	} else {
		k.ip[0] = ip[0]; k.ip[1] = ip[1]; k.ip[2] = ip[2]; k.ip[3] = ip[3];
	}
	if (bpf_map_lookup_elem(&excluded_cidrs, &k)) {
		count(MT_SKIP_EXCLUDED_CIDR);
		return 1;
	}
	return 0;
}

/* Common checks; returns 1 when the connection should go to the proxy. */
static __always_inline int should_redirect(struct bpf_sock_addr *ctx, __u32 family, const __u32 ip[4], __u16 port)
{
	if (ctx->type != SOCK_STREAM) {
		count(MT_SKIP_NOT_TCP);
		return 0;
	}
	if ((__u32)bpf_get_current_uid_gid() == proxy_uid) {
		count(MT_SKIP_UID);
		return 0;
	}
	if (port == proxy_port) {
		count(MT_SKIP_PROXY_PORT);
		return 0;
	}
	return !excluded(family, ip, port);
}

static __always_inline void save(struct bpf_sock_addr *ctx, __u32 family, const __u32 ip[4], __u16 port)
{
	struct mt_endpoint dst = { .port = port, .family = family };
	__u64 cookie = bpf_get_socket_cookie(ctx);
	dst.ip[0] = ip[0]; dst.ip[1] = ip[1]; dst.ip[2] = ip[2]; dst.ip[3] = ip[3];
	bpf_map_update_elem(&origdst_by_cookie, &cookie, &dst, BPF_ANY);
	count(MT_REDIRECTED);
}

SEC("cgroup/connect4")
int mt_connect4(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip4, 0, 0, 0 };
	__u16 port = bpf_ntohs(ctx->user_port);

	if ((bpf_ntohl(ip[0]) >> 24) == 127) {
		count(MT_SKIP_LOOPBACK);
		return 1;
	}
	if (!should_redirect(ctx, AF_INET, ip, port))
		return 1;
	save(ctx, AF_INET, ip, port);
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(proxy_port);
	return 1;
}

SEC("cgroup/connect6")
int mt_connect6(struct bpf_sock_addr *ctx)
{
	__u32 ip[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs(ctx->user_port);

	if (!ip[0] && !ip[1] && !ip[2] && ip[3] == bpf_htonl(1)) {
		count(MT_SKIP_LOOPBACK);
		return 1;
	}
	if (!should_redirect(ctx, AF_INET6, ip, port))
		return 1;
	save(ctx, AF_INET6, ip, port);
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = 0;
	ctx->user_ip6[3] = bpf_htonl(1);
	ctx->user_port = bpf_htons(proxy_port);
	return 1;
}

/* Both ends on this host: loopback, or the same address (pod IP to itself). Works on the copied
 * pair, not the ctx: clang otherwise emits ctx pointer arithmetic the verifier rejects. */
static __always_inline int is_local_pair(const struct mt_pair *p)
{
	if (p->family == AF_INET)
		return p->local_ip[0] == p->remote_ip[0] ||
		       ((bpf_ntohl(p->remote_ip[0]) >> 24) == 127 && (bpf_ntohl(p->local_ip[0]) >> 24) == 127);
	return p->local_ip[0] == p->remote_ip[0] && p->local_ip[1] == p->remote_ip[1] &&
	       p->local_ip[2] == p->remote_ip[2] && p->local_ip[3] == p->remote_ip[3];
}

static __always_inline void pair_of(struct bpf_sock_ops *s, __u32 family, struct mt_pair *p)
{
	p->family = family;
	if (family == AF_INET) {
		p->local_ip[0] = s->local_ip4;
		p->remote_ip[0] = s->remote_ip4;
	} else {
		p->local_ip[0] = s->local_ip6[0]; p->local_ip[1] = s->local_ip6[1];
		p->local_ip[2] = s->local_ip6[2]; p->local_ip[3] = s->local_ip6[3];
		p->remote_ip[0] = s->remote_ip6[0]; p->remote_ip[1] = s->remote_ip6[1];
		p->remote_ip[2] = s->remote_ip6[2]; p->remote_ip[3] = s->remote_ip6[3];
	}
	p->local_port = s->local_port;              /* host order */
	p->remote_port = bpf_ntohl(s->remote_port); /* network order in the upper half */
}

SEC("sockops")
int mt_sockops(struct bpf_sock_ops *s)
{
	struct mt_pair p = {};
	__u32 op = s->op;
	__u32 family = s->family;

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	pair_of(s, family, &p);

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		/* A redirected app socket: re-key its original destination by its local endpoint. */
		__u64 cookie = bpf_get_socket_cookie(s);
		struct mt_endpoint *dst = bpf_map_lookup_elem(&origdst_by_cookie, &cookie);
		if (dst) {
			struct mt_endpoint self = { .port = p.local_port, .family = p.family };
			self.ip[0] = p.local_ip[0]; self.ip[1] = p.local_ip[1];
			self.ip[2] = p.local_ip[2]; self.ip[3] = p.local_ip[3];
			bpf_map_update_elem(&origdst_by_peer, &self, dst, BPF_ANY);
			bpf_map_delete_elem(&origdst_by_cookie, &cookie);
			count(MT_ORIGDST_SAVED);
		}
	}
	if (splice && is_local_pair(&p)) {
		if (bpf_sock_hash_update(s, &sock_pairs, &p, BPF_NOEXIST) == 0)
			count(MT_SOCKMAP_INSERTED);
		else
			count(MT_SOCKMAP_INSERT_FAIL);
	}
	return 1;
}

SEC("sk_msg")
int mt_sk_msg(struct sk_msg_md *m)
{
	struct mt_pair peer = { .family = m->family };

	if (m->family == AF_INET) {
		peer.local_ip[0] = m->remote_ip4;
		peer.remote_ip[0] = m->local_ip4;
	} else {
		peer.local_ip[0] = m->remote_ip6[0]; peer.local_ip[1] = m->remote_ip6[1];
		peer.local_ip[2] = m->remote_ip6[2]; peer.local_ip[3] = m->remote_ip6[3];
		peer.remote_ip[0] = m->local_ip6[0]; peer.remote_ip[1] = m->local_ip6[1];
		peer.remote_ip[2] = m->local_ip6[2]; peer.remote_ip[3] = m->local_ip6[3];
	}
	peer.local_port = bpf_ntohl(m->remote_port);
	peer.remote_port = m->local_port;
	/* On failure the helper leaves the message alone: SK_PASS then takes the normal TCP path. */
	if (bpf_msg_redirect_hash(m, &sock_pairs, &peer, BPF_F_INGRESS) == SK_PASS)
		count(MT_SOCKMAP_REDIRECTED);
	else
		count(MT_SOCKMAP_MISS);
	return SK_PASS;
}

SEC("cgroup/getsockopt")
int mt_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct mt_endpoint peer = {};
	struct mt_endpoint *dst;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	if (!sk)
		return 1;
	peer.family = sk->family;
	peer.port = bpf_ntohs(sk->dst_port);
	if (sk->family == AF_INET) {
		peer.ip[0] = sk->dst_ip4;
	} else {
		peer.ip[0] = sk->dst_ip6[0]; peer.ip[1] = sk->dst_ip6[1];
		peer.ip[2] = sk->dst_ip6[2]; peer.ip[3] = sk->dst_ip6[3];
	}
	dst = bpf_map_lookup_elem(&origdst_by_peer, &peer);
	if (!dst) {
		count(MT_ORIGDST_MISS);
		return 1;
	}
	if (ctx->level == SOL_IP && dst->family == AF_INET) {
		struct sockaddr_in *sin = ctx->optval;
		if ((void *)(sin + 1) > ctx->optval_end)
			return 1;
		sin->sin_family = AF_INET;
		sin->sin_port = bpf_htons(dst->port);
		sin->sin_addr.s_addr = dst->ip[0];
		ctx->optlen = sizeof(*sin);
	} else if (ctx->level == SOL_IPV6 && dst->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = ctx->optval;
		if ((void *)(sin6 + 1) > ctx->optval_end)
			return 1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = bpf_htons(dst->port);
		sin6->sin6_flowinfo = 0;
		sin6->sin6_addr.in6_u.u6_addr32[0] = dst->ip[0];
		sin6->sin6_addr.in6_u.u6_addr32[1] = dst->ip[1];
		sin6->sin6_addr.in6_u.u6_addr32[2] = dst->ip[2];
		sin6->sin6_addr.in6_u.u6_addr32[3] = dst->ip[3];
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
