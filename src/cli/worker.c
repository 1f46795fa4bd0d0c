/* `teepy deploy`, `teepy invoke`, `teepy services` and `teepy data put`: a worker's
 * clients (docs/api.md, "Client commands"), over HTTP through cas/client.h's libcurl
 * call. Keys leave this process only with --insecure-dev-keys. */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "invoke_sealed.h"
#include "worker_client.h"
#include "../cas/cas.h"
#include "../cas/client.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/term.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum worker_flag {
	W_HELP = 1,
	W_WORKER,
	W_SERVICE_DATA,
	W_CONFIG_ID,
	W_INSECURE,
	W_BUNDLE_KEY,
	W_DATA_KEY,
	W_INPUT,
	W_INPUT_FILE,
	W_TASK_DATA,
	W_JSON,
	W_SEALED,
	W_EXPECT_APP,
	W_EXPECT_RUNTIME,
	W_TRUST_PLATFORM,
};

#define WORKER_FLAG                                                                                \
	{                                                                                          \
		W_WORKER, "worker", 0, "URL", "TEEPY_WORKER",                                      \
		    "the worker: http://HOST:PORT (or https:// behind a proxy, its certificate "   \
		    "verified)"                                                                    \
	}
#define HELP_FLAG                                                                                  \
	{                                                                                          \
		W_HELP, "help", 'h', NULL, NULL, "show this help"                                  \
	}

static const struct tp_flag deploy_flags[] = {
	WORKER_FLAG,
	{ W_SERVICE_DATA, "service-data", 0, "ID", NULL,
	  "a data item the worker holds (teepy data put printed its id), given to every "
	  "invocation before its task data; repeat, in order" },
	{ W_CONFIG_ID, "config-id", 0, "P/S", NULL,
	  "the keys by attestation from the worker's CAS: policy/service (a worker started "
	  "with --cas)" },
	{ W_INSECURE, "insecure-dev-keys", 0, NULL, NULL,
	  "send the keys below to the worker, which keeps them in plaintext: development only" },
	{ W_BUNDLE_KEY, "bundle-key", 0, "KEY", NULL,
	  "with --insecure-dev-keys: the key of an encrypted bundle (teepy keygen --symmetric)" },
	{ W_DATA_KEY, "data-key", 0, "ID=KEYFILE", NULL,
	  "with --insecure-dev-keys: the key of the sealed service data item ID; repeat" },
	HELP_FLAG,
	TP_FLAGS_END,
};

static const struct tp_flag invoke_flags[] = {
	WORKER_FLAG,
	{ W_INPUT, "input", 0, "STR", NULL, "the input (default: standard input)" },
	{ W_INPUT_FILE, "input-file", 0, "FILE", NULL, "the input: FILE's bytes (UTF-8 text)" },
	{ W_TASK_DATA, "task-data", 0, "ID", NULL,
	  "a data item the worker holds, after the service's own data; repeat, in order" },
	{ W_INSECURE, "insecure-dev-keys", 0, NULL, NULL,
	  "send the keys below to the worker: development only" },
	{ W_DATA_KEY, "data-key", 0, "ID=KEYFILE", NULL,
	  "with --insecure-dev-keys: the key of the sealed task data item ID; repeat" },
	{ W_JSON, "json", 0, NULL, NULL,
	  "print the worker's whole answer (result or error, usage, log) as JSON on stdout" },
	TP_FLAG_HEADING("Confidential invocation (docs/api.md):"),
	{ W_SEALED, "sealed", 0, NULL, NULL,
	  "seal the input to a key only an attested instance of the service holds, and get the "
	  "answer sealed back: the worker's HTTP process, logs and store see ciphertext" },
	{ W_EXPECT_APP, "expect-app", 0, "HEX", NULL,
	  "with --sealed: the app measurement the service's evidence must name (teepy inspect "
	  "prints it); otherwise nothing is sent" },
	{ W_EXPECT_RUNTIME, "expect-runtime", 0, "HEX", NULL,
	  "with --sealed: the worker's runtime measurement its evidence must name (teepy serve "
	  "prints it)" },
	{ W_TRUST_PLATFORM, "trust-platform", 0, "P", NULL,
	  "with --sealed: a platform trusted to vouch for it: a platform key's .pub (sim "
	  "evidence, SIMULATION), tdx:MRTD[:RTMR0:RTMR1:RTMR2:RTMR3] or snp:MEASUREMENT (hw, in "
	  "hex); repeat" },
	HELP_FLAG,
	TP_FLAGS_END,
};

static const struct tp_flag services_flags[] = {
	WORKER_FLAG,
	{ W_JSON, "json", 0, NULL, NULL, "print the worker's answer as JSON" },
	HELP_FLAG,
	TP_FLAGS_END,
};

static const struct tp_exit_use deploy_exits[] = {
	{ TP_EXIT_OK, "deployed (or deployed already): the service id is on stdout" },
	{ TP_EXIT_USAGE, "usage error; a bundle or key file that cannot be read; the worker "
			 "refused the request (its words on one line) or cannot be reached" },
	{ TP_EXIT_INTERNAL, "libcurl or OpenSSL's libcrypto cannot be loaded, or the worker "
			    "failed (HTTP 500)" },
	{ 0, NULL },
};

static const struct tp_exit_use services_exits[] = {
	{ TP_EXIT_OK, "listed" },
	{ TP_EXIT_USAGE, "usage error; the worker refused the request or cannot be reached" },
	{ TP_EXIT_INTERNAL, "libcurl or OpenSSL's libcrypto cannot be loaded, or the worker "
			    "failed (HTTP 500)" },
	{ 0, NULL },
};

static const struct tp_exit_use invoke_exits[] = {
	{ TP_EXIT_OK, "the service returned a result, on stdout" },
	{ TP_EXIT_SERVICE_FAILED, "the service failed (failed)" },
	{ TP_EXIT_USAGE, "usage error; an input that cannot be read or is not UTF-8; the worker "
			 "refused the request (its words on one line: an unknown service, busy, "
			 "too large) or cannot be reached; the invocation cannot run as asked "
			 "(config)" },
	{ TP_EXIT_NO_RESULT, "the service ended without a result (no_result)" },
	{ TP_EXIT_RULE, "killed for a rule (rule)" },
	{ TP_EXIT_MEMORY, "memory limit exceeded (memory)" },
	{ TP_EXIT_CPU, "CPU time limit exceeded (cpu)" },
	{ TP_EXIT_TIMEOUT, "the worker's wall clock ran out (timeout)" },
	{ TP_EXIT_BUNDLE, "the bundle was refused at run time (refused)" },
	{ TP_EXIT_KEY_MISSING, "the worker holds no key for a sealed item, or for the sealed "
			       "input (key_missing)" },
	{ TP_EXIT_ATTESTATION_DENIED,
	  "--sealed: the service's evidence does not verify, names another app, runtime or "
	  "nonce, or no trusted platform vouches for it: nothing was sent" },
	{ TP_EXIT_INTERNAL, "libcurl or OpenSSL's libcrypto cannot be loaded; the runner or "
			    "the worker failed "
			    "(internal), or an end this teepy does not know" },
	{ 0, NULL },
};

const struct tp_command_help tp_deploy_help = {
	.name = "deploy",
	.synopsis = "APP.tpy --worker URL [--service-data ID ...] [--config-id P/S]\n"
		    "APP.tpy --worker URL [--service-data ID ...] --insecure-dev-keys "
		    "[--bundle-key KEY] [--data-key ID=KEYFILE ...]",
	.about = "Uploads a sealed bundle to a worker (teepy serve) and deploys it as a service\n"
		 "with its service data: the items the worker holds (teepy data put). Prints the\n"
		 "service id on stdout (docs/api.md). The worker checks the bundle's signature\n"
		 "against its own trusted signers. Keys come from the worker's CAS (--config-id)\n"
		 "or, in development only, are sent with the deployment (--insecure-dev-keys):\n"
		 "the worker then keeps them in plaintext.\n",
	.flags = deploy_flags,
	.exits = deploy_exits,
};

const struct tp_command_help tp_invoke_help = {
	.name = "invoke",
	.synopsis =
	    "SERVICE_ID --worker URL [--input STR | --input-file FILE] [--task-data ID ...]\n"
	    "SERVICE_ID --worker URL --insecure-dev-keys --data-key ID=KEYFILE ... "
	    "[--task-data ID ...]\n"
	    "SERVICE_ID --worker URL [--input STR | --input-file FILE] --sealed --expect-app HEX "
	    "--trust-platform P ... [--expect-runtime HEX]",
	.about =
	    "Invokes a deployed service on a worker: the input (--input, --input-file, else\n"
	    "standard input) and the task data, items the worker holds (teepy data put),\n"
	    "which the service reads after its own. The result is printed on stdout as it\n"
	    "came, the service's log on stderr, and the exit code is teepy run's for the\n"
	    "same end (docs/api.md). With --sealed, the worker's evidence for the service's\n"
	    "key is checked first (the app, this call's nonce, a trusted platform), the input\n"
	    "is sealed to that key and the answer comes back sealed to this call: the worker's\n"
	    "HTTP process, its log and its store see ciphertext only.\n",
	.flags = invoke_flags,
	.exits = invoke_exits,
};

const struct tp_command_help tp_services_help = {
	.name = "services",
	.synopsis = "--worker URL [--json]",
	.about = "The services a worker holds, in the order they were deployed: one line each,\n"
		 "the service id, the app measurement, its state and its invocations.\n",
	.flags = services_flags,
	.exits = services_exits,
};

/* ---- the worker and one request ---- */

struct worker {
	const char *command; /* "deploy", "data put": in messages */
	struct tp_http_peer peer;
};

/* The worker from --worker or TEEPY_WORKER, checked, and libcurl loaded. Returns 0 or
 * an exit code said. help names the command's --help. */
static int worker_open(struct worker *w, const char *command, const char *help, const char *url)
{
	char err[512];

	if (!url && getenv("TEEPY_WORKER") && *getenv("TEEPY_WORKER"))
		url = getenv("TEEPY_WORKER");
	if (!url) {
		tp_error("%s: missing --worker URL (or TEEPY_WORKER; see teepy %s --help)", command,
			 help);
		return TP_EXIT_USAGE;
	}
	if (tp_http_check_url(url, "--worker", err, sizeof(err)) < 0) {
		tp_error("%s: %s", command, err);
		return TP_EXIT_USAGE;
	}
	*w = (struct worker){
		.command = command,
		.peer = { .url = url,
			  .name = "the worker",
			  .answer_max = TP_WORKER_ANSWER_MAX,
			  .timeout_s = TP_WORKER_CALL_S },
	};
	if (tp_crypto_load(err, sizeof(err)) < 0 || tp_cas_load(err, sizeof(err)) < 0) {
		tp_error("%s: %s", command, err);
		return TP_EXIT_INTERNAL;
	}
	return 0;
}

/* A failed request (r from tp_http_call, err its line) said in one line. Returns its
 * exit code. */
static int say_failure(const struct worker *w, int r, const char *err, long status)
{
	if (r == -EREMOTEIO) {
		tp_error("%s: the worker refused: %s", w->command, err);
		return tp_worker_exit_for(NULL, false, status);
	}
	tp_error("%s: %s", w->command, err);
	return r == -ENOSYS || r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
}

/* One JSON request (body NULL: none). Returns 0 with *answer, or an exit code said. */
static int call(const struct worker *w, const char *method, const char *path, const json_t *body,
		long timeout_s, long *status, json_t **answer)
{
	struct tp_http_peer peer = w->peer;
	const struct tp_http_body b = { .json = body, .fd = -1 };
	char err[1024];
	int r;

	peer.timeout_s = timeout_s;
	r = tp_http_call(&peer, method, path, body ? &b : NULL, status, answer, err, sizeof(err));
	if (r == 0)
		return 0;
	json_decref(*answer);
	*answer = NULL;
	return say_failure(w, r, err, *status);
}

/* A string member of the answer, or "?". */
static const char *member(const json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s ? s : "?";
}

static int print_json(const json_t *answer)
{
	return json_dumpf(answer, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
		       putchar('\n') != EOF && fflush(stdout) == 0 ?
		   0 :
		   -EIO;
}

/* A regular file opened for an upload: the fd and its size, or -1 with the line said. */
static int open_upload(const char *command, const char *path, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		tp_error("%s: %s: %s", command, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		tp_error("%s: %s: not a regular file", command, path);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

/* path's bytes streamed to the worker's endpoint ("/v1/bundles"); the id the answer
 * gives under id_name must be their SHA-256, which is computed as they are sent.
 * Returns 0 with *answer and *status, or an exit code said. */
static int upload(const struct worker *w, const char *path, int fd, uint64_t size,
		  const char *endpoint, const char *id_name, long *status, json_t **answer)
{
	struct tp_http_peer peer = w->peer;
	struct tp_http_body b = { .fd = fd, .size = size, .hash = tp_sha256_new() };
	uint8_t digest[TP_SHA256_SIZE];
	char err[1024], sent[2 * TP_SHA256_SIZE + 1], got[TP_WORKER_ID_HEX + 1];
	int r;

	if (!b.hash) {
		tp_error("%s: out of memory", w->command);
		return TP_EXIT_INTERNAL;
	}
	peer.timeout_s = 0; /* a large upload takes what it takes; connecting does not */
	r = tp_http_call(&peer, "POST", endpoint, &b, status, answer, err, sizeof(err));
	tp_sha256_final(b.hash, digest);
	if (r == -ENODATA) {
		tp_error("%s: %s: %s", w->command, path, err);
		return TP_EXIT_USAGE;
	}
	if (r < 0) {
		json_decref(*answer);
		*answer = NULL;
		return say_failure(w, r, err, *status);
	}
	tp_hex(digest, sizeof(digest), sent);
	if (tp_worker_id_parse(member(*answer, id_name), got) < 0 || strcmp(got, sent) != 0) {
		tp_error("%s: %s: the worker's answer gives as its %s '%.64s', not the SHA-256 of "
			 "what was sent (%s)",
			 w->command, path, id_name, member(*answer, id_name), sent);
		json_decref(*answer);
		*answer = NULL;
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* ---- keys sent with --insecure-dev-keys ---- */

#define KEYS_MAX 64

struct dev_keys {
	bool insecure;		/* --insecure-dev-keys */
	const char *bundle_key; /* its file, or NULL */
	const char *data_specs[KEYS_MAX];
	size_t data_count;
};

/* A key file's key as the base64 the worker takes, into a new JSON string; every
 * other copy is wiped. Returns 0 or an exit code said. */
static int key_string(const char *command, const char *flag, const char *path, json_t **out)
{
	uint8_t *key = tp_secret_alloc(TP_SYMKEY_SIZE);
	char err[512], *b64 = NULL;
	int code = TP_EXIT_OK;

	if (!key) {
		tp_error("%s: out of memory", command);
		return TP_EXIT_INTERNAL;
	}
	if (tp_symkey_read(path, key, err, sizeof(err)) < 0) {
		tp_error("%s: %s %s: %s", command, flag, path, err);
		code = TP_EXIT_USAGE;
	} else if (!(b64 = tp_base64_encode(key, TP_SYMKEY_SIZE)) || !(*out = json_string(b64))) {
		tp_error("%s: out of memory", command);
		code = TP_EXIT_INTERNAL;
	}
	if (b64) {
		explicit_bzero(b64, strlen(b64));
		free(b64);
	}
	tp_secret_free(key, TP_SYMKEY_SIZE);
	return code;
}

/* Every string under v wiped: jansson frees without wiping, and these are keys. */
static void wipe_strings(json_t *v)
{
	const char *name;
	json_t *x;

	if (json_is_string(v)) {
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
		return;
	}
	json_object_foreach(v, name, x)
	{
		wipe_strings(x);
	}
}

/* The data keys as {ID: base64}, each ID one of ids (count of them: the service's or
 * the task's data, named by flag). Returns 0 with *out (NULL without keys), or an
 * exit code said. */
static int data_keys(const char *command, const struct dev_keys *k,
		     const char (*ids)[TP_WORKER_ID_HEX + 1], size_t count, const char *flag,
		     json_t **out)
{
	json_t *keys = NULL, *value = NULL;
	char id[TP_WORKER_ID_HEX + 1];
	const char *path;
	int code = 0;

	*out = NULL;
	if (k->data_count == 0)
		return 0;
	if (!(keys = json_object())) {
		tp_error("%s: out of memory", command);
		return TP_EXIT_INTERNAL;
	}
	for (size_t i = 0; i < k->data_count && code == 0; i++) {
		bool named = false;
		if (tp_worker_key_spec_parse(k->data_specs[i], id, &path) < 0) {
			tp_error("%s: --data-key %.200s: not ID=KEYFILE (ID: a data item's 64 hex "
				 "digits, as teepy data put printed them)",
				 command, k->data_specs[i]);
			code = TP_EXIT_USAGE;
			break;
		}
		for (size_t j = 0; j < count; j++)
			named |= strcmp(ids[j], id) == 0;
		if (!named || json_object_get(keys, id)) {
			tp_error("%s: --data-key %.16s…: %s%s%s", command, id,
				 named ? "a second key for the same item" : "not one of the ",
				 named ? "" : flag, named ? "" : " items");
			code = TP_EXIT_USAGE;
			break;
		}
		if ((code = key_string(command, "--data-key", path, &value)) == 0 &&
		    json_object_set_new(keys, id, value) < 0) {
			tp_error("%s: out of memory", command);
			code = TP_EXIT_INTERNAL;
		}
	}
	if (code) {
		wipe_strings(keys);
		json_decref(keys);
		return code;
	}
	*out = keys;
	return 0;
}

/* The checks of --insecure-dev-keys and the keys. Returns 0 or an exit code said. */
static int check_keys(const char *command, const struct dev_keys *k, const char *config_id)
{
	bool any = k->bundle_key || k->data_count;

	if (any && !k->insecure) {
		tp_error("%s: %s is sent to the worker only with --insecure-dev-keys (development "
			 "only: the worker keeps it in plaintext%s)",
			 command, k->bundle_key ? "--bundle-key" : "--data-key",
			 config_id || strcmp(command, "deploy") != 0 ?
			     "" :
			     "; a production worker gets keys from its CAS: --config-id P/S");
		return TP_EXIT_USAGE;
	}
	if (k->insecure && !any) {
		tp_error("%s: --insecure-dev-keys without --bundle-key or --data-key sends no key",
			 command);
		return TP_EXIT_USAGE;
	}
	if (k->insecure && config_id) {
		tp_error("%s: --config-id and --insecure-dev-keys: the keys come from the CAS or "
			 "with the deployment, not both",
			 command);
		return TP_EXIT_USAGE;
	}
	return 0;
}

static void warn_keys_sent(const struct worker *w)
{
	tp_warn("%s: --insecure-dev-keys: the keys are sent to the worker at %s, which keeps "
		"them in plaintext (development only)",
		w->command, w->peer.url);
}

/* ---- the flags every command parses alike ---- */

#define IDS_MAX 256

#define PLATFORMS_MAX 16

struct worker_args {
	const char *worker, *operand, *config_id, *input, *input_file;
	bool sealed;
	const char *expect_app, *expect_runtime;
	const char *platforms[PLATFORMS_MAX + 1];
	size_t platform_count;
	char ids[IDS_MAX][TP_WORKER_ID_HEX + 1]; /* --service-data or --task-data */
	size_t id_count;
	struct dev_keys keys;
	bool json;
};

/* Parses argv by flags. Returns 0, -1 for --help (printed), or an exit code said. */
static int parse(const char *command, const struct tp_flag *flags,
		 const struct tp_command_help *help, int argc, char **argv, struct worker_args *a)
{
	struct tp_flag_parser p;
	char err[512];
	int r;

	if (tp_flags_start(&p, command, flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("%s: %s", command, err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (a->operand || flags == services_flags) {
				tp_error("%s: unexpected argument '%s' (see teepy %s --help)",
					 command, p.value, command);
				return TP_EXIT_USAGE;
			}
			a->operand = p.value;
			continue;
		}
		switch (p.flag->id) {
		case W_HELP:
			tp_help_print(stdout, help);
			return -1;
		case W_WORKER:
			a->worker = p.value;
			break;
		case W_SERVICE_DATA:
		case W_TASK_DATA:
			if (a->id_count == IDS_MAX ||
			    tp_worker_id_parse(p.value, a->ids[a->id_count]) < 0) {
				tp_error("%s: %s %.80s: %s", command, p.given, p.value,
					 a->id_count == IDS_MAX ?
					     "too many items" :
					     "not a data id (64 hex digits, as teepy data put "
					     "printed them)");
				return TP_EXIT_USAGE;
			}
			a->id_count++;
			break;
		case W_CONFIG_ID:
			a->config_id = p.value;
			break;
		case W_INSECURE:
			a->keys.insecure = true;
			break;
		case W_BUNDLE_KEY:
			a->keys.bundle_key = p.value;
			break;
		case W_DATA_KEY:
			if (a->keys.data_count == KEYS_MAX) {
				tp_error("%s: --data-key: more than %d keys", command, KEYS_MAX);
				return TP_EXIT_USAGE;
			}
			a->keys.data_specs[a->keys.data_count++] = p.value;
			break;
		case W_INPUT:
			a->input = p.value;
			break;
		case W_INPUT_FILE:
			a->input_file = p.value;
			break;
		case W_JSON:
			a->json = true;
			break;
		case W_SEALED:
			a->sealed = true;
			break;
		case W_EXPECT_APP:
			a->expect_app = p.value;
			break;
		case W_EXPECT_RUNTIME:
			a->expect_runtime = p.value;
			break;
		case W_TRUST_PLATFORM:
			if (a->platform_count < PLATFORMS_MAX + 1)
				a->platforms[a->platform_count++] = p.value;
			break;
		}
	}
	if (p.dashdash) {
		tp_error("%s: unexpected argument '--' (see teepy %s --help)", command, command);
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* ---- deploy ---- */

/* The service's request without its bundle id: the service data, the config id, and
 * with --insecure-dev-keys the keys, read before anything is sent. Returns 0 with
 * *body, or an exit code said. */
static int deploy_body(const struct worker_args *a, json_t **body)
{
	json_t *keys = NULL, *dk = NULL, *bk = NULL;
	int code = 0;

	if (!(*body = json_pack("{s:[]}", "service_data")))
		goto oom;
	for (size_t i = 0; i < a->id_count; i++)
		if (json_array_append_new(json_object_get(*body, "service_data"),
					  json_string(a->ids[i])) < 0)
			goto oom;
	if (a->config_id && json_object_set_new(*body, "config_id", json_string(a->config_id)) < 0)
		goto oom;
	if (!a->keys.insecure)
		return 0;
	/* the body owns keys from here; keys stays valid as long as it */
	if (!(keys = json_object()) || json_object_set_new(*body, "keys", keys) < 0)
		goto oom;
	if (a->keys.bundle_key) {
		if ((code = key_string("deploy", "--bundle-key", a->keys.bundle_key, &bk)) != 0)
			goto fail;
		if (json_object_set_new(keys, "bundle_key", bk) < 0)
			goto oom;
	}
	if ((code = data_keys("deploy", &a->keys, a->ids, a->id_count, "--service-data", &dk)) != 0)
		goto fail;
	if (dk && json_object_set_new(keys, "data_keys", dk) < 0)
		goto oom;
	return 0;
oom:
	tp_error("deploy: out of memory");
	code = TP_EXIT_INTERNAL;
fail:
	wipe_strings(json_object_get(*body, "keys"));
	json_decref(*body);
	*body = NULL;
	return code;
}

int tp_cmd_deploy(int argc, char **argv)
{
	struct worker_args a = { 0 };
	struct worker w;
	json_t *body = NULL, *bundle = NULL, *service = NULL;
	uint64_t size = 0;
	long status = 0, service_status = 0;
	char size_text[32], id[TP_WORKER_ID_HEX + 1];
	int fd = -1, code;

	if ((code = parse("deploy", deploy_flags, &tp_deploy_help, argc, argv, &a)) != 0)
		return code < 0 ? TP_EXIT_OK : code;
	if (!a.operand) {
		tp_error("deploy: missing APP.tpy (see teepy deploy --help)");
		return TP_EXIT_USAGE;
	}
	if (a.config_id && (!strchr(a.config_id, '/') || strlen(a.config_id) > 256)) {
		tp_error("deploy: --config-id %.80s: not POLICY/SERVICE", a.config_id);
		return TP_EXIT_USAGE;
	}
	if ((code = check_keys("deploy", &a.keys, a.config_id)) != 0 ||
	    (code = worker_open(&w, "deploy", "deploy", a.worker)) != 0)
		return code;
	/* key material never reaches a core dump */
	tp_secret_no_core(true);
	if ((fd = open_upload("deploy", a.operand, &size)) < 0)
		return TP_EXIT_USAGE;
	if ((code = deploy_body(&a, &body)) != 0) {
		close(fd);
		return code;
	}
	if (a.keys.insecure)
		warn_keys_sent(&w);
	code = upload(&w, a.operand, fd, size, "/v1/bundles", "bundle", &status, &bundle);
	close(fd);
	if (code == 0 &&
	    json_object_set_new(body, "bundle", json_string(member(bundle, "bundle"))) < 0) {
		tp_error("deploy: out of memory");
		code = TP_EXIT_INTERNAL;
	}
	if (code == 0)
		code = call(&w, "POST", "/v1/services", body, TP_WORKER_CALL_S, &service_status,
			    &service);
	if (code == 0 && tp_worker_id_parse(member(service, "service"), id) < 0) {
		tp_error("deploy: the worker's answer holds no service id");
		code = TP_EXIT_USAGE;
	}
	if (code == 0) {
		printf("%s\n", id);
		tp_info("deploy: %s (%s, bundle %.16s…%s) %s service %.16s… on %s, %zu service "
			"data item%s, keys: %s",
			a.operand, tp_format_size(size, size_text, sizeof(size_text)),
			member(bundle, "bundle"), status == 200 ? ", held already" : "",
			service_status == 200 ? "was deployed already as" : "deployed as", id,
			w.peer.url, a.id_count, a.id_count == 1 ? "" : "s",
			member(service, "keys"));
		code = fflush(stdout) == 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
	}
	wipe_strings(json_object_get(body, "keys"));
	json_decref(body);
	json_decref(bundle);
	json_decref(service);
	return code;
}

/* ---- data put ---- */

int tp_worker_data_put(const char *worker, const char *path)
{
	struct worker w;
	json_t *answer = NULL;
	uint64_t size = 0;
	long status = 0;
	char size_text[32];
	int fd, code;

	if ((code = worker_open(&w, "data put", "data", worker)) != 0)
		return code;
	if ((fd = open_upload("data put", path, &size)) < 0)
		return TP_EXIT_USAGE;
	if (!tp_data_is_sealed(fd)) {
		close(fd);
		tp_error("data put: %s: not a sealed data item; nothing was sent (seal it first: "
			 "teepy data seal %s)",
			 path, path);
		return TP_EXIT_DATA_REFUSED;
	}
	code = upload(&w, path, fd, size, "/v1/data", "data", &status, &answer);
	close(fd);
	if (code)
		return code;
	printf("%s\n", member(answer, "data"));
	tp_info("data put: %s (%s) %s on %s as %.16s…", path,
		tp_format_size(size, size_text, sizeof(size_text)),
		status == 200 ? "was held already" : "stored", w.peer.url, member(answer, "data"));
	json_decref(answer);
	return fflush(stdout) == 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
}

/* ---- invoke ---- */

static void write_stderr(void *ctx, const char *bytes, size_t size)
{
	(void)ctx;
	tp_write_full(STDERR_FILENO, bytes, size);
}

/* The service's log on stderr: byte for byte, or on a terminal escaped and its lines
 * marked as teepy run shows them. */
static void print_log(const json_t *answer)
{
	json_t *log = json_object_get(answer, "log");
	const char *text = json_string_value(log);
	size_t size = json_string_length(log);

	if (!text || !size)
		return;
	if (isatty(STDERR_FILENO)) {
		struct tp_term_escape esc;
		tp_term_escape_init(
		    &esc,
		    !tp_term_locale_is_utf8(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG")),
		    TP_TERM_SERVICE_MARK);
		tp_term_escape_write(&esc, text, size, write_stderr, NULL);
		tp_term_escape_flush(&esc, write_stderr, NULL);
		if (esc.in_line)
			write_stderr(NULL, "\n", 1);
	} else {
		write_stderr(NULL, text, size);
	}
	if (json_is_true(json_object_get(answer, "log_truncated")))
		tp_info("invoke: the service's log was longer than the worker keeps: its first "
			"part is shown");
}

/* The input: --input, --input-file, or standard input. Returns 0 with *out, or an
 * exit code said. */
static int read_input(const struct worker_args *a, json_t **out)
{
	char *bytes = NULL;
	size_t size = 0;
	int fd = STDIN_FILENO, r;

	if (a->input) {
		size = strlen(a->input);
		if (!(*out = json_stringn(a->input, size)))
			goto not_text;
		return 0;
	}
	if (a->input_file && (fd = open(a->input_file, O_RDONLY | O_CLOEXEC)) < 0) {
		tp_error("invoke: --input-file %s: %s", a->input_file, strerror(errno));
		return TP_EXIT_USAGE;
	}
	r = tp_read_all(fd, TP_WORKER_INPUT_MAX, &bytes, &size);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r < 0) {
		tp_error("invoke: %s: %s", a->input_file ? a->input_file : "standard input",
			 r == -EFBIG ? "larger than 1 GiB" : strerror(-r));
		return TP_EXIT_USAGE;
	}
	*out = json_stringn(bytes, size);
	if (bytes)
		explicit_bzero(bytes, size);
	free(bytes);
	if (!*out)
		goto not_text;
	return 0;
not_text:
	tp_error("invoke: %s: not UTF-8 text (the worker takes the input as a JSON string)",
		 a->input      ? "--input" :
		 a->input_file ? a->input_file :
				 "standard input");
	return TP_EXIT_USAGE;
}

/* An answer that is an invocation's end other than a result: its log, then the
 * runner's line as teepy run prints it. Returns the exit code. */
static int report_end(const struct worker_args *a, const json_t *answer, long status)
{
	json_t *e = json_object_get(answer, "error");
	const char *kind = json_string_value(json_object_get(e, "kind"));
	const char *message = json_string_value(json_object_get(e, "message"));
	bool ascii = !tp_term_locale_is_utf8(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG"));
	char shown[2048];

	if (!a->json)
		print_log(answer);
	tp_error("%s", tp_term_escape_line(message ? message : "the invocation failed", ascii,
					   shown, sizeof(shown)));
	return tp_worker_exit_for(kind, true, status);
}

/* --sealed: sc begun (a nonce, a reply key), the service's evidence asked for with
 * its nonce and checked against t before anything else is sent; then input (taken)
 * sealed to the key it vouches for as the body's sealed_input. Returns 0 with *body,
 * or an exit code said. */
static int sealed_body(const struct worker *w, const char *service,
		       const char (*task_ids)[TP_WORKER_ID_HEX + 1], size_t count,
		       const struct tp_sealed_trust *t, struct tp_sealed_call *sc, json_t *input,
		       json_t **body)
{
	json_t *ask = NULL, *answer = NULL, *sealed = NULL;
	char path[128], nonce[2 * sizeof(sc->nonce) + 1];
	long status = 0;
	int code;

	*body = NULL;
	if ((code = tp_sealed_begin(sc)) != 0)
		goto out;
	tp_hex(sc->nonce, sizeof(sc->nonce), nonce);
	snprintf(path, sizeof(path), "/v1/services/%s/evidence", service);
	if (!(ask = json_pack("{s:s}", "nonce", nonce)))
		goto oom;
	if ((code = call(w, "POST", path, ask, TP_WORKER_CALL_S, &status, &answer)) == 0 &&
	    (code = tp_sealed_verify(t, answer, sc)) == 0 &&
	    (code = tp_sealed_input(sc, service, task_ids, count, json_string_value(input),
				    json_string_length(input), &sealed)) == 0 &&
	    !(*body = json_pack("{s:o, s:[]}", "sealed_input", sealed, "task_data")))
		goto oom;
	goto out;
oom:
	tp_error("invoke: out of memory");
	code = TP_EXIT_INTERNAL;
out:
	json_decref(ask);
	json_decref(answer);
	explicit_bzero((char *)json_string_value(input), json_string_length(input));
	json_decref(input);
	return code;
}

int tp_cmd_invoke(int argc, char **argv)
{
	struct worker_args a = { 0 };
	struct worker w;
	struct tp_sealed_trust trust;
	struct tp_sealed_call sc = { 0 };
	json_t *body = NULL, *input = NULL, *keys = NULL, *answer = NULL, *opened = NULL;
	char service[TP_WORKER_ID_HEX + 1], path[128], err[1024] = "";
	long status = 0;
	int code, r;

	if ((code = parse("invoke", invoke_flags, &tp_invoke_help, argc, argv, &a)) != 0)
		return code < 0 ? TP_EXIT_OK : code;
	if (!a.operand || tp_worker_id_parse(a.operand, service) < 0) {
		tp_error("invoke: %s (see teepy invoke --help)",
			 a.operand ? "SERVICE_ID is 64 hex digits, as teepy deploy printed them" :
				     "missing SERVICE_ID");
		return TP_EXIT_USAGE;
	}
	if (a.input && a.input_file) {
		tp_error("invoke: --input and --input-file: give the input once");
		return TP_EXIT_USAGE;
	}
	if (!a.sealed && (a.expect_app || a.expect_runtime || a.platform_count)) {
		tp_error("invoke: %s applies to --sealed", a.expect_app	    ? "--expect-app" :
							   a.expect_runtime ? "--expect-runtime" :
									      "--trust-platform");
		return TP_EXIT_USAGE;
	}
	if ((code = check_keys("invoke", &a.keys, NULL)) != 0 ||
	    (code = worker_open(&w, "invoke", "invoke", a.worker)) != 0)
		return code;
	tp_secret_no_core(true);
	if (a.sealed && (code = tp_sealed_trust_parse(a.expect_app, a.expect_runtime, a.platforms,
						      a.platform_count, &trust)) != 0)
		return code;
	/* every file read before anything is sent */
	if ((code = data_keys("invoke", &a.keys, (const char(*)[TP_WORKER_ID_HEX + 1]) a.ids,
			      a.id_count, "--task-data", &keys)) != 0 ||
	    (code = read_input(&a, &input)) != 0)
		goto done;
	if (a.sealed) {
		if ((code = sealed_body(&w, service, (const char(*)[TP_WORKER_ID_HEX + 1]) a.ids,
					a.id_count, &trust, &sc, input, &body)) != 0)
			goto done;
	} else if (!(body = json_pack("{s:o, s:[]}", "input", input, "task_data"))) {
		tp_error("invoke: out of memory");
		code = TP_EXIT_INTERNAL;
		goto done;
	}
	for (size_t i = 0; i < a.id_count; i++)
		json_array_append_new(json_object_get(body, "task_data"), json_string(a.ids[i]));
	if (keys) {
		json_object_set(body, "data_keys", keys);
		warn_keys_sent(&w);
	}
	snprintf(path, sizeof(path), "/v1/services/%s/invoke", service);
	{
		struct tp_http_peer peer = w.peer;
		const struct tp_http_body b = { .json = body, .fd = -1 };
		peer.timeout_s = 0; /* the worker's wall clock bounds it (--invoke-timeout) */
		r = tp_http_call(&peer, "POST", path, &b, &status, &answer, err, sizeof(err));
	}
	/* a sealed answer opened: from here as an unsealed one, its end what it says */
	if (a.sealed && answer && (code = tp_sealed_open(&sc, answer, status, &opened)) != 0)
		goto done;
	if (opened) {
		json_decref(answer);
		answer = opened;
		r = json_is_string(json_object_get(answer, "result")) ? 0 : -EREMOTEIO;
		if (r < 0 && !tp_worker_answer_is_end(answer)) {
			tp_error("invoke: the sealed answer holds neither a result nor an end");
			code = TP_EXIT_INTERNAL;
			goto done;
		}
	}
	if (a.json && answer && print_json(answer) < 0) {
		tp_error("invoke: cannot write the answer: %s", strerror(errno));
		code = TP_EXIT_INTERNAL;
		goto done;
	}
	if (r == -EREMOTEIO && tp_worker_answer_is_end(answer)) {
		code = report_end(&a, answer, status);
	} else if (r < 0) {
		code = say_failure(&w, r, err, status);
	} else if (!json_is_string(json_object_get(answer, "result"))) {
		tp_error("invoke: the worker's answer holds no result");
		code = TP_EXIT_USAGE;
	} else if (!a.json) {
		json_t *result = json_object_get(answer, "result");
		print_log(answer);
		if (tp_write_full(STDOUT_FILENO, json_string_value(result),
				  json_string_length(result)) < 0) {
			tp_error("invoke: cannot write the result: %s", strerror(errno));
			code = TP_EXIT_INTERNAL;
		}
	}
done:
	if (keys)
		wipe_strings(keys);
	json_decref(keys);
	if (opened)
		wipe_strings(opened);
	json_decref(body);
	json_decref(answer);
	tp_sealed_end(&sc);
	return code;
}

/* ---- services ---- */

int tp_cmd_services(int argc, char **argv)
{
	struct worker_args a = { 0 };
	struct worker w;
	json_t *answer = NULL, *list, *s;
	long status = 0;
	size_t i;
	int code;

	if ((code = parse("services", services_flags, &tp_services_help, argc, argv, &a)) != 0)
		return code < 0 ? TP_EXIT_OK : code;
	if ((code = worker_open(&w, "services", "services", a.worker)) != 0 ||
	    (code = call(&w, "GET", "/v1/services", NULL, TP_WORKER_CALL_S, &status, &answer)) != 0)
		return code;
	list = json_object_get(answer, "services");
	if (!json_is_array(list)) {
		tp_error("services: the worker's answer holds no list of services");
		json_decref(answer);
		return TP_EXIT_USAGE;
	}
	if (a.json) {
		code = print_json(answer) == 0 ? TP_EXIT_OK : TP_EXIT_INTERNAL;
		json_decref(answer);
		return code;
	}
	json_array_foreach(list, i, s)
	{
		json_t *n = json_object_get(s, "invocations");
		printf("%s %s %s %lld\n", member(s, "service"), member(s, "app"),
		       member(s, "state"),
		       json_is_integer(n) ? (long long)json_integer_value(n) : -1LL);
	}
	json_decref(answer);
	return fflush(stdout) == 0 ? TP_EXIT_OK : TP_EXIT_INTERNAL;
}
