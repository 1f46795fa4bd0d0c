/* Sizes and durations as users type them. */
#include "test.h"
#include "../../src/common/units.h"

#include <errno.h>

static void test_size_units_are_binary(void)
{
	uint64_t v = 0;
	CHECK(tp_parse_size("3G", &v) == 0 && v == 3ULL << 30);
	CHECK(tp_parse_size("512M", &v) == 0 && v == 512ULL << 20);
	CHECK(tp_parse_size("4KiB", &v) == 0 && v == 4096);
	CHECK(tp_parse_size("2gb", &v) == 0 && v == 2ULL << 30);
	CHECK(tp_parse_size("1024", &v) == 0 && v == 1024);
	CHECK(tp_parse_size("1T", &v) == 0 && v == 1ULL << 40);
}

static void test_size_rejects_garbage(void)
{
	uint64_t v = 7;
	CHECK(tp_parse_size("3Q", &v) == -EINVAL);
	CHECK(tp_parse_size("", &v) == -EINVAL);
	CHECK(tp_parse_size("-1", &v) == -EINVAL);
	CHECK(tp_parse_size("G", &v) == -EINVAL);
	CHECK(tp_parse_size("1.5G", &v) == -EINVAL);
	CHECK(tp_parse_size("3 G", &v) == -EINVAL);
	CHECK(tp_parse_size(NULL, &v) == -EINVAL);
	CHECK(v == 7);
}

static void test_size_overflow_is_an_error(void)
{
	uint64_t v;
	CHECK(tp_parse_size("99999999999999999999", &v) == -ERANGE);
	CHECK(tp_parse_size("17179869184G", &v) == -ERANGE);
}

static void test_duration_units(void)
{
	uint64_t ms = 0;
	CHECK(tp_parse_duration_ms("2", &ms) == 0 && ms == 2000);
	CHECK(tp_parse_duration_ms("2s", &ms) == 0 && ms == 2000);
	CHECK(tp_parse_duration_ms("1.5s", &ms) == 0 && ms == 1500);
	CHECK(tp_parse_duration_ms("500ms", &ms) == 0 && ms == 500);
	CHECK(tp_parse_duration_ms("30m", &ms) == 0 && ms == 1800000);
	CHECK(tp_parse_duration_ms("1h", &ms) == 0 && ms == 3600000);
	CHECK(tp_parse_duration_ms("0.0001", &ms) == 0 && ms == 1); /* rounds up, never 0 */
}

static void test_duration_rejects_garbage(void)
{
	uint64_t ms;
	CHECK(tp_parse_duration_ms("abc", &ms) == -EINVAL);
	CHECK(tp_parse_duration_ms("0", &ms) == -EINVAL);
	CHECK(tp_parse_duration_ms("2x", &ms) == -EINVAL);
	CHECK(tp_parse_duration_ms("1.", &ms) == -EINVAL);
	CHECK(tp_parse_duration_ms("-2", &ms) == -EINVAL);
	CHECK(tp_parse_duration_ms("", &ms) == -EINVAL);
}

static void test_format_size_and_duration(void)
{
	char buf[32];
	CHECK_STR(tp_format_size(3ULL << 30, buf, sizeof(buf)), "3 GiB");
	CHECK_STR(tp_format_size(1536ULL << 10, buf, sizeof(buf)), "1.5 MiB");
	CHECK_STR(tp_format_size(100, buf, sizeof(buf)), "100 B");
	CHECK_STR(tp_format_duration(1800000, buf, sizeof(buf)), "30 min");
	CHECK_STR(tp_format_duration(2000, buf, sizeof(buf)), "2 s");
	CHECK_STR(tp_format_duration(500, buf, sizeof(buf)), "500 ms");
}

TESTS(units_tests) = {
	{ "size_units_are_binary", test_size_units_are_binary },
	{ "size_rejects_garbage", test_size_rejects_garbage },
	{ "size_overflow_is_an_error", test_size_overflow_is_an_error },
	{ "duration_units", test_duration_units },
	{ "duration_rejects_garbage", test_duration_rejects_garbage },
	{ "format_size_and_duration", test_format_size_and_duration },
	END_TESTS,
};
