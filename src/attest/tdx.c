/* The TDX quote parser: untrusted bytes (a quote from configfs-tsm, or from anyone
 * who claims to be a TD) into fields, every length checked against what is left.
 * Pure: no OS calls, no cryptography. Layout: Intel TDX DCAP Quote Generation
 * Library and Quote Verification Library, quote formats 4 and 5. */
#include "attest.h"

#include "../common/le.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The bytes not read yet. */
struct cursor {
	const uint8_t *p;
	size_t left;
};

static bool take(struct cursor *c, void *out, size_t size)
{
	if (size > c->left)
		return false;
	if (out)
		memcpy(out, c->p, size);
	c->p += size;
	c->left -= size;
	return true;
}

static bool take_le(struct cursor *c, size_t size, uint64_t *out)
{
	if (size > c->left)
		return false;
	*out = tp_get_le(c->p, size);
	c->p += size;
	c->left -= size;
	return true;
}

/* A part of the bytes of size bytes, taken whole: its own cursor. */
static bool take_part(struct cursor *c, size_t size, struct cursor *part)
{
	part->p = c->p;
	part->left = size;
	return take(c, NULL, size);
}

static int fail(int r, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int r, char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return r;
}

static void read_sgx_report(const uint8_t *b, struct tp_sgx_report *r)
{
	/* cpu_svn 16, misc_select 4, reserved 28, attributes 16, mr_enclave 32,
	 * reserved 32, mr_signer 32, reserved 96, isv_prod_id 2, isv_svn 2,
	 * reserved 60, report_data 64 */
	memcpy(r->cpu_svn, b, 16);
	r->misc_select = (uint32_t)tp_get_le(b + 16, 4);
	memcpy(r->attributes, b + 48, 16);
	memcpy(r->mr_enclave, b + 64, 32);
	memcpy(r->mr_signer, b + 128, 32);
	r->isv_prod_id = (uint16_t)tp_get_le(b + 256, 2);
	r->isv_svn = (uint16_t)tp_get_le(b + 258, 2);
	memcpy(r->report_data, b + 320, 64);
}

static void read_td_report(const uint8_t *b, size_t size, struct tp_tdx_quote *q)
{
	const uint8_t *p = b;
#define FIELD(dst)                                                                                 \
	do {                                                                                       \
		memcpy(dst, p, sizeof(dst));                                                       \
		p += sizeof(dst);                                                                  \
	} while (0)
#define FIELD_LE64(dst)                                                                            \
	do {                                                                                       \
		dst = tp_get_le(p, 8);                                                             \
		p += 8;                                                                            \
	} while (0)
	FIELD(q->tee_tcb_svn);
	FIELD(q->mr_seam);
	FIELD(q->mr_signer_seam);
	FIELD_LE64(q->seam_attributes);
	FIELD_LE64(q->td_attributes);
	FIELD_LE64(q->xfam);
	FIELD(q->mr_td);
	FIELD(q->mr_config_id);
	FIELD(q->mr_owner);
	FIELD(q->mr_owner_config);
	for (int i = 0; i < 4; i++)
		FIELD(q->rtmr[i]);
	FIELD(q->report_data);
	if (size == TP_TDX_REPORT_1_5_SIZE) {
		FIELD(q->tee_tcb_svn2);
		FIELD(q->mr_servicetd);
	}
#undef FIELD
#undef FIELD_LE64
}

/* The signature data: the quote's signature, the attestation key, and the
 * certification data that must be a QE report's (type 6) holding the PCK chain. */
static int read_signature_data(struct cursor *c, struct tp_tdx_quote *q, char *err, size_t err_size)
{
	struct cursor qe, inner;
	uint64_t type, size;

	if (!take(c, q->signature, sizeof(q->signature)) ||
	    !take(c, q->attestation_key, sizeof(q->attestation_key)) || !take_le(c, 2, &type) ||
	    !take_le(c, 4, &size))
		return fail(-EINVAL, err, err_size, "the signature data is cut short");
	if (type != TP_TDX_CERT_QE_REPORT)
		return fail(-EPROTONOSUPPORT, err, err_size,
			    "certification data of type %llu, not a QE report's (6)",
			    (unsigned long long)type);
	if (!take_part(c, size, &qe))
		return fail(-EINVAL, err, err_size,
			    "the QE report certification data (%llu bytes) is cut short",
			    (unsigned long long)size);
	q->qe_report = qe.p;
	if (!take(&qe, NULL, TP_TDX_QE_REPORT_SIZE) ||
	    !take(&qe, q->qe_report_signature, sizeof(q->qe_report_signature)) ||
	    !take_le(&qe, 2, &size))
		return fail(-EINVAL, err, err_size, "the QE report is cut short");
	read_sgx_report(q->qe_report, &q->qe);
	q->qe_auth_data = qe.p;
	q->qe_auth_size = size;
	if (!take(&qe, NULL, size) || !take_le(&qe, 2, &type) || !take_le(&qe, 4, &size))
		return fail(-EINVAL, err, err_size, "the QE authentication data is cut short");
	if (type != TP_TDX_CERT_PCK_CHAIN)
		return fail(-EPROTONOSUPPORT, err, err_size,
			    "the QE report's certification data is of type %llu, not a PCK "
			    "certificate chain (5)",
			    (unsigned long long)type);
	if (!take_part(&qe, size, &inner))
		return fail(-EINVAL, err, err_size, "the PCK certificate chain is cut short");
	if (qe.left)
		return fail(-EINVAL, err, err_size,
			    "%zu bytes after the PCK chain in the QE report certification data",
			    qe.left);
	q->pck_chain = (const char *)inner.p;
	q->pck_chain_size = inner.left;
	return 0;
}

int tp_tdx_parse(const uint8_t *bytes, size_t size, struct tp_tdx_quote *q, char *err,
		 size_t err_size)
{
	struct cursor c = { bytes, size }, sig;
	uint64_t v, body_size = TP_TDX_REPORT_1_0_SIZE;
	const uint8_t *h = bytes;
	int r;

	memset(q, 0, sizeof(*q));
	if (size < TP_TDX_HEADER_SIZE)
		return fail(-EINVAL, err, err_size,
			    "%zu bytes: shorter than a TDX quote's header (%d bytes)", size,
			    TP_TDX_HEADER_SIZE);
	q->version = (uint16_t)tp_get_le(h, 2);
	q->att_key_type = (uint16_t)tp_get_le(h + 2, 2);
	q->tee_type = (uint32_t)tp_get_le(h + 4, 4);
	q->qe_svn = (uint16_t)tp_get_le(h + 8, 2);
	q->pce_svn = (uint16_t)tp_get_le(h + 10, 2);
	memcpy(q->qe_vendor_id, h + 12, sizeof(q->qe_vendor_id));
	memcpy(q->user_data, h + 28, sizeof(q->user_data));
	take(&c, NULL, TP_TDX_HEADER_SIZE);
	if (q->version != 4 && q->version != 5)
		return fail(-EPROTONOSUPPORT, err, err_size,
			    "a quote of version %u (teepy reads TDX quotes of versions 4 and 5)",
			    q->version);
	if (q->tee_type != TP_TDX_TEE_TYPE)
		return fail(-EPROTONOSUPPORT, err, err_size, "TEE type 0x%x, not TDX (0x81)%s",
			    q->tee_type, q->tee_type == 0 ? ": an SGX quote" : "");
	if (q->att_key_type != TP_TDX_KEY_ECDSA_P256)
		return fail(-EPROTONOSUPPORT, err, err_size,
			    "attestation key type %u, not ECDSA-P256 (2)", q->att_key_type);
	q->body_type = TP_TDX_BODY_TD_REPORT_10;
	if (q->version == 5) {
		if (!take_le(&c, 2, &v) || !take_le(&c, 4, &body_size))
			return fail(-EINVAL, err, err_size, "the quote body's type is cut short");
		q->body_type = (uint16_t)v;
		if (!((v == TP_TDX_BODY_TD_REPORT_10 && body_size == TP_TDX_REPORT_1_0_SIZE) ||
		      (v == TP_TDX_BODY_TD_REPORT_15 && body_size == TP_TDX_REPORT_1_5_SIZE)))
			return fail(-EPROTONOSUPPORT, err, err_size,
				    "a body of type %llu and %llu bytes, not a TD report 1.0 "
				    "(type 2, 584 bytes) or 1.5 (type 3, 648 bytes)",
				    (unsigned long long)v, (unsigned long long)body_size);
	}
	if (c.left < body_size)
		return fail(-EINVAL, err, err_size, "%zu bytes: the TD report is cut short", size);
	read_td_report(c.p, (size_t)body_size, q);
	take(&c, NULL, (size_t)body_size);
	q->bytes = bytes;
	q->signed_size = size - c.left;
	if (!take_le(&c, 4, &v) || !take_part(&c, v, &sig))
		return fail(-EINVAL, err, err_size, "%zu bytes: the signature data is cut short",
			    size);
	if ((r = read_signature_data(&sig, q, err, err_size)) < 0)
		return r;
	if (sig.left)
		return fail(-EINVAL, err, err_size, "%zu bytes left in the signature data",
			    sig.left);
	for (size_t i = 0; i < c.left; i++)
		if (c.p[i])
			return fail(-EINVAL, err, err_size,
				    "%zu bytes after the quote that are not zeros", c.left);
	return 0;
}
