// SPDX-License-Identifier: GPL-2.0
/* meshtune kernel TCP signals: per (pod, remote) smoothed RTT and its minimum, retransmits,
 * connect latency and failures, aggregated in BPF for the agent to ship (diagnose).
 *
 * One sockops program on the node's kubepods cgroup (a cgroup bpf link, so it runs next to the
 * datapath's own sockops: kernel/bpf/cgroup.c attaches links with BPF_F_ALLOW_MULTI). sockops only
 * runs for sockets of that subtree, and only pods in the datapath's `pods` map (reused, pinned)
 * are counted, so the cost falls on meshed pods' sockets alone.
 *
 * Callbacks (include/uapi/linux/bpf.h enum BPF_SOCK_OPS_*; net/ipv4/tcp_*.c call sites):
 *   TCP_CONNECT_CB           active open starts (tcp_connect): remember the time, enable callbacks
 *   ACTIVE_ESTABLISHED_CB    connect latency
 *   PASSIVE_ESTABLISHED_CB   an accepted connection: enable callbacks
 *   RTT_CB                   every RTT sample (tcp_ack_update_rtt -> tcp_bpf_rtt): srtt_us >> 3
 *   RETRANS_CB               a retransmitted segment (tcp_retransmit_skb)
 *   STATE_CB                 SYN_SENT -> CLOSE: a failed connect (refused, timed out)
 * RTT/RETRANS/STATE callbacks only fire once enabled per socket with bpf_sock_ops_cb_flags_set.
 *
 * The socket's pod: its cgroup (sk->sk_cgrp_data, set at creation and inherited by accepted
 * sockets, net/core/sock.c) and that cgroup's ancestors from pod_level down, through CO-RE
 * reads; resolved once per socket and kept in sk_storage.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "meshtune.h"
#include "tcpstats.h"

#define AF_INET	      2
#define AF_INET6      10
#define TCP_SYN_SENT_ 2
#define TCP_CLOSE_    7

const volatile __u32 pod_level =
	1; /* level of pod cgroups' shallowest candidate (attach level + 1) */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct mt_pod);
} pods SEC(".maps"); /* the datapath's map, reused by the loader (bpf_map__reuse_fd) */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ts_key);
	__type(value, struct ts_val);
} tcp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ts_counters SEC(".maps");

struct ts_sock {
	__u32 pod; /* 0: not resolved yet */
	__u32 state; /* 1 meshed, 2 not meshed */
	__u64 connect_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ts_sock);
} ts_sk SEC(".maps");

static __always_inline void count(enum ts_reason r)
{
	__u32 k = r;
	__u64 *v = bpf_map_lookup_elem(&ts_counters, &k);
	if (v)
		*v += 1;
}

static __always_inline __u32 slot_of(__u64 us)
{
	__u32 s = 0;
	/* bounded loop: the verifier sees at most TS_SLOTS - 1 iterations */
	for (int i = 0; i < TS_SLOTS - 1; i++) {
		if (!us)
			break;
		us >>= 1;
		s++;
	}
	return s;
}

/* The pod id of the socket's cgroup or its ancestors, 0 when it is no listed pod's.
 * bpf_skc_to_tcp_sock is open to sockops programs: net/core/filter.c sock_ops_func_proto falls
 * back to bpf_sk_base_func_proto, which serves the skc_to_* casts (BTF pointers, CO-RE reads). */
static __always_inline __u32 pod_of(struct bpf_sock *bsk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(bsk);
	struct cgroup *cg;
	int level;
	if (!tp)
		return 0;
	cg = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup);
	if (!cg)
		return 0;
	level = BPF_CORE_READ(cg, level);
	for (int i = 0; i < MT_POD_LEVELS; i++) {
		int l = pod_level + i;
		struct cgroup *a;
		__u64 id;
		struct mt_pod *p;
		if (l > level || l < 0 || l > 63)
			return 0;
		a = BPF_CORE_READ(cg, ancestors[l]);
		if (!a)
			return 0;
		id = BPF_CORE_READ(a, kn, id);
		p = bpf_map_lookup_elem(&pods, &id);
		if (p)
			return p->id;
	}
	return 0;
}

/* The remote end of the socket, IPv4 as ::ffff:a.b.c.d. Every address field is loaded
 * unconditionally and selected afterwards: with a load per branch clang folds them into one load
 * through a computed ctx pointer, which the verifier refuses ("dereference of modified ctx ptr");
 * barrier_var pins each load to its own constant offset. */
struct ts_peer {
	__u32 ip[4];
	__u16 remote_port;
	__u16 local_port;
};

static __always_inline void peer_of(struct bpf_sock_ops *s, __u32 family, struct ts_peer *p)
{
	__u32 v4 = s->remote_ip4;
	__u32 a = s->remote_ip6[0], b = s->remote_ip6[1], c = s->remote_ip6[2],
	      d = s->remote_ip6[3];
	int is4 = family == AF_INET;
	barrier_var(v4);
	barrier_var(a);
	barrier_var(b);
	barrier_var(c);
	barrier_var(d);
	p->ip[0] = is4 ? 0 : a;
	p->ip[1] = is4 ? 0 : b;
	p->ip[2] = is4 ? bpf_htonl(0xffff) : c;
	p->ip[3] = is4 ? v4 : d;
	p->local_port = s->local_port;
	p->remote_port = bpf_ntohl(s->remote_port);
}

static __always_inline void key_of(const struct ts_peer *p, __u32 pod, int inbound,
				   struct ts_key *k)
{
	k->pod = pod;
	k->dir = inbound;
	k->port = inbound ? p->local_port : p->remote_port;
	k->ip[0] = p->ip[0];
	k->ip[1] = p->ip[1];
	k->ip[2] = p->ip[2];
	k->ip[3] = p->ip[3];
}

/* Loopback and Istio's 127.0.0.6/::6 hops are inside the pod: no network to measure. */
static __always_inline int local_hop(const struct ts_peer *p)
{
	if (p->ip[2] == bpf_htonl(0xffff) && !p->ip[0] && !p->ip[1])
		return (bpf_ntohl(p->ip[3]) >> 24) == 127;
	return !p->ip[0] && !p->ip[1] && !p->ip[2] &&
	       (p->ip[3] == bpf_htonl(1) || p->ip[3] == bpf_htonl(6));
}

/* A zeroed value for new entries: 456 bytes do not fit the 512-byte stack next to the rest. */
const volatile struct ts_val ts_zero = {};

static __always_inline struct ts_val *stats(struct ts_key *k)
{
	struct ts_val *v = bpf_map_lookup_elem(&tcp_stats, k);
	if (v)
		return v;
	if (bpf_map_update_elem(&tcp_stats, k, (const void *)&ts_zero, BPF_NOEXIST) &&
	    bpf_map_lookup_elem(&tcp_stats, k) == NULL) {
		count(TS_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&tcp_stats, k);
}

SEC("sockops")
int ts_sockops(struct bpf_sock_ops *s)
{
	__u32 op = s->op;
	struct bpf_sock *sk;
	struct ts_sock *st;
	struct ts_key k = {};
	struct ts_peer peer = {};
	struct ts_val *v;
	__u32 family = s->family;
	int inbound;

	if (family != AF_INET && family != AF_INET6)
		return 1;
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_RTT_CB &&
	    op != BPF_SOCK_OPS_RETRANS_CB && op != BPF_SOCK_OPS_STATE_CB)
		return 1;
	count(TS_EVENTS);
	peer_of(s, family, &peer);
	if (local_hop(&peer))
		return 1;
	sk = s->sk;
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&ts_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(TS_NO_STORAGE);
		return 1;
	}
	if (!st->state) {
		st->pod = pod_of(sk);
		st->state = st->pod ? 1 : 2;
	}
	if (st->state != 1) {
		if (op == BPF_SOCK_OPS_TCP_CONNECT_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
			count(TS_NOT_MESHED);
		return 1;
	}
	inbound = op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB ||
		  (op != BPF_SOCK_OPS_TCP_CONNECT_CB && !st->connect_ns);
	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		st->connect_ns = bpf_ktime_get_ns();
		/* OR'd with what is set: another sock_ops on the cgroup may have set its own. */
		bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG |
						     BPF_SOCK_OPS_RETRANS_CB_FLAG |
						     BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG |
						     BPF_SOCK_OPS_RETRANS_CB_FLAG);
		key_of(&peer, st->pod, 1, &k);
		v = stats(&k);
		if (v)
			__sync_fetch_and_add(&v->accepts, 1);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0] old state, args[1] new state (tcp_set_state) */
		if (s->args[0] != TCP_SYN_SENT_ || s->args[1] != TCP_CLOSE_)
			return 1;
		key_of(&peer, st->pod, 0, &k);
		v = stats(&k);
		if (v)
			__sync_fetch_and_add(&v->connect_fail, 1);
		return 1;
	}
	key_of(&peer, st->pod, inbound, &k);
	v = stats(&k);
	if (!v)
		return 1;
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__u64 us = (bpf_ktime_get_ns() - st->connect_ns) / 1000;
		__sync_fetch_and_add(&v->connects, 1);
		__sync_fetch_and_add(&v->connect_sum_us, us);
		__u32 i = slot_of(us);
		if (i < TS_SLOTS)
			__sync_fetch_and_add(&v->connect_hist[i], 1);
	} else if (op == BPF_SOCK_OPS_RTT_CB) {
		__u64 us = s->srtt_us >>
			   3; /* tcp_sock.srtt_us is the smoothed RTT << 3 (include/linux/tcp.h) */
		__sync_fetch_and_add(&v->rtt_samples, 1);
		__sync_fetch_and_add(&v->rtt_sum_us, us);
		if (!v->rtt_min_us || us < v->rtt_min_us)
			v->rtt_min_us =
				us; /* racy min: a lost update only keeps a slightly larger minimum */
		__u32 i = slot_of(us);
		if (i < TS_SLOTS)
			__sync_fetch_and_add(&v->rtt_hist[i], 1);
	} else if (op == BPF_SOCK_OPS_RETRANS_CB) {
		__sync_fetch_and_add(&v->retrans, 1);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
