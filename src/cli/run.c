/* `teepy run`: plan the sandbox, start the service, serve its control channel,
 * enforce the wall clock, and report how the run ended. */
#include "commands.h"

#include "bundle_file.h"
#include "channel.h"
#include "run.h"
#include "sealed.h"
#include "../trace/trace.h"
#include "exit_codes.h"
#include "run_opts.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/units.h"
#include "../manifest/manifest.h"
#include "../pyboot/boot.h"
#include "../pyboot/protocol.h"
#include "../sandbox/landlock.h"
/* sandbox/limits.h's record of how limits are enforced has the tag of common/limits.h's
 * record of an invocation's limits (run_opts.h); here it is named apart until the
 * runner takes the common record */
#define tp_limits tp_sandbox_limits
#include "../sandbox/limits.h"
#include "../sandbox/root.h"
#include "../sandbox/sandbox.h"
#include "../sandbox/seccomp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
				       "/dev/urandom" };

/* ---- state shared with signal handlers ---- */
static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t child_pidfd = -1; /* signals reach it even once reaped: ESRCH */
static volatile sig_atomic_t timed_out;
static volatile sig_atomic_t interrupted;

/* Async-signal-safe. */
static void kill_service(void)
{
	if (child_pidfd >= 0)
		syscall(SYS_pidfd_send_signal, (int)child_pidfd, SIGKILL, NULL, 0);
	else if (child_pid > 0)
		kill(child_pid, SIGKILL);
}

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	kill_service();
}

static bool stop_requested(void)
{
	return timed_out || interrupted;
}

static void on_interrupt(int sig)
{
	interrupted = sig;
	kill_service();
}

/* After the service is reaped: signals no longer go to it. */
static void forget_child(void)
{
	int fd = child_pidfd;

	child_pid = 0;
	child_pidfd = -1;
	if (fd >= 0)
		close(fd);
}

/* ---- the CPU-time watch ---- */

/* RLIMIT_CPU holds one process, by a tick-sampled clock; the limit is for the whole
 * service. teepy reads the service's CPU time (its cgroup's, else its process
 * clock) no later than the service could reach the limit, and kills it there. */
struct cpu_watch {
	const struct tp_limits *limits;
	pid_t pid;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running;
	bool done;
	bool exceeded; /* the service was killed at the limit */
};

static void *cpu_watch_main(void *arg)
{
	struct cpu_watch *w = arg;
	uint64_t limit_ns = w->limits->cpu_ms * 1000000u;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		uint64_t used = tp_limits_cpu_used_ns(w->limits, w->pid);
		if (used >= limit_ns) {
			w->exceeded =
			    syscall(SYS_pidfd_send_signal, (int)child_pidfd, SIGKILL, NULL, 0) == 0;
			break;
		}
		/* at most one CPU-second per CPU and second: nothing to see before then;
		 * at least 5 ms, so the service overshoots by no more than that per CPU */
		uint64_t wait_ns = (limit_ns - used) / (uint64_t)(cpus > 0 ? cpus : 1);
		if (wait_ns < 5000000u)
			wait_ns = 5000000u;
		if (wait_ns > 1000000000u)
			wait_ns = 1000000000u;
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)wait_ns;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&w->wake, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Returns 0 or -errno; without a pidfd the watch cannot kill safely. */
static int cpu_watch_start(struct cpu_watch *w, const struct tp_limits *limits, pid_t pid)
{
	pthread_condattr_t attr;

	memset(w, 0, sizeof(*w));
	w->limits = limits;
	w->pid = pid;
	if (child_pidfd < 0)
		return -EBADF;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&w->thread, NULL, cpu_watch_main, w) != 0)
		return -EAGAIN;
	w->running = true;
	return 0;
}

/* After the service is reaped. Returns whether it was killed at the limit. */
static bool cpu_watch_stop(struct cpu_watch *w)
{
	if (!w->running)
		return false;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	w->running = false;
	return w->exceeded;
}

/* ---- small helpers ---- */

/* TEEPY_TIMING=1: how long each phase took, for finding start-up costs. */
static bool timing_on;
static struct timespec timing_start;

static void mark(const char *phase)
{
	struct timespec now;

	if (!timing_on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(stderr, "teepy: timing %7.3f ms  %s\n",
		(double)(now.tv_sec - timing_start.tv_sec) * 1e3 +
			(double)(now.tv_nsec - timing_start.tv_nsec) / 1e6,
		phase);
}

static const char *host_getenv(const char *name)
{
	return getenv(name);
}


static int send_frame(int fd, uint32_t type, uint32_t arg, const void *payload, uint64_t size)
{
	struct tp_frame frame = { .type = type, .arg = arg, .size = size };
	int r = tp_write_full(fd, &frame, sizeof(frame));

	return r < 0 ? r : tp_write_full(fd, payload, (size_t)size);
}

/* ---- the boot frame ---- */

struct buf {
	char *data;
	size_t size;
};

static int buf_field(struct buf *b, char tag, const void *bytes, size_t size)
{
	uint32_t len = (uint32_t)(size + 1);
	char *data = realloc(b->data, b->size + sizeof(len) + len);

	if (!data)
		return -ENOMEM;
	b->data = data;
	memcpy(b->data + b->size, &len, sizeof(len));
	b->data[b->size + sizeof(len)] = tag;
	memcpy(b->data + b->size + sizeof(len) + 1, bytes, size);
	b->size += sizeof(len) + len;
	return 0;
}

static int buf_string(struct buf *b, char tag, const char *s)
{
	return buf_field(b, tag, s, strlen(s));
}

/* ---- one run ---- */

struct run {
	struct tp_run_opts opts;
	char script[PATH_MAX];     /* unsealed: the host path of the script */
	char script_dir[PATH_MAX]; /* unsealed: its directory, visible at the same path */
	char entry[PATH_MAX];      /* the entry script inside the root */
	char cwd[PATH_MAX];        /* inside the root */
	char runtime_so[PATH_MAX];
	struct tp_strlist python_path; /* inside the root */
	char *input;
	size_t input_size;
	int *data_fds;
	struct tp_root_plan plan;
	struct tp_limits limits;
	char **envp;
	size_t env_count;
	unsigned blas_threads;
	bool processes; /* fork and exec allowed (bundle policy "manifest", or build) */
	const char *exec_files[4];
	char exec_buf[2][PATH_MAX];

	/* sealed bundles */
	bool sealed;
	struct tp_bundle_file bundle;
	struct tp_sealed sealed_files;

	/* teepy build: trace the run */
	struct tp_trace_log *trace_log;
	const struct tp_strlist *preload; /* unsealed: modules to import before the entry */

	struct tp_channel channel;
	char out_tmp[PATH_MAX]; /* --output is written here, then renamed */
	int status;
	struct rusage ru;
	bool cpu_exceeded; /* teepy killed the service at its CPU-time limit */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tp_error("%s", line);
	return TP_EXIT_USAGE;
}

/* A bind shows every mount beneath it: no proc, sysfs, devtmpfs ... may be there.
 * WHAT names the flag or script in the message. Returns an exit code or 0. */
static int check_no_kernel_mount(const char *what, const char *real)
{
	char found[PATH_MAX + 64];
	int r = tp_root_kernel_mount(real, found, sizeof(found));

	if (r < 0) {
		tp_error("cannot read the mount table /proc/self/mountinfo: %s", strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	if (r > 0)
		return usage_error("%s: %s would show the host's kernel file system %s; use a path "
				   "without it",
				   what, real, found);
	return 0;
}

/* The unsealed script: its real path and directory. Returns an exit code or 0. */
static int load_script(struct run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct stat st;

	if (!realpath(o->script, run->script))
		return usage_error("%s: %s", o->script, strerror(errno));
	if (stat(run->script, &st) < 0 || !S_ISREG(st.st_mode))
		return usage_error("%s: not a regular file", o->script);
	if (access(run->script, R_OK) < 0)
		return usage_error("%s: %s", o->script, strerror(errno));
	snprintf(run->script_dir, sizeof(run->script_dir), "%s", run->script);
	*strrchr(run->script_dir, '/') = '\0';
	if (!run->script_dir[0])
		snprintf(run->script_dir, sizeof(run->script_dir), "/");

	/* the whole directory is visible inside: it must be the script's own */
	char home[PATH_MAX];
	const char *home_env = getenv("HOME");
	const char *shared = tp_run_shared_dir(
		run->script_dir, home_env && *home_env && realpath(home_env, home) ? home : NULL);
	if (shared)
		return usage_error("%s: its directory %s is %s, and all of it would be visible inside; "
				   "move the script into a directory of its own",
				   o->script, run->script_dir, shared);
	int code = check_no_kernel_mount(o->script, run->script_dir);
	if (code)
		return code;
	snprintf(run->entry, sizeof(run->entry), "%s", run->script);
	snprintf(run->cwd, sizeof(run->cwd), "%s", run->script_dir);
	return 0;
}

static int input_too_large(const struct run *run)
{
	char limit[32];

	return usage_error("%s%s: larger than the memory limit (%s), which the service could not "
			   "hold (raise --memory)",
			   run->opts.input_file ? "--input-file " : "--input",
			   run->opts.input_file ? run->opts.input_file : "",
			   tp_format_size(run->opts.limits.memory_bytes, limit, sizeof(limit)));
}

/* The memory limit holds the sealed root's files and, without a cgroup, the
 * scratch tmpfs (see limits.c); what is left must start the interpreter. Checked
 * once the limits are final: a bundle's signed limit, tightened by flags. */
static int check_memory(const struct run *run)
{
	const struct tp_run_opts *o = &run->opts;
	uint64_t root = run->sealed ? run->plan.reserve_bytes : 0;
	uint64_t taken = root + o->limits.scratch_bytes;
	char limit[32], root_text[32], scratch[32], min[32], parts[128] = "";
	const char *fix;

	if (run->input_size > o->limits.memory_bytes)
		return input_too_large(run);
	if (o->limits.memory_bytes >= taken &&
	    o->limits.memory_bytes - taken >= TP_LIMITS_MIN_MEMORY)
		return 0;
	if (root)
		snprintf(parts, sizeof(parts), " less the sealed root's files (%s)",
			 tp_format_size(root, root_text, sizeof(root_text)));
	if (o->limits.scratch_bytes)
		snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
			 " less the scratch (%s)",
			 tp_format_size(o->limits.scratch_bytes, scratch, sizeof(scratch)));
	if (run->sealed)
		fix = o->limits.memory_bytes < run->bundle.manifest.memory_bytes
			  ? "raise --memory, up to the bundle's own limit"
			  : "rebuild the bundle with a larger --memory";
	else if (o->limits.scratch_bytes)
		fix = "raise --memory or lower --scratch";
	else
		fix = "use --memory 32M or more";
	return usage_error(
	    "%s%smemory limit %s%s leaves less than the %s the interpreter needs (%s)",
	    run->sealed ? o->script : "", run->sealed ? ": " : "",
	    tp_format_size(o->limits.memory_bytes, limit, sizeof(limit)), parts,
	    tp_format_size(TP_LIMITS_MIN_MEMORY, min, sizeof(min)), fix);
}

/* Reads the input and opens the data files the user named. Returns an exit code or 0. */
static int load_inputs(struct run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct stat st;

	if (o->input) {
		run->input = strdup(o->input);
		run->input_size = strlen(o->input);
		if (!run->input)
			return usage_error("out of memory");
	} else if (o->input_file) {
		int fd = strcmp(o->input_file, "-") == 0 ? dup(0)
							   : open(o->input_file, O_RDONLY | O_CLOEXEC);
		int r;
		if (fd < 0)
			return usage_error("--input-file %s: %s", o->input_file, strerror(errno));
		/* the service could not hold more; /dev/zero must not exhaust teepy */
		r = tp_read_all(fd,
				o->limits.memory_bytes > SIZE_MAX ? SIZE_MAX
								  : (size_t)o->limits.memory_bytes,
				&run->input, &run->input_size);
		close(fd);
		if (r == -EFBIG)
			return input_too_large(run);
		if (r < 0)
			return usage_error("--input-file %s: %s", o->input_file, strerror(-r));
	} else {
		run->input = strdup("");
	}

	run->data_fds = calloc(o->data.count ? o->data.count : 1, sizeof(int));
	if (!run->data_fds)
		return usage_error("out of memory");
	for (size_t i = 0; i < o->data.count; i++) {
		const char *flag = i < o->service_data_count ? "--data" : "--task-data";
		int fd = open(o->data.items[i], O_RDONLY | O_CLOEXEC);
		run->data_fds[i] = fd;
		if (fd < 0)
			return usage_error("%s %s: %s", flag, o->data.items[i], strerror(errno));
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			return usage_error("%s %s: not a regular file", flag, o->data.items[i]);
	}

	if (o->output_file) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", o->output_file);
		if (access(dirname(dir), W_OK) < 0)
			return usage_error("--output %s: cannot write into %s: %s", o->output_file,
					   dir, strerror(errno));
		if (stat(o->output_file, &st) == 0 && S_ISDIR(st.st_mode))
			return usage_error("--output %s: is a directory", o->output_file);
	}
	return 0;
}

static void set_exec_files(struct run *run, const char *exe, const char *loader, const char *more);
static int plan_runtime(struct run *run);

/* Whether an /etc/alternatives target may be visible: inside a bind once its
 * directory is resolved (dirs caches the few directories the ~500 links share), or
 * itself a link, which only a full walk can follow. */
static bool may_be_visible(const struct tp_root_plan *plan, const char *target,
			   char dirs[][2][PATH_MAX], size_t *dir_count)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(target, '/');
	struct stat st;
	size_t i;

	if (target[0] != '/' || tp_root_plan_covers(plan, target))
		return true;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - target), target);
	for (i = 0; i < *dir_count && strcmp(dirs[i][0], dir) != 0; i++)
		;
	if (i == *dir_count) {
		if (!realpath(dir[0] ? dir : "/", real))
			return false;
		if (*dir_count < 16) {
			snprintf(dirs[*dir_count][0], PATH_MAX, "%s", dir);
			snprintf(dirs[*dir_count][1], PATH_MAX, "%s", real);
			++*dir_count;
		}
	} else {
		snprintf(real, sizeof(real), "%s", dirs[i][1]);
	}
	if (strlen(real) + strlen(slash) < sizeof(real)) {
		strcat(real, slash);
		if (tp_root_plan_covers(plan, real))
			return true;
	}
	return lstat(target, &st) == 0 && S_ISLNK(st.st_mode);
}

/* Debian reaches some libraries through /etc/alternatives (BLAS, LAPACK): keep the
 * links whose targets are visible, nothing else of /etc. Most lead to programs and
 * manuals that are not: a readlink settles those before the full walk, which costs
 * about ten system calls a link (measured: 4,400 calls, most of the planning time
 * of an --allow-site-packages run, before this filter). */
static void plan_alternatives(struct tp_root_plan *plan)
{
	static char dirs[16][2][PATH_MAX];
	size_t dir_count = 0;
	DIR *d = opendir("/etc/alternatives");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX], target[PATH_MAX];
		ssize_t n;
		if (e->d_name[0] == '.' || e->d_type != DT_LNK)
			continue;
		n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!may_be_visible(plan, target, dirs, &dir_count))
			continue;
		snprintf(path, sizeof(path), "/etc/alternatives/%s", e->d_name);
		tp_root_plan_add_links(plan, path);
	}
	if (d)
		closedir(d);
}

/* One --allow or --pythonpath PATH (FLAG names it): its real path into the plan.
 * Returns an exit code or 0. */
static int plan_allowed(struct run *run, const char *flag, const char *path, char real[PATH_MAX])
{
	static const char *const kernel_dirs[] = { "/proc", "/sys", "/dev" };
	int r;

	if (!realpath(path, real))
		return usage_error("%s %s: %s", flag, path, strerror(errno));
	if (strcmp(real, "/") == 0)
		return usage_error("%s %s: the whole host cannot be allowed", flag, path);
	for (size_t k = 0; k < sizeof(kernel_dirs) / sizeof(kernel_dirs[0]); k++)
		if (tp_root_path_under(real, kernel_dirs[k]))
			return usage_error("%s %s: %s is the host's kernel view (its processes, "
					   "devices, settings) and cannot be allowed",
					   flag, path, kernel_dirs[k]);
	if (run->opts.limits.scratch_bytes && tp_root_path_under(real, "/tmp"))
		return usage_error("%s %s: --scratch makes /tmp private; allow a path outside /tmp, "
				   "or drop --scratch",
				   flag, path);
	char what[PATH_MAX + 16];
	snprintf(what, sizeof(what), "%s %s", flag, path);
	if ((r = check_no_kernel_mount(what, real)) != 0)
		return r;
	if ((r = tp_root_plan_add_path(&run->plan, real)) < 0)
		return usage_error("%s %s: %s", flag, path, strerror(-r));
	return 0;
}

static int plan_unsealed(struct run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct tp_root_plan *plan = &run->plan;
	int r;

	/* the interpreter, its stdlib and the shared libraries (with the links to them) */
	if ((r = tp_root_plan_add_path(plan, TP_PYTHON_EXE)) < 0) {
		tp_error("interpreter %s: %s (install python3)", TP_PYTHON_EXE, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	static const char *const system_paths[] = {
		TP_PYTHON_STDLIB,
		"/usr/lib/" TP_MULTIARCH,
	};
	for (size_t i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++) {
		if ((r = tp_root_plan_add_path(plan, system_paths[i])) < 0) {
			tp_error("%s: %s", system_paths[i], strerror(-r));
			return TP_EXIT_INTERNAL;
		}
	}
	/* the locale teepy sets (LC_CTYPE=C.UTF-8): without its data glibc falls back
	 * to "C" and CPython to its UTF-8 mode, which code and tests can tell apart.
	 * glibc may also have it built in, so its absence is no error. */
	if ((r = tp_root_plan_add_path(plan, "/usr/lib/locale/C.utf8")) < 0 && r != -ENOENT) {
		tp_error("/usr/lib/locale/C.utf8: %s", strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	if ((r = tp_root_plan_add_path(plan, TP_LOADER)) < 0 ||
	    (r = tp_root_plan_add_links(plan, "/usr/bin/python3")) < 0 ||
	    (r = tp_root_plan_add_links(plan, "/lib/" TP_MULTIARCH)) < 0) {
		tp_error("program loader %s: %s", TP_LOADER, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	if (o->allow_site_packages && (r = tp_root_plan_add_path(plan, TP_PYTHON_DIST_PACKAGES)) < 0)
		return usage_error("--allow-site-packages: %s: %s (install python3-numpy or the "
				   "packages you need)",
				   TP_PYTHON_DIST_PACKAGES, strerror(-r));
	/* a build that allows processes needs the programs the app runs to be visible */
	if (run->processes && ((r = tp_root_plan_add_path(plan, "/usr/bin")) < 0 ||
			       (r = tp_root_plan_add_links(plan, "/bin/sh")) < 0)) {
		tp_error("/usr/bin: %s", strerror(-r));
		return TP_EXIT_INTERNAL;
	}

	/* what the user allows. A traced build sees its app where the sealed bundle
	 * will have it, at /app, so paths the sample run uses hold in the bundle */
	if (run->trace_log) {
		char entry[PATH_MAX];
		if ((r = tp_root_plan_add(plan, TP_ROOT_BIND, TP_APP_DIR, run->script_dir, 0)) < 0)
			return TP_EXIT_INTERNAL;
		snprintf(entry, sizeof(entry), "%s%s", TP_APP_DIR, run->script + strlen(run->script_dir));
		snprintf(run->entry, sizeof(run->entry), "%s", entry);
		snprintf(run->cwd, sizeof(run->cwd), "%s", TP_APP_DIR);
	} else if ((r = tp_root_plan_add_path(plan, run->script_dir)) < 0) {
		return usage_error("%s: %s", run->script_dir, strerror(-r));
	}
	for (size_t i = 0; i < o->allow.count; i++) {
		char real[PATH_MAX];
		int code = plan_allowed(run, "--allow", o->allow.items[i], real);
		if (code)
			return code;
	}
	if ((r = tp_strlist_push(&run->python_path, run->trace_log ? TP_APP_DIR : run->script_dir)) < 0)
		return TP_EXIT_INTERNAL;
	for (size_t i = 0; i < o->pythonpath.count; i++) {
		char real[PATH_MAX];
		int code = plan_allowed(run, "--pythonpath", o->pythonpath.items[i], real);
		if (code)
			return code;
		if ((r = tp_strlist_push(&run->python_path, real)) < 0)
			return TP_EXIT_INTERNAL;
	}
	if ((r = tp_strlist_push(&run->python_path, TP_PYTHON_STDLIB)) < 0 ||
	    (r = tp_strlist_push(&run->python_path, TP_PYTHON_STDLIB "/lib-dynload")) < 0 ||
	    (o->allow_site_packages &&
	     (r = tp_strlist_push(&run->python_path, TP_PYTHON_DIST_PACKAGES)) < 0))
		return TP_EXIT_INTERNAL;

	if (o->allow_site_packages || o->allow.count || o->pythonpath.count)
		plan_alternatives(plan);

	char loader_real[PATH_MAX], exe_real[PATH_MAX];
	if (!realpath(TP_LOADER, loader_real) || !realpath(TP_PYTHON_EXE, exe_real)) {
		tp_error("cannot resolve the interpreter: %s", strerror(errno));
		return TP_EXIT_INTERNAL;
	}
	set_exec_files(run, exe_real, loader_real, run->processes ? "/usr/bin" : NULL);
	return plan_runtime(run);
}

/* Landlock: what may be executed inside (the interpreter and its loader, and for a
 * processes policy the directory of programs). */
static void set_exec_files(struct run *run, const char *exe, const char *loader, const char *more)
{
	snprintf(run->exec_buf[0], PATH_MAX, "%s", exe);
	snprintf(run->exec_buf[1], PATH_MAX, "%s", loader);
	run->exec_files[0] = run->exec_buf[0];
	run->exec_files[1] = run->exec_buf[1];
	run->exec_files[2] = more;
	run->exec_files[3] = NULL;
}

/* A user database of the service's own account, root and nobody, and nothing of
 * the host's: pwd.getpwuid(os.getuid()), getpass.getuser(), Path.home() and
 * tarfile's owner names work as natively, and so does pwd.getpwuid(0), which
 * programs take for granted (CPython's test_tarfile looks root up at import). Every
 * Unix has root and nobody: naming them reveals no host account. Inside, uid 0 is
 * mapped to nothing; 65534 is what any unmapped owner shows as. */
static int plan_user_database(struct run *run)
{
	unsigned uid = tp_sandbox_service_uid(), gid = tp_sandbox_service_gid();
	const char *home = run->opts.limits.scratch_bytes ? "/tmp" : "/";
	char passwd[512], groups[256];
	int n, r;

	n = snprintf(passwd, sizeof(passwd),
		     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		     "teepy:x:%u:%u:teepy:%s:/usr/sbin/nologin\n",
		     uid, gid, home);
	if (uid != 65534)
		snprintf(passwd + n, sizeof(passwd) - (size_t)n,
			 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
	n = snprintf(groups, sizeof(groups), "root:x:0:\nteepy:x:%u:\n", gid);
	if (gid != 65534)
		snprintf(groups + n, sizeof(groups) - (size_t)n, "nogroup:x:65534:\n");
	r = tp_root_plan_add(&run->plan, TP_ROOT_FILE, "/etc/passwd", passwd, 0);
	return r ?: tp_root_plan_add(&run->plan, TP_ROOT_FILE, "/etc/group", groups, 0);
}

/* What every root has: devices, the runtime extension, the user database, scratch. */
static int plan_runtime(struct run *run)
{
	struct tp_root_plan *plan = &run->plan;
	int r;

	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		if ((r = tp_root_plan_add(plan, TP_ROOT_DEVICE, devices[i], devices[i], 0)) < 0)
			return TP_EXIT_INTERNAL;
	if ((r = tp_root_plan_add(plan, TP_ROOT_RUNTIME, TP_RUNTIME_DIR "/_teepy" TP_PYTHON_EXT_SUFFIX,
				  run->runtime_so, 0)) < 0)
		return TP_EXIT_INTERNAL;
	if ((r = plan_user_database(run)) < 0)
		return TP_EXIT_INTERNAL;
	if (run->opts.limits.scratch_bytes &&
	    (r = tp_root_plan_add(plan, TP_ROOT_TMPFS, "/tmp", NULL,
				  run->opts.limits.scratch_bytes)) < 0)
		return TP_EXIT_INTERNAL;
	tp_root_plan_finish(plan);
	return 0;
}

/* ---- sealed bundles ---- */

/* The trusted signers: --trust, else TEEPY_TRUSTED_SIGNERS (colon-separated). Every
 * one is loaded before any is compared, so a bad entry is reported wherever it
 * stands in the list, not only when no earlier one matched. */
static int check_signer(struct run *run)
{
	const struct tp_bundle_file *bf = &run->bundle;
	char signer[65], err[256];
	struct tp_strlist trusted = { 0 };
	const char *env = getenv("TEEPY_TRUSTED_SIGNERS");
	const char *source = "--trust";
	uint8_t(*raw)[32] = NULL;
	int code = TP_EXIT_USAGE;

	tp_hex(bf->signer, 32, signer);
	for (size_t i = 0; i < run->opts.trust.count; i++)
		tp_strlist_push(&trusted, run->opts.trust.items[i]);
	if (!trusted.count && env && *env) {
		char *copy = strdup(env), *save = NULL;
		for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
			tp_strlist_push(&trusted, tok);
		free(copy);
		source = "TEEPY_TRUSTED_SIGNERS entry";
	}
	raw = calloc(trusted.count ? trusted.count : 1, sizeof(*raw));
	if (!raw) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < trusted.count; i++) {
		if (tp_key_read_public(trusted.items[i], raw[i], err, sizeof(err)) < 0) {
			tp_error("%s %s: %s", source, trusted.items[i], err);
			goto out;
		}
	}

	/* who claims to have signed first: a changed key is an unknown signer, a changed
	 * manifest or signature a signature that does not verify (Ed25519 cannot tell
	 * those two apart) */
	code = TP_EXIT_BUNDLE;
	if (trusted.count) {
		bool known = false;
		for (size_t i = 0; i < trusted.count; i++)
			known = known || memcmp(raw[i], bf->bundle.pubkey, 32) == 0;
		if (!known) {
			tp_error("%s: signed by %.16s…, which is none of the trusted signers (use "
				 "--trust KEY)",
				 run->opts.script, signer);
			goto out;
		}
	} else if (!run->opts.insecure_any_signer) {
		tp_error("%s: no trusted signer given; the bundle is signed by %.16s… (use --trust "
			 "SIGNER.pub, or --insecure-any-signer)",
			 run->opts.script, signer);
		code = TP_EXIT_USAGE;
		goto out;
	}
	if (!bf->signature_ok) {
		tp_error("%s: the signature does not verify: the manifest or the signature was "
			 "changed after signing",
			 run->opts.script);
		goto out;
	}
	if (!trusted.count)
		tp_warn("--insecure-any-signer: running %s signed by %.16s… without checking who "
			"that is",
			run->opts.script, signer);
	code = 0;
out:
	free(raw);
	tp_strlist_free(&trusted);
	return code;
}

/* A run may add environment variables to a sealed bundle, never change one the
 * signer set: the manifest's values are part of what was measured. Returns an exit
 * code or 0. */
static int check_env(const struct run *run)
{
	const struct tp_strlist *signed_env = &run->bundle.manifest.env;

	for (size_t i = 0; i < run->opts.env.count; i++) {
		const char *assignment = run->opts.env.items[i];
		size_t name_len = (size_t)(strchr(assignment, '=') - assignment);
		for (size_t j = 0; j < signed_env->count; j++) {
			if (strncmp(signed_env->items[j], assignment, name_len + 1) == 0)
				return usage_error(
				    "--env %.*s: the bundle's signed manifest sets %.*s; "
				    "a run may add variables, not change signed ones",
				    (int)name_len, assignment, (int)name_len, assignment);
		}
	}
	return 0;
}

static uint64_t tighter(bool given, uint64_t flag, uint64_t manifest)
{
	return given && flag < manifest ? flag : manifest;
}

static int prepare_sealed(struct run *run)
{
	struct tp_run_opts *o = &run->opts;
	const struct tp_manifest *m;
	char err[768];
	int r, code;

	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("%s: %s", o->script, err);
		return TP_EXIT_INTERNAL;
	}
	if ((r = tp_bundle_file_open(o->script, &run->bundle, err, sizeof(err))) < 0) {
		tp_error("%s: %s", o->script, err);
		return TP_EXIT_BUNDLE;
	}
	run->sealed = true; /* run_free closes the bundle from here on */
	mark("bundle read, signature checked");
	/* who signed it is settled before a byte of the manifest is parsed */
	if ((code = check_signer(run)) != 0)
		return code;
	mark("signer trusted");
	if ((r = tp_bundle_file_parse(&run->bundle, err, sizeof(err))) < 0) {
		tp_error("%s: %s", o->script, err);
		return TP_EXIT_BUNDLE;
	}
	if ((code = check_env(run)) != 0)
		return code;
	m = &run->bundle.manifest;
	run->plan.reserve_bytes = tp_sealed_reserve(&run->bundle);
	run->processes = m->processes == TP_PROCESSES_MANIFEST;
	snprintf(run->entry, sizeof(run->entry), "%s", m->entry);
	snprintf(run->cwd, sizeof(run->cwd), "%s", TP_APP_DIR);
	snprintf(run->script, sizeof(run->script), "%s", o->script);
	for (size_t i = 0; i < m->python_path.count; i++)
		if (tp_strlist_push(&run->python_path, m->python_path.items[i]) < 0)
			return TP_EXIT_INTERNAL;

	/* the bundle's signed limits hold; flags may only tighten them */
	o->limits.memory_bytes =
	    tighter(o->limits_given & TP_LIMIT_MEMORY, o->limits.memory_bytes, m->memory_bytes);
	o->limits.cpu_ms = tighter(o->limits_given & TP_LIMIT_CPU, o->limits.cpu_ms, m->cpu_ms);
	o->limits.timeout_ms =
	    tighter(o->limits_given & TP_LIMIT_TIMEOUT, o->limits.timeout_ms, m->timeout_ms);
	o->limits.threads =
	    (unsigned)tighter(o->limits_given & TP_LIMIT_THREADS, o->limits.threads, m->threads);
	if (o->limits.scratch_bytes && o->limits.scratch_bytes != m->scratch_bytes)
		tp_warn("--scratch is set by the bundle's policy (%llu bytes); the flag is ignored",
			(unsigned long long)m->scratch_bytes);
	o->limits.scratch_bytes = m->scratch_bytes;
	if (o->allow.count || o->pythonpath.count || o->allow_site_packages)
		tp_warn("--allow, --pythonpath and --allow-site-packages do not apply to a sealed "
			"bundle: it sees only its manifest's files");

	/* sys.path directories exist even if empty: CPython finds its exec_prefix by
	 * lib-dynload, and an empty directory reveals nothing */
	for (size_t i = 0; i < run->python_path.count; i++)
		if (tp_root_plan_add(&run->plan, TP_ROOT_DIR, run->python_path.items[i], NULL, 0) < 0)
			return TP_EXIT_INTERNAL;
	/* only manifest files exist: in a processes policy any of them may be executed */
	set_exec_files(run, TP_PYTHON_EXE, TP_LOADER, run->processes ? "/" : NULL);
	return plan_runtime(run);
}

static int push_env(struct run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int push_env(struct run *run, const char *fmt, ...)
{
	char **envp = realloc(run->envp, (run->env_count + 2) * sizeof(char *));
	va_list ap;
	int r;

	if (!envp)
		return -ENOMEM;
	run->envp = envp;
	va_start(ap, fmt);
	r = vasprintf(&envp[run->env_count], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	envp[++run->env_count] = NULL;
	return 0;
}

/* No host variable passes: a fixed locale, BLAS/OpenMP thread caps, then --env. */
static int build_env(struct run *run)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned cap = run->opts.limits.threads > 1 ? run->opts.limits.threads / 2 : 1;
	int r = 0;

	run->blas_threads = cpus > 0 && (unsigned long)cpus < cap ? (unsigned)cpus : cap;
	r = r ?: push_env(run, "LC_CTYPE=C.UTF-8");
	r = r ?: push_env(run, "OPENBLAS_NUM_THREADS=%u", run->blas_threads);
	r = r ?: push_env(run, "OMP_NUM_THREADS=%u", run->blas_threads);
	r = r ?: push_env(run, "MKL_NUM_THREADS=%u", run->blas_threads);
	size_t manifest_count = run->sealed ? run->bundle.manifest.env.count : 0;
	for (size_t i = 0; r == 0 && i < manifest_count + run->opts.env.count; i++) {
		const char *assignment = i < manifest_count ? run->bundle.manifest.env.items[i]
							    : run->opts.env.items[i - manifest_count];
		size_t name_len = (size_t)(strchr(assignment, '=') - assignment);
		/* a later assignment of the same name replaces the earlier one */
		for (size_t j = 0; j < run->env_count; j++) {
			if (strncmp(run->envp[j], assignment, name_len + 1) == 0) {
				free(run->envp[j]);
				run->envp[j] = run->envp[--run->env_count];
				run->envp[run->env_count] = NULL;
				break;
			}
		}
		r = push_env(run, "%s", assignment);
	}
	return r;
}

static int build_boot(struct run *run, struct buf *boot)
{
	const struct tp_bpf *stage2 = run->processes ? &tp_seccomp_stage2_processes : &tp_seccomp_stage2;
	char count[32];
	int r = 0;

	snprintf(count, sizeof(count), "%zu", run->opts.data.count);
	r = r ?: buf_field(boot, TP_BOOT_FILTER, stage2->insns, stage2->size);
	r = r ?: buf_string(boot, TP_BOOT_ENTRY, run->entry);
	r = r ?: buf_string(boot, TP_BOOT_DATA_COUNT, count);
	r = r ?: buf_string(boot, TP_BOOT_ARG, run->entry);
	for (size_t i = 0; r == 0 && run->sealed && i < run->bundle.manifest.argv.count; i++)
		r = buf_string(boot, TP_BOOT_ARG, run->bundle.manifest.argv.items[i]);
	for (size_t i = 0; r == 0 && i < run->opts.script_args.count; i++)
		r = buf_string(boot, TP_BOOT_ARG, run->opts.script_args.items[i]);
	for (size_t i = 0; r == 0 && i < run->python_path.count; i++)
		r = buf_string(boot, TP_BOOT_PATH, run->python_path.items[i]);
	const struct tp_strlist *preload =
	    run->sealed ? &run->bundle.manifest.preload : run->preload;
	for (size_t i = 0; r == 0 && preload && i < preload->count; i++)
		r = buf_string(boot, TP_BOOT_PRELOAD, preload->items[i]);
	return r;
}

static void print_config(const struct run *run)
{
	const struct tp_run_opts *o = &run->opts;
	char timeout[32], scratch[32];
	int abi = tp_landlock_abi();
	size_t binds = 0;

	for (size_t i = 0; i < run->plan.count; i++)
		binds += run->plan.ops[i].kind == TP_ROOT_BIND;
	fprintf(stderr, "teepy: configuration\n");
	fprintf(stderr, "  %s        %s\n", run->sealed ? "bundle" : "script", run->script);
	if (run->sealed) {
		char app[65], signer[65];
		tp_hex(run->bundle.app, 32, app);
		tp_hex(run->bundle.signer, 32, signer);
		fprintf(stderr, "  app           %s\n", app);
		fprintf(stderr, "  signer        %s\n", signer);
		fprintf(stderr, "  verify        %zu files, each hashed as it is written into the root\n",
			run->bundle.manifest.file_count);
	}
	fprintf(stderr, "  interpreter   %s (Python %s), executed, not embedded\n", TP_PYTHON_EXE,
		TP_PYTHON_VERSION);
	fprintf(stderr, "  runtime       %s\n", run->runtime_so);
	fprintf(stderr, "  mode          sim%s (no hardware attestation)\n",
		o->mode_was_auto ? " (auto)" : "");
	fprintf(stderr,
		"  namespaces    user, mount, pid, network, ipc, uts (uid %u is %u inside, no "
		"capabilities)\n",
		(unsigned)getuid(), tp_sandbox_service_uid());
	if (run->sealed)
		fprintf(stderr, "  root          sealed: read-only tmpfs holding only the %zu manifest "
				"files, written from the verified bytes\n",
			run->bundle.manifest.file_count);
	else
		fprintf(stderr, "  root          read-only tmpfs with %zu read-only binds: stdlib, "
				"libraries, script directory%s%s\n",
			binds, o->allow_site_packages ? ", dist-packages" : "",
			o->allow.count || o->pythonpath.count ? ", allowed paths" : "");
	fprintf(stderr, "  processes     %s\n",
		run->processes ? "fork and exec of files inside the root (policy \"manifest\")"
			       : "none: threads only");
	fprintf(stderr, "  scratch       %s\n",
		o->limits.scratch_bytes
		    ? tp_format_size(o->limits.scratch_bytes, scratch, sizeof(scratch))
		    : "none (no writable path)");
	if (abi > 0)
		fprintf(stderr, "  landlock      ABI %d: %s\n", abi, tp_landlock_describe(abi));
	else
		fprintf(stderr, "  landlock      unavailable (%s): teepy will refuse to run\n",
			strerror(-abi));
	fprintf(stderr, "  seccomp       2 stages, %zu named calls + argument rules, default ENOSYS; "
			"execve allowed once for the interpreter, %s after boot\n",
		tp_seccomp_rule_count(), run->processes ? "allowed (Landlock: root files only)" : "denied");
	tp_limits_print(&run->limits, o->limits.memory_bytes,
			run->sealed ? run->plan.reserve_bytes : 0, stderr);
	fprintf(stderr,
		"  BLAS threads  %u (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)\n",
		run->blas_threads);
	fprintf(stderr, "  timeout       %s (wall clock, enforced by teepy)\n",
		tp_format_duration(o->limits.timeout_ms, timeout, sizeof(timeout)));
	fprintf(stderr, "  environment   %zu variables, none from the host\n", run->env_count);
	fprintf(stderr, "  data          %zu service + %zu task items\n", o->service_data_count,
		o->data.count - o->service_data_count);
	fprintf(stderr, "  output        %s\n", o->output_file ? o->output_file : "stdout");
}

/* ---- serving the control channel ---- */

static int open_result(void *ctx)
{
	struct run *run = ctx;

	if (!run->opts.output_file && run->trace_log) {
		/* a build's stdout is its own: the sample run's result is only counted */
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (!run->opts.output_file)
		return STDOUT_FILENO;
	snprintf(run->out_tmp, sizeof(run->out_tmp), "%s.teepy-XXXXXX", run->opts.output_file);
	int fd = mkostemp(run->out_tmp, O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		tp_error("--output %s: %s", run->opts.output_file, strerror(errno));
		run->out_tmp[0] = '\0';
		return r;
	}
	return fd;
}

static void supervise(struct run *run, struct tp_sandbox *sb)
{
	struct tp_channel *ch = &run->channel;

	struct pollfd fds[2] = {
		{ .fd = sb->ctrl_fd, .events = POLLIN },
		{ .fd = sb->out_fd, .events = POLLIN },
	};

	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		int n = poll(fds, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].fd >= 0 && fds[1].revents) {
			char buf[65536];
			ssize_t got = read(fds[1].fd, buf, sizeof(buf));
			if (got > 0)
				tp_write_full(STDERR_FILENO, buf, (size_t)got);
			else if (got == 0 || errno != EINTR) {
				close(fds[1].fd);
				fds[1].fd = -1;
			}
		}
		if (fds[0].fd >= 0 && fds[0].revents) {
			if (tp_channel_serve_one(ch) < 0) {
				if (ch->protocol_violation || ch->result_too_large)
					kill_service();
				close(fds[0].fd);
				fds[0].fd = -1;
			}
		}
	}
	sb->ctrl_fd = sb->out_fd = -1;
}

static int finish_result(struct run *run)
{
	const struct tp_channel *ch = &run->channel;

	if (!ch->have_result || !run->opts.output_file || ch->result_fd < 0)
		return 0;
	if (ch->result_incomplete || ch->result_error) {
		unlink(run->out_tmp); /* nothing half-written is left behind */
		close(ch->result_fd);
		return -EPIPE;
	}
	if (fsync(ch->result_fd) < 0 || close(ch->result_fd) < 0 ||
	    rename(run->out_tmp, run->opts.output_file) < 0) {
		int r = -errno;
		unlink(run->out_tmp);
		tp_error("--output %s: %s", run->opts.output_file, strerror(-r));
		return r;
	}
	return 0;
}

/* "memory limit exceeded (3 GiB, killed by the cgroup, peak 3.0 GiB)" */
static void memory_exceeded(const struct run *run, bool oom, const struct rusage *ru)
{
	uint64_t root = run->sealed ? run->plan.reserve_bytes : 0;
	uint64_t peak = tp_limits_peak_memory(&run->limits);
	char limit[32], peak_text[32], root_text[32], how[128];

	if (peak)
		snprintf(how, sizeof(how), "peak %s%s%s%s",
			 tp_format_size(peak + root, peak_text, 32),
			 root ? " with the sealed root's files (" : "",
			 root ? tp_format_size(root, root_text, sizeof(root_text)) : "",
			 root ? ")" : "");
	else /* RLIMIT_AS: no memory counter, what the kernel kept resident at most */
		snprintf(how, sizeof(how), "peak resident %s",
			 tp_format_size((uint64_t)ru->ru_maxrss * 1024, peak_text, 32));
	tp_error("memory limit exceeded (%s, %s, %s)",
		 tp_format_size(run->opts.limits.memory_bytes, limit, sizeof(limit)),
		 oom ? "killed by the cgroup" : "MemoryError", how);
}

/* Reads how the service ended and says so in one line. */
static int judge(struct run *run, int status, const struct rusage *ru)
{
	const struct tp_channel *ch = &run->channel;
	char text[64];
	/* a cgroup counts every process; the rusage of a reaped service its threads
	 * and the children it waited for */
	uint64_t cgroup_cpu_ns = tp_limits_cpu_used_ns(&run->limits, 0);
	double cpu_used =
	    cgroup_cpu_ns ? (double)cgroup_cpu_ns / 1e9
			  : (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
				(double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
	bool oom = tp_limits_oom_killed(&run->limits);

	if (interrupted) {
		tp_error("interrupted by signal %d; the service was stopped", (int)interrupted);
		return TP_EXIT_INTERRUPTED;
	}
	if (ch->result_too_large) {
		tp_error(
		    "killed for a rule: the service sent a result larger than its memory limit "
		    "(%s)",
		    tp_format_size(run->opts.limits.memory_bytes, text, sizeof(text)));
		return TP_EXIT_RULE;
	}
	if (ch->protocol_violation) {
		tp_error("killed for a rule: the service wrote malformed frames to its control channel");
		return TP_EXIT_RULE;
	}
	if (ch->result_error) {
		tp_error("cannot write the result to %s: %s",
			 run->opts.output_file ? run->opts.output_file : "stdout",
			 strerror(-ch->result_error));
		return TP_EXIT_INTERNAL;
	}
	if (timed_out) {
		tp_error("wall-clock timeout (%s) exceeded; the service was killed",
			 tp_format_duration(run->opts.limits.timeout_ms, text, sizeof(text)));
		return TP_EXIT_TIMEOUT;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		/* the kernel ended it (SECCOMP_RET_KILL_PROCESS): which call, it does not say */
		tp_error("killed for a rule: a forbidden system call that ends the service (reboot, "
			 "kexec, kernel modules, iopl/ioperm, swap, acct) or another architecture's "
			 "system call");
		return TP_EXIT_RULE;
	}
	/* Under RLIMIT_AS the limit shows as an allocation that fails: MemoryError. A
	 * cgroup never fails an allocation, it kills: there a MemoryError is the
	 * service's own (an impossible size, as natively), not the limit. */
	if (oom || (run->limits.memory_mechanism == TP_LIMIT_RLIMIT &&
		    ch->status_kind == TP_STATUS_EXCEPTION &&
		    strcmp(ch->status_name, "MemoryError") == 0)) {
		memory_exceeded(run, oom, ru);
		return TP_EXIT_MEMORY;
	}
	/* killed by teepy's watch at the limit, or by the RLIMIT_CPU backstop past it */
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    (run->cpu_exceeded || cpu_used * 1000 >= (double)run->opts.limits.cpu_ms)) {
		tp_error("CPU time limit exceeded (%s used of %s)",
			 tp_format_duration((uint64_t)(cpu_used * 1000), text, sizeof(text)),
			 tp_format_duration(run->opts.limits.cpu_ms, text + 32, 32));
		return TP_EXIT_CPU;
	}
	if (WIFSIGNALED(status)) {
		tp_error("the service crashed: %s", strsignal(WTERMSIG(status)));
		return TP_EXIT_SERVICE_FAILED;
	}
	if (ch->result_incomplete) {
		tp_error("the service ended while sending its result: the result is cut short%s",
			 run->opts.output_file ? " and was not written" : "");
		return TP_EXIT_SERVICE_FAILED;
	}
	if (WEXITSTATUS(status) != 0) {
		if (ch->status_kind == TP_STATUS_EXCEPTION)
			tp_error("the service raised %s (traceback above)", ch->status_name);
		else if (ch->status_kind != TP_STATUS_SYNTAX)
			tp_error("the service exited with status %d", WEXITSTATUS(status));
		return TP_EXIT_SERVICE_FAILED;
	}
	if (!ch->have_result) {
		tp_error("the service ended without returning a result (call teex.TEEX_return)");
		return TP_EXIT_NO_RESULT;
	}
	return TP_EXIT_OK;
}

static void run_free(struct run *run)
{
	for (size_t i = 0; run->data_fds && i < run->opts.data.count; i++)
		if (run->data_fds[i] >= 0)
			close(run->data_fds[i]);
	free(run->data_fds);
	tp_strlist_free(&run->python_path);
	for (size_t i = 0; i < run->env_count; i++)
		free(run->envp[i]);
	free(run->envp);
	free(run->input);
	tp_root_plan_free(&run->plan);
	tp_limits_cleanup(&run->limits);
	if (run->sealed)
		tp_bundle_file_close(&run->bundle);
	tp_run_opts_free(&run->opts);
}

struct serve_args {
	struct run *run;
	struct tp_sandbox *sb;
	int code; /* non-zero if the child failed before exec */
	char err[512];
};

/* The channel and the output relay; in a traced run this is its own thread, since
 * the main thread must be the tracer. */
static void *serve_thread(void *arg)
{
	struct serve_args *a = arg;

	if (tp_sandbox_wait_exec(a->sb, a->err, sizeof(a->err)) < 0) {
		a->code = TP_EXIT_INTERNAL;
		kill_service();
	}
	supervise(a->run, a->sb);
	return NULL;
}

/* Spawns, serves and judges; the common part of every kind of run. */
static int execute(struct run *run)
{
	struct tp_sandbox sb = { .pid = -1, .ctrl_fd = -1, .out_fd = -1, .err_fd = -1 };
	struct buf boot = { 0 };
	char err[512];
	int r;

	if (build_env(run) < 0 || build_boot(run, &boot) < 0) {
		free(boot.data);
		return TP_EXIT_INTERNAL;
	}
	/* from here on a signal to teepy stops the service and removes the cgroups */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);

	/* the sealed root's files are held in memory for the service: they come out of
	 * its limit (check_memory made sure enough is left) */
	run->limits.memory_bytes =
	    run->opts.limits.memory_bytes - (run->sealed ? run->plan.reserve_bytes : 0);
	run->limits.scratch_bytes = run->opts.limits.scratch_bytes;
	run->limits.cpu_ms = run->opts.limits.cpu_ms;
	run->limits.threads = run->opts.limits.threads;
	run->limits.processes = run->processes;
	tp_limits_prepare(&run->limits);
	mark("cgroups prepared");
	if (tp_limits_weaker(&run->limits, err, sizeof(err)))
		tp_warn("%s", err);
	if (run->opts.print_config)
		print_config(run);

	const char *interp_argv[] = { TP_PYTHON_EXE, "-I", "-S", "-B", "-c", TP_BOOT_TEXT, NULL };
	struct tp_sandbox_config cfg = {
		.interpreter = TP_PYTHON_EXE,
		.argv = interp_argv,
		.envp = (const char *const *)run->envp,
		.exec_files = run->exec_files,
		.root = &run->plan,
		.cwd = run->cwd,
		.scratch_dir = run->opts.limits.scratch_bytes ? "/tmp" : NULL,
		.limits = &run->limits,
		.stage1 = run->processes ? &tp_seccomp_stage1_processes : &tp_seccomp_stage1,
		.trace = run->trace_log != NULL,
		.filled_from_outside = run->sealed,
		.mark = timing_on ? mark : NULL,
	};

	struct tp_cgroup_join join;
	if ((r = tp_limits_open_join(&run->limits, &join)) < 0) {
		tp_error("cannot open the run's cgroup: %s", strerror(-r));
		free(boot.data);
		return TP_EXIT_INTERNAL;
	}
	cfg.join = &join;
	r = tp_sandbox_spawn(&cfg, &sb, err, sizeof(err));
	tp_limits_close_join(&join);
	if (r < 0) {
		tp_error("%s", err);
		free(boot.data);
		return TP_EXIT_INTERNAL;
	}
	child_pid = sb.pid;
	child_pidfd = (int)syscall(SYS_pidfd_open, sb.pid, 0);
	if (stop_requested())
		kill(sb.pid, SIGKILL); /* a signal came before child_pid was set */
	struct itimerval timer = {
		.it_value = { .tv_sec = (time_t)(run->opts.limits.timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(run->opts.limits.timeout_ms % 1000) * 1000 },
	};
	if (setitimer(ITIMER_REAL, &timer, NULL) < 0) {
		tp_error("cannot set the wall-clock timer: %s", strerror(errno));
		kill(sb.pid, SIGKILL);
		while (waitpid(sb.pid, NULL, 0) < 0 && errno == EINTR)
			;
		forget_child();
		free(boot.data);
		return TP_EXIT_INTERNAL;
	}
	struct cpu_watch watch;
	if ((r = cpu_watch_start(&watch, &run->limits, sb.pid)) < 0) {
		tp_error("cannot watch the service's CPU time: %s", strerror(-r));
		kill(sb.pid, SIGKILL);
		while (waitpid(sb.pid, NULL, 0) < 0 && errno == EINTR)
			;
		forget_child();
		free(boot.data);
		return TP_EXIT_INTERNAL;
	}

	if (run->sealed) {
		/* the child waits in its empty root while we write the verified files in */
		int root_fd = tp_sandbox_wait_ready(&sb, err, sizeof(err));
		char line[768];
		mark("child ready for its files");
		if (root_fd < 0) {
			tp_error("%s", err);
			kill(sb.pid, SIGKILL);
			r = root_fd;
		} else if (tp_sealed_fill(&run->bundle, root_fd, &run->sealed_files, line,
					  sizeof(line), stop_requested) < 0) {
			if (!stop_requested())
				tp_error("%s: refused: %s", run->opts.script, line);
			kill(sb.pid, SIGKILL);
			r = -EBADMSG;
		} else if ((r = tp_sandbox_go(&sb)) < 0) {
			if (!stop_requested())
				tp_error("the service ended while its root was being filled");
		} else {
			if (run->opts.print_config)
				fprintf(stderr,
					"teepy: verified %zu files, %llu bytes, in %.1f ms (%u threads, "
					"%.1f ms CPU: %.0f MB/s per core)\n",
					run->sealed_files.count,
					(unsigned long long)run->sealed_files.bytes,
					run->sealed_files.seconds * 1e3, run->sealed_files.threads,
					run->sealed_files.cpu_seconds * 1e3,
					run->sealed_files.cpu_seconds > 0
					    ? (double)run->sealed_files.bytes /
						  run->sealed_files.cpu_seconds / 1e6
					    : 0.0);
		}
		if (root_fd >= 0)
			close(root_fd);
		mark("sealed root filled");
		if (r < 0) {
			while (wait4(sb.pid, &run->status, 0, &run->ru) < 0 && errno == EINTR)
				;
			run->cpu_exceeded = cpu_watch_stop(&watch);
			forget_child();
			close(sb.ctrl_fd);
			close(sb.out_fd);
			if (sb.err_fd >= 0)
				close(sb.err_fd);
			if (sb.go_fd >= 0)
				close(sb.go_fd);
			free(boot.data);
			if (stop_requested())
				return judge(run, run->status, &run->ru);
			return r == -EBADMSG ? TP_EXIT_BUNDLE : TP_EXIT_INTERNAL;
		}
	}

	mark("root ready");
	tp_channel_init(&run->channel, sb.ctrl_fd);
	run->channel.input = run->input;
	run->channel.input_size = run->input_size;
	run->channel.data_fds = run->data_fds;
	run->channel.data_count = run->opts.data.count;
	run->channel.open_result = open_result;
	run->channel.ctx = run;
	/* a result cannot be larger than the memory the service may hold */
	run->channel.max_result = run->opts.limits.memory_bytes;
	if (send_frame(sb.ctrl_fd, TP_FRAME_BOOT, 0, boot.data, boot.size) < 0) {
		/* the child died before reading it: its setup error or status says why */
	}
	free(boot.data);

	struct serve_args serve = { .run = run, .sb = &sb };
	if (run->trace_log) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, serve_thread, &serve) != 0) {
			kill(sb.pid, SIGKILL);
			serve.code = TP_EXIT_INTERNAL;
			snprintf(serve.err, sizeof(serve.err), "cannot start the channel thread");
			while (wait4(sb.pid, &run->status, 0, &run->ru) < 0 && errno == EINTR)
				;
		} else {
			if (tp_trace_run(sb.pid, run->trace_log, &run->status, &run->ru) < 0)
				while (wait4(sb.pid, &run->status, 0, &run->ru) < 0 && errno == EINTR)
					;
			child_pid = 0;
			pthread_join(thread, NULL);
		}
	} else {
		serve_thread(&serve);
		mark("channel closed");
		while (wait4(sb.pid, &run->status, 0, &run->ru) < 0 && errno == EINTR)
			;
	}
	run->cpu_exceeded = cpu_watch_stop(&watch);
	forget_child();
	memset(&timer, 0, sizeof(timer));
	setitimer(ITIMER_REAL, &timer, NULL);
	if (sb.err_fd >= 0)
		close(sb.err_fd);
	if (serve.code) {
		tp_error("%s", serve.err);
		return serve.code;
	}

	finish_result(run); /* an incomplete or failed result is judged below */
	mark("service reaped");
	if (timing_on)
		fprintf(stderr, "teepy: usage  peak RSS %ld KiB, user %.3f s, system %.3f s\n",
			run->ru.ru_maxrss,
			(double)run->ru.ru_utime.tv_sec + (double)run->ru.ru_utime.tv_usec / 1e6,
			(double)run->ru.ru_stime.tv_sec + (double)run->ru.ru_stime.tv_usec / 1e6);
	return judge(run, run->status, &run->ru);
}

static int check_mode(const struct tp_run_opts *o)
{
	if (o->mode != TP_MODE_HW)
		return 0;
	tp_error("mode hw: hardware attestation needs a confidential VM with configfs-tsm "
		 "(/sys/kernel/config/tsm/report), which this build does not use yet; use --mode sim");
	return TP_EXIT_USAGE;
}

/* Loads, prepares and executes one run described by run->opts. */
static int run_prepared_opts(struct run *run)
{
	int code;

	if ((code = check_mode(&run->opts)) != 0)
		return code;
	if (tp_find_runtime(run->runtime_so, sizeof(run->runtime_so)) < 0) {
		tp_error("runtime extension _teepy%s not found beside teepy or in %s (rebuild with "
			 "make)",
			 TP_PYTHON_EXT_SUFFIX, TP_RUNTIME_INSTALL_DIR);
		return TP_EXIT_INTERNAL;
	}
	size_t name_len = strlen(run->opts.script);
	bool tpy_name = name_len > 4 && strcmp(run->opts.script + name_len - 4, ".tpy") == 0;
	/* a .tpy is always a bundle (a damaged one is refused as such, never run as Python) */
	if (tpy_name || (access(run->opts.script, R_OK) == 0 && tp_is_bundle(run->opts.script))) {
		if (run->trace_log) {
			tp_error("%s: already a bundle; build from the service's script", run->opts.script);
			return TP_EXIT_USAGE;
		}
		if ((code = load_inputs(run)) != 0 || (code = prepare_sealed(run)) != 0)
			return code;
	} else {
		run->processes = run->opts.allow_processes;
		if ((code = load_script(run)) != 0 || (code = load_inputs(run)) != 0)
			return code;
		mark("inputs loaded");
		if ((code = plan_unsealed(run)) != 0)
			return code;
	}
	mark("root planned");
	if ((code = check_memory(run)) != 0)
		return code;
	return execute(run);
}

int tp_cmd_run(int argc, char **argv)
{
	struct run run = { 0 };
	char err[512];
	int code;

	timing_on = getenv("TEEPY_TIMING") && strcmp(getenv("TEEPY_TIMING"), "1") == 0;
	clock_gettime(CLOCK_MONOTONIC, &timing_start);
	if (tp_run_opts_parse(&run.opts, argc, argv, host_getenv, err, sizeof(err)) < 0) {
		tp_error("%s", err);
		tp_run_opts_free(&run.opts);
		return TP_EXIT_USAGE;
	}
	if (run.opts.help) {
		tp_help_print(stdout, &tp_run_help);
		tp_run_opts_free(&run.opts);
		return TP_EXIT_OK;
	}
	code = run_prepared_opts(&run);
	run_free(&run);
	mark("cleaned up");
	return code;
}

int tp_run_traced(struct tp_run_opts *opts, const struct tp_strlist *preload,
		  struct tp_trace_log *log, struct tp_traced_run *out)
{
	struct run run = { 0 };
	int code;

	run.opts = *opts;
	memset(opts, 0, sizeof(*opts)); /* run owns it now */
	run.trace_log = log;
	run.preload = preload;
	code = run_prepared_opts(&run);
	snprintf(out->script, sizeof(out->script), "%s", run.script);
	snprintf(out->script_dir, sizeof(out->script_dir), "%s", run.script_dir);
	out->plan = run.plan; /* the caller filters traced paths by what was visible */
	memset(&run.plan, 0, sizeof(run.plan));
	out->had_result = run.channel.have_result;
	out->result_size = run.channel.result_size;
	out->preload_failed = run.channel.status_kind == TP_STATUS_SYNTAX &&
			      strcmp(run.channel.status_name, TP_STATUS_PRELOAD_NAME) == 0;
	if (!run.opts.output_file && run.channel.result_fd > STDERR_FILENO)
		close(run.channel.result_fd); /* /dev/null */
	run_free(&run);
	return code;
}
