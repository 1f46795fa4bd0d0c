/* sim evidence: the claims and their report data signed by a host's platform key
 * (Ed25519), labelled SIMULATION in its first bytes. A fixed binary layout, not
 * JSON: the signature covers exactly the bytes parsed, with no canonical form to
 * agree on, and every field is at a known place (docs/cas.md, "sim evidence").
 * Parsing is pure; verifying needs libcrypto. */
#include "attest.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(int r, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int r, char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return r;
}

int tp_sim_parse(const uint8_t *bytes, size_t size, struct tp_sim_evidence *e, char *err,
		 size_t err_size)
{
	const uint8_t *p = bytes + TP_SIM_LABEL_SIZE;
	size_t nonce_size;

	memset(e, 0, sizeof(*e));
	if (size < TP_SIM_LABEL_SIZE || memcmp(bytes, TP_SIM_LABEL, TP_SIM_LABEL_SIZE) != 0)
		return fail(-EINVAL, err, err_size, "no sim evidence label");
	if (size < TP_SIM_LABEL_SIZE + 2)
		return fail(-EINVAL, err, err_size, "cut short after the label");
	e->version = (uint16_t)(p[0] << 8 | p[1]);
	if (e->version != TP_SIM_VERSION && e->version != TP_SIM_VERSION_DEBUG)
		return fail(-EPROTONOSUPPORT, err, err_size,
			    "sim evidence of version %u (teepy reads versions %u and %u)",
			    e->version, TP_SIM_VERSION, TP_SIM_VERSION_DEBUG);
	size_t flags = e->version == TP_SIM_VERSION_DEBUG; /* its flags byte */
	if (size < TP_SIM_FIXED_SIZE + flags)
		return fail(-EINVAL, err, err_size, "%zu bytes: cut short", size);
	p += 2;
	if (flags && p[0] != TP_SIM_FLAG_DEBUG)
		return fail(-EINVAL, err, err_size,
			    "flags 0x%02x: version 2 is a debug run's (flags 0x01), no other",
			    p[0]);
	e->claims.debug = flags;
	p += flags;
	memcpy(e->claims.mode, "sim", 4);
	memcpy(e->claims.runtime, p, TP_CLAIM_SIZE);
	memcpy(e->claims.app, p += TP_CLAIM_SIZE, TP_CLAIM_SIZE);
	memcpy(e->claims.signer, p += TP_CLAIM_SIZE, TP_CLAIM_SIZE);
	memcpy(e->claims.pubkey, p += TP_CLAIM_SIZE, TP_CLAIM_SIZE);
	nonce_size = *(p += TP_CLAIM_SIZE);
	if (nonce_size < 1 || nonce_size > TP_NONCE_MAX)
		return fail(-EINVAL, err, err_size, "a nonce of %zu bytes (1 to %d)", nonce_size,
			    TP_NONCE_MAX);
	if (size != TP_SIM_FIXED_SIZE + flags + nonce_size)
		return fail(-EINVAL, err, err_size, "%zu bytes, not the %zu its nonce size says",
			    size, TP_SIM_FIXED_SIZE + flags + nonce_size);
	e->claims.nonce_size = nonce_size;
	memcpy(e->claims.nonce, p += 1, nonce_size);
	memcpy(e->report_data, p += nonce_size, TP_REPORT_DATA_SIZE);
	memcpy(e->platform_key, p += TP_REPORT_DATA_SIZE, TP_SIM_PLATFORM_KEY);
	p += TP_SIM_PLATFORM_KEY;
	e->signed_size = (size_t)(p - bytes);
	memcpy(e->signature, p, TP_SIM_SIGNATURE);
	e->bytes = bytes;
	return 0;
}

int tp_sim_write(const struct tp_claims *c, const struct tp_key *platform, uint8_t *out)
{
	uint8_t *p = out;

	if (strcmp(c->mode, "sim") != 0 || c->nonce_size < 1 || c->nonce_size > TP_NONCE_MAX)
		return -EINVAL;
	memcpy(p, TP_SIM_LABEL, TP_SIM_LABEL_SIZE);
	p += TP_SIM_LABEL_SIZE;
	/* a run's evidence is version 1, byte for byte as before debug runs existed */
	unsigned version = c->debug ? TP_SIM_VERSION_DEBUG : TP_SIM_VERSION;
	*p++ = (uint8_t)(version >> 8);
	*p++ = (uint8_t)(version & 0xff);
	if (c->debug)
		*p++ = TP_SIM_FLAG_DEBUG;
	memcpy(p, c->runtime, TP_CLAIM_SIZE);
	memcpy(p += TP_CLAIM_SIZE, c->app, TP_CLAIM_SIZE);
	memcpy(p += TP_CLAIM_SIZE, c->signer, TP_CLAIM_SIZE);
	memcpy(p += TP_CLAIM_SIZE, c->pubkey, TP_CLAIM_SIZE);
	p += TP_CLAIM_SIZE;
	*p++ = (uint8_t)c->nonce_size;
	memcpy(p, c->nonce, c->nonce_size);
	p += c->nonce_size;
	if (tp_report_data(c, p) < 0)
		return -EINVAL;
	p += TP_REPORT_DATA_SIZE;
	tp_key_public_raw(platform, p);
	p += TP_SIM_PLATFORM_KEY;
	if (tp_sign(platform, out, (size_t)(p - out), p) < 0)
		return -EIO;
	return (int)(p + TP_SIM_SIGNATURE - out);
}

static struct tp_attest_check *add(struct tp_attest_result *res, const char *name, const char *what)
{
	struct tp_attest_check *c = &res->checks[res->count++];

	*c = (struct tp_attest_check){ .name = name, .what = what, .ok = true };
	return c;
}

/* Marks c failed with why, unless it failed already. */
static void failed(struct tp_attest_check *c, const char *why)
{
	if (c->ok)
		snprintf(c->detail, sizeof(c->detail), "%s", why);
	c->ok = false;
}

static void compare_claims(const struct tp_claims *got, const struct tp_sim_expect *x,
			   struct tp_attest_check *c)
{
	if (x->nonce &&
	    (x->nonce_size != got->nonce_size || memcmp(x->nonce, got->nonce, x->nonce_size) != 0))
		failed(c, "the nonce is not the one expected (--nonce): evidence made for another "
			  "challenge, or replayed");
	if (x->app && memcmp(x->app, got->app, TP_CLAIM_SIZE) != 0)
		failed(c, "the app measurement is not the one expected (--app)");
	if (x->signer && memcmp(x->signer, got->signer, TP_CLAIM_SIZE) != 0)
		failed(c, "the signer is not the one expected (--signer)");
	if (x->runtime && memcmp(x->runtime, got->runtime, TP_CLAIM_SIZE) != 0)
		failed(c, "the runtime measurement is not the one expected");
}

int tp_sim_verify(const struct tp_sim_evidence *e, const uint8_t (*trusted)[TP_SIM_PLATFORM_KEY],
		  size_t count, const struct tp_sim_expect *expect, struct tp_attest_result *res)
{
	uint8_t rd[TP_REPORT_DATA_SIZE];
	struct tp_attest_check *c;
	struct tp_key *key;
	bool known = false;

	memset(res, 0, sizeof(*res));
	c = add(res, "report_data",
		"the report data is SHA-512 of the claims' encoding (docs/cas.md, Report data)");
	if (tp_report_data(&e->claims, rd) < 0 || memcmp(rd, e->report_data, sizeof(rd)) != 0)
		failed(c, "the report data does not bind these claims");

	c = add(res, "platform_key",
		"the platform key is one the verifier trusts (--platform-key)");
	for (size_t i = 0; i < count; i++)
		known |= memcmp(trusted[i], e->platform_key, TP_SIM_PLATFORM_KEY) == 0;
	if (!known)
		failed(c, count ? "signed by a platform key not given with --platform-key" :
				  "no platform key is trusted");

	c = add(res, "signature", "the evidence is signed by its platform key (Ed25519)");
	if (!(key = tp_key_from_raw_public(e->platform_key)))
		failed(c, "the platform key is not an Ed25519 key");
	else if (tp_verify(key, e->bytes, e->signed_size, e->signature) < 0)
		failed(c, "the signature does not verify");
	tp_key_free(key);

	if (expect && (expect->nonce || expect->app || expect->signer || expect->runtime)) {
		c = add(res, "claims", "the claims are those the verifier expects");
		compare_claims(&e->claims, expect, c);
	}
	return tp_attest_failed(res) ? -EBADMSG : 0;
}
