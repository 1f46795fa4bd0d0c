/* The protected-file codec (docs/protected-files.md): header, key derivation, chunk
 * sealing and opening. Every byte comes and goes through the caller's callbacks. */
#include "pfs.h"

#include "../common/le.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HKDF's salt: the format and its version, so no other use of a key derives these */
#define KDF_SALT "teepy-pf v1"
/* the header's bytes the key check covers: all before it */
#define CHECKED_SIZE 56
#define AAD_SIZE     (TP_PFS_HEADER_SIZE + 8 + 1)

struct file_keys {
	uint8_t aes[TP_AES_KEY_SIZE];
	uint8_t check[TP_SHA256_SIZE];
};

struct tp_pfs_reader {
	struct tp_pfs_header header;
	uint8_t header_bytes[TP_PFS_HEADER_SIZE];
	struct tp_gcm *gcm;
	tp_pfs_read_fn read;
	void *ctx;
	uint64_t chunks;
	uint8_t *sealed; /* one chunk and its tag, for read_chunk */
};

uint64_t tp_pfs_chunk_count(uint64_t size, unsigned chunk_shift)
{
	uint64_t chunk = (uint64_t)1 << chunk_shift;
	return size == 0 ? 1 : size / chunk + (size % chunk != 0);
}

uint64_t tp_pfs_sealed_size(uint64_t size, unsigned chunk_shift)
{
	uint64_t tags = tp_pfs_chunk_count(size, chunk_shift) * TP_PFS_TAG_SIZE;

	if (size > UINT64_MAX - TP_PFS_HEADER_SIZE - tags)
		return 0;
	return TP_PFS_HEADER_SIZE + tags + size;
}

static bool known_purpose(unsigned p)
{
	return p == TP_PFS_DATA || p == TP_PFS_BUNDLE || p == TP_PFS_VOLUME;
}

static const char *purpose_name(enum tp_pfs_purpose p)
{
	switch (p) {
	case TP_PFS_DATA:
		return "a sealed data item";
	case TP_PFS_BUNDLE:
		return "an encrypted bundle file";
	case TP_PFS_VOLUME:
		return "an output volume's file";
	}
	return "?";
}

/* The header's bytes but its key check (all of h's fields). */
static void header_fields(const struct tp_pfs_header *h, uint8_t bytes[TP_PFS_HEADER_SIZE])
{
	memset(bytes, 0, TP_PFS_HEADER_SIZE);
	memcpy(bytes, TP_PFS_MAGIC, 8);
	tp_put_le(bytes + 8, TP_PFS_VERSION, 2);
	bytes[10] = (uint8_t)h->purpose;
	bytes[11] = (uint8_t)h->chunk_shift;
	tp_put_le(bytes + 16, h->size, 8);
	memcpy(bytes + 24, h->id, TP_PFS_ID_SIZE);
}

int tp_pfs_header_parse(const uint8_t bytes[TP_PFS_HEADER_SIZE], struct tp_pfs_header *h, char *err,
			size_t err_size)
{
	unsigned version = (unsigned)tp_get_le(bytes + 8, 2);

	if (memcmp(bytes, TP_PFS_MAGIC, 8) != 0) {
		snprintf(err, err_size, "not a teepy protected file");
		return -EINVAL;
	}
	if (version != TP_PFS_VERSION) {
		snprintf(err, err_size,
			 "protected-file version %u, this teepy reads version %d (a later teepy "
			 "made it?)",
			 version, TP_PFS_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (!known_purpose(bytes[10]) || bytes[11] < TP_PFS_MIN_SHIFT ||
	    bytes[11] > TP_PFS_MAX_SHIFT || tp_get_le(bytes + 12, 4) != 0) {
		snprintf(err, err_size, "a protected file's header with fields no teepy writes");
		return -EINVAL;
	}
	h->purpose = bytes[10];
	h->chunk_shift = bytes[11];
	h->size = tp_get_le(bytes + 16, 8);
	memcpy(h->id, bytes + 24, TP_PFS_ID_SIZE);
	if (tp_pfs_sealed_size(h->size, h->chunk_shift) == 0) {
		snprintf(err, err_size, "a protected file's header with a size no file has");
		return -EINVAL;
	}
	return 0;
}

/* The file's own keys: HKDF over the given key, the purpose and the id. */
static int derive_keys(const uint8_t key[TP_PFS_KEY_SIZE], const struct tp_pfs_header *h,
		       struct file_keys *k)
{
	uint8_t info[4 + 1 + TP_PFS_ID_SIZE];

	memcpy(info, "file", 4);
	info[4] = (uint8_t)h->purpose;
	memcpy(info + 5, h->id, TP_PFS_ID_SIZE);
	return tp_hkdf_sha256(key, TP_PFS_KEY_SIZE, KDF_SALT, strlen(KDF_SALT), info, sizeof(info),
			      (uint8_t *)k, sizeof(*k));
}

static int key_check(const struct file_keys *k, const uint8_t bytes[TP_PFS_HEADER_SIZE],
		     uint8_t out[TP_PFS_HEADER_SIZE - CHECKED_SIZE])
{
	uint8_t mac[TP_SHA256_SIZE];
	int r = tp_hmac_sha256(k->check, sizeof(k->check), bytes, CHECKED_SIZE, mac);

	memcpy(out, mac, TP_PFS_HEADER_SIZE - CHECKED_SIZE);
	return r;
}

/* A chunk's nonce and associated data: its index in both, the whole header and
 * whether it is the last in the data, so a chunk read anywhere else, or after a
 * header that says otherwise, does not authenticate. */
static void chunk_binding(const uint8_t header[TP_PFS_HEADER_SIZE], uint64_t index, bool last,
			  uint8_t nonce[TP_GCM_NONCE_SIZE], uint8_t aad[AAD_SIZE])
{
	memset(nonce, 0, TP_GCM_NONCE_SIZE);
	tp_put_le(nonce, index, 8);
	memcpy(aad, header, TP_PFS_HEADER_SIZE);
	tp_put_le(aad + TP_PFS_HEADER_SIZE, index, 8);
	aad[TP_PFS_HEADER_SIZE + 8] = last;
}

static size_t chunk_length(const struct tp_pfs_header *h, uint64_t index, uint64_t chunks)
{
	uint64_t chunk = (uint64_t)1 << h->chunk_shift;
	return index + 1 < chunks ? (size_t)chunk : (size_t)(h->size - index * chunk);
}

int tp_pfs_seal(const uint8_t key[TP_PFS_KEY_SIZE], const struct tp_pfs_header *h,
		tp_pfs_read_fn read_plain, void *plain_ctx, tp_pfs_write_fn write_sealed,
		void *sealed_ctx, char *err, size_t err_size)
{
	uint8_t header[TP_PFS_HEADER_SIZE], nonce[TP_GCM_NONCE_SIZE], aad[AAD_SIZE];
	struct file_keys *keys = tp_secret_alloc(sizeof(*keys));
	struct tp_gcm *gcm = NULL;
	uint8_t *buf = NULL;
	uint64_t chunks, offset = TP_PFS_HEADER_SIZE;
	size_t chunk;
	int r;

	if (!known_purpose(h->purpose) || h->chunk_shift < TP_PFS_MIN_SHIFT ||
	    h->chunk_shift > TP_PFS_MAX_SHIFT || tp_pfs_sealed_size(h->size, h->chunk_shift) == 0) {
		snprintf(err, err_size, "no protected file has these fields");
		r = -EINVAL;
		goto out;
	}
	chunk = (size_t)1 << h->chunk_shift;
	chunks = tp_pfs_chunk_count(h->size, h->chunk_shift);
	header_fields(h, header);
	if (!keys || (r = derive_keys(key, h, keys)) < 0 ||
	    (r = key_check(keys, header, header + CHECKED_SIZE)) < 0 ||
	    !(gcm = tp_gcm_new(keys->aes)) || !(buf = malloc(chunk + TP_PFS_TAG_SIZE))) {
		snprintf(err, err_size, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	if ((r = write_sealed(sealed_ctx, 0, header, sizeof(header))) < 0) {
		snprintf(err, err_size, "cannot write: %s", strerror(-r));
		goto out;
	}
	for (uint64_t i = 0; i < chunks; i++) {
		size_t len = chunk_length(h, i, chunks);
		if (len && (r = read_plain(plain_ctx, i * chunk, buf, len)) < 0) {
			snprintf(err, err_size, "cannot read the plaintext: %s",
				 r == -ENODATA ? "it ended before its size" : strerror(-r));
			goto out;
		}
		chunk_binding(header, i, i + 1 == chunks, nonce, aad);
		if ((r = tp_gcm_seal(gcm, nonce, aad, sizeof(aad), buf, len, buf, buf + len)) < 0) {
			snprintf(err, err_size, "AES-GCM failed (OpenSSL out of memory?)");
			r = -ENOTRECOVERABLE;
			goto out;
		}
		if ((r = write_sealed(sealed_ctx, offset, buf, len + TP_PFS_TAG_SIZE)) < 0) {
			snprintf(err, err_size, "cannot write: %s", strerror(-r));
			goto out;
		}
		offset += len + TP_PFS_TAG_SIZE;
	}
	r = 0;
out:
	if (buf) {
		explicit_bzero(buf, chunk + TP_PFS_TAG_SIZE);
		free(buf);
	}
	tp_gcm_free(gcm);
	tp_secret_free(keys, sizeof(*keys));
	return r;
}

int tp_pfs_derive_id(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
		     unsigned chunk_shift, const char *name, uint64_t size,
		     tp_pfs_read_fn read_plain, void *plain_ctx, uint8_t id[TP_PFS_ID_SIZE],
		     char *err, size_t err_size)
{
	uint8_t info[2 + 1], lengths[8], *id_key = tp_secret_alloc(TP_SHA256_SIZE);
	size_t buf_size = 1u << TP_PFS_DEFAULT_SHIFT;
	uint8_t *buf = malloc(buf_size);
	struct tp_hmac *h = NULL;
	int r = -ENOMEM;

	memcpy(info, "id", 2);
	info[2] = (uint8_t)purpose;
	if (!id_key || !buf ||
	    tp_hkdf_sha256(key, TP_PFS_KEY_SIZE, KDF_SALT, strlen(KDF_SALT), info, sizeof(info),
			   id_key, TP_SHA256_SIZE) < 0 ||
	    !(h = tp_hmac_new(id_key, TP_SHA256_SIZE))) {
		snprintf(err, err_size, "out of memory");
		goto out;
	}
	/* the chunk size first (the same content in other chunks is another file: it must
	 * not share this one's keys and nonces), then each field's length: no two (name,
	 * content) pairs hash alike */
	uint8_t shift = (uint8_t)chunk_shift;
	tp_hmac_update(h, &shift, 1);
	tp_put_le(lengths, strlen(name), 8);
	tp_hmac_update(h, lengths, sizeof(lengths));
	tp_hmac_update(h, name, strlen(name));
	tp_put_le(lengths, size, 8);
	tp_hmac_update(h, lengths, sizeof(lengths));
	for (uint64_t done = 0; done < size;) {
		size_t n = size - done < buf_size ? (size_t)(size - done) : buf_size;
		if ((r = read_plain(plain_ctx, done, buf, n)) < 0) {
			snprintf(err, err_size, "cannot read the plaintext: %s",
				 r == -ENODATA ? "it ended before its size" : strerror(-r));
			tp_hmac_final(h, id); /* frees it */
			explicit_bzero(id, TP_PFS_ID_SIZE);
			h = NULL;
			goto out;
		}
		tp_hmac_update(h, buf, n);
		done += n;
	}
	tp_hmac_final(h, id);
	h = NULL;
	r = 0;
out:
	if (buf) {
		explicit_bzero(buf, buf_size);
		free(buf);
	}
	tp_secret_free(id_key, TP_SHA256_SIZE);
	return r;
}

int tp_pfs_reader_open(const uint8_t key[TP_PFS_KEY_SIZE], enum tp_pfs_purpose purpose,
		       tp_pfs_read_fn read_sealed, void *sealed_ctx, uint64_t sealed_size,
		       struct tp_pfs_reader **out, char *err, size_t err_size)
{
	uint8_t check[TP_PFS_HEADER_SIZE - CHECKED_SIZE];
	struct file_keys *keys = NULL;
	struct tp_pfs_reader *rd = NULL;
	uint64_t expected;
	int r;

	*out = NULL;
	if (!(rd = calloc(1, sizeof(*rd)))) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	if (sealed_size < TP_PFS_HEADER_SIZE) {
		snprintf(err, err_size, "not a teepy protected file (%llu bytes)",
			 (unsigned long long)sealed_size);
		r = -EINVAL;
		goto fail;
	}
	if ((r = read_sealed(sealed_ctx, 0, rd->header_bytes, TP_PFS_HEADER_SIZE)) < 0) {
		snprintf(err, err_size, "cannot read: %s", strerror(-r));
		goto fail;
	}
	if ((r = tp_pfs_header_parse(rd->header_bytes, &rd->header, err, err_size)) < 0)
		goto fail;
	if (rd->header.purpose != purpose) {
		snprintf(err, err_size, "%s, not %s", purpose_name(rd->header.purpose),
			 purpose_name(purpose));
		r = -EMEDIUMTYPE;
		goto fail;
	}
	if (!(keys = tp_secret_alloc(sizeof(*keys))) ||
	    (r = derive_keys(key, &rd->header, keys)) < 0 ||
	    (r = key_check(keys, rd->header_bytes, check)) < 0) {
		snprintf(err, err_size, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	if (!tp_same_bytes(check, rd->header_bytes + CHECKED_SIZE, sizeof(check))) {
		snprintf(err, err_size, "sealed with another key, or its header was changed");
		r = -EKEYREJECTED;
		goto fail;
	}
	expected = tp_pfs_sealed_size(rd->header.size, rd->header.chunk_shift);
	if (sealed_size != expected) {
		snprintf(err, err_size,
			 "%s: %llu bytes where its header says %llu (%llu bytes of plaintext)",
			 sealed_size < expected ? "truncated" : "bytes added after its end",
			 (unsigned long long)sealed_size, (unsigned long long)expected,
			 (unsigned long long)rd->header.size);
		r = -EBADMSG;
		goto fail;
	}
	rd->chunks = tp_pfs_chunk_count(rd->header.size, rd->header.chunk_shift);
	if (!(rd->gcm = tp_gcm_new(keys->aes))) {
		snprintf(err, err_size, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	tp_secret_free(keys, sizeof(*keys));
	rd->read = read_sealed;
	rd->ctx = sealed_ctx;
	*out = rd;
	return 0;
fail:
	tp_secret_free(keys, sizeof(*keys));
	tp_pfs_reader_free(rd);
	return r;
}

const struct tp_pfs_header *tp_pfs_reader_header(const struct tp_pfs_reader *r)
{
	return &r->header;
}

int tp_pfs_read_chunks(struct tp_pfs_reader *rd, uint64_t first, size_t count, void *sealed,
		       void *buf, size_t *size, char *err, size_t err_size)
{
	uint8_t nonce[TP_GCM_NONCE_SIZE], aad[AAD_SIZE], *in = sealed, *out = buf;
	uint64_t chunk = (uint64_t)1 << rd->header.chunk_shift;
	size_t sealed_len = 0, done = 0;
	int r;

	*size = 0;
	if (first >= rd->chunks || count == 0) {
		snprintf(err, err_size, "chunk %llu of %llu", (unsigned long long)first,
			 (unsigned long long)rd->chunks);
		return -ERANGE;
	}
	if (count > rd->chunks - first)
		count = (size_t)(rd->chunks - first);
	for (size_t k = 0; k < count; k++)
		sealed_len += chunk_length(&rd->header, first + k, rd->chunks) + TP_PFS_TAG_SIZE;
	/* the run's chunks lie one after another: one read for them all */
	r = rd->read(rd->ctx, TP_PFS_HEADER_SIZE + first * (chunk + TP_PFS_TAG_SIZE), in,
		     sealed_len);
	if (r < 0) {
		snprintf(err, err_size, "cannot read chunk %llu: %s", (unsigned long long)first,
			 r == -ENODATA ? "the file ends before it" : strerror(-r));
		return r == -ENODATA ? -EBADMSG : r;
	}
	for (size_t k = 0; k < count; k++) {
		uint64_t index = first + k;
		size_t len = chunk_length(&rd->header, index, rd->chunks);

		chunk_binding(rd->header_bytes, index, index + 1 == rd->chunks, nonce, aad);
		r = tp_gcm_open(rd->gcm, nonce, aad, sizeof(aad), in, len, in + len, out + done);
		if (r < 0) {
			/* the run's plaintext so far, and whatever this chunk left */
			explicit_bzero(out, done + len);
			if (r != -EBADMSG) {
				snprintf(err, err_size, "AES-GCM failed (OpenSSL out of memory?)");
				return -ENOTRECOVERABLE;
			}
			snprintf(err, err_size,
				 "chunk %llu of %llu does not authenticate: changed, moved or "
				 "taken from another file",
				 (unsigned long long)index, (unsigned long long)rd->chunks);
			return -EBADMSG;
		}
		in += len + TP_PFS_TAG_SIZE;
		done += len;
	}
	*size = done;
	return 0;
}

size_t tp_pfs_run_chunks(unsigned chunk_shift)
{
	size_t chunk = (size_t)1 << chunk_shift;
	return chunk < TP_PFS_RUN_BYTES ? TP_PFS_RUN_BYTES / chunk : 1;
}

int tp_pfs_read_chunk(struct tp_pfs_reader *rd, uint64_t index, void *buf, size_t *size, char *err,
		      size_t err_size)
{
	/* made on first use: the fill and open_all read runs into buffers of their own */
	if (!rd->sealed &&
	    !(rd->sealed = malloc(((size_t)1 << rd->header.chunk_shift) + TP_PFS_TAG_SIZE))) {
		*size = 0;
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return tp_pfs_read_chunks(rd, index, 1, rd->sealed, buf, size, err, err_size);
}

int tp_pfs_open_all(struct tp_pfs_reader *rd, tp_pfs_write_fn write_plain, void *plain_ctx,
		    char *err, size_t err_size)
{
	size_t chunk = (size_t)1 << rd->header.chunk_shift, len;
	uint64_t run = tp_pfs_run_chunks(rd->header.chunk_shift);
	uint8_t *buf, *sealed;
	uint64_t offset = 0;
	int r = 0;

	if (run > rd->chunks)
		run = rd->chunks;
	buf = malloc(run * chunk);
	sealed = malloc(run * (chunk + TP_PFS_TAG_SIZE));
	if (!buf || !sealed) {
		free(buf);
		free(sealed);
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	for (uint64_t i = 0; r == 0 && i < rd->chunks; i += run) {
		if ((r = tp_pfs_read_chunks(rd, i, run, sealed, buf, &len, err, err_size)) < 0)
			break;
		if (len && (r = write_plain(plain_ctx, offset, buf, len)) < 0)
			snprintf(err, err_size, "cannot write the plaintext: %s", strerror(-r));
		offset += len;
	}
	explicit_bzero(buf, run * chunk);
	free(buf);
	free(sealed);
	return r;
}

bool tp_pfs_refused(int r)
{
	return r == -EKEYREJECTED || r == -EBADMSG || r == -EINVAL || r == -EPROTONOSUPPORT ||
	       r == -EMEDIUMTYPE;
}

bool tp_pfs_host_failed(int r)
{
	return r == -ENOMEM || r == -ENOTRECOVERABLE;
}

void tp_pfs_reader_free(struct tp_pfs_reader *rd)
{
	if (!rd)
		return;
	tp_gcm_free(rd->gcm);
	free(rd->sealed);
	free(rd);
}
