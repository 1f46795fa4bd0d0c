/* Bytes from a service made safe to show on a terminal, and the marks that tell teepy's
 * lines from the service's. Pure: no OS calls; the text goes to a callback. */
#ifndef TEEPY_COMMON_TERM_H
#define TEEPY_COMMON_TERM_H

#include <stdbool.h>
#include <stddef.h>

/* Before each line of the service's: a dim "|" and a space. */
#define TP_TERM_SERVICE_MARK "\033[2m|\033[0m "
/* Around each of teepy's own lines: bold. The service cannot write either (its escape
 * bytes are shown as text), so even a service line the terminal wraps to column 0
 * does not look like teepy's. */
#define TP_TERM_OWN_START "\033[1m"
#define TP_TERM_OWN_END	  "\033[0m"

typedef void (*tp_term_write_fn)(void *ctx, const char *bytes, size_t size);

/* One stream being escaped. Fed in pieces as they arrive: a UTF-8 sequence split
 * between two pieces is held until the rest comes. */
struct tp_term_escape {
	/* settings */
	bool ascii;	       /* the terminal is not UTF-8: non-ASCII shown as \uXXXX too */
	const char *line_mark; /* written before each line, or NULL */
	bool one_line;	       /* \n shown as \x0a too (tp_term_escape_line) */
	/* state between pieces */
	unsigned char held[4]; /* a UTF-8 sequence begun but not finished */
	size_t held_size;
	bool in_line; /* the current line has begun: its mark is written */
};

/* What is shown: \n and \t as they are; printable ASCII and (unless ascii) valid
 * UTF-8 as they are; \r as "\r"; every other byte below 0x20, DEL and a byte that
 * is not part of valid UTF-8 (overlong, a surrogate, past U+10FFFF, cut short) as
 * "\xNN"; the C1 controls U+0080..U+009F, the bidirectional controls and the line
 * and paragraph separators as "\uNNNN". No byte of an escape sequence reaches the
 * terminal. */
void tp_term_escape_init(struct tp_term_escape *e, bool ascii, const char *line_mark);
void tp_term_escape_write(struct tp_term_escape *e, const char *bytes, size_t size,
			  tp_term_write_fn write, void *ctx);
/* The stream has ended: a sequence still held is shown as \xNN. The line is left as
 * it is (in_line says whether it is open). */
void tp_term_escape_flush(struct tp_term_escape *e, tp_term_write_fn write, void *ctx);

/* s (a NUL-terminated line of teepy's that may hold a service's bytes) escaped into
 * out as tp_term_escape shows them, without marks; cut to fit size. Returns out. */
const char *tp_term_escape_line(const char *s, bool ascii, char *out, size_t size);

/* A shell's Tab: the completions a service's console sent (list, size bytes, each
 * candidate ended by a newline; split in place) that may be offered for word: those
 * that start with it, are at most TP_TERM_MAX_CANDIDATE bytes and show as they are
 * (tp_term_escape_line changes nothing: no control byte, escape sequence or invalid
 * UTF-8; nor a tab or a NUL), at most max of them into out. Returns their count: 0
 * also when more than max would be offered (a cut list would make the common part
 * the line gets longer than the true one). */
#define TP_TERM_MAX_CANDIDATE 4096
size_t tp_term_completions(char *list, size_t size, const char *word, bool ascii, const char **out,
			   size_t max);

/* Whether the locale the environment names (LC_ALL, else LC_CTYPE, else LANG; NULL
 * or "" if unset) names a UTF-8 character set. The C and POSIX locales, and none
 * set, do not: they say nothing of the terminal's. */
bool tp_term_locale_is_utf8(const char *lc_all, const char *lc_ctype, const char *lang);

#endif
