/* Protected files: teepy's one format for file contents kept encrypted outside the
 * sealed runtime's memory (sealed data items, encrypted bundle files, output
 * volumes). A codec: the caller's callbacks do every read and write; nothing here
 * opens, reads or writes a file (its keys alone go into crypto/'s locked memory).
 * The format and what it detects: docs/protected-files.md. */
#ifndef TEEPY_PFS_PFS_H
#define TEEPY_PFS_PFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_PFS_MAGIC	   "teepy-pf"
#define TP_PFS_VERSION	   1
#define TP_PFS_HEADER_SIZE 72
#define TP_PFS_KEY_SIZE	   32 /* the bundle, volume or data key it is sealed with */
#define TP_PFS_ID_SIZE	   32
#define TP_PFS_TAG_SIZE	   16
/* chunk sizes: 4 KiB to 1 MiB, a power of two; 64 KiB unless the caller chooses */
#define TP_PFS_MIN_SHIFT     12
#define TP_PFS_MAX_SHIFT     20
#define TP_PFS_DEFAULT_SHIFT 16

/* What a file is for: part of its key's derivation and of every chunk's associated
 * data, so that one kind is never taken for another under the same key. */
enum tp_pfs_purpose {
	TP_PFS_DATA = 1,   /* a sealed data item (teepy data seal) */
	TP_PFS_BUNDLE = 2, /* an encrypted file of a bundle's app */
	TP_PFS_VOLUME = 3, /* a file of an output volume */
};

struct tp_pfs_header {
	enum tp_pfs_purpose purpose;
	unsigned chunk_shift; /* chunk size = 1 << chunk_shift plaintext bytes */
	uint64_t size;	      /* plaintext bytes */
	uint8_t id[TP_PFS_ID_SIZE];
};

/* Reads exactly size bytes at offset into buf: 0, or -errno (-ENODATA: the source
 * ends before them). */
typedef int (*tp_pfs_read_fn)(void *ctx, uint64_t offset, void *buf, size_t size);
/* Writes size bytes at offset: 0 or -errno. Offsets only grow, one call after
 * another, so a stream (a pipe, stdout) can be the sink. */
typedef int (*tp_pfs_write_fn)(void *ctx, uint64_t offset, const void *buf, size_t size);

/* Chunks of a file of size plaintext bytes (a file of 0 bytes has one, empty). */
uint64_t tp_pfs_chunk_count(uint64_t size, unsigned chunk_shift);
/* Its sealed size: header, then each chunk's bytes and tag. 0 when it would not
 * fit in 64 bits. */
uint64_t tp_pfs_sealed_size(uint64_t size, unsigned chunk_shift);

/* Reads a header's fields, without a key: for inspect and info. Pure. Returns 0,
 * or -EINVAL (not a protected file) / -EPROTONOSUPPORT (a later version) with the
 * reason in err. */
int tp_pfs_header_parse(const uint8_t bytes[TP_PFS_HEADER_SIZE], struct tp_pfs_header *h, char *err,
			size_t err_size);

/* Seals h->size bytes read from plain (offsets 0 ..) into sealed (offsets 0 ..)
 * under key. h->id must be unique under key for this purpose (random, or
 * tp_pfs_derive_id's, which changes with the plaintext): the chunk nonces repeat
 * for one id. The libcrypto must be loaded. Returns 0, or -errno with the reason
 * in err (what was written is then not a protected file). */
int tp_pfs_seal(const uint8_t key[TP_PFS_KEY_SIZE], const struct tp_pfs_header *h,
		tp_pfs_read_fn read_plain, void *plain_ctx, tp_pfs_write_fn write_sealed,
		void *sealed_ctx, char *err, size_t err_size);

/* The id a deterministic seal (an encrypted bundle's files) gives NAME's content
 * of SIZE bytes, read from plain, in chunks of 1 << chunk_shift: a keyed hash of
 * them all, so the same file under the same key is sealed the same way, a changed
 * one (or the same content in other chunks) never under the same keys and nonces,
 * and nobody without the key can test a guess against it. Returns 0 or -errno with
 * the reason in err. */
int tp_pfs_derive_id(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
		     unsigned chunk_shift, const char *name, uint64_t size,
		     tp_pfs_read_fn read_plain, void *plain_ctx, uint8_t id[TP_PFS_ID_SIZE],
		     char *err, size_t err_size);

struct tp_pfs_reader;

/* Opens a protected file of sealed_size bytes: its header read, checked against
 * key (the header's key check) and purpose, and its size against the header's.
 * Returns 0 with *out set, or:
 *   -EINVAL	      not a protected file, or a field no writer makes
 *   -EPROTONOSUPPORT a later version
 *   -EMEDIUMTYPE     a protected file of another purpose (a volume file as data)
 *   -EKEYREJECTED    sealed under another key, or its header was changed
 *   -EBADMSG	      truncated or extended (its size is not the header's)
 *   -ENOMEM, or the read callback's error
 * with the reason in err. */
int tp_pfs_reader_open(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
		       tp_pfs_read_fn read_sealed, void *sealed_ctx, uint64_t sealed_size,
		       struct tp_pfs_reader **out, char *err, size_t err_size);
const struct tp_pfs_header *tp_pfs_reader_header(const struct tp_pfs_reader *r);
/* Chunk index's plaintext into buf (room for the chunk size), its length into
 * *size; any chunk may be read on its own. Returns 0, -EBADMSG when the chunk does
 * not authenticate (changed, moved, from another file) with buf wiped, -ERANGE for
 * an index past the last, -ENOMEM, or the read callback's error; the reason in err. */
int tp_pfs_read_chunk(struct tp_pfs_reader *r, uint64_t index, void *buf, size_t *size, char *err,
		      size_t err_size);
/* How many chunks of 1 << chunk_shift bytes a run holds, as open_all and the sealed
 * root's fill read them: as many as fill TP_PFS_RUN_BYTES, at least one. A read and
 * a write per run, not per chunk, with the run's sealed and plain buffers still in a
 * core's L2 (bench/RESULTS.md, 2026-12-07). */
#define TP_PFS_RUN_BYTES (256u << 10)
size_t tp_pfs_run_chunks(unsigned chunk_shift);

/* Chunks first .. first + count - 1 (fewer where the file ends first) read with one
 * call into sealed (room for count chunks and their tags: a caller's buffer, kept
 * from one file to the next), their plaintexts one after another into buf (room
 * for count chunks), their total length into *size. Returns as tp_pfs_read_chunk,
 * with every plaintext of the run wiped when one of its chunks does not
 * authenticate, -ERANGE for count 0 or a first index past the last. */
int tp_pfs_read_chunks(struct tp_pfs_reader *r, uint64_t first, size_t count, void *sealed,
		       void *buf, size_t *size, char *err, size_t err_size);
/* Every chunk, in order, into write_plain (offsets 0 ..). A chunk that does not
 * authenticate stops it: what was written before is the caller's to discard.
 * Returns as tp_pfs_read_chunk, or the write callback's error. -ENOTRECOVERABLE
 * from any function here: OpenSSL failed (out of memory), not the file. */
int tp_pfs_open_all(struct tp_pfs_reader *r, tp_pfs_write_fn write_plain, void *plain_ctx,
		    char *err, size_t err_size);
void tp_pfs_reader_free(struct tp_pfs_reader *r);

/* What an error of a reader here says (tp_pfs_reader_open, tp_pfs_read_chunk,
 * tp_pfs_open_all): the file is refused (not a protected file of that purpose and
 * key, a later version, or changed), or the host failed (memory, OpenSSL). Any other
 * is a callback's own (a read or write error). */
bool tp_pfs_refused(int r);
bool tp_pfs_host_failed(int r);

#endif
