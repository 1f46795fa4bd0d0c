/* Whether a bundle may run, as far as its signer and the runtime go: the trusted
 * signer list, the verdict on a bundle's signer and signature, and the signer and
 * runtime measurements. One module so that the CAS can link the same checks
 * `teepy run` makes. It decides and never prints: the caller words each verdict. */
#ifndef TEEPY_MANIFEST_TRUST_H
#define TEEPY_MANIFEST_TRUST_H

#include "bundle.h"
#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The public keys whose bundles may run. */
struct tp_signers {
	uint8_t (*keys)[TP_BUNDLE_KEY_SIZE]; /* raw Ed25519 public keys; owned */
	size_t count;
};

/* Reads the public key of each of the count paths (PEM, as teepy keygen writes a
 * .pub), every one before any is compared, so that a bad entry is reported
 * wherever it stands in the list and not only when no earlier key matched. Reads
 * without OpenSSL. Returns 0, or the -errno of the first key that cannot be read
 * (-EINVAL: not an Ed25519 public key), with *failed its index and the reason,
 * without the path, in err; or -ENOMEM with *failed = count. On failure s is
 * left empty. */
int tp_signers_load(struct tp_signers *s, const char *const *paths, size_t count, size_t *failed,
		    char *err, size_t err_size);
void tp_signers_free(struct tp_signers *s);

/* True if key is one of s. */
bool tp_signers_has(const struct tp_signers *s, const uint8_t key[TP_BUNDLE_KEY_SIZE]);

enum tp_trust_verdict {
	TP_TRUST_OK,		  /* a trusted signer's key, and the signature verifies */
	TP_TRUST_OK_ANY_SIGNER,	  /* no trusted signers, any_signer set (insecure: who
				   * signed was not checked), and the signature verifies */
	TP_TRUST_UNKNOWN_SIGNER,  /* the bundle's key is none of the trusted signers */
	TP_TRUST_NO_SIGNER_GIVEN, /* no trusted signers and any_signer not set */
	TP_TRUST_BAD_SIGNATURE,	  /* the manifest or the signature changed after signing */
};

/* The verdict on a bundle that carries pubkey and whose signature does
 * (signature_valid) or does not verify under it. Who claims to have signed is
 * judged first: a changed key is an unknown signer; a changed manifest or
 * signature is a bad signature (Ed25519 cannot tell those two apart). trusted may
 * be empty; any_signer accepts any signer only when it is. */
enum tp_trust_verdict tp_trust_judge(const struct tp_signers *trusted, bool any_signer,
				     const uint8_t pubkey[TP_BUNDLE_KEY_SIZE],
				     bool signature_valid);

/* True if b's signature verifies over its manifest under the key b carries (which
 * says nothing of who that is: tp_trust_judge does). Needs tp_crypto_load; false
 * when OpenSSL cannot make the key or runs out of memory. */
bool tp_trust_signature_valid(const struct tp_bundle *b);

/* The `signer` measurement: SHA-256 of the raw 32-byte public key. */
void tp_trust_signer_measure(const uint8_t pubkey[TP_BUNDLE_KEY_SIZE], uint8_t out[32]);

/* The `runtime` measurement: SHA-256 over a tag, the running teepy executable
 * (/proc/self/exe), the _teepy extension at runtime_so, the teepy-reaper program
 * at reaper and the boot text (the Python the interpreter runs first,
 * pyboot/boot.h's TP_BOOT_TEXT). Returns 0 or -errno of a file that cannot be
 * read (out then holds no measurement). */
int tp_runtime_measure(const char *runtime_so, const char *reaper, const char *boot_text,
		       uint8_t out[32]);

/* The reaper's program, which the sandbox's pid 1 executes (sandbox/reaper_main.c). */
#define TP_REAPER_PROGRAM "teepy-reaper"

/* Find _teepy, and teepy-reaper, beside the running teepy (the build tree, or a
 * copy of its files), else in the install directory. Return 0 or -ENOENT. */
int tp_find_runtime(char *out, size_t size);
/* the _teepy built for that engine (CPython's is tp_find_runtime's) */
int tp_find_engine_runtime(const struct tp_engine_build *engine, char *out, size_t size);
int tp_find_reaper(char *out, size_t size);

/* NAME beside the running teepy (the build tree, or a copy of its files), else in
 * the install directory, into out. Returns 0 or -ENOENT. */
int tp_find_beside(const char *name, char *out, size_t size);

#endif
