/* The boot payload's one encoder and one decoder (the field sequence of protocol.h).
 * Pure: no OS calls. The decoder checks every length against the bytes it was given
 * before it reads, and refuses what the encoder would not have written. */
#include "channel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A field: u32 length, then the tag byte and the value. */
#define FIELD_HEAD (sizeof(uint32_t) + 1)
/* UINT32_MAX in decimal */
#define MAX_COUNT_DIGITS 10

static bool filter_size_ok(size_t size)
{
	return size > 0 && size % TP_BOOT_FILTER_INSN_SIZE == 0 &&
	       size / TP_BOOT_FILTER_INSN_SIZE <= TP_BOOT_MAX_FILTER_INSNS;
}

/* ---- encoding ---- */

/* Where the fields go: with data NULL, only counted. Never more than cap bytes. */
struct out {
	uint8_t *data;
	size_t size;
	size_t cap;
};

static int add(struct out *o, uint8_t tag, const void *value, size_t size)
{
	size_t room = o->cap - o->size;
	uint32_t len;

	if (size > room || FIELD_HEAD > room - size)
		return -EMSGSIZE;
	if (o->data) {
		len = (uint32_t)(size + 1);
		memcpy(o->data + o->size, &len, sizeof(len));
		o->data[o->size + sizeof(len)] = tag;
		if (size)
			memcpy(o->data + o->size + FIELD_HEAD, value, size);
	}
	o->size += FIELD_HEAD + size;
	return 0;
}

static int add_list(struct out *o, uint8_t tag, const char *const *items, size_t count)
{
	int r = 0;

	if (count && !items)
		return -EINVAL;
	for (size_t i = 0; r == 0 && i < count; i++)
		r = items[i] ? add(o, tag, items[i], strlen(items[i])) : -EINVAL;
	return r;
}

/* The fields in the order the supervisor has always sent them. */
static int emit(const struct tp_boot *b, struct out *o)
{
	char count[MAX_COUNT_DIGITS + 1];
	int r;

	snprintf(count, sizeof(count), "%" PRIu64, b->data_count);
	if ((r = add(o, TP_BOOT_FILTER, b->filter, b->filter_size)) < 0 ||
	    (r = add(o, TP_BOOT_ENTRY, b->entry, strlen(b->entry))) < 0 ||
	    (r = add(o, TP_BOOT_DATA_COUNT, count, strlen(count))) < 0 ||
	    (r = add_list(o, TP_BOOT_ARG, b->argv, b->argv_count)) < 0 ||
	    (r = add_list(o, TP_BOOT_PATH, b->path, b->path_count)) < 0 ||
	    (r = add_list(o, TP_BOOT_PRELOAD, b->preload, b->preload_count)) < 0 ||
	    (r = add_list(o, TP_BOOT_SITE, b->site, b->site_count)) < 0 ||
	    (r = add_list(o, TP_BOOT_TOP, b->top, b->top_count)) < 0)
		return r;
	if (b->sealed && (r = add(o, TP_BOOT_SEALED, "1", 1)) < 0)
		return r;
	if (b->zygote && (r = add(o, TP_BOOT_ZYGOTE, "1", 1)) < 0)
		return r;
	if (b->listen && (r = add(o, TP_BOOT_LISTEN, "1", 1)) < 0)
		return r;
	if (b->shell && (r = add(o, TP_BOOT_SHELL, "1", 1)) < 0)
		return r;
	return b->wsgi ? add(o, TP_BOOT_WSGI, b->wsgi, strlen(b->wsgi)) : 0;
}

int tp_boot_encode(const struct tp_boot *boot, uint8_t **out, size_t *out_size)
{
	struct out o = { .cap = TP_MAX_BOOT_SIZE };
	int r;

	if (!boot->entry || !boot->filter || !filter_size_ok(boot->filter_size) ||
	    boot->data_count > UINT32_MAX || (boot->shell && boot->zygote))
		return -EINVAL;
	if ((r = emit(boot, &o)) < 0)
		return r;
	o = (struct out){ .data = malloc(o.size), .cap = o.size };
	if (!o.data)
		return -ENOMEM;
	/* the second pass writes what the first counted; cap keeps it inside the block
	 * even if a string changed in between */
	if ((r = emit(boot, &o)) < 0 || o.size != o.cap) {
		free(o.data);
		return r < 0 ? r : -EINVAL;
	}
	*out = o.data;
	*out_size = o.size;
	return 0;
}

/* ---- decoding ---- */

struct field {
	uint8_t tag;
	const uint8_t *value;
	size_t size;
};

/* The field at *pos. Returns 1 and moves *pos past it, 0 at the end, or -EBADMSG for a
 * length that is zero or runs past the end. */
static int next_field(const uint8_t *bytes, size_t size, size_t *pos, struct field *f)
{
	uint32_t len;

	if (*pos == size)
		return 0;
	if (size - *pos < sizeof(len))
		return -EBADMSG;
	memcpy(&len, bytes + *pos, sizeof(len));
	*pos += sizeof(len);
	if (len < 1 || len > size - *pos)
		return -EBADMSG;
	f->tag = bytes[*pos];
	f->value = bytes + *pos + 1;
	f->size = len - 1;
	*pos += len;
	return 1;
}

/* Canonical decimal, as the encoder writes it: no sign, no leading zero. */
static int parse_count(const uint8_t *s, size_t size, uint64_t *out)
{
	uint64_t v = 0;

	if (size == 0 || size > MAX_COUNT_DIGITS || (size > 1 && s[0] == '0'))
		return -EBADMSG;
	for (size_t i = 0; i < size; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EBADMSG;
	*out = v;
	return 0;
}

/* What a first pass over the fields found: enough to size the decoded block. */
struct census {
	struct field filter;
	bool have_filter;
	bool have_entry, have_wsgi;
	bool have_count;
	bool sealed, zygote, listen, shell;
	uint64_t data_count;
	size_t lists[5];     /* argv, path, preload, site, top */
	size_t string_bytes; /* every string with its NUL */
};

static int list_index(uint8_t tag)
{
	switch (tag) {
	case TP_BOOT_ARG:
		return 0;
	case TP_BOOT_PATH:
		return 1;
	case TP_BOOT_PRELOAD:
		return 2;
	case TP_BOOT_SITE:
		return 3;
	case TP_BOOT_TOP:
		return 4;
	}
	return -1;
}

static int take_census(const uint8_t *bytes, size_t size, struct census *c)
{
	struct field f;
	size_t pos = 0;
	int r;

	while ((r = next_field(bytes, size, &pos, &f)) > 0) {
		if (f.tag == TP_BOOT_FILTER) {
			if (!filter_size_ok(f.size))
				return -EBADMSG;
			if (c->have_filter)
				return -EPROTO;
			c->have_filter = true;
			c->filter = f;
			continue;
		}
		if (f.tag == TP_BOOT_DATA_COUNT) {
			if ((r = parse_count(f.value, f.size, &c->data_count)) < 0)
				return r;
			if (c->have_count)
				return -EPROTO;
			c->have_count = true;
			continue;
		}
		if (f.tag == TP_BOOT_SEALED || f.tag == TP_BOOT_ZYGOTE || f.tag == TP_BOOT_LISTEN ||
		    f.tag == TP_BOOT_SHELL) {
			bool *flag = f.tag == TP_BOOT_SEALED ? &c->sealed :
				     f.tag == TP_BOOT_ZYGOTE ? &c->zygote :
				     f.tag == TP_BOOT_LISTEN ? &c->listen :
							       &c->shell;
			if (f.size != 1 || f.value[0] != '1')
				return -EBADMSG;
			if (*flag)
				return -EPROTO;
			*flag = true;
			continue;
		}
		if (f.tag != TP_BOOT_ENTRY && f.tag != TP_BOOT_WSGI && list_index(f.tag) < 0)
			return -EPROTO;
		if (memchr(f.value, '\0', f.size))
			return -EBADMSG;
		if (f.tag == TP_BOOT_ENTRY || f.tag == TP_BOOT_WSGI) {
			bool *have = f.tag == TP_BOOT_ENTRY ? &c->have_entry : &c->have_wsgi;
			if (*have)
				return -EPROTO;
			*have = true;
		} else {
			c->lists[list_index(f.tag)]++;
		}
		c->string_bytes += f.size + 1;
	}
	if (r < 0)
		return r;
	return c->have_filter && c->have_entry && c->have_count && !(c->shell && c->zygote) ?
		   0 :
		   -EPROTO;
}

int tp_boot_decode(const void *bytes, size_t size, struct tp_boot *boot)
{
	struct census c = { 0 };
	const char **lists[5];
	size_t filled[5] = { 0 };
	struct field f;
	size_t pos = 0, ptrs_at, strings_at, total;
	char *block, *strings;
	int r;

	memset(boot, 0, sizeof(*boot));
	if (size > TP_MAX_BOOT_SIZE)
		return -EBADMSG;
	if ((r = take_census(bytes, size, &c)) < 0)
		return r;

	/* one block: the filter first (malloc's alignment suits sock_filter), then the
	 * five pointer arrays, then the strings; bounded by a few times size, which is
	 * at most TP_MAX_BOOT_SIZE, so nothing here overflows */
	ptrs_at = (c.filter.size + alignof(char *) - 1) / alignof(char *) * alignof(char *);
	strings_at = ptrs_at + (c.lists[0] + c.lists[1] + c.lists[2] + c.lists[3] + c.lists[4]) *
				   sizeof(char *);
	total = strings_at + c.string_bytes;
	block = malloc(total);
	if (!block)
		return -ENOMEM;
	memcpy(block, c.filter.value, c.filter.size);
	lists[0] = (const char **)(void *)(block + ptrs_at);
	lists[1] = lists[0] + c.lists[0];
	lists[2] = lists[1] + c.lists[1];
	lists[3] = lists[2] + c.lists[2];
	lists[4] = lists[3] + c.lists[3];
	strings = block + strings_at;

	/* the census checked every field: this pass only copies */
	while (next_field(bytes, size, &pos, &f) > 0) {
		int list = list_index(f.tag);
		if (list < 0 && f.tag != TP_BOOT_ENTRY && f.tag != TP_BOOT_WSGI)
			continue;
		memcpy(strings, f.value, f.size);
		strings[f.size] = '\0';
		if (f.tag == TP_BOOT_ENTRY)
			boot->entry = strings;
		else if (f.tag == TP_BOOT_WSGI)
			boot->wsgi = strings;
		else
			lists[list][filled[list]++] = strings;
		strings += f.size + 1;
	}

	boot->filter = block;
	boot->filter_size = c.filter.size;
	boot->argv = lists[0];
	boot->argv_count = c.lists[0];
	boot->path = lists[1];
	boot->path_count = c.lists[1];
	boot->preload = lists[2];
	boot->preload_count = c.lists[2];
	boot->site = lists[3];
	boot->site_count = c.lists[3];
	boot->top = lists[4];
	boot->top_count = c.lists[4];
	boot->sealed = c.sealed;
	boot->zygote = c.zygote;
	boot->listen = c.listen;
	boot->shell = c.shell;
	boot->data_count = c.data_count;
	boot->owned = block;
	return 0;
}

void tp_boot_free(struct tp_boot *boot)
{
	free(boot->owned);
	memset(boot, 0, sizeof(*boot));
}
