/* Loading a bundle's files for the sealed root: each read once into memory and its
 * SHA-256 checked over exactly those bytes. */
#ifndef TEEPY_CLI_SEALED_H
#define TEEPY_CLI_SEALED_H

#include "bundle_file.h"
#include "../sandbox/root.h"

struct tp_sealed {
	void **contents; /* one buffer per manifest file, in manifest order */
	size_t count;
	uint64_t bytes;
	double seconds; /* time spent reading and hashing */
};

/* Reads and verifies every file (bundled ones from the bundle, system ones from
 * the host path) with two threads. On a mismatch returns -EBADMSG with one line
 * in err naming the file, the expected and the actual hash. */
int tp_sealed_load(const struct tp_bundle_file *bf, struct tp_sealed *out, char *err,
		   size_t err_size);

/* Adds the verified files to plan (they must stay loaded until the spawn). */
int tp_sealed_plan(const struct tp_bundle_file *bf, const struct tp_sealed *sealed,
		   struct tp_root_plan *plan);

void tp_sealed_free(struct tp_sealed *s);

#endif
