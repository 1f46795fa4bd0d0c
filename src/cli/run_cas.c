/* `teepy run --cas`: the keys of a sealed bundle by attestation. The bundle is
 * measured as teepy inspect does, the evidence made as teepy attest makes it, the
 * answer opened with an X25519 key that lives in locked memory for this exchange
 * only; nothing of it is written anywhere (docs/cas.md, "The runtime side"). */
#include "run_cas.h"

#include "attest_cmd.h"
#include "exit_codes.h"
#include "../attest/attest.h"
#include "../cas/cas.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* One request to the CAS; what went wrong said in one line as an exit code. */
static int call(const struct tp_run_cas *rc, const char *path, json_t *body, json_t **answer)
{
	const struct tp_cas_conn conn = { rc->url, rc->fingerprint };
	char err[1024];
	long status;
	int r = tp_cas_call(&conn, "POST", path, body, &status, answer, err, sizeof(err));

	json_decref(body);
	if (r == 0)
		return 0;
	if (r == -EREMOTEIO && status == 403) {
		tp_error("%s: the CAS denied %s: %s", rc->who, rc->config_id, err);
		return TP_EXIT_ATTESTATION_DENIED;
	}
	if (r == -EREMOTEIO)
		tp_error("%s: --cas: the CAS refused %s for %s: %s", rc->who, path, rc->config_id,
			 err);
	else
		tp_error("%s: --cas: %s", rc->who, err);
	return r == -ENOSYS ? TP_EXIT_INTERNAL : TP_EXIT_KEY_MISSING;
}

static json_t *hex_string(const uint8_t *bytes, size_t size)
{
	char hex[2 * 64 + 1];

	tp_hex(bytes, size, hex);
	return json_string(hex);
}

/* The challenge's nonce into c. Returns an exit code or 0. */
static int challenge(const struct tp_run_cas *rc, struct tp_claims *c)
{
	json_t *answer;
	const char *nonce;
	int code;

	if ((code = call(rc, "/v1/challenge", json_object(), &answer)) != 0)
		return code;
	nonce = json_string_value(json_object_get(answer, "nonce"));
	if (!nonce || strlen(nonce) != 64 || tp_unhex(nonce, c->nonce, 32) < 0) {
		json_decref(answer);
		tp_error("%s: --cas: the CAS's challenge holds no nonce of 32 bytes in hex",
			 rc->who);
		return TP_EXIT_KEY_MISSING;
	}
	c->nonce_size = 32;
	json_decref(answer);
	return 0;
}

static json_t *attest_body(const struct tp_run_cas *rc, const struct tp_claims *c,
			   const struct tp_evidence *ev)
{
	json_t *claims = json_pack("{s:s, s:o, s:o, s:o, s:o}", "mode", c->mode, "runtime",
				   hex_string(c->runtime, TP_CLAIM_SIZE), "app",
				   hex_string(c->app, TP_CLAIM_SIZE), "signer",
				   hex_string(c->signer, TP_CLAIM_SIZE), "pubkey",
				   hex_string(c->pubkey, TP_CLAIM_SIZE));
	json_t *evidence = tp_evidence_json(ev);

	if (c->debug) /* only then: a run's request is as it always was */
		json_object_set_new(claims, "debug", json_true());
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "config_id", rc->config_id, "nonce",
			 hex_string(c->nonce, c->nonce_size), "claims", claims, "manifest",
			 tp_base64_json(rc->manifest, rc->manifest_size), "evidence", evidence);
}

/* The sealed answer opened with k (aad: the nonce) into rc->secrets. Returns an exit
 * code or 0. */
static int open_answer(struct tp_run_cas *rc, json_t *answer, const struct tp_x25519 *k,
		       const struct tp_claims *c)
{
	json_t *sealed = json_object_get(answer, "sealed");
	const char *eph = json_string_value(json_object_get(sealed, "ephemeral"));
	json_t *ct = json_object_get(sealed, "ciphertext");
	size_t size = 0, in_size, plain_size = 0;
	uint8_t *in = NULL, *body = NULL, *plain = NULL;
	char err[256];
	int r, code = TP_EXIT_KEY_MISSING;

	if (!eph || strlen(eph) != 2 * TP_X25519_SIZE || !json_is_string(ct) ||
	    tp_base64_decode(json_string_value(ct), json_string_length(ct), &body, &size) < 0 ||
	    size < TP_GCM_TAG_SIZE || !(in = malloc(TP_X25519_SIZE + size)) ||
	    tp_unhex(eph, in, TP_X25519_SIZE) < 0) {
		tp_error("%s: --cas: the CAS's answer holds no sealed secrets "
			 "({\"sealed\": {\"ephemeral\", \"ciphertext\"}})",
			 rc->who);
		goto out;
	}
	memcpy(in + TP_X25519_SIZE, body, size);
	in_size = TP_X25519_SIZE + size;
	plain_size = in_size - TP_SEAL_OVERHEAD + 1;
	if (!(plain = tp_secret_alloc(plain_size))) {
		tp_error("out of memory");
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	if ((r = tp_seal_open(k, c->nonce, c->nonce_size, in, in_size, plain)) < 0) {
		tp_error("%s: --cas: the CAS's sealed answer does not open with this run's key "
			 "and nonce: %s",
			 rc->who,
			 r == -ENOMEM ? "out of memory" : "sealed to another key, or changed");
		goto out;
	}
	if (tp_cas_secrets_parse((const char *)plain, in_size - TP_SEAL_OVERHEAD, &rc->secrets, err,
				 sizeof(err)) < 0) {
		tp_error("%s: --cas: the secrets of %s: %s", rc->who, rc->config_id, err);
		goto out;
	}
	code = 0;
out:
	tp_secret_free(plain, plain_size);
	free(body);
	free(in);
	return code;
}

/* The bundle's manifest and signer, measured (as teepy inspect measures them) into
 * the claims and kept to compare with what the runner opens. A signature that does
 * not verify, or a manifest this teepy cannot run, is refused here, as the runner
 * would refuse it, before the CAS is asked anything: the evidence claims the signer,
 * and the manifest's engine names the runtime measured. Returns an exit code or 0. */
static int measure(struct tp_run_cas *rc, const char *path, struct tp_bundle_file *opened,
		   struct tp_claims *c)
{
	struct tp_bundle_file own, *bf = opened ? opened : &own;
	char err[512];
	int code = TP_EXIT_BUNDLE;

	if (!opened && tp_bundle_file_open(path, &own, err, sizeof(err)) < 0) {
		tp_error("%s: %s", path, err);
		return TP_EXIT_BUNDLE;
	}
	if (!bf->signature_ok) {
		/* the evidence would claim a signer that did not sign this manifest */
		tp_error("%s: the signature does not verify: the manifest or the signature was "
			 "changed after signing",
			 path);
		goto out;
	}
	if (tp_bundle_file_parse(bf, false, err, sizeof(err)) < 0) {
		tp_error("%s: %s", path, err);
		goto out;
	}
	rc->manifest_size = bf->bundle.header.manifest_size;
	if ((rc->manifest = malloc(rc->manifest_size ? rc->manifest_size : 1)))
		memcpy(rc->manifest, bf->bundle.manifest, rc->manifest_size);
	memcpy(rc->pubkey, bf->bundle.pubkey, sizeof(rc->pubkey));
	memcpy(c->app, bf->app, TP_CLAIM_SIZE);
	memcpy(c->signer, bf->signer, TP_CLAIM_SIZE);
	rc->engine = bf->manifest.engine.name;
	code = 0;
out:
	if (!opened)
		tp_bundle_file_close(&own);
	if (code != 0)
		return code;
	if (!rc->manifest) {
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	return 0;
}

int tp_run_cas_fetch(struct tp_run_cas *rc, const char *path, struct tp_bundle_file *opened)
{
	/* the CAS refuses an SNP report without its certificates: none is an error here,
	 * before anything is sent */
	const struct tp_evidence_opts opts = { .key = getenv("TEEPY_PLATFORM_KEY"),
					       .snp = rc->snp,
					       .snp_certs_needed = true };
	struct tp_evidence ev = { 0 };
	struct tp_x25519 *k = NULL;
	struct tp_claims c = { 0 };
	json_t *answer = NULL;
	const char *mode;
	char err[256];
	int code;

	char tag[32];

	if (!rc->who)
		rc->who = "run";
	snprintf(tag, sizeof(tag), "%s: --cas", rc->who);
	if ((code = tp_attest_mode(tag, rc->mode, &mode)) != 0)
		return code;
	rc->mode = mode; /* as decided: "sim" or "hw" */
	if (tp_crypto_load(err, sizeof(err)) < 0 || tp_cas_load(err, sizeof(err)) < 0) {
		tp_error("%s: --cas: %s", rc->who, err);
		return TP_EXIT_INTERNAL;
	}
	snprintf(c.mode, sizeof(c.mode), "%s", mode);
	c.debug = rc->debug;
	/* no core dump holds the key or what it opens (not PR_SET_DUMPABLE: the
	 * sandbox's unprivileged id maps need it) */
	tp_secret_no_core(false);
	if ((code = measure(rc, path, opened, &c)) != 0 ||
	    (code = tp_attest_runtime(tag, rc->engine, c.runtime)) != 0)
		return code;
	memcpy(rc->runtime, c.runtime, sizeof(rc->runtime));
	if (!(k = tp_x25519_generate())) {
		tp_error("%s: --cas: cannot make an X25519 key", rc->who);
		return TP_EXIT_INTERNAL;
	}
	tp_x25519_public(k, c.pubkey);
	if ((code = challenge(rc, &c)) == 0 &&
	    (code = tp_attest_evidence(tag, &c, &opts, &ev)) == 0 &&
	    (code = call(rc, "/v1/attest", attest_body(rc, &c, &ev), &answer)) == 0)
		code = open_answer(rc, answer, k, &c);
	json_decref(answer);
	tp_evidence_free(&ev);
	tp_x25519_free(k);
	return code;
}

bool tp_run_cas_same_bundle(const struct tp_run_cas *rc, const struct tp_bundle_file *bf)
{
	return rc->manifest && bf->bundle.manifest &&
	       bf->bundle.header.manifest_size == rc->manifest_size &&
	       memcmp(bf->bundle.manifest, rc->manifest, rc->manifest_size) == 0 &&
	       bf->bundle.pubkey && memcmp(bf->bundle.pubkey, rc->pubkey, sizeof(rc->pubkey)) == 0;
}

void tp_run_cas_free(struct tp_run_cas *rc)
{
	tp_cas_secrets_free(&rc->secrets);
	free(rc->manifest);
	rc->manifest = NULL;
}
