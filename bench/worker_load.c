/* teepy-worker-load: one request POSTed to a running worker (teepy serve) over and over,
 * timed (bench/worker runs it). Plain HTTP/1.1 on TCP, libc only: each of
 * --connections threads keeps one connection alive and sends one request, reads its
 * whole answer, then sends the next. An answer counts when its status is 200 (and,
 * with --expect, its body holds that text); anything else is a failure, counted and
 * said, and the exit code is 1. Prints p50, p90, p99 and max latency (ms) and
 * requests a second as one JSON line. A benchmark tool: built beside teepy, never
 * installed. */
#include "loadlib.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG	   "teepy-worker-load"
#define ANSWER_MAX (16 << 20) /* an answer larger than this is a failure */

const char load_prog[] = PROG;

struct opts {
	const char *host, *port, *path, *body_file, *expect;
	char *request; /* the whole request: head and body */
	size_t request_size;
	unsigned connections, warmup;
	double duration;	/* seconds measured, unless requests ends it first */
	unsigned long requests; /* measured requests a connection; 0: no limit */
};

/* One connection: its thread, its socket, what it measured. */
struct conn {
	const struct opts *o;
	const struct addrinfo *addr;
	pthread_barrier_t *ready;
	int fd;
	char *buf; /* the answer being read */
	size_t size, cap;
	struct samples lat;
	unsigned long ok, failures, connects;
	char error[512]; /* the first failure */
};

/* The first failure of a connection is kept; the rest are counted. */
static void failed(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failed(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	c->failures++;
	if (c->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

static int connect_to(struct conn *c)
{
	int one = 1;

	if (c->fd >= 0)
		close(c->fd);
	c->fd =
	    socket(c->addr->ai_family, c->addr->ai_socktype | SOCK_CLOEXEC, c->addr->ai_protocol);
	if (c->fd < 0)
		return -errno;
	/* one small request and one answer at a time: Nagle would hold them back */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, c->addr->ai_addr, c->addr->ai_addrlen) < 0) {
		int e = -errno;
		close(c->fd);
		c->fd = -1;
		return e;
	}
	return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* More of the answer into c->buf; 0 at the end of the stream. */
static ssize_t read_more(struct conn *c)
{
	ssize_t r;

	if (c->size + 4096 + 1 > c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 65536;
		char *grown;
		if (cap > ANSWER_MAX + 1)
			return -EFBIG;
		if (!(grown = realloc(c->buf, cap)))
			return -ENOMEM;
		c->buf = grown;
		c->cap = cap;
	}
	do
		r = recv(c->fd, c->buf + c->size, c->cap - c->size - 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	c->size += (size_t)r;
	c->buf[c->size] = '\0';
	return r;
}

/* The value of header name in the head (which ends at head_end), or NULL. */
static const char *header(const char *head, const char *head_end, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p && p + 2 < head_end;
	     p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
			const char *v = p + 3 + n;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	}
	return NULL;
}

/* One whole answer read: its status, its body at c->buf + *body. The worker's answers
 * carry Content-Length (libmicrohttpd knows their sizes); chunked ones are not
 * expected and count as failures. *keep: whether the connection stays open. */
static int read_answer(struct conn *c, int *status, size_t *body, bool *keep)
{
	const char *end, *v;
	size_t head_size;
	unsigned long length;
	ssize_t r;

	c->size = 0;
	while (!c->size || !(end = strstr(c->buf, "\r\n\r\n"))) {
		if ((r = read_more(c)) <= 0)
			return r < 0 ? (int)r : -ECONNRESET;
	}
	head_size = (size_t)(end - c->buf) + 4;
	if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
		return -EPROTO;
	if (!(v = header(c->buf, end, "Content-Length")))
		return -EPROTO;
	length = strtoul(v, NULL, 10);
	if (length > ANSWER_MAX)
		return -EFBIG;
	v = header(c->buf, end, "Connection");
	*keep = !(v && strncasecmp(v, "close", 5) == 0);
	while (c->size < head_size + length) {
		if ((r = read_more(c)) <= 0)
			return r < 0 ? (int)r : -ECONNRESET;
	}
	*body = head_size;
	return 0;
}

/* One request and its answer on the connection, its time (ms) in *ms. Returns 0, or
 * -1 with the failure counted. A connection the worker closed is made again, and
 * counted; the request is then sent once more. */
static int request(struct conn *c, double *ms)
{
	const struct opts *o = c->o;
	int status = 0, r = 0;
	size_t body = 0;
	bool keep = true;
	double t0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0) {
			if ((r = connect_to(c)) < 0) {
				failed(c, "connect to %s:%s: %s", o->host, o->port, strerror(-r));
				return -1;
			}
			c->connects++; /* counted from the end of the warm-up */
		}
		t0 = now_ms();
		if ((r = send_all(c->fd, o->request, o->request_size)) == 0 &&
		    (r = read_answer(c, &status, &body, &keep)) == 0)
			break;
		/* a kept-alive connection the worker closed meanwhile: once more, anew */
		close(c->fd);
		c->fd = -1;
	}
	if (r < 0) {
		failed(c, "%s: %s", o->path, strerror(-r));
		return -1;
	}
	*ms = now_ms() - t0;
	if (!keep) {
		close(c->fd);
		c->fd = -1;
	}
	if (status != 200) {
		failed(c, "%s: HTTP %d: %.300s", o->path, status, c->buf + body);
		return -1;
	}
	if (o->expect && !strstr(c->buf + body, o->expect)) {
		failed(c, "%s: the answer does not hold '%s': %.300s", o->path, o->expect,
		       c->buf + body);
		return -1;
	}
	return 0;
}

static void *run(void *arg)
{
	struct conn *c = arg;
	const struct opts *o = c->o;
	double ms, deadline;
	unsigned long i;
	bool warm = true;

	for (i = 0; i < o->warmup; i++)
		if (request(c, &ms) < 0) {
			warm = false;
			break;
		}
	c->connects = 0;
	pthread_barrier_wait(c->ready);
	if (!warm)
		return NULL; /* the reason is said, nothing is measured */
	deadline = now_ms() + o->duration * 1e3;
	for (i = 0; (!o->requests || i < o->requests) && (o->requests || now_ms() < deadline);
	     i++) {
		if (request(c, &ms) < 0)
			continue;
		c->ok++;
		if (add_sample(&c->lat, ms) < 0) {
			failed(c, "out of memory");
			break;
		}
	}
	return NULL;
}

/* ---- figures ---- */

/* ---- options ---- */

static void usage(FILE *f)
{
	fputs("usage: " PROG " [--connections N] [--requests N | --duration S] [--warmup N]\n"
	      "       [--expect TEXT] HOST PORT PATH BODY-FILE\n"
	      "POSTs BODY-FILE (application/json) to http://HOST:PORT/PATH on --connections kept-\n"
	      "alive connections (default 1), one request at a time each, and prints one JSON\n"
	      "line: latency p50, p90, p99, mean and max (ms), requests a second, failures.\n"
	      "--requests N: N measured requests a connection (instead of --duration, default\n"
	      "5 s). --warmup N: requests a connection before measuring (default 10).\n"
	      "--expect TEXT: every 200 answer's body must hold TEXT.\n"
	      "Exit 0 when every answer was 200, 1 when one was not, 2 for a usage error.\n",
	      f);
}

/* The body file read and the request's bytes made once, shared by every connection. */
static void make_request(struct opts *o)
{
	FILE *f = fopen(o->body_file, "rb");
	struct stat st;
	size_t head_cap = 512 + strlen(o->path) + strlen(o->host) + strlen(o->port);
	int head;

	if (!f || fstat(fileno(f), &st) < 0)
		die("%s: %s", o->body_file, strerror(errno));
	if (st.st_size > ANSWER_MAX)
		die("%s: larger than %d bytes", o->body_file, ANSWER_MAX);
	if (!(o->request = malloc(head_cap + (size_t)st.st_size)))
		die("out of memory");
	head = snprintf(o->request, head_cap,
			"POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
			"Content-Length: %lld\r\n\r\n",
			o->path, o->host, o->port, (long long)st.st_size);
	if (head < 0 || (size_t)head >= head_cap)
		die("%s: the request head does not fit", o->path);
	if (fread(o->request + head, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		die("%s: cannot read it whole", o->body_file);
	fclose(f);
	o->request_size = (size_t)head + (size_t)st.st_size;
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "connections", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'q' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "expect", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int ch;

	*o = (struct opts){ .connections = 1, .warmup = 10, .duration = 5 };
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o->connections = (unsigned)count_option("connections", optarg, 1024);
			if (!o->connections)
				die("--connections 0: at least one");
			break;
		case 'd':
			errno = 0;
			o->duration = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->duration > 0) ||
			    o->duration > 3600)
				die("--duration %.40s: not seconds between 0 and 3600", optarg);
			break;
		case 'q':
			o->requests = count_option("requests", optarg, 100000000);
			break;
		case 'w':
			o->warmup = (unsigned)count_option("warmup", optarg, 1000000);
			break;
		case 'e':
			o->expect = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (argc - optind != 4) {
		usage(stderr);
		exit(2);
	}
	o->host = argv[optind];
	o->port = argv[optind + 1];
	o->path = argv[optind + 2];
	o->body_file = argv[optind + 3];
	if (o->path[0] != '/' || strpbrk(o->path, " \r\n") || strlen(o->path) > 2048)
		die("%.80s: not a path (it starts with /, without spaces)", o->path);
	if (strpbrk(o->host, " \r\n/") || strlen(o->host) > 255)
		die("%.80s: not a host name", o->host);
	make_request(o);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	static const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct samples lat = { 0 };
	unsigned long ok = 0, failures = 0, connects = 0;
	struct addrinfo *addr;
	pthread_barrier_t ready;
	pthread_t *threads;
	struct conn *cs;
	struct opts o;
	double t0, seconds;
	int r;

	parse(argc, argv, &o);
	if ((r = getaddrinfo(o.host, o.port, &hints, &addr)) != 0)
		die("%s:%s: %s", o.host, o.port, gai_strerror(r));
	if (!(cs = calloc(o.connections, sizeof(*cs))) ||
	    !(threads = calloc(o.connections, sizeof(*threads))))
		die("out of memory");
	pthread_barrier_init(&ready, NULL, o.connections + 1);
	for (unsigned i = 0; i < o.connections; i++) {
		cs[i] = (struct conn){ .o = &o, .addr = addr, .ready = &ready, .fd = -1 };
		if (pthread_create(&threads[i], NULL, run, &cs[i]) != 0)
			die("cannot start thread %u", i);
	}
	/* every connection made and warmed up: the measured phase starts */
	pthread_barrier_wait(&ready);
	t0 = now_ms();
	for (unsigned i = 0; i < o.connections; i++)
		pthread_join(threads[i], NULL);
	seconds = (now_ms() - t0) / 1e3;

	for (unsigned i = 0; i < o.connections; i++) {
		ok += cs[i].ok;
		failures += cs[i].failures;
		connects += cs[i].connects;
		if (cs[i].error[0])
			fprintf(stderr, PROG ": connection %u: %lu failed; the first: %s\n", i,
				cs[i].failures, cs[i].error);
		merge_samples(&lat, &cs[i].lat);
	}
	sort_samples(&lat);
	/* NaN is not JSON: the figures of no samples are 0 */
#define FIG(x) (lat.n ? (x) : 0.0)
	printf("{\"connections\":%u,\"warmup\":%u,\"seconds\":%.3f,\"requests\":%lu,"
	       "\"failures\":%lu,\"connects\":%lu,\"per_s\":%.1f,\"p50_ms\":%.3f,"
	       "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"min_ms\":%.3f,"
	       "\"max_ms\":%.3f}\n",
	       o.connections, o.warmup, seconds, ok, failures, connects,
	       seconds > 0 ? (double)ok / seconds : 0.0, FIG(percentile(&lat, 50)),
	       FIG(percentile(&lat, 90)), FIG(percentile(&lat, 99)), FIG(mean(&lat)), FIG(lat.v[0]),
	       FIG(lat.v[lat.n - 1]));
#undef FIG
	fflush(stdout);
	for (unsigned i = 0; i < o.connections; i++) {
		if (cs[i].fd >= 0)
			close(cs[i].fd);
		free(cs[i].buf);
		free(cs[i].lat.v);
	}
	free(lat.v);
	free(threads);
	free(cs);
	free(o.request);
	freeaddrinfo(addr);
	pthread_barrier_destroy(&ready);
	return failures || !ok ? 1 : 0;
}
