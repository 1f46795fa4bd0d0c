/* A service's output shown on a terminal: escaped, marked, the same however it is cut. */
#include "test.h"
#include "../../src/common/term.h"

#include <stdbool.h>
#include <string.h>

#define M "<m>" /* a line mark that is easy to read in a failure */

struct collected {
	char text[4096];
	size_t size;
};

static void collect(void *ctx, const char *bytes, size_t size)
{
	struct collected *c = ctx;

	if (c->size + size < sizeof(c->text)) {
		memcpy(c->text + c->size, bytes, size);
		c->size += size;
		c->text[c->size] = '\0';
	}
}

/* in, written in pieces of at most `piece` bytes (0: whole), then flushed */
static const char *shown(const char *in, bool ascii, size_t piece, struct collected *c)
{
	struct tp_term_escape e;
	size_t size = strlen(in);

	memset(c, 0, sizeof(*c));
	tp_term_escape_init(&e, ascii, M);
	for (size_t at = 0; at < size;) {
		size_t n = piece && size - at > piece ? piece : size - at;
		tp_term_escape_write(&e, in + at, n, collect, c);
		at += n;
	}
	tp_term_escape_flush(&e, collect, c);
	return c->text;
}

static const char *escaped(const char *in)
{
	static struct collected c;
	return shown(in, false, 0, &c);
}

static void test_text_newlines_and_tabs_pass_each_line_marked(void)
{
	CHECK_STR(escaped("Traceback (most recent call last):\n  File \"a.py\"\n"),
		  M "Traceback (most recent call last):\n" M "  File \"a.py\"\n");
	CHECK_STR(escaped("a\tb\n\nc"), M "a\tb\n" M "\n" M "c");
	CHECK_STR(escaped(""), "");
}

static void test_a_service_line_saying_teepy_is_marked(void)
{
	CHECK_STR(escaped("teepy: the service returned 3 bytes\n"),
		  M "teepy: the service returned 3 bytes\n");
	/* a carriage return cannot take the line back to column 0 */
	CHECK_STR(escaped("x\rteepy: fake\n"), M "x\\rteepy: fake\n");
}

static void test_control_bytes_are_shown_as_text(void)
{
	CHECK_STR(escaped("\x1b[2J\x1b[31mred\x1b[0m"), M "\\x1b[2J\\x1b[31mred\\x1b[0m");
	CHECK_STR(escaped("\x1b]52;c;aGVsbG8=\x07"), M "\\x1b]52;c;aGVsbG8=\\x07");
	CHECK_STR(escaped("\x1b]0;title\x1b\\"), M "\\x1b]0;title\\x1b\\");
	CHECK_STR(escaped("ab\b\bXY\x7f"), M "ab\\x08\\x08XY\\x7f");
	CHECK_STR(escaped("\a\v\f\x01\x1f"), M "\\x07\\x0b\\x0c\\x01\\x1f");
	CHECK_STR(escaped("100%\r"), M "100%\\r");
}

static void test_nul_is_shown(void)
{
	struct tp_term_escape e;
	struct collected c = { 0 };

	tp_term_escape_init(&e, false, NULL);
	tp_term_escape_write(&e, "a\0b", 3, collect, &c);
	CHECK_STR(c.text, "a\\x00b");
}

static void test_c1_controls_as_characters_and_as_bytes(void)
{
	/* U+009B (CSI) and U+009D (OSC) encoded in UTF-8, and U+0085 (NEL) */
	CHECK_STR(escaped("\xc2\x9b"
			  "31m\xc2\x9d"
			  "0;t\xc2\x85"),
		  M "\\u009b31m\\u009d0;t\\u0085");
	/* the same as raw bytes, which are not UTF-8: an 8-bit terminal would act on them */
	CHECK_STR(escaped("\x9b"
			  "31m\x9d\x85"),
		  M "\\x9b31m\\x9d\\x85");
}

static void test_utf8_text_is_kept(void)
{
	CHECK_STR(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xd0\x96\n"),
		  M "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xd0\x96\n");
	/* U+00A0 and U+009F border each other: only the control is escaped */
	CHECK_STR(escaped("\xc2\xa0\xc2\x9f"), M "\xc2\xa0\\u009f");
}

static void test_bidi_controls_and_separators_are_shown(void)
{
	CHECK_STR(escaped("\xe2\x80\xae"
			  "txt.exe"),
		  M "\\u202etxt.exe");
	CHECK_STR(escaped("\xe2\x81\xa6\xe2\x81\xa9\xe2\x80\x8f\xd8\x9c"),
		  M "\\u2066\\u2069\\u200f\\u061c");
	CHECK_STR(escaped("a\xe2\x80\xa8"
			  "b\xe2\x80\xa9"),
		  M "a\\u2028b\\u2029");
}

static void test_invalid_utf8_is_shown_byte_by_byte(void)
{
	CHECK_STR(escaped("\xc0\xaf"), M "\\xc0\\xaf");			  /* overlong '/' */
	CHECK_STR(escaped("\xe0\x80\xaf"), M "\\xe0\\x80\\xaf");	  /* overlong */
	CHECK_STR(escaped("\xed\xa0\x80"), M "\\xed\\xa0\\x80");	  /* a surrogate */
	CHECK_STR(escaped("\xf4\x90\x80\x80"), M "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
	CHECK_STR(escaped("\xf5\xff\x80"), M "\\xf5\\xff\\x80");
	/* a sequence cut short by another character: that one is itself again */
	CHECK_STR(escaped("\xe2\x82"
			  "A\xe2\x82\n"),
		  M "\\xe2\\x82A\\xe2\\x82\n");
	CHECK_STR(escaped("\xe2\x82\x1b"), M "\\xe2\\x82\\x1b");
	CHECK_STR(escaped("\xc3\xc3\xa9"), M "\\xc3\xc3\xa9");
}

static void test_a_sequence_cut_at_the_end_is_shown_at_the_flush(void)
{
	struct tp_term_escape e;
	struct collected c = { 0 };

	tp_term_escape_init(&e, false, NULL);
	tp_term_escape_write(&e, "ok \xf0\x9f\x98", 6, collect, &c);
	CHECK_STR(c.text, "ok ");
	CHECK(e.in_line);
	tp_term_escape_flush(&e, collect, &c);
	CHECK_STR(c.text, "ok \\xf0\\x9f\\x98");
	tp_term_escape_flush(&e, collect, &c); /* nothing held any more */
	CHECK_STR(c.text, "ok \\xf0\\x9f\\x98");
}

static void test_in_line_says_whether_the_last_line_is_open(void)
{
	struct tp_term_escape e;
	struct collected c = { 0 };

	tp_term_escape_init(&e, false, M);
	CHECK(!e.in_line);
	tp_term_escape_write(&e, "a\n", 2, collect, &c);
	CHECK(!e.in_line);
	CHECK_STR(c.text, M "a\n"); /* the next line's mark waits for the next line */
	tp_term_escape_write(&e, "b", 1, collect, &c);
	CHECK(e.in_line);
	CHECK_STR(c.text, M "a\n" M "b");
}

/* Whatever the pieces, the same text: a UTF-8 sequence, a C1 control or a line's
 * start may fall on any boundary. */
static void test_pieces_show_as_the_whole(void)
{
	static const char *inputs[] = {
		"caf\xc3\xa9\n\xf0\x9f\x98\x80\xe2\x82\xac\n",
		"\xc2\x9b"
		"2J\x1b]52;c;eA==\x07\r\n\n\xe2\x80\xae!",
		"\xe2\x82"
		"A\xed\xa0\x80\xf4\x8f\xbf\xbf\xc2",
		"Traceback:\n  \xd0\x96\t\x7f\n",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		for (int ascii = 0; ascii < 2; ascii++) {
			struct collected whole, pieces;
			shown(inputs[i], ascii, 0, &whole);
			for (size_t piece = 1; piece <= 5; piece++)
				CHECK_STR(shown(inputs[i], ascii, piece, &pieces), whole.text);
		}
	}
}

static void test_ascii_terminals_see_code_points(void)
{
	struct collected c;

	CHECK_STR(shown("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n", true, 0, &c),
		  M "caf\\u00e9 \\u20ac \\U0001f600\n");
}

static struct {
	char text[90000];
	size_t size;
} big;

static void collect_big(void *ctx, const char *bytes, size_t size)
{
	(void)ctx;
	if (big.size + size <= sizeof(big.text)) {
		memcpy(big.text + big.size, bytes, size);
		big.size += size;
	}
}

/* more than the escaper's buffer holds: it writes in several pieces, in order */
static void test_a_long_output_goes_through_in_order(void)
{
	static char in[20000], want[80000];
	struct tp_term_escape e;
	size_t w = 0;

	for (size_t i = 0; i < sizeof(in); i++) {
		in[i] = i % 3 == 0 ? '\x1b' : (char)('a' + i % 26);
		if (in[i] == '\x1b') {
			memcpy(want + w, "\\x1b", 4);
			w += 4;
		} else {
			want[w++] = in[i];
		}
	}
	tp_term_escape_init(&e, false, NULL);
	big.size = 0;
	tp_term_escape_write(&e, in, sizeof(in), collect_big, NULL);
	CHECK(big.size == w && memcmp(big.text, want, w) == 0);
}

static void test_one_line_of_teepys_holds_no_control(void)
{
	char out[64];

	CHECK_STR(
	    tp_term_escape_line("raised \x1b]52;c;eA==\x07\nteepy: fake", false, out, sizeof(out)),
	    "raised \\x1b]52;c;eA==\\x07\\x0ateepy: fake");
	CHECK_STR(tp_term_escape_line("Ошибка \xc2\x9b", false, out, sizeof(out)),
		  "Ошибка \\u009b");
	CHECK_STR(tp_term_escape_line("\xd0\x96", true, out, sizeof(out)), "\\u0416");
	/* cut to fit, never inside an escape */
	CHECK_STR(tp_term_escape_line("abc\x1b", false, out, 7), "abc");
	CHECK_STR(tp_term_escape_line("abc\x1b", false, out, 8), "abc\\x1b");
}

static void test_locale_decides_utf8(void)
{
	/* no locale, C or POSIX: the terminal's character set is not said */
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, NULL));
	CHECK(!tp_term_locale_is_utf8("", "", ""));
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, "C"));
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, "POSIX"));
	CHECK(tp_term_locale_is_utf8(NULL, NULL, "C.UTF-8"));
	CHECK(tp_term_locale_is_utf8(NULL, NULL, "en_US.utf8"));
	CHECK(tp_term_locale_is_utf8(NULL, NULL, "de_DE.UTF-8@euro"));
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, "en_US.ISO-8859-1"));
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, "en_US"));
	CHECK(!tp_term_locale_is_utf8(NULL, NULL, "ru_RU.KOI8-R"));
	/* LC_ALL, then LC_CTYPE, then LANG */
	CHECK(tp_term_locale_is_utf8("C.UTF-8", "en_US.ISO-8859-1", "en_US"));
	CHECK(!tp_term_locale_is_utf8("", "en_US.ISO-8859-1", "C.UTF-8"));
	CHECK(tp_term_locale_is_utf8(NULL, NULL, "en_US.UTF-8"));
}

/* A Tab's completions from a service: only what starts with the word and shows as it
 * is; none when more than the room would be offered. */
static void test_completions_offer_only_what_shows_as_it_is(void)
{
	static char list[] = "os.getcwd(\n"
			     "os.get\x1b]0;TITLE\x07\n"
			     "os.get\x1b[2J\n"
			     "os.get\x07"
			     "bell\n"
			     "os.get\ttab\n"
			     "os.get\xc2\x9b"
			     "c1\n"
			     "os.get\xe2\x80\xae"
			     "bidi\n"
			     "os.get\xff\n"
			     "os.get\0"
			     "nul\n"
			     "os.getcwdb(\n"
			     "sys.path\n"
			     "os.get_caf\xc3\xa9\n"
			     "os.getpid(";
	const char *out[8];
	size_t n = tp_term_completions(list, sizeof(list) - 1, "os.get", false, out, 8);

	CHECK(n == 3);
	CHECK(n == 3 && strcmp(out[0], "os.getcwd(") == 0 && strcmp(out[1], "os.getcwdb(") == 0 &&
	      strcmp(out[2], "os.get_caf\xc3\xa9") == 0); /* the last, with no newline, is cut */

	static char again[] = "os.getcwd(\nos.get_caf\xc3\xa9\n";
	n = tp_term_completions(again, sizeof(again) - 1, "os.get", true, out, 8);
	CHECK(n == 1 && strcmp(out[0], "os.getcwd(") == 0); /* an ASCII terminal: no é */

	static char many[] = "a1\na2\na3\n";
	CHECK(tp_term_completions(many, sizeof(many) - 1, "a", false, out, 2) == 0);

	static char longer[TP_TERM_MAX_CANDIDATE + 3];
	memset(longer, 'a', sizeof(longer));
	longer[TP_TERM_MAX_CANDIDATE + 1] = '\n';
	CHECK(tp_term_completions(longer, TP_TERM_MAX_CANDIDATE + 2, "a", false, out, 8) == 0);
	longer[TP_TERM_MAX_CANDIDATE] = '\n';
	CHECK(tp_term_completions(longer, TP_TERM_MAX_CANDIDATE + 1, "a", false, out, 8) == 1);
	CHECK(tp_term_completions(NULL, 0, "a", false, out, 8) == 0);
}

TESTS(term_tests) = {
	{ "term: text, newlines and tabs pass, each line marked",
	  test_text_newlines_and_tabs_pass_each_line_marked },
	{ "term: a service line saying teepy: is marked",
	  test_a_service_line_saying_teepy_is_marked },
	{ "term: control bytes are shown as text", test_control_bytes_are_shown_as_text },
	{ "term: NUL is shown", test_nul_is_shown },
	{ "term: C1 controls as characters and as bytes",
	  test_c1_controls_as_characters_and_as_bytes },
	{ "term: UTF-8 text is kept", test_utf8_text_is_kept },
	{ "term: bidi controls and separators are shown",
	  test_bidi_controls_and_separators_are_shown },
	{ "term: invalid UTF-8 is shown byte by byte", test_invalid_utf8_is_shown_byte_by_byte },
	{ "term: a sequence cut at the end is shown at the flush",
	  test_a_sequence_cut_at_the_end_is_shown_at_the_flush },
	{ "term: in_line says whether the last line is open",
	  test_in_line_says_whether_the_last_line_is_open },
	{ "term: pieces show as the whole", test_pieces_show_as_the_whole },
	{ "term: ASCII terminals see code points", test_ascii_terminals_see_code_points },
	{ "term: a long output goes through in order", test_a_long_output_goes_through_in_order },
	{ "term: one line of teepy's holds no control", test_one_line_of_teepys_holds_no_control },
	{ "term: the locale decides UTF-8", test_locale_decides_utf8 },
	{ "term: completions offer only what shows as it is",
	  test_completions_offer_only_what_shows_as_it_is },
	END_TESTS,
};
