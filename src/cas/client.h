/* The CAS client (docs/cas-api.md, docs/cas.md "The runtime side" and "Policy
 * commands"): JSON over HTTPS to a CAS whose key is pinned, through libcurl, which
 * is loaded on first use as libcrypto is (an unsealed `teepy run` maps neither);
 * the bytes an owner signs; and the secrets of an attestation's sealed
 * answer, read into locked memory. The HTTP request under it (tp_http_call) is
 * the worker client's too. Everything but tp_cas_load and the calls is pure. Base64, canonical JSON
 * and names are cas.h's, the server's too. */
#ifndef TEEPY_CAS_CLIENT_H
#define TEEPY_CAS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_sha256;

#define TP_CAS_ANSWER_MAX    (1 << 20) /* an answer larger than this is refused */
#define TP_CAS_TIMEOUT_S     30	       /* a whole request */
#define TP_CAS_CONNECT_S     10
#define TP_CAS_SIGN_TAG	     "teepy-cas-v1" /* and its NUL: the domain of an owner's signature */
#define TP_CAS_FINGERPRINT_P "sha256//"

/* Loads libcurl (libcurl.so.4, Debian's OpenSSL flavour) once. Returns 0, or -ENOSYS
 * with the reason in err. */
int tp_cas_load(char *err, size_t err_size);

/* Whether url is an https:// URL and fp a pin as libcurl takes it: "sha256//" and
 * the base64 of 32 bytes. Pure. Return 0, or -EINVAL with one line in err. */
int tp_cas_check_url(const char *url, char *err, size_t err_size);
int tp_cas_check_fingerprint(const char *fp, char *err, size_t err_size);

/* ---- one HTTP request (the CAS's, and the worker client's: docs/api.md) ---- */

/* Where a request goes and what is trusted there. */
struct tp_http_peer {
	const char *url;	 /* http:// or https://HOST:PORT (a trailing / is dropped) */
	const char *fingerprint; /* https only: the pinned key (sha256//BASE64), the only
				  * trust: TLS 1.3, no chain or host name checked. NULL:
				  * http:// as it is, https:// verified as a browser does
				  * (the system's CAs, the host name) */
	const char *name;	 /* "the CAS", "the worker": in messages */
	size_t answer_max;	 /* an answer larger than this is refused */
	long timeout_s;		 /* a whole request; 0: none (a connection still has
				  * TP_CAS_CONNECT_S to be made) */
};

/* What a request sends: a JSON object, or a file's bytes streamed as they are read
 * (never held whole in memory). */
struct tp_http_body {
	const json_t *json; /* sent as application/json; else: */
	int fd;		    /* size bytes from offset 0, as application/octet-stream */
	uint64_t size;
	struct tp_sha256 *hash; /* NULL, or fed each byte of the file as it is sent */
};

/* method of body (NULL: none) to the peer's path ("/v1/data"). Returns 0 with
 * *answer (a JSON object; the caller decrefs it) for a 2xx answer, or one line in err
 * (naming the peer as its name says):
 *   -ECONNREFUSED  nothing listens there (or the host is not reached)
 *   -EKEYREJECTED  the peer's key is not the pinned one, or its certificate does not
 *                  verify
 *   -ETIMEDOUT     no answer in time
 *   -EREMOTEIO     the peer refused: *status is its HTTP status, err "MESSAGE (HTTP
 *                  STATUS KIND)", and *answer the whole error answer when it is a JSON
 *                  object (an invocation's carries its log), else NULL
 *   -EBADMSG       the answer is not a JSON object, or larger than answer_max
 *   -ENODATA       the file could not be read, or changed size, while it was sent
 *   -ENOTSUP       this libcurl cannot make the request as asked: nothing was sent
 *   -EIO           another transport error (TLS, DNS), libcurl's words in err
 *   -ENOSYS        libcurl cannot be loaded
 * status may be NULL. A JSON body's text is wiped once sent. */
int tp_http_call(const struct tp_http_peer *p, const char *method, const char *path,
		 const struct tp_http_body *body, long *status, json_t **answer, char *err,
		 size_t err_size);

/* Whether url is an http:// or https:// URL without spaces or control characters.
 * Pure. Returns 0, or -EINVAL with one line in err (naming what). */
int tp_http_check_url(const char *url, const char *what, char *err, size_t err_size);

/* Where the CAS is and which key it must hold. */
struct tp_cas_conn {
	const char *url;	 /* https://HOST:PORT (a trailing / is dropped) */
	const char *fingerprint; /* sha256//BASE64 of SHA-256(SubjectPublicKeyInfo) */
};

/* method ("POST", "PUT") of body (a JSON object, sent as application/json) to the
 * CAS's path ("/v1/challenge"), over TLS 1.3 only, the server's key pinned: its
 * certificate chain and host name are not checked, the pin is the trust (the CAS's
 * certificate is self-signed). Answers of at most TP_CAS_ANSWER_MAX, within
 * TP_CAS_TIMEOUT_S. Returns as tp_http_call, but with no *answer for a refusal. */
int tp_cas_call(const struct tp_cas_conn *c, const char *method, const char *path,
		const json_t *body, long *status, json_t **answer, char *err, size_t err_size);

/* The bytes an owner signs: "teepy-cas-v1\0" || op || "\0" || parts[0] || "\0" ||
 * parts[1] ... (count parts, sizes[i] bytes each), malloc'd into *out. Returns 0 or
 * -ENOMEM. */
int tp_cas_signed_bytes(const char *op, const char *const *parts, const size_t *sizes, size_t count,
			uint8_t **out, size_t *size);

/* ---- what an attestation releases ---- */

#define TP_CAS_KEY_SIZE 32
#define TP_CAS_ID_SIZE	32

struct tp_cas_data_key {
	uint8_t id[TP_CAS_ID_SIZE]; /* the sealed item's id (teepy data info) */
	uint8_t *key;		    /* TP_CAS_KEY_SIZE bytes of locked memory */
};

/* The secrets of a config id, each in locked memory (tp_secret_alloc) until
 * tp_cas_secrets_free wipes it. */
struct tp_cas_secrets {
	uint8_t *bundle_key; /* or NULL */
	uint8_t *volume_key; /* or NULL */
	struct tp_cas_data_key *data;
	size_t data_count;
	char **env; /* "NAME=VALUE", each env_sizes[i] bytes of locked memory */
	size_t *env_sizes;
	size_t env_count;
	char blobs[256]; /* the names of blob secrets, ", "-separated (a run skips them) */
	size_t blob_count;
};

/* Reads the opened answer, {"secrets": {NAME: {"kind", "value", "data_id"?}}}, into
 * s: keys of 32 bytes, data ids of 64 hex digits, env names of letters, digits and _
 * (not LD_*) whose values hold no NUL. jansson's copies of the values are made in
 * locked memory and wiped too. Pure but for memory. Returns 0, or -EBADMSG (-ENOMEM)
 * with one line in err, s then empty. */
int tp_cas_secrets_parse(const char *json, size_t size, struct tp_cas_secrets *s, char *err,
			 size_t err_size);
void tp_cas_secrets_free(struct tp_cas_secrets *s);

/* The key of the data item with this id, or NULL. */
const uint8_t *tp_cas_data_key_find(const struct tp_cas_secrets *s,
				    const uint8_t id[TP_CAS_ID_SIZE]);

#endif
