/* meshtune-tcpstats: loads the kernel TCP signal probes (tcpstats.bpf.c) next to the datapath,
 * and reads them for the agent.
 *
 *   load --cgroup PATH   attach to the datapath's cgroup; reuses its pinned `pods` map, so only
 *                        meshed pods are counted (the datapath must be loaded first)
 *   unload               detach and unpin (idempotent)
 *   dump                 {"stats":[...], "counters":{...}}: cumulative per (pod, remote)
 *   status               attached or not, the program's run count and run time (with
 *                        kernel.bpf_stats_enabled=1), counters
 * Everything is pinned under TS_PIN_DIR, so it outlives this process like the datapath. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "meshtune.h"
#include "tcpstats.h"
#include "tcpstats.skel.h"
#include "common.h"

static const char *reasons[TS_REASON_MAX] = { "events", "not_meshed", "map_full", "no_storage" };

static void ts_pin(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", TS_PIN_DIR, name);
}

static void unpin_all(void)
{
	const char *names[] = { "link_sockops", "tcp_stats", "ts_counters" };
	char p[PATH_MAX];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ts_pin(p, sizeof(p), names[i]);
		unlink(p);
	}
	rmdir(TS_PIN_DIR);
}

static int cmd_load(const char *cgroup)
{
	char real[PATH_MAX], p[PATH_MAX];
	struct tcpstats_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	int cg = -1, pods = -1, rc = 1;
	if (!cgroup)
		return fail("load needs --cgroup PATH (the datapath's cgroup)");
	if (!realpath(cgroup, real))
		return fail("cgroup %s: %s", cgroup, strerror(errno));
	ts_pin(p, sizeof(p), "link_sockops");
	if (access(p, F_OK) == 0) {
		printf("{\"loaded\":true,\"already\":true}\n");
		return 0;
	}
	int level = cgroup_level(real);
	if (level < 1)
		return fail("refusing cgroup %s: not a child cgroup of a cgroup v2 hierarchy",
			    real);
	snprintf(p, sizeof(p), "%s/pods", MT_PIN_DIR);
	pods = bpf_obj_get(p);
	if (pods < 0)
		return fail("the datapath's pods map %s is missing (%s): load the datapath first",
			    p, strerror(errno));
	if (!getenv("MESHTUNE_BPF_DEBUG"))
		libbpf_set_print(libbpf_silent);
	skel = tcpstats_bpf__open();
	if (!skel) {
		fail("open BPF object: %s", strerror(errno));
		goto out;
	}
	skel->rodata->pod_level = level + 1;
	if (bpf_map__reuse_fd(skel->maps.pods, pods)) {
		fail("reuse the datapath's pods map: %s", strerror(errno));
		goto out;
	}
	if (tcpstats_bpf__load(skel)) {
		fail("load the TCP probes: %s (this kernel may lack sockops RTT/RETRANS/STATE "
		     "callbacks or bpf_skc_to_tcp_sock; MESHTUNE_BPF_DEBUG=1 for the verifier log)",
		     strerror(errno));
		goto out;
	}
	if (ensure_bpffs())
		goto out;
	if (mkdir(TS_PIN_DIR, 0700) && errno != EEXIST) {
		fail("%s: %s", TS_PIN_DIR, strerror(errno));
		goto out;
	}
	cg = open(real, O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		fail("open %s: %s", real, strerror(errno));
		goto out;
	}
	link = bpf_program__attach_cgroup(skel->progs.ts_sockops, cg);
	if (!link) {
		fail("attach sockops to %s: %s", real, strerror(errno));
		goto out;
	}
	ts_pin(p, sizeof(p), "tcp_stats");
	if (bpf_map__pin(skel->maps.tcp_stats, p))
		goto pin_fail;
	ts_pin(p, sizeof(p), "ts_counters");
	if (bpf_map__pin(skel->maps.ts_counters, p))
		goto pin_fail;
	ts_pin(p, sizeof(p), "link_sockops");
	if (bpf_link__pin(link, p))
		goto pin_fail;
	printf("{\"loaded\":true,\"cgroup\":\"%s\",\"podLevel\":%d}\n", real, level + 1);
	rc = 0;
	goto out;
pin_fail:
	fail("pin %s: %s", p, strerror(errno));
	unpin_all();
out:
	if (link)
		bpf_link__destroy(link); /* the pin keeps it attached */
	if (cg >= 0)
		close(cg);
	if (pods >= 0)
		close(pods);
	tcpstats_bpf__destroy(skel);
	return rc;
}

static int open_pinned(const char *name)
{
	char p[PATH_MAX];
	ts_pin(p, sizeof(p), name);
	return bpf_obj_get(p);
}

static void print_counters(void)
{
	int fd = open_pinned("ts_counters");
	int ncpu = libbpf_num_possible_cpus();
	printf("\"counters\":{");
	for (__u32 r = 0; r < TS_REASON_MAX; r++) {
		__u64 vals[ncpu > 0 ? ncpu : 1], sum = 0;
		if (fd >= 0 && ncpu > 0 && bpf_map_lookup_elem(fd, &r, vals) == 0)
			for (int c = 0; c < ncpu; c++)
				sum += vals[c];
		printf("%s\"%s\":%llu", r ? "," : "", reasons[r], (unsigned long long)sum);
	}
	printf("}");
	if (fd >= 0)
		close(fd);
}

static void print_hist(const char *name, const __u64 *h)
{
	printf(",\"%s\":[", name);
	for (int i = 0; i < TS_SLOTS; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)h[i]);
	printf("]");
}

static int cmd_dump(void)
{
	int fd = open_pinned("tcp_stats");
	struct ts_key k, next;
	struct ts_val v;
	int first = 1, more;
	if (fd < 0)
		return fail("TCP probes not loaded (%s/tcp_stats: %s)", TS_PIN_DIR,
			    strerror(errno));
	printf("{\"stats\":[");
	more = bpf_map_get_next_key(fd, NULL, &next) == 0;
	while (more) {
		k = next;
		more = bpf_map_get_next_key(fd, &k, &next) == 0;
		if (bpf_map_lookup_elem(fd, &k, &v))
			continue; /* evicted meanwhile */
		char ip[INET6_ADDRSTRLEN];
		int v4 = !k.ip[0] && !k.ip[1] && k.ip[2] == htonl(0xffff);
		inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (void *)&k.ip[3] : (void *)k.ip, ip,
			  sizeof(ip));
		printf("%s{\"pod\":%u,\"dir\":\"%s\",\"ip\":\"%s\",\"port\":%u,\"rttSamples\":%llu,"
		       "\"rttSumUs\":%llu,\"rttMinUs\":%llu",
		       first ? "" : ",", k.pod, k.dir ? "in" : "out", ip, k.port,
		       (unsigned long long)v.rtt_samples, (unsigned long long)v.rtt_sum_us,
		       (unsigned long long)v.rtt_min_us);
		print_hist("rttHist", v.rtt_hist);
		printf(",\"retrans\":%llu,\"connects\":%llu,\"connectFail\":%llu,\"connectSumUs\":%"
		       "llu,\"accepts\":%llu",
		       (unsigned long long)v.retrans, (unsigned long long)v.connects,
		       (unsigned long long)v.connect_fail, (unsigned long long)v.connect_sum_us,
		       (unsigned long long)v.accepts);
		print_hist("connectHist", v.connect_hist);
		printf("}");
		first = 0;
	}
	printf("],");
	print_counters();
	printf("}\n");
	close(fd);
	return 0;
}

static int cmd_status(void)
{
	int fd = open_pinned("link_sockops");
	struct bpf_link_info li = {};
	struct bpf_prog_info pi = {};
	__u32 n = sizeof(li), m = sizeof(pi);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &li, &n)) {
		printf("{\"loaded\":false,");
		print_counters();
		printf("}\n");
		if (fd >= 0)
			close(fd);
		return 0;
	}
	int pfd = bpf_prog_get_fd_by_id(li.prog_id);
	if (pfd >= 0)
		bpf_obj_get_info_by_fd(pfd, &pi, &m);
	/* run_cnt / run_time_ns count only while kernel.bpf_stats_enabled=1 (kernel/bpf/syscall.c) */
	printf("{\"loaded\":true,\"progId\":%u,\"cgroupId\":%llu,\"runCount\":%llu,\"runTimeNs\":%"
	       "llu,",
	       li.prog_id, (unsigned long long)li.cgroup.cgroup_id, (unsigned long long)pi.run_cnt,
	       (unsigned long long)pi.run_time_ns);
	print_counters();
	printf("}\n");
	if (pfd >= 0)
		close(pfd);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static struct option opts[] = { { "cgroup", required_argument, 0, 'c' }, { 0, 0, 0, 0 } };
	const char *cgroup = NULL;
	int c;
	fail_prefix = "meshtune-tcpstats";
	if (argc < 2) {
		fprintf(stderr,
			"usage: meshtune-tcpstats load --cgroup PATH | unload | dump | status\n");
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			cgroup = optarg;
		else
			return 2;
	}
	if (geteuid() != 0)
		return fail("must run as root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)");
	if (!strcmp(argv[1], "load"))
		return cmd_load(cgroup);
	if (!strcmp(argv[1], "unload")) {
		unpin_all();
		printf("{\"loaded\":false}\n");
		return 0;
	}
	if (!strcmp(argv[1], "dump"))
		return cmd_dump();
	if (!strcmp(argv[1], "status"))
		return cmd_status();
	fprintf(stderr, "usage: meshtune-tcpstats load --cgroup PATH | unload | dump | status\n");
	return 2;
}
