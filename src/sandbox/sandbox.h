/* Starting the service process: namespaces, root, limits, Landlock, seccomp, exec. */
#ifndef TEEPY_SANDBOX_SANDBOX_H
#define TEEPY_SANDBOX_SANDBOX_H

#include "limits.h"
#include "root.h"
#include "seccomp.h"

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* The ids the service has inside its user namespace: the caller's own, but for
 * root, whose service is an ordinary user (1000). A process that sees euid 0 acts
 * as root: tarfile, say, then restores every member's owner, which fails without
 * capabilities (teepy drops them all), and skips the modes and times after it. */
#define TP_ROOT_SERVICE_ID 1000u
/* ... and on the host, root's service is nobody (65534): the id Debian keeps for
 * "no one", which owns no file (Debian policy 9.2.2) and so has only the "other"
 * bits of any host file it could reach; the kernel already shows every unmapped id
 * as 65534. An id no one uses is not something teepy can know on every host. */
#define TP_ROOT_SERVICE_HOST_ID 65534u
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
	const char *const *write_dirs;	      /* inside the root (Landlock's), or NULL */
	const struct tp_limits_state *limits; /* prepared by tp_limits_prepare */
	const struct tp_cgroup_join *join;    /* opened by tp_limits_open_join */
	const struct tp_bpf *stage1;
	int reaper_fd;	       /* teepy-reaper (O_PATH), which pid 1 executes */
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
	/* while tp_sandbox_spawn waits for a child on our memory: the run's wall clock
	 * (CLOCK_MONOTONIC) and the caller's cancel descriptor (-1: none); either ends
	 * the child (sb->stopped says which) */
	const struct timespec *deadline;
	int cancel_fd;
};

struct spawn_area;

struct tp_sandbox {
	pid_t pid;	    /* the reaper: pid 1 of the service's namespace */
	pid_t service_pid;  /* the service, the reaper's child (tp_sandbox_find_service) */
	int status_fd;	    /* the reaper's one report, as it ends */
	int ctrl_fd;	    /* our end of the control channel */
	int out_fd;	    /* the service's stdout and stderr, merged */
	int err_fd;	    /* setup errors of the child; closes when it execs */
	int ready_fd;	    /* sealed root: the child writes a byte here in its empty root */
	int go_fd;	    /* sealed root: a byte here lets the child go on */
	int root_fd;	    /* sealed root: the child's, once ready (or -errno) */
	bool shares_memory; /* the child runs on our memory until it has exec'd */
	bool setup_failed;  /* the child reported a setup failure: setup_err */
	enum { TP_SANDBOX_RAN, TP_SANDBOX_TIMED_OUT, TP_SANDBOX_CANCELLED } stopped;
	char setup_err[512];
	struct spawn_area *area;	 /* the child's arguments and stacks */
	const struct timespec *deadline; /* cfg's, for a child on our memory */
	int cancel_fd;
};

/* Starts the service: namespaces, cgroups (the supervisor moves the child into them
 * before it may go on, unless clone3 placed it), id maps, then the child builds its
 * root, starts the service, which execs the interpreter, and executes teepy-reaper
 * (cfg->reaper_fd); the caller waits with tp_sandbox_wait_exec. Where the child
 * shares our memory (sb->shares_memory: not traced, not an AddressSanitizer build)
 * this returns only when the reaper has exec'd (or the child failed, or was killed
 * at cfg->deadline or a cancel: sb->stopped), or, with filled_from_outside, when it
 * waits in its empty root; tp_sandbox_go then returns at the exec. On failure
 * returns -errno and writes one line into err. Between clone and exec the child
 * formats messages and cfg->mark lines with stdio: a copy of a lock another thread
 * held at the clone would deadlock it, so a child that does not share our memory
 * needs a caller with one thread. */
int tp_sandbox_spawn(const struct tp_sandbox_config *cfg, struct tp_sandbox *sb, char *err,
		     size_t err_size);

/* After the reaper has been waited for (or after a failed spawn, which cleans up
 * itself): every descriptor closed, the child's stacks freed. */
void tp_sandbox_close(struct tp_sandbox *sb);

/* Sealed root: waits until the child stands in its empty root, and returns an
 * O_PATH descriptor of that root (through /proc/PID/root) to write files into.
 * On failure returns -errno with the child's line (if any) in err. */
int tp_sandbox_wait_ready(struct tp_sandbox *sb, char *err, size_t err_size);

/* Sealed root: the files are in place, the child goes on. */
int tp_sandbox_go(struct tp_sandbox *sb);

/* Waits until the child has exec'd the interpreter or reported a setup failure
 * (then returns -EPERM with the child's line in err). */
int tp_sandbox_wait_exec(struct tp_sandbox *sb, char *err, size_t err_size);

/* The reaper's clock runs out this long after the run's timeout: teepy's own watch
 * ends a run on time and says so; the reaper's is for a teepy that cannot. */
#define TP_REAPER_GRACE_MS 1000u

/* The service's host pid, once it exists (after tp_sandbox_wait_exec); 0 if it has
 * ended already (or the reaper has), -ENOSYS if the kernel cannot say
 * (/proc/PID/task/TID/children is CONFIG_PROC_CHILDREN). */
pid_t tp_sandbox_find_service(struct tp_sandbox *sb);

enum tp_sandbox_end {
	TP_SANDBOX_END_SERVICE,	      /* the service ended: *wait_status is its status */
	TP_SANDBOX_END_KILLED,	      /* the reaper was killed (by teepy, or the OOM killer) */
	TP_SANDBOX_END_DEADLINE,      /* the reaper's own clock ended the run */
	TP_SANDBOX_END_REAPER_FAILED, /* the reaper could not set itself up */
};

/* After the reaper has been waited for: how the run ended, from its report. */
enum tp_sandbox_end tp_sandbox_reaped(struct tp_sandbox *sb, int *wait_status);

#endif
