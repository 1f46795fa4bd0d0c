/* `teepy policy create|update|get|delete|list`: a policy owner's requests to the CAS,
 * each signed with the owner's Ed25519 key over the bytes docs/cas-api.md names
 * (docs/cas.md, "Policy commands"). */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "../cas/cas.h"
#include "../cas/client.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum policy_flag { POLICY_HELP = 1, POLICY_CAS, POLICY_FINGERPRINT, POLICY_OWNER, POLICY_PRED };

static const struct tp_flag flags[] = {
	{ POLICY_CAS, "cas", 0, "URL", "TEEPY_CAS_ADDR", "the CAS: https://HOST:PORT" },
	{ POLICY_FINGERPRINT, "cas-fingerprint", 0, "FP", "TEEPY_CAS_FINGERPRINT",
	  "the CAS's key: sha256// and the base64 of the SHA-256 of its public key (teepy cas "
	  "prints it at start); the only trust in the connection" },
	{ POLICY_OWNER, "owner", 0, "KEY", NULL,
	  "the owner's Ed25519 private key (teepy keygen), which signs every request" },
	{ POLICY_PRED, "predecessor", 0, "HASH", NULL,
	  "update, delete: the hash of the policy replaced (default: the CAS's current one, "
	  "asked with a get first)" },
	{ POLICY_HELP, "help", 'h', NULL, NULL, "show this help" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "done: created, updated, deleted, or printed (get, list)" },
	{ TP_EXIT_USAGE, "usage error; a policy file that is not JSON; the CAS refused the "
			 "request (its words on one line) or cannot be reached, or its key is "
			 "not the pinned one" },
	{ TP_EXIT_INTERNAL, "libcurl or OpenSSL's libcrypto cannot be loaded" },
	{ 0, NULL },
};

const struct tp_command_help tp_policy_help = {
	.name = "policy",
	.synopsis = "create FILE.json --cas URL --cas-fingerprint FP --owner KEY\n"
		    "update NAME FILE.json [--predecessor HASH] --cas URL --cas-fingerprint FP "
		    "--owner KEY\n"
		    "get NAME --cas URL --cas-fingerprint FP --owner KEY\n"
		    "delete NAME [--predecessor HASH] --cas URL --cas-fingerprint FP --owner KEY\n"
		    "list --cas URL --cas-fingerprint FP --owner KEY",
	.about = "A policy owner's requests to the CAS (docs/cas.md, \"Policy commands\"). create\n"
		 "stores FILE.json, a policy (its services, what they pin, their secrets), under\n"
		 "its name; the CAS keeps the owner's public key, and every later request must be\n"
		 "signed by the same key. update replaces it, delete removes it: both name the\n"
		 "hash of the policy they replace. get prints the policy as the CAS holds it,\n"
		 "each secret's value replaced by its SHA-256; list prints the owner's policies\n"
		 "and their hashes. The connection is TLS 1.3 to the CAS whose key is pinned by\n"
		 "--cas-fingerprint: no certificate chain or host name is checked.\n",
	.flags = flags,
	.exits = exits,
};

struct policy_cmd {
	struct tp_cas_conn conn;
	const char *owner_path, *predecessor;
	struct tp_key *owner;
	char owner_hex[2 * TP_ED25519_PUB_SIZE + 1];
};

/* SIGHEX of the owner's signature over op's bytes. Returns 0 or an exit code. */
static int sign(struct policy_cmd *pc, const char *op, const char *const *parts,
		const size_t *sizes, size_t count, char out[2 * TP_ED25519_SIG_SIZE + 1])
{
	uint8_t sig[TP_ED25519_SIG_SIZE], *bytes;
	size_t size;

	if (tp_cas_signed_bytes(op, parts, sizes, count, &bytes, &size) < 0) {
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	int r = tp_sign(pc->owner, bytes, size, sig);
	explicit_bzero(bytes, size); /* a create's or update's holds the secret values */
	free(bytes);
	if (r < 0) {
		tp_error("policy %s: %s cannot sign: %s", op, pc->owner_path, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	tp_hex(sig, sizeof(sig), out);
	return 0;
}

/* One request; body is consumed. Returns 0 with *answer, or an exit code. */
static int call(struct policy_cmd *pc, const char *op, const char *method, const char *path,
		json_t *body, json_t **answer)
{
	char err[1024];
	long status;
	int r = tp_cas_call(&pc->conn, method, path, body, &status, answer, err, sizeof(err));

	json_decref(body);
	if (r == 0)
		return 0;
	if (r == -EREMOTEIO)
		tp_error("policy %s: the CAS refused: %s", op, err);
	else
		tp_error("policy %s: %s", op, err);
	return r == -ENOSYS ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
}

/* A signed request of op ("get", "list") whose REST is first (NAME, PUBHEX) "\0"
 * decimal TIME "\0" NONCE: the CAS accepts a time within its skew and each signature
 * once, and the random nonce keeps two requests in the same second apart. command
 * names the command in messages (update asks with a get). body is consumed. */
static int call_timed(struct policy_cmd *pc, const char *command, const char *op, const char *path,
		      const char *first, json_t *body, json_t **answer)
{
	char now[32], nonce[2 * 16 + 1], sig[2 * TP_ED25519_SIG_SIZE + 1];
	uint8_t random[16];
	time_t t = time(NULL);
	int code;

	if (tp_random(random, sizeof(random)) < 0) {
		json_decref(body);
		tp_error("policy %s: no random bytes", command);
		return TP_EXIT_INTERNAL;
	}
	tp_hex(random, sizeof(random), nonce);
	snprintf(now, sizeof(now), "%" PRId64, (int64_t)t);
	const char *parts[] = { first, now, nonce };
	const size_t sizes[] = { strlen(first), strlen(now), strlen(nonce) };
	if ((code = sign(pc, op, parts, sizes, 3, sig)) != 0) {
		json_decref(body);
		return code;
	}
	if (json_object_set_new(body, "time", json_integer((json_int_t)t)) < 0 ||
	    json_object_set_new(body, "nonce", json_string(nonce)) < 0 ||
	    json_object_set_new(body, "signature", json_string(sig)) < 0) {
		json_decref(body);
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	return call(pc, command, "POST", path, body, answer);
}

static int get_current(struct policy_cmd *pc, const char *op, const char *name, json_t **answer)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/policies/%s/get", name);
	return call_timed(pc, op, "get", path, name, json_object(), answer);
}

/* The predecessor: --predecessor, else the current hash by a get. */
static int predecessor(struct policy_cmd *pc, const char *op, const char *name, char *out,
		       size_t size)
{
	json_t *answer;
	const char *hash;
	int code;

	if (pc->predecessor) {
		snprintf(out, size, "%s", pc->predecessor);
		return 0;
	}
	if ((code = get_current(pc, op, name, &answer)) != 0)
		return code;
	hash = json_string_value(json_object_get(answer, "hash"));
	if (!hash || strlen(hash) != 64) {
		json_decref(answer);
		tp_error("policy %s: the CAS's answer to get %s holds no hash", op, name);
		return TP_EXIT_USAGE;
	}
	snprintf(out, size, "%s", hash);
	json_decref(answer);
	return 0;
}

static int read_policy(const char *op, const char *file, json_t **doc)
{
	json_error_t e;

	if (!(*doc = json_load_file(file, JSON_REJECT_DUPLICATES, &e))) {
		/* jansson's text quotes the bytes near the fault (maybe a secret value):
		 * only where it is, but for a file that cannot be read (no line then) */
		if (e.line < 1)
			tp_error("policy %s: %s", op, e.text);
		else
			tp_error("policy %s: %s: not valid JSON at line %d, column %d", op, file,
				 e.line, e.column);
		return TP_EXIT_USAGE;
	}
	if (!json_is_object(*doc)) {
		json_decref(*doc);
		tp_error("policy %s: %s: not a JSON object (a policy: {\"name\", \"services\", "
			 "\"secrets\"})",
			 op, file);
		return TP_EXIT_USAGE;
	}
	return 0;
}

static void print_name_hash(const char *what, json_t *answer)
{
	const char *name = json_string_value(json_object_get(answer, "name"));
	const char *hash = json_string_value(json_object_get(answer, "hash"));

	tp_info("policy %s %s%s%s", name ? name : "?", what, hash ? ", hash " : "",
		hash ? hash : "");
	if (hash)
		printf("%s\n", hash);
}

/* The owner's signature of a create (prefix NULL) or an update (prefix the
 * predecessor) of doc: over prefix "\0" canonical(doc), the canonical text wiped
 * after. Returns 0 or an exit code; doc is freed on failure. */
static int sign_doc(struct policy_cmd *pc, const char *op, const char *prefix, json_t *doc,
		    char sig[2 * TP_ED25519_SIG_SIZE + 1])
{
	size_t size;
	char *canon = tp_cas_canonical(doc, &size);
	int code;

	if (!canon) {
		json_decref(doc);
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	const char *parts[] = { prefix, canon };
	const size_t sizes[] = { prefix ? strlen(prefix) : 0, size };
	code = prefix ? sign(pc, op, parts, sizes, 2, sig) :
			sign(pc, op, parts + 1, sizes + 1, 1, sig);
	explicit_bzero(canon, size); /* it holds the secret values */
	free(canon);
	if (code)
		json_decref(doc);
	return code;
}

static int create(struct policy_cmd *pc, const char *file)
{
	char sig[2 * TP_ED25519_SIG_SIZE + 1];
	json_t *doc, *answer;
	int code;

	if ((code = read_policy("create", file, &doc)) != 0 ||
	    (code = sign_doc(pc, "create", NULL, doc, sig)) != 0)
		return code;
	json_t *body =
	    json_pack("{s:o, s:s, s:s}", "policy", doc, "owner", pc->owner_hex, "signature", sig);
	if ((code = call(pc, "create", "POST", "/v1/policies", body, &answer)) != 0)
		return code;
	print_name_hash("created", answer);
	json_decref(answer);
	return TP_EXIT_OK;
}

static int update(struct policy_cmd *pc, const char *name, const char *file)
{
	char sig[2 * TP_ED25519_SIG_SIZE + 1], hash[80], path[256];
	const char *doc_name;
	json_t *doc, *answer;
	int code;

	if ((code = read_policy("update", file, &doc)) != 0)
		return code;
	doc_name = json_string_value(json_object_get(doc, "name"));
	if (doc_name && strcmp(doc_name, name) != 0) {
		tp_error("policy update: %s names the policy '%.64s', not %s", file, doc_name,
			 name);
		json_decref(doc);
		return TP_EXIT_USAGE;
	}
	if ((code = predecessor(pc, "update", name, hash, sizeof(hash))) != 0) {
		json_decref(doc);
		return code;
	}
	if ((code = sign_doc(pc, "update", hash, doc, sig)) != 0)
		return code;
	snprintf(path, sizeof(path), "/v1/policies/%s", name);
	json_t *body =
	    json_pack("{s:o, s:s, s:s}", "policy", doc, "predecessor", hash, "signature", sig);
	if ((code = call(pc, "update", "PUT", path, body, &answer)) != 0)
		return code;
	print_name_hash("updated", answer);
	json_decref(answer);
	return TP_EXIT_OK;
}

static int get(struct policy_cmd *pc, const char *name)
{
	json_t *answer;
	int code;

	if ((code = get_current(pc, "get", name, &answer)) != 0)
		return code;
	code = json_dumpf(answer, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
		       putchar('\n') != EOF && fflush(stdout) == 0 ?
		   TP_EXIT_OK :
		   TP_EXIT_USAGE;
	json_decref(answer);
	return code;
}

static int delete (struct policy_cmd *pc, const char *name)
{
	char sig[2 * TP_ED25519_SIG_SIZE + 1], hash[80], path[256];
	json_t *answer;
	int code;

	if ((code = predecessor(pc, "delete", name, hash, sizeof(hash))) != 0)
		return code;
	const char *parts[] = { name, hash };
	const size_t sizes[] = { strlen(name), strlen(hash) };
	if ((code = sign(pc, "delete", parts, sizes, 2, sig)) != 0)
		return code;
	snprintf(path, sizeof(path), "/v1/policies/%s/delete", name);
	if ((code = call(pc, "delete", "POST", path,
			 json_pack("{s:s, s:s}", "predecessor", hash, "signature", sig),
			 &answer)) != 0)
		return code;
	tp_info("policy %s deleted", name);
	json_decref(answer);
	return TP_EXIT_OK;
}

static int list(struct policy_cmd *pc)
{
	json_t *answer, *policies, *p;
	size_t i;
	int code;

	if ((code = call_timed(pc, "list", "list", "/v1/policies/list", pc->owner_hex,
			       json_pack("{s:s}", "owner", pc->owner_hex), &answer)) != 0)
		return code;
	policies = json_object_get(answer, "policies");
	if (!json_is_array(policies)) {
		json_decref(answer);
		tp_error("policy list: the CAS's answer holds no list of policies");
		return TP_EXIT_USAGE;
	}
	json_array_foreach(policies, i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		const char *hash = json_string_value(json_object_get(p, "hash"));
		printf("%s %s\n", hash ? hash : "?", name ? name : "?");
	}
	json_decref(answer);
	return TP_EXIT_OK;
}

/* The operands each action takes: [NAME] [FILE]. */
static int check_operands(const char *action, const char *const *ops, size_t count)
{
	size_t want = strcmp(action, "list") == 0   ? 0 :
		      strcmp(action, "create") == 0 ? 1 :
		      strcmp(action, "update") == 0 ? 2 :
						      1;
	bool takes_name = strcmp(action, "list") != 0 && strcmp(action, "create") != 0;

	if (count != want) {
		tp_error("policy %s: %s (see teepy policy --help)", action,
			 count < want ?
			     (takes_name && count == 0 ? "missing NAME" : "missing FILE") :
			     "too many arguments");
		return TP_EXIT_USAGE;
	}
	if (takes_name && !tp_cas_name_ok(ops[0])) {
		tp_error("policy %s: '%.80s' is not a policy name ([a-z0-9][a-z0-9_-]{0,63})",
			 action, ops[0]);
		return TP_EXIT_USAGE;
	}
	return 0;
}

static int load_owner(struct policy_cmd *pc, const char *action)
{
	uint8_t pub[TP_ED25519_PUB_SIZE];
	char err[512];

	if (!(pc->owner = tp_key_load_private(pc->owner_path, err, sizeof(err)))) {
		tp_error("policy %s: --owner %s: %s", action, pc->owner_path, err);
		return TP_EXIT_USAGE;
	}
	tp_key_public_raw(pc->owner, pub);
	tp_hex(pub, sizeof(pub), pc->owner_hex);
	return 0;
}

/* The settings every action needs, checked before anything is read. */
static int check_settings(const struct policy_cmd *pc, const char *action)
{
	char err[512];

	if (!pc->conn.url || !pc->conn.fingerprint || !pc->owner_path) {
		tp_error("policy %s: missing %s (see teepy policy --help)", action,
			 !pc->conn.url	       ? "--cas URL" :
			 !pc->conn.fingerprint ? "--cas-fingerprint FP" :
						 "--owner KEY");
		return TP_EXIT_USAGE;
	}
	if (tp_cas_check_url(pc->conn.url, err, sizeof(err)) < 0 ||
	    tp_cas_check_fingerprint(pc->conn.fingerprint, err, sizeof(err)) < 0) {
		tp_error("policy %s: %s", action, err);
		return TP_EXIT_USAGE;
	}
	if (pc->predecessor && (strcmp(action, "update") != 0 && strcmp(action, "delete") != 0)) {
		tp_error("policy %s: --predecessor is for update and delete", action);
		return TP_EXIT_USAGE;
	}
	if (pc->predecessor && strlen(pc->predecessor) != 64) {
		tp_error("policy %s: --predecessor: not a policy hash (64 hex digits)", action);
		return TP_EXIT_USAGE;
	}
	return 0;
}

int tp_cmd_policy(int argc, char **argv)
{
	static const char *const actions[] = { "create", "update", "get", "delete", "list" };
	struct policy_cmd pc = { 0 };
	const char *action = NULL, *ops[3];
	size_t count = 0;
	struct tp_flag_parser p;
	char err[512];
	int r, code;

	if (tp_flags_start(&p, "policy", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("policy: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (!action)
				action = p.value;
			else if (count < 3)
				ops[count++] = p.value;
			else {
				tp_error(
				    "policy: unexpected argument '%s' (see teepy policy --help)",
				    p.value);
				return TP_EXIT_USAGE;
			}
			continue;
		}
		switch (p.flag->id) {
		case POLICY_HELP:
			tp_help_print(stdout, &tp_policy_help);
			return TP_EXIT_OK;
		case POLICY_CAS:
			pc.conn.url = p.value;
			break;
		case POLICY_FINGERPRINT:
			pc.conn.fingerprint = p.value;
			break;
		case POLICY_OWNER:
			pc.owner_path = p.value;
			break;
		case POLICY_PRED:
			pc.predecessor = p.value;
			break;
		}
	}
	if (p.dashdash) {
		tp_error("policy: unexpected argument '--' (see teepy policy --help)");
		return TP_EXIT_USAGE;
	}
	if (!pc.conn.url && getenv("TEEPY_CAS_ADDR") && *getenv("TEEPY_CAS_ADDR"))
		pc.conn.url = getenv("TEEPY_CAS_ADDR");
	if (!pc.conn.fingerprint && getenv("TEEPY_CAS_FINGERPRINT") &&
	    *getenv("TEEPY_CAS_FINGERPRINT"))
		pc.conn.fingerprint = getenv("TEEPY_CAS_FINGERPRINT");
	bool known = false;
	for (size_t i = 0; action && i < sizeof(actions) / sizeof(actions[0]); i++)
		known |= strcmp(action, actions[i]) == 0;
	if (!known) {
		tp_error("policy: %s%s%s (create, update, get, delete or list; see teepy policy "
			 "--help)",
			 action ? "unknown action '" :
				  "missing create, update, get, delete or list",
			 action ? action : "", action ? "'" : "");
		return TP_EXIT_USAGE;
	}
	if ((code = check_operands(action, ops, count)) != 0 ||
	    (code = check_settings(&pc, action)) != 0)
		return code;
	if (tp_crypto_load(err, sizeof(err)) < 0 || tp_cas_load(err, sizeof(err)) < 0) {
		tp_error("policy %s: %s", action, err);
		return TP_EXIT_INTERNAL;
	}
	if ((code = load_owner(&pc, action)) != 0)
		return code;
	if (strcmp(action, "create") == 0)
		code = create(&pc, ops[0]);
	else if (strcmp(action, "update") == 0)
		code = update(&pc, ops[0], ops[1]);
	else if (strcmp(action, "get") == 0)
		code = get(&pc, ops[0]);
	else if (strcmp(action, "delete") == 0)
		code = delete (&pc, ops[0]);
	else
		code = list(&pc);
	tp_key_free(pc.owner);
	return code;
}
