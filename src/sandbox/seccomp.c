/* The seccomp policy as data: what a sandboxed service may ask of the kernel.
 *
 * Default deny: a call not named here fails with ENOSYS (libc then falls back,
 * as on an old kernel). Calls that would leave the sandbox or touch the host
 * fail with EPERM so Python raises PermissionError. Calls that only an attack on
 * the kernel makes end the process (SECCOMP_RET_KILL_PROCESS: nothing in the
 * process can catch it, unlike a trap whose handler native code could replace).
 * Integer arguments are compared on their low 32 bits only, as the kernel reads them. */
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

enum action { ALLOW, DENY_EPERM, DENY_ENOSYS, KILL };

struct rule {
	const char *name;
	enum action action;
};

/* Plain rules, no argument checks. */
static const struct rule rules[] = {
	/* files: reads, and writes that Landlock and the read-only root refuse */
	{ "read", ALLOW },
	{ "write", ALLOW },
	{ "open", ALLOW },
	{ "openat", ALLOW },
	{ "openat2", ALLOW },
	{ "close", ALLOW },
	{ "close_range", ALLOW },
	{ "stat", ALLOW },
	{ "fstat", ALLOW },
	{ "lstat", ALLOW },
	{ "newfstatat", ALLOW },
	{ "statx", ALLOW },
	{ "lseek", ALLOW },
	{ "pread64", ALLOW },
	{ "pwrite64", ALLOW },
	{ "readv", ALLOW },
	{ "writev", ALLOW },
	{ "preadv", ALLOW },
	{ "pwritev", ALLOW },
	{ "preadv2", ALLOW },
	{ "pwritev2", ALLOW },
	{ "access", ALLOW },
	{ "faccessat", ALLOW },
	{ "faccessat2", ALLOW },
	{ "getdents", ALLOW },
	{ "getdents64", ALLOW },
	{ "getcwd", ALLOW },
	{ "chdir", ALLOW },
	{ "fchdir", ALLOW },
	{ "readlink", ALLOW },
	{ "readlinkat", ALLOW },
	{ "statfs", ALLOW },
	{ "fstatfs", ALLOW },
	{ "flock", ALLOW },
	{ "fsync", ALLOW },
	{ "fdatasync", ALLOW },
	{ "sync_file_range", ALLOW },
	{ "fadvise64", ALLOW },
	{ "readahead", ALLOW },
	{ "getxattr", ALLOW },
	{ "lgetxattr", ALLOW },
	{ "fgetxattr", ALLOW },
	{ "listxattr", ALLOW },
	{ "llistxattr", ALLOW },
	{ "flistxattr", ALLOW },
	{ "dup", ALLOW },
	{ "dup2", ALLOW },
	{ "dup3", ALLOW },
	{ "pipe", ALLOW },
	{ "pipe2", ALLOW },
	{ "sendfile", ALLOW },
	{ "splice", ALLOW },
	{ "tee", ALLOW },
	{ "vmsplice", ALLOW },
	{ "copy_file_range", ALLOW },
	{ "mkdir", ALLOW },
	{ "mkdirat", ALLOW },
	{ "rmdir", ALLOW },
	{ "creat", ALLOW },
	{ "link", ALLOW },
	{ "linkat", ALLOW },
	{ "unlink", ALLOW },
	{ "unlinkat", ALLOW },
	{ "symlink", ALLOW },
	{ "symlinkat", ALLOW },
	{ "rename", ALLOW },
	{ "renameat", ALLOW },
	{ "renameat2", ALLOW },
	{ "chmod", ALLOW },
	{ "fchmod", ALLOW },
	{ "fchmodat", ALLOW },
	{ "truncate", ALLOW },
	{ "ftruncate", ALLOW },
	{ "fallocate", ALLOW },
	{ "utime", ALLOW },
	{ "utimes", ALLOW },
	{ "utimensat", ALLOW },
	{ "futimesat", ALLOW },
	{ "umask", ALLOW },

	/* memory */
	{ "brk", ALLOW },
	{ "mmap", ALLOW },
	{ "munmap", ALLOW },
	{ "mremap", ALLOW },
	{ "mprotect", ALLOW },
	{ "madvise", ALLOW },
	{ "msync", ALLOW },
	{ "mincore", ALLOW },
	{ "mlock", ALLOW },
	{ "mlock2", ALLOW },
	{ "munlock", ALLOW },
	{ "mlockall", ALLOW },
	{ "munlockall", ALLOW },
	{ "memfd_create", ALLOW },
	{ "membarrier", ALLOW },
	{ "get_mempolicy", ALLOW },
	{ "set_mempolicy", ALLOW },
	{ "mbind", ALLOW },
	{ "pkey_alloc", ALLOW },
	{ "pkey_free", ALLOW },
	{ "pkey_mprotect", ALLOW },
	{ "map_shadow_stack", ALLOW },

	/* threads, signals, scheduling, time */
	{ "futex", ALLOW },
	{ "futex_waitv", ALLOW },
	{ "set_robust_list", ALLOW },
	{ "get_robust_list", ALLOW },
	{ "set_tid_address", ALLOW },
	{ "rseq", ALLOW },
	{ "arch_prctl", ALLOW },
	{ "gettid", ALLOW },
	{ "getpid", ALLOW },
	{ "getppid", ALLOW },
	{ "exit", ALLOW },
	{ "exit_group", ALLOW },
	{ "wait4", ALLOW },
	{ "waitid", ALLOW },
	{ "kill", ALLOW },
	{ "tkill", ALLOW },
	{ "tgkill", ALLOW },
	{ "rt_sigaction", ALLOW },
	{ "rt_sigprocmask", ALLOW },
	{ "rt_sigreturn", ALLOW },
	{ "rt_sigpending", ALLOW },
	{ "rt_sigtimedwait", ALLOW },
	{ "rt_sigqueueinfo", ALLOW },
	{ "rt_tgsigqueueinfo", ALLOW },
	{ "rt_sigsuspend", ALLOW },
	{ "sigaltstack", ALLOW },
	{ "pause", ALLOW },
	{ "restart_syscall", ALLOW },
	{ "sched_yield", ALLOW },
	{ "sched_getaffinity", ALLOW },
	{ "sched_setaffinity", ALLOW },
	{ "sched_getparam", ALLOW },
	{ "sched_setparam", ALLOW },
	{ "sched_getscheduler", ALLOW },
	{ "sched_setscheduler", ALLOW },
	{ "sched_getattr", ALLOW },
	{ "sched_setattr", ALLOW },
	{ "sched_get_priority_max", ALLOW },
	{ "sched_get_priority_min", ALLOW },
	{ "sched_rr_get_interval", ALLOW },
	{ "getpriority", ALLOW },
	{ "setpriority", ALLOW },
	{ "ioprio_get", ALLOW },
	{ "getcpu", ALLOW },
	{ "nanosleep", ALLOW },
	{ "clock_nanosleep", ALLOW },
	{ "clock_gettime", ALLOW },
	{ "clock_getres", ALLOW },
	{ "gettimeofday", ALLOW },
	{ "time", ALLOW },
	{ "times", ALLOW },
	{ "getitimer", ALLOW },
	{ "setitimer", ALLOW },
	{ "alarm", ALLOW },
	{ "timer_create", ALLOW },
	{ "timer_settime", ALLOW },
	{ "timer_gettime", ALLOW },
	{ "timer_getoverrun", ALLOW },
	{ "timer_delete", ALLOW },
	{ "timerfd_create", ALLOW },
	{ "timerfd_settime", ALLOW },
	{ "timerfd_gettime", ALLOW },
	{ "signalfd", ALLOW },
	{ "signalfd4", ALLOW },
	{ "eventfd", ALLOW },
	{ "eventfd2", ALLOW },

	/* waiting on file descriptors */
	{ "poll", ALLOW },
	{ "ppoll", ALLOW },
	{ "select", ALLOW },
	{ "pselect6", ALLOW },
	{ "epoll_create", ALLOW },
	{ "epoll_create1", ALLOW },
	{ "epoll_ctl", ALLOW },
	{ "epoll_wait", ALLOW },
	{ "epoll_pwait", ALLOW },
	{ "epoll_pwait2", ALLOW },

	/* sockets: only connected AF_UNIX stream pairs can be made (see the argument
	 * rules); naming a socket file would reach a daemon of the host through a
	 * visible directory, so nothing can be connected, bound or listened on. A
	 * service with a handed socket may accept on it (argument rules: accept,
	 * accept4 and the sends) */
	{ "connect", DENY_EPERM },
	{ "bind", DENY_EPERM },
	{ "listen", DENY_EPERM },
	{ "recvfrom", ALLOW },
	{ "recvmsg", ALLOW },
	{ "recvmmsg", ALLOW },
	{ "shutdown", ALLOW },
	{ "getsockname", ALLOW },
	{ "getpeername", ALLOW },
	{ "setsockopt", ALLOW },
	{ "getsockopt", ALLOW },

	/* identity and limits: reading is fine, the sandbox already holds the limits */
	{ "uname", ALLOW },
	{ "sysinfo", ALLOW },
	{ "getrusage", ALLOW },
	{ "getrlimit", ALLOW },
	{ "setrlimit", ALLOW },
	{ "prlimit64", ALLOW },
	{ "getuid", ALLOW },
	{ "geteuid", ALLOW },
	{ "getgid", ALLOW },
	{ "getegid", ALLOW },
	{ "getresuid", ALLOW },
	{ "getresgid", ALLOW },
	{ "getgroups", ALLOW },
	{ "getpgid", ALLOW },
	{ "getpgrp", ALLOW },
	{ "getsid", ALLOW },
	{ "setpgid", ALLOW },
	{ "setsid", ALLOW },
	{ "capget", ALLOW },
	{ "getrandom", ALLOW },
	{ "landlock_create_ruleset", ALLOW },
	{ "landlock_add_rule", ALLOW },
	{ "landlock_restrict_self", ALLOW },

	/* processes: TEEX services make threads, never processes (fork, vfork and clone
	 * are argument rules, for the manifest-processes policy) */
	{ "clone3", DENY_ENOSYS },

	/* leaving the sandbox or reaching other processes */
	{ "ptrace", DENY_EPERM },
	{ "process_vm_readv", DENY_EPERM },
	{ "process_vm_writev", DENY_EPERM },
	{ "process_madvise", DENY_EPERM },
	{ "pidfd_getfd", DENY_EPERM },
	{ "kcmp", DENY_EPERM },
	{ "bpf", DENY_EPERM },
	{ "perf_event_open", DENY_EPERM },
	{ "io_uring_setup", DENY_EPERM },
	{ "io_uring_enter", DENY_EPERM },
	{ "io_uring_register", DENY_EPERM },
	{ "userfaultfd", DENY_EPERM },
	{ "keyctl", DENY_EPERM },
	{ "add_key", DENY_EPERM },
	{ "request_key", DENY_EPERM },
	{ "mount", DENY_EPERM },
	{ "umount2", DENY_EPERM },
	{ "pivot_root", DENY_EPERM },
	{ "chroot", DENY_EPERM },
	{ "move_mount", DENY_EPERM },
	{ "open_tree", DENY_EPERM },
	{ "fsopen", DENY_EPERM },
	{ "fsconfig", DENY_EPERM },
	{ "fsmount", DENY_EPERM },
	{ "fspick", DENY_EPERM },
	{ "mount_setattr", DENY_EPERM },
	{ "unshare", DENY_EPERM },
	{ "setns", DENY_EPERM },
	{ "open_by_handle_at", DENY_EPERM },
	{ "name_to_handle_at", DENY_EPERM },
	{ "setgroups", DENY_EPERM },
	{ "capset", DENY_EPERM },
	/* identity: with no capability and one id mapped, the kernel lets these only
	 * set the ids the service already has (EPERM for any other), so a program that
	 * drops privileges with setuid(getuid()) works as natively */
	{ "setuid", ALLOW },
	{ "setgid", ALLOW },
	{ "setreuid", ALLOW },
	{ "setregid", ALLOW },
	{ "setresuid", ALLOW },
	{ "setresgid", ALLOW },
	{ "setfsuid", ALLOW },
	{ "setfsgid", ALLOW },
	/* the service's own processes by descriptor: its pid namespace holds no other
	 * (asyncio watches children with them); taking another's fds stays refused */
	{ "pidfd_open", ALLOW },
	{ "pidfd_send_signal", ALLOW },
	/* owners: the user namespace maps only the service's own uid and gid, so a
	 * chown can only name those (others: EINVAL), and only scratch is writable */
	{ "chown", ALLOW },
	{ "fchown", ALLOW },
	{ "lchown", ALLOW },
	{ "fchownat", ALLOW },
	/* extended attributes: every mount but scratch is read-only (EROFS), and
	 * only user.* names are open to an unprivileged owner */
	{ "setxattr", ALLOW },
	{ "lsetxattr", ALLOW },
	{ "fsetxattr", ALLOW },
	{ "removexattr", ALLOW },
	{ "lremovexattr", ALLOW },
	{ "fremovexattr", ALLOW },
	/* watching files: the binds are the host's own inodes, so a watch would see
	 * host processes open and read them */
	{ "inotify_init", DENY_EPERM },
	{ "inotify_init1", DENY_EPERM },
	{ "inotify_add_watch", DENY_EPERM },
	{ "inotify_rm_watch", DENY_EPERM },
	{ "fanotify_init", DENY_EPERM },
	{ "fanotify_mark", DENY_EPERM },
	{ "memfd_secret", DENY_EPERM },
	{ "process_mrelease", DENY_EPERM },
	{ "sethostname", DENY_EPERM },
	{ "setdomainname", DENY_EPERM },
	{ "settimeofday", DENY_EPERM },
	{ "clock_settime", DENY_EPERM },
	{ "adjtimex", DENY_EPERM },
	{ "clock_adjtime", DENY_EPERM },
	{ "syslog", DENY_EPERM },
	{ "quotactl", DENY_EPERM },
	{ "quotactl_fd", DENY_EPERM },
	{ "vhangup", DENY_EPERM },
	{ "modify_ldt", DENY_EPERM },
	{ "uselib", DENY_EPERM },
	{ "ustat", DENY_EPERM },
	{ "sysfs", DENY_EPERM },
	{ "_sysctl", DENY_EPERM },
	{ "lookup_dcookie", DENY_EPERM },
	{ "ioprio_set", DENY_EPERM },
	{ "migrate_pages", DENY_EPERM },
	{ "move_pages", DENY_EPERM },
	{ "sync", DENY_EPERM },
	{ "syncfs", DENY_EPERM },

	/* only an attempt on the kernel itself makes these: the service is ended */
	{ "reboot", KILL },
	{ "kexec_load", KILL },
	{ "kexec_file_load", KILL },
	{ "init_module", KILL },
	{ "finit_module", KILL },
	{ "delete_module", KILL },
	{ "iopl", KILL },
	{ "ioperm", KILL },
	{ "swapon", KILL },
	{ "swapoff", KILL },
	{ "acct", KILL },
};

#define LOW32 0xffffffffULL
#define NAMESPACE_FLAGS                                                                            \
	((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |  \
		    CLONE_NEWPID | CLONE_NEWNET | 0x00000080 /* CLONE_NEWTIME */))

static uint32_t to_libseccomp(enum action action)
{
	switch (action) {
	case ALLOW:
		return SCMP_ACT_ALLOW;
	case DENY_EPERM:
		return SCMP_ACT_ERRNO(EPERM);
	case DENY_ENOSYS:
		return SCMP_ACT_ERRNO(ENOSYS);
	case KILL:
		return SCMP_ACT_KILL_PROCESS;
	}
	return SCMP_ACT_KILL_PROCESS;
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned count,
	       const struct scmp_arg_cmp *args)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a system call on this architecture */
	if (action == SCMP_ACT_ERRNO(ENOSYS))
		return 0; /* the default already; listed in the table to say so */
	return seccomp_rule_add_array(ctx, action, nr, count, args);
}

/* One rule for each value of argument ARG (its low word: the kernel reads an int). */
static int add_each_value(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned arg,
			  const unsigned *values, size_t count)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < count; i++) {
		const struct scmp_arg_cmp cmp[] = {
			SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, LOW32, values[i]),
		};
		r = add(ctx, action, name, 1, cmp);
	}
	return r;
}

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* A call whose argument ARG is a command: the allowed values pass, the denied ones
 * get EPERM, any other the default (ENOSYS). */
static int add_value_lists(scmp_filter_ctx ctx, const char *name, unsigned arg,
			   const unsigned *allowed, size_t allowed_count, const unsigned *denied,
			   size_t denied_count)
{
	int r = add_each_value(ctx, SCMP_ACT_ALLOW, name, arg, allowed, allowed_count);

	return r ?: add_each_value(ctx, SCMP_ACT_ERRNO(EPERM), name, arg, denied, denied_count);
}

/* Rules that look at arguments. libseccomp lets an unconditional rule override
 * conditional ones, so every argument-checked call is listed only here; a value
 * no rule names gets the default (ENOSYS). */
static int add_argument_rules(scmp_filter_ctx ctx, enum tp_seccomp_stage stage, unsigned policy)
{
	const bool processes = policy & TP_SECCOMP_PROCESSES;
	/* Threads share everything and make no namespace; anything else is a process. */
	const struct scmp_arg_cmp thread_clone[] = {
		SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD | NAMESPACE_FLAGS, CLONE_THREAD),
	};
	/* a process clone, without namespaces: a new user namespace would hand the
	 * child every capability inside it */
	const struct scmp_arg_cmp process_clone[] = {
		SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD | NAMESPACE_FLAGS, 0),
	};
	static const unsigned denied_families[] = {
		AF_INET, AF_INET6,   AF_NETLINK, AF_PACKET, AF_VSOCK, AF_BLUETOOTH,
		AF_ALG,	 AF_KEY,     AF_XDP,	 AF_CAN,    AF_TIPC,  AF_RDS,
		AF_SMC,	 AF_QIPCRTR, AF_NFC,	 AF_X25,    AF_AX25,  AF_APPLETALK,
		AF_IPX,	 AF_LLC,     AF_IB,	 AF_MPLS,   AF_KCM,   AF_PPPOX,
	};
	int r = 0;

	r = r ?: add(ctx, SCMP_ACT_ALLOW, "clone", 1, thread_clone);
	r = r ?:
		add(ctx, processes ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM), "clone", 1,
		    process_clone);
	r = r ?: add(ctx, processes ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM), "fork", 0, NULL);
	r = r ?: add(ctx, processes ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM), "vfork", 0, NULL);

	/* AF_UNIX of the connection-oriented types only: a datagram socket could name
	 * a socket file of the host in sendto/sendmsg; a stream or seqpacket one
	 * refuses an address (EOPNOTSUPP / EISCONN, or ignores it) */
	static const int unix_types[] = { SOCK_STREAM, SOCK_SEQPACKET };
	for (const char *const *call = (const char *const[]){ "socket", "socketpair", NULL }; *call;
	     call++) {
		for (size_t i = 0; i < sizeof(unix_types) / sizeof(unix_types[0]); i++) {
			const struct scmp_arg_cmp unix_stream[] = {
				SCMP_A0_64(SCMP_CMP_MASKED_EQ, LOW32, AF_UNIX),
				SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xf, (uint64_t)unix_types[i]),
			};
			r = r ?: add(ctx, SCMP_ACT_ALLOW, *call, 2, unix_stream);
		}
		const struct scmp_arg_cmp unix_dgram[] = {
			SCMP_A0_64(SCMP_CMP_MASKED_EQ, LOW32, AF_UNIX),
			SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM),
		};
		r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), *call, 2, unix_dgram);
		r = r ?:
			add_each_value(ctx, SCMP_ACT_ERRNO(EPERM), *call, 0, denied_families,
				       COUNT(denied_families));
	}

	/* A handed socket (policy `network = "listen"`): accept on it, at the fd where
	 * the service gets it, and on nothing else. A send that asks for TCP fast open
	 * connects the socket it is made on, without connect(2): a listening socket
	 * shut down (which disconnects it) would reach any host from the host's
	 * network namespace, so such sends are refused; without a handed socket
	 * there is no TCP socket to make one on. */
	static const char *const accepts[] = { "accept", "accept4" };
	for (size_t i = 0; i < COUNT(accepts); i++) {
		const struct scmp_arg_cmp handed[] = {
			SCMP_A0_64(SCMP_CMP_MASKED_EQ, LOW32, TP_SECCOMP_LISTEN_FD),
		};
		const struct scmp_arg_cmp other[] = {
			SCMP_A0_64(SCMP_CMP_NE, TP_SECCOMP_LISTEN_FD),
		};
		if (policy & TP_SECCOMP_LISTEN) {
			r = r ?: add(ctx, SCMP_ACT_ALLOW, accepts[i], 1, handed);
			r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), accepts[i], 1, other);
		} else {
			r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), accepts[i], 0, NULL);
		}
	}
	static const struct {
		const char *name;
		unsigned flags_arg;
	} sends[] = { { "sendto", 3 }, { "sendmsg", 2 }, { "sendmmsg", 3 } };
	for (size_t i = 0; i < COUNT(sends); i++) {
		const struct scmp_arg_cmp plain[] = {
			SCMP_CMP64(sends[i].flags_arg, SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, 0),
		};
		const struct scmp_arg_cmp fast_open[] = {
			SCMP_CMP64(sends[i].flags_arg, SCMP_CMP_MASKED_EQ, MSG_FASTOPEN,
				   MSG_FASTOPEN),
		};
		if (policy & TP_SECCOMP_LISTEN) {
			r = r ?: add(ctx, SCMP_ACT_ALLOW, sends[i].name, 1, plain);
			r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), sends[i].name, 1, fast_open);
		} else {
			r = r ?: add(ctx, SCMP_ACT_ALLOW, sends[i].name, 0, NULL);
		}
	}

	/* personality: the default, and the query that reads it back; any other value,
	 * high bits included, is refused (a value the kernel would truncate to 0 too:
	 * refused, never allowed). libseccomp 2.5 allows one comparison per argument in
	 * a rule, so "not 0 and not 0xffffffff" is GT 0 with the two exact values
	 * allowed by their own rules, which libseccomp checks first;
	 * tests/hostile/test_syscalls.py pins that result. */
	const struct scmp_arg_cmp personality_default[] = { SCMP_A0_64(SCMP_CMP_EQ, 0) };
	const struct scmp_arg_cmp personality_query[] = { SCMP_A0_64(SCMP_CMP_EQ, 0xffffffffULL) };
	const struct scmp_arg_cmp personality_other[] = { SCMP_A0_64(SCMP_CMP_GT, 0) };
	r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), "personality", 1, personality_other);
	r = r ?: add(ctx, SCMP_ACT_ALLOW, "personality", 1, personality_default);
	r = r ?: add(ctx, SCMP_ACT_ALLOW, "personality", 1, personality_query);

	/* fcntl: the commands of file descriptors, locks, pipes and seals. A lease or
	 * a directory notification (dnotify) on a bound host file would tell the
	 * service when a host process opens it, and a lease delays that process:
	 * EPERM. A command named nowhere gets the default (ENOSYS). The kernel reads
	 * cmd as an unsigned int, so only the low word is compared. */
	static const unsigned fcntl_allowed[] = {
		F_DUPFD,
		F_DUPFD_CLOEXEC,
		F_GETFD,
		F_SETFD,
		F_GETFL,
		F_SETFL,
		F_GETLK,
		F_SETLK,
		F_SETLKW,
		F_OFD_GETLK,
		F_OFD_SETLK,
		F_OFD_SETLKW,
		F_SETOWN,
		F_GETOWN,
		F_SETOWN_EX,
		F_GETOWN_EX,
		F_SETSIG,
		F_GETSIG,
		F_SETPIPE_SZ,
		F_GETPIPE_SZ,
		F_ADD_SEALS,
		F_GET_SEALS,
		F_GET_RW_HINT,
		F_SET_RW_HINT,
		F_GET_FILE_RW_HINT,
		F_SET_FILE_RW_HINT,
		1027 /* F_DUPFD_QUERY */,
		1028 /* F_CREATED_QUERY */,
	};
	static const unsigned fcntl_denied[] = { F_SETLEASE, F_GETLEASE, F_NOTIFY };
	r = r ?:
		add_value_lists(ctx, "fcntl", 1, fcntl_allowed, COUNT(fcntl_allowed), fcntl_denied,
				COUNT(fcntl_denied));

	/* mknod: FIFOs and plain files, which Landlock lets be made in scratch only;
	 * device and socket nodes: EPERM (mode is the kernel's umode_t: the type bits
	 * are compared under S_IFMT) */
	static const unsigned node_allowed[] = { S_IFIFO, S_IFREG, 0 };
	static const unsigned node_denied[] = { S_IFCHR, S_IFBLK, S_IFSOCK };
	for (size_t i = 0; i < COUNT(node_allowed) + COUNT(node_denied); i++) {
		bool allowed = i < COUNT(node_allowed);
		unsigned type = allowed ? node_allowed[i] : node_denied[i - COUNT(node_allowed)];
		uint32_t action = allowed ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM);
		const struct scmp_arg_cmp mknod_type[] = { SCMP_A1_64(SCMP_CMP_MASKED_EQ, S_IFMT,
								      type) };
		const struct scmp_arg_cmp mknodat_type[] = { SCMP_A2_64(SCMP_CMP_MASKED_EQ, S_IFMT,
									type) };
		r = r ?: add(ctx, action, "mknod", 1, mknod_type);
		r = r ?: add(ctx, action, "mknodat", 1, mknodat_type);
	}

	/* prctl: what reads the process's state, names threads and tunes its own timers
	 * and pages. What would undo the sandbox is refused by name: the parent-death
	 * signal that ends the service with teepy, the seccomp and no_new_privs settings,
	 * capability and securebit changes, the memory map's layout, dumpability (the
	 * tracer of a build and teepy's view of the root rely on it). Any other option:
	 * ENOSYS, as an unknown call. The option is an int: the low word decides. */
	static const unsigned prctl_allowed[] = {
		PR_GET_PDEATHSIG,
		PR_GET_DUMPABLE,
		PR_GET_KEEPCAPS,
		PR_SET_NAME,
		PR_GET_NAME,
		PR_GET_SECCOMP,
		PR_CAPBSET_READ,
		PR_GET_SECUREBITS,
		PR_GET_TIMERSLACK,
		PR_SET_TIMERSLACK,
		PR_GET_NO_NEW_PRIVS,
		PR_GET_TID_ADDRESS,
		PR_GET_THP_DISABLE,
		PR_SET_THP_DISABLE,
		PR_GET_CHILD_SUBREAPER,
		PR_SET_CHILD_SUBREAPER,
		PR_GET_SPECULATION_CTRL,
		PR_SET_SPECULATION_CTRL,
		PR_MCE_KILL_GET,
		PR_GET_TSC,
		0x53564d41 /* PR_SET_VMA: names anonymous memory */,
		0x59616d61 /* PR_SET_PTRACER: ptrace is refused anyway */,
	};
	static const unsigned prctl_denied[] = {
		PR_SET_PDEATHSIG,  PR_SET_SECCOMP,  PR_SET_NO_NEW_PRIVS,
		PR_SET_SECUREBITS, PR_SET_KEEPCAPS, PR_CAPBSET_DROP,
		PR_CAP_AMBIENT,	   PR_SET_MM,	    PR_SET_DUMPABLE,
	};
	r = r ?:
		add_value_lists(ctx, "prctl", 0, prctl_allowed, COUNT(prctl_allowed), prctl_denied,
				COUNT(prctl_denied));
	/* seccomp(2): _teepy installs stage 2 with it under stage 1; after that no
	 * filter is added or changed, and nothing is asked of it (EPERM) */
	if (stage == TP_SECCOMP_STAGE2_ZYGOTE) {
		/* a zygote's child adds its filter: that mode, no flag (no listener) */
		const struct scmp_arg_cmp filter_only[] = {
			SCMP_A0_64(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
			SCMP_A1_64(SCMP_CMP_EQ, 0),
		};
		const struct scmp_arg_cmp other_mode[] = {
			SCMP_A0_64(SCMP_CMP_NE, SECCOMP_SET_MODE_FILTER),
		};
		const struct scmp_arg_cmp flagged[] = {
			SCMP_A1_64(SCMP_CMP_NE, 0),
		};
		r = r ?: add(ctx, SCMP_ACT_ALLOW, "seccomp", 2, filter_only);
		r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), "seccomp", 1, other_mode);
		r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), "seccomp", 1, flagged);
	} else {
		r = r ?:
			add(ctx,
			    stage == TP_SECCOMP_STAGE1 ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM),
			    "seccomp", 0, NULL);
	}

	/* ioctl is allowed whole: no terminal is reachable inside (stdin is /dev/null,
	 * stdout and stderr are pipes, /dev/tty does not exist), so TIOCSTI has no target.
	 * With a handed socket, which is of the host's network namespace, the socket
	 * ioctls (type 0x89: SIOCGIFCONF, SIOCGIFNAME, SIOCETHTOOL ...) and the wireless
	 * ones (type 0x8b) would read the host's interfaces: EPERM. Every other type is
	 * allowed by the masks below, which look at the type byte only (bits 8-15: the
	 * kernel reads cmd as an unsigned int, and the high word cannot move it). */
	if (policy & TP_SECCOMP_LISTEN) {
		static const struct {
			uint64_t mask, value;
		} other_types[] = {
			{ 0x8000, 0x0000 }, /* 0x00-0x7f */
			{ 0xf800, 0x8000 }, /* 0x80-0x87 */
			{ 0xff00, 0x8800 }, /* 0x88 */
			{ 0xff00, 0x8a00 }, /* 0x8a */
			{ 0xfc00, 0x8c00 }, /* 0x8c-0x8f */
			{ 0xf000, 0x9000 }, /* 0x90-0x9f */
			{ 0xe000, 0xa000 }, /* 0xa0-0xbf */
			{ 0xc000, 0xc000 }, /* 0xc0-0xff */
		};
		for (size_t i = 0; i < COUNT(other_types); i++) {
			const struct scmp_arg_cmp type[] = { SCMP_A1_64(
			    SCMP_CMP_MASKED_EQ, other_types[i].mask, other_types[i].value) };
			r = r ?: add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, type);
		}
		for (uint64_t t = 0x8900; t <= 0x8b00; t += 0x200) {
			const struct scmp_arg_cmp type[] = { SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xff00,
									t) };
			r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, type);
		}
	} else {
		r = r ?: add(ctx, SCMP_ACT_ALLOW, "ioctl", 0, NULL);
	}

	/* Stage 1 must let the launcher exec the interpreter; stage 2 ends that. */
	const uint32_t exec_action =
	    stage == TP_SECCOMP_STAGE1 || (processes && stage != TP_SECCOMP_STAGE2_ZYGOTE) ?
		SCMP_ACT_ALLOW :
		SCMP_ACT_ERRNO(EPERM);
	r = r ?: add(ctx, exec_action, "execve", 0, NULL);
	/* Landlock checks the path of an exec against the root: execveat of a bare
	 * file descriptor (AT_EMPTY_PATH, as fexecve does) would run a memfd, which no
	 * path reaches. The flags are an int: the low word decides. */
	const struct scmp_arg_cmp exec_by_path[] = {
		SCMP_A4_64(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, 0),
	};
	const struct scmp_arg_cmp exec_by_fd[] = {
		SCMP_A4_64(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH),
	};
	r = r ?: add(ctx, exec_action, "execveat", 1, exec_by_path);
	r = r ?: add(ctx, SCMP_ACT_ERRNO(EPERM), "execveat", 1, exec_by_fd);
	return r;
}

int tp_seccomp_build(enum tp_seccomp_stage stage, unsigned policy, struct tp_bpf *out)
{
	scmp_filter_ctx ctx;
	int r, memfd = -1;
	off_t size;

	out->insns = NULL;
	out->size = 0;
	ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
	if (!ctx)
		return -ENOMEM;
	/* Another architecture's calls (int 0x80, x32) are an escape attempt. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* The calls as a binary tree, not a list: on attaching a filter the kernel runs
	 * it once for every call number of each architecture to cache what it always
	 * allows, which took 400 us of the list's 487 instructions on each start here
	 * and 200 us of the tree's 572 (both stages: 580 us, then 330); a call it
	 * cannot cache (its arguments decide) walks log n tests instead of n. */
	r = r ?: seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; r == 0 && i < sizeof(rules) / sizeof(rules[0]); i++)
		r = add(ctx, to_libseccomp(rules[i].action), rules[i].name, 0, NULL);
	if (r == 0)
		r = add_argument_rules(ctx, stage, policy);
	if (r < 0)
		goto out;

	/* libseccomp 2.5 exports only to a file descriptor. */
	memfd = memfd_create("teepy-seccomp", MFD_CLOEXEC);
	if (memfd < 0) {
		r = -errno;
		goto out;
	}
	r = seccomp_export_bpf(ctx, memfd);
	if (r < 0)
		goto out;
	size = lseek(memfd, 0, SEEK_CUR);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0) {
		r = -EINVAL;
		goto out;
	}
	out->insns = malloc((size_t)size);
	if (!out->insns) {
		r = -ENOMEM;
		goto out;
	}
	if (pread(memfd, out->insns, (size_t)size, 0) != size) {
		r = -EIO;
		free(out->insns);
		out->insns = NULL;
		goto out;
	}
	out->size = (size_t)size;
	r = 0;
out:
	if (memfd >= 0)
		close(memfd);
	seccomp_release(ctx);
	return r;
}

int tp_seccomp_install(const struct tp_bpf *prog)
{
	struct sock_fprog fprog = {
		.len = (unsigned short)(prog->size / sizeof(struct sock_filter)),
		.filter = prog->insns,
	};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		return -errno;
	return 0;
}

size_t tp_seccomp_rule_count(void)
{
	return sizeof(rules) / sizeof(rules[0]);
}
