/* `teepy attest` without verify: this host's evidence (attest_produce.c), and what
 * attest.c, which parses the flags, shares with it. */
#ifndef TEEPY_CLI_ATTEST_CMD_H
#define TEEPY_CLI_ATTEST_CMD_H

#include "../attest/attest.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_attest_produce {
	const char *mode;			      /* "sim", "hw" or "auto"; NULL: auto */
	const char *nonce_hex, *app_hex, *signer_hex; /* NULL: random, zeros, zeros */
	const char *output;			      /* -o FILE, or NULL: hex on stdout */
	const char *key;			      /* the platform key, or NULL: default */
	bool json;
};

/* Produces and prints the evidence. Returns an exit code. */
int tp_attest_produce(const struct tp_attest_produce *p);

/* A claim given in hex by flag ("--nonce") of min to max bytes into out. Returns an
 * exit code (one line printed) or 0. */
int tp_attest_claim_hex(const char *flag, const char *hex, uint8_t *out, size_t min, size_t max,
			size_t *size);

/* What `teepy attest` and `teepy run --cas` share; WHO starts each line ("attest"). */

/* This teepy's runtime measurement. Returns an exit code (one line said) or 0. */
int tp_attest_runtime(const char *who, uint8_t out[TP_CLAIM_SIZE]);

/* The mode evidence is made in: "sim" or "hw" for mode ("sim", "hw", or "auto" or
 * NULL: hw where configfs-tsm is, else sim; TEEPY_TSM_DIR for tests). Returns an
 * exit code (one line said) or 0. */
int tp_attest_mode(const char *who, const char *mode, const char **resolved);

/* Evidence of claims (mode "sim": signed by the platform key, key or the default
 * path; "hw": configfs-tsm's report). */
struct tp_evidence {
	uint8_t report_data[TP_REPORT_DATA_SIZE];
	uint8_t sim[TP_SIM_MAX_SIZE];
	struct tp_tsm_report tsm;
	const uint8_t *bytes; /* sim or tsm.outblob */
	size_t size;
	char type[32]; /* "sim", "tdx", "snp", or configfs-tsm's provider */
	uint8_t platform_pub[TP_SIM_PLATFORM_KEY]; /* sim */
	char key_path[PATH_MAX];		   /* sim */
};

/* Returns an exit code (one line said) or 0; ev is freed with tp_evidence_free
 * either way. */
int tp_attest_evidence(const char *who, const struct tp_claims *c, const char *key,
		       struct tp_evidence *ev);
void tp_evidence_free(struct tp_evidence *ev);

#endif
