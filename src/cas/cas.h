/* The CAS (Configuration and Attestation Service), issue 14: owners' policies and their
 * secrets, released sealed to a runtime whose evidence a policy accepts. policy.c is
 * pure (a policy document parsed and validated, its canonical JSON and hash, the
 * redacted copy a get answers); store.c keeps state in SQLite (WAL: policies, secrets
 * encrypted with a master key, nonces, the replay cache, the append-only audit log);
 * service.c answers one request (method, path, body, remote address, time) with a
 * status and a JSON body, every check made there, no socket; server.c serves it over
 * HTTPS with libmicrohttpd. The API: docs/cas.md, "The server". */
#ifndef TEEPY_CAS_CAS_H
#define TEEPY_CAS_CAS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_CAS_NAME_MAX	     64	       /* a policy's or a service's name */
#define TP_CAS_BODY_MAX	     (1 << 20) /* a request body: 413 beyond */
#define TP_CAS_NONCE_SIZE    32
#define TP_CAS_NONCE_TTL     60	   /* seconds a challenge is good for */
#define TP_CAS_NONCE_OPEN    65536 /* challenges open at once: 503 beyond */
#define TP_CAS_TIME_SKEW     300   /* seconds a signed time may be off the server's clock */
#define TP_CAS_REPLAY_WINDOW 600   /* seconds a (time, signature) pair is remembered */
#define TP_CAS_MASTER_SIZE   32
#define TP_CAS_HASH_HEX	     65	  /* 64 hex digits and a NUL */
#define TP_CAS_LIST_MAX	     1024 /* entries in any one list of a policy: 400 beyond */

/* ---- policies (policy.c): pure ---- */

/* Parses and validates a policy document (docs/cas.md, "Policies"): every rule, unknown
 * keys refused. Returns the document (the caller owns it), or NULL with one line in err. */
json_t *tp_cas_policy_parse(const char *json, size_t size, char *err, size_t err_size);
/* The same for a document already parsed (borrowed). Returns 0 or -EINVAL with err. */
int tp_cas_policy_check(const json_t *doc, char *err, size_t err_size);
/* The checks of a policy that cost time linear in its size: an object, only known
 * top-level keys, a valid name, no list (services, secrets, a service's app, runtime,
 * tolerate, platform_keys, secrets, hw.tdx, hw.snp) over TP_CAS_LIST_MAX entries. The
 * server makes them before the owner's signature is verified (tp_cas_policy_check
 * makes them too). Returns 0 or -EINVAL with err naming the list. */
int tp_cas_policy_limits(const json_t *doc, char *err, size_t err_size);

/* The canonical JSON (jansson's JSON_COMPACT | JSON_SORT_KEYS), malloc'd, NUL-terminated,
 * its size in *size. NULL when out of memory. */
char *tp_cas_canonical(const json_t *doc, size_t *size);
/* A policy version's hash: lower-case hex (out: TP_CAS_HASH_HEX) of HMAC-SHA-256 under
 * key over "teepy-cas-policy-v1\0" || salt || the canonical JSON, secret values
 * included. Keyed, so that a copy of the database does not let anyone test guesses of
 * a secret value against it; salted, so that each write has its own hash and a signed
 * update or delete cannot be replayed after the policy returns to an earlier text.
 * Returns 0 or -ENOMEM. */
#define TP_CAS_HASH_KEY_SIZE  32
#define TP_CAS_HASH_SALT_SIZE 16
int tp_cas_policy_hash(const json_t *doc, const uint8_t key[TP_CAS_HASH_KEY_SIZE],
		       const uint8_t salt[TP_CAS_HASH_SALT_SIZE], char out[TP_CAS_HASH_HEX]);
/* A copy with each secret's "value" replaced by "sha256": hex of the value's bytes (the
 * decoded bytes for the base64 kinds, the string's for env). NULL when out of memory. */
json_t *tp_cas_policy_redact(const json_t *doc);
/* Whether name is a policy or service name: [a-z0-9][a-z0-9_-]{0,63}. */
bool tp_cas_name_ok(const char *name);

/* Standard base64 with padding. encode: malloc'd, NUL-terminated, or NULL. decode:
 * refuses anything but canonical base64; *out malloc'd (the caller frees), its size in
 * *size. Returns 0, -EINVAL or -ENOMEM. */
char *tp_base64_encode(const uint8_t *bytes, size_t size);
int tp_base64_decode(const char *text, size_t len, uint8_t **out, size_t *size);
/* The bytes' base64 as a new JSON string, or NULL when out of memory. */
json_t *tp_base64_json(const void *bytes, size_t size);

/* ---- the store (store.c): SQLite in WAL mode ---- */

struct tp_cas_store;

/* Opens (or makes) the database at path, tables and WAL mode; master encrypts secret
 * values (copied; NULL for a store only read, as the audit command does). Returns 0, or -errno with
 * one line in err. */
int tp_cas_store_open(const char *path, const uint8_t master[TP_CAS_MASTER_SIZE],
		      struct tp_cas_store **out, char *err, size_t err_size);
void tp_cas_store_close(struct tp_cas_store *st);

/* The policy called name: its full document (secret values decrypted; the caller owns
 * it), owner (64 hex) and hash. Returns 0, -ENOENT, -EBADMSG (a value does not decrypt:
 * another master key) or -EIO. */
int tp_cas_store_policy_get(struct tp_cas_store *st, const char *name, json_t **doc,
			    char owner[TP_CAS_HASH_HEX], char hash[TP_CAS_HASH_HEX]);
/* Writes a policy in one transaction: with predecessor NULL a new one (-EEXIST when the
 * name is taken), else replacing the one whose hash is predecessor (-ENOENT: none;
 * -ESTALE: another hash). Secret values are stored encrypted, the document without
 * them. The new version's hash (tp_cas_policy_hash under a key derived from the master
 * key, a fresh salt) goes to hash. Returns 0, -ENOMEM or -EIO. */
int tp_cas_store_policy_put(struct tp_cas_store *st, const char *name, const char *owner,
			    const json_t *doc, const char *predecessor, char hash[TP_CAS_HASH_HEX]);
/* Deletes name if its hash is predecessor: 0, -ENOENT, -ESTALE or -EIO. */
int tp_cas_store_policy_delete(struct tp_cas_store *st, const char *name, const char *predecessor);
/* [{"name", "hash"}] of owner's policies, by name (the caller owns it), or NULL. */
json_t *tp_cas_store_policy_list(struct tp_cas_store *st, const char *owner);

/* A challenge: remembered until a day after expires. Refused while max_open challenges
 * are unexpired and unused (anyone may ask for one: each is a row). Returns 0, -EBUSY,
 * -EEXIST or -EIO. */
int tp_cas_store_nonce_add(struct tp_cas_store *st, const char *nonce, int64_t now, int64_t expires,
			   unsigned max_open);
/* Uses a challenge up: 0 (now used), -ENOENT (never given), -EALREADY (used before),
 * -ETIME (expired; now used too), -EIO (nothing changed). Forgets those expired long
 * ago. Its own transaction, or part of the one tp_cas_store_begin opened. */
int tp_cas_store_nonce_take(struct tp_cas_store *st, const char *nonce, int64_t now);
/* One transaction for the calls between them (BEGIN IMMEDIATE): all of their changes
 * are written, or none. commit returns 0, or -EIO having undone them all; begin 0 or
 * -EIO. */
int tp_cas_store_begin(struct tp_cas_store *st);
int tp_cas_store_commit(struct tp_cas_store *st);
/* Commits reach the WAL without waiting for the disk; an answer waits for it
 * (group commit). tp_cas_store_written, by the thread holding the store after a
 * request's writes, returns the mark to wait for, or 0 when the request wrote
 * nothing that must last (a challenge need not). tp_cas_store_sync waits, without
 * the store's lock, until the disk has every write up to mark: one fdatasync of the
 * WAL serves every thread then waiting. It returns 0, or -EIO when a sync failed
 * (then every later wait fails too: what was written may be lost). */
uint64_t tp_cas_store_written(struct tp_cas_store *st);
int tp_cas_store_sync(struct tp_cas_store *st, uint64_t mark);
/* Remembers a signature until expires: 0, -EALREADY (seen) or -EIO. */
int tp_cas_store_replay_add(struct tp_cas_store *st, const char *signature, int64_t expires,
			    int64_t now);

struct tp_cas_audit {
	int64_t id, time;
	const char *remote, *op, *subject, *outcome, *reason;
};
/* Appends a row (the table refuses updates and deletes). Returns 0 or -EIO. */
int tp_cas_store_audit(struct tp_cas_store *st, const struct tp_cas_audit *row);
/* Calls fn on each row, oldest first (only outcome "denied" and "refused" with
 * denied_only); stops when fn returns non-zero. Returns 0, fn's value or -EIO. */
int tp_cas_store_audit_each(struct tp_cas_store *st, bool denied_only,
			    int (*fn)(const struct tp_cas_audit *row, void *ctx), void *ctx);

/* ---- requests (service.c) ---- */

struct tp_cas_service;

/* A service over st (borrowed) whose challenges are good for nonce_ttl seconds (0:
 * TP_CAS_NONCE_TTL). NULL when out of memory. */
struct tp_cas_service *tp_cas_service_new(struct tp_cas_store *st, unsigned nonce_ttl);
void tp_cas_service_free(struct tp_cas_service *s);

struct tp_cas_request {
	const char *method, *path;
	const char *content_type; /* NULL: none */
	const uint8_t *body;
	size_t size;
	const char *remote; /* "127.0.0.1" */
	int64_t now;	    /* seconds since the epoch */
};

struct tp_cas_answer {
	unsigned status;
	char *body; /* JSON, malloc'd (the caller frees) */
	size_t size;
};

/* Answers one request; requests are handled one at a time (a lock inside), so that a
 * nonce is used once and a predecessor replaced once. Always fills out (a 500 with a
 * fixed body when memory runs out). */
void tp_cas_handle(struct tp_cas_service *s, const struct tp_cas_request *req,
		   struct tp_cas_answer *out);

/* ---- the HTTPS server (server.c) ---- */

struct tp_cas_server_opts {
	const char *host; /* numeric IPv4 or IPv6 address */
	unsigned port;	  /* 0: any free port (the one taken is in tp_cas_server_port) */
	const char *key;  /* the TLS key (PEM) and its certificate, made when missing */
	const char *cert;
	unsigned timeout;  /* seconds a connection may idle */
	unsigned threads;  /* polling threads */
	unsigned max_conn; /* connections at once */
};

struct tp_cas_server;

/* Makes the TLS key and certificate if missing and starts serving s (borrowed) on
 * its own threads. Returns 0 with *out, or -errno with one line in err (-EADDRINUSE:
 * the port is taken). fingerprint gets "sha256//" and base64 of SHA-256 of the key's
 * SubjectPublicKeyInfo (at least 64 bytes). */
int tp_cas_server_start(const struct tp_cas_server_opts *o, struct tp_cas_service *s,
			struct tp_cas_server **out, char *fingerprint, size_t fp_size, char *err,
			size_t err_size);
unsigned tp_cas_server_port(const struct tp_cas_server *srv);
void tp_cas_server_stop(struct tp_cas_server *srv);

#endif
