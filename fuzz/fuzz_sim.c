/* libFuzzer target: the sim evidence parser (src/attest/sim.c) on arbitrary bytes,
 * as a CAS receives evidence from anyone, and its verifier. It must refuse with one
 * of its two errors and a reason, or accept exactly the label, the size its nonce
 * says and the claims at their places; an accepted evidence's fields render as JSON,
 * and it never verifies against a key no one holds the private half of. Seeds: sim
 * evidence teepy made (fuzz/corpus/sim). */
#include "evidence.h"

#include "src/crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a point of small order: no Ed25519 signature verifies under it honestly, and
	 * the verifier must not be fooled into trusting one it was not given */
	static const uint8_t trusted[1][TP_SIM_PLATFORM_KEY] = { { 1 } };
	struct tp_sim_evidence e;
	struct tp_attest_result res;
	uint8_t *copy = exact_copy(data, size);
	char err[256] = "";
	int r;

	r = tp_sim_parse(copy, size, &e, err, sizeof(err));
	if (r < 0) {
		refused_as_documented(r, err);
	} else {
		/* version 2, a debug run's, has its flags byte more */
		size_t flags = e.version == TP_SIM_VERSION_DEBUG;
		if (size != TP_SIM_FIXED_SIZE + flags + e.claims.nonce_size ||
		    e.claims.nonce_size < 1 || e.claims.nonce_size > TP_NONCE_MAX ||
		    e.claims.debug != (e.version == TP_SIM_VERSION_DEBUG) ||
		    (e.version != TP_SIM_VERSION && e.version != TP_SIM_VERSION_DEBUG) ||
		    memcmp(copy, TP_SIM_LABEL, TP_SIM_LABEL_SIZE) != 0 || e.bytes != copy ||
		    e.signed_size != size - TP_SIM_SIGNATURE ||
		    memcmp(e.signature, copy + e.signed_size, TP_SIM_SIGNATURE) != 0)
			abort();
		renders(tp_sim_json(&e));
		/* the platform key is the input's: trusted only if it is the one given */
		if (tp_sim_verify(&e, trusted, 1, NULL, &res) == 0 &&
		    memcmp(e.platform_key, trusted[0], TP_SIM_PLATFORM_KEY) != 0)
			abort();
	}
	free(copy);
	return 0;
}
