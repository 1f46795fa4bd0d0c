/* The verifiers of TDX quotes and SEV-SNP reports: each signature, and each
 * certificate chain up to a vendor root whose public key is pinned below. Every
 * check runs whatever the others gave, so a refusal names each one that failed.
 * What is not checked here (TCB status, the vendors' TCB info, QE identity and
 * revocation lists): docs/cas.md, "Evidence". */
#include "attest.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* SHA-256 of the SubjectPublicKeyInfo of Intel's SGX Root CA ("Intel SGX Root CA",
 * Intel Corporation, valid 2018-05-21 to 2049-12-31, certificate SHA-256
 * 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3), which Intel
 * publishes at https://certificates.trustedservices.intel.com/ and which ends every
 * PCK certificate chain. */
static const uint8_t intel_sgx_root_key[TP_SHA256_SIZE] = {
	0xa0, 0xaf, 0x03, 0x12, 0x89, 0xf5, 0xd5, 0xd4, 0x13, 0x2f, 0x91,
	0x86, 0x06, 0x8a, 0x7f, 0xc1, 0x36, 0x28, 0x63, 0x3b, 0xa2, 0x35,
	0x77, 0x74, 0x72, 0xe2, 0x9b, 0x6b, 0x6c, 0x67, 0xa4, 0x9e,
};

/* SHA-256 of the SubjectPublicKeyInfo of AMD's root keys (ARK) of each product, as
 * AMD's key distribution service publishes them (https://kdsintf.amd.com/vcek/v1/
 * PRODUCT/cert_chain): a chain ends at one of these, which names the product. */
static const struct {
	const char *product;
	uint8_t key[TP_SHA256_SIZE];
} amd_arks[] = {
	/* ARK-Milan, valid 2020-10-22 to 2045-10-22 */
	{ "Milan", { 0x9f, 0x05, 0x6b, 0xee, 0x44, 0x37, 0x7e, 0x29, 0x30, 0x8c, 0xb5,
		     0xff, 0xa8, 0x95, 0xbd, 0xfb, 0x62, 0xd1, 0x88, 0x81, 0xfa, 0x6b,
		     0xed, 0x8d, 0x6f, 0x07, 0x5b, 0x02, 0x04, 0x08, 0x9c, 0xb9 } },
	/* ARK-Genoa, valid 2022-01-26 to 2047-01-26 */
	{ "Genoa", { 0x42, 0x9a, 0x69, 0xc9, 0x42, 0x2a, 0xa2, 0x58, 0xee, 0x4d, 0x8d,
		     0xb5, 0xfc, 0xda, 0x9c, 0x64, 0x70, 0xef, 0x15, 0xf8, 0xcd, 0x5a,
		     0x9c, 0xeb, 0xd6, 0xcb, 0xc7, 0xd9, 0x0b, 0x86, 0x38, 0x31 } },
};

#define CHAIN_MAX 8 /* certificates of a chain file or a quote's PCK chain */

static struct tp_attest_check *add(struct tp_attest_result *res, const char *name, const char *what)
{
	struct tp_attest_check *c = &res->checks[res->count++];

	*c = (struct tp_attest_check){ .name = name, .what = what };
	return c;
}

static void failed(struct tp_attest_check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void failed(struct tp_attest_check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	c->ok = false;
}

const struct tp_attest_check *tp_attest_failed(const struct tp_attest_result *res)
{
	for (size_t i = 0; i < res->count; i++)
		if (!res->checks[i].ok)
			return &res->checks[i];
	return NULL;
}

void tp_attest_check_debug(struct tp_attest_result *res, const char *debug, bool tolerated)
{
	struct tp_attest_check *c =
	    add(res, "debug", "the evidence is not a debug run's, TD's or guest's");

	if (!debug)
		c->ok = true;
	else if (tolerated) {
		c->ok = true;
		snprintf(c->detail, sizeof(c->detail), "%s, tolerated (--insecure-tolerate-debug)",
			 debug);
	} else
		failed(
		    c,
		    "%s: whoever ran it could read and change what ran (--insecure-tolerate-debug "
		    "accepts it)",
		    debug);
}

static int verdict(const struct tp_attest_result *res)
{
	return tp_attest_failed(res) ? -EBADMSG : 0;
}

/* The certificate of certs whose key is the pinned one, or NULL. */
static struct tp_cert *pinned(struct tp_cert **certs, size_t count,
			      const uint8_t key[TP_SHA256_SIZE])
{
	uint8_t h[TP_SHA256_SIZE];

	for (size_t i = 0; i < count; i++)
		if (tp_cert_key_sha256(certs[i], h) == 0 && memcmp(h, key, sizeof(h)) == 0)
			return certs[i];
	return NULL;
}

static void free_certs(struct tp_cert **certs, int count)
{
	for (int i = 0; i < count; i++)
		tp_cert_free(certs[i]);
}

static struct tp_cert_time cert_time(const struct tp_attest_opts *opts)
{
	return (struct tp_cert_time){ .unchecked = opts->insecure_no_time_check,
				      .at = opts->at_time };
}

/* ---- TDX ---- */

int tp_tdx_verify(const struct tp_tdx_quote *q, const struct tp_attest_opts *opts,
		  struct tp_attest_result *res)
{
	struct tp_cert *certs[CHAIN_MAX], *root;
	struct tp_cert_time when = cert_time(opts);
	struct tp_attest_check *c;
	uint8_t bound[TP_SHA256_SIZE];
	struct tp_sha256 *h;
	char err[256];
	int count, r;

	memset(res, 0, sizeof(*res));
	count = tp_certs_from_pem(q->pck_chain, q->pck_chain_size, certs, CHAIN_MAX);

	c = add(res, "pck_chain",
		"the PCK certificate chains up to the pinned Intel SGX Root CA key");
	if (count < 2)
		failed(c, "the quote's PCK chain %s",
		       count == -E2BIG ? "is longer than any PCK chain" :
		       count < 0       ? "has a certificate that does not parse" :
		       count == 0      ? "has no PEM certificates" :
					 "is one certificate, not a chain");
	else if (!(root = pinned(certs, (size_t)count, intel_sgx_root_key)) || root == certs[0])
		failed(c, "no CA certificate of the chain has the pinned Intel SGX Root CA key");
	else if ((r = tp_cert_chain_verify(certs[0], certs + 1, (size_t)count - 1, root, &when, err,
					   sizeof(err))) < 0)
		failed(c, "%s", err);
	else
		c->ok = true;

	c = add(res, "qe_report_signature",
		"the quoting enclave's report is signed by the PCK certificate's key");
	if (count < 1)
		failed(c, "no PCK certificate to check it with");
	else if ((r = tp_cert_ecdsa_verify(certs[0], 256, q->qe_report, TP_TDX_QE_REPORT_SIZE,
					   q->qe_report_signature, q->qe_report_signature + 32,
					   32)) < 0)
		failed(c, r == -EKEYREJECTED ? "the PCK certificate's key is not ECDSA-P256" :
					       "the signature does not verify");
	else
		c->ok = true;
	free_certs(certs, count);

	c = add(res, "qe_report_data",
		"the QE report binds the attestation key: SHA-256(key || QE auth data)");
	if (!(h = tp_sha256_new())) {
		failed(c, "out of memory");
	} else {
		static const uint8_t zeros[32];
		tp_sha256_update(h, q->attestation_key, sizeof(q->attestation_key));
		tp_sha256_update(h, q->qe_auth_data, q->qe_auth_size);
		tp_sha256_final(h, bound);
		if (memcmp(bound, q->qe.report_data, sizeof(bound)) != 0 ||
		    memcmp(zeros, q->qe.report_data + 32, sizeof(zeros)) != 0)
			failed(c, "the QE report's data is not the hash of the attestation key "
				  "and the QE authentication data");
		else
			c->ok = true;
	}

	c = add(res, "quote_signature",
		"the quote's header and TD report are signed by the attestation key");
	if ((r = tp_p256_verify(q->attestation_key, q->bytes, q->signed_size, q->signature)) < 0)
		failed(c, r == -EKEYREJECTED ? "the attestation key is not a P-256 point" :
					       "the signature does not verify");
	else
		c->ok = true;
	return verdict(res);
}

/* ---- SEV-SNP ---- */

/* A small non-negative DER INTEGER, the whole of value (the TCB extensions of a
 * VCEK or VLEK: 02 01 08), minimally encoded as DER requires: a leading zero byte
 * only before a byte whose top bit is set (02 02 00 80, never 02 02 00 05). -1 when
 * it is not one. */
int tp_der_small_int(const uint8_t *v, size_t size)
{
	if (size < 3 || size > 4 || v[0] != 0x02 || v[1] != size - 2)
		return -1;
	if (size == 3)
		return v[2] & 0x80 ? -1 : v[2]; /* a negative number */
	if (v[2] != 0 || !(v[3] & 0x80))
		return -1; /* at most one byte of value, after a sign byte it needs */
	return v[3];
}

/* What the certificate says of the chip and its TCB, against the report. */
static void check_cert_report(const struct tp_snp_report *r, const struct tp_cert *cert,
			      struct tp_attest_check *c)
{
	static const struct {
		const char *oid, *name;
		size_t offset; /* of its byte in struct tp_snp_tcb */
	} parts[] = {
		{ "1.3.6.1.4.1.3704.1.3.1", "boot loader",
		  offsetof(struct tp_snp_tcb, bootloader) },
		{ "1.3.6.1.4.1.3704.1.3.2", "TEE", offsetof(struct tp_snp_tcb, tee) },
		{ "1.3.6.1.4.1.3704.1.3.3", "SNP", offsetof(struct tp_snp_tcb, snp) },
		{ "1.3.6.1.4.1.3704.1.3.8", "microcode", offsetof(struct tp_snp_tcb, microcode) },
	};
	const char *kind = r->signing_key == TP_SNP_KEY_VLEK ? "SEV-VLEK" : "SEV-VCEK";
	const uint8_t *v;
	char cn[64];
	size_t n;

	tp_cert_subject_cn(cert, cn, sizeof(cn));
	if (strcmp(cn, kind) != 0) {
		failed(c, "the report names a %s, the certificate is %s", kind + 4,
		       *cn ? cn : "no VCEK or VLEK");
		return;
	}
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		int want = ((const uint8_t *)&r->reported_tcb)[parts[i].offset], have;
		if (tp_cert_extension(cert, parts[i].oid, &v, &n) < 0 ||
		    (have = tp_der_small_int(v, n)) < 0) {
			failed(c, "the certificate has no %s security version", parts[i].name);
			return;
		}
		if (have != want) {
			failed(c,
			       "the certificate is for %s version %d, the report's TCB "
			       "has %d",
			       parts[i].name, have, want);
			return;
		}
	}
	/* a VCEK is one chip's (a VLEK a cloud provider's); a masked chip id is zeros */
	if (r->signing_key == TP_SNP_KEY_VCEK && !r->mask_chip_key) {
		if (tp_cert_extension(cert, "1.3.6.1.4.1.3704.1.4", &v, &n) < 0) {
			failed(c, "the VCEK has no chip id (hwID)");
			return;
		}
		if (n != sizeof(r->chip_id) || memcmp(v, r->chip_id, n) != 0) {
			failed(c, "the VCEK is another chip's (its hwID is not the "
				  "report's chip id)");
			return;
		}
	}
	c->ok = true;
	snprintf(c->detail, sizeof(c->detail), "%s of TCB bl %u tee %u snp %u ucode %u", kind + 4,
		 r->reported_tcb.bootloader, r->reported_tcb.tee, r->reported_tcb.snp,
		 r->reported_tcb.microcode);
}

int tp_snp_verify(const struct tp_snp_report *r, const uint8_t *cert, size_t cert_size,
		  const char *chain, size_t chain_size, const struct tp_attest_opts *opts,
		  struct tp_attest_result *res)
{
	struct tp_cert *leaf = tp_cert_from_der(cert, cert_size), *certs[CHAIN_MAX], *ark = NULL;
	const char *kind = r->signing_key == TP_SNP_KEY_VLEK ? "VLEK" : "VCEK";
	struct tp_cert_time when = cert_time(opts);
	struct tp_attest_check *c;
	char err[256];
	int count = tp_certs_from_pem(chain, chain_size, certs, CHAIN_MAX), e;
	size_t product = 0;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; count > 0 && !ark && i < sizeof(amd_arks) / sizeof(amd_arks[0]); i++)
		if ((ark = pinned(certs, (size_t)count, amd_arks[i].key)))
			product = i;

	c = add(res, "cert_chain",
		"the VCEK or VLEK chains through the ASK or ASVK to a pinned AMD ARK key");
	if (!leaf)
		failed(c, "the %s is not a DER certificate", kind);
	else if (count < 1)
		failed(c, "the chain %s",
		       count == -E2BIG ? "is longer than ASK, ARK and ASVK" :
		       count < 0       ? "has a certificate that does not parse" :
					 "has no PEM certificates");
	else if (!ark)
		failed(c, "no certificate of the chain has a pinned AMD ARK key (Milan, Genoa)");
	else if ((e = tp_cert_chain_verify(leaf, certs, (size_t)count, ark, &when, err,
					   sizeof(err))) < 0)
		failed(c, "%s", err);
	else {
		c->ok = true;
		snprintf(res->product, sizeof(res->product), "%s", amd_arks[product].product);
		snprintf(c->detail, sizeof(c->detail), "ARK-%s", res->product);
	}

	c = add(res, "cert_report",
		"the certificate is the kind the report names, for its chip and reported TCB");
	if (!leaf)
		failed(c, "the %s is not a DER certificate", kind);
	else
		check_cert_report(r, leaf, c);

	c = add(res, "report_signature", "the report is signed by the VCEK's or VLEK's key");
	if (!leaf)
		failed(c, "the %s is not a DER certificate", kind);
	else if ((e = tp_cert_ecdsa_verify(leaf, 384, r->bytes, TP_SNP_SIGNED_SIZE, r->sig_r,
					   r->sig_s, sizeof(r->sig_r))) < 0)
		failed(c, e == -EKEYREJECTED ? "the certificate's key is not ECDSA P-384" :
					       "the signature does not verify");
	else
		c->ok = true;
	tp_cert_free(leaf);
	if (count > 0)
		free_certs(certs, count);
	return verdict(res);
}
