// SPDX-License-Identifier: GPL-2.0
/* Test tool: drops LOSS_PCT % of the packets leaving a device (tc clsact egress, direct action),
 * for the diagnose fault-injection test (no netem on the test machines). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef LOSS_PCT
#define LOSS_PCT 20
#endif
#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

SEC("tc")
int netfault_drop(struct __sk_buff *skb)
{
	return bpf_get_prandom_u32() % 100 < LOSS_PCT ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
