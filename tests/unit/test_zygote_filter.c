/* The filter a zygote's child installs on itself (src/pyboot/zygote_filter.c),
 * installed for real in a forked process: the kernel holds it there alone, without
 * the sandbox's stages. Calls naming the child itself work; naming its parent (a
 * stand-in for a sibling) they get EPERM, as do a new process, exec, System V IPC
 * and a message queue; a thread can still be made. */
#include "test.h"
#include "../../src/pyboot/zygote_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* What one call gave: 0 or the errno. */
static int call(long nr, long a, long b, long c)
{
	return syscall(nr, a, b, c, 0, 0, 0) < 0 ? errno : 0;
}

static void *nothing(void *arg)
{
	return arg;
}

enum {
	SELF_KILL,
	SELF_KILL0,
	SELF_PRLIMIT,
	SELF_TGKILL,
	PARENT_KILL,
	PARENT_TKILL,
	PARENT_TGKILL,
	PARENT_PIDFD,
	PARENT_PRLIMIT,
	PARENT_SIGQUEUE,
	PARENT_AFFINITY,
	PARENT_PRIO,
	USER_PRIO,
	GROUP_KILL,
	FORK,
	CLONE,
	EXEC,
	SHMGET,
	SEMGET,
	MSGGET,
	MQ_OPEN,
	SETPGID,
	SETOWN_PARENT,
	IOCTL_SETOWN,
	IOCTL_SPGRP,
	PIDFD_SIGNAL,
	SETOWN_SELF,
	SETOWN_EX,
	IOCTL_OTHER,
	THREAD,
	RESULTS
};

static void child(int out)
{
	struct sock_filter insns[TP_CHILD_FILTER_MAX];
	pid_t self = getpid(), parent = getppid();
	int n = tp_child_filter_build(self, insns, TP_CHILD_FILTER_MAX);
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = insns };
	int r[RESULTS], pipefd[2];
	struct rlimit rl;
	cpu_set_t cpus;
	pthread_t t;

	if (n < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || pipe(pipefd) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		_exit(2);
	getrlimit(RLIMIT_NOFILE, &rl);
	sched_getaffinity(0, sizeof(cpus), &cpus);
	r[SELF_KILL] = call(SYS_kill, self, 0, 0);
	r[SELF_KILL0] = call(SYS_kill, 0, 0, 0);
	r[SELF_PRLIMIT] = call(SYS_prlimit64, 0, RLIMIT_NOFILE, 0);
	r[SELF_TGKILL] = call(SYS_tgkill, self, self, 0);
	r[PARENT_KILL] = call(SYS_kill, parent, 0, 0);
	r[PARENT_TKILL] = call(SYS_tkill, parent, 0, 0);
	r[PARENT_TGKILL] = call(SYS_tgkill, parent, parent, 0);
	r[PARENT_PIDFD] = call(SYS_pidfd_open, parent, 0, 0);
	r[PARENT_PRLIMIT] = call(SYS_prlimit64, parent, RLIMIT_NOFILE, 0);
	r[PARENT_SIGQUEUE] = call(SYS_rt_sigqueueinfo, parent, 0, 0);
	r[PARENT_AFFINITY] =
	    syscall(SYS_sched_setaffinity, parent, sizeof(cpus), &cpus) < 0 ? errno : 0;
	r[PARENT_PRIO] = call(SYS_setpriority, PRIO_PROCESS, parent, 0);
	r[USER_PRIO] = call(SYS_setpriority, PRIO_USER, 0, 0);
	r[GROUP_KILL] = call(SYS_kill, -parent, 0, 0);
	r[FORK] = call(SYS_fork, 0, 0, 0);
	r[CLONE] = call(SYS_clone, SIGCHLD, 0, 0);
	r[EXEC] = call(SYS_execve, (long)"/bin/true", 0, 0);
	r[SHMGET] = call(SYS_shmget, 0, 4096, 01000);
	r[SEMGET] = call(SYS_semget, 0, 1, 01000);
	r[MSGGET] = call(SYS_msgget, 0, 01000, 0);
	r[MQ_OPEN] = call(SYS_mq_open, (long)"q", O_CREAT | O_RDWR, 0600);
	r[SETPGID] = call(SYS_setpgid, 0, 0, 0);
	r[SETOWN_PARENT] = call(SYS_fcntl, pipefd[0], F_SETOWN, parent);
	r[IOCTL_SETOWN] =
	    syscall(SYS_ioctl, pipefd[0], 0x8901 /* FIOSETOWN */, &parent) < 0 ? errno : 0;
	r[IOCTL_SPGRP] =
	    syscall(SYS_ioctl, pipefd[0], 0x8902 /* SIOCSPGRP */, &parent) < 0 ? errno : 0;
	r[PIDFD_SIGNAL] = call(SYS_pidfd_send_signal, 0, 0, 0);
	r[IOCTL_OTHER] = syscall(SYS_ioctl, pipefd[0], FIONREAD, &n) < 0 ? errno : 0;
	r[SETOWN_SELF] = call(SYS_fcntl, pipefd[0], F_SETOWN, self);
	r[SETOWN_EX] = call(SYS_fcntl, pipefd[0], F_SETOWN_EX, 0);
	r[THREAD] = pthread_create(&t, NULL, nothing, NULL);
	if (r[THREAD] == 0)
		pthread_join(t, NULL);
	(void)!write(out, r, sizeof(r));
	_exit(0);
}

static void test_the_child_filter_holds_alone(void)
{
	int fds[2], r[RESULTS] = { 0 }, status = -1;
	pid_t pid;

	CHECK(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child(fds[1]);
	}
	close(fds[1]);
	CHECK(read(fds[0], r, sizeof(r)) == (ssize_t)sizeof(r));
	close(fds[0]);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* itself: allowed (the kernel answers) */
	CHECK(r[SELF_KILL] == 0 && r[SELF_KILL0] == 0 && r[SELF_PRLIMIT] == 0 &&
	      r[SELF_TGKILL] == 0 && r[SETOWN_SELF] == 0 && r[THREAD] == 0 && r[IOCTL_OTHER] == 0);
	/* another process, a new one, exec, IPC, SIGIO's owner by ioctl, a pidfd: the
	 * filter's EPERM */
	for (int i = PARENT_KILL; i <= PIDFD_SIGNAL; i++)
		CHECK(r[i] == EPERM);
	CHECK(r[SETOWN_EX] == EPERM);
}

static void test_the_child_filter_fits_and_says_when_it_does_not(void)
{
	struct sock_filter insns[TP_CHILD_FILTER_MAX];

	CHECK(tp_child_filter_build(1234, insns, TP_CHILD_FILTER_MAX) > 0);
	CHECK(tp_child_filter_build(1234, insns, 10) == -1);
}

const struct tp_test zygote_filter_tests[] = {
	{ "zygote child filter: itself yes, another process no, held by the kernel alone",
	  test_the_child_filter_holds_alone },
	{ "zygote child filter: fits its room",
	  test_the_child_filter_fits_and_says_when_it_does_not },
	END_TESTS,
};
