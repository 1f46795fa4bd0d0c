/* Producing evidence: the report data's encoding against a vector computed outside
 * teepy (Python's hashlib over the encoding docs/cas.md gives), sealing to an X25519
 * key, and sim evidence written, parsed and verified, every byte of it changed
 * refused. */
#include "test.h"
#include "../../src/attest/attest.h"
#include "../../src/crypto/crypto.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* mode, 0x11.., 0x22.., 0x33.., "nonce-0123456789", 0x44.. */
static struct tp_claims vector_claims(const char *mode)
{
	struct tp_claims c = { .nonce_size = 16 };

	snprintf(c.mode, sizeof(c.mode), "%s", mode);
	memset(c.runtime, 0x11, sizeof(c.runtime));
	memset(c.app, 0x22, sizeof(c.app));
	memset(c.signer, 0x33, sizeof(c.signer));
	memcpy(c.nonce, "nonce-0123456789", 16);
	memset(c.pubkey, 0x44, sizeof(c.pubkey));
	return c;
}

static void test_report_data_is_the_documented_encoding(void)
{
	/* hashlib.sha512(b"teepy report data v1" + b"".join(len(f).to_bytes(4, "big") + f
	 * for f in (mode, runtime, app, signer, nonce, pubkey))) */
	static const char sim[] =
	    "274c6dfb4e6384cc5b82cc2e069e731fa157b315f5527f62df6cdaf7b4893190cd42a8db562b6caa4f37c1"
	    "6be862508b6290aa1c352cdad9056b33d981d5fd57";
	static const char hw[] =
	    "fe3f317c94053f5cb47cadf53c7c47b721ae6ae58abbcbad6f1fe71abef5af662066f0679bdae79c6b0f72"
	    "91ae5cb2278fc03bdd1dc0ceab542f1810f4596263";
	struct tp_claims c = vector_claims("sim");
	uint8_t rd[TP_REPORT_DATA_SIZE], other[TP_REPORT_DATA_SIZE];
	char hex[2 * TP_REPORT_DATA_SIZE + 1];

	NEED_CRYPTO();
	CHECK(tp_report_data(&c, rd) == 0);
	tp_hex(rd, sizeof(rd), hex);
	CHECK_STR(hex, sim);
	c = vector_claims("hw");
	CHECK(tp_report_data(&c, rd) == 0);
	tp_hex(rd, sizeof(rd), hex);
	CHECK_STR(hex, hw);
	/* every claim is bound: one bit of any changes the report data */
	for (size_t field = 0; field < 5; field++) {
		struct tp_claims d = vector_claims("hw");
		uint8_t *f[] = { d.runtime, d.app, d.signer, d.nonce, d.pubkey };
		f[field][field] ^= 1;
		CHECK(tp_report_data(&d, other) == 0 && memcmp(other, rd, sizeof(rd)) != 0);
	}
	/* a nonce one byte longer is another encoding, not a collision */
	c.nonce_size = 17;
	CHECK(tp_report_data(&c, other) == 0 && memcmp(other, rd, sizeof(rd)) != 0);
	c.nonce_size = 0;
	CHECK(tp_report_data(&c, rd) == -EINVAL);
	c.nonce_size = TP_NONCE_MAX + 1;
	CHECK(tp_report_data(&c, rd) == -EINVAL);
	c = vector_claims("sim");
	memcpy(c.mode, "dbg", 4);
	CHECK(tp_report_data(&c, rd) == -EINVAL);
}

static void test_a_debug_runs_report_data_binds_the_field_debug_last(void)
{
	/* the same, with b"debug" a seventh field */
	static const char debug[] =
	    "278e460a6fdff9f3dcff509eea73f8bcb15cbd486df770fcfa0bcba16fdb91dc48fa44213402a4137509a0"
	    "87a27428d1c9b8e72bef5311034d03209cbab74aed";
	struct tp_claims c = vector_claims("sim");
	uint8_t rd[TP_REPORT_DATA_SIZE];
	char hex[2 * TP_REPORT_DATA_SIZE + 1];

	NEED_CRYPTO();
	c.debug = true;
	CHECK(tp_report_data(&c, rd) == 0);
	tp_hex(rd, sizeof(rd), hex);
	CHECK_STR(hex, debug);
	/* and a run's is as it was: the vector above */
	c.debug = false;
	CHECK(tp_report_data(&c, rd) == 0);
	tp_hex(rd, sizeof(rd), hex);
	CHECK(strncmp(hex, "274c6dfb4e6384cc", 16) == 0);
	/* the claims' JSON says debug only when so: a run's reads as it always has */
	json_t *j = tp_claims_json(&c);
	CHECK(json_object_get(j, "debug") == NULL && json_object_size(j) == 6);
	json_decref(j);
	c.debug = true;
	j = tp_claims_json(&c);
	CHECK(json_is_true(json_object_get(j, "debug")));
	json_decref(j);
}

static void test_x25519_keys_are_new_each_time(void)
{
	struct tp_x25519 *a, *b;
	uint8_t pa[TP_X25519_SIZE], pb[TP_X25519_SIZE], zeros[TP_X25519_SIZE] = { 0 };

	NEED_CRYPTO();
	a = tp_x25519_generate();
	b = tp_x25519_generate();
	CHECK(a && b);
	if (!a || !b)
		return;
	tp_x25519_public(a, pa);
	tp_x25519_public(b, pb);
	CHECK(memcmp(pa, pb, sizeof(pa)) != 0 && memcmp(pa, zeros, sizeof(pa)) != 0);
	tp_x25519_free(a);
	tp_x25519_free(b);
}

static void test_seal_opens_only_with_the_recipients_key_and_unchanged(void)
{
	static const char msg[] = "the volume key: 0123456789abcdef";
	static const char aad[] = "deployment 7";
	struct tp_x25519 *me = tp_x25519_generate(), *other = tp_x25519_generate();
	uint8_t pub[TP_X25519_SIZE], sealed[sizeof(msg) + TP_SEAL_OVERHEAD], again[sizeof(sealed)];
	uint8_t small_order[TP_X25519_SIZE] = { 0 };
	char out[sizeof(msg)];

	NEED_CRYPTO();
	CHECK(me && other);
	if (!me || !other)
		return;
	tp_x25519_public(me, pub);
	CHECK(tp_seal(pub, aad, sizeof(aad), msg, sizeof(msg), sealed) == 0);
	CHECK(tp_seal_open(me, aad, sizeof(aad), sealed, sizeof(sealed), out) == 0);
	CHECK(memcmp(out, msg, sizeof(msg)) == 0);
	/* a new ephemeral key each time: never the same bytes twice */
	CHECK(tp_seal(pub, aad, sizeof(aad), msg, sizeof(msg), again) == 0);
	CHECK(memcmp(again, sealed, sizeof(sealed)) != 0);
	/* every byte changed, the ephemeral key, ciphertext and tag alike */
	for (size_t i = 0; i < sizeof(sealed); i++) {
		sealed[i] ^= 0x01;
		if (tp_seal_open(me, aad, sizeof(aad), sealed, sizeof(sealed), out) != -EBADMSG) {
			fprintf(stderr, "  byte %zu changed: opened\n", i);
			tp_test_failures++;
		}
		sealed[i] ^= 0x01;
	}
	CHECK(tp_seal_open(other, aad, sizeof(aad), sealed, sizeof(sealed), out) == -EBADMSG);
	CHECK(tp_seal_open(me, "deployment 8", sizeof(aad), sealed, sizeof(sealed), out) ==
	      -EBADMSG);
	CHECK(tp_seal_open(me, aad, sizeof(aad), sealed, sizeof(sealed) - 1, out) == -EBADMSG);
	CHECK(tp_seal_open(me, aad, sizeof(aad), sealed, TP_SEAL_OVERHEAD - 1, out) == -EINVAL);
	/* an empty message still authenticates */
	CHECK(tp_seal(pub, NULL, 0, "", 0, sealed) == 0);
	CHECK(tp_seal_open(me, NULL, 0, sealed, TP_SEAL_OVERHEAD, out) == 0);
	/* to a key of small order the secret would be public: refused */
	CHECK(tp_seal(small_order, NULL, 0, msg, sizeof(msg), sealed) == -EINVAL);
	tp_x25519_free(me);
	tp_x25519_free(other);
}

/* A platform key made for the test (teepy keygen's code), and its public half. */
static struct tp_key *platform_key(uint8_t pub[TP_ED25519_PUB_SIZE])
{
	char dir[] = "/tmp/teepy-unit-XXXXXX", key[64], pubpath[64], err[256];
	struct tp_key *k = NULL;

	if (!mkdtemp(dir))
		return NULL;
	snprintf(key, sizeof(key), "%s/p.key", dir);
	snprintf(pubpath, sizeof(pubpath), "%s/p.pub", dir);
	if (tp_key_generate(key, pubpath) == 0 && (k = tp_key_load_private(key, err, sizeof(err))))
		tp_key_public_raw(k, pub);
	unlink(key);
	unlink(pubpath);
	rmdir(dir);
	return k;
}

static void test_sim_evidence_round_trip_and_what_it_binds(void)
{
	uint8_t pub[TP_ED25519_PUB_SIZE], other_pub[TP_ED25519_PUB_SIZE], ev[TP_SIM_MAX_SIZE];
	uint8_t trusted[2][TP_SIM_PLATFORM_KEY];
	struct tp_key *k = NULL, *other = NULL;
	struct tp_claims c = vector_claims("sim");
	struct tp_sim_evidence e;
	struct tp_attest_result res;
	struct tp_sim_expect x = { 0 };
	char err[256];
	int n;

	NEED_CRYPTO();
	k = platform_key(pub);
	other = platform_key(other_pub);
	CHECK(k && other);
	if (!k || !other)
		goto out;
	n = tp_sim_write(&c, k, ev);
	CHECK(n == (int)(TP_SIM_FIXED_SIZE + 16));
	CHECK(memcmp(ev, "teepy sim evidence: SIMULATION, not hardware\n", TP_SIM_LABEL_SIZE) == 0);
	CHECK(tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err)) == 0);
	CHECK(memcmp(&e.claims, &c, sizeof(c)) == 0);
	CHECK(memcmp(e.platform_key, pub, sizeof(pub)) == 0);
	memcpy(trusted[0], other_pub, sizeof(other_pub));
	memcpy(trusted[1], pub, sizeof(pub));
	CHECK(tp_sim_verify(&e, trusted, 2, NULL, &res) == 0);
	CHECK_STR(tp_test_failed_names(&res), "");
	CHECK(res.count == 3);

	/* signed by a key the verifier does not trust, or trusting none */
	CHECK(tp_sim_verify(&e, trusted, 1, NULL, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "platform_key");
	CHECK(tp_sim_verify(&e, trusted, 0, NULL, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "platform_key");
	/* the claims a verifier expects */
	x.nonce = (const uint8_t *)"nonce-0123456789";
	x.nonce_size = 16;
	x.app = c.app;
	CHECK(tp_sim_verify(&e, trusted, 2, &x, &res) == 0 && res.count == 4);
	x.nonce_size = 15;
	CHECK(tp_sim_verify(&e, trusted, 2, &x, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "claims");
	x.nonce_size = 16;
	x.signer = c.app;
	CHECK(tp_sim_verify(&e, trusted, 2, &x, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "claims");

	/* evidence whose key the attacker swapped for their own: theirs is not trusted */
	CHECK(tp_sim_write(&c, other, ev) == n);
	CHECK(tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err)) == 0);
	CHECK(tp_sim_verify(&e, trusted + 1, 1, NULL, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "platform_key");
	/* a debug run's: version 2, its flag after the version, bound as its claim */
	c.debug = true;
	n = tp_sim_write(&c, k, ev);
	CHECK(n == (int)(TP_SIM_FIXED_SIZE + 1 + 16));
	CHECK(ev[TP_SIM_LABEL_SIZE + 1] == 2 && ev[TP_SIM_LABEL_SIZE + 2] == TP_SIM_FLAG_DEBUG);
	CHECK(tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err)) == 0);
	CHECK(e.version == 2 && e.claims.debug);
	CHECK(memcmp(&e.claims, &c, sizeof(c)) == 0);
	CHECK(tp_sim_verify(&e, trusted, 2, NULL, &res) == 0);
	/* its flags cannot say anything else */
	ev[TP_SIM_LABEL_SIZE + 2] = 0;
	CHECK(tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err)) == -EINVAL);
	c.nonce_size = 0;
	CHECK(tp_sim_write(&c, k, ev) == -EINVAL);
out:
	tp_key_free(k);
	tp_key_free(other);
}

/* Every byte changed: refused, by the parser (label, version, nonce size) or by a
 * check; every length cut short and one byte more refused by the parser. */
static void any_byte_changed_or_cut_is_refused(bool debug)
{
	uint8_t pub[TP_ED25519_PUB_SIZE], ev[TP_SIM_MAX_SIZE + 1];
	struct tp_key *k;
	struct tp_claims c = vector_claims("sim");
	struct tp_sim_evidence e;
	struct tp_attest_result res;
	char err[256];
	int n, r;

	NEED_CRYPTO();
	if (!(k = platform_key(pub))) {
		CHECK(false);
		return;
	}
	c.debug = debug;
	n = tp_sim_write(&c, k, ev);
	CHECK(n > 0);
	for (int i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			ev[i] ^= (uint8_t)(1 << bit);
			r = tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err));
			if (r == 0)
				r = tp_sim_verify(&e, (const uint8_t(*)[32])pub, 1, NULL, &res);
			else
				CHECK(*err && (r == -EINVAL || r == -EPROTONOSUPPORT));
			if (r == 0) {
				fprintf(stderr, "  byte %d bit %d changed: accepted\n", i, bit);
				tp_test_failures++;
			}
			ev[i] ^= (uint8_t)(1 << bit);
		}
	}
	for (int size = 0; size < n; size++)
		CHECK(tp_sim_parse(ev, (size_t)size, &e, err, sizeof(err)) < 0);
	ev[n] = 0;
	CHECK(tp_sim_parse(ev, (size_t)n + 1, &e, err, sizeof(err)) == -EINVAL);
	ev[TP_SIM_LABEL_SIZE + 1] = 3;
	CHECK(tp_sim_parse(ev, (size_t)n, &e, err, sizeof(err)) == -EPROTONOSUPPORT);
	CHECK(strstr(err, "version 3") != NULL);
	tp_key_free(k);
}

static void test_sim_evidence_any_byte_changed_or_cut_is_refused(void)
{
	any_byte_changed_or_cut_is_refused(false);
	any_byte_changed_or_cut_is_refused(true); /* a debug run's, version 2 */
}

TESTS(evidence_tests) = {
	{ "report_data_is_the_documented_encoding", test_report_data_is_the_documented_encoding },
	{ "a_debug_runs_report_data_binds_the_field_debug_last",
	  test_a_debug_runs_report_data_binds_the_field_debug_last },
	{ "x25519_keys_are_new_each_time", test_x25519_keys_are_new_each_time },
	{ "seal_opens_only_with_the_recipients_key_and_unchanged",
	  test_seal_opens_only_with_the_recipients_key_and_unchanged },
	{ "sim_evidence_round_trip_and_what_it_binds",
	  test_sim_evidence_round_trip_and_what_it_binds },
	{ "sim_evidence_any_byte_changed_or_cut_is_refused",
	  test_sim_evidence_any_byte_changed_or_cut_is_refused },
	END_TESTS,
};
