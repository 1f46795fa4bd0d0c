/* The child between clone and exec. Everything it needs was computed by the
 * supervisor; here it only applies, in an order where each step still has the
 * rights it needs: maps, root, rlimits, fds, capabilities, no_new_privs,
 * Landlock, seccomp stage 1, exec. */
#include "sandbox.h"

#include "landlock.h"
#include "reaper.h"
#include "../manifest/trust.h"
#include "../channel/protocol.h"
#include "../common/clock.h"
#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
 * namespace for the children of the caller (the service; the reaper enters it at
 * its own exec, and keeps only relative time); its offsets are written before anyone enters
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

/* What the child needs, in memory of its own (not the supervisor's stack, which
 * tp_sandbox_spawn leaves while the child still reads it), with the stacks the
 * child and the service run on. Freed by tp_sandbox_close. */
struct spawn_area {
	const struct tp_sandbox_config *cfg;
	int parent_ends[7]; /* the supervisor's ends of the pipes, -1 for none */
	int sync_fd, err_fd, ctrl_fd, out_fd, status_fd;
	struct handshake handshake;
	uint64_t reaper_deadline_ms; /* 0: none */
	sigset_t mask;		     /* the spawning thread's, restored in the child */
	char *stacks;		     /* SPAWN_STACK_SIZE each: the child's, then the service's */
};

/* Deep enough for the root's set-up and a sanitizer build's frames; only the pages
 * touched are ever memory. A page below each is a guard. */
#define SPAWN_STACK_SIZE  (512u * 1024u)
#define SPAWN_GUARD_SIZE  4096u
#define SPAWN_STACKS_SIZE (2 * (SPAWN_GUARD_SIZE + SPAWN_STACK_SIZE))

static char *stack_top(const struct spawn_area *a, int which)
{
	return a->stacks + (size_t)(which + 1) * (SPAWN_GUARD_SIZE + SPAWN_STACK_SIZE);
}

/* pid 1, once the service has exec'd: no capability left, then teepy-reaper
 * (reaper_main.c) executed in its place, with the report pipe as fd 3 and nothing
 * else open but the error pipe, which the exec closes. The reaper's clock runs out
 * a little after teepy's, so that teepy, when it can act, is the one that ends the
 * run and says why. Executed, the reaper has an address space of its own: until
 * then pid 1 may be on teepy's (clone_child), and the OOM killer, choosing a
 * process, kills every process on its memory. */
static void __attribute__((noreturn)) become_reaper(const struct spawn_area *a, pid_t service)
{
	char pid_text[24], deadline_text[24];
	char *argv[] = { TP_REAPER_PROGRAM, pid_text, deadline_text, NULL };
	char *envp[] = { NULL };
	int err_fd = a->err_fd, r;

	snprintf(pid_text, sizeof(pid_text), "%d", (int)service);
	snprintf(deadline_text, sizeof(deadline_text), "%llu",
		 (unsigned long long)a->reaper_deadline_ms);
	if ((r = drop_capabilities(false)) < 0)
		child_die(err_fd, "the reaper's rights: %s", strerror(-r));
	/* 3 the report, 4 the program, 5 the error pipe (both close at the exec); each
	 * copied above them first (RLIMIT_NOFILE may be as low as 32 here) */
	int status = fcntl(a->status_fd, F_DUPFD, 6);
	int program = fcntl(a->cfg->reaper_fd, F_DUPFD_CLOEXEC, 6);
	int err = fcntl(err_fd, F_DUPFD_CLOEXEC, 6);
	if (status < 0 || program < 0 || err < 0)
		child_die(err_fd, "the reaper's fds: %s", strerror(errno));
	if (dup2(status, TP_REAPER_STATUS_FD) < 0 || dup3(program, 4, O_CLOEXEC) < 0 ||
	    dup3(err, 5, O_CLOEXEC) < 0)
		child_die(err, "the reaper's fds: %s", strerror(errno));
	if (syscall(SYS_close_range, 0u, 2u, 0) < 0 || syscall(SYS_close_range, 6u, ~0U, 0) < 0)
		child_die(5, "the reaper's fds: %s", strerror(errno));
	syscall(SYS_execveat, 4, "", argv, envp, AT_EMPTY_PATH);
	child_die(5, "start %s: %s", TP_REAPER_PROGRAM, strerror(errno));
}

static int service_main(void *arg);

/* The supervisor's handlers are not the child's: pid 1 with a handler for a signal
 * would take it from the service (the kernel drops only what pid 1 does not
 * handle), and a handler run on the supervisor's memory would act for it. Each
 * handled signal goes back to its default, as exec would do; ignored ones stay
 * ignored. The child starts with every signal blocked (tp_sandbox_spawn), so none
 * is handled before this. */
static void reset_signal_handlers(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) < 0 || sa.sa_handler == SIG_DFL ||
		    sa.sa_handler == SIG_IGN)
			continue;
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		sigaction(sig, &sa, NULL);
	}
}

static void __attribute__((noreturn)) child_main(struct spawn_area *a)
{
	const struct tp_sandbox_config *cfg = a->cfg;
	int err_fd = a->err_fd;
	char err[400];
	char byte;
	int r;

	reset_signal_handlers();
	sigprocmask(SIG_SETMASK, &a->mask, NULL);
	for (size_t i = 0; i < sizeof(a->parent_ends) / sizeof(a->parent_ends[0]); i++)
		if (a->parent_ends[i] >= 0)
			close(a->parent_ends[i]);

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
	if (read(a->sync_fd, &byte, 1) != 1)
		_exit(127);
	close(a->sync_fd);
	if (cfg->mark)
		cfg->mark("child: in its cgroups, id maps written");
	hide_uptime();

	r = tp_root_enter(cfg->root, cfg->filled_from_outside ? wait_for_files : NULL,
			  &a->handshake, err, sizeof(err));
	if (r < 0)
		child_die(err_fd, "root: %s", err);
	if (cfg->mark)
		cfg->mark("child: root built");
	if (sethostname("teepy", 5) < 0)
		child_die(err_fd, "sethostname: %s", strerror(errno));
	if (chdir(cfg->cwd) < 0)
		child_die(err_fd, "chdir %s: %s", cfg->cwd, strerror(errno));

	/* the last mark on the supervisor's clock: the service's own starts near zero */
	if (cfg->mark)
		cfg->mark("child: root set, fork the service, exec next");
	/* pid 1 stays behind as the reaper; its child goes on to be the service. The
	 * child shares the reaper's memory until its exec (CLONE_VM | CLONE_VFORK: the
	 * reaper waits), so no page table is copied and none torn down: a full fork
	 * cost about 1.2 ms of every start here (bench/RESULTS.md). */
	uint64_t timeout = cfg->limits->set.timeout_ms;
	a->reaper_deadline_ms = timeout ? timeout + TP_REAPER_GRACE_MS : 0;
	pid_t service = clone(service_main, stack_top(a, 1), CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	/* older kernels (Debian 12's 6.1) refuse to share memory with a child bound for
	 * another time namespace (hide_uptime's): there the service takes a copy */
	if (service < 0 && errno == EINVAL)
		service = clone(service_main, stack_top(a, 1), CLONE_VFORK | SIGCHLD, a);
	if (service < 0)
		child_die(err_fd, "start the service: %s", strerror(errno));
	become_reaper(a, service);
}

/* The service, from the reaper's clone to its exec. It runs on its own stack in
 * the reaper's memory, which waits meanwhile: nothing here may leave a lock held
 * or state the reaper reads. */
static int service_main(void *arg)
{
	const struct spawn_area *a = arg;
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
	/* the service's own: RLIMIT_NOFILE may be as low as 32, which the descriptors
	 * inherited from the caller could fill before the moves above */
	if ((r = tp_limits_apply_rlimits(cfg->limits)) < 0)
		child_die(err_fd, "rlimits: %s", strerror(-r));

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
		.write_dirs = cfg->write_dirs,
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

static int child_entry(void *arg)
{
	child_main(arg);
}

#if defined(__x86_64__)
/* clone3 with a stack of the child's own, for CLONE_VM: the child cannot return
 * into C code whose frame is on the parent's stack, so it calls fn(arg) and exits
 * without leaving this instruction sequence (libc has no clone3 wrapper). */
static pid_t clone3_call(struct clone_args *args, int (*fn)(void *), void *arg)
{
	register int (*r12)(void *) __asm__("r12") = fn;
	register void *r13 __asm__("r13") = arg;
	long ret;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov %[exit], %%eax\n\t"
			 "syscall\n\t"
			 "hlt\n"
			 "1:"
			 : "=a"(ret)
			 : "a"((long)SYS_clone3), "D"(args), "S"(sizeof(*args)), "r"(r12),
			   "r"(r13), [exit] "i"(SYS_exit)
			 : "rcx", "r11", "memory");
	return (pid_t)ret < 0 ? (errno = (int)-ret, -1) : (pid_t)ret;
}
#define TP_CLONE3_SHARES 1
#else
#define TP_CLONE3_SHARES 0
#endif

/* AddressSanitizer keeps one stack per thread, by its thread-local state: a child on
 * a stack of its own with the same state draws false reports. Its builds copy. */
#if defined(__SANITIZE_ADDRESS__)
#define TP_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TP_SANITIZED 1
#endif
#endif
#ifndef TP_SANITIZED
#define TP_SANITIZED 0
#endif

/* The child, in its namespaces. It shares our memory (*shares set) until it has
 * exec'd the service: no page table is copied, faulted in or torn down, which took
 * 2.5 ms of every start here (bench/RESULTS.md); its pages are the supervisor's,
 * so tp_sandbox_spawn and tp_sandbox_go return only when it has stopped using the
 * C library. A traced child keeps a copy: the tracer runs beside its set-up (so
 * does a child in an AddressSanitizer build). On
 * cgroup v2, clone3 places it in its cgroup as it is made (*in_v2 set): a move
 * afterwards would take the global lock, a grace period. Where clone3 fails for
 * any reason (a container's seccomp profile answers ENOSYS; the cgroup refuses the
 * child) clone follows and the supervisor moves the child, so that the error, if
 * it recurs, is reported by the step it belongs to: the namespaces, or the
 * cgroup's file. Returns as clone does. */
static pid_t clone_child(struct spawn_area *a, bool *in_v2, bool *shares)
{
	const struct tp_sandbox_config *cfg = a->cfg;
	int flags = NAMESPACES | SIGCHLD;
	bool share = !cfg->tracer && !TP_SANITIZED;
	pid_t pid = -1;

	*in_v2 = *shares = false;
	if (cfg->join && cfg->join->v2_dir_fd >= 0 && (TP_CLONE3_SHARES || !share)) {
		struct clone_args args = {
			.flags = NAMESPACES | CLONE_INTO_CGROUP | (share ? CLONE_VM : 0),
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)cfg->join->v2_dir_fd,
		};
		if (share) {
#if TP_CLONE3_SHARES
			args.stack = (uint64_t)(uintptr_t)a->stacks + SPAWN_GUARD_SIZE;
			args.stack_size = SPAWN_STACK_SIZE;
			pid = clone3_call(&args, child_entry, a);
#endif
		} else {
			pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
			if (pid == 0)
				child_main(a);
		}
		if (pid > 0) {
			*in_v2 = true;
			*shares = share;
			return pid;
		}
	}
	if (!share) {
		/* a copy goes on on its copy of this stack, which a sanitizer knows */
		pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
		if (pid == 0)
			child_main(a);
		return pid;
	}
	pid = clone(child_entry, stack_top(a, 0), flags | CLONE_VM, a);
	*shares = pid > 0;
	return pid;
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

/* A child on our memory has this long after the deadline or a cancel to reach its
 * exec before it is killed: killed inside malloc or stdio it would leave our heap
 * or a lock half changed, and a set-up takes a few ms; one still going after a
 * second is stuck in a system call (a hung file system under an --allow path). */
#define STOP_GRACE_MS 1000

/* Until fd is readable (or closed). The deadline passing or the caller cancelling
 * sets sb->stopped (the runner's watch ends the run once the child has exec'd);
 * a child that has not reached its exec STOP_GRACE_MS later is killed. Only for a
 * child on our memory, whose set-up tp_sandbox_spawn and tp_sandbox_go wait for.
 * errno is not looked at: the child writes it too. */
static void await_readable(struct tp_sandbox *sb, int fd)
{
	struct pollfd fds[2] = { { .fd = fd, .events = POLLIN },
				 { .fd = sb->cancel_fd, .events = POLLIN } };
	struct timespec grace_end = { 0 };

	while (sb->deadline) {
		const struct timespec *until = sb->stopped ? &grace_end : sb->deadline;
		int wait = tp_ms_until(until);
		int n = poll(fds, sb->stopped ? 1 : 2, wait);
		if (n > 0 && fds[0].revents)
			return;
		if (n < 0)
			continue; /* EINTR: nothing else can fail with these descriptors */
		if (n > 0 && (fds[1].revents & POLLIN))
			sb->stopped = TP_SANDBOX_CANCELLED;
		else if (n > 0 && fds[1].revents)
			fds[1].fd = -1; /* the caller closed its end: no cancel can come */
		else if (n == 0 && wait == 0 && sb->stopped)
			break; /* the grace is over */
		else if (n == 0 && wait == 0)
			sb->stopped = TP_SANDBOX_TIMED_OUT;
		if (sb->stopped && !grace_end.tv_sec) {
			clock_gettime(CLOCK_MONOTONIC, &grace_end);
			grace_end.tv_sec += STOP_GRACE_MS / 1000;
		}
	}
	if (sb->deadline)
		kill(sb->pid, SIGKILL);
}

/* The child's setup failure, if it reported one, into sb; the error pipe read
 * until it closes: on the service's exec, once the reaper has exec'd too (or the
 * child died). */
static void await_exec(struct tp_sandbox *sb)
{
	if (sb->err_fd < 0)
		return;
	if (sb->shares_memory)
		await_readable(sb, sb->err_fd);
	sb->setup_failed = read_child_error(sb->err_fd, sb->setup_err, sizeof(sb->setup_err));
	close(sb->err_fd);
	sb->err_fd = -1;
}

/* Sealed root: until the child stands in its empty root, then an O_PATH descriptor
 * of that root (through /proc/PID/root) into sb->root_fd; or the reason not. */
static void await_ready(struct tp_sandbox *sb)
{
	char byte, path[64];
	ssize_t n;

	if (sb->ready_fd < 0)
		return;
	if (sb->shares_memory)
		await_readable(sb, sb->ready_fd);
	do
		n = read(sb->ready_fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	close(sb->ready_fd);
	sb->ready_fd = -1;
	if (n != 1) {
		/* the child died on the way: its error pipe says why */
		await_exec(sb);
		if (!sb->setup_failed)
			snprintf(sb->setup_err, sizeof(sb->setup_err),
				 "sandbox setup failed before the sealed root was ready");
		sb->root_fd = -EPIPE;
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)sb->pid);
	sb->root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sb->root_fd < 0) {
		sb->root_fd = -errno;
		snprintf(sb->setup_err, sizeof(sb->setup_err),
			 "cannot reach the sealed root through %s: %s", path, strerror(errno));
	}
}

static void free_area(struct spawn_area *a)
{
	if (!a)
		return;
	if (a->stacks)
		munmap(a->stacks, SPAWN_STACKS_SIZE);
	free(a);
}

/* The child's memory of its own: the arguments and two stacks, each above a guard. */
static struct spawn_area *new_area(const struct tp_sandbox_config *cfg)
{
	struct spawn_area *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->cfg = cfg;
	a->stacks = mmap(NULL, SPAWN_STACKS_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (a->stacks == MAP_FAILED) {
		a->stacks = NULL;
		free_area(a);
		return NULL;
	}
	if (mprotect(a->stacks, SPAWN_GUARD_SIZE, PROT_NONE) < 0 ||
	    mprotect(a->stacks + SPAWN_GUARD_SIZE + SPAWN_STACK_SIZE, SPAWN_GUARD_SIZE, PROT_NONE) <
		0) {
		free_area(a);
		return NULL;
	}
	return a;
}

int tp_sandbox_spawn(const struct tp_sandbox_config *cfg, struct tp_sandbox *sb, char *err,
		     size_t err_size)
{
	int ctrl[2] = { -1, -1 }, out[2] = { -1, -1 }, sync[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int ready[2] = { -1, -1 }, go[2] = { -1, -1 }, status[2] = { -1, -1 };
	bool in_v2 = false, shares = false;
	struct spawn_area *a = NULL;
	pid_t pid;
	int r;

	*sb = (struct tp_sandbox){ .pid = -1,
				   .service_pid = -1,
				   .status_fd = -1,
				   .ctrl_fd = -1,
				   .out_fd = -1,
				   .err_fd = -1,
				   .ready_fd = -1,
				   .go_fd = -1,
				   .root_fd = -1 };
	if (cfg->handed_count > TP_SANDBOX_MAX_HANDED) {
		snprintf(err, err_size, "at most %d descriptors can be handed to the service",
			 TP_SANDBOX_MAX_HANDED);
		return -E2BIG;
	}
	if (!(a = new_area(cfg))) {
		r = -ENOMEM;
		snprintf(err, err_size, "cannot allocate the child's stacks: %s", strerror(ENOMEM));
		goto fail;
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
	a->sync_fd = sync[0];
	a->err_fd = errp[1];
	a->ctrl_fd = ctrl[1];
	a->out_fd = out[1];
	a->status_fd = status[1];
	a->handshake =
	    (struct handshake){ .ready_fd = ready[1], .go_fd = go[0], .mark = cfg->mark };
	int parent_ends[] = { ctrl[0], out[0], sync[1], errp[0], status[0], ready[0], go[1] };
	memcpy(a->parent_ends, parent_ends, sizeof(parent_ends));

	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &a->mask);
	pid = clone_child(a, &in_v2, &shares);
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &a->mask, NULL);
	errno = clone_errno;
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

	sb->area = a;
	sb->shares_memory = shares;
	sb->deadline = cfg->deadline;
	sb->cancel_fd = cfg->cancel_fd;
	sb->err_fd = errp[0];
	sb->ready_fd = ready[0];
	sb->go_fd = go[1];
	errp[0] = ready[0] = go[1] = -1;
	sb->ctrl_fd = ctrl[0];
	sb->out_fd = out[0];
	sb->status_fd = status[0];
	/* a child on our memory runs the C library on this thread's state: nothing else
	 * may until it waits for its files or has exec'd the service */
	if (shares && cfg->filled_from_outside)
		await_ready(sb);
	else if (shares)
		await_exec(sb);
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
		int *fds[] = {
			&ctrl[i], &out[i], &sync[i], &errp[i], &ready[i], &go[i], &status[i]
		};
		for (size_t j = 0; j < sizeof(fds) / sizeof(fds[0]); j++)
			if (*fds[j] >= 0)
				close(*fds[j]);
	}
	free_area(a);
	return r;
}

int tp_sandbox_wait_exec(struct tp_sandbox *sb, char *err, size_t err_size)
{
	/* anything the child wrote before its exec is a setup failure */
	await_exec(sb);
	if (sb->setup_failed)
		snprintf(err, err_size, "%s", sb->setup_err);
	return sb->setup_failed ? -EPERM : 0;
}

int tp_sandbox_wait_ready(struct tp_sandbox *sb, char *err, size_t err_size)
{
	int fd;

	await_ready(sb);
	fd = sb->root_fd;
	sb->root_fd = -1;
	if (fd < 0)
		snprintf(err, err_size, "%s", sb->setup_err);
	return fd;
}

int tp_sandbox_go(struct tp_sandbox *sb)
{
	/* a child on our memory that would only be stopped is stopped now, while it
	 * waits in a read (await_readable) */
	if (sb->shares_memory && sb->deadline) {
		struct pollfd cancel = { .fd = sb->cancel_fd, .events = POLLIN };
		if (tp_ms_until(sb->deadline) == 0)
			sb->stopped = TP_SANDBOX_TIMED_OUT;
		else if (poll(&cancel, 1, 0) > 0 && (cancel.revents & POLLIN))
			sb->stopped = TP_SANDBOX_CANCELLED;
		if (sb->stopped) {
			kill(sb->pid, SIGKILL);
			close(sb->go_fd);
			sb->go_fd = -1;
			return -ECANCELED;
		}
	}
	int r = write(sb->go_fd, "G", 1) == 1 ? 0 : -errno;

	close(sb->go_fd);
	sb->go_fd = -1;
	/* the child builds the rest of its root on our memory (clone_child) */
	if (sb->shares_memory)
		await_exec(sb);
	return r;
}

void tp_sandbox_close(struct tp_sandbox *sb)
{
	int *fds[] = { &sb->ctrl_fd,  &sb->out_fd,    &sb->err_fd, &sb->go_fd,
		       &sb->ready_fd, &sb->status_fd, &sb->root_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	free_area(sb->area);
	sb->area = NULL;
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
