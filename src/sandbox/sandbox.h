/* Starting the service process: namespaces, root, limits, Landlock, seccomp, exec. */
#ifndef TEEPY_SANDBOX_SANDBOX_H
#define TEEPY_SANDBOX_SANDBOX_H

#include "limits.h"
#include "root.h"
#include "seccomp.h"

#include <sys/types.h>

struct tp_sandbox_config {
	const char *interpreter;        /* path inside the root (same as the host's) */
	const char *const *argv;        /* for the interpreter */
	const char *const *envp;        /* the whole environment inside */
	const char *const *exec_files;  /* Landlock: what may be executed (interpreter, loader) */
	const struct tp_root_plan *root;
	const char *cwd;                /* inside the root */
	const char *scratch_dir;        /* inside the root, or NULL */
	const struct tp_limits *limits; /* prepared by tp_limits_prepare */
	uint64_t cpu_ms;
	const struct tp_bpf *stage1;
	bool trace; /* teepy build: the caller traces the child (see trace/trace.h) */
};

struct tp_sandbox {
	pid_t pid;
	int ctrl_fd; /* our end of the control channel */
	int out_fd;  /* the service's stdout and stderr, merged */
	int err_fd;  /* setup errors of the child; closes when it execs */
};

/* Starts the service: namespaces, id maps, then the child builds its root and execs
 * the interpreter on its own. The caller may meanwhile move it into cgroups (see
 * run.c), then waits with tp_sandbox_wait_exec. On failure returns -errno and
 * writes one line into err. */
int tp_sandbox_spawn(const struct tp_sandbox_config *cfg, struct tp_sandbox *sb, char *err,
		     size_t err_size);

/* Waits until the child has exec'd the interpreter or reported a setup failure
 * (then returns -EPERM with the child's line in err). */
int tp_sandbox_wait_exec(struct tp_sandbox *sb, char *err, size_t err_size);

#endif
