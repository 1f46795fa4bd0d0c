/* `teepy attest` without verify: this host's evidence (attest_produce.c), and what
 * attest.c, which parses the flags, shares with it. */
#ifndef TEEPY_CLI_ATTEST_CMD_H
#define TEEPY_CLI_ATTEST_CMD_H

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

#endif
