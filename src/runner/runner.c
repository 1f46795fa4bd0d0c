/* One invocation: spawn the planned sandbox, fill a sealed root, serve the control
 * channel, watch CPU time and the wall clock, reap, and judge. Every piece of state
 * lives in the invocation: nothing is global, no signal is caught. */
#include "runner.h"

#include "plan.h"
#include "../channel/channel.h"
#include "../common/io.h"
#include "../pyboot/boot.h"
#include "../sandbox/sandbox.h"
#include "../sandbox/seccomp.h"
#include "../trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One run's supervision: shared by the invoking thread, the CPU watch and, in a
 * traced build, the channel thread. */
struct watch {
	struct tp_invocation *inv;
	struct tp_outcome *out;
	pid_t pid;
	int pidfd;
	struct timespec deadline; /* CLOCK_MONOTONIC */
	atomic_bool timed_out;
	atomic_bool cancelled;
	struct tp_channel channel;
	int result_fd;	  /* what the sink opened (or the memfd), -1 before */
	bool result_mem;  /* the result is kept in memory (no sink) */
	int setup_failed; /* the child failed before exec: its line is in setup_err */
	char setup_err[512];

	/* the CPU watch */
	pthread_t cpu_thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool cpu_running, cpu_done, cpu_killed;
};

static uint64_t ms_between(const struct timespec *a, const struct timespec *b)
{
	int64_t ms = (int64_t)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
	return ms > 0 ? (uint64_t)ms : 0;
}

static void kill_service(struct watch *w)
{
	if (w->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
}

/* Milliseconds left before the deadline, 0 once it has passed. */
static int ms_left(const struct watch *w)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t left = ms_between(&now, &w->deadline);
	if (now.tv_sec > w->deadline.tv_sec ||
	    (now.tv_sec == w->deadline.tv_sec && now.tv_nsec >= w->deadline.tv_nsec))
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)(left ? left : 1);
}

/* Whether the run must stop: the wall clock has run out or the caller cancelled.
 * Kills the service the first time it says so. */
static bool must_stop(struct watch *w)
{
	int cancel_fd = w->inv->cfg->cancel_fd;

	if (atomic_load(&w->timed_out) || atomic_load(&w->cancelled))
		return true;
	if (cancel_fd >= 0) {
		struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
		if (poll(&p, 1, 0) > 0) {
			atomic_store(&w->cancelled, true);
			kill_service(w);
			return true;
		}
	}
	if (ms_left(w) == 0) {
		atomic_store(&w->timed_out, true);
		kill_service(w);
		return true;
	}
	return false;
}

static bool fill_stop(void *arg)
{
	return must_stop(arg);
}

/* ---- the CPU-time watch ---- */

/* RLIMIT_CPU holds one process, by a tick-sampled clock; the limit is for the whole
 * service. The runner reads the service's CPU time (its cgroup's, else its process
 * clock) no later than the service could reach the limit, and kills it there. */
static void *cpu_watch_main(void *arg)
{
	struct watch *w = arg;
	uint64_t limit_ns = w->inv->limits.cpu_ms * 1000000u;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	pthread_mutex_lock(&w->lock);
	while (!w->cpu_done) {
		uint64_t used = tp_limits_cpu_used_ns(&w->inv->enforce, w->pid);
		if (used >= limit_ns) {
			w->cpu_killed =
			    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) == 0;
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

static int cpu_watch_start(struct watch *w)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&w->cpu_thread, NULL, cpu_watch_main, w) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		return -EAGAIN;
	}
	w->cpu_running = true;
	return 0;
}

/* After the service is reaped. */
static void cpu_watch_stop(struct watch *w)
{
	if (!w->cpu_running)
		return;
	pthread_mutex_lock(&w->lock);
	w->cpu_done = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->cpu_thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	w->cpu_running = false;
}

/* ---- the result and the log ---- */

static int open_result(void *arg)
{
	struct watch *w = arg;
	const struct tp_result_sink *sink = &w->inv->cfg->result;
	int fd;

	if (sink->open) {
		fd = sink->open(sink->ctx);
	} else {
		fd = memfd_create("teepy-result", MFD_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
		w->result_mem = fd >= 0;
	}
	w->result_fd = fd;
	return fd;
}

static void log_bytes(struct watch *w, const char *bytes, size_t size)
{
	const struct tp_run_config *cfg = w->inv->cfg;
	struct tp_outcome *out = w->out;

	if (cfg->log.write) {
		cfg->log.write(cfg->log.ctx, bytes, size);
		return;
	}
	size_t room = cfg->log_keep_bytes > out->log_size ? cfg->log_keep_bytes - out->log_size : 0;
	size_t keep = size < room ? size : room;
	if (keep) {
		char *grown = realloc(out->log, out->log_size + keep + 1);
		if (grown) {
			memcpy(grown + out->log_size, bytes, keep);
			out->log = grown;
			out->log_size += keep;
			grown[out->log_size] = '\0';
		} else {
			keep = 0;
		}
	}
	out->log_dropped += size - keep;
}

/* Serves the control channel and relays the service's output until both close and
 * the service has ended, or the wall clock runs out, or the caller cancels. */
static void supervise(struct watch *w, struct tp_sandbox *sb)
{
	int cancel_fd = w->inv->cfg->cancel_fd;
	struct pollfd fds[4] = {
		{ .fd = sb->ctrl_fd, .events = POLLIN },
		{ .fd = sb->out_fd, .events = POLLIN },
		{ .fd = w->pidfd, .events = POLLIN },
		{ .fd = cancel_fd, .events = POLLIN },
	};
	bool exited = false;

	while (!exited || fds[0].fd >= 0 || fds[1].fd >= 0) {
		int timeout =
		    atomic_load(&w->timed_out) || atomic_load(&w->cancelled) ? -1 : ms_left(w);
		if (timeout == 0) {
			must_stop(w);
			timeout = -1;
		}
		int n = poll(fds, 4, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 0) {
			must_stop(w); /* the deadline */
			continue;
		}
		if (fds[1].fd >= 0 && fds[1].revents) {
			char buf[65536];
			ssize_t got = read(fds[1].fd, buf, sizeof(buf));
			if (got > 0)
				log_bytes(w, buf, (size_t)got);
			else if (got == 0 || errno != EINTR) {
				close(fds[1].fd);
				fds[1].fd = -1;
			}
		}
		if (fds[0].fd >= 0 && fds[0].revents) {
			if (tp_channel_serve_one(&w->channel) < 0) {
				if (w->channel.protocol_violation || w->channel.result_too_large)
					kill_service(w);
				close(fds[0].fd);
				fds[0].fd = -1;
			}
		}
		if (fds[2].fd >= 0 && fds[2].revents) {
			exited = true;
			fds[2].fd = -1; /* stays readable: no more polling it */
		}
		if (fds[3].fd >= 0 && fds[3].revents) {
			must_stop(w);
			fds[3].fd = -1;
		}
	}
	sb->ctrl_fd = sb->out_fd = -1;
}

struct serve_args {
	struct watch *w;
	struct tp_sandbox *sb;
};

/* The channel and the output relay; in a traced run this is its own thread, since
 * the invoking thread must be the tracer. */
static void *serve_thread(void *arg)
{
	struct serve_args *a = arg;
	struct watch *w = a->w;

	if (tp_sandbox_wait_exec(a->sb, w->setup_err, sizeof(w->setup_err)) < 0) {
		w->setup_failed = 1;
		kill_service(w);
	}
	supervise(w, a->sb);
	return NULL;
}

static void reap(struct watch *w)
{
	while (wait4(w->pid, &w->out->wait_status, 0, &w->out->rusage) < 0 && errno == EINTR)
		;
}

/* ---- one invocation ---- */

static void mark(const struct tp_invocation *inv, const char *phase)
{
	if (inv->cfg->mark)
		inv->cfg->mark(phase);
}

static void close_sandbox(struct tp_sandbox *sb)
{
	int *fds[] = { &sb->ctrl_fd, &sb->out_fd, &sb->err_fd, &sb->go_fd, &sb->ready_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* The sealed root: the child waits in its empty root while the runner writes the
 * verified files in. Returns 0, or -1 with the outcome said. */
static int fill_sealed_root(struct watch *w, struct tp_sandbox *sb)
{
	struct tp_invocation *inv = w->inv;
	struct tp_blob_source_ctx blob_ctx = {
		.bundle_fd = inv->bundle.fd,
		.blob_offset = inv->bundle.bundle.blob_offset,
	};
	struct tp_file_source blobs = tp_blob_source(&blob_ctx);
	char err[768];
	int root_fd = tp_sandbox_wait_ready(sb, err, sizeof(err));
	int r = 0;

	mark(inv, "child ready for its files");
	if (root_fd < 0) {
		tp_runner_fail(w->out, TP_END_INTERNAL, "%s", err);
		r = -1;
	} else if (tp_fill_root(&inv->bundle.manifest, &blobs, &tp_host_source, root_fd, &inv->fill,
				err, sizeof(err), fill_stop, w) < 0) {
		if (!must_stop(w))
			tp_runner_fail(w->out, TP_END_REFUSED, "%s: refused: %s", inv->cfg->script,
				       err);
		r = -1;
	} else if (tp_sandbox_go(sb) < 0) {
		if (!must_stop(w))
			tp_runner_fail(w->out, TP_END_INTERNAL,
				       "the service ended while its root was being filled");
		r = -1;
	}
	if (root_fd >= 0)
		close(root_fd);
	mark(inv, "sealed root filled");
	return r;
}

/* What the run did, for the judge. */
static void observe(struct watch *w, struct tp_observed *o)
{
	const struct tp_invocation *inv = w->inv;
	const struct tp_channel *ch = &w->channel;
	const struct rusage *ru = &w->out->rusage;
	/* a cgroup counts every process; the rusage of a reaped service its threads
	 * and the children it waited for */
	uint64_t cgroup_cpu_ns = tp_limits_cpu_used_ns(&inv->enforce, 0);
	double rusage_cpu = (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
			    (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;

	*o = (struct tp_observed){
		.wait_status = w->out->wait_status,
		.cancelled = atomic_load(&w->cancelled),
		.timed_out = atomic_load(&w->timed_out),
		.cpu_killed = w->cpu_killed,
		.oom_killed = tp_limits_oom_killed(&inv->enforce),
		.rlimit_memory = inv->enforce.memory_mechanism == TP_LIMIT_RLIMIT,
		.cpu_seconds = cgroup_cpu_ns ? (double)cgroup_cpu_ns / 1e9 : rusage_cpu,
		.cpu_limit_ms = inv->limits.cpu_ms,
		.timeout_ms = inv->limits.timeout_ms,
		.memory_limit_bytes = inv->limits.memory_bytes,
		.peak_bytes = tp_limits_peak_memory(&inv->enforce),
		.root_bytes = inv->sealed ? inv->plan.reserve_bytes : 0,
		.max_resident_bytes = (uint64_t)ru->ru_maxrss * 1024,
		.result_too_large = ch->result_too_large,
		.protocol_violation = ch->protocol_violation,
		.result_incomplete = ch->result_incomplete,
		.have_result = ch->have_result,
		.result_error = ch->result_error,
		.result_where = inv->cfg->result.name ? inv->cfg->result.name : "memory",
		.result_to_file = inv->cfg->result.is_file,
		.status_kind = ch->status_kind,
		.status_name = ch->status_name,
	};
}

/* The result kept in memory: read back from its memfd. */
static void take_result(struct watch *w)
{
	struct tp_outcome *out = w->out;
	size_t size;

	if (!w->result_mem || w->result_fd < 0)
		return;
	if (lseek(w->result_fd, 0, SEEK_SET) == 0 &&
	    tp_read_all(w->result_fd, SIZE_MAX, &out->result, &size) == 0)
		out->result_size = size;
	close(w->result_fd);
	w->result_fd = -1;
}

static void record(struct watch *w, const struct timespec *t0)
{
	const struct tp_channel *ch = &w->channel;
	struct tp_outcome *out = w->out;
	struct tp_observed o;
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	observe(w, &o);
	out->have_result = ch->have_result;
	out->result_size = ch->result_size;
	out->result_incomplete = ch->result_incomplete;
	out->result_error = ch->result_error;
	out->result_fd = w->result_mem ? -1 : w->result_fd;
	out->status_kind = ch->status_kind;
	snprintf(out->status_name, sizeof(out->status_name), "%s", ch->status_name);
	out->preload_failed = ch->status_kind == TP_STATUS_SYNTAX &&
			      strcmp(ch->status_name, TP_STATUS_PRELOAD_NAME) == 0;
	out->usage.cpu_ms = (uint64_t)(o.cpu_seconds * 1000);
	out->usage.peak_memory_bytes = o.peak_bytes ? o.peak_bytes : o.max_resident_bytes;
	out->usage.wall_ms = ms_between(t0, &t1);
	take_result(w);
}

static int execute(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_sandbox sb = {
		.pid = -1, .ctrl_fd = -1, .out_fd = -1, .err_fd = -1, .ready_fd = -1, .go_fd = -1
	};
	struct watch w = { .inv = inv, .out = out, .pid = -1, .pidfd = -1, .result_fd = -1 };
	uint8_t *boot = NULL;
	char err[512];
	size_t boot_size = 0;
	struct timespec t0;
	int r;

	if (tp_plan_env(inv) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	if ((r = tp_plan_boot(inv, &boot, &boot_size)) == -EMSGSIZE)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "the service's arguments, paths and preload names come to "
				      "more than %u bytes (pass fewer or shorter arguments)",
				      TP_MAX_BOOT_SIZE);
	if (r < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot build the boot payload: %s",
				      strerror(-r));

	/* the sealed root's files are held in memory for the service: they come out of
	 * its limit (the plan made sure enough is left) */
	inv->enforce.set = inv->limits;
	inv->enforce.set.memory_bytes -= inv->sealed ? inv->plan.reserve_bytes : 0;
	inv->enforce.processes = inv->processes;
	tp_limits_prepare(&inv->enforce);
	mark(inv, "cgroups prepared");
	if (cfg->warn && tp_limits_weaker(&inv->enforce, err, sizeof(err)))
		cfg->warn(cfg->observer, err);
	if (cfg->on_planned)
		cfg->on_planned(cfg->observer, inv);

	const char *interp_argv[] = { TP_PYTHON_EXE, "-I", "-S", "-B", "-c", TP_BOOT_TEXT, NULL };
	struct tp_sandbox_config sc = {
		.interpreter = TP_PYTHON_EXE,
		.argv = interp_argv,
		.envp = (const char *const *)inv->envp,
		.exec_files = inv->exec_files,
		.root = &inv->plan,
		.cwd = inv->cwd,
		.scratch_dir = inv->limits.scratch_bytes ? "/tmp" : NULL,
		.limits = &inv->enforce,
		.stage1 = inv->processes ? &tp_seccomp_stage1_processes : &tp_seccomp_stage1,
		.trace = cfg->trace_log != NULL,
		.filled_from_outside = inv->sealed,
		.handed_fds = cfg->handed_fds,
		.handed_count = cfg->handed_count,
		.mark = cfg->mark,
	};
	struct tp_cgroup_join join;
	if ((r = tp_limits_open_join(&inv->enforce, &join)) < 0) {
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot open the run's cgroup: %s",
				      strerror(-r));
	}
	sc.join = &join;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	w.deadline = t0;
	w.deadline.tv_sec += (time_t)(inv->limits.timeout_ms / 1000);
	w.deadline.tv_nsec += (long)(inv->limits.timeout_ms % 1000) * 1000000L;
	w.deadline.tv_sec += w.deadline.tv_nsec / 1000000000L;
	w.deadline.tv_nsec %= 1000000000L;
	r = tp_sandbox_spawn(&sc, &sb, err, sizeof(err));
	tp_limits_close_join(&join);
	if (r < 0) {
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL, "%s", err);
	}
	w.pid = sb.pid;
	w.pidfd = (int)syscall(SYS_pidfd_open, sb.pid, 0);
	if (w.pidfd < 0 || cpu_watch_start(&w) < 0) {
		int e = w.pidfd < 0 ? errno : EAGAIN;
		kill(sb.pid, SIGKILL);
		reap(&w);
		close_sandbox(&sb);
		if (w.pidfd >= 0)
			close(w.pidfd);
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL,
				      "cannot watch the service's CPU time: %s", strerror(e));
	}
	must_stop(&w); /* a cancel that came before the spawn */

	if (inv->sealed && fill_sealed_root(&w, &sb) < 0) {
		kill_service(&w);
		reap(&w);
		cpu_watch_stop(&w);
		close_sandbox(&sb);
		close(w.pidfd);
		free(boot);
		if (atomic_load(&w.timed_out) || atomic_load(&w.cancelled)) {
			struct tp_observed o;
			observe(&w, &o);
			tp_judge(&o, out);
		}
		return -1;
	}
	if (inv->sealed && cfg->on_filled)
		cfg->on_filled(cfg->observer, inv);

	mark(inv, "root ready");
	tp_channel_init(&w.channel, sb.ctrl_fd);
	w.channel.input = cfg->input ? cfg->input : "";
	w.channel.input_size = cfg->input_size;
	w.channel.data_fds = cfg->data_fds;
	w.channel.data_count = cfg->data_count;
	w.channel.open_result = open_result;
	w.channel.ctx = &w;
	/* a result cannot be larger than the memory the service may hold */
	w.channel.max_result = inv->limits.memory_bytes;
	/* a child that died before reading it: its setup error or status says why */
	tp_frame_write(sb.ctrl_fd, TP_FRAME_BOOT, 0, boot, boot_size);
	free(boot);

	struct serve_args serve = { .w = &w, .sb = &sb };
	if (cfg->trace_log) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, serve_thread, &serve) != 0) {
			kill_service(&w);
			w.setup_failed = 1;
			snprintf(w.setup_err, sizeof(w.setup_err),
				 "cannot start the channel thread");
			reap(&w);
		} else {
			if (tp_trace_run(sb.pid, cfg->trace_log, &out->wait_status, &out->rusage) <
			    0)
				reap(&w);
			pthread_join(thread, NULL);
		}
	} else {
		serve_thread(&serve);
		mark(inv, "channel closed");
		reap(&w);
	}
	cpu_watch_stop(&w);
	close(w.pidfd);
	w.pidfd = -1;
	close_sandbox(&sb);
	record(&w, &t0);
	if (w.setup_failed)
		return tp_runner_fail(out, TP_END_INTERNAL, "%s", w.setup_err);
	mark(inv, "service reaped");
	struct tp_observed o;
	observe(&w, &o);
	tp_judge(&o, out);
	return 0;
}

void tp_invocation_free(struct tp_invocation *inv)
{
	tp_strlist_free(&inv->python_path);
	for (size_t i = 0; i < inv->env_count; i++)
		free(inv->envp[i]);
	free(inv->envp);
	tp_root_plan_free(&inv->plan);
	tp_limits_cleanup(&inv->enforce);
	if (inv->sealed)
		tp_bundle_file_close(&inv->bundle);
	memset(inv, 0, sizeof(*inv));
}

void tp_outcome_free(struct tp_outcome *out)
{
	free(out->result);
	free(out->log);
	out->result = out->log = NULL;
}

int tp_invoke_keep(const struct tp_run_config *cfg, struct tp_outcome *out,
		   struct tp_invocation *inv)
{
	memset(out, 0, sizeof(*out));
	memset(inv, 0, sizeof(*inv));
	out->wait_status = -1;
	out->result_fd = -1;
	out->status_kind = -1;
	inv->cfg = cfg;
	if (tp_plan_invocation(inv, out) == 0 && execute(inv, out) == 0)
		return 0;
	if (out->end == TP_END_RESULT) /* a failure that said nothing */
		tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	return 0;
}

int tp_invoke(const struct tp_run_config *cfg, struct tp_outcome *out)
{
	struct tp_invocation inv;
	int r = tp_invoke_keep(cfg, out, &inv);

	tp_invocation_free(&inv);
	return r;
}
