/* libFuzzer target: the terminal escaper (common/term.c) on a service's arbitrary
 * bytes, cut into pieces where the input's first byte says. Whatever comes in, what
 * goes out holds no byte a terminal acts on: no control byte but \n and \t, no DEL,
 * no C1 control (raw, or as UTF-8 U+0080..U+009F) and, with line marks, nothing
 * outside them; and it is the same however the stream is cut. */
#include "src/common/term.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sink {
	unsigned char *bytes;
	size_t size;
};

static void collect(void *ctx, const char *bytes, size_t size)
{
	struct sink *s = ctx;
	unsigned char *grown = realloc(s->bytes, s->size + size + 1);

	if (!grown)
		abort();
	memcpy(grown + s->size, bytes, size);
	s->bytes = grown;
	s->size += size;
}

static void escape(const uint8_t *data, size_t size, size_t piece, bool ascii, struct sink *out)
{
	struct tp_term_escape e;

	tp_term_escape_init(&e, ascii, NULL);
	for (size_t at = 0; at < size; at += piece) {
		size_t n = size - at < piece ? size - at : piece;
		tp_term_escape_write(&e, (const char *)data + at, n, collect, out);
	}
	tp_term_escape_flush(&e, collect, out);
}

static void check_inert(const struct sink *s, bool ascii)
{
	for (size_t i = 0; i < s->size; i++) {
		unsigned char c = s->bytes[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			abort();
		if (ascii && c >= 0x80)
			abort();
		/* U+0080..U+009F in UTF-8: C2 80..C2 9F */
		if (c == 0xc2 && i + 1 < s->size && s->bytes[i + 1] >= 0x80 &&
		    s->bytes[i + 1] <= 0x9f)
			abort();
		/* a lone byte 0x80..0x9F is no part of valid UTF-8 here: the escaper lets
		 * only whole, valid sequences through */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink whole = { 0 }, cut = { 0 };
	size_t piece;
	bool ascii;

	if (size < 1)
		return 0;
	piece = (data[0] & 0x0f) + 1;
	ascii = data[0] & 0x80;
	data++;
	size--;
	escape(data, size, size ? size : 1, ascii, &whole);
	escape(data, size, piece, ascii, &cut);
	check_inert(&whole, ascii);
	if (whole.size != cut.size ||
	    (whole.size && memcmp(whole.bytes, cut.bytes, whole.size) != 0))
		abort();
	free(whole.bytes);
	free(cut.bytes);
	return 0;
}
