/* `teepy attest` without verify: this host's evidence (attest_produce.c), and what
 * attest.c, which parses the flags, shares with it. */
#ifndef TEEPY_CLI_ATTEST_CMD_H
#define TEEPY_CLI_ATTEST_CMD_H

#include "../attest/attest.h"
#include "../manifest/manifest.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The certificates an SEV-SNP report is sent with, when not the host's: files the
 * person gave, and how they gave them ("--snp-vcek", "TEEPY_SNP_VCEK"). */
struct tp_snp_given {
	const char *vcek, *vcek_from;	/* the VCEK or VLEK: DER or PEM */
	const char *chain, *chain_from; /* AMD's chain: PEM (ASK or ASVK, ARK) */
};

struct tp_attest_produce {
	const char *mode;			      /* "sim", "hw" or "auto"; NULL: auto */
	const char *nonce_hex, *app_hex, *signer_hex; /* NULL: random, zeros, zeros */
	const char *output;			      /* -o FILE, or NULL: hex on stdout */
	const char *key;			      /* the platform key, or NULL: default */
	struct tp_snp_given snp;
	bool json;
};

/* Produces and prints the evidence. Returns an exit code. */
int tp_attest_produce(const struct tp_attest_produce *p);

/* What `teepy attest` and `teepy run --cas` share; WHO starts each line ("attest"). */

/* This teepy's runtime measurement for a bundle of that engine (its _teepy is the
 * engine's). Returns an exit code (one line said) or 0. */
int tp_attest_runtime(const char *who, enum tp_engine engine, uint8_t out[TP_CLAIM_SIZE]);

/* The mode evidence is made in: "sim" or "hw" for mode ("sim", "hw", or "auto" or
 * NULL: hw where configfs-tsm is, else sim; TEEPY_TSM_DIR for tests). Returns an
 * exit code (one line said) or 0. */
int tp_attest_mode(const char *who, const char *mode, const char **resolved);

/* How evidence is made. */
struct tp_evidence_opts {
	const char *key;	 /* sim: the platform key, or NULL: the default path */
	struct tp_snp_given snp; /* snp: the person's certificates, else the host's */
	/* snp: a report without its certificate or chain is an error (a CAS refuses
	 * it), not a warning (teepy attest shows what there is) */
	bool snp_certs_needed;
};

/* Evidence of claims (mode "sim": signed by the platform key; "hw": configfs-tsm's
 * report, and for SEV-SNP the certificates that verify it). */
struct tp_evidence {
	uint8_t report_data[TP_REPORT_DATA_SIZE];
	uint8_t sim[TP_SIM_MAX_SIZE];
	struct tp_tsm_report tsm;
	const uint8_t *bytes; /* sim or tsm.outblob */
	size_t size;
	char type[32]; /* "sim", "tdx", "snp", or configfs-tsm's provider */
	uint8_t platform_pub[TP_SIM_PLATFORM_KEY]; /* sim */
	char key_path[PATH_MAX];		   /* sim */
	/* snp: the report's signer's certificate (DER) and AMD's chain above it (PEM:
	 * ASK or ASVK, then ARK), malloc'd, NULL when there is none; where each came
	 * from ("the host's VCEK", "--snp-vcek FILE"); the host's table in a line
	 * ("VCEK 1360 bytes, ASK 1563 bytes, ARK 1600 bytes", or why there is none) */
	uint8_t *vcek;
	size_t vcek_size;
	char *chain;
	size_t chain_certs;
	char vcek_from[PATH_MAX + 32], chain_from[PATH_MAX + 32];
	char host_certs[512];
};

/* Returns an exit code (one line said) or 0; ev is freed with tp_evidence_free
 * either way. */
int tp_attest_evidence(const char *who, const struct tp_claims *c,
		       const struct tp_evidence_opts *opts, struct tp_evidence *ev);
void tp_evidence_free(struct tp_evidence *ev);
/* Evidence as a verifier takes it (a CAS, teepy invoke --sealed): {"type", "data"
 * (base64), "vcek" (base64 DER) and "chain" (PEM) for an SNP report}, or NULL when
 * out of memory. */
json_t *tp_evidence_json(const struct tp_evidence *ev);

/* snp (attest_snp.c): the certificates of ev's report into ev, the person's files
 * first, else the host's table (configfs-tsm's auxblob). What is missing is one
 * line: an error when opts->snp_certs_needed, else a warning. Returns an exit code
 * (USAGE: a file given cannot be read or holds no certificate; KEY_MISSING: the
 * host gave none, a malformed table, or no certificate where one was needed) or 0. */
int tp_attest_snp_certs(const char *who, const struct tp_evidence_opts *opts,
			struct tp_evidence *ev);

#endif
