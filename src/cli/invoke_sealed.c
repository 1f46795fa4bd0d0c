/* `teepy invoke --sealed`: the evidence a worker gives for a service's key, checked
 * as a CAS checks a runtime's (attest/), then the input sealed to that key with a
 * reply key of this call's own in it, and the answer opened (docs/api.md,
 * "Confidential invocation"). Nothing is sent before the evidence passed. */
#include "invoke_sealed.h"

#include "exit_codes.h"
#include "flags.h"
#include "../cas/cas.h"
#include "../common/log.h"
#include "../worker/sealed.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHO "invoke: refused"

/* A measurement given in hex by flag, of exactly size bytes, into out. */
static int hex_exact(const char *flag, const char *hex, uint8_t *out, size_t size)
{
	return tp_flag_hex("invoke", flag, hex, out, size, size, NULL);
}

/* tdx:MRTD[:RTMR0:RTMR1:RTMR2:RTMR3] after its "tdx:" into t. */
static int tdx_trust(const char *spec, struct tp_sealed_trust *t)
{
	char part[2 * TP_TDX_MR_SIZE + 2];
	const char *p = spec;
	size_t i = t->tdx_count++, n;
	int k, code;

	for (k = 0; k < 5; k++) {
		n = strcspn(p, ":");
		if (n >= sizeof(part))
			n = sizeof(part) - 1; /* too long: refused as not hex below */
		memcpy(part, p, n);
		part[n] = '\0';
		if ((code = hex_exact(
			 k ? "--trust-platform tdx: RTMR" : "--trust-platform tdx:", part,
			 k ? t->tdx[i].rtmr[k - 1] : t->tdx[i].mr_td, TP_TDX_MR_SIZE)) != 0)
			return code;
		p += strcspn(p, ":");
		if (!*p)
			break;
		p++;
	}
	if (k != 0 && k != 4) {
		tp_error("invoke: --trust-platform tdx:%.40s…: MRTD, or MRTD and RTMR0 to RTMR3, "
			 "separated by ':'",
			 spec);
		return TP_EXIT_USAGE;
	}
	t->tdx[i].rtmrs = k == 4;
	return 0;
}

int tp_sealed_trust_parse(const char *app_hex, const char *runtime_hex,
			  const char *const *platforms, size_t count, struct tp_sealed_trust *t)
{
	char err[512];
	int code;

	memset(t, 0, sizeof(*t));
	if (!app_hex) {
		tp_error("invoke: --sealed needs --expect-app HEX: the app measurement the "
			 "service must prove it runs (teepy inspect prints it)");
		return TP_EXIT_USAGE;
	}
	if (!count) {
		tp_error("invoke: --sealed needs --trust-platform: a platform key's .pub (sim "
			 "evidence), tdx:MRTD or snp:MEASUREMENT");
		return TP_EXIT_USAGE;
	}
	if (count > TP_SEALED_TRUST_MAX) {
		tp_error("invoke: --trust-platform: more than %d", TP_SEALED_TRUST_MAX);
		return TP_EXIT_USAGE;
	}
	if ((code = hex_exact("--expect-app", app_hex, t->app, TP_CLAIM_SIZE)) != 0)
		return code;
	if (runtime_hex &&
	    (code = hex_exact("--expect-runtime", runtime_hex, t->runtime, TP_CLAIM_SIZE)) != 0)
		return code;
	t->has_runtime = runtime_hex != NULL;
	for (size_t i = 0; i < count; i++) {
		const char *p = platforms[i];
		if (strncmp(p, "tdx:", 4) == 0) {
			if ((code = tdx_trust(p + 4, t)) != 0)
				return code;
		} else if (strncmp(p, "snp:", 4) == 0) {
			if ((code = hex_exact("--trust-platform snp:", p + 4,
					      t->snp[t->snp_count++], 48)) != 0)
				return code;
		} else if (tp_key_read_public(p, t->keys[t->key_count++], err, sizeof(err)) < 0) {
			tp_error("invoke: --trust-platform %s: %s", p, err);
			return TP_EXIT_USAGE;
		}
	}
	return 0;
}

int tp_sealed_begin(struct tp_sealed_call *sc)
{
	memset(sc, 0, sizeof(*sc));
	if (tp_random(sc->nonce, sizeof(sc->nonce)) < 0 || !(sc->reply = tp_x25519_generate())) {
		tp_error("invoke: cannot make a nonce and an X25519 key");
		return TP_EXIT_INTERNAL;
	}
	return 0;
}

void tp_sealed_end(struct tp_sealed_call *sc)
{
	tp_x25519_free(sc->reply);
	free(sc->sealed);
	memset(sc, 0, sizeof(*sc));
}

/* ---- the evidence ---- */

static bool claim(const json_t *claims, const char *name, uint8_t *out, size_t size)
{
	const char *hex = json_string_value(json_object_get(claims, name));
	return hex && strlen(hex) == 2 * size && tp_unhex(hex, out, size) == 0;
}

/* The claims the answer gives beside hw evidence, which binds them in its report
 * data. Returns 0 or -EINVAL. */
static int answer_claims(const json_t *answer, struct tp_claims *c)
{
	const json_t *j = json_object_get(answer, "claims");
	const char *mode = json_string_value(json_object_get(j, "mode"));
	const char *nonce = json_string_value(json_object_get(j, "nonce"));
	size_t n = nonce ? strlen(nonce) : 0;

	memset(c, 0, sizeof(*c));
	if (!mode || strcmp(mode, "hw") != 0 || n < 2 || n > 2 * TP_NONCE_MAX || n % 2 ||
	    tp_unhex(nonce, c->nonce, n / 2) < 0 || !claim(j, "runtime", c->runtime, 32) ||
	    !claim(j, "app", c->app, 32) || !claim(j, "signer", c->signer, 32) ||
	    !claim(j, "pubkey", c->pubkey, 32))
		return -EINVAL;
	snprintf(c->mode, sizeof(c->mode), "hw");
	c->nonce_size = n / 2;
	return 0;
}

static int denied(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int denied(const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tp_error("%s: %s: nothing was sent", WHO, line);
	return TP_EXIT_ATTESTATION_DENIED;
}

static int first_failed(const struct tp_attest_result *res)
{
	const struct tp_attest_check *f = tp_attest_failed(res);

	return denied("the evidence does not verify: %s: %s", f ? f->name : "verification",
		      f ? f->detail : "failed");
}

/* The claims' app, nonce and runtime against what the client expects. */
static int check_claims(const struct tp_sealed_trust *t, const struct tp_sealed_call *sc,
			const struct tp_claims *c)
{
	char got[65], want[65];

	tp_hex(c->app, 32, got);
	tp_hex(t->app, 32, want);
	if (memcmp(c->app, t->app, 32) != 0)
		return denied("the service's evidence is for app %.16s…, not --expect-app %.16s…",
			      got, want);
	if (c->nonce_size != sizeof(sc->nonce) || memcmp(c->nonce, sc->nonce, sizeof(sc->nonce)))
		return denied("the evidence does not bind this call's nonce (a replay?)");
	/* a worker never makes one; whoever did could read and change the service */
	if (c->debug)
		return denied("the evidence is a debug run's (teepy shell), not a service's");
	tp_hex(c->runtime, 32, got);
	tp_hex(t->runtime, 32, want);
	if (t->has_runtime && memcmp(c->runtime, t->runtime, 32) != 0)
		return denied("the worker's runtime is %.16s…, not --expect-runtime %.16s…", got,
			      want);
	return 0;
}

static int verify_sim(const struct tp_sealed_trust *t, const uint8_t *data, size_t size,
		      struct tp_sealed_call *sc)
{
	const struct tp_sim_expect none = { 0 };
	struct tp_attest_result res;
	struct tp_sim_evidence e;
	char err[256], key[65], app[65];
	int code;

	if (tp_sim_parse(data, size, &e, err, sizeof(err)) < 0)
		return denied("not sim evidence teepy reads: %s", err);
	tp_sim_verify(&e, (const uint8_t(*)[TP_SIM_PLATFORM_KEY])t->keys, t->key_count, &none,
		      &res);
	tp_hex(e.platform_key, sizeof(e.platform_key), key);
	if (tp_attest_failed(&res) && strcmp(tp_attest_failed(&res)->name, "platform_key") == 0)
		return denied("the evidence is signed by platform key %.16s…, which no "
			      "--trust-platform names",
			      key);
	if (tp_attest_failed(&res))
		return first_failed(&res);
	if ((code = check_claims(t, sc, &e.claims)) != 0)
		return code;
	memcpy(sc->pubkey, e.claims.pubkey, sizeof(sc->pubkey));
	tp_hex(e.claims.app, 32, app);
	tp_info("invoke: sealed to the key of app %.16s… (sim evidence: SIMULATION, signed by "
		"platform key %.16s…, not by hardware)",
		app, key);
	return 0;
}

/* hw evidence: its report data must be the claims', its measurement one trusted. */
static int verify_hw(const struct tp_sealed_trust *t, const char *type, const json_t *ev,
		     const uint8_t *data, size_t size, const struct tp_claims *c,
		     struct tp_sealed_call *sc)
{
	const struct tp_attest_opts opts = { 0 };
	struct tp_attest_result res;
	uint8_t rd[TP_REPORT_DATA_SIZE];
	const uint8_t *m;
	char err[256], hex[2 * 48 + 1], want_hex[65];
	bool trusted = false;
	int code;

	if (strcmp(type, "tdx") == 0 || strcmp(type, "tdx_guest") == 0) {
		struct tp_tdx_quote q;
		if (tp_tdx_parse(data, size, &q, err, sizeof(err)) < 0)
			return denied("not a TDX quote teepy reads: %s", err);
		if (tp_tdx_verify(&q, &opts, &res) < 0)
			return first_failed(&res);
		if (q.td_attributes & TP_TDX_ATTR_DEBUG)
			return denied("the worker runs in a debug TD");
		m = q.mr_td;
		for (size_t i = 0; i < t->tdx_count; i++) {
			bool same = memcmp(t->tdx[i].mr_td, q.mr_td, TP_TDX_MR_SIZE) == 0;
			for (int k = 0; same && t->tdx[i].rtmrs && k < 4; k++)
				same = memcmp(t->tdx[i].rtmr[k], q.rtmr[k], TP_TDX_MR_SIZE) == 0;
			trusted |= same;
		}
		memcpy(rd, q.report_data, sizeof(rd));
	} else if (strcmp(type, "snp") == 0 || strcmp(type, "sev_guest") == 0) {
		struct tp_snp_report r;
		const char *chain = json_string_value(json_object_get(ev, "chain"));
		const char *vb64 = json_string_value(json_object_get(ev, "vcek"));
		uint8_t *vcek = NULL;
		size_t vsize = 0;
		if (tp_snp_parse(data, size, &r, err, sizeof(err)) < 0)
			return denied("not an SEV-SNP report teepy reads: %s", err);
		if (!chain || !vb64 || tp_base64_decode(vb64, strlen(vb64), &vcek, &vsize) < 0)
			return denied("an SEV-SNP report needs its vcek and chain");
		code = tp_snp_verify(&r, vcek, vsize, chain, strlen(chain), &opts, &res);
		free(vcek);
		if (code < 0)
			return first_failed(&res);
		if (r.policy & TP_SNP_POLICY_DEBUG)
			return denied("the worker runs in a debug guest");
		/* below VMPL 0 a more privileged layer of the guest can read its memory */
		if (r.vmpl != 0)
			return denied("the report comes from VMPL %u, not 0", (unsigned)r.vmpl);
		memcpy(rd, r.report_data, sizeof(rd));
		m = r.measurement;
		for (size_t i = 0; i < t->snp_count; i++)
			trusted |= memcmp(t->snp[i], r.measurement, 48) == 0;
	} else {
		return denied("evidence of type %.32s, which teepy does not verify", type);
	}
	tp_hex(m, 48, hex);
	if (!trusted)
		return denied("the platform's measurement %.16s… is not one --trust-platform "
			      "%s: names",
			      hex, strncmp(type, "tdx", 3) == 0 ? "tdx" : "snp");
	uint8_t want[TP_REPORT_DATA_SIZE];
	if (tp_report_data(c, want) < 0 || !tp_same_bytes(want, rd, sizeof(want)))
		return denied("the evidence's report data does not bind the claims given with "
			      "it");
	if ((code = check_claims(t, sc, c)) != 0)
		return code;
	memcpy(sc->pubkey, c->pubkey, sizeof(sc->pubkey));
	tp_hex(c->app, 32, want_hex);
	tp_info("invoke: sealed to the key of app %.16s… (%s evidence, measurement %.16s…; TCB "
		"status not checked)",
		want_hex, type, hex);
	return 0;
}

int tp_sealed_verify(const struct tp_sealed_trust *t, const json_t *answer,
		     struct tp_sealed_call *sc)
{
	const json_t *ev = json_object_get(answer, "evidence");
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *b64 = json_string_value(json_object_get(ev, "data"));
	struct tp_claims c;
	uint8_t *data = NULL;
	size_t size = 0;
	int code;

	if (!type || !b64 || tp_base64_decode(b64, strlen(b64), &data, &size) < 0)
		return denied("the worker's answer holds no evidence ({\"evidence\": {\"type\", "
			      "\"data\"}})");
	if (strcmp(type, "sim") == 0)
		code = verify_sim(t, data, size, sc);
	else if (answer_claims(answer, &c) < 0)
		code = denied("the worker's answer holds no claims for its %.32s evidence", type);
	else
		code = verify_hw(t, type, ev, data, size, &c, sc);
	free(data);
	return code;
}

/* ---- the input and the answer ---- */

int tp_sealed_input(struct tp_sealed_call *sc, const char *service, const char (*task_ids)[65],
		    size_t count, const char *input, size_t size, json_t **out)
{
	size_t plain_size = TP_X25519_SIZE + size, aad_size = TP_SEALED_INPUT_AAD + 64 * count;
	uint8_t *plain = tp_secret_alloc(plain_size), *aad = malloc(aad_size);
	char(*ids)[64] = calloc(count + 1, 64);
	int r = -ENOMEM;

	*out = NULL;
	for (size_t i = 0; ids && i < count; i++)
		memcpy(ids[i], task_ids[i], 64);
	if (plain && aad && ids && (sc->sealed = malloc(plain_size + TP_SEAL_OVERHEAD))) {
		tp_sealed_input_aad(service, (const char(*)[64])ids, count, aad);
		tp_x25519_public(sc->reply, plain);
		memcpy(plain + TP_X25519_SIZE, input, size);
		sc->sealed_size = plain_size + TP_SEAL_OVERHEAD;
		r = tp_seal(sc->pubkey, aad, aad_size, plain, plain_size, sc->sealed);
	}
	if (plain)
		tp_secret_free(plain, plain_size);
	free(aad);
	free(ids);
	if (r == -EINVAL)
		return denied("the service's key is not one anyone holds (of small order)");
	if (r == 0)
		*out = tp_base64_json(sc->sealed, sc->sealed_size);
	if (!*out) {
		tp_error("invoke: out of memory");
		return TP_EXIT_INTERNAL;
	}
	return 0;
}

int tp_sealed_open(const struct tp_sealed_call *sc, json_t *answer, long status, json_t **opened)
{
	const char *b64 = json_string_value(json_object_get(answer, "sealed"));
	uint8_t aad[TP_SEALED_ANSWER_AAD], *bytes = NULL;
	size_t size = 0;
	char *plain = NULL;
	json_error_t je;
	int code = TP_EXIT_USAGE;

	*opened = NULL;
	if (!json_object_get(answer, "sealed")) {
		/* the worker's own word: an error before the run is (it may always refuse),
		 * a result or a log never is */
		if ((status >= 200 && status < 300) || json_object_get(answer, "result")) {
			tp_error(
			    "invoke: refused: the worker answered the sealed call in plaintext, "
			    "which anyone between could have written: not taken");
			return TP_EXIT_ATTESTATION_DENIED;
		}
		json_object_del(answer, "log");
		return 0;
	}
	if (!b64 || tp_base64_decode(b64, strlen(b64), &bytes, &size) < 0 ||
	    size < TP_SEAL_OVERHEAD) {
		tp_error("invoke: refused: the worker's sealed answer is not base64 of a sealed "
			 "message");
		code = TP_EXIT_ATTESTATION_DENIED;
		goto out;
	}
	tp_sealed_answer_aad(sc->sealed, sc->sealed_size, aad);
	if (!(plain = tp_secret_alloc(size - TP_SEAL_OVERHEAD + 1))) {
		tp_error("invoke: out of memory");
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	if (tp_seal_open(sc->reply, aad, sizeof(aad), bytes, size, plain) < 0) {
		tp_error("invoke: refused: the worker's sealed answer does not open with this "
			 "call's key: it answers another request, or was changed");
		code = TP_EXIT_ATTESTATION_DENIED;
		goto out;
	}
	if (!(*opened = json_loadb(plain, size - TP_SEAL_OVERHEAD, JSON_ALLOW_NUL, &je)) ||
	    !json_is_object(*opened)) {
		json_decref(*opened);
		*opened = NULL;
		tp_error("invoke: the sealed answer is not a JSON object: %s", je.text);
		goto out;
	}
	code = 0;
out:
	if (plain)
		tp_secret_free(plain, size - TP_SEAL_OVERHEAD + 1);
	free(bytes);
	return code;
}
