/* Limits the service cannot lift: cgroup memory.max (v2) or memory.limit_in_bytes
 * (v1) with pids.max and CPU accounting; RLIMIT_AS / RLIMIT_NPROC when no cgroup
 * can be made. The fallback is weaker and says so (tp_limits_print,
 * tp_limits_weaker): RLIMIT_AS counts address space, not memory, so memory the
 * kernel holds for the service (socket and pipe buffers, memfd and tmpfs pages) is
 * outside it; the fallback bounds what it can (descriptors, buffer sizes, memfd)
 * and deducts the scratch tmpfs from RLIMIT_AS. */
#include "limits.h"
#include "sandbox.h"

#include "cgroup_plan.h"
#include "seccomp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/io.h"
#include "../common/units.h"

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[640];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return tp_write_text(path, text);
}

static int read_file(const char *dir, const char *name, char *buf, size_t size)
{
	char path[640];
	int fd;
	ssize_t n;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* How long a run waits for what is left in a cgroup to end once it is killed. */
#define EMPTY_WAIT_NS 1000000000LL

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Until a v2 cgroup's cgroup.events says "populated 0" (the kernel wakes a poller
 * of the file when it changes) or the deadline passes. */
static void wait_unpopulated(const char *dir, int64_t deadline)
{
	char path[640], text[128];
	uint64_t populated = 1;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	for (int64_t left; (left = deadline - now_ns()) > 0;) {
		ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
		struct pollfd p = { fd, POLLPRI, 0 };
		text[n > 0 ? n : 0] = '\0';
		if (tp_cgroup_stat_value(text, "populated", &populated) == 0 && populated == 0)
			break;
		/* bounded naps too, should a change come between the read and the poll */
		poll(&p, 1, left > 20000000 ? 20 : (int)(left / 1000000) + 1);
	}
	close(fd);
}

/* SIGKILL to each process cgroup.procs lists (0: one outside our pid namespace). */
/* SIGKILL to each process cgroup.procs lists, through a pidfd taken before the
 * process is checked to be in the cgroup still: a listed process that ended since,
 * its pid given to another, is not the one killed. */
static void kill_listed(const char *dir)
{
	const char *name = strrchr(dir, '/');
	char path[640], cgroup[4096];
	FILE *f;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (!name || !(f = fopen(path, "re")))
		return;
	while (fscanf(f, "%d", &pid) == 1) {
		int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
		char proc[32];
		if (pidfd < 0)
			continue;
		/* every line of /proc/PID/cgroup ends in the path of one hierarchy */
		snprintf(proc, sizeof(proc), "/proc/%d", pid);
		snprintf(path, sizeof(path), "%s\n", name);
		if (read_file(proc, "cgroup", cgroup, sizeof(cgroup)) == 0 && strstr(cgroup, path))
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		close(pidfd);
	}
	fclose(f);
}

/* Removes a run's cgroup, first killing what is still in it; gives up after
 * EMPTY_WAIT_NS (the cgroup stays, for a later run). v2's cgroup.kill (Linux 5.14)
 * ends every process in it at once, forks in flight included. Without it, and on v1
 * (teepy makes no v1 freezer cgroup to hold them still), pids.max 0 stops new
 * processes where the cgroup has it, and every listed process gets SIGKILL until
 * none is left: a process with SIGKILL pending forks no more, so each round meets
 * only children forked before their parent's kill, and pids.max bounds them. */
static void empty_and_remove(const char *dir, bool v2)
{
	int64_t deadline;
	bool killed;

	if (rmdir(dir) == 0 || errno != EBUSY)
		return;
	deadline = now_ns() + EMPTY_WAIT_NS;
	killed = v2 && write_file(dir, "cgroup.kill", "1") == 0;
	if (killed)
		wait_unpopulated(dir, deadline);
	else
		write_file(dir, "pids.max", "0");
	/* the last task leaves its cgroup a moment after it ends */
	while (rmdir(dir) < 0 && errno == EBUSY && now_ns() < deadline) {
		if (!killed)
			kill_listed(dir);
		usleep(500);
	}
}

/* Whether the teepy that named a cgroup has ended: its pid is gone, or is now
 * another process's (started at another time). */
static bool owner_gone(const struct tp_cgroup_owner *owner)
{
	char dir[32], stat[1024];

	if (kill(owner->pid, 0) < 0 && errno == ESRCH)
		return tp_cgroup_owner_gone(owner, NULL);
	snprintf(dir, sizeof(dir), "/proc/%d", (int)owner->pid);
	read_file(dir, "stat", stat, sizeof(stat)); /* "" if it ended since: alive */
	return tp_cgroup_owner_gone(owner, stat);
}

/* The inodes of our pid and time namespaces, in which our pid and start time mean
 * what they say (0 if /proc cannot tell). */
static uint64_t own_namespaces(void)
{
	struct stat pid_ns, time_ns;

	if (stat("/proc/self/ns/pid", &pid_ns) < 0)
		return 0;
	if (stat("/proc/self/ns/time", &time_ns) < 0)
		time_ns.st_ino = 0; /* a kernel without time namespaces */
	return ((uint64_t)(pid_ns.st_ino & 0xffffffffu) << 32) | (time_ns.st_ino & 0xffffffffu);
}

/* A run's cgroup whose teepy died (kill -9, a power cut of a container) is removed,
 * with whatever still runs in it, by the next run that makes its cgroup beside it.
 * Only teepy's names directly in teepy's parent are looked at, and only a cgroup
 * named in our own namespaces and of our own uid is emptied: one named in other
 * namespaces (a teepy in a container sharing this parent) belongs to pids and
 * start times we cannot see, and is left alone; an older teepy's name (no
 * namespaces) or another user's cgroup is removed only if already empty. The runs
 * of one process (a worker's invocations) share its pid and start time, so their
 * cgroups all count as alive while it lives. */
static void remove_stale(const char *parent, bool v2)
{
	uint64_t ns = own_namespaces();
	DIR *d = opendir(parent);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		struct tp_cgroup_owner owner;
		struct stat st;
		char path[1024];
		if (tp_cgroup_run_owner(e->d_name, &owner) < 0 ||
		    (owner.has_ns && (!ns || owner.ns != ns)) || !owner_gone(&owner))
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (owner.has_ns && st.st_uid == geteuid())
			empty_and_remove(path, v2);
		else
			rmdir(path);
	}
	if (d)
		closedir(d);
}

/* This run's cgroup name, the same in every hierarchy: the owner's pid and start
 * time, so that a later run can tell it from a live one. */
static void run_cgroup_name(char *name, size_t size)
{
	struct tp_cgroup_owner me = { getpid(), false, 0, false, 0 };
	char stat[1024];

	me.ns = own_namespaces();
	me.has_ns = me.ns != 0;

	/* without the start time, the older name: dead only once the pid is gone */
	me.has_start = read_file("/proc/self", "stat", stat, sizeof(stat)) == 0 &&
		       tp_proc_stat_start(stat, &me.start) == 0;
	tp_cgroup_run_name(&me, (unsigned long)now_ns(), name, size);
}

static int make_child_cgroup(const char *parent, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", parent, name);
	int r = n < 0 || (size_t)n >= size ? -ENAMETOOLONG : mkdir(out, 0755) == 0 ? 0 : -errno;

	if (r < 0)
		out[0] = '\0';
	return r;
}

/* Root's cgroup under the v2 root: controllers enabled on the way down. Another run
 * may remove the (then empty) parent between our steps, so the caller retries. */
static int enter_teepy_parent(const char *mount, const struct tp_cgroup_v2_plan *plan)
{
	int r;

	if ((r = write_file(mount, "cgroup.subtree_control", plan->enable)) < 0)
		return r;
	if (mkdir(plan->parent, 0755) < 0 && errno != EEXIST)
		return -errno;
	return write_file(plan->parent, "cgroup.subtree_control", plan->enable);
}

/* Whether this process may make a cgroup in dir and move a process of its own from
 * below dir into it: the kernel checks the cgroup.procs of the common ancestor. */
static bool may_delegate(const char *dir)
{
	char procs[1040];

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	return faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) == 0 &&
	       faccessat(AT_FDCWD, procs, W_OK, AT_EACCESS) == 0;
}

/* The cgroup.subtree_control of own's ancestors, nearest first, up to the first
 * this process may not write (systemd delegates a user's subtree by its owner).
 * Returns how many were read. */
static size_t delegated_ancestors(const char *mount, const char *own,
				  char text[TP_CGROUP_V2_MAX_UP][256])
{
	char path[512], dir[1024];
	size_t count = 0;

	snprintf(path, sizeof(path), "%s", own);
	while (count < TP_CGROUP_V2_MAX_UP &&
	       tp_cgroup_parent_path(path, path, sizeof(path)) == 0) {
		snprintf(dir, sizeof(dir), "%s%s", mount, strcmp(path, "/") == 0 ? "" : path);
		if (!may_delegate(dir))
			break;
		read_file(dir, "cgroup.subtree_control", text[count++], 256);
	}
	return count;
}

static const char *const v2_mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

static bool prepare_v2(struct tp_limits_state *limits, const char *self_cgroup, const char *name)
{
	char own[512], base[1024], subtree[256], root_controllers[256], text[64];
	char up_text[TP_CGROUP_V2_MAX_UP][256];
	const char *up[TP_CGROUP_V2_MAX_UP];
	bool privileged = geteuid() == 0;
	struct tp_cgroup_v2_plan plan;

	if (tp_cgroup_own_path(self_cgroup, "", own, sizeof(own)) < 0)
		return false;
	for (size_t i = 0; i < TP_CGROUP_V2_MAX_UP; i++)
		up[i] = up_text[i];
	for (size_t i = 0; i < sizeof(v2_mounts) / sizeof(v2_mounts[0]); i++) {
		const char *mount = v2_mounts[i];
		size_t up_count = 0;
		int r = -ENOENT;

		/* only a v2 mount has cgroup.controllers at its top */
		if (read_file(mount, "cgroup.controllers", root_controllers,
			      sizeof(root_controllers)) < 0)
			continue;
		snprintf(base, sizeof(base), "%s%s", mount, strcmp(own, "/") == 0 ? "" : own);
		read_file(base, "cgroup.subtree_control", subtree, sizeof(subtree));
		if (!privileged && !tp_cgroup_list_has(subtree, "memory") &&
		    tp_cgroup_list_has(root_controllers, "memory"))
			up_count = delegated_ancestors(mount, own, up_text);
		tp_cgroup_v2_choose(mount, own, subtree, up, up_count, root_controllers, privileged,
				    &plan);
		if (plan.place == TP_CGROUP_V2_NONE)
			continue;
		for (int attempt = 0; attempt < 3 && r == -ENOENT; attempt++) {
			if (plan.place == TP_CGROUP_V2_TEEPY &&
			    (r = enter_teepy_parent(mount, &plan)) < 0)
				continue; /* -ENOENT: another run removed the parent, again */
			remove_stale(plan.parent, true);
			r = make_child_cgroup(plan.parent, name, limits->memory_dir,
					      sizeof(limits->memory_dir));
		}
		if (r < 0)
			continue;
		snprintf(text, sizeof(text), "%" PRIu64, limits->set.memory_bytes);
		if (write_file(limits->memory_dir, "memory.max", text) < 0) {
			rmdir(limits->memory_dir);
			limits->memory_dir[0] = '\0';
			continue;
		}
		limits->swap_counted = write_file(limits->memory_dir, "memory.swap.max", "0") == 0;
		write_file(limits->memory_dir, "memory.oom.group", "1");
		limits->memory_mechanism = TP_LIMIT_CGROUP_V2;
		/* cpu.stat's usage_usec is in every v2 cgroup, cpu controller or not */
		limits->cpu_mechanism = TP_LIMIT_CGROUP_V2;
		if (plan.pids) {
			snprintf(text, sizeof(text), "%u", limits->set.threads + TP_REAPER_TASKS);
			if (write_file(limits->memory_dir, "pids.max", text) == 0)
				limits->threads_mechanism = TP_LIMIT_CGROUP_V2;
		}
		if (plan.place == TP_CGROUP_V2_TEEPY)
			snprintf(limits->v2_parent, sizeof(limits->v2_parent), "%s", plan.parent);
		return true;
	}
	return false;
}

/* A cgroup under our own in a v1 hierarchy; limit_file NULL: accounting only. */
static bool prepare_v1(const char *self_cgroup, const char *name, const char *controller,
		       const char *limit_file, uint64_t value, char *dir, size_t dir_size)
{
	char own[512], base[1024], text[64];

	if (tp_cgroup_own_path(self_cgroup, controller, own, sizeof(own)) < 0)
		return false;
	snprintf(base, sizeof(base), "/sys/fs/cgroup/%s%s", controller,
		 strcmp(own, "/") == 0 ? "" : own);
	remove_stale(base, false);
	if (make_child_cgroup(base, name, dir, dir_size) < 0)
		return false;
	snprintf(text, sizeof(text), "%" PRIu64, value);
	if (limit_file && write_file(dir, limit_file, text) < 0) {
		rmdir(dir);
		dir[0] = '\0';
		return false;
	}
	return true;
}

void tp_limits_prepare(struct tp_limits_state *limits)
{
	char self_cgroup[4096], name[64];
	int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, self_cgroup, sizeof(self_cgroup) - 1) : -1;

	if (fd >= 0)
		close(fd);
	self_cgroup[n > 0 ? n : 0] = '\0';
	limits->memory_mechanism = TP_LIMIT_RLIMIT;
	/* RLIMIT_NPROC binds every uid but 0, and the service is never host uid 0 (root's
	 * runs as TP_ROOT_SERVICE_HOST_ID) */
	limits->threads_mechanism = TP_LIMIT_RLIMIT;
	/* one process: its CPU clock counts all its threads; more need a cgroup */
	limits->cpu_mechanism = TP_LIMIT_CLOCK;
	limits->swap_counted = false;
	limits->memory_dir[0] = limits->pids_dir[0] = limits->cpu_dir[0] = '\0';
	limits->v2_parent[0] = '\0';

	run_cgroup_name(name, sizeof(name));
	if (!prepare_v2(limits, self_cgroup, name)) {
		if (prepare_v1(self_cgroup, name, "memory", "memory.limit_in_bytes",
			       limits->set.memory_bytes, limits->memory_dir,
			       sizeof(limits->memory_dir))) {
			char text[64];
			snprintf(text, sizeof(text), "%" PRIu64, limits->set.memory_bytes);
			/* memsw exists only with swap accounting; there it must not exceed the
			 * limit */
			limits->swap_counted = write_file(limits->memory_dir,
							  "memory.memsw.limit_in_bytes", text) == 0;
			limits->memory_mechanism = TP_LIMIT_CGROUP_V1;
		}
		if (prepare_v1(self_cgroup, name, "pids", "pids.max",
			       limits->set.threads + TP_REAPER_TASKS, limits->pids_dir,
			       sizeof(limits->pids_dir)))
			limits->threads_mechanism = TP_LIMIT_CGROUP_V1;
		if (limits->processes && prepare_v1(self_cgroup, name, "cpuacct", NULL, 0,
						    limits->cpu_dir, sizeof(limits->cpu_dir)))
			limits->cpu_mechanism = TP_LIMIT_CGROUP_V1;
	}

	/* Without a memory cgroup, each descriptor can hold kernel buffers (a socket's
	 * default send buffer, a pipe's 16 pages) that RLIMIT_AS does not see: their
	 * number follows the limit. */
	limits->nofile = TP_LIMITS_NOFILE;
	if (limits->memory_mechanism == TP_LIMIT_RLIMIT) {
		uint64_t per_2mib = limits->set.memory_bytes >> 21;
		if (per_2mib < TP_LIMITS_NOFILE)
			limits->nofile = per_2mib < 32 ? 32 : (unsigned)per_2mib;
	}
}

int tp_limits_open_join(const struct tp_limits_state *limits, struct tp_cgroup_join *j)
{
	const char *const v1_dirs[] = { limits->memory_dir, limits->pids_dir, limits->cpu_dir };
	char path[640];

	j->v2_dir_fd = j->v2_procs_fd = -1;
	for (size_t i = 0; i < 3; i++)
		j->tasks_fds[i] = -1;
	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V2) {
		j->v2_dir_fd = open(limits->memory_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		snprintf(path, sizeof(path), "%s/cgroup.procs", limits->memory_dir);
		j->v2_procs_fd = open(path, O_WRONLY | O_CLOEXEC);
		if (j->v2_dir_fd < 0 || j->v2_procs_fd < 0)
			goto fail;
		return 0;
	}
	for (size_t i = 0; i < 3; i++) {
		if (!v1_dirs[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/tasks", v1_dirs[i]);
		if ((j->tasks_fds[i] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			goto fail;
	}
	return 0;
fail : {
	int r = -errno;
	tp_limits_close_join(j);
	return r;
}
}

void tp_limits_close_join(struct tp_cgroup_join *j)
{
	for (size_t i = 0; i < 3; i++) {
		if (j->tasks_fds[i] >= 0)
			close(j->tasks_fds[i]);
		j->tasks_fds[i] = -1;
	}
	if (j->v2_dir_fd >= 0)
		close(j->v2_dir_fd);
	if (j->v2_procs_fd >= 0)
		close(j->v2_procs_fd);
	j->v2_dir_fd = j->v2_procs_fd = -1;
}

/* Writes the child's pid to a cgroup file. Returns 0 or -errno. */
static int join_with(int fd, pid_t child)
{
	char text[24];
	int len = snprintf(text, sizeof(text), "%d", (int)child);
	ssize_t n = write(fd, text, (size_t)len);

	return n == len ? 0 : n < 0 ? -errno : -EIO;
}

int tp_limits_join(const struct tp_cgroup_join *j, pid_t child, bool in_v2, const char **failed)
{
	static const char *const v1_names[] = { "memory tasks", "pids tasks", "cpuacct tasks" };
	int r;

	for (size_t i = 0; i < 3; i++) {
		if (j->tasks_fds[i] >= 0 && (r = join_with(j->tasks_fds[i], child)) < 0) {
			*failed = v1_names[i];
			return r;
		}
	}
	/* moving a whole process on v2 takes the global lock: only where clone3 failed */
	if (!in_v2 && j->v2_procs_fd >= 0 && (r = join_with(j->v2_procs_fd, child)) < 0) {
		*failed = "cgroup.procs";
		return r;
	}
	return 0;
}

/* the pages of the scratch and output tmpfs are memory the address space does not
 * show, so they come out of it */
uint64_t tp_limits_address_space(const struct tp_limits_state *limits)
{
	return limits->set.memory_bytes - limits->set.scratch_bytes - limits->set.output_bytes;
}

static rlim_t cpu_backstop_seconds(const struct tp_limits_state *limits)
{
	return (rlim_t)((limits->set.cpu_ms + 999) / 1000 + 1);
}

int tp_limits_apply_rlimits(const struct tp_limits_state *limits)
{
	/* teepy kills at the limit (tp_limits_cpu_used_ns); the kernel's own kill comes a
	 * second later, should teepy be stopped. Its clock is tick-sampled, so at the
	 * limit itself it could end a service a little early. */
	rlim_t cpu_s = cpu_backstop_seconds(limits);
	struct rlimit cpu = { cpu_s, cpu_s };
	struct rlimit none = { 0, 0 };
	struct rlimit nofile = { limits->nofile, limits->nofile };

	if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_CORE, &none) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return -errno;
	if (limits->memory_mechanism == TP_LIMIT_RLIMIT) {
		uint64_t bytes = tp_limits_address_space(limits);
		struct rlimit as = { bytes, bytes };
		if (setrlimit(RLIMIT_AS, &as) < 0)
			return -errno;
	}
	if (limits->threads_mechanism == TP_LIMIT_RLIMIT) {
		/* counted per uid in the service's own user namespace (and the host's) */
		/* the reaper shares the service's uid, but for root's (uid 0 inside) */
		rlim_t n = limits->set.threads + (getuid() == 0 ? 0 : TP_REAPER_TASKS);
		struct rlimit nproc = { n, n };
		if (setrlimit(RLIMIT_NPROC, &nproc) < 0)
			return -errno;
	}
	return 0;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

/* Instruction numbers of the filter below, for its jumps. */
enum {
	AT_MEMFD = 4,
	AT_FCNTL = 5,
	AT_SETSOCKOPT = 8,
	AT_ALLOW = 16,
	AT_DENY = 17,
};
#define TO(from, to) ((to) - (from)-1)

/* Stacked on the policy (the stricter answer wins), so seccomp.c's table stays the
 * one policy. The kernel reads these arguments as 32-bit ints: low words only.
 * Another architecture's call passes here; the policy's filter kills it. */
static const struct sock_filter fallback_filter[] = {
	/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TP_AUDIT_ARCH, 1, 0),
	/* 2 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	/* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	/* 4: memfd pages are memory no rlimit counts */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, TO(AT_MEMFD, AT_DENY), 0),
	/* 5-7: pipes keep their 16 pages */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl, 0, TO(AT_FCNTL, AT_SETSOCKOPT)),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETPIPE_SZ, TO(7, AT_DENY), TO(7, AT_ALLOW)),
	/* 8-15: sockets keep the default buffer sizes */
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setsockopt, 0, TO(AT_SETSOCKOPT, AT_ALLOW)),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOL_SOCKET, 0, TO(10, AT_ALLOW)),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(2)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SO_SNDBUF, TO(12, AT_DENY), 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SO_RCVBUF, TO(13, AT_DENY), 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SO_SNDBUFFORCE, TO(14, AT_DENY), 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SO_RCVBUFFORCE, TO(15, AT_DENY), TO(15, AT_ALLOW)),
	/* 16 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	/* 17 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
};

_Static_assert(sizeof(fallback_filter) / sizeof(fallback_filter[0]) == AT_DENY + 1,
	       "the jump targets of fallback_filter are out of step with its instructions");

int tp_limits_apply_filter(const struct tp_limits_state *limits)
{
	const struct tp_bpf prog = { (void *)fallback_filter, sizeof(fallback_filter) };

	if (limits->memory_mechanism != TP_LIMIT_RLIMIT)
		return 0;
	return tp_seccomp_install(&prog);
}

static int read_counter(const char *dir, const char *file, const char *key, uint64_t *value)
{
	char buf[4096];
	int r;

	if (!dir[0])
		return -ENOENT;
	if ((r = read_file(dir, file, buf, sizeof(buf))) < 0)
		return r;
	if (key)
		return tp_cgroup_stat_value(buf, key, value);
	*value = strtoull(buf, NULL, 10);
	return 0;
}

uint64_t tp_limits_cpu_used_ns(const struct tp_limits_state *limits, pid_t pid)
{
	uint64_t value = 0;
	clockid_t clock;
	struct timespec ts;

	switch (limits->cpu_mechanism) {
	case TP_LIMIT_CGROUP_V2:
		return read_counter(limits->memory_dir, "cpu.stat", "usage_usec", &value) == 0 ?
			   value * 1000 :
			   0;
	case TP_LIMIT_CGROUP_V1:
		return read_counter(limits->cpu_dir, "cpuacct.usage", NULL, &value) == 0 ? value :
											   0;
	default:
		/* the process clock: every thread, live or ended, to the nanosecond */
		if (pid <= 0 || clock_getcpuclockid(pid, &clock) != 0 ||
		    clock_gettime(clock, &ts) < 0)
			return 0;
		return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
}

bool tp_limits_oom_killed(const struct tp_limits_state *limits)
{
	uint64_t kills = 0;

	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V2)
		read_counter(limits->memory_dir, "memory.events", "oom_kill", &kills);
	else if (limits->memory_mechanism == TP_LIMIT_CGROUP_V1)
		read_counter(limits->memory_dir, "memory.oom_control", "oom_kill", &kills);
	return kills > 0;
}

uint64_t tp_limits_peak_memory(const struct tp_limits_state *limits)
{
	uint64_t peak = 0;

	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V2)
		read_counter(limits->memory_dir, "memory.peak", NULL, &peak);
	else if (limits->memory_mechanism == TP_LIMIT_CGROUP_V1)
		read_counter(limits->memory_dir, "memory.max_usage_in_bytes", NULL, &peak);
	return peak;
}

/* The service has been reaped: whatever is left in its cgroup is its own. */
static void remove_cgroup(char *dir, bool v2)
{
	if (!dir[0])
		return;
	empty_and_remove(dir, v2);
	dir[0] = '\0';
}

void tp_limits_cleanup(struct tp_limits_state *limits)
{
	remove_cgroup(limits->memory_dir, limits->memory_mechanism == TP_LIMIT_CGROUP_V2);
	remove_cgroup(limits->pids_dir, false);
	remove_cgroup(limits->cpu_dir, false);
	/* the shared parent goes when no other run is in it (EBUSY otherwise) */
	if (limits->v2_parent[0])
		rmdir(limits->v2_parent);
	limits->v2_parent[0] = '\0';
}

void tp_limits_print(const struct tp_limits_state *limits, uint64_t limit_bytes,
		     uint64_t root_bytes, FILE *out)
{
	char a[32], b[32];
	bool cgroup = limits->memory_mechanism != TP_LIMIT_RLIMIT;

	fprintf(out, "  memory        %s", tp_format_size(limit_bytes, a, sizeof(a)));
	if (root_bytes)
		fprintf(out, " (the sealed root's files take %s, the service gets %s)",
			tp_format_size(root_bytes, a, sizeof(a)),
			tp_format_size(limits->set.memory_bytes, b, sizeof(b)));
	if (cgroup) {
		fprintf(out,
			" via cgroup %s, all processes together; page cache, tmpfs and the "
			"kernel's accounted memory count; swap %s\n",
			limits->memory_mechanism == TP_LIMIT_CGROUP_V2 ?
			    "v2 memory.max (oom.group)" :
			    "v1 memory.limit_in_bytes",
			limits->swap_counted ? "counted" : "not counted (no swap accounting)");
	} else {
		fprintf(out,
			" via RLIMIT_AS %s (fallback, no cgroup: address space, not memory, %s",
			tp_format_size(tp_limits_address_space(limits), a, sizeof(a)),
			limits->processes ? "of each process separately" : "of the one process");
		if (limits->set.scratch_bytes)
			fprintf(out, "; less the %s scratch",
				tp_format_size(limits->set.scratch_bytes, b, sizeof(b)));
		if (limits->set.output_bytes)
			fprintf(out, "; less the %s of /out",
				tp_format_size(limits->set.output_bytes, b, sizeof(b)));
		fprintf(out,
			")\n  not counted   memory the kernel holds for the service: socket "
			"and pipe buffers (bounded: %u descriptors per process, default buffer "
			"sizes, resizing refused); memfd_create refused\n",
			limits->nofile);
	}
	fprintf(out, "  descriptors   %u per process (RLIMIT_NOFILE)\n", limits->nofile);
	switch (limits->threads_mechanism) {
	case TP_LIMIT_CGROUP_V2:
	case TP_LIMIT_CGROUP_V1:
		fprintf(out, "  threads       %u via cgroup %s pids.max, all processes together\n",
			limits->set.threads,
			limits->threads_mechanism == TP_LIMIT_CGROUP_V2 ? "v2" : "v1");
		break;
	case TP_LIMIT_RLIMIT:
		fprintf(out,
			"  threads       %u via RLIMIT_NPROC (fallback, no cgroup: counted for "
			"host uid "
			"%u in the service's user namespace)\n",
			limits->set.threads,
			getuid() == 0 ? TP_ROOT_SERVICE_HOST_ID : (unsigned)getuid());
		break;
	default:
		fprintf(out, "  threads       %u NOT enforced: no pids cgroup\n",
			limits->set.threads);
	}
	fprintf(out, "  cpu time      %s", tp_limit_format_ms(limits->set.cpu_ms, a, sizeof(a)));
	if (limits->set.cpu_ms >= TP_LIMIT_OFF_MS) {
		fprintf(out, " (a server's: --cpu-time sets one)\n");
		return;
	}
	switch (limits->cpu_mechanism) {
	case TP_LIMIT_CGROUP_V2:
	case TP_LIMIT_CGROUP_V1:
		fprintf(out, " for all processes together (cgroup %s, watched by teepy)",
			limits->cpu_mechanism == TP_LIMIT_CGROUP_V2 ? "v2 cpu.stat" :
								      "v1 cpuacct.usage");
		break;
	default:
		if (limits->processes)
			fprintf(out,
				" for each process separately (fallback, no cgroup adds up "
				"processes; the first process's CPU clock is watched by teepy)");
		else
			fprintf(out, " for all threads together (the process's CPU clock, watched "
				     "by teepy)");
	}
	fprintf(out, "; RLIMIT_CPU %llu s per process as a backstop\n",
		(unsigned long long)cpu_backstop_seconds(limits));
}

bool tp_limits_weaker(const struct tp_limits_state *limits, char *line, size_t size)
{
	const char *parts[3];
	size_t count = 0, len;

	if (limits->memory_mechanism == TP_LIMIT_RLIMIT)
		parts[count++] = limits->processes ?
				     "memory is capped as address space of each process "
				     "(RLIMIT_AS), kernel buffers are not counted" :
				     "memory is capped as address space (RLIMIT_AS), kernel "
				     "buffers are not counted";
	if (limits->threads_mechanism == TP_LIMIT_NONE)
		parts[count++] = "threads are not capped";
	if (limits->cpu_mechanism == TP_LIMIT_CLOCK && limits->processes)
		parts[count++] = "CPU time holds per process, not in total";
	if (!count)
		return false;
	len = (size_t)snprintf(line, size, "no cgroup for the limits:");
	for (size_t i = 0; i < count && len < size; i++)
		len += (size_t)snprintf(line + len, size - len, "%s %s", i ? ";" : "", parts[i]);
	if (len < size)
		snprintf(line + len, size - len, " (--print-config says what holds)");
	return true;
}
