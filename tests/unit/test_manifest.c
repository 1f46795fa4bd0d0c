/* Manifests and bundles: canonical bytes, strict parsing, bounds. */
#include "test.h"
#include "../../src/crypto/crypto.h"
#include "../../src/manifest/bundle.h"
#include "../../src/manifest/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void sample(struct tp_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->entry = strdup("/app/svc.py");
	m->limits.memory_bytes = 3ULL << 30;
	m->limits.cpu_ms = 1800000;
	m->limits.timeout_ms = 3600000;
	m->limits.threads = 64;
	tp_strlist_push(&m->python_path, "/app");
	tp_strlist_push(&m->python_path, "/usr/lib/python3.11");
	tp_strlist_push(&m->env, "B=2");
	tp_strlist_push(&m->env, "A=1");
	m->files = calloc(3, sizeof(*m->files));
	m->files[0] = (struct tp_manifest_file){
	    .path = strdup("/usr/bin/python3.11"), .size = 10, .mode = 0755, .mtime = 5};
	m->files[1] = (struct tp_manifest_file){
	    .path = strdup("/app/svc.py"), .size = 4, .mode = 0644, .bundled = true};
	m->files[2] = (struct tp_manifest_file){
	    .path = strdup("/app/lib.py"), .size = 6, .mode = 0644, .bundled = true};
	m->file_count = 3;
	tp_sha256("abcd", 4, m->files[1].sha256);
}

static void test_manifest_round_trips_canonically(void)
{
	struct tp_manifest m, back;
	char *json, *again, err[256];
	size_t size, again_size;

	sample(&m);
	CHECK(tp_manifest_finish(&m, err, sizeof(err)) == 0);
	CHECK(strcmp(m.files[0].path, "/app/lib.py") == 0); /* sorted by path */
	CHECK(m.files[1].offset == 6);			    /* offsets follow the order */
	CHECK(tp_manifest_blob_size(&m) == 10);
	CHECK(tp_manifest_to_json(&m, &json, &size) == 0);
	CHECK(strchr(json, ' ') == NULL);
	CHECK(strstr(json, "\"env\":{\"A\":\"1\",\"B\":\"2\"}") != NULL);
	CHECK(tp_manifest_from_json(json, size, &back, err, sizeof(err)) == 0);
	CHECK(tp_manifest_to_json(&back, &again, &again_size) == 0);
	CHECK(again_size == size && memcmp(json, again, size) == 0);
	CHECK(back.file_count == 3 && back.files[2].mtime == 5 && back.files[2].mode == 0755);
	free(json);
	free(again);
	tp_manifest_free(&m);
	tp_manifest_free(&back);
}

static void test_measurement_is_stable_and_sensitive(void)
{
	uint8_t a[32], b[32];
	tp_manifest_measure("{\"x\":1}", 7, a);
	tp_manifest_measure("{\"x\":1}", 7, b);
	CHECK(memcmp(a, b, 32) == 0);
	tp_manifest_measure("{\"x\":2}", 7, b);
	CHECK(memcmp(a, b, 32) != 0);
}

static int parse_str(const char *json, char *err)
{
	struct tp_manifest m;
	int r = tp_manifest_from_json(json, strlen(json), &m, err, 256);
	tp_manifest_free(&m);
	return r;
}

static void test_manifest_refuses_what_is_not_canonical_or_valid(void)
{
	struct tp_manifest m;
	char *json, err[256], *copy;
	size_t size;

	sample(&m);
	tp_manifest_finish(&m, err, sizeof(err));
	tp_manifest_to_json(&m, &json, &size);
	tp_manifest_free(&m);

	/* a space anywhere: not canonical */
	copy = malloc(size + 2);
	copy[0] = ' ';
	memcpy(copy + 1, json, size + 1);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "canonical"));
	free(copy);
	/* an unknown key */
	copy = strdup(json);
	memcpy(strstr(copy, "\"argv\""), "\"argx\"", 6);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "argx"));
	free(copy);
	/* a path with .. */
	copy = strdup(json);
	memcpy(strstr(copy, "/app/lib.py"), "/app/../py", 10);
	CHECK(parse_str(copy, err) == -EINVAL);
	free(copy);
	/* a bad hash */
	copy = strdup(json);
	char *hash = strstr(copy, "\"sha256\":\"") + 10;
	hash[0] = 'x';
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "sha256"));
	free(copy);
	/* only /app files can be bundled; runtime paths never appear */
	copy = strdup(json);
	memcpy(strstr(copy, "/app/lib.py"), "/usr/lib.py", 11);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "only files under /app"));
	free(copy);
	copy = strdup(json);
	memcpy(strstr(copy, "/usr/bin/python3.11"), "/.teepy/_teepy.py/", 18);
	CHECK(parse_str(copy, err) == -EINVAL);
	free(copy);
	/* the runtime writes /etc/passwd and /etc/group itself */
	copy = strdup(json);
	memcpy(strstr(copy, "/usr/bin/python3.11"), "/etc/group/python3", 18);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "belongs to the runtime"));
	free(copy);
	{
		struct tp_manifest own;
		char *own_json;
		size_t own_size;
		sample(&own);
		free(own.files[0].path);
		own.files[0].path = strdup("/etc/passwd");
		CHECK(tp_manifest_finish(&own, err, sizeof(err)) == 0);
		CHECK(tp_manifest_to_json(&own, &own_json, &own_size) == 0);
		CHECK(parse_str(own_json, err) == -EINVAL && strstr(err, "/etc/passwd belongs"));
		free(own_json);
		tp_manifest_free(&own);
	}
	/* a control character in a path forges rows and escapes on a terminal */
	copy = strdup(json);
	memcpy(strstr(copy, "/app/lib.py"), "/app/z\\n.py", 11);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "/app/z\\x0a.py") &&
	      !strchr(err, '\n'));
	free(copy);
	copy = strdup(json);
	memcpy(strstr(copy, "/app/lib.py"), "/app/\\u001b", 11);
	CHECK(parse_str(copy, err) == -EINVAL && !strchr(err, 0x1b));
	free(copy);
	copy = strdup(json);
	memcpy(strstr(copy, "/app/lib.py"), "/app/\\u007f", 11);
	CHECK(parse_str(copy, err) == -EINVAL);
	free(copy);
	/* and so in an env name */
	copy = strdup(json);
	memcpy(strstr(copy, "\"A\":\"1\""), "\"\\t\":\"\"", 7);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "env") && !strchr(err, '\t'));
	free(copy);
	CHECK(parse_str("[]", err) == -EINVAL);
	CHECK(parse_str("{", err) == -EINVAL);
	CHECK(parse_str("", err) == -EINVAL);
	free(json);
}

static void test_paths_must_be_normal(void)
{
	CHECK(tp_path_is_normal("/a/b"));
	CHECK(!tp_path_is_normal("a/b"));
	CHECK(!tp_path_is_normal("/a//b"));
	CHECK(!tp_path_is_normal("/a/./b"));
	CHECK(!tp_path_is_normal("/a/../b"));
	CHECK(!tp_path_is_normal("/a/"));
	CHECK(!tp_path_is_normal("/"));
	CHECK(!tp_path_is_normal("/a\nb"));
	CHECK(!tp_path_is_normal("/a\x1b[2Kb"));
	CHECK(!tp_path_is_normal("/a\x7f"));
	CHECK(tp_path_is_normal("/caf\xc3\xa9")); /* UTF-8 names are names */
}

static void test_module_names(void)
{
	CHECK(tp_module_name_ok("json"));
	CHECK(tp_module_name_ok("numpy.linalg"));
	CHECK(tp_module_name_ok("_x1"));
	CHECK(!tp_module_name_ok(""));
	CHECK(!tp_module_name_ok("1x"));
	CHECK(!tp_module_name_ok("a..b"));
	CHECK(!tp_module_name_ok(".a"));
	CHECK(!tp_module_name_ok("a."));
	CHECK(!tp_module_name_ok("a b"));
	CHECK(!tp_module_name_ok("a\n"));
}

static void test_escape_makes_any_bytes_printable(void)
{
	char out[64];

	CHECK_STR(tp_escape("/app/ok.py", out, sizeof(out)), "/app/ok.py");
	CHECK_STR(tp_escape("a\nb\x1b[2K\\\x7f\xc3\xa9", out, sizeof(out)),
		  "a\\x0ab\\x1b[2K\\\\\\x7f\\xc3\\xa9");
	CHECK_STR(tp_escape("0123456789abcdef", out, 10), "01234...");
}

static void test_bundle_header_bounds(void)
{
	uint8_t h[TP_BUNDLE_HEADER_SIZE];
	struct tp_bundle_header in = {.version = 1, .manifest_size = 100, .blob_size = 50}, out;
	char err[256];
	uint64_t total = TP_BUNDLE_HEADER_SIZE + 100 + 32 + 64 + 50;

	tp_bundle_encode_header(&in, h);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total, &out, err, sizeof(err)) == 0);
	CHECK(out.manifest_size == 100 && out.blob_size == 50);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total - 1, &out, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "truncated") != NULL);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total + 1, &out, err, sizeof(err)) == -EINVAL);
	CHECK(tp_bundle_parse_header(h, 10, total, &out, err, sizeof(err)) == -EPROTO);
	in.blob_size = UINT64_MAX - 10; /* overflow */
	tp_bundle_encode_header(&in, h);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total, &out, err, sizeof(err)) == -EINVAL);
	in.blob_size = 50;
	in.manifest_size = 0;
	tp_bundle_encode_header(&in, h);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total, &out, err, sizeof(err)) == -EINVAL);
	in.manifest_size = 100;
	in.version = 2;
	tp_bundle_encode_header(&in, h);
	CHECK(tp_bundle_parse_header(h, sizeof(h), total, &out, err, sizeof(err)) == -EINVAL);
	h[0] = 'X';
	CHECK(tp_bundle_parse_header(h, sizeof(h), total, &out, err, sizeof(err)) == -EPROTO);
}

static void test_signature_covers_the_manifest(void)
{
	char dir[] = "/tmp/teepy-unit-XXXXXX", key_path[256], pub_path[256], err[256];
	uint8_t sig[64];
	size_t size;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(key_path, sizeof(key_path), "%s/k.key", dir);
	snprintf(pub_path, sizeof(pub_path), "%s/k.pub", dir);
	CHECK(tp_key_generate(key_path, pub_path) == 0);
	CHECK(tp_key_generate(key_path, pub_path) == -EEXIST); /* never overwrites */
	struct tp_key *priv = tp_key_load_private(key_path, err, sizeof(err));
	uint8_t raw[TP_ED25519_PUB_SIZE], priv_raw[TP_ED25519_PUB_SIZE];
	CHECK(priv && tp_key_read_public(pub_path, raw, err, sizeof(err)) == 0);
	tp_key_public_raw(priv, priv_raw);
	CHECK(memcmp(raw, priv_raw, sizeof(raw)) == 0); /* the .pub is the .key's half */
	struct tp_key *pub = tp_key_from_raw_public(raw);
	CHECK(pub != NULL);
	uint8_t *msg = tp_bundle_signed_message("{\"a\":1}", 7, &size);
	CHECK(tp_sign(priv, msg, size, sig) == 0);
	CHECK(tp_verify(pub, msg, size, sig) == 0);
	msg[size - 2] ^= 1;
	CHECK(tp_verify(pub, msg, size, sig) == -EBADMSG);
	free(msg);
	tp_key_free(priv);
	tp_key_free(pub);
	unlink(key_path);
	unlink(pub_path);
	rmdir(dir);
}

/* teepy reads --trust keys without OpenSSL: exactly RFC 8410's SubjectPublicKeyInfo */
static void test_public_key_pem_is_read_strictly(void)
{
	static const char good[] = "-----BEGIN PUBLIC KEY-----\n"
				   "MCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n"
				   "-----END PUBLIC KEY-----\n";
	static const uint8_t want[8] = { 0x66, 0x12, 0x83, 0x1f, 0x54, 0xed, 0x32, 0x71 };
	const char *refused[] = {
		/* no padding, two paddings (one character short, and in full), a character
		 * after the padding */
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0==\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM==\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=A\n"
		"-----END PUBLIC KEY-----\n",
		/* an X25519 key (OID 1.3.101.110), the same length */
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n"
		"-----END PUBLIC KEY-----\n",
		/* cut short, no end line, not base64, nothing */
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZ\n-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n",
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA*hKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n"
		"-----END PUBLIC KEY-----\n",
		"",
	};
	uint8_t key[32];
	char crlf[sizeof(good) + 8];

	CHECK(tp_ed25519_public_from_pem(good, sizeof(good) - 1, key) == 0);
	CHECK(memcmp(key, want, sizeof(want)) == 0);
	/* Windows line ends and a comment line before it are fine */
	snprintf(crlf, sizeof(crlf), "x\r\n%.26s\r\n%.60s\r\n%s", good, good + 27, good + 88);
	CHECK(tp_ed25519_public_from_pem(crlf, strlen(crlf), key) == 0);
	CHECK(memcmp(key, want, sizeof(want)) == 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		CHECK(tp_ed25519_public_from_pem(refused[i], strlen(refused[i]), key) == -EINVAL);
	/* the length is the input's: the NUL of a shorter count is never reached */
	CHECK(tp_ed25519_public_from_pem(good, sizeof(good) - 10, key) == -EINVAL);
}

TESTS(manifest_tests) = {
    {"public_key_pem_is_read_strictly", test_public_key_pem_is_read_strictly},
    {"manifest_round_trips_canonically", test_manifest_round_trips_canonically},
    {"measurement_is_stable_and_sensitive", test_measurement_is_stable_and_sensitive},
    {"manifest_refuses_what_is_not_canonical_or_valid",
     test_manifest_refuses_what_is_not_canonical_or_valid},
    {"paths_must_be_normal", test_paths_must_be_normal},
    {"module_names", test_module_names},
    {"escape_makes_any_bytes_printable", test_escape_makes_any_bytes_printable},
    {"bundle_header_bounds", test_bundle_header_bounds},
    {"signature_covers_the_manifest", test_signature_covers_the_manifest},
    END_TESTS,
};
