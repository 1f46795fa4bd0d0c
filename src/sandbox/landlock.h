/* Landlock: no writes anywhere but the scratch directory, exec only of the interpreter. */
#ifndef TEEPY_SANDBOX_LANDLOCK_H
#define TEEPY_SANDBOX_LANDLOCK_H

#include <stdbool.h>

/* The ABI the running kernel offers: > 0, or -ENOSYS (not built in), -EOPNOTSUPP
 * (disabled at boot). */
int tp_landlock_abi(void);

struct tp_landlock_paths {
	const char *const *exec_files;	/* files that may be executed (interpreter, loader) */
	const char *const *write_files; /* files that may be written (/dev/null) */
	const char *scratch_dir;	/* directory with every write right, or NULL */
};

/* Restricts the calling thread (no_new_privs must be set). Returns the ABI applied
 * (>= 1) or -errno. */
int tp_landlock_apply(const struct tp_landlock_paths *paths);

/* Words describing what an ABI lets teepy restrict, for --print-config. */
const char *tp_landlock_describe(int abi);

#endif
