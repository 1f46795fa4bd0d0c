/* Trusted signers, verdicts, measurements, and bundles written and read back. */
#include "test.h"
#include "../../src/crypto/crypto.h"
#include "../../src/manifest/bundle_file.h"
#include "../../src/manifest/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct keys {
	char dir[64];
	char key[2][128], pub[2][128], junk[128];
};

static void make_keys(struct keys *k)
{
	snprintf(k->dir, sizeof(k->dir), "/tmp/teepy-unit-XXXXXX");
	CHECK(mkdtemp(k->dir) != NULL);
	for (int i = 0; i < 2; i++) {
		snprintf(k->key[i], sizeof(k->key[i]), "%s/k%d.key", k->dir, i);
		snprintf(k->pub[i], sizeof(k->pub[i]), "%s/k%d.pub", k->dir, i);
		CHECK(tp_key_generate(k->key[i], k->pub[i]) == 0);
	}
	snprintf(k->junk, sizeof(k->junk), "%s/junk.pub", k->dir);
	int fd = open(k->junk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, "not a key\n", 10) == 10);
	close(fd);
}

static void remove_keys(struct keys *k)
{
	for (int i = 0; i < 2; i++) {
		unlink(k->key[i]);
		unlink(k->pub[i]);
	}
	unlink(k->junk);
	rmdir(k->dir);
}

static void test_signers_are_all_read_before_any_is_used(void)
{
	struct keys k;
	struct tp_signers s;
	uint8_t raw[2][32];
	char err[256], missing[160];
	size_t failed = 99;

	make_keys(&k);
	CHECK(tp_key_read_public(k.pub[0], raw[0], err, sizeof(err)) == 0);
	CHECK(tp_key_read_public(k.pub[1], raw[1], err, sizeof(err)) == 0);
	const char *both[] = { k.pub[0], k.pub[1] };
	CHECK(tp_signers_load(&s, both, 2, &failed, err, sizeof(err)) == 0);
	CHECK(s.count == 2 && tp_signers_has(&s, raw[0]) && tp_signers_has(&s, raw[1]));
	tp_signers_free(&s);
	CHECK(s.count == 0 && s.keys == NULL);

	/* a bad entry after a good one is named, with its own reason */
	snprintf(missing, sizeof(missing), "%s/none.pub", k.dir);
	const char *with_missing[] = { k.pub[0], missing, k.pub[1] };
	CHECK(tp_signers_load(&s, with_missing, 3, &failed, err, sizeof(err)) == -ENOENT);
	CHECK(failed == 1 && s.count == 0 && !strstr(err, missing));
	const char *with_junk[] = { k.pub[0], k.pub[1], k.junk };
	CHECK(tp_signers_load(&s, with_junk, 3, &failed, err, sizeof(err)) == -EINVAL);
	CHECK(failed == 2 && s.count == 0);
	/* a private key is not a trusted signer's public key */
	const char *private_key[] = { k.key[0] };
	CHECK(tp_signers_load(&s, private_key, 1, &failed, err, sizeof(err)) < 0 && failed == 0);
	/* none given: an empty list */
	CHECK(tp_signers_load(&s, NULL, 0, &failed, err, sizeof(err)) == 0 && s.count == 0);
	remove_keys(&k);
}

static void test_trust_verdict_judges_the_signer_first(void)
{
	uint8_t a[32], b[32];
	struct tp_signers none = { 0 }, trusted = { .keys = &a, .count = 1 };

	memset(a, 1, sizeof(a));
	memset(b, 2, sizeof(b));
	/* a trusted signer: the signature decides */
	CHECK(tp_trust_judge(&trusted, false, a, true) == TP_TRUST_OK);
	CHECK(tp_trust_judge(&trusted, false, a, false) == TP_TRUST_BAD_SIGNATURE);
	/* another key is an unknown signer whether or not its signature verifies, and
	 * --insecure-any-signer does not widen a list that was given */
	CHECK(tp_trust_judge(&trusted, false, b, true) == TP_TRUST_UNKNOWN_SIGNER);
	CHECK(tp_trust_judge(&trusted, false, b, false) == TP_TRUST_UNKNOWN_SIGNER);
	CHECK(tp_trust_judge(&trusted, true, b, true) == TP_TRUST_UNKNOWN_SIGNER);
	/* no list: refused unless any signer is allowed, and then only a valid signature */
	CHECK(tp_trust_judge(&none, false, b, true) == TP_TRUST_NO_SIGNER_GIVEN);
	CHECK(tp_trust_judge(&none, false, b, false) == TP_TRUST_NO_SIGNER_GIVEN);
	CHECK(tp_trust_judge(&none, true, b, true) == TP_TRUST_OK_ANY_SIGNER);
	CHECK(tp_trust_judge(&none, true, b, false) == TP_TRUST_BAD_SIGNATURE);
}

static void small_manifest(struct tp_manifest *m)
{
	char err[256];

	tp_manifest_init(m);
	m->entry = strdup("/app/svc.py");
	tp_strlist_push(&m->python_path, "/app");
	m->files = calloc(3, sizeof(*m->files));
	m->files[0] = (struct tp_manifest_file){
		.path = strdup("/app/svc.py"), .size = 4, .mode = 0644, .bundled = true
	};
	m->files[1] = (struct tp_manifest_file){
		.path = strdup("/usr/bin/python3.11"), .size = 10, .mode = 0755, .mtime = 5
	};
	m->files[2] = (struct tp_manifest_file){
		.path = strdup("/app/a.py"), .size = 2, .mode = 0644, .bundled = true
	};
	m->file_count = 3;
	tp_sha256("abcd", 4, m->files[0].sha256);
	tp_sha256("xy", 2, m->files[2].sha256);
	CHECK(tp_manifest_finish(m, err, sizeof(err)) == 0);
}

static void test_bundle_written_is_read_back_and_measured(void)
{
	struct keys k;
	struct tp_manifest m;
	struct tp_bundle_file bf;
	char *json, err[256], path[160];
	size_t json_size;
	uint8_t app[32], pub[32], signer[32];

	make_keys(&k);
	small_manifest(&m);
	/* by manifest index, in path order: /app/a.py, /app/svc.py, the system file */
	void *blobs[3] = { "xy", "abcd", NULL };
	CHECK(tp_manifest_to_json(&m, &json, &json_size) == 0);
	struct tp_key *key = tp_key_load_private(k.key[0], err, sizeof(err));
	CHECK(key != NULL);
	snprintf(path, sizeof(path), "%s/app.tpy", k.dir);
	CHECK(tp_bundle_write(path, json, json_size, key, &m, blobs) == 0);
	CHECK(tp_bundle_write(path, json, 0, key, &m, blobs) == -EFBIG);
	CHECK(tp_is_bundle(path));

	CHECK(tp_bundle_file_open(path, &bf, err, sizeof(err)) == 0);
	CHECK(bf.signature_ok);
	CHECK(bf.file_size == TP_BUNDLE_HEADER_SIZE + json_size + 32 + 64 + 6);
	tp_manifest_measure(json, json_size, app);
	CHECK(memcmp(bf.app, app, 32) == 0);
	tp_key_public_raw(key, pub);
	tp_trust_signer_measure(pub, signer);
	CHECK(memcmp(bf.signer, signer, 32) == 0);
	CHECK(memcmp(bf.bundle.pubkey, pub, 32) == 0);
	CHECK(tp_bundle_file_parse(&bf, false, err, sizeof(err)) == 0);
	CHECK(bf.manifest.file_count == 3 && bf.manifest.files[1].offset == 2);
	uint8_t blob[6];
	CHECK(pread(bf.fd, blob, 6, (off_t)bf.bundle.blob_offset) == 6);
	CHECK(memcmp(blob, "xyabcd", 6) == 0);

	/* one manifest byte changed in memory: the signature no longer verifies */
	struct tp_bundle changed = bf.bundle;
	char *copy = malloc(json_size);
	memcpy(copy, json, json_size);
	copy[json_size / 2] ^= 1;
	changed.manifest = copy;
	CHECK(tp_trust_signature_valid(&bf.bundle));
	CHECK(!tp_trust_signature_valid(&changed));
	free(copy);
	tp_bundle_file_close(&bf);

	unlink(path);
	free(json);
	tp_key_free(key);
	tp_manifest_free(&m);
	remove_keys(&k);
}

static void write_one(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void test_runtime_measurement_covers_the_extension_and_the_reaper(void)
{
	char dir[] = "/tmp/teepy-unit-XXXXXX", so[64], reaper[64], missing[64];
	uint8_t a[32], b[32], c[32];

	CHECK(mkdtemp(dir) != NULL);
	snprintf(so, sizeof(so), "%s/_teepy.so", dir);
	snprintf(reaper, sizeof(reaper), "%s/teepy-reaper", dir);
	snprintf(missing, sizeof(missing), "%s/none.so", dir);
	write_one(so, "one", O_CREAT | O_EXCL);
	write_one(reaper, "two", O_CREAT | O_EXCL);
	CHECK(tp_runtime_measure(so, reaper, "boot", a) == 0);
	CHECK(tp_runtime_measure(so, reaper, "boot", b) == 0);
	CHECK(memcmp(a, b, 32) == 0);
	write_one(so, "!", O_APPEND);
	CHECK(tp_runtime_measure(so, reaper, "boot", c) == 0);
	CHECK(memcmp(a, c, 32) != 0);
	CHECK(tp_runtime_measure(so, reaper, "another boot", b) == 0);
	CHECK(memcmp(b, c, 32) != 0); /* the boot text is measured too */
	write_one(reaper, "!", O_APPEND);
	CHECK(tp_runtime_measure(so, reaper, "boot", a) == 0);
	CHECK(memcmp(a, c, 32) != 0); /* and the reaper */
	CHECK(tp_runtime_measure(missing, reaper, "boot", c) == -ENOENT);
	CHECK(tp_runtime_measure(so, missing, "boot", c) == -ENOENT);
	unlink(so);
	unlink(reaper);
	rmdir(dir);
}

TESTS(trust_tests) = {
	{ "signers_are_all_read_before_any_is_used", test_signers_are_all_read_before_any_is_used },
	{ "trust_verdict_judges_the_signer_first", test_trust_verdict_judges_the_signer_first },
	{ "bundle_written_is_read_back_and_measured",
	  test_bundle_written_is_read_back_and_measured },
	{ "runtime_measurement_covers_the_extension_and_the_reaper",
	  test_runtime_measurement_covers_the_extension_and_the_reaper },
	END_TESTS,
};
