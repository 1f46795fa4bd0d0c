/* Starting the service process: namespaces, root, limits, Landlock, seccomp, exec. */
#ifndef TEEPY_SANDBOX_SANDBOX_H
#define TEEPY_SANDBOX_SANDBOX_H

#include "limits.h"
#include "root.h"
#include "seccomp.h"

#include <sys/types.h>

/* The ids the service has inside its user namespace: the caller's own, but for
 * root, whose service is an ordinary user (1000). A process that sees euid 0 acts
 * as root: tarfile, say, then restores every member's owner, which fails without
 * capabilities (teepy drops them all), and skips the modes and times after it. */
#define TP_ROOT_SERVICE_ID 1000u
unsigned tp_sandbox_service_uid(void);
unsigned tp_sandbox_service_gid(void);

#define TP_SANDBOX_MAX_HANDED 16

/* How a tracer takes the child: the child installs child_filter last before its exec
 * (so stages 1 and 2 still hold), the supervisor seizes it right after the clone.
 * Each returns 0 or -errno. */
struct tp_sandbox_tracer {
	int (*child_filter)(void);
	int (*seize)(pid_t pid);
};

struct tp_sandbox_config {
	const char *interpreter;       /* path inside the root (same as the host's) */
	const char *const *argv;       /* for the interpreter */
	const char *const *envp;       /* the whole environment inside */
	const char *const *exec_files; /* Landlock: what may be executed (interpreter, loader) */
	const char *const *read_trees; /* Landlock: what may be read (tp_landlock_paths) */
	size_t read_count;
	const struct tp_root_plan *root;
	const char *cwd;		      /* inside the root */
	const char *scratch_dir;	      /* inside the root, or NULL */
	const struct tp_limits_state *limits; /* prepared by tp_limits_prepare */
	const struct tp_cgroup_join *join;    /* opened by tp_limits_open_join */
	const struct tp_bpf *stage1;
	const int *handed_fds; /* the service gets these at fd 4, 5, ... (at most
				* TP_SANDBOX_MAX_HANDED) */
	size_t handed_count;
	/* teepy build: the caller traces the child (trace/trace.h), NULL: not traced */
	const struct tp_sandbox_tracer *tracer;
	/* sealed root: the child stops in its empty root until the supervisor has
	 * written the verified files into it (tp_sandbox_wait_ready / tp_sandbox_go) */
	bool filled_from_outside;
	/* TEEPY_TIMING: called with a phase name at each step of the child, on its
	 * inherited stderr, until the child's fds are set up (NULL: off) */
	void (*mark)(const char *phase);
};

struct tp_sandbox {
	pid_t pid;
	int ctrl_fd;  /* our end of the control channel */
	int out_fd;   /* the service's stdout and stderr, merged */
	int err_fd;   /* setup errors of the child; closes when it execs */
	int ready_fd; /* sealed root: the child writes a byte here in its empty root */
	int go_fd;    /* sealed root: a byte here lets the child go on */
};

/* Starts the service: namespaces and cgroups (the child joins them itself before
 * anything else), id maps, then the child builds its root and execs the
 * interpreter on its own; the caller waits with tp_sandbox_wait_exec. On failure
 * returns -errno and writes one line into err. Call it while the process has one
 * thread: between clone and exec the child formats messages and cfg->mark lines
 * with stdio, which a lock held by another thread at the clone would deadlock. */
int tp_sandbox_spawn(const struct tp_sandbox_config *cfg, struct tp_sandbox *sb, char *err,
		     size_t err_size);

/* Sealed root: waits until the child stands in its empty root, and returns an
 * O_PATH descriptor of that root (through /proc/PID/root) to write files into.
 * On failure returns -errno with the child's line (if any) in err. */
int tp_sandbox_wait_ready(struct tp_sandbox *sb, char *err, size_t err_size);

/* Sealed root: the files are in place, the child goes on. */
int tp_sandbox_go(struct tp_sandbox *sb);

/* Waits until the child has exec'd the interpreter or reported a setup failure
 * (then returns -EPERM with the child's line in err). */
int tp_sandbox_wait_exec(struct tp_sandbox *sb, char *err, size_t err_size);

#endif
