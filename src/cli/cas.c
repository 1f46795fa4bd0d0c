/* `teepy cas --listen ADDR:PORT --db FILE`: the CAS server (src/cas/), serving until
 * SIGINT or SIGTERM; `teepy cas audit --db FILE`: its audit log, oldest first. Built
 * into teepy-cas, which `teepy cas` executes (programs.c). */
#include "commands.h"

#include "cas_help.h"
#include "exit_codes.h"
#include "flags.h"
#include "../cas/cas.h"
#include "../common/log.h"
#include "../common/hostport.h"
#include "../common/net.h"
#include "../crypto/crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT 10
#define THREADS		4
#define MAX_CONN	4096

/* The master key: given (it must be there), or DB.master.key, made at first start. */
static int master_key(const char *given, const char *db, uint8_t key[TP_CAS_MASTER_SIZE])
{
	char path[PATH_MAX], err[PATH_MAX + 128];
	int r;

	snprintf(path, sizeof(path), "%s%s", given ? given : db, given ? "" : ".master.key");
	if (access(path, F_OK) < 0) {
		if (given) {
			tp_error(
			    "cas: no master key at %s (make one: teepy keygen --symmetric -o %s)",
			    path, path);
			return TP_EXIT_USAGE;
		}
		if ((r = tp_symkey_generate(path)) < 0) {
			tp_error("cas: cannot make the master key %s: %s", path, strerror(-r));
			return TP_EXIT_USAGE;
		}
		tp_info("cas: made the master key %s (0600: whoever reads it reads every secret)",
			path);
	}
	if (tp_symkey_read(path, key, err, sizeof(err)) < 0) {
		tp_error("cas: master key %s: %s", path, err);
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}

/* Enough descriptors for the connections at once; how many connections to allow. */
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
	return rl.rlim_cur > MAX_CONN + 64 ? MAX_CONN : (unsigned)(rl.rlim_cur - 64);
}

static int serve(const char *listen, const char *db, const char *master_path, unsigned timeout,
		 unsigned nonce_ttl)
{
	struct tp_cas_server_opts o = { .timeout = timeout, .threads = THREADS };
	char host[128], key[PATH_MAX], cert[PATH_MAX], err[PATH_MAX + 256], fp[128];
	uint8_t *master;
	struct tp_cas_service *service = NULL;
	struct tp_cas_server *srv = NULL;
	struct tp_cas_store *st = NULL;
	sigset_t set;
	int code, sig = 0;

	/* the master key and every policy's secrets pass through this process's memory */
	tp_secret_no_core(true);
	master = tp_secret_alloc(TP_CAS_MASTER_SIZE);
	if (tp_split_numeric_host_port(listen, host, sizeof(host), &o.port, err, sizeof(err)) < 0) {
		tp_error("cas: --listen %s", err);
		tp_secret_free(master, TP_CAS_MASTER_SIZE);
		return TP_EXIT_USAGE;
	}
	o.host = host;
	snprintf(key, sizeof(key), "%s.tls.key", db);
	snprintf(cert, sizeof(cert), "%s.tls.crt", db);
	o.key = key;
	o.cert = cert;
	if (!master || (code = master_key(master_path, db, master)) != TP_EXIT_OK) {
		tp_secret_free(master, TP_CAS_MASTER_SIZE);
		return master ? code : TP_EXIT_INTERNAL;
	}
	code = tp_cas_store_open(db, master, &st, err, sizeof(err));
	tp_secret_free(master, TP_CAS_MASTER_SIZE);
	if (code < 0) {
		tp_error("cas: %s: cannot open the database: %s", db, err);
		return TP_EXIT_USAGE;
	}
	if (!(service = tp_cas_service_new(st, nonce_ttl))) {
		tp_cas_store_close(st);
		return TP_EXIT_INTERNAL;
	}
	o.max_conn = raise_fd_limit();
	/* the server's threads inherit a mask without SIGINT and SIGTERM: this thread takes them */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	code = tp_cas_server_start(&o, service, &srv, fp, sizeof(fp), err, sizeof(err));
	if (code < 0) {
		tp_error("cas: %s", err);
		tp_cas_service_free(service);
		tp_cas_store_close(st);
		return code == -EIO ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
	}
	tp_info("cas: listening on https://%s%s%s:%u, key fingerprint %s",
		strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
		tp_cas_server_port(srv), fp);
	fflush(stderr);
	while (sigwait(&set, &sig) != 0)
		;
	tp_cas_server_stop(srv);
	tp_cas_service_free(service);
	tp_cas_store_close(st);
	tp_info("cas: stopped (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
	return TP_EXIT_OK;
}

/* ---- audit ---- */

static int print_row(const struct tp_cas_audit *row, void *ctx)
{
	json_t *list = ctx;
	char when[32];
	time_t t = (time_t)row->time;
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	if (list)
		return json_array_append_new(
		    list,
		    json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)row->id,
			      "time", when, "unix", (json_int_t)row->time, "remote", row->remote,
			      "op", row->op, "subject", row->subject, "outcome", row->outcome,
			      "reason", row->reason));
	printf("%s  %-15s %-9s %-24s %-9s %s\n", when, row->remote, row->op,
	       row->subject[0] ? row->subject : "-", row->outcome, row->reason);
	return 0;
}

static int audit(const char *db, bool as_json, bool denied)
{
	struct tp_cas_store *st = NULL;
	json_t *list = as_json ? json_array() : NULL;
	char err[512];
	int r;

	tp_secret_no_core(true); /* the store's pages hold sealed secrets and the log */
	if (access(db, R_OK) < 0) {
		tp_error("cas audit: %s: %s", db, strerror(errno));
		json_decref(list);
		return TP_EXIT_USAGE;
	}
	if (tp_cas_store_open(db, NULL, &st, err, sizeof(err)) < 0) {
		tp_error("cas audit: %s: cannot open the database: %s", db, err);
		json_decref(list);
		return TP_EXIT_USAGE;
	}
	r = tp_cas_store_audit_each(st, denied, print_row, list);
	tp_cas_store_close(st);
	if (r < 0) {
		tp_error("cas audit: %s: cannot read the audit log", db);
		json_decref(list);
		return TP_EXIT_USAGE;
	}
	if (list) {
		char *text = json_dumps(list, JSON_INDENT(2));
		printf("%s\n", text ? text : "[]");
		free(text);
		json_decref(list);
	}
	return TP_EXIT_OK;
}

int tp_cas_main(int argc, char **argv)
{
	const char *listen = NULL, *db = NULL, *master = NULL, *action = NULL;
	bool as_json = false, denied = false;
	unsigned timeout = DEFAULT_TIMEOUT, nonce_ttl = TP_CAS_NONCE_TTL;
	struct tp_flag_parser p;
	char err[512], *end;
	unsigned long v;
	int r;

	if (tp_flags_start(&p, "cas", tp_cas_flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("cas: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (action || strcmp(p.value, "audit") != 0) {
				tp_error("cas: unexpected argument '%s' (see teepy cas --help)",
					 p.value);
				return TP_EXIT_USAGE;
			}
			action = p.value;
			continue;
		}
		switch (p.flag->id) {
		case CAS_HELP:
			tp_help_print(stdout, &tp_cas_help);
			return TP_EXIT_OK;
		case CAS_LISTEN:
			listen = p.value;
			break;
		case CAS_DB:
			db = p.value;
			break;
		case CAS_MASTER:
			master = p.value;
			break;
		case CAS_TIMEOUT:
		case CAS_NONCE_TTL:
			errno = 0;
			v = strtoul(p.value, &end, 10);
			if (!*p.value || *end || errno || v == 0 || v > 3600) {
				tp_error("cas: %s %s: not a number of seconds from 1 to 3600",
					 p.given, p.value);
				return TP_EXIT_USAGE;
			}
			*(p.flag->id == CAS_TIMEOUT ? &timeout : &nonce_ttl) = (unsigned)v;
			break;
		case CAS_JSON:
			as_json = true;
			break;
		case CAS_DENIED:
			denied = true;
			break;
		}
	}
	if (p.dashdash) {
		tp_error("cas: unexpected argument '--' (see teepy cas --help)");
		return TP_EXIT_USAGE;
	}
	if (!db) {
		tp_error("cas: --db FILE is needed (see teepy cas --help)");
		return TP_EXIT_USAGE;
	}
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("cas: %s", err);
		return TP_EXIT_INTERNAL;
	}
	if (action) {
		if (listen || master) {
			tp_error("cas audit: --listen and --master-key are for the server");
			return TP_EXIT_USAGE;
		}
		return audit(db, as_json, denied);
	}
	if (as_json || denied) {
		tp_error("cas: --json and --denied are for teepy cas audit");
		return TP_EXIT_USAGE;
	}
	if (!listen) {
		tp_error("cas: --listen ADDR:PORT is needed (see teepy cas --help)");
		return TP_EXIT_USAGE;
	}
	return serve(listen, db, master, timeout, nonce_ttl);
}
