/* `teepy serve --store DIR --trust PUB`: the worker (src/worker/, docs/api.md),
 * serving until SIGINT or SIGTERM. Built into teepy-worker, which `teepy serve`
 * executes (programs.c). */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "attest_cmd.h"
#include "run_cas.h"
#include "serve_help.h"
#include "../cas/cas.h"
#include "../common/log.h"
#include "../common/hostport.h"
#include "../common/net.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../manifest/trust.h"
#include "../pyboot/boot.h"
#include "../worker/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONN 4096
#define THREADS	 4

struct serve_opts {
	const char *listen, *store, *cas, *cas_fingerprint, *mode;
	const char **trust;
	size_t trust_count;
	char *trust_copy; /* TEEPY_TRUSTED_SIGNERS, split in place */
	unsigned concurrency, queue, timeout;
	unsigned zygotes, zygote_pool, zygote_idle_s;
	uint64_t invoke_timeout_ms, max_request, max_upload, max_result;
};

static unsigned raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 512;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* each connection may hold a copy of its socket and an invocation's socket */
	return rl.rlim_cur > 3 * MAX_CONN + 64 ? MAX_CONN : (unsigned)((rl.rlim_cur - 64) / 3);
}

static int number(const struct tp_flag_parser *p, unsigned long min, unsigned long max,
		  const char *what, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(p->value, &end, 10);
	if (!*p->value || *end || errno || v < min || v > max) {
		tp_error("serve: %s %s: not %s from %lu to %lu", p->given, p->value, what, min,
			 max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int size_flag(const struct tp_flag_parser *p, uint64_t *out)
{
	if (tp_parse_size(p->value, out) < 0 || *out == 0) {
		tp_error("serve: %s %s: not a size (64M, 1G, or bytes)", p->given, p->value);
		return -EINVAL;
	}
	return 0;
}

/* A flag's variable, read when the flag was not given, by the flag's own rules. */
static int env_number(unsigned given, int id, const char *name, unsigned long min,
		      unsigned long max, unsigned *out)
{
	struct tp_flag_parser p = { .given = name, .value = getenv(name) };

	if ((given & (1u << id)) || !p.value || !*p.value)
		return 0;
	return number(&p, min, max, "a number", out);
}

static int parse(struct serve_opts *o, int argc, char **argv, bool *help)
{
	unsigned given = 0;
	struct tp_flag_parser p;
	const char *env;
	char err[512];
	unsigned s;
	int r;

	if (!(o->trust = calloc((size_t)argc + 1, sizeof(char *))) ||
	    tp_flags_start(&p, "serve", tp_serve_flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("serve: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			tp_error("serve: unexpected argument '%s' (see teepy serve --help)",
				 p.value);
			return TP_EXIT_USAGE;
		}
		given |= 1u << p.flag->id;
		switch (p.flag->id) {
		case SERVE_HELP:
			*help = true;
			return TP_EXIT_OK;
		case SERVE_LISTEN:
			o->listen = p.value;
			break;
		case SERVE_STORE:
			o->store = p.value;
			break;
		case SERVE_TRUST:
			o->trust[o->trust_count++] = p.value;
			break;
		case SERVE_CAS:
			o->cas = p.value;
			break;
		case SERVE_CAS_FINGERPRINT:
			o->cas_fingerprint = p.value;
			break;
		case SERVE_MODE:
			o->mode = p.value;
			break;
		case SERVE_CONCURRENCY:
			if (number(&p, 1, 4096, "a number", &o->concurrency) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_QUEUE:
			if (number(&p, 0, 1 << 20, "a number", &o->queue) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_INVOKE_TIMEOUT:
			if (number(&p, 1, 7 * 24 * 3600, "a number of seconds", &s) < 0)
				return TP_EXIT_USAGE;
			o->invoke_timeout_ms = (uint64_t)s * 1000;
			break;
		case SERVE_TIMEOUT:
			if (number(&p, 1, 3600, "a number of seconds", &o->timeout) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_MAX_REQUEST:
			if (size_flag(&p, &o->max_request) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_MAX_UPLOAD:
			if (size_flag(&p, &o->max_upload) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_MAX_RESULT:
			if (size_flag(&p, &o->max_result) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_ZYGOTES:
			if (number(&p, 0, 1024, "a number", &o->zygotes) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_ZYGOTE_POOL:
			if (number(&p, 1, 16, "a number", &o->zygote_pool) < 0)
				return TP_EXIT_USAGE;
			break;
		case SERVE_ZYGOTE_IDLE:
			if (number(&p, 1, 7 * 24 * 3600, "a number of seconds", &o->zygote_idle_s) <
			    0)
				return TP_EXIT_USAGE;
			break;
		}
	}
	if (p.dashdash) {
		tp_error("serve: unexpected argument '--' (see teepy serve --help)");
		return TP_EXIT_USAGE;
	}
	if (!o->store && (env = getenv("TEEPY_STORE")) && *env)
		o->store = env;
	if (!o->mode && (env = getenv("TEEPY_MODE")) && *env)
		o->mode = env;
	if (env_number(given, SERVE_ZYGOTES, "TEEPY_ZYGOTES", 0, 1024, &o->zygotes) < 0 ||
	    env_number(given, SERVE_ZYGOTE_POOL, "TEEPY_ZYGOTE_POOL", 1, 16, &o->zygote_pool) < 0 ||
	    env_number(given, SERVE_ZYGOTE_IDLE, "TEEPY_ZYGOTE_IDLE", 1, 7 * 24 * 3600,
		       &o->zygote_idle_s) < 0)
		return TP_EXIT_USAGE;
	if (!o->trust_count && (env = getenv("TEEPY_TRUSTED_SIGNERS")) && *env) {
		char *save = NULL;
		free(o->trust);
		if (!(o->trust_copy = strdup(env)) ||
		    !(o->trust = calloc(strlen(env) / 2 + 2, sizeof(char *))))
			return TP_EXIT_INTERNAL;
		for (char *tok = strtok_r(o->trust_copy, ":", &save); tok;
		     tok = strtok_r(NULL, ":", &save))
			o->trust[o->trust_count++] = tok;
	}
	if (!o->store) {
		tp_error("serve: --store DIR is needed (or TEEPY_STORE; see teepy serve --help)");
		return TP_EXIT_USAGE;
	}
	if (!o->trust_count) {
		tp_error(
		    "serve: no trusted signer: --trust PUB (or TEEPY_TRUSTED_SIGNERS); a worker "
		    "runs only bundles signed by a key it trusts");
		return TP_EXIT_USAGE;
	}
	if (!o->cas != !o->cas_fingerprint) {
		tp_error("serve: %s", o->cas ?
					  "--cas: give --cas-fingerprint FP too (the CAS's key)" :
					  "--cas-fingerprint: applies to --cas URL");
		return TP_EXIT_USAGE;
	}
	if (o->cas && (tp_cas_check_url(o->cas, err, sizeof(err)) < 0 ||
		       tp_cas_check_fingerprint(o->cas_fingerprint, err, sizeof(err)) < 0)) {
		tp_error("serve: --cas: %s", err);
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}

/* ---- keys by attestation: as teepy run --cas gets them (run_cas.c) ---- */

struct serve_cas {
	const char *url, *fingerprint, *mode;
	pthread_mutex_t lock; /* one attestation at a time */
};

static int cas_fetch(void *ctx, const char *bundle_path, const char *config_id,
		     struct tp_cas_secrets *s, char *err, size_t err_size)
{
	struct serve_cas *c = ctx;
	struct tp_run_cas rc = {
		.url = c->url,
		.fingerprint = c->fingerprint,
		.config_id = config_id,
		.mode = c->mode,
	};
	char line[1024] = "";
	const char *said = line;
	int code;

	pthread_mutex_lock(&c->lock);
	tp_log_capture(line, sizeof(line)); /* what teepy run would print: the answer's */
	code = tp_run_cas_fetch(&rc, bundle_path, NULL);
	tp_log_capture(NULL, 0);
	pthread_mutex_unlock(&c->lock);
	if (code == 0) {
		*s = rc.secrets;
		memset(&rc.secrets, 0, sizeof(rc.secrets));
	}
	tp_run_cas_free(&rc);
	if (code == 0)
		return 0;
	if (strncmp(said, "run: --cas: ", 12) == 0)
		said += 12;
	else if (strncmp(said, "run: ", 5) == 0)
		said += 5;
	snprintf(err, err_size, "%s", *said ? said : "the attestation failed");
	return code == TP_EXIT_ATTESTATION_DENIED ? -EACCES : -EIO;
}

/* This worker's runtime measurement, which a CAS policy lists for it (its program is
 * teepy-worker, not teepy: teepy inspect's is another). */
static int worker_runtime(uint8_t m[32])
{
	char so[PATH_MAX], reaper[PATH_MAX];
	int r;

	if ((r = tp_find_runtime(so, sizeof(so))) < 0 ||
	    (r = tp_find_reaper(reaper, sizeof(reaper))) < 0 ||
	    (r = tp_runtime_measure(so, reaper, TP_BOOT_TEXT, m)) < 0)
		return r;
	return 0;
}

/* ---- evidence for sealed invocations (docs/api.md), on any HTTP thread: the
 * service's key is the spawner's, its public key is bound here ---- */

struct serve_evidence {
	const char *mode; /* "sim" or "hw", as decided at start */
	uint8_t runtime[32];
};

static json_t *make_evidence(void *ctx, struct tp_claims *c, char *err, size_t err_size)
{
	const struct serve_evidence *e = ctx;
	const struct tp_evidence_opts opts = { .key = getenv("TEEPY_PLATFORM_KEY"),
					       .snp_certs_needed = true };
	struct tp_evidence ev = { 0 };
	char line[1024] = "";
	const char *said = line;
	json_t *out = NULL;
	int code;

	snprintf(c->mode, sizeof(c->mode), "%s", e->mode);
	memcpy(c->runtime, e->runtime, sizeof(c->runtime));
	tp_log_capture(line, sizeof(line)); /* its one line, for the answer */
	code = tp_attest_evidence("serve", c, &opts, &ev);
	tp_log_capture(NULL, 0);
	if (code == 0)
		out = tp_evidence_json(&ev);
	tp_evidence_free(&ev);
	if (strncmp(said, "serve: ", 7) == 0)
		said += 7;
	if (!out)
		snprintf(err, err_size, "%s", code == 0 ? "out of memory" : said);
	return out;
}

static int serve(struct serve_opts *o)
{
	struct tp_worker_run_opts run = {
		.trust_paths = o->trust,
		.timeout_ms = o->invoke_timeout_ms,
		.max_result = o->max_result,
		.no_cache = getenv("TEEPY_NO_CACHE") && strcmp(getenv("TEEPY_NO_CACHE"), "1") == 0 ?
				"TEEPY_NO_CACHE" :
				NULL,
		.cache_dir = getenv("TEEPY_CACHE_DIR") && *getenv("TEEPY_CACHE_DIR") ?
				 getenv("TEEPY_CACHE_DIR") :
				 NULL,
		.runtime_dir = getenv("XDG_RUNTIME_DIR"),
		.zygotes = o->zygotes,
		.zygote_pool = o->zygote_pool,
		.zygote_idle_s = o->zygote_idle_s,
	};
	struct tp_worker_server_opts so = {
		.timeout = o->timeout,
		.threads = THREADS,
		.concurrency = o->concurrency,
		.queue = o->queue,
		.max_request = o->max_request,
		.max_upload = o->max_upload,
		.max_result = o->max_result,
	};
	struct serve_cas cas = { .url = o->cas, .fingerprint = o->cas_fingerprint };
	struct serve_evidence evidence = { 0 };
	struct tp_worker_api_opts ao = {
		.trust_paths = o->trust,
		.max_request = o->max_request,
		.max_upload = o->max_upload,
		.cas_fetch = o->cas ? cas_fetch : NULL,
		.cas_ctx = &cas,
		.evidence = make_evidence,
		.evidence_ctx = &evidence,
		.spawner = -1,
	};
	char runtime[65] = "";
	uint8_t measured[32];
	struct tp_worker_store *st = NULL;
	struct tp_worker_api *api = NULL;
	struct tp_worker_server *srv = NULL;
	char host[128], err[PATH_MAX + 256];
	pid_t spawner = -1;
	int ctl = -1, code = TP_EXIT_OK, sig = 0, n;
	sigset_t set;

	if (tp_split_numeric_host_port(o->listen, host, sizeof(host), &so.port, err, sizeof(err)) <
	    0) {
		tp_error("serve: --listen %s", err);
		return TP_EXIT_USAGE;
	}
	so.host = host;
	/* the trusted keys read before anything is started or made */
	struct tp_signers signers = { 0 };
	size_t failed = 0;
	if (tp_signers_load(&signers, o->trust, o->trust_count, &failed, err, sizeof(err)) < 0) {
		tp_error("serve: --trust %s: %s", failed < o->trust_count ? o->trust[failed] : "",
			 err);
		return TP_EXIT_USAGE;
	}
	tp_signers_free(&signers);
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("serve: %s", err);
		return TP_EXIT_INTERNAL;
	}
	/* keys and plaintext pass through the worker's memory (not PR_SET_DUMPABLE: the
	 * sandbox's unprivileged id maps need it) */
	tp_secret_no_core(false);
	/* the evidence it makes (for --cas and sealed invocations): its mode decided and
	 * its runtime measured once, before the spawner that makes it starts */
	if ((code = tp_attest_mode("serve", o->mode, &evidence.mode)) != 0)
		return code;
	if ((n = worker_runtime(measured)) < 0) {
		tp_error("serve: cannot measure this worker's runtime: %s (_teepy or teepy-reaper "
			 "beside it)",
			 strerror(-n));
		return TP_EXIT_INTERNAL;
	}
	memcpy(evidence.runtime, measured, sizeof(measured));
	tp_hex(measured, 32, runtime);
	cas.mode = evidence.mode;
	/* SIGINT and SIGTERM are this thread's (sigwait); every thread after inherits
	 * the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	/* the spawner first, while this is the only thread */
	if ((n = tp_worker_spawner_start(&run, &spawner, &ctl)) < 0) {
		tp_error("serve: cannot start the spawner: %s", strerror(-n));
		return TP_EXIT_INTERNAL;
	}
	ao.spawner = ctl;
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_init(&cas.lock, NULL);
	if (o->cas && tp_cas_load(err, sizeof(err)) < 0) {
		tp_error("serve: --cas: %s", err);
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	if (tp_worker_store_open(o->store, &st, err, sizeof(err)) < 0) {
		tp_error("serve: --store %s: %s", o->store, err);
		code = TP_EXIT_USAGE;
		goto out;
	}
	if (!(api = tp_worker_api_new(st, &ao, err, sizeof(err)))) {
		tp_error("serve: %s", err);
		code = TP_EXIT_USAGE;
		goto out;
	}
	so.spawner = ctl;
	so.max_conn = raise_fd_limit();
	if ((n = tp_worker_server_start(&so, api, &srv, err, sizeof(err))) < 0) {
		tp_error("serve: %s", err);
		code = n == -EIO || n == -EAGAIN ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
		goto out;
	}
	n = tp_worker_service_count(st);
	if (o->cas)
		snprintf(err, sizeof(err),
			 "by attestation from %s (this worker's runtime measurement %s)", o->cas,
			 runtime);
	else
		snprintf(err, sizeof(err),
			 "development mode (uploaded with deployments; not for production)");
	tp_info("serve: listening on http://%s%s%s:%u, store %s, %d service%s, keys: %s",
		strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		tp_worker_server_port(srv), tp_worker_store_dir(st), n < 0 ? 0 : n,
		n == 1 ? "" : "s", err);
	fflush(stderr);
	while (sigwait(&set, &sig) != 0)
		;
	tp_worker_server_stop(srv);
	tp_info("serve: stopped (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
out:
	/* the spawner ends once its invocations have */
	close(ctl);
	while (waitpid(spawner, NULL, 0) < 0 && errno == EINTR)
		;
	tp_worker_api_free(api);
	tp_worker_store_close(st);
	pthread_mutex_destroy(&cas.lock);
	return code;
}

int tp_serve_main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct serve_opts o = {
		.listen = "127.0.0.1:8080",
		.concurrency = cpus > 0 ? (unsigned)cpus : 1,
		.queue = 64,
		.timeout = 10,
		.invoke_timeout_ms = 1800 * 1000,
		.max_request = 64ULL << 20,
		.max_upload = 1ULL << 30,
		.max_result = 64ULL << 20,
		.zygotes = 8,
		.zygote_pool = 2,
		.zygote_idle_s = 600,
	};
	bool help = false;
	int code = parse(&o, argc, argv, &help);

	if (code == TP_EXIT_OK && help)
		tp_help_print(stdout, &tp_serve_help);
	else if (code == TP_EXIT_OK)
		code = serve(&o);
	free(o.trust);
	free(o.trust_copy);
	return code;
}
