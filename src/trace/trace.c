/* The tracer of `teepy build`: a seccomp filter that stops only the calls that name
 * files to open or execute, and a ptrace loop that records those names. */
#include "trace.h"

#include <asm/unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "the tracer reads x86-64 registers and filters x86-64 system call numbers"
#endif

/* ---- the log ---- */

void tp_trace_log_init(struct tp_trace_log *log)
{
	memset(log, 0, sizeof(*log));
}

void tp_trace_log_free(struct tp_trace_log *log)
{
	for (size_t i = 0; i < log->count; i++)
		free(log->paths[i]);
	free(log->paths);
	free(log->kinds);
	free(log->index);
	tp_trace_log_init(log);
}

static size_t hash(enum tp_trace_kind kind, const char *path)
{
	uint64_t h = 14695981039346656037ULL ^ (uint64_t)kind; /* FNV-1a */

	for (; *path; path++)
		h = (h ^ (unsigned char)*path) * 1099511628211ULL;
	return (size_t)h;
}

/* The slot holding (kind, path), or the empty slot where it would go. */
static size_t find_slot(const struct tp_trace_log *log, enum tp_trace_kind kind, const char *path)
{
	size_t mask = log->index_size - 1;
	size_t s = hash(kind, path) & mask;

	while (log->index[s]) {
		size_t i = log->index[s] - 1;
		if (log->kinds[i] == kind && strcmp(log->paths[i], path) == 0)
			break;
		s = (s + 1) & mask;
	}
	return s;
}

static int reindex(struct tp_trace_log *log, size_t size)
{
	size_t *index = calloc(size, sizeof(*index));

	if (!index)
		return -ENOMEM;
	free(log->index);
	log->index = index;
	log->index_size = size;
	for (size_t i = 0; i < log->count; i++)
		log->index[find_slot(log, log->kinds[i], log->paths[i])] = i + 1;
	return 0;
}

int tp_trace_log_add(struct tp_trace_log *log, enum tp_trace_kind kind, const char *path)
{
	size_t s;
	int r;

	/* the index stays at most half full, so probes stay short */
	if ((log->count + 1) * 2 > log->index_size &&
	    (r = reindex(log, log->index_size ? log->index_size * 2 : 64)) < 0)
		return r;
	s = find_slot(log, kind, path);
	if (log->index[s])
		return 0;
	if (log->count == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 32;
		char **paths = realloc(log->paths, cap * sizeof(*paths));
		if (!paths)
			return -ENOMEM;
		log->paths = paths;
		enum tp_trace_kind *kinds = realloc(log->kinds, cap * sizeof(*kinds));
		if (!kinds)
			return -ENOMEM;
		log->kinds = kinds;
		log->cap = cap;
	}
	if (!(log->paths[log->count] = strdup(path)))
		return -ENOMEM;
	log->kinds[log->count] = kind;
	log->index[s] = ++log->count;
	return 0;
}

bool tp_trace_log_has(const struct tp_trace_log *log, enum tp_trace_kind kind, const char *path)
{
	return log->index_size && log->index[find_slot(log, kind, path)];
}

struct record {
	char *path;
	enum tp_trace_kind kind;
};

static int compare_records(const void *a, const void *b)
{
	const struct record *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	return c ? c : (int)x->kind - (int)y->kind;
}

void tp_trace_log_sort(struct tp_trace_log *log)
{
	struct record *r;

	if (log->count == 0)
		return;
	if (!(r = malloc(log->count * sizeof(*r))))
		return; /* left unsorted; every record is still there */
	for (size_t i = 0; i < log->count; i++)
		r[i] = (struct record){ log->paths[i], log->kinds[i] };
	qsort(r, log->count, sizeof(*r), compare_records);
	for (size_t i = 0; i < log->count; i++) {
		log->paths[i] = r[i].path;
		log->kinds[i] = r[i].kind;
	}
	free(r);
	/* the records moved: the index must follow; without memory it is dropped and
	 * rebuilt by the next add, while tp_trace_log_has answers false meanwhile */
	if (reindex(log, log->index_size) < 0) {
		free(log->index);
		log->index = NULL;
		log->index_size = 0;
	}
}

/* ---- scripts ---- */

int tp_trace_script_interpreter(const char *head, size_t size, char *out, size_t out_size)
{
	size_t i = 2, start;

	if (size > 256) /* BINPRM_BUF_SIZE: the kernel looks no further */
		size = 256;
	if (size < 3 || head[0] != '#' || head[1] != '!')
		return -ENOEXEC;
	while (i < size && (head[i] == ' ' || head[i] == '\t'))
		i++;
	start = i;
	while (i < size && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' && head[i] != '\0')
		i++;
	/* a name cut by the end of what was read is not a name the kernel runs */
	if (i == start || (i == size && size == 256) || head[start] != '/' || i - start >= out_size)
		return -ENOEXEC;
	memcpy(out, head + start, i - start);
	out[i - start] = '\0';
	return 0;
}

/* ---- the filter, run by the child ---- */

/* Every call that names a file to open or to execute. */
static const int traced_calls[] = {
	__NR_open, __NR_openat, __NR_openat2, __NR_creat, __NR_execve, __NR_execveat,
};
#define TRACED_COUNT (sizeof(traced_calls) / sizeof(traced_calls[0]))

#define LOAD(field)                                                                                \
	((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,                                    \
				      offsetof(struct seccomp_data, field)))
#define JUMP_IF(op, k, jt, jf)                                                                     \
	((struct sock_filter)BPF_JUMP(BPF_JMP | (op) | BPF_K, (k), (jt), (jf)))
#define RET(action) ((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (action)))

int tp_trace_filter_install(void)
{
	struct sock_filter insns[5 + TRACED_COUNT + 2];
	struct sock_fprog prog = { .len = 0, .filter = insns };
	size_t n = 0;

	/* Other architectures' calls (int 0x80, x32) are the sandbox filter's business:
	 * it kills them. Here they are let through rather than misread as x86-64. */
	insns[n++] = LOAD(arch);
	insns[n++] = JUMP_IF(BPF_JEQ, AUDIT_ARCH_X86_64, 1, 0);
	insns[n++] = RET(SECCOMP_RET_ALLOW);
	insns[n++] = LOAD(nr);
	insns[n++] = JUMP_IF(BPF_JGE, __X32_SYSCALL_BIT, TRACED_COUNT, 0); /* to the ALLOW below */
	/* a match jumps over the rest of the list and the ALLOW, to the TRACE */
	for (size_t i = 0; i < TRACED_COUNT; i++)
		insns[n++] = JUMP_IF(BPF_JEQ, (unsigned)traced_calls[i], TRACED_COUNT - i, 0);
	insns[n++] = RET(SECCOMP_RET_ALLOW);
	insns[n++] = RET(SECCOMP_RET_TRACE);
	prog.len = (unsigned short)n;

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}

/* ---- the tracer ---- */

int tp_trace_seize(pid_t pid)
{
	long options = PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
		       PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL |
		       PTRACE_O_TRACESYSGOOD;

	if (ptrace(PTRACE_SEIZE, pid, 0, options) < 0)
		return -errno;
	return 0;
}

/* Reads a NUL-terminated string from the tracee. process_vm_readv fails as a whole
 * at an unmapped page, so each read stays within one page: a short path at the end
 * of the last mapped page is still read. */
static int read_string(pid_t tid, uint64_t addr, char *buf, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 0;

	while (len < size) {
		size_t chunk = page - (size_t)((addr + len) % page);
		if (chunk > size - len)
			chunk = size - len;
		struct iovec local = { buf + len, chunk };
		struct iovec remote = { (void *)(uintptr_t)(addr + len), chunk };
		ssize_t got = process_vm_readv(tid, &local, 1, &remote, 1, 0);
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EFAULT;
		if (memchr(buf + len, '\0', (size_t)got))
			return 0;
		len += (size_t)got;
	}
	return -ENAMETOOLONG; /* the kernel refuses it too */
}

/* Folds "//", "." and ".." of an absolute path in place. Lexically, without asking
 * the file system: "link/.." may name another directory than the kernel's, which
 * is acceptable because the caller checks every record on the host. */
static void normalize(char *path)
{
	const char *in = path;
	size_t len = 0;

	while (*in) {
		while (*in == '/')
			in++;
		const char *seg = in;
		while (*in && *in != '/')
			in++;
		size_t n = (size_t)(in - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (len > 0 && path[--len] != '/')
				;
			continue;
		}
		/* the output never overtakes the input: each kept segment had a '/' before it */
		path[len++] = '/';
		memmove(path + len, seg, n);
		len += n;
	}
	if (len == 0)
		path[len++] = '/';
	path[len] = '\0';
}

/* The directory a relative path starts from: the cwd or the directory of dirfd. */
static int start_dir(pid_t tid, int dirfd, char *buf, size_t size)
{
	char link[64];
	ssize_t n;

	if (dirfd == AT_FDCWD)
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)tid);
	else if (dirfd >= 0)
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)tid, dirfd);
	else
		return -EBADF;
	n = readlink(link, buf, size - 1);
	if (n < 0)
		return errno == ENOENT ? -EBADF : -errno;
	buf[n] = '\0';
	if (buf[0] != '/')
		return -ENOTDIR; /* a pipe, socket, anon inode: the call fails */
	return 0;
}

/* ---- calls between their seccomp stop and their end ---- */

/* A traced call whose path was read at its seccomp stop; it is recorded only once the
 * call is known to have succeeded (at its syscall-exit stop, or for an exec at the
 * exec event), so a file the app failed to open, or a program it failed to run, is
 * never part of the record. */
struct pending {
	pid_t tid;
	enum tp_trace_kind kind;
	char *path; /* NULL: the path could not be read */
};

struct pendings {
	struct pending *items;
	size_t count, cap;
};

static struct pending *pending_of(struct pendings *p, pid_t tid)
{
	for (size_t i = 0; i < p->count; i++)
		if (p->items[i].tid == tid)
			return &p->items[i];
	return NULL;
}

static void pending_drop(struct pendings *p, pid_t tid)
{
	struct pending *x = pending_of(p, tid);

	if (!x)
		return;
	free(x->path);
	*x = p->items[--p->count];
}

/* Notes the call of tid; a thread has at most one call in flight. */
static int pending_add(struct pendings *p, pid_t tid, enum tp_trace_kind kind, const char *path)
{
	pending_drop(p, tid);
	if (p->count == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct pending *items = realloc(p->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		p->items = items;
		p->cap = cap;
	}
	p->items[p->count] = (struct pending){ tid, kind, path ? strdup(path) : NULL };
	if (path && !p->items[p->count].path)
		return -ENOMEM;
	p->count++;
	return 0;
}

static void pendings_free(struct pendings *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->items[i].path);
	free(p->items);
	memset(p, 0, sizeof(*p));
}

/* Notes tid's call as pending; without memory it goes unrecorded, and counted. */
static void note(struct pendings *pend, struct tp_trace_log *log, pid_t tid,
		 enum tp_trace_kind kind, const char *path)
{
	if (pending_add(pend, tid, kind, path) < 0)
		log->missed++;
}

/* Reads the file named by the call stopped at its seccomp stop and notes it as
 * pending. A call the kernel is sure to refuse for its dirfd or an empty path is
 * not noted; one whose path cannot be read is noted without a path, and counted
 * as missed if it then succeeds. */
static void read_call(pid_t tid, struct pendings *pend, struct tp_trace_log *log)
{
	struct user_regs_struct regs;
	enum tp_trace_kind kind = TP_TRACE_OPEN;
	char path[PATH_MAX], full[2 * PATH_MAX + 2];
	int dirfd = AT_FDCWD, r;
	uint64_t addr;
	bool empty_path_ok = false, in_root = false;

	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return; /* it died (ESRCH): its exit comes next */
	switch (regs.orig_rax) {
	case __NR_open:
	case __NR_creat:
		addr = regs.rdi;
		break;
	case __NR_execve:
		kind = TP_TRACE_EXEC;
		addr = regs.rdi;
		break;
	case __NR_openat:
		dirfd = (int)regs.rdi;
		addr = regs.rsi;
		break;
	case __NR_openat2: {
		/* RESOLVE_IN_ROOT makes an absolute path start at dirfd */
		struct open_how how = { 0 };
		struct iovec local = { &how, sizeof(how) };
		struct iovec remote = { (void *)(uintptr_t)regs.rdx, sizeof(how) };
		dirfd = (int)regs.rdi;
		addr = regs.rsi;
		if (regs.r10 >= sizeof(how) &&
		    process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(how))
			in_root = (how.resolve & RESOLVE_IN_ROOT) != 0;
		break;
	}
	case __NR_execveat:
		kind = TP_TRACE_EXEC;
		dirfd = (int)regs.rdi;
		addr = regs.rsi;
		empty_path_ok = (regs.r8 & AT_EMPTY_PATH) != 0; /* fexecve */
		break;
	default:
		return;
	}

	if ((r = read_string(tid, addr, path, sizeof(path))) < 0) {
		if (r != -ENAMETOOLONG && r != -EFAULT) /* those the kernel refuses too */
			note(pend, log, tid, kind, NULL);
		return;
	}
	if (path[0] == '\0' && !empty_path_ok)
		return; /* ENOENT */
	if (path[0] == '/' && !in_root) {
		snprintf(full, sizeof(full), "%s", path);
	} else {
		char dir[PATH_MAX];
		if ((r = start_dir(tid, dirfd, dir, sizeof(dir))) < 0) {
			if (r == -EACCES || r == -EPERM)
				note(pend, log, tid, kind, NULL);
			return;
		}
		snprintf(full, sizeof(full), "%s/%s", dir, path);
	}
	normalize(full);
	note(pend, log, tid, kind, full);
}

/* At the syscall-exit stop of a pending call: recorded if it succeeded. */
static void end_call(pid_t tid, struct pendings *pend, struct tp_trace_log *log)
{
	struct user_regs_struct regs;
	struct pending *x = pending_of(pend, tid);

	if (!x)
		return;
	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0 && (int64_t)regs.rax >= 0) {
		if (!x->path || tp_trace_log_add(log, x->kind, x->path) < 0)
			log->missed++;
	}
	pending_drop(pend, tid);
}

/* After an exec: the file the kernel ran, which is also the interpreter of a "#!"
 * script, and readable even when the path at the execve stop was not. */
static void record_exe(pid_t tid, struct tp_trace_log *log)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)tid);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0 || path[0] != '/') {
		if (n < 0 && errno != ESRCH && errno != ENOENT)
			log->missed++;
		return;
	}
	path[n] = '\0';
	if (tp_trace_log_add(log, TP_TRACE_EXEC, path) < 0)
		log->missed++;
}

/* An exec succeeded: the path asked for, and the program the kernel ran. A thread
 * other than the leader that execs takes the leader's id; the event names the id
 * it had. An exec whose path could not be read (a tracee not yet dumpable, as the
 * sandbox is before it runs the interpreter) is not counted as missed: the program
 * itself is recorded from /proc/PID/exe. */
static void exec_done(pid_t tid, struct pendings *pend, struct tp_trace_log *log)
{
	unsigned long former = (unsigned long)tid;
	struct pending *x;

	if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) < 0)
		former = (unsigned long)tid;
	x = pending_of(pend, (pid_t)former);
	if (x && x->kind == TP_TRACE_EXEC && x->path && tp_trace_log_add(log, x->kind, x->path) < 0)
		log->missed++;
	pending_drop(pend, (pid_t)former);
	pending_drop(pend, tid); /* the leader's own call, if it was another thread */
	record_exe(tid, log);
}

/* Lets a stopped tracee go on; to its syscall-exit stop when it has a call in
 * flight. ESRCH means it was killed meanwhile: its exit will be reported. */
static void resume(pid_t tid, int sig, struct pendings *pend)
{
	(void)ptrace(pending_of(pend, tid) ? PTRACE_SYSCALL : PTRACE_CONT, tid, 0, sig);
}

static void serve_stop(pid_t tid, pid_t guarded, int status, struct pendings *pend,
		       struct tp_trace_log *log)
{
	int sig = WSTOPSIG(status);

	switch ((unsigned)status >> 16) {
	case PTRACE_EVENT_SECCOMP:
		read_call(tid, pend, log);
		resume(tid, 0, pend);
		break;
	case PTRACE_EVENT_EXEC:
		/* the reaper executing teepy-reaper is teepy's, not the service's */
		if (tid != guarded)
			exec_done(tid, pend, log);
		resume(tid, 0, pend);
		break;
	case PTRACE_EVENT_STOP:
		/* With PTRACE_SEIZE a group-stop (SIGSTOP and friends) is reported here:
		 * PTRACE_LISTEN keeps it stopped, as job control expects, until SIGCONT.
		 * The other reason is the first stop of an auto-attached thread or child
		 * (SIGTRAP), which just goes on. */
		if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
			if (ptrace(PTRACE_LISTEN, tid, 0, 0) < 0 && errno != ESRCH)
				resume(tid, 0, pend);
		} else {
			resume(tid, 0, pend);
		}
		break;
	case 0:
		if (sig == (SIGTRAP | 0x80)) {
			/* the syscall-exit stop of a pending call (PTRACE_O_TRACESYSGOOD) */
			end_call(tid, pend, log);
			resume(tid, 0, pend);
			break;
		}
		/* a signal on its way to the tracee: deliver it, but never to a guarded
		 * reaper (TP_TRACE_PID_IS_REAPER): being traced must not let the service
		 * stop it (its own SIGCHLD it takes with sigtimedwait, blocked, with no
		 * stop here) */
		resume(tid, tid == guarded ? 0 : sig, pend);
		break;
	default:
		/* clone, fork, vfork: the new tracee is attached already */
		resume(tid, 0, pend);
		break;
	}
}

int tp_trace_run(pid_t pid, unsigned flags, struct tp_trace_log *log, int *status,
		 struct rusage *ru)
{
	pid_t guarded = flags & TP_TRACE_PID_IS_REAPER ? pid : -1;
	struct pendings pend = { 0 };

	for (;;) {
		struct rusage usage;
		int st;
		/* -1: threads and forked children are tracees too, and with a pid
		 * namespace, PID's own exit is reported only after they are reaped */
		pid_t tid = wait4(-1, &st, __WALL, &usage);

		if (tid < 0) {
			if (errno == EINTR)
				continue;
			pendings_free(&pend);
			return -errno;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			pending_drop(&pend, tid); /* killed in the middle of a call */
			if (tid != pid)
				continue; /* a thread or another process ended */
			*status = st;
			if (ru)
				*ru = usage;
			pendings_free(&pend);
			return 0;
		}
		if (WIFSTOPPED(st))
			serve_stop(tid, guarded, st, &pend, log);
	}
}
