/* libFuzzer target: an output volume's index (src/pfs/volume.c), read under a fixed
 * key. Its bytes come from a directory whoever holds the volume can change: every
 * refusal must be one volume.h documents, nothing read out of bounds, and what
 * decodes must encode back to exactly the same bytes. The MAC is checked first, so
 * beside the raw input each run also decodes it with a valid MAC made for it, which
 * lets the fuzzer reach the entry parser. */
#include "src/crypto/crypto.h"
#include "src/pfs/volume.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t key[TP_PFS_KEY_SIZE] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
					      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
					      23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static void decode(const uint8_t *bytes, size_t size, bool authentic)
{
	struct tp_volume_index ix;
	char err[256];
	uint8_t *again;
	size_t again_size;
	int r = tp_volume_index_decode(key, bytes, size, &ix, err, sizeof(err));

	if (r < 0) {
		if (r != -EINVAL && r != -EPROTONOSUPPORT && r != -EKEYREJECTED)
			abort();
		if (authentic && r == -EKEYREJECTED)
			abort(); /* its MAC was made for it */
		return;
	}
	if (tp_volume_index_encode(key, &ix, &again, &again_size, err, sizeof(err)) != 0 ||
	    again_size != size || memcmp(again, bytes, size) != 0)
		abort();
	free(again);
	tp_volume_index_free(&ix);
}

/* The same bytes with the MAC a key holder would write: HMAC under the derived key. */
static void decode_with_its_mac(const uint8_t *data, size_t size)
{
	uint8_t *bytes, info[12 + TP_PFS_ID_SIZE], mac_key[TP_SHA256_SIZE];

	if (size < TP_VOLUME_INDEX_HEADER)
		return;
	bytes = malloc(size + TP_VOLUME_MAC_SIZE);
	memcpy(bytes, data, size);
	memcpy(info, "volume index", 12);
	memcpy(info + 12, data + 24, TP_PFS_ID_SIZE);
	if (tp_hkdf_sha256(key, sizeof(key), "teepy-pf v1", 11, info, sizeof(info), mac_key,
			   sizeof(mac_key)) != 0 ||
	    tp_hmac_sha256(mac_key, sizeof(mac_key), bytes, size, bytes + size) != 0)
		abort();
	/* only an index of this version and magic gets as far as its MAC */
	bool authentic =
	    memcmp(bytes, TP_VOLUME_INDEX_MAGIC, 8) == 0 && bytes[8] == 1 && bytes[9] == 0;
	decode(bytes, size + TP_VOLUME_MAC_SIZE, authentic);
	free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool loaded;
	char err[256];
	/* an exact-size heap copy, so ASan sees any read past the end */
	uint8_t *copy = malloc(size ? size : 1);

	if (!loaded && tp_crypto_load(err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	loaded = true;
	memcpy(copy, data, size);
	decode(copy, size, false);
	decode_with_its_mac(copy, size);
	free(copy);
	return 0;
}
