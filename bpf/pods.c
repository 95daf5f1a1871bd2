// SPDX-License-Identifier: GPL-2.0
/* `meshtune-bpf pods`: the node agent's view into the pinned pod maps, one command per stdin line,
 * one JSON line back per command (so one long-lived process serves the agent):
 *   set CGROUP_DIR id=N flags=N [uid=N gid=N] [ips=A,B] [ports=PORT:BITS,...] [exclude=CIDR,...] [include=CIDR,...]
 *       make the pod in CGROUP_DIR meshed with exactly these settings. New entries go in before
 *       stale ones of the same id come out, so a pod being updated is never briefly unmeshed.
 *   del ID      remove every entry of pod ID (and its L4 edges)
 *   ambient ID NETNS PID ips=…   steer an ambient pod's inbound to ztunnel (ambient.c)
 *   unambient ID ips=…           stop steering it
 *   nodeips A[,B]                the node's addresses: host-originated traffic is not captured
 *   list        pods in the maps: id, cgroup id, flags (an agent restart re-adopts them)
 *   edges       connect-time L4 edges: pod, family, destination, count, first/last (monotonic ns)
 *   counters    per-reason counters
 *   gate        the splice gate (meshtune.h mt_gate): open, or closed and why
 *   recheck     programs of others attached since load where meshtune attaches or to a sockmap
 *               (probe.c foreign_recheck); found, the splice gate is closed (MT_GATE_FOREIGN)
 * Errors answer {"ok":false,"error":"..."} and the loop goes on: one bad line never stops it. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <bpf/bpf.h>
#include "meshtune.h"
#include "pods.h"
#include "common.h"
#include "probe.h"

#define MAX_ITEMS 64

static int fd_of(const char *name)
{
	char p[256];
	pin_path(p, sizeof(p), name);
	return bpf_obj_get(p);
}

int count_pods(void)
{
	int fd = fd_of("pods"), n = 0;
	__u64 k, next, *prev = NULL;
	if (fd < 0)
		return 0;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		n++;
	}
	close(fd);
	return n;
}

void reply_error(const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, arg);
	for (char *c = msg; *c; c++)
		if (*c == '"' || *c == '\\' || *c < ' ')
			*c = '\'';
	printf("{\"ok\":false,\"error\":\"%s\"}\n", msg);
}

/* Delete every key whose entry belongs to pod `id`, except those `keep` says to keep. Keys are
 * collected first: deleting while walking a hash map restarts the walk. */
typedef int (*owner_fn)(const void *key, const void *val, __u32 id);
typedef int (*keep_fn)(const void *key, const void *arg);
static int delete_owned(int fd, size_t ksz, owner_fn owned, __u32 id, keep_fn keep, const void *arg)
{
	size_t cap = 256, n = 0;
	char *keys = malloc(cap * ksz), *prev = NULL, cur[128], next[128], val[128];
	int deleted = 0;
	while (keys && bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(cur, next, ksz);
		prev = cur;
		if (bpf_map_lookup_elem(fd, cur, val) != 0 || !owned(cur, val, id) ||
		    (keep && keep(cur, arg)))
			continue;
		if (n == cap) {
			char *k2 = realloc(keys, (cap *= 2) * ksz);
			if (!k2)
				break;
			keys = k2;
		}
		memcpy(keys + n++ * ksz, cur, ksz);
	}
	for (size_t i = 0; i < n; i++)
		deleted += bpf_map_delete_elem(fd, keys + i * ksz) == 0;
	free(keys);
	return deleted;
}

static int pod_val_owned(const void *k, const void *v, __u32 id)
{
	(void)k;
	return ((const struct mt_pod *)v)->id == id;
}
static int port_owned(const void *k, const void *v, __u32 id)
{
	(void)v;
	return ((const struct mt_pod_port *)k)->pod == id;
}
static int cidr_owned(const void *k, const void *v, __u32 id)
{
	(void)v;
	return ((const struct mt_pod_cidr *)k)->pod == id;
}
static int edge_owned(const void *k, const void *v, __u32 id)
{
	(void)v;
	return ((const struct mt_edge_key *)k)->pod == id;
}

struct wanted {
	__u64 cgroup_id;
	struct mt_pod pod;
	int n_ips, n_ports, n_excl, n_incl;
	struct mt_addr ips[MAX_ITEMS];
	struct mt_pod_port ports[MAX_ITEMS];
	__u32 port_bits[MAX_ITEMS];
	struct mt_pod_cidr excl[MAX_ITEMS], incl[MAX_ITEMS];
};

static int keep_cgroup(const void *k, const void *arg)
{
	return *(const __u64 *)k == ((const struct wanted *)arg)->cgroup_id;
}

/* Keys of the new settings: kept when stale entries of the pod are removed. */
struct key_set {
	const void *items;
	int n;
	size_t size;
};
static int keep_listed(const void *k, const void *arg)
{
	const struct key_set *ks = arg;
	for (int i = 0; i < ks->n; i++)
		if (!memcmp(k, (const char *)ks->items + i * ks->size, ks->size))
			return 1;
	return 0;
}

/* Parse a comma list into `out` with `one`; returns the count or -1 (error already replied). */
static int each(char *list, const char *what, int (*one)(const char *item, int i, struct wanted *w),
		struct wanted *w)
{
	int n = 0;
	for (char *save = NULL, *it = strtok_r(list, ",", &save); it;
	     it = strtok_r(NULL, ",", &save)) {
		if (n == MAX_ITEMS) {
			reply_error("too many %s (limit 64)", what);
			return -1;
		}
		if (one(it, n, w)) {
			reply_error("bad %s", it);
			return -1;
		}
		n++;
	}
	return n;
}

static int one_ip(const char *s, int i, struct wanted *w)
{
	struct mt_addr *a = &w->ips[i];
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->ip[0]) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->ip) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -1;
}

static int one_port(const char *s, int i, struct wanted *w)
{
	char *end;
	long port = strtol(s, &end, 10), bits;
	if (*end != ':' || port < 1 || port > 65535)
		return -1;
	bits = strtol(end + 1, &end, 10);
	if (*end || bits < 1 || bits > 15)
		return -1;
	w->ports[i] = (struct mt_pod_port){ .pod = w->pod.id, .port = port };
	w->port_bits[i] = bits;
	return 0;
}

static int one_cidr(const char *s, struct mt_pod_cidr *c, __u32 id)
{
	memset(c, 0, sizeof(*c));
	if (parse_cidr(s, c->ip, &c->prefixlen))
		return -1;
	c->prefixlen += 32;
	c->pod = id;
	/* Zero the host bits: the trie stores the prefix, and the key doubles as the identity. */
	for (int b = c->prefixlen - 32; b < 128; b++)
		c->ip[b / 32] &= ~htonl(1u << (31 - b % 32));
	return 0;
}
static int one_excl(const char *s, int i, struct wanted *w)
{
	return one_cidr(s, &w->excl[i], w->pod.id);
}
static int one_incl(const char *s, int i, struct wanted *w)
{
	return one_cidr(s, &w->incl[i], w->pod.id);
}

static void cmd_set(char *args)
{
	static struct wanted w;
	char *save = NULL, *dir = strtok_r(args, " ", &save);
	struct stat st;
	struct statfs fs;
	char events[4200];
	long long v;
	int fds[5] = { fd_of("pods"), fd_of("pod_ips"), fd_of("pod_ports"),
		       fd_of("pod_cidrs_exclude"), fd_of("pod_cidrs_include") };

	memset(&w, 0, sizeof(w));
	for (int i = 0; i < 5; i++)
		if (fds[i] < 0) {
			reply_error("%s", "datapath not loaded (no pinned maps)");
			goto out;
		}
	if (!dir || stat(dir, &st) || statfs(dir, &fs) || fs.f_type != CGROUP2_SUPER_MAGIC) {
		reply_error("not a cgroup v2 directory: %s", dir ? dir : "(none)");
		goto out;
	}
	snprintf(events, sizeof(events), "%s/cgroup.events", dir);
	if (access(events, F_OK) != 0) {
		reply_error("refusing the root cgroup %s", dir);
		goto out;
	}
	w.cgroup_id =
		st.st_ino; /* cgroup id = kernfs node id = the directory's inode (fs/kernfs/inode.c kernfs_init_inode) */
	char *lists[4] = {};
	for (char *kv = strtok_r(NULL, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			reply_error("expected key=value, got %s", kv);
			goto out;
		}
		*eq++ = 0;
		if (!strcmp(kv, "id") || !strcmp(kv, "flags") || !strcmp(kv, "uid") ||
		    !strcmp(kv, "gid")) {
			char *end;
			v = strtoll(eq, &end, 10);
			if (*end || v < 0 || v > 0xffffffffLL || (!strcmp(kv, "id") && v == 0)) {
				reply_error("bad number %s", eq);
				goto out;
			}
			if (!strcmp(kv, "id"))
				w.pod.id = v;
			else if (!strcmp(kv, "flags"))
				w.pod.flags = v;
			else if (!strcmp(kv, "uid"))
				w.pod.proxy_uid = v;
			else
				w.pod.proxy_gid = v;
		} else if (!strcmp(kv, "ips"))
			lists[0] = eq;
		else if (!strcmp(kv, "ports"))
			lists[1] = eq;
		else if (!strcmp(kv, "exclude"))
			lists[2] = eq;
		else if (!strcmp(kv, "include"))
			lists[3] = eq;
		else {
			reply_error("unknown key %s", kv);
			goto out;
		}
	}
	if (!w.pod.id) {
		reply_error("%s", "set needs id=N (N > 0)");
		goto out;
	}
	if ((lists[0] && (w.n_ips = each(lists[0], "ips", one_ip, &w)) < 0) ||
	    (lists[1] && (w.n_ports = each(lists[1], "ports", one_port, &w)) < 0) ||
	    (lists[2] && (w.n_excl = each(lists[2], "exclude ranges", one_excl, &w)) < 0) ||
	    (lists[3] && (w.n_incl = each(lists[3], "include ranges", one_incl, &w)) < 0))
		goto out;
	/* Rules first, the pod last: a pod never appears meshed with half its exclusions. */
	__u8 one = 1;
	for (int i = 0; i < w.n_ports; i++)
		if (bpf_map_update_elem(fds[2], &w.ports[i], &w.port_bits[i], BPF_ANY))
			goto full;
	for (int i = 0; i < w.n_excl; i++)
		if (bpf_map_update_elem(fds[3], &w.excl[i], &one, BPF_ANY))
			goto full;
	for (int i = 0; i < w.n_incl; i++)
		if (bpf_map_update_elem(fds[4], &w.incl[i], &one, BPF_ANY))
			goto full;
	for (int i = 0; i < w.n_ips; i++)
		if (bpf_map_update_elem(fds[1], &w.ips[i], &w.pod, BPF_ANY))
			goto full;
	if (bpf_map_update_elem(fds[0], &w.cgroup_id, &w.pod, BPF_ANY))
		goto full;
	int stale =
		delete_owned(fds[0], sizeof(__u64), pod_val_owned, w.pod.id, keep_cgroup, &w) +
		delete_owned(fds[1], sizeof(struct mt_addr), pod_val_owned, w.pod.id, keep_listed,
			     &(struct key_set){ w.ips, w.n_ips, sizeof(struct mt_addr) }) +
		delete_owned(fds[2], sizeof(struct mt_pod_port), port_owned, w.pod.id, keep_listed,
			     &(struct key_set){ w.ports, w.n_ports, sizeof(struct mt_pod_port) }) +
		delete_owned(fds[3], sizeof(struct mt_pod_cidr), cidr_owned, w.pod.id, keep_listed,
			     &(struct key_set){ w.excl, w.n_excl, sizeof(struct mt_pod_cidr) }) +
		delete_owned(fds[4], sizeof(struct mt_pod_cidr), cidr_owned, w.pod.id, keep_listed,
			     &(struct key_set){ w.incl, w.n_incl, sizeof(struct mt_pod_cidr) });
	printf("{\"ok\":true,\"id\":%u,\"cgroupId\":%llu,\"removedStale\":%d}\n", w.pod.id,
	       (unsigned long long)w.cgroup_id, stale);
	goto out;
full : {
	/* Never half-captured: whatever this id holds goes, so the pod is plainly unmeshed (its own
	 * iptables, if any, apply) and a retry under a new id leaves nothing behind. */
	int err = errno;
	delete_owned(fds[0], sizeof(__u64), pod_val_owned, w.pod.id, NULL, NULL);
	delete_owned(fds[1], sizeof(struct mt_addr), pod_val_owned, w.pod.id, NULL, NULL);
	delete_owned(fds[2], sizeof(struct mt_pod_port), port_owned, w.pod.id, NULL, NULL);
	delete_owned(fds[3], sizeof(struct mt_pod_cidr), cidr_owned, w.pod.id, NULL, NULL);
	delete_owned(fds[4], sizeof(struct mt_pod_cidr), cidr_owned, w.pod.id, NULL, NULL);
	reply_error("map update failed: %s (map full?); the pod's entries were removed",
		    strerror(err));
}
out:
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void cmd_del(const char *arg)
{
	char *end;
	long long id = arg ? strtoll(arg, &end, 10) : 0;
	static const char *names[] = {
		"pods", "pod_ips", "pod_ports", "pod_cidrs_exclude", "pod_cidrs_include", "l4_edges"
	};
	static const size_t ksz[] = { sizeof(__u64),
				      sizeof(struct mt_addr),
				      sizeof(struct mt_pod_port),
				      sizeof(struct mt_pod_cidr),
				      sizeof(struct mt_pod_cidr),
				      sizeof(struct mt_edge_key) };
	static const owner_fn own[] = { pod_val_owned, pod_val_owned, port_owned,
					cidr_owned,    cidr_owned,    edge_owned };
	int deleted = 0;
	if (!arg || *end || id <= 0 || id > 0xffffffffLL) {
		reply_error("del needs a pod id, got %s", arg ? arg : "(none)");
		return;
	}
	/* The pod first: its connects stop being captured before its rules go. */
	for (int i = 0; i < 6; i++) {
		int fd = fd_of(names[i]);
		if (fd < 0) {
			reply_error("%s", "datapath not loaded (no pinned maps)");
			return;
		}
		deleted += delete_owned(fd, ksz[i], own[i], (__u32)id, NULL, NULL);
		close(fd);
	}
	printf("{\"ok\":true,\"id\":%lld,\"deleted\":%d}\n", id, deleted);
}

static void cmd_recheck(void)
{
	struct mt_meta meta = {};
	char found[512];
	if (read_meta(&meta)) {
		reply_error("%s", "datapath not loaded");
		return;
	}
	if (!foreign_recheck(meta.cgroup, found, sizeof(found))) {
		printf("{\"ok\":true,\"foreign\":null}\n");
		return;
	}
	printf("{\"ok\":true,\"foreign\":\"");
	for (const char *c = found; *c; c++) /* names are the kernel's: [A-Za-z0-9_.] */
		putchar(*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? '?' : *c);
	printf("\",\"gate\":");
	splice_gate_close(MT_GATE_FOREIGN);
	if (splice_gate_json(-1))
		printf("null");
	printf("}\n");
}

static void cmd_list(void)
{
	int fd = fd_of("pods"), n = 0;
	__u64 k, next, *prev = NULL;
	struct mt_pod v;
	if (fd < 0) {
		reply_error("%s", "datapath not loaded (no pinned maps)");
		return;
	}
	printf("{\"ok\":true,\"pods\":[");
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v) == 0)
			printf("%s{\"id\":%u,\"cgroupId\":%llu,\"flags\":%u,\"uid\":%u,\"gid\":%u}",
			       n++ ? "," : "", v.id, (unsigned long long)k, v.flags, v.proxy_uid,
			       v.proxy_gid);
	}
	printf("]}\n");
	close(fd);
}

static void cmd_edges(void)
{
	int fd = fd_of("l4_edges"), n = 0;
	struct mt_edge_key k, next, *prev = NULL;
	struct mt_edge v;
	struct timespec ts;
	char host[64];
	if (fd < 0) {
		reply_error("%s", "datapath not loaded (no pinned maps)");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns() is CLOCK_MONOTONIC */
	printf("{\"ok\":true,\"nowNs\":%llu,\"edges\":[",
	       (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec);
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v) != 0)
			continue;
		inet_ntop(k.family, k.ip, host, sizeof(host));
		printf("%s{\"pod\":%u,\"dst\":\"%s%s%s:%u\",\"count\":%llu,\"firstNs\":%llu,"
		       "\"lastNs\":%llu}",
		       n++ ? "," : "", k.pod, k.family == AF_INET6 ? "[" : "", host,
		       k.family == AF_INET6 ? "]" : "", k.port, (unsigned long long)v.count,
		       (unsigned long long)v.first_ns, (unsigned long long)v.last_ns);
	}
	printf("]}\n");
	close(fd);
}

int cmd_pods(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		char *save = NULL, *cmd = strtok_r(line, " ", &save);
		char *rest = save;
		if (!cmd)
			continue;
		if (!strcmp(cmd, "set"))
			cmd_set(rest);
		else if (!strcmp(cmd, "del"))
			cmd_del(strtok_r(NULL, " ", &save));
		else if (!strcmp(cmd, "ambient"))
			cmd_ambient(rest);
		else if (!strcmp(cmd, "unambient"))
			cmd_unambient(rest);
		else if (!strcmp(cmd, "nodeips"))
			cmd_nodeips(rest);
		else if (!strcmp(cmd, "list"))
			cmd_list();
		else if (!strcmp(cmd, "edges"))
			cmd_edges();
		else if (!strcmp(cmd, "counters")) {
			printf("{\"ok\":true,\"counters\":");
			print_datapath_counters();
			printf("}\n");
		} else if (!strcmp(cmd, "recheck")) {
			cmd_recheck();
		} else if (!strcmp(cmd, "gate")) {
			printf("{\"ok\":true,\"gate\":");
			if (splice_gate_json(-1))
				printf("null");
			printf("}\n");
		} else
			reply_error("unknown command %s", cmd);
		fflush(stdout);
	}
	free(line);
	return 0;
}
