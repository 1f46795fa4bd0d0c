/* libFuzzer target: the SEV-SNP report parser (src/attest/snp.c) on arbitrary
 * bytes. Only 1184 bytes can be a report; it must refuse anything else with one of
 * its two errors and a reason, and an accepted report's signature components must
 * be the input's (reversed) and its fields render as JSON. Seeds: trustee's real
 * reports (fuzz/corpus/snp). */
#include "evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_snp_report r;
	uint8_t *copy = exact_copy(data, size);
	char err[256] = "";
	int e;

	e = tp_snp_parse(copy, size, &r, err, sizeof(err));
	if (e < 0) {
		refused_as_documented(e, err);
	} else {
		if (size != TP_SNP_REPORT_SIZE || r.bytes != copy || r.version < 2 ||
		    r.version > 5 || r.signature_algo != TP_SNP_SIG_ECDSA_P384 ||
		    r.signing_key > TP_SNP_KEY_VLEK)
			abort();
		for (size_t i = 0; i < sizeof(r.sig_r); i++)
			if (r.sig_r[i] != copy[TP_SNP_SIGNED_SIZE + 47 - i] ||
			    r.sig_s[i] != copy[TP_SNP_SIGNED_SIZE + 72 + 47 - i])
				abort();
		renders(tp_snp_json(&r));
	}
	free(copy);
	return 0;
}
