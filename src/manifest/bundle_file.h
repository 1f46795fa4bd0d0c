/* Opening a .tpy bundle from disk: header, manifest, key and signature read into
 * memory once, parsed and (optionally) checked against trusted signers. */
#ifndef TEEPY_MANIFEST_BUNDLE_FILE_H
#define TEEPY_MANIFEST_BUNDLE_FILE_H

#include "../crypto/crypto.h"
#include "bundle.h"
#include "manifest.h"

#include <stdbool.h>

struct tp_bundle_file {
	int fd;             /* kept open: blobs are read from it later */
	uint64_t file_size;
	uint8_t *head;      /* header .. signature, our private copy */
	struct tp_bundle bundle;
	struct tp_manifest manifest;
	uint8_t app[32];    /* measurement */
	uint8_t signer[32]; /* SHA-256 of the public key */
	bool signature_ok;  /* the signature verifies under the bundle's own key */
};

/* True if path starts with the bundle magic. */
bool tp_is_bundle(const char *path);

/* Opens the bundle: header, manifest bytes, key, signature (checked: signature_ok),
 * app and signer measurements. The manifest is not parsed yet, so the caller can
 * decide on the signer first. Returns 0 or -errno with one line in err. */
int tp_bundle_file_open(const char *path, struct tp_bundle_file *bf, char *err, size_t err_size);

/* Parses the manifest and checks it against the blob area. */
int tp_bundle_file_parse(struct tp_bundle_file *bf, char *err, size_t err_size);
void tp_bundle_file_close(struct tp_bundle_file *bf);

/* The runtime measurement: SHA-256 over a tag, the teepy executable, the _teepy
 * extension and the boot text. */
int tp_runtime_measure(const char *runtime_so, uint8_t out[32]);

/* Finds _teepy beside the running teepy, else in the install directory. */
int tp_find_runtime(char *out, size_t size);

#endif
