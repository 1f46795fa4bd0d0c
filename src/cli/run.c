/* `teepy run`: parse the flags, read the input and open the data, hand the runner a
 * config, and turn its outcome into a message and an exit code. */
#include "commands.h"

#include "exit_codes.h"
#include "listen.h"
#include "run.h"
#include "run_cas.h"
#include "run_opts.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/term.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../manifest/bundle_file.h"
#include "../pfs/pfs.h"
#include "../pyboot/boot.h"
#include "../runner/runner.h"
#include "../sandbox/landlock.h"
#include "../sandbox/sandbox.h"
#include "../sandbox/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- what a signal to teepy does: stop the run through the runner's cancel fd ---- */

static volatile sig_atomic_t interrupted;
static int cancel_pipe[2] = { -1, -1 };

static void on_interrupt(int sig)
{
	char byte = 'C';

	interrupted = sig;
	if (cancel_pipe[1] >= 0 && write(cancel_pipe[1], &byte, 1) < 0) {
		/* the pipe is full: a byte is already there */
	}
}

void tp_run_cancel_from_signal(int sig)
{
	on_interrupt(sig);
}

/* sigint: SIGINT stops the run too (a shell's interrupts its statement instead) */
static int catch_interrupts(bool sigint)
{
	struct sigaction sa = { .sa_handler = on_interrupt };

	signal(SIGPIPE, SIG_IGN);
	if (cancel_pipe[0] < 0 && pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigint)
		sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	return 0;
}

/* ---- TEEPY_TIMING=1: how long each phase took, for finding start-up costs ---- */

static bool timing_on;
static struct timespec timing_start;

static void mark(const char *phase)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	tp_info("timing %7.3f ms  %s",
		(double)(now.tv_sec - timing_start.tv_sec) * 1e3 +
		    (double)(now.tv_nsec - timing_start.tv_nsec) / 1e6,
		phase);
}

static const char *host_getenv(const char *name)
{
	return getenv(name);
}

/* ---- one run's command-line side ---- */

struct cli_run {
	struct tp_run_opts opts;
	bool discard_result; /* teepy build: the sample run's result is only counted */
	char *input;
	size_t input_size;
	char input_name[PATH_MAX + 16];
	int *data_fds;
	char out_tmp[PATH_MAX]; /* --output is written here, then renamed */
	const char **allow, **pythonpath, **env, **args, **trust, **preload;
	char *trust_copy;   /* TEEPY_TRUSTED_SIGNERS, split in place */
	bool log_line_open; /* the service's output so far ends inside a line */
	int log_fd;	    /* where that output goes: stderr; a shell's stdout, its terminal */
	bool escape;	    /* --escape: the output is shown through esc */
	bool ascii;	    /* the terminal's locale is not UTF-8 */
	struct tp_term_escape esc;
	struct tp_trace_log *trace_log; /* teepy build's sample run */
	struct tp_traced_run *traced_out;
	uint8_t *bundle_key; /* --bundle-key's key, in locked memory, or NULL */
	uint8_t *volume_key; /* --volume-key's, in locked memory, or NULL */
	bool cas_on;	     /* --cas: the keys come from cas */
	struct tp_run_cas cas;
	int listen_fd;	   /* the socket handed to a server (--listen, --listen-fd), or -1 */
	bool listen_owned; /* --listen's, closed when the run is done */
	const struct tp_run_shell_io *shell; /* teepy shell: its line editor */
	struct tp_run_config cfg;
};

/* One line said, and the exit code it comes with. */
static int refused(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refused(int code, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tp_error("%s", line);
	return code;
}

#define usage_error(...) refused(TP_EXIT_USAGE, __VA_ARGS__)

static void warn_line(void *observer, const char *line)
{
	(void)observer;
	tp_warn("%s", line);
}

static void write_stdout(void *ctx, const char *bytes, size_t size)
{
	(void)ctx;
	tp_write_full(STDOUT_FILENO, bytes, size);
}

static void write_log(void *ctx, const char *bytes, size_t size)
{
	const struct cli_run *run = ctx;

	tp_write_full(run->log_fd, bytes, size);
}

static void log_to_stderr(void *ctx, const char *bytes, size_t size)
{
	struct cli_run *run = ctx;

	if (run->escape) {
		tp_term_escape_write(&run->esc, bytes, size, write_log, run);
		run->log_line_open = run->esc.in_line;
		return;
	}
	write_log(run, bytes, size); /* byte for byte */
	run->log_line_open = size && bytes[size - 1] != '\n';
}

/* The service's output is over: what is held is shown, and its last line is ended so
 * that teepy's lines after it start on their own. */
static void log_end(struct cli_run *run)
{
	if (!run->escape)
		return;
	tp_term_escape_flush(&run->esc, write_log, run);
	if (run->esc.in_line)
		write_log(run, "\n", 1);
	run->log_line_open = false;
}

bool tp_run_escapes_output(const struct tp_run_opts *o)
{
	bool on =
	    o->escape == TP_ESCAPE_ALWAYS || (o->escape == TP_ESCAPE_AUTO && isatty(STDERR_FILENO));

	tp_log_mark_own(on);
	return on;
}

static int open_result(void *ctx)
{
	struct cli_run *run = ctx;
	const char *output = run->opts.output_file;

	if (!output && run->discard_result) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (!output)
		return STDOUT_FILENO;
	snprintf(run->out_tmp, sizeof(run->out_tmp), "%s.teepy-XXXXXX", output);
	int fd = mkostemp(run->out_tmp, O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		tp_error("--output %s: %s", output, strerror(errno));
		run->out_tmp[0] = '\0';
		return r;
	}
	return fd;
}

/* --output: the result is renamed into place only whole; nothing half-written stays. */
static void finish_result(struct cli_run *run, const struct tp_outcome *out)
{
	const char *output = run->opts.output_file;
	int fd = out->result_fd;

	if (!output || fd < 0 || !run->out_tmp[0] || !out->have_result)
		return;
	if (out->result_incomplete || out->result_error) {
		unlink(run->out_tmp); /* nothing half-written is left behind */
		close(fd);
		return;
	}
	if (fsync(fd) < 0 || close(fd) < 0 || rename(run->out_tmp, output) < 0) {
		int e = errno;
		unlink(run->out_tmp);
		tp_error("--output %s: %s", output, strerror(e));
	}
}

static const char **strv_array(const struct tp_strv *v)
{
	const char **a = calloc(v->count + 1, sizeof(char *));

	for (size_t i = 0; a && i < v->count; i++)
		a[i] = v->items[i];
	return a;
}

/* ---- sealed data items: --data ITEM.tpd with --data-key, or ITEM.tpd:KEY ---- */

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n > t && strcmp(s + n - t, tail) == 0;
}

/* Item i opened as named: "FILE", or "FILE:KEY" when no FILE of that whole name
 * exists (*own_key then points into the name, path holds FILE). */
static int open_item(const char *item, char path[PATH_MAX], const char **own_key)
{
	/* O_NONBLOCK: a FIFO named as data does not hang the open (it is refused) */
	int fd = open(item, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	const char *colon = strrchr(item, ':');

	*own_key = NULL;
	snprintf(path, PATH_MAX, "%s", item);
	if (fd >= 0 || errno != ENOENT || !colon || colon == item || !colon[1])
		return fd;
	snprintf(path, PATH_MAX, "%.*s", (int)(colon - item), item);
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) >= 0)
		*own_key = colon + 1;
	else
		errno = ENOENT; /* of the name as given */
	return fd;
}

/* --cas: the CAS's key for the sealed item at fd, by the id in its header; NULL
 * when the CAS gave none for it. Returns an exit code or 0. */
static int cas_data_key(const struct cli_run *run, const char *flag, const char *path, int fd,
			const uint8_t **key)
{
	uint8_t header[TP_PFS_HEADER_SIZE];
	struct tp_pfs_header h;
	char err[256], id[2 * TP_PFS_ID_SIZE + 1];

	if (pread(fd, header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
	    tp_pfs_header_parse(header, &h, err, sizeof(err)) < 0)
		return refused(TP_EXIT_DATA_REFUSED,
			       "%s %s: refused: not a teepy protected file's header", flag, path);
	if (!(*key = tp_cas_data_key_find(&run->cas.secrets, h.id))) {
		tp_hex(h.id, TP_PFS_ID_SIZE, id);
		return refused(TP_EXIT_KEY_MISSING,
			       "%s %s: the CAS gave %s no key for item %s (its policy's data_key "
			       "secrets name their data_id; or give the item's own key as %s "
			       "%s:KEY)",
			       flag, path, run->cas.config_id, id, flag, path);
	}
	return 0;
}

/* The data files, each opened; a sealed item (docs/protected-files.md) is opened
 * with its key, every chunk checked, into a memfd of its plaintext in its place.
 * The keys: an item's own (FILE:KEY), else --data-key, given once for every
 * sealed item or once for each, in order. Returns an exit code or 0. */
static int open_data_items(struct cli_run *run)
{
	struct tp_run_opts *o = &run->opts;
	/* each sealed item's key file, and how much of its name is the file's */
	struct item_key {
		const char *key;
		const uint8_t *cas_key; /* the CAS's key for the item's id */
		int name_len;
		uint64_t size;
	} *keys = calloc(o->data.count ? o->data.count : 1, sizeof(*keys));
	char path[PATH_MAX], err[512] = "";
	size_t from_list = 0, sealed = 0, missing = SIZE_MAX;
	uint8_t *key = NULL;
	struct stat st;
	int code = 0;

	if (!keys)
		return refused(TP_EXIT_INTERNAL, "out of memory");
	for (size_t i = 0; code == 0 && i < o->data.count; i++) {
		const char *flag = i < o->service_data_count ? "--data" : "--task-data";
		const char *own_key;
		bool is_sealed = false;
		int fd = open_item(o->data.items[i], path, &own_key);
		run->data_fds[i] = fd;
		if (fd < 0)
			code = usage_error("%s %s: %s", flag, o->data.items[i], strerror(errno));
		else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			code = usage_error("%s %s: not a regular file", flag, path);
		else if (!(is_sealed = tp_data_is_sealed(fd)) &&
			 (own_key || ends_with(path, ".tpd")))
			/* named as a sealed item: a plain file in its place is not taken */
			code = refused(TP_EXIT_DATA_REFUSED,
				       "%s %s: refused: not a teepy protected file, where a sealed "
				       "item was named (%s)",
				       flag, path, own_key ? "with a key of its own" : "*.tpd");
		else if (is_sealed) {
			sealed++;
			keys[i].name_len = (int)strlen(path);
			keys[i].size = (uint64_t)st.st_size;
			keys[i].key = own_key		      ? own_key :
				      o->data_keys.count == 1 ? o->data_keys.items[0] :
				      from_list < o->data_keys.count ?
								o->data_keys.items[from_list] :
								NULL;
			from_list += !own_key;
			if (!keys[i].key && run->cas_on)
				code = cas_data_key(run, flag, path, fd, &keys[i].cas_key);
			if (!keys[i].key && !keys[i].cas_key && missing == SIZE_MAX)
				missing = i;
		}
	}
	if (code == 0 && o->data_keys.count && sealed == 0)
		code =
		    usage_error("--data-key: no --data or --task-data item is sealed (teepy data "
				"seal makes one)");
	else if (code == 0 && o->data_keys.count &&
		 (from_list == 0 || (o->data_keys.count > 1 && o->data_keys.count != from_list)))
		code = usage_error("--data-key: %zu given, for %zu sealed item%s without a key of "
				   "its own (give one for all, or one each, in order)",
				   o->data_keys.count, from_list, from_list == 1 ? "" : "s");
	if (code == 0 && missing != SIZE_MAX) {
		const char *flag = missing < o->service_data_count ? "--data" : "--task-data";
		code = refused(TP_EXIT_KEY_MISSING,
			       "%s %s: a sealed item opens only with its key: --data-key KEY (or "
			       "%s %s:KEY)",
			       flag, o->data.items[missing], flag, o->data.items[missing]);
	}
	if (code == 0 && sealed) {
		/* no core dump holds the key or the plaintext; the key's memory is locked
		 * (not PR_SET_DUMPABLE: the sandbox's unprivileged id maps need it) */
		tp_secret_no_core(false);
		if (tp_crypto_load(err, sizeof(err)) < 0)
			code = refused(TP_EXIT_INTERNAL, "sealed data: %s", err);
		else if (!(key = tp_secret_alloc(TP_SYMKEY_SIZE)))
			code = refused(TP_EXIT_INTERNAL, "out of memory");
	}
	for (size_t i = 0; code == 0 && i < o->data.count; i++) {
		const char *flag = i < o->service_data_count ? "--data" : "--task-data";
		const char *name = o->data.items[i];
		int fd = run->data_fds[i], plain;
		if (!keys[i].key && !keys[i].cas_key)
			continue;
		if (keys[i].cas_key)
			memcpy(key, keys[i].cas_key, TP_SYMKEY_SIZE);
		else if (tp_symkey_read(keys[i].key, key, err, sizeof(err)) < 0) {
			code = usage_error("%s %.*s: key %s: %s", flag, keys[i].name_len, name,
					   keys[i].key, err);
			break;
		}
		plain = tp_data_unseal(fd, keys[i].size, key, err, sizeof(err));
		if (tp_pfs_host_failed(plain))
			code = refused(TP_EXIT_INTERNAL, "%s %.*s: %s", flag, keys[i].name_len,
				       name, err);
		else if (plain < 0 && !tp_pfs_refused(plain))
			code = usage_error("%s %.*s: %s", flag, keys[i].name_len, name, err);
		else if (plain < 0)
			code =
			    refused(TP_EXIT_DATA_REFUSED, "%s %.*s: refused: %s%s", flag,
				    keys[i].name_len, name, err,
				    plain == -EKEYREJECTED ? " (is its --data-key the key it was "
							     "sealed with?)" :
							     "");
		else {
			close(fd);
			run->data_fds[i] = plain;
		}
	}
	tp_secret_free(key, TP_SYMKEY_SIZE);
	free(keys);
	/* the CAS's data keys have done their work */
	for (size_t i = 0; run->cas_on && i < run->cas.secrets.data_count; i++) {
		tp_secret_free(run->cas.secrets.data[i].key, TP_SYMKEY_SIZE);
		run->cas.secrets.data[i].key = NULL;
	}
	return code;
}

/* Reads the input and opens the data files the person named. Returns an exit code or 0. */
static int load_inputs(struct cli_run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct stat st;

	if (o->input) {
		run->input = strdup(o->input);
		run->input_size = strlen(o->input);
		snprintf(run->input_name, sizeof(run->input_name), "--input");
		if (!run->input)
			return usage_error("out of memory");
	} else if (o->input_file) {
		int fd = strcmp(o->input_file, "-") == 0 ?
			     dup(0) :
			     open(o->input_file, O_RDONLY | O_CLOEXEC);
		int r;
		snprintf(run->input_name, sizeof(run->input_name), "--input-file %s",
			 o->input_file);
		if (fd < 0)
			return usage_error("--input-file %s: %s", o->input_file, strerror(errno));
		/* the service could not hold more; /dev/zero must not exhaust teepy */
		uint64_t max = o->limits.memory_bytes;
		r = tp_read_all(fd, max > SIZE_MAX ? SIZE_MAX : (size_t)max, &run->input,
				&run->input_size);
		close(fd);
		if (r == -EFBIG) {
			char limit[32];
			return usage_error(
			    "%s: larger than the memory limit (%s), which the service "
			    "could not hold (raise --memory)",
			    run->input_name,
			    tp_format_size(o->limits.memory_bytes, limit, sizeof(limit)));
		}
		if (r < 0)
			return usage_error("--input-file %s: %s", o->input_file, strerror(-r));
	} else {
		run->input = strdup("");
	}

	run->data_fds = calloc(o->data.count ? o->data.count : 1, sizeof(int));
	if (!run->data_fds)
		return usage_error("out of memory");
	for (size_t i = 0; i < o->data.count; i++)
		run->data_fds[i] = -1;
	int code = open_data_items(run);
	if (code)
		return code;

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

/* The trusted signers: --trust, else TEEPY_TRUSTED_SIGNERS (colon-separated). */
static int load_trust(struct cli_run *run)
{
	const char *env = getenv("TEEPY_TRUSTED_SIGNERS");
	size_t n = 0;

	if (run->opts.trust.count || !env || !*env) {
		run->trust = strv_array(&run->opts.trust);
		run->cfg.trust_source = "--trust";
		return run->trust ? 0 : -ENOMEM;
	}
	if (!(run->trust_copy = strdup(env)) ||
	    !(run->trust = calloc(strlen(env) / 2 + 2, sizeof(char *))))
		return -ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(run->trust_copy, ":", &save); tok;
	     tok = strtok_r(NULL, ":", &save))
		run->trust[n++] = tok;
	run->cfg.trust_source = "TEEPY_TRUSTED_SIGNERS entry";
	return 0;
}

static void print_cache(const struct tp_cache *c)
{
	switch (c->state) {
	case TP_CACHE_HIT:
		fprintf(stderr,
			"  cache         hit: the root is bound read-only from %s (its files "
			"were verified when it was made; the bundle's own are checked again)%s\n",
			c->why,
			c->indexed ? "; the bundle's bytes are a verified run's (the cache's "
				     "index), so its signature was checked as the interpreter "
				     "started" :
				     "");
		break;
	case TP_CACHE_MISS:
		fprintf(stderr,
			"  cache         miss: the verified files are kept in %s, and the root "
			"bound read-only from it\n",
			c->why);
		break;
	case TP_CACHE_OFF:
		fprintf(stderr, "  cache         off: %s\n", c->why);
		break;
	}
}

static void print_config(void *observer, const struct tp_invocation *inv)
{
	const struct cli_run *run = observer;
	const struct tp_run_opts *o = &run->opts;
	const struct tp_limits *l = &inv->limits;
	char timeout[32], scratch[32];
	int abi = tp_landlock_abi();
	size_t binds = 0;

	/* said once the run is planned: a refusal before is the one line there is */
	if (run->cfg.listen) {
		char where[160];
		tp_info("listening on %s",
			tp_listen_describe(run->listen_fd, where, sizeof(where)));
	}
	if (!o->print_config)
		return;
	for (size_t i = 0; i < inv->plan.count; i++)
		binds += inv->plan.ops[i].kind == TP_ROOT_BIND;
	tp_info("configuration");
	fprintf(stderr, "  %s        %s\n", inv->sealed ? "bundle" : "script",
		inv->sealed || inv->script[0] ? inv->script : "none: an interactive console");
	if (inv->sealed) {
		char app[65], signer[65];
		tp_hex(inv->bundle.app, 32, app);
		tp_hex(inv->bundle.signer, 32, signer);
		if (run->shell)
			fprintf(stderr,
				"  debug         yes: a shell in the bundle's sealed root, not its "
				"entry; %s\n",
				run->cas_on ? "the evidence says debug, and the CAS releases keys "
					      "only to a service that tolerates \"debug\"" :
					      "its evidence would say debug (--cas)");
		fprintf(stderr, "  app           %s\n", app);
		fprintf(stderr, "  signer        %s\n", signer);
		const struct tp_manifest *m = &inv->bundle.manifest;
		size_t encrypted = 0;
		for (size_t i = 0; i < m->file_count; i++)
			encrypted += m->files[i].encrypted;
		if (encrypted)
			fprintf(
			    stderr,
			    "  verify        %zu files: %zu hashed as each is written into the "
			    "root, %zu encrypted (AES-256-GCM, key id %s) decrypted into it, each "
			    "chunk's tag checked first\n",
			    m->file_count, m->file_count - encrypted, encrypted,
			    m->encryption.key_id);
		else
			fprintf(stderr,
				"  verify        %zu files, each hashed as it is written into the "
				"root\n",
				m->file_count);
		print_cache(&inv->cache);
	}
	fprintf(stderr, "  interpreter   %s (%s, Python %s), executed, not embedded\n",
		inv->engine->exe, inv->engine->release, inv->engine->version);
	fprintf(stderr, "  runtime       %s\n", inv->runtime_so);
	if (run->cas_on)
		fprintf(
		    stderr,
		    "  keys          by attestation: %s (key %s), config id %s, %s evidence%s%s\n",
		    o->cas, o->cas_fingerprint, o->config_id, run->cas.mode,
		    run->cas.secrets.blob_count ? "; blob secrets not used by a run: " : "",
		    run->cas.secrets.blobs);
	else
		fprintf(stderr, "  mode          sim%s (no hardware attestation)\n",
			o->mode_was_auto ? " (auto)" : "");
	if (getuid() == 0)
		fprintf(stderr,
			"  namespaces    user, mount, pid, network, ipc, uts (root's service is "
			"uid %u inside and host uid %u, nobody; no capabilities)\n",
			tp_sandbox_service_uid(), TP_ROOT_SERVICE_HOST_ID);
	else
		fprintf(stderr,
			"  namespaces    user, mount, pid, network, ipc, uts (uid %u is %u inside, "
			"no capabilities)\n",
			(unsigned)getuid(), tp_sandbox_service_uid());
	if (inv->sealed && inv->cache.state != TP_CACHE_OFF)
		fprintf(stderr,
			"  root          sealed: read-only tmpfs with %zu read-only binds of the "
			"cache entry, which holds only the %zu manifest files, as verified\n",
			binds, inv->bundle.manifest.file_count);
	else if (inv->sealed)
		fprintf(stderr,
			"  root          sealed: read-only tmpfs holding only the %zu manifest "
			"files, written from the verified bytes\n",
			inv->bundle.manifest.file_count);
	else
		fprintf(stderr,
			"  root          read-only tmpfs with %zu read-only binds: stdlib, "
			"libraries, time zones%s%s%s%s\n",
			binds, inv->script_dir[0] ? ", script directory" : "",
			inv->site_packages ? ", dist-packages" : "",
			inv->venv_dir[0] ? ", the venv" : "",
			o->allow.count || o->pythonpath.count ? ", allowed paths" : "");
	fprintf(stderr, "  processes     %s\n",
		inv->processes ? "fork and exec of files inside the root (policy \"manifest\")" :
				 "none: threads only");
	if (inv->listen) {
		char where[160];
		fprintf(stderr,
			"  network       one handed socket, %s: accept on it only (seccomp); no "
			"socket made, bound or connected (seccomp%s)\n",
			tp_listen_describe(run->listen_fd, where, sizeof(where)),
			abi >= 4 ? ", and Landlock for TCP" : " alone: Landlock below ABI 4");
	} else {
		fprintf(stderr, "  network       none (an empty network namespace)\n");
	}
	fprintf(stderr, "  scratch       %s\n",
		l->scratch_bytes ? tp_format_size(l->scratch_bytes, scratch, sizeof(scratch)) :
		l->output_bytes	 ? "none" :
				   "none (no writable path)");
	if (l->output_bytes)
		fprintf(stderr,
			"  output        /out, %s in memory; after a normal end each file is "
			"sealed (AES-256-GCM) into %s as its next version\n",
			tp_format_size(l->output_bytes, scratch, sizeof(scratch)),
			o->output_volume);
	if (abi > 0)
		fprintf(stderr, "  landlock      ABI %d: %s\n", abi, tp_landlock_describe(abi));
	else
		fprintf(stderr, "  landlock      unavailable (%s): teepy will refuse to run\n",
			strerror(-abi));
	fprintf(stderr,
		"  seccomp       2 stages, %zu named calls + argument rules, default ENOSYS; "
		"execve allowed once for the interpreter, %s after boot\n",
		tp_seccomp_rule_count(),
		inv->processes ? "allowed (Landlock: root files only)" : "denied");
	tp_limits_print(&inv->enforce, l->memory_bytes, inv->sealed ? inv->plan.reserve_bytes : 0,
			stderr);
	fprintf(stderr,
		"  BLAS threads  %u (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)\n",
		inv->blas_threads);
	fprintf(stderr, "  timeout       %s (wall clock, enforced by teepy)\n",
		tp_limit_format_ms(l->timeout_ms, timeout, sizeof(timeout)));
	if (l->log_max_bytes == UINT64_MAX)
		snprintf(timeout, sizeof(timeout), "all");
	else
		tp_format_size(l->log_max_bytes, timeout, sizeof(timeout));
	fprintf(stderr,
		"  relay         %s%s of the service's stdout and stderr (--log-max), %s "
		"(--escape)\n",
		l->log_max_bytes == UINT64_MAX ? "" : "at most ", timeout,
		!run->escape ? "byte for byte" :
		run->shell   ? "control characters shown as text" : /* a shell's lines unmarked */
			       "control characters shown as text, lines marked");
	fprintf(stderr, "  environment   %zu variables, none from the host\n", inv->env_count);
	fprintf(stderr, "  data          %zu service + %zu task items\n", o->service_data_count,
		o->data.count - o->service_data_count);
	fprintf(stderr, "  output        %s\n",
		o->output_file ? o->output_file :
		run->shell     ? "shown after the session" :
				 "stdout");
}

/* The sealed root is filled: the bundle key has done its work and goes (wiped), not
 * to stay in this process for the run; --print-config's line on the fill. */
static void filled(void *observer, const struct tp_invocation *inv)
{
	struct cli_run *run = observer;
	const struct tp_fill_stats *f = &inv->fill;

	if (run->bundle_key) {
		run->cfg.bundle_key = NULL;
		tp_secret_free(run->bundle_key, TP_SYMKEY_SIZE);
		run->bundle_key = NULL;
	}
	if (!run->opts.print_config)
		return;
	tp_info("verified %zu files, %llu bytes, in %.1f ms (%u threads, %.1f ms CPU: %.0f MB/s "
		"per core)",
		f->count, (unsigned long long)f->bytes, f->seconds * 1e3, f->threads,
		f->cpu_seconds * 1e3,
		f->cpu_seconds > 0 ? (double)f->bytes / f->cpu_seconds / 1e6 : 0.0);
}

static int check_mode(const struct tp_run_opts *o)
{
	if (o->mode != TP_MODE_HW || o->cas) /* --cas: the evidence's mode */
		return 0;
	tp_error(
	    "mode hw: hardware attestation needs a confidential VM with configfs-tsm "
	    "(/sys/kernel/config/tsm/report), which this build does not use yet; use --mode sim");
	return TP_EXIT_USAGE;
}

/* The key file path given with flag into locked memory (*slot, which the run frees),
 * and the runner's config pointed at it. Returns an exit code or 0. */
static int read_key(const char *flag, const char *path, uint8_t **slot, const uint8_t **cfg_key)
{
	char err[PATH_MAX + 128];

	/* no core dump holds it (not PR_SET_DUMPABLE: the sandbox's id maps need it) */
	tp_secret_no_core(false);
	if (!(*slot = tp_secret_alloc(TP_SYMKEY_SIZE)))
		return refused(TP_EXIT_INTERNAL, "out of memory");
	if (tp_symkey_read(path, *slot, err, sizeof(err)) < 0)
		return usage_error("%s %s: %s", flag, path, err);
	*cfg_key = *slot;
	return 0;
}

/* --bundle-key: an encrypted bundle's key, into locked memory (a build's sample
 * run, unsealed, leaves it to build). Returns an exit code or 0. */
static int load_bundle_key(struct cli_run *run)
{
	if (!run->opts.bundle_key || run->traced_out)
		return 0;
	if (!run->cfg.is_bundle)
		return usage_error("--bundle-key: %s is not a bundle; only an encrypted bundle "
				   "(teepy build --encrypt) has a bundle key",
				   run->opts.script);
	return read_key("--bundle-key", run->opts.bundle_key, &run->bundle_key,
			&run->cfg.bundle_key);
}

/* --output-volume's key, into locked memory until the run ends (without one the
 * runner refuses the volume). Returns an exit code or 0. */
static int load_volume_key(struct cli_run *run)
{
	const struct tp_run_opts *o = &run->opts;

	run->cfg.output_volume = o->output_volume;
	run->cfg.expect_version_given = o->expect_version_given;
	run->cfg.expect_version = o->expect_version;
	if (!o->output_volume || !o->volume_key)
		return 0;
	return read_key("--volume-key", o->volume_key, &run->volume_key, &run->cfg.volume_key);
}

/* --listen, --listen-fd: the socket the server is handed, bound here on the host's
 * network (or systemd's, checked). Returns an exit code or 0. */
static int hand_socket(struct cli_run *run)
{
	const struct tp_run_opts *o = &run->opts;
	char err[512];

	if (!o->listen && !o->listen_fd_given)
		return 0;
	if (o->listen) {
		if ((run->listen_fd = tp_listen_open(o->listen, err, sizeof(err))) < 0)
			return usage_error("--listen %s", err);
		run->listen_owned = true;
	} else {
		if (tp_listen_check_fd(o->listen_fd, err, sizeof(err)) < 0)
			return usage_error("--listen-fd: %s", err);
		run->listen_fd = o->listen_fd;
	}
	run->cfg.handed_fds = &run->listen_fd;
	run->cfg.handed_count = 1;
	run->cfg.listen = true;
	run->cfg.wsgi = o->wsgi;
	return 0;
}

/* The runner's config from the flags. Returns an exit code or 0. */
static int make_config(struct cli_run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct tp_run_config *cfg = &run->cfg;
	int code;

	if ((code = check_mode(o)) != 0)
		return code;
	size_t name_len = o->script ? strlen(o->script) : 0; /* a shell has none */
	bool tpy_name = name_len > 4 && strcmp(o->script + name_len - 4, ".tpy") == 0;
	if (!(run->allow = strv_array(&o->allow)) ||
	    !(run->pythonpath = strv_array(&o->pythonpath)) || !(run->env = strv_array(&o->env)) ||
	    !(run->args = strv_array(&o->script_args)) || load_trust(run) < 0 ||
	    catch_interrupts(!run->shell) < 0) {
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	*cfg = (struct tp_run_config){
		.script = o->script,
		/* a .tpy is always a bundle (a damaged one is refused as such, never run as
		 * Python) */
		.is_bundle = tpy_name ||
			     (o->script && access(o->script, R_OK) == 0 && tp_is_bundle(o->script)),
		.args = run->args,
		.home = getenv("HOME"),
		.input_name = run->input_name,
		.data_count = o->data.count,
		.service_data_count = o->service_data_count,
		.limits = o->limits,
		.limits_given = o->limits_given,
		.allow = run->allow,
		.pythonpath = run->pythonpath,
		.allow_site_packages = o->allow_site_packages,
		.engine = o->engine,
		.engine_given = o->engine_given,
		.venv = o->venv,
		.allow_processes = o->allow_processes,
		.env = run->env,
		.trust_paths = run->trust,
		.trust_source = cfg->trust_source,
		.insecure_any_signer = o->insecure_any_signer,
		.no_cache = o->no_cache,
		.cache_max_bytes = o->cache_max_bytes,
		/* tests keep their cache apart; it is checked as any other */
		.cache_dir = getenv("TEEPY_CACHE_DIR") && *getenv("TEEPY_CACHE_DIR") ?
				 getenv("TEEPY_CACHE_DIR") :
				 NULL,
		.runtime_dir = getenv("XDG_RUNTIME_DIR"),
		.result = { .open = open_result,
			    .ctx = run,
			    .name = o->output_file ? o->output_file : "stdout",
			    .is_file = o->output_file != NULL },
		.log = { .write = log_to_stderr, .ctx = run },
		.cancel_fd = cancel_pipe[0],
		.observer = run,
		.warn = warn_line,
		.on_planned = print_config,
		.on_filled = filled,
		.trace_log = run->trace_log,
		.preload = run->preload,
		.mark = timing_on ? mark : NULL,
	};
	if (run->shell && o->script && !cfg->is_bundle)
		return usage_error("shell: %s is not a bundle: teepy shell runs no script (give "
				   "its directory with --pythonpath to import its modules, or a "
				   "bundle, APP.tpy, for a debug shell in its sealed root)",
				   o->script);
	if (run->shell) {
		cfg->shell.read_line = run->shell->read_line;
		cfg->shell.ctx = run->shell->ctx;
		cfg->shell.interrupt_fd = run->shell->interrupt_fd;
		/* the result stays in memory until the shell ends (tp_run_shell shows it) */
		if (!o->output_file)
			cfg->result = (struct tp_result_sink){ .name = "memory" };
	}
	/* TEEPY_ENGINE is a script's default: a bundle runs on the engine it records,
	 * whatever the setting names (docs/cli.md) */
	char why[256];
	if (!cfg->is_bundle && tp_run_opts_engine_check(o, why, sizeof(why)) < 0)
		return usage_error("%s", why);
	if (o->cas && !cfg->is_bundle && o->cas_from_env)
		o->cas = NULL; /* the deployment's setting: an unsealed script has no keys */
	else if (o->cas && !o->script)
		return usage_error("--cas: a shell without a bundle gets no keys (teepy shell "
				   "APP.tpy --cas URL ...)");
	else if (o->cas && !cfg->is_bundle)
		return usage_error("--cas: %s is not a bundle; only a sealed bundle (teepy build) "
				   "gets its keys from a CAS",
				   o->script);
	return load_bundle_key(run) ?: load_volume_key(run) ?: hand_socket(run);
}

static int report(const struct cli_run *run, const struct tp_outcome *out);

/* --cas: the bundle's signer judged as the run will judge it, before the CAS is
 * asked for its keys: a bundle --trust does not take costs no round trip, and is
 * refused in the run's own line and exit code. Returns an exit code or 0. */
static int judge_signer_first(struct cli_run *run, const struct tp_bundle_file *bf)
{
	struct tp_run_config cfg = run->cfg;
	struct tp_outcome out = { 0 };
	int code = 0;

	cfg.warn = NULL; /* an --insecure-any-signer run is said by the run itself */
	if (tp_runner_judge_signer(&cfg, bf, &out) < 0)
		code = report(run, &out);
	tp_outcome_free(&out);
	return code;
}

/* --cas: the secrets got by attestation, put where the run takes them: the bundle
 * key and the volume key as --bundle-key's and --volume-key's (locked memory,
 * wiped when done), the data keys by item id (open_data_items), env values after
 * --env's. Returns an exit code or 0. */
static int cas_keys(struct cli_run *run)
{
	struct tp_run_opts *o = &run->opts;
	struct tp_cas_secrets *s = &run->cas.secrets;
	struct tp_bundle_file bf, *opened = NULL;
	const char **env;
	char err[512];
	int code;

	run->cas = (struct tp_run_cas){
		.url = o->cas,
		.fingerprint = o->cas_fingerprint,
		.config_id = o->config_id,
		.mode = o->mode_was_auto      ? "auto" :
			o->mode == TP_MODE_HW ? "hw" :
						"sim",
		.snp = { o->snp_vcek, o->snp_vcek_from, o->snp_chain, o->snp_chain_from },
		/* a shell in a bundle's root: its evidence says debug (docs/cas.md) */
		.debug = run->shell != NULL,
		.who = run->shell ? "shell" : "run",
	};
	run->cas_on = true;
	/* the bundle opened once: its signer judged as the run will judge it, then
	 * measured; one that cannot be opened (or no libcrypto) is said by the fetch */
	if (tp_crypto_load(err, sizeof(err)) == 0 &&
	    tp_bundle_file_open(o->script, &bf, err, sizeof(err)) == 0)
		opened = &bf;
	code = opened ? judge_signer_first(run, opened) : 0;
	if (code == 0)
		code = tp_run_cas_fetch(&run->cas, o->script, opened);
	if (opened)
		tp_bundle_file_close(opened);
	if (run->shell && (code == 0 || code == TP_EXIT_ATTESTATION_DENIED)) {
		/* what a policy lists to release keys to a debug shell (docs/cas.md) */
		char runtime[65];
		tp_hex(run->cas.runtime, sizeof(run->cas.runtime), runtime);
		tp_info("shell: a debug run: its evidence says debug; its runtime measurement is "
			"%s (teepy-shell's)",
			runtime);
	}
	if (code != 0)
		return code;
	run->bundle_key = s->bundle_key;
	run->cfg.bundle_key = s->bundle_key;
	s->bundle_key = NULL;
	if (o->output_volume) {
		run->volume_key = s->volume_key;
		run->cfg.volume_key = s->volume_key;
		s->volume_key = NULL;
	}
	for (size_t i = 0; i < s->env_count; i++) {
		size_t len = (size_t)(strchr(s->env[i], '=') - s->env[i]);
		for (size_t j = 0; j < o->env.count; j++)
			if (strncmp(o->env.items[j], s->env[i], len + 1) == 0)
				return usage_error(
				    "--env %.*s: the CAS gives %.*s for %s (give one "
				    "or the other)",
				    (int)len, s->env[i], (int)len, s->env[i], o->config_id);
	}
	if (!(env = calloc(o->env.count + s->env_count + 1, sizeof(*env))))
		return refused(TP_EXIT_INTERNAL, "out of memory");
	memcpy(env, run->env, o->env.count * sizeof(*env));
	memcpy(env + o->env.count, s->env, s->env_count * sizeof(*env));
	free(run->env);
	run->env = env;
	run->cfg.env = env;
	return 0;
}

static void cli_run_free(struct cli_run *run)
{
	for (size_t i = 0; run->data_fds && i < run->opts.data.count; i++)
		if (run->data_fds[i] >= 0)
			close(run->data_fds[i]);
	free(run->data_fds);
	free(run->input);
	free(run->allow);
	free(run->pythonpath);
	free(run->env);
	free(run->args);
	free(run->trust);
	free(run->trust_copy);
	free(run->preload);
	tp_secret_free(run->bundle_key, TP_SYMKEY_SIZE);
	tp_secret_free(run->volume_key, TP_SYMKEY_SIZE);
	tp_run_cas_free(&run->cas);
	if (run->listen_owned)
		close(run->listen_fd);
	tp_run_opts_free(&run->opts);
}

/* The outcome in words (one line, unless the service said it already) and as an exit
 * code. The line may name what the service chose (its exception's type name): shown
 * escaped whatever --escape says, since it is teepy's line. */
static int report(const struct cli_run *run, const struct tp_outcome *out)
{
	char shown[4 * sizeof(out->message)];

	/* a server runs until it is stopped: that is its normal end, as is ending
	 * without a result (a shell with a socket is a shell: a signal interrupts it) */
	bool served = run->cfg.listen && !run->cfg.shell.read_line &&
		      (out->end == TP_END_CANCELLED || interrupted || out->end == TP_END_NO_RESULT);
	if (served) {
		if (interrupted)
			tp_info("stopped by signal %d", (int)interrupted);
		return TP_EXIT_OK;
	}
	/* a signal after the volume was published came too late to stop anything */
	if (interrupted && !out->volume.published) {
		tp_error("interrupted by signal %d; the service was stopped", (int)interrupted);
		return TP_EXIT_INTERRUPTED;
	}
	/* a shell's session ends without a result as a rule */
	if (run->shell && out->end == TP_END_NO_RESULT)
		return TP_EXIT_OK;
	if (out->end != TP_END_RESULT && out->message[0])
		tp_error("%s", tp_term_escape_line(out->message, run->ascii, shown, sizeof(shown)));
	return tp_exit_code_for(out->end);
}

/* A shell's result, kept in memory: shown escaped, as its output is (the terminal is
 * stdout too), after the session. */
static void show_shell_result(struct cli_run *run, const struct tp_outcome *out)
{
	struct tp_term_escape esc;

	if (!run->shell || run->opts.output_file || !out->have_result || !out->result)
		return;
	tp_info("the service's result (%llu bytes):", (unsigned long long)out->result_size);
	tp_term_escape_init(&esc, run->ascii, NULL);
	tp_term_escape_write(&esc, out->result, (size_t)out->result_size, write_stdout, NULL);
	tp_term_escape_flush(&esc, write_stdout, NULL);
	write_stdout(NULL, "\n", 1);
}

static int run_with(struct cli_run *run, struct tp_invocation *keep)
{
	struct tp_outcome out;
	struct tp_invocation inv;
	int code;

	memset(keep ? keep : &inv, 0, sizeof(inv)); /* freed whatever happens below */
	run->escape = tp_run_escapes_output(&run->opts);
	/* a shell's session is its terminal's (stdout, which it checked): shown there, and
	 * escaped unless --escape never */
	run->log_fd = run->shell ? STDOUT_FILENO : STDERR_FILENO;
	run->escape = run->escape || (run->shell && run->opts.escape == TP_ESCAPE_AUTO);
	run->ascii = !tp_term_locale_is_utf8(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG"));
	/* a shell's output is all the service's: its lines are not marked */
	tp_term_escape_init(&run->esc, run->ascii, run->shell ? NULL : TP_TERM_SERVICE_MARK);
	code = make_config(run);
	if (code == 0 && run->opts.cas)
		code = cas_keys(run);
	/* refusals come in the order they always have: a bundle's input is read before
	 * the bundle is opened, a script's once the script is found */
	if (code == 0 && run->cfg.is_bundle)
		code = load_inputs(run);
	if (code)
		return interrupted ? TP_EXIT_INTERRUPTED : code;
	if (tp_invocation_open(&run->cfg, keep ? keep : &inv, &out) == 0) {
		/* the keys were released for the bundle measured; the file may have
		 * changed since, and no other bundle runs with them */
		if (run->cas_on &&
		    !tp_run_cas_same_bundle(&run->cas, &(keep ? keep : &inv)->bundle)) {
			tp_outcome_free(&out);
			if (!keep)
				tp_invocation_free(&inv);
			return refused(TP_EXIT_BUNDLE,
				       "%s: refused: the bundle changed after it was attested; its "
				       "keys are not used for another",
				       run->opts.script);
		}
		if (!run->cfg.is_bundle && (code = load_inputs(run)) != 0) {
			tp_outcome_free(&out);
			if (!keep)
				tp_invocation_free(&inv);
			return interrupted ? TP_EXIT_INTERRUPTED : code;
		}
		run->cfg.input = run->input;
		run->cfg.input_size = run->input_size;
		run->cfg.data_fds = run->data_fds;
		tp_invocation_run(keep ? keep : &inv, &out);
	}
	log_end(run);
	finish_result(run, &out);
	if (out.log_dropped) {
		char cap[32], dropped[32];
		if (run->log_line_open) /* teepy's line starts a line of its own */
			tp_write_full(run->log_fd, "\n", 1);
		tp_warn(
		    "the service's output was cut at %s: %s more were dropped (raise --log-max)",
		    tp_format_size(run->cfg.limits.log_max_bytes, cap, sizeof(cap)),
		    tp_format_size(out.log_dropped, dropped, sizeof(dropped)));
	}
	if (timing_on) {
		tp_info(
		    "usage  peak RSS %ld KiB, user %.3f s, system %.3f s", out.rusage.ru_maxrss,
		    (double)out.rusage.ru_utime.tv_sec + (double)out.rusage.ru_utime.tv_usec / 1e6,
		    (double)out.rusage.ru_stime.tv_sec + (double)out.rusage.ru_stime.tv_usec / 1e6);
	}
	show_shell_result(run, &out);
	code = report(run, &out);
	if (out.volume.published) {
		char size[32];
		tp_info("output volume %s: version %llu, %zu file%s, %s", run->opts.output_volume,
			(unsigned long long)out.volume.version, out.volume.files,
			out.volume.files == 1 ? "" : "s",
			tp_format_size(out.volume.bytes, size, sizeof(size)));
	}
	if (run->traced_out) {
		run->traced_out->had_result = out.have_result;
		run->traced_out->result_size = out.result_size;
		run->traced_out->preload_failed = out.preload_failed;
	}
	if (!run->opts.output_file && run->discard_result && out.result_fd > STDERR_FILENO)
		close(out.result_fd); /* /dev/null */
	tp_outcome_free(&out);
	if (!keep)
		tp_invocation_free(&inv);
	return code;
}

int tp_cmd_run(int argc, char **argv)
{
	struct cli_run run = { .listen_fd = -1 };
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
	code = run_with(&run, NULL);
	cli_run_free(&run);
	if (timing_on)
		mark("cleaned up");
	return code;
}

int tp_run_traced(const struct tp_run_opts *opts, const struct tp_strlist *preload,
		  struct tp_trace_log *log, struct tp_traced_run *out)
{
	struct cli_run run = { 0 };
	struct tp_invocation inv;
	int code;

	if (!(run.preload = calloc(preload->count + 1, sizeof(char *))))
		return TP_EXIT_INTERNAL;
	for (size_t i = 0; i < preload->count; i++)
		run.preload[i] = preload->items[i];
	run.opts = *opts; /* borrowed: the caller frees it */
	run.discard_result = true;
	run.traced_out = out;
	run.trace_log = log;
	code = run_with(&run, &inv);
	snprintf(out->script, sizeof(out->script), "%s", inv.script);
	snprintf(out->script_dir, sizeof(out->script_dir), "%s", inv.script_dir);
	snprintf(out->venv_dir, sizeof(out->venv_dir), "%s", inv.venv_dir);
	out->plan = inv.plan; /* the caller filters traced paths by what was visible */
	out->python_path = inv.python_path;
	out->site_dirs = inv.site_dirs;
	memset(&inv.plan, 0, sizeof(inv.plan));
	memset(&inv.python_path, 0, sizeof(inv.python_path));
	memset(&inv.site_dirs, 0, sizeof(inv.site_dirs));
	tp_invocation_free(&inv);
	memset(&run.opts, 0, sizeof(run.opts));
	cli_run_free(&run);
	return code;
}

int tp_run_shell(const struct tp_run_opts *opts, const struct tp_run_shell_io *io)
{
	struct cli_run run = { .listen_fd = -1 };
	int code;

	timing_on = getenv("TEEPY_TIMING") && strcmp(getenv("TEEPY_TIMING"), "1") == 0;
	clock_gettime(CLOCK_MONOTONIC, &timing_start);
	run.opts = *opts; /* borrowed: the caller frees it */
	run.shell = io;
	code = run_with(&run, NULL);
	memset(&run.opts, 0, sizeof(run.opts));
	cli_run_free(&run);
	return code;
}
