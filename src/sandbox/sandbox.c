/* The child between clone and exec. Everything it needs was computed by the
 * supervisor; here it only applies, in an order where each step still has the
 * rights it needs: maps, root, rlimits, fds, capabilities, no_new_privs,
 * Landlock, seccomp stage 1, exec. */
#include "sandbox.h"

#include "landlock.h"
#include "reaper.h"
#include "../channel/protocol.h"
#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <grp.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NAMESPACES                                                                                 \
	(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/* Reports a setup failure to the supervisor through the error pipe and ends the child. */
static void __attribute__((noreturn, format(printf, 2, 3)))
child_die(int err_fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(msg) - 1)
		len = (int)sizeof(msg) - 1;
	if (write(err_fd, msg, (size_t)len) < 0) {
		/* nothing more to say to anyone */
	}
	_exit(127);
}

unsigned tp_sandbox_service_uid(void)
{
	return getuid() == 0 ? TP_ROOT_SERVICE_ID : (unsigned)getuid();
}

unsigned tp_sandbox_service_gid(void)
{
	return getgid() == 0 ? TP_ROOT_SERVICE_ID : (unsigned)getgid();
}

/* One id each, the caller's: files of other host users show as the overflow id,
 * and no other id can be taken. Root maps two: 0 to itself, for the sandbox's
 * setup (it builds the root and writes the sealed files as the namespace's
 * root), and the service's TP_ROOT_SERVICE_ID to TP_ROOT_SERVICE_HOST_ID, which
 * the service becomes before its exec (become_service_ids): root's service is
 * never host uid 0, so a host file it could reach some other way holds by its
 * owner and mode too. */
static int write_id_maps(pid_t pid)
{
	char path[64], map[96];
	int r;

	if (getuid() != 0) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
		if ((r = tp_write_text(path, "deny")) < 0 && r != -ENOENT)
			return r;
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	if (getuid() == 0)
		snprintf(map, sizeof(map), "0 0 1\n%u %u 1\n", TP_ROOT_SERVICE_ID,
			 TP_ROOT_SERVICE_HOST_ID);
	else
		snprintf(map, sizeof(map), "%u %u 1\n", tp_sandbox_service_uid(),
			 (unsigned)getuid());
	if ((r = tp_write_text(path, map)) < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	if (getuid() == 0)
		snprintf(map, sizeof(map), "0 0 1\n%u %u 1\n", TP_ROOT_SERVICE_ID,
			 TP_ROOT_SERVICE_HOST_ID);
	else
		snprintf(map, sizeof(map), "%u %u 1\n", tp_sandbox_service_gid(),
			 (unsigned)getgid());
	return tp_write_text(path, map);
}

/* Root's service: no supplementary group (root's would stay otherwise), then the
 * service's ids. SECBIT_NO_SETUID_FIXUP is set: the capabilities stay until
 * drop_capabilities clears them right after. */
static int become_service_ids(void)
{
	unsigned id = TP_ROOT_SERVICE_ID;

	if (getuid() != 0)
		return 0;
	/* the system calls, not libc's wrappers: those would signal every thread libc
	 * believes this process has, and here (a clone sharing the reaper's memory) its
	 * list is a copy of the supervisor's; credentials are per thread, and this
	 * process has one */
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, id, id, id) < 0 ||
	    syscall(SYS_setresuid, id, id, id) < 0)
		return -errno;
	return 0;
}

static int drop_capabilities(bool service)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	int r;

	/* no way back to capabilities through setuid or exec of root */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
					 SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
					 SECBIT_NO_CAP_AMBIENT_RAISE |
					 SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0)
		return -errno;
	for (int cap = 0; cap <= CAP_LAST_CAP + 8; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	if (service && (r = become_service_ids()) < 0)
		return r;
	if (syscall(SYS_capset, &header, data) < 0)
		return -errno;
	return 0;
}

/* Puts fd at target (which must be free or equal). */
static int move_fd(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0;
	if (dup2(fd, target) < 0)
		return -errno;
	return 0;
}

struct handshake {
	int ready_fd;
	int go_fd;
	void (*mark)(const char *phase);
};

/* In the empty root: tell the supervisor, wait until it has written the files. */
static int wait_for_files(void *arg)
{
	const struct handshake *h = arg;
	char byte = 'R';

	if (h->mark)
		h->mark("child: in its empty root");
	if (write(h->ready_fd, &byte, 1) != 1)
		return -errno;
	if (read(h->go_fd, &byte, 1) != 1 || byte != 'G')
		return -ECANCELED;
	if (h->mark)
		h->mark("child: files written");
	close(h->ready_fd);
	close(h->go_fd);
	return 0;
}

/* The service's clocks start near zero: CLOCK_MONOTONIC, CLOCK_BOOTTIME and
 * sysinfo's uptime would otherwise tell it how long the host has been up. A time
 * namespace for the children of the caller (the service, not its reaper, whose
 * deadline keeps the host's clock); its offsets are written before anyone enters
 * it, through the host's /proc, which is still there before the pivot. Best
 * effort: a kernel without time namespaces (CONFIG_TIME_NS) shows the uptime. */
static void hide_uptime(void)
{
	struct timespec mono, boot;
	char text[96];
	int fd;

	if (unshare(CLONE_NEWTIME) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	snprintf(text, sizeof(text), "monotonic %lld 0\nboottime %lld 0\n",
		 -(long long)(mono.tv_sec > 1 ? mono.tv_sec - 1 : 0),
		 -(long long)(boot.tv_sec > 1 ? boot.tv_sec - 1 : 0));
	if ((fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC)) < 0)
		return;
	if (write(fd, text, strlen(text)) < 0) {
		/* the clocks stay the host's: no worse than without the namespace */
	}
	close(fd);
}

/* pid 1: everything but the report pipe closed, no capability left, then the
 * reaper's loop (reaper.c). Its clock runs out a little after teepy's, so that
 * teepy, when it can act, is the one that ends the run and says why. */
static void __attribute__((noreturn))
become_reaper(const struct tp_sandbox_config *cfg, pid_t service, int status_fd)
{
	uint64_t timeout = cfg->limits->set.timeout_ms;
	int r = 0;

	if ((status_fd > 0 && syscall(SYS_close_range, 0u, (unsigned)status_fd - 1, 0) < 0) ||
	    syscall(SYS_close_range, (unsigned)status_fd + 1, ~0U, 0) < 0)
		r = -errno;
	if (r == 0)
		r = drop_capabilities(false);
	if (r < 0) {
		struct tp_reaper_report fail = { .kind = TP_REAPER_FAILED, .status = -r };
		if (write(status_fd, &fail, sizeof(fail)) < 0) {
			/* the supervisor is gone */
		}
		_exit(127);
	}
	tp_reaper_run(service, status_fd, timeout ? timeout + TP_REAPER_GRACE_MS : 0);
}

struct service_args {
	const struct tp_sandbox_config *cfg;
	int err_fd, ctrl_fd, out_fd, status_fd;
};

/* The service's stack until its exec: in the reaper's memory, touched by nobody else. */
static char service_stack[256 * 1024] __attribute__((aligned(64)));

static int service_main(void *arg);

static void __attribute__((noreturn))
child_main(const struct tp_sandbox_config *cfg, int sync_fd, int err_fd, int ctrl_fd, int out_fd,
	   int status_fd, const struct handshake *handshake)
{
	char err[400];
	char byte;
	int r;

	/* The service must not outlive its supervisor (no wall clock, no CPU watch would
	 * be left). The signal follows the thread that cloned us: teepy clones from its
	 * main thread, which lives until the end. Should teepy have died before this
	 * prctl, the sync read below finds the pipe closed, with nothing written. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(127);
	/* Its own session and process group: kill(0, ...) (which getppid() gives inside
	 * a pid namespace) and killpg reach the service alone, never teepy or the
	 * program that ran it, on any Landlock ABI (signal scoping is ABI 6). */
	if (setsid() < 0)
		_exit(127);
	/* wait until the supervisor has put us in the run's cgroups (the limits hold
	 * from here on) and written our id maps */
	if (read(sync_fd, &byte, 1) != 1)
		_exit(127);
	close(sync_fd);
	if (cfg->mark)
		cfg->mark("child: in its cgroups, id maps written");
	hide_uptime();

	r = tp_root_enter(cfg->root, cfg->filled_from_outside ? wait_for_files : NULL,
			  (void *)handshake, err, sizeof(err));
	if (r < 0)
		child_die(err_fd, "root: %s", err);
	if (cfg->mark)
		cfg->mark("child: root built");
	if (sethostname("teepy", 5) < 0)
		child_die(err_fd, "sethostname: %s", strerror(errno));
	if (chdir(cfg->cwd) < 0)
		child_die(err_fd, "chdir %s: %s", cfg->cwd, strerror(errno));

	if ((r = tp_limits_apply_rlimits(cfg->limits)) < 0)
		child_die(err_fd, "rlimits: %s", strerror(-r));

	/* the last mark on the supervisor's clock: the service's own starts near zero */
	if (cfg->mark)
		cfg->mark("child: limits set, fork the service, exec next");
	/* pid 1 stays behind as the reaper; its child goes on to be the service. The
	 * child shares the reaper's memory until its exec (CLONE_VM | CLONE_VFORK: the
	 * reaper waits), so no page table is copied and none torn down: a full fork
	 * cost about 1.2 ms of every start here (bench/RESULTS.md). */
	struct service_args args = { cfg, err_fd, ctrl_fd, out_fd, status_fd };
	pid_t service = clone(service_main, service_stack + sizeof(service_stack),
			      CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
	/* older kernels (Debian 12's 6.1) refuse to share memory with a child bound for
	 * another time namespace (hide_uptime's): there the service takes a copy */
	if (service < 0 && errno == EINVAL)
		service = clone(service_main, service_stack + sizeof(service_stack),
				CLONE_VFORK | SIGCHLD, &args);
	if (service < 0)
		child_die(err_fd, "start the service: %s", strerror(errno));
	become_reaper(cfg, service, status_fd);
}

/* The service, from the reaper's clone to its exec. It runs on service_stack in
 * the reaper's memory, which waits meanwhile: nothing here may leave a lock held
 * or state the reaper reads. */
static int service_main(void *arg)
{
	const struct service_args *a = arg;
	const struct tp_sandbox_config *cfg = a->cfg;
	int err_fd = a->err_fd, ctrl_fd = a->ctrl_fd, out_fd = a->out_fd;
	int r, null_fd;

	close(a->status_fd);
	/* fds: 0 = /dev/null, 1 and 2 = the output pipe, 3 = control, 4.. the handed
	 * ones, nothing else (the setup-error pipe, close-on-exec, just past them) */
	size_t handed = cfg->handed_count;
	int err_target = 4 + (int)handed;
	int moved[TP_SANDBOX_MAX_HANDED];
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		child_die(err_fd, "open /dev/null: %s", strerror(errno));
	/* move everything out of the way of 0..err_target first */
	err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, err_target + 10);
	ctrl_fd = fcntl(ctrl_fd, F_DUPFD, err_target + 10);
	out_fd = fcntl(out_fd, F_DUPFD, err_target + 10);
	if (err_fd < 0 || ctrl_fd < 0 || out_fd < 0)
		_exit(127);
	for (size_t i = 0; i < handed; i++)
		if ((moved[i] = fcntl(cfg->handed_fds[i], F_DUPFD, err_target + 10)) < 0)
			child_die(err_fd, "handed fd %d: %s", cfg->handed_fds[i], strerror(errno));
	if ((r = move_fd(null_fd, 0)) < 0 || (r = move_fd(out_fd, 1)) < 0 ||
	    (r = move_fd(out_fd, 2)) < 0 || (r = move_fd(ctrl_fd, TP_CTRL_FD)) < 0)
		child_die(err_fd, "set up fds: %s", strerror(-r));
	for (size_t i = 0; i < handed; i++)
		if ((r = move_fd(moved[i], 4 + (int)i)) < 0)
			child_die(err_fd, "set up fds: %s", strerror(-r));
	if (err_fd != err_target) {
		if (dup3(err_fd, err_target, O_CLOEXEC) < 0)
			child_die(err_fd, "set up fds: %s", strerror(errno));
		err_fd = err_target;
	}
	if (syscall(SYS_close_range, (unsigned)err_target + 1, ~0U, 0) < 0)
		child_die(err_fd, "close inherited fds: %s", strerror(errno));

	if ((r = drop_capabilities(true)) < 0)
		child_die(err_fd, "drop capabilities: %s", strerror(-r));
	/* a third hold, after the namespace's end and the reaper's own signal; set after
	 * the ids change, which clears it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_die(err_fd, "parent-death signal: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_die(err_fd, "no_new_privs: %s", strerror(errno));
	if ((r = tp_limits_apply_filter(cfg->limits)) < 0)
		child_die(err_fd, "memory filter: %s", strerror(-r));

	const char *write_files[] = { "/dev/null", NULL };
	struct tp_landlock_paths ll = {
		.exec_files = cfg->exec_files,
		.write_files = write_files,
		.read_trees = cfg->read_trees,
		.read_count = cfg->read_count,
		.scratch_dir = cfg->scratch_dir,
	};
	r = tp_landlock_apply(&ll);
	if (r == -ENOSYS)
		child_die(err_fd,
			  "Landlock is not built into this kernel (CONFIG_SECURITY_LANDLOCK)");
	if (r == -EOPNOTSUPP)
		child_die(err_fd,
			  "Landlock is disabled at boot (add landlock to the lsm= parameter)");
	if (r < 0)
		child_die(err_fd, "Landlock: %s", strerror(-r));

	/* a traced build reports every open and exec to the supervisor, stage 1 and 2 still hold */
	if (cfg->tracer && (r = cfg->tracer->child_filter()) < 0)
		child_die(err_fd, "trace filter: %s", strerror(-r));
	if ((r = tp_seccomp_install(cfg->stage1)) < 0)
		child_die(err_fd, "seccomp: %s", strerror(-r));

	execve(cfg->interpreter, (char *const *)cfg->argv, (char *const *)cfg->envp);
	child_die(err_fd, "exec %s: %s", cfg->interpreter, strerror(errno));
}

/* clone(2) with the namespaces; on cgroup v2 clone3 places the child in its cgroup
 * as it is made, with no move (*in_v2 set). Where clone3 fails for any reason (a
 * container's seccomp profile answers ENOSYS; the cgroup refuses the child) plain
 * clone follows and the child moves itself, so that the error, if it recurs, is
 * reported by the step it belongs to: the namespaces, or the cgroup's file.
 * Returns as clone does. */
static pid_t clone_into_cgroup(const struct tp_cgroup_join *join, bool *in_v2)
{
	*in_v2 = false;
	if (join && join->v2_dir_fd >= 0) {
		struct clone_args args = {
			.flags = NAMESPACES | CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)join->v2_dir_fd,
		};
		pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0) {
			*in_v2 = true;
			return pid;
		}
	}
	return (pid_t)syscall(SYS_clone, NAMESPACES | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* Reads the child's error pipe until it closes (on exec, or when the child died).
 * Returns true, with the child's line in err, if the child said why it failed. */
static bool read_child_error(int fd, char *err, size_t err_size)
{
	char msg[512];
	ssize_t n;

	do
		n = read(fd, msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	msg[n] = '\0';
	snprintf(err, err_size, "sandbox setup failed: %s", msg);
	return true;
}

int tp_sandbox_spawn(const struct tp_sandbox_config *cfg, struct tp_sandbox *sb, char *err,
		     size_t err_size)
{
	int ctrl[2] = { -1, -1 }, out[2] = { -1, -1 }, sync[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int ready[2] = { -1, -1 }, go[2] = { -1, -1 }, status[2] = { -1, -1 };
	bool in_v2 = false;
	pid_t pid;
	int r;

	sb->pid = -1;
	sb->ctrl_fd = sb->out_fd = sb->err_fd = sb->ready_fd = sb->go_fd = sb->status_fd = -1;
	sb->service_pid = -1;
	if (cfg->handed_count > TP_SANDBOX_MAX_HANDED) {
		snprintf(err, err_size, "at most %d descriptors can be handed to the service",
			 TP_SANDBOX_MAX_HANDED);
		return -E2BIG;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctrl) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0 || pipe2(sync, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    /* non-blocking: once the reaper is reaped its report is there or never will
	     * be, whoever else (a concurrent spawn's child) still holds the write end */
	    pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (cfg->filled_from_outside &&
	     (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0))) {
		r = -errno;
		snprintf(err, err_size, "cannot create channels: %s", strerror(errno));
		goto fail;
	}

	pid = clone_into_cgroup(cfg->join, &in_v2);
	if (pid < 0) {
		r = -errno;
		if (errno == EPERM || errno == ENOSPC || errno == EINVAL)
			snprintf(err, err_size,
				 "cannot create namespaces: %s (are user namespaces enabled? "
				 "check user.max_user_namespaces)",
				 strerror(errno));
		else
			snprintf(err, err_size, "clone: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		close(ctrl[0]);
		close(out[0]);
		close(sync[1]);
		close(errp[0]);
		close(status[0]);
		struct handshake h = { .ready_fd = ready[1], .go_fd = go[0], .mark = cfg->mark };
		if (ready[0] >= 0) {
			close(ready[0]);
			close(go[1]);
		}
		child_main(cfg, sync[0], errp[1], ctrl[1], out[1], status[1], &h);
	}

	close(ctrl[1]);
	close(out[1]);
	close(sync[0]);
	close(errp[1]);
	close(status[1]);
	ctrl[1] = out[1] = sync[0] = errp[1] = status[1] = -1;
	if (ready[1] >= 0) {
		close(ready[1]);
		close(go[0]);
		ready[1] = go[0] = -1;
	}
	sb->pid = pid;

	if (cfg->tracer && (r = cfg->tracer->seize(pid)) < 0) {
		snprintf(err, err_size, "cannot trace the sample run: %s", strerror(-r));
		goto fail_kill;
	}
	/* while the child starts up: the cgroup moves cost a grace period each on v1 */
	const char *refused;
	if (cfg->join && (r = tp_limits_join(cfg->join, pid, in_v2, &refused)) < 0) {
		snprintf(err, err_size,
			 "sandbox setup failed: cannot join the run's cgroup (%s): %s", refused,
			 strerror(-r));
		goto fail_kill;
	}
	if ((r = write_id_maps(pid)) < 0) {
		snprintf(err, err_size, "cannot map user ids into the sandbox: %s", strerror(-r));
		goto fail_kill;
	}
	if (write(sync[1], "go", 1) != 1) {
		r = -errno;
		snprintf(err, err_size, "cannot start the service: %s", strerror(errno));
		goto fail_kill;
	}
	close(sync[1]);
	sync[1] = -1;

	sb->err_fd = errp[0];
	sb->ready_fd = ready[0];
	sb->go_fd = go[1];
	errp[0] = ready[0] = go[1] = -1;
	sb->ctrl_fd = ctrl[0];
	sb->out_fd = out[0];
	sb->status_fd = status[0];
	return 0;

fail_kill:
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	sb->pid = -1;
	/* a child that failed first closed our pipes: its own line, if it wrote one,
	 * names the cause, ours only the broken pipe */
	read_child_error(errp[0], err, err_size);
fail:
	for (int i = 0; i < 2; i++) {
		if (ctrl[i] >= 0)
			close(ctrl[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (sync[i] >= 0)
			close(sync[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (ready[i] >= 0)
			close(ready[i]);
		if (go[i] >= 0)
			close(go[i]);
		if (status[i] >= 0)
			close(status[i]);
	}
	return r;
}

int tp_sandbox_wait_exec(struct tp_sandbox *sb, char *err, size_t err_size)
{
	/* the error pipe closes on exec; anything read before that is a setup failure */
	bool failed = read_child_error(sb->err_fd, err, err_size);

	close(sb->err_fd);
	sb->err_fd = -1;
	return failed ? -EPERM : 0;
}

int tp_sandbox_wait_ready(struct tp_sandbox *sb, char *err, size_t err_size)
{
	char byte, path[64];
	ssize_t n;
	int fd;

	do
		n = read(sb->ready_fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	close(sb->ready_fd);
	sb->ready_fd = -1;
	if (n != 1) {
		/* the child died on the way: its error pipe says why */
		if (tp_sandbox_wait_exec(sb, err, err_size) == 0)
			snprintf(err, err_size,
				 "sandbox setup failed before the sealed root was ready");
		return -EPIPE;
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)sb->pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_size, "cannot reach the sealed root through %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	return fd;
}

int tp_sandbox_go(struct tp_sandbox *sb)
{
	int r = write(sb->go_fd, "G", 1) == 1 ? 0 : -errno;

	close(sb->go_fd);
	sb->go_fd = -1;
	return r;
}

pid_t tp_sandbox_find_service(struct tp_sandbox *sb)
{
	char path[64], text[64];
	int fd, n;

	if (sb->service_pid > 0)
		return sb->service_pid;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)sb->pid, (int)sb->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT && access("/proc/self/task", F_OK) == 0 ? -ENOSYS : 0;
	n = (int)read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0; /* the service has ended (and been reaped) already */
	text[n] = '\0';
	/* the service is the reaper's first child; orphans come later, if ever */
	sb->service_pid = (pid_t)strtol(text, NULL, 10);
	return sb->service_pid > 0 ? sb->service_pid : 0;
}

enum tp_sandbox_end tp_sandbox_reaped(struct tp_sandbox *sb, int *wait_status)
{
	struct tp_reaper_report r;
	ssize_t n = -1;

	if (sb->status_fd >= 0) {
		do
			n = read(sb->status_fd, &r, sizeof(r));
		while (n < 0 && errno == EINTR);
		close(sb->status_fd);
		sb->status_fd = -1;
	}
	if (n != (ssize_t)sizeof(r))
		return TP_SANDBOX_END_KILLED; /* the reaper itself was killed */
	switch (r.kind) {
	case TP_REAPER_SERVICE:
		*wait_status = r.status;
		return TP_SANDBOX_END_SERVICE;
	case TP_REAPER_DEADLINE:
		return TP_SANDBOX_END_DEADLINE;
	default:
		return TP_SANDBOX_END_REAPER_FAILED;
	}
}
