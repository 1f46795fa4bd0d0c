/* The tracer for real: a forked child under the tracing filter opens, forks, signals
 * and execs, and the log must name every file with its kind. Works as root and as
 * an unprivileged user (where a non-dumpable tracee cannot be read before exec). */
#include "test.h"
#include "../../src/trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t victim;

static void kill_victim(int sig)
{
	(void)sig;
	if (victim > 0)
		kill(victim, SIGKILL);
}

/* Runs body(arg) in a child traced as the sandbox's child is: seized before it
 * runs, then no_new_privs and the filter. The child is killed after timeout_ms
 * from a SIGALRM handler without SA_RESTART, so the loop also sees EINTR. */
static int traced_run(int (*body)(void *), void *arg, int timeout_ms, struct tp_trace_log *log,
		      int *status)
{
	struct sigaction sa = { .sa_handler = kill_victim }, old;
	struct itimerval timer = { .it_value = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 } };
	struct rusage ru;
	int go[2], r;
	pid_t pid;
	char byte;

	if (pipe(go) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &byte, 1) != 1)
			_exit(120);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(121);
		if (tp_trace_filter_install() < 0)
			_exit(122);
		_exit(body(arg));
	}
	close(go[0]);
	r = tp_trace_seize(pid);
	CHECK(r == 0);
	if (r < 0 || write(go[1], "g", 1) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(go[1]);
		return -1;
	}
	close(go[1]);

	victim = pid;
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &timer, NULL);
	r = tp_trace_run(pid, 0, log, status, &ru);
	memset(&timer, 0, sizeof(timer));
	setitimer(ITIMER_REAL, &timer, NULL);
	sigaction(SIGALRM, &old, NULL);
	victim = 0;
	CHECK(r == 0);
	CHECK(waitpid(pid, NULL, WNOHANG) < 0); /* reaped by the loop */
	return r;
}

static void make_dir(char *dir, size_t size)
{
	char tmpl[] = "/tmp/teepy-trace-XXXXXX";
	char path[PATH_MAX];

	CHECK(mkdtemp(tmpl) != NULL);
	/* paths from /proc are resolved: compare with the resolved directory */
	CHECK(realpath(tmpl, dir) != NULL && strlen(dir) < size);
	snprintf(path, sizeof(path), "%s/sub", dir);
	CHECK(mkdir(path, 0755) == 0);
	const char *files[] = { "abs.txt",    "norm.txt",   "rel.txt",
				"sub/at.txt", "thread.txt", "forked.txt" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		if (f)
			fclose(f);
	}
}

static void remove_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static bool has(const struct tp_trace_log *log, enum tp_trace_kind kind, const char *dir,
		const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "", name);
	if (tp_trace_log_has(log, kind, path))
		return true;
	fprintf(stderr, "  not in the log: %s %s\n", kind == TP_TRACE_EXEC ? "exec" : "open", path);
	return false;
}

static bool opened_libc(const struct tp_trace_log *log)
{
	for (size_t i = 0; i < log->count; i++)
		if (log->kinds[i] == TP_TRACE_OPEN && strstr(log->paths[i], "/libc.so.6"))
			return true;
	return false;
}

static int open_ok(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static void *thread_opens(void *arg)
{
	/* relative: resolved through /proc/<tid>/cwd of a thread, not of the leader */
	return (void *)(intptr_t)open_ok("thread.txt");
}

/* Every way of naming a file; a failed open is an exit code, so status 0 proves the
 * traced calls really ran after their stop. */
static int body_opens_and_execs(void *arg)
{
	const char *dir = arg;
	char path[PATH_MAX];
	pthread_t thread;
	void *thread_r;
	int fd;

	snprintf(path, sizeof(path), "%s/abs.txt", dir);
	if (open_ok(path) < 0)
		return 10;
	snprintf(path, sizeof(path), "%s//sub/./..//norm.txt", dir);
	fd = (int)syscall(SYS_open, path, O_RDONLY | O_CLOEXEC); /* open, not openat */
	if (fd < 0)
		return 11;
	close(fd);
	snprintf(path, sizeof(path), "%s/missing.txt", dir);
	if (open_ok(path) == 0)
		return 12;
	if (chdir(dir) < 0 || open_ok("rel.txt") < 0)
		return 13;
	int dirfd = open("sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || (fd = openat(dirfd, "at.txt", O_RDONLY | O_CLOEXEC)) < 0)
		return 14;
	close(fd);
	close(dirfd);
	fd = (int)syscall(SYS_creat, "sub/../created.txt", 0600);
	if (fd < 0)
		return 15;
	close(fd);
	if (pthread_create(&thread, NULL, thread_opens, NULL) != 0)
		return 16;
	pthread_join(thread, &thread_r);
	if (thread_r != NULL)
		return 17;
	execl("/nonexistent/program", "program", (char *)NULL);
	execl("/bin/true", "true", (char *)NULL);
	return 18;
}

static void test_every_open_and_exec_of_a_run_is_recorded(void)
{
	char dir[PATH_MAX], true_path[PATH_MAX], missing[PATH_MAX + 16];
	struct tp_trace_log log;
	int status = -1;

	make_dir(dir, sizeof(dir));
	tp_trace_log_init(&log);
	CHECK(traced_run(body_opens_and_execs, dir, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fprintf(stderr, "  tracee exited %d\n", WEXITSTATUS(status));

	CHECK(has(&log, TP_TRACE_OPEN, dir, "abs.txt"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "norm.txt"));
	/* only calls that succeeded: the failed open is not a file the app uses */
	CHECK(!tp_trace_log_has(&log, TP_TRACE_OPEN, strcat(strcpy(missing, dir), "/missing.txt")));
	CHECK(!tp_trace_log_has(&log, TP_TRACE_EXEC, "/nonexistent/program"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "rel.txt"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "sub"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "sub/at.txt"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "created.txt"));
	CHECK(has(&log, TP_TRACE_OPEN, dir, "thread.txt"));
	/* as asked, and as the kernel resolved it (/bin is a link on merged-/usr) */
	CHECK(has(&log, TP_TRACE_EXEC, "", "/bin/true"));
	CHECK(realpath("/bin/true", true_path) != NULL);
	CHECK(has(&log, TP_TRACE_EXEC, "", true_path));
	CHECK(!tp_trace_log_has(&log, TP_TRACE_OPEN, "/bin/true"));
	/* tracing goes on in the new program: its loader opens libc */
	CHECK(opened_libc(&log));
	CHECK(log.missed == 0);
	for (size_t i = 0; i < log.count; i++)
		CHECK(log.paths[i][0] == '/' && !strstr(log.paths[i], "//") &&
		      !strstr(log.paths[i], "/./") && !strstr(log.paths[i], "/../"));

	tp_trace_log_free(&log);
	remove_dir(dir);
}

static int body_opens_forever(void *arg)
{
	for (;;)
		if (open_ok("/dev/null") < 0)
			return 1;
}

static void test_a_tracee_killed_mid_run_ends_the_loop(void)
{
	struct tp_trace_log log;
	size_t dev_null = 0;
	int status = -1;

	tp_trace_log_init(&log);
	CHECK(traced_run(body_opens_forever, NULL, 200, &log, &status) == 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* thousands of stops, one record */
	for (size_t i = 0; i < log.count; i++)
		dev_null += strcmp(log.paths[i], "/dev/null") == 0;
	CHECK(dev_null == 1);
	tp_trace_log_free(&log);
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = sig;
}

static int body_catches_a_signal(void *arg)
{
	struct sigaction sa = { .sa_handler = on_usr1 };

	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	return got_usr1 == SIGUSR1 ? 0 : 1;
}

static void test_signals_reach_the_tracee(void)
{
	struct tp_trace_log log;
	int status = -1;

	tp_trace_log_init(&log);
	CHECK(traced_run(body_catches_a_signal, NULL, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tp_trace_log_free(&log);
}

static int body_forks(void *arg)
{
	const char *dir = arg;
	char path[PATH_MAX];
	int st;
	pid_t child = fork();

	if (child == 0) {
		snprintf(path, sizeof(path), "%s/forked.txt", dir);
		_exit(open_ok(path) == 0 ? 7 : 8);
	}
	if (child < 0 || waitpid(child, &st, 0) != child)
		return 1;
	/* the tracer reaped it first; the status must still reach its parent */
	return WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : 2;
}

static void test_a_forked_child_is_traced_and_its_parent_gets_its_status(void)
{
	char dir[PATH_MAX];
	struct tp_trace_log log;
	int status = -1;

	make_dir(dir, sizeof(dir));
	tp_trace_log_init(&log);
	CHECK(traced_run(body_forks, dir, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(has(&log, TP_TRACE_OPEN, dir, "forked.txt"));
	tp_trace_log_free(&log);
	remove_dir(dir);
}

static int body_stops_a_child(void *arg)
{
	int st;
	pid_t child = fork();

	if (child == 0) {
		raise(SIGSTOP);
		_exit(0);
	}
	if (child < 0 || waitpid(child, &st, WUNTRACED) != child)
		return 1;
	if (!WIFSTOPPED(st))
		return 2; /* the stop did not hold: job control broken */
	kill(child, SIGCONT);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st))
		return 3;
	return 0;
}

static void test_a_stopped_tracee_stays_stopped_until_sigcont(void)
{
	struct tp_trace_log log;
	int status = -1;

	tp_trace_log_init(&log);
	CHECK(traced_run(body_stops_a_child, NULL, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fprintf(stderr, "  tracee exited %d\n", WEXITSTATUS(status));
	tp_trace_log_free(&log);
}

/* Like the sandbox: not dumpable from before the filter until the exec. */
static int body_not_dumpable_execs(void *arg)
{
	const char *dir = arg;
	char path[PATH_MAX];

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/abs.txt", dir);
	if (open_ok(path) < 0)
		return 2;
	snprintf(path, sizeof(path), "%s/missing.txt", dir);
	if (open_ok(path) == 0)
		return 4;
	execl("/bin/true", "true", (char *)NULL);
	return 3;
}

static void test_the_executed_file_is_recorded_even_from_a_non_dumpable_tracee(void)
{
	char dir[PATH_MAX], true_path[PATH_MAX];
	struct tp_trace_log log;
	int status = -1;

	make_dir(dir, sizeof(dir));
	tp_trace_log_init(&log);
	CHECK(traced_run(body_not_dumpable_execs, dir, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(realpath("/bin/true", true_path) != NULL);
	CHECK(has(&log, TP_TRACE_EXEC, "", true_path));
	CHECK(opened_libc(&log)); /* dumpable again after the exec */
	if (geteuid() == 0) {
		/* CAP_SYS_PTRACE over the caller's user namespace reads it anyway */
		CHECK(has(&log, TP_TRACE_OPEN, dir, "abs.txt"));
		CHECK(has(&log, TP_TRACE_EXEC, "", "/bin/true"));
		CHECK(log.missed == 0);
	} else {
		/* the open before the exec could not be read; the exec is covered by
		 * /proc/PID/exe, and the failed open is not counted */
		CHECK(log.missed == 1);
	}
	tp_trace_log_free(&log);
	remove_dir(dir);
}

/* As root, the unprivileged case of the test above, in a child that becomes uid
 * 65534: its tracee cannot be read before the exec. Exit status: the missed count,
 * 100 + step when a step failed. */
static void test_an_unreadable_call_is_missed_only_if_it_succeeded(void)
{
	int status = -1;
	pid_t child;

	if (geteuid() != 0)
		return; /* the test above covers it */
	child = fork();
	if (child == 0) {
		char dir[] = "/tmp/teepy-trace-user-XXXXXX", path[PATH_MAX];
		struct tp_trace_log log;
		int st = -1;
		/* changing uid makes the process non-dumpable; its tracee must start as one */
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			_exit(101);
		if (!mkdtemp(dir))
			_exit(102);
		snprintf(path, sizeof(path), "%s/abs.txt", dir);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			_exit(103);
		close(fd);
		tp_trace_log_init(&log);
		if (traced_run(body_not_dumpable_execs, dir, 10000, &log, &st) < 0 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			_exit(104);
		unlink(path);
		rmdir(dir);
		_exit((int)log.missed);
	}
	CHECK(child > 0 && waitpid(child, &status, 0) == child);
	/* the open of abs.txt: missed; the failed open of missing.txt and the exec: not */
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	if (WIFEXITED(status) && WEXITSTATUS(status) != 1)
		fprintf(stderr, "  child exited %d\n", WEXITSTATUS(status));
}

static void *thread_execs(void *arg)
{
	(void)arg;
	execl("/bin/true", "true", (char *)NULL);
	return NULL;
}

/* A thread other than the leader execs: the kernel gives it the leader's id. */
static int body_thread_execs(void *arg)
{
	pthread_t thread;

	(void)arg;
	if (pthread_create(&thread, NULL, thread_execs, NULL) != 0)
		return 1;
	pthread_join(thread, NULL);
	return 2;
}

static void test_an_exec_by_a_thread_is_recorded(void)
{
	struct tp_trace_log log;
	int status = -1;

	tp_trace_log_init(&log);
	CHECK(traced_run(body_thread_execs, NULL, 10000, &log, &status) == 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(has(&log, TP_TRACE_EXEC, "", "/bin/true"));
	CHECK(log.missed == 0);
	tp_trace_log_free(&log);
}

static void test_a_script_names_its_interpreter(void)
{
	char out[64], long_line[300];
	const char *gunzip = "#!/bin/sh\n# Uncompress files.\n";

	CHECK(tp_trace_script_interpreter(gunzip, strlen(gunzip), out, sizeof(out)) == 0);
	CHECK_STR(out, "/bin/sh");
	CHECK(tp_trace_script_interpreter("#! \t/usr/bin/env python3\n", 25, out, sizeof(out)) ==
	      0);
	CHECK_STR(out, "/usr/bin/env");
	CHECK(tp_trace_script_interpreter("#!/bin/sh", 9, out, sizeof(out)) == 0);
	CHECK_STR(out, "/bin/sh");
	CHECK(tp_trace_script_interpreter("\x7f"
					  "ELF\2\1\1",
					  7, out, sizeof(out)) == -ENOEXEC);
	CHECK(tp_trace_script_interpreter("#!sh\n", 5, out, sizeof(out)) == -ENOEXEC);
	CHECK(tp_trace_script_interpreter("#!\n", 3, out, sizeof(out)) == -ENOEXEC);
	CHECK(tp_trace_script_interpreter("#", 1, out, sizeof(out)) == -ENOEXEC);
	memset(long_line, 'a', sizeof(long_line));
	memcpy(long_line, "#!/", 3);
	CHECK(tp_trace_script_interpreter(long_line, sizeof(long_line), out, sizeof(out)) ==
	      -ENOEXEC);
}

static void test_log_keeps_each_kind_and_path_once_and_sorts(void)
{
	struct tp_trace_log log;
	char path[64];

	tp_trace_log_init(&log);
	CHECK(!tp_trace_log_has(&log, TP_TRACE_OPEN, "/a"));
	CHECK(tp_trace_log_add(&log, TP_TRACE_OPEN, "/b") == 0);
	CHECK(tp_trace_log_add(&log, TP_TRACE_EXEC, "/b") == 0);
	CHECK(tp_trace_log_add(&log, TP_TRACE_OPEN, "/b") == 0);
	CHECK(tp_trace_log_add(&log, TP_TRACE_OPEN, "/a") == 0);
	CHECK(log.count == 3);
	/* enough to grow the index several times */
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 1000; i++) {
			snprintf(path, sizeof(path), "/many/%04d", 999 - i);
			CHECK(tp_trace_log_add(&log, TP_TRACE_OPEN, path) == 0);
		}
	CHECK(log.count == 1003);
	tp_trace_log_sort(&log);
	CHECK_STR(log.paths[0], "/a");
	CHECK_STR(log.paths[1], "/b");
	CHECK(log.kinds[1] == TP_TRACE_OPEN && log.kinds[2] == TP_TRACE_EXEC);
	CHECK_STR(log.paths[3], "/many/0000");
	CHECK_STR(log.paths[1002], "/many/0999");
	/* the index follows the sort */
	CHECK(tp_trace_log_has(&log, TP_TRACE_EXEC, "/b"));
	CHECK(tp_trace_log_has(&log, TP_TRACE_OPEN, "/many/0500"));
	CHECK(!tp_trace_log_has(&log, TP_TRACE_EXEC, "/a"));
	CHECK(tp_trace_log_add(&log, TP_TRACE_OPEN, "/many/0500") == 0 && log.count == 1003);
	tp_trace_log_free(&log);
	CHECK(log.count == 0 && log.paths == NULL);
}

TESTS(trace_tests) = { { "log_keeps_each_kind_and_path_once_and_sorts",
			 test_log_keeps_each_kind_and_path_once_and_sorts },
		       { "every_open_and_exec_of_a_run_is_recorded",
			 test_every_open_and_exec_of_a_run_is_recorded },
		       { "a_tracee_killed_mid_run_ends_the_loop",
			 test_a_tracee_killed_mid_run_ends_the_loop },
		       { "signals_reach_the_tracee", test_signals_reach_the_tracee },
		       { "a_forked_child_is_traced_and_its_parent_gets_its_status",
			 test_a_forked_child_is_traced_and_its_parent_gets_its_status },
		       { "a_stopped_tracee_stays_stopped_until_sigcont",
			 test_a_stopped_tracee_stays_stopped_until_sigcont },
		       { "the_executed_file_is_recorded_even_from_a_non_dumpable_tracee",
			 test_the_executed_file_is_recorded_even_from_a_non_dumpable_tracee },
		       { "an_exec_by_a_thread_is_recorded", test_an_exec_by_a_thread_is_recorded },
		       { "an_unreadable_call_is_missed_only_if_it_succeeded",
			 test_an_unreadable_call_is_missed_only_if_it_succeeded },
		       { "a_script_names_its_interpreter", test_a_script_names_its_interpreter },
		       END_TESTS };
