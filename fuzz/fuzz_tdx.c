/* libFuzzer target: the TDX quote parser (src/attest/tdx.c) on arbitrary bytes, as
 * a CAS receives quotes from anyone. It must refuse with one of its two errors and
 * a reason, or accept a quote whose every part lies inside the input and whose
 * lengths add up; an accepted quote's fields render as JSON. Seeds: trustee's real
 * quotes (fuzz/corpus/tdx). */
#include "evidence.h"

static bool inside(const void *p, size_t size, const uint8_t *data, size_t data_size)
{
	const uint8_t *b = p;

	return b >= data && b <= data + data_size && size <= (size_t)(data + data_size - b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_tdx_quote q;
	uint8_t *copy = exact_copy(data, size);
	char err[256] = "";
	int r;

	r = tp_tdx_parse(copy, size, &q, err, sizeof(err));
	if (r < 0) {
		refused_as_documented(r, err);
	} else {
		size_t body = q.body_type == TP_TDX_BODY_TD_REPORT_15 ? TP_TDX_REPORT_1_5_SIZE :
									TP_TDX_REPORT_1_0_SIZE;
		if ((q.version != 4 && q.version != 5) || q.tee_type != TP_TDX_TEE_TYPE ||
		    q.att_key_type != TP_TDX_KEY_ECDSA_P256 || q.bytes != copy ||
		    q.signed_size != TP_TDX_HEADER_SIZE + (q.version == 5 ? 6 : 0) + body ||
		    !inside(q.qe_report, TP_TDX_QE_REPORT_SIZE, copy, size) ||
		    !inside(q.qe_auth_data, q.qe_auth_size, copy, size) ||
		    !inside(q.pck_chain, q.pck_chain_size, copy, size) ||
		    (const uint8_t *)q.qe_report < copy + q.signed_size)
			abort();
		renders(tp_tdx_json(&q));
	}
	free(copy);
	return 0;
}
