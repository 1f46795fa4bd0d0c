/* The spawner: a single-threaded process the worker forks before its HTTP threads
 * exist (a sandbox's spawn needs the only thread: runner.h). The worker hands it
 * each invocation as two descriptors over a socket (SCM_RIGHTS): the invocation's
 * own socket and a memfd describing the job; it forks one child per invocation,
 * which opens the data, calls the runner and writes the outcome to that socket. The
 * socket is also the run's cancel descriptor: when the worker shuts its side (the
 * client went away, the worker stops or dies) it reads as end of file, which stops
 * the run. Each level dies with its parent (PR_SET_PDEATHSIG): a worker killed with
 * SIGKILL leaves no sandboxed process behind. */
#include "worker.h"

#include "../common/io.h"
#include "../common/limits.h"
#include "../crypto/crypto.h"
#include "../manifest/manifest.h"
#include "../manifest/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define JOB_MAGIC 0x74706a31u

/* The job in its memfd: this head, the bundle's path, then for each data item its
 * path's length (uint32) and the path; each env value's length (uint32) and bytes;
 * then the input. The keys are not in it (a memfd's pages may be swapped): they
 * come first on the invocation's socket, the bundle's (if any) then each item's, and
 * the child reads them into locked memory. */
struct job_head {
	uint32_t magic;
	uint32_t data_count, service_data_count, bundle_path_len, env_count;
	uint8_t has_bundle_key;
	uint8_t app[32], signer[32]; /* the service's bundle's measurements */
	uint64_t input_size;
};

/* ---- the worker's side ---- */

static int put(int fd, const void *bytes, size_t size)
{
	return tp_write_full(fd, bytes, size);
}

int tp_worker_spawn(int ctl, const struct tp_worker_job *job, int *sock)
{
	struct job_head h = {
		.magic = JOB_MAGIC,
		.data_count = (uint32_t)job->data_count,
		.service_data_count = (uint32_t)job->service_data_count,
		.bundle_path_len = (uint32_t)strlen(job->bundle_path),
		.env_count = (uint32_t)job->env_count,
		.has_bundle_key = job->bundle_key != NULL,
		.input_size = job->input_size,
	};
	int memfd = memfd_create("teepy-job", MFD_CLOEXEC), sp[2] = { -1, -1 }, r = 0;
	char byte = 'J';
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	if (memfd < 0)
		return -errno;
	memcpy(h.app, job->app, 32);
	memcpy(h.signer, job->signer, 32);
	r = put(memfd, &h, sizeof(h));
	if (r == 0)
		r = put(memfd, job->bundle_path, h.bundle_path_len);
	for (size_t i = 0; r == 0 && i < job->data_count; i++) {
		uint32_t len = (uint32_t)strlen(job->data_paths[i]);
		if ((r = put(memfd, &len, sizeof(len))) == 0)
			r = put(memfd, job->data_paths[i], len);
	}
	for (size_t i = 0; r == 0 && i < job->env_count; i++) {
		uint32_t len = (uint32_t)strlen(job->env[i]);
		if ((r = put(memfd, &len, sizeof(len))) == 0)
			r = put(memfd, job->env[i], len);
	}
	if (r == 0)
		r = put(memfd, job->input, job->input_size);
	if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		r = -errno;
	if (r == 0) {
		memset(u.buf, 0, sizeof(u.buf));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(c), (int[]){ sp[1], memfd }, 2 * sizeof(int));
		/* the keys wait in the socket's buffer (kernel memory) for the child */
		if (job->bundle_key)
			r = put(sp[0], job->bundle_key, 32);
		for (size_t i = 0; r == 0 && i < job->data_count; i++)
			r = put(sp[0], job->data_keys[i], 32);
		if (r == 0 && sendmsg(ctl, &msg, MSG_NOSIGNAL) < 0)
			r = -errno;
	}
	close(memfd);
	if (sp[1] >= 0)
		close(sp[1]);
	if (r < 0) {
		if (sp[0] >= 0)
			close(sp[0]);
		return r;
	}
	*sock = sp[0];
	return 0;
}

int tp_worker_outcome_read(int sock, uint64_t max_result, struct tp_worker_outcome *o,
			   char **result, char **log)
{
	int r;

	*result = *log = NULL;
	if ((r = tp_read_full(sock, o, sizeof(*o))) < 0)
		return r;
	if (o->magic != TP_WORKER_OUTCOME_MAGIC || o->log_size > TP_WORKER_LOG_MAX)
		return -EPROTO;
	if (o->result_size > max_result)
		return -EFBIG;
	if (o->result_size > SIZE_MAX - 1 || !(*result = malloc((size_t)o->result_size + 1)) ||
	    !(*log = malloc((size_t)o->log_size + 1))) {
		free(*result);
		*result = NULL;
		return -ENOMEM;
	}
	if ((r = tp_read_full(sock, *result, (size_t)o->result_size)) < 0 ||
	    (r = tp_read_full(sock, *log, (size_t)o->log_size)) < 0) {
		free(*result);
		free(*log);
		*result = *log = NULL;
		return r;
	}
	(*result)[o->result_size] = (*log)[o->log_size] = '\0';
	return 0;
}

/* ---- one invocation's process ---- */

static void send_outcome(int sock, const struct tp_outcome *out, const char *message)
{
	struct tp_worker_outcome o = {
		.magic = TP_WORKER_OUTCOME_MAGIC,
		.end = (int32_t)out->end,
		.cpu_ms = out->usage.cpu_ms,
		.peak_memory_bytes = out->usage.peak_memory_bytes,
		.wall_ms = out->usage.wall_ms,
		.have_result = out->have_result && !out->result_incomplete && out->result,
		.log_truncated = out->log_dropped > 0,
		.log_size = out->log && out->log_size <= TP_WORKER_LOG_MAX ? out->log_size : 0,
	};

	snprintf(o.message, sizeof(o.message), "%s", message ? message : out->message);
	o.result_size = o.have_result ? out->result_size : 0;
	if (put(sock, &o, sizeof(o)) == 0 &&
	    (!o.result_size || put(sock, out->result, (size_t)o.result_size) == 0) && o.log_size)
		put(sock, out->log, o.log_size);
}

static void fail(int sock, enum tp_end end, const char *message)
{
	struct tp_outcome out = { .end = end };
	send_outcome(sock, &out, message);
}

/* Whether the bundle opened is the one the service was deployed with: its manifest
 * (which names every file's hash) and signer measure as the store recorded. Measured
 * here from the bytes the runner will use: the runner itself may leave them to the
 * interpreter's start (a bundle its cache's index knows). */
static bool same_bundle(const struct tp_bundle_file *bf, const struct job_head *h)
{
	uint8_t app[32], signer[32];

	if (!bf->bundle.manifest || !bf->bundle.pubkey)
		return false;
	tp_manifest_measure(bf->bundle.manifest, bf->bundle.header.manifest_size, app);
	tp_trust_signer_measure(bf->bundle.pubkey, signer);
	return memcmp(app, h->app, 32) == 0 && memcmp(signer, h->signer, 32) == 0;
}

static void run_child(const struct tp_worker_run_opts *o, int sock, int memfd)
{
	struct stat st;
	const struct job_head *h;
	const uint8_t *p, *end;
	uint8_t *map, *keys = NULL, *bundle_key = NULL;
	size_t keys_size;
	char bundle[PATH_MAX], err[512], line[1024];
	char **env = NULL;
	int *fds = NULL;
	struct tp_outcome out;
	struct tp_run_config cfg;
	struct tp_invocation inv;
	size_t count = 0;

	/* the child holds keys and plaintext: no core dump of it */
	tp_secret_no_core(false);
	if (fstat(memfd, &st) < 0 || (size_t)st.st_size < sizeof(*h) ||
	    (map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0)) ==
		MAP_FAILED) {
		fail(sock, TP_END_INTERNAL, "the job could not be read");
		return;
	}
	h = (const struct job_head *)map;
	p = map + sizeof(*h);
	end = map + st.st_size;
	if (h->magic != JOB_MAGIC || h->bundle_path_len >= sizeof(bundle) ||
	    (size_t)(end - p) < h->bundle_path_len) {
		fail(sock, TP_END_INTERNAL, "a malformed job");
		return;
	}
	memcpy(bundle, p, h->bundle_path_len);
	bundle[h->bundle_path_len] = '\0';
	p += h->bundle_path_len;
	keys_size = ((size_t)h->has_bundle_key + h->data_count) * TP_SYMKEY_SIZE;
	if (keys_size &&
	    (!(keys = tp_secret_alloc(keys_size)) || tp_read_full(sock, keys, keys_size) < 0)) {
		fail(sock, TP_END_INTERNAL,
		     keys ? "the job's keys could not be read" : "out of memory");
		return;
	}
	if (h->has_bundle_key)
		bundle_key = keys;
	if (!(fds = calloc(h->data_count + 1, sizeof(int)))) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		return;
	}
	for (; count < h->data_count; count++) {
		uint32_t len;
		char path[PATH_MAX];
		int fd, plain;
		if ((size_t)(end - p) < sizeof(len) ||
		    (memcpy(&len, p, sizeof(len)), len >= sizeof(path)) ||
		    (size_t)(end - p) < sizeof(len) + len) {
			fail(sock, TP_END_INTERNAL, "a malformed job");
			return;
		}
		memcpy(path, p + sizeof(len), len);
		path[len] = '\0';
		p += sizeof(len) + len;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
			snprintf(line, sizeof(line), "data item %.80s: %s (the store is damaged)",
				 strrchr(path, '/') + 1, strerror(errno));
			fail(sock, TP_END_REFUSED, line);
			return;
		}
		plain = tp_data_unseal(fd, (uint64_t)st.st_size,
				       keys + ((size_t)h->has_bundle_key + count) * TP_SYMKEY_SIZE,
				       err, sizeof(err));
		close(fd);
		if (plain < 0) {
			snprintf(line, sizeof(line), "data item %.80s: %.512s",
				 strrchr(path, '/') + 1, err);
			fail(sock, plain == -ENOMEM ? TP_END_INTERNAL : TP_END_REFUSED, line);
			return;
		}
		fds[count] = plain;
	}
	if (!(env = calloc(h->env_count + 1, sizeof(char *)))) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < h->env_count; i++) {
		uint32_t len;
		if ((size_t)(end - p) < sizeof(len) || (memcpy(&len, p, sizeof(len)), 0) ||
		    (size_t)(end - p) - sizeof(len) < len ||
		    !(env[i] = strndup((const char *)p + sizeof(len), len))) {
			fail(sock, TP_END_INTERNAL, "a malformed job");
			return;
		}
		p += sizeof(len) + len;
	}
	if ((uint64_t)(end - p) != h->input_size) {
		fail(sock, TP_END_INTERNAL, "a malformed job");
		return;
	}
	cfg = (struct tp_run_config){
		.script = bundle,
		.is_bundle = true,
		.input = (const char *)p,
		.input_size = h->input_size,
		.input_name = "the request's input",
		.data_fds = fds,
		.data_count = count,
		.service_data_count = h->service_data_count,
		.limits = tp_limits_default(),
		.limits_given = TP_LIMIT_TIMEOUT | TP_LIMIT_LOG,
		.env = (const char *const *)env,
		.trust_paths = o->trust_paths,
		.trust_source = "--trust",
		.bundle_key = bundle_key,
		.no_cache = o->no_cache,
		.cache_max_bytes = TP_CACHE_MAX_DEFAULT,
		.cache_dir = o->cache_dir,
		.runtime_dir = o->runtime_dir,
		.cancel_fd = sock,
	};
	cfg.limits.timeout_ms = o->timeout_ms;
	cfg.limits.log_max_bytes = TP_WORKER_LOG_MAX;
	if (tp_invocation_open(&cfg, &inv, &out) == 0) {
		if (!same_bundle(&inv.bundle, h)) {
			tp_outcome_free(&out);
			tp_invocation_free(&inv);
			fail(sock, TP_END_REFUSED,
			     "the bundle in the store is not the service's (the store is damaged): "
			     "refused, its keys are not used for another");
			return;
		}
		tp_invocation_run(&inv, &out);
	}
	/* checked here, where the result is, before the worker is asked to hold it */
	if (out.have_result && out.result_size > o->max_result) {
		out.end = TP_END_FAILED;
		out.have_result = false;
		tp_invocation_free(&inv);
		tp_secret_free(keys, keys_size);
		send_outcome(sock, &out,
			     "the result is larger than the worker takes (--max-result)");
		tp_outcome_free(&out);
		return;
	}
	tp_invocation_free(&inv);
	tp_secret_free(keys, keys_size);
	send_outcome(sock, &out, NULL);
	tp_outcome_free(&out);
}

/* ---- the spawner's loop ---- */

static void reap(int flags)
{
	while (waitpid(-1, NULL, flags) > 0)
		;
}

static void spawner_loop(const struct tp_worker_run_opts *o, int ctl, pid_t worker)
{
	for (;;) {
		struct pollfd pfd = { .fd = ctl, .events = POLLIN };
		char byte;
		union {
			char buf[CMSG_SPACE(2 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = u.buf,
				      .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c;
		int fds[2] = { -1, -1 };
		ssize_t n;
		pid_t pid;

		pid_t spawner = getpid(); /* before the fork: the child's parent check */

		reap(WNOHANG);
		if (poll(&pfd, 1, 200) == 0)
			continue;
		n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* the worker is done: its invocations end (cancelled) first */
			break;
		c = CMSG_FIRSTHDR(&msg);
		if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(2 * sizeof(int)))
			memcpy(fds, CMSG_DATA(c), sizeof(fds));
		else
			continue;
		pid = fork();
		if (pid == 0) {
			sigset_t none;
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != spawner)
				_exit(0);
			close(ctl);
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGPIPE, SIG_DFL);
			run_child(o, fds[0], fds[1]);
			_exit(0);
		}
		if (pid < 0) {
			struct tp_outcome out = { .end = TP_END_INTERNAL };
			send_outcome(fds[0], &out, "the worker could not fork an invocation");
		}
		close(fds[0]);
		close(fds[1]);
	}
	(void)worker;
	reap(0);
}

int tp_worker_spawner_start(const struct tp_worker_run_opts *o, pid_t *pid, int *ctl)
{
	int sv[2];
	pid_t worker = getpid();

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	*pid = fork();
	if (*pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (*pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != worker)
			_exit(0);
		close(sv[0]);
		/* its own process group: a terminal's ^C is the worker's to handle (it stops
		 * the invocations by their sockets) */
		setpgid(0, 0);
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		prctl(PR_SET_NAME, "teepy-spawner");
		spawner_loop(o, sv[1], worker);
		_exit(0);
	}
	close(sv[1]);
	*ctl = sv[0];
	return 0;
}
