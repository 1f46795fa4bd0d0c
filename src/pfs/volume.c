/* The output volume's index codec (volume.h, docs/protected-files.md). */
#include "volume.h"

#include "../common/le.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KDF_SALT "teepy-pf v1"

bool tp_volume_name_ok(const char *name)
{
	size_t len = strlen(name), start = 0;

	if (len == 0 || len > TP_VOLUME_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (i < len && (c < 0x20 || c == 0x7f))
			return false;
		if (i < len && c != '/')
			continue;
		size_t part = i - start;
		if (part == 0 || (part == 1 && name[start] == '.') ||
		    (part == 2 && name[start] == '.' && name[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

/* The MAC over bytes, under a key derived from the volume key and the volume id. */
static int index_mac(const uint8_t key[TP_PFS_KEY_SIZE], const uint8_t volume_id[TP_PFS_ID_SIZE],
		     const uint8_t *bytes, size_t size, uint8_t mac[TP_VOLUME_MAC_SIZE])
{
	uint8_t info[12 + TP_PFS_ID_SIZE], *mac_key = tp_secret_alloc(TP_SHA256_SIZE);
	int r;

	if (!mac_key)
		return -ENOMEM;
	memcpy(info, "volume index", 12);
	memcpy(info + 12, volume_id, TP_PFS_ID_SIZE);
	r = tp_hkdf_sha256(key, TP_PFS_KEY_SIZE, KDF_SALT, strlen(KDF_SALT), info, sizeof(info),
			   mac_key, TP_SHA256_SIZE);
	if (r == 0)
		r = tp_hmac_sha256(mac_key, TP_SHA256_SIZE, bytes, size, mac);
	tp_secret_free(mac_key, TP_SHA256_SIZE);
	return r;
}

int tp_volume_index_encode(const uint8_t key[TP_PFS_KEY_SIZE], const struct tp_volume_index *ix,
			   uint8_t **out, size_t *size, char *err, size_t err_size)
{
	size_t total = TP_VOLUME_INDEX_HEADER + TP_VOLUME_MAC_SIZE, at;
	uint8_t *p;
	int r;

	*out = NULL;
	*size = 0;
	if (ix->count > TP_VOLUME_MAX_FILES) {
		snprintf(err, err_size, "%zu files, more than a volume holds (%d)", ix->count,
			 TP_VOLUME_MAX_FILES);
		return -EINVAL;
	}
	for (size_t i = 0; i < ix->count; i++) {
		const char *name = ix->entries[i].name;
		if (!tp_volume_name_ok(name)) {
			snprintf(err, err_size, "a file name a volume cannot hold");
			return -EINVAL;
		}
		if (i && strcmp(ix->entries[i - 1].name, name) >= 0) {
			snprintf(err, err_size, "file names not sorted, or one given twice");
			return -EINVAL;
		}
		total += 2 + strlen(name) + TP_PFS_ID_SIZE + 8;
	}
	if (!(p = malloc(total))) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	memcpy(p, TP_VOLUME_INDEX_MAGIC, 8);
	tp_put_le(p + 8, TP_VOLUME_INDEX_VERSION, 2);
	tp_put_le(p + 10, 0, 2);
	tp_put_le(p + 12, ix->count, 4);
	tp_put_le(p + 16, ix->version, 8);
	memcpy(p + 24, ix->volume_id, TP_PFS_ID_SIZE);
	at = TP_VOLUME_INDEX_HEADER;
	for (size_t i = 0; i < ix->count; i++) {
		const struct tp_volume_entry *e = &ix->entries[i];
		size_t len = strlen(e->name);
		tp_put_le(p + at, len, 2);
		memcpy(p + at + 2, e->name, len);
		at += 2 + len;
		memcpy(p + at, e->id, TP_PFS_ID_SIZE);
		tp_put_le(p + at + TP_PFS_ID_SIZE, e->size, 8);
		at += TP_PFS_ID_SIZE + 8;
	}
	if ((r = index_mac(key, ix->volume_id, p, at, p + at)) < 0) {
		snprintf(err, err_size, "out of memory");
		free(p);
		return r;
	}
	*out = p;
	*size = total;
	return 0;
}

static int refuse(char *err, size_t err_size, const char *why)
{
	snprintf(err, err_size, "%s", why);
	return -EINVAL;
}

int tp_volume_index_decode(const uint8_t key[TP_PFS_KEY_SIZE], const uint8_t *bytes, size_t size,
			   struct tp_volume_index *ix, char *err, size_t err_size)
{
	uint8_t mac[TP_VOLUME_MAC_SIZE];
	size_t body, at, count;
	int r;

	memset(ix, 0, sizeof(*ix));
	if (size < TP_VOLUME_INDEX_HEADER + TP_VOLUME_MAC_SIZE ||
	    memcmp(bytes, TP_VOLUME_INDEX_MAGIC, 8) != 0)
		return refuse(err, err_size, "not a teepy volume index");
	if (tp_get_le(bytes + 8, 2) != TP_VOLUME_INDEX_VERSION) {
		snprintf(err, err_size, "volume index version %u, this teepy reads version %d",
			 (unsigned)tp_get_le(bytes + 8, 2), TP_VOLUME_INDEX_VERSION);
		return -EPROTONOSUPPORT;
	}
	/* nothing of it is believed before the MAC over all of it holds */
	body = size - TP_VOLUME_MAC_SIZE;
	if ((r = index_mac(key, bytes + 24, bytes, body, mac)) < 0) {
		snprintf(err, err_size, "out of memory");
		return r;
	}
	if (!tp_same_bytes(mac, bytes + body, sizeof(mac))) {
		snprintf(err, err_size,
			 "the index does not authenticate: another volume key, or "
			 "it was changed");
		return -EKEYREJECTED;
	}
	count = (size_t)tp_get_le(bytes + 12, 4);
	if (tp_get_le(bytes + 10, 2) != 0 || count > TP_VOLUME_MAX_FILES)
		return refuse(err, err_size, "a volume index with fields no teepy writes");
	ix->version = tp_get_le(bytes + 16, 8);
	memcpy(ix->volume_id, bytes + 24, TP_PFS_ID_SIZE);
	if (count && !(ix->entries = calloc(count, sizeof(*ix->entries)))) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	at = TP_VOLUME_INDEX_HEADER;
	for (size_t i = 0; i < count; i++) {
		struct tp_volume_entry *e = &ix->entries[i];
		size_t len;
		if (body - at < 2 ||
		    (len = (size_t)tp_get_le(bytes + at, 2)) > TP_VOLUME_NAME_MAX ||
		    body - at - 2 < len + TP_PFS_ID_SIZE + 8) {
			tp_volume_index_free(ix);
			return refuse(err, err_size, "a volume index cut short");
		}
		if (!(e->name = malloc(len + 1))) {
			tp_volume_index_free(ix);
			snprintf(err, err_size, "out of memory");
			return -ENOMEM;
		}
		memcpy(e->name, bytes + at + 2, len);
		e->name[len] = '\0';
		ix->count = i + 1;
		at += 2 + len;
		memcpy(e->id, bytes + at, TP_PFS_ID_SIZE);
		e->size = tp_get_le(bytes + at + TP_PFS_ID_SIZE, 8);
		at += TP_PFS_ID_SIZE + 8;
		if (strlen(e->name) != len || !tp_volume_name_ok(e->name) ||
		    (i && strcmp(ix->entries[i - 1].name, e->name) >= 0)) {
			tp_volume_index_free(ix);
			return refuse(err, err_size, "a volume index with names no teepy writes");
		}
	}
	if (at != body) {
		tp_volume_index_free(ix);
		return refuse(err, err_size, "a volume index with bytes after its entries");
	}
	return 0;
}

void tp_volume_index_free(struct tp_volume_index *ix)
{
	for (size_t i = 0; i < ix->count; i++)
		free(ix->entries[i].name);
	free(ix->entries);
	ix->entries = NULL;
	ix->count = 0;
}
