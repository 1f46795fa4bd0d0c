/* The 64 bytes of report data that bind a runtime's claims into its evidence (the
 * TDX quote's REPORTDATA, the SNP report's REPORT_DATA, sim evidence's own): one
 * encoding, written down in docs/cas.md so any verifier can recompute it. */
#include "attest.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <string.h>

#define DOMAIN "teepy report data v1"

/* A length-prefixed field: 4 bytes big-endian, then the bytes. */
static size_t put_field(uint8_t *out, const void *bytes, size_t size)
{
	out[0] = (uint8_t)(size >> 24);
	out[1] = (uint8_t)(size >> 16);
	out[2] = (uint8_t)(size >> 8);
	out[3] = (uint8_t)size;
	memcpy(out + 4, bytes, size);
	return 4 + size;
}

int tp_report_data(const struct tp_claims *c, uint8_t out[TP_REPORT_DATA_SIZE])
{
	uint8_t msg[sizeof(DOMAIN) - 1 + 7 * 4 + 3 + 4 * TP_CLAIM_SIZE + TP_NONCE_MAX + 5];
	size_t n = sizeof(DOMAIN) - 1;

	if ((strcmp(c->mode, "sim") != 0 && strcmp(c->mode, "hw") != 0) || c->nonce_size < 1 ||
	    c->nonce_size > TP_NONCE_MAX)
		return -EINVAL;
	memcpy(msg, DOMAIN, n);
	n += put_field(msg + n, c->mode, strlen(c->mode));
	n += put_field(msg + n, c->runtime, TP_CLAIM_SIZE);
	n += put_field(msg + n, c->app, TP_CLAIM_SIZE);
	n += put_field(msg + n, c->signer, TP_CLAIM_SIZE);
	n += put_field(msg + n, c->nonce, c->nonce_size);
	n += put_field(msg + n, c->pubkey, TP_CLAIM_SIZE);
	if (c->debug) /* a seventh field: six fields encode a run as they always have */
		n += put_field(msg + n, "debug", 5);
	tp_sha512(msg, n, out);
	return 0;
}
