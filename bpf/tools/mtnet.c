// SPDX-License-Identifier: GPL-2.0
/* Socket test and bench tool (C, so kernel differences are not hidden by a runtime).
 *   mtnet serve ADDR                       echo server; echoes until EOF, then half-closes
 *   mtnet serve1 ADDR                      the same, one connection at a time (no thread each)
 *   mtnet integrity ADDR MSGS CONNS SEED   random 1 B..1 MB messages (log-uniform), echoed and
 *                                          checksummed both ways, CONNS concurrent connections,
 *                                          then half-close: EOF must follow the last byte
 *   mtnet pingpong ADDR SIZE ITERS         request/response RTT: p50/p99 in µs
 *   mtnet stream ADDR SIZE MB              one-way throughput (echo discarded by a reader thread)
 *   mtnet connrate ADDR SECONDS            connect+1 B echo+close per second
 *   mtnet reconnect ADDR TIMES             1 B echo, connect(AF_UNSPEC), connect again on the same
 *                                          socket, TIMES times, then a last echo
 *   mtnet portreuse ADDR                   (with MTNET_BIND_PORT) 1 B echo, connect(AF_UNSPEC) and
 *                                          keep that socket open; then a second socket on the same
 *                                          port and destination must get its own echo within 3 s
 * ADDR: 1.2.3.4:PORT | [::1]:PORT | unix:/path. Results are one JSON line on stdout.
 * MTNET_BIND_PORT=N binds client sockets to source port N first; MTNET_MARK=N sets SO_MARK on
 * them (ztunnel's own sockets carry 0x539). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_storage addr;
static socklen_t addrlen;

static void die(const char *m)
{
	fprintf(stderr, "mtnet: %s: %s\n", m, strerror(errno));
	exit(1);
}

static void parse_addr(const char *s)
{
	memset(&addr, 0, sizeof(addr));
	if (!strncmp(s, "unix:", 5)) {
		struct sockaddr_un *u = (void *)&addr;
		u->sun_family = AF_UNIX;
		snprintf(u->sun_path, sizeof(u->sun_path), "%s", s + 5);
		addrlen = sizeof(*u);
		return;
	}
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon) {
		fprintf(stderr, "mtnet: bad address %s\n", s);
		exit(2);
	}
	int hl = colon - s;
	if (s[0] == '[') {
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = 0;
	} else {
		memcpy(host, s, hl);
		host[hl] = 0;
	}
	int port = atoi(colon + 1);
	struct sockaddr_in *a = (void *)&addr;
	struct sockaddr_in6 *a6 = (void *)&addr;
	if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		addrlen = sizeof(*a);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		addrlen = sizeof(*a6);
	} else {
		fprintf(stderr, "mtnet: bad address %s\n", s);
		exit(2);
	}
}

static int dial(void)
{
	int fd = socket(addr.ss_family, SOCK_STREAM, 0), one = 1;
	const char *bind_port =
		getenv("MTNET_BIND_PORT"); /* fixed source port: tests pods that reuse one */
	const char *mark = getenv("MTNET_MARK");
	if (fd < 0)
		die("socket");
	if (mark) {
		int m = (int)strtol(mark, NULL, 0);
		if (setsockopt(fd, SOL_SOCKET, SO_MARK, &m, sizeof(m)))
			die("SO_MARK");
	}
	if (bind_port && addr.ss_family != AF_UNIX) {
		struct sockaddr_storage b = { .ss_family = addr.ss_family };
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (addr.ss_family == AF_INET)
			((struct sockaddr_in *)&b)->sin_port = htons(atoi(bind_port));
		else
			((struct sockaddr_in6 *)&b)->sin6_port = htons(atoi(bind_port));
		if (bind(fd, (void *)&b,
			 addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
						     sizeof(struct sockaddr_in6)))
			die("bind");
	}
	if (connect(fd, (void *)&addr, addrlen))
		die("connect");
	if (addr.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static long spurious_eagain; /* blocking reads that returned EAGAIN (a sockmap receive quirk) */

static int readn(int fd, void *b, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = read(fd, (char *)b + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (r <= 0)
			return -1;
		off += r;
	}
	return 0;
}

static int writen(int fd, const void *b, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, (const char *)b + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* ---- echo server ---- */
static void *echo(void *arg)
{
	int c = (int)(long)arg;
	char *buf = malloc(1 << 20);
	ssize_t n;
	for (;;) {
		n = read(c, buf, 1 << 20);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* see readn */
		if (n <= 0 || writen(c, buf, n))
			break;
	}
	shutdown(c, SHUT_WR); /* half-close after the peer's EOF */
	close(c);
	free(buf);
	return NULL;
}

/* serial: one connection at a time on the accepting thread, like an event-loop worker; no
 * thread creation per connection, so connect-rate measures the datapath, not pthread_create. */
static int __attribute__((noreturn)) serve(int serial)
{
	int l = socket(addr.ss_family, SOCK_STREAM, 0), one = 1;
	if (addr.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&addr)->sun_path);
	else
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr.ss_family == AF_INET6)
		setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l, (void *)&addr, addrlen) || listen(l, 4096))
		die("bind/listen");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		if (addr.ss_family != AF_UNIX)
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (serial) {
			echo((void *)(long)c);
			continue;
		}
		pthread_t t;
		pthread_create(&t, NULL, echo, (void *)(long)c);
		pthread_detach(t);
	}
}

/* ---- integrity ---- */
static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}
static uint32_t msg_size(uint64_t *s)
{
	double e = (double)(rng(s) % 2001) / 100.0;
	uint32_t n = (uint32_t)(1u << (int)e) + rng(s) % (1u << (int)e);
	return n > (1u << 20) ? (1u << 20) : (n ? n : 1);
}
static uint64_t fnv(const unsigned char *b, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct job {
	int fd;
	int msgs;
	uint64_t seed;
	uint64_t sent_sum, recv_sum, bytes;
	int ok;
	const char *err;
	char why[96];
};

static void *writer(void *arg)
{
	struct job *j = arg;
	uint64_t s = j->seed;
	unsigned char *buf = malloc((1 << 20) + 4);
	for (int m = 0; m < j->msgs; m++) {
		uint32_t n = msg_size(&s);
		for (uint32_t i = 0; i < n; i++)
			buf[4 + i] = (unsigned char)rng(&s);
		memcpy(buf, &n, 4);
		j->sent_sum = fnv(buf + 4, n, j->sent_sum);
		if (writen(j->fd, buf, n + 4)) {
			j->err = "write failed";
			break;
		}
	}
	shutdown(j->fd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *integrity_conn(void *arg)
{
	struct job *j = arg;
	pthread_t w;
	unsigned char *buf = malloc(1 << 20);
	j->fd = dial();
	j->sent_sum = j->recv_sum = 1469598103934665603ULL;
	pthread_create(&w, NULL, writer, j);
	for (int m = 0; m < j->msgs; m++) {
		uint32_t n;
		if (readn(j->fd, &n, 4)) {
			snprintf(j->why, sizeof(j->why), "EOF before message %d of %d", m + 1,
				 j->msgs);
			j->err = j->why;
			break;
		}
		if (n == 0 || n > (1u << 20)) {
			snprintf(j->why, sizeof(j->why), "bad frame length %u at message %d", n,
				 m + 1);
			j->err = j->why;
			break;
		}
		if (readn(j->fd, buf, n)) {
			snprintf(j->why, sizeof(j->why), "EOF inside message %d of %d", m + 1,
				 j->msgs);
			j->err = j->why;
			break;
		}
		j->recv_sum = fnv(buf, n, j->recv_sum);
		j->bytes += n;
	}
	pthread_join(w, NULL);
	char extra;
	ssize_t r; /* after the echo of our half-close: EOF, no stray bytes */
	while ((r = read(j->fd, &extra, 1)) < 0 && (errno == EAGAIN || errno == EINTR))
		__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
	if (!j->err && r != 0)
		j->err = r > 0 ? "bytes after the last message" : "no EOF after half-close";
	j->ok = !j->err && j->sent_sum == j->recv_sum;
	if (!j->err && !j->ok)
		j->err = "checksum mismatch";
	close(j->fd);
	free(buf);
	return NULL;
}

static int integrity(int msgs, int conns, uint64_t seed)
{
	pthread_t *t = calloc(conns, sizeof(*t));
	struct job *j = calloc(conns, sizeof(*j));
	double t0 = now_us();
	for (int i = 0; i < conns; i++) {
		j[i].msgs = msgs / conns + (i < msgs % conns);
		j[i].seed = seed * 7919 + i + 1;
		pthread_create(&t[i], NULL, integrity_conn, &j[i]);
	}
	uint64_t bytes = 0;
	int ok = 1;
	const char *err = "";
	for (int i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		bytes += j[i].bytes;
		if (!j[i].ok) {
			ok = 0;
			err = j[i].err;
		}
	}
	printf("{\"ok\":%s,\"messages\":%d,\"connections\":%d,\"bytesEachWay\":%llu,\"seconds\":%."
	       "3f,\"spuriousEagain\":%ld,\"error\":\"%s\"}\n",
	       ok ? "true" : "false", msgs, conns, (unsigned long long)bytes, (now_us() - t0) / 1e6,
	       spurious_eagain, err);
	return ok ? 0 : 1;
}

/* ---- benches ---- */
static int cmp(const void *a, const void *b)
{
	double x = *(double *)a, y = *(double *)b;
	return x < y ? -1 : x > y;
}

static int pingpong(int size, int iters)
{
	int fd = dial();
	char *buf = calloc(1, size);
	double *rtt = malloc(sizeof(double) * iters);
	for (int i = 0; i < iters + 1000; i++) {
		double t0 = now_us();
		if (writen(fd, buf, size) || readn(fd, buf, size))
			die("pingpong");
		if (i >= 1000)
			rtt[i - 1000] = now_us() - t0;
	}
	qsort(rtt, iters, sizeof(double), cmp);
	printf("{\"size\":%d,\"iters\":%d,\"p50us\":%.2f,\"p99us\":%.2f,\"maxus\":%.2f}\n", size,
	       iters, rtt[iters / 2], rtt[iters * 99 / 100], rtt[iters - 1]);
	close(fd);
	return 0;
}

static void *drain(void *arg)
{
	int fd = (int)(long)arg;
	char *b = malloc(1 << 20);
	while (read(fd, b, 1 << 20) > 0)
		;
	free(b);
	return NULL;
}

static int stream(int size, int mb)
{
	int fd = dial();
	char *buf = calloc(1, size);
	pthread_t t;
	pthread_create(&t, NULL, drain, (void *)(long)fd);
	long long total = (long long)mb << 20;
	double t0 = now_us();
	for (long long sent = 0; sent < total; sent += size)
		if (writen(fd, buf, size))
			die("stream");
	shutdown(fd, SHUT_WR);
	pthread_join(t, NULL); /* echo fully drained: both directions done */
	double sec = (now_us() - t0) / 1e6;
	printf("{\"size\":%d,\"MB\":%d,\"MBps\":%.1f}\n", size, mb, mb / sec);
	close(fd);
	return 0;
}

static int connrate(double seconds)
{
	double t0 = now_us(), end = t0 + seconds * 1e6;
	long n = 0;
	char b = 'x';
	while (now_us() < end) {
		int fd = dial();
		if (writen(fd, &b, 1) || readn(fd, &b, 1))
			die("connrate");
		close(fd);
		n++;
	}
	printf("{\"connections\":%ld,\"perSecond\":%.0f}\n", n, n / ((now_us() - t0) / 1e6));
	return 0;
}

static int reconnect(int times)
{
	int fd = dial();
	char b = 'x';
	for (int i = 0; i <= times; i++) {
		if (writen(fd, &b, 1) || readn(fd, &b, 1))
			die("reconnect echo");
		if (i == times)
			break;
		struct sockaddr un = { .sa_family = AF_UNSPEC };
		if (connect(fd, &un, sizeof(un)))
			die("connect AF_UNSPEC");
		if (connect(fd, (void *)&addr, addrlen))
			die("connect again");
	}
	printf("{\"ok\":true,\"reconnects\":%d}\n", times);
	close(fd);
	return 0;
}

static int portreuse(void)
{
	if (!getenv("MTNET_BIND_PORT"))
		die("portreuse needs MTNET_BIND_PORT");
	char b = 'a', got = 0;
	int idle = dial();
	if (writen(idle, &b, 1) || readn(idle, &b, 1))
		die("first echo");
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	if (connect(idle, &un, sizeof(un)))
		die("connect AF_UNSPEC");
	usleep(300000); /* the proxy closes its side of the first connection meanwhile */
	int fd = dial(); /* the same 4-tuple as the idle socket had */
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	b = 'b';
	int ok = !writen(fd, &b, 1) && read(fd, &got, 1) == 1 && got == 'b';
	printf("{\"ok\":%s}\n", ok ? "true" : "false");
	close(fd);
	close(idle);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3) {
		fprintf(stderr, "usage: see mtnet.c\n");
		return 2;
	}
	parse_addr(argv[2]);
	if (!strcmp(argv[1], "serve"))
		return serve(0);
	if (!strcmp(argv[1], "serve1"))
		return serve(1);
	if (!strcmp(argv[1], "integrity") && argc == 6)
		return integrity(atoi(argv[3]), atoi(argv[4]), strtoull(argv[5], NULL, 10));
	if (!strcmp(argv[1], "pingpong") && argc == 5)
		return pingpong(atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(argv[1], "stream") && argc == 5)
		return stream(atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(argv[1], "portreuse") && argc == 3)
		return portreuse();
	if (!strcmp(argv[1], "reconnect") && argc == 4)
		return reconnect(atoi(argv[3]));
	if (!strcmp(argv[1], "connrate") && argc == 4)
		return connrate(atof(argv[3]));
	fprintf(stderr, "mtnet: bad arguments\n");
	return 2;
}
