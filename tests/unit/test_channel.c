/* The control channel: the boot payload's encoder and decoder, frames on a stream,
 * and the supervisor's serving side against a hand-written service. */
#include "test.h"
#include "../../src/channel/channel.h"
#include "../../src/common/io.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t filter[16] = { 6, 0, 0, 0, 0, 0, 0xff, 0x7f, 6, 0, 0, 0, 0, 0, 0, 0 };

static struct tp_boot sample(void)
{
	static const char *const argv[] = { "/app/service.py", "--flag", "" };
	static const char *const path[] = { "/app", "/usr/lib/python3.11" };
	static const char *const preload[] = { "numpy" };
	static const char *const site[] = { "/venv/lib/python3.11/site-packages" };
	static const char *const top[] = { "app", "usr", ".teepy" };

	return (struct tp_boot){
		.site = site,
		.site_count = 1,
		.top = top,
		.top_count = 3,
		.zygote = true,
		.sealed = true,
		.listen = true,
		.wsgi = "application",
		.filter = filter,
		.filter_size = sizeof(filter),
		.entry = "/app/service.py",
		.argv = argv,
		.argv_count = 3,
		.path = path,
		.path_count = 2,
		.preload = preload,
		.preload_count = 1,
		.data_count = 2,
	};
}

/* Appends one raw field to buf at *at. */
static void put(uint8_t *buf, size_t *at, uint32_t len, char tag, const void *value, size_t size)
{
	memcpy(buf + *at, &len, sizeof(len));
	buf[*at + 4] = (uint8_t)tag;
	memcpy(buf + *at + 5, value, size);
	*at += 5 + size;
}

static void put_field(uint8_t *buf, size_t *at, char tag, const char *s)
{
	put(buf, at, (uint32_t)strlen(s) + 1, tag, s, strlen(s));
}

/* A minimal valid payload: filter, entry, count; returns its size. */
static size_t minimal(uint8_t *buf)
{
	size_t at = 0;

	put(buf, &at, sizeof(filter) + 1, TP_BOOT_FILTER, filter, sizeof(filter));
	put_field(buf, &at, TP_BOOT_ENTRY, "/e.py");
	put_field(buf, &at, TP_BOOT_DATA_COUNT, "0");
	return at;
}

static void check_same_list(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	CHECK(na == nb);
	for (size_t i = 0; i < na && i < nb; i++)
		CHECK_STR(a[i], b[i]);
}

static void test_boot_round_trip_keeps_every_field(void)
{
	struct tp_boot in = sample(), out;
	uint8_t *bytes = NULL;
	size_t size = 0;

	CHECK(tp_boot_encode(&in, &bytes, &size) == 0);
	CHECK(tp_boot_decode(bytes, size, &out) == 0);
	free(bytes); /* the decoded boot does not refer to the bytes */
	CHECK(out.filter_size == sizeof(filter) && memcmp(out.filter, filter, sizeof(filter)) == 0);
	CHECK_STR(out.entry, in.entry);
	check_same_list(out.argv, out.argv_count, in.argv, in.argv_count);
	check_same_list(out.path, out.path_count, in.path, in.path_count);
	check_same_list(out.preload, out.preload_count, in.preload, in.preload_count);
	check_same_list(out.site, out.site_count, in.site, in.site_count);
	check_same_list(out.top, out.top_count, in.top, in.top_count);
	CHECK(out.sealed && out.zygote && out.listen);
	CHECK_STR(out.wsgi, "application");
	CHECK(out.data_count == 2);
	CHECK((uintptr_t)out.filter % alignof(uint64_t) == 0);
	tp_boot_free(&out);
	CHECK(out.owned == NULL && out.entry == NULL);
}

static void test_boot_round_trip_with_no_lists_and_the_largest_count(void)
{
	struct tp_boot in = {
		.filter = filter, .filter_size = 8, .entry = "", .data_count = UINT32_MAX
	};
	struct tp_boot out;
	uint8_t *bytes = NULL;
	size_t size = 0;

	CHECK(tp_boot_encode(&in, &bytes, &size) == 0);
	CHECK(tp_boot_decode(bytes, size, &out) == 0);
	CHECK_STR(out.entry, "");
	CHECK(out.argv_count == 0 && out.path_count == 0 && out.preload_count == 0);
	CHECK(out.site_count == 0 && out.top_count == 0 && !out.sealed && !out.zygote);
	CHECK(!out.listen && out.wsgi == NULL);
	CHECK(out.data_count == UINT32_MAX && out.filter_size == 8);
	tp_boot_free(&out);
	free(bytes);
}

/* The bytes _teepy has always read: filter, entry, data count, then the lists. */
static void test_boot_encoding_is_the_field_sequence_of_protocol_h(void)
{
	static const char *const argv[] = { "/e.py" };
	static const char *const path[] = { "/p" };
	struct tp_boot in = { .filter = filter,
			      .filter_size = 8,
			      .entry = "/e.py",
			      .argv = argv,
			      .argv_count = 1,
			      .path = path,
			      .path_count = 1,
			      .data_count = 12 };
	uint8_t want[128], *bytes = NULL;
	size_t at = 0, size = 0;

	put(want, &at, 9, TP_BOOT_FILTER, filter, 8);
	put_field(want, &at, TP_BOOT_ENTRY, "/e.py");
	put_field(want, &at, TP_BOOT_DATA_COUNT, "12");
	put_field(want, &at, TP_BOOT_ARG, "/e.py");
	put_field(want, &at, TP_BOOT_PATH, "/p");
	CHECK(tp_boot_encode(&in, &bytes, &size) == 0);
	CHECK(size == at && bytes && memcmp(bytes, want, at) == 0);
	free(bytes);
}

static void test_boot_decode_accepts_fields_in_any_order(void)
{
	uint8_t buf[256];
	size_t at = 0;
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_PATH, "/one");
	put_field(buf, &at, TP_BOOT_DATA_COUNT, "3");
	put_field(buf, &at, TP_BOOT_ARG, "a0");
	put_field(buf, &at, TP_BOOT_ENTRY, "/e.py");
	put_field(buf, &at, TP_BOOT_PATH, "/two");
	put(buf, &at, 9, TP_BOOT_FILTER, filter, 8);
	CHECK(tp_boot_decode(buf, at, &b) == 0);
	CHECK(b.path_count == 2 && b.argv_count == 1 && b.data_count == 3);
	if (b.path_count == 2) {
		CHECK_STR(b.path[0], "/one");
		CHECK_STR(b.path[1], "/two");
	}
	tp_boot_free(&b);
}

static void test_boot_decode_refuses_every_cut_inside_a_field(void)
{
	struct tp_boot in = sample(), out;
	uint8_t *bytes = NULL;
	size_t size = 0, boundary = 0;
	int bad = 0;

	CHECK(tp_boot_encode(&in, &bytes, &size) == 0);
	for (size_t cut = 0; cut < size; cut++) {
		/* a cut on a field boundary is a shorter, well-formed payload */
		if (cut == boundary) {
			uint32_t len;
			memcpy(&len, bytes + cut, sizeof(len));
			boundary += sizeof(len) + len;
			int r = tp_boot_decode(bytes, cut, &out);
			CHECK(r == 0 || r == -EPROTO);
			tp_boot_free(&out);
			continue;
		}
		if (tp_boot_decode(bytes, cut, &out) != -EBADMSG)
			bad++;
		CHECK(out.owned == NULL);
	}
	CHECK(bad == 0);
	free(bytes);
}

static void test_boot_decode_refuses_lengths_past_the_end_or_zero(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf), end = at;
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_ARG, "x");
	uint32_t huge = UINT32_MAX, zero = 0, one_more = 3;
	memcpy(buf + end, &huge, 4);
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	memcpy(buf + end, &zero, 4);
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	memcpy(buf + end, &one_more, 4);
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	CHECK(tp_boot_decode(buf, end + 2, &b) == -EBADMSG); /* half a length */
}

static void test_boot_decode_refuses_more_than_the_largest_payload(void)
{
	size_t size = TP_MAX_BOOT_SIZE + 5;
	uint8_t *buf = calloc(1, size);
	struct tp_boot b;
	size_t at;

	if (!buf)
		return;
	at = minimal(buf);
	/* one well-formed argument filling the rest: only the total is wrong */
	uint32_t len = (uint32_t)(size - at - 4);
	memcpy(buf + at, &len, 4);
	buf[at + 4] = TP_BOOT_ARG;
	memset(buf + at + 5, 'a', size - at - 5);
	CHECK(tp_boot_decode(buf, size, &b) == -EBADMSG);
	free(buf);
}

static void test_boot_decode_refuses_an_unknown_tag(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf);
	struct tp_boot b;

	put_field(buf, &at, 'q', "what");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	CHECK(b.owned == NULL && b.entry == NULL);
}

static void test_boot_decode_refuses_a_missing_or_repeated_field(void)
{
	uint8_t buf[256];
	size_t at;
	struct tp_boot b;
	const char tags[] = { TP_BOOT_FILTER, TP_BOOT_ENTRY, TP_BOOT_DATA_COUNT };

	for (size_t t = 0; t < sizeof(tags); t++) {
		at = 0;
		if (tags[t] != TP_BOOT_FILTER)
			put(buf, &at, 9, TP_BOOT_FILTER, filter, 8);
		if (tags[t] != TP_BOOT_ENTRY)
			put_field(buf, &at, TP_BOOT_ENTRY, "/e.py");
		if (tags[t] != TP_BOOT_DATA_COUNT)
			put_field(buf, &at, TP_BOOT_DATA_COUNT, "1");
		CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);

		at = minimal(buf);
		if (tags[t] == TP_BOOT_FILTER)
			put(buf, &at, 9, TP_BOOT_FILTER, filter, 8);
		else
			put_field(buf, &at, tags[t], "1");
		CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	}
	CHECK(tp_boot_decode(buf, 0, &b) == -EPROTO); /* nothing at all */
}

/* "zygote" is as "sealed": one field of "1" at most once. */
static void test_boot_decode_takes_zygote_once_and_only_as_1(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf);
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_ZYGOTE, "1");
	put_field(buf, &at, TP_BOOT_TOP, "app");
	CHECK(tp_boot_decode(buf, at, &b) == 0 && b.zygote && !b.sealed && b.top_count == 1);
	tp_boot_free(&b);
	put_field(buf, &at, TP_BOOT_ZYGOTE, "1");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	for (const char *const *v = (const char *const[]){ "0", "11", "", NULL }; *v; v++) {
		at = minimal(buf);
		put_field(buf, &at, TP_BOOT_ZYGOTE, *v);
		CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	}
}

/* "listen" is a flag as "sealed"; "wsgi" a name given at most once. */
static void test_boot_decode_takes_listen_and_wsgi_once(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf);
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_LISTEN, "1");
	put_field(buf, &at, TP_BOOT_WSGI, "app");
	CHECK(tp_boot_decode(buf, at, &b) == 0 && b.listen && !b.zygote);
	CHECK_STR(b.wsgi, "app");
	CHECK_STR(b.entry, "/e.py");
	tp_boot_free(&b);
	size_t both = at;
	put_field(buf, &at, TP_BOOT_LISTEN, "1");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	at = both;
	put_field(buf, &at, TP_BOOT_WSGI, "other");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	at = minimal(buf);
	put_field(buf, &at, TP_BOOT_LISTEN, "0");
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	at = minimal(buf);
	put(buf, &at, 5, TP_BOOT_WSGI, "a\0pp", 4);
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
}

/* "shell" is as "zygote", and never with it: a console forks no children. */
static void test_boot_shell_is_one_field_of_1_and_never_a_zygote(void)
{
	uint8_t buf[256], *bytes = NULL;
	size_t at = minimal(buf), size = 0;
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_SHELL, "1");
	CHECK(tp_boot_decode(buf, at, &b) == 0 && b.shell && !b.zygote);
	tp_boot_free(&b);
	put_field(buf, &at, TP_BOOT_SHELL, "1");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	at = minimal(buf);
	put_field(buf, &at, TP_BOOT_SHELL, "0");
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	at = minimal(buf);
	put_field(buf, &at, TP_BOOT_SHELL, "1");
	put_field(buf, &at, TP_BOOT_ZYGOTE, "1");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);

	struct tp_boot shell = sample();
	shell.zygote = false;
	shell.shell = true;
	shell.entry = "";
	CHECK(tp_boot_encode(&shell, &bytes, &size) == 0);
	CHECK(bytes && tp_boot_decode(bytes, size, &b) == 0 && b.shell && !b.zygote);
	CHECK_STR(b.entry, "");
	tp_boot_free(&b);
	free(bytes);
	bytes = NULL;
	shell.zygote = true;
	CHECK(tp_boot_encode(&shell, &bytes, &size) == -EINVAL && !bytes);
}

/* "sealed" is one field of "1" at most once: nothing else means it. */
static void test_boot_decode_takes_sealed_once_and_only_as_1(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf);
	struct tp_boot b;

	put_field(buf, &at, TP_BOOT_SEALED, "1");
	put_field(buf, &at, TP_BOOT_SITE, "/venv/s");
	CHECK(tp_boot_decode(buf, at, &b) == 0 && b.sealed && b.site_count == 1);
	CHECK_STR(b.site[0], "/venv/s");
	tp_boot_free(&b);
	put_field(buf, &at, TP_BOOT_SEALED, "1");
	CHECK(tp_boot_decode(buf, at, &b) == -EPROTO);
	const char *const wrong[] = { "0", "11", "" };
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		at = minimal(buf);
		put_field(buf, &at, TP_BOOT_SEALED, wrong[i]);
		CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	}
}

static void test_boot_decode_refuses_a_filter_of_a_wrong_size(void)
{
	uint8_t buf[256];
	size_t at, sizes[] = { 0, 1, 7, 9, 15 };
	struct tp_boot b;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		at = 0;
		put(buf, &at, (uint32_t)sizes[i] + 1, TP_BOOT_FILTER, filter, sizes[i]);
		put_field(buf, &at, TP_BOOT_ENTRY, "/e.py");
		put_field(buf, &at, TP_BOOT_DATA_COUNT, "0");
		CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
	}
}

static void test_boot_decode_refuses_a_nul_inside_a_string(void)
{
	uint8_t buf[256];
	size_t at = minimal(buf);
	struct tp_boot b;

	put(buf, &at, 5, TP_BOOT_PATH, "/a\0b", 4);
	CHECK(tp_boot_decode(buf, at, &b) == -EBADMSG);
}

static void test_boot_decode_takes_only_a_canonical_decimal_count(void)
{
	const char *bad[] = { "",   "01",  "-1",   "+1",	 " 1",
			      "1 ", "12a", "0x10", "4294967296", "99999999999" };
	uint8_t buf[256];
	size_t at;
	struct tp_boot b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		at = 0;
		put(buf, &at, 9, TP_BOOT_FILTER, filter, 8);
		put_field(buf, &at, TP_BOOT_ENTRY, "/e.py");
		put_field(buf, &at, TP_BOOT_DATA_COUNT, bad[i]);
		if (tp_boot_decode(buf, at, &b) != -EBADMSG) {
			fprintf(stderr, "  data count '%s' was taken\n", bad[i]);
			tp_test_failures++;
		}
		tp_boot_free(&b);
	}
}

static void test_boot_encode_refuses_what_the_decoder_would(void)
{
	static const char *const holes[] = { "a", NULL };
	struct tp_boot b;
	uint8_t *bytes = NULL;
	size_t size = 0;

	b = sample(), b.entry = NULL;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.filter = NULL;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.filter_size = 12;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.filter_size = 0;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.data_count = (uint64_t)UINT32_MAX + 1;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.path = holes, b.path_count = 2;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	b = sample(), b.preload = NULL;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EINVAL);
	CHECK(bytes == NULL);
}

static void test_boot_encode_refuses_more_than_the_largest_payload(void)
{
	char *big = malloc(TP_MAX_BOOT_SIZE);
	struct tp_boot b = sample();
	uint8_t *bytes = NULL;
	size_t size = 0;

	if (!big)
		return;
	memset(big, 'a', TP_MAX_BOOT_SIZE - 1);
	big[TP_MAX_BOOT_SIZE - 1] = '\0';
	b.entry = big;
	CHECK(tp_boot_encode(&b, &bytes, &size) == -EMSGSIZE);
	CHECK(bytes == NULL);

	/* the largest payload the decoder takes is one the encoder makes */
	b = (struct tp_boot){ .filter = filter, .filter_size = 8, .entry = big };
	big[TP_MAX_BOOT_SIZE - 3 * 5 - 8 - 1] = '\0'; /* three field heads, filter, "0" */
	CHECK(tp_boot_encode(&b, &bytes, &size) == 0 && size == TP_MAX_BOOT_SIZE);
	struct tp_boot out;
	CHECK(bytes && tp_boot_decode(bytes, size, &out) == 0);
	tp_boot_free(&out);
	free(bytes);
	free(big);
}

/* ---- frames ---- */

static void test_frame_check_holds_each_type_to_its_size(void)
{
	struct tp_frame f = { .type = TP_FRAME_GET_INPUT };
	CHECK(tp_frame_check(&f) == 0);
	f.size = 1;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_GET_DATA, .arg = 7, .size = 1 };
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_STATUS, .size = TP_MAX_STATUS_SIZE };
	CHECK(tp_frame_check(&f) == 0);
	f.size++;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_BOOT, .size = TP_MAX_BOOT_SIZE };
	CHECK(tp_frame_check(&f) == 0);
	f.size++;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_HELLO };
	CHECK(tp_frame_check(&f) == 0);
	f.size = 1;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	/* GO carries the input: any size, as a REPLY */
	f = (struct tp_frame){ .type = TP_FRAME_GO, .size = UINT64_MAX };
	CHECK(tp_frame_check(&f) == 0);
	f = (struct tp_frame){ .type = TP_FRAME_EXIT, .arg = 255 };
	CHECK(tp_frame_check(&f) == 0);
	f.size = 1;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_PROMPT, .size = TP_MAX_PROMPT_SIZE };
	CHECK(tp_frame_check(&f) == 0);
	f.size++;
	CHECK(tp_frame_check(&f) == -EMSGSIZE);
	f = (struct tp_frame){ .type = TP_FRAME_RESULT, .size = UINT64_MAX };
	CHECK(tp_frame_check(&f) == 0);
	f = (struct tp_frame){ .type = TP_FRAME_REPLY, .size = UINT64_MAX };
	CHECK(tp_frame_check(&f) == 0);
	f = (struct tp_frame){ .type = 99 };
	CHECK(tp_frame_check(&f) == -EPROTO);
	f.type = 0;
	CHECK(tp_frame_check(&f) == -EPROTO);
}

static void test_frame_written_is_read_back_and_skipped_in_step(void)
{
	int sv[2];
	struct tp_frame f;
	char payload[6] = "";

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		CHECK(!"socketpair");
		return;
	}
	CHECK(tp_frame_write(sv[0], TP_FRAME_RESULT, 0, "skip me", 7) == 0);
	CHECK(tp_frame_write(sv[0], TP_FRAME_STATUS, TP_STATUS_EXCEPTION, "Error", 5) == 0);
	CHECK(tp_frame_write(sv[0], 99, 0, NULL, 0) == 0);
	CHECK(tp_frame_write_header(sv[0], TP_FRAME_GET_INPUT, 0, 3) == 0);
	close(sv[0]);

	CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.type == TP_FRAME_RESULT && f.size == 7);
	CHECK(tp_frame_skip(sv[1], f.size) == 0);
	CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.type == TP_FRAME_STATUS &&
	      f.arg == TP_STATUS_EXCEPTION && f.size == 5);
	CHECK(tp_read_full(sv[1], payload, 5) == 0 && strcmp(payload, "Error") == 0);
	CHECK(tp_frame_read_header(sv[1], &f) == -EPROTO && f.type == 99);
	CHECK(tp_frame_read_header(sv[1], &f) == -EMSGSIZE);
	CHECK(tp_frame_read_header(sv[1], &f) == -EPIPE);
	CHECK(tp_frame_skip(sv[1], 1) == -EPIPE);
	close(sv[1]);
}

/* ---- serving ---- */

static void test_serve_answers_input_and_keeps_status_then_ends_at_close(void)
{
	struct tp_channel ch;
	struct tp_frame f;
	char got[6] = "";
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		CHECK(!"socketpair");
		return;
	}
	tp_channel_init(&ch, sv[0]);
	ch.input = "hello";
	ch.input_size = 5;
	CHECK(tp_frame_write(sv[1], TP_FRAME_GET_INPUT, 0, NULL, 0) == 0);
	CHECK(tp_channel_serve_one(&ch) == 0);
	CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.type == TP_FRAME_REPLY &&
	      f.arg == TP_REPLY_OK && f.size == 5);
	CHECK(tp_read_full(sv[1], got, 5) == 0 && strcmp(got, "hello") == 0);

	CHECK(tp_frame_write(sv[1], TP_FRAME_GET_DATA, 0, NULL, 0) == 0);
	CHECK(tp_channel_serve_one(&ch) == 0);
	CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.arg == TP_REPLY_OUT_OF_RANGE);

	CHECK(tp_frame_write(sv[1], TP_FRAME_STATUS, TP_STATUS_EXCEPTION, "KeyError", 8) == 0);
	CHECK(tp_channel_serve_one(&ch) == 0);
	CHECK(ch.status_kind == TP_STATUS_EXCEPTION);
	CHECK_STR(ch.status_name, "KeyError");
	close(sv[1]);
	CHECK(tp_channel_serve_one(&ch) == -EPIPE && !ch.protocol_violation);
	close(sv[0]);
}

/* One frame header from the service served on a fresh channel (ch, taking EXIT or
 * not): serve_one's return, or 1 if no socket pair could be made. */
static int serve_header(const struct tp_frame *f, bool takes_exit, struct tp_channel *ch)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		CHECK(!"socketpair");
		return 1;
	}
	tp_channel_init(ch, sv[0]);
	ch->takes_exit = takes_exit;
	CHECK(tp_write_full(sv[1], f, sizeof(*f)) == 0);
	r = tp_channel_serve_one(ch);
	close(sv[0]);
	close(sv[1]);
	return r;
}

static void test_serve_ends_at_a_frame_the_service_may_not_send(void)
{
	const struct tp_frame bad[] = {
		{ .type = 99 },
		{ .type = TP_FRAME_BOOT },
		{ .type = TP_FRAME_GET_INPUT, .size = 5 },
		{ .type = TP_FRAME_STATUS, .size = 1ull << 40 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tp_channel ch;
		CHECK(serve_header(&bad[i], false, &ch) == -EPROTO && ch.protocol_violation);
	}
}

/* EXIT ends a zygote's child's channel with its status; any other channel (a cold
 * run's service), or a status past 255, is broken by it. */
static void test_serve_takes_exit_only_from_a_zygote_child(void)
{
	const struct {
		bool takes_exit;
		uint32_t arg;
		int r;
	} cases[] = { { false, 0, -EPROTO }, { true, 3, -ECONNRESET }, { true, 256, -EPROTO } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tp_frame frame = { .type = TP_FRAME_EXIT, .arg = cases[i].arg };
		struct tp_channel ch;
		CHECK(serve_header(&frame, cases[i].takes_exit, &ch) == cases[i].r);
		CHECK(ch.exited == (cases[i].r == -ECONNRESET));
		CHECK(ch.protocol_violation == (cases[i].r == -EPROTO));
		CHECK(!ch.exited || ch.exit_status == 3);
	}
}

/* What the tests' read_line was asked, and answers: its ctx is the reply kind. */
static char asked_prompt[TP_MAX_PROMPT_SIZE + 1];

static int answer_line(void *ctx, const char *prompt, size_t prompt_size, char **line,
		       size_t *line_size)
{
	int kind = *(const int *)ctx;

	snprintf(asked_prompt, sizeof(asked_prompt), "%.*s", (int)prompt_size, prompt);
	if (kind == TP_REPLY_OK) {
		*line = strdup("1+1");
		*line_size = 3;
	}
	return kind;
}

/* PROMPT is a shell's: answered with the line, EOF or an interrupt; without a reader,
 * or with an arg, it breaks the channel; a reader that can say no more ends it. */
static void test_serve_answers_a_prompt_only_on_a_shells_channel(void)
{
	const int kinds[] = { TP_REPLY_OK, TP_REPLY_EOF, TP_REPLY_INTERRUPT, -EPIPE };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct tp_channel ch;
		struct tp_frame f;
		char got[4] = "";
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			CHECK(!"socketpair");
			return;
		}
		tp_channel_init(&ch, sv[0]);
		ch.read_line = answer_line;
		ch.line_ctx = (void *)&kinds[i];
		CHECK(tp_frame_write(sv[1], TP_FRAME_PROMPT, 0, ">>> ", 4) == 0);
		CHECK(tp_channel_serve_one(&ch) == (kinds[i] < 0 ? kinds[i] : 0));
		CHECK_STR(asked_prompt, ">>> ");
		CHECK(!ch.protocol_violation);
		if (kinds[i] >= 0) {
			CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.type == TP_FRAME_REPLY &&
			      (int)f.arg == kinds[i]);
			CHECK(f.size == (kinds[i] == TP_REPLY_OK ? 3 : 0));
			CHECK(f.size == 0 ||
			      (tp_read_full(sv[1], got, 3) == 0 && strcmp(got, "1+1") == 0));
		}
		close(sv[0]);
		close(sv[1]);
	}

	struct tp_channel ch;
	const struct tp_frame prompt = { .type = TP_FRAME_PROMPT };
	CHECK(serve_header(&prompt, false, &ch) == -EPROTO && ch.protocol_violation);
	const struct tp_frame too_long = { .type = TP_FRAME_PROMPT,
					   .size = TP_MAX_PROMPT_SIZE + 1 };
	CHECK(serve_header(&too_long, false, &ch) == -EPROTO && ch.protocol_violation);
}

/* A Tab: the word asked with a REPLY TP_REPLY_COMPLETE, the answer a COMPLETIONS
 * frame; any other frame, or one over TP_MAX_COMPLETIONS_SIZE, breaks the channel; a
 * COMPLETIONS frame nobody asked for breaks it too; a word too long is not sent. */
static void test_completions_come_only_as_asked(void)
{
	const struct tp_frame answers[] = {
		{ .type = TP_FRAME_COMPLETIONS, .size = 10 },
		{ .type = TP_FRAME_COMPLETIONS, .size = 0 },
		{ .type = TP_FRAME_COMPLETIONS, .arg = 1 },
		{ .type = TP_FRAME_COMPLETIONS, .size = TP_MAX_COMPLETIONS_SIZE + 1 },
		{ .type = TP_FRAME_RESULT, .size = 10 },
		{ .type = TP_FRAME_PROMPT, .size = 4 },
	};
	static char big[TP_MAX_COMPLETE_WORD + 1];

	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		struct tp_channel ch;
		struct tp_frame f;
		char word[8] = "", *list = NULL;
		size_t list_size = 99;
		int sv[2];
		bool good = answers[i].type == TP_FRAME_COMPLETIONS && answers[i].arg == 0 &&
			    answers[i].size <= TP_MAX_COMPLETIONS_SIZE;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			CHECK(!"socketpair");
			return;
		}
		tp_channel_init(&ch, sv[0]);
		CHECK(tp_channel_ask_completions(&ch, "os.ge", 5) == 0);
		CHECK(tp_frame_read_header(sv[1], &f) == 0 && f.type == TP_FRAME_REPLY &&
		      f.arg == TP_REPLY_COMPLETE && f.size == 5);
		CHECK(tp_read_full(sv[1], word, 5) == 0 && strcmp(word, "os.ge") == 0);
		CHECK(tp_frame_write_header(sv[1], answers[i].type, answers[i].arg,
					    answers[i].size) == 0);
		if (good && answers[i].size)
			CHECK(tp_write_full(sv[1], "os.getcwd\n", 10) == 0);
		CHECK(tp_channel_read_completions(&ch, &list, &list_size) == (good ? 0 : -EPROTO));
		CHECK(ch.protocol_violation == !good);
		CHECK(!good || (list_size == answers[i].size && strlen(list) == list_size));
		CHECK(!good || !answers[i].size || strcmp(list, "os.getcwd\n") == 0);
		free(list);
		close(sv[0]);
		close(sv[1]);
	}

	struct tp_channel ch;
	const struct tp_frame unasked = { .type = TP_FRAME_COMPLETIONS };
	CHECK(serve_header(&unasked, true, &ch) == -EPROTO && ch.protocol_violation);
	tp_channel_init(&ch, -1);
	memset(big, 'a', sizeof(big));
	CHECK(tp_channel_ask_completions(&ch, big, sizeof(big)) == -EMSGSIZE);
}

static void test_serve_flags_a_result_over_the_limit(void)
{
	struct tp_channel ch;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		CHECK(!"socketpair");
		return;
	}
	tp_channel_init(&ch, sv[0]);
	ch.max_result = 4;
	CHECK(tp_frame_write(sv[1], TP_FRAME_RESULT, 0, "12345", 5) == 0);
	CHECK(tp_channel_serve_one(&ch) == -EPROTO && ch.result_too_large && !ch.have_result);
	close(sv[0]);
	close(sv[1]);
}

TESTS(channel_tests) = {
	{ "boot_round_trip_keeps_every_field", test_boot_round_trip_keeps_every_field },
	{ "serve_takes_exit_only_from_a_zygote_child",
	  test_serve_takes_exit_only_from_a_zygote_child },
	{ "serve_answers_a_prompt_only_on_a_shells_channel",
	  test_serve_answers_a_prompt_only_on_a_shells_channel },
	{ "completions_come_only_as_asked", test_completions_come_only_as_asked },
	{ "boot_shell_is_one_field_of_1_and_never_a_zygote",
	  test_boot_shell_is_one_field_of_1_and_never_a_zygote },
	{ "boot_round_trip_with_no_lists_and_the_largest_count",
	  test_boot_round_trip_with_no_lists_and_the_largest_count },
	{ "boot_encoding_is_the_field_sequence_of_protocol_h",
	  test_boot_encoding_is_the_field_sequence_of_protocol_h },
	{ "boot_decode_accepts_fields_in_any_order", test_boot_decode_accepts_fields_in_any_order },
	{ "boot_decode_refuses_every_cut_inside_a_field",
	  test_boot_decode_refuses_every_cut_inside_a_field },
	{ "boot_decode_refuses_lengths_past_the_end_or_zero",
	  test_boot_decode_refuses_lengths_past_the_end_or_zero },
	{ "boot_decode_refuses_more_than_the_largest_payload",
	  test_boot_decode_refuses_more_than_the_largest_payload },
	{ "boot_decode_refuses_an_unknown_tag", test_boot_decode_refuses_an_unknown_tag },
	{ "boot_decode_refuses_a_missing_or_repeated_field",
	  test_boot_decode_refuses_a_missing_or_repeated_field },
	{ "boot_decode_takes_listen_and_wsgi_once", test_boot_decode_takes_listen_and_wsgi_once },
	{ "boot_decode_takes_sealed_once_and_only_as_1",
	  test_boot_decode_takes_sealed_once_and_only_as_1 },
	{ "boot_decode_takes_zygote_once_and_only_as_1",
	  test_boot_decode_takes_zygote_once_and_only_as_1 },
	{ "boot_decode_refuses_a_filter_of_a_wrong_size",
	  test_boot_decode_refuses_a_filter_of_a_wrong_size },
	{ "boot_decode_refuses_a_nul_inside_a_string",
	  test_boot_decode_refuses_a_nul_inside_a_string },
	{ "boot_decode_takes_only_a_canonical_decimal_count",
	  test_boot_decode_takes_only_a_canonical_decimal_count },
	{ "boot_encode_refuses_what_the_decoder_would",
	  test_boot_encode_refuses_what_the_decoder_would },
	{ "boot_encode_refuses_more_than_the_largest_payload",
	  test_boot_encode_refuses_more_than_the_largest_payload },
	{ "frame_check_holds_each_type_to_its_size", test_frame_check_holds_each_type_to_its_size },
	{ "frame_written_is_read_back_and_skipped_in_step",
	  test_frame_written_is_read_back_and_skipped_in_step },
	{ "serve_answers_input_and_keeps_status_then_ends_at_close",
	  test_serve_answers_input_and_keeps_status_then_ends_at_close },
	{ "serve_ends_at_a_frame_the_service_may_not_send",
	  test_serve_ends_at_a_frame_the_service_may_not_send },
	{ "serve_flags_a_result_over_the_limit", test_serve_flags_a_result_over_the_limit },
	END_TESTS,
};
