/* The .tpy bundle: one file holding the canonical manifest, the signer's public
 * key, the Ed25519 signature and the app's own file contents. Layout (all
 * integers little-endian; see docs/bundle-format.md):
 *
 *   0   magic "TEEPYBDL"                 8
 *   8   version (1)                      u32
 *   12  manifest size M (1..16 MiB)      u32
 *   16  blob area size B                 u64
 *   24  canonical manifest               M
 *   24+M  signer public key (Ed25519)    32
 *   56+M  signature                      64   over "teepy-bundle-v1\0" || manifest
 *   120+M blobs: bundled files, in manifest path order, back to back   B
 *
 * The file ends exactly there. Pure parsing: no OS calls. */
#ifndef TEEPY_MANIFEST_BUNDLE_H
#define TEEPY_MANIFEST_BUNDLE_H

#include "manifest.h"

#include <stddef.h>
#include <stdint.h>

#define TP_BUNDLE_MAGIC	       "TEEPYBDL"
#define TP_BUNDLE_VERSION      1
#define TP_BUNDLE_HEADER_SIZE  24
#define TP_BUNDLE_MAX_MANIFEST (16u << 20)
#define TP_BUNDLE_KEY_SIZE     32
#define TP_BUNDLE_SIG_SIZE     64

struct tp_bundle_header {
	uint32_t version;
	uint32_t manifest_size;
	uint64_t blob_size;
};

/* Everything in a bundle up to the blobs, as read from the file. */
struct tp_bundle {
	struct tp_bundle_header header;
	const char *manifest; /* points into the caller's buffer */
	const uint8_t *pubkey;
	const uint8_t *signature;
	uint64_t blob_offset; /* where the blob area starts in the file */
};

/* Checks the fixed header of a file of file_size bytes. On error returns -EINVAL
 * (or -EPROTO for a wrong magic) and one line in err. */
int tp_bundle_parse_header(const uint8_t *bytes, size_t size, uint64_t file_size,
			   struct tp_bundle_header *out, char *err, size_t err_size);

/* Given the first 120 + M bytes (header, manifest, key, signature), fills b with
 * pointers into them. */
int tp_bundle_parse(const uint8_t *bytes, size_t size, uint64_t file_size, struct tp_bundle *b,
		    char *err, size_t err_size);

/* Checks that the manifest's bundled files fill the blob area exactly. */
int tp_bundle_check_blobs(const struct tp_bundle *b, const struct tp_manifest *m, char *err,
			  size_t err_size);

void tp_bundle_encode_header(const struct tp_bundle_header *h, uint8_t out[TP_BUNDLE_HEADER_SIZE]);

/* What is signed: the domain tag followed by the manifest. malloc'd. */
uint8_t *tp_bundle_signed_message(const char *manifest, size_t size, size_t *out_size);

#endif
