// SPDX-License-Identifier: GPL-2.0
/* meshtune-bpf: load | unload | status | probe | pods for the meshtune datapath.
 * Programs attach to one cgroup v2 (the node's kubepods cgroup, never the root) through bpf links
 * pinned under MT_PIN_DIR, so they outlive this process and `unload` detaches exactly what `load`
 * attached. `pods` is the agent's line protocol over the pinned maps (pods_cmd.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "meshtune.h"
#include "meshtune.skel.h"
#include "pods.h"
#include "common.h"
#include "tcpstats.h"
#include "probe.h"

/* Pinned links, in attach order; the sk_msg verdict is held by the sockhash itself. */
static const char *link_names[] = { "link_connect4", "link_connect6", "link_getsockopt",
				    "link_sockops",  "link_sendmsg4", "link_sendmsg6",
				    "link_recvmsg4", "link_recvmsg6" };
static const char *map_names[] = { "counters",
				   "meta",
				   "sock_pairs",
				   "origdst_by_cookie",
				   "origdst_by_peer",
				   "origdst_sk",
				   "excluded_ports",
				   "excluded_cidrs",
				   "pods",
				   "pod_ips",
				   "pod_ports",
				   "pod_cidrs_exclude",
				   "pod_cidrs_include",
				   "l4_edges",
				   "ztunnel_inbound",
				   "ztunnel_hbone",
				   "zt_delivery",
				   "ambient_netns",
				   "node_ips",
				   "dns_orig",
				   "splice_gate",
				   "spliced_sk" };
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* One-line refusal on nodes that cannot run the datapath (the first failed check); 0 when
 * everything is there. */
static int probe(const char *cgroup)
{
	static struct probe_result r;
	probe_run(cgroup, NULL, &r);
	const struct probe_check *f = probe_first_failure(&r, "datapath");
	if (!f)
		return 0;
	return f->detail[0] ? fail("%s", f->detail) :
			      fail("unsupported kernel: %s not available", f->feature);
}

static void unpin_all(void)
{
	char p[256];
	/* The TCP probes (tcpstats.c) hang off this datapath's pods map: they go with it. */
	const char *probe_pins[] = { "link_sockops", "tcp_stats", "ts_counters" };
	for (size_t i = 0; i < N(probe_pins); i++) {
		snprintf(p, sizeof(p), "%s/%s", TS_PIN_DIR, probe_pins[i]);
		unlink(p);
	}
	rmdir(TS_PIN_DIR);
	for (size_t i = 0; i < N(link_names); i++) {
		pin_path(p, sizeof(p), link_names[i]);
		int fd = bpf_obj_get(p);
		if (fd >= 0) {
			bpf_link_detach(fd);
			close(fd);
		}
		unlink(p);
	}
	for (size_t i = 0; i < N(map_names); i++) {
		pin_path(p, sizeof(p), map_names[i]);
		unlink(p);
	}
	pin_path(p, sizeof(p), "prog_sk_msg");
	unlink(p);
	ambient_unpin_all(); /* every pod's sk_lookup link, then the program */
	pin_path(p, sizeof(p), "prog_ambient_lookup");
	unlink(p);
	rmdir(MT_PIN_DIR);
}

struct load_opts {
	const char *cgroup;
	const char *release; /* probe: judge this release instead of uname's (recorded fixtures) */
	int proxy_port, inbound_port, proxy_uid, no_splice;
	int skb_verdict; /* -1 auto (probe), 0 off, 1 on */
	int n_ports, n_cidrs;
	int ports[64];
	const char *cidrs[64];
};

static int cmd_load(struct load_opts *o)
{
	struct meshtune_bpf *skel = NULL;
	struct bpf_link *links[N(link_names)] = {};
	struct mt_meta meta = {};
	char real[PATH_MAX], p[256];
	_Static_assert(MT_MAX_CGROUP_PATH == 256, "meta.cgroup size");
	int cg = -1, err = 1;

	if (!o->cgroup)
		return fail("load needs --cgroup PATH");
	if (!realpath(o->cgroup, real))
		return fail("cgroup %s: %s", o->cgroup, strerror(errno));
	if (probe(real))
		return 1;
	if (read_meta(&meta) == 0) {
		if (strcmp(meta.cgroup, real) == 0) {
			printf("{\"loaded\":true,\"already\":true,\"cgroup\":\"%s\",\"splice\":%s}"
			       "\n",
			       real, meta.splice ? "true" : "false");
			return 0; /* idempotent */
		}
		return fail("already loaded on cgroup %s; unload first", meta.cgroup);
	}
	if (!getenv("MESHTUNE_BPF_DEBUG"))
		libbpf_set_print(libbpf_silent);
	skel = meshtune_bpf__open();
	if (!skel) {
		fail("open BPF object: %s", strerror(errno));
		goto out;
	}
	struct utsname u = {};
	uname(&u);
	int verdict = o->skb_verdict < 0 ? wakeup_hazard(u.release) : o->skb_verdict;
	const char *no_splice_why = splice_hazard(u.release);
	static char others[192];
	char f[160];
	if (!no_splice_why && foreign_sockmap_users(f, sizeof(f)) > 0) {
		snprintf(others, sizeof(others), "another sockmap user on this node: %s", f);
		no_splice_why = others;
	}
	if (no_splice_why)
		o->no_splice =
			1; /* capture only: known sockmap defects, or sockets someone else splices */
	int level = cgroup_level(real);
	if (level < 1) {
		fail("cgroup %s: cannot tell its level in the hierarchy", real);
		goto out;
	}
	skel->rodata->proxy_port = o->proxy_port;
	skel->rodata->inbound_port = o->inbound_port;
	skel->rodata->proxy_uid = o->proxy_uid;
	skel->rodata->pod_level = level + 1;
	skel->rodata->splice = !o->no_splice;
	if (!verdict)
		bpf_program__set_autoload(skel->progs.mt_skb_verdict, false);
	/* Ambient capture only where every hook it needs exists; elsewhere istio-cni keeps it. */
	static struct probe_result pr;
	probe_run(real, NULL, &pr);
	const struct probe_check *no_ambient = probe_first_failure(&pr, "ambient");
	struct bpf_program *ambient_progs[] = { skel->progs.mt_sendmsg4, skel->progs.mt_sendmsg6,
						skel->progs.mt_recvmsg4, skel->progs.mt_recvmsg6,
						skel->progs.mt_ambient_lookup };
	if (no_ambient)
		for (size_t i = 0; i < N(ambient_progs); i++)
			bpf_program__set_autoload(ambient_progs[i], false);
	if (meshtune_bpf__load(skel)) {
		fail("load BPF programs: %s (set MESHTUNE_BPF_DEBUG=1 for the verifier log)",
		     strerror(errno));
		goto out;
	}
	for (int i = 0; i < o->n_ports; i++) {
		__u16 port = o->ports[i];
		__u8 one = 1;
		bpf_map__update_elem(skel->maps.excluded_ports, &port, sizeof(port), &one, 1,
				     BPF_ANY);
	}
	for (int i = 0; i < o->n_cidrs; i++) {
		struct {
			__u32 plen;
			__u32 ip[4];
		} k;
		__u8 one = 1;
		if (parse_cidr(o->cidrs[i], k.ip, &k.plen)) {
			fail("--exclude-cidr %s: not an IPv4/IPv6 CIDR", o->cidrs[i]);
			goto out;
		}
		bpf_map__update_elem(skel->maps.excluded_cidrs, &k, sizeof(k), &one, 1, BPF_ANY);
	}
	snprintf(meta.cgroup, sizeof(meta.cgroup), "%s", real);
	meta.proxy_port = o->proxy_port;
	meta.proxy_uid = o->proxy_uid;
	meta.inbound_port = o->inbound_port;
	meta.skb_verdict = verdict && !o->no_splice;
	meta.ambient = !no_ambient;
	meta.splice = !o->no_splice;
	__u32 zero = 0;
	bpf_map__update_elem(skel->maps.meta, &zero, sizeof(zero), &meta, sizeof(meta), BPF_ANY);

	if (ensure_bpffs())
		goto out;
	if (mkdir(MT_PIN_DIR, 0700) && errno != EEXIST) {
		fail("%s: %s (is bpffs mounted at /sys/fs/bpf?)", MT_PIN_DIR, strerror(errno));
		goto out;
	}
	cg = open(real, O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		fail("cgroup %s: %s", real, strerror(errno));
		goto out;
	}
	/* The splice verdict hangs off the sockhash; attach it before sockops fills the map. */
	if (bpf_prog_attach(bpf_program__fd(skel->progs.mt_sk_msg),
			    bpf_map__fd(skel->maps.sock_pairs), BPF_SK_MSG_VERDICT, 0)) {
		fail("attach sk_msg to sockhash: %s", strerror(errno));
		goto out;
	}
	if (meta.skb_verdict &&
	    bpf_prog_attach(bpf_program__fd(skel->progs.mt_skb_verdict),
			    bpf_map__fd(skel->maps.sock_pairs), BPF_SK_SKB_VERDICT, 0)) {
		fail("attach sk_skb verdict to sockhash: %s", strerror(errno));
		goto out;
	}
	struct bpf_program *progs[N(link_names)] = {
		skel->progs.mt_connect4, skel->progs.mt_connect6, skel->progs.mt_getsockopt,
		skel->progs.mt_sockops,	 skel->progs.mt_sendmsg4, skel->progs.mt_sendmsg6,
		skel->progs.mt_recvmsg4, skel->progs.mt_recvmsg6,
	};
	for (size_t i = 0; i < N(link_names); i++) {
		if (!bpf_program__autoload(progs[i]))
			continue;
		links[i] = bpf_program__attach_cgroup(progs[i], cg);
		if (!links[i]) {
			fail("attach %s to %s: %s", bpf_program__name(progs[i]), real,
			     strerror(errno));
			goto out;
		}
		pin_path(p, sizeof(p), link_names[i]);
		if (bpf_link__pin(links[i], p)) {
			fail("pin %s: %s", p, strerror(errno));
			goto out;
		}
	}
	/* Ambient pods' netns get their own link to this program (`pods ambient`). */
	pin_path(p, sizeof(p), "prog_ambient_lookup");
	if (meta.ambient && bpf_program__pin(skel->progs.mt_ambient_lookup, p)) {
		fail("pin %s: %s", p, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < N(map_names); i++) {
		pin_path(p, sizeof(p), map_names[i]);
		if (bpf_map__pin(bpf_object__find_map_by_name(skel->obj, map_names[i]), p)) {
			fail("pin %s: %s", p, strerror(errno));
			goto out;
		}
	}
	printf("{\"loaded\":true,\"already\":false,\"cgroup\":\"%s\",\"proxyPort\":%d,"
	       "\"inboundPort\":%d,\"proxyUid\":%d,\"podLevel\":%d,\"skbVerdict\":%s,"
	       "\"ambient\":%s,\"splice\":%s,\"spliceOff\":\"%s\"}\n",
	       real, o->proxy_port, o->inbound_port, o->proxy_uid, level + 1,
	       meta.skb_verdict ? "true" : "false", meta.ambient ? "true" : "false",
	       o->no_splice ? "false" : "true",
	       no_splice_why ? no_splice_why : (o->no_splice ? "--no-splice" : ""));
	err = 0;
out:
	/* One cleanup path: on failure undo every pin; on success the pins keep everything alive. */
	for (size_t i = 0; i < N(link_names); i++)
		if (links[i])
			bpf_link__destroy(links[i]);
	if (err && skel)
		unpin_all();
	if (cg >= 0)
		close(cg);
	meshtune_bpf__destroy(skel);
	return err;
}

static int cmd_unload(void)
{
	struct stat st;
	if (stat(MT_PIN_DIR, &st) != 0) {
		printf("{\"loaded\":false}\n");
		return 0;
	}
	unpin_all();
	if (stat(MT_PIN_DIR, &st) == 0)
		return fail("%s still exists after unload (unknown pins?)", MT_PIN_DIR);
	printf("{\"loaded\":false,\"unloaded\":true}\n");
	return 0;
}

/* {"reason":sum over CPUs,...} */

static int cmd_status(void)
{
	struct mt_meta meta = {};
	char p[256];
	if (read_meta(&meta)) {
		printf("{\"loaded\":false}\n");
		return 0;
	}
	printf("{\"loaded\":true,\"cgroup\":\"%s\",\"proxyPort\":%u,\"inboundPort\":%u,"
	       "\"proxyUid\":%u,\"skbVerdict\":%s,\"ambient\":%s,\"pods\":%d,\"programs\":[",
	       meta.cgroup, meta.proxy_port, meta.inbound_port, meta.proxy_uid,
	       meta.skb_verdict ? "true" : "false", meta.ambient ? "true" : "false", count_pods());
	for (size_t i = 0; i < N(link_names); i++) {
		struct bpf_link_info li = {};
		struct bpf_prog_info pi = {};
		__u32 ll = sizeof(li), pl = sizeof(pi);
		pin_path(p, sizeof(p), link_names[i]);
		int fd = bpf_obj_get(p);
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &li, &ll)) {
			printf("%s{\"link\":\"%s\",\"attached\":false}", i ? "," : "",
			       link_names[i]);
			if (fd >= 0)
				close(fd);
			continue;
		}
		int pfd = bpf_prog_get_fd_by_id(li.prog_id);
		if (pfd >= 0) {
			bpf_obj_get_info_by_fd(pfd, &pi, &pl);
			close(pfd);
		}
		/* run time and count are filled only while kernel.bpf_stats_enabled=1 */
		printf("%s{\"link\":\"%s\",\"attached\":true,\"program\":\"%s\",\"progId\":%u,"
		       "\"attachType\":%u,\"cgroupId\":%llu,\"runTimeNs\":%llu,\"runCount\":%llu}",
		       i ? "," : "", link_names[i], pi.name, li.prog_id, li.cgroup.attach_type,
		       (unsigned long long)li.cgroup.cgroup_id, (unsigned long long)pi.run_time_ns,
		       (unsigned long long)pi.run_cnt);
		close(fd);
	}
	printf("],\"counters\":");
	print_datapath_counters();
	printf(",\"spliceGate\":");
	if (splice_gate_json(-1))
		printf("null");
	printf("}\n");
	return 0;
}

/* splice-gate [open|close]: show the gate, or set it first. */
static int cmd_splice_gate(const char *arg)
{
	int set = -1;
	if (arg && !strcmp(arg, "open"))
		set = MT_GATE_OPEN;
	else if (arg && !strcmp(arg, "close"))
		set = MT_GATE_CLOSED;
	else if (arg)
		return fail("splice-gate: unknown argument %s (open or close)", arg);
	if (splice_gate_json(set))
		return fail("splice-gate: %s (is the datapath loaded?)", strerror(errno));
	printf("\n");
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: meshtune-bpf load --cgroup PATH [--proxy-port N] [--inbound-port N] "
		"[--proxy-uid N] [--exclude-port N]...\n"
		"                         [--exclude-cidr CIDR]... [--no-splice] [--skb-verdict "
		"auto|on|off]\n"
		"       meshtune-bpf unload | status | probe [--cgroup PATH] [--release R]\n"
		"       meshtune-bpf splice-gate [open|close]\n"
		"       meshtune-bpf pods    (line protocol on stdin: set | del | list | edges | "
		"counters)\n");
}

int main(int argc, char **argv)
{
	struct load_opts o = {
		.proxy_port = 15001, .inbound_port = 15006, .proxy_uid = 1337, .skb_verdict = -1
	};
	static struct option opts[] = {
		{ "cgroup", required_argument, 0, 'c' },
		{ "proxy-port", required_argument, 0, 'p' },
		{ "proxy-uid", required_argument, 0, 'u' },
		{ "exclude-port", required_argument, 0, 'e' },
		{ "exclude-cidr", required_argument, 0, 'x' },
		{ "no-splice", no_argument, 0, 'n' },
		{ "inbound-port", required_argument, 0, 'i' },
		{ "skb-verdict", required_argument, 0, 'v' },
		{ "release", required_argument, 0, 'r' },
		{ 0, 0, 0, 0 },
	};
	int c;
	char *end;
	if (argc < 2) {
		usage();
		return 2;
	}
	const char *cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		long v;
		switch (c) {
		case 'c':
			o.cgroup = optarg;
			break;
		case 'r':
			o.release = optarg;
			break;
		case 'v':
			if (!strcmp(optarg, "auto"))
				o.skb_verdict = -1;
			else if (!strcmp(optarg, "on"))
				o.skb_verdict = 1;
			else if (!strcmp(optarg, "off"))
				o.skb_verdict = 0;
			else {
				fail("--skb-verdict %s: expected auto, on or off", optarg);
				return 2;
			}
			break;
		case 'p':
		case 'u':
		case 'e':
		case 'i':
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || (c != 'u' && (v < 1 || v > 65535))) {
				fail("--%s %s: not a valid number",
				     c == 'p' ? "proxy-port" :
				     c == 'u' ? "proxy-uid" :
				     c == 'i' ? "inbound-port" :
						"exclude-port",
				     optarg);
				return 2;
			}
			if (c == 'p')
				o.proxy_port = v;
			else if (c == 'i')
				o.inbound_port = v;
			else if (c == 'u')
				o.proxy_uid = v;
			else if (o.n_ports < 64)
				o.ports[o.n_ports++] = v;
			break;
		case 'n':
			o.no_splice = 1;
			break;
		case 'x':
			if (o.n_cidrs < 64)
				o.cidrs[o.n_cidrs++] = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (geteuid() != 0 && strcmp(cmd, "probe") != 0)
		return fail("must run as root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
	if (!strcmp(cmd, "load"))
		return cmd_load(&o);
	if (!strcmp(cmd, "unload"))
		return cmd_unload();
	if (!strcmp(cmd, "status"))
		return cmd_status();
	if (!strcmp(cmd, "pods"))
		return cmd_pods();
	if (!strcmp(cmd, "splice-gate"))
		return cmd_splice_gate(optind < argc ? argv[optind] : NULL);
	if (!strcmp(cmd, "probe")) {
		/* Every check as JSON (the agent publishes it); exit 1 with the first datapath failure. */
		static struct probe_result r;
		probe_run(o.cgroup, o.release, &r);
		probe_print_json(&r);
		const struct probe_check *f = probe_first_failure(&r, "datapath");
		return !f	    ? 0 :
		       f->detail[0] ? fail("%s", f->detail) :
				      fail("unsupported kernel: %s not available", f->feature);
	}
	usage();
	return 2;
}
