// SPDX-License-Identifier: GPL-2.0
/* Feature probe: every kernel capability the datapath (meshtune.bpf.c) and the TCP probes
 * (tcpstats.bpf.c) use, tested on this kernel rather than guessed from its version. Program and
 * map types and helpers go through libbpf's probes, which load a minimal program or map
 * (libbpf_probes.c); attach types are tested by loading a two-instruction program with that
 * expected_attach_type, which the kernel refuses for unknown types (bpf_prog_load_check_attach in
 * kernel/bpf/syscall.c). Nothing is attached; nothing is left behind. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include "probe.h"
#include "common.h"
#include "meshtune.h"
#include "tcpstats.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

int wakeup_hazard(const char *release)
{
	/* 929e30f93125 reached stable 6.6.128, 6.12.75, 6.18.14 and mainline 6.19; which releases
	 * carry the fix (04af4efde58a) is not known here, so every release from those on counts. */
	int a = 0, b = 0, c = 0;
	if (sscanf(release, "%d.%d.%d", &a, &b, &c) < 2)
		return 1; /* unknown: be safe */
	if (a > 6 || (a == 6 && b >= 19))
		return 1;
	return a == 6 && ((b == 6 && c >= 128) || (b == 12 && c >= 75) || (b == 18 && c >= 14));
}

/* Kernels where splicing with sockmap is known to misbehave: the datapath still captures, but
 * redirect-only (no sockhash inserts). Reported, not yet bisected here: sendmsg stalls on
 * 6.12.79 (issue 25). NULL when none applies. */
const char *splice_hazard(const char *release)
{
	int a = 0, b = 0, c = 0;
	if (sscanf(release, "%d.%d.%d", &a, &b, &c) < 3)
		return NULL;
	if (a == 6 && b == 12 && c == 79)
		return "sockmap sendmsg stalls reported on 6.12.79";
	return NULL;
}

/* The IDs of meshtune's own programs, from its pins (MT_PIN_DIR, TS_PIN_DIR): link_* pins give
 * the program they attach, prog_* pins the program itself. Pins open with CAP_BPF and access to
 * bpffs, unlike the kernel's program list and BPF_PROG_GET_FD_BY_ID, which need CAP_SYS_ADMIN
 * (kernel/bpf/syscall.c), a capability the agent is not given: names cannot tell ours apart. */
static int own_prog_ids(__u32 *ids, int max)
{
	static const char *dirs[] = { MT_PIN_DIR, TS_PIN_DIR };
	int n = 0;
	for (size_t d = 0; d < N(dirs); d++) {
		DIR *dir = opendir(dirs[d]);
		if (!dir)
			continue;
		struct dirent *e;
		while ((e = readdir(dir)) && n < max) {
			int link = !strncmp(e->d_name, "link_", 5),
			    prog = !strncmp(e->d_name, "prog_", 5);
			if (!link && !prog)
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", dirs[d], e->d_name);
			int fd = bpf_obj_get(p);
			if (fd < 0)
				continue;
			if (link) {
				struct bpf_link_info li = {};
				__u32 len = sizeof(li);
				if (!bpf_obj_get_info_by_fd(fd, &li, &len))
					ids[n++] = li.prog_id;
			} else {
				struct bpf_prog_info pi = {};
				__u32 len = sizeof(pi);
				if (!bpf_obj_get_info_by_fd(fd, &pi, &len))
					ids[n++] = pi.id;
			}
			close(fd);
		}
		closedir(dir);
	}
	return n;
}

static int has_id(const __u32 *ids, int n, __u32 id)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* A program's name for a report, or "id N"; 0 when its name could not be read (EPERM: reading
 * another program needs CAP_SYS_ADMIN). */
static int prog_name(__u32 id, char *out, size_t n)
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);
	int fd = bpf_prog_get_fd_by_id(id), named = 0;
	if (fd >= 0 && !bpf_obj_get_info_by_fd(fd, &pi, &len) && pi.name[0]) {
		snprintf(out, n, "%s", pi.name);
		named = 1;
	} else
		snprintf(out, n, "id %u", id);
	if (fd >= 0)
		close(fd);
	return named;
}

/* A socket has one psock, whose sk_msg and sk_skb programs come from the first sockmap that
 * took it: a second owner's insert fails with EBUSY (net/core/sock_map.c sock_map_link), so
 * two splicers on one node silently split the sockets between them and each breaks the other's
 * on the sockets it won. Sockmap programs are attached to maps, not cgroups, so the only way
 * to see them is the node's program list, which needs CAP_SYS_ADMIN. Returns 1 and names them
 * when there are others, 0 when there are none, -1 (with the reason) when it cannot tell. */
int foreign_sockmap_users(char *out, size_t n)
{
	__u32 own[64], id = 0;
	int nown = own_prog_ids(own, 64);
	out[0] = 0;
	for (;;) {
		if (bpf_prog_get_next_id(id, &id)) {
			if (errno == ENOENT)
				break;
			if (errno == EPERM)
				snprintf(out, n, "listing BPF programs needs CAP_SYS_ADMIN");
			else
				snprintf(out, n, "listing BPF programs: %s", strerror(errno));
			return -1;
		}
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);
		int fd = bpf_prog_get_fd_by_id(id);
		if (fd < 0) {
			if (errno == ENOENT)
				continue; /* unloaded since it was listed */
			snprintf(out, n, "cannot inspect BPF program id %u (%s)", id,
				 strerror(errno));
			return -1;
		}
		int got = !bpf_obj_get_info_by_fd(fd, &pi, &len);
		close(fd);
		if (!got || (pi.type != BPF_PROG_TYPE_SK_MSG && pi.type != BPF_PROG_TYPE_SK_SKB) ||
		    has_id(own, nown, id) || !strncmp(pi.name, "mt_", 3) || strlen(out) + 48 >= n)
			continue;
		snprintf(out + strlen(out), n - strlen(out), "%s%s %s (id %u)", out[0] ? ", " : "",
			 pi.type == BPF_PROG_TYPE_SK_MSG ? "sk_msg" : "sk_skb",
			 pi.name[0] ? pi.name : "(unnamed)", id);
	}
	return out[0] ? 1 : 0;
}

static struct probe_check *add(struct probe_result *r, const char *group, const char *feature,
			       int ok)
{
	if (r->n >= PROBE_MAX_CHECKS)
		return &r->checks[PROBE_MAX_CHECKS - 1];
	struct probe_check *c = &r->checks[r->n++];
	c->group = group;
	c->feature = feature;
	c->ok = ok;
	c->detail[0] = 0;
	return c;
}

/* r0 = 1; exit: accepted by every program type probed here. */
static int load_tiny(enum bpf_prog_type t, enum bpf_attach_type at)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = at);
	int fd = bpf_prog_load(t, "mt_probe", "GPL", insns, N(insns), &o);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static void probe_all(const char *cgroup, const char *release, struct probe_result *r);
static void foreign_programs(struct probe_result *r, const char *cgroup);

void probe_run(const char *cgroup, const char *release, struct probe_result *r)
{
	libbpf_print_fn_t before = libbpf_set_print(libbpf_silent); /* failed probes are expected */
	probe_all(cgroup, release, r);
	libbpf_set_print(before);
}

static void probe_all(const char *cgroup, const char *release, struct probe_result *r)
{
	struct utsname u = {};
	struct statfs fs;
	char p[512];

	memset(r, 0, sizeof(*r));
	uname(&u);
	snprintf(r->release, sizeof(r->release), "%s", release ? release : u.release);
	r->wakeup_hazard = wakeup_hazard(r->release);
	const char *sh = splice_hazard(r->release);
	struct probe_check *sp = add(r, "splice", "kernel:sockmap-splice", !sh);
	if (sh)
		snprintf(sp->detail, sizeof(sp->detail), "%s: capture stays, splice off", sh);
	char others[160];
	int fsu = foreign_sockmap_users(others, sizeof(others));
	sp = add(r, "splice", "foreign-sockmap", fsu <= 0);
	if (fsu > 0)
		snprintf(sp->detail, sizeof(sp->detail), "another sockmap user on this node: %s",
			 others);
	else if (fsu < 0) /* passes, says so: a socket another sockmap owns is refused, counted */
		snprintf(sp->detail, sizeof(sp->detail),
			 "not checked: %s; the first socket another sockmap owns is refused "
			 "(EBUSY) and closes the splice gate",
			 others);
	struct probe_check *c = add(r, "node", "btf", access("/sys/kernel/btf/vmlinux", R_OK) == 0);
	if (!c->ok)
		snprintf(c->detail, sizeof(c->detail),
			 "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): CO-RE objects cannot "
			 "load");

	static const struct {
		const char *g, *n;
		enum bpf_prog_type t;
	} progs[] = {
		{ "datapath", "prog:cgroup_sock_addr", BPF_PROG_TYPE_CGROUP_SOCK_ADDR },
		{ "datapath", "prog:cgroup_sockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT },
		{ "datapath", "prog:sk_msg", BPF_PROG_TYPE_SK_MSG },
		{ "node", "prog:sock_ops", BPF_PROG_TYPE_SOCK_OPS },
		{ "ambient", "prog:sk_lookup", BPF_PROG_TYPE_SK_LOOKUP },
	};
	for (size_t i = 0; i < N(progs); i++)
		add(r, progs[i].g, progs[i].n, libbpf_probe_bpf_prog_type(progs[i].t, NULL) == 1);
	/* The no-op SK_SKB verdict is the wakeup-hazard workaround: needed only in the hazard range. */
	c = add(r, "datapath", "prog:sk_skb (wakeup-hazard workaround)",
		!r->wakeup_hazard || libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_SKB, NULL) == 1);
	if (!c->ok)
		snprintf(c->detail, sizeof(c->detail),
			 "kernel %s is in the sockmap wakeup-hazard range and cannot load the "
			 "no-op SK_SKB verdict",
			 r->release);

	static const struct {
		const char *g, *n;
		enum bpf_prog_type t;
		enum bpf_attach_type a;
	} attach[] = {
		{ "datapath", "attach:cgroup/connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
		  BPF_CGROUP_INET4_CONNECT },
		{ "datapath", "attach:cgroup/connect6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
		  BPF_CGROUP_INET6_CONNECT },
		{ "datapath", "attach:cgroup/getsockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT,
		  BPF_CGROUP_GETSOCKOPT },
		{ "node", "attach:cgroup/sock_ops", BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS },
		{ "ambient", "attach:cgroup/sendmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
		  BPF_CGROUP_UDP4_SENDMSG },
		{ "ambient", "attach:cgroup/recvmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
		  BPF_CGROUP_UDP4_RECVMSG },
		{ "ambient", "attach:netns/sk_lookup", BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP },
	};
	for (size_t i = 0; i < N(attach); i++) {
		int e = load_tiny(attach[i].t, attach[i].a);
		c = add(r, attach[i].g, attach[i].n, e == 0);
		if (e)
			snprintf(c->detail, sizeof(c->detail), "program load refused: %s",
				 strerror(-e));
	}

	static const struct {
		const char *g, *n;
		enum bpf_map_type t;
	} maps[] = {
		{ "datapath", "map:sockhash", BPF_MAP_TYPE_SOCKHASH },
		{ "datapath", "map:lru_hash", BPF_MAP_TYPE_LRU_HASH },
		{ "datapath", "map:lpm_trie", BPF_MAP_TYPE_LPM_TRIE },
		{ "node", "map:percpu_array", BPF_MAP_TYPE_PERCPU_ARRAY },
		{ "node", "map:sk_storage", BPF_MAP_TYPE_SK_STORAGE },
		{ "tcpstats", "map:percpu_hash", BPF_MAP_TYPE_PERCPU_HASH },
	};
	for (size_t i = 0; i < N(maps); i++)
		add(r, maps[i].g, maps[i].n, libbpf_probe_bpf_map_type(maps[i].t, NULL) == 1);

	/* Per-pod keys need the netns cookie where the pair is seen and the accepted socket's
	 * storage; the pod lookup needs the caller's ancestor cgroup; the TCP probes need the
	 * tcp_sock cast and per-socket callback flags. */
	static const struct {
		const char *g, *n;
		enum bpf_prog_type t;
		enum bpf_func_id f;
	} helpers[] = {
		{ "datapath", "helper:sock_ops/get_netns_cookie", BPF_PROG_TYPE_SOCK_OPS,
		  BPF_FUNC_get_netns_cookie },
		{ "datapath", "helper:sk_msg/sk_storage_get", BPF_PROG_TYPE_SK_MSG,
		  BPF_FUNC_sk_storage_get },
		{ "datapath", "helper:sk_msg/msg_redirect_hash", BPF_PROG_TYPE_SK_MSG,
		  BPF_FUNC_msg_redirect_hash },
		{ "datapath", "helper:sock_ops/sock_hash_update", BPF_PROG_TYPE_SOCK_OPS,
		  BPF_FUNC_sock_hash_update },
		{ "node", "helper:sock_ops/sk_storage_get", BPF_PROG_TYPE_SOCK_OPS,
		  BPF_FUNC_sk_storage_get },
		{ "datapath", "helper:cgroup_sockopt/sk_storage_get", BPF_PROG_TYPE_CGROUP_SOCKOPT,
		  BPF_FUNC_sk_storage_get },
		{ "datapath", "helper:cgroup_sock_addr/get_current_ancestor_cgroup_id",
		  BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_current_ancestor_cgroup_id },
		{ "tcpstats", "helper:sock_ops/skc_to_tcp_sock", BPF_PROG_TYPE_SOCK_OPS,
		  BPF_FUNC_skc_to_tcp_sock },
		{ "tcpstats", "helper:sock_ops/sock_ops_cb_flags_set", BPF_PROG_TYPE_SOCK_OPS,
		  BPF_FUNC_sock_ops_cb_flags_set },
		{ "ambient", "helper:sk_lookup/sk_assign", BPF_PROG_TYPE_SK_LOOKUP,
		  BPF_FUNC_sk_assign },
		{ "ambient", "helper:cgroup_sock_addr/sk_storage_get",
		  BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_storage_get },
	};
	for (size_t i = 0; i < N(helpers); i++)
		add(r, helpers[i].g, helpers[i].n,
		    libbpf_probe_bpf_helper(helpers[i].t, helpers[i].f, NULL) == 1);

	if (!cgroup)
		return;
	c = add(r, "node", "cgroup-v2",
		statfs(cgroup, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC);
	if (!c->ok) {
		snprintf(c->detail, sizeof(c->detail), "cgroup %s is not on a cgroup v2 filesystem",
			 cgroup);
		return;
	}
	/* Only non-root cgroups have cgroup.events: never attach to the root of the hierarchy. */
	snprintf(p, sizeof(p), "%s/cgroup.events", cgroup);
	c = add(r, "node", "cgroup-not-root", access(p, F_OK) == 0);
	if (!c->ok) {
		snprintf(c->detail, sizeof(c->detail),
			 "refusing to attach to the root cgroup %s: pass a child cgroup", cgroup);
		return;
	}
	foreign_programs(r, cgroup);
}

/* Programs of others where meshtune attaches (this cgroup's effective programs: its own and its
 * ancestors'), e.g. Cilium's socket load balancer (cgroup/connect4|6, sendmsg, recvmsg,
 * getpeername) or OpenTelemetry eBPF instrumentation (sockops, sk_msg). They run in the same
 * chain as meshtune's (BPF_F_ALLOW_MULTI order), and a connect hook that rewrites a service
 * address before or after meshtune's changes what the proxy sees as the original destination:
 * the datapath stays off and names them rather than guess how the two compose. Meshtune's own are
 * told apart by the ids its pins hold (own_prog_ids). With sock_ops_only, just the programs that
 * can own a socket's psock (a sock_ops inserting into its own sockmap). Into `found` ("type name,
 * ..."), with `why` saying what could not be queried; -1 when the cgroup cannot be opened, else
 * whether any was found. */
static int cgroup_programs_of_others(const char *cgroup, int sock_ops_only, char *found, size_t fn,
				     char *why, size_t wn)
{
	static const struct {
		enum bpf_attach_type t;
		const char *name;
	} types[] = {
		{ BPF_CGROUP_INET4_CONNECT, "connect4" },
		{ BPF_CGROUP_INET6_CONNECT, "connect6" },
		{ BPF_CGROUP_UDP4_SENDMSG, "sendmsg4" },
		{ BPF_CGROUP_UDP6_SENDMSG, "sendmsg6" },
		{ BPF_CGROUP_UDP4_RECVMSG, "recvmsg4" },
		{ BPF_CGROUP_UDP6_RECVMSG, "recvmsg6" },
		{ BPF_CGROUP_GETSOCKOPT, "getsockopt" },
		{ BPF_CGROUP_SOCK_OPS, "sock_ops" },
		{ BPF_CGROUP_INET4_GETPEERNAME, "getpeername4" },
	};
	char list[160] = "";
	__u32 own[64];
	int nown = own_prog_ids(own, 64), unnamed = 0;
	int cg = open(cgroup, O_RDONLY | O_DIRECTORY);
	found[0] = why[0] = 0;
	if (cg < 0)
		return -1;
	for (size_t i = 0; i < N(types); i++) {
		__u32 ids[256], n = 256, flags = 0;
		if (sock_ops_only && types[i].t != BPF_CGROUP_SOCK_OPS)
			continue;
		if (bpf_prog_query(cg, types[i].t, BPF_F_QUERY_EFFECTIVE, &flags, ids, &n)) {
			/* EINVAL: an attach type this kernel lacks (its own check says so). Anything
			 * else means the cgroup's programs cannot be seen: not "none". */
			if (errno != EINVAL && !why[0])
				snprintf(why, wn, "cannot query %s programs: %s", types[i].name,
					 strerror(errno));
			continue;
		}
		for (__u32 k = 0; k < n; k++) {
			char name[64];
			if (has_id(own, nown, ids[k]))
				continue;
			unnamed |= !prog_name(ids[k], name, sizeof(name));
			if (strlen(list) + strlen(name) + 16 < sizeof(list))
				snprintf(list + strlen(list), sizeof(list) - strlen(list),
					 "%s%s %s", list[0] ? ", " : "", types[i].name, name);
		}
	}
	close(cg);
	if (list[0])
		snprintf(found, fn, "other BPF programs attached where meshtune would attach: %s%s",
			 list, unnamed ? " (names need CAP_SYS_ADMIN)" : "");
	return list[0] != 0;
}

static void foreign_programs(struct probe_result *r, const char *cgroup)
{
	char found[sizeof(r->checks[0].detail)], why[96];
	if (cgroup_programs_of_others(cgroup, 0, found, sizeof(found), why, sizeof(why)) < 0)
		return;
	struct probe_check *c = add(r, "datapath", "foreign-programs", !found[0] && !why[0]);
	snprintf(c->detail, sizeof(c->detail), "%s", found[0] ? found : why);
}

int foreign_recheck(const char *cgroup, char *out, size_t n)
{
	char others[160], why[96];
	out[0] = 0;
	cgroup_programs_of_others(cgroup, 1, out, n, why, sizeof(why));
	if (foreign_sockmap_users(others, sizeof(others)) > 0)
		snprintf(out + strlen(out), n - strlen(out),
			 "%sanother sockmap user on this node: %s", out[0] ? "; " : "", others);
	return out[0] ? 1 : 0;
}

const struct probe_check *probe_first_failure(const struct probe_result *r, const char *group)
{
	for (int i = 0; i < r->n; i++)
		if (!r->checks[i].ok &&
		    (!strcmp(r->checks[i].group, group) || !strcmp(r->checks[i].group, "node")))
			return &r->checks[i];
	return NULL;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	putchar('"');
}

void probe_print_json(const struct probe_result *r)
{
	const struct probe_check *dp = probe_first_failure(r, "datapath"),
				 *ts = probe_first_failure(r, "tcpstats");
	printf("{\"supported\":%s,\"tcpstats\":%s,\"kernel\":", dp ? "false" : "true",
	       ts ? "false" : "true");
	json_str(r->release);
	printf(",\"wakeupHazard\":%s,\"checks\":[", r->wakeup_hazard ? "true" : "false");
	for (int i = 0; i < r->n; i++) {
		const struct probe_check *c = &r->checks[i];
		printf("%s{\"group\":\"%s\",\"feature\":", i ? "," : "", c->group);
		json_str(c->feature);
		printf(",\"ok\":%s", c->ok ? "true" : "false");
		if (!c->ok ||
		    c->detail[0]) { /* a passing check may still say what it could not see */
			printf(",\"detail\":");
			json_str(c->detail[0] ? c->detail : "not supported by this kernel");
		}
		putchar('}');
	}
	printf("]}\n");
}
