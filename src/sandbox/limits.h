/* Memory, thread, descriptor and CPU-time limits: a cgroup (v2, else v1) where teepy
 * can make one, else rlimits, which are weaker and say so. */
#ifndef TEEPY_SANDBOX_LIMITS_H
#define TEEPY_SANDBOX_LIMITS_H

/* The service's reaper (pid 1 of its namespace) is one more task in its cgroup and
 * for its uid: the thread cap counts the service's alone. */
#define TP_REAPER_TASKS 1u

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../common/limits.h"

/* The interpreter with one thread needs this much (under RLIMIT_AS a thread's 8 MiB
 * default stack counts): smaller memory limits are refused before the run. */
#define TP_LIMITS_MIN_MEMORY (32ULL << 20)

/* Descriptors of each process where a cgroup counts the kernel's memory for them;
 * without one, one per 2 MiB of the limit, from 32 to this. */
#define TP_LIMITS_NOFILE 1024u

enum tp_limit_mechanism {
	TP_LIMIT_NONE,	 /* not enforced: --print-config and a warning say so */
	TP_LIMIT_RLIMIT, /* per process: RLIMIT_AS, RLIMIT_NPROC */
	TP_LIMIT_CLOCK,	 /* CPU: the service process's own CPU clock, watched by teepy */
	TP_LIMIT_CGROUP_V1,
	TP_LIMIT_CGROUP_V2,
};

struct tp_limits_state {
	/* set by the caller: memory_bytes is what the service may hold (the limit less
	 * a sealed root's files), scratch_bytes its scratch tmpfs (a cgroup counts it,
	 * RLIMIT_AS does not); the wall clock is the runner's */
	struct tp_limits set;
	bool processes; /* the service may start processes */

	/* filled by tp_limits_prepare */
	enum tp_limit_mechanism memory_mechanism, threads_mechanism, cpu_mechanism;
	bool swap_counted;    /* v1 memsw or v2 swap.max 0 was set */
	unsigned nofile;      /* RLIMIT_NOFILE of each process */
	char memory_dir[512]; /* cgroup directories, "" if none (v2: one for all) */
	char pids_dir[512];
	char cpu_dir[512];
	char v2_parent[512]; /* <v2 mount>/teepy if the run's cgroup is in it */
};

/* Creates the cgroups (where the caller may) before the service starts, first
 * removing those that dead teepy runs left behind. Never fails: what cannot be
 * made falls back to rlimits, which the child applies. */
void tp_limits_prepare(struct tp_limits_state *limits);

/* What RLIMIT_AS is set to when no memory cgroup holds the memory limit. */
uint64_t tp_limits_address_space(const struct tp_limits_state *limits);

/* How the service enters its cgroups without the supervisor moving it: a move by
 * another process takes the kernel's global threadgroup lock, whose first writer
 * waits for an RCU grace period (1-12 ms measured on v1, on every start that did
 * not follow another closely). A v1 task that writes "0" to its cgroup's `tasks`
 * file moves only itself and takes no such lock (measured: 0.1 ms); on v2 the
 * child is cloned straight into its cgroup (clone3 CLONE_INTO_CGROUP). The
 * descriptors are opened by the supervisor, whose credentials the kernel checks. */
struct tp_cgroup_join {
	int tasks_fds[3]; /* v1: the `tasks` file of each cgroup, -1 if none */
	int v2_dir_fd;	  /* v2: the run's cgroup directory, -1 if none */
	int v2_procs_fd;  /* v2 without clone3 (a container's filter): its cgroup.procs */
};

/* Opens what tp_limits_join and CLONE_INTO_CGROUP use (every descriptor
 * close-on-exec). Returns 0 or -errno, with j closed. */
int tp_limits_open_join(const struct tp_limits_state *limits, struct tp_cgroup_join *j);
void tp_limits_close_join(struct tp_cgroup_join *j);

/* In the supervisor, while the new child (single-threaded, waiting for its go) cannot
 * yet run anything of the service: moves it into the v1 cgroups (and the v2 one when
 * clone3 could not place it there: in_v2 false). Returns 0 or -errno; *failed names
 * the cgroup file that refused. */
int tp_limits_join(const struct tp_cgroup_join *j, pid_t child, bool in_v2, const char **failed);

/* In the child before exec: RLIMIT_CPU (a backstop a second past the limit that
 * teepy watches), RLIMIT_CORE 0, RLIMIT_NOFILE, and RLIMIT_AS / RLIMIT_NPROC for
 * what no cgroup covers. Returns 0 or -errno. */
int tp_limits_apply_rlimits(const struct tp_limits_state *limits);

/* In the child after no_new_privs, without a memory cgroup only: a seccomp filter
 * stacked on the policy refuses what would hold memory RLIMIT_AS cannot see
 * (memfd_create, larger socket and pipe buffers). Returns 0 or -errno. */
int tp_limits_apply_filter(const struct tp_limits_state *limits);

/* CPU time the service has used, in nanoseconds: its cgroup's, else the CPU clock
 * of pid (its first process; 0 = reaped, then 0 is returned). */
uint64_t tp_limits_cpu_used_ns(const struct tp_limits_state *limits, pid_t pid);

/* After the run: did the memory cgroup kill for lack of memory; peak use in bytes (0 if unknown).
 */
bool tp_limits_oom_killed(const struct tp_limits_state *limits);
uint64_t tp_limits_peak_memory(const struct tp_limits_state *limits);

/* Removes the cgroups (retrying briefly while the kernel lets go of the tasks). */
void tp_limits_cleanup(struct tp_limits_state *limits);

/* --print-config's memory, descriptors, threads and cpu time lines, exactly what
 * each mechanism holds. limit_bytes: the memory limit; root_bytes: what the
 * sealed root's files take of it. */
void tp_limits_print(const struct tp_limits_state *limits, uint64_t limit_bytes,
		     uint64_t root_bytes, FILE *out);

/* One line (without "teepy: warning: ") naming the limits that hold less than a
 * cgroup would; false when every limit has a cgroup. */
bool tp_limits_weaker(const struct tp_limits_state *limits, char *line, size_t size);

#endif
