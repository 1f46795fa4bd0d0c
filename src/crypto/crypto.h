/* teepy's cryptography: SHA-256, HMAC and HKDF, AES-256-GCM and Ed25519 through
 * OpenSSL 3 EVP; secrets in locked memory; random bytes; symmetric key files. */
#ifndef TEEPY_CRYPTO_CRYPTO_H
#define TEEPY_CRYPTO_CRYPTO_H

#include <stdbool.h>
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

/* Whether a and b hold the same size bytes, in a time that does not depend on
 * where they differ (a MAC or key check compared byte by byte would say how much of
 * a guess was right). */
bool tp_same_bytes(const void *a, const void *b, size_t size);

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

/* ---- HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869) ---- */

struct tp_hmac; /* opaque streaming context, in locked memory */

/* NULL when out of memory. */
struct tp_hmac *tp_hmac_new(const void *key, size_t key_size);
void tp_hmac_update(struct tp_hmac *h, const void *data, size_t size);
void tp_hmac_final(struct tp_hmac *h, uint8_t out[TP_SHA256_SIZE]); /* also frees */
/* Returns 0 or -ENOMEM. */
int tp_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		   uint8_t out[TP_SHA256_SIZE]);
/* out_size bytes (at most 8160) derived from ikm; salt may be empty. Returns 0,
 * -EINVAL or -ENOMEM (out wiped). */
int tp_hkdf_sha256(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
		   const void *info, size_t info_size, uint8_t *out, size_t out_size);

/* ---- AES-256-GCM, one message (a chunk) at a time ---- */

#define TP_AES_KEY_SIZE	  32
#define TP_GCM_NONCE_SIZE 12
#define TP_GCM_TAG_SIZE	  16

struct tp_gcm; /* a key, ready for many messages; in locked memory */

/* The command loads libcrypto first (tp_crypto_load). NULL when out of memory. */
struct tp_gcm *tp_gcm_new(const uint8_t key[TP_AES_KEY_SIZE]);
void tp_gcm_free(struct tp_gcm *g); /* wipes the key */
/* size bytes of in encrypted into out (the same size; in == out allowed), aad
 * authenticated with them. A nonce must never be used twice under one key.
 * Returns 0 or -EINVAL. */
int tp_gcm_seal(struct tp_gcm *g, const uint8_t nonce[TP_GCM_NONCE_SIZE], const void *aad,
		size_t aad_size, const void *in, size_t size, void *out,
		uint8_t tag[TP_GCM_TAG_SIZE]);
/* The reverse. Returns 0, -EBADMSG when the tag does not authenticate the bytes
 * (out is then wiped), or -EINVAL. */
int tp_gcm_open(struct tp_gcm *g, const uint8_t nonce[TP_GCM_NONCE_SIZE], const void *aad,
		size_t aad_size, const void *in, size_t size, const uint8_t tag[TP_GCM_TAG_SIZE],
		void *out);

/* ---- secrets (secret.c) ---- */

/* Zeroed memory that is locked (where RLIMIT_MEMLOCK allows), left out of core
 * dumps, and wiped by tp_secret_free (given the same size). NULL when out of memory. */
void *tp_secret_alloc(size_t size);
void tp_secret_free(void *p, size_t size);
/* A block of malloc's wiped to its end, then freed (a free function for a library's
 * allocations that may have held secrets: jansson's). NULL is fine. */
void tp_free_wiped(void *p);
/* No core dump of this process, whatever it holds: RLIMIT_CORE 0, and with
 * undumpable PR_SET_DUMPABLE 0 too (which also keeps processes of the same uid out
 * of /proc/PID/mem; a run cannot have it before its sandbox is made, whose
 * unprivileged id maps it would break). Returns 0 or -errno. */
int tp_secret_no_core(bool undumpable);
/* size bytes from the kernel's CSPRNG (getrandom). Returns 0 or -errno. */
int tp_random(void *buf, size_t size);

/* ---- symmetric key files (teepy keygen --symmetric) ---- */

#define TP_SYMKEY_SIZE 32

/* Writes a new random 256-bit key to path (mode 0600, never overwriting: -EEXIST).
 * Returns 0 or -errno (nothing left at path). */
int tp_symkey_generate(const char *path);
/* The key in a key file's text. Pure. Returns 0 or -EINVAL (out wiped). */
int tp_symkey_parse(const char *text, size_t size, uint8_t out[TP_SYMKEY_SIZE]);
/* Whether text starts (after blank lines) as a symmetric key file does. Pure. */
bool tp_symkey_looks_like(const char *text, size_t size);
/* A key's public name, "local:" and 32 hex digits of a keyed hash: which key
 * sealed a bundle (its manifest's encryption.key_id), without saying anything of
 * the key. Returns 0 or -ENOMEM. */
#define TP_SYMKEY_ID_SIZE (6 + 32 + 1)
int tp_symkey_id(const uint8_t key[TP_SYMKEY_SIZE], char out[TP_SYMKEY_ID_SIZE]);

/* Reads path's key into out (the caller's locked memory). Refuses a file others
 * may read. Returns 0, or -errno with the reason in err. */
int tp_symkey_read(const char *path, uint8_t out[TP_SYMKEY_SIZE], char *err, size_t err_size);

/* ---- SHA-512, X25519 and sealing to a public key (x25519.c) ---- */

#define TP_SHA512_SIZE	 64
#define TP_X25519_SIZE	 32
#define TP_SEAL_OVERHEAD (TP_X25519_SIZE + TP_GCM_TAG_SIZE) /* ephemeral key, tag */

void tp_sha512(const void *data, size_t size, uint8_t out[TP_SHA512_SIZE]);

struct tp_x25519; /* an X25519 key pair, in locked memory */

/* A new key pair (the command loads libcrypto first). NULL when OpenSSL or memory
 * fails. */
struct tp_x25519 *tp_x25519_generate(void);
void tp_x25519_public(const struct tp_x25519 *k, uint8_t out[TP_X25519_SIZE]);
void tp_x25519_free(struct tp_x25519 *k); /* wipes the private key */
/* A key pair as bytes (private, then public), to hand to another process of ours
 * (over a socket, into locked memory), and back. Import returns NULL when out of
 * memory. */
#define TP_X25519_PAIR_SIZE (2 * TP_X25519_SIZE)
void tp_x25519_export(const struct tp_x25519 *k, uint8_t out[TP_X25519_PAIR_SIZE]);
struct tp_x25519 *tp_x25519_import(const uint8_t in[TP_X25519_PAIR_SIZE]);

/* Seals size bytes of in to the holder of recipient's private key: a new ephemeral
 * key pair, X25519 with recipient, HKDF-SHA-256 (salt: the ephemeral and the
 * recipient public keys; info "teepy seal v1") to an AES-256-GCM key and nonce used
 * once, aad authenticated too. out (size + TP_SEAL_OVERHEAD bytes) is
 * ephemeral public key || ciphertext || tag. Returns 0, -EINVAL (recipient is a key
 * of small order) or -ENOMEM. */
int tp_seal(const uint8_t recipient[TP_X25519_SIZE], const void *aad, size_t aad_size,
	    const void *in, size_t size, uint8_t *out);
/* The reverse by the recipient's key pair: out gets in_size - TP_SEAL_OVERHEAD bytes.
 * Returns 0, -EBADMSG when the bytes, aad or key are not those sealed (out wiped),
 * -EINVAL when in is shorter than the overhead, or -ENOMEM. */
int tp_seal_open(const struct tp_x25519 *recipient, const void *aad, size_t aad_size,
		 const uint8_t *in, size_t in_size, void *out);

/* ---- X.509 certificates and ECDSA, for hardware evidence (x509.c) ---- */

#define TP_P256_PUB_SIZE 64 /* X || Y, big-endian */

struct tp_cert; /* an X.509 certificate */

/* One certificate in DER, all of der and nothing after it. NULL when it is none
 * (or libcrypto is not loaded). */
struct tp_cert *tp_cert_from_der(const void *der, size_t size);
/* Every certificate of PEM text (text need not be NUL-terminated), in order, into
 * out (the caller frees each): the blocks labelled CERTIFICATE or X509 CERTIFICATE,
 * which are those OpenSSL reads as one; blocks of other labels are ignored. Returns
 * how many, or -EINVAL when such a block does not parse, -E2BIG when there are more
 * than max. */
int tp_certs_from_pem(const char *text, size_t size, struct tp_cert **out, size_t max);
void tp_cert_free(struct tp_cert *cert);
/* The certificate's DER, malloc'd into *der. Returns 0, -EINVAL or -ENOMEM. */
int tp_cert_der(const struct tp_cert *cert, uint8_t **der, size_t *size);
/* size bytes of DER as one PEM block labelled CERTIFICATE, as OpenSSL writes it
 * (base64 in lines of 64), malloc'd and NUL-terminated; the bytes are not parsed.
 * Pure. NULL when out of memory. */
char *tp_pem_certificate(const void *der, size_t size);

/* A new ECDSA P-256 key (PEM, PKCS #8, mode 0600) at key_path and a self-signed
 * certificate for it (PEM, 0644, ten years, subject CN=cn) at cert_path, for a TLS
 * server whose clients pin its key; neither file may exist. Returns 0 or -errno
 * (nothing left behind). */
int tp_tls_key_generate(const char *key_path, const char *cert_path, const char *cn);

/* SHA-256 of the certificate's SubjectPublicKeyInfo (DER): what a pin names,
 * whichever certificate carries the key. Returns 0 or -EINVAL. */
int tp_cert_key_sha256(const struct tp_cert *cert, uint8_t out[TP_SHA256_SIZE]);
/* The subject's common name, cut to out_size; "" when it has none. Safe to print:
 * every byte below 0x20, DEL and every non-ASCII byte is shown as '?'. */
void tp_cert_subject_cn(const struct tp_cert *cert, char *out, size_t out_size);
/* The value (the extnValue's content) of the extension OID ("1.3.6.1.4.1.3704.1.4"),
 * borrowed from the certificate. Returns 0 or -ENOENT. */
int tp_cert_extension(const struct tp_cert *cert, const char *oid, const uint8_t **value,
		      size_t *size);

/* How a chain is checked against certificate times. */
struct tp_cert_time {
	bool unchecked; /* no time checks at all (X509_V_FLAG_NO_CHECK_TIME) */
	int64_t at;	/* seconds since the epoch to check at; 0: now */
};

/* Whether leaf chains up through others (any order; those not needed are ignored)
 * to anchor, the only certificate trusted, whose self-signature is checked too
 * (OpenSSL's X509_verify_cert; no purpose, policy or revocation checks). Returns 0,
 * or -EBADMSG with OpenSSL's reason and the certificate it concerns in err. */
int tp_cert_chain_verify(const struct tp_cert *leaf, struct tp_cert *const *others, size_t count,
			 const struct tp_cert *anchor, const struct tp_cert_time *when, char *err,
			 size_t err_size);

/* An ECDSA signature, r and s big-endian of size bytes each, over msg with SHA-256
 * (bits 256) or SHA-384 (bits 384), by the EC key of that many bits in cert.
 * Returns 0, -EBADMSG when it does not verify, -EKEYREJECTED when the certificate's
 * key is not such a key. */
int tp_cert_ecdsa_verify(const struct tp_cert *cert, unsigned bits, const void *msg,
			 size_t msg_size, const uint8_t *r, const uint8_t *s, size_t size);
/* The same by a raw P-256 public key (X || Y) with SHA-256, r || s of 32 bytes
 * each. Returns 0, -EBADMSG, or -EKEYREJECTED when the key is no point of P-256. */
int tp_p256_verify(const uint8_t pub[TP_P256_PUB_SIZE], const void *msg, size_t msg_size,
		   const uint8_t sig[64]);

#endif
