/* The SEV-SNP attestation report parser: the 1184 bytes of an ATTESTATION_REPORT
 * (AMD SEV Secure Nested Paging Firmware ABI, table "ATTESTATION_REPORT
 * Structure") into fields. Pure: no OS calls, no cryptography. */
#include "attest.h"

#include "../common/le.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SIG_COMPONENT_SIZE 72 /* r and s: little-endian, zero-padded to 72 bytes */

/* A TCB_VERSION as Milan and Genoa lay it out: boot loader, TEE, 4 reserved, SNP,
 * microcode (one byte each). */
static struct tp_snp_tcb tcb(const uint8_t *b)
{
	return (struct tp_snp_tcb){ .raw = tp_get_le(b, 8),
				    .bootloader = b[0],
				    .tee = b[1],
				    .snp = b[6],
				    .microcode = b[7] };
}

/* A signature component to big-endian: its first 48 bytes (P-384) reversed; the
 * padding must be zeros. */
static bool component(const uint8_t *le, uint8_t be[48])
{
	for (size_t i = 48; i < SIG_COMPONENT_SIZE; i++)
		if (le[i])
			return false;
	for (size_t i = 0; i < 48; i++)
		be[i] = le[47 - i];
	return true;
}

int tp_snp_parse(const uint8_t *bytes, size_t size, struct tp_snp_report *r, char *err,
		 size_t err_size)
{
	const uint8_t *b = bytes;
	uint32_t signer;

	memset(r, 0, sizeof(*r));
	if (size != TP_SNP_REPORT_SIZE) {
		snprintf(err, err_size, "%zu bytes, not an SEV-SNP attestation report (%d bytes)",
			 size, TP_SNP_REPORT_SIZE);
		return -EINVAL;
	}
	r->version = (uint32_t)tp_get_le(b, 4);
	/* 2: ABI 1.55; 3 adds the CPUID fields; 5 the launch mitigations (in what was
	 * reserved): the fields read here stand where they stood in 2 */
	if (r->version < 2 || r->version > 5) {
		snprintf(err, err_size, "a report of version %u (teepy reads versions 2 to 5)",
			 r->version);
		return -EPROTONOSUPPORT;
	}
	r->guest_svn = (uint32_t)tp_get_le(b + 0x04, 4);
	r->policy = tp_get_le(b + 0x08, 8);
	memcpy(r->family_id, b + 0x10, 16);
	memcpy(r->image_id, b + 0x20, 16);
	r->vmpl = (uint32_t)tp_get_le(b + 0x30, 4);
	r->signature_algo = (uint32_t)tp_get_le(b + 0x34, 4);
	if (r->signature_algo != TP_SNP_SIG_ECDSA_P384) {
		snprintf(err, err_size, "signature algorithm %u, not ECDSA P-384 with SHA-384 (1)",
			 r->signature_algo);
		return -EPROTONOSUPPORT;
	}
	r->current_tcb = tcb(b + 0x38);
	r->platform_info = tp_get_le(b + 0x40, 8);
	signer = (uint32_t)tp_get_le(b + 0x48, 4);
	r->author_key_en = signer & 1;
	r->mask_chip_key = (signer >> 1) & 1;
	r->signing_key = (signer >> 2) & 7;
	if (r->signing_key != TP_SNP_KEY_VCEK && r->signing_key != TP_SNP_KEY_VLEK) {
		snprintf(err, err_size, "signed by key %u, neither a VCEK (0) nor a VLEK (1)",
			 r->signing_key);
		return -EPROTONOSUPPORT;
	}
	memcpy(r->report_data, b + 0x50, 64);
	memcpy(r->measurement, b + 0x90, 48);
	memcpy(r->host_data, b + 0xc0, 32);
	memcpy(r->id_key_digest, b + 0xe0, 48);
	memcpy(r->author_key_digest, b + 0x110, 48);
	memcpy(r->report_id, b + 0x140, 32);
	memcpy(r->report_id_ma, b + 0x160, 32);
	r->reported_tcb = tcb(b + 0x180);
	memcpy(r->chip_id, b + 0x1a0, 64);
	r->committed_tcb = tcb(b + 0x1e0);
	r->current_build = b[0x1e8];
	r->current_minor = b[0x1e9];
	r->current_major = b[0x1ea];
	r->committed_build = b[0x1ec];
	r->committed_minor = b[0x1ed];
	r->committed_major = b[0x1ee];
	r->launch_tcb = tcb(b + 0x1f0);
	if (!component(b + TP_SNP_SIGNED_SIZE, r->sig_r) ||
	    !component(b + TP_SNP_SIGNED_SIZE + SIG_COMPONENT_SIZE, r->sig_s)) {
		snprintf(err, err_size, "a signature component larger than P-384's");
		return -EINVAL;
	}
	r->bytes = bytes;
	return 0;
}
