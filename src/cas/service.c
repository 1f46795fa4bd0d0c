/* The CAS's requests: each one (method, path, body, remote address, time) answered with
 * a status and a JSON body, every check made here, so that tests and fuzzers drive it
 * without a socket. Policies are owned by an Ed25519 key that signs every operation;
 * attestation takes a challenge, checks evidence against the service's policy and
 * answers with its secrets sealed to the runtime's key. Every decision is one row of
 * the audit log. */
#include "cas.h"

#include "../attest/attest.h"
#include "../crypto/crypto.h"
#include "../manifest/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIGN_TAG "teepy-cas-v1"

struct tp_cas_service {
	struct tp_cas_store *st;
	unsigned nonce_ttl, nonce_open;
	pthread_mutex_t lock;
};

struct tp_cas_service *tp_cas_service_new(struct tp_cas_store *st, unsigned nonce_ttl)
{
	struct tp_cas_service *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->st = st;
	s->nonce_ttl = nonce_ttl ? nonce_ttl : TP_CAS_NONCE_TTL;
	s->nonce_open = TP_CAS_NONCE_OPEN;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void tp_cas_service_free(struct tp_cas_service *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- answers ---- */

static void answer_json(struct tp_cas_answer *out, unsigned status, json_t *body)
{
	static const char oom[] =
	    "{\"error\":{\"kind\":\"internal\",\"message\":\"out of memory\"}}";
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(body);
	if (!text) {
		status = 500;
		text = strdup(oom);
	}
	out->status = status;
	out->body = text;
	out->size = text ? strlen(text) : 0;
}

static const char *error_kind(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 403:
		return "denied";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	case 415:
		return "unsupported_media_type";
	case 503:
		return "unavailable";
	default:
		return "internal";
	}
}

static void answer_error(struct tp_cas_answer *out, unsigned status, const char *message)
{
	answer_json(
	    out, status,
	    json_pack("{s:{s:s, s:s}}", "error", "kind", error_kind(status), "message", message));
}

/* One request's context: where the answer and the audit row go. */
struct call {
	struct tp_cas_service *s;
	const struct tp_cas_request *req;
	struct tp_cas_answer *out;
	const char *op;
	char subject[2 * TP_CAS_NAME_MAX + 2];
};

/* s made printable in place: every byte outside printable ASCII becomes '?', but for
 * the ellipsis this file writes. What a request names reaches messages and the audit
 * log, which a terminal shows and JSON must hold as UTF-8 (a name cut at 64 bytes may
 * end inside a character). */
static char *printable(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if (p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0xa6) {
			p += 2;
			continue;
		}
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
	}
	return s;
}

/* The request's audit row: 0, or < 0 when the store failed to write it. */
static int audit(struct call *c, const char *outcome, const char *reason)
{
	printable(c->subject);
	struct tp_cas_audit row = {
		.time = c->req->now,
		.remote = c->req->remote,
		.op = c->op,
		.subject = c->subject,
		.outcome = outcome,
		.reason = reason,
	};
	return tp_cas_store_audit(c->s->st, &row);
}

/* An error answer and its audit row ("denied" for attest, "refused" for the others). */
static void refuse(struct call *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct call *c, unsigned status, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	printable(message);
	audit(c, strcmp(c->op, "attest") == 0 ? "denied" : "refused", message);
	answer_error(c->out, status, message);
}

/* ---- fields ---- */

static bool hex_field(const json_t *o, const char *key, uint8_t *out, size_t size)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && strlen(s) == 2 * size && tp_unhex(s, out, size) == 0 &&
	       /* lower-case only: one spelling of each value */
	       strspn(s, "0123456789abcdef") == 2 * size;
}

static const char *hex_string(const json_t *o, const char *key, size_t size)
{
	uint8_t buf[64];
	if (size > sizeof(buf) || !hex_field(o, key, buf, size))
		return NULL;
	return json_string_value(json_object_get(o, key));
}

/* Frees bytes that may hold secret values (a policy's canonical text), wiped first. */
static void free_wiped(void *p, size_t size)
{
	if (p)
		explicit_bzero(p, size);
	free(p);
}

/* ---- owner signatures ---- */

/* Whether sighex is owner's signature over "teepy-cas-v1\0" OP "\0" REST. */
static bool signed_by(const char *owner_hex, const char *sighex, const char *op, const void *rest,
		      size_t rest_size)
{
	uint8_t pub[TP_ED25519_PUB_SIZE], sig[TP_ED25519_SIG_SIZE];
	size_t tag = sizeof(SIGN_TAG), oplen = strlen(op) + 1;
	struct tp_key *key;
	uint8_t *msg;
	bool ok;

	if (!owner_hex || !sighex || strlen(owner_hex) != 64 || strlen(sighex) != 128 ||
	    tp_unhex(owner_hex, pub, sizeof(pub)) < 0 || tp_unhex(sighex, sig, sizeof(sig)) < 0)
		return false;
	if (!(key = tp_key_from_raw_public(pub)))
		return false;
	if (!(msg = malloc(tag + oplen + rest_size + 1))) {
		tp_key_free(key);
		return false;
	}
	memcpy(msg, SIGN_TAG, tag);
	memcpy(msg + tag, op, oplen);
	memcpy(msg + tag + oplen, rest, rest_size);
	ok = tp_verify(key, msg, tag + oplen + rest_size, sig) == 0;
	free(msg);
	tp_key_free(key);
	return ok;
}

/* A signed time: within the skew of now, and its signature not seen before. */
static bool fresh(struct call *c, const json_t *body, const char *sighex)
{
	const json_t *t = json_object_get(body, "time");
	json_int_t when = json_integer_value(t);
	int r;

	if (!json_is_integer(t) || when < c->req->now - TP_CAS_TIME_SKEW ||
	    when > c->req->now + TP_CAS_TIME_SKEW) {
		refuse(c, 403, "stale time: more than %d s off the server's clock",
		       TP_CAS_TIME_SKEW);
		return false;
	}
	r = tp_cas_store_replay_add(c->s->st, sighex, c->req->now + TP_CAS_REPLAY_WINDOW,
				    c->req->now);
	if (r == -EALREADY) {
		refuse(c, 403, "signature already used (a replayed request)");
		return false;
	}
	if (r < 0) {
		refuse(c, 503, "the store failed");
		return false;
	}
	return true;
}

/* ---- policies ---- */

static json_t *name_hash(const char *name, const char *hash)
{
	return json_pack("{s:s, s:s}", "name", name, "hash", hash);
}

/* The policy of a create or update, checked only for what costs time linear in its
 * size (the owner's signature is verified before the rest), and its canonical bytes. */
static json_t *policy_of(struct call *c, const json_t *body, char **canonical, size_t *size)
{
	json_t *doc = json_object_get(body, "policy");
	char err[256];

	if (tp_cas_policy_limits(doc, err, sizeof(err)) < 0) {
		refuse(c, 400, "policy: %s", err);
		return NULL;
	}
	if (!(*canonical = tp_cas_canonical(doc, size))) {
		refuse(c, 500, "out of memory");
		return NULL;
	}
	return doc;
}

/* The rest of the policy's rules, once its signature verified. */
static bool policy_valid(struct call *c, const json_t *doc)
{
	char err[256];

	if (tp_cas_policy_check(doc, err, sizeof(err)) < 0) {
		refuse(c, 400, "policy: %s", err);
		return false;
	}
	return true;
}

static void policy_create(struct call *c, const json_t *body)
{
	const char *owner = hex_string(body, "owner", 32);
	const char *sig = hex_string(body, "signature", 64);
	char hash[TP_CAS_HASH_HEX], *canonical = NULL;
	const char *name;
	size_t size;
	json_t *doc;
	int r;

	if (!owner || !sig) {
		refuse(c, 400, "create needs owner (64 hex) and signature (128 hex)");
		return;
	}
	if (!(doc = policy_of(c, body, &canonical, &size)))
		return;
	name = json_string_value(json_object_get(doc, "name"));
	snprintf(c->subject, sizeof(c->subject), "%s", name);
	if (!signed_by(owner, sig, "create", canonical, size)) {
		free_wiped(canonical, size);
		refuse(c, 403, "signature does not verify by the owner key %.16s…", owner);
		return;
	}
	free_wiped(canonical, size);
	if (!policy_valid(c, doc))
		return;
	r = tp_cas_store_policy_put(c->s->st, name, owner, doc, NULL, hash);
	if (r == -EEXIST)
		refuse(c, 409, "policy %s exists", name);
	else if (r < 0)
		refuse(c, 503, "the store failed");
	else {
		audit(c, "accepted", hash);
		answer_json(c->out, 201, name_hash(name, hash));
	}
}

/* The stored policy name, its owner and hash; an answer when there is none. */
static json_t *stored(struct call *c, const char *name, char owner[TP_CAS_HASH_HEX],
		      char hash[TP_CAS_HASH_HEX])
{
	json_t *doc = NULL;
	int r = tp_cas_store_policy_get(c->s->st, name, &doc, owner, hash);

	if (r == -ENOENT)
		refuse(c, 404, "no policy %s", name);
	else if (r < 0)
		refuse(c, 503, "the store failed%s",
		       r == -EBADMSG ? " (a secret does not decrypt: another master key?)" : "");
	return doc;
}

static void policy_update(struct call *c, const char *name, const json_t *body)
{
	const char *pred = hex_string(body, "predecessor", 32);
	const char *sig = hex_string(body, "signature", 64);
	char owner[TP_CAS_HASH_HEX], hash[TP_CAS_HASH_HEX], now[TP_CAS_HASH_HEX];
	char *canonical = NULL, *rest;
	json_t *doc, *old;
	size_t size;
	bool ok;
	int r;

	if (!json_object_get(body, "predecessor")) {
		refuse(c, 400, "an update names the hash of the policy it replaces (predecessor)");
		return;
	}
	if (!pred || !sig) {
		refuse(c, 400, "update needs predecessor (64 hex) and signature (128 hex)");
		return;
	}
	if (!(doc = policy_of(c, body, &canonical, &size)))
		return;
	if (strcmp(json_string_value(json_object_get(doc, "name")), name) != 0) {
		free_wiped(canonical, size);
		refuse(c, 400, "the policy's name is not %s (a policy is never renamed)", name);
		return;
	}
	if (!(old = stored(c, name, owner, now))) {
		free_wiped(canonical, size);
		return;
	}
	json_decref(old);
	if (!(rest = malloc(64 + 1 + size))) {
		free_wiped(canonical, size);
		refuse(c, 500, "out of memory");
		return;
	}
	memcpy(rest, pred, 64);
	rest[64] = '\0';
	memcpy(rest + 65, canonical, size);
	ok = signed_by(owner, sig, "update", rest, 65 + size);
	free_wiped(rest, 65 + size);
	free_wiped(canonical, size);
	if (!ok) {
		refuse(c, 403, "not signed by the owner of %s", name);
		return;
	}
	if (!policy_valid(c, doc))
		return;
	r = tp_cas_store_policy_put(c->s->st, name, owner, doc, pred, hash);
	if (r == -ESTALE || r == -ENOENT)
		refuse(c, 409, "stale predecessor %.16s… (policy %s is now %.16s…)", pred, name,
		       now);
	else if (r < 0)
		refuse(c, 503, "the store failed");
	else {
		audit(c, "accepted", hash);
		answer_json(c->out, 200, name_hash(name, hash));
	}
}

/* The REST a get or list signs: first (the name, the owner key) "\0" decimal TIME "\0"
 * NONCE, into rest. The nonce makes two requests in the same second sign different
 * bytes. Returns its size, or -1 (answered) when time, nonce or the signature is
 * missing. */
#define SIGNED_NONCE_SIZE 16
static int timed_rest(struct call *c, const json_t *body, const char *first, const char *sig,
		      char *rest, size_t size)
{
	const json_t *t = json_object_get(body, "time");
	const char *nonce = hex_string(body, "nonce", SIGNED_NONCE_SIZE);

	if (!json_is_integer(t) || !nonce || !sig) {
		refuse(c, 400, "%s needs time (an integer), nonce (32 hex) and signature (128 hex)",
		       c->op);
		return -1;
	}
	return snprintf(rest, size, "%s%c%" JSON_INTEGER_FORMAT "%c%s", first, '\0',
			json_integer_value(t), '\0', nonce);
}

static void policy_get(struct call *c, const char *name, const json_t *body)
{
	const char *sig = hex_string(body, "signature", 64);
	char owner[TP_CAS_HASH_HEX], hash[TP_CAS_HASH_HEX], rest[TP_CAS_NAME_MAX + 64 + 80];
	json_t *doc;
	int n;

	if ((n = timed_rest(c, body, name, sig, rest, sizeof(rest))) < 0)
		return;
	if (!(doc = stored(c, name, owner, hash)))
		return;
	if (!signed_by(owner, sig, "get", rest, (size_t)n)) {
		json_decref(doc);
		refuse(c, 403, "not signed by the owner of %s", name);
		return;
	}
	if (!fresh(c, body, sig)) {
		json_decref(doc);
		return;
	}
	audit(c, "accepted", hash);
	answer_json(c->out, 200,
		    json_pack("{s:s, s:s, s:s, s:o}", "name", name, "hash", hash, "owner", owner,
			      "policy", tp_cas_policy_redact(doc)));
	json_decref(doc);
}

static void policy_delete(struct call *c, const char *name, const json_t *body)
{
	const char *pred = hex_string(body, "predecessor", 32);
	const char *sig = hex_string(body, "signature", 64);
	char owner[TP_CAS_HASH_HEX], hash[TP_CAS_HASH_HEX], rest[TP_CAS_NAME_MAX + 66];
	json_t *doc;
	int n, r;

	if (!pred || !sig) {
		refuse(c, 400, "delete needs predecessor (64 hex) and signature (128 hex)");
		return;
	}
	if (!(doc = stored(c, name, owner, hash)))
		return;
	json_decref(doc);
	n = snprintf(rest, sizeof(rest), "%s%c%s", name, '\0', pred);
	if (!signed_by(owner, sig, "delete", rest, (size_t)n)) {
		refuse(c, 403, "not signed by the owner of %s", name);
		return;
	}
	r = tp_cas_store_policy_delete(c->s->st, name, pred);
	if (r == -ESTALE || r == -ENOENT)
		refuse(c, 409, "stale predecessor %.16s… (policy %s is now %.16s…)", pred, name,
		       hash);
	else if (r < 0)
		refuse(c, 503, "the store failed");
	else {
		audit(c, "accepted", pred);
		answer_json(c->out, 200, json_pack("{s:s}", "name", name));
	}
}

static void policy_list(struct call *c, const json_t *body)
{
	const char *owner = hex_string(body, "owner", 32);
	const char *sig = hex_string(body, "signature", 64);
	char rest[64 + 80];
	json_t *list;
	int n;

	if (!owner) {
		refuse(c, 400, "list needs owner (64 hex)");
		return;
	}
	snprintf(c->subject, sizeof(c->subject), "%.16s…", owner);
	if ((n = timed_rest(c, body, owner, sig, rest, sizeof(rest))) < 0)
		return;
	if (!signed_by(owner, sig, "list", rest, (size_t)n)) {
		refuse(c, 403, "signature does not verify by the owner key %.16s…", owner);
		return;
	}
	if (!fresh(c, body, sig))
		return;
	if (!(list = tp_cas_store_policy_list(c->s->st, owner))) {
		refuse(c, 503, "the store failed");
		return;
	}
	audit(c, "accepted", "");
	answer_json(c->out, 200, json_pack("{s:o}", "policies", list));
}

/* ---- attestation ---- */

static void challenge(struct call *c)
{
	uint8_t nonce[TP_CAS_NONCE_SIZE];
	char hex[2 * TP_CAS_NONCE_SIZE + 1];

	if (tp_random(nonce, sizeof(nonce)) < 0) {
		answer_error(c->out, 503, "no random bytes");
		return;
	}
	tp_hex(nonce, sizeof(nonce), hex);
	int r = tp_cas_store_nonce_add(c->s->st, hex, c->req->now, c->req->now + c->s->nonce_ttl,
				       c->s->nonce_open);
	if (r < 0) {
		answer_error(c->out, 503,
			     r == -EBUSY ? "too many open challenges (try again within a minute)" :
					   "the store failed");
		return;
	}
	answer_json(c->out, 200,
		    json_pack("{s:s, s:i}", "nonce", hex, "expires_in", (int)c->s->nonce_ttl));
}

static bool in_hex_list(const json_t *list, const uint8_t *bytes, size_t size)
{
	char hex[2 * 64 + 1];
	size_t i;
	json_t *e;

	tp_hex(bytes, size, hex);
	json_array_foreach(list, i, e) if (json_is_string(e) &&
					   strcmp(json_string_value(e), hex) == 0) return true;
	return false;
}

static bool tolerates(const json_t *svc, const char *what)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(svc, "tolerate"), i,
			   e) if (json_is_string(e) &&
				  strcmp(json_string_value(e), what) == 0) return true;
	return false;
}

/* A base64 field, decoded (NULL when absent or not base64). */
static uint8_t *b64_field(const json_t *o, const char *key, size_t *size)
{
	const json_t *v = json_object_get(o, key);
	uint8_t *bytes = NULL;

	if (!json_is_string(v) ||
	    tp_base64_decode(json_string_value(v), json_string_length(v), &bytes, size) < 0)
		return NULL;
	return bytes;
}

/* What the evidence checks found: a denial's reason, or "" when they passed. */
struct evidence_check {
	char reason[384];
	bool parsed; /* report_data holds the evidence's */
	uint8_t report_data[TP_REPORT_DATA_SIZE];
};

static void evidence_failed(struct evidence_check *ec, const struct tp_attest_result *res)
{
	const struct tp_attest_check *f = tp_attest_failed(res);

	/* a verifier that failed without naming a check still failed */
	if (!f)
		snprintf(ec->reason, sizeof(ec->reason), "evidence: verification failed");
	else if (strcmp(f->name, "signature") == 0)
		snprintf(ec->reason, sizeof(ec->reason), "evidence: signature does not verify");
	else
		snprintf(ec->reason, sizeof(ec->reason), "evidence: %s: %s", f->name, f->detail);
}

static void check_sim(const uint8_t *data, size_t size, const json_t *svc, const char *config,
		      struct evidence_check *ec)
{
	const json_t *keys = json_object_get(svc, "platform_keys");
	uint8_t(*trusted)[TP_SIM_PLATFORM_KEY];
	struct tp_attest_result res;
	struct tp_sim_evidence e;
	char err[256], hex[2 * TP_SIM_PLATFORM_KEY + 1];
	size_t i, n = json_array_size(keys);
	json_t *k;

	if (tp_sim_parse(data, size, &e, err, sizeof(err)) < 0) {
		snprintf(ec->reason, sizeof(ec->reason), "evidence: %s", err);
		return;
	}
	memcpy(ec->report_data, e.report_data, sizeof(ec->report_data));
	ec->parsed = true;
	if (!(trusted = calloc(n ? n : 1, sizeof(*trusted)))) {
		snprintf(ec->reason, sizeof(ec->reason), "out of memory");
		return;
	}
	json_array_foreach(keys, i, k)
	    tp_unhex(json_string_value(k), trusted[i], TP_SIM_PLATFORM_KEY);
	int v = tp_sim_verify(&e, (const uint8_t(*)[TP_SIM_PLATFORM_KEY])trusted, n, NULL, &res);
	free(trusted);
	const struct tp_attest_check *f = tp_attest_failed(&res);
	if (v >= 0 && !f)
		return;
	if (f && strcmp(f->name, "platform_key") == 0) {
		tp_hex(e.platform_key, sizeof(e.platform_key), hex);
		snprintf(ec->reason, sizeof(ec->reason),
			 "evidence: platform key %.16s… is not in %s's platform_keys", hex, config);
	} else
		evidence_failed(ec, &res);
}

static void check_tdx(const uint8_t *data, size_t size, const json_t *svc, const char *config,
		      struct evidence_check *ec)
{
	struct tp_attest_opts opts = { 0 };
	struct tp_attest_result res;
	struct tp_tdx_quote q;
	char err[256], hex[2 * TP_TDX_MR_SIZE + 1];
	size_t i;
	json_t *e;

	if (tp_tdx_parse(data, size, &q, err, sizeof(err)) < 0) {
		snprintf(ec->reason, sizeof(ec->reason), "evidence: %s", err);
		return;
	}
	memcpy(ec->report_data, q.report_data, sizeof(ec->report_data));
	ec->parsed = true;
	if (tp_tdx_verify(&q, &opts, &res) < 0) {
		evidence_failed(ec, &res);
		return;
	}
	if ((q.td_attributes & TP_TDX_ATTR_DEBUG) && !tolerates(svc, "debug")) {
		snprintf(ec->reason, sizeof(ec->reason), "a debug TD is not tolerated by %s",
			 config);
		return;
	}
	json_array_foreach(json_object_get(json_object_get(svc, "hw"), "tdx"), i, e)
	{
		bool match;
		tp_hex(q.mr_td, TP_TDX_MR_SIZE, hex);
		match = strcmp(json_string_value(json_object_get(e, "mr_td")), hex) == 0;
		for (int m = 0; match && m < 4; m++) {
			char key[8];
			snprintf(key, sizeof(key), "rtmr%d", m);
			const json_t *want = json_object_get(e, key);
			tp_hex(q.rtmr[m], TP_TDX_MR_SIZE, hex);
			if (want && strcmp(json_string_value(want), hex) != 0)
				match = false;
		}
		if (match)
			return;
	}
	tp_hex(q.mr_td, TP_TDX_MR_SIZE, hex);
	snprintf(ec->reason, sizeof(ec->reason),
		 "TDX MRTD %.16s… (with its RTMRs) is not in %s's hw list", hex, config);
}

static void check_snp(const uint8_t *data, size_t size, const json_t *evidence, const json_t *svc,
		      const char *config, struct evidence_check *ec)
{
	const char *chain = json_string_value(json_object_get(evidence, "chain"));
	struct tp_attest_opts opts = { 0 };
	struct tp_attest_result res;
	struct tp_snp_report r;
	char err[256], hex[2 * 48 + 1], pol[17];
	uint8_t *vcek;
	size_t vcek_size = 0, i;
	json_t *e;

	if (tp_snp_parse(data, size, &r, err, sizeof(err)) < 0) {
		snprintf(ec->reason, sizeof(ec->reason), "evidence: %s", err);
		return;
	}
	memcpy(ec->report_data, r.report_data, sizeof(ec->report_data));
	ec->parsed = true;
	if (!(vcek = b64_field(evidence, "vcek", &vcek_size)) || !chain) {
		free(vcek);
		snprintf(ec->reason, sizeof(ec->reason),
			 "evidence: snp needs vcek (base64 DER) and chain (PEM)");
		return;
	}
	int v = tp_snp_verify(&r, vcek, vcek_size, chain, strlen(chain), &opts, &res);
	free(vcek);
	if (v < 0) {
		evidence_failed(ec, &res);
		return;
	}
	if ((r.policy & TP_SNP_POLICY_DEBUG) && !tolerates(svc, "debug")) {
		snprintf(ec->reason, sizeof(ec->reason), "a debug guest is not tolerated by %s",
			 config);
		return;
	}
	tp_hex(r.measurement, sizeof(r.measurement), hex);
	snprintf(pol, sizeof(pol), "%016" PRIx64, r.policy);
	json_array_foreach(json_object_get(json_object_get(svc, "hw"), "snp"), i, e)
	{
		const char *p = json_string_value(json_object_get(e, "policy"));
		if (strcmp(json_string_value(json_object_get(e, "measurement")), hex) == 0 &&
		    (!p || strcmp(p, pol) == 0))
			return;
	}
	snprintf(ec->reason, sizeof(ec->reason),
		 "SNP measurement %.16s… (policy %s) is not in %s's hw list", hex, pol, config);
}

/* The app by list or by signer: NULL when accepted, else the reason (in buf). */
static const char *check_app(const json_t *svc, const json_t *body, const struct tp_claims *cl,
			     const char *config, char *buf, size_t size)
{
	const json_t *signer = json_object_get(svc, "signer");
	char app[65], hex[65], err[256];
	struct tp_manifest m;
	uint8_t *manifest, measured[32], key[32];
	size_t msize = 0;

	tp_hex(cl->app, sizeof(cl->app), app);
	if (in_hex_list(json_object_get(svc, "app"), cl->app, sizeof(cl->app)))
		return NULL;
	if (!signer) {
		snprintf(buf, size, "app %.16s… is not in policy %s", app, config);
		return buf;
	}
	tp_unhex(json_string_value(json_object_get(signer, "key")), key, sizeof(key));
	if (!tp_same_bytes(key, cl->signer, sizeof(key))) {
		tp_hex(cl->signer, sizeof(cl->signer), hex);
		snprintf(buf, size, "signer %.16s… is not the signer of policy %s", hex, config);
		return buf;
	}
	if (!(manifest = b64_field(body, "manifest", &msize))) {
		snprintf(buf, size,
			 "app %.16s… is not in policy %s, and no manifest came for its signer rule",
			 app, config);
		return buf;
	}
	tp_manifest_measure((const char *)manifest, msize, measured);
	if (!tp_same_bytes(measured, cl->app, sizeof(measured))) {
		free(manifest);
		snprintf(buf, size, "the manifest's measurement is not the claimed app %.16s…",
			 app);
		return buf;
	}
	if (tp_manifest_from_json((const char *)manifest, msize, &m, err, sizeof(err)) < 0) {
		free(manifest);
		snprintf(buf, size, "manifest: %s", err);
		return buf;
	}
	free(manifest);
	json_int_t pid = json_integer_value(json_object_get(signer, "product_id"));
	json_int_t min = json_integer_value(json_object_get(signer, "min_security_version"));
	if ((json_int_t)m.product_id != pid)
		snprintf(buf, size, "product id %u is not %" JSON_INTEGER_FORMAT " (policy %s)",
			 m.product_id, pid, config);
	else if ((json_int_t)m.security_version < min)
		snprintf(buf, size, "security version %u is below %" JSON_INTEGER_FORMAT,
			 m.security_version, min);
	else
		buf = NULL;
	tp_manifest_free(&m);
	return buf;
}

/* The JSON {"secrets": {NAME: {"kind", "value", "data_id"?}}} of svc's secrets. */
static json_t *release_of(const json_t *doc, const json_t *svc)
{
	json_t *out = json_object(), *e;
	size_t i;

	json_array_foreach(json_object_get(svc, "secrets"), i, e)
	{
		const char *name = json_string_value(e);
		json_object_set(out, name, json_object_get(json_object_get(doc, "secrets"), name));
	}
	return json_pack("{s:o}", "secrets", out);
}

static bool claim_hex(const json_t *claims, const char *key, uint8_t out[TP_CLAIM_SIZE])
{
	return hex_field(claims, key, out, TP_CLAIM_SIZE);
}

static void attest_checked(struct call *c, const json_t *body, const json_t *doc, const json_t *svc,
			   struct tp_claims *cl)
{
	const json_t *evidence = json_object_get(body, "evidence");
	const char *type = json_string_value(json_object_get(evidence, "type"));
	struct evidence_check ec = { .reason = "" };
	uint8_t rd[TP_REPORT_DATA_SIZE], *data, *sealed;
	char buf[384], *plain, *ct;
	const char *why;
	size_t size = 0, plain_size;
	char hex[65];
	json_t *release;

	if (!type || !(data = b64_field(evidence, "data", &size))) {
		refuse(c, 400, "evidence needs type and data (base64)");
		return;
	}
	if (strcmp(type, "sim") == 0				 ? strcmp(cl->mode, "sim") != 0 :
	    strcmp(type, "tdx") == 0 || strcmp(type, "snp") == 0 ? strcmp(cl->mode, "hw") != 0 :
								   true) {
		free(data);
		refuse(c, 403, "claims.mode %s does not go with %s evidence", cl->mode, type);
		return;
	}
	if (strcmp(type, "sim") == 0 && !tolerates(svc, "sim")) {
		free(data);
		refuse(c, 403, "sim evidence is not tolerated by %s", c->subject);
		return;
	}
	if (strcmp(type, "sim") == 0)
		check_sim(data, size, svc, c->subject, &ec);
	else if (strcmp(type, "tdx") == 0)
		check_tdx(data, size, svc, c->subject, &ec);
	else
		check_snp(data, size, evidence, svc, c->subject, &ec);
	free(data);
	/* the evidence first (its signature, chain and platform measurements), so that a
	 * denial names the deepest failure: report data that a forged report would carry
	 * is not worth checking */
	if (ec.reason[0]) {
		refuse(c, 403, "%s", ec.reason);
		return;
	}
	/* the claims the runtime sent and the nonce this CAS gave: what the evidence binds? */
	if (ec.parsed &&
	    (tp_report_data(cl, rd) < 0 || !tp_same_bytes(rd, ec.report_data, sizeof(rd)))) {
		refuse(c, 403, "report data does not match the claims");
		return;
	}
	/* a debug run (teepy shell in the bundle's root), which its evidence binds: whoever
	 * runs it reads and changes what runs, as in a debug guest. Said before the runtime
	 * and app, which a shell's may also fail (its runtime is teepy-shell's) */
	if (cl->debug && !tolerates(svc, "debug")) {
		refuse(c, 403, "a debug run (teepy shell) is not tolerated by %s", c->subject);
		return;
	}
	if (!in_hex_list(json_object_get(svc, "runtime"), cl->runtime, sizeof(cl->runtime))) {
		tp_hex(cl->runtime, sizeof(cl->runtime), hex);
		refuse(c, 403, "runtime %.16s… is not in policy %s", hex, c->subject);
		return;
	}
	if ((why = check_app(svc, body, cl, c->subject, buf, sizeof(buf)))) {
		refuse(c, 403, "%s", why);
		return;
	}
	release = release_of(doc, svc);
	plain = release ? json_dumps(release, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(release);
	if (!plain) {
		refuse(c, 500, "out of memory");
		return;
	}
	plain_size = strlen(plain);
	if (!(sealed = malloc(plain_size + TP_SEAL_OVERHEAD))) {
		explicit_bzero(plain, plain_size);
		free(plain);
		refuse(c, 500, "out of memory");
		return;
	}
	int r = tp_seal(cl->pubkey, cl->nonce, cl->nonce_size, plain, plain_size, sealed);
	explicit_bzero(plain, plain_size);
	free(plain);
	if (r < 0) {
		free(sealed);
		refuse(c, 403, "claims.pubkey is not a key to seal to (a key of small order)");
		return;
	}
	tp_hex(sealed, TP_X25519_SIZE, hex);
	ct = tp_base64_encode(sealed + TP_X25519_SIZE, plain_size + TP_GCM_TAG_SIZE);
	free(sealed);
	if (!ct) {
		refuse(c, 500, "out of memory");
		return;
	}
	/* no secret leaves without its row in the audit log */
	if (audit(c, "released", "") < 0)
		answer_error(c->out, 503, "the store failed (no audit row: nothing released)");
	else
		answer_json(
		    c->out, 200,
		    json_pack("{s:{s:s, s:s}}", "sealed", "ephemeral", hex, "ciphertext", ct));
	free(ct);
}

static void attest_in_transaction(struct call *c, const json_t *body)
{
	const char *config = json_string_value(json_object_get(body, "config_id"));
	const json_t *claims = json_object_get(body, "claims");
	const char *mode = json_string_value(json_object_get(claims, "mode"));
	const json_t *debug = json_object_get(claims, "debug");
	const char *nonce = hex_string(body, "nonce", TP_CAS_NONCE_SIZE);
	char policy[TP_CAS_NAME_MAX + 1], owner[TP_CAS_HASH_HEX], hash[TP_CAS_HASH_HEX];
	struct tp_claims cl = { 0 };
	const char *slash;
	json_t *doc, *svc;
	int r;

	if (config)
		snprintf(c->subject, sizeof(c->subject), "%s", config);
	if (!config || !(slash = strchr(config, '/')) ||
	    (size_t)(slash - config) > TP_CAS_NAME_MAX) {
		refuse(c, 400, "config_id: not POLICY/SERVICE");
		return;
	}
	snprintf(policy, sizeof(policy), "%.*s", (int)(slash - config), config);
	if (!tp_cas_name_ok(policy) || !tp_cas_name_ok(slash + 1)) {
		refuse(c, 400, "config_id: not POLICY/SERVICE");
		return;
	}
	if (!nonce) {
		refuse(c, 400, "nonce: not %d bytes in hex", TP_CAS_NONCE_SIZE);
		return;
	}
	if (!mode || (strcmp(mode, "sim") != 0 && strcmp(mode, "hw") != 0) ||
	    !claim_hex(claims, "runtime", cl.runtime) || !claim_hex(claims, "app", cl.app) ||
	    !claim_hex(claims, "signer", cl.signer) || !claim_hex(claims, "pubkey", cl.pubkey)) {
		refuse(c, 400,
		       "claims: needs mode (sim or hw) and runtime, app, signer, pubkey "
		       "(64 hex each)");
		return;
	}
	if (debug && !json_is_boolean(debug)) {
		refuse(c, 400, "claims.debug: not true or false");
		return;
	}
	snprintf(cl.mode, sizeof(cl.mode), "%s", mode);
	cl.debug = json_is_true(debug);
	tp_unhex(nonce, cl.nonce, TP_CAS_NONCE_SIZE);
	cl.nonce_size = TP_CAS_NONCE_SIZE;
	/* the nonce is used up here, whatever follows */
	r = tp_cas_store_nonce_take(c->s->st, nonce, c->req->now);
	if (r == -ENOENT) {
		refuse(c, 403, "nonce was not given by this CAS");
		return;
	}
	if (r == -EALREADY) {
		refuse(c, 403, "nonce already used");
		return;
	}
	if (r == -ETIME) {
		refuse(c, 403, "nonce expired");
		return;
	}
	if (r < 0) {
		refuse(c, 503, "the store failed");
		return;
	}
	if (!(doc = stored(c, policy, owner, hash)))
		return;
	if (!(svc = json_object_get(json_object_get(doc, "services"), slash + 1))) {
		json_decref(doc);
		refuse(c, 404, "policy %s has no service %s", policy, slash + 1);
		return;
	}
	attest_checked(c, body, doc, svc, &cl);
	json_decref(doc);
}

/* An attest is one transaction: the nonce used up and the audit row, of a release or
 * a denial, are written together (and synced once, before the answer leaves). A store that cannot
 * commit them releases nothing (503); the nonce then stays as it was. */
static void attest(struct call *c, const json_t *body)
{
	if (tp_cas_store_begin(c->s->st) < 0) {
		answer_error(c->out, 503, "the store failed");
		return;
	}
	attest_in_transaction(c, body);
	if (tp_cas_store_commit(c->s->st) < 0 && c->out->status == 200) {
		free(c->out->body);
		answer_error(c->out, 503, "the store failed (no audit row: nothing released)");
	}
}

/* ---- routing ---- */

static bool json_content(const char *type)
{
	size_t n = strlen("application/json");

	if (!type || strncasecmp(type, "application/json", n) != 0)
		return false;
	type += n;
	while (*type == ' ' || *type == '\t')
		type++;
	return *type == '\0' || *type == ';';
}

static void route(struct call *c, const json_t *body)
{
	const char *path = c->req->path, *method = c->req->method;
	char name[TP_CAS_NAME_MAX + 1];
	const char *p, *tail;
	size_t n;
	bool post = strcmp(method, "POST") == 0;

	if (strcmp(path, "/v1/challenge") == 0) {
		c->op = "challenge";
		return post ? challenge(c) : answer_error(c->out, 405, "POST only");
	}
	if (strcmp(path, "/v1/attest") == 0) {
		c->op = "attest";
		return post ? attest(c, body) : answer_error(c->out, 405, "POST only");
	}
	if (strcmp(path, "/v1/policies") == 0) {
		c->op = "create";
		return post ? policy_create(c, body) : answer_error(c->out, 405, "POST only");
	}
	if (strcmp(path, "/v1/policies/list") == 0) {
		c->op = "list";
		return post ? policy_list(c, body) : answer_error(c->out, 405, "POST only");
	}
	if (strncmp(path, "/v1/policies/", 13) != 0) {
		answer_error(c->out, 404, "no such path");
		return;
	}
	p = path + 13;
	n = strcspn(p, "/");
	tail = p + n;
	if (n == 0 || n > TP_CAS_NAME_MAX) {
		answer_error(c->out, 404, "no such path");
		return;
	}
	memcpy(name, p, n);
	name[n] = '\0';
	if (!tp_cas_name_ok(name)) {
		answer_error(c->out, 404,
			     "no such path (a policy name is [a-z0-9][a-z0-9_-]{0,63})");
		return;
	}
	snprintf(c->subject, sizeof(c->subject), "%s", name);
	if (*tail == '\0') {
		c->op = "update";
		return strcmp(method, "PUT") == 0 ? policy_update(c, name, body) :
						    answer_error(c->out, 405, "PUT only");
	}
	if (strcmp(tail, "/get") == 0) {
		c->op = "get";
		return post ? policy_get(c, name, body) : answer_error(c->out, 405, "POST only");
	}
	if (strcmp(tail, "/delete") == 0) {
		c->op = "delete";
		return post ? policy_delete(c, name, body) : answer_error(c->out, 405, "POST only");
	}
	answer_error(c->out, 404, "no such path");
}

/* Whether path is a route and method its method: 0, 404 or 405 (before the body is
 * looked at). */
static unsigned route_check(const char *path, const char *method)
{
	static const char *const posts[] = { "/v1/challenge", "/v1/attest", "/v1/policies",
					     "/v1/policies/list", NULL };
	bool post = strcmp(method, "POST") == 0;
	const char *tail;

	for (const char *const *p = posts; *p; p++)
		if (strcmp(path, *p) == 0)
			return post ? 0 : 405;
	if (strncmp(path, "/v1/policies/", 13) != 0)
		return 404;
	tail = path + 13 + strcspn(path + 13, "/");
	if (*tail == '\0')
		return strcmp(method, "PUT") == 0 ? 0 : 405;
	if (strcmp(tail, "/get") == 0 || strcmp(tail, "/delete") == 0)
		return post ? 0 : 405;
	return 404;
}

void tp_cas_handle(struct tp_cas_service *s, const struct tp_cas_request *req,
		   struct tp_cas_answer *out)
{
	unsigned bad;
	uint64_t mark;

	struct call c = { .s = s, .req = req, .out = out, .op = "request" };
	json_error_t je;
	json_t *body;

	memset(out, 0, sizeof(*out));
	if ((bad = route_check(req->path, req->method)))
		return answer_error(out, bad, bad == 404 ? "no such path" : "another method");
	if (req->size > TP_CAS_BODY_MAX)
		return answer_error(out, 413, "the body is over 1 MiB");
	if (!json_content(req->content_type))
		return answer_error(out, 415, "the body must be Content-Type: application/json");
	body = json_loadb((const char *)req->body, req->size, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(body)) {
		char message[256];
		/* not je.text: it quotes the bytes near the fault, maybe a secret value */
		if (body)
			snprintf(message, sizeof(message), "the body is not a JSON object");
		else
			snprintf(message, sizeof(message),
				 "the body is not JSON (line %d, column %d, byte %d)", je.line,
				 je.column, je.position);
		printable(message);
		json_decref(body);
		return answer_error(out, 400, message);
	}
	pthread_mutex_lock(&s->lock);
	route(&c, body);
	mark = tp_cas_store_written(s->st);
	pthread_mutex_unlock(&s->lock);
	json_decref(body);
	/* what the request wrote (a release's audit row) is on the disk before its answer
	 * leaves; waited for without the lock, so that one sync serves every request
	 * waiting and the next request's checks run meanwhile */
	if (mark && tp_cas_store_sync(s->st, mark) < 0) {
		free(out->body);
		answer_error(out, 503,
			     "the store failed: its disk did not take the write "
			     "(nothing released)");
	}
}
