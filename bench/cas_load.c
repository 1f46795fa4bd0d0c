/* teepy-cas-load: key releases asked of a running CAS as runtimes ask for them, timed
 * (bench/cas runs it; docs/cas.md, "Speed"). A release is the whole exchange of
 * `teepy run --cas` in sim mode, made with teepy's own code: a new X25519 key,
 * POST /v1/challenge, sim evidence of the claims and that nonce signed by the
 * platform key (tp_sim_write), POST /v1/attest, the sealed answer opened
 * (tp_seal_open, the nonce as associated data) and the expected secret found in it.
 * Only then does a release count; anything else is a failure, counted and said, and
 * the exit code is 1. Each of --connections threads keeps one TLS connection alive
 * (one libcurl easy handle) and asks for one release after another. A benchmark
 * tool: built beside teepy, never installed. */
#include "loadlib.h"
#include "src/attest/attest.h"
#include "src/cas/cas.h"
#include "src/crypto/crypto.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "teepy-cas-load"

const char load_prog[] = PROG;

struct opts {
	const char *url, *fingerprint, *config_id, *platform_key;
	char challenge_url[1024], attest_url[1024];
	uint8_t runtime[TP_CLAIM_SIZE], app[TP_CLAIM_SIZE], signer[TP_CLAIM_SIZE];
	char runtime_hex[65], app_hex[65], signer_hex[65];
	const char *expect_name, *expect_value; /* the secret the answer must hold */
	unsigned connections, warmup;
	double duration;	/* seconds measured, unless requests ends it first */
	unsigned long requests; /* measured releases a connection; 0: no limit */
	bool json;
};

/* One connection: its thread, its handle, what it measured. */
struct worker {
	const struct opts *o;
	const struct tp_key *platform;
	pthread_barrier_t *ready;
	CURL *h;
	struct curl_slist *headers;
	char curl_err[CURL_ERROR_SIZE];
	char *answer; /* the last answer, NUL-terminated */
	size_t answer_size, answer_cap;
	bool answer_too_large;

	double first_ms, tcp_ms, tls_ms; /* the first release, on a new connection */
	bool first_ok;
	struct samples total, challenge, attest;
	unsigned long releases, failures;
	long connects;	 /* new connections made during the measured phase */
	char error[512]; /* the first failure */
};

/* The first failure of a worker is kept; the rest are counted. */
static void failed(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failed(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	w->failures++;
	if (w->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
}

static size_t take_answer(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct worker *w = ctx;
	size_t n = size * nmemb;

	if (w->answer_size + n > (1 << 20)) {
		w->answer_too_large = true;
		return 0;
	}
	if (w->answer_size + n + 1 > w->answer_cap) {
		size_t cap = 2 * (w->answer_size + n + 1);
		char *grown = realloc(w->answer, cap);
		if (!grown)
			return 0;
		w->answer = grown;
		w->answer_cap = cap;
	}
	memcpy(w->answer + w->answer_size, ptr, n);
	w->answer_size += n;
	w->answer[w->answer_size] = '\0';
	return n;
}

/* The handle as teepy's client sets one up (src/cas/client.c): TLS 1.3 only, the
 * CAS's key pinned and the pin the only trust, no proxy, no "100 Continue"; and, as
 * it does not, kept for every request of this connection. */
static int setup_handle(struct worker *w)
{
	const struct opts *o = w->o;

	if (!(w->h = curl_easy_init()) ||
	    !(w->headers = curl_slist_append(NULL, "Content-Type: application/json")) ||
	    !(w->headers = curl_slist_append(w->headers, "Accept: application/json")) ||
	    !(w->headers = curl_slist_append(w->headers, "Expect:")))
		return -ENOMEM;
	if (curl_easy_setopt(w->h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3) ||
	    curl_easy_setopt(w->h, CURLOPT_PINNEDPUBLICKEY, o->fingerprint) ||
	    curl_easy_setopt(w->h, CURLOPT_SSL_VERIFYPEER, 0L) ||
	    curl_easy_setopt(w->h, CURLOPT_SSL_VERIFYHOST, 0L) ||
	    curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, w->headers) ||
	    curl_easy_setopt(w->h, CURLOPT_PROTOCOLS_STR, "https") ||
	    curl_easy_setopt(w->h, CURLOPT_NOPROXY, "*") ||
	    curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT, 10L) ||
	    curl_easy_setopt(w->h, CURLOPT_TIMEOUT, 30L) ||
	    curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, take_answer) ||
	    curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w) ||
	    curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, w->curl_err))
		return -ENOTSUP;
	return 0;
}

/* POST body to url on the worker's connection; the answer in w->answer. Returns 0
 * for a 200, or -1 with the failure counted. */
static int post(struct worker *w, const char *url, const char *body)
{
	long status = 0, connects = 0;
	CURLcode cr;

	w->answer_size = 0;
	w->answer_too_large = false;
	w->curl_err[0] = '\0';
	if (w->answer)
		w->answer[0] = '\0';
	curl_easy_setopt(w->h, CURLOPT_URL, url);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	cr = curl_easy_perform(w->h);
	curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(w->h, CURLINFO_NUM_CONNECTS, &connects);
	w->connects += connects;
	if (connects && !w->first_ok) {
		/* the connection's first transfer: its times are the handshake's */
		curl_off_t tcp_us = 0, tls_us = 0;
		curl_easy_getinfo(w->h, CURLINFO_CONNECT_TIME_T, &tcp_us);
		curl_easy_getinfo(w->h, CURLINFO_APPCONNECT_TIME_T, &tls_us);
		w->tcp_ms = (double)tcp_us / 1e3;
		w->tls_ms = (double)(tls_us - tcp_us) / 1e3;
	}
	if (cr != CURLE_OK) {
		failed(w, "%s: %s", url,
		       w->answer_too_large ? "an answer over 1 MiB" :
		       w->curl_err[0]	   ? w->curl_err :
					     curl_easy_strerror(cr));
		return -1;
	}
	if (status != 200) {
		failed(w, "%s: HTTP %ld: %.300s", url, status, w->answer ? w->answer : "");
		return -1;
	}
	return 0;
}

/* The answer's sealed secrets opened with k (the nonce as associated data), and the
 * expected secret's value found in them. Returns 0 or -1 with the failure counted. */
static int open_answer(struct worker *w, const struct tp_x25519 *k, const struct tp_claims *c)
{
	json_t *answer = json_loads(w->answer ? w->answer : "", 0, NULL), *secrets = NULL;
	json_t *sealed = json_object_get(answer, "sealed");
	const char *eph = json_string_value(json_object_get(sealed, "ephemeral"));
	json_t *ct = json_object_get(sealed, "ciphertext");
	uint8_t *body = NULL, *in = NULL;
	char *plain = NULL;
	size_t size = 0, in_size = 0;
	const char *value;
	int r = -1;

	if (!eph || strlen(eph) != 2 * TP_X25519_SIZE || !json_is_string(ct) ||
	    tp_base64_decode(json_string_value(ct), json_string_length(ct), &body, &size) < 0 ||
	    size < TP_GCM_TAG_SIZE || !(in = malloc(TP_X25519_SIZE + size)) ||
	    tp_unhex(eph, in, TP_X25519_SIZE) < 0) {
		failed(w, "/v1/attest: no sealed secrets in the answer: %.200s", w->answer);
		goto out;
	}
	memcpy(in + TP_X25519_SIZE, body, size);
	in_size = TP_X25519_SIZE + size;
	if (!(plain = calloc(1, in_size - TP_SEAL_OVERHEAD + 1)) ||
	    tp_seal_open(k, c->nonce, c->nonce_size, in, in_size, plain) < 0) {
		failed(w, "/v1/attest: the sealed answer does not open with this key and nonce");
		goto out;
	}
	secrets = json_loads(plain, 0, NULL);
	value = json_string_value(json_object_get(
	    json_object_get(json_object_get(secrets, "secrets"), w->o->expect_name), "value"));
	if (!value || strcmp(value, w->o->expect_value) != 0) {
		failed(w, "/v1/attest: the opened answer holds no secret %s of the value expected",
		       w->o->expect_name);
		goto out;
	}
	r = 0;
out:
	if (plain)
		explicit_bzero(plain, in_size - TP_SEAL_OVERHEAD);
	free(plain);
	json_decref(secrets);
	json_decref(answer);
	free(body);
	free(in);
	return r;
}

static char *attest_body(const struct opts *o, const struct tp_claims *c, const uint8_t *ev,
			 size_t ev_size)
{
	char nonce[2 * TP_NONCE_MAX + 1], pubkey[2 * TP_CLAIM_SIZE + 1];
	char *data = tp_base64_encode(ev, ev_size), *text;
	json_t *body;

	if (!data)
		return NULL;
	tp_hex(c->nonce, c->nonce_size, nonce);
	tp_hex(c->pubkey, TP_CLAIM_SIZE, pubkey);
	body = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}}", "config_id",
			 o->config_id, "nonce", nonce, "claims", "mode", "sim", "runtime",
			 o->runtime_hex, "app", o->app_hex, "signer", o->signer_hex, "pubkey",
			 pubkey, "evidence", "type", "sim", "data", data);
	free(data);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return text;
}

/* One release, its times (ms) into t[0] (the whole round trip), t[1] (the challenge's
 * request) and t[2] (the attest request). Returns 0, or -1 with the failure counted. */
static int release(struct worker *w, double t[3])
{
	const struct opts *o = w->o;
	struct tp_claims c = { .mode = "sim" };
	uint8_t ev[TP_SIM_MAX_SIZE];
	struct tp_x25519 *k;
	json_t *answer;
	const char *nonce;
	char *body = NULL;
	double t0 = now_ms(), t1, t2, t3;
	int n, r = -1;

	if (!(k = tp_x25519_generate())) {
		failed(w, "cannot make an X25519 key");
		return -1;
	}
	tp_x25519_public(k, c.pubkey);
	memcpy(c.runtime, o->runtime, TP_CLAIM_SIZE);
	memcpy(c.app, o->app, TP_CLAIM_SIZE);
	memcpy(c.signer, o->signer, TP_CLAIM_SIZE);
	t1 = now_ms();
	if (post(w, o->challenge_url, "{}") < 0)
		goto out;
	t[1] = now_ms() - t1;
	answer = json_loads(w->answer, 0, NULL);
	nonce = json_string_value(json_object_get(answer, "nonce"));
	if (!nonce || strlen(nonce) != 2 * TP_CAS_NONCE_SIZE ||
	    tp_unhex(nonce, c.nonce, TP_CAS_NONCE_SIZE) < 0) {
		json_decref(answer);
		failed(w, "/v1/challenge: no nonce of %d bytes in hex: %.200s", TP_CAS_NONCE_SIZE,
		       w->answer);
		goto out;
	}
	json_decref(answer);
	c.nonce_size = TP_CAS_NONCE_SIZE;
	if ((n = tp_sim_write(&c, w->platform, ev)) < 0 ||
	    !(body = attest_body(o, &c, ev, (size_t)n))) {
		failed(w, "cannot make the sim evidence");
		goto out;
	}
	t2 = now_ms();
	if (post(w, o->attest_url, body) < 0)
		goto out;
	t3 = now_ms();
	t[2] = t3 - t2;
	if (open_answer(w, k, &c) < 0)
		goto out;
	t[0] = now_ms() - t0;
	r = 0;
out:
	free(body);
	tp_x25519_free(k);
	return r;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	double t[3], deadline;
	unsigned long i;

	if (setup_handle(w) < 0) {
		failed(w, "this libcurl cannot make the request as it must be (TLS 1.3, a pin)");
		pthread_barrier_wait(w->ready);
		return NULL;
	}
	/* the first release makes the connection: TCP, the TLS handshake */
	if (release(w, t) == 0) {
		w->first_ok = true;
		w->first_ms = t[0];
	}
	for (i = 0; w->first_ok && i < o->warmup; i++)
		release(w, t);
	w->connects = 0;
	pthread_barrier_wait(w->ready);
	if (!w->first_ok)
		return NULL; /* not even one: the reason is said, nothing is measured */
	deadline = now_ms() + o->duration * 1e3;
	for (i = 0; (!o->requests || i < o->requests) && (o->requests || now_ms() < deadline);
	     i++) {
		if (release(w, t) < 0)
			continue;
		w->releases++;
		if (add_sample(&w->total, t[0]) < 0 || add_sample(&w->challenge, t[1]) < 0 ||
		    add_sample(&w->attest, t[2]) < 0) {
			failed(w, "out of memory");
			break;
		}
	}
	return NULL;
}

/* ---- figures ---- */

/* Every worker's samples of one kind, sorted. */
static void merge(struct worker *ws, unsigned count, size_t offset, struct samples *out)
{
	for (unsigned i = 0; i < count; i++)
		merge_samples(out, (const struct samples *)((const char *)&ws[i] + offset));
	sort_samples(out);
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fputs("usage: " PROG " --url https://HOST:PORT --fingerprint sha256//... --config-id "
	      "POLICY/SERVICE\n"
	      "       --platform-key FILE --runtime HEX --app HEX [--signer HEX]\n"
	      "       --expect NAME=VALUE [--connections N] [--duration S | --requests N]\n"
	      "       [--warmup N] [--json]\n"
	      "Asks a running CAS for key releases in sim mode, each connection kept alive, and\n"
	      "prints the first release (with its handshake), the round trip's p50, p99 and mean\n"
	      "on the kept-alive connections, and the releases a second of all of them.\n"
	      "--expect: the secret NAME whose value (as the policy holds it) every opened answer\n"
	      "must hold. --requests N: N measured releases a connection (instead of --duration,\n"
	      "default 5 s). --warmup N: releases a connection before measuring (default 20).\n"
	      "Exit 0 when every release succeeded, 1 when one failed, 2 for a usage error.\n",
	      f);
}

static void claim_option(const char *name, const char *hex, uint8_t out[TP_CLAIM_SIZE],
			 char out_hex[65])
{
	if (strlen(hex) != 2 * TP_CLAIM_SIZE || tp_unhex(hex, out, TP_CLAIM_SIZE) < 0)
		die("--%s %.80s: not 64 hex digits", name, hex);
	tp_hex(out, TP_CLAIM_SIZE, out_hex);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "fingerprint", required_argument, NULL, 'f' },
		{ "config-id", required_argument, NULL, 'c' },
		{ "platform-key", required_argument, NULL, 'k' },
		{ "runtime", required_argument, NULL, 'r' },
		{ "app", required_argument, NULL, 'a' },
		{ "signer", required_argument, NULL, 's' },
		{ "expect", required_argument, NULL, 'e' },
		{ "connections", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'q' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool have_runtime = false, have_app = false;
	char *end, *eq;
	size_t n;
	int ch;

	*o = (struct opts){ .connections = 1, .warmup = 20, .duration = 5 };
	claim_option("signer", "0000000000000000000000000000000000000000000000000000000000000000",
		     o->signer, o->signer_hex);
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'u':
			o->url = optarg;
			break;
		case 'f':
			o->fingerprint = optarg;
			break;
		case 'c':
			o->config_id = optarg;
			break;
		case 'k':
			o->platform_key = optarg;
			break;
		case 'r':
			claim_option("runtime", optarg, o->runtime, o->runtime_hex);
			have_runtime = true;
			break;
		case 'a':
			claim_option("app", optarg, o->app, o->app_hex);
			have_app = true;
			break;
		case 's':
			claim_option("signer", optarg, o->signer, o->signer_hex);
			break;
		case 'e':
			if (!(eq = strchr(optarg, '=')) || eq == optarg)
				die("--expect %.80s: not NAME=VALUE", optarg);
			*eq = '\0';
			o->expect_name = optarg;
			o->expect_value = eq + 1;
			break;
		case 'n':
			o->connections = (unsigned)count_option("connections", optarg, 256);
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
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!o->url || !o->fingerprint || !o->config_id || !o->platform_key || !have_runtime ||
	    !have_app || !o->expect_name)
		die("--url, --fingerprint, --config-id, --platform-key, --runtime, --app and "
		    "--expect are needed (see --help)");
	n = strlen(o->url);
	while (n && o->url[n - 1] == '/')
		n--;
	if (strncmp(o->url, "https://", 8) != 0 || n > 900)
		die("--url %.80s: not an https:// URL", o->url);
	snprintf(o->challenge_url, sizeof(o->challenge_url), "%.*s/v1/challenge", (int)n, o->url);
	snprintf(o->attest_url, sizeof(o->attest_url), "%.*s/v1/attest", (int)n, o->url);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	struct samples total = { 0 }, chal = { 0 }, att = { 0 };
	unsigned long releases = 0, failures = 0;
	struct opts o;
	struct worker *ws;
	pthread_barrier_t ready;
	struct tp_key *platform;
	const struct worker *first;
	double t0, seconds;
	long connects = 0;
	char err[256];

	parse(argc, argv, &o);
	if (tp_crypto_load(err, sizeof(err)) < 0)
		die("%s", err);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("libcurl would not start");
	if (!(platform = tp_key_load_private(o.platform_key, err, sizeof(err))))
		die("--platform-key %s: %s", o.platform_key, err);
	if (!(ws = calloc(o.connections, sizeof(*ws))))
		die("out of memory");
	pthread_barrier_init(&ready, NULL, o.connections + 1);
	pthread_t *threads = calloc(o.connections, sizeof(*threads));
	if (!threads)
		die("out of memory");
	for (unsigned i = 0; i < o.connections; i++) {
		ws[i] = (struct worker){ .o = &o, .platform = platform, .ready = &ready };
		if (pthread_create(&threads[i], NULL, run, &ws[i]) != 0)
			die("cannot start thread %u", i);
	}
	/* every connection made and warmed up: the measured phase starts */
	pthread_barrier_wait(&ready);
	t0 = now_ms();
	for (unsigned i = 0; i < o.connections; i++)
		pthread_join(threads[i], NULL);
	seconds = (now_ms() - t0) / 1e3;

	for (unsigned i = 0; i < o.connections; i++) {
		releases += ws[i].releases;
		failures += ws[i].failures;
		connects += ws[i].connects;
		if (ws[i].error[0])
			fprintf(stderr, PROG ": connection %u: %lu failed; the first: %s\n", i,
				ws[i].failures, ws[i].error);
	}
	merge(ws, o.connections, offsetof(struct worker, total), &total);
	merge(ws, o.connections, offsetof(struct worker, challenge), &chal);
	merge(ws, o.connections, offsetof(struct worker, attest), &att);
	first = &ws[0];
	if (o.json) {
		json_t *j = json_pack(
		    "{s:i, s:i, s:f, s:b, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, "
		    "s:f, s:f}",
		    "connections", (int)o.connections, "warmup", (int)o.warmup, "seconds", seconds,
		    "first_ok", first->first_ok, "first_ms", first->first_ms, "first_tcp_ms",
		    first->tcp_ms, "first_tls_ms", first->tls_ms, "releases", (json_int_t)releases,
		    "failures", (json_int_t)failures, "new_connections", (json_int_t)connects,
		    "per_s", seconds > 0 ? (double)releases / seconds : 0.0, "p50_ms",
		    total.n ? percentile(&total, 50) : 0.0, "p99_ms",
		    total.n ? percentile(&total, 99) : 0.0, "mean_ms", total.n ? mean(&total) : 0.0,
		    "max_ms", total.n ? total.v[total.n - 1] : 0.0, "challenge_p50_ms",
		    chal.n ? percentile(&chal, 50) : 0.0, "attest_p50_ms",
		    att.n ? percentile(&att, 50) : 0.0);
		if (!j || json_dumpf(j, stdout, JSON_COMPACT) < 0)
			die("cannot write the figures");
		putchar('\n');
		json_decref(j);
	} else {
		printf("%u connection%s, %.2f s measured after %u warm-up release%s each\n",
		       o.connections, o.connections == 1 ? "" : "s", seconds, o.warmup,
		       o.warmup == 1 ? "" : "s");
		if (first->first_ok)
			printf("first release, new connection: %.2f ms (TCP connect %.2f ms, TLS "
			       "handshake %.2f ms)\n",
			       first->first_ms, first->tcp_ms, first->tls_ms);
		printf("releases: %lu in %.2f s = %.0f/s; failed: %lu; new connections while "
		       "measured: %ld\n",
		       releases, seconds, seconds > 0 ? (double)releases / seconds : 0.0, failures,
		       connects);
		if (total.n)
			printf(
			    "round trip, kept-alive: p50 %.2f ms, p99 %.2f ms, mean %.2f ms, max "
			    "%.2f ms (of which challenge p50 %.2f ms, attest p50 %.2f ms)\n",
			    percentile(&total, 50), percentile(&total, 99), mean(&total),
			    total.v[total.n - 1], percentile(&chal, 50), percentile(&att, 50));
	}
	fflush(stdout);
	for (unsigned i = 0; i < o.connections; i++) {
		curl_easy_cleanup(ws[i].h);
		curl_slist_free_all(ws[i].headers);
		free(ws[i].answer);
		free(ws[i].total.v);
		free(ws[i].challenge.v);
		free(ws[i].attest.v);
	}
	free(total.v);
	free(chal.v);
	free(att.v);
	free(threads);
	free(ws);
	tp_key_free(platform);
	pthread_barrier_destroy(&ready);
	return failures || !releases ? 1 : 0;
}
