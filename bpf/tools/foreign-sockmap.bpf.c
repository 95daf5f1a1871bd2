// SPDX-License-Identifier: GPL-2.0
/* Test-only: another sockmap user on the node, shaped like an sk_msg instrumentation (it lets
 * every message through unchanged), attached to its own sockhash; its sock_ops, attached to a pod's
 * own cgroup, puts that pod's TCP sockets in the sockhash when they are established (as Cilium's
 * socket-level redirects and sk_msg tracers do). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} other_socks SEC(".maps");

SEC("sk_msg")
int other_sk_msg(struct sk_msg_md *m)
{
	return SK_PASS;
}

SEC("sockops")
int other_sockops(struct bpf_sock_ops *s)
{
	__u32 key = s->local_port;
	if (s->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
	    s->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		bpf_sock_hash_update(s, &other_socks, &key, BPF_ANY);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
