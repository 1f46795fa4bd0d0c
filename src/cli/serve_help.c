/* `teepy serve`'s flags and help text (serve_help.h). */
#include "serve_help.h"

#include "commands.h"
#include "exit_codes.h"

#include <stddef.h>

const struct tp_flag tp_serve_flags[] = {
	{ SERVE_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ SERVE_LISTEN, "listen", 0, "HOST:PORT", NULL,
	  "serve plain HTTP on this numeric address and port (default 127.0.0.1:8080; port 0: "
	  "any free one; [::1]:8080 for IPv6)" },
	{ SERVE_STORE, "store", 0, "DIR", "TEEPY_STORE",
	  "the store: worker.db (SQLite), bundles/ and data/ (made 0700 if missing)" },
	{ SERVE_TRUST, "trust", 0, "PUB", "TEEPY_TRUSTED_SIGNERS",
	  "a trusted signer's public key; repeatable (the variable: colon-separated). A bundle "
	  "signed by anyone else is refused at upload" },
	{ SERVE_CAS, "cas", 0, "URL", NULL,
	  "keys by attestation from this CAS, for the config id a deployment names; without it: "
	  "development mode, keys uploaded with deployments" },
	{ SERVE_CAS_FINGERPRINT, "cas-fingerprint", 0, "FP", NULL, "the CAS's key (with --cas)" },
	{ SERVE_MODE, "mode", 0, "MODE", "TEEPY_MODE",
	  "the evidence this worker makes, for --cas and for sealed invocations: sim "
	  "(SIMULATION: signed by this host's platform key, TEEPY_PLATFORM_KEY or teepy "
	  "platform init's), hw (configfs-tsm) or auto (default: hw where configfs-tsm is)" },
	{ SERVE_CONCURRENCY, "concurrency", 0, "N", NULL,
	  "invocations at once (default: the number of CPUs)" },
	{ SERVE_QUEUE, "queue", 0, "N", NULL,
	  "invocations waiting for a slot (default 64); beyond, 503 busy with Retry-After: 1" },
	{ SERVE_INVOKE_TIMEOUT, "invoke-timeout", 0, "S", NULL,
	  "an invocation's wall clock in seconds, or the manifest's if shorter (default 1800)" },
	{ SERVE_TIMEOUT, "timeout", 0, "S", NULL,
	  "close a connection idle this many seconds (default 10)" },
	{ SERVE_MAX_REQUEST, "max-request", 0, "BYTES", NULL,
	  "the largest JSON body, as 64M or 1G (default 64 MiB)" },
	{ SERVE_MAX_UPLOAD, "max-upload", 0, "BYTES", NULL,
	  "the largest bundle or data item uploaded (default 1 GiB)" },
	{ SERVE_MAX_RESULT, "max-result", 0, "BYTES", NULL,
	  "the largest result an invocation may return (default 64 MiB); beyond, it ends "
	  "failed" },
	{ SERVE_ZYGOTES, "zygotes", 0, "N", "TEEPY_ZYGOTES",
	  "services kept warm at most (default 8; 0: every invocation a cold start). A warm "
	  "service's invocations are forked from its zygote: see docs/zygote.md" },
	{ SERVE_ZYGOTE_POOL, "zygote-pool", 0, "N", "TEEPY_ZYGOTE_POOL",
	  "children each zygote keeps forked and ready (default 2, at most 16)" },
	{ SERVE_ZYGOTE_IDLE, "zygote-idle", 0, "S", "TEEPY_ZYGOTE_IDLE",
	  "stop a zygote unused this many seconds (default 600)" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "served until SIGINT or SIGTERM, then stopped cleanly" },
	{ TP_EXIT_USAGE, "usage error; the port is taken, the store cannot be opened, a --trust "
			 "key cannot be read" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded, or the server did not start" },
	{ 0, NULL },
};

const struct tp_command_help tp_serve_help = {
	.name = "serve",
	.synopsis = "--store DIR --trust PUB [--listen HOST:PORT] [--concurrency N] [--queue N]",
	.about =
	    "The worker: service providers deploy signed bundles (POST /v1/bundles, then\n"
	    "POST /v1/services), data providers put sealed data items (POST /v1/data), clients\n"
	    "invoke (POST /v1/services/ID/invoke), sealed to the service's attested key if\n"
	    "they ask (POST /v1/services/ID/evidence; teepy invoke --sealed). Plain HTTP/1.1 with "
	    "JSON: listen on loopback\n"
	    "or behind a TLS-terminating proxy. A service's first invocation is a cold start in\n"
	    "the sandbox, as teepy run, and starts its zygote: its interpreter with the preload\n"
	    "imported, from which later invocations are forked (warm), each restricted further\n"
	    "and in its own cgroup. One single-threaded spawner process forks them; a worker\n"
	    "killed leaves no sandboxed process. Keys come uploaded with a deployment "
	    "(development\n"
	    "mode: kept in worker.db in plaintext, said at start), or with --cas by\n"
	    "attestation, kept in memory only. One JSON line per request on stderr, without\n"
	    "input, result, log, data or keys. See docs/api.md.\n",
	.flags = tp_serve_flags,
	.exits = exits,
};
