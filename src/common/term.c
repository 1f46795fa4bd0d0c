/* A service's bytes shown on a terminal as text: no escape sequence gets through. */
#include "term.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Where escaped text goes: a callback through a buffer, or (write NULL) a fixed
 * buffer that takes whole pieces only, so a cut never splits an escape. */
struct sink {
	char *buf;
	size_t cap, n;
	tp_term_write_fn write;
	void *ctx;
	bool full;
};

static void put(struct sink *s, const void *bytes, size_t size)
{
	if (s->full)
		return;
	if (s->n + size > s->cap) {
		if (!s->write) {
			s->full = true;
			return;
		}
		s->write(s->ctx, s->buf, s->n);
		s->n = 0;
	}
	memcpy(s->buf + s->n, bytes, size);
	s->n += size;
}

static const char hex[] = "0123456789abcdef";

static void put_byte_escape(struct sink *s, unsigned char c)
{
	char text[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

	put(s, text, sizeof(text));
}

static void put_code_point_escape(struct sink *s, uint32_t cp)
{
	char text[10];
	int digits = cp > 0xffff ? 8 : 4;

	text[0] = '\\';
	text[1] = cp > 0xffff ? 'U' : 'u';
	for (int i = 0; i < digits; i++)
		text[2 + i] = hex[(cp >> (4 * (digits - 1 - i))) & 15];
	put(s, text, 2 + (size_t)digits);
}

/* Code points a terminal may act on rather than show: the C1 controls (CSI, OSC, NEL
 * … as characters), the line and paragraph separators, and the bidirectional
 * controls, which could reorder what a line seems to say. */
static bool acts_on_terminal(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* How long a UTF-8 sequence starting with c is; 1 for ASCII and for a byte that
 * cannot start one (a continuation byte, an overlong lead C0/C1, F5..FF). */
static size_t sequence_size(unsigned char c)
{
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 1;
}

/* Whether c may follow the bytes held: refuses overlong forms, surrogates and code
 * points past U+10FFFF at the second byte, as RFC 3629 does. */
static bool continues(const struct tp_term_escape *e, unsigned char c)
{
	if (c < 0x80 || c > 0xbf)
		return false;
	if (e->held_size > 1)
		return true;
	switch (e->held[0]) {
	case 0xe0:
		return c >= 0xa0;
	case 0xed:
		return c <= 0x9f;
	case 0xf0:
		return c >= 0x90;
	case 0xf4:
		return c <= 0x8f;
	}
	return true;
}

static void begin_line(struct tp_term_escape *e, struct sink *s)
{
	if (e->in_line)
		return;
	e->in_line = true;
	if (e->line_mark)
		put(s, e->line_mark, strlen(e->line_mark));
}

static void show_held_as_bytes(struct tp_term_escape *e, struct sink *s)
{
	for (size_t i = 0; i < e->held_size; i++)
		put_byte_escape(s, e->held[i]);
	e->held_size = 0;
}

static void show_sequence(struct tp_term_escape *e, struct sink *s)
{
	static const unsigned char lead_bits[] = { 0, 0, 0x1f, 0x0f, 0x07 };
	uint32_t cp = e->held[0] & lead_bits[e->held_size];

	for (size_t i = 1; i < e->held_size; i++)
		cp = cp << 6 | (e->held[i] & 0x3f);
	if (e->ascii || acts_on_terminal(cp))
		put_code_point_escape(s, cp);
	else
		put(s, e->held, e->held_size);
	e->held_size = 0;
}

static void feed(struct tp_term_escape *e, struct sink *s, unsigned char c)
{
	if (e->held_size) {
		if (continues(e, c)) {
			e->held[e->held_size++] = c;
			if (e->held_size == sequence_size(e->held[0]))
				show_sequence(e, s);
			return;
		}
		show_held_as_bytes(e, s); /* cut short: c starts afresh */
	}
	begin_line(e, s);
	if (c == '\n' && !e->one_line) {
		put(s, "\n", 1);
		e->in_line = false;
	} else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
		put(s, &c, 1);
	} else if (c == '\r') {
		put(s, "\\r", 2);
	} else if (sequence_size(c) > 1) {
		e->held[0] = c;
		e->held_size = 1;
	} else {
		put_byte_escape(s, c);
	}
}

void tp_term_escape_init(struct tp_term_escape *e, bool ascii, const char *line_mark)
{
	*e = (struct tp_term_escape){ .ascii = ascii, .line_mark = line_mark };
}

void tp_term_escape_write(struct tp_term_escape *e, const char *bytes, size_t size,
			  tp_term_write_fn write, void *ctx)
{
	char buf[4096];
	struct sink s = { .buf = buf, .cap = sizeof(buf), .write = write, .ctx = ctx };

	for (size_t i = 0; i < size; i++)
		feed(e, &s, (unsigned char)bytes[i]);
	if (s.n)
		write(ctx, buf, s.n);
}

void tp_term_escape_flush(struct tp_term_escape *e, tp_term_write_fn write, void *ctx)
{
	char buf[64];
	struct sink s = { .buf = buf, .cap = sizeof(buf), .write = write, .ctx = ctx };

	show_held_as_bytes(e, &s);
	if (s.n)
		write(ctx, buf, s.n);
}

const char *tp_term_escape_line(const char *s, bool ascii, char *out, size_t size)
{
	struct tp_term_escape e;
	struct sink sink = { .buf = out, .cap = size ? size - 1 : 0 };

	tp_term_escape_init(&e, ascii, NULL);
	e.one_line = true;
	for (; *s; s++)
		feed(&e, &sink, (unsigned char)*s);
	show_held_as_bytes(&e, &sink);
	if (size)
		out[sink.n] = '\0';
	return out;
}

static bool names_utf8(const char *locale)
{
	const char *dot = strchr(locale, '.');
	const char *end;
	size_t len;

	if (!dot) /* "C", "POSIX", or a language without a character set: which
		   * character set the terminal has is not said, and an 8-bit one acts
		   * on a 0x9b inside UTF-8 text ("\xc3\x9b", U+00DB) as CSI */
		return false;
	end = strchr(dot, '@'); /* "de_DE.UTF-8@euro" */
	len = end ? (size_t)(end - dot - 1) : strlen(dot + 1);
	return (len == 5 && strncasecmp(dot + 1, "utf-8", 5) == 0) ||
	       (len == 4 && strncasecmp(dot + 1, "utf8", 4) == 0);
}

bool tp_term_locale_is_utf8(const char *lc_all, const char *lc_ctype, const char *lang)
{
	const char *set[] = { lc_all, lc_ctype, lang };

	for (size_t i = 0; i < 3; i++)
		if (set[i] && *set[i])
			return names_utf8(set[i]);
	return false;
}

static bool shows_as_is(const char *s, size_t n, bool ascii)
{
	char shown[TP_TERM_MAX_CANDIDATE + 1];

	return n <= TP_TERM_MAX_CANDIDATE && !memchr(s, '\t', n) &&
	       strcmp(tp_term_escape_line(s, ascii, shown, sizeof(shown)), s) == 0;
}

size_t tp_term_completions(char *list, size_t size, const char *word, bool ascii, const char **out,
			   size_t max)
{
	size_t count = 0, word_size = strlen(word);
	char *end = list + size, *line, *cut;

	for (line = list; line < end && (cut = memchr(line, '\n', (size_t)(end - line)));
	     line = cut + 1) {
		size_t n = (size_t)(cut - line);
		*cut = '\0';
		if (memchr(line, '\0', n) || n < word_size || memcmp(line, word, word_size) != 0 ||
		    !shows_as_is(line, n, ascii))
			continue;
		if (count == max)
			return 0;
		out[count++] = line;
	}
	return count;
}
