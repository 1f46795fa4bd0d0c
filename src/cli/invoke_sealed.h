/* `teepy invoke --sealed` (docs/api.md, "Confidential invocation"): the worker's
 * evidence checked before anything is sent, the input sealed to the service's key
 * and the answer opened with a key of this call's own. worker.c makes the requests. */
#ifndef TEEPY_CLI_INVOKE_SEALED_H
#define TEEPY_CLI_INVOKE_SEALED_H

#include "../attest/attest.h"
#include "../crypto/crypto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_SEALED_TRUST_MAX 16

/* What the client trusts: the app it expects, and the platforms. */
struct tp_sealed_trust {
	uint8_t app[TP_CLAIM_SIZE];
	bool has_runtime;
	uint8_t runtime[TP_CLAIM_SIZE];
	uint8_t keys[TP_SEALED_TRUST_MAX][TP_SIM_PLATFORM_KEY]; /* sim: platform keys */
	size_t key_count;
	/* hw: a TD's MRTD, and with rtmrs its RTMR0-3 */
	struct {
		uint8_t mr_td[TP_TDX_MR_SIZE];
		uint8_t rtmr[4][TP_TDX_MR_SIZE];
		bool rtmrs;
	} tdx[TP_SEALED_TRUST_MAX];
	size_t tdx_count;
	uint8_t snp[TP_SEALED_TRUST_MAX][48]; /* hw: SEV-SNP MEASUREMENTs */
	size_t snp_count;
};

/* --expect-app, --expect-runtime (or NULL) and each --trust-platform (a platform
 * key's .pub, tdx:MRTD[:RTMR0:RTMR1:RTMR2:RTMR3] or snp:MEASUREMENT in hex) into t.
 * Returns 0 or an exit code (one line said). */
int tp_sealed_trust_parse(const char *app_hex, const char *runtime_hex,
			  const char *const *platforms, size_t count, struct tp_sealed_trust *t);

/* A sealed call: the nonce it asks evidence with, the service's key the evidence
 * vouches for, its own reply key, and the sealed input sent. */
struct tp_sealed_call {
	uint8_t nonce[32];
	uint8_t pubkey[TP_X25519_SIZE];
	struct tp_x25519 *reply;
	uint8_t *sealed; /* the sealed input's bytes */
	size_t sealed_size;
};

/* The nonce and reply key made. Returns 0 or an exit code said. */
int tp_sealed_begin(struct tp_sealed_call *sc);
void tp_sealed_end(struct tp_sealed_call *sc);

/* The worker's answer to POST .../evidence checked against t and sc's nonce, its key
 * into sc->pubkey, and what was verified said in one line (info). Returns 0, or
 * TP_EXIT_ATTESTATION_DENIED with one line said ("...: nothing was sent"). */
int tp_sealed_verify(const struct tp_sealed_trust *t, const json_t *answer,
		     struct tp_sealed_call *sc);

/* The input (size bytes) sealed for service (64 hex digits) and its task data (count
 * ids, lower-case hex) as the body's "sealed_input": base64 in a new JSON string.
 * Returns 0 or an exit code said. */
int tp_sealed_input(struct tp_sealed_call *sc, const char *service, const char (*task_ids)[65],
		    size_t count, const char *input, size_t size, json_t **out);

/* The answer's "sealed" opened: the answer an unsealed call would have had, in
 * *opened. Returns 0 (an answer without "sealed": *opened NULL) or an exit code said. */
int tp_sealed_open(const struct tp_sealed_call *sc, json_t *answer, long status, json_t **opened);

#endif
