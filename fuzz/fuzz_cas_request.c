/* libFuzzer target: the CAS's requests (src/cas/service.c) on a database in /dev/shm,
 * as anyone on the network sends them. The first byte picks the route, the rest is the
 * body; "@NONCE@" in an attest body becomes a nonce just given, so that evidence
 * parsing and the policy checks are reached (a policy "mysvc" with service "main" is
 * there, accepting sim evidence of a platform key no input can sign for). Every answer
 * is a status the API lists with a JSON body, and an attest is never released.
 * Seeds: fuzz/corpus/cas_request. */
#include "src/cas/cas.h"
#include "src/crypto/crypto.h"

#include <sanitizer/lsan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct tp_cas_service *svc;
static struct tp_cas_store *st;
static char dir[] = "/dev/shm/teepy-fuzz-XXXXXX";

/* the database goes with the process */
static void remove_db(void)
{
	static const char *const names[] = { "cas.db", "cas.db-wal", "cas.db-shm" };
	char path[64];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static const struct {
	const char *method, *path;
} routes[] = {
	{ "POST", "/v1/attest" },
	{ "POST", "/v1/challenge" },
	{ "POST", "/v1/policies" },
	{ "POST", "/v1/policies/list" },
	{ "PUT", "/v1/policies/mysvc" },
	{ "POST", "/v1/policies/mysvc/get" },
	{ "POST", "/v1/policies/mysvc/delete" },
	{ "GET", "/v1/attest" },
};

static void setup(void)
{
	char path[64], err[256], hash[TP_CAS_HASH_HEX];
	uint8_t master[32] = { 7 }, platform[32] = { 1 }, app[32] = { 2 };
	char phex[65], ahex[65];

	if (tp_crypto_load(err, sizeof(err)) < 0 || !mkdtemp(dir))
		abort();
	atexit(remove_db);
	snprintf(path, sizeof(path), "%s/cas.db", dir);
	if (tp_cas_store_open(path, master, &st, err, sizeof(err)) < 0 ||
	    !(svc = tp_cas_service_new(st, 0)))
		abort();
	tp_hex(platform, 32, phex);
	tp_hex(app, 32, ahex);
	json_t *doc = json_pack("{s:s, s:{s:{s:[s], s:[s], s:[s], s:[s], s:[s]}},"
				" s:{s:{s:s, s:s}}}",
				"name", "mysvc", "services", "main", "app", ahex, "runtime", ahex,
				"tolerate", "sim", "platform_keys", phex, "secrets", "k", "secrets",
				"k", "kind", "env", "value", "v");
	/* the store lives for the whole run: the master key's cipher contexts, made on
	 * first use and held in locked memory (mmap, which LeakSanitizer does not scan),
	 * are made here, both directions, outside its view */
	__lsan_disable();
	if (tp_cas_store_policy_put(st, "mysvc", phex, doc, NULL, hash) < 0)
		abort();
	json_decref(doc);
	char owner[TP_CAS_HASH_HEX];
	if (tp_cas_store_policy_get(st, "mysvc", &doc, owner, hash) < 0)
		abort();
	json_decref(doc);
	__lsan_enable();
}

static bool listed(unsigned status)
{
	static const unsigned ok[] = { 200, 201, 400, 403, 404, 405, 409, 413, 415 };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (ok[i] == status)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a second passes with each input: challenges expire, so as many stay open as
	 * the TTL's inputs (the service caps those open at once) */
	static int64_t now = 1700000000;
	struct tp_cas_answer a;
	char *body, *at;
	size_t n;

	if (!svc)
		setup();
	if (size < 1)
		return 0;
	now++;
	unsigned route = data[0] % (sizeof(routes) / sizeof(routes[0]));
	n = size - 1;
	if (!(body = malloc(n + 64)))
		abort();
	memcpy(body, data + 1, n);
	body[n] = '\0';
	if (route == 0 && n == strlen(body) && (at = strstr(body, "@NONCE@"))) {
		struct tp_cas_request ch = { .method = "POST",
					     .path = "/v1/challenge",
					     .content_type = "application/json",
					     .body = (const uint8_t *)"{}",
					     .size = 2,
					     .remote = "fuzz",
					     .now = now };
		tp_cas_handle(svc, &ch, &a);
		json_t *j = json_loads(a.body, 0, NULL);
		const char *nonce = json_string_value(json_object_get(j, "nonce"));
		if (a.status != 200 || !nonce || strlen(nonce) != 64)
			abort();
		/* "@NONCE@" (7) becomes 64 hex digits: the body grows by 57 */
		memmove(at + 64, at + 7, strlen(at + 7) + 1);
		memcpy(at, nonce, 64);
		n += 57;
		json_decref(j);
		free(a.body);
	}
	struct tp_cas_request req = { .method = routes[route].method,
				      .path = routes[route].path,
				      .content_type = "application/json",
				      .body = (const uint8_t *)body,
				      .size = n,
				      .remote = "fuzz",
				      .now = now };
	tp_cas_handle(svc, &req, &a);
	json_t *j = json_loads(a.body, 0, NULL);
	if (!listed(a.status) || !json_is_object(j) || (route == 0 && a.status == 200))
		abort();
	json_decref(j);
	free(a.body);
	free(body);
	return 0;
}
