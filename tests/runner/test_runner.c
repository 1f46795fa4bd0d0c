/* The runner as a library: several invocations in one process, one after another,
 * each ending its own way, and each outcome checked. Runs real sandboxes, so it
 * needs what teepy run needs (user namespaces, Landlock) and _teepy beside it. */
#include "../unit/test.h"
#include "../../src/crypto/crypto.h"
#include "../../src/pfs/volume.h"
#include "../../src/runner/runner.h"
#include "../../src/sandbox/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int tp_test_failures;
static char dir[] = "/tmp/teepy-runner-XXXXXX";

static const char *script(const char *name, const char *text)
{
	static char path[4][512];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(p);
		exit(2);
	}
	return p;
}

static struct tp_run_config config(const char *path)
{
	struct tp_run_config cfg = {
		.script = path,
		.limits = tp_limits_default(),
		.cancel_fd = -1,
		/* the host's /run/teepy stays as it was (tests/sealed/test_cache.py tests it) */
		.no_cache = "test_runner",
	};
	return cfg;
}

static void show(const char *what, const struct tp_outcome *out)
{
	printf("  %s: end %d, message '%s', result %llu bytes, cpu %llu ms, peak %llu KiB, "
	       "wall %llu ms\n",
	       what, (int)out->end, out->message, (unsigned long long)out->result_size,
	       (unsigned long long)out->usage.cpu_ms,
	       (unsigned long long)out->usage.peak_memory_bytes >> 10,
	       (unsigned long long)out->usage.wall_ms);
}

static void test_a_result_in_memory_with_its_log(void)
{
	struct tp_run_config cfg =
	    config(script("ok.py", "import teex\n"
				   "print('to the log')\n"
				   "teex.TEEX_return('got ' + teex.TEEX_getinput())\n"));
	struct tp_outcome out;

	cfg.input = "hello";
	cfg.input_size = 5;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("result", &out);
	CHECK(out.end == TP_END_RESULT);
	CHECK(out.have_result && out.result_size == 9);
	CHECK(out.result && memcmp(out.result, "got hello", 9) == 0);
	CHECK(out.log && strstr(out.log, "to the log\n") != NULL);
	CHECK(out.log_dropped == 0);
	tp_outcome_free(&out);

	/* the log is kept up to the output cap, the rest counted */
	cfg.limits.log_max_bytes = 4;
	CHECK(tp_invoke(&cfg, &out) == 0);
	CHECK(out.end == TP_END_RESULT);
	CHECK(out.log_size == 4 && out.log && strcmp(out.log, "to t") == 0);
	CHECK(out.log_relayed == 4 && out.log_dropped == 7);
	CHECK(WIFEXITED(out.wait_status) && WEXITSTATUS(out.wait_status) == 0);
	CHECK(out.usage.wall_ms > 0 && out.usage.peak_memory_bytes > 0);
	tp_outcome_free(&out);
}

static void test_the_memory_limit(void)
{
	struct tp_run_config cfg =
	    config(script("mem.py", "import teex\nblocks = []\n"
				    "while True:\n    blocks.append(bytearray(1 << 20))\n"));
	struct tp_outcome out;

	cfg.limits.memory_bytes = 64ull << 20;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("memory", &out);
	CHECK(out.end == TP_END_MEMORY);
	CHECK(strstr(out.message, "memory limit exceeded (64 MiB") != NULL);
	CHECK(!out.have_result);
	tp_outcome_free(&out);
}

static void test_the_wall_clock(void)
{
	struct tp_run_config cfg = config(script("sleep.py", "import time\ntime.sleep(30)\n"));
	struct tp_outcome out;

	cfg.limits.timeout_ms = 1500;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("timeout", &out);
	CHECK(out.end == TP_END_TIMEOUT);
	CHECK(out.usage.wall_ms >= 1500 && out.usage.wall_ms < 10000);
	tp_outcome_free(&out);
}

static void test_a_handed_descriptor(void)
{
	struct tp_run_config cfg = config(script("fd.py", "import os, teex\n"
							  "os.write(4, b'through fd 4')\n"
							  "teex.TEEX_return('done')\n"));
	struct tp_outcome out;
	int p[2];
	char buf[64] = "";

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	cfg.handed_fds = &p[1];
	cfg.handed_count = 1;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("handed fd", &out);
	close(p[1]);
	CHECK(out.end == TP_END_RESULT);
	CHECK(read(p[0], buf, sizeof(buf) - 1) == 12);
	CHECK_STR(buf, "through fd 4");
	close(p[0]);
	tp_outcome_free(&out);
}

/* The second layer under the read-only mounts: root's service is host uid 65534.
 * A descriptor of a root-owned host file, handed in, reaches it past every mount
 * of the sandbox; its owner, mode, times and attributes hold by the file's owner
 * alone. */
static void test_root_service_is_not_host_root(void)
{
	struct tp_run_config cfg = config(
	    script("owner.py", "import errno, os, teex\n"
			       "tries = {'chmod': lambda: os.chmod(4, 0o777),\n"
			       "         'chown': lambda: os.chown(4, 1000, 1000),\n"
			       "         'utime': lambda: os.utime(4, (0, 0)),\n"
			       "         'xattr': lambda: os.setxattr(4, 'user.teepy', b'1'),\n"
			       "         'write': lambda: os.write(4, b'x')}\n"
			       "out = []\n"
			       "for name, f in tries.items():\n"
			       "    try:\n"
			       "        f(); out.append(name + ' done')\n"
			       "    except OSError as e:\n"
			       "        out.append(name + ' ' + errno.errorcode[e.errno])\n"
			       "teex.TEEX_return(', '.join(out))\n"));
	struct tp_outcome out;
	struct stat before, after;
	char path[600];
	int fd;

	if (getuid() != 0) {
		printf("  (root only: an unprivileged caller's service is the caller)\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/host-file", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && fstat(fd, &before) == 0);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cfg.handed_fds = &fd;
	cfg.handed_count = 1;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("host file", &out);
	close(fd);
	CHECK(out.end == TP_END_RESULT);
	static const char want[] =
	    "chmod EPERM, chown EPERM, utime EPERM, xattr EACCES, write EBADF";
	CHECK(out.result && out.result_size == sizeof(want) - 1 &&
	      memcmp(out.result, want, sizeof(want) - 1) == 0);
	if (out.result)
		printf("  %.*s\n", (int)out.result_size, (const char *)out.result);
	CHECK(stat(path, &after) == 0);
	CHECK(after.st_mode == before.st_mode && after.st_uid == 0 &&
	      after.st_mtim.tv_sec == before.st_mtim.tv_sec);
	unlink(path);
	tp_outcome_free(&out);
}

/* Landlock's read rights alone, with the mount namespace out of the way: a
 * descriptor of a host directory outside the root, handed in at fd 4, reaches the
 * host's tree past the namespace (a stat there works), yet no file or listing
 * there can be opened, through Python or a raw openat. Everything there is
 * readable by the service's ids, so only Landlock refuses. */
static const char escape[] =
    "import ctypes, errno, os, teex\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def name(e):\n"
    "    return errno.errorcode.get(e, str(e))\n"
    "def attempt(fn):\n"
    "    try:\n"
    "        return 'ok:' + str(fn())\n"
    "    except OSError as e:\n"
    "        return name(e.errno)\n"
    "def raw_openat(path, flags):\n"
    "    fd = libc.syscall(257, 4, path, flags, 0)\n"
    "    return name(ctypes.get_errno()) if fd < 0 else 'ok'\n"
    "try:\n"
    "    os.fstat(4)\n"
    "except OSError:\n"
    "    teex.TEEX_return('no fd 4')\n"
    "else:\n"
    "    teex.TEEX_return(' '.join([\n"
    "        attempt(lambda: os.stat('secret', dir_fd=4).st_size),\n"
    "        attempt(lambda: os.read(os.open('secret', os.O_RDONLY, dir_fd=4), 64).decode()),\n"
    "        attempt(lambda: os.listdir(os.open('.', os.O_RDONLY | os.O_DIRECTORY, dir_fd=4))),\n"
    "        raw_openat(b'secret', os.O_RDONLY),\n"
    "        raw_openat(b'.', os.O_RDONLY | os.O_DIRECTORY)]))\n";
/* what the old code let through: "ok:6 ok:secret ok:['secret'] ok ok" */
static const char escape_refused[] = "ok:6 EACCES EACCES EACCES EACCES";

/* A host directory outside every tree of the root, with a file anyone may read;
 * returns an O_PATH descriptor of it. */
static int host_directory(char *path, size_t size)
{
	char file[600];
	FILE *f;
	int fd;

	snprintf(path, size, "/tmp/teepy-runner-host-XXXXXX");
	if (!mkdtemp(path) || chmod(path, 0755) < 0)
		return -1;
	snprintf(file, sizeof(file), "%s/secret", path);
	f = fopen(file, "w");
	if (!f || fputs("secret", f) < 0 || fclose(f) != 0 || chmod(file, 0644) < 0)
		return -1;
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd;
}

static void remove_host_directory(const char *path)
{
	char file[600];

	snprintf(file, sizeof(file), "%s/secret", path);
	unlink(file);
	rmdir(path);
}

/* Runs cfg (the escape service) with the host directory handed in at fd 4. */
static void check_escape_refused(struct tp_run_config *cfg, const char *what)
{
	struct tp_outcome out;
	char host[64];
	int fd = host_directory(host, sizeof(host));

	CHECK(fd >= 0);
	cfg->handed_fds = &fd;
	cfg->handed_count = 1;
	CHECK(tp_invoke(cfg, &out) == 0);
	show(what, &out);
	CHECK(out.end == TP_END_RESULT);
	CHECK(out.result && out.result_size == strlen(escape_refused) &&
	      memcmp(out.result, escape_refused, out.result_size) == 0);
	if (out.result)
		printf("  service: %.*s\n", (int)out.result_size, out.result);
	close(fd);
	remove_host_directory(host);
	tp_outcome_free(&out);
}

static void test_a_handed_host_directory_cannot_be_read(void)
{
	struct tp_run_config cfg = config(script("escape.py", escape));

	check_escape_refused(&cfg, "handed host directory");
}

static void test_a_cancel(void)
{
	struct tp_run_config cfg = config(script("sleep.py", "import time\ntime.sleep(30)\n"));
	struct tp_outcome out;
	int p[2];

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK(write(p[1], "C", 1) == 1);
	cfg.cancel_fd = p[0];
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("cancel", &out);
	CHECK(out.end == TP_END_CANCELLED);
	CHECK(out.usage.wall_ms < 10000);
	close(p[0]);
	close(p[1]);
	tp_outcome_free(&out);
}

/* A RESULT frame promising 100 bytes, 10 sent, then nothing: the runner is inside
 * the frame, blocked on the service, when the deadline comes. */
static const char stall[] = "import os, struct, time\n"
			    "os.write(3, struct.pack('=IIQ', 18, 0, 100) + b'x' * 10)\n"
			    "time.sleep(30)\n";

static void test_the_wall_clock_inside_a_frame(void)
{
	struct tp_run_config cfg = config(script("stall.py", stall));
	struct tp_outcome out;

	cfg.limits.timeout_ms = 1500;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("timeout in a frame", &out);
	CHECK(out.end == TP_END_TIMEOUT);
	CHECK(out.usage.wall_ms >= 1500 && out.usage.wall_ms < 10000);
	tp_outcome_free(&out);
}

static void *cancel_later(void *arg)
{
	usleep(800 * 1000);
	if (write(*(int *)arg, "C", 1) != 1)
		perror("cancel");
	return NULL;
}

static void test_a_cancel_inside_a_frame(void)
{
	struct tp_run_config cfg = config(script("stall.py", stall));
	struct tp_outcome out;
	pthread_t thread;
	int p[2];

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	cfg.cancel_fd = p[0];
	CHECK(pthread_create(&thread, NULL, cancel_later, &p[1]) == 0);
	CHECK(tp_invoke(&cfg, &out) == 0);
	pthread_join(thread, NULL);
	show("cancel in a frame", &out);
	CHECK(out.end == TP_END_CANCELLED);
	CHECK(out.usage.wall_ms < 10000);
	close(p[0]);
	close(p[1]);
	tp_outcome_free(&out);
}

/* The service asks for its input and closes the channel: the reply meets a closed
 * socket, whose SIGPIPE must not end the program that runs the service. */
static void test_a_closed_channel_does_not_end_the_caller(void)
{
	struct tp_run_config cfg =
	    config(script("close.py", "import os, struct, time\n"
				      "os.write(3, struct.pack('=IIQ', 16, 0, 0))\n"
				      "os.close(3)\n"
				      "time.sleep(0.5)\n"));
	struct tp_outcome out;
	static char input[4 << 20];
	sigset_t pending;

	memset(input, 'i', sizeof(input));
	cfg.input = input;
	cfg.input_size = sizeof(input);
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("closed channel", &out);
	CHECK(out.end == TP_END_NO_RESULT);
	CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGPIPE));
	tp_outcome_free(&out);
}

/* Runs SHELL (%s: this directory, then the teepy beside this program) in the
 * directory, its output dropped; returns its status. */
static int teepy_here(const char *shell)
{
	char exe[PATH_MAX], cmd[4 * PATH_MAX], line[2 * PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(line, sizeof(line), "cd '%s' && T='%s/teepy' && ", dir, dirname(exe));
	snprintf(cmd, sizeof(cmd), "{ %s%s; } >/dev/null 2>&1", line, shell);
	return system(cmd);
}

/* A sealed bundle built by the teepy beside this program, run through the API. */
static void test_a_bundle_and_its_signer(void)
{
	char tpy[600], pub[600], other[600];
	struct tp_outcome out;

	script("svc.py", "import teex\nteex.TEEX_return('sealed ' + teex.TEEX_getinput())\n");
	snprintf(tpy, sizeof(tpy), "%s/svc.tpy", dir);
	snprintf(pub, sizeof(pub), "%s/signer.pub", dir);
	snprintf(other, sizeof(other), "%s/other.pub", dir);
	CHECK(teepy_here("$T keygen -o signer.key && $T keygen -o other.key && "
			 "$T build svc.py --input x -o svc.tpy --key signer.key") == 0);

	const char *trusted[] = { pub, NULL };
	struct tp_run_config cfg = config(tpy);
	cfg.is_bundle = true;
	cfg.trust_paths = trusted;
	cfg.input = "run";
	cfg.input_size = 3;
	CHECK(tp_invoke(&cfg, &out) == 0);
	show("bundle", &out);
	CHECK(out.end == TP_END_RESULT);
	CHECK(out.result && out.result_size == 10 && memcmp(out.result, "sealed run", 10) == 0);
	tp_outcome_free(&out);

	const char *wrong[] = { other, NULL };
	cfg.trust_paths = wrong;
	CHECK(tp_invoke(&cfg, &out) == 0);
	CHECK(out.end == TP_END_REFUSED);
	CHECK(strstr(out.message, "none of the trusted signers") != NULL);
	CHECK(out.wait_status == -1); /* refused before anything was spawned */
	tp_outcome_free(&out);
}

/* The same in a sealed root: the directories its files were written into are
 * readable, the host's tree past a handed descriptor is not. */
static void test_a_handed_host_directory_cannot_be_read_in_a_sealed_root(void)
{
	char tpy[600], pub[600];

	script("escape.py", escape);
	snprintf(tpy, sizeof(tpy), "%s/escape.tpy", dir);
	snprintf(pub, sizeof(pub), "%s/escape.pub", dir);
	CHECK(teepy_here("$T keygen -o escape.key && "
			 "$T build escape.py -o escape.tpy --key escape.key") == 0);

	const char *trusted[] = { pub, NULL };
	struct tp_run_config cfg = config(tpy);
	cfg.is_bundle = true;
	cfg.trust_paths = trusted;
	check_escape_refused(&cfg, "handed host directory, sealed");
}

static void test_a_config_error_is_said_not_printed(void)
{
	struct tp_run_config cfg = config("/nonexistent/service.py");
	struct tp_outcome out;

	CHECK(tp_invoke(&cfg, &out) == 0);
	CHECK(out.end == TP_END_CONFIG);
	CHECK_STR(out.message, "/nonexistent/service.py: No such file or directory");
	CHECK(out.wait_status == -1);
	tp_outcome_free(&out);
}

/* The plaintext of NAME in the volume at path, read through the library, or NULL. */
static char *volume_file(const char *path, const uint8_t *key, const char *name, uint64_t *version)
{
	struct tp_volume_index ix;
	struct tp_pfs_reader *rd = NULL;
	char err[512], *text = NULL;
	int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd = -1;

	if (dir_fd < 0 || tp_volume_read_index(dir_fd, key, &ix, err, sizeof(err)) < 0) {
		printf("  %s: %s\n", path, dir_fd < 0 ? strerror(errno) : err);
		if (dir_fd >= 0)
			close(dir_fd);
		return NULL;
	}
	*version = ix.version;
	for (size_t i = 0; i < ix.count; i++) {
		if (strcmp(ix.entries[i].name, name) != 0)
			continue;
		size_t size;
		if (tp_volume_open_file(dir_fd, key, &ix.entries[i], &fd, &rd, err, sizeof(err)) ==
			0 &&
		    (text = calloc(1, 1 << TP_PFS_DEFAULT_SHIFT)) &&
		    tp_pfs_read_chunk(rd, 0, text, &size, err, sizeof(err)) < 0) {
			free(text);
			text = NULL;
		}
		tp_pfs_reader_free(rd);
		if (fd >= 0)
			close(fd);
	}
	tp_volume_index_free(&ix);
	close(dir_fd);
	return text;
}

static void test_an_output_volume_version_after_version(void)
{
	struct tp_run_config cfg = config(script(
	    "vol.py", "import os, teex\n"
		      "os.makedirs('/out/sub', exist_ok=True)\n"
		      "open('/out/sub/said.txt', 'w').write('said ' + teex.TEEX_getinput())\n"
		      "if teex.TEEX_getinput() == 'fail': raise SystemExit(4)\n"
		      "teex.TEEX_return('ok')\n"));
	uint8_t *key = tp_secret_alloc(TP_SYMKEY_SIZE);
	char path[600], err[256];
	struct tp_outcome out;
	uint64_t version = 0;
	char *text;

	CHECK(key && tp_crypto_load(err, sizeof(err)) == 0 && tp_random(key, TP_SYMKEY_SIZE) == 0);
	snprintf(path, sizeof(path), "%s/volume", dir);
	cfg.output_volume = path;
	cfg.volume_key = key;
	const char *inputs[] = { "one", "two", "fail" };
	for (int i = 0; i < 3; i++) {
		cfg.input = inputs[i];
		cfg.input_size = strlen(inputs[i]);
		CHECK(tp_invoke(&cfg, &out) == 0);
		show(inputs[i], &out);
		CHECK(out.end == (i < 2 ? TP_END_RESULT : TP_END_FAILED));
		CHECK(out.volume.published == (i < 2));
		CHECK(i == 2 || (out.volume.version == (uint64_t)i + 1 && out.volume.files == 1));
		tp_outcome_free(&out);
	}
	/* the failed run left the second version as it was */
	text = volume_file(path, key, "sub/said.txt", &version);
	CHECK(version == 2);
	CHECK_STR(text ? text : "", "said two");
	free(text);

	/* an older version expected: refused before the service runs */
	cfg.input = "three";
	cfg.input_size = 5;
	cfg.expect_version_given = true;
	cfg.expect_version = 1;
	CHECK(tp_invoke(&cfg, &out) == 0);
	CHECK(out.end == TP_END_VOLUME_REFUSED && out.wait_status == -1);
	CHECK(strstr(out.message, "at version 2, not 1") != NULL);
	tp_outcome_free(&out);
	tp_secret_free(key, TP_SYMKEY_SIZE);
}

/* Landlock's network rights alone, without seccomp: TCP sockets made before the
 * ruleset (as a handed socket is) can neither be bound nor connected once it
 * applies, nor connected by a TCP fast open send, which connects without connect().
 * The child reports each call's errno through a pipe; a listener of the test's
 * must receive nothing. ABI 4 brought the network rights. */
enum { LL_BIND, LL_CONNECT, LL_FAST_OPEN, LL_CALLS };

static void landlock_child(int report, const struct sockaddr_in *target)
{
	static const char *const none[] = { NULL };
	const struct tp_landlock_paths paths = { .exec_files = none,
						 .write_files = none,
						 .write_dirs = none };
	struct sockaddr_in any = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fds[LL_CALLS], errs[LL_CALLS];

	for (int i = 0; i < LL_CALLS; i++)
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || tp_landlock_apply(&paths) < 4)
		_exit(3);
	errs[LL_BIND] =
	    bind(fds[LL_BIND], (const struct sockaddr *)&any, sizeof(any)) < 0 ? errno : 0;
	errs[LL_CONNECT] =
	    connect(fds[LL_CONNECT], (const struct sockaddr *)target, sizeof(*target)) < 0 ? errno :
											     0;
	errs[LL_FAST_OPEN] = sendto(fds[LL_FAST_OPEN], "x", 1, MSG_FASTOPEN,
				    (const struct sockaddr *)target, sizeof(*target)) < 0 ?
				 errno :
				 0;
	_exit(write(report, errs, sizeof(errs)) == (ssize_t)sizeof(errs) ? 0 : 4);
}

static void test_landlock_alone_denies_tcp_bind_and_connect(void)
{
	struct sockaddr_in target = { .sin_family = AF_INET,
				      .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(target);
	int errs[LL_CALLS] = { -1, -1, -1 };
	int listener, p[2], status = -1;
	struct pollfd reached;
	pid_t pid;

	if (tp_landlock_abi() < 4) {
		printf("  skipped: Landlock ABI %d has no network rights\n", tp_landlock_abi());
		return;
	}
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listener >= 0 && bind(listener, (struct sockaddr *)&target, sizeof(target)) == 0 &&
	      listen(listener, 8) == 0 &&
	      getsockname(listener, (struct sockaddr *)&target, &len) == 0);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		landlock_child(p[1], &target);
	}
	close(p[1]);
	CHECK(pid > 0 && read(p[0], errs, sizeof(errs)) == (ssize_t)sizeof(errs));
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	printf("  bind %s, connect %s, fast open %s\n", strerror(errs[LL_BIND]),
	       strerror(errs[LL_CONNECT]), strerror(errs[LL_FAST_OPEN]));
	CHECK(errs[LL_BIND] == EACCES);
	CHECK(errs[LL_CONNECT] == EACCES);
	CHECK(errs[LL_FAST_OPEN] == EACCES);
	reached = (struct pollfd){ .fd = listener, .events = POLLIN };
	CHECK(poll(&reached, 1, 200) == 0);
	close(p[0]);
	close(listener);
}

int main(void)
{
	static const struct tp_test tests[] = {
		{ "runner: a result, kept in memory, with the service's log",
		  test_a_result_in_memory_with_its_log },
		{ "runner: the memory limit", test_the_memory_limit },
		{ "runner: the wall clock", test_the_wall_clock },
		{ "runner: a descriptor handed in at fd 4", test_a_handed_descriptor },
		{ "runner: root's service is not host root, past the read-only mounts",
		  test_root_service_is_not_host_root },
		{ "runner: a handed host directory outside the root cannot be read (Landlock)",
		  test_a_handed_host_directory_cannot_be_read },
		{ "runner: a cancel through cancel_fd", test_a_cancel },
		{ "runner: the wall clock while the service stalls inside a frame",
		  test_the_wall_clock_inside_a_frame },
		{ "runner: a cancel while the service stalls inside a frame",
		  test_a_cancel_inside_a_frame },
		{ "runner: a channel closed under a reply does not end the caller (SIGPIPE)",
		  test_a_closed_channel_does_not_end_the_caller },
		{ "runner: a sealed bundle, and one from a signer not trusted",
		  test_a_bundle_and_its_signer },
		{ "runner: the same in a sealed root",
		  test_a_handed_host_directory_cannot_be_read_in_a_sealed_root },
		{ "runner: a config error is said, not printed",
		  test_a_config_error_is_said_not_printed },
		{ "runner: an output volume, version after version; a failed run publishes "
		  "nothing",
		  test_an_output_volume_version_after_version },
		{ "runner: Landlock alone denies TCP bind and connect of sockets made before it",
		  test_landlock_alone_denies_tcp_bind_and_connect },
	};
	int passed = 0, failed = 0;
	char cmd[600];

	if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
		perror("mkdtemp");
		return 2;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = tp_test_failures;
		tests[i].fn();
		if (tp_test_failures == before) {
			passed++;
			printf("ok   %s\n", tests[i].name);
		} else {
			failed++;
			printf("FAIL %s\n", tests[i].name);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
