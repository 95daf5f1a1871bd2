// SPDX-License-Identifier: GPL-2.0
/* Test-only: a program of "someone else" on a cgroup meshtune would attach to, shaped like a
 * socket load balancer's connect hook (it lets every connect through unchanged). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("cgroup/connect4")
int other_sock_lb(struct bpf_sock_addr *ctx)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
