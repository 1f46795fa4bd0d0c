/* Landlock: reads only of the trees the root shows, no writes anywhere but the scratch
 * and output directories, exec only of the interpreter. */
#ifndef TEEPY_SANDBOX_LANDLOCK_H
#define TEEPY_SANDBOX_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>

/* The ABI the running kernel offers: > 0, or -ENOSYS (not built in), -EOPNOTSUPP
 * (disabled at boot). */
int tp_landlock_abi(void);

struct tp_landlock_paths {
	const char *const *exec_files;	/* files that may be executed (interpreter, loader) */
	const char *const *write_files; /* files that may be written (/dev/null) */
	/* what may be read: each a file, or a directory with everything beneath it as the
	 * path walk reaches it. Nothing else is: a file reached another way (a handed
	 * descriptor of a host directory) lies outside every one. */
	const char *const *read_trees;
	size_t read_count;
	/* directories with every read and write right but exec (scratch, /out),
	 * NULL-terminated, or NULL */
	const char *const *write_dirs;
};

/* Restricts the calling thread (no_new_privs must be set). Makes no allocation: it
 * runs in the child between clone and exec. Returns the ABI applied (>= 1) or
 * -errno. */
int tp_landlock_apply(const struct tp_landlock_paths *paths);

/* Words describing what an ABI lets teepy restrict, for --print-config. */
const char *tp_landlock_describe(int abi);

#endif
