/* The seccomp filter a zygote's child installs on itself before it reads its input
 * (docs/zygote.md): stacked on stage 2, it takes away what the zygote needed and an
 * invocation must not have. No new process (fork, vfork, a clone without
 * CLONE_THREAD) and no exec; every call that names another process (kill, tgkill,
 * tkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_open, prlimit64, the sched_set*
 * calls, setpriority, get_robust_list, fcntl F_SETOWN) may name only the child itself
 * (or 0, "myself"); F_SETOWN_EX, whose pid the filter cannot see, setpgid, setsid,
 * System V IPC and POSIX message queues (shared by every child of the zygote) are
 * refused. Every refusal is EPERM. The child's pid is in the program: it is built in
 * the child, after its fork. Pure: no OS call. */
#ifndef TEEPY_PYBOOT_ZYGOTE_FILTER_H
#define TEEPY_PYBOOT_ZYGOTE_FILTER_H

#include <linux/filter.h>
#include <stddef.h>
#include <sys/types.h>

/* Enough room for the program. */
#define TP_CHILD_FILTER_MAX 256

/* Writes the program for a child whose pid (in its namespace) is self into insns
 * (room for cap instructions). Returns the count, or -1 when cap is too small. */
int tp_child_filter_build(pid_t self, struct sock_filter *insns, size_t cap);

#endif
