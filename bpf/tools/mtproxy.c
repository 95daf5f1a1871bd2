// SPDX-License-Identifier: GPL-2.0
/* Test/bench sidecar stand-in, shaped like Istio's Envoy listeners:
 *  outbound: accepts captured connections on 127.0.0.1 and [::1]:PORT, asks the kernel for the
 *            original destination (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), connects there as UID
 *            (so the capture skips it: no loop) and relays both ways with half-close.
 *            Prints "origdst ADDR:PORT".
 *  inbound:  with INBOUND_PORT, also accepts on 0.0.0.0 and [::]:INBOUND_PORT and delivers to the
 *            original destination from 127.0.0.6 / ::6, as Istio's inbound passthrough binds it
 *            (pilot/pkg/networking/core/cluster_builder.go, listener_address.go). Prints
 *            "inbound ADDR:PORT".
 * Usage: mtproxy PORT UID [INBOUND_PORT] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SO_ORIGINAL_DST	     80
#define IP6T_SO_ORIGINAL_DST 80

static int listen_on(int family, int port, int any)
{
	int fd = socket(family, SOCK_STREAM, 0), one = 1;
	struct sockaddr_storage ss = {};
	socklen_t len;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = any ? in6addr_any : in6addr_loopback;
		len = sizeof(*a);
	}
	if (bind(fd, (void *)&ss, len) || listen(fd, 1024)) {
		perror("mtproxy: bind/listen");
		exit(1);
	}
	return fd;
}

/* One direction: copy until EOF (or an error), then forward the EOF as a half-close. */
struct half {
	int from, to;
};

static void *copy_half(void *arg)
{
	const struct half *h = arg;
	char buf[65536];
	struct pollfd p = { h->from, POLLIN, 0 };
	for (;;) {
		ssize_t n = read(h->from, buf, sizeof(buf));
		/* A spliced (sockmap) socket can report readable and then return EAGAIN. */
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			poll(&p, 1, -1);
			continue;
		}
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(h->to, buf + off, n - off);
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	shutdown(h->to, SHUT_WR);
	return NULL;
}

/* Copy both ways until EOF on both, each direction in its own thread. One thread with blocking
 * writes deadlocks under a bulk echo: blocked writing upstream, it stops reading the upstream's
 * echo, whose writes then block too (seen in make bench: a 500 MB stream stuck for 12 minutes). */
static void relay(int a, int b)
{
	struct half up = { a, b }, down = { b, a };
	pthread_t t;
	if (pthread_create(&t, NULL, copy_half, &up)) {
		copy_half(&up); /* no thread: this direction first (enough for request/response) */
		copy_half(&down);
		return;
	}
	copy_half(&down);
	pthread_join(t, NULL);
}

static void *serve(void *arg)
{
	int c = (int)((long)arg & 0xffffff), inbound = (long)arg >> 24, up = -1;
	struct sockaddr_storage local = {}, orig = {};
	socklen_t ll = sizeof(local), ol = sizeof(orig);
	char host[64];
	getsockname(c, (void *)&local, &ll);
	int v6 = local.ss_family == AF_INET6;
	if (getsockopt(c, v6 ? SOL_IPV6 : SOL_IP, v6 ? IP6T_SO_ORIGINAL_DST : SO_ORIGINAL_DST,
		       &orig, &ol)) {
		printf("no-origdst %s\n", strerror(errno));
		fflush(stdout);
		close(c);
		return NULL;
	}
	if (orig.ss_family == AF_INET) {
		struct sockaddr_in *o = (void *)&orig;
		inet_ntop(AF_INET, &o->sin_addr, host, sizeof(host));
		printf("%s %s:%d\n", inbound ? "inbound" : "origdst", host, ntohs(o->sin_port));
	} else {
		struct sockaddr_in6 *o = (void *)&orig;
		inet_ntop(AF_INET6, &o->sin6_addr, host, sizeof(host));
		printf("%s [%s]:%d\n", inbound ? "inbound" : "origdst", host, ntohs(o->sin6_port));
	}
	fflush(stdout);
	up = socket(orig.ss_family, SOCK_STREAM, 0);
	if (inbound && orig.ss_family == AF_INET) {
		struct sockaddr_in src = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(0x7f000006) };
		bind(up, (void *)&src, sizeof(src));
	} else if (inbound) { /* ::6, which istio-iptables adds to lo (capture/run.go) */
		struct sockaddr_in6 src = { .sin6_family = AF_INET6 };
		src.sin6_addr.s6_addr[15] = 6;
		bind(up, (void *)&src, sizeof(src));
	}
	if (connect(up, (void *)&orig,
		    orig.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
						sizeof(struct sockaddr_in6)) == 0)
		relay(c, up);
	close(up);
	close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: mtproxy PORT UID[:GID] [INBOUND_PORT]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int port = atoi(argv[1]), in_port = argc > 3 ? atoi(argv[3]) : 0, n = in_port ? 4 : 2;
	struct pollfd l[4] = { { listen_on(AF_INET, port, 0), POLLIN, 0 },
			       { listen_on(AF_INET6, port, 0), POLLIN, 0 } };
	if (in_port) {
		l[2] = (struct pollfd){ listen_on(AF_INET, in_port, 1), POLLIN, 0 };
		l[3] = (struct pollfd){ listen_on(AF_INET6, in_port, 1), POLLIN, 0 };
	}
	/* UID[:GID]: the GID defaults to the UID, as istio-iptables' -g defaults to -u. */
	const char *gid = strchr(argv[2], ':');
	if (setgroups(0, NULL) || setgid(atoi(gid ? gid + 1 : argv[2])) || setuid(atoi(argv[2]))) {
		perror("mtproxy: setuid");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(l, n, -1) < 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(l[i].revents & POLLIN))
				continue;
			int c = accept(l[i].fd, NULL, NULL);
			if (c < 0)
				continue;
			pthread_t t;
			pthread_create(&t, NULL, serve, (void *)((long)c | (long)(i >= 2) << 24));
			pthread_detach(t);
		}
	}
}
