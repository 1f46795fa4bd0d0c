/* The CAS client's pure parts: the bytes an owner signs, the pin's form, and
 * the secrets an attestation releases read into where a run takes them. */
#include "test.h"
#include "../../src/cas/client.h"
#include "../../src/crypto/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

static void test_signed_bytes_are_tag_op_and_parts_joined_by_nul(void)
{
	const char *parts[] = { "mysvc", "1700000000" };
	const size_t sizes[] = { 5, 10 };
	static const char want[] = "teepy-cas-v1\0get\0mysvc\0"
				   "1700000000";
	uint8_t *out;
	size_t size;

	CHECK(tp_cas_signed_bytes("get", parts, sizes, 2, &out, &size) == 0);
	CHECK(size == sizeof(want) - 1 && memcmp(out, want, size) == 0);
	free(out);
	/* create: one part, canonical(DOC), with no NUL after it */
	const char *doc[] = { "{\"a\":1}" };
	const size_t doc_size[] = { 7 };
	static const char want_create[] = "teepy-cas-v1\0create\0{\"a\":1}";
	CHECK(tp_cas_signed_bytes("create", doc, doc_size, 1, &out, &size) == 0);
	CHECK(size == sizeof(want_create) - 1 && memcmp(out, want_create, size) == 0);
	free(out);
}

static void test_fingerprint_is_sha256_and_base64_of_32_bytes(void)
{
	char err[512];

	CHECK(tp_cas_check_fingerprint("sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM=", err,
				       sizeof(err)) == 0);
	CHECK(tp_cas_check_fingerprint("sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0", err,
				       sizeof(err)) == -EINVAL);
	CHECK(tp_cas_check_fingerprint("LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM=", err,
				       sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "not a key fingerprint") != NULL);
	CHECK(tp_cas_check_url("https://127.0.0.1:8443", err, sizeof(err)) == 0);
	CHECK(tp_cas_check_url("http://127.0.0.1:8443", err, sizeof(err)) == -EINVAL);
	CHECK(tp_cas_check_url("https://a b", err, sizeof(err)) == -EINVAL);
}

#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0 .. 31 */
#define ID_1  "1111111111111111111111111111111111111111111111111111111111111111"

static void test_secrets_go_where_the_run_takes_them(void)
{
	static const char json[] =
	    "{\"secrets\": {"
	    "\"app_key\": {\"kind\": \"bundle_key\", \"value\": \"" KEY_A "\"},"
	    "\"out\": {\"kind\": \"volume_key\", \"value\": \"" KEY_A "\"},"
	    "\"train\": {\"kind\": \"data_key\", \"value\": \"" KEY_A "\", \"data_id\": \"" ID_1
	    "\"},"
	    "\"API_TOKEN\": {\"kind\": \"env\", \"value\": \"s3cret=x\"},"
	    "\"model\": {\"kind\": \"blob\", \"value\": \"AAAA\"}}}";
	struct tp_cas_secrets s;
	uint8_t id[32], want[32];
	char err[256];

	for (int i = 0; i < 32; i++)
		want[i] = (uint8_t)i;
	memset(id, 0x11, sizeof(id));
	CHECK(tp_cas_secrets_parse(json, sizeof(json) - 1, &s, err, sizeof(err)) == 0);
	CHECK(s.bundle_key && memcmp(s.bundle_key, want, 32) == 0);
	CHECK(s.volume_key && memcmp(s.volume_key, want, 32) == 0);
	CHECK(s.data_count == 1 && tp_cas_data_key_find(&s, id) == s.data[0].key);
	CHECK(s.data_count == 1 && memcmp(s.data[0].key, want, 32) == 0);
	id[0] = 0x12;
	CHECK(tp_cas_data_key_find(&s, id) == NULL);
	CHECK(s.env_count == 1 && strcmp(s.env[0], "API_TOKEN=s3cret=x") == 0);
	CHECK(s.blob_count == 1);
	CHECK_STR(s.blobs, "model");
	tp_cas_secrets_free(&s);
	CHECK(s.bundle_key == NULL && s.env_count == 0);
}

static void test_secrets_that_are_not_keys_are_refused(void)
{
	static const char *const bad[] = {
		"{\"secrets\": {\"k\": {\"kind\": \"bundle_key\", \"value\": \"AAAA\"}}}",
		"{\"secrets\": {\"k\": {\"kind\": \"data_key\", \"value\": \"" KEY_A "\"}}}",
		"{\"secrets\": {\"LD_PRELOAD\": {\"kind\": \"env\", \"value\": \"x\"}}}",
		"{\"secrets\": {\"A\": {\"kind\": \"env\", \"value\": \"a\\u0000b\"}}}",
		"{\"secrets\": {\"k\": {\"kind\": \"wat\", \"value\": \"x\"}}}",
		"{\"secrets\": {\"a\": {\"kind\": \"bundle_key\", \"value\": \"" KEY_A
		"\"}, \"b\": {\"kind\": \"bundle_key\", \"value\": \"" KEY_A "\"}}}",
		"{\"secrets\": []}",
		"not json",
	};
	struct tp_cas_secrets s;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(tp_cas_secrets_parse(bad[i], strlen(bad[i]), &s, err, sizeof(err)) ==
		      -EBADMSG);
		CHECK(err[0] != '\0');
		CHECK(s.bundle_key == NULL && s.env_count == 0 && s.data_count == 0);
	}
	/* jansson's own allocator is back: JSON made after a parse is freed as usual */
	json_t *o = json_pack("{s:s}", "a", "b");
	CHECK(o != NULL);
	json_decref(o);
}

/* Another thread's JSON, made and freed while secrets are parsed: jansson has one
 * allocator for the process, and the parse's locked blocks must never meet a block
 * of another thread's (the worker parses a CAS's answer beside its requests). */
static volatile bool churn_stop;

static void *churn(void *arg)
{
	unsigned long *made = arg;

	while (!churn_stop) {
		json_t *o = json_pack("{s:s, s:[i, i, i], s:{s:s}}", "a", "some text here", "b", 1,
				      2, 3, "c", "d", "more text");
		char *text = o ? json_dumps(o, 0) : NULL;
		json_decref(o);
		free(text);
		(*made)++;
	}
	return NULL;
}

static void test_secrets_parsed_beside_another_threads_json(void)
{
	static const char json[] =
	    "{\"secrets\": {\"b\": {\"kind\": \"bundle_key\", \"value\": \"" KEY_A "\"},"
	    "\"API_TOKEN\": {\"kind\": \"env\", \"value\": \"s3cret\"}}}";
	unsigned long made = 0;
	bool all = true;
	pthread_t t;

	churn_stop = false;
	CHECK(pthread_create(&t, NULL, churn, &made) == 0);
	for (int i = 0; i < 2000; i++) {
		struct tp_cas_secrets s;
		char err[256];
		all &= tp_cas_secrets_parse(json, sizeof(json) - 1, &s, err, sizeof(err)) == 0 &&
		       s.bundle_key && s.env_count == 1;
		tp_cas_secrets_free(&s);
	}
	churn_stop = true;
	pthread_join(t, NULL);
	CHECK(all);
	CHECK(made > 0);
	/* JSON made here before and after is jansson's as usual */
	json_t *o = json_pack("{s:s}", "a", "b");
	CHECK(o != NULL);
	json_decref(o);
}

TESTS(cas_client_tests) = {
	{ "signed_bytes_are_tag_op_and_parts_joined_by_nul",
	  test_signed_bytes_are_tag_op_and_parts_joined_by_nul },
	{ "fingerprint_is_sha256_and_base64_of_32_bytes",
	  test_fingerprint_is_sha256_and_base64_of_32_bytes },
	{ "secrets_go_where_the_run_takes_them", test_secrets_go_where_the_run_takes_them },
	{ "secrets_that_are_not_keys_are_refused", test_secrets_that_are_not_keys_are_refused },
	{ "secrets_parsed_beside_another_threads_json",
	  test_secrets_parsed_beside_another_threads_json },
	END_TESTS,
};
