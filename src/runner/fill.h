/* Filling a sealed root: every manifest file read once, in chunks, each chunk hashed
 * and written into the service's root; the digest over exactly the bytes written
 * must match the manifest. Where the bytes come from is a file source: a host file,
 * or a bundle's blob. An encrypted blob (a protected file) is decrypted instead,
 * chunk by chunk, each chunk's GCM tag checked before it is written. */
#ifndef TEEPY_RUNNER_FILL_H
#define TEEPY_RUNNER_FILL_H

#include "../manifest/manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A file being read, for one thread at a time. */
struct tp_source_file {
	int fd;
	uint64_t base; /* where the file's bytes start in fd */
	bool owned;    /* fd is closed by close */
};

/* Where a manifest file's bytes come from. open checks what it can before the
 * copy (a host file's type and size) and on a refusal writes one line into err
 * naming the file and returns -EBADMSG, or another -errno; read is pread-like. */
struct tp_file_source {
	int (*open)(void *ctx, const struct tp_manifest_file *f, struct tp_source_file *out,
		    char *err, size_t err_size);
	ssize_t (*read)(void *ctx, const struct tp_source_file *sf, void *buf, size_t size,
			uint64_t offset);
	void (*close)(void *ctx, struct tp_source_file *sf);
	void *ctx;
	/* a bundle's blobs: the key its encrypted files are sealed with (protected files,
	 * pfs/pfs.h; TP_PFS_KEY_SIZE bytes), NULL when there is none */
	const uint8_t *key;
};

/* A system file at its own path on this host. may_take (NULL: any file) says
 * whether a file whose real path, every link resolved, is PATH may be taken; one
 * that may not is refused before it is opened for reading. */
struct tp_host_source_ctx {
	bool (*may_take)(const void *may_take_ctx, const char *path);
	const void *may_take_ctx;
};
struct tp_file_source tp_host_source(const struct tp_host_source_ctx *ctx);

/* The blob of a bundled file: bundle_fd, at blob_offset + the file's offset; an
 * encrypted one is opened with key (NULL: it is refused). */
struct tp_blob_source_ctx {
	int bundle_fd;
	uint64_t blob_offset;
	const uint8_t *key;
};
struct tp_file_source tp_blob_source(struct tp_blob_source_ctx *ctx);

struct tp_fill_stats {
	size_t count; /* files written */
	uint64_t bytes;
	double seconds;	    /* reading, hashing and writing, wall clock */
	double cpu_seconds; /* the same, CPU time of every thread that took part */
	unsigned threads;
};

/* Bytes the root's tmpfs needs for the manifest's files (rounded to pages). */
uint64_t tp_fill_reserve(const struct tp_manifest *m);

/* Writes every file of m into the directory root_fd, bundled ones from `bundled`
 * and the others from `system`, two threads, largest files first, stopping early
 * when stop(stop_ctx) says so. On a refusal (a file missing, unreadable, not a
 * regular file, of other content, or leading where it may not) returns -EBADMSG
 * with one line in err naming the file and what is wrong, with what the manifest
 * expects but never what the host's file holds (its size or hash); -ENOTRECOVERABLE
 * when the host failed instead (memory, OpenSSL), the line saying so. */
int tp_fill_root(const struct tp_manifest *m, const struct tp_file_source *bundled,
		 const struct tp_file_source *system, int root_fd, struct tp_fill_stats *out,
		 char *err, size_t err_size, bool (*stop)(void *stop_ctx), void *stop_ctx);
/* With root_fd -1 the files are read and hashed, nothing is written; with system
 * NULL only the bundled files are (the blobs of a bundle whose verified root is
 * cached, runner/cache.c). */

#endif
