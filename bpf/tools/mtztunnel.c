// SPDX-License-Identifier: GPL-2.0
/* Test/bench ztunnel stand-in, shaped like ztunnel's in-pod mode (istio/ztunnel
 * src/inpod/: one ztunnel process enters each enrolled pod's network namespace with setns(2) and
 * opens its listeners there; its own sockets carry SO_MARK 0x539). Per pod NETNS given:
 *   15001 outbound  accept, read SO_ORIGINAL_DST (what the capture saved), connect there with the
 *                   mark, relay both ways. Prints "out NS ORIG peer=PEER".
 *   15006 inbound   accept; the connection's local address is the original destination (TPROXY
 *                   semantics, as sk_lookup + sk_assign give); deliver to it with the mark, relay.
 *                   Prints "in NS LOCAL peer=PEER".
 *   15008 HBONE     accept, print "hbone NS LOCAL", echo.
 *   15053 DNS       UDP and TCP: print "dns NS udp|tcp peer=PEER", echo the query back.
 * Listeners are 0.0.0.0 and [::] (v6only) per port. NS is the argument's index (0, 1, …).
 * MTZT_INBOUND_SOURCE=IPv4 makes inbound deliveries (IPv4) leave from that address instead of the
 * pod's own: a source that is not the pod's, as ztunnel's original-source option gives.
 * Usage: mtztunnel NETNS_PATH...; prints "ready" once every pod's listeners are up. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SO_ORIGINAL_DST 80
#define MARK		0x539

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int pods_up;

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&out_lock);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	va_end(ap);
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char h[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
		snprintf(out, n, "%s:%u", h, ntohs(a->sin_port));
	} else {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
		snprintf(out, n, "[%s]:%u", h, ntohs(a->sin6_port));
	}
}

static int listen_on(int family, int type, int port)
{
	int fd = socket(family, type, 0), one = 1;
	struct sockaddr_storage ss = {};
	socklen_t len;
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		len = sizeof(*a);
	}
	if (bind(fd, (void *)&ss, len) || (type == SOCK_STREAM && listen(fd, 512))) {
		fprintf(stderr, "mtztunnel: bind %d/%d: %s\n", family, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void relay(int a, int b)
{
	struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
	char buf[65536];
	int open = 2;
	while (open) {
		if (poll(p, 2, -1) < 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(p[1 - i].fd, SHUT_WR);
				p[i].fd = -1;
				open--;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[1 - i].fd, buf + off, n - off);
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

/* Connect to `to` with ztunnel's mark (the capture must let this one through), from `src` when
 * given (IPv4 only). */
static int dial(const struct sockaddr_storage *to, const char *src)
{
	int fd = socket(to->ss_family, SOCK_STREAM, 0), mark = MARK;
	setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	if (src && to->ss_family == AF_INET) {
		struct sockaddr_in b = { .sin_family = AF_INET };
		inet_pton(AF_INET, src, &b.sin_addr);
		if (bind(fd, (void *)&b, sizeof(b)))
			fprintf(stderr, "mtztunnel: bind %s: %s\n", src, strerror(errno));
	}
	if (connect(fd, (const void *)to,
		    to->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
					       sizeof(struct sockaddr_in6))) {
		close(fd);
		return -1;
	}
	return fd;
}

struct conn {
	int fd, port, ns;
};

static void *serve(void *arg)
{
	struct conn c = *(struct conn *)arg;
	struct sockaddr_storage peer = {}, local = {}, orig = {};
	socklen_t pl = sizeof(peer), ll = sizeof(local), ol;
	char ps[80], ls[80], os[80];
	free(arg);
	getpeername(c.fd, (void *)&peer, &pl);
	getsockname(c.fd, (void *)&local, &ll);
	fmt_addr(&peer, ps, sizeof(ps));
	fmt_addr(&local, ls, sizeof(ls));
	if (c.port == 15001) {
		ol = sizeof(orig);
		if (getsockopt(c.fd, local.ss_family == AF_INET ? SOL_IP : SOL_IPV6,
			       SO_ORIGINAL_DST, &orig, &ol)) {
			say("out %d none peer=%s", c.ns, ps);
			close(c.fd);
			return NULL;
		}
		fmt_addr(&orig, os, sizeof(os));
		say("out %d %s peer=%s", c.ns, os, ps);
		int up = dial(&orig, NULL);
		if (up >= 0) {
			relay(c.fd, up);
			close(up);
		}
	} else if (c.port == 15006) {
		say("in %d %s peer=%s", c.ns, ls, ps);
		int up = dial(&local, getenv("MTZT_INBOUND_SOURCE"));
		if (up >= 0) {
			relay(c.fd, up);
			close(up);
		}
	} else {
		say("%s %d %s peer=%s", c.port == 15008 ? "hbone" : "dns", c.ns,
		    c.port == 15008 ? ls : "tcp", ps);
		char buf[4096];
		ssize_t n;
		while ((n = read(c.fd, buf, sizeof(buf))) > 0)
			if (write(c.fd, buf, n) != n)
				break;
	}
	close(c.fd);
	return NULL;
}

struct listener {
	int fd, port, ns;
};

static void *accept_loop(void *arg)
{
	struct listener l = *(struct listener *)arg;
	free(arg);
	for (;;) {
		int fd = accept(l.fd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn *c = malloc(sizeof(*c));
		*c = (struct conn){ fd, l.port, l.ns };
		pthread_t t;
		pthread_create(&t, NULL, serve, c);
		pthread_detach(t);
	}
	return NULL;
}

static void *dns_udp(void *arg)
{
	struct listener l = *(struct listener *)arg;
	char buf[2048], ps[80];
	free(arg);
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		ssize_t n = recvfrom(l.fd, buf, sizeof(buf), 0, (void *)&peer, &pl);
		if (n < 0)
			continue;
		fmt_addr(&peer, ps, sizeof(ps));
		say("dns %d udp peer=%s", l.ns, ps);
		sendto(l.fd, buf, n, 0, (void *)&peer, pl);
	}
	return NULL;
}

struct pod {
	const char *netns;
	int ns;
};

/* One thread per pod: setns(2) is per thread, and threads it starts stay in that netns. */
static void *pod_thread(void *arg)
{
	struct pod *p = arg;
	static const int ports[] = { 15001, 15006, 15008, 15053 };
	int nsfd = open(p->netns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET)) {
		fprintf(stderr, "mtztunnel: setns %s: %s\n", p->netns, strerror(errno));
		exit(1);
	}
	close(nsfd);
	for (int f = 0; f < 2; f++)
		for (int i = 0; i < 4; i++) {
			int fam = f ? AF_INET6 : AF_INET;
			struct listener *l = malloc(sizeof(*l));
			*l = (struct listener){ listen_on(fam, SOCK_STREAM, ports[i]), ports[i],
						p->ns };
			if (l->fd < 0)
				exit(1);
			pthread_t t;
			pthread_create(&t, NULL, accept_loop, l);
			if (ports[i] == 15053) {
				struct listener *u = malloc(sizeof(*u));
				*u = (struct listener){ listen_on(fam, SOCK_DGRAM, 15053), 15053,
							p->ns };
				if (u->fd < 0)
					exit(1);
				pthread_create(&t, NULL, dns_udp, u);
			}
		}
	pthread_mutex_lock(&out_lock);
	pods_up++;
	pthread_mutex_unlock(&out_lock);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mtztunnel NETNS_PATH...\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a peer closing mid-relay ends that relay, not the process */
	for (int i = 1; i < argc; i++) {
		struct pod *p = malloc(sizeof(*p));
		*p = (struct pod){ argv[i], i - 1 };
		pthread_t t;
		pthread_create(&t, NULL, pod_thread, p);
	}
	for (;;) {
		pthread_mutex_lock(&out_lock);
		int up = pods_up;
		pthread_mutex_unlock(&out_lock);
		if (up == argc - 1)
			break;
		usleep(1000);
	}
	say("ready");
	for (;;)
		pause();
}
