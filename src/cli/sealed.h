/* Filling a sealed root: every manifest file read once, in chunks, each chunk hashed
 * and written into the service's root; the digest over exactly the bytes written
 * must match the manifest. */
#ifndef TEEPY_CLI_SEALED_H
#define TEEPY_CLI_SEALED_H

#include "../manifest/bundle_file.h"

#include <stdbool.h>

struct tp_sealed {
	size_t count;   /* files written */
	uint64_t bytes;
	double seconds; /* reading, hashing and writing, wall clock */
	double cpu_seconds; /* the same, CPU time of every thread that took part */
	unsigned threads;
};

/* Bytes the root's tmpfs needs for the bundle's files (rounded to pages). */
uint64_t tp_sealed_reserve(const struct tp_bundle_file *bf);

/* Writes every file (bundled ones from the bundle, system ones from their path on
 * this host) into the directory root_fd, two threads, largest files first,
 * stopping early when stop() says so (a timeout). On a mismatch returns -EBADMSG
 * with one line in err naming the file, the expected and the actual hash; a
 * missing or resized file is named too. */
int tp_sealed_fill(const struct tp_bundle_file *bf, int root_fd, struct tp_sealed *out, char *err,
		   size_t err_size, bool (*stop)(void));

#endif
