/*
 * flowgen: the benchmark's flow generator and silent identd.
 *
 *   flowgen send --proto udp|tcp --src IP --dst IP --flows N
 *                [--rate R] [--sport-min P] [--sport-max P]
 *                [--dport-min P] [--batch B]
 *   flowgen hold --port P [--secs S]
 *
 * send: one IPv4 packet per flow through a raw socket (IP_HDRINCL): a UDP
 * datagram with 8 payload bytes, or a TCP SYN. Every packet has a source and
 * destination port pair not used before in the run, so each one makes a new
 * conntrack entry on the router. Flow i uses source port
 * sport_min + i % (sport_max - sport_min + 1) and destination port
 * dport_min + i / (that count). --rate R paces to R packets per second
 * (0, the default: as fast as one core allows). Packets leave in batches of
 * --batch (sendmmsg; default 64); paced at a set rate, each batch leaves when
 * it is due, so --batch 1 spaces packets evenly. Prints one line,
 * key=value: sent, secs, rate, errors.
 *
 * hold: a TCP listener on port P (all addresses) that accepts every
 * connection, reads and discards what comes, and never writes: an identd
 * that never answers. Exits after --secs (default 3600) or on SIGTERM.
 *
 * Runs inside the lab's client namespace (the raw socket needs CAP_NET_RAW);
 * it sends only to the address given with --dst.
 *
 * Build: gcc -O2 -Wall -Wextra -o flowgen flowgen.c   (bench/run does it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define UDP_PAYLOAD 8
#define PKT_MAX 64

static void die(const char *what)
{
	fprintf(stderr, "flowgen: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: flowgen send --proto udp|tcp --src IP --dst IP --flows N [--rate R]\n"
		"                    [--sport-min P] [--sport-max P] [--dport-min P] [--batch B]\n"
		"       flowgen hold --port P [--secs S]\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long num(const char *s, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > max) {
		fprintf(stderr, "flowgen: bad number '%s' (0 .. %lu)\n", s, max);
		exit(2);
	}
	return v;
}

/* one's complement sum of 16-bit words, network order */
static uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

struct gen {
	int tcp;
	struct in_addr src, dst;
	unsigned long flows, rate, batch;
	unsigned sport_min, sport_max, dport_min;
};

/* Writes packet i into buf; returns its length. */
static size_t build(const struct gen *g, unsigned long i, uint8_t *buf)
{
	unsigned nsports = g->sport_max - g->sport_min + 1;
	uint16_t sport = (uint16_t)(g->sport_min + i % nsports);
	uint16_t dport = (uint16_t)(g->dport_min + i / nsports);
	size_t l4len = g->tcp ? 20 : 8 + UDP_PAYLOAD;
	size_t len = 20 + l4len;
	memset(buf, 0, len);
	/* IPv4 header: the kernel fills in the total length, id and checksum */
	buf[0] = 0x45;
	buf[8] = 64;
	buf[9] = g->tcp ? IPPROTO_TCP : IPPROTO_UDP;
	memcpy(buf + 12, &g->src, 4);
	memcpy(buf + 16, &g->dst, 4);
	uint8_t *l4 = buf + 20;
	l4[0] = sport >> 8;
	l4[1] = sport & 0xff;
	l4[2] = dport >> 8;
	l4[3] = dport & 0xff;
	if (g->tcp) {
		uint32_t seq = htonl((uint32_t)(i * 2654435761u));
		memcpy(l4 + 4, &seq, 4);
		l4[12] = 5 << 4; /* data offset */
		l4[13] = 0x02;   /* SYN */
		l4[14] = 0xfa;   /* window 64240 */
		l4[15] = 0xf0;
	} else {
		l4[4] = (uint8_t)(l4len >> 8);
		l4[5] = (uint8_t)(l4len & 0xff);
		memcpy(l4 + 8, "masqlog!", UDP_PAYLOAD);
	}
	/* pseudo header + transport header and payload */
	uint32_t s = sum16(buf + 12, 8, 0);
	s += buf[9];
	s += (uint32_t)l4len;
	s = sum16(l4, l4len, s);
	uint16_t c = fold(s);
	if (!g->tcp && c == 0)
		c = 0xffff;
	uint8_t *ck = g->tcp ? l4 + 16 : l4 + 6;
	ck[0] = c >> 8;
	ck[1] = c & 0xff;
	return len;
}

static int cmd_send(int argc, char **argv)
{
	struct gen g = {.rate = 0, .batch = 64, .sport_min = 1024, .sport_max = 65535,
			.dport_min = 20000};
	const char *proto = NULL, *src = NULL, *dst = NULL;
	int have_flows = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--proto"))
			proto = v;
		else if (!strcmp(a, "--src"))
			src = v;
		else if (!strcmp(a, "--dst"))
			dst = v;
		else if (!strcmp(a, "--flows"))
			g.flows = num(v, 100000000), have_flows = 1;
		else if (!strcmp(a, "--rate"))
			g.rate = num(v, 100000000);
		else if (!strcmp(a, "--batch"))
			g.batch = num(v, MAX_BATCH);
		else if (!strcmp(a, "--sport-min"))
			g.sport_min = (unsigned)num(v, 65535);
		else if (!strcmp(a, "--sport-max"))
			g.sport_max = (unsigned)num(v, 65535);
		else if (!strcmp(a, "--dport-min"))
			g.dport_min = (unsigned)num(v, 65535);
		else
			usage();
	}
	if (!proto || !src || !dst || !have_flows || g.batch == 0 ||
	    g.sport_min == 0 || g.sport_min > g.sport_max)
		usage();
	if (!strcmp(proto, "tcp"))
		g.tcp = 1;
	else if (strcmp(proto, "udp"))
		usage();
	if (inet_pton(AF_INET, src, &g.src) != 1 || inet_pton(AF_INET, dst, &g.dst) != 1) {
		fprintf(stderr, "flowgen: --src and --dst take IPv4 addresses\n");
		exit(2);
	}
	unsigned nsports = g.sport_max - g.sport_min + 1;
	unsigned long last_dport = g.dport_min + (g.flows ? (g.flows - 1) / nsports : 0);
	if (last_dport > 65535) {
		fprintf(stderr, "flowgen: %lu flows need destination ports up to %lu (> 65535)\n",
			g.flows, last_dport);
		exit(2);
	}

	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0)
		die("raw socket");
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

	static uint8_t bufs[MAX_BATCH][PKT_MAX];
	static struct iovec iov[MAX_BATCH];
	static struct mmsghdr msgs[MAX_BATCH];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = g.dst};
	for (unsigned b = 0; b < MAX_BATCH; b++) {
		iov[b].iov_base = bufs[b];
		msgs[b].msg_hdr.msg_iov = &iov[b];
		msgs[b].msg_hdr.msg_iovlen = 1;
		msgs[b].msg_hdr.msg_name = &to;
		msgs[b].msg_hdr.msg_namelen = sizeof to;
	}

	/* wake up on time: the default 50 us timer slack would bunch packets */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	unsigned long sent = 0, errors = 0;
	double t0 = now();
	while (sent < g.flows) {
		unsigned long n = g.flows - sent;
		if (n > g.batch)
			n = g.batch;
		if (g.rate) {
			/* wait until this batch is due */
			double due = t0 + (double)sent / (double)g.rate;
			double wait = due - now();
			if (wait > 0) {
				struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
		for (unsigned long b = 0; b < n; b++)
			iov[b].iov_len = build(&g, sent + b, bufs[b]);
		int r = sendmmsg(fd, msgs, (unsigned)n, 0);
		if (r < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EPERM) {
				/* a full queue or a dropped packet: that flow is lost,
				 * counted, and the next one goes */
				errors++;
				sent++;
				continue;
			}
			die("sendmmsg");
		}
		sent += (unsigned long)r;
	}
	double secs = now() - t0;
	printf("sent=%lu secs=%.6f rate=%.0f errors=%lu\n", sent, secs,
	       secs > 0 ? (double)sent / secs : 0.0, errors);
	return 0;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

#define MAX_HELD 1024

static int cmd_hold(int argc, char **argv)
{
	unsigned long port = 0, secs = 3600;
	for (int i = 0; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--port"))
			port = num(argv[++i], 65535);
		else if (!strcmp(argv[i], "--secs"))
			secs = num(argv[++i], 86400);
		else
			usage();
	}
	if (port == 0)
		usage();
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET6, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	int on = 1, off = 0;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				 .sin6_addr = IN6ADDR_ANY_INIT};
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	if (listen(ls, 1024) < 0)
		die("listen");
	printf("holding port %lu\n", port);
	fflush(stdout);

	struct pollfd fds[MAX_HELD + 1];
	int n = 0;
	unsigned long accepted = 0;
	fds[0] = (struct pollfd){.fd = ls, .events = POLLIN};
	double end = now() + (double)secs;
	while (!stop && now() < end) {
		if (poll(fds, (nfds_t)n + 1, 500) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (fds[0].revents & POLLIN) {
			int c = accept(ls, NULL, NULL);
			if (c >= 0) {
				accepted++;
				if (n < MAX_HELD)
					fds[++n] = (struct pollfd){.fd = c, .events = POLLIN};
				else
					close(c); /* MAX_HELD connections held: close the newest */
			}
		}
		for (int i = 1; i <= n; i++) {
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[512];
			ssize_t r = read(fds[i].fd, buf, sizeof buf);
			if (r <= 0) {
				/* the asker gave up: forget the connection */
				close(fds[i].fd);
				fds[i] = fds[n--];
				i--;
			}
		}
	}
	printf("accepted=%lu\n", accepted);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "send"))
		return cmd_send(argc - 2, argv + 2);
	if (!strcmp(argv[1], "hold"))
		return cmd_hold(argc - 2, argv + 2);
	usage();
	return 2;
}
