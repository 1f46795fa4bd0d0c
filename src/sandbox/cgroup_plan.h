/* Choices about cgroups made from text the kernel gives (/proc/self/cgroup,
 * cgroup.controllers, *.stat files): pure functions, no OS calls, unit-tested. */
#ifndef TEEPY_SANDBOX_CGROUP_PLAN_H
#define TEEPY_SANDBOX_CGROUP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The caller's cgroup path for controller ("memory", "pids", …) in the text of
 * /proc/self/cgroup; controller "" means the cgroup v2 line ("0::/path").
 * Returns 0, -ENOENT when no line names it, or -ENAMETOOLONG. */
int tp_cgroup_own_path(const char *proc_self_cgroup, const char *controller, char *path,
		       size_t size);

/* Whether a controller list (cgroup.controllers, cgroup.subtree_control: words
 * separated by spaces, maybe a newline) names word. */
bool tp_cgroup_list_has(const char *list, const char *word);

enum tp_cgroup_v2_place {
	TP_CGROUP_V2_NONE,  /* no v2 cgroup with a memory controller can be made */
	TP_CGROUP_V2_OWN,   /* under the caller's own cgroup, which delegates memory */
	TP_CGROUP_V2_TEEPY, /* root only: under <mount>/teepy, enabling controllers on the way */
};

/* Where a run's v2 cgroup goes. A caller on a systemd host usually sits in a leaf
 * (a session scope or a service) that holds processes, so the kernel's
 * no-internal-processes rule keeps it from delegating controllers: root then uses
 * a `teepy` cgroup under the v2 root, where controllers can always be enabled. */
struct tp_cgroup_v2_plan {
	enum tp_cgroup_v2_place place;
	char parent[512]; /* the run's cgroup is made in here */
	/* TP_CGROUP_V2_TEEPY: write this to <mount>/cgroup.subtree_control, make
	 * parent, then write it to parent/cgroup.subtree_control */
	char enable[32];
	bool pids; /* pids.max will exist in the run's cgroup */
};

/* mount: the v2 mount point; own: the caller's v2 path from /proc/self/cgroup;
 * own_subtree: <mount><own>/cgroup.subtree_control ("" if unreadable);
 * root_controllers: <mount>/cgroup.controllers ("" if unreadable);
 * privileged: may write the v2 root's files (euid 0). */
void tp_cgroup_v2_choose(const char *mount, const char *own, const char *own_subtree,
			 const char *root_controllers, bool privileged,
			 struct tp_cgroup_v2_plan *plan);

/* The supervisor pid in a run's cgroup name ("teepy-<pid>-<suffix>"), or 0 for
 * any other name. */
pid_t tp_cgroup_run_owner(const char *name);

/* The value of key in "key value" lines (memory.events, memory.oom_control,
 * cpu.stat). Returns 0, or -ENOENT. */
int tp_cgroup_stat_value(const char *text, const char *key, uint64_t *value);

#endif
