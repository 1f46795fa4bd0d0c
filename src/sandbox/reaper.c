/* The reaper: pid 1 of the service's pid namespace, the service's parent. Its loop
 * runs in teepy-reaper (reaper_main.c), which pid 1 executes.
 *
 * It is there so that two rules rest on more than the service's good manners.
 * The kernel ignores every signal the service sends its namespace's init (only
 * the supervisor, outside, can kill it), the reaper is not dumpable and holds no
 * capability, and its seccomp filter lets it make eight calls. When it ends, for
 * any reason, the kernel kills everything left in the namespace. So:
 *  - teepy's death ends the run: the reaper's parent-death signal, which the
 *    service cannot reach, takes the namespace down with it;
 *  - the wall clock holds even when teepy cannot act (stopped, starved): the
 *    reaper keeps its own deadline, a little after teepy's. */
#include "reaper.h"
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALLOW_NR(nr)                                                                               \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                                           \
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* What the loop below calls, and nothing else. clock_gettime normally stays in the
 * vDSO; it is here for the kernels where it does not. sigaltstack only reads or sets
 * the reaper's own signal stack: a sanitizer build's runtime asks for it. */
static const struct sock_filter reaper_filter[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TP_AUDIT_ARCH, 1, 0),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	ALLOW_NR(__NR_wait4),
	ALLOW_NR(__NR_rt_sigtimedwait),
	ALLOW_NR(__NR_write),
	ALLOW_NR(__NR_exit_group),
	ALLOW_NR(__NR_exit),
	ALLOW_NR(__NR_rt_sigreturn),
	ALLOW_NR(__NR_clock_gettime),
	ALLOW_NR(__NR_sigaltstack),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void __attribute__((noreturn)) report(int status_fd, uint32_t kind, int32_t status)
{
	struct tp_reaper_report r = { .kind = kind, .status = status };

	/* one write of 8 bytes to a pipe: whole or not at all */
	if (syscall(SYS_write, status_fd, &r, sizeof(r)) != (long)sizeof(r)) {
		/* the supervisor is gone; ending is all that is left */
	}
	syscall(SYS_exit_group, 0);
	__builtin_unreachable();
}

void tp_reaper_run(pid_t service, int status_fd, uint64_t deadline_ms)
{
	const struct sock_fprog prog = {
		.len = sizeof(reaper_filter) / sizeof(reaper_filter[0]),
		.filter = (struct sock_filter *)reaper_filter,
	};
	uint64_t end = deadline_ms ? now_ms() + deadline_ms : 0;
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	/* blocked, so a child's end stays pending for sigtimedwait (and a SIGCHLD the
	 * service sends us only wakes the loop); one that came before is found by the
	 * loop's first wait4 */
	sigprocmask(SIG_BLOCK, &chld, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		/* no filter, no reaper: the run ends here rather than with one layer less */
		report(status_fd, TP_REAPER_FAILED, errno);
	}

	for (;;) {
		int status;
		pid_t pid;

		/* orphans of the service come to us too; reap them all */
		while ((pid = (pid_t)syscall(SYS_wait4, -1, &status, WNOHANG | __WALL, NULL)) > 0)
			if (pid == service)
				report(status_fd, TP_REAPER_SERVICE, status);
		if (pid < 0 && errno == ECHILD)
			report(status_fd, TP_REAPER_FAILED, ECHILD);

		struct timespec wait = { .tv_sec = 3600 };
		if (end) {
			uint64_t t = now_ms();
			if (t >= end)
				report(status_fd, TP_REAPER_DEADLINE, 0);
			wait.tv_sec = (time_t)((end - t) / 1000u);
			wait.tv_nsec = (long)((end - t) % 1000u) * 1000000L;
		}
		syscall(SYS_rt_sigtimedwait, &chld, NULL, &wait, sizeof(uint64_t));
	}
}
