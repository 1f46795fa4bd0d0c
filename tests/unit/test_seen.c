/* The bounded set of the last keys seen (src/common/seen.c): what the worker's
 * spawner refuses a replayed sealed input with. Against a model (the last cap keys,
 * in a list) over many operations on keys that share their home slots, so that
 * probing, eviction and the moves after a removal all run. */
#include "test.h"
#include "../../src/common/seen.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A key whose first 8 bytes (its home) are one of few values: many collide. */
static void key_of(unsigned n, unsigned homes, uint8_t key[TP_SEEN_KEY])
{
	uint64_t h = (uint64_t)(n % homes) * 0x9e3779b97f4a7c15ull;

	memset(key, 0, TP_SEEN_KEY);
	memcpy(key, &h, sizeof(h));
	memcpy(key + 8, &n, sizeof(n));
}

static void test_seen_refuses_a_key_twice_and_forgets_the_oldest(void)
{
	struct tp_seen s;
	uint8_t k[5][TP_SEEN_KEY];

	CHECK(tp_seen_init(&s, 0) == -EINVAL);
	CHECK(tp_seen_init(&s, 4) == 0);
	for (unsigned i = 0; i < 5; i++)
		key_of(i, 1000, k[i]);
	for (unsigned i = 0; i < 4; i++)
		CHECK(tp_seen_add(&s, k[i]) == 0);
	for (unsigned i = 0; i < 4; i++)
		CHECK(tp_seen_add(&s, k[i]) == 1);
	CHECK(tp_seen_add(&s, k[4]) == 0); /* k[0] forgotten */
	CHECK(tp_seen_add(&s, k[0]) == 0); /* new again: k[1] forgotten */
	CHECK(tp_seen_add(&s, k[2]) == 1 && tp_seen_add(&s, k[4]) == 1);
	CHECK(tp_seen_add(&s, k[1]) == 0);
	tp_seen_free(&s);
}

static void test_seen_matches_a_model_with_colliding_keys(void)
{
	enum { CAP = 8, OPS = 20000, UNIVERSE = 40 };
	unsigned model[CAP], count = 0, next = 0, seed = 12345;
	struct tp_seen s;
	bool all = true;

	CHECK(tp_seen_init(&s, CAP) == 0);
	for (unsigned op = 0; op < OPS; op++) {
		uint8_t key[TP_SEEN_KEY];
		seed = seed * 1103515245u + 12345u;
		unsigned n = (seed >> 16) % UNIVERSE;
		bool in = false;
		for (unsigned i = 0; i < count; i++)
			in |= model[(next + CAP - count + i) % CAP] == n;
		key_of(n, 3, key); /* three homes for 40 keys */
		all &= tp_seen_add(&s, key) == (in ? 1 : 0);
		if (!in) {
			model[next] = n;
			next = (next + 1) % CAP;
			count += count < CAP;
		}
	}
	CHECK(all);
	CHECK(s.count == CAP);
	tp_seen_free(&s);
}

TESTS(seen_tests) = {
	{ "seen_refuses_a_key_twice_and_forgets_the_oldest",
	  test_seen_refuses_a_key_twice_and_forgets_the_oldest },
	{ "seen_matches_a_model_with_colliding_keys",
	  test_seen_matches_a_model_with_colliding_keys },
	END_TESTS,
};
