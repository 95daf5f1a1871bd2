// SPDX-License-Identifier: GPL-2.0
/* An ambient pod's inbound for the agent's line protocol (pods.c):
 *   ambient ID NETNS_PATH ZTUNNEL_PID ips=A[,B] [in=15006] [out=15001] [closed=1] [dns=1]
 *       Find ztunnel's listeners inside the pod's network namespace by taking its sockets with
 *       pidfd_getfd(2) (the agent is root with CAP_SYS_PTRACE), require both the outbound and
 *       the inbound one (ztunnel is ready for this pod), key the inbound listener by each pod IP
 *       in ztunnel_inbound, and attach the sk_lookup program to the netns (a link pinned as
 *       ambient_ID). A pod is steered whole or not at all. With closed=1 (ZTUNNEL_PID 0: ztunnel
 *       not ready) only the link goes in: the pod's inbound is refused until ztunnel is keyed.
 *   unambient ID ips=A[,B]
 *       Unpin the link (new connections take the normal lookup again; established ones are
 *       untouched) and drop the pod's keys. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "meshtune.h"
#include "pods.h"

#define MAX_IPS 8
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* include/uapi/asm-generic/socket.h, Linux 5.14 */
#endif

static int parse_ips(char *list, struct mt_addr *out)
{
	int n = 0;
	for (char *save = NULL, *it = strtok_r(list, ",", &save); it;
	     it = strtok_r(NULL, ",", &save)) {
		if (n == MAX_IPS)
			return -1;
		memset(&out[n], 0, sizeof(out[n]));
		if (inet_pton(AF_INET, it, &out[n].ip[0]) == 1)
			out[n].family = AF_INET;
		else if (inet_pton(AF_INET6, it, out[n].ip) == 1)
			out[n].family = AF_INET6;
		else
			return -1;
		n++;
	}
	return n;
}

static void link_pin(char *buf, size_t n, unsigned long id)
{
	char name[64];
	snprintf(name, sizeof(name), "ambient_%lu", id);
	pin_path(buf, n, name);
}

/* The netns a socket lives in, as the inode of its nsfs file. */
static ino_t sock_netns(int fd)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);
	ino_t ino = 0;
	if (ns < 0)
		return 0;
	if (!fstat(ns, &st))
		ino = st.st_ino;
	close(ns);
	return ino;
}

/* ztunnel's TCP listeners on `port` in the netns `ino`, by family: duplicate fds the caller
 * closes (-1 when absent); *dual is set when the IPv6 one also takes IPv4 (not v6only). */
static void take_listeners(int pidfd, long pid, ino_t ino, int port, int fds[2], int *dual)
{
	char dir[64], link[PATH_MAX], path[PATH_MAX + 64];
	struct dirent *d;
	fds[0] = fds[1] = -1;
	*dual = 0;
	snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
	DIR *dp = opendir(dir);
	if (!dp)
		return;
	while ((fds[0] < 0 || fds[1] < 0) && (d = readdir(dp))) {
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strncmp(link, "socket:", 7))
			continue;
		int fd = syscall(SYS_pidfd_getfd, pidfd, atoi(d->d_name), 0);
		if (fd < 0)
			continue;
		int listening = 0, proto = 0, v6only = 1;
		socklen_t l = sizeof(int);
		struct sockaddr_storage a;
		socklen_t al = sizeof(a);
		getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l);
		l = sizeof(int);
		getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l);
		if (listening && proto == IPPROTO_TCP &&
		    !getsockname(fd, (struct sockaddr *)&a, &al) &&
		    ntohs(((struct sockaddr_in *)&a)->sin_port) == port && sock_netns(fd) == ino) {
			int v6 = a.ss_family == AF_INET6;
			if (fds[v6] < 0) {
				fds[v6] = fd;
				if (v6) {
					l = sizeof(int);
					getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l);
					*dual = !v6only;
				}
				continue;
			}
		}
		close(fd);
	}
	closedir(dp);
}

void cmd_ambient(char *args)
{
	char *save = NULL, *id_s = strtok_r(args, " ", &save), *ns = strtok_r(NULL, " ", &save),
	     *pid_s = strtok_r(NULL, " ", &save), *ips_s = NULL, p[256];
	struct mt_addr ips[MAX_IPS];
	long in_port = 15006, out_port = 15001;
	unsigned long id = id_s ? strtoul(id_s, NULL, 10) : 0;
	long pid = pid_s ? strtol(pid_s, NULL, 10) : 0;
	int n_ips, pidfd = -1, in[2] = { -1, -1 }, out[2] = { -1, -1 }, dual, odual, nsfd = -1,
		   map = -1, nsmap = -1, prog = -1, lk = -1, closed = 0, dns = 0,
		   hb[2] = { -1, -1 }, hdual = 0, dnsl[2] = { -1, -1 }, ddual = 0, hbmap = -1;
	struct stat st;

	for (char *kv = strtok_r(NULL, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
		if (!strncmp(kv, "ips=", 4))
			ips_s = kv + 4;
		else if (!strncmp(kv, "in=", 3))
			in_port = strtol(kv + 3, NULL, 10);
		else if (!strncmp(kv, "out=", 4))
			out_port = strtol(kv + 4, NULL, 10);
		else if (!strcmp(kv, "closed=1"))
			closed = 1;
		else if (!strcmp(kv, "dns=1"))
			dns = 1;
		else {
			reply_error("unknown key %s", kv);
			return;
		}
	}
	if (!id || !ns || (pid <= 0 && !closed) || !ips_s || (n_ips = parse_ips(ips_s, ips)) <= 0 ||
	    in_port < 1 || in_port > 65535 || out_port < 1 || out_port > 65535) {
		reply_error("%s", "usage: ambient ID NETNS_PATH ZTUNNEL_PID ips=A[,B] [in=N] "
				  "[out=N] [closed=1]");
		return;
	}
	nsfd = open(ns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || fstat(nsfd, &st)) {
		reply_error("netns %s: cannot open", ns);
		goto out;
	}
	pin_path(p, sizeof(p), "ambient_netns");
	nsmap = bpf_obj_get(p);
	pin_path(p, sizeof(p), "ztunnel_inbound");
	map = bpf_obj_get(p);
	pin_path(p, sizeof(p), "ztunnel_hbone");
	hbmap = bpf_obj_get(p);
	pin_path(p, sizeof(p), "prog_ambient_lookup");
	prog = bpf_obj_get(p);
	if (map < 0 || prog < 0 || nsmap < 0 || hbmap < 0) {
		reply_error("%s", "datapath not loaded (no pinned ambient program or map)");
		goto out;
	}
	/* closed=1: ztunnel is not ready; the link goes in without keys, so the pod's inbound is
	 * refused (and its outbound, captured by `set`, finds no listener) until it is: enrolled
	 * closed, never open. */
	if (!closed) {
		pidfd = syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			reply_error("ztunnel pid %s: no such process (pidfd_open)", pid_s);
			goto out;
		}
		take_listeners(pidfd, pid, st.st_ino, in_port, in, &dual);
		take_listeners(pidfd, pid, st.st_ino, out_port, out, &odual);
		take_listeners(pidfd, pid, st.st_ino, 15008, hb, &hdual);
		if (dns) /* ztunnel's DNS proxy also listens on TCP 15053 */
			take_listeners(pidfd, pid, st.st_ino, 15053, dnsl, &ddual);
		/* Each pod IP needs an inbound listener of its family (or a dual-stack one for IPv4). */
		int need_v4 = 0, need_v6 = 0;
		for (int i = 0; i < n_ips; i++)
			*(ips[i].family == AF_INET ? &need_v4 : &need_v6) = 1;
		int v4_fd = in[0] >= 0 ? in[0] : dual ? in[1] : -1;
		int hb4 = hb[0] >= 0 ? hb[0] : hdual ? hb[1] : -1;
		int hb_ok = (!need_v4 || hb4 >= 0) && (!need_v6 || hb[1] >= 0);
		int dns_ok = !dns || dnsl[0] >= 0 || dnsl[1] >= 0;
		/* Outbound is redirected to 127.0.0.1 (IPv4) and ::1 (IPv6): a listener per family used. */
		int out_ok = (!need_v4 || out[0] >= 0 || (out[1] >= 0 && odual)) &&
			     (!need_v6 || out[1] >= 0);
		if ((need_v4 && v4_fd < 0) || (need_v6 && in[1] < 0) || !out_ok || !hb_ok ||
		    !dns_ok) {
			snprintf(p, sizeof(p), "%ld%s%s%s%s", pid,
				 (need_v4 && v4_fd < 0) || (need_v6 && in[1] < 0) ?
					 " (no inbound listener)" :
					 "",
				 !out_ok ? " (no outbound listener for every family)" : "",
				 !hb_ok ? " (no HBONE listener)" : "",
				 !dns_ok ? " (no DNS listener)" : "");
			reply_error("ztunnel %s in this pod's netns: not ready; pod not enrolled",
				    p);
			goto out;
		}
		__u64 cookie = 0;
		socklen_t cl = sizeof(cookie);
		if (getsockopt(in[1] >= 0 ? in[1] : in[0], SOL_SOCKET, SO_NETNS_COOKIE, &cookie,
			       &cl)) {
			reply_error("SO_NETNS_COOKIE: %s", strerror(errno));
			goto out;
		}
		for (int i = 0; i < n_ips; i++) {
			__u64 v = ips[i].family == AF_INET ? v4_fd : in[1],
			      h = ips[i].family == AF_INET ? hb4 : hb[1];
			struct mt_ambient_ip owner = { .netns = cookie, .pod = (__u32)id };
			if (bpf_map_update_elem(map, &ips[i], &v, BPF_ANY) ||
			    bpf_map_update_elem(hbmap, &ips[i], &h, BPF_ANY) ||
			    bpf_map_update_elem(nsmap, &ips[i], &owner, BPF_ANY)) {
				int e = errno;
				for (int j = 0; j <= i; j++) {
					bpf_map_delete_elem(map, &ips[j]);
					bpf_map_delete_elem(hbmap, &ips[j]);
					bpf_map_delete_elem(nsmap, &ips[j]);
				}
				reply_error("ztunnel_inbound update: %s", strerror(e));
				goto out;
			}
		}
	}
	link_pin(p, sizeof(p), id);
	int already = access(p, F_OK) == 0;
	if (already) {
		/* A pin of this id on another netns (an id reused after a restart, a pod whose sandbox
		 * was recreated) steers the wrong namespace: replace it. */
		struct bpf_link_info li = {};
		__u32 ll = sizeof(li);
		int old = bpf_obj_get(p);
		if (old < 0 || bpf_obj_get_info_by_fd(old, &li, &ll) ||
		    li.netns.netns_ino != (__u32)st.st_ino) {
			unlink(p);
			already = 0;
		}
		if (old >= 0)
			close(old);
	}
	if (!already) {
		lk = bpf_link_create(prog, nsfd, BPF_SK_LOOKUP, NULL);
		if (lk < 0 || bpf_obj_pin(lk, p)) {
			int e = errno;
			for (int i = 0; i < n_ips; i++) {
				bpf_map_delete_elem(map, &ips[i]);
				bpf_map_delete_elem(hbmap, &ips[i]);
				bpf_map_delete_elem(nsmap, &ips[i]);
			}
			reply_error("attach sk_lookup to the pod's netns: %s", strerror(e));
			goto out;
		}
	}
	printf("{\"ok\":true,\"id\":%lu,\"linked\":true,\"already\":%s,\"ips\":%d,"
	       "\"listener\":%s}\n",
	       id, already ? "true" : "false", n_ips, closed ? "false" : "true");
out:
	for (int *f = (int[]){ pidfd, in[0], in[1], out[0], out[1], hb[0], hb[1], dnsl[0], dnsl[1],
			       nsfd, map, nsmap, hbmap, prog, lk },
		 k = 0;
	     k < 15; k++)
		if (f[k] >= 0)
			close(f[k]);
}

void cmd_unambient(char *args)
{
	char *save = NULL, *id_s = strtok_r(args, " ", &save), *kv = strtok_r(NULL, " ", &save),
	     p[256];
	struct mt_addr ips[MAX_IPS];
	unsigned long id = id_s ? strtoul(id_s, NULL, 10) : 0;
	/* Without ips= only the link goes (a pod that vanished while the agent was down). */
	int n = kv && !strncmp(kv, "ips=", 4) ? parse_ips(kv + 4, ips) : kv ? -1 : 0, removed = 0;
	if (!id || n < 0) {
		reply_error("%s", "usage: unambient ID [ips=A[,B]]");
		return;
	}
	link_pin(p, sizeof(p), id);
	int unlinked = unlink(p) == 0; /* the last reference: the link detaches */
	pin_path(p, sizeof(p), "ztunnel_inbound");
	int map = bpf_obj_get(p);
	pin_path(p, sizeof(p), "ambient_netns");
	int nsmap = bpf_obj_get(p);
	pin_path(p, sizeof(p), "ztunnel_hbone");
	int hbmap = bpf_obj_get(p);
	for (int i = 0; map >= 0 && i < n; i++) {
		/* Only this pod's keys: a pod that took over the IP keeps its own. */
		struct mt_ambient_ip owner;
		if (nsmap >= 0 && bpf_map_lookup_elem(nsmap, &ips[i], &owner) == 0 &&
		    owner.pod != id)
			continue;
		removed += bpf_map_delete_elem(map, &ips[i]) == 0;
		if (hbmap >= 0)
			bpf_map_delete_elem(hbmap, &ips[i]);
		if (nsmap >= 0)
			bpf_map_delete_elem(nsmap, &ips[i]);
	}
	if (hbmap >= 0)
		close(hbmap);
	if (map >= 0)
		close(map);
	if (nsmap >= 0)
		close(nsmap);
	printf("{\"ok\":true,\"id\":%lu,\"unlinked\":%s,\"removed\":%d}\n", id,
	       unlinked ? "true" : "false", removed);
}

/* `nodeips A[,B]`: the node's own addresses, replacing the previous set (hostprobe.golden's
 * equivalent: host-originated traffic is not captured inbound). */
void cmd_nodeips(char *args)
{
	char p[256], *save = NULL, *list = strtok_r(args, " ", &save);
	struct mt_addr ips[MAX_IPS], k, next, *prev = NULL;
	int n = list ? parse_ips(list, ips) : 0;
	__u8 one = 1;
	if (n < 0) {
		reply_error("%s", "usage: nodeips A[,B] (at most 8)");
		return;
	}
	pin_path(p, sizeof(p), "node_ips");
	int fd = bpf_obj_get(p);
	if (fd < 0) {
		reply_error("%s", "datapath not loaded (no pinned node_ips)");
		return;
	}
	for (int i = 0; i < n; i++)
		bpf_map_update_elem(fd, &ips[i], &one, BPF_ANY);
	/* Then drop what is no longer the node's (keys collected first: deleting restarts walks). */
	struct mt_addr stale[64];
	int ns = 0;
	while (ns < 64 && bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		int keep = 0;
		for (int i = 0; i < n; i++)
			keep |= !memcmp(&k, &ips[i], sizeof(k));
		if (!keep)
			stale[ns++] = k;
	}
	for (int i = 0; i < ns; i++)
		bpf_map_delete_elem(fd, &stale[i]);
	close(fd);
	printf("{\"ok\":true,\"nodeIps\":%d,\"removed\":%d}\n", n, ns);
}

/* Every pod's link: used when the whole datapath is unloaded. */
void ambient_unpin_all(void)
{
	char p[512];
	struct dirent *d;
	DIR *dp = opendir(MT_PIN_DIR);
	if (!dp)
		return;
	while ((d = readdir(dp)))
		if (!strncmp(d->d_name, "ambient_", 8)) {
			snprintf(p, sizeof(p), "%s/%s", MT_PIN_DIR, d->d_name);
			unlink(p);
		}
	closedir(dp);
}
