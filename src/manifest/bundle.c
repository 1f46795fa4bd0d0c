/* Bundle header and layout checks: every length and offset is checked against the
 * file's real size before anything points past the header. */
#include "bundle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

void tp_bundle_encode_header(const struct tp_bundle_header *h, uint8_t out[TP_BUNDLE_HEADER_SIZE])
{
	memcpy(out, TP_BUNDLE_MAGIC, 8);
	put_u32(out + 8, h->version);
	put_u32(out + 12, h->manifest_size);
	put_u64(out + 16, h->blob_size);
}

int tp_bundle_parse_header(const uint8_t *bytes, size_t size, uint64_t file_size,
			   struct tp_bundle_header *out, char *err, size_t err_size)
{
	uint64_t expected;

	if (size < TP_BUNDLE_HEADER_SIZE || file_size < TP_BUNDLE_HEADER_SIZE ||
	    memcmp(bytes, TP_BUNDLE_MAGIC, 8) != 0) {
		snprintf(err, err_size, "not a teepy bundle (no TEEPYBDL header)");
		return -EPROTO;
	}
	out->version = get_u32(bytes + 8);
	out->manifest_size = get_u32(bytes + 12);
	out->blob_size = get_u64(bytes + 16);
	if (out->version != TP_BUNDLE_VERSION) {
		snprintf(err, err_size, "bundle version %u is not supported (this teepy reads %d)",
			 out->version, TP_BUNDLE_VERSION);
		return -EINVAL;
	}
	if (out->manifest_size == 0 || out->manifest_size > TP_BUNDLE_MAX_MANIFEST) {
		snprintf(err, err_size, "bundle manifest size %u is out of range (1 to %u)",
			 out->manifest_size, TP_BUNDLE_MAX_MANIFEST);
		return -EINVAL;
	}
	expected = (uint64_t)TP_BUNDLE_HEADER_SIZE + out->manifest_size + TP_BUNDLE_KEY_SIZE +
		   TP_BUNDLE_SIG_SIZE;
	if (out->blob_size > UINT64_MAX - expected || expected + out->blob_size != file_size) {
		snprintf(
		    err, err_size,
		    "bundle is %llu bytes but its header says %llu + %llu (truncated or extended)",
		    (unsigned long long)file_size, (unsigned long long)expected,
		    (unsigned long long)out->blob_size);
		return -EINVAL;
	}
	return 0;
}

int tp_bundle_parse(const uint8_t *bytes, size_t size, uint64_t file_size, struct tp_bundle *b,
		    char *err, size_t err_size)
{
	int r = tp_bundle_parse_header(bytes, size, file_size, &b->header, err, err_size);
	size_t need;

	if (r < 0)
		return r;
	need = TP_BUNDLE_HEADER_SIZE + (size_t)b->header.manifest_size + TP_BUNDLE_KEY_SIZE +
	       TP_BUNDLE_SIG_SIZE;
	if (size < need) {
		snprintf(err, err_size, "bundle header area is cut short");
		return -EINVAL;
	}
	b->manifest = (const char *)bytes + TP_BUNDLE_HEADER_SIZE;
	b->pubkey = bytes + TP_BUNDLE_HEADER_SIZE + b->header.manifest_size;
	b->signature = b->pubkey + TP_BUNDLE_KEY_SIZE;
	b->blob_offset = need;
	return 0;
}

int tp_bundle_check_blobs(const struct tp_bundle *b, const struct tp_manifest *m, char *err,
			  size_t err_size)
{
	uint64_t total = 0;

	for (size_t i = 0; i < m->file_count; i++) {
		const struct tp_manifest_file *f = &m->files[i];
		if (!f->bundled)
			continue;
		if (f->offset != total || f->size > b->header.blob_size - total) {
			snprintf(err, err_size, "bundled file %s lies outside the blob area",
				 f->path);
			return -EINVAL;
		}
		total += f->size;
	}
	if (total != b->header.blob_size) {
		snprintf(err, err_size,
			 "the blob area is %llu bytes but the manifest's bundled files are %llu",
			 (unsigned long long)b->header.blob_size, (unsigned long long)total);
		return -EINVAL;
	}
	return 0;
}

uint8_t *tp_bundle_signed_message(const char *manifest, size_t size, size_t *out_size)
{
	static const char tag[] = "teepy-bundle-v1"; /* with its NUL */
	uint8_t *msg = malloc(sizeof(tag) + size);

	if (!msg)
		return NULL;
	memcpy(msg, tag, sizeof(tag));
	memcpy(msg + sizeof(tag), manifest, size);
	*out_size = sizeof(tag) + size;
	return msg;
}
