/* OpenSSL 3 EVP behind a small API, so the rest of teepy never sees OpenSSL types.
 * libcrypto is loaded on first use: an unsealed `teepy run` needs none of it, and
 * mapping and relocating libcrypto.so.3 took 3 ms of every start on the machines
 * here (an empty program: 2.2 ms, linked with libcrypto: 5.2 ms). */
#include "crypto.h"
#include "ossl.h"

#include "../common/io.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBCRYPTO "libcrypto.so.3"

struct tp_ossl tp_ossl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[256];

static void load_libcrypto(void)
{
	void *lib = dlopen(LIBCRYPTO, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(load_error, sizeof(load_error), "cannot load %s: %s (install libssl3)",
			 LIBCRYPTO, dlerror());
		return;
	}
#define RESOLVE(name)                                                                              \
	if (!(*(void **)&tp_ossl.name = dlsym(lib, #name))) {                                      \
		snprintf(load_error, sizeof(load_error), "%s has no %s: not OpenSSL 3", LIBCRYPTO, \
			 #name);                                                                   \
		return;                                                                            \
	}
	OSSL_FUNCTIONS(RESOLVE)
#undef RESOLVE
	/* no openssl.cnf: teepy's few algorithms are the default provider's, whatever
	 * the host configures; nor the legacy tables of every cipher and digest, which
	 * EVP's fetches do not use (together 0.7 ms of the first key's set-up) */
	if (tp_ossl.OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG |
					    OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
					    OPENSSL_INIT_NO_ADD_ALL_DIGESTS,
					NULL) != 1) {
		snprintf(load_error, sizeof(load_error), "OpenSSL would not start");
		return;
	}
	loaded = true;
}

int tp_crypto_load(char *err, size_t err_size)
{
	pthread_once(&load_once, load_libcrypto);
	if (loaded)
		return 0;
	if (err)
		snprintf(err, err_size, "%s", load_error);
	return -ENOSYS;
}

bool tp_ossl_ready(void)
{
	return tp_crypto_load(NULL, 0) == 0;
}

struct tp_sha256 {
	EVP_MD_CTX *md;
};

struct tp_key {
	EVP_PKEY *pkey;
	uint8_t pub[TP_ED25519_PUB_SIZE];
};

struct tp_sha256 *tp_sha256_new(void)
{
	struct tp_sha256 *ctx;

	if (!tp_ossl_ready())
		abort(); /* as in tp_sha256: the command loads libcrypto first */
	if (!(ctx = malloc(sizeof(*ctx))))
		return NULL;
	ctx->md = tp_ossl.EVP_MD_CTX_new();
	if (!ctx->md || tp_ossl.EVP_DigestInit_ex(ctx->md, tp_ossl.EVP_sha256(), NULL) != 1) {
		tp_ossl.EVP_MD_CTX_free(ctx->md);
		free(ctx);
		return NULL;
	}
	return ctx;
}

void tp_sha256_update(struct tp_sha256 *ctx, const void *data, size_t size)
{
	tp_ossl.EVP_DigestUpdate(ctx->md, data, size);
}

void tp_sha256_final(struct tp_sha256 *ctx, uint8_t out[TP_SHA256_SIZE])
{
	unsigned int len = TP_SHA256_SIZE;

	tp_ossl.EVP_DigestFinal_ex(ctx->md, out, &len);
	tp_ossl.EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

void tp_sha256(const void *data, size_t size, uint8_t out[TP_SHA256_SIZE])
{
	unsigned int len = TP_SHA256_SIZE;

	/* every command that hashes loads libcrypto first (tp_crypto_load) and stops if
	 * it cannot: a digest without it would be a programming error, never zeros */
	if (!tp_ossl_ready())
		abort();
	tp_ossl.EVP_Digest(data, size, out, &len, tp_ossl.EVP_sha256(), NULL);
}

void tp_hex(const uint8_t *bytes, size_t size, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < size; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * size] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tp_unhex(const char *hex, uint8_t *out, size_t size)
{
	if (strlen(hex) != 2 * size)
		return -EINVAL;
	for (size_t i = 0; i < size; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, int private)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		int r = -errno;
		close(fd);
		unlink(path);
		return r;
	}
	ok = private ? tp_ossl.PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) :
		       tp_ossl.PEM_write_PUBKEY(f, pkey);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

int tp_key_generate(const char *path, const char *pub_path)
{
	EVP_PKEY *pkey = tp_ossl_ready() ? tp_ossl.EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") : NULL;
	int r;

	if (!pkey)
		return -EIO;
	r = write_pem(path, 0600, pkey, 1);
	if (r == 0) {
		r = write_pem(pub_path, 0644, pkey, 0);
		if (r < 0)
			unlink(path);
	}
	tp_ossl.EVP_PKEY_free(pkey);
	return r;
}

/* Why a file holds no key of the kind wanted, in words for the one who gave it:
 * never OpenSSL's own error codes. */
static void not_a_key(const char *head, int private, char *err, size_t err_size)
{
	bool other_half = strstr(head, private ? "PUBLIC KEY-----" : "PRIVATE KEY-----") != NULL;

	if (private)
		snprintf(err, err_size, "%s",
			 other_half ? "a public key; signing needs the private key (the .key from "
				      "teepy keygen)" :
				      "not an Ed25519 private key (a .key from teepy keygen)");
	else
		snprintf(err, err_size, "%s",
			 other_half ? "a private key, not a public one (give the .pub from teepy "
				      "keygen, and keep the .key to yourself)" :
				      "not an Ed25519 public key (a .pub from teepy keygen)");
}

static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The DER of an Ed25519 SubjectPublicKeyInfo is this prefix and the 32 key bytes
 * (RFC 8410); PEM_write_PUBKEY writes exactly that, base64 between the lines. */
static const uint8_t ed25519_spki_prefix[12] = { 0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
						 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00 };

int tp_ed25519_public_from_pem(const char *text, size_t size, uint8_t out[TP_ED25519_PUB_SIZE])
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----",
			  end[] = "-----END PUBLIC KEY-----";
	const char *p = memmem(text, size, begin, sizeof(begin) - 1), *stop;
	uint8_t der[sizeof(ed25519_spki_prefix) + TP_ED25519_PUB_SIZE];
	size_t n = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!p)
		return -EINVAL;
	p += sizeof(begin) - 1;
	stop = memmem(p, size - (size_t)(p - text), end, sizeof(end) - 1);
	if (!stop)
		return -EINVAL;
	for (; p < stop; p++) {
		unsigned char c = (unsigned char)*p;
		int v = base64_value(c);
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (v < 0 || pad)
			return -EINVAL; /* not base64, or data after the padding */
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == sizeof(der))
				return -EINVAL;
			der[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* 44 bytes are 59 characters and one of padding: 2 bits left over, both zero */
	if (n != sizeof(der) || pad != 1 || bits != 2 || acc != 0 ||
	    memcmp(der, ed25519_spki_prefix, sizeof(ed25519_spki_prefix)) != 0)
		return -EINVAL;
	memcpy(out, der + sizeof(ed25519_spki_prefix), TP_ED25519_PUB_SIZE);
	return 0;
}

/* A key file, whole and NUL-terminated (a key is a few hundred bytes; more than
 * 64 KiB is no key). Returns 0, or -errno with the reason in err. */
static int read_key_file(const char *path, char **text, size_t *len, char *err, size_t err_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0) {
		r = -errno;
		snprintf(err, err_size, "%s", strerror(-r));
		return r;
	}
	r = tp_read_all(fd, 64 << 10, text, len);
	close(fd);
	if (r < 0)
		snprintf(err, err_size, "%s",
			 r == -EFBIG ? "larger than any key file" : strerror(-r));
	return r;
}

struct tp_key *tp_key_load_private(const char *path, char *err, size_t err_size)
{
	char *text = NULL;
	size_t text_len, len = TP_ED25519_PUB_SIZE;
	struct tp_key *key;
	EVP_PKEY *pkey;
	FILE *f;

	if (tp_crypto_load(err, err_size) < 0 ||
	    read_key_file(path, &text, &text_len, err, err_size) < 0)
		return NULL;
	/* OpenSSL reads the text we hold, not the file again */
	f = fmemopen(text, text_len, "r");
	pkey = f ? tp_ossl.PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!pkey || tp_ossl.EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
		not_a_key(text, 1, err, err_size);
		tp_ossl.ERR_clear_error();
		tp_ossl.EVP_PKEY_free(pkey);
		free(text);
		return NULL;
	}
	free(text);
	key = calloc(1, sizeof(*key));
	if (!key || tp_ossl.EVP_PKEY_get_raw_public_key(pkey, key->pub, &len) != 1) {
		snprintf(err, err_size, "cannot read the public key");
		tp_ossl.EVP_PKEY_free(pkey);
		free(key);
		return NULL;
	}
	key->pkey = pkey;
	return key;
}

/* Read without OpenSSL (its decoders took 0.8 ms to start): a trusted key is only
 * compared with a bundle's, whose own key (tp_key_from_raw_public) verifies. */
int tp_key_read_public(const char *path, uint8_t out[TP_ED25519_PUB_SIZE], char *err,
		       size_t err_size)
{
	char *text = NULL;
	size_t text_len;
	int r;

	if ((r = read_key_file(path, &text, &text_len, err, err_size)) < 0)
		return r;
	r = tp_ed25519_public_from_pem(text, text_len, out);
	if (r < 0)
		not_a_key(text, 0, err, err_size);
	free(text);
	return r;
}

struct tp_key *tp_key_from_raw_public(const uint8_t raw[TP_ED25519_PUB_SIZE])
{
	struct tp_key *key = tp_ossl_ready() ? calloc(1, sizeof(*key)) : NULL;

	if (!key)
		return NULL;
	key->pkey =
	    tp_ossl.EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, TP_ED25519_PUB_SIZE);
	if (!key->pkey) {
		tp_ossl.ERR_clear_error();
		free(key);
		return NULL;
	}
	memcpy(key->pub, raw, TP_ED25519_PUB_SIZE);
	return key;
}

void tp_key_free(struct tp_key *key)
{
	if (!key)
		return;
	if (key->pkey)
		tp_ossl.EVP_PKEY_free(key->pkey);
	free(key);
}

void tp_key_public_raw(const struct tp_key *key, uint8_t out[TP_ED25519_PUB_SIZE])
{
	memcpy(out, key->pub, TP_ED25519_PUB_SIZE);
}

int tp_sign(const struct tp_key *key, const void *msg, size_t size,
	    uint8_t sig[TP_ED25519_SIG_SIZE])
{
	EVP_MD_CTX *md = tp_ossl.EVP_MD_CTX_new();
	size_t len = TP_ED25519_SIG_SIZE;
	int r = -EIO;

	/* PureEdDSA: no digest, one-shot */
	if (md && tp_ossl.EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
	    tp_ossl.EVP_DigestSign(md, sig, &len, msg, size) == 1 && len == TP_ED25519_SIG_SIZE)
		r = 0;
	tp_ossl.EVP_MD_CTX_free(md);
	return r;
}

int tp_verify(const struct tp_key *key, const void *msg, size_t size,
	      const uint8_t sig[TP_ED25519_SIG_SIZE])
{
	EVP_MD_CTX *md = tp_ossl.EVP_MD_CTX_new();
	int r = -EBADMSG;

	if (md && tp_ossl.EVP_DigestVerifyInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
	    tp_ossl.EVP_DigestVerify(md, sig, TP_ED25519_SIG_SIZE, msg, size) == 1)
		r = 0;
	tp_ossl.ERR_clear_error();
	tp_ossl.EVP_MD_CTX_free(md);
	return r;
}

/* ---- AES-256-GCM ---- */

struct tp_gcm {
	EVP_CIPHER_CTX *enc, *dec; /* the key set in each, made on first use */
	uint8_t key[TP_AES_KEY_SIZE];
};

struct tp_gcm *tp_gcm_new(const uint8_t key[TP_AES_KEY_SIZE])
{
	struct tp_gcm *g;

	if (!tp_ossl_ready())
		abort(); /* as in tp_sha256: the command loads libcrypto first */
	if (!(g = tp_secret_alloc(sizeof(*g))))
		return NULL;
	memcpy(g->key, key, TP_AES_KEY_SIZE);
	return g;
}

void tp_gcm_free(struct tp_gcm *g)
{
	if (!g)
		return;
	tp_ossl.EVP_CIPHER_CTX_free(g->enc); /* OpenSSL wipes the schedule it holds */
	tp_ossl.EVP_CIPHER_CTX_free(g->dec);
	tp_secret_free(g, sizeof(*g));
}

/* The context for one direction with the key in it, the chunk's nonce set. */
static EVP_CIPHER_CTX *gcm_start(struct tp_gcm *g, bool seal, const uint8_t *nonce)
{
	EVP_CIPHER_CTX **ctx = seal ? &g->enc : &g->dec;
	__typeof__(tp_ossl.EVP_EncryptInit_ex) init =
	    seal ? tp_ossl.EVP_EncryptInit_ex : tp_ossl.EVP_DecryptInit_ex;

	if (!*ctx) {
		if (!(*ctx = tp_ossl.EVP_CIPHER_CTX_new()))
			return NULL;
		if (init(*ctx, tp_ossl.EVP_aes_256_gcm(), NULL, g->key, NULL) != 1) {
			tp_ossl.EVP_CIPHER_CTX_free(*ctx);
			*ctx = NULL;
			return NULL;
		}
	}
	/* the default IV length is 12 bytes, the nonce's: only the IV changes */
	return init(*ctx, NULL, NULL, NULL, nonce) == 1 ? *ctx : NULL;
}

/* EVP takes lengths as int: a chunk or its associated data is far below INT_MAX. */
static bool fits_int(size_t size)
{
	return size <= (size_t)INT32_MAX;
}

int tp_gcm_seal(struct tp_gcm *g, const uint8_t nonce[TP_GCM_NONCE_SIZE], const void *aad,
		size_t aad_size, const void *in, size_t size, void *out,
		uint8_t tag[TP_GCM_TAG_SIZE])
{
	EVP_CIPHER_CTX *ctx = gcm_start(g, true, nonce);
	uint8_t none[16]; /* GCM's final step writes nothing */
	int len;

	if (!ctx || !fits_int(aad_size) || !fits_int(size)) {
		tp_ossl.ERR_clear_error();
		return -EINVAL;
	}
	if ((aad_size && tp_ossl.EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_size) != 1) ||
	    (size && tp_ossl.EVP_EncryptUpdate(ctx, out, &len, in, (int)size) != 1) ||
	    tp_ossl.EVP_EncryptFinal_ex(ctx, none, &len) != 1 ||
	    tp_ossl.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TP_GCM_TAG_SIZE, tag) != 1) {
		tp_ossl.ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

int tp_gcm_open(struct tp_gcm *g, const uint8_t nonce[TP_GCM_NONCE_SIZE], const void *aad,
		size_t aad_size, const void *in, size_t size, const uint8_t tag[TP_GCM_TAG_SIZE],
		void *out)
{
	EVP_CIPHER_CTX *ctx = gcm_start(g, false, nonce);
	uint8_t expected[TP_GCM_TAG_SIZE], none[16];
	int len, ok;

	if (!ctx || !fits_int(aad_size) || !fits_int(size)) {
		tp_ossl.ERR_clear_error();
		return -EINVAL;
	}
	memcpy(expected, tag, sizeof(expected));
	if ((aad_size && tp_ossl.EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_size) != 1) ||
	    (size && tp_ossl.EVP_DecryptUpdate(ctx, out, &len, in, (int)size) != 1) ||
	    tp_ossl.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TP_GCM_TAG_SIZE, expected) !=
		1) {
		tp_ossl.ERR_clear_error();
		return -EINVAL;
	}
	ok = tp_ossl.EVP_DecryptFinal_ex(ctx, none, &len) == 1;
	tp_ossl.ERR_clear_error();
	if (!ok) {
		/* what was written is not to be used: it is not left behind either */
		explicit_bzero(out, size);
		return -EBADMSG;
	}
	return 0;
}

/* ---- HMAC-SHA-256 and HKDF (RFC 2104, RFC 5869), on the SHA-256 above ---- */

#define SHA256_BLOCK 64

struct tp_hmac {
	struct tp_sha256 *inner;
	uint8_t outer_key[SHA256_BLOCK];
};

struct tp_hmac *tp_hmac_new(const void *key, size_t key_size)
{
	uint8_t block[SHA256_BLOCK] = { 0 };
	struct tp_hmac *h = tp_secret_alloc(sizeof(*h));

	if (!h)
		return NULL;
	if (key_size > SHA256_BLOCK)
		tp_sha256(key, key_size, block);
	else if (key_size)
		memcpy(block, key, key_size);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		h->outer_key[i] = block[i] ^ 0x5c;
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		block[i] ^= 0x36;
	h->inner = tp_sha256_new();
	if (h->inner)
		tp_sha256_update(h->inner, block, sizeof(block));
	explicit_bzero(block, sizeof(block));
	if (!h->inner) {
		tp_secret_free(h, sizeof(*h));
		return NULL;
	}
	return h;
}

void tp_hmac_update(struct tp_hmac *h, const void *data, size_t size)
{
	tp_sha256_update(h->inner, data, size);
}

void tp_hmac_final(struct tp_hmac *h, uint8_t out[TP_SHA256_SIZE])
{
	uint8_t inner[TP_SHA256_SIZE];
	struct tp_sha256 *outer = tp_sha256_new();

	tp_sha256_final(h->inner, inner);
	if (!outer)
		abort(); /* a few bytes of OpenSSL state: nothing else could go on either */
	tp_sha256_update(outer, h->outer_key, sizeof(h->outer_key));
	tp_sha256_update(outer, inner, sizeof(inner));
	tp_sha256_final(outer, out);
	explicit_bzero(inner, sizeof(inner));
	tp_secret_free(h, sizeof(*h));
}

int tp_hmac_sha256(const void *key, size_t key_size, const void *data, size_t size,
		   uint8_t out[TP_SHA256_SIZE])
{
	struct tp_hmac *h = tp_hmac_new(key, key_size);

	if (!h)
		return -ENOMEM;
	tp_hmac_update(h, data, size);
	tp_hmac_final(h, out);
	return 0;
}

int tp_hkdf_sha256(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
		   const void *info, size_t info_size, uint8_t *out, size_t out_size)
{
	uint8_t prk[TP_SHA256_SIZE], t[TP_SHA256_SIZE];
	size_t done = 0;
	int r;

	if (out_size > 255 * TP_SHA256_SIZE)
		return -EINVAL;
	/* extract: no salt is a block of zeros (RFC 5869 2.2) */
	if ((r = tp_hmac_sha256(salt_size ? salt : t, salt_size ? salt_size : 0, ikm, ikm_size,
				prk)) < 0)
		return r;
	for (uint8_t i = 1; done < out_size; i++) {
		struct tp_hmac *h = tp_hmac_new(prk, sizeof(prk));
		if (!h) {
			r = -ENOMEM;
			break;
		}
		if (i > 1)
			tp_hmac_update(h, t, sizeof(t));
		tp_hmac_update(h, info, info_size);
		tp_hmac_update(h, &i, 1);
		tp_hmac_final(h, t);
		size_t n = out_size - done < sizeof(t) ? out_size - done : sizeof(t);
		memcpy(out + done, t, n);
		done += n;
	}
	explicit_bzero(prk, sizeof(prk));
	explicit_bzero(t, sizeof(t));
	if (r < 0)
		explicit_bzero(out, out_size);
	return r;
}

int tp_symkey_id(const uint8_t key[TP_SYMKEY_SIZE], char out[TP_SYMKEY_ID_SIZE])
{
	static const char tag[] = "teepy key id v1";
	uint8_t mac[TP_SHA256_SIZE];
	int r = tp_hmac_sha256(key, TP_SYMKEY_SIZE, tag, sizeof(tag) - 1, mac);

	if (r < 0)
		return r;
	memcpy(out, "local:", 6);
	tp_hex(mac, 16, out + 6);
	return 0;
}
