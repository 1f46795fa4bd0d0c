/* .tpy bundles on disk: opening one (header, manifest, key and signature read into
 * memory once, then parsed) and writing one. The byte layout and its checks are
 * bundle.c's, which touches no file. */
#ifndef TEEPY_MANIFEST_BUNDLE_FILE_H
#define TEEPY_MANIFEST_BUNDLE_FILE_H

#include "../crypto/crypto.h"
#include "bundle.h"
#include "manifest.h"

#include <stdbool.h>

struct tp_bundle_file {
	int fd; /* kept open: blobs are read from it later */
	uint64_t file_size;
	uint8_t *head; /* header .. signature, our private copy */
	struct tp_bundle bundle;
	struct tp_manifest manifest;
	uint8_t app[32];    /* measurement */
	uint8_t signer[32]; /* SHA-256 of the public key */
	bool signature_ok;  /* the signature verifies under the bundle's own key */
};

/* True if path starts with the bundle magic. */
bool tp_is_bundle(const char *path);

/* Opens the bundle: header, manifest bytes, key, signature (checked under the
 * bundle's own key: signature_ok), app and signer measurements. Who the signer is,
 * is for tp_trust_judge (trust.h). The manifest is not parsed yet, so the caller can
 * decide on the signer first. Returns 0 or -errno with one line in err. */
int tp_bundle_file_open(const char *path, struct tp_bundle_file *bf, char *err, size_t err_size);

/* tp_bundle_file_open in two steps: the bytes read into our copy and their layout
 * checked (no cryptography), then the signature checked and the measurements taken
 * (libcrypto loaded first: tp_crypto_load). The runner parses between the two only
 * for bytes a verified run read (its cache's index), and settles the signer before
 * the service is told what to run (runner/plan.c's tp_plan_settle). */
int tp_bundle_file_read(const char *path, struct tp_bundle_file *bf, char *err, size_t err_size);
void tp_bundle_file_verify(struct tp_bundle_file *bf);

/* Parses the manifest, checks it against the blob area, then whether this teepy
 * can run it: -ENOTSUP (tp_manifest_check_runnable) for a valid bundle using what
 * this teepy does not support yet, with the manifest kept in bf->manifest for one
 * that only shows it (inspect). KNOWN: bytes this teepy accepted before
 * (tp_manifest_from_known_json). Any error: one line in err. */
int tp_bundle_file_parse(struct tp_bundle_file *bf, bool known, char *err, size_t err_size);
void tp_bundle_file_close(struct tp_bundle_file *bf);

/* Writes a bundle at path: the header, json (the canonical manifest of m, json_size
 * bytes), key's public half, its signature over the manifest, then the contents of
 * m's bundled files in m's order (blobs[i], m->files[i].size bytes, for each bundled
 * file i; blobs[i] of a system file is not read). Written to a temporary file beside
 * path, synced and renamed over it, so a reader sees the old bundle or the new one,
 * never a part; mode 0666 less the umask. Returns 0 or -errno (-EIO: the key could
 * not sign; -EFBIG: a manifest larger than a bundle holds). */
int tp_bundle_write(const char *path, const char *json, size_t json_size, const struct tp_key *key,
		    const struct tp_manifest *m, void *const *blobs);

#endif
