/* The worker (issue 15, `teepy serve`): service providers deploy sealed bundles, data
 * providers put sealed data, clients invoke; the contract is docs/api.md. request.c is
 * pure (the JSON bodies parsed, an outcome as an answer, ids, UTF-8); store.c keeps
 * state in SQLite (WAL) with blobs beside it; api.c answers one request from the
 * store, every check made there, no socket; spawner.c is the single-threaded process
 * that forks one child per invocation, which calls the runner; server.c carries bytes
 * over HTTP with libmicrohttpd and holds the invocation queue. */
#ifndef TEEPY_WORKER_WORKER_H
#define TEEPY_WORKER_WORKER_H

#include "../attest/attest.h"
#include "../cas/client.h"
#include "../runner/runner.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_WORKER_ID_HEX      65	 /* 64 hex digits and a NUL */
#define TP_WORKER_LOG_MAX     (64 << 10) /* an invocation's log kept for its answer */
#define TP_WORKER_LIST_MAX    1024	 /* data ids in one request: 400 beyond */
#define TP_WORKER_KEYS_DEV    "development"
#define TP_WORKER_KEYS_NONE   "none"
#define TP_WORKER_KEYS_CAS    "cas"
#define TP_WORKER_SERVICE_TAG "teepy-service-v1" /* and its NUL, first in a service id */

/* ---- pure (request.c) ---- */

/* A request's answer: a status, a JSON body (malloc'd, the caller frees), what the
 * request log says of it. */
struct tp_worker_answer {
	unsigned status;
	char *body;
	size_t size;
	const char *allow;		/* 405: the Allow header */
	bool retry_after;		/* 503 busy: Retry-After: 1 */
	char service[TP_WORKER_ID_HEX]; /* an invocation's service, for the log line */
	const char *end;		/* an invocation's end: "result" or its kind */
	const char *start; /* an invocation's start: "warm" (a zygote's child) or "cold" */
	struct tp_usage usage;
};

/* {"error": {"kind", "message"}} with status into out (a fixed 500 when memory runs
 * out). Returns out->status. */
unsigned tp_worker_error(struct tp_worker_answer *out, unsigned status, const char *kind,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A JSON document (stolen) as the body. Returns out->status. */
unsigned tp_worker_json(struct tp_worker_answer *out, unsigned status, json_t *doc);

/* Whether s is 64 lower-case hex digits. */
bool tp_worker_id_ok(const char *s);

/* A key given as base64 of TP_SYMKEY_SIZE bytes into key. Returns 0 or -EINVAL. */
int tp_worker_key_decode(const char *b64, uint8_t key[32]);

/* The bytes as a JSON string value: invalid UTF-8 replaced by U+FFFD, a NUL kept as
 * \u0000. NULL when out of memory. */
json_t *tp_worker_utf8_string(const char *bytes, size_t size);

/* The service id (docs/api.md): SHA-256 of the tag, its NUL, app, then each data id
 * (32 bytes each, from hex), into hex. Returns 0 or -EINVAL (an id not hex). */
int tp_worker_service_id(const uint8_t app[32], const char *const *data_ids, size_t count,
			 char out[TP_WORKER_ID_HEX]);

/* A sealed data key given for a data id. */
struct tp_worker_key {
	char id[TP_WORKER_ID_HEX];
	uint8_t key[32];
};

/* POST /v1/services's body. */
struct tp_worker_deploy {
	char bundle[TP_WORKER_ID_HEX];
	char (*service_data)[TP_WORKER_ID_HEX];
	size_t service_data_count;
	char config_id[160]; /* "" when none */
	bool has_keys;
	bool has_bundle_key;
	uint8_t bundle_key[32];
	struct tp_worker_key *data_keys;
	size_t data_key_count;
};

/* POST /v1/services/ID/invoke's body. input points into the parsed document (kept
 * in doc, freed by tp_worker_invoke_free). */
struct tp_worker_invoke {
	json_t *doc;
	const char *input;
	size_t input_size;
	/* sealed_input given (docs/api.md, "Confidential invocation"): input is its
	 * bytes, decoded (owned: sealed_bytes) */
	bool sealed;
	uint8_t *sealed_bytes;
	char (*task_data)[TP_WORKER_ID_HEX];
	size_t task_data_count;
	bool has_data_keys;
	struct tp_worker_key *data_keys;
	size_t data_key_count;
};

/* Parse a body: 0, or -EINVAL with one line in err (a 400), -ENOMEM. Free with the
 * matching free (wipes the keys) whatever they return. */
int tp_worker_deploy_parse(const char *body, size_t size, struct tp_worker_deploy *d, char *err,
			   size_t err_size);
void tp_worker_deploy_free(struct tp_worker_deploy *d);
int tp_worker_invoke_parse(const char *body, size_t size, struct tp_worker_invoke *iv, char *err,
			   size_t err_size);
void tp_worker_invoke_free(struct tp_worker_invoke *iv);
/* POST /v1/services/ID/evidence's body, {"nonce": HEX}: 0, or -EINVAL with err. */
int tp_worker_evidence_parse(const char *body, size_t size, uint8_t nonce[TP_NONCE_MAX],
			     size_t *nonce_size, char *err, size_t err_size);

/* What a finished invocation sends back to the worker: this head, then result_size
 * bytes of result and log_size bytes of log. */
struct tp_worker_outcome {
	uint32_t magic;
	int32_t end; /* enum tp_end */
	char message[1024];
	uint64_t cpu_ms, peak_memory_bytes, wall_ms;
	uint8_t have_result, log_truncated;
	uint8_t warm;	/* served by a zygote's child (docs/zygote.md) */
	uint8_t sealed; /* the result is the sealed answer, the log and message empty */
	uint64_t result_size, log_size;
};
#define TP_WORKER_OUTCOME_MAGIC 0x74707731u

/* An invocation's answer (docs/api.md, "Invoke") from its outcome, result and log.
 * Pure. Returns out->status. */
unsigned tp_worker_outcome_answer(const struct tp_worker_outcome *o, const char *result,
				  const char *log, struct tp_worker_answer *out);

/* ---- the store (store.c): SQLite in WAL mode, blobs beside it ---- */

struct tp_worker_store;

/* Opens (or makes, 0700) the store directory and its worker.db (0600). Returns 0, or
 * -errno with one line in err. */
int tp_worker_store_open(const char *dir, struct tp_worker_store **out, char *err, size_t err_size);
void tp_worker_store_close(struct tp_worker_store *st);
/* The store's directory (absolute) and its blob paths. */
const char *tp_worker_store_dir(const struct tp_worker_store *st);
void tp_worker_bundle_path(const struct tp_worker_store *st, const char *id, char *out,
			   size_t size);
void tp_worker_data_path(const struct tp_worker_store *st, const char *id, char *out, size_t size);

/* An upload in progress: an unnamed file in the store, hashed as it is written. */
struct tp_worker_upload;
/* kind: "bundles" or "data". Returns 0 or -errno. */
int tp_worker_upload_begin(struct tp_worker_store *st, const char *kind,
			   struct tp_worker_upload **out);
int tp_worker_upload_write(struct tp_worker_upload *up, const void *bytes, size_t size);
uint64_t tp_worker_upload_size(const struct tp_worker_upload *up);
/* Ends the writing: its SHA-256 in id. The file stays unnamed (fd for reading). */
int tp_worker_upload_finish(struct tp_worker_upload *up, char id[TP_WORKER_ID_HEX]);
int tp_worker_upload_fd(const struct tp_worker_upload *up);
/* Gives it its name (ID.tpy or ID.tpd): 0, or -errno; a name already there is the
 * same bytes (content-addressed) and fine. */
int tp_worker_upload_link(struct tp_worker_upload *up, const char *name);
void tp_worker_upload_free(struct tp_worker_upload *up);

struct tp_worker_bundle_row {
	char id[TP_WORKER_ID_HEX], app[TP_WORKER_ID_HEX], signer[TP_WORKER_ID_HEX];
	bool encrypted;
	char key_id[TP_MANIFEST_KEY_ID_MAX + 1];
};
struct tp_worker_data_row {
	char id[TP_WORKER_ID_HEX];
	uint64_t size;
};

/* Each returns 0, -ENOENT, or -EIO; safe from any thread (one at a time: a lock). */
int tp_worker_bundle_get(struct tp_worker_store *st, const char *id,
			 struct tp_worker_bundle_row *row);
int tp_worker_bundle_add(struct tp_worker_store *st, const struct tp_worker_bundle_row *row);
int tp_worker_data_get(struct tp_worker_store *st, const char *id, struct tp_worker_data_row *row);
int tp_worker_data_add(struct tp_worker_store *st, const struct tp_worker_data_row *row);

/* A service as GET answers it (the caller owns it), or NULL (-ENOENT/-EIO in *err). */
json_t *tp_worker_service_get(struct tp_worker_store *st, const char *id, int *err);
json_t *tp_worker_service_list(struct tp_worker_store *st);
int tp_worker_service_count(struct tp_worker_store *st);
/* Adds a service with its development keys (kind "development": bundle_key may be
 * NULL, keys of its data items). -EEXIST when there. */
int tp_worker_service_add(struct tp_worker_store *st, const char *id, const char *bundle,
			  const char *app, const char (*data)[TP_WORKER_ID_HEX], size_t count,
			  const char *keys, const char *config_id, const uint8_t *bundle_key,
			  const struct tp_worker_key *data_keys, size_t data_key_count,
			  int64_t now);
/* tp_worker_service_add, then the service as GET answers it, in one step (a
 * deletion cannot come between): the document, *added whether it is new; NULL with
 * *err. */
json_t *tp_worker_service_deploy(struct tp_worker_store *st, const char *id, const char *bundle,
				 const char *app, const char (*data)[TP_WORKER_ID_HEX],
				 size_t count, const char *keys, const char *config_id,
				 const uint8_t *bundle_key, const struct tp_worker_key *data_keys,
				 size_t data_key_count, int64_t now, bool *added, int *err);
int tp_worker_service_delete(struct tp_worker_store *st, const char *id);
/* The config id a service gets its keys under ("" for none). 0, -ENOENT, -EIO. */
int tp_worker_service_config(struct tp_worker_store *st, const char *id, char out[160]);
int tp_worker_service_counted(struct tp_worker_store *st, const char *id);
/* A key kept for a service: name "bundle" or a data id. 0, -ENOENT, -EIO. */
int tp_worker_service_key(struct tp_worker_store *st, const char *service, const char *name,
			  uint8_t key[32]);

/* ---- the spawner (spawner.c) ---- */

/* What every invocation shares, fixed at start. */
struct tp_worker_run_opts {
	const char *const *trust_paths; /* NULL-terminated */
	uint64_t timeout_ms;		/* --invoke-timeout */
	uint64_t max_result;		/* --max-result: a larger result ends failed */
	const char *no_cache;		/* why the cache of verified roots is off, or NULL */
	const char *cache_dir, *runtime_dir;
	/* warm starts (docs/zygote.md): zygotes at most (0: none, every start cold), the
	 * children each keeps ready, and the seconds an unused one is kept */
	unsigned zygotes, zygote_pool, zygote_idle_s;
};

/* One invocation, as the worker hands it over. */
struct tp_worker_job {
	const char *service; /* its id: a zygote serves one service */
	const char *bundle_path;
	/* the service's bundle: what the child opens must measure so (another signed
	 * bundle put at its path is refused, not run with the service's keys) */
	const uint8_t *app, *signer;
	const uint8_t *bundle_key; /* or NULL */
	const char *const *data_paths;
	const uint8_t *const *data_keys; /* each item's key (every stored item is sealed) */
	size_t data_count, service_data_count;
	const char *input;
	size_t input_size;
	bool sealed; /* input is sealed to the service's key (tp_worker_sealed_aad_input) */
	const char *const *env; /* NAME=VALUE the CAS gives (after the bundle's) */
	size_t env_count;
};

/* Forks the spawner (before any thread exists). Its pid in *pid, the socket the
 * worker hands it jobs on in *ctl. Returns 0 or -errno. */
int tp_worker_spawner_start(const struct tp_worker_run_opts *o, pid_t *pid, int *ctl);
/* Hands a job to the spawner: *sock becomes the invocation's socket, readable when
 * its outcome is there (tp_worker_outcome_read); shutting down its writing cancels
 * the invocation. Returns 0 or -errno. Thread-safe. */
int tp_worker_spawn(int ctl, const struct tp_worker_job *job, int *sock);
/* Reads an outcome from sock (blocking). Returns 0 with *result and *log malloc'd,
 * or -errno (-EPIPE: the invocation's process died without one; -EFBIG: a result over
 * max_result, which the child never sends). */
int tp_worker_outcome_read(int sock, uint64_t max_result, struct tp_worker_outcome *o,
			   char **result, char **log);

/* Asks the spawner for the public key of a service's key pair for sealed
 * invocations, for its app and signer (made the first time; docs/api.md,
 * "Confidential invocation"). Returns 0, or -errno (-ENOKEY: it could not make one;
 * the spawner is gone, or gave no answer in TP_WORKER_KEY_WAIT_S seconds).
 * Thread-safe. */
#define TP_WORKER_KEY_WAIT_S 30
int tp_worker_sealing_key(int ctl, const char *service, const uint8_t app[32],
			  const uint8_t signer[32], uint8_t pubkey[32]);
/* Has the spawner drop a deleted service's key pairs: an input sealed to one does not
 * open for the service deployed again. Returns 0 or -errno. Thread-safe. */
int tp_worker_sealing_forget(int ctl, const char *service);

/* ---- the answers (api.c) ---- */

struct tp_worker_api_opts {
	const char *const *trust_paths;
	uint64_t max_request, max_upload;
	/* keys by attestation (--cas), or NULL: development mode. Attests for the bundle at
	 * path under config_id and fills *s (its keys in locked memory); returns 0,
	 * -EACCES (the CAS denied: its reason in err) or another -errno with one line in
	 * err. Called from any thread, one call at a time. */
	int (*cas_fetch)(void *ctx, const char *bundle_path, const char *config_id,
			 struct tp_cas_secrets *s, char *err, size_t err_size);
	void *cas_ctx;
	/* sealed invocations (docs/api.md, "Confidential invocation"): evidence of c (its
	 * app, signer, nonce and pubkey set; the callback sets mode and runtime) as
	 * {"type", "data", "vcek"?, "chain"?}, or NULL with one line in err. Called from
	 * any thread; NULL: none is made. The services' keys are the spawner's. */
	json_t *(*evidence)(void *ctx, struct tp_claims *c, char *err, size_t err_size);
	void *evidence_ctx;
	int spawner; /* the spawner's socket, for the services' public keys (-1: none) */
};

struct tp_worker_api;
struct tp_worker_api *tp_worker_api_new(struct tp_worker_store *st,
					const struct tp_worker_api_opts *o, char *err,
					size_t err_size);
void tp_worker_api_free(struct tp_worker_api *a);
struct tp_worker_store *tp_worker_api_store(struct tp_worker_api *a);
/* Whether a deployment or an invocation may wait on a CAS (--cas): the server then
 * answers them off its connection threads. */
bool tp_worker_api_attests(const struct tp_worker_api *a);

/* What a request is, from its method and path, before its body. */
enum tp_worker_route {
	TP_ROUTE_NONE,	     /* answered already (404, 405) */
	TP_ROUTE_BUNDLE_PUT, /* POST /v1/bundles: an upload */
	TP_ROUTE_DATA_PUT,   /* POST /v1/data: an upload */
	TP_ROUTE_DEPLOY,     /* POST /v1/services: JSON */
	TP_ROUTE_LIST,	     /* GET /v1/services */
	TP_ROUTE_GET,	     /* GET /v1/services/ID */
	TP_ROUTE_DELETE,     /* DELETE /v1/services/ID */
	TP_ROUTE_INVOKE,     /* POST /v1/services/ID/invoke: JSON */
	TP_ROUTE_EVIDENCE,   /* POST /v1/services/ID/evidence: JSON */
};
/* The route, with the service id (id, for GET, DELETE, INVOKE and EVIDENCE); TP_ROUTE_NONE with
 * out answered. Pure. */
enum tp_worker_route tp_worker_route(const char *method, const char *path,
				     char id[TP_WORKER_ID_HEX], struct tp_worker_answer *out);
static inline bool tp_worker_route_upload(enum tp_worker_route r)
{
	return r == TP_ROUTE_BUNDLE_PUT || r == TP_ROUTE_DATA_PUT;
}

/* An upload complete (not yet finished): checked, named, recorded, answered. */
void tp_worker_api_upload(struct tp_worker_api *a, enum tp_worker_route r,
			  struct tp_worker_upload *up, struct tp_worker_answer *out);
/* A JSON or bodiless request answered (not INVOKE). */
void tp_worker_api_handle(struct tp_worker_api *a, enum tp_worker_route r, const char *id,
			  const char *body, size_t size, struct tp_worker_answer *out);

/* An invocation ready to hand over (tp_worker_api_invoke_prepare): the job and what
 * it points to. */
struct tp_worker_prepared {
	struct tp_worker_job job;
	char service[TP_WORKER_ID_HEX];
	char bundle_path[PATH_MAX];
	uint8_t app[32], signer[32];
	char **paths;
	uint8_t **keys; /* locked memory */
	uint8_t *bundle_key;
	size_t count;
	char **env; /* the CAS's env values (wiped when freed) */
	size_t env_count;
	struct tp_worker_invoke iv;
};
/* 0 with *p ready, or 1 with out answered (an error). */
int tp_worker_api_invoke_prepare(struct tp_worker_api *a, const char *id, const char *body,
				 size_t size, struct tp_worker_prepared *p,
				 struct tp_worker_answer *out);
void tp_worker_prepared_free(struct tp_worker_prepared *p);
/* The invocation's end counted for its service. */
void tp_worker_api_counted(struct tp_worker_api *a, const char *service);

/* ---- the HTTP server (server.c) ---- */

struct tp_worker_server_opts {
	const char *host; /* numeric IPv4 or IPv6 */
	unsigned port;	  /* 0: any free one */
	unsigned timeout; /* seconds an idle connection is kept */
	unsigned threads, max_conn;
	unsigned concurrency, queue;
	uint64_t max_request, max_upload, max_result;
	int spawner; /* the spawner's socket */
};

struct tp_worker_server;
/* Listens and serves on threads of libmicrohttpd's. Returns 0, or -errno with one line
 * in err. */
int tp_worker_server_start(const struct tp_worker_server_opts *o, struct tp_worker_api *api,
			   struct tp_worker_server **out, char *err, size_t err_size);
unsigned tp_worker_server_port(const struct tp_worker_server *srv);
/* Stops the running invocations and the queued ones, then the server. */
void tp_worker_server_stop(struct tp_worker_server *srv);

#endif
