/* The manifest: what a sealed service is (entry, argv, env, paths, limits, policy)
 * and every file it may see, with hashes. Canonical JSON codec and the app
 * measurement. Pure: no OS calls. */
#ifndef TEEPY_MANIFEST_MANIFEST_H
#define TEEPY_MANIFEST_MANIFEST_H

#include "../common/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_MANIFEST_FORMAT 1
#define TP_APP_DIR	   "/app" /* where the app's own files are inside the root */

enum tp_processes { TP_PROCESSES_NONE, TP_PROCESSES_MANIFEST };

struct tp_manifest_file {
	char *path; /* absolute, normalized, inside the root */
	uint8_t sha256[32];
	uint64_t size;	 /* bytes */
	uint32_t mode;	 /* permission bits */
	bool bundled;	 /* content travels in the bundle; else a host file at `path` */
	uint64_t mtime;	 /* system files: seconds, kept so CPython's timestamp-checked
			  * .pyc caches stay valid; 0 for bundled files (reproducible) */
	uint64_t offset; /* in the blob area, computed from the bundled files before it */
};

struct tp_strlist {
	char **items;
	size_t count;
};

struct tp_manifest {
	char *entry;		/* inside the root */
	struct tp_strlist argv; /* sys.argv[1:] */
	struct tp_strlist env;	/* NAME=VALUE, sorted by name */
	struct tp_strlist python_path;
	struct tp_strlist preload;
	struct tp_limits limits; /* scratch_bytes is "policy.scratch" in the JSON */
	enum tp_processes processes;
	struct tp_manifest_file *files; /* sorted by path, unique */
	size_t file_count;
};

/* Canonical JSON: sorted keys, no insignificant space, UTF-8. malloc'd, NUL-terminated.
 * Returns 0, -EILSEQ if a path, argument, env entry or module name is not UTF-8,
 * -ENAMETOOLONG for an env name of 256 bytes or more, or -ENOMEM. */
int tp_manifest_to_json(const struct tp_manifest *m, char **out, size_t *size);

/* Parses and validates; the bytes must be exactly the canonical form. On error
 * returns -EINVAL with one line in err. */
int tp_manifest_from_json(const char *json, size_t size, struct tp_manifest *m, char *err,
			  size_t err_size);

void tp_manifest_free(struct tp_manifest *m);

/* Sorts the file table and computes offsets; fails on a duplicate path. */
int tp_manifest_finish(struct tp_manifest *m, char *err, size_t err_size);

/* Total bytes of bundled file contents. */
uint64_t tp_manifest_blob_size(const struct tp_manifest *m);

/* The `app` measurement: SHA-256 over a domain tag and the canonical manifest. */
void tp_manifest_measure(const char *canonical, size_t size, uint8_t out[32]);

int tp_strlist_push(struct tp_strlist *l, const char *s);
void tp_strlist_free(struct tp_strlist *l);

/* True for "/a/b": absolute, no empty, "." or ".." component, no trailing slash, no
 * control character (below 0x20, or 0x7f). */
bool tp_path_is_normal(const char *path);

/* s made safe to print on a terminal: every byte outside printable ASCII as \xNN,
 * a backslash doubled; cut with "..." to fit size bytes. Returns out. */
const char *tp_escape(const char *s, char *out, size_t size);

/* True if s holds a control character (below 0x20, or 0x7f). */
bool tp_has_control(const char *s);

/* True for a module name import takes: dotted ASCII identifiers ("numpy.linalg"). */
bool tp_module_name_ok(const char *name);

#endif
