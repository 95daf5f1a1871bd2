// SPDX-License-Identifier: GPL-2.0
/* Test-only: another sockmap user on the node, shaped like an sk_msg instrumentation (it lets
 * every message through unchanged), attached to its own sockhash. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} other_socks SEC(".maps");

SEC("sk_msg")
int other_sk_msg(struct sk_msg_md *m)
{
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
