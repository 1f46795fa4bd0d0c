/* `teepy run`: plan the sandbox, start the service, serve its control channel,
 * enforce the wall clock, and report how the run ended. */
#include "commands.h"

#include "channel.h"
#include "exit_codes.h"
#include "run_opts.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/units.h"
#include "../pyboot/protocol.h"
#include "../sandbox/landlock.h"
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
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#define TP_LOADER "/lib64/ld-linux-x86-64.so.2"
#elif defined(__aarch64__)
#define TP_LOADER "/lib/ld-linux-aarch64.so.1"
#else
#error "teepy knows the program loader of x86_64 and aarch64 only"
#endif

/* The whole of what runs in Python before the service: import the runtime from its
 * own directory and hand over. Part of the runtime measurement. */
static const char boot_text[] = "import sys;sys.path[:0]=['" TP_RUNTIME_DIR "'];"
				"import _teepy;raise SystemExit(_teepy.boot())";

static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
				       "/dev/urandom" };

/* ---- state shared with signal handlers ---- */
static volatile sig_atomic_t child_pid;
static volatile sig_atomic_t timed_out;
static volatile sig_atomic_t interrupted;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
}

static void on_interrupt(int sig)
{
	interrupted = sig;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
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
	char script[PATH_MAX];
	char script_dir[PATH_MAX];
	char runtime_so[PATH_MAX];
	char **pythonpath; /* real paths */
	char *input;
	size_t input_size;
	int *data_fds;
	struct tp_root_plan plan;
	struct tp_limits limits;
	char **envp;
	size_t env_count;
	unsigned blas_threads;

	struct tp_channel channel;
	char out_tmp[PATH_MAX]; /* --output is written here, then renamed */
};

static int find_runtime(char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *candidates[2];
	char beside[PATH_MAX];

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	snprintf(beside, sizeof(beside), "%s/_teepy%s", dirname(exe), TP_PYTHON_EXT_SUFFIX);
	candidates[0] = beside; /* the build tree, or a copy of both files */
	candidates[1] = TP_RUNTIME_INSTALL_DIR "/_teepy" TP_PYTHON_EXT_SUFFIX;
	for (size_t i = 0; i < 2; i++) {
		if (access(candidates[i], R_OK) == 0) {
			snprintf(out, size, "%s", candidates[i]);
			return 0;
		}
	}
	return -ENOENT;
}

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

/* Checks the files the user named and reads the input; returns an exit code or 0. */
static int load_inputs(struct run *run)
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
		return usage_error("%s: a script directly in / would expose the whole host; move it "
				   "into a directory of its own",
				   o->script);
	if (o->scratch_bytes && strcmp(run->script_dir, "/tmp") == 0)
		return usage_error("--scratch: the script's directory is /tmp itself; move the "
				   "script into a directory of its own");

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
		r = tp_read_all(fd, &run->input, &run->input_size);
		close(fd);
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

static int plan_root(struct run *run)
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

	/* what the user allows */
	if ((r = tp_root_plan_add_path(plan, run->script_dir)) < 0)
		return usage_error("%s: %s", run->script_dir, strerror(-r));
	for (size_t i = 0; i < o->allow.count; i++) {
		if (o->allow.items[i][0] == '\0')
			continue;
		char real[PATH_MAX];
		if (!realpath(o->allow.items[i], real))
			return usage_error("--allow %s: %s", o->allow.items[i], strerror(errno));
		if (strcmp(real, "/") == 0)
			return usage_error("--allow %s: the whole host cannot be allowed",
					   o->allow.items[i]);
		if ((r = tp_root_plan_add_path(plan, real)) < 0)
			return usage_error("--allow %s: %s", o->allow.items[i], strerror(-r));
	}
	run->pythonpath = calloc(o->pythonpath.count + 1, sizeof(char *));
	for (size_t i = 0; run->pythonpath && i < o->pythonpath.count; i++)
		run->pythonpath[i] = realpath(o->pythonpath.items[i], NULL);

	/* Debian reaches some libraries through /etc/alternatives (BLAS, LAPACK): keep
	 * the links whose targets are visible, nothing else of /etc */
	if (o->allow_site_packages || o->allow.count) {
		DIR *d = opendir("/etc/alternatives");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char path[PATH_MAX];
			if (e->d_name[0] == '.' || e->d_type != DT_LNK)
				continue;
			snprintf(path, sizeof(path), "/etc/alternatives/%s", e->d_name);
			tp_root_plan_add_links(plan, path);
		}
		if (d)
			closedir(d);
	}

	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		if ((r = tp_root_plan_add(plan, TP_ROOT_DEVICE, devices[i], devices[i], 0)) < 0)
			return TP_EXIT_INTERNAL;
	if ((r = tp_root_plan_add(plan, TP_ROOT_RUNTIME, TP_RUNTIME_DIR "/_teepy" TP_PYTHON_EXT_SUFFIX,
				  run->runtime_so, 0)) < 0)
		return TP_EXIT_INTERNAL;
	if (o->scratch_bytes &&
	    (r = tp_root_plan_add(plan, TP_ROOT_TMPFS, "/tmp", NULL, o->scratch_bytes)) < 0)
		return TP_EXIT_INTERNAL;
	tp_root_plan_finish(plan);
	return 0;
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
	unsigned cap = run->opts.threads > 1 ? run->opts.threads / 2 : 1;
	int r = 0;

	run->blas_threads = cpus > 0 && (unsigned long)cpus < cap ? (unsigned)cpus : cap;
	r = r ?: push_env(run, "LC_CTYPE=C.UTF-8");
	r = r ?: push_env(run, "OPENBLAS_NUM_THREADS=%u", run->blas_threads);
	r = r ?: push_env(run, "OMP_NUM_THREADS=%u", run->blas_threads);
	r = r ?: push_env(run, "MKL_NUM_THREADS=%u", run->blas_threads);
	for (size_t i = 0; r == 0 && i < run->opts.env.count; i++) {
		const char *assignment = run->opts.env.items[i];
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
	char count[32];
	int r = 0;

	snprintf(count, sizeof(count), "%zu", run->opts.data.count);
	r = r ?: buf_field(boot, TP_BOOT_FILTER, tp_seccomp_stage2.insns, tp_seccomp_stage2.size);
	r = r ?: buf_string(boot, TP_BOOT_ENTRY, run->script);
	r = r ?: buf_string(boot, TP_BOOT_DATA_COUNT, count);
	r = r ?: buf_string(boot, TP_BOOT_ARG, run->script);
	for (size_t i = 0; r == 0 && i < run->opts.script_args.count; i++)
		r = buf_string(boot, TP_BOOT_ARG, run->opts.script_args.items[i]);
	r = r ?: buf_string(boot, TP_BOOT_PATH, run->script_dir);
	for (size_t i = 0; r == 0 && run->pythonpath && run->pythonpath[i]; i++)
		r = buf_string(boot, TP_BOOT_PATH, run->pythonpath[i]);
	r = r ?: buf_string(boot, TP_BOOT_PATH, TP_PYTHON_STDLIB);
	r = r ?: buf_string(boot, TP_BOOT_PATH, TP_PYTHON_STDLIB "/lib-dynload");
	if (run->opts.allow_site_packages)
		r = r ?: buf_string(boot, TP_BOOT_PATH, TP_PYTHON_DIST_PACKAGES);
	return r;
}

static void print_config(const struct run *run)
{
	const struct tp_run_opts *o = &run->opts;
	char mem[32], cpu[32], timeout[32], scratch[32];
	int abi = tp_landlock_abi();
	size_t binds = 0;

	for (size_t i = 0; i < run->plan.count; i++)
		binds += run->plan.ops[i].kind == TP_ROOT_BIND;
	fprintf(stderr, "teepy: configuration\n");
	fprintf(stderr, "  script        %s\n", run->script);
	fprintf(stderr, "  interpreter   %s (Python %s), executed, not embedded\n", TP_PYTHON_EXE,
		TP_PYTHON_VERSION);
	fprintf(stderr, "  runtime       %s\n", run->runtime_so);
	fprintf(stderr, "  mode          sim%s (no hardware attestation)\n",
		o->mode_was_auto ? " (auto)" : "");
	fprintf(stderr, "  namespaces    user, mount, pid, network, ipc, uts (uid %u mapped to itself)\n",
		(unsigned)getuid());
	fprintf(stderr, "  root          read-only tmpfs with %zu read-only binds: stdlib, libraries, "
			"script directory%s%s\n",
		binds, o->allow_site_packages ? ", dist-packages" : "",
		o->allow.count ? ", allowed paths" : "");
	fprintf(stderr, "  scratch       %s\n",
		o->scratch_bytes ? tp_format_size(o->scratch_bytes, scratch, sizeof(scratch))
				 : "none (no writable path)");
	if (abi > 0)
		fprintf(stderr, "  landlock      ABI %d: %s\n", abi, tp_landlock_describe(abi));
	else
		fprintf(stderr, "  landlock      unavailable (%s): teepy will refuse to run\n",
			strerror(-abi));
	fprintf(stderr, "  seccomp       2 stages, %zu named calls + argument rules, default ENOSYS; "
			"execve allowed once for the interpreter, denied after boot\n",
		tp_seccomp_rule_count());
	fprintf(stderr, "  memory        %s via %s\n",
		tp_format_size(o->memory_bytes, mem, sizeof(mem)),
		tp_limit_mechanism_name(run->limits.memory_mechanism, true));
	fprintf(stderr, "  threads       %u via %s; BLAS/OpenMP threads %u\n", o->threads,
		tp_limit_mechanism_name(run->limits.threads_mechanism, false), run->blas_threads);
	fprintf(stderr, "  cpu time      %s (RLIMIT_CPU, soft = hard)\n",
		tp_format_duration(o->cpu_ms, cpu, sizeof(cpu)));
	fprintf(stderr, "  timeout       %s (wall clock, enforced by teepy)\n",
		tp_format_duration(o->timeout_ms, timeout, sizeof(timeout)));
	fprintf(stderr, "  environment   %zu variables, none from the host\n", run->env_count);
	fprintf(stderr, "  data          %zu service + %zu task items\n", o->service_data_count,
		o->data.count - o->service_data_count);
	fprintf(stderr, "  output        %s\n", o->output_file ? o->output_file : "stdout");
}

/* ---- serving the control channel ---- */

static int open_result(void *ctx)
{
	struct run *run = ctx;

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
				if (ch->protocol_violation && child_pid > 0)
					kill(child_pid, SIGKILL);
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
	if (ch->result_incomplete) {
		unlink(run->out_tmp);
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

/* Reads how the service ended and says so in one line. */
static int judge(struct run *run, int status, const struct rusage *ru)
{
	const struct tp_channel *ch = &run->channel;
	char text[64];
	double cpu_used = (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
			  (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
	double cpu_limit = (double)((run->opts.cpu_ms + 999) / 1000);
	bool oom = tp_limits_oom_killed(&run->limits);

	if (interrupted) {
		tp_error("interrupted by signal %d; the service was stopped", (int)interrupted);
		return TP_EXIT_INTERRUPTED;
	}
	if (ch->protocol_violation) {
		tp_error("killed for a rule: the service wrote malformed frames to its control channel");
		return TP_EXIT_RULE;
	}
	if (timed_out) {
		tp_error("wall-clock timeout (%s) exceeded; the service was killed",
			 tp_format_duration(run->opts.timeout_ms, text, sizeof(text)));
		return TP_EXIT_TIMEOUT;
	}
	if ((WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) ||
	    (WIFEXITED(status) && WEXITSTATUS(status) == TP_TRAP_EXIT_STATUS && ch->trap_nr >= 0)) {
		char *name = ch->trap_nr >= 0 ? tp_seccomp_syscall_name(ch->trap_nr) : NULL;
		if (ch->trap_nr >= 0)
			tp_error("killed for a rule: forbidden system call %s (%d)",
				 name ? name : "?", ch->trap_nr);
		else
			tp_error("killed for a rule: forbidden system call or architecture (SIGSYS)");
		free(name);
		return TP_EXIT_RULE;
	}
	if (oom || (ch->status_kind == TP_STATUS_EXCEPTION &&
		    strcmp(ch->status_name, "MemoryError") == 0)) {
		tp_error("memory limit exceeded (%s, %s)",
			 tp_format_size(run->opts.memory_bytes, text, sizeof(text)),
			 oom ? "killed by the cgroup" : "MemoryError");
		return TP_EXIT_MEMORY;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && cpu_used >= cpu_limit - 0.05) {
		tp_error("CPU time limit exceeded (%s used of %s)",
			 tp_format_duration((uint64_t)(cpu_used * 1000), text, sizeof(text)),
			 tp_format_duration(run->opts.cpu_ms, text + 32, 32));
		return TP_EXIT_CPU;
	}
	if (WIFSIGNALED(status)) {
		tp_error("the service crashed: %s", strsignal(WTERMSIG(status)));
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
	for (size_t i = 0; run->pythonpath && run->pythonpath[i]; i++)
		free(run->pythonpath[i]);
	free(run->pythonpath);
	for (size_t i = 0; i < run->env_count; i++)
		free(run->envp[i]);
	free(run->envp);
	free(run->input);
	tp_root_plan_free(&run->plan);
	tp_limits_cleanup(&run->limits);
	tp_run_opts_free(&run->opts);
}

int tp_cmd_run(int argc, char **argv)
{
	struct run run = { 0 };
	struct tp_sandbox sb = { .pid = -1, .ctrl_fd = -1, .out_fd = -1 };
	struct buf boot = { 0 };
	char err[512];
	int code, r, status = 0;
	struct rusage ru = { 0 };

	timing_on = getenv("TEEPY_TIMING") && strcmp(getenv("TEEPY_TIMING"), "1") == 0;
	clock_gettime(CLOCK_MONOTONIC, &timing_start);
	if (tp_run_opts_parse(&run.opts, argc, argv, host_getenv, err, sizeof(err)) < 0) {
		tp_error("%s", err);
		tp_run_opts_free(&run.opts);
		return TP_EXIT_USAGE;
	}
	if (run.opts.help) {
		fputs(tp_run_usage, stdout);
		tp_run_opts_free(&run.opts);
		return TP_EXIT_OK;
	}
	if (run.opts.mode == TP_MODE_HW) {
		tp_error("mode hw: hardware attestation needs a confidential VM with configfs-tsm "
			 "(/sys/kernel/config/tsm/report), which this build does not use yet; use "
			 "--mode sim");
		tp_run_opts_free(&run.opts);
		return TP_EXIT_USAGE;
	}

	if ((code = load_inputs(&run)) != 0)
		goto out;
	if ((r = find_runtime(run.runtime_so, sizeof(run.runtime_so))) < 0) {
		tp_error("runtime extension _teepy%s not found beside teepy or in %s (rebuild with "
			 "make)",
			 TP_PYTHON_EXT_SUFFIX, TP_RUNTIME_INSTALL_DIR);
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	mark("inputs loaded");
	if ((code = plan_root(&run)) != 0)
		goto out;
	mark("root planned");
	if (build_env(&run) < 0) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	if (build_boot(&run, &boot) < 0) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	run.limits.memory_bytes = run.opts.memory_bytes;
	run.limits.threads = run.opts.threads;
	tp_limits_prepare(&run.limits);
	mark("cgroups prepared");
	if (run.opts.print_config)
		print_config(&run);

	char loader_real[PATH_MAX], exe_real[PATH_MAX];
	if (!realpath(TP_LOADER, loader_real) || !realpath(TP_PYTHON_EXE, exe_real)) {
		tp_error("cannot resolve the interpreter: %s", strerror(errno));
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	const char *exec_files[] = { exe_real, loader_real, NULL };
	const char *interp_argv[] = { TP_PYTHON_EXE, "-I", "-S", "-B", "-c", boot_text, NULL };
	struct tp_sandbox_config cfg = {
		.interpreter = TP_PYTHON_EXE,
		.argv = interp_argv,
		.envp = (const char *const *)run.envp,
		.exec_files = exec_files,
		.root = &run.plan,
		.cwd = run.script_dir,
		.scratch_dir = run.opts.scratch_bytes ? "/tmp" : NULL,
		.limits = &run.limits,
		.cpu_ms = run.opts.cpu_ms,
		.stage1 = &tp_seccomp_stage1,
	};

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_interrupt };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);

	if (tp_sandbox_spawn(&cfg, &sb, err, sizeof(err)) < 0) {
		tp_error("%s", err);
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	child_pid = sb.pid;
	struct itimerval timer = {
		.it_value = { .tv_sec = (time_t)(run.opts.timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(run.opts.timeout_ms % 1000) * 1000 },
	};
	setitimer(ITIMER_REAL, &timer, NULL);

	/* Joining a cgroup can wait for an RCU grace period (1-12 ms measured on v1), so
	 * it runs while the child builds its root and the interpreter starts. No service
	 * code runs before BOOT, which is sent only once the limits hold. */
	if ((r = tp_limits_attach(&run.limits, sb.pid)) < 0) {
		tp_error("cannot move the service into its cgroup: %s", strerror(-r));
		code = TP_EXIT_INTERNAL;
		goto out_kill;
	}
	mark("cgroups joined");
	tp_channel_init(&run.channel, sb.ctrl_fd);
	run.channel.input = run.input;
	run.channel.input_size = run.input_size;
	run.channel.data_fds = run.data_fds;
	run.channel.data_count = run.opts.data.count;
	run.channel.open_result = open_result;
	run.channel.ctx = &run;
	if (send_frame(sb.ctrl_fd, TP_FRAME_BOOT, 0, boot.data, boot.size) < 0) {
		/* the child died before reading it: its setup error or status says why */
	}
	if (tp_sandbox_wait_exec(&sb, err, sizeof(err)) < 0) {
		tp_error("%s", err);
		code = TP_EXIT_INTERNAL;
		goto out_kill;
	}
	mark("service exec'd");

	supervise(&run, &sb);
	mark("channel closed");
	while (wait4(sb.pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	child_pid = 0;
	memset(&timer, 0, sizeof(timer));
	setitimer(ITIMER_REAL, &timer, NULL);

	if (finish_result(&run) < 0 && run.channel.result_incomplete)
		tp_error("the result was cut short: the service ended while sending it");
	mark("service reaped");
	code = judge(&run, status, &ru);
	goto out;
out_kill:
	kill(sb.pid, SIGKILL);
	while (waitpid(sb.pid, NULL, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	if (sb.ctrl_fd >= 0)
		close(sb.ctrl_fd);
	if (sb.out_fd >= 0)
		close(sb.out_fd);
	if (sb.err_fd >= 0)
		close(sb.err_fd);
out:
	free(boot.data);
	run_free(&run);
	mark("cleaned up");
	return code;
}
