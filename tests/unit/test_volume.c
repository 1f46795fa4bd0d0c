/* The output volume's index codec (src/pfs/volume.c): round trips, and every
 * change to its bytes refused, under the right key only. */
#include "test.h"

#include "../../src/crypto/crypto.h"
#include "../../src/pfs/volume.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t key[TP_PFS_KEY_SIZE] = { 7, 7, 7, 1 };
static const uint8_t other_key[TP_PFS_KEY_SIZE] = { 7, 7, 7, 2 };

static bool ready(void)
{
	char err[256];
	if (tp_crypto_load(err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "  skipped: %s\n", err);
	return false;
}

/* An index of three files, version v. */
static struct tp_volume_index sample(uint64_t v, struct tp_volume_entry entries[3])
{
	static const char *const names[] = { "out.txt", "report/a.csv", "report/b.csv" };
	struct tp_volume_index ix = { .version = v, .entries = entries, .count = 3 };

	memset(ix.volume_id, 0x5a, sizeof(ix.volume_id));
	for (size_t i = 0; i < 3; i++) {
		entries[i].name = (char *)names[i];
		memset(entries[i].id, (int)(0x10 + i), sizeof(entries[i].id));
		entries[i].size = 1000 * i;
	}
	return ix;
}

static void test_volume_index_round_trips(void)
{
	struct tp_volume_entry entries[3];
	struct tp_volume_index ix, back, empty = { .version = 1 };
	uint8_t *bytes;
	size_t size;
	char err[256];

	if (!ready())
		return;
	ix = sample(42, entries);
	CHECK(tp_volume_index_encode(key, &ix, &bytes, &size, err, sizeof(err)) == 0);
	CHECK(size == TP_VOLUME_INDEX_HEADER + TP_VOLUME_MAC_SIZE + 3 * (2 + 32 + 8) + 7 + 12 + 12);
	CHECK(tp_volume_index_decode(key, bytes, size, &back, err, sizeof(err)) == 0);
	CHECK(back.version == 42 && back.count == 3);
	CHECK(memcmp(back.volume_id, ix.volume_id, sizeof(ix.volume_id)) == 0);
	for (size_t i = 0; i < back.count && i < 3; i++) {
		CHECK_STR(back.entries[i].name, entries[i].name);
		CHECK(memcmp(back.entries[i].id, entries[i].id, 32) == 0);
		CHECK(back.entries[i].size == entries[i].size);
	}
	tp_volume_index_free(&back);
	free(bytes);
	/* an empty volume is one too */
	CHECK(tp_volume_index_encode(key, &empty, &bytes, &size, err, sizeof(err)) == 0);
	CHECK(tp_volume_index_decode(key, bytes, size, &back, err, sizeof(err)) == 0);
	CHECK(back.count == 0 && back.version == 1);
	tp_volume_index_free(&back);
	free(bytes);
}

static void test_volume_index_refuses_every_changed_byte_and_another_key(void)
{
	struct tp_volume_entry entries[3];
	struct tp_volume_index ix, back;
	uint8_t *bytes;
	size_t size;
	char err[256];

	if (!ready())
		return;
	ix = sample(3, entries);
	CHECK(tp_volume_index_encode(key, &ix, &bytes, &size, err, sizeof(err)) == 0);
	for (size_t at = 0; at < size; at++) {
		bytes[at] ^= 0x01;
		int r = tp_volume_index_decode(key, bytes, size, &back, err, sizeof(err));
		int want = at < 8 ? -EINVAL : at < 10 ? -EPROTONOSUPPORT : -EKEYREJECTED;
		if (r != want)
			fprintf(stderr, "  byte %zu: %d, want %d\n", at, r, want);
		CHECK(r == want && err[0]);
		bytes[at] ^= 0x01;
	}
	CHECK(tp_volume_index_decode(other_key, bytes, size, &back, err, sizeof(err)) ==
	      -EKEYREJECTED);
	/* cut short or extended: the MAC is over other bytes */
	CHECK(tp_volume_index_decode(key, bytes, size - 1, &back, err, sizeof(err)) ==
	      -EKEYREJECTED);
	CHECK(tp_volume_index_decode(key, bytes, 20, &back, err, sizeof(err)) == -EINVAL);
	free(bytes);
}

static void test_volume_index_an_older_one_authenticates_and_says_its_version(void)
{
	/* a replayed index is genuine: the version is what tells it (--expect-version) */
	struct tp_volume_entry entries[3];
	struct tp_volume_index one = sample(1, entries), back;
	uint8_t *old, *now;
	size_t old_size, now_size;
	char err[256];

	if (!ready())
		return;
	CHECK(tp_volume_index_encode(key, &one, &old, &old_size, err, sizeof(err)) == 0);
	one.version = 2;
	one.count = 2; /* a file removed since */
	CHECK(tp_volume_index_encode(key, &one, &now, &now_size, err, sizeof(err)) == 0);
	CHECK(tp_volume_index_decode(key, old, old_size, &back, err, sizeof(err)) == 0);
	CHECK(back.version == 1 && back.count == 3);
	tp_volume_index_free(&back);
	CHECK(tp_volume_index_decode(key, now, now_size, &back, err, sizeof(err)) == 0);
	CHECK(back.version == 2 && back.count == 2);
	tp_volume_index_free(&back);
	free(old);
	free(now);
}

static void test_volume_index_refuses_names_no_volume_holds(void)
{
	struct tp_volume_entry entries[3];
	struct tp_volume_index ix;
	uint8_t *bytes;
	size_t size;
	char err[256];

	CHECK(tp_volume_name_ok("a") && tp_volume_name_ok("a/b.c") && tp_volume_name_ok(".hidden"));
	CHECK(!tp_volume_name_ok("") && !tp_volume_name_ok("/a") && !tp_volume_name_ok("a/"));
	CHECK(!tp_volume_name_ok("a//b") && !tp_volume_name_ok("./a") &&
	      !tp_volume_name_ok("a/.."));
	CHECK(!tp_volume_name_ok("a\nb") && !tp_volume_name_ok("a\x7f"));
	if (!ready())
		return;
	ix = sample(1, entries);
	entries[1].name = (char *)"../escape";
	CHECK(tp_volume_index_encode(key, &ix, &bytes, &size, err, sizeof(err)) == -EINVAL);
	ix = sample(1, entries);
	entries[2].name = (char *)"report/a.csv"; /* twice */
	CHECK(tp_volume_index_encode(key, &ix, &bytes, &size, err, sizeof(err)) == -EINVAL);
	ix = sample(1, entries);
	entries[0].name = (char *)"zzz"; /* out of order */
	CHECK(tp_volume_index_encode(key, &ix, &bytes, &size, err, sizeof(err)) == -EINVAL);
}

TESTS(volume_tests) = {
	{ "volume_index_round_trips", test_volume_index_round_trips },
	{ "volume_index_refuses_every_changed_byte_and_another_key",
	  test_volume_index_refuses_every_changed_byte_and_another_key },
	{ "volume_index_an_older_one_authenticates_and_says_its_version",
	  test_volume_index_an_older_one_authenticates_and_says_its_version },
	{ "volume_index_refuses_names_no_volume_holds",
	  test_volume_index_refuses_names_no_volume_holds },
	END_TESTS,
};
