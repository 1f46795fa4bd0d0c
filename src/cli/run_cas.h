/* `teepy run --cas`: a sealed bundle's keys, data keys, volume key and environment
 * values got from the CAS by attestation (docs/cas.md, "The runtime side"). */
#ifndef TEEPY_CLI_RUN_CAS_H
#define TEEPY_CLI_RUN_CAS_H

#include "attest_cmd.h"
#include "../cas/client.h"
#include "../manifest/bundle_file.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_run_cas {
	/* in */
	const char *url, *fingerprint, *config_id;
	const char *who;	 /* the command, for messages: "run" (NULL), "shell" */
	const char *mode;	 /* "sim", "hw" or "auto" */
	struct tp_snp_given snp; /* --snp-vcek, --snp-chain: else the host's */
	bool debug; /* a debug run (teepy shell APP.tpy): its claims and evidence say so */
	/* out: what was attested, which the bundle the runner opens must be */
	char *manifest; /* the canonical manifest's bytes (malloc'd) */
	size_t manifest_size;
	uint8_t pubkey[32];  /* the bundle signer's Ed25519 key */
	uint8_t runtime[32]; /* the runtime measurement claimed (teepy-shell's for a shell) */
	struct tp_cas_secrets secrets;
	enum tp_engine engine; /* the bundle's: the runtime measured is its _teepy's */
};

/* Measures the bundle at path as teepy inspect does (opened: the caller's, opened
 * with tp_bundle_file_open and libcrypto loaded, else NULL to open it here), makes an ephemeral
 * X25519 key (locked memory), asks the CAS for a challenge, makes evidence of the claims (as teepy
 * attest does; a debug run's with its claim debug), sends it with the manifest, and opens the
 * sealed answer into rc->secrets. Returns an exit code (one line said: ATTESTATION_DENIED with the
 * CAS's reason for a denial) or 0. */
int tp_run_cas_fetch(struct tp_run_cas *rc, const char *path, struct tp_bundle_file *opened);

/* Whether the bundle the runner opened is the one attested: its manifest and
 * signer's key byte for byte. */
bool tp_run_cas_same_bundle(const struct tp_run_cas *rc, const struct tp_bundle_file *bf);

void tp_run_cas_free(struct tp_run_cas *rc); /* wipes the secrets */

#endif
