/* The tracer of `teepy build`: runs the app once under ptrace and records every file
 * it opens and every program it executes, so the manifest can list them (SGXPy).
 *
 * The child installs tp_trace_filter_install(), which stops it (SECCOMP_RET_TRACE)
 * only at open, openat, openat2, creat, execve and execveat; every other system call
 * runs at full speed. The supervisor seizes the child right after clone and runs
 * tp_trace_run() until it ends.
 *
 * Threads: ptrace requests are only accepted from the thread that seized, so
 * tp_trace_seize and tp_trace_run must be called from the same thread, and no other
 * thread of the process may wait for children meanwhile. tp_trace_run waits with
 * wait4(-1, __WALL): it would also reap any other child of the process, so the
 * traced child should be the only one.
 *
 * What is recorded is what the app asked for, read from its registers and memory at
 * the call's seccomp stop, but only once the call has succeeded: the tracee is then
 * let run to the call's syscall-exit stop (an exec: to its exec event), whose return
 * value decides. A file that does not exist, or that the app may not open, is never
 * recorded. Paths are as the tracee sees them (its root and cwd). This is a measuring
 * tool for the app's own developer, not a security boundary: a thread of the tracee
 * can change a path between our read and the kernel's. x86-64 only. */
#ifndef TEEPY_TRACE_TRACE_H
#define TEEPY_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

enum tp_trace_kind {
	TP_TRACE_OPEN, /* open, openat, openat2, creat */
	TP_TRACE_EXEC, /* execve, execveat, and the file the kernel ended up executing */
};

/* The records of one run: (kind, path) pairs, each at most once. */
struct tp_trace_log {
	size_t count;
	enum tp_trace_kind *kinds; /* [count] */
	char **paths;		   /* [count], absolute, lexically normalized; owned by the log */
	size_t missed;		   /* successful calls whose path could not be read or stored */

	/* private: capacity and the deduplication index */
	size_t cap;
	size_t *index; /* open addressing: record number + 1, 0 = empty */
	size_t index_size;
};

void tp_trace_log_init(struct tp_trace_log *log);
void tp_trace_log_free(struct tp_trace_log *log);

/* Adds (kind, path) unless it is there already; path is copied. Returns 0 or -ENOMEM. */
int tp_trace_log_add(struct tp_trace_log *log, enum tp_trace_kind kind, const char *path);

bool tp_trace_log_has(const struct tp_trace_log *log, enum tp_trace_kind kind, const char *path);

/* Orders the records by path, then kind (a manifest is sorted by path). */
void tp_trace_log_sort(struct tp_trace_log *log);

/* The interpreter a "#!" script names, as the kernel reads it (binfmt_script): head
 * is the file's first bytes (at most 256 are looked at). The kernel opens that
 * interpreter itself, so no traced call names it. Returns 0 with the absolute path
 * in out, or -ENOEXEC when head is not such a script (or names a relative path). */
int tp_trace_script_interpreter(const char *head, size_t size, char *out, size_t out_size);

/* In the child: installs the tracing filter on the calling thread (its later threads
 * and children inherit it). no_new_privs must be set. Without a tracer attached the
 * traced calls would fail with ENOSYS, so seize first. Returns 0 or -errno. */
int tp_trace_filter_install(void);

/* In the supervisor, right after clone and before the child runs anything: attaches
 * (PTRACE_SEIZE) with threads, forks, vforks, execs and seccomp stops followed, and
 * the tracee killed if the tracer dies. Returns 0 or -errno. */
int tp_trace_seize(pid_t pid);

/* The tracer loop: serves every stop of every tracee until PID itself ends, then
 * returns 0 with its wait status and resource usage (ru may be NULL). PID is
 * reaped. EINTR is retried: a caller with a deadline kills PID (SIGKILL) from a
 * signal handler or another thread and the loop sees the exit.
 *
 * A record is missed (log->missed counts it) when a call succeeded but its path
 * could not be read or stored: an unprivileged tracer may not read a tracee that
 * made itself non-dumpable (PR_SET_DUMPABLE 0, as the sandbox does before its exec)
 * until that tracee execs, because the mm still belongs to the caller's user
 * namespace. Such an exec is not counted: the file it ended up running is recorded
 * from /proc/PID/exe after the exec, which always works.
 *
 * Processes that outlive PID stay traced: if PID is not the init of its own pid
 * namespace (the sandbox's child is), they stop at their next traced call and
 * PTRACE_O_EXITKILL ends them when the caller exits. Returns -errno only if
 * waiting failed before PID was reaped (e.g. -ECHILD).
 *
 * TP_TRACE_PID_IS_REAPER: PID is the init of the tracees' pid namespace, which the
 * kernel guards from every signal sent from inside when untraced; traced, a signal
 * would reach the tracer first and be delivered: so none is delivered to PID. */
#define TP_TRACE_PID_IS_REAPER 1u
int tp_trace_run(pid_t pid, unsigned flags, struct tp_trace_log *log, int *status,
		 struct rusage *ru);

#endif
