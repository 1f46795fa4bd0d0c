/* A small test harness: each test is a function; CHECK records a failure and goes on. */
#ifndef TEEPY_TEST_H
#define TEEPY_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

extern int tp_test_failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			tp_test_failures++;                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                           \
			fprintf(stderr, "  %s:%d: '%s' != '%s'\n", __FILE__, __LINE__,             \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");                           \
			tp_test_failures++;                                                        \
		}                                                                                  \
	} while (0)

/* Loads libcrypto (test_crypto_pfs.c); false, with the reason on stderr, when it
 * cannot. */
bool tp_test_crypto_ready(void);

/* every test of the cryptography starts here: libcrypto is loaded on demand */
#define NEED_CRYPTO()                                                                              \
	do {                                                                                       \
		if (!tp_test_crypto_ready()) {                                                     \
			CHECK(false);                                                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)

struct tp_attest_result;
/* The names of the checks that failed, space-separated ("" when none), in a static
 * buffer (test_attest.c). */
const char *tp_test_failed_names(const struct tp_attest_result *res);

struct tp_test {
	const char *name;
	void (*fn)(void);
};

#define TESTS(group) const struct tp_test group[]
#define END_TESTS                                                                                  \
	{                                                                                          \
		NULL, NULL                                                                         \
	}

#endif
