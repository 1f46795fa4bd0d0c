/* One invocation: spawn the planned sandbox, fill a sealed root, serve the control
 * channel, watch CPU time and the wall clock, reap, and judge. Every piece of state
 * lives in the invocation: nothing is global, no signal is caught. */
#include "runner.h"

#include "cache.h"
#include "plan.h"
#include "../channel/channel.h"
#include "../common/clock.h"
#include "../common/io.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../pyboot/boot.h"
#include "../sandbox/sandbox.h"
#include "../sandbox/seccomp.h"
#include "../trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One run's supervision: shared by the invoking thread, the watch thread and, in
 * a traced build, the channel thread. */
struct watch {
	struct tp_invocation *inv;
	struct tp_outcome *out;
	pid_t pid;		  /* the reaper, pid 1 of the service's namespace */
	atomic_int service_pid;	  /* the service, once it has exec'd, for its CPU clock (else 0) */
	int pidfd;		  /* the reaper's: killing it ends the namespace */
	struct timespec deadline; /* CLOCK_MONOTONIC */
	atomic_bool timed_out;	  /* the watch killed the service at the deadline */
	atomic_bool cancelled;	  /* ... because the caller cancelled */
	atomic_bool cpu_killed;	  /* ... at its CPU-time limit */
	/* the child finishes its set-up on our memory (tp_sandbox_go): a kill then could
	 * leave a lock of the C library held, so the watch waits; tp_sandbox_go keeps the
	 * clock and the cancel itself meanwhile. hold_lock makes the watch's look at hold
	 * and its kill one step. */
	bool hold;
	pthread_mutex_t hold_lock;
	_Atomic uint64_t cpu_seen_ns; /* the service's CPU time when the watch last looked */
	struct tp_channel channel;
	bool result_mem;   /* the result is kept in memory (no sink) */
	int out_fd;	   /* the service's output, while supervise relays it (else -1) */
	int service_pidfd; /* a shell's service, which a Ctrl-C interrupts (else -1) */
	int setup_failed;  /* the child failed before exec: its line is in setup_err */
	char setup_err[512];

	pthread_t thread;
	bool running;
	int wake[2]; /* a byte ends the watch */
};

static void no_descriptors(struct tp_invocation *inv);
static int shell_read_line(void *arg, const char *prompt, size_t prompt_size, char **line,
			   size_t *line_size);

static uint64_t ms_between(const struct timespec *a, const struct timespec *b)
{
	int64_t ms = (int64_t)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
	return ms > 0 ? (uint64_t)ms : 0;
}

/* Through the pidfd: it names this service even once its pid is reaped and reused. */
static bool kill_service(struct watch *w)
{
	return w->pidfd >= 0 && syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) == 0;
}

static bool stopped(struct watch *w)
{
	return atomic_load(&w->timed_out) || atomic_load(&w->cancelled);
}

static bool fill_stop(void *arg)
{
	return stopped(arg);
}

/* The watch's kill, unless the child is held (struct watch): then false, and the
 * watch looks again once it is not. */
static bool watch_kill(struct watch *w, atomic_bool *why)
{
	pthread_mutex_lock(&w->hold_lock);
	bool held = w->hold;
	if (!held) {
		bool killed = kill_service(w);
		atomic_store(why, why == &w->cpu_killed ? killed : true);
	}
	pthread_mutex_unlock(&w->hold_lock);
	return !held;
}

static void set_hold(struct watch *w, bool hold)
{
	pthread_mutex_lock(&w->hold_lock);
	w->hold = hold;
	pthread_mutex_unlock(&w->hold_lock);
}

/* ---- the watch: CPU time, the wall clock, the caller's cancel ---- */

/* One thread holds the three, whatever the others are blocked in (a frame the
 * service never finishes, a reply it never reads, the tracer): killing the
 * service, pid 1 of its namespace, ends everything it holds, and with it those
 * calls. RLIMIT_CPU holds one process, by a tick-sampled clock; the limit is for
 * the whole service, so the watch reads its CPU time (its cgroup's, else its
 * process clock) no later than the service could reach the limit. */
static void *watch_main(void *arg)
{
	struct watch *w = arg;
	uint64_t limit_ns = w->inv->enforce.set.cpu_ms * 1000000u;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	/* the reaper's end ends the watch by itself: the supervisor, woken by the same
	 * end, then finds it gone rather than waking it (a wake-up across CPUs cost
	 * about 0.5 ms of every run here) */
	struct pollfd fds[3] = {
		{ .fd = w->wake[0], .events = POLLIN },
		{ .fd = w->inv->cfg->cancel_fd, .events = POLLIN },
		{ .fd = w->pidfd, .events = POLLIN },
	};

	for (;;) {
		pid_t service = atomic_load(&w->service_pid);
		uint64_t used =
		    tp_limits_cpu_used_ns(&w->inv->enforce, service > 0 ? service : w->pid);
		atomic_store(&w->cpu_seen_ns, used);
		int left = tp_ms_until(&w->deadline);
		if ((used >= limit_ns && watch_kill(w, &w->cpu_killed)) ||
		    (left == 0 && watch_kill(w, &w->timed_out)))
			return NULL;
		if (used >= limit_ns || left == 0) {
			/* held: look again in a millisecond, unless the run ends */
			if (poll(fds, 1, 1) > 0)
				return NULL;
			continue;
		}
		/* at most one CPU-second per CPU and second: nothing to see before then;
		 * at least 5 ms, so the service overshoots by no more than that per CPU */
		uint64_t wait_ms = (limit_ns - used) / (uint64_t)(cpus > 0 ? cpus : 1) / 1000000u;
		wait_ms = wait_ms < 5 ? 5 : wait_ms > 1000 ? 1000 : wait_ms;
		int n = poll(fds, 3, (int)wait_ms < left ? (int)wait_ms : left);
		if (n < 0 && errno != EINTR)
			return NULL; /* cannot happen with valid pollfds */
		if (n > 0 && (fds[0].revents || fds[2].revents))
			return NULL; /* the run is over */
		if (n > 0 && (fds[1].revents & POLLIN)) {
			if (watch_kill(w, &w->cancelled))
				return NULL;
			poll(fds, 1, 1); /* held: the cancel stays readable for the next look */
		} else if (n > 0 && fds[1].revents) {
			fds[1].fd = -1; /* the caller closed its end: no cancel can come */
		}
	}
}

static int watch_start(struct watch *w)
{
	if (pipe2(w->wake, O_CLOEXEC) < 0)
		return -errno;
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		close(w->wake[0]);
		close(w->wake[1]);
		return -EAGAIN;
	}
	w->running = true;
	return 0;
}

/* After the service is reaped. */
static void watch_stop(struct watch *w)
{
	if (!w->running)
		return;
	if (write(w->wake[1], "x", 1) != 1) {
		/* a pipe's first byte always fits */
	}
	pthread_join(w->thread, NULL);
	close(w->wake[0]);
	close(w->wake[1]);
	w->running = false;
}

/* ---- the result and the log ---- */

static int open_result(void *arg)
{
	struct watch *w = arg;
	const struct tp_result_sink *sink = &w->inv->cfg->result;
	int fd;

	if (sink->open)
		return sink->open(sink->ctx);
	fd = memfd_create("teepy-result", MFD_CLOEXEC);
	w->result_mem = fd >= 0;
	return fd < 0 ? -errno : fd;
}

/* The channel on fd serves the request: input, data, the result's sink. */
static void serve_request(struct watch *w, int fd)
{
	const struct tp_run_config *cfg = w->inv->cfg;

	tp_channel_init(&w->channel, fd);
	w->channel.input = cfg->input ? cfg->input : "";
	w->channel.input_size = cfg->input_size;
	w->channel.data_fds = cfg->data_fds;
	w->channel.data_count = cfg->data_count;
	w->channel.open_result = open_result;
	w->channel.ctx = w;
	/* a result cannot be larger than the memory the service may hold */
	w->channel.max_result = w->inv->limits.memory_bytes;
	if (cfg->shell.read_line) {
		w->channel.read_line = shell_read_line;
		w->channel.line_ctx = w;
	}
}

static void log_bytes(struct watch *w, const char *bytes, size_t size)
{
	const struct tp_run_config *cfg = w->inv->cfg;
	struct tp_outcome *out = w->out;

	uint64_t cap = w->inv->limits.log_max_bytes;
	uint64_t room = cap > out->log_relayed ? cap - out->log_relayed : 0;
	size_t keep = size < room ? size : (size_t)room;

	if (keep && cfg->log.write) {
		cfg->log.write(cfg->log.ctx, bytes, keep);
	} else if (keep) {
		/* grown by a copy, the old block wiped: no part of a log is left in freed
		 * memory (a worker's invocation process serves job after job) */
		char *grown = malloc(out->log_size + keep + 1);
		if (grown) {
			if (out->log)
				memcpy(grown, out->log, out->log_size);
			tp_free_wiped(out->log);
			memcpy(grown + out->log_size, bytes, keep);
			out->log = grown;
			out->log_size += keep;
			grown[out->log_size] = '\0';
		} else {
			keep = 0;
		}
	}
	out->log_relayed += keep;
	out->log_dropped += size - keep;
}

/* ---- teepy shell ---- */

/* What the service wrote before its prompt, shown before the prompt: the output
 * waiting in its pipe now (a megabyte at most: a thread that writes on and on does
 * not hold the prompt back). */
static void relay_pending(struct watch *w)
{
	struct pollfd p = { .fd = w->out_fd, .events = POLLIN };
	char buf[65536];
	ssize_t got;

	for (int i = 0; i < 16 && w->out_fd >= 0 && poll(&p, 1, 0) > 0; i++) {
		if ((got = read(w->out_fd, buf, sizeof(buf))) <= 0)
			break;
		log_bytes(w, buf, (size_t)got);
	}
}

/* struct tp_shell_prompt's relay: one read of what the service wrote meanwhile. */
static int relay_some(struct tp_shell_prompt *p)
{
	struct watch *w = p->runner;
	char buf[65536];
	ssize_t got = p->output_fd >= 0 ? read(p->output_fd, buf, sizeof(buf)) : -1;

	if (got > 0) {
		log_bytes(w, buf, (size_t)got);
		return (unsigned char)buf[got - 1];
	}
	if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
		p->output_fd = -1; /* its end: supervise closes it */
	return -1;
}

/* A Ctrl-C while a statement runs, or a completion is awaited: the bytes taken, SIGINT
 * to the service. */
static void interrupt_service(struct watch *w, int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (w->service_pidfd >= 0)
		syscall(SYS_pidfd_send_signal, w->service_pidfd, SIGINT, NULL, 0);
}

/* struct tp_shell_prompt's complete: the word asked of the console, its answer awaited
 * (a Ctrl-C meanwhile is SIGINT to the service, whose completer then gives up; what the
 * service writes meanwhile is relayed, so that a full pipe cannot stall it). */
static int complete_word(struct tp_shell_prompt *p, const char *word, size_t size, char **list,
			 size_t *list_size)
{
	struct watch *w = p->runner;
	int r = tp_channel_ask_completions(&w->channel, word, size);

	while (r == 0) {
		struct pollfd fds[4] = {
			{ .fd = w->channel.fd, .events = POLLIN },
			{ .fd = p->ended_fd, .events = POLLIN },
			{ .fd = w->inv->cfg->shell.interrupt_fd, .events = POLLIN },
			{ .fd = p->output_fd, .events = POLLIN },
		};
		if (poll(fds, 4, -1) < 0) {
			if (errno != EINTR)
				return -errno;
			continue;
		}
		if (fds[0].revents)
			return tp_channel_read_completions(&w->channel, list, list_size);
		if (fds[1].revents)
			return -EPIPE;
		if (fds[2].revents)
			interrupt_service(w, fds[2].fd);
		if (fds[3].revents) /* what the completer (or a thread) writes is shown */
			p->relay(p);
	}
	return r;
}

static int shell_read_line(void *arg, const char *prompt, size_t prompt_size, char **line,
			   size_t *line_size)
{
	struct watch *w = arg;
	const struct tp_run_config *cfg = w->inv->cfg;
	struct tp_shell_prompt p = {
		.prompt = prompt,
		.prompt_size = prompt_size,
		.ended_fd = w->pidfd,
		.output_fd = w->out_fd,
		.relay = relay_some,
		.complete = complete_word,
		.runner = w,
	};

	relay_pending(w);
	return cfg->shell.read_line(cfg->shell.ctx, &p, line, line_size);
}

/* The shell's service, for Ctrl-C: its pidfd, opened while the reaper lives (the
 * reaper ends as soon as it has reaped the service, so a pid it still has not
 * reaped is the service's, not a reused one). */
static void open_service(struct watch *w, struct tp_sandbox *sb)
{
	struct pollfd reaper = { .fd = w->pidfd, .events = POLLIN };
	pid_t service = tp_sandbox_find_service(sb);
	int fd = service > 0 ? (int)syscall(SYS_pidfd_open, service, 0) : -1;

	if (fd >= 0 && poll(&reaper, 1, 0) != 0) {
		close(fd);
		fd = -1;
	}
	w->service_pidfd = fd;
}

/* A zygote's child said EXIT, after its last write, and waits to be killed: its CPU
 * time is read while it still holds it (its cgroup's, or its clock's), it is killed
 * (the run is over: what it does next is not waited for), and what it wrote before,
 * in its output pipe (out), is taken without waiting for the pipe's end. With a
 * cgroup, which holds its peak memory, its zygote's report of its end is not waited
 * for (its exit, which unmaps its memory, takes milliseconds here); without one,
 * only that report's rusage says its peak (tp_zygote_child_run). */
static void take_exit(struct watch *w, int out)
{
	struct pollfd p = { .fd = out, .events = POLLIN };
	char buf[65536];
	ssize_t got;

	uint64_t used = tp_limits_cpu_used_ns(&w->inv->enforce, w->pid);
	if (used > atomic_load(&w->cpu_seen_ns))
		atomic_store(&w->cpu_seen_ns, used);
	w->out->wait_status = W_EXITCODE(w->channel.exit_status, 0);
	kill_service(w);
	while (out >= 0 && poll(&p, 1, 0) > 0 && (got = read(out, buf, sizeof(buf))) > 0)
		log_bytes(w, buf, (size_t)got);
}

/* Serves the control channel and relays the service's output until both are closed
 * and the service has ended (or, a zygote's child, it said EXIT). The watch thread
 * ends it at the deadline or a cancel. */
static void supervise(struct watch *w, struct tp_sandbox *sb)
{
	const struct tp_run_config *cfg = w->inv->cfg;
	struct pollfd fds[4] = {
		{ .fd = sb->ctrl_fd, .events = POLLIN },
		{ .fd = sb->out_fd, .events = POLLIN },
		{ .fd = w->pidfd, .events = POLLIN },
		{ .fd = cfg && cfg->shell.read_line ? cfg->shell.interrupt_fd : -1,
		  .events = POLLIN },
	};

	w->out_fd = sb->out_fd;
	while (fds[0].fd >= 0 || fds[1].fd >= 0 || fds[2].fd >= 0) {
		if (poll(fds, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			kill_service(w); /* cannot serve it: end it, and so its descriptors */
			break;
		}
		if (fds[1].fd >= 0 && fds[1].revents) {
			char buf[65536];
			ssize_t got = read(fds[1].fd, buf, sizeof(buf));
			if (got > 0)
				log_bytes(w, buf, (size_t)got);
			else if (got == 0 || errno != EINTR) {
				close(fds[1].fd);
				fds[1].fd = w->out_fd = -1;
			}
		}
		/* a frame first: a Ctrl-C that comes with the next prompt is the prompt's */
		if (fds[3].fd >= 0 && fds[3].revents && !(fds[0].fd >= 0 && fds[0].revents))
			interrupt_service(w, fds[3].fd);
		if (fds[0].fd >= 0 && fds[0].revents) {
			if (tp_channel_serve_one(&w->channel) < 0) {
				if (w->channel.protocol_violation || w->channel.result_too_large)
					kill_service(w);
				close(fds[0].fd);
				fds[0].fd = -1;
			}
			if (w->channel.exited) {
				take_exit(w, fds[1].fd);
				break;
			}
		}
		if (fds[2].fd >= 0 && fds[2].revents)
			fds[2].fd = -1; /* it has ended; a pidfd stays readable */
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	sb->ctrl_fd = sb->out_fd = w->out_fd = -1;
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
	} else if (w->inv->enforce.cpu_mechanism == TP_LIMIT_CLOCK) {
		/* without a cgroup the CPU limit is the service's own clock (a cgroup counts
		 * the reaper's children by itself): no pid, no limit, so no run */
		pid_t service = tp_sandbox_find_service(a->sb);
		atomic_store(&w->service_pid, service > 0 ? service : 0);
		if (service == -ENOSYS) {
			w->setup_failed = 1;
			snprintf(w->setup_err, sizeof(w->setup_err),
				 "cannot find the service's pid to watch its CPU time (/proc/%d/"
				 "task/%d/children: a kernel without CONFIG_PROC_CHILDREN?)",
				 (int)a->sb->pid, (int)a->sb->pid);
			kill_service(w);
		}
	}
	if (!w->setup_failed && w->inv->cfg->shell.read_line)
		open_service(w, a->sb);
	supervise(w, a->sb);
	return NULL;
}

static void reap(struct watch *w)
{
	while (wait4(w->pid, &w->out->wait_status, 0, &w->out->rusage) < 0 && errno == EINTR)
		;
}

/* The reaper has been waited for: its report gives the service's own status, or
 * says the reaper's clock ended the run. Killed without a word, the reaper's
 * status (SIGKILL) stands for the service's: teepy's watch or the OOM killer. */
static void take_report(struct watch *w, struct tp_sandbox *sb)
{
	switch (tp_sandbox_reaped(sb, &w->out->wait_status)) {
	case TP_SANDBOX_END_SERVICE:
	case TP_SANDBOX_END_KILLED:
		break;
	case TP_SANDBOX_END_DEADLINE:
		atomic_store(&w->timed_out, true);
		break;
	case TP_SANDBOX_END_REAPER_FAILED:
		if (!w->setup_failed) {
			w->setup_failed = 1;
			snprintf(w->setup_err, sizeof(w->setup_err),
				 "sandbox setup failed: the service's reaper (pid 1 of its "
				 "namespace) could not drop its rights");
		}
		break;
	}
}

/* ---- one invocation ---- */

static void mark(const struct tp_invocation *inv, const char *phase)
{
	if (inv->cfg->mark)
		inv->cfg->mark(phase);
}

/* The wall clock or the caller ended a child in its set-up on our memory, which
 * the sandbox waits for itself (sandbox.c's await_readable). */
static void take_stop(struct watch *w, const struct tp_sandbox *sb)
{
	if (sb->stopped == TP_SANDBOX_TIMED_OUT)
		atomic_store(&w->timed_out, true);
	else if (sb->stopped == TP_SANDBOX_CANCELLED)
		atomic_store(&w->cancelled, true);
}

/* The sealed root: the child waits in its empty root while the runner writes the
 * verified files in. Returns 0, or -1 with the outcome said. */
static int fill_sealed_root(struct watch *w, struct tp_sandbox *sb)
{
	struct tp_invocation *inv = w->inv;
	struct tp_blob_source_ctx blob_ctx;
	struct tp_host_source_ctx host_ctx;
	struct tp_file_source blobs, host;
	char err[768];
	int root_fd = tp_sandbox_wait_ready(sb, err, sizeof(err));
	int r = 0;

	tp_plan_sources(inv, &blob_ctx, &host_ctx, &blobs, &host);
	mark(inv, "child ready for its files");
	if (root_fd < 0) {
		tp_runner_fail(w->out, TP_END_INTERNAL, "%s", err);
		r = -1;
	} else if ((r = tp_fill_root(&inv->bundle.manifest, &blobs, &host, root_fd, &inv->fill, err,
				     sizeof(err), fill_stop, w)) < 0) {
		if (stopped(w))
			;
		else if (r == -ENOTRECOVERABLE)
			tp_runner_fail(w->out, TP_END_INTERNAL, "%s: %s", inv->cfg->script, err);
		else
			tp_runner_fail(w->out, TP_END_REFUSED, "%s: refused: %s", inv->cfg->script,
				       err);
		r = -1;
	} else {
		set_hold(w, sb->shares_memory);
		int go = tp_sandbox_go(sb);
		take_stop(w, sb);
		set_hold(w, false);
		if (go < 0) {
			if (!stopped(w))
				tp_runner_fail(w->out, TP_END_INTERNAL,
					       "the service ended while its root was being filled");
			r = -1;
		}
	}
	if (root_fd >= 0)
		close(root_fd);
	mark(inv, "sealed root filled");
	return r;
}

/* What is said of a planned run before its service starts: limits held more weakly
 * than asked, and the caller's own look (--print-config). */
static void announce(struct tp_invocation *inv)
{
	const struct tp_run_config *cfg = inv->cfg;
	char err[512];

	if (cfg->warn && tp_limits_weaker(&inv->enforce, err, sizeof(err)))
		cfg->warn(cfg->observer, err);
	if (cfg->on_planned)
		cfg->on_planned(cfg->observer, inv);
}

/* A manifest a verified run recorded (inv->pending): the interpreter is starting
 * meanwhile, but is told nothing yet. The signer is settled, the entry's key and
 * the bundle's blobs checked, and the run announced; only then does the run's
 * clock start (*deadline, timeout_ms from now), its watch, and the boot payload
 * that tells the service what to run. Returns 0, or -1 with the outcome said. */
static int settle_started(struct tp_invocation *inv, struct tp_outcome *out,
			  struct timespec *deadline)
{
	if (tp_plan_settle(inv, out) < 0 || tp_cache_settle(inv, out) < 0)
		return -1;
	announce(inv);
	tp_deadline_after(deadline, inv->limits.timeout_ms);
	return 0;
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
	/* a reaper killed before it waited for the service brings none of its time:
	 * the watch's last look at the service's clock does */
	double seen_cpu = (double)atomic_load(&w->cpu_seen_ns) / 1e9;

	if (seen_cpu > rusage_cpu)
		rusage_cpu = seen_cpu;

	*o = (struct tp_observed){
		.wait_status = w->out->wait_status,
		.cancelled = atomic_load(&w->cancelled),
		.timed_out = atomic_load(&w->timed_out),
		.cpu_killed = atomic_load(&w->cpu_killed),
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

	int fd = w->channel.result_fd;

	if (!w->result_mem || fd < 0)
		return;
	/* one block of the memfd's size: no copy left behind by a growing buffer */
	struct stat st;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < SIZE_MAX &&
	    (out->result = malloc((size_t)st.st_size + 1))) {
		size = (size_t)st.st_size;
		if (tp_pread_full(fd, out->result, size, 0) == 0) {
			out->result[size] = '\0';
			out->result_size = size;
		} else {
			free(out->result);
			out->result = NULL;
		}
	}
	close(fd);
	w->channel.result_fd = -1;
}

/* What the outcome reports besides the verdict. */
static void record(struct watch *w, const struct tp_observed *o, const struct timespec *t0)
{
	const struct tp_channel *ch = &w->channel;
	struct tp_outcome *out = w->out;
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->have_result = ch->have_result;
	out->result_size = ch->result_size;
	out->result_incomplete = ch->result_incomplete;
	out->result_error = ch->result_error;
	out->result_fd = w->result_mem ? -1 : ch->result_fd;
	out->status_kind = ch->status_kind;
	snprintf(out->status_name, sizeof(out->status_name), "%s", ch->status_name);
	out->preload_failed = ch->status_kind == TP_STATUS_SYNTAX &&
			      strcmp(ch->status_name, TP_STATUS_PRELOAD_NAME) == 0;
	out->usage.cpu_ms = (uint64_t)(o->cpu_seconds * 1000);
	out->usage.peak_memory_bytes = o->peak_bytes ? o->peak_bytes : o->max_resident_bytes;
	out->usage.wall_ms = ms_between(t0, &t1);
	take_result(w);
}

static int execute(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_sandbox sb;
	struct watch w = { .inv = inv,
			   .out = out,
			   .pid = -1,
			   .pidfd = -1,
			   .out_fd = -1,
			   .service_pidfd = -1,
			   .hold_lock = PTHREAD_MUTEX_INITIALIZER };
	struct tp_observed o;
	uint8_t *boot = NULL;
	char err[512];
	size_t boot_size = 0;
	struct timespec t0;
	int r;

	if (tp_plan_env(inv) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	if (tp_out_volume_prepare(inv, out) < 0)
		return -1;
	if ((r = tp_plan_boot(inv, &boot, &boot_size)) == -EMSGSIZE)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "the service's arguments, paths and preload names come to "
				      "more than %u bytes (pass fewer or shorter arguments)",
				      TP_MAX_BOOT_SIZE);
	if (r < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot build the boot payload: %s",
				      strerror(-r));

	/* a cached root is filled (or its bundle's blobs checked) before the spawn and
	 * bound into the root: the child need not wait for its files */
	bool filled_from_outside = inv->sealed && inv->cache.state == TP_CACHE_OFF;
	if (inv->sealed && !filled_from_outside) {
		if (tp_cache_root(inv, out) < 0) {
			free(boot);
			return -1;
		}
		mark(inv,
		     inv->cache.state == TP_CACHE_HIT ? "cached root bound" : "cached root filled");
	}

	/* the sealed root's files are held in memory for the service: they come out of
	 * its limit (the plan made sure enough is left) */
	inv->enforce.set = inv->limits;
	inv->enforce.set.memory_bytes -= inv->sealed ? inv->plan.reserve_bytes : 0;
	/* a zygote's CPU time is its forks', for as long as it lives: each child has the
	 * service's limit */
	if (cfg->zygote)
		inv->enforce.set.cpu_ms = TP_ZYGOTE_LIFETIME_MS;
	/* a zygote forks (its children each their own cgroups), but execs nothing */
	inv->enforce.processes = inv->processes || cfg->zygote;
	tp_limits_prepare(&inv->enforce);
	mark(inv, "cgroups prepared");
	/* PyPy maps about 70 MiB before it runs a line: in less address space it would
	 * abort as it starts */
	uint64_t address_space = tp_limits_address_space(&inv->enforce);
	if (inv->engine->name == TP_ENGINE_PYPY &&
	    inv->enforce.memory_mechanism == TP_LIMIT_RLIMIT &&
	    address_space < TP_PYPY_MIN_ADDRESS_SPACE) {
		char as[32], min[32];
		free(boot);
		return tp_runner_fail(
		    out, TP_END_CONFIG,
		    "PyPy maps %s of address space to start, and without a memory cgroup the "
		    "memory limit is held as address space: RLIMIT_AS %s here (raise --memory)",
		    tp_format_size(TP_PYPY_MIN_ADDRESS_SPACE, min, sizeof(min)),
		    tp_format_size(address_space, as, sizeof(as)));
	}
	/* nothing of an unsettled manifest is said (settle_started says it) */
	if (!inv->pending)
		announce(inv);

	const char *interp_argv[] = {
		inv->engine->exe, "-I", "-S", "-B", "-c", TP_BOOT_TEXT, NULL
	};
	const char *write_dirs[3] = { NULL };
	size_t writable = 0;
	if (inv->limits.scratch_bytes)
		write_dirs[writable++] = "/tmp";
	if (inv->has_out)
		write_dirs[writable++] = TP_OUT_DIR;
	static const struct tp_sandbox_tracer tracer = { tp_trace_filter_install, tp_trace_seize };
	struct tp_sandbox_config sc = {
		.interpreter = inv->engine->exe,
		.argv = interp_argv,
		.envp = (const char *const *)inv->envp,
		.exec_files = inv->exec_files,
		.read_trees = (const char *const *)inv->read_trees.items,
		.read_count = inv->read_trees.count,
		.root = &inv->plan,
		.cwd = inv->cwd,
		.write_dirs = write_dirs,
		.limits = &inv->enforce,
		.stage1 = &tp_seccomp_stage1_of[cfg->zygote ? TP_SECCOMP_PROCESSES :
							      tp_seccomp_policy(inv)],
		.tracer = cfg->trace_log ? &tracer : NULL,
		.filled_from_outside = filled_from_outside,
		.handed_fds = cfg->handed_fds,
		.handed_count = cfg->handed_count,
		.mark = cfg->mark,
		.deadline = &w.deadline,
		.cancel_fd = cfg->cancel_fd,
	};
	struct tp_cgroup_join join;
	if ((r = tp_limits_open_join(&inv->enforce, &join)) < 0) {
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot open the run's cgroup: %s",
				      strerror(-r));
	}
	sc.join = &join;
	if ((sc.reaper_fd = open(inv->reaper, O_PATH | O_CLOEXEC)) < 0) {
		r = -errno;
		tp_limits_close_join(&join);
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot open %s: %s", inv->reaper,
				      strerror(-r));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* a zygote lives until its worker stops it: each child has its own clock */
	tp_deadline_after(&w.deadline,
			  cfg->zygote ? TP_ZYGOTE_LIFETIME_MS : inv->limits.timeout_ms);
	r = tp_sandbox_spawn(&sc, &sb, err, sizeof(err));
	tp_limits_close_join(&join);
	close(sc.reaper_fd);
	if (r < 0) {
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL, "%s", err);
	}
	w.pid = sb.pid;
	mark(inv, "spawned");
	take_stop(&w, &sb);
	if (inv->pending && settle_started(inv, out, &w.deadline) < 0) {
		/* refused (or failed) as the open would have: the verdict is that */
		kill(sb.pid, SIGKILL);
		reap(&w);
		tp_sandbox_close(&sb);
		free(boot);
		return -1;
	}
	w.pidfd = (int)syscall(SYS_pidfd_open, sb.pid, 0);
	if (w.pidfd < 0 || (r = watch_start(&w)) < 0) {
		int e = w.pidfd < 0 ? errno : -r;
		kill(sb.pid, SIGKILL);
		reap(&w);
		tp_sandbox_close(&sb);
		if (w.pidfd >= 0)
			close(w.pidfd);
		free(boot);
		return tp_runner_fail(out, TP_END_INTERNAL,
				      "cannot watch the service's CPU time: %s", strerror(e));
	}

	if (filled_from_outside && fill_sealed_root(&w, &sb) < 0) {
		kill_service(&w);
		reap(&w);
		watch_stop(&w);
		tp_sandbox_close(&sb);
		close(w.pidfd);
		free(boot);
		if (stopped(&w)) {
			observe(&w, &o);
			tp_judge(&o, out);
		}
		return -1;
	}
	if (inv->sealed && cfg->on_filled)
		cfg->on_filled(cfg->observer, inv);

	mark(inv, "root ready");
	serve_request(&w, sb.ctrl_fd);
	/* the service's /out, reached while the interpreter waits for its boot payload
	 * (nothing of the service runs before it): held for the publish, it outlives
	 * the service's mount namespace */
	if (cfg->output_volume &&
	    tp_sandbox_wait_exec(&sb, w.setup_err, sizeof(w.setup_err)) == 0 &&
	    tp_out_volume_reach(&inv->volume, sb.pid, err, sizeof(err)) < 0) {
		/* unless the run has ended already (a timeout, a cancel, the OOM killer),
		 * which the judge says: the volume is published only after a normal end */
		struct pollfd ended = { .fd = w.pidfd, .events = POLLIN };
		if (!stopped(&w) && poll(&ended, 1, 0) == 0) {
			snprintf(w.setup_err, sizeof(w.setup_err), "%s", err);
			w.setup_failed = 1;
			kill_service(&w);
		}
	}
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
			if (tp_trace_run(sb.pid, TP_TRACE_PID_IS_REAPER, cfg->trace_log,
					 &out->wait_status, &out->rusage) < 0)
				reap(&w);
			pthread_join(thread, NULL);
		}
	} else {
		serve_thread(&serve);
		mark(inv, "channel closed");
		reap(&w);
	}
	take_report(&w, &sb);
	watch_stop(&w);
	close(w.pidfd);
	w.pidfd = -1;
	if (w.service_pidfd >= 0)
		close(w.service_pidfd);
	tp_sandbox_close(&sb);
	observe(&w, &o);
	record(&w, &o, &t0);
	if (w.setup_failed)
		return tp_runner_fail(out, TP_END_INTERNAL, "%s", w.setup_err);
	mark(inv, "service reaped");
	tp_judge(&o, out);
	tp_out_volume_publish(inv, out);
	if (out->volume.published)
		mark(inv, "output volume published");
	return 0;
}

/* ---- a zygote's child ---- */

/* The zygote's report of the child's end: its wait status and resource use. Waits a
 * little past the child's end (the zygote reaps on SIGCHLD); none (a zygote that
 * died, or the spawner's kill): killed. */
static void take_zygote_status(int fd, struct tp_outcome *out)
{
	struct tp_zygote_status s;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	out->wait_status = SIGKILL; /* as the wait status of a process killed by it */
	if (poll(&p, 1, 2000) <= 0 || read(fd, &s, sizeof(s)) != (ssize_t)sizeof(s) ||
	    s.magic != TP_ZYGOTE_STATUS_MAGIC)
		return;
	out->wait_status = s.wait_status;
	out->rusage.ru_utime.tv_sec = (time_t)(s.utime_us / 1000000u);
	out->rusage.ru_utime.tv_usec = (suseconds_t)(s.utime_us % 1000000u);
	out->rusage.ru_stime.tv_sec = (time_t)(s.stime_us / 1000000u);
	out->rusage.ru_stime.tv_usec = (suseconds_t)(s.stime_us % 1000000u);
	out->rusage.ru_maxrss = (long)s.maxrss_kib;
}

int tp_zygote_child_run(struct tp_zygote_child *child, const struct tp_run_config *cfg,
			const struct tp_limits *limits, struct tp_outcome *out)
{
	struct tp_invocation *inv = calloc(1, sizeof(*inv));
	struct tp_sandbox sb = { .ctrl_fd = child->channel_fd, .out_fd = child->out_fd };
	struct watch w = { .out = out,
			   .pid = child->pid,
			   .pidfd = child->pidfd,
			   .out_fd = -1,
			   .service_pidfd = -1,
			   .hold_lock = PTHREAD_MUTEX_INITIALIZER };
	struct tp_observed o;
	struct timespec t0;
	sigset_t pipe_signal, before;
	const struct timespec now = { 0, 0 };
	int r;

	memset(out, 0, sizeof(*out));
	out->wait_status = -1;
	out->result_fd = -1;
	out->status_kind = -1;
	if (!inv) {
		close(child->channel_fd);
		close(child->out_fd);
		return -ENOMEM;
	}
	inv->cfg = cfg;
	inv->limits = *limits;
	inv->enforce = child->enforce;
	no_descriptors(inv);
	w.inv = inv;
	sigemptyset(&pipe_signal);
	sigaddset(&pipe_signal, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_signal, &before);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tp_deadline_after(&w.deadline, limits->timeout_ms);
	serve_request(&w, child->channel_fd);
	w.channel.takes_exit = true;
	if ((r = watch_start(&w)) < 0) {
		kill_service(&w);
		tp_runner_fail(out, TP_END_INTERNAL, "cannot watch the service's CPU time: %s",
			       strerror(-r));
	} else {
		/* a child that is gone already: its status says how */
		tp_frame_write(child->channel_fd, TP_FRAME_GO, (uint32_t)cfg->data_count,
			       w.channel.input, w.channel.input_size);
		supervise(&w, &sb);
		if (!w.channel.exited) {
			take_zygote_status(child->status_fd, out);
		} else if (inv->enforce.memory_mechanism == TP_LIMIT_RLIMIT) {
			/* its rusage (its peak); its end is the one it said, not the kill */
			int said = out->wait_status;
			take_zygote_status(child->status_fd, out);
			out->wait_status = said;
		}
		watch_stop(&w);
		observe(&w, &o);
		record(&w, &o, &t0);
		tp_judge(&o, out);
	}
	if (sb.ctrl_fd >= 0)
		close(sb.ctrl_fd);
	if (sb.out_fd >= 0)
		close(sb.out_fd);
	if (!sigismember(&before, SIGPIPE))
		while (sigtimedwait(&pipe_signal, NULL, &now) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &before, NULL);
	free(inv);
	return 0;
}

/* An invocation holding none yet: its cache's and its volume's descriptors -1. */
static void no_descriptors(struct tp_invocation *inv)
{
	inv->cache.dir_fd = inv->cache.entry_fd = -1;
	inv->volume.parent_fd = inv->volume.stage_fd = inv->volume.out_fd = -1;
}

void tp_invocation_free(struct tp_invocation *inv)
{
	tp_strlist_free(&inv->python_path);
	tp_strlist_free(&inv->site_dirs);
	tp_strlist_free(&inv->allowed);
	tp_strlist_free(&inv->read_trees);
	tp_strlist_free(&inv->held_warnings);
	for (size_t i = 0; i < inv->env_count; i++)
		free(inv->envp[i]);
	free(inv->envp);
	tp_root_plan_free(&inv->plan);
	tp_limits_cleanup(&inv->enforce);
	tp_cache_close(&inv->cache);
	tp_out_volume_close(&inv->volume);
	if (inv->sealed)
		tp_bundle_file_close(&inv->bundle);
	memset(inv, 0, sizeof(*inv));
	no_descriptors(inv);
}

void tp_outcome_free(struct tp_outcome *out)
{
	free(out->result);
	free(out->log);
	out->result = out->log = NULL;
}

int tp_invocation_open(const struct tp_run_config *cfg, struct tp_invocation *inv,
		       struct tp_outcome *out)
{
	memset(out, 0, sizeof(*out));
	memset(inv, 0, sizeof(*inv));
	out->wait_status = -1;
	out->result_fd = -1;
	out->status_kind = -1;
	inv->cfg = cfg;
	no_descriptors(inv);
	return tp_plan_open(inv, out) < 0 ? tp_plan_settle_first(inv, out) : 0;
}

int tp_invocation_run(struct tp_invocation *inv, struct tp_outcome *out)
{
	sigset_t pipe_signal, before;
	const struct timespec now = { 0, 0 };

	/* A service that closes its end makes the next write to it raise SIGPIPE in the
	 * writing thread, which would end the caller: blocked here (threads the run
	 * starts inherit the mask), each such write fails with EPIPE instead, and what
	 * is left pending is taken before the mask is restored. */
	sigemptyset(&pipe_signal);
	sigaddset(&pipe_signal, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_signal, &before);
	if (tp_plan_root(inv, out) < 0 || execute(inv, out) < 0) {
		if (out->end == TP_END_RESULT) /* a failure that said nothing */
			tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
		tp_plan_settle_first(inv, out);
	}
	if (!sigismember(&before, SIGPIPE))
		while (sigtimedwait(&pipe_signal, NULL, &now) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &before, NULL);
	return 0;
}

int tp_invoke_keep(const struct tp_run_config *cfg, struct tp_outcome *out,
		   struct tp_invocation *inv)
{
	if (tp_invocation_open(cfg, inv, out) == 0)
		tp_invocation_run(inv, out);
	return 0;
}

int tp_invoke(const struct tp_run_config *cfg, struct tp_outcome *out)
{
	struct tp_invocation inv;
	int r = tp_invoke_keep(cfg, out, &inv);

	tp_invocation_free(&inv);
	return r;
}
