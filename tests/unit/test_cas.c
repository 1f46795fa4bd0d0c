/* The CAS: policies parsed and validated rule by rule, and the service driven without a
 * socket on a temporary database: owners' signatures, predecessors, attestation with
 * sim evidence made here (released and opened; each denial with its reason, in the
 * answer and in the audit log), secrets never in plaintext in the file, a restart. */
#include "test.h"

#include "../../src/attest/attest.h"
#include "../../src/cas/cas.h"
#include "../../src/crypto/crypto.h"
#include "../../src/manifest/manifest.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW	   1700000000
#define HEX64	   "0000000000000000000000000000000000000000000000000000000000000000"
#define SECRET_KEY "c2VjcmV0LWJ1bmRsZS1rZXktMzItYnl0ZXMtbG9uZyE=" /* 32 bytes */
#define ENV_VALUE  "hunter2-env-plaintext"

static const char *hex32(const uint8_t b[32])
{
	static char out[4][65];
	static int i;
	i = (i + 1) % 4;
	tp_hex(b, 32, out[i]);
	return out[i];
}

/* A policy document with service "main" accepting app, runtime, sim by platform. */
static json_t *policy_doc(const char *name, const uint8_t app[32], const uint8_t runtime[32],
			  const uint8_t platform[32])
{
	return json_pack("{s:s, s:{s:{s:[s], s:[s], s:[s], s:[s], s:[s, s]}},"
			 " s:{s:{s:s, s:s}, s:{s:s, s:s}}}",
			 "name", name, "services", "main", "app", hex32(app), "runtime",
			 hex32(runtime), "tolerate", "sim", "platform_keys", hex32(platform),
			 "secrets", "app_key", "API_TOKEN", "secrets", "app_key", "kind",
			 "bundle_key", "value", SECRET_KEY, "API_TOKEN", "kind", "env", "value",
			 ENV_VALUE);
}

static void test_a_valid_policy_parses_and_hashes_canonically(void)
{
	uint8_t a[32] = { 1 }, r[32] = { 2 }, p[32] = { 3 };
	json_t *doc = policy_doc("mysvc", a, r, p);
	char *text = json_dumps(doc, JSON_INDENT(3)), err[256], h1[65], h2[65];
	json_t *back = tp_cas_policy_parse(text, strlen(text), err, sizeof(err));

	CHECK(back != NULL);
	uint8_t key[32] = { 7 }, salt[16] = { 9 };
	char h3[65];
	CHECK(tp_cas_policy_hash(doc, key, salt, h1) == 0 &&
	      tp_cas_policy_hash(back, key, salt, h2) == 0);
	CHECK_STR(h1, h2); /* whatever the spacing and key order sent */
	/* keyed: not the SHA-256 of the text, another key gives another hash */
	size_t csize;
	char *canon = tp_cas_canonical(doc, &csize), plain[65];
	uint8_t digest[32];
	tp_sha256(canon, csize, digest);
	tp_hex(digest, 32, plain);
	free(canon);
	CHECK(strcmp(h1, plain) != 0);
	key[0] ^= 1;
	CHECK(tp_cas_policy_hash(doc, key, salt, h3) == 0 && strcmp(h1, h3) != 0);
	key[0] ^= 1;
	/* salted: another write of the same text has another hash */
	salt[0] ^= 1;
	CHECK(tp_cas_policy_hash(doc, key, salt, h3) == 0 && strcmp(h1, h3) != 0);
	json_t *red = tp_cas_policy_redact(back);
	const json_t *k = json_object_get(json_object_get(red, "secrets"), "app_key");
	CHECK(json_object_get(k, "value") == NULL);
	CHECK(json_string_length(json_object_get(k, "sha256")) == 64);
	json_decref(red);
	json_decref(back);
	json_decref(doc);
	free(text);
}

/* Each rule: the document with one change, and words of the reason. */
static void test_each_policy_rule_refuses(void)
{
	static const struct {
		const char *path, *json, *words;
	} cases[] = {
		{ "name", "\"My Svc\"", "name:" },
		{ "extra", "1", "unknown key \"extra\"" },
		{ "services.main.runtime", "[]", "runtime: not a non-empty list" },
		{ "services.main.app", "[\"ABCD\"]", "app[0]: not 32 bytes" },
		{ "services.main.tolerate", "[\"root\"]", "not \"sim\" or \"debug\"" },
		{ "services.main.platform_keys", "null",
		  "tolerates sim but lists no platform_keys" },
		{ "services.main.secrets", "[\"nope\"]", "\"nope\" is not defined" },
		{ "services.main.colour", "1", "unknown key \"colour\"" },
		{ "secrets.app_key.value", "\"AAAA\"", "not 32 bytes" },
		{ "secrets.app_key.kind", "\"password\"", "kind: not bundle_key" },
		{ "secrets.bad name", "{\"kind\":\"blob\",\"value\":\"\"}", "secret name" },
		{ "secrets.LD_PRELOAD", "{\"kind\":\"env\",\"value\":\"/x.so\"}",
		  "may not be LD_*" },
		{ "secrets.k2", "{\"kind\":\"bundle_key\",\"value\":\"" SECRET_KEY "\"}", NULL },
		{ "secrets.d", "{\"kind\":\"data_key\",\"value\":\"" SECRET_KEY "\"}", "data_id" },
		{ "services.main.tolerate", "[]", "does not tolerate sim and has no hw entry" },
		{ "services.main.hw", "{\"tdx\":[{\"mr_td\":\"00\"}]}", "mr_td: not 48 bytes" },
		{ "services.main.signer", "{\"key\":\"00\"}", "signer.key" },
	};
	uint8_t a[32] = { 1 }, r[32] = { 2 }, p[32] = { 3 };
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *doc = policy_doc("mysvc", a, r, p), *at = doc;
		char path[128], *dot, *part = path;
		snprintf(path, sizeof(path), "%s", cases[i].path);
		while ((dot = strchr(part, '.'))) {
			*dot = '\0';
			at = json_object_get(at, part);
			part = dot + 1;
		}
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		if (json_is_null(v))
			json_object_del(at, part);
		else
			json_object_set(at, part, v);
		json_decref(v);
		int rc = tp_cas_policy_check(doc, err, sizeof(err));
		if (!cases[i].words) { /* a second bundle key defined is fine until used */
			CHECK(rc == 0);
		} else if (rc == 0 || !strstr(err, cases[i].words)) {
			fprintf(stderr, "  case %s: '%s'\n", cases[i].path, err);
			CHECK(false);
		}
		json_decref(doc);
	}
	CHECK(tp_cas_policy_parse("{\"name\":\"a\",\"name\":\"b\"}", 22, err, sizeof(err)) == NULL);
	CHECK(tp_cas_policy_parse("[1]", 3, err, sizeof(err)) == NULL);
}

static void test_base64_round_trip_and_refusals(void)
{
	const uint8_t in[5] = { 0, 0xff, 0x10, 0x80, 0x7f };
	uint8_t *out;
	size_t size;

	for (size_t n = 0; n <= sizeof(in); n++) {
		char *e = tp_base64_encode(in, n);
		CHECK(tp_base64_decode(e, strlen(e), &out, &size) == 0);
		CHECK(size == n && memcmp(out, in, n) == 0);
		free(out);
		free(e);
	}
	CHECK(tp_base64_decode("QQ", 2, &out, &size) == -EINVAL);
	CHECK(tp_base64_decode("QR==", 4, &out, &size) == -EINVAL); /* not canonical */
	CHECK(tp_base64_decode("Q===", 4, &out, &size) == -EINVAL);
	CHECK(tp_base64_decode("A=AA", 4, &out, &size) == -EINVAL);
}

/* ---- the service ---- */

struct fixture {
	char dir[32], db[64];
	uint8_t master[32];
	struct tp_cas_store *st;
	struct tp_cas_service *svc;
	struct tp_key *owner, *other, *platform;
	uint8_t owner_pub[32], platform_pub[32], app[32], runtime[32], signer[32];
};

static struct tp_key *new_key(struct fixture *f, const char *name)
{
	char key[96], pub[96], err[128];
	snprintf(key, sizeof(key), "%s/%s.key", f->dir, name);
	snprintf(pub, sizeof(pub), "%s/%s.pub", f->dir, name);
	CHECK(tp_key_generate(key, pub) == 0);
	return tp_key_load_private(key, err, sizeof(err));
}

static bool fixture_open(struct fixture *f)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/teepy-unit-XXXXXX");
	if (!mkdtemp(f->dir))
		return false;
	snprintf(f->db, sizeof(f->db), "%s/cas.db", f->dir);
	tp_random(f->master, sizeof(f->master));
	f->owner = new_key(f, "owner");
	f->other = new_key(f, "other");
	f->platform = new_key(f, "platform");
	tp_key_public_raw(f->owner, f->owner_pub);
	tp_key_public_raw(f->platform, f->platform_pub);
	memset(f->app, 0xaa, 32);
	memset(f->runtime, 0xcc, 32);
	memset(f->signer, 0xbb, 32);
	if (tp_cas_store_open(f->db, f->master, &f->st, err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s\n", err);
		return false;
	}
	f->svc = tp_cas_service_new(f->st, 0);
	return f->owner && f->other && f->platform && f->svc;
}

static void fixture_close(struct fixture *f)
{
	char cmd[64];
	tp_cas_service_free(f->svc);
	tp_cas_store_close(f->st);
	tp_key_free(f->owner);
	tp_key_free(f->other);
	tp_key_free(f->platform);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	CHECK(system(cmd) == 0);
}

/* A request's answer: its status; its body parsed into *body (when body). */
static unsigned call(struct fixture *f, const char *method, const char *path, json_t *req,
		     int64_t now, json_t **body)
{
	char *text = json_dumps(req, JSON_COMPACT);
	struct tp_cas_request r = { .method = method,
				    .path = path,
				    .content_type = "application/json",
				    .body = (const uint8_t *)text,
				    .size = strlen(text),
				    .remote = "127.0.0.1",
				    .now = now };
	struct tp_cas_answer a;

	tp_cas_handle(f->svc, &r, &a);
	if (body)
		*body = json_loads(a.body, 0, NULL);
	free(a.body);
	free(text);
	json_decref(req);
	return a.status;
}

static const char *message(const json_t *body)
{
	const char *m =
	    json_string_value(json_object_get(json_object_get(body, "error"), "message"));
	return m ? m : "";
}

/* hex of key's signature over "teepy-cas-v1\0" op "\0" rest */
static const char *sign(const struct tp_key *key, const char *op, const void *rest, size_t size)
{
	static char hex[129];
	size_t tag = sizeof("teepy-cas-v1"), n = strlen(op) + 1;
	uint8_t *msg = malloc(tag + n + size), sig[64];

	memcpy(msg, "teepy-cas-v1", tag);
	memcpy(msg + tag, op, n);
	memcpy(msg + tag + n, rest, size);
	CHECK(tp_sign(key, msg, tag + n + size, sig) == 0);
	free(msg);
	tp_hex(sig, 64, hex);
	return hex;
}

/* Creates doc as f's owner: the status, the hash in hash. */
static unsigned create(struct fixture *f, json_t *doc, const struct tp_key *by, char hash[65])
{
	size_t size;
	char *c = tp_cas_canonical(doc, &size);
	json_t *body;
	unsigned st = call(f, "POST", "/v1/policies",
			   json_pack("{s:o, s:s, s:s}", "policy", doc, "owner", hex32(f->owner_pub),
				     "signature", sign(by, "create", c, size)),
			   NOW, &body);
	if (hash)
		snprintf(hash, 65, "%s", json_string_value(json_object_get(body, "hash")) ?: "");
	free(c);
	json_decref(body);
	return st;
}

static unsigned update(struct fixture *f, json_t *doc, const char *pred, const struct tp_key *by,
		       char hash[65], json_t **body)
{
	size_t size;
	char *c = tp_cas_canonical(doc, &size), *rest = malloc(65 + size);
	memcpy(rest, pred, 64);
	rest[64] = '\0';
	memcpy(rest + 65, c, size);
	json_t *req = json_pack("{s:o, s:s, s:s}", "policy", doc, "predecessor", pred, "signature",
				sign(by, "update", rest, 65 + size));
	unsigned st = call(f, "PUT", "/v1/policies/mysvc", req, NOW, body);
	if (hash)
		snprintf(hash, 65, "%s", json_string_value(json_object_get(*body, "hash")) ?: "");
	free(c);
	free(rest);
	return st;
}

/* A list over 1024 entries is refused naming it, and before the owner's signature
 * (checked here with another key's) is verified; an invalid policy within the caps is
 * refused for its signature first. */
static void test_policy_lists_are_capped_before_the_signature(void)
{
	static const char *const lists[] = { "runtime", "app", "platform_keys" };
	struct fixture f;
	json_t *body;
	char want[96];

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
		json_t *doc = policy_doc("mysvc", f.app, f.runtime, f.platform_pub);
		json_t *list = json_array();
		for (int i = 0; i < TP_CAS_LIST_MAX + 1; i++)
			json_array_append_new(list, json_string(hex32(f.app)));
		json_object_set_new(json_object_get(json_object_get(doc, "services"), "main"),
				    lists[l], list);
		CHECK(call(&f, "POST", "/v1/policies",
			   json_pack("{s:o, s:s, s:s}", "policy", doc, "owner", hex32(f.owner_pub),
				     "signature", sign(f.other, "create", "", 0)),
			   NOW, &body) == 400);
		snprintf(want, sizeof(want), "services.main.%s: more than 1024", lists[l]);
		CHECK(strstr(message(body), want) != NULL);
		json_decref(body);
	}
	json_t *bad = policy_doc("mysvc", f.app, f.runtime, f.platform_pub);
	json_object_set_new(json_object_get(json_object_get(bad, "services"), "main"), "runtime",
			    json_array());
	CHECK(create(&f, bad, f.other, NULL) == 403);
	fixture_close(&f);
}

static void test_policy_ownership_and_predecessors(void)
{
	struct fixture f;
	char h1[65], h2[65], rest[128];
	json_t *body;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.other, NULL) ==
	      403);
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.owner, h1) ==
	      201);
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.owner, NULL) ==
	      409);

	/* an update: without predecessor, stale, by another key, then right */
	json_t *doc2 = policy_doc("mysvc", f.runtime, f.runtime, f.platform_pub);
	json_t *req =
	    json_pack("{s:O, s:s}", "policy", doc2, "signature", sign(f.owner, "update", "", 0));
	CHECK(call(&f, "PUT", "/v1/policies/mysvc", req, NOW, &body) == 400);
	CHECK(strstr(message(body), "predecessor") != NULL);
	json_decref(body);
	CHECK(update(&f, json_incref(doc2),
		     "00000000000000000000000000000000000000000000000000000000"
		     "00000000",
		     f.owner, NULL, &body) == 409);
	CHECK(strstr(message(body), "stale predecessor") != NULL);
	json_decref(body);
	CHECK(update(&f, json_incref(doc2), h1, f.other, NULL, &body) == 403);
	CHECK(strstr(message(body), "not signed by the owner") != NULL);
	json_decref(body);
	CHECK(update(&f, json_incref(doc2), h1, f.owner, h2, &body) == 200);
	json_decref(body);
	CHECK(strcmp(h1, h2) != 0);
	/* the same update again: its predecessor is stale now */
	CHECK(update(&f, doc2, h1, f.owner, NULL, &body) == 409);
	json_decref(body);

	/* get: signed time and nonce, redacted, once */
	static const char nonce1[] = "00112233445566778899aabbccddeeff";
	static const char nonce2[] = "00112233445566778899aabbccddeef0";
	int n = snprintf(rest, sizeof(rest), "mysvc%c%d%c%s", 0, NOW, 0, nonce1);
	const char *sig = sign(f.owner, "get", rest, (size_t)n);
	char sigcopy[129];
	snprintf(sigcopy, sizeof(sigcopy), "%s", sig);
	/* no nonce: refused before anything is read */
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s}", "time", NOW, "signature", sigcopy), NOW, &body) == 400);
	CHECK(strstr(message(body), "nonce (32 hex)") != NULL);
	json_decref(body);
	/* the signature covers the nonce */
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s, s:s}", "time", NOW, "nonce", nonce2, "signature", sigcopy),
		   NOW, &body) == 403);
	CHECK(strstr(message(body), "not signed by the owner") != NULL);
	json_decref(body);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s, s:s}", "time", NOW, "nonce", nonce1, "signature", sigcopy),
		   NOW, &body) == 200);
	CHECK_STR(json_string_value(json_object_get(body, "hash")), h2);
	char *dump = json_dumps(body, 0);
	CHECK(strstr(dump, ENV_VALUE) == NULL && strstr(dump, SECRET_KEY) == NULL);
	free(dump);
	json_decref(body);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s, s:s}", "time", NOW, "nonce", nonce1, "signature", sigcopy),
		   NOW, &body) == 403);
	CHECK(strstr(message(body), "already used") != NULL);
	json_decref(body);
	/* the same second, another nonce: another signature, accepted */
	n = snprintf(rest, sizeof(rest), "mysvc%c%d%c%s", 0, NOW, 0, nonce2);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s, s:s}", "time", NOW, "nonce", nonce2, "signature",
			     sign(f.owner, "get", rest, (size_t)n)),
		   NOW, &body) == 200);
	json_decref(body);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/get",
		   json_pack("{s:i, s:s, s:s}", "time", NOW, "nonce", nonce1, "signature", sigcopy),
		   NOW + 1000, &body) == 403);
	CHECK(strstr(message(body), "stale time") != NULL);
	json_decref(body);

	/* list */
	n = snprintf(rest, sizeof(rest), "%s%c%d%c%s", hex32(f.owner_pub), 0, NOW + 1, 0, nonce1);
	CHECK(call(&f, "POST", "/v1/policies/list",
		   json_pack("{s:s, s:i, s:s, s:s}", "owner", hex32(f.owner_pub), "time", NOW + 1,
			     "nonce", nonce1, "signature", sign(f.owner, "list", rest, (size_t)n)),
		   NOW, &body) == 200);
	CHECK(json_array_size(json_object_get(body, "policies")) == 1);
	json_decref(body);

	/* delete: stale, then right */
	n = snprintf(rest, sizeof(rest), "mysvc%c%s", 0, h1);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/delete",
		   json_pack("{s:s, s:s}", "predecessor", h1, "signature",
			     sign(f.owner, "delete", rest, (size_t)n)),
		   NOW, NULL) == 409);
	n = snprintf(rest, sizeof(rest), "mysvc%c%s", 0, h2);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/delete",
		   json_pack("{s:s, s:s}", "predecessor", h2, "signature",
			     sign(f.owner, "delete", rest, (size_t)n)),
		   NOW, NULL) == 200);
	/* the same text again has another hash: the signed delete of h2 replayed after the
	 * policy is made again, or an update replayed after a return to an earlier text, is
	 * stale */
	char h3[65], h4[65];
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.owner, h3) ==
	      201);
	CHECK(strcmp(h3, h1) != 0 && strcmp(h3, h2) != 0);
	CHECK(call(&f, "POST", "/v1/policies/mysvc/delete",
		   json_pack("{s:s, s:s}", "predecessor", h2, "signature",
			     sign(f.owner, "delete", rest, (size_t)n)),
		   NOW, NULL) == 409);
	json_t *other = policy_doc("mysvc", f.runtime, f.runtime, f.platform_pub);
	CHECK(update(&f, json_incref(other), h3, f.owner, h4, &body) == 200);
	json_decref(body);
	CHECK(update(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), h4, f.owner, h2,
		     &body) == 200); /* back to the first text */
	json_decref(body);
	CHECK(strcmp(h2, h3) != 0);
	CHECK(update(&f, other, h3, f.owner, NULL, &body) == 409); /* the first update, again */
	json_decref(body);
	fixture_close(&f);
}

/* ---- attestation ---- */

static void new_nonce(struct fixture *f, uint8_t nonce[32], int64_t now)
{
	json_t *body;
	CHECK(call(f, "POST", "/v1/challenge", json_object(), now, &body) == 200);
	CHECK(tp_unhex(json_string_value(json_object_get(body, "nonce")), nonce, 32) == 0);
	json_decref(body);
}

struct attempt {
	const uint8_t *app, *signer;
	struct tp_key *platform;
	int flip;		  /* a byte of the evidence to change, or -1 */
	bool other_pubkey;	  /* the request claims another key than the evidence binds */
	const char *manifest_b64; /* or NULL */
	int64_t now;
	const uint8_t *nonce; /* reuse this nonce, or NULL for a new one */
	bool debug;	      /* a debug run's evidence (version 2, bound) */
	int claim_debug;      /* the request's claims.debug: 0 as debug, 1 false, 2 true, 3 "yes" */
};

/* An attest request with sim evidence; the answer's status and body; the runtime's key
 * in *kp (the caller frees). */
static unsigned attest(struct fixture *f, const struct attempt *at, uint8_t used_nonce[32],
		       struct tp_x25519 **kp, json_t **body)
{
	struct tp_claims c = { .mode = "sim", .nonce_size = 32 };
	uint8_t ev[TP_SIM_MAX_SIZE], nonce[32];
	struct tp_x25519 *k = tp_x25519_generate();
	int size;

	if (at->nonce)
		memcpy(nonce, at->nonce, 32);
	else
		new_nonce(f, nonce, at->now ? at->now : NOW);
	memcpy(c.nonce, nonce, 32);
	memcpy(c.runtime, f->runtime, 32);
	memcpy(c.app, at->app ? at->app : f->app, 32);
	memcpy(c.signer, at->signer ? at->signer : f->signer, 32);
	tp_x25519_public(k, c.pubkey);
	c.debug = at->debug;
	size = tp_sim_write(&c, at->platform ? at->platform : f->platform, ev);
	CHECK(size > 0);
	if (at->flip >= 0)
		ev[at->flip] ^= 1;
	if (at->other_pubkey)
		c.pubkey[0] ^= 1;
	char *data = tp_base64_encode(ev, (size_t)size), nhex[65];
	tp_hex(nonce, 32, nhex);
	json_t *req =
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}}", "config_id",
		      "mysvc/main", "nonce", nhex, "claims", "mode", "sim", "runtime",
		      hex32(c.runtime), "app", hex32(c.app), "signer", hex32(c.signer), "pubkey",
		      hex32(c.pubkey), "evidence", "type", "sim", "data", data);
	free(data);
	if (at->claim_debug ? at->claim_debug == 2 : at->debug)
		json_object_set_new(json_object_get(req, "claims"), "debug", json_true());
	else if (at->claim_debug == 1)
		json_object_set_new(json_object_get(req, "claims"), "debug", json_false());
	else if (at->claim_debug == 3)
		json_object_set_new(json_object_get(req, "claims"), "debug", json_string("yes"));
	if (at->manifest_b64)
		json_object_set_new(req, "manifest", json_string(at->manifest_b64));
	unsigned st = call(f, "POST", "/v1/attest", req, at->now ? at->now : NOW, body);
	if (used_nonce)
		memcpy(used_nonce, nonce, 32);
	if (kp)
		*kp = k;
	else
		tp_x25519_free(k);
	return st;
}

static void expect_denied(struct fixture *f, const struct attempt *at, const char *words)
{
	json_t *body;
	unsigned st = attest(f, at, NULL, NULL, &body);
	if (st != 403 || !strstr(message(body), words)) {
		fprintf(stderr, "  expected 403 '%s', got %u '%s'\n", words, st, message(body));
		CHECK(false);
	}
	json_decref(body);
}

static int count_rows(const struct tp_cas_audit *row, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static bool file_holds(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "rb");
	static char buf[1 << 20];
	size_t n = fp ? fread(buf, 1, sizeof(buf), fp) : 0;
	if (fp)
		fclose(fp);
	return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* A nonce the store cannot mark used is not taken: the take fails, and the nonce is
 * still open once the store works again. (A trigger naming no table makes the UPDATE
 * fail to prepare, the SELECT before it not.) */
static void test_a_nonce_not_marked_used_is_not_taken(void)
{
	struct fixture f;
	sqlite3 *db;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(tp_cas_store_nonce_add(f.st, "n", NOW, NOW + 60, 8) == 0);
	CHECK(sqlite3_open(f.db, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
			   "CREATE TRIGGER broken BEFORE UPDATE ON nonces"
			   " BEGIN INSERT INTO no_such_table VALUES (1); END",
			   NULL, NULL, NULL) == SQLITE_OK);
	CHECK(tp_cas_store_nonce_take(f.st, "n", NOW) == -EIO);
	CHECK(sqlite3_exec(db, "DROP TRIGGER broken", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(tp_cas_store_nonce_take(f.st, "n", NOW) == 0);
	CHECK(tp_cas_store_nonce_take(f.st, "n", NOW) == -EALREADY);
	fixture_close(&f);
}

/* When the "released" row cannot be written, nothing is released: 503, no secrets. */
static void test_no_release_without_its_audit_row(void)
{
	struct fixture f;
	sqlite3 *db;
	json_t *body;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.owner, NULL) ==
	      201);
	CHECK(sqlite3_open(f.db, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
			   "CREATE TRIGGER no_release BEFORE INSERT ON audit"
			   " WHEN NEW.outcome = 'released' BEGIN SELECT RAISE(ABORT, 'full'); END",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	struct attempt ok = { .flip = -1 };
	CHECK(attest(&f, &ok, NULL, NULL, &body) == 503);
	const char *kind =
	    json_string_value(json_object_get(json_object_get(body, "error"), "kind"));
	CHECK(kind && strcmp(kind, "unavailable") == 0);
	CHECK(!json_object_get(body, "sealed"));
	json_decref(body);
	fixture_close(&f);
}

static void test_attestation_releases_and_denies_with_reasons(void)
{
	struct fixture f;
	struct tp_x25519 *k;
	uint8_t nonce[32];
	json_t *body;
	char err[256];

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(create(&f, policy_doc("mysvc", f.app, f.runtime, f.platform_pub), f.owner, NULL) ==
	      201);

	/* released, opened with the runtime's key and the nonce */
	struct attempt ok = { .flip = -1 };
	CHECK(attest(&f, &ok, nonce, &k, &body) == 200);
	const json_t *sealed = json_object_get(body, "sealed");
	uint8_t eph[32], *ct, *plain;
	size_t ct_size;
	CHECK(tp_unhex(json_string_value(json_object_get(sealed, "ephemeral")), eph, 32) == 0);
	const char *b64 = json_string_value(json_object_get(sealed, "ciphertext"));
	CHECK(b64 && tp_base64_decode(b64, strlen(b64), &ct, &ct_size) == 0);
	uint8_t *whole = malloc(32 + ct_size);
	memcpy(whole, eph, 32);
	memcpy(whole + 32, ct, ct_size);
	plain = calloc(1, ct_size + 1);
	CHECK(tp_seal_open(k, nonce, 32, whole, 32 + ct_size, plain) == 0);
	json_t *got = json_loads((char *)plain, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(
		      json_object_get(json_object_get(got, "secrets"), "API_TOKEN"), "value")),
		  ENV_VALUE);
	CHECK_STR(json_string_value(json_object_get(
		      json_object_get(json_object_get(got, "secrets"), "app_key"), "kind")),
		  "bundle_key");
	json_decref(got);
	free(whole);
	free(ct);
	free(plain);
	json_decref(body);
	tp_x25519_free(k);

	/* the same nonce again */
	struct attempt replay = { .flip = -1, .nonce = nonce };
	expect_denied(&f, &replay, "nonce already used");
	/* a nonce past its TTL */
	uint8_t old[32];
	new_nonce(&f, old, NOW);
	struct attempt expired = { .flip = -1, .nonce = old, .now = NOW + TP_CAS_NONCE_TTL + 1 };
	expect_denied(&f, &expired, "nonce expired");
	uint8_t never[32] = { 9 };
	struct attempt unknown = { .flip = -1, .nonce = never };
	expect_denied(&f, &unknown, "nonce was not given");
	/* another app */
	uint8_t other_app[32];
	memset(other_app, 0x11, 32);
	struct attempt app = { .flip = -1, .app = other_app };
	expect_denied(&f, &app, "is not in policy mysvc/main");
	/* a flipped byte of the signature; of a claim inside the evidence */
	struct attempt flip = { .flip = TP_SIM_FIXED_SIZE + 32 - 5 };
	expect_denied(&f, &flip, "evidence: signature does not verify");
	struct attempt flip_claim = { .flip = (int)TP_SIM_LABEL_SIZE + 2 + 3 };
	expect_denied(&f, &flip_claim, "evidence: report_data");
	/* report data of another key than the request's */
	struct attempt pub = { .flip = -1, .other_pubkey = true };
	expect_denied(&f, &pub, "report data does not match the claims");
	/* a platform key the policy does not list */
	struct attempt plat = { .flip = -1, .platform = f.other };
	expect_denied(&f, &plat, "is not in mysvc/main's platform_keys");

	/* every denial is in the audit log, and the release */
	int rows = 0, denied = 0;
	tp_cas_store_audit_each(f.st, false, count_rows, &rows);
	tp_cas_store_audit_each(f.st, true, count_rows, &denied);
	CHECK(denied == 8);
	CHECK(rows == 10); /* the create, the release, the denials */

	/* no plaintext in the WAL, read while the store is open (SQLite deletes it at the
	 * close), nor in the file after (nor base64 of the env value); a restart keeps all */
	char wal[80];
	snprintf(wal, sizeof(wal), "%s-wal", f.db);
	char *env64 = tp_base64_encode((const uint8_t *)ENV_VALUE, strlen(ENV_VALUE));
	CHECK(access(wal, F_OK) == 0);
	CHECK(!file_holds(wal, ENV_VALUE) && !file_holds(wal, SECRET_KEY) &&
	      !file_holds(wal, env64));
	tp_cas_service_free(f.svc);
	tp_cas_store_close(f.st);
	CHECK(!file_holds(f.db, ENV_VALUE) && !file_holds(f.db, SECRET_KEY) &&
	      !file_holds(f.db, env64));
	free(env64);
	CHECK(tp_cas_store_open(f.db, f.master, &f.st, err, sizeof(err)) == 0);
	f.svc = tp_cas_service_new(f.st, 0);
	struct attempt again = { .flip = -1 };
	CHECK(attest(&f, &again, NULL, NULL, &body) == 200);
	json_decref(body);
	/* another master key: the secrets do not open */
	tp_cas_service_free(f.svc);
	tp_cas_store_close(f.st);
	f.master[0] ^= 1;
	CHECK(tp_cas_store_open(f.db, f.master, &f.st, err, sizeof(err)) == 0);
	f.svc = tp_cas_service_new(f.st, 0);
	CHECK(attest(&f, &again, NULL, NULL, &body) == 503);
	json_decref(body);
	fixture_close(&f);
}

/* f's policy tolerating no sim: a TDX entry instead. */
static json_t *hw_only_doc(const struct fixture *f)
{
	json_t *doc = policy_doc("mysvc", f->app, f->runtime, f->platform_pub);
	json_t *svc = json_object_get(json_object_get(doc, "services"), "main");
	json_object_set_new(svc, "tolerate", json_array());
	json_object_set_new(svc, "hw",
			    json_pack("{s:[{s:s}]}", "tdx", "mr_td",
				      "000000000000000000000000000000000000000000000000"
				      "000000000000000000000000000000000000000000000000"));
	return doc;
}

static void test_sim_evidence_needs_a_policy_that_tolerates_it(void)
{
	struct fixture f;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(create(&f, hw_only_doc(&f), f.owner, NULL) == 201);
	struct attempt at = { .flip = -1 };
	expect_denied(&f, &at, "sim evidence is not tolerated by mysvc/main");
	fixture_close(&f);
}

/* A debug run's evidence (teepy shell in a bundle's root) gets keys only from a service
 * that tolerates "debug"; the claim is bound, so it cannot be dropped or added. */
static void test_a_debug_run_needs_a_policy_that_tolerates_debug(void)
{
	struct fixture f;
	json_t *body;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	json_t *doc = policy_doc("mysvc", f.app, f.runtime, f.platform_pub);
	char hash[65];
	CHECK(create(&f, json_incref(doc), f.owner, hash) == 201);
	struct attempt at = { .flip = -1, .debug = true };
	expect_denied(&f, &at, "a debug run (teepy shell) is not tolerated by mysvc/main");
	/* the claim left out of the request, or said false: the evidence binds it */
	at.claim_debug = 1;
	expect_denied(&f, &at, "report data does not match the claims");
	at = (struct attempt){ .flip = -1, .claim_debug = 2 }; /* a run claiming debug */
	expect_denied(&f, &at, "report data does not match the claims");
	at = (struct attempt){ .flip = -1, .claim_debug = 1 }; /* false is a run */
	CHECK(attest(&f, &at, NULL, NULL, &body) == 200);
	json_decref(body);
	/* anything but true or false is no claim */
	at = (struct attempt){ .flip = -1, .claim_debug = 3 };
	CHECK(attest(&f, &at, NULL, NULL, &body) == 400);
	CHECK(strstr(message(body), "claims.debug: not true or false") != NULL);
	json_decref(body);
	/* a service that tolerates debug releases its keys to it */
	json_t *svc = json_object_get(json_object_get(doc, "services"), "main");
	json_array_append_new(json_object_get(svc, "tolerate"), json_string("debug"));
	CHECK(update(&f, doc, hash, f.owner, NULL, &body) == 200);
	json_decref(body);
	at = (struct attempt){ .flip = -1, .debug = true };
	CHECK(attest(&f, &at, NULL, NULL, &body) == 200);
	CHECK(json_object_get(body, "sealed") != NULL);
	json_decref(body);
	fixture_close(&f);
}

/* A canonical manifest of product 7, security version sv, base64; its app in app. */
static char *manifest_b64(uint32_t sv, uint8_t app[32])
{
	struct tp_manifest m;
	char *json, *b64;
	size_t size;

	tp_manifest_init(&m);
	m.format = 2;
	m.entry = strdup("/app/svc.py");
	tp_strlist_push(&m.python_path, "/app");
	m.files = calloc(1, sizeof(*m.files));
	m.files[0] = (struct tp_manifest_file){
		.path = strdup("/app/svc.py"), .size = 4, .mode = 0644, .bundled = true
	};
	m.file_count = 1;
	m.product_id = 7;
	m.security_version = sv;
	CHECK(tp_manifest_finish(&m, NULL, 0) == 0);
	CHECK(tp_manifest_to_json(&m, &json, &size) == 0);
	tp_manifest_measure(json, size, app);
	b64 = tp_base64_encode((const uint8_t *)json, size);
	free(json);
	tp_manifest_free(&m);
	return b64;
}

static void test_signer_rule_checks_product_and_security_version(void)
{
	struct fixture f;
	uint8_t app3[32], app1[32], signer2[32];
	json_t *body;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	char *m3 = manifest_b64(3, app3), *m1 = manifest_b64(1, app1);
	json_t *doc = policy_doc("mysvc", f.app, f.runtime, f.platform_pub);
	json_t *svc = json_object_get(json_object_get(doc, "services"), "main");
	json_object_del(svc, "app");
	json_object_set_new(svc, "signer",
			    json_pack("{s:s, s:i, s:i}", "key", hex32(f.signer), "product_id", 7,
				      "min_security_version", 2));
	CHECK(create(&f, doc, f.owner, NULL) == 201);
	struct attempt ok = { .flip = -1, .app = app3, .manifest_b64 = m3 };
	CHECK(attest(&f, &ok, NULL, NULL, &body) == 200);
	json_decref(body);
	struct attempt low = { .flip = -1, .app = app1, .manifest_b64 = m1 };
	expect_denied(&f, &low, "security version 1 is below 2");
	memset(signer2, 0x22, 32);
	struct attempt other = { .flip = -1, .app = app3, .signer = signer2, .manifest_b64 = m3 };
	expect_denied(&f, &other, "is not the signer of policy mysvc/main");
	struct attempt mismatch = { .flip = -1, .app = app1, .manifest_b64 = m3 };
	expect_denied(&f, &mismatch, "the manifest's measurement is not the claimed app");
	struct attempt none = { .flip = -1, .app = app3 };
	expect_denied(&f, &none, "no manifest came");
	free(m3);
	free(m1);
	fixture_close(&f);
}

static void test_bad_requests_get_4xx(void)
{
	struct fixture f;
	struct tp_cas_answer a;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	static const struct {
		const char *method, *path, *type, *body;
		unsigned status;
	} cases[] = {
		{ "POST", "/v1/attest", "application/json", "{", 400 },
		{ "POST", "/v1/attest", "text/plain", "{}", 415 },
		{ "POST", "/v1/attest", NULL, "{}", 415 },
		{ "POST", "/v1/attest", "application/jsonx", "{}", 415 },
		{ "POST", "/v1/attest", "application/json; charset=utf-8", "[]", 400 },
		{ "GET", "/v1/attest", "application/json", "{}", 405 },
		{ "POST", "/v2/attest", "application/json", "{}", 404 },
		{ "POST", "/v1/policies/../x/get", "application/json", "{}", 404 },
		{ "PUT", "/v1/policies/mysvc", "application/json", "{\"policy\":1}", 400 },
		{ "POST", "/v1/attest", "application/json", "{\"config_id\":\"a/b\"}", 400 },
		/* a terminal escape and a character cut at the name's 64 bytes: shown as '?' */
		{ "POST", "/v1/attest", "application/json", "{\"config_id\":\"\\u001b[31m/x\"}",
		  400 },
		{ "PUT", "/v1/policies/mysvc", "application/json",
		  "{\"predecessor\":\"" HEX64 "\",\"signature\":\"" HEX64 HEX64
		  "\",\"policy\":{\"name\":\"mysvc\","
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u00e9\":1}}",
		  400 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tp_cas_request r = { .method = cases[i].method,
					    .path = cases[i].path,
					    .content_type = cases[i].type,
					    .body = (const uint8_t *)cases[i].body,
					    .size = strlen(cases[i].body),
					    .remote = "127.0.0.1",
					    .now = NOW };
		tp_cas_handle(f.svc, &r, &a);
		json_t *j = json_loads(a.body, 0, NULL);
		CHECK(j != NULL && !strchr(a.body, 0x1b));
		json_decref(j);
		if (a.status != cases[i].status) {
			fprintf(stderr, "  case %zu: %u %s\n", i, a.status, a.body);
			CHECK(false);
		}
		free(a.body);
	}
	struct tp_cas_request big = { .method = "POST",
				      .path = "/v1/attest",
				      .content_type = "application/json",
				      .body = (const uint8_t *)"",
				      .size = TP_CAS_BODY_MAX + 1,
				      .now = NOW };
	tp_cas_handle(f.svc, &big, &a);
	CHECK(a.status == 413);
	free(a.body);
	fixture_close(&f);
}

/* A body or a policy that is not JSON is told by where, never by the bytes there (a
 * secret's value, maybe). */
static void test_json_errors_do_not_quote_the_text(void)
{
	static const char bad[] = "{\"secrets\":{\"T\":{\"kind\":\"env\",\"value\":hunter2}}}";
	struct tp_cas_answer a;
	struct fixture f;
	char err[256];

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	struct tp_cas_request r = { .method = "POST",
				    .path = "/v1/policies",
				    .content_type = "application/json",
				    .body = (const uint8_t *)bad,
				    .size = strlen(bad),
				    .remote = "127.0.0.1",
				    .now = NOW };
	tp_cas_handle(f.svc, &r, &a);
	CHECK(a.status == 400 && strstr(a.body, "line 1") && !strstr(a.body, "hunter"));
	free(a.body);
	CHECK(!tp_cas_policy_parse(bad, strlen(bad), err, sizeof(err)));
	CHECK(strstr(err, "line 1") && !strstr(err, "hunter"));
	fixture_close(&f);
}

/* A real TDX quote (recorded, of a debug TD): verified, then held against the policy's
 * platform (MRTD, then debug), and only then against the claims, whose report data it
 * cannot bind (another runtime's claims and nonce); a debug mode in the claims is a bad
 * request. */
static void test_tdx_evidence_is_checked_against_the_claims(void)
{
	struct fixture f;
	uint8_t nonce[32];
	json_t *body;
	char nhex[65];

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	FILE *fp = fopen(TP_ATTEST_TESTDATA "/tdx/tdx_quote_4.dat", "rb");
	static uint8_t quote[1 << 16];
	size_t n = fp ? fread(quote, 1, sizeof(quote), fp) : 0;
	if (fp)
		fclose(fp);
	CHECK(n > 1000);
	static const char quote_mr_td[] = "705ee9381b8633a9fbe532b52345e8433343d2868959f578"
					  "89d84ca377c395b689cac1599ccea1b7d420483a9ce5f031";
	static const char *const want[] = {
		NULL,
		"a debug TD is not tolerated by mysvc/main",
		"TDX MRTD 705ee9381b8633a9… (with its RTMRs) is not in mysvc/main's hw list",
		"report data does not match the claims",
	};
	char h[65], h2[65];
	json_t *doc = hw_only_doc(&f);
	CHECK(create(&f, json_incref(doc), f.owner, h) == 201);
	for (int mode = 0; mode < 4; mode++) {
		json_t *svc = json_object_get(json_object_get(doc, "services"), "main");
		if (mode == 2) { /* a debug TD tolerated; the quote's platform not yet */
			json_object_set_new(svc, "tolerate", json_pack("[s]", "debug"));
			CHECK(update(&f, json_incref(doc), h, f.owner, h2, &body) == 200);
			json_decref(body);
		} else if (mode == 3) {
			json_object_set_new(svc, "hw",
					    json_pack("{s:[{s:s}]}", "tdx", "mr_td", quote_mr_td));
			CHECK(update(&f, json_incref(doc), h2, f.owner, h, &body) == 200);
			json_decref(body);
		}
		new_nonce(&f, nonce, NOW);
		tp_hex(nonce, 32, nhex);
		char *data = tp_base64_encode(quote, n);
		json_t *req = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}}",
					"config_id", "mysvc/main", "nonce", nhex, "claims", "mode",
					mode ? "hw" : "debug", "runtime", hex32(f.runtime), "app",
					hex32(f.app), "signer", hex32(f.signer), "pubkey",
					hex32(f.app), "evidence", "type", "tdx", "data", data);
		free(data);
		unsigned st = call(&f, "POST", "/v1/attest", req, NOW, &body);
		if (mode == 0)
			CHECK(st == 400);
		else
			CHECK(st == 403 && strcmp(message(body), want[mode]) == 0);
		json_decref(body);
	}
	json_decref(doc);
	fixture_close(&f);
}

/* Anyone may ask for challenges: only so many are open at once; a used or expired one
 * no longer counts, and is told as such for a day. */
static void test_open_challenges_are_capped(void)
{
	struct fixture f;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(tp_cas_store_nonce_add(f.st, "a", NOW, NOW + 60, 2) == 0);
	CHECK(tp_cas_store_nonce_add(f.st, "b", NOW, NOW + 60, 2) == 0);
	CHECK(tp_cas_store_nonce_add(f.st, "c", NOW, NOW + 60, 2) == -EBUSY);
	CHECK(tp_cas_store_nonce_take(f.st, "a", NOW) == 0);
	CHECK(tp_cas_store_nonce_add(f.st, "c", NOW, NOW + 60, 2) == 0);
	CHECK(tp_cas_store_nonce_add(f.st, "d", NOW + 61, NOW + 121, 2) == 0);
	CHECK(tp_cas_store_nonce_take(f.st, "b", NOW + 61) == -ETIME);
	CHECK(tp_cas_store_nonce_take(f.st, "a", NOW + 3600) == -EALREADY);
	CHECK(tp_cas_store_nonce_take(f.st, "a", NOW + 2 * 86400) == -ENOENT);
	fixture_close(&f);
}

/* Forgetting what expired a day ago searches an index: a day of challenges at 1000 a
 * second is 86.4 million rows, which a scan on every challenge and attest would read
 * (the replay cache's likewise). */
static void test_forgetting_expired_rows_searches_an_index(void)
{
	static const char *const deletes[] = { "DELETE FROM nonces WHERE expires < 1",
					       "DELETE FROM replay WHERE expires < 1" };
	struct fixture f;
	sqlite3 *db;
	sqlite3_stmt *s;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	CHECK(sqlite3_open(f.db, &db) == SQLITE_OK);
	for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]); i++) {
		char plan[512];
		snprintf(plan, sizeof(plan), "EXPLAIN QUERY PLAN %s", deletes[i]);
		CHECK(sqlite3_prepare_v2(db, plan, -1, &s, NULL) == SQLITE_OK);
		CHECK(sqlite3_step(s) == SQLITE_ROW);
		const char *detail = (const char *)sqlite3_column_text(s, 3);
		CHECK(detail && strstr(detail, "SEARCH") && strstr(detail, "INDEX"));
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	fixture_close(&f);
}

struct waiter {
	struct tp_cas_store *st;
	uint64_t mark;
	int r;
};

static void *wait_synced(void *arg)
{
	struct waiter *w = arg;

	w->r = tp_cas_store_sync(w->st, w->mark);
	return NULL;
}

/* The group commit: a request that wrote what must last gets a mark to wait for (a
 * challenge alone none), and any number of threads wait for it at once. A sync that
 * fails fails its wait and every later one: after a failed fdatasync the kernel may
 * have dropped what it could not write. (The WAL moved away before the first sync
 * makes it fail: the store opens the WAL by name then.) */
static void test_writes_are_synced_once_for_all_waiting_and_a_failed_sync_sticks(void)
{
	struct tp_cas_audit row = { .time = NOW,
				    .remote = "127.0.0.1",
				    .op = "attest",
				    .subject = "mysvc/main",
				    .outcome = "denied",
				    .reason = "a test" };
	struct waiter w[4];
	pthread_t t[4];
	struct fixture f;
	char wal[96], moved[96];
	uint64_t mark;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	tp_cas_store_written(f.st); /* what opening wrote */
	CHECK(tp_cas_store_nonce_add(f.st, "n", NOW, NOW + 60, 8) == 0);
	CHECK(tp_cas_store_written(f.st) == 0);
	CHECK(tp_cas_store_audit(f.st, &row) == 0);
	CHECK((mark = tp_cas_store_written(f.st)) > 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct waiter){ .st = f.st, .mark = mark, .r = 1 };
		CHECK(pthread_create(&t[i], NULL, wait_synced, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].r == 0);
	}
	CHECK(tp_cas_store_written(f.st) == 0);
	fixture_close(&f);

	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	snprintf(wal, sizeof(wal), "%s-wal", f.db);
	snprintf(moved, sizeof(moved), "%s-wal.moved", f.db);
	CHECK(tp_cas_store_audit(f.st, &row) == 0);
	mark = tp_cas_store_written(f.st);
	CHECK(rename(wal, moved) == 0);
	CHECK(tp_cas_store_sync(f.st, mark) == -EIO);
	CHECK(rename(moved, wal) == 0);
	CHECK(tp_cas_store_audit(f.st, &row) == 0);
	CHECK(tp_cas_store_sync(f.st, tp_cas_store_written(f.st)) == -EIO);
	fixture_close(&f);
}

/* A release whose audit row the disk did not take is not answered: 503, no secrets.
 * (The policy is written straight to the store, so that no request has synced the
 * WAL, which then moves away.) */
static void test_no_release_when_the_disk_does_not_take_its_row(void)
{
	struct fixture f;
	char wal[96], moved[96], owner[65], hash[TP_CAS_HASH_HEX];
	json_t *doc, *body;

	NEED_CRYPTO();
	if (!fixture_open(&f)) {
		CHECK(false);
		return;
	}
	tp_hex(f.owner_pub, 32, owner);
	doc = policy_doc("mysvc", f.app, f.runtime, f.platform_pub);
	CHECK(tp_cas_store_policy_put(f.st, "mysvc", owner, doc, NULL, hash) == 0);
	json_decref(doc);
	tp_cas_store_written(f.st); /* not waited for: the challenge's request would */
	snprintf(wal, sizeof(wal), "%s-wal", f.db);
	snprintf(moved, sizeof(moved), "%s-wal.moved", f.db);
	CHECK(rename(wal, moved) == 0);
	struct attempt ok = { .flip = -1 };
	CHECK(attest(&f, &ok, NULL, NULL, &body) == 503);
	const char *message =
	    json_string_value(json_object_get(json_object_get(body, "error"), "message"));
	CHECK(message && strstr(message, "nothing released"));
	CHECK(!json_object_get(body, "sealed"));
	json_decref(body);
	CHECK(rename(moved, wal) == 0);
	fixture_close(&f);
}

TESTS(cas_tests) = {
	{ "cas_policy_parses_and_hashes", test_a_valid_policy_parses_and_hashes_canonically },
	{ "cas_policy_rules_refuse", test_each_policy_rule_refuses },
	{ "cas_base64", test_base64_round_trip_and_refusals },
	{ "cas_ownership_and_predecessors", test_policy_ownership_and_predecessors },
	{ "cas_lists_capped_before_signature", test_policy_lists_are_capped_before_the_signature },
	{ "cas_attestation_releases_and_denies",
	  test_attestation_releases_and_denies_with_reasons },
	{ "cas_nonce_not_marked_is_not_taken", test_a_nonce_not_marked_used_is_not_taken },
	{ "cas_no_release_without_audit_row", test_no_release_without_its_audit_row },
	{ "cas_sim_needs_toleration", test_sim_evidence_needs_a_policy_that_tolerates_it },
	{ "cas_debug_run_needs_toleration", test_a_debug_run_needs_a_policy_that_tolerates_debug },
	{ "cas_signer_rule", test_signer_rule_checks_product_and_security_version },
	{ "cas_bad_requests_get_4xx", test_bad_requests_get_4xx },
	{ "cas_json_errors_do_not_quote", test_json_errors_do_not_quote_the_text },
	{ "cas_tdx_evidence_checked", test_tdx_evidence_is_checked_against_the_claims },
	{ "cas_open_challenges_capped", test_open_challenges_are_capped },
	{ "cas_forgetting_searches_an_index", test_forgetting_expired_rows_searches_an_index },
	{ "cas_group_commit",
	  test_writes_are_synced_once_for_all_waiting_and_a_failed_sync_sticks },
	{ "cas_no_release_without_the_disk", test_no_release_when_the_disk_does_not_take_its_row },
	END_TESTS,
};
