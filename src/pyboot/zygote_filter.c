/* The zygote child's filter (zygote_filter.h), written as BPF by hand: it holds the
 * child's own pid, known only after the fork, inside the sandbox, where no
 * libseccomp is. Each rule is a block: "if nr == N" then a body that ends in a
 * return; a call no block names is left to the filters below (stage 2). */
#include "zygote_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH_*"
#endif

/* the low word of an argument (little-endian): pids, commands and flags are ints */
#define ARG(i) ((uint32_t)offsetof(struct seccomp_data, args[i]))
#define NR     ((uint32_t)offsetof(struct seccomp_data, nr))

#define ALLOW  SECCOMP_RET_ALLOW
#define EPERM_ (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

struct prog {
	struct sock_filter *insns;
	size_t count, cap;
	bool full;
};

static void emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->count == p->cap) {
		p->full = true;
		return;
	}
	p->insns[p->count++] = (struct sock_filter){ code, jt, jf, k };
}

static void load(struct prog *p, uint32_t offset)
{
	emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offset);
}

static void ret(struct prog *p, uint32_t action)
{
	emit(p, BPF_RET | BPF_K, 0, 0, action);
}

/* "if nr == nr_ then the next len instructions, else past them" */
static void when(struct prog *p, long nr, uint8_t len)
{
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, len, (uint32_t)nr);
}

static void deny(struct prog *p, long nr)
{
	when(p, nr, 1);
	ret(p, EPERM_);
}

/* Argument arg must name the child: self, or 0 when zero_ok ("the caller"), or -self
 * when group_ok (its process group, of which it is the only member). */
static void self_only(struct prog *p, long nr, unsigned arg, pid_t self, bool zero_ok,
		      bool group_ok)
{
	uint8_t checks = (uint8_t)(1 + zero_ok + group_ok);

	when(p, nr, (uint8_t)(1 + checks + 2));
	load(p, ARG(arg));
	/* each check jumps to the ALLOW at the end: past the remaining checks and EPERM */
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint8_t)(checks - 1 + 1), 0, (uint32_t)self);
	if (zero_ok)
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint8_t)(checks - 2 + 1), 0, 0);
	if (group_ok)
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, (uint32_t)-self);
	ret(p, EPERM_);
	ret(p, ALLOW);
}

int tp_child_filter_build(pid_t self, struct sock_filter *insns, size_t cap)
{
	struct prog p = { .insns = insns, .cap = cap };

	load(&p, (uint32_t)offsetof(struct seccomp_data, arch));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, ARCH);
	ret(&p, SECCOMP_RET_KILL_PROCESS);
	load(&p, NR);
#ifdef __x86_64__
	/* x32's numbers (the bit 0x40000000): none of the blocks below would see them
	 * (stage 2 kills them too) */
	emit(&p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x40000000u);
	ret(&p, SECCOMP_RET_KILL_PROCESS);
#endif

	/* no new process, no new program */
#ifdef SYS_fork
	deny(&p, SYS_fork);
	deny(&p, SYS_vfork);
#endif
	deny(&p, SYS_execve);
	deny(&p, SYS_execveat);
	when(&p, SYS_clone, 4);
	load(&p, ARG(0));
	emit(&p, BPF_JMP | BPF_JSET | BPF_K, 1, 0, CLONE_THREAD);
	ret(&p, EPERM_);
	ret(&p, ALLOW);

	/* signals and handles: only to itself (another child is a sibling in the same
	 * namespaces, with the same ids) */
	self_only(&p, SYS_kill, 0, self, true, true);
	self_only(&p, SYS_tkill, 0, self, false, false);
	self_only(&p, SYS_tgkill, 0, self, false, false);
	self_only(&p, SYS_rt_sigqueueinfo, 0, self, false, false);
	self_only(&p, SYS_rt_tgsigqueueinfo, 0, self, false, false);
	self_only(&p, SYS_pidfd_open, 0, self, false, false);
	self_only(&p, SYS_prlimit64, 0, self, true, false);
	self_only(&p, SYS_get_robust_list, 0, self, true, false);
	self_only(&p, SYS_sched_setaffinity, 0, self, true, false);
	self_only(&p, SYS_sched_setparam, 0, self, true, false);
	self_only(&p, SYS_sched_setscheduler, 0, self, true, false);
	self_only(&p, SYS_sched_setattr, 0, self, true, false);

	/* setpriority(which, who): a user's processes never; a process or the group
	 * (which is the child alone) only by 0 or its pid */
	when(&p, SYS_setpriority, 7);
	load(&p, ARG(0));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 3, 0, PRIO_USER);
	load(&p, ARG(1));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 0);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, (uint32_t)self);
	ret(&p, EPERM_);
	ret(&p, ALLOW);

	/* fcntl F_SETOWN names who gets SIGIO (and SIGURG): itself only; F_SETOWN_EX
	 * passes its pid in memory the filter cannot read */
	when(&p, SYS_fcntl, 9);
	load(&p, ARG(1));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 5, 0, F_SETOWN_EX);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 5, F_SETOWN);
	load(&p, ARG(2));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 3, 0, (uint32_t)self);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 0);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, (uint32_t)-self);
	ret(&p, EPERM_);
	ret(&p, ALLOW);

	/* ioctl FIOSETOWN and SIOCSPGRP are F_SETOWN by another name (stage 2 allows
	 * ioctl whole): refused, whatever the pid (in memory the filter cannot read) */
	when(&p, SYS_ioctl, 5);
	load(&p, ARG(1));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, FIOSETOWN);
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, SIOCSPGRP);
	ret(&p, EPERM_);
	ret(&p, ALLOW);
	/* a pidfd names only itself (pidfd_open above), but one it did not open is
	 * refused as well */
	deny(&p, SYS_pidfd_send_signal);

	/* its process group is its own (set before the filter): it stays so */
	deny(&p, SYS_setpgid);
	deny(&p, SYS_setsid);

	/* one IPC namespace for every child of the zygote: none of its objects */
	static const long ipc[] = {
		SYS_shmget,    SYS_shmat,	  SYS_shmctl,	    SYS_shmdt,
		SYS_semget,    SYS_semop,	  SYS_semtimedop,   SYS_semctl,
		SYS_msgget,    SYS_msgsnd,	  SYS_msgrcv,	    SYS_msgctl,
		SYS_mq_open,   SYS_mq_unlink,	  SYS_mq_timedsend, SYS_mq_timedreceive,
		SYS_mq_notify, SYS_mq_getsetattr,
	};
	for (size_t i = 0; i < sizeof(ipc) / sizeof(ipc[0]); i++)
		deny(&p, ipc[i]);

	ret(&p, ALLOW);
	return p.full ? -1 : (int)p.count;
}
