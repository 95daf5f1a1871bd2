/* Node feature probe (probe.c): which BPF program types, attach types, maps and helpers the
 * datapath and the TCP probes need, each tested by loading a tiny program or map. */
#ifndef MESHTUNE_PROBE_H
#define MESHTUNE_PROBE_H

#define PROBE_MAX_CHECKS 48

struct probe_check {
	const char *group; /* "datapath" | "tcpstats" | "ambient" | "splice" | "node" */
	const char *feature; /* e.g. "attach:cgroup/connect6", "helper:sk_msg/msg_redirect_hash" */
	int ok;
	char detail[160];
};

struct probe_result {
	char release[128];
	int wakeup_hazard;
	int n;
	struct probe_check checks[PROBE_MAX_CHECKS];
};

/* Kernels carrying 929e30f93125 lose sockmap receive wakeups without a verdict program. */
int wakeup_hazard(const char *release);
const char *splice_hazard(const char *release);
/* Sockmap programs (sk_msg, sk_skb) of others on this node into `out` ("sk_msg NAME (id N), ..."):
 * 1 when there are some, 0 when none, -1 when the node's programs cannot be listed (`out` says why). */
int foreign_sockmap_users(char *out, size_t n);
/* After load: programs of others that can own a psock, now attached on `cgroup` (or its
 * ancestors: sock_ops) or to the node's sockmaps; 1 and `out` names them, else 0 (what cannot be listed counts as none: the kernel's
 * EBUSY still closes the splice gate). */
int foreign_recheck(const char *cgroup, char *out, size_t n);
/* Run every check; `release` overrides uname for the hazard range (recorded fixtures). */
void probe_run(const char *cgroup, const char *release, struct probe_result *r);
/* The first failed check of `group` (a "node" check fails every group), or NULL. */
const struct probe_check *probe_first_failure(const struct probe_result *r, const char *group);
void probe_print_json(const struct probe_result *r);

#endif
