/* The spawner: a single-threaded process the worker forks before its HTTP threads
 * exist (a sandbox's spawn needs the only thread: runner.h). The worker hands it
 * each invocation as two descriptors over a socket (SCM_RIGHTS): the invocation's
 * own socket and a memfd describing the job; an invocation's process (forked for a
 * cold one; for a warm one, one forked ahead that serves job after job) opens the
 * data, calls the runner and writes the outcome to that socket. The
 * socket is also the run's cancel descriptor: when the worker shuts its side (the
 * client went away, the worker stops or dies) it reads as end of file, which stops
 * the run. Each level dies with its parent (PR_SET_PDEATHSIG): a worker killed with
 * SIGKILL leaves no sandboxed process behind. The worker also asks it for a
 * service's public key for sealed invocations ('K', a reply socket and a memfd
 * describing the request); the key pairs are the spawner's alone (below). */
#include "worker.h"

#include "sealed.h"

#include "../common/io.h"
#include "../common/limits.h"
#include "../common/seen.h"
#include "../crypto/crypto.h"
#include "../manifest/manifest.h"
#include "../manifest/trust.h"
#include "../channel/channel.h"
#include "../sandbox/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
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
	char service[TP_WORKER_ID_HEX];
	uint32_t data_count, service_data_count, bundle_path_len, env_count;
	uint8_t has_bundle_key;
	uint8_t app[32], signer[32]; /* the service's bundle's measurements */
	/* SHA-256 of the bundle's key: its zygote is the one started with that key */
	uint8_t bundle_key_hash[32];
	uint8_t sealed; /* the input is sealed to the service's key (sealed.h) */
	uint64_t input_size;
};

/* ---- the worker's side ---- */

static int put(int fd, const void *bytes, size_t size)
{
	return tp_write_full(fd, bytes, size);
}

/* size bytes into a socket's buffer at once, or -EPIPE: the spawner never waits on
 * a reader. */
static int send_now(int fd, const void *bytes, size_t size)
{
	return send(fd, bytes, size, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)size ? 0 : -EPIPE;
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
		.sealed = job->sealed,
		.input_size = job->input_size,
	};
	int memfd = memfd_create("teepy-job", MFD_CLOEXEC), sp[2] = { -1, -1 }, r = 0;

	if (memfd < 0)
		return -errno;
	snprintf(h.service, sizeof(h.service), "%s", job->service ? job->service : "");
	memcpy(h.app, job->app, 32);
	if (job->bundle_key)
		tp_sha256(job->bundle_key, 32, h.bundle_key_hash);
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
		/* the keys wait in the socket's buffer (kernel memory) for the child */
		if (job->bundle_key)
			r = put(sp[0], job->bundle_key, 32);
		for (size_t i = 0; r == 0 && i < job->data_count; i++)
			r = put(sp[0], job->data_keys[i], 32);
		if (r == 0)
			r = tp_send_fds(ctl, "J", 1, (int[]){ sp[1], memfd }, 2, 0);
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

/* The largest sealed answer of a result of max_result bytes: the answer's JSON of the
 * result (or the message) and the log, each byte at most six there (\u0000), sealed;
 * no larger than there are bytes. */
static uint64_t sealed_max(uint64_t max_result)
{
	uint64_t m = max_result > 1024 ? max_result : 1024;

	if (m > (UINT64_MAX - 8192) / 6 - TP_WORKER_LOG_MAX)
		return UINT64_MAX;
	return 6 * (m + TP_WORKER_LOG_MAX) + 4096 + TP_SEAL_OVERHEAD;
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
	if (o->result_size > (o->sealed ? sealed_max(max_result) : max_result))
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

/* ---- a job as the spawner reads it ---- */

struct parsed_job {
	int memfd; /* the job's, kept open while the job is (its mapping is) */
	uint8_t *map;
	size_t map_size;
	const struct job_head *h;
	char bundle[PATH_MAX];
	char **data_paths;
	char **env;
	const char *input;
	uint8_t *keys; /* locked: the bundle's key (if any), then each item's */
	size_t keys_size;
	const uint8_t *bundle_key;
	struct tp_x25519 *sealing; /* a sealed job's: the service's key pair (a copy) */
	/* a sealed job's task data ids, as their bytes hash (open_data), for its aad */
	char (*task_ids)[64];
};

static void job_free(struct parsed_job *j)
{
	for (size_t i = 0; j->data_paths && j->data_paths[i]; i++)
		free(j->data_paths[i]);
	free(j->data_paths);
	for (size_t i = 0; j->env && j->env[i]; i++) {
		explicit_bzero(j->env[i], strlen(j->env[i]));
		free(j->env[i]);
	}
	free(j->env);
	if (j->keys)
		tp_secret_free(j->keys, j->keys_size);
	tp_x25519_free(j->sealing);
	free(j->task_ids);
	if (j->map)
		munmap(j->map, j->map_size);
	if (j->memfd >= 0)
		close(j->memfd);
	memset(j, 0, sizeof(*j));
	j->memfd = -1;
}

/* A length-prefixed string at *p (before end), as a new string. */
static char *take_string(const uint8_t **p, const uint8_t *end)
{
	uint32_t len;
	char *s;

	if ((size_t)(end - *p) < sizeof(len))
		return NULL;
	memcpy(&len, *p, sizeof(len));
	if ((size_t)(end - *p) - sizeof(len) < len || !(s = strndup((const char *)*p + 4, len)))
		return NULL;
	*p += sizeof(len) + len;
	return s;
}

/* The job's memfd (its keys are read_keys's). Returns 0, or -1 with the line for the
 * outcome in err. */
static int parse_job(int memfd, struct parsed_job *j, const char **err)
{
	struct stat st;
	const uint8_t *p, *end;

	memset(j, 0, sizeof(*j));
	j->memfd = memfd;
	*err = "a malformed job";
	if (fstat(memfd, &st) < 0 || (size_t)st.st_size < sizeof(*j->h) ||
	    (j->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0)) ==
		MAP_FAILED) {
		j->map = NULL;
		*err = "the job could not be read";
		return -1;
	}
	j->map_size = (size_t)st.st_size;
	j->h = (const struct job_head *)j->map;
	p = j->map + sizeof(*j->h);
	end = j->map + j->map_size;
	if (j->h->magic != JOB_MAGIC || j->h->bundle_path_len >= sizeof(j->bundle) ||
	    j->h->service_data_count > j->h->data_count ||
	    (size_t)(end - p) < j->h->bundle_path_len ||
	    memchr(j->h->service, '\0', sizeof(j->h->service)) == NULL)
		return -1;
	memcpy(j->bundle, p, j->h->bundle_path_len);
	j->bundle[j->h->bundle_path_len] = '\0';
	p += j->h->bundle_path_len;
	if (!(j->data_paths = calloc((size_t)j->h->data_count + 1, sizeof(char *))) ||
	    !(j->env = calloc((size_t)j->h->env_count + 1, sizeof(char *)))) {
		*err = "out of memory";
		return -1;
	}
	for (uint32_t i = 0; i < j->h->data_count; i++)
		if (!(j->data_paths[i] = take_string(&p, end)))
			return -1;
	for (uint32_t i = 0; i < j->h->env_count; i++)
		if (!(j->env[i] = take_string(&p, end)))
			return -1;
	if ((uint64_t)(end - p) != j->h->input_size)
		return -1;
	j->input = (const char *)p;
	return 0;
}

/* The job's keys, first on its socket, into locked memory. Returns 0, or -1 with the
 * line for the outcome in err. */
static int read_keys(int sock, struct parsed_job *j, const char **err)
{
	j->keys_size = ((size_t)j->h->has_bundle_key + j->h->data_count) * TP_SYMKEY_SIZE;
	if (j->keys_size && !(j->keys = tp_secret_alloc(j->keys_size))) {
		*err = "out of memory";
		return -1;
	}
	if (j->keys_size && tp_read_full(sock, j->keys, j->keys_size) < 0) {
		*err = "the job's keys could not be read";
		return -1;
	}
	j->bundle_key = j->h->has_bundle_key ? j->keys : NULL;
	return 0;
}

/* A sealed job's key pair, after its keys on a process's handover socket. Returns 0,
 * or -1 with the line for the outcome in err. */
static int read_sealing(int sock, struct parsed_job *j, const char **err)
{
	uint8_t *pair;

	if (!j->h->sealed)
		return 0;
	if (!(pair = tp_secret_alloc(TP_X25519_PAIR_SIZE))) {
		*err = "out of memory";
		return -1;
	}
	if (tp_read_full(sock, pair, TP_X25519_PAIR_SIZE) == 0)
		j->sealing = tp_x25519_import(pair);
	tp_secret_free(pair, TP_X25519_PAIR_SIZE);
	if (!j->sealing) {
		*err = "the job's sealing key could not be read";
		return -1;
	}
	return 0;
}

/* ---- one invocation's process ---- */

/* A sealed job's call (docs/api.md, "Confidential invocation"): its input opened, in
 * locked memory (the client's reply key, then the input), and what its answer is
 * sealed with. */
struct sealed_call {
	uint8_t *plain;
	size_t plain_size;
	uint8_t reply[TP_X25519_SIZE];
	uint8_t aad[TP_SEALED_ANSWER_AAD];
};

static void outcome_head(const struct tp_outcome *out, const char *message, bool warm,
			 struct tp_worker_outcome *head)
{
	struct tp_worker_outcome o = {
		.magic = TP_WORKER_OUTCOME_MAGIC,
		.end = (int32_t)out->end,
		.cpu_ms = out->usage.cpu_ms,
		.peak_memory_bytes = out->usage.peak_memory_bytes,
		.wall_ms = out->usage.wall_ms,
		.have_result = out->have_result && !out->result_incomplete && out->result,
		.log_truncated = out->log_dropped > 0,
		.warm = warm,
		.log_size = out->log && out->log_size <= TP_WORKER_LOG_MAX ? out->log_size : 0,
	};

	snprintf(o.message, sizeof(o.message), "%s", message ? message : out->message);
	o.result_size = o.have_result ? out->result_size : 0;
	*head = o;
}

static void send_outcome(int sock, const struct tp_outcome *out, const char *message, bool warm)
{
	struct tp_worker_outcome o;

	outcome_head(out, message, warm, &o);
	if (put(sock, &o, sizeof(o)) == 0 &&
	    (!o.result_size || put(sock, out->result, (size_t)o.result_size) == 0) && o.log_size)
		put(sock, out->log, o.log_size);
}

static void fail(int sock, enum tp_end end, const char *message)
{
	struct tp_outcome out = { .end = end };
	send_outcome(sock, &out, message, false);
}

/* The answer an unsealed call would get, sealed to the client: the worker is sent
 * its end, usage and the sealed bytes only. */
static void send_sealed(int sock, const struct tp_outcome *out, const char *message, bool warm,
			const struct sealed_call *sc)
{
	struct tp_worker_answer plain = { 0 };
	struct tp_worker_outcome o;
	uint8_t *sealed = NULL;
	int r = -ENOMEM;

	/* what jansson holds from here (the answer's strings) is the client's */
	json_set_alloc_funcs(malloc, tp_free_wiped);
	outcome_head(out, message, warm, &o);
	tp_worker_outcome_answer(&o, out->result, out->log, &plain);
	if (plain.body && (sealed = malloc(plain.size + TP_SEAL_OVERHEAD)))
		r = tp_seal(sc->reply, sc->aad, sizeof(sc->aad), plain.body, plain.size, sealed);
	if (plain.body) {
		explicit_bzero(plain.body, plain.size);
		free(plain.body);
	}
	if (r < 0) { /* out of memory: its reply key was held to be one (open_sealed) */
		free(sealed);
		fail(sock, TP_END_INTERNAL, "out of memory to seal the answer");
		return;
	}
	/* the kind the sealed answer says (a run that ended well without a result is
	 * no_result there), for the worker's status and log */
	if (o.end == TP_END_RESULT && plain.status != 200)
		o.end = TP_END_NO_RESULT;
	o.sealed = 1;
	o.have_result = 1;
	o.result_size = plain.size + TP_SEAL_OVERHEAD;
	o.log_size = 0;
	o.log_truncated = 0;
	memset(o.message, 0, sizeof(o.message));
	if (put(sock, &o, sizeof(o)) == 0)
		put(sock, sealed, (size_t)o.result_size);
	free(sealed);
}

/* A sealed job's input opened with the service's key into sc (the service's name
 * and the task data's ids bound), the key dropped. Returns 0, or -1 with the outcome
 * sent. */
static int open_sealed(int sock, struct parsed_job *j, struct sealed_call *sc)
{
	size_t size = (size_t)j->h->input_size, aad_size;
	uint32_t n = j->h->data_count - j->h->service_data_count;
	uint8_t *aad = NULL, probe[TP_SEAL_OVERHEAD];
	int r = -1;

	if (strlen(j->h->service) != 64 || size < TP_SEAL_OVERHEAD + TP_X25519_SIZE ||
	    (n && !j->task_ids)) {
		fail(sock, TP_END_INTERNAL, "a malformed sealed job");
		goto out;
	}
	aad_size = TP_SEALED_INPUT_AAD + (size_t)n * 64;
	sc->plain_size = size - TP_SEAL_OVERHEAD;
	if (!(aad = malloc(aad_size)) || !(sc->plain = tp_secret_alloc(sc->plain_size))) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		goto out;
	}
	tp_sealed_input_aad(j->h->service, (const char(*)[64])j->task_ids, n, aad);
	if (!j->sealing || tp_seal_open(j->sealing, aad, aad_size, (const uint8_t *)j->input, size,
					sc->plain) < 0) {
		fail(sock, TP_END_KEY_MISSING,
		     "the sealed input does not open with the service's key (sealed to an "
		     "earlier key of this worker, to another service or task data, or changed): "
		     "ask for its evidence again");
		goto out;
	}
	memcpy(sc->reply, sc->plain, TP_X25519_SIZE);
	/* a reply key no one holds is refused before the service sees the input */
	if ((r = tp_seal(sc->reply, NULL, 0, "", 0, probe)) < 0) {
		fail(sock, r == -EINVAL ? TP_END_CONFIG : TP_END_INTERNAL,
		     r == -EINVAL ? "the sealed input's reply key is not a key anyone holds" :
				    "out of memory");
		r = -1;
		goto out;
	}
	tp_sealed_answer_aad(j->input, size, sc->aad);
	r = 0;
out:
	tp_x25519_free(j->sealing);
	j->sealing = NULL;
	free(aad);
	return r;
}

static void sealed_call_free(struct sealed_call *sc)
{
	if (sc->plain)
		tp_secret_free(sc->plain, sc->plain_size);
	memset(sc, 0, sizeof(*sc));
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

/* The id of the item open on fd: SHA-256 of its bytes, in hex, as the store named
 * it at upload. Returns 0 or -errno. */
static int item_id(int fd, uint64_t size, char id[64])
{
	struct tp_sha256 *h = tp_sha256_new();
	char *buf = malloc(1 << 20), hex[2 * TP_SHA256_SIZE + 1];
	uint8_t digest[TP_SHA256_SIZE];
	uint64_t at = 0;
	int r = h && buf ? 0 : -ENOMEM;

	while (r == 0 && at < size) {
		ssize_t got = pread(fd, buf, 1 << 20, (off_t)at);
		if (got <= 0)
			r = got < 0 ? -errno : -EIO;
		else {
			tp_sha256_update(h, buf, (size_t)got);
			at += (uint64_t)got;
		}
	}
	if (h)
		tp_sha256_final(h, digest);
	free(buf);
	if (r == 0) {
		tp_hex(digest, sizeof(digest), hex);
		memcpy(id, hex, 64);
	}
	return r;
}

/* The job's data items, unsealed into memfds (fds, data_count of them); for a sealed
 * job each task item's id as its bytes hash, read from the descriptor it is unsealed
 * from (another file put at its name is another id: the input does not open).
 * Returns 0, or -1 with the outcome sent. */
static int open_data(int sock, struct parsed_job *j, int *fds)
{
	char err[512], line[1024];

	if (j->h->sealed &&
	    !(j->task_ids = calloc((size_t)(j->h->data_count - j->h->service_data_count) + 1,
				   sizeof(*j->task_ids)))) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < j->h->data_count; i++) {
		const char *path = j->data_paths[i], *name = strrchr(path, '/');
		struct stat st;
		int fd, plain;
		name = name ? name + 1 : path;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0 ||
		    (j->h->sealed && i >= j->h->service_data_count &&
		     (errno = -item_id(fd, (uint64_t)st.st_size,
				       j->task_ids[i - j->h->service_data_count])) != 0)) {
			snprintf(line, sizeof(line), "data item %.80s: %s (the store is damaged)",
				 name, strerror(errno));
			if (fd >= 0)
				close(fd);
			fail(sock, TP_END_REFUSED, line);
			return -1;
		}
		plain =
		    tp_data_unseal(fd, (uint64_t)st.st_size,
				   j->keys + ((size_t)j->h->has_bundle_key + i) * TP_SYMKEY_SIZE,
				   err, sizeof(err));
		close(fd);
		if (plain < 0) {
			snprintf(line, sizeof(line), "data item %.80s: %.512s", name, err);
			fail(sock, plain == -ENOMEM ? TP_END_INTERNAL : TP_END_REFUSED, line);
			return -1;
		}
		fds[i] = plain;
	}
	return 0;
}

/* What every run of a job's bundle shares: a cold invocation's and a zygote's. */
static struct tp_run_config bundle_config(const struct tp_worker_run_opts *o,
					  const struct parsed_job *j)
{
	struct tp_run_config cfg = {
		.script = j->bundle,
		.is_bundle = true,
		.input_name = "the request's input",
		.limits = tp_limits_default(),
		.limits_given = TP_LIMIT_TIMEOUT | TP_LIMIT_LOG,
		.env = (const char *const *)j->env,
		.trust_paths = o->trust_paths,
		.trust_source = "--trust",
		.bundle_key = j->bundle_key,
		.no_cache = o->no_cache,
		.cache_max_bytes = TP_CACHE_MAX_DEFAULT,
		.cache_dir = o->cache_dir,
		.runtime_dir = o->runtime_dir,
		.cancel_fd = -1,
	};
	cfg.limits.timeout_ms = o->timeout_ms;
	cfg.limits.log_max_bytes = TP_WORKER_LOG_MAX;
	return cfg;
}

/* The outcome to the worker (sealed to the client with sc), a result over
 * --max-result refused here, where it is, before the worker is asked to hold it. */
static void answer(const struct tp_worker_run_opts *o, int sock, struct tp_outcome *out, bool warm,
		   const struct sealed_call *sc)
{
	const char *message = NULL;

	if (out->have_result && out->result_size > o->max_result) {
		out->end = TP_END_FAILED;
		out->have_result = false;
		message = "the result is larger than the worker takes (--max-result)";
	}
	if (!sc->plain) {
		send_outcome(sock, out, message, warm);
		return;
	}
	send_sealed(sock, out, message, warm, sc);
	if (out->result)
		explicit_bzero(out->result, out->result_size);
	if (out->log)
		explicit_bzero(out->log, out->log_size);
}

/* A request's data items closed (an invocation's process serves more than one). */
static void request_done(const int *fds, uint32_t count)
{
	for (uint32_t i = 0; fds && i < count; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free((void *)fds);
}

/* The run of one request: the bundle's config with the input (a sealed one's size:
 * open_input opens it), the data items unsealed and the socket as the cancel.
 * Returns 0, or -1 with the outcome sent. */
static int request_config(const struct tp_worker_run_opts *o, int sock, struct parsed_job *j,
			  struct tp_run_config *cfg)
{
	int *fds = calloc((size_t)j->h->data_count + 1, sizeof(int));

	if (!fds) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < j->h->data_count; i++)
		fds[i] = -1;
	if (open_data(sock, j, fds) < 0) {
		request_done(fds, j->h->data_count);
		return -1;
	}
	*cfg = bundle_config(o, j);
	cfg->input = j->h->sealed ? NULL : j->input;
	cfg->input_size = j->h->sealed && j->h->input_size >= TP_SEAL_OVERHEAD + TP_X25519_SIZE ?
			      j->h->input_size - TP_SEAL_OVERHEAD - TP_X25519_SIZE :
			      j->h->input_size;
	cfg->data_fds = fds;
	cfg->data_count = j->h->data_count;
	cfg->service_data_count = j->h->service_data_count;
	cfg->cancel_fd = sock;
	return 0;
}

/* A sealed job's input opened into sc and given to cfg. Returns 0, or -1 with the
 * outcome sent. */
static int open_input(int sock, struct parsed_job *j, struct sealed_call *sc,
		      struct tp_run_config *cfg)
{
	if (!j->h->sealed)
		return 0;
	if (open_sealed(sock, j, sc) < 0)
		return -1;
	cfg->input = (const char *)sc->plain + TP_X25519_SIZE;
	return 0;
}

static void run_cold(const struct tp_worker_run_opts *o, int sock, struct parsed_job *j)
{
	struct sealed_call sc = { 0 };
	struct tp_outcome out;
	struct tp_invocation inv;
	struct tp_run_config cfg;

	if (request_config(o, sock, j, &cfg) < 0)
		return;
	if (tp_invocation_open(&cfg, &inv, &out) == 0) {
		if (!same_bundle(&inv.bundle, j->h)) {
			tp_outcome_free(&out);
			tp_invocation_free(&inv);
			fail(sock, TP_END_REFUSED,
			     "the bundle in the store is not the service's (the store is damaged): "
			     "refused, its keys are not used for another");
			return;
		}
		/* the input opened for the bundle the service's key was made for only */
		if (open_input(sock, j, &sc, &cfg) < 0) {
			tp_outcome_free(&out);
			tp_invocation_free(&inv);
			sealed_call_free(&sc);
			return;
		}
		/* the service's key dropped: a process the sandbox's id maps can be written
		 * for (an unprivileged worker's) */
		prctl(PR_SET_DUMPABLE, 1);
		tp_invocation_run(&inv, &out);
	}
	tp_invocation_free(&inv);
	answer(o, sock, &out, false, &sc);
	tp_outcome_free(&out);
	sealed_call_free(&sc);
}

/* ---- zygotes (docs/zygote.md) ---- */

#define ZYGOTE_POOL_MAX	    16
#define ZYGOTE_RESTART_S    10 /* a zygote that died is not started again sooner */
#define ZYGOTE_READY_MAX_S  120
#define ZYGOTE_FAILURES_MAX 3	 /* children in a row that die before their HELLO */
#define ZYGOTE_WAITING_MAX  64	 /* jobs waiting for one zygote's children; beyond: cold */
#define ZYGOTE_WAIT_MAX_MS  3000 /* a job waits no longer for a child: then cold */
#define IDLE_MAX	    2	 /* invocation processes forked ahead */
#define IDLE_KEEP	    16	 /* invocation processes kept for more jobs once done */
#define IDLE_JOBS_MAX	    1000 /* jobs one invocation process serves, then it ends */
#define HANDOVER_MAGIC	    0x74706831u

/* What a zygote's keeper tells the spawner once its run is planned. */
struct zygote_info {
	struct tp_limits limits;	/* the service's, for each child */
	struct tp_limits_state enforce; /* the zygote's own */
	/* the bundle's policy lets the service start processes, which a child of a
	 * zygote may not: its keeper ran nothing */
	bool processes;
};

/* A child forked, then (once its HELLO came) placed and ready. */
struct zkid {
	uint32_t token;
	struct tp_zygote_child c;
	bool placed;
};

enum zstate { Z_STARTING, Z_READY, Z_REFUSED, Z_DEAD };

/* A job waiting for a child of its service's zygote. */
struct waiting {
	struct parsed_job j;
	int sock;
	struct timespec since;
};

struct zygote {
	bool used;
	uint8_t key[32]; /* the service, its bundle, keys and env */
	char service[TP_WORKER_ID_HEX];
	enum zstate state;
	pid_t keeper;
	int sock; /* the zygote's fork requests and notes */
	int info; /* the keeper's zygote_info */
	int stop; /* closed: the keeper's run is cancelled */
	bool have_info;
	struct zygote_info zi;
	struct zkid kids[ZYGOTE_POOL_MAX]; /* forked for the pool: placed or waiting */
	size_t kid_count;
	time_t started, last_used, died;
	unsigned running; /* its children serving invocations */
	unsigned failures;
	struct waiting waiting[ZYGOTE_WAITING_MAX];
	size_t wait_count;
};

/* A service's key pair for sealed invocations, for its app and signer: named by
 * SHA-256 of the service id, its NUL, app and signer; the service id kept to drop
 * it with the service. */
struct sealing_key {
	uint8_t name[32];
	char service[TP_WORKER_ID_HEX];
	uint8_t pair[TP_X25519_PAIR_SIZE];
};
#define SEALING_KEYS_MAX 4096 /* beyond, the least used is dropped (its clients ask again) */

struct spawner {
	const struct tp_worker_run_opts *o;
	struct zygote *z; /* o->zygotes of them */
	/* the invocation processes of warm starts, for each zygote's running count;
	 * sock: the one a process forked ahead was handed its job on (-1: forked for
	 * it), where it says it is done; child: the zygote's child it serves (its
	 * pidfd and cgroups), ended and removed here if the process ends first */
	struct {
		pid_t pid;
		struct zygote *z;
		int sock;
		struct tp_zygote_child *child;
	} * procs;
	size_t proc_count, proc_cap;
	uint32_t next_token; /* a child's name, its scratch's too: one of the worker's */
	int ctl;	     /* the worker's socket */
	/* invocation processes forked ahead for warm starts, or done with a job, each
	 * waiting for its next */
	struct {
		pid_t pid;
		int sock;
	} idle[IDLE_KEEP];
	size_t idle_count;
	/* sealed invocations: each service's key pair, made at its first evidence, in
	 * one mapping (sealing_table) that no fork inherits */
	struct sealing_key *keys;
	size_t key_count;
	bool keys_wiped_on_fork;
	/* the sealed inputs seen, by their ephemeral public keys (random for each one
	 * sealed): the last SEEN_MAX */
	struct tp_seen seen;
};

static void zkey_of(const struct parsed_job *j, uint8_t key[32])
{
	struct tp_sha256 *h = tp_sha256_new();

	if (!h) {
		memset(key, 0, 32);
		return;
	}
	tp_sha256_update(h, j->h->service, strlen(j->h->service) + 1);
	tp_sha256_update(h, j->bundle, strlen(j->bundle) + 1);
	tp_sha256_update(h, j->h->app, 32);
	tp_sha256_update(h, j->h->signer, 32);
	tp_sha256_update(h, &j->h->has_bundle_key, 1);
	tp_sha256_update(h, j->h->bundle_key_hash, 32);
	for (size_t i = 0; j->env[i]; i++)
		tp_sha256_update(h, j->env[i], strlen(j->env[i]) + 1);
	tp_sha256_final(h, key);
}

static void keeper_planned(void *observer, const struct tp_invocation *inv)
{
	struct zygote_info zi = { .limits = inv->limits, .enforce = inv->enforce };

	zi.limits.memory_bytes = inv->enforce.set.memory_bytes;
	(void)!write(*(int *)observer, &zi, sizeof(zi));
}

/* A bundle whose policy lets it start processes stays cold: said before anything
 * of it runs. */
static bool keeper_refuses(int info, const struct tp_invocation *inv)
{
	struct zygote_info zi = { .processes = true };

	if (inv->bundle.manifest.processes != TP_PROCESSES_MANIFEST)
		return false;
	(void)!write(info, &zi, sizeof(zi));
	return true;
}

/* The zygote's keeper: the service's run, booted as a zygote. */
static void run_keeper(const struct tp_worker_run_opts *o, const struct parsed_job *j, int zsock,
		       int info, int stop)
{
	struct tp_outcome out;
	struct tp_invocation inv;
	struct tp_run_config cfg = bundle_config(o, j);

	cfg.zygote = true;
	cfg.handed_fds = &zsock;
	cfg.handed_count = 1;
	cfg.cancel_fd = stop;
	cfg.observer = &info;
	cfg.on_planned = keeper_planned;
	if (tp_invocation_open(&cfg, &inv, &out) == 0 && same_bundle(&inv.bundle, j->h) &&
	    !keeper_refuses(info, &inv))
		tp_invocation_run(&inv, &out);
	tp_invocation_free(&inv);
	tp_outcome_free(&out);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* This process's descriptors of a child, closed (the child goes on: another process
 * holds them, or the caller ends it). */
static void zkid_drop_fds(struct tp_zygote_child *c)
{
	close_fd(&c->pidfd);
	close_fd(&c->channel_fd);
	close_fd(&c->out_fd);
	close_fd(&c->status_fd);
}

/* A child ended: killed, its descriptors closed, its cgroups removed (once it is
 * gone: it may still be ending, its run answered at its EXIT). */
static void zkid_close(struct zkid *k)
{
	struct tp_zygote_child *c = &k->c;

	if (c->pidfd >= 0) {
		struct pollfd p = { .fd = c->pidfd, .events = POLLIN };
		syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		if (k->placed)
			poll(&p, 1, 2000);
	}
	zkid_drop_fds(c);
	if (k->placed)
		tp_limits_cleanup(&c->enforce);
	memset(k, 0, sizeof(*k));
}

/* The spawner's copy of a child an invocation's process serves (procs[].child), let
 * go: its pidfd closed, the child left to that process. */
static void kept_child_free(struct tp_zygote_child *c)
{
	if (c)
		close_fd(&c->pidfd);
	free(c);
}

static void zygote_stop(struct zygote *z, enum zstate state)
{
	/* all killed first: each is then waited for as it ends, not one after another */
	for (size_t i = 0; i < z->kid_count; i++)
		if (z->kids[i].c.pidfd >= 0)
			syscall(SYS_pidfd_send_signal, z->kids[i].c.pidfd, SIGKILL, NULL, 0);
	for (size_t i = 0; i < z->kid_count; i++)
		zkid_close(&z->kids[i]);
	z->kid_count = 0;
	if (z->sock >= 0)
		close(z->sock);
	if (z->info >= 0)
		close(z->info);
	if (z->stop >= 0) {
		/* the keeper's run is cancelled: the sandbox ends, a preload that never
		 * ended included */
		(void)!write(z->stop, "x", 1);
		close(z->stop);
	}
	z->sock = z->info = z->stop = -1;
	z->state = state;
	z->died = time(NULL);
}

static void child_setup(int ctl)
{
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(ctl);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
}

/* In an invocation's process: nothing of the spawner's but its own job is kept (other
 * jobs' sockets and keys, zygotes' sockets, pooled children). */

static void drop_others(struct spawner *s)
{
	for (unsigned i = 0; i < s->o->zygotes; i++) {
		struct zygote *z = &s->z[i];
		for (size_t w = 0; w < z->wait_count; w++) {
			close(z->waiting[w].sock);
			job_free(&z->waiting[w].j);
		}
		z->wait_count = 0;
		for (size_t k = 0; k < z->kid_count; k++)
			zkid_drop_fds(&z->kids[k].c);
		z->kid_count = 0;
		close_fd(&z->sock);
		close_fd(&z->info);
		close_fd(&z->stop);
	}
	for (size_t i = 0; i < s->idle_count; i++)
		close_fd(&s->idle[i].sock);
	s->idle_count = 0;
	for (size_t i = 0; i < s->proc_count; i++) {
		close_fd(&s->procs[i].sock);
		kept_child_free(s->procs[i].child);
	}
	s->proc_count = 0;
	/* its job holds its own copy; the table is zeros here already where the kernel
	 * wipes it on fork */
	if (s->keys && !s->keys_wiped_on_fork)
		explicit_bzero(s->keys, s->key_count * sizeof(*s->keys));
	s->key_count = 0;
}

/* In a keeper: of its first job, only what the service's run needs (the bundle, its
 * key, the env): the input, the data items' keys and the memfd go; the bundle's key
 * moves to memory locked here (a fork does not inherit a lock). */
static void keep_what_a_keeper_needs(struct parsed_job *j)
{
	static struct job_head head;
	uint8_t *key = NULL;

	head = *j->h;
	if (j->bundle_key && (key = tp_secret_alloc(TP_SYMKEY_SIZE)))
		memcpy(key, j->bundle_key, TP_SYMKEY_SIZE);
	if (j->keys)
		explicit_bzero(j->keys, j->keys_size);
	tp_x25519_free(j->sealing);
	j->sealing = NULL;
	munmap(j->map, j->map_size);
	close(j->memfd);
	j->map = NULL;
	j->memfd = -1;
	j->h = &head;
	j->input = NULL;
	j->bundle_key = key;
}

static void zygote_start(struct spawner *s, struct zygote *z, struct parsed_job *j,
			 const uint8_t key[32])
{
	int zs[2] = { -1, -1 }, info[2] = { -1, -1 }, stop[2] = { -1, -1 };
	pid_t spawner = getpid();

	/* invocations of a zygote this slot held before may still run: counted on */
	unsigned running = z->running;

	memset(z, 0, sizeof(*z));
	z->running = running;
	z->used = true;
	memcpy(z->key, key, 32);
	snprintf(z->service, sizeof(z->service), "%s", j->h->service);
	z->sock = z->info = z->stop = -1;
	z->started = z->last_used = time(NULL);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, zs) < 0 ||
	    pipe2(info, O_CLOEXEC) < 0 || pipe2(stop, O_CLOEXEC) < 0)
		goto failed;
	z->keeper = fork();
	if (z->keeper == 0) {
		if (getppid() != spawner)
			_exit(0);
		child_setup(s->ctl);
		drop_others(s);
		prctl(PR_SET_NAME, "teepy-zygote");
		close(zs[0]);
		close(info[0]);
		close(stop[1]);
		keep_what_a_keeper_needs(j);
		/* nothing of the spawner's is left: the sandbox's id maps can be written for
		 * its zygote (the spawner is not dumpable: tp_worker_spawner_start) */
		prctl(PR_SET_DUMPABLE, 1);
		run_keeper(s->o, j, zs[1], info[1], stop[0]);
		_exit(0);
	}
	if (z->keeper < 0)
		goto failed;
	close(zs[1]);
	close(info[1]);
	close(stop[0]);
	z->sock = zs[0];
	z->info = info[0];
	z->stop = stop[1];
	z->state = Z_STARTING;
	return;
failed:
	for (int i = 0; i < 2; i++) {
		if (zs[i] >= 0)
			close(zs[i]);
		if (info[i] >= 0)
			close(info[i]);
		if (stop[i] >= 0)
			close(stop[i]);
	}
	z->state = Z_DEAD;
	z->died = time(NULL);
}

/* TEEPY_ZYGOTE_FLOOR=N (bench/worker): a ready zygote first measures its fork floor
 * with N children, said on the worker's stderr. */
static void zygote_floor_ask(struct zygote *z)
{
	const char *env = getenv("TEEPY_ZYGOTE_FLOOR");
	unsigned long count = env ? strtoul(env, NULL, 10) : 0;
	struct tp_zygote_fork req = { .magic = TP_ZYGOTE_FORK_MAGIC,
				      .floor = count > 100000 ? 100000 : (uint32_t)count };
	int none = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (req.floor && none >= 0)
		tp_send_fds(z->sock, &req, sizeof(req), &none, 1, MSG_DONTWAIT);
	if (none >= 0)
		close(none);
}

/* Asks the zygote for children until the pool is full. */
static void zygote_fill(struct spawner *s, struct zygote *z)
{
	while (z->state == Z_READY && z->kid_count < s->o->zygote_pool + z->wait_count &&
	       z->kid_count < ZYGOTE_POOL_MAX) {
		int ch[2] = { -1, -1 }, out[2] = { -1, -1 }, st[2] = { -1, -1 }, on = 1;
		struct tp_zygote_fork req = { .magic = TP_ZYGOTE_FORK_MAGIC,
					      .token = ++s->next_token,
					      .cpu_ms = z->zi.limits.cpu_ms };
		bool sent = false;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch) == 0 &&
		    pipe2(out, O_CLOEXEC) == 0 &&
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) == 0 &&
		    setsockopt(ch[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0)
			/* never blocked by a zygote that does not read its requests */
			sent = tp_send_fds(z->sock, &req, sizeof(req),
					   (int[]){ ch[1], out[1], st[1] }, 3, MSG_DONTWAIT) == 0;
		if (ch[1] >= 0)
			close(ch[1]);
		if (out[1] >= 0)
			close(out[1]);
		if (st[1] >= 0)
			close(st[1]);
		struct zkid *k = &z->kids[z->kid_count];
		*k = (struct zkid){ .token = req.token,
				    .c = { .pid = -1,
					   .pidfd = -1,
					   .channel_fd = ch[0],
					   .out_fd = out[0],
					   .status_fd = st[0] } };
		if (!sent) {
			zkid_close(k);
			zygote_stop(z, Z_DEAD);
			return;
		}
		z->kid_count++;
	}
}

/* Whether pid is in the cgroup of limits (its memory controller's; true without
 * one: then nothing to hold it to). */
static bool in_cgroup(pid_t pid, const struct tp_limits_state *limits)
{
	char path[64], line[1024];
	size_t dir = strlen(limits->memory_dir);
	bool in = false;
	FILE *f;

	if (!limits->memory_dir[0])
		return true;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (!(f = fopen(path, "re")))
		return false;
	while (!in && fgets(line, sizeof(line), f)) {
		/* "ID:CONTROLLERS:PATH": the memory hierarchy's, or v2's "0::" */
		char *controllers = strchr(line, ':'), *where;
		if (!controllers || !(where = strchr(controllers + 1, ':')))
			continue;
		*where++ = '\0';
		where[strcspn(where, "\n")] = '\0';
		size_t n = strlen(where);
		bool memory =
		    strcmp(controllers + 1, "") == 0 || strstr(controllers + 1, "memory") != NULL;
		in =
		    memory && n > 1 && n <= dir && strcmp(limits->memory_dir + dir - n, where) == 0;
	}
	fclose(f);
	return in;
}

/* A child's HELLO: its pid from the kernel's credentials of it, then its cgroups.
 * Returns 0 (placed), 1 (nothing yet), -1 (it is gone, or said something else), or
 * -2 (the spawner could not place it). */
static int zkid_place(struct zygote *z, struct zkid *k)
{
	struct tp_frame hello;
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &hello, .iov_len = sizeof(hello) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	struct ucred cred = { .pid = -1 };
	struct tp_cgroup_join join;
	const char *failed = NULL;
	int off = 0;

	ssize_t got = recvmsg(k->c.channel_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (got != sizeof(hello) || tp_frame_check(&hello) < 0 || hello.type != TP_FRAME_HELLO)
		return -1;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(cred)))
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	if (cred.pid <= 0 || cred.pid == z->keeper)
		return -1;
	setsockopt(k->c.channel_fd, SOL_SOCKET, SO_PASSCRED, &off, sizeof(off));
	k->c.pid = cred.pid;
	/* the pid is a number: pinned by a pidfd, then held to be one in the zygote's
	 * cgroup (a child waiting for its GO, not a process that took a dead one's pid) */
	if ((k->c.pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0)) < 0 ||
	    !in_cgroup(cred.pid, &z->zi.enforce))
		return -1;
	/* its own cgroups, with the service's limits; "processes" gives it a cpuacct
	 * cgroup of its own on v1 too (it cannot fork) */
	k->c.enforce = (struct tp_limits_state){ .set = z->zi.enforce.set, .processes = true };
	k->c.enforce.set.memory_bytes = z->zi.limits.memory_bytes;
	k->c.enforce.set.cpu_ms = z->zi.limits.cpu_ms;
	tp_limits_prepare(&k->c.enforce);
	k->placed = true;
	if (tp_limits_open_join(&k->c.enforce, &join) < 0)
		return -2;
	int r = tp_limits_join(&join, cred.pid, false, &failed);
	tp_limits_close_join(&join);
	return r < 0 ? -2 : 0;
}

/* What a child that died before its HELLO wrote: its first line, on the worker's
 * stderr. */
static void zkid_said(const struct zygote *z, struct zkid *k, int placed)
{
	char line[512] = "";
	struct pollfd out = { .fd = k->c.out_fd, .events = POLLIN };
	ssize_t n = 0;

	if (k->c.pidfd >= 0) /* never left to hold its output's pipe open */
		syscall(SYS_pidfd_send_signal, k->c.pidfd, SIGKILL, NULL, 0);
	if (placed == -1 && poll(&out, 1, 0) > 0)
		n = read(k->c.out_fd, line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	fprintf(stderr, "teepy-worker: service %.16s…: %s (%s): no warm starts for it\n",
		z->service,
		placed == -1 ? "its zygote's children end before they start" :
			       "its zygote's children cannot be placed in cgroups of their own",
		n > 0	     ? line :
		placed == -1 ? "they said nothing" :
			       strerror(errno));
}

/* The processes in the cgroup of limits (its memory controller's), 0 without one. */
static unsigned procs_in(const struct tp_limits_state *limits)
{
	char path[640], line[32];
	unsigned n = 0;
	FILE *f;

	if (!limits->memory_dir[0])
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", limits->memory_dir);
	if (!(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* The zygote's socket closed: its keeper's run ended, or never ran the zygote. */
static void zygote_gone(struct zygote *z)
{
	if (!z->have_info && read(z->info, &z->zi, sizeof(z->zi)) == sizeof(z->zi))
		z->have_info = true;
	if (z->have_info && z->zi.processes) {
		fprintf(stderr,
			"teepy-worker: service %.16s…: its policy lets it start processes, which "
			"an invocation forked from a zygote may not: no warm starts for it\n",
			z->service);
		zygote_stop(z, Z_REFUSED);
		return;
	}
	zygote_stop(z, Z_DEAD);
}

static void zygote_note_in(struct spawner *s, struct zygote *z)
{
	struct tp_zygote_note n;
	ssize_t got = recv(z->sock, &n, sizeof(n), MSG_DONTWAIT);

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got != sizeof(n) || n.magic != TP_ZYGOTE_NOTE_MAGIC) {
		zygote_gone(z);
		return;
	}
	n.message[sizeof(n.message) - 1] = '\0';
	if (n.kind == TP_ZYGOTE_READY && z->state == Z_STARTING) {
		/* its limits were written before the interpreter could start */
		if (!z->have_info && read(z->info, &z->zi, sizeof(z->zi)) == sizeof(z->zi))
			z->have_info = true;
		if (!z->have_info) {
			zygote_stop(z, Z_DEAD);
			return;
		}
		/* its cgroup holds its reaper and itself: a process the preload left (one
		 * the zygote cannot see, orphaned to the reaper) would live on beside its
		 * children */
		if (procs_in(&z->zi.enforce) > 2) {
			fprintf(stderr,
				"teepy-worker: service %.16s…: a preload module left a process "
				"running: no warm starts for this service\n",
				z->service);
			zygote_stop(z, Z_REFUSED);
			return;
		}
		z->state = Z_READY;
		zygote_floor_ask(z);
		zygote_fill(s, z);
	} else if (n.kind == TP_ZYGOTE_REFUSED) {
		fprintf(stderr, "teepy-worker: service %.16s…: %s\n", z->service, n.message);
		zygote_stop(z, Z_REFUSED);
	} else if (n.kind == TP_ZYGOTE_FLOOR) {
		double us = strtod(n.message, NULL);
		fprintf(stderr,
			"teepy-worker: service %.16s…: fork floor: %d children forked and reaped "
			"in %.1f ms, %.0f/s\n",
			z->service, (int)n.error, us / 1000, us > 0 ? n.error * 1e6 / us : 0);
	} else if (n.kind == TP_ZYGOTE_FORK_FAILED) {
		for (size_t i = 0; i < z->kid_count; i++)
			if (z->kids[i].token == n.token) {
				zkid_close(&z->kids[i]);
				z->kids[i] = z->kids[--z->kid_count];
				break;
			}
	}
}

/* A pooled child, placed and alive, taken out of its pool; NULL when none. */
static struct zkid *zygote_take(struct zygote *z, struct zkid *out)
{
	for (size_t i = 0; i < z->kid_count; i++) {
		struct zkid *k = &z->kids[i];
		struct pollfd gone = { .fd = k->c.pidfd, .events = POLLIN };
		if (!k->placed || k->c.pidfd < 0)
			continue;
		if (poll(&gone, 1, 0) != 0) { /* it died waiting */
			zkid_close(k);
			z->kids[i--] = z->kids[--z->kid_count];
			continue;
		}
		*out = *k;
		z->kids[i] = z->kids[--z->kid_count];
		return out;
	}
	return NULL;
}

static struct zygote *zygote_find(struct spawner *s, const uint8_t key[32])
{
	for (unsigned i = 0; i < s->o->zygotes; i++)
		if (s->z[i].used && memcmp(s->z[i].key, key, 32) == 0)
			return &s->z[i];
	return NULL;
}

/* A slot for a new zygote: a free one, else the one unused longest that serves no
 * invocation now (stopped). NULL when every one is busy. */
static struct zygote *zygote_slot(struct spawner *s)
{
	struct zygote *oldest = NULL;

	for (unsigned i = 0; i < s->o->zygotes; i++) {
		struct zygote *z = &s->z[i];
		if (!z->used)
			return z;
		if (z->running == 0 && z->wait_count == 0 &&
		    (!oldest || z->last_used < oldest->last_used))
			oldest = z;
	}
	if (oldest) {
		zygote_stop(oldest, Z_DEAD);
		oldest->used = false;
	}
	return oldest;
}

static void run_warm(const struct tp_worker_run_opts *o, int sock, struct parsed_job *j,
		     struct zkid *k, const struct zygote_info *zi)
{
	struct sealed_call sc = { 0 };
	struct tp_outcome out;
	struct tp_limits limits = zi->limits;
	struct tp_run_config cfg = { 0 };

	/* not dumpable, as the spawner it is a fork of: it holds the input's plaintext */
	if (request_config(o, sock, j, &cfg) < 0 || open_input(sock, j, &sc, &cfg) < 0) {
		request_done(cfg.data_fds, cfg.data_count);
		sealed_call_free(&sc);
		zkid_close(k);
		return;
	}
	limits.log_max_bytes = TP_WORKER_LOG_MAX;
	tp_zygote_child_run(&k->c, &cfg, &limits, &out);
	k->c.channel_fd = k->c.out_fd = -1; /* closed by the run */
	answer(o, sock, &out, true, &sc);
	tp_outcome_free(&out);
	sealed_call_free(&sc);
	request_done(cfg.data_fds, cfg.data_count);
	zkid_close(k);
}

/* ---- sealed invocations: the services' keys ----
 * (docs/api.md, "Confidential invocation"). A service's key pair is made the first
 * time its evidence is asked for and lives in this process's locked memory (not
 * dumpable) for the worker's life: the worker's HTTP process, which makes the
 * evidence, gets its public key only. A sealed job gets a copy of its service's, for
 * the app and signer it names; its invocation's process opens the input with it and
 * drops it at once (a cold start: once the bundle it opened measures so). */

#define KEY_ASK_MAGIC 0x74706b31u

/* A request for a service's public key, in the memfd that comes with it. */
struct key_ask {
	uint32_t magic;
	char service[TP_WORKER_ID_HEX];
	uint8_t app[32], signer[32];
};

static void sealing_name(const char *service, const uint8_t app[32], const uint8_t signer[32],
			 uint8_t name[32])
{
	uint8_t bytes[TP_WORKER_ID_HEX + 64];

	memset(bytes, 0, sizeof(bytes));
	snprintf((char *)bytes, TP_WORKER_ID_HEX, "%s", service);
	memcpy(bytes + TP_WORKER_ID_HEX, app, 32);
	memcpy(bytes + TP_WORKER_ID_HEX + 32, signer, 32);
	tp_sha256(bytes, sizeof(bytes), name);
}

/* The table of keys: SEALING_KEYS_MAX entries in one mapping, locked where the limit
 * allows, out of core dumps and wiped in every child the spawner forks
 * (MADV_WIPEONFORK, Linux 4.14; else drop_others wipes the child's copy). Returns
 * 0 or -ENOMEM. */
static int sealing_table(struct spawner *s)
{
	size_t size = SEALING_KEYS_MAX * sizeof(*s->keys);
	void *p;

	if (s->keys)
		return 0;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	madvise(p, size, MADV_DONTDUMP);
	s->keys_wiped_on_fork = madvise(p, size, MADV_WIPEONFORK) == 0;
	mlock(p, size);
	s->keys = p;
	return 0;
}

/* The key pair named so, or NULL; with make, a new one for service when there is
 * none. The one used goes last: the first is the one dropped when the table is
 * full. */
static const uint8_t *sealing_key(struct spawner *s, const char *service, const uint8_t name[32],
				  bool make)
{
	struct tp_x25519 *k;

	for (size_t i = 0; i < s->key_count; i++)
		if (memcmp(s->keys[i].name, name, 32) == 0) {
			struct sealing_key used = s->keys[i];
			memmove(&s->keys[i], &s->keys[i + 1],
				(s->key_count - i - 1) * sizeof(*s->keys));
			s->keys[s->key_count - 1] = used;
			explicit_bzero(&used, sizeof(used));
			return s->keys[s->key_count - 1].pair;
		}
	if (!make || sealing_table(s) < 0 || !(k = tp_x25519_generate()))
		return NULL;
	if (s->key_count == SEALING_KEYS_MAX) {
		memmove(&s->keys[0], &s->keys[1], --s->key_count * sizeof(*s->keys));
		explicit_bzero(&s->keys[s->key_count], sizeof(*s->keys));
	}
	struct sealing_key *e = &s->keys[s->key_count++];
	memcpy(e->name, name, 32);
	snprintf(e->service, sizeof(e->service), "%s", service);
	tp_x25519_export(k, e->pair);
	tp_x25519_free(k);
	return e->pair;
}

/* Every key pair of service dropped (it was deleted): an input sealed to one before
 * does not open for the service deployed again. */
static void sealing_forget(struct spawner *s, const char *service)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->key_count; i++)
		if (strcmp(s->keys[i].service, service) != 0)
			s->keys[kept++] = s->keys[i];
	if (kept < s->key_count)
		explicit_bzero(&s->keys[kept], (s->key_count - kept) * sizeof(*s->keys));
	s->key_count = kept;
}

/* ---- sealed inputs seen: a replay is refused ---- */

#define SEEN_MAX 65536u

/* Whether key was seen before (then it is now). Returns 1, 0, or -ENOMEM. */
static int seen_before(struct spawner *s, const uint8_t key[TP_X25519_SIZE])
{
	if (!s->seen.cap && tp_seen_init(&s->seen, SEEN_MAX) < 0)
		return -ENOMEM;
	return tp_seen_add(&s->seen, key);
}

/* A sealed job's copy of its service's key, its input not one seen before. Returns
 * 0, or -1 with the outcome sent. */
static int sealing_for_job(struct spawner *s, int sock, struct parsed_job *j)
{
	const uint8_t *pair;
	uint8_t name[32];
	int seen;

	if (!j->h->sealed)
		return 0;
	/* its first bytes are the ephemeral key tp_seal made for it (the worker took
	 * no sealed_input shorter) */
	if (j->h->input_size < TP_X25519_SIZE ||
	    (seen = seen_before(s, (const uint8_t *)j->input)) < 0) {
		fail(sock, TP_END_INTERNAL, "a malformed sealed job, or out of memory");
		return -1;
	}
	if (seen) {
		fail(sock, TP_END_KEY_MISSING,
		     "this sealed input was sent before (a replay): a client seals each "
		     "invocation anew");
		return -1;
	}
	sealing_name(j->h->service, j->h->app, j->h->signer, name);
	if (!(pair = sealing_key(s, j->h->service, name, false))) {
		fail(sock, TP_END_KEY_MISSING,
		     "this worker holds no key for the sealed input (it restarted since the "
		     "evidence, the service was deleted, or it was sealed for another service): "
		     "ask for its evidence again");
		return -1;
	}
	if (!(j->sealing = tp_x25519_import(pair))) {
		fail(sock, TP_END_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

/* Answers a key request on reply: the service's public key (made the first time),
 * or nothing when it cannot be made; or drops the service's keys (forget). Takes
 * reply and memfd. */
static void sealing_answer(struct spawner *s, int reply, int memfd, bool forget)
{
	struct key_ask a;
	const uint8_t *pair = NULL;
	uint8_t name[32];

	if (pread(memfd, &a, sizeof(a), 0) == (ssize_t)sizeof(a) && a.magic == KEY_ASK_MAGIC &&
	    memchr(a.service, '\0', sizeof(a.service))) {
		if (forget) {
			sealing_forget(s, a.service);
		} else {
			sealing_name(a.service, a.app, a.signer, name);
			pair = sealing_key(s, a.service, name, true);
		}
	}
	if (pair) /* the public half; the buffer has room */
		send_now(reply, pair + TP_X25519_SIZE, TP_X25519_SIZE);
	close(reply);
	close(memfd);
}

/* A key request ('K', or 'F' to forget) sent; its reply socket in *reply. */
static int key_request(int ctl, const char *tag, const char *service, const uint8_t app[32],
		       const uint8_t signer[32], int *reply)
{
	struct key_ask a = { .magic = KEY_ASK_MAGIC };
	int memfd = memfd_create("teepy-key", MFD_CLOEXEC), sp[2] = { -1, -1 }, r;

	*reply = -1;
	if (memfd < 0)
		return -errno;
	snprintf(a.service, sizeof(a.service), "%s", service);
	if (app)
		memcpy(a.app, app, 32);
	if (signer)
		memcpy(a.signer, signer, 32);
	r = put(memfd, &a, sizeof(a));
	if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		r = -errno;
	if (r == 0)
		r = tp_send_fds(ctl, tag, 1, (int[]){ sp[1], memfd }, 2, 0);
	close(memfd);
	if (sp[1] >= 0)
		close(sp[1]);
	if (r < 0 && sp[0] >= 0)
		close(sp[0]);
	else
		*reply = sp[0];
	return r;
}

int tp_worker_sealing_forget(int ctl, const char *service)
{
	int reply, r = key_request(ctl, "F", service, NULL, NULL, &reply);

	if (reply >= 0)
		close(reply);
	return r;
}

int tp_worker_sealing_key(int ctl, const char *service, const uint8_t app[32],
			  const uint8_t signer[32], uint8_t pubkey[TP_X25519_SIZE])
{
	struct pollfd pfd;
	int reply, r = key_request(ctl, "K", service, app, signer, &reply);

	pfd = (struct pollfd){ .fd = reply, .events = POLLIN };
	if (r == 0 && poll(&pfd, 1, TP_WORKER_KEY_WAIT_S * 1000) != 1)
		r = -ETIMEDOUT;
	if (r == 0 && tp_read_full(reply, pubkey, TP_X25519_SIZE) < 0)
		r = -ENOKEY; /* the spawner could not make one */
	if (reply >= 0)
		close(reply);
	return r;
}

/* ---- the spawner's loop ---- */

/* procs[i] is done with its job (alive: it said so), or gone: no longer running for
 * its zygote. One that said so waits for its next job, while there is room, else
 * ends (it reads its end of file). */
static void proc_done(struct spawner *s, size_t i, bool alive)
{
	struct tp_zygote_child *c = s->procs[i].child;

	if (c && !alive) { /* it ended on its own: it answered, or was killed mid-job */
		struct zkid k = { .c = *c, .placed = true };
		zkid_close(&k);
		free(c);
	} else {
		kept_child_free(c);
	}
	if (s->procs[i].z->running)
		s->procs[i].z->running--;
	if (alive && s->procs[i].sock >= 0 && s->idle_count < IDLE_KEEP) {
		s->idle[s->idle_count].pid = s->procs[i].pid;
		s->idle[s->idle_count++].sock = s->procs[i].sock;
	} else if (s->procs[i].sock >= 0) {
		close(s->procs[i].sock);
	}
	s->procs[i] = s->procs[--s->proc_count];
}

/* The invocation's process pid said it is done ('d'), or its socket closed (it
 * ended: reaped later). */
static void proc_said(struct spawner *s, pid_t pid)
{
	for (size_t i = 0; i < s->proc_count; i++) {
		if (s->procs[i].pid != pid || s->procs[i].sock < 0)
			continue;
		char byte;
		ssize_t got = recv(s->procs[i].sock, &byte, 1, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (got == 1 && byte == 'd') {
			proc_done(s, i, true);
		} else {
			close(s->procs[i].sock);
			s->procs[i].sock = -1;
		}
		return;
	}
}

static void reap(struct spawner *s, int flags)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, flags)) > 0) {
		for (size_t i = 0; i < s->proc_count; i++)
			if (s->procs[i].pid == pid) {
				proc_done(s, i, false);
				break;
			}
		for (size_t i = 0; i < s->idle_count; i++)
			if (s->idle[i].pid == pid) { /* its pid is no longer its own */
				close(s->idle[i].sock);
				s->idle[i] = s->idle[--s->idle_count];
				break;
			}
	}
}

/* ---- invocation processes forked ahead ----
 * A warm start's process is forked before its job comes (a fork of the spawner is
 * milliseconds here, most of them page faults) and serves one job after another;
 * it waits on its socket for each handover: this head with the job's socket and
 * memfd and the child's pidfd, channel, output and status (SCM_RIGHTS), then the
 * job's keys. */
struct handover {
	uint32_t magic;
	struct tp_zygote_child c; /* its pid and cgroups (the descriptors come apart) */
	struct zygote_info zi;
};

static void *idle_nothing(void *arg)
{
	return arg;
}

/* What a sealed job's run left on this process's stack, below the caller's frame
 * (the buffers that relayed the service's output and took its result from the
 * channel held them), wiped before the next job: WIPED_STACK bytes, past the
 * deepest a run goes (three 64 KiB buffers at most, in supervise, pump and
 * take_exit), well within the 8 MiB a main thread gets. */
#define WIPED_STACK (512u << 10)

static __attribute__((noinline)) void wipe_stack(void)
{
	uint8_t below[WIPED_STACK];

	explicit_bzero(below, sizeof(below));
	__asm__ volatile("" : : "r"(below) : "memory");
}

/* Serves jobs handed over on hs, one after another (at most IDLE_JOBS_MAX): after
 * each, what it held is wiped and closed, and it says so ('d'), but after its last:
 * then it ends, and its socket's end says so (no job is handed to it meanwhile). */
static void idle_serve(const struct tp_worker_run_opts *o, int hs)
{
	pthread_t t;

	/* a thread made and joined now: its stack stays cached for the run's watch */
	if (pthread_create(&t, NULL, idle_nothing, NULL) == 0)
		pthread_join(t, NULL);
	for (unsigned served = 0; served < IDLE_JOBS_MAX; served++) {
		struct handover h;
		struct parsed_job j;
		const char *err;
		int fds[6];

		ssize_t got;
		while ((got = tp_recv_fds(hs, &h, sizeof(h), fds, 6, 0)) == -EINTR)
			;
		if (got != (ssize_t)sizeof(h) || h.magic != HANDOVER_MAGIC)
			return; /* the spawner is gone, or done with this process */
		struct zkid k = { .c = h.c, .placed = true };
		k.c.pidfd = fds[2];
		k.c.channel_fd = fds[3];
		k.c.out_fd = fds[4];
		k.c.status_fd = fds[5];
		if (parse_job(fds[1], &j, &err) < 0 || read_keys(hs, &j, &err) < 0 ||
		    read_sealing(hs, &j, &err) < 0) {
			fail(fds[0], TP_END_INTERNAL, err);
			zkid_close(&k);
		} else {
			run_warm(o, fds[0], &j, &k, &h.zi);
		}
		bool sealed = j.h && j.h->sealed;
		job_free(&j);
		if (sealed)
			wipe_stack();
		close(fds[0]);
		if (served + 1 == IDLE_JOBS_MAX || send(hs, "d", 1, MSG_NOSIGNAL) != 1)
			return;
	}
}

/* Forks invocation processes ahead while a zygote is ready, up to IDLE_MAX. */
static void idle_fill(struct spawner *s)
{
	bool ready = false;

	for (unsigned i = 0; i < s->o->zygotes && !ready; i++)
		ready = s->z[i].used && s->z[i].state == Z_READY;
	while (ready && s->idle_count < IDLE_MAX) {
		int hs[2];
		pid_t spawner = getpid(), pid;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, hs) < 0)
			return;
		pid = fork();
		if (pid == 0) {
			if (getppid() != spawner)
				_exit(0);
			child_setup(s->ctl);
			drop_others(s);
			close(hs[0]);
			idle_serve(s->o, hs[1]);
			_exit(0);
		}
		close(hs[1]);
		if (pid < 0) {
			close(hs[0]);
			return;
		}
		s->idle[s->idle_count].pid = pid;
		s->idle[s->idle_count++].sock = hs[0];
	}
}

/* Hands a warm job to a process forked ahead. Returns its pid, with the socket it
 * was handed the job on in *hs_out (where it says it is done), or -1 (none, or it
 * is gone: the caller forks one). */
static pid_t handover(struct spawner *s, const struct parsed_job *j, int sock, struct zygote *z,
		      const struct zkid *k, int *hs_out)
{
	while (s->idle_count) {
		struct handover h = { .magic = HANDOVER_MAGIC, .c = k->c, .zi = z->zi };
		int hs = s->idle[--s->idle_count].sock;
		pid_t pid = s->idle[s->idle_count].pid;
		int fds[6] = { sock,	    j->memfd,	   k->c.pidfd, k->c.channel_fd,
			       k->c.out_fd, k->c.status_fd };
		uint8_t pair[TP_X25519_PAIR_SIZE];
		int r = tp_send_fds(hs, &h, sizeof(h), fds, 6, MSG_DONTWAIT);
		if (r == 0 && j->keys_size)
			r = send_now(hs, j->keys, j->keys_size);
		if (r == 0 && j->sealing) {
			tp_x25519_export(j->sealing, pair);
			r = send_now(hs, pair, sizeof(pair));
			explicit_bzero(pair, sizeof(pair));
		}
		if (r == 0) {
			*hs_out = hs;
			return pid;
		}
		close(hs);
		kill(pid, SIGKILL); /* reaped by the loop */
	}
	return -1;
}

/* An invocation's process: warm with k (a child of z), else cold. Takes the job and
 * its socket. */
static void launch(struct spawner *s, int ctl, struct parsed_job *j, int sock, struct zygote *z,
		   struct zkid *k)
{
	int hs = -1;
	pid_t spawner = getpid(), pid = k ? handover(s, j, sock, z, k, &hs) : -1;

	if (pid < 0)
		pid = fork();
	if (pid == 0) {
		if (getppid() != spawner)
			_exit(0);
		child_setup(ctl);
		drop_others(s);
		if (k)
			run_warm(s->o, sock, j, k, &z->zi);
		else
			run_cold(s->o, sock, j);
		_exit(0);
	}
	if (pid < 0) {
		struct tp_outcome out = { .end = TP_END_INTERNAL };
		send_outcome(sock, &out, "the worker could not fork an invocation", false);
	}
	if (k && pid < 0) {
		zkid_close(k);
	} else if (k) {
		/* the invocation's process has the child now, and removes its cgroups; the
		 * pidfd and the cgroups' names are kept, for the case it is killed first */
		struct tp_zygote_child *c = malloc(sizeof(*c));
		if (c) {
			*c = k->c;
			c->channel_fd = c->out_fd = c->status_fd = -1;
			k->c.pidfd = -1;
		}
		zkid_drop_fds(&k->c);
		if (s->proc_count < s->proc_cap) {
			s->procs[s->proc_count].pid = pid;
			s->procs[s->proc_count].child = c;
			s->procs[s->proc_count].sock = hs;
			s->procs[s->proc_count++].z = z;
			z->running++;
		} else {
			if (hs >= 0)
				close(hs); /* it ends once done */
			kept_child_free(c);
		}
	}
	close(sock);
	job_free(j);
}

/* The jobs waiting for z's children, from the first: to each child ready, or cold
 * (all of them: z is gone; those waiting too long: expired). */
static void zygote_serve_waiting(struct spawner *s, int ctl, struct zygote *z, bool all_cold)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	while (z->wait_count) {
		struct waiting *w = &z->waiting[0];
		struct zkid kid, *k = NULL;
		bool expired = (now.tv_sec - w->since.tv_sec) * 1000 +
				   (now.tv_nsec - w->since.tv_nsec) / 1000000 >=
			       ZYGOTE_WAIT_MAX_MS;

		if (!all_cold && !expired && !(k = zygote_take(z, &kid)))
			break;
		struct waiting taken = *w;
		memmove(&z->waiting[0], &z->waiting[1], --z->wait_count * sizeof(*w));
		launch(s, ctl, &taken.j, taken.sock, z, k);
	}
	zygote_fill(s, z);
}

/* One job: to a ready child of its service's zygote; else, while the zygote starts
 * or forks, it waits for one (a fork is much shorter than a cold start); cold when
 * there is no zygote for it (and one is started for the next). Takes sock and memfd. */
static void dispatch(struct spawner *s, int ctl, int sock, int memfd)
{
	const struct tp_worker_run_opts *o = s->o;
	struct parsed_job j;
	const char *err;
	struct zygote *z = NULL;
	struct zkid kid, *k = NULL;
	uint8_t key[32];
	time_t now = time(NULL);

	if (parse_job(memfd, &j, &err) < 0 || read_keys(sock, &j, &err) < 0) {
		fail(sock, TP_END_INTERNAL, err);
		close(sock);
		job_free(&j);
		return;
	}
	if (sealing_for_job(s, sock, &j) < 0) {
		close(sock);
		job_free(&j);
		return;
	}
	if (o->zygotes && j.h->service[0]) {
		zkey_of(&j, key);
		z = zygote_find(s, key);
		if (z && z->state == Z_STARTING && now - z->started > ZYGOTE_READY_MAX_S)
			zygote_stop(z, Z_DEAD);
		if (z && z->state == Z_DEAD && now - z->died >= ZYGOTE_RESTART_S)
			zygote_start(s, z, &j, key);
		else if (!z && (z = zygote_slot(s)))
			zygote_start(s, z, &j, key);
		if (z)
			z->last_used = now;
		if (z && z->state == Z_READY)
			k = zygote_take(z, &kid);
		if (!k && z && (z->state == Z_READY || z->state == Z_STARTING) &&
		    z->wait_count < ZYGOTE_WAITING_MAX) {
			struct waiting *w = &z->waiting[z->wait_count++];
			w->j = j;
			w->sock = sock;
			clock_gettime(CLOCK_MONOTONIC, &w->since);
			zygote_fill(s, z);
			return;
		}
	}
	launch(s, ctl, &j, sock, z, k);
	if (k)
		zygote_fill(s, z);
}

/* What the loop polls, and for what. */
struct watched {
	int kind; /* 0: the worker, 1: a zygote's notes, 2: a child's HELLO, 3: an
		     invocation's process done */
	struct zygote *z;
	uint32_t token;
	pid_t pid;
};

static void spawner_loop(const struct tp_worker_run_opts *o, int ctl)
{
	struct spawner s = { .o = o, .proc_cap = 4096, .ctl = ctl };
	size_t cap = 1 + (size_t)o->zygotes * (1 + ZYGOTE_POOL_MAX) + s.proc_cap;
	struct pollfd *pfds = calloc(cap, sizeof(*pfds));
	struct watched *what = calloc(cap, sizeof(*what));

	s.z = calloc(o->zygotes ? o->zygotes : 1, sizeof(*s.z));
	s.procs = calloc(s.proc_cap, sizeof(*s.procs));
	if (!pfds || !what || !s.z || !s.procs)
		return;
	for (;;) {
		size_t n = 0;
		time_t now = time(NULL);

		reap(&s, WNOHANG);
		pfds[n] = (struct pollfd){ .fd = ctl, .events = POLLIN };
		what[n++] = (struct watched){ 0 };
		for (unsigned i = 0; i < o->zygotes; i++) {
			struct zygote *z = &s.z[i];
			if (!z->used)
				continue;
			if (z->running == 0 && z->wait_count == 0 &&
			    now - z->last_used >= (time_t)o->zygote_idle_s) {
				zygote_stop(z, Z_DEAD);
				z->used = false;
				continue;
			}
			if (z->state == Z_STARTING && now - z->started > ZYGOTE_READY_MAX_S)
				zygote_stop(z, Z_DEAD);
			if (z->sock < 0)
				continue;
			pfds[n] = (struct pollfd){ .fd = z->sock, .events = POLLIN };
			what[n++] = (struct watched){ .kind = 1, .z = z };
			for (size_t k = 0; k < z->kid_count; k++)
				if (!z->kids[k].placed) {
					pfds[n] = (struct pollfd){ .fd = z->kids[k].c.channel_fd,
								   .events = POLLIN };
					what[n++] = (struct watched){ .kind = 2,
								      .z = z,
								      .token = z->kids[k].token };
				}
		}
		for (size_t i = 0; i < s.proc_count; i++)
			if (s.procs[i].sock >= 0) {
				pfds[n] =
				    (struct pollfd){ .fd = s.procs[i].sock, .events = POLLIN };
				what[n++] = (struct watched){ .kind = 3, .pid = s.procs[i].pid };
			}
		if (poll(pfds, n, 100) <= 0)
			goto waiting;
		for (size_t i = 1; i < n; i++) {
			struct zygote *z = what[i].z;
			if (pfds[i].revents && what[i].kind == 3)
				proc_said(&s, what[i].pid);
			if (!pfds[i].revents || what[i].kind == 3 || !z->used)
				continue;
			if (what[i].kind == 1 && z->sock == pfds[i].fd) {
				if (pfds[i].revents & POLLIN)
					zygote_note_in(&s, z);
				else
					zygote_gone(z);
				continue;
			}
			for (size_t k = 0; what[i].kind == 2 && k < z->kid_count; k++) {
				if (z->kids[k].token != what[i].token || z->kids[k].placed)
					continue;
				int placed = zkid_place(z, &z->kids[k]);
				if (placed == 1)
					break;
				if (placed == 0) {
					z->failures = 0;
					zygote_serve_waiting(&s, ctl, z, false);
				} else if (++z->failures >= ZYGOTE_FAILURES_MAX) {
					/* its children die as they start: say why, once */
					zkid_said(z, &z->kids[k], placed);
					zygote_stop(z, Z_REFUSED);
				} else {
					zkid_close(&z->kids[k]);
					z->kids[k] = z->kids[--z->kid_count];
					zygote_fill(&s, z);
				}
				break;
			}
		}
		if (pfds[0].revents) {
			char byte;
			int fds[2];
			ssize_t got = tp_recv_fds(ctl, &byte, 1, fds, 2, 0);

			if (got == -EINTR)
				continue;
			if (got <= 0) /* the worker is done: its invocations end (cancelled) */
				break;
			if (fds[0] < 0)
				continue;
			if (byte == 'K' || byte == 'F')
				sealing_answer(&s, fds[0], fds[1], byte == 'F');
			else
				dispatch(&s, ctl, fds[0], fds[1]);
		}
waiting: /* a job waits no longer than its zygote lives, nor too long */
		idle_fill(&s);
		for (unsigned i = 0; i < o->zygotes; i++)
			if (s.z[i].used && s.z[i].wait_count)
				zygote_serve_waiting(&s, ctl, &s.z[i],
						     s.z[i].state != Z_READY &&
							 s.z[i].state != Z_STARTING);
	}
	for (unsigned i = 0; i < o->zygotes; i++) {
		struct zygote *z = &s.z[i];
		for (size_t w = 0; w < z->wait_count; w++) {
			close(z->waiting[w].sock);
			job_free(&z->waiting[w].j);
		}
		if (z->used)
			zygote_stop(z, Z_DEAD);
	}
	/* each reads its end of file and ends (one still running: once done) */
	for (size_t i = 0; i < s.idle_count; i++)
		close(s.idle[i].sock);
	for (size_t i = 0; i < s.proc_count; i++)
		if (s.procs[i].sock >= 0)
			close(s.procs[i].sock);
	reap(&s, 0);
	if (s.keys) {
		explicit_bzero(s.keys, SEALING_KEYS_MAX * sizeof(*s.keys));
		munmap(s.keys, SEALING_KEYS_MAX * sizeof(*s.keys));
	}
	tp_seen_free(&s.seen);
	free(pfds);
	free(what);
	free(s.z);
	free(s.procs);
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
		/* it holds the services' keys for sealed invocations: not to be traced or read
		 * by another process of the worker's user, the worker's HTTP process included
		 * (of its children, a zygote's keeper and a cold start's process become so
		 * again once they dropped what is not theirs) */
		prctl(PR_SET_DUMPABLE, 0);
		spawner_loop(o, sv[1]);
		_exit(0);
	}
	close(sv[1]);
	*ctl = sv[0];
	return 0;
}
