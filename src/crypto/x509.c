/* X.509 certificates, chains and ECDSA signatures through OpenSSL 3, for the
 * evidence of confidential VMs (attest/): the vendors' certificate chains and the
 * signatures of quotes and reports. OpenSSL's types stay in here. */
#include "crypto.h"
#include "ossl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A struct tp_cert is OpenSSL's X509 itself, under teepy's name. */
static X509 *x509(const struct tp_cert *cert)
{
	return (X509 *)cert;
}

struct tp_cert *tp_cert_from_der(const void *der, size_t size)
{
	const unsigned char *p = der;
	X509 *x;

	if (!tp_ossl_ready() || size > INT_MAX)
		return NULL;
	x = tp_ossl.d2i_X509(NULL, &p, (long)size);
	if (x && p != (const unsigned char *)der + size) {
		tp_ossl.X509_free(x); /* bytes after the certificate: not one certificate */
		x = NULL;
	}
	tp_ossl.ERR_clear_error();
	return (struct tp_cert *)x;
}

/* How many PEM blocks of text PEM_read_bio_X509 takes for a certificate: its label
 * and the old one (OpenSSL's check_pem() accepts both for an X509). */
static size_t pem_cert_blocks(const char *text, size_t size)
{
	static const char *const labels[] = { "-----BEGIN CERTIFICATE-----",
					      "-----BEGIN X509 CERTIFICATE-----" };
	size_t blocks = 0;

	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		size_t len = strlen(labels[i]);
		for (const char *p = text;
		     (p = memmem(p, size - (size_t)(p - text), labels[i], len)); p += len)
			blocks++;
	}
	return blocks;
}

int tp_certs_from_pem(const char *text, size_t size, struct tp_cert **out, size_t max)
{
	size_t blocks, count = 0;
	bool extra = false;
	BIO *bio;
	X509 *x;

	if (!tp_ossl_ready() || size > INT_MAX)
		return -EINVAL;
	/* OpenSSL's reader skips what it cannot parse: every block it would take must
	 * come out, and nothing more */
	if ((blocks = pem_cert_blocks(text, size)) > max)
		return -E2BIG;
	if (!(bio = tp_ossl.BIO_new_mem_buf(text, (int)size)))
		return -ENOMEM;
	while (!extra && (x = tp_ossl.PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (count == blocks) {
			tp_ossl.X509_free(x);
			extra = true;
		} else {
			out[count++] = (struct tp_cert *)x;
		}
	}
	tp_ossl.BIO_free(bio);
	tp_ossl.ERR_clear_error();
	if (extra || count != blocks) {
		while (count)
			tp_cert_free(out[--count]);
		return -EINVAL;
	}
	return (int)count;
}

void tp_cert_free(struct tp_cert *cert)
{
	if (cert)
		tp_ossl.X509_free(x509(cert));
}

int tp_cert_der(const struct tp_cert *cert, uint8_t **der, size_t *size)
{
	int n = tp_ossl.i2d_X509(x509(cert), NULL);
	unsigned char *p;

	*der = NULL;
	if (n <= 0)
		return -EINVAL;
	if (!(*der = malloc((size_t)n)))
		return -ENOMEM;
	p = *der;
	if (tp_ossl.i2d_X509(x509(cert), &p) != n) {
		free(*der);
		*der = NULL;
		return -EINVAL;
	}
	*size = (size_t)n;
	return 0;
}

/* PEM as OpenSSL writes it: the label's lines around base64 in lines of 64. */
char *tp_pem_certificate(const void *der, size_t size)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----\n",
			  end[] = "-----END CERTIFICATE-----\n",
			  digits[] =
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *b = der;
	size_t chars = (size + 2) / 3 * 4, o = sizeof(begin) - 1, col = 0;
	char *out;

	if (size > (SIZE_MAX - 128) / 2 ||
	    !(out = malloc(sizeof(begin) + chars + chars / 64 + 1 + sizeof(end))))
		return NULL;
	memcpy(out, begin, sizeof(begin) - 1);
	for (size_t i = 0; i < size; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < size ? (uint32_t)b[i + 1] << 8 : 0) |
			     (i + 2 < size ? b[i + 2] : 0);
		char quad[4] = { digits[v >> 18], digits[(v >> 12) & 63],
				 i + 1 < size ? digits[(v >> 6) & 63] : '=',
				 i + 2 < size ? digits[v & 63] : '=' };
		memcpy(out + o, quad, 4);
		o += 4;
		if ((col += 4) == 64) {
			out[o++] = '\n';
			col = 0;
		}
	}
	if (col)
		out[o++] = '\n';
	memcpy(out + o, end, sizeof(end));
	return out;
}

int tp_cert_key_sha256(const struct tp_cert *cert, uint8_t out[TP_SHA256_SIZE])
{
	X509_PUBKEY *key = tp_ossl.X509_get_X509_PUBKEY(x509(cert));
	int size = key ? tp_ossl.i2d_X509_PUBKEY(key, NULL) : -1;
	unsigned char *der, *p;

	if (size <= 0 || !(der = malloc((size_t)size)))
		return -EINVAL;
	p = der;
	if (tp_ossl.i2d_X509_PUBKEY(key, &p) != size) {
		free(der);
		return -EINVAL;
	}
	tp_sha256(der, (size_t)size, out);
	free(der);
	return 0;
}

void tp_cert_subject_cn(const struct tp_cert *cert, char *out, size_t out_size)
{
	X509_NAME *name = tp_ossl.X509_get_subject_name(x509(cert));

	if (!out_size)
		return;
	out[0] = '\0';
	if (!name || out_size > INT_MAX ||
	    tp_ossl.X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)out_size) < 0)
		out[0] = '\0';
	tp_ossl.ERR_clear_error();
	/* the name comes from evidence anyone can make, and is printed: no byte of it
	 * may drive a terminal or forge a line, nor be half a UTF-8 sequence in JSON */
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

int tp_cert_extension(const struct tp_cert *cert, const char *oid, const uint8_t **value,
		      size_t *size)
{
	ASN1_OBJECT *obj = tp_ossl.OBJ_txt2obj(oid, 1);
	int at = obj ? tp_ossl.X509_get_ext_by_OBJ(x509(cert), obj, -1) : -1;
	X509_EXTENSION *ext = at >= 0 ? tp_ossl.X509_get_ext(x509(cert), at) : NULL;
	ASN1_OCTET_STRING *data = ext ? tp_ossl.X509_EXTENSION_get_data(ext) : NULL;

	tp_ossl.ASN1_OBJECT_free(obj);
	tp_ossl.ERR_clear_error();
	if (!data || tp_ossl.ASN1_STRING_length(data) < 0)
		return -ENOENT;
	*value = tp_ossl.ASN1_STRING_get0_data(data);
	*size = (size_t)tp_ossl.ASN1_STRING_length(data);
	return 0;
}

int tp_cert_chain_verify(const struct tp_cert *leaf, struct tp_cert *const *others, size_t count,
			 const struct tp_cert *anchor, const struct tp_cert_time *when, char *err,
			 size_t err_size)
{
	X509_STORE *store = tp_ossl.X509_STORE_new();
	X509_STORE_CTX *ctx = tp_ossl.X509_STORE_CTX_new();
	OPENSSL_STACK *untrusted = tp_ossl.OPENSSL_sk_new_null();
	/* the anchor's own signature is checked too: its key is what is pinned, and
	 * nothing else of it may have changed */
	unsigned long flags = X509_V_FLAG_CHECK_SS_SIGNATURE;
	int r = -ENOMEM;

	/* a certificate's signature names its digest, which OpenSSL 3 looks up by name
	 * in the legacy table that crypto.c leaves empty (filling it whole costs every
	 * start): the SHA-2 digests the vendors sign with go in, and no others, so a
	 * certificate signed with SHA-1 or MD5 does not verify */
	if (!store || !ctx || !untrusted || tp_ossl.EVP_add_digest(tp_ossl.EVP_sha256()) != 1 ||
	    tp_ossl.EVP_add_digest(tp_ossl.EVP_sha384()) != 1 ||
	    tp_ossl.EVP_add_digest(tp_ossl.EVP_sha512()) != 1)
		goto out;
	for (size_t i = 0; i < count; i++)
		if (tp_ossl.OPENSSL_sk_push(untrusted, x509(others[i])) <= 0)
			goto out;
	/* the store holds the anchor alone: no system or default certificates */
	if (tp_ossl.X509_STORE_add_cert(store, x509(anchor)) != 1 ||
	    tp_ossl.X509_STORE_CTX_init(ctx, store, x509(leaf), (STACK_OF(X509) *)untrusted) != 1)
		goto out;
	if (when && when->unchecked)
		flags |= X509_V_FLAG_NO_CHECK_TIME;
	tp_ossl.X509_STORE_CTX_set_flags(ctx, flags);
	if (when && !when->unchecked && when->at)
		tp_ossl.X509_STORE_CTX_set_time(ctx, 0, (time_t)when->at);
	if (tp_ossl.X509_verify_cert(ctx) == 1) {
		r = 0;
		goto out;
	}
	char cn[128] = "";
	X509 *at = tp_ossl.X509_STORE_CTX_get_current_cert(ctx);
	if (at)
		tp_cert_subject_cn((const struct tp_cert *)at, cn, sizeof(cn));
	snprintf(err, err_size, "%s%s%s",
		 tp_ossl.X509_verify_cert_error_string(tp_ossl.X509_STORE_CTX_get_error(ctx)),
		 *cn ? " at " : "", cn);
	r = -EBADMSG;
out:
	if (r == -ENOMEM)
		snprintf(err, err_size, "out of memory");
	tp_ossl.OPENSSL_sk_free(untrusted);
	tp_ossl.X509_STORE_CTX_free(ctx);
	tp_ossl.X509_STORE_free(store);
	tp_ossl.ERR_clear_error();
	return r;
}

/* r and s as the DER of an ECDSA-Sig-Value into der (at least 2 * size + 16 bytes).
 * Returns its size, or -1. */
static int ecdsa_der(const uint8_t *r, const uint8_t *s, size_t size, unsigned char *der)
{
	ECDSA_SIG *sig = tp_ossl.ECDSA_SIG_new();
	BIGNUM *br = tp_ossl.BN_bin2bn(r, (int)size, NULL),
	       *bs = tp_ossl.BN_bin2bn(s, (int)size, NULL);
	unsigned char *p = der;
	int n = -1;

	if (sig && br && bs && tp_ossl.ECDSA_SIG_set0(sig, br, bs) == 1) {
		br = bs = NULL; /* the signature owns them */
		n = tp_ossl.i2d_ECDSA_SIG(sig, NULL);
		if (n <= 0 || (size_t)n > 2 * size + 16 || tp_ossl.i2d_ECDSA_SIG(sig, &p) != n)
			n = -1;
	}
	tp_ossl.BN_free(br);
	tp_ossl.BN_free(bs);
	tp_ossl.ECDSA_SIG_free(sig);
	return n;
}

static int ecdsa_verify(EVP_PKEY *key, unsigned bits, const void *msg, size_t msg_size,
			const uint8_t *r, const uint8_t *s, size_t size)
{
	unsigned char der[2 * 66 + 16];
	EVP_MD_CTX *md;
	int n, ok;

	if (!key || tp_ossl.EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    tp_ossl.EVP_PKEY_get_bits(key) != (int)bits || size > 66)
		return -EKEYREJECTED;
	if ((n = ecdsa_der(r, s, size, der)) < 0)
		return -EBADMSG;
	md = tp_ossl.EVP_MD_CTX_new();
	ok = md &&
	     tp_ossl.EVP_DigestVerifyInit(md, NULL,
					  bits == 256 ? tp_ossl.EVP_sha256() : tp_ossl.EVP_sha384(),
					  NULL, key) == 1 &&
	     tp_ossl.EVP_DigestVerify(md, der, (size_t)n, msg, msg_size) == 1;
	tp_ossl.EVP_MD_CTX_free(md);
	tp_ossl.ERR_clear_error();
	return ok ? 0 : -EBADMSG;
}

int tp_cert_ecdsa_verify(const struct tp_cert *cert, unsigned bits, const void *msg,
			 size_t msg_size, const uint8_t *r, const uint8_t *s, size_t size)
{
	if (bits != 256 && bits != 384)
		return -EKEYREJECTED;
	return ecdsa_verify(tp_ossl.X509_get0_pubkey(x509(cert)), bits, msg, msg_size, r, s, size);
}

/* The DER of a P-256 SubjectPublicKeyInfo is this prefix (id-ecPublicKey,
 * prime256v1, an uncompressed point) and the point's X and Y (RFC 5480). */
static const uint8_t p256_spki_prefix[27] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
	0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04
};

int tp_p256_verify(const uint8_t pub[TP_P256_PUB_SIZE], const void *msg, size_t msg_size,
		   const uint8_t sig[64])
{
	uint8_t der[sizeof(p256_spki_prefix) + TP_P256_PUB_SIZE];
	const unsigned char *p = der;
	EVP_PKEY *key;
	int r;

	if (!tp_ossl_ready())
		return -EKEYREJECTED;
	memcpy(der, p256_spki_prefix, sizeof(p256_spki_prefix));
	memcpy(der + sizeof(p256_spki_prefix), pub, TP_P256_PUB_SIZE);
	/* OpenSSL refuses a point that is not on the curve here */
	key = tp_ossl.d2i_PUBKEY(NULL, &p, (long)sizeof(der));
	tp_ossl.ERR_clear_error();
	if (!key)
		return -EKEYREJECTED;
	r = ecdsa_verify(key, 256, msg, msg_size, sig, sig + 32, 32);
	tp_ossl.EVP_PKEY_free(key);
	return r;
}

/* ---- the CAS server's TLS key ---- */

/* Writes a new file at path (never over one there) with write_fn's PEM. */
static int write_new(const char *path, mode_t mode, int (*write_fn)(FILE *f, void *obj), void *obj)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -errno;
	if (!(f = fdopen(fd, "w"))) {
		int r = -errno;
		close(fd);
		unlink(path);
		return r;
	}
	ok = write_fn(f, obj);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

static int write_private(FILE *f, void *pkey)
{
	return tp_ossl.PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
}

static int write_cert(FILE *f, void *x)
{
	return tp_ossl.PEM_write_X509(f, x);
}

int tp_tls_key_generate(const char *key_path, const char *cert_path, const char *cn)
{
	EVP_PKEY *pkey =
	    tp_ossl_ready() ? tp_ossl.EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") : NULL;
	X509 *x = pkey ? tp_ossl.X509_new() : NULL;
	X509_NAME *name;
	int r = -EIO;

	if (!x)
		goto out;
	name = tp_ossl.X509_get_subject_name(x);
	if (tp_ossl.X509_set_version(x, 2) != 1 ||
	    tp_ossl.ASN1_INTEGER_set(tp_ossl.X509_get_serialNumber(x), 1) != 1 ||
	    !tp_ossl.X509_gmtime_adj(tp_ossl.X509_getm_notBefore(x), -86400) ||
	    !tp_ossl.X509_gmtime_adj(tp_ossl.X509_getm_notAfter(x), 10L * 366 * 86400) ||
	    tp_ossl.X509_set_pubkey(x, pkey) != 1 ||
	    tp_ossl.X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
					       -1, -1, 0) != 1 ||
	    tp_ossl.X509_set_issuer_name(x, name) != 1 ||
	    tp_ossl.X509_sign(x, pkey, tp_ossl.EVP_sha256()) <= 0)
		goto out;
	if ((r = write_new(key_path, 0600, write_private, pkey)) < 0)
		goto out;
	if ((r = write_new(cert_path, 0644, write_cert, x)) < 0)
		unlink(key_path);
out:
	tp_ossl.ERR_clear_error();
	if (x)
		tp_ossl.X509_free(x);
	if (pkey)
		tp_ossl.EVP_PKEY_free(pkey);
	return r;
}
