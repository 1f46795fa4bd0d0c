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
	TP_CGROUP_V2_NONE,     /* no v2 cgroup with a memory controller can be made */
	TP_CGROUP_V2_OWN,      /* under the caller's own cgroup, which delegates memory */
	TP_CGROUP_V2_ANCESTOR, /* a user: under an ancestor delegated to it (memory on) */
	TP_CGROUP_V2_TEEPY,    /* root only: under <mount>/teepy, enabling controllers on the way */
};

/* Where a run's v2 cgroup goes. A caller on a systemd host usually sits in a leaf
 * (a session scope or a service) that holds processes, so the kernel's
 * no-internal-processes rule keeps it from delegating controllers: root then uses
 * a `teepy` cgroup under the v2 root, where controllers can always be enabled. A
 * user uses the nearest ancestor delegated to it (systemd's user@.service subtree,
 * for what the user's manager starts): one with memory on holds no process of its
 * own, so a child can be made there, and being the common ancestor of the user's
 * cgroup and the child, its cgroup.procs is the one the kernel checks (with the
 * child's) when the service moves in. */
struct tp_cgroup_v2_plan {
	enum tp_cgroup_v2_place place;
	char parent[512]; /* the run's cgroup is made in here */
	/* TP_CGROUP_V2_TEEPY: write this to <mount>/cgroup.subtree_control, make
	 * parent, then write it to parent/cgroup.subtree_control */
	char enable[32];
	bool pids; /* pids.max will exist in the run's cgroup */
};

/* How far up a user's delegated ancestor is looked for. */
#define TP_CGROUP_V2_MAX_UP 8

/* mount: the v2 mount point; own: the caller's v2 path from /proc/self/cgroup;
 * own_subtree: <mount><own>/cgroup.subtree_control ("" if unreadable);
 * up: the cgroup.subtree_control of own's ancestors, nearest first, as far as the
 * caller may make cgroups in them and write their cgroup.procs (up_count of them,
 * at most TP_CGROUP_V2_MAX_UP; root's are not looked at);
 * root_controllers: <mount>/cgroup.controllers ("" if unreadable);
 * privileged: may write the v2 root's files (euid 0). */
void tp_cgroup_v2_choose(const char *mount, const char *own, const char *own_subtree,
			 const char *const *up, size_t up_count, const char *root_controllers,
			 bool privileged, struct tp_cgroup_v2_plan *plan);

/* The parent of a cgroup path ("/a/b" has "/a", "/a" has "/"). Returns 0, -ENOENT
 * for "/" (or a path not starting with '/'), or -ENAMETOOLONG. parent may be path. */
int tp_cgroup_parent_path(const char *path, char *parent, size_t size);

/* Who made a run's cgroup: the supervisor's pid and start time, so that a pid the
 * kernel gave again to another process does not keep a dead run's cgroup alive. */
struct tp_cgroup_owner {
	pid_t pid;
	bool has_start; /* false: a name of an older teepy, which held the pid only */
	uint64_t start; /* field 22 of /proc/<pid>/stat: clock ticks after boot */
	/* The namespaces pid and start mean something in: the inodes of the owner's pid
	 * (high 32 bits) and time namespaces. A teepy in a container sees other pids
	 * and start times: only a name of its own namespaces tells it anything. */
	bool has_ns;
	uint64_t ns;
};

/* A run's cgroup name, "teepy-<pid>-<start>-<ns in hex>-<suffix in hex>"; with no ns
 * "teepy-<pid>-<start>-<suffix>", with no start either "teepy-<pid>-<suffix>" (the
 * forms of older teepys). Returns 0 or -ENAMETOOLONG. */
int tp_cgroup_run_name(const struct tp_cgroup_owner *owner, unsigned long suffix, char *name,
		       size_t size);

/* The owner in a run's cgroup name, of this form or the older one. Returns 0, or
 * -EINVAL for any other name. */
int tp_cgroup_run_owner(const char *name, struct tp_cgroup_owner *owner);

/* The start time (field 22) in the text of /proc/<pid>/stat, whose second field
 * (the command name, in parentheses) may hold spaces and ')'. Returns 0 or -EINVAL. */
int tp_proc_stat_start(const char *stat, uint64_t *start);

/* Whether the run that made a cgroup has ended. owner_stat: the text of
 * /proc/<pid>/stat of the owner's pid, NULL when no process has that pid; a text
 * without a start time ("" if it could not be read) counts as the owner alive. An
 * older name (no start time) is dead only when its pid is gone. */
bool tp_cgroup_owner_gone(const struct tp_cgroup_owner *owner, const char *owner_stat);

/* The value of key in "key value" lines (memory.events, memory.oom_control,
 * cpu.stat). Returns 0, or -ENOENT. */
int tp_cgroup_stat_value(const char *text, const char *key, uint64_t *value);

#endif
