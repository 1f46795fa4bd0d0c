/* Memory and thread limits: a cgroup under the caller's own (v2, else v1), else rlimits. */
#ifndef TEEPY_SANDBOX_LIMITS_H
#define TEEPY_SANDBOX_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum tp_limit_mechanism { TP_LIMIT_RLIMIT, TP_LIMIT_CGROUP_V1, TP_LIMIT_CGROUP_V2 };

struct tp_limits {
	uint64_t memory_bytes;
	unsigned threads;
	/* filled by tp_limits_prepare: */
	enum tp_limit_mechanism memory_mechanism;
	enum tp_limit_mechanism threads_mechanism;
	char memory_dir[512]; /* cgroup directory, empty if none */
	char pids_dir[512];
};

/* Creates the cgroups (where the caller may) before the service starts. Never fails:
 * what cannot be made falls back to rlimits, which the child applies. */
void tp_limits_prepare(struct tp_limits *limits);

/* Moves pid into the prepared cgroups. Returns 0 or -errno. */
int tp_limits_attach(const struct tp_limits *limits, pid_t pid);

/* In the child before exec: rlimits for what no cgroup covers, and RLIMIT_CPU. */
int tp_limits_apply_rlimits(const struct tp_limits *limits, uint64_t cpu_ms);

/* After the run: did the memory cgroup kill for lack of memory; peak use in bytes (0 if unknown). */
bool tp_limits_oom_killed(const struct tp_limits *limits);
uint64_t tp_limits_peak_memory(const struct tp_limits *limits);

/* Removes the cgroups (retrying briefly while the kernel lets go of the tasks). */
void tp_limits_cleanup(struct tp_limits *limits);

const char *tp_limit_mechanism_name(enum tp_limit_mechanism m, bool memory);

#endif
