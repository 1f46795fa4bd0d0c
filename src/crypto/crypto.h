/* Hashes and signatures through OpenSSL 3 EVP: SHA-256 and Ed25519. */
#ifndef TEEPY_CRYPTO_CRYPTO_H
#define TEEPY_CRYPTO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TP_SHA256_SIZE	    32
#define TP_ED25519_PUB_SIZE 32
#define TP_ED25519_SIG_SIZE 64

/* Loads libcrypto (once; every function below does it when first called). A
 * command calls this first to stop with one clear line where OpenSSL is missing.
 * Returns 0, or -ENOSYS with the reason in err. */
int tp_crypto_load(char *err, size_t err_size);

struct tp_sha256; /* opaque streaming context */

struct tp_sha256 *tp_sha256_new(void);
void tp_sha256_update(struct tp_sha256 *ctx, const void *data, size_t size);
void tp_sha256_final(struct tp_sha256 *ctx, uint8_t out[TP_SHA256_SIZE]); /* also frees */
void tp_sha256(const void *data, size_t size, uint8_t out[TP_SHA256_SIZE]);

/* Lower-case hex of size bytes into out (2 * size + 1 bytes). */
void tp_hex(const uint8_t *bytes, size_t size, char *out);
/* Parses exactly 2 * size hex digits. Returns 0 or -EINVAL. */
int tp_unhex(const char *hex, uint8_t *out, size_t size);

struct tp_key; /* an Ed25519 private or public key */

/* Writes a new private key to path (PEM, mode 0600, refusing to overwrite) and its
 * public key to pub_path (PEM, 0644). Returns 0 or -errno. */
int tp_key_generate(const char *path, const char *pub_path);

/* The raw key of an Ed25519 public key in PEM (SubjectPublicKeyInfo, as teepy
 * keygen writes it). Pure: text need not be NUL-terminated. Returns 0 or -EINVAL. */
int tp_ed25519_public_from_pem(const char *text, size_t size, uint8_t out[TP_ED25519_PUB_SIZE]);

/* Loads a PEM private key, which also yields its public half. Returns NULL and a
 * reason in err on failure. */
struct tp_key *tp_key_load_private(const char *path, char *err, size_t err_size);
/* The raw bytes of the Ed25519 public key in a PEM file (a .pub of teepy keygen),
 * read without OpenSSL. Returns 0, or -errno (-EINVAL: no such key) with a reason in err. */
int tp_key_read_public(const char *path, uint8_t out[TP_ED25519_PUB_SIZE], char *err,
		       size_t err_size);
void tp_key_free(struct tp_key *key);

/* A public key from its 32 raw bytes, or NULL. */
struct tp_key *tp_key_from_raw_public(const uint8_t raw[TP_ED25519_PUB_SIZE]);

void tp_key_public_raw(const struct tp_key *key, uint8_t out[TP_ED25519_PUB_SIZE]);

int tp_sign(const struct tp_key *key, const void *msg, size_t size,
	    uint8_t sig[TP_ED25519_SIG_SIZE]);
/* Returns 0 if sig is key's signature over msg, -EBADMSG if not. */
int tp_verify(const struct tp_key *key, const void *msg, size_t size,
	      const uint8_t sig[TP_ED25519_SIG_SIZE]);

#endif
