/* Manifests and bundles: canonical bytes, strict parsing, bounds. */
#include "test.h"
#include "../../src/crypto/crypto.h"
#include "../../src/manifest/bundle.h"
#include "../../src/manifest/engine.h"
#include "../../src/manifest/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void sample(struct tp_manifest *m)
{
	tp_manifest_init(m);
	m->format = 2; /* what build writes for an app without a venv */
	m->entry = strdup("/app/svc.py");
	tp_strlist_push(&m->python_path, "/app");
	tp_strlist_push(&m->python_path, "/usr/lib/python3.11");
	tp_strlist_push(&m->env, "B=2");
	tp_strlist_push(&m->env, "A=1");
	m->files = calloc(3, sizeof(*m->files));
	m->files[0] = (struct tp_manifest_file){
		.path = strdup("/usr/bin/python3.11"), .size = 10, .mode = 0755, .mtime = 5
	};
	m->files[1] = (struct tp_manifest_file){
		.path = strdup("/app/svc.py"), .size = 4, .mode = 0644, .bundled = true
	};
	m->files[2] = (struct tp_manifest_file){
		.path = strdup("/app/lib.py"), .size = 6, .mode = 0644, .bundled = true
	};
	m->file_count = 3;
	tp_sha256("abcd", 4, m->files[1].sha256);
}

static int parse_replaced(const char *json, const char *from, const char *to, char *err);

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
	/* names the program loader or PyPy's runtime would read are refused */
	CHECK(parse_replaced(json, "\"env\":{\"A\"", "\"env\":{\"LD_A\"", err) == -EINVAL);
	CHECK(strstr(err, "would steer the program loader"));
	CHECK(parse_replaced(json, "\"env\":{\"A\"", "\"env\":{\"PYPYLOG\"", err) == -EINVAL);
	CHECK(strstr(err, "would steer the PyPy runtime"));
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
	/* bytes known to have been accepted are not encoded again to be compared: the
	 * same space passes there, while every other check holds (below) */
	CHECK(tp_manifest_from_known_json(copy, size + 1, &m, err, sizeof(err)) == 0);
	tp_manifest_free(&m);
	free(copy);
	/* an unknown key */
	copy = strdup(json);
	memcpy(strstr(copy, "\"argv\""), "\"argx\"", 6);
	CHECK(parse_str(copy, err) == -EINVAL && strstr(err, "argx"));
	CHECK(tp_manifest_from_known_json(copy, strlen(copy), &m, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "argx"));
	tp_manifest_free(&m);
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
	struct tp_bundle_header in = { .version = 1, .manifest_size = 100, .blob_size = 50 }, out;
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
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0==\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM==\n"
		"-----END PUBLIC KEY-----\n",
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=A\n"
		"-----END PUBLIC KEY-----\n",
		/* an X25519 key (OID 1.3.101.110), the same length */
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VuAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n"
		"-----END PUBLIC KEY-----\n",
		/* cut short, no end line, not base64, nothing */
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZ\n-----END PUBLIC "
		"KEY-----\n",
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEAZhKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n",
		"-----BEGIN PUBLIC "
		"KEY-----\nMCowBQYDK2VwAyEA*hKDH1TtMnEIqCCZV8RvheJ0lFFWFRGccjkgL7IPXM0=\n"
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

/* ---- format 2 ---- */

/* json with the first `from` replaced by `to`, parsed. -12345 if from is not there. */
static int parse_replaced(const char *json, const char *from, const char *to, char *err)
{
	const char *at = strstr(json, from);
	size_t head, size;
	char *copy;
	int r;

	if (!at) {
		fprintf(stderr, "  (no %s in the manifest)\n", from);
		return -12345;
	}
	head = (size_t)(at - json);
	size = strlen(json) - strlen(from) + strlen(to);
	copy = malloc(size + 1);
	memcpy(copy, json, head);
	memcpy(copy + head, to, strlen(to));
	strcpy(copy + head + strlen(to), at + strlen(from));
	r = parse_str(copy, err);
	free(copy);
	return r;
}

static char *encode(struct tp_manifest *m)
{
	char *json = NULL, err[256];
	size_t size;

	CHECK(tp_manifest_finish(m, err, sizeof(err)) == 0);
	CHECK(tp_manifest_to_json(m, &json, &size) == 0);
	return json;
}

static void add_tree(struct tp_manifest *m, enum tp_tree_kind kind, const char *path)
{
	m->trees = realloc(m->trees, (m->tree_count + 1) * sizeof(*m->trees));
	m->trees[m->tree_count++] = (struct tp_manifest_tree){ .path = strdup(path), .kind = kind };
}

/* Every key format 2 adds, set away from its default. */
static void sample_v2(struct tp_manifest *m)
{
	sample(m);
	m->product_id = 7;
	m->security_version = 65535;
	m->network = TP_NETWORK_LISTEN;
	m->engine.name = TP_ENGINE_PYPY;
	snprintf(m->engine.version, sizeof(m->engine.version), "3.10");
	add_tree(m, TP_TREE_PACKAGES, "/usr/lib/python3/dist-packages");
	add_tree(m, TP_TREE_PREFIX, "/usr");
	m->encryption.cipher = TP_CIPHER_AES_256_GCM;
	m->encryption.chunk_size = 65536;
	snprintf(m->encryption.key_id, sizeof(m->encryption.key_id), "svc/key-1:v2");
	m->files[2].encrypted = true; /* /app/lib.py, first once sorted */
	memset(m->files[2].id, 0xab, 32);
}

static void test_format_2_defaults_mean_todays_behaviour(void)
{
	struct tp_manifest m, back;
	char *json, err[256];

	tp_manifest_init(&m);
	CHECK(m.format == TP_MANIFEST_FORMAT && TP_MANIFEST_FORMAT == 3);
	CHECK(tp_manifest_lowest_format(&m) == 2); /* nothing of format 3 in it */
	CHECK(m.network == TP_NETWORK_NONE && m.processes == TP_PROCESSES_NONE);
	CHECK(m.product_id == 0 && m.security_version == 0 && m.tree_count == 0);
	CHECK(m.encryption.cipher == TP_CIPHER_NONE);
	CHECK(m.limits.memory_bytes == TP_DEFAULT_MEMORY && m.limits.threads == TP_DEFAULT_THREADS);
	/* the engine is the interpreter teepy was built for, as MAJOR.MINOR */
	CHECK(m.engine.name == TP_ENGINE_CPYTHON);
	CHECK(strncmp(TP_PYTHON_VERSION, m.engine.version, strlen(m.engine.version)) == 0);
	CHECK(strchr(m.engine.version, '.') && !strchr(strchr(m.engine.version, '.') + 1, '.'));
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	tp_manifest_free(&m);

	sample(&m);
	json = encode(&m);
	CHECK(strstr(json, "\"format\":2,") != NULL);
	CHECK(strstr(json, "\"encryption\":null,") != NULL);
	CHECK(strstr(json, "\"trees\":[]}") != NULL);
	CHECK(strstr(json, "\"product_id\":0,") && strstr(json, "\"security_version\":0,"));
	CHECK(strstr(json, "\"network\":\"none\",\"preload\""));
	CHECK(strstr(json, "\"engine\":{\"name\":\"cpython\",\"version\":\"") != NULL);
	CHECK(!strstr(json, "\"id\"")); /* only encrypted files have an id */
	CHECK(tp_manifest_from_json(json, strlen(json), &back, err, sizeof(err)) == 0);
	CHECK(back.format == 2 && tp_manifest_check_runnable(&back, err, sizeof(err)) == 0);
	free(json);
	tp_manifest_free(&m);
	tp_manifest_free(&back);
}

/* Format 3: a venv's files bundled under /venv and its site directories, each on
 * python_path under /venv; build writes it only when there is a venv. */
static void test_format_3_carries_a_venv_and_only_it_needs_format_3(void)
{
	struct tp_manifest m, back;
	char *json, *again, err[256];
	size_t again_size;

	sample(&m);
	tp_strlist_push(&m.python_path, "/venv/lib/python3.11/site-packages");
	tp_strlist_push(&m.site, "/venv/lib/python3.11/site-packages");
	free(m.files[1].path); /* the bundled /app/lib.py moves into the venv */
	m.files[1].path = strdup("/venv/lib/python3.11/site-packages/lib.py");
	CHECK(tp_manifest_lowest_format(&m) == 3);
	CHECK(tp_manifest_to_json(&m, &again, &again_size) == -EINVAL); /* it says format 2 */
	m.format = 3;
	json = encode(&m);
	CHECK(strstr(json, "\"format\":3,") && strstr(json, "\"site\":[\"/venv/lib/python3.11/"
							    "site-packages\"],"));
	CHECK(tp_manifest_from_json(json, strlen(json), &back, err, sizeof(err)) == 0);
	CHECK(back.format == 3 && back.site.count == 1);
	CHECK_STR(back.site.items[0], "/venv/lib/python3.11/site-packages");
	CHECK(tp_manifest_to_json(&back, &again, &again_size) == 0);
	CHECK(again_size == strlen(json) && memcmp(json, again, again_size) == 0);
	free(again);
	tp_manifest_free(&back);
	/* only the site key or a /venv file needs format 3 */
	tp_strlist_free(&m.site);
	CHECK(tp_manifest_lowest_format(&m) == 3);
	for (size_t i = 0; i < m.file_count; i++) /* sorted by encode: find it */
		if (strncmp(m.files[i].path, "/venv/", 6) == 0) {
			free(m.files[i].path);
			m.files[i].path = strdup("/app/lib.py");
		}
	CHECK(tp_manifest_lowest_format(&m) == 2);

	/* what a site directory may be, and where bundled files may lie */
	static const struct {
		const char *from, *to, *said;
	} refused[] = {
		{ "\"site\":[\"/venv/lib/python3.11/site-packages\"]", "\"site\":[\"/usr/lib\"]",
		  "site /usr/lib: a site directory lies under /venv" },
		{ "\"site\":[\"/venv/lib/python3.11/site-packages\"]", "\"site\":[\"/venv\"]",
		  "site /venv: a site directory lies under /venv" },
		{ "\"site\":[\"/venv/lib/python3.11/site-packages\"]", "\"site\":[\"/venv/other\"]",
		  "site /venv/other: not on \"python_path\"" },
		{ "\"site\":[\"/venv/lib/python3.11/site-packages\"]",
		  "\"site\":[\"/venv/lib/python3.11/site-packages\",\"/venv/lib/python3.11/"
		  "site-packages\"]",
		  "named twice" },
		{ "\"site\":[\"/venv/lib/python3.11/site-packages\"],", "", "lacks \"site\"" },
		{ "\"format\":3,", "\"format\":2,", "unknown key \"site\"" },
		{ "\"/venv/lib/python3.11/site-packages/lib.py\"", "\"/venvx/lib.py\"",
		  "only files under /app and /venv can be bundled" },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *copy = malloc(strlen(json) + 256), *at = strstr(json, refused[i].from);
		struct tp_manifest t;
		CHECK(at != NULL);
		if (!at) {
			free(copy);
			continue;
		}
		sprintf(copy, "%.*s%s%s", (int)(at - json), json, refused[i].to,
			at + strlen(refused[i].from));
		CHECK(tp_manifest_from_json(copy, strlen(copy), &t, err, sizeof(err)) == -EINVAL);
		if (!strstr(err, refused[i].said))
			printf("  refused[%zu]: %s\n", i, err);
		CHECK(strstr(err, refused[i].said) != NULL);
		tp_manifest_free(&t);
		free(copy);
	}
	/* in format 2 a bundled file under /venv is refused, and says why */
	char *v2 = malloc(strlen(json) + 16), *site = strstr(json, "\"site\":");
	const char *tail = strchr(site, ']') + 2;
	snprintf(v2, strlen(json) + 16, "%.*s%s", (int)(site - json), json, tail);
	memcpy(strstr(v2, "\"format\":3"), "\"format\":2", 10);
	CHECK(tp_manifest_from_json(v2, strlen(v2), &back, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "only files under /app can be bundled (in format 3 also /venv)") != NULL);
	tp_manifest_free(&back);
	free(v2);
	free(json);
	tp_manifest_free(&m);
}

static void test_format_2_round_trips_every_new_key(void)
{
	struct tp_manifest m, back;
	char *json, *again, err[256];
	size_t again_size;

	sample_v2(&m);
	json = encode(&m);
	CHECK(strstr(json, "\"encryption\":{\"algorithm\":\"aes-256-gcm\",\"chunk_size\":65536,"
			   "\"key_id\":\"svc/key-1:v2\"},"));
	CHECK(strstr(json, "\"engine\":{\"name\":\"pypy\",\"version\":\"3.10\"},"));
	CHECK(strstr(json, "\"network\":\"listen\""));
	CHECK(strstr(json, "\"product_id\":7,") && strstr(json, "\"security_version\":65535,"));
	/* trees sorted by path; a file's keys sorted, its id among them */
	CHECK(strstr(json, "\"trees\":[{\"kind\":\"prefix\",\"path\":\"/usr\"},{\"kind\":"
			   "\"packages\",\"path\":\"/usr/lib/python3/dist-packages\"}]}"));
	CHECK(strstr(json, "\"encrypted\":true,\"id\":\"abababab"));
	CHECK(tp_manifest_from_json(json, strlen(json), &back, err, sizeof(err)) == 0);
	CHECK(back.format == 2 && back.product_id == 7 && back.security_version == 65535);
	CHECK(back.network == TP_NETWORK_LISTEN && back.engine.name == TP_ENGINE_PYPY);
	CHECK_STR(back.engine.version, "3.10");
	CHECK(back.tree_count == 2 && back.trees[0].kind == TP_TREE_PREFIX);
	CHECK_STR(back.trees[1].path, "/usr/lib/python3/dist-packages");
	CHECK(back.encryption.cipher == TP_CIPHER_AES_256_GCM);
	CHECK(back.encryption.chunk_size == 65536);
	CHECK_STR(back.encryption.key_id, "svc/key-1:v2");
	/* /app/lib.py, first by path */
	CHECK(back.files[0].encrypted && !back.files[1].encrypted && !back.files[2].encrypted);
	CHECK(memcmp(back.files[0].id, m.files[0].id, 32) == 0);
	CHECK(tp_manifest_to_json(&back, &again, &again_size) == 0);
	CHECK(again_size == strlen(json) && memcmp(json, again, again_size) == 0);
	free(again);
	/* format 1 has no key for any of these */
	back.format = 1;
	CHECK(tp_manifest_to_json(&back, &again, &again_size) == -EINVAL);
	back.format = 4;
	CHECK(tp_manifest_to_json(&back, &again, &again_size) == -EINVAL);
	free(json);
	tp_manifest_free(&m);
	tp_manifest_free(&back);
}

/* A manifest teepy 0.1 wrote (format 1), as bytes: it must keep parsing. */
static const char v1_manifest[] =
    "{\"argv\":[],\"entry\":\"/app/svc.py\",\"env\":{},\"files\":{\"/app/svc.py\":{\"bundled\":"
    "true,\"encrypted\":false,\"mode\":420,\"mtime\":0,\"sha256\":"
    "\"88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589\",\"size\":4},"
    "\"/usr/bin/python3.11\":{\"bundled\":false,\"encrypted\":false,\"mode\":493,\"mtime\":5,"
    "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":"
    "10}},\"format\":1,\"limits\":{\"cpu_ms\":1800000,\"memory\":3221225472,\"threads\":64,"
    "\"timeout_ms\":3600000},\"policy\":{\"preload\":[],\"processes\":\"none\",\"scratch\":0},"
    "\"python_path\":[\"/app\",\"/usr/lib/python3.11\"]}";

static void test_format_1_is_still_read_with_defaults(void)
{
	struct tp_manifest m, back;
	char *json, err[256];
	size_t size;

	CHECK(tp_manifest_from_json(v1_manifest, strlen(v1_manifest), &m, err, sizeof(err)) == 0);
	CHECK(m.format == 1 && m.file_count == 2 && m.limits.threads == 64);
	CHECK(m.network == TP_NETWORK_NONE && m.engine.name == TP_ENGINE_CPYTHON);
	CHECK(m.product_id == 0 && m.security_version == 0 && m.tree_count == 0);
	CHECK(m.encryption.cipher == TP_CIPHER_NONE);
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	/* encoded again as format 1, byte for byte */
	CHECK(tp_manifest_to_json(&m, &json, &size) == 0);
	CHECK(size == strlen(v1_manifest) && memcmp(json, v1_manifest, size) == 0);
	free(json);
	/* the same manifest as format 2 spells out the defaults */
	m.format = 2;
	CHECK(tp_manifest_to_json(&m, &json, &size) == 0);
	CHECK(tp_manifest_from_json(json, size, &back, err, sizeof(err)) == 0 && back.format == 2);
	free(json);
	tp_manifest_free(&back);
	tp_manifest_free(&m);

	/* format 1 has none of format 2's keys, and format 2 lacks none of them */
	CHECK(parse_replaced(v1_manifest, "\"policy\":{", "\"policy\":{\"network\":\"none\",",
			     err) == -EINVAL &&
	      strstr(err, "unknown key \"network\""));
	CHECK(parse_replaced(v1_manifest, "\"format\":1,", "\"format\":1,\"product_id\":0,", err) ==
		  -EINVAL &&
	      strstr(err, "unknown key \"product_id\""));
	CHECK(parse_replaced(v1_manifest, "\"format\":1", "\"format\":2", err) == -EINVAL &&
	      strstr(err, "lacks \"encryption\""));
	/* a format 1 file is never encrypted */
	CHECK(parse_replaced(v1_manifest, "\"encrypted\":false", "\"encrypted\":true", err) ==
		  -EINVAL &&
	      strstr(err, "must be false in format 1"));
	/* formats before 1 and after 2 */
	CHECK(parse_replaced(v1_manifest, "\"format\":1", "\"format\":4", err) == -EINVAL &&
	      strstr(err, "format 4 is not supported") && strstr(err, "newer teepy"));
	CHECK(parse_replaced(v1_manifest, "\"format\":1", "\"format\":0", err) == -EINVAL &&
	      strstr(err, "format 0 is not supported"));
	CHECK(parse_replaced(v1_manifest, "\"format\":1,", "", err) == -EINVAL &&
	      strstr(err, "lacks \"format\""));
}

static void test_format_2_refuses_bad_values(void)
{
	struct tp_manifest m;
	char *json, err[256];

	sample_v2(&m);
	json = encode(&m);
	tp_manifest_free(&m);
#define REFUSED(from, to, says)                                                                    \
	do {                                                                                       \
		CHECK(parse_replaced(json, from, to, err) == -EINVAL);                             \
		if (!strstr(err, says))                                                            \
			fprintf(stderr, "  %s -> %s: '%s' lacks '%s'\n", from, to, err, says);     \
		CHECK(strstr(err, says) != NULL);                                                  \
	} while (0)
	/* network */
	REFUSED("\"network\":\"listen\"", "\"network\":\"all\"", "\"network\" must be");
	REFUSED("\"network\":\"listen\"", "\"network\":null", "\"network\" must be");
	/* engine */
	REFUSED("\"name\":\"pypy\"", "\"name\":\"jython\"", "\"engine\".\"name\"");
	REFUSED("\"name\":\"pypy\"", "\"name\":1", "\"engine\".\"name\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"3\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"3.010\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"03.10\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"3.1000\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"3.10.1\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"", "\"version\":\"3.x\"", "\"engine\".\"version\"");
	REFUSED("\"version\":\"3.10\"}", "\"version\":\"3.10\",\"abi\":1}", "unknown key \"abi\"");
	REFUSED("\"engine\":{\"name\":\"pypy\",", "\"engine\":{", "lacks \"name\"");
	REFUSED("\"engine\":{\"name\":\"pypy\",\"version\":\"3.10\"}", "\"engine\":\"pypy\"",
		"\"engine\" must be an object");
	/* product id and security version: SGX's 16 bits, integers */
	REFUSED("\"product_id\":7", "\"product_id\":65536", "\"product_id\" must be");
	REFUSED("\"product_id\":7", "\"product_id\":-1", "\"product_id\" must be");
	REFUSED("\"product_id\":7", "\"product_id\":\"7\"", "\"product_id\" must be");
	REFUSED("\"security_version\":65535", "\"security_version\":65536",
		"\"security_version\" must be");
	REFUSED("\"security_version\":65535", "\"security_version\":1.5",
		"\"security_version\" must be");
	/* encryption */
	REFUSED("\"aes-256-gcm\"", "\"aes-128-gcm\"", "\"algorithm\" must be \"aes-256-gcm\"");
	REFUSED("\"chunk_size\":65536", "\"chunk_size\":65535", "power of 2");
	REFUSED("\"chunk_size\":65536", "\"chunk_size\":2048", "power of 2");
	REFUSED("\"chunk_size\":65536", "\"chunk_size\":33554432", "\"chunk_size\" must be");
	REFUSED("\"chunk_size\":65536", "\"chunk_size\":2097152", "\"chunk_size\" must be");
	REFUSED("\"key_id\":\"svc/key-1:v2\"", "\"key_id\":\"\"", "\"key_id\" must be");
	REFUSED("\"key_id\":\"svc/key-1:v2\"", "\"key_id\":\"a b\"", "\"key_id\" must be");
	REFUSED("\"key_id\":\"svc/key-1:v2\"", "\"key_id\":\"caf\\u00e9\"", "\"key_id\" must be");
	REFUSED("\"key_id\":\"svc/key-1:v2\"}", "\"key_id\":\"k\",\"mode\":\"ctr\"}",
		"unknown key \"mode\"");
	REFUSED("\"encryption\":{", "\"encryption\":[", "not JSON");
	REFUSED("\"encryption\":{\"algorithm\":\"aes-256-gcm\",\"chunk_size\":65536,\"key_id\":"
		"\"svc/key-1:v2\"}",
		"\"encryption\":false", "\"encryption\" must be null or an object");
	/* an encrypted file needs the section and its id, and is bundled; a plain one has
	 * no id */
	REFUSED("\"encryption\":{\"algorithm\":\"aes-256-gcm\",\"chunk_size\":65536,\"key_id\":"
		"\"svc/key-1:v2\"}",
		"\"encryption\":null", "is encrypted but the manifest's \"encryption\" is null");
	REFUSED("\"encrypted\":true,\"id\":\"", "\"encrypted\":true,\"ix\":\"",
		"unknown key \"ix\"");
	REFUSED("\"id\":\"abab", "\"id\":\"xbab", "\"id\" must be 64 hex");
	REFUSED("\"encrypted\":false,\"mode\":420,\"mtime\":0,",
		"\"encrypted\":false,\"id\":\"00\",\"mode\":420,\"mtime\":0,",
		"unknown key \"id\"");
	REFUSED("\"bundled\":true,\"encrypted\":true", "\"bundled\":false,\"encrypted\":true",
		"an encrypted file must be bundled");
	REFUSED("\"encrypted\":true", "\"encrypted\":1", "\"encrypted\" must be true or false");
	/* trees: known kinds, normal paths, sorted, once, not the runtime's nor the app's */
	REFUSED("\"kind\":\"prefix\"", "\"kind\":\"bin\"", "\"kind\" must be");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"usr\"}", "not a normal absolute path");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/usr/\"}", "not a normal absolute path");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/zzz\"}", "sorted by path");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/usr/lib/python3/dist-packages\"}",
		"sorted by path, each path once");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/proc/1\"}", "/proc belongs to the runtime");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/app\"}", "are bundled");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/venv\"}", "are bundled");
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/usr\",\"size\":1}", "unknown key \"size\"");
	REFUSED("{\"kind\":\"prefix\",", "{", "lacks \"kind\"");
	REFUSED("\"trees\":[", "\"trees\":[1,", "\"trees\"[0] must be an object");
	/* with trees, each system file lies under one: /usr/bin/python3.11 under /usr */
	REFUSED("\"path\":\"/usr\"}", "\"path\":\"/opt\"}",
		"file /usr/bin/python3.11 lies under none of the manifest's trees");
#undef REFUSED
	free(json);
}

static void test_not_yet_built_features_are_refused_to_run(void)
{
	struct tp_manifest m;
	char err[256];

	sample(&m);
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	/* encrypted files run (with their key: the runner asks for it) */
	m.files[1].encrypted = true;
	m.encryption.cipher = TP_CIPHER_AES_256_GCM;
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	m.files[1].encrypted = false;
	m.encryption.cipher = TP_CIPHER_NONE;
	/* a server's bundle runs (given a socket: the runner asks for it) */
	m.network = TP_NETWORK_LISTEN;
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	m.network = TP_NETWORK_NONE;
	/* PyPy's bundle runs where teepy was built with PyPy, for its Python version */
	m.engine.name = TP_ENGINE_PYPY;
#ifdef TP_PYPY_EXE
	tp_manifest_engine_of(tp_engine_built(TP_ENGINE_PYPY), &m.engine);
	CHECK(strcmp(m.engine.version, "3.9") == 0);
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	snprintf(m.engine.version, sizeof(m.engine.version), "3.10");
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == -ENOTSUP);
	CHECK(strstr(err, "engine pypy 3.10 is not supported by this teepy"));
#else
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == -ENOTSUP);
	CHECK(strstr(err, "engine pypy is not built into this teepy"));
#endif
	m.engine.name = TP_ENGINE_CPYTHON;
	snprintf(m.engine.version, sizeof(m.engine.version), "2.7");
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == -ENOTSUP);
	CHECK(strstr(err, "engine cpython 2.7 is not supported by this teepy") &&
	      strstr(err, "rebuild the bundle"));
	/* ids and trees are only declared: nothing about them needs a newer teepy */
	tp_manifest_engine_this(&m.engine);
	m.product_id = m.security_version = 9;
	add_tree(&m, TP_TREE_PREFIX, "/usr");
	CHECK(tp_manifest_check_runnable(&m, err, sizeof(err)) == 0);
	tp_manifest_free(&m);
}

TESTS(manifest_tests) = {
	{ "public_key_pem_is_read_strictly", test_public_key_pem_is_read_strictly },
	{ "manifest_round_trips_canonically", test_manifest_round_trips_canonically },
	{ "measurement_is_stable_and_sensitive", test_measurement_is_stable_and_sensitive },
	{ "manifest_refuses_what_is_not_canonical_or_valid",
	  test_manifest_refuses_what_is_not_canonical_or_valid },
	{ "paths_must_be_normal", test_paths_must_be_normal },
	{ "module_names", test_module_names },
	{ "escape_makes_any_bytes_printable", test_escape_makes_any_bytes_printable },
	{ "bundle_header_bounds", test_bundle_header_bounds },
	{ "signature_covers_the_manifest", test_signature_covers_the_manifest },
	{ "format_2_defaults_mean_todays_behaviour", test_format_2_defaults_mean_todays_behaviour },
	{ "format_3_carries_a_venv_and_only_it_needs_format_3",
	  test_format_3_carries_a_venv_and_only_it_needs_format_3 },
	{ "format_2_round_trips_every_new_key", test_format_2_round_trips_every_new_key },
	{ "format_1_is_still_read_with_defaults", test_format_1_is_still_read_with_defaults },
	{ "format_2_refuses_bad_values", test_format_2_refuses_bad_values },
	{ "not_yet_built_features_are_refused_to_run",
	  test_not_yet_built_features_are_refused_to_run },
	END_TESTS,
};
