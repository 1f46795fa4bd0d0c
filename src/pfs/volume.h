/* An output volume's index (docs/protected-files.md, "Output volumes"): the files
 * a volume holds, by name, each with its protected-file id and plaintext size,
 * under a version counter and the volume's id, with an HMAC under a key derived
 * from the volume key. A removed, added, renamed or swapped file changes what the
 * MAC covers; an older index replayed still authenticates, and is told by its
 * version (the caller's --expect-version). Pure: bytes in, bytes out. */
#ifndef TEEPY_PFS_VOLUME_H
#define TEEPY_PFS_VOLUME_H

#include "pfs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_VOLUME_INDEX_MAGIC	"teepy-vi"
#define TP_VOLUME_INDEX_VERSION 1
#define TP_VOLUME_INDEX_HEADER	56 /* magic, version, reserved, count, counter, volume id */
#define TP_VOLUME_MAC_SIZE	32
#define TP_VOLUME_NAME_MAX	1024   /* bytes of a file's name in the volume */
#define TP_VOLUME_MAX_FILES	100000 /* files in one volume */

struct tp_volume_entry {
	char *name; /* relative, normal ("a/b.txt"), malloc'd */
	uint8_t id[TP_PFS_ID_SIZE];
	uint64_t size; /* plaintext bytes */
};

struct tp_volume_index {
	uint8_t volume_id[TP_PFS_ID_SIZE]; /* the volume's, the same in every version */
	uint64_t version;		   /* 1 for the first; each publish adds one */
	struct tp_volume_entry *entries;   /* sorted by name (strcmp), each name once */
	size_t count;
};

/* A name a volume may hold: relative, non-empty components of printable bytes
 * other than '/', no "." or "..", at most TP_VOLUME_NAME_MAX bytes. */
bool tp_volume_name_ok(const char *name);

/* ix's bytes, MACed under key, into *out (malloc'd, *size bytes). The libcrypto
 * must be loaded. Returns 0, or -EINVAL (a name not ok, entries not sorted or a
 * name twice, too many) or -ENOMEM, with the reason in err. */
int tp_volume_index_encode(const uint8_t key[TP_PFS_KEY_SIZE], const struct tp_volume_index *ix,
			   uint8_t **out, size_t *size, char *err, size_t err_size);

/* The index in bytes, its MAC checked under key before anything else is read.
 * Returns 0 with *ix filled (free it with tp_volume_index_free), or with the reason
 * in err: -EINVAL (not an index, or one no writer makes), -EPROTONOSUPPORT (a
 * later version), -EKEYREJECTED (another key, or a changed byte), -ENOMEM. */
int tp_volume_index_decode(const uint8_t key[TP_PFS_KEY_SIZE], const uint8_t *bytes, size_t size,
			   struct tp_volume_index *ix, char *err, size_t err_size);

void tp_volume_index_free(struct tp_volume_index *ix);

#endif
