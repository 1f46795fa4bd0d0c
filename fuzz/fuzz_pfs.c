/* libFuzzer target: protected files (src/pfs/pfs.c) and symmetric key files
 * (src/crypto/secret.c) as read from hostile storage. The first byte picks the
 * purpose the file is opened as; the rest is the sealed file, under a fixed key (the
 * seeds in fuzz/corpus/pfs are sealed under it, so mutations reach the chunks).
 * Whatever opens must agree with the header parser, come out as exactly the header's
 * size, and seal back to exactly the bytes given: nothing but the writer's own
 * output opens. Every refusal must be one pfs.h documents. With the first byte's top
 * bit set the rest is also sealed as plaintext and opened back. */
#include "src/crypto/crypto.h"
#include "src/pfs/pfs.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct source {
	const uint8_t *data;
	size_t size;
};

struct sink {
	uint8_t *data;
	size_t size, cap;
};

static int source_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
	struct source *s = ctx;

	if (offset > s->size || size > s->size - offset)
		return -ENODATA;
	memcpy(buf, s->data + offset, size);
	return 0;
}

static int sink_write(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	struct sink *s = ctx;

	if (offset != s->size || size > s->cap - s->size) /* in order, never past its size */
		abort();
	memcpy(s->data + s->size, buf, size);
	s->size += size;
	return 0;
}

static void fuzz_symkey(const char *text, size_t size)
{
	uint8_t key[TP_SYMKEY_SIZE], again[TP_SYMKEY_SIZE];
	int r = tp_symkey_parse(text, size, key);

	if (r != 0 && r != -EINVAL)
		abort();
	if (r == 0 && (tp_symkey_parse(text, size, again) != 0 ||
		       memcmp(key, again, sizeof(key)) != 0 || !tp_symkey_looks_like(text, size)))
		abort();
	if (r < 0)
		for (size_t i = 0; i < sizeof(key); i++)
			if (key[i])
				abort(); /* a refusal wipes the key */
}

static bool documented(int r)
{
	return r == -EINVAL || r == -EPROTONOSUPPORT || r == -EMEDIUMTYPE || r == -EKEYREJECTED ||
	       r == -EBADMSG;
}

static void fuzz_open(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
		      const uint8_t *file, size_t size)
{
	struct source src = { file, size };
	struct tp_pfs_header parsed, again;
	struct tp_pfs_reader *rd;
	struct sink plain = { 0 }, sealed = { 0 };
	char err[512];
	int parse_r = -EINVAL, r;

	if (size >= TP_PFS_HEADER_SIZE) {
		parse_r = tp_pfs_header_parse(file, &parsed, err, sizeof(err));
		if (parse_r != 0 && parse_r != -EINVAL && parse_r != -EPROTONOSUPPORT)
			abort();
		if (parse_r == 0 && (parsed.chunk_shift < TP_PFS_MIN_SHIFT ||
				     parsed.chunk_shift > TP_PFS_MAX_SHIFT ||
				     tp_pfs_sealed_size(parsed.size, parsed.chunk_shift) == 0))
			abort();
	}
	r = tp_pfs_reader_open(key, purpose, source_read, &src, size, &rd, err, sizeof(err));
	if (r < 0) {
		/* the header's own refusal comes first, with the same code */
		if (!documented(r) || rd != NULL || (parse_r < 0 && r != parse_r))
			abort();
		return;
	}
	again = *tp_pfs_reader_header(rd);
	if (parse_r != 0 || again.purpose != parsed.purpose ||
	    again.chunk_shift != parsed.chunk_shift || again.size != parsed.size ||
	    memcmp(again.id, parsed.id, sizeof(parsed.id)) != 0 || parsed.purpose != purpose ||
	    tp_pfs_sealed_size(parsed.size, parsed.chunk_shift) != size)
		abort();

	/* sealed_size == size: the plaintext fits in the input's size */
	plain.cap = (size_t)parsed.size;
	plain.data = malloc(plain.cap ? plain.cap : 1);
	r = tp_pfs_open_all(rd, sink_write, &plain, err, sizeof(err));
	if (r != 0 && r != -EBADMSG)
		abort();
	if (r == -EBADMSG) {
		/* a chunk does not authenticate: read as one run, the file is refused too */
		uint64_t chunks = tp_pfs_chunk_count(parsed.size, parsed.chunk_shift);
		uint8_t *run = malloc(chunks << parsed.chunk_shift), *in = malloc(size);
		size_t len = 1;
		if (!run || !in ||
		    tp_pfs_read_chunks(rd, 0, (size_t)chunks, in, run, &len, err, sizeof(err)) !=
			-EBADMSG ||
		    len != 0)
			abort();
		free(run);
		free(in);
	}
	if (r == 0) {
		uint8_t *buf = malloc((size_t)1 << parsed.chunk_shift);
		uint64_t last = tp_pfs_chunk_count(parsed.size, parsed.chunk_shift) - 1;
		size_t len;

		if (plain.size != parsed.size)
			abort();
		/* random access agrees with the stream */
		if (tp_pfs_read_chunk(rd, last, buf, &len, err, sizeof(err)) != 0 ||
		    len != parsed.size - (last << parsed.chunk_shift) ||
		    memcmp(buf, plain.data + (last << parsed.chunk_shift), len) != 0 ||
		    tp_pfs_read_chunk(rd, last + 1, buf, &len, err, sizeof(err)) != -ERANGE)
			abort();
		free(buf);
		/* and so does every chunk read as one run */
		uint64_t chunks = last + 1;
		uint8_t *run = malloc(chunks << parsed.chunk_shift);
		uint8_t *in = malloc(size);
		if (!run || !in ||
		    tp_pfs_read_chunks(rd, 0, (size_t)chunks, in, run, &len, err, sizeof(err)) !=
			0 ||
		    len != parsed.size || memcmp(run, plain.data, len) != 0)
			abort();
		/* and a run from the middle, cut where the file ends */
		uint64_t mid = chunks / 2;
		size_t want = (size_t)(parsed.size - (mid << parsed.chunk_shift));
		if (want > (size_t)3 << parsed.chunk_shift)
			want = (size_t)3 << parsed.chunk_shift;
		if (tp_pfs_read_chunks(rd, mid, 3, in, run, &len, err, sizeof(err)) != 0 ||
		    len != want || memcmp(run, plain.data + (mid << parsed.chunk_shift), len) != 0)
			abort();
		free(run);
		free(in);
		/* what opened is exactly what sealing it again writes */
		struct source back = { plain.data, plain.size };
		sealed.cap = size;
		sealed.data = malloc(size);
		if (tp_pfs_seal(key, &parsed, source_read, &back, sink_write, &sealed, err,
				sizeof(err)) != 0 ||
		    sealed.size != size || memcmp(sealed.data, file, size) != 0)
			abort();
		free(sealed.data);
	}
	free(plain.data);
	tp_pfs_reader_free(rd);
}

/* the bytes as plaintext: sealed, then opened back to the same bytes */
static void fuzz_round_trip(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
			    unsigned shift, const uint8_t *data, size_t size)
{
	struct tp_pfs_header h = { .purpose = purpose, .chunk_shift = shift, .size = size };
	struct source src = { data, size }, sealed_src;
	struct sink sealed = { 0 }, plain = { 0 };
	struct tp_pfs_reader *rd;
	char err[512];

	if (tp_pfs_derive_id(key, purpose, h.chunk_shift, "fuzz", size, source_read, &src, h.id,
			     err, sizeof(err)) != 0)
		abort();
	sealed.cap = (size_t)tp_pfs_sealed_size(size, shift);
	sealed.data = malloc(sealed.cap);
	if (tp_pfs_seal(key, &h, source_read, &src, sink_write, &sealed, err, sizeof(err)) != 0 ||
	    sealed.size != sealed.cap)
		abort();
	sealed_src = (struct source){ sealed.data, sealed.size };
	plain.cap = size;
	plain.data = malloc(size ? size : 1);
	if (tp_pfs_reader_open(key, purpose, source_read, &sealed_src, sealed.size, &rd, err,
			       sizeof(err)) != 0 ||
	    tp_pfs_open_all(rd, sink_write, &plain, err, sizeof(err)) != 0 || plain.size != size ||
	    (size && memcmp(plain.data, data, size) != 0))
		abort();
	tp_pfs_reader_free(rd);
	free(sealed.data);
	free(plain.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[TP_PFS_KEY_SIZE];
	/* an exact-size heap copy, not NUL-terminated, so ASan sees any read past the end */
	uint8_t *copy = malloc(size ? size : 1);
	enum tp_pfs_purpose purpose;

	if (tp_crypto_load(NULL, 0) < 0)
		abort();
	memcpy(copy, data, size);
	fuzz_symkey((const char *)copy, size);
	if (size) {
		/* the fixed key: bytes 0, 1, .. 31 */
		for (size_t i = 0; i < sizeof(key); i++)
			key[i] = (uint8_t)i;
		purpose = (enum tp_pfs_purpose)(1 + (copy[0] & 0x7f) % 3);
		fuzz_open(key, purpose, copy + 1, size - 1);
		if (copy[0] & 0x80)
			fuzz_round_trip(key, purpose, TP_PFS_MIN_SHIFT + (copy[0] >> 2) % 2,
					copy + 1, size - 1);
	}
	free(copy);
	return 0;
}
