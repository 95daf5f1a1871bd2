/* Helpers the meshtune loaders share (datapath loader.c and its pods protocol pods.c, kernel
 * probes tcpstats.c): errors, pin paths, CIDR parsing, the datapath's reason counters. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "meshtune.h"
#include "common.h"

const char *fail_prefix = "meshtune-bpf";

int fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", fail_prefix);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int libbpf_silent(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l;
	(void)f;
	(void)a;
	return 0;
}

/* cgroup v2 level of a directory: its distance from the hierarchy root (which has no cgroup.events). */
int cgroup_level(const char *path)
{
	char p[PATH_MAX], f[PATH_MAX + 16];
	int level = 0;
	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		snprintf(f, sizeof(f), "%s/cgroup.events", p);
		if (access(f, F_OK) != 0)
			return level;
		char *slash = strrchr(p, '/');
		if (!slash || slash == p)
			return -1;
		*slash = 0;
		level++;
	}
}

/* Pins need a bpffs at /sys/fs/bpf; mount one when the node has none (as Cilium does). */
int ensure_bpffs(void)
{
	struct statfs fs;
	if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
		return fail("/sys/fs/bpf is not a bpffs and mounting one failed: %s",
			    strerror(errno));
	return 0;
}

/* Datapath drop/redirect reasons, by their meshtune.h number (append-only). */
static const char *reason_names[MT_REASON_MAX] = {
	"redirected",
	"skipped_uid",
	"skipped_loopback",
	"skipped_excluded_port",
	"skipped_excluded_cidr",
	"skipped_proxy_port",
	"skipped_not_tcp",
	"origdst_saved",
	"origdst_answered",
	"origdst_miss",
	"sockmap_inserted",
	"sockmap_insert_failed",
	"sockmap_redirected",
	"sockmap_miss",
	"skipped_not_meshed",
	"skipped_not_included",
	"redirected_inbound",
	"skipped_inbound_excluded",
	"inbound_delivery",
	"l4_edge_failed",
	"skb_verdict",
	"ambient_redirected",
	"ambient_skipped_mark",
	"ambient_skipped_local",
	"ambient_skipped_probe",
	"ambient_dns",
	"ambient_dns_reply",
	"ambient_inbound",
	"ambient_inbound_passed",
	"ambient_no_ztunnel",
	"sockmap_insert_busy",
	"sockmap_gated",
	"sockmap_reconnected",
};
_Static_assert(sizeof(reason_names) / sizeof(reason_names[0]) == MT_REASON_MAX,
	       "a name per reason");

void pin_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", MT_PIN_DIR, name);
}

/* "A.B.C.D[/N]" or "v6[/N]" as the BPF side keys it (v4 mapped into v6); -1 when malformed. */
int parse_cidr(const char *s, __u32 ip[4], __u32 *plen)
{
	char a[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	int bits;
	if (n >= sizeof(a))
		return -1;
	memcpy(a, s, n);
	a[n] = 0;
	memset(ip, 0, 16);
	if (inet_pton(AF_INET, a, &ip[3]) == 1) {
		ip[2] = htonl(0xffff); /* v4-mapped, as the BPF side looks it up */
		bits = slash ? atoi(slash + 1) : 32;
		if (bits < 0 || bits > 32)
			return -1;
		*plen = 96 + bits;
		return 0;
	}
	if (inet_pton(AF_INET6, a, ip) == 1) {
		bits = slash ? atoi(slash + 1) : 128;
		if (bits < 0 || bits > 128)
			return -1;
		*plen = bits;
		return 0;
	}
	return -1;
}

/* The per-reason counters as one JSON object on stdout (summed over CPUs). */
void print_datapath_counters(void)
{
	char p[256];
	pin_path(p, sizeof(p), "counters");
	int cfd = bpf_obj_get(p);
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals = calloc(ncpu > 0 ? ncpu : 1, sizeof(__u64));
	printf("{");
	for (__u32 r = 0; r < MT_REASON_MAX; r++) {
		__u64 sum = 0;
		if (cfd >= 0 && vals && bpf_map_lookup_elem(cfd, &r, vals) == 0)
			for (int c = 0; c < ncpu; c++)
				sum += vals[c];
		printf("%s\"%s\":%llu", r ? "," : "", reason_names[r], (unsigned long long)sum);
	}
	printf("}");
	free(vals);
	if (cfd >= 0)
		close(cfd);
}

static __u64 monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (__u64)t.tv_sec * 1000000000ull + (__u64)t.tv_nsec;
}

static int gate_fd(void)
{
	char p[256];
	pin_path(p, sizeof(p), "splice_gate");
	return bpf_obj_get(p);
}

/* Give the gate `reason` (closing it records when); with only_if_open a closed gate keeps the
 * reason it was closed for. */
static int gate_set(int fd, __u32 reason, int only_if_open)
{
	struct mt_gate g = {};
	__u32 k = 0;
	if (only_if_open) {
		int r = bpf_map_lookup_elem(fd, &k, &g);
		if (r || g.reason != MT_GATE_OPEN)
			return r;
	}
	g = (struct mt_gate){ .reason = reason,
			      .closed_ns = reason == MT_GATE_OPEN ? 0 : monotonic_ns() };
	return bpf_map_update_elem(fd, &k, &g, BPF_ANY);
}

int splice_gate_json(int set)
{
	struct mt_gate g = {};
	__u32 k = 0;
	int fd = gate_fd(), r = 0;

	if (fd < 0)
		return -1;
	if (set >= 0)
		r = gate_set(fd, (__u32)set, 0);
	/* What the gate holds now, not what was written: the datapath may have closed it since. */
	if (!r)
		r = bpf_map_lookup_elem(fd, &k, &g);
	close(fd);
	if (r)
		return -1;
	if (g.reason == MT_GATE_OPEN) {
		printf("{\"open\":true}");
		return 0;
	}
	printf("{\"open\":false,\"reason\":\"%s\"",
	       g.reason == MT_GATE_BUSY ?
		       "another program holds the psock of a socket meshtune would splice (EBUSY): "
		       "splicing stopped so as not to take its sockets; capture goes on" :
	       g.reason == MT_GATE_FOREIGN ? "another program was attached where meshtune "
					     "attaches, or to a sockmap, after "
					     "load (the agent's recheck; its log names it): "
					     "splicing stopped; capture goes "
					     "on" :
					     "closed by meshtune-bpf splice-gate close");
	__u64 now = monotonic_ns();
	if (g.closed_ns && g.closed_ns <= now)
		printf(",\"closedSecondsAgo\":%llu",
		       (unsigned long long)((now - g.closed_ns) / 1000000000ull));
	printf("}");
	return 0;
}

int read_meta(struct mt_meta *m)
{
	char p[256];
	__u32 k = 0;
	pin_path(p, sizeof(p), "meta");
	int fd = bpf_obj_get(p);
	if (fd < 0)
		return -1;
	int r = bpf_map_lookup_elem(fd, &k, m);
	close(fd);
	return r;
}

int splice_gate_close(__u32 reason)
{
	int fd = gate_fd(), r;
	if (fd < 0)
		return -1;
	r = gate_set(fd, reason, 1);
	close(fd);
	return r;
}
