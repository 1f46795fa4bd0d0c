/* OpenSSL 3 EVP behind a small API, so the rest of teepy never sees OpenSSL types. */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tp_sha256 {
	EVP_MD_CTX *md;
};

struct tp_key {
	EVP_PKEY *pkey;
	uint8_t pub[TP_ED25519_PUB_SIZE];
};

struct tp_sha256 *tp_sha256_new(void)
{
	struct tp_sha256 *ctx = malloc(sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->md = EVP_MD_CTX_new();
	if (!ctx->md || EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx->md);
		free(ctx);
		return NULL;
	}
	return ctx;
}

void tp_sha256_update(struct tp_sha256 *ctx, const void *data, size_t size)
{
	EVP_DigestUpdate(ctx->md, data, size);
}

void tp_sha256_final(struct tp_sha256 *ctx, uint8_t out[TP_SHA256_SIZE])
{
	unsigned int len = TP_SHA256_SIZE;

	EVP_DigestFinal_ex(ctx->md, out, &len);
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

void tp_sha256(const void *data, size_t size, uint8_t out[TP_SHA256_SIZE])
{
	unsigned int len = TP_SHA256_SIZE;

	EVP_Digest(data, size, out, &len, EVP_sha256(), NULL);
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
	ok = private ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_PUBKEY(f, pkey);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

int tp_key_generate(const char *path, const char *pub_path)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int r;

	if (!pkey)
		return -EIO;
	r = write_pem(path, 0600, pkey, 1);
	if (r == 0) {
		r = write_pem(pub_path, 0644, pkey, 0);
		if (r < 0)
			unlink(path);
	}
	EVP_PKEY_free(pkey);
	return r;
}

/* Why path holds no key of the kind wanted, in words for the one who gave it: never
 * OpenSSL's own error codes. */
static void not_a_key(FILE *f, int private, char *err, size_t err_size)
{
	char head[4096];
	size_t n;
	bool other_half;

	rewind(f);
	n = fread(head, 1, sizeof(head) - 1, f);
	head[n] = '\0';
	other_half = strstr(head, private ? "PUBLIC KEY-----" : "PRIVATE KEY-----") != NULL;
	if (private)
		snprintf(err, err_size, "%s",
			 other_half ? "a public key; signing needs the private key (the .key from "
				      "teepy keygen)"
				    : "not an Ed25519 private key (a .key from teepy keygen)");
	else
		snprintf(err, err_size, "%s",
			 other_half ? "a private key, not a public one (give the .pub from teepy "
				      "keygen, and keep the .key to yourself)"
				    : "not an Ed25519 public key (a .pub from teepy keygen)");
	ERR_clear_error();
}

static struct tp_key *load(const char *path, int private, char *err, size_t err_size)
{
	FILE *f = fopen(path, "re");
	struct tp_key *key;
	size_t len = TP_ED25519_PUB_SIZE;
	EVP_PKEY *pkey;

	if (!f) {
		snprintf(err, err_size, "%s", strerror(errno));
		return NULL;
	}
	pkey = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
		       : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
		not_a_key(f, private, err, err_size);
		fclose(f);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	fclose(f);
	key = calloc(1, sizeof(*key));
	if (!key || EVP_PKEY_get_raw_public_key(pkey, key->pub, &len) != 1) {
		snprintf(err, err_size, "cannot read the public key");
		EVP_PKEY_free(pkey);
		free(key);
		return NULL;
	}
	key->pkey = pkey;
	return key;
}

struct tp_key *tp_key_load_private(const char *path, char *err, size_t err_size)
{
	return load(path, 1, err, err_size);
}

struct tp_key *tp_key_load_public(const char *path, char *err, size_t err_size)
{
	return load(path, 0, err, err_size);
}

struct tp_key *tp_key_from_raw_public(const uint8_t raw[TP_ED25519_PUB_SIZE])
{
	struct tp_key *key = calloc(1, sizeof(*key));

	if (!key)
		return NULL;
	key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, TP_ED25519_PUB_SIZE);
	if (!key->pkey) {
		ERR_clear_error();
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
	EVP_PKEY_free(key->pkey);
	free(key);
}

void tp_key_public_raw(const struct tp_key *key, uint8_t out[TP_ED25519_PUB_SIZE])
{
	memcpy(out, key->pub, TP_ED25519_PUB_SIZE);
}

int tp_sign(const struct tp_key *key, const void *msg, size_t size,
	    uint8_t sig[TP_ED25519_SIG_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t len = TP_ED25519_SIG_SIZE;
	int r = -EIO;

	/* PureEdDSA: no digest, one-shot */
	if (md && EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
	    EVP_DigestSign(md, sig, &len, msg, size) == 1 && len == TP_ED25519_SIG_SIZE)
		r = 0;
	EVP_MD_CTX_free(md);
	return r;
}

int tp_verify(const struct tp_key *key, const void *msg, size_t size,
	      const uint8_t sig[TP_ED25519_SIG_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r = -EBADMSG;

	if (md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
	    EVP_DigestVerify(md, sig, TP_ED25519_SIG_SIZE, msg, size) == 1)
		r = 0;
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	return r;
}
