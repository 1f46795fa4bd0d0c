/* X25519 key pairs and sealing a message to a public key (X25519, HKDF-SHA-256,
 * AES-256-GCM), for evidence that binds a runtime's key and the secrets a CAS
 * releases to it; and SHA-512, which binds the claims into report data. */
#include "crypto.h"
#include "ossl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tp_x25519 {
	uint8_t priv[TP_X25519_SIZE], pub[TP_X25519_SIZE];
};

void tp_sha512(const void *data, size_t size, uint8_t out[TP_SHA512_SIZE])
{
	unsigned int len = TP_SHA512_SIZE;

	if (!tp_ossl_ready())
		abort(); /* as in tp_sha256: the command loads libcrypto first */
	tp_ossl.EVP_Digest(data, size, out, &len, tp_ossl.EVP_sha512(), NULL);
}

/* The private key is the kernel's random bytes (getrandom), not OpenSSL's generator:
 * a process forked from this one holds a copy of that generator's state, from which
 * the next keys it makes here could be foretold until it reseeds. */
struct tp_x25519 *tp_x25519_generate(void)
{
	struct tp_x25519 *k = tp_ossl_ready() ? tp_secret_alloc(sizeof(*k)) : NULL;
	EVP_PKEY *pkey = NULL;
	size_t pub_len = TP_X25519_SIZE;

	if (k && tp_random(k->priv, TP_X25519_SIZE) == 0)
		pkey = tp_ossl.EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k->priv,
							    TP_X25519_SIZE);
	if (k && (!pkey || tp_ossl.EVP_PKEY_get_raw_public_key(pkey, k->pub, &pub_len) != 1 ||
		  pub_len != TP_X25519_SIZE)) {
		tp_secret_free(k, sizeof(*k));
		k = NULL;
	}
	if (pkey)
		tp_ossl.EVP_PKEY_free(pkey); /* OpenSSL wipes the key it held */
	tp_ossl.ERR_clear_error();
	return k;
}

void tp_x25519_public(const struct tp_x25519 *k, uint8_t out[TP_X25519_SIZE])
{
	memcpy(out, k->pub, TP_X25519_SIZE);
}

void tp_x25519_export(const struct tp_x25519 *k, uint8_t out[TP_X25519_PAIR_SIZE])
{
	memcpy(out, k->priv, TP_X25519_SIZE);
	memcpy(out + TP_X25519_SIZE, k->pub, TP_X25519_SIZE);
}

struct tp_x25519 *tp_x25519_import(const uint8_t in[TP_X25519_PAIR_SIZE])
{
	struct tp_x25519 *k = tp_secret_alloc(sizeof(*k));

	if (k) {
		memcpy(k->priv, in, TP_X25519_SIZE);
		memcpy(k->pub, in + TP_X25519_SIZE, TP_X25519_SIZE);
	}
	return k;
}

void tp_x25519_free(struct tp_x25519 *k)
{
	if (k)
		tp_secret_free(k, sizeof(*k));
}

/* X25519(priv, peer) into shared. Returns 0, or -EINVAL for a peer key of small
 * order (the secret would be zeros, known to anyone), or -ENOMEM. */
static int x25519_shared(const uint8_t priv[TP_X25519_SIZE], const uint8_t peer[TP_X25519_SIZE],
			 uint8_t shared[TP_X25519_SIZE])
{
	static const uint8_t zeros[TP_X25519_SIZE];
	EVP_PKEY *mine = tp_ossl.EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
							      TP_X25519_SIZE),
		 *theirs = tp_ossl.EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
							       TP_X25519_SIZE);
	EVP_PKEY_CTX *ctx = mine ? tp_ossl.EVP_PKEY_CTX_new(mine, NULL) : NULL;
	size_t len = TP_X25519_SIZE;
	int r = -ENOMEM;

	if (ctx && theirs) {
		/* OpenSSL refuses the zero secret itself; the check below says it twice */
		r = tp_ossl.EVP_PKEY_derive_init(ctx) == 1 &&
			    tp_ossl.EVP_PKEY_derive_set_peer(ctx, theirs) == 1 &&
			    tp_ossl.EVP_PKEY_derive(ctx, shared, &len) == 1 &&
			    len == TP_X25519_SIZE && !tp_same_bytes(shared, zeros, len) ?
			0 :
			-EINVAL;
	}
	tp_ossl.EVP_PKEY_CTX_free(ctx);
	tp_ossl.EVP_PKEY_free(mine);
	tp_ossl.EVP_PKEY_free(theirs);
	tp_ossl.ERR_clear_error();
	if (r < 0)
		explicit_bzero(shared, TP_X25519_SIZE);
	return r;
}

/* The key and nonce of one sealed message, from the shared secret and both public
 * keys (so the ciphertext is bound to the recipient it was sealed to). */
struct seal_keys {
	uint8_t key[TP_AES_KEY_SIZE], nonce[TP_GCM_NONCE_SIZE];
};

static int seal_keys(const uint8_t priv[TP_X25519_SIZE], const uint8_t peer[TP_X25519_SIZE],
		     const uint8_t eph_pub[TP_X25519_SIZE],
		     const uint8_t recipient_pub[TP_X25519_SIZE], struct seal_keys *out)
{
	static const char info[] = "teepy seal v1";
	uint8_t shared[TP_X25519_SIZE], salt[2 * TP_X25519_SIZE];
	int r;

	if ((r = x25519_shared(priv, peer, shared)) < 0)
		return r;
	memcpy(salt, eph_pub, TP_X25519_SIZE);
	memcpy(salt + TP_X25519_SIZE, recipient_pub, TP_X25519_SIZE);
	r = tp_hkdf_sha256(shared, sizeof(shared), salt, sizeof(salt), info, sizeof(info) - 1,
			   (uint8_t *)out, sizeof(*out));
	explicit_bzero(shared, sizeof(shared));
	return r;
}

int tp_seal(const uint8_t recipient[TP_X25519_SIZE], const void *aad, size_t aad_size,
	    const void *in, size_t size, uint8_t *out)
{
	struct tp_x25519 *eph = tp_x25519_generate();
	struct seal_keys *keys = tp_secret_alloc(sizeof(*keys));
	struct tp_gcm *gcm = NULL;
	int r = -ENOMEM;

	if (!eph || !keys)
		goto out;
	if ((r = seal_keys(eph->priv, recipient, eph->pub, recipient, keys)) < 0)
		goto out;
	if (!(gcm = tp_gcm_new(keys->key))) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(out, eph->pub, TP_X25519_SIZE);
	r = tp_gcm_seal(gcm, keys->nonce, aad, aad_size, in, size, out + TP_X25519_SIZE,
			out + TP_X25519_SIZE + size);
out:
	tp_gcm_free(gcm);
	tp_secret_free(keys, sizeof(*keys));
	tp_x25519_free(eph);
	return r;
}

int tp_seal_open(const struct tp_x25519 *recipient, const void *aad, size_t aad_size,
		 const uint8_t *in, size_t in_size, void *out)
{
	struct seal_keys *keys;
	struct tp_gcm *gcm = NULL;
	size_t size;
	int r;

	if (in_size < TP_SEAL_OVERHEAD)
		return -EINVAL;
	size = in_size - TP_SEAL_OVERHEAD;
	if (!(keys = tp_secret_alloc(sizeof(*keys))))
		return -ENOMEM;
	/* a small-order ephemeral key is no message anyone sealed to us */
	r = seal_keys(recipient->priv, in, in, recipient->pub, keys);
	if (r == -EINVAL)
		r = -EBADMSG;
	if (r == 0 && !(gcm = tp_gcm_new(keys->key)))
		r = -ENOMEM;
	if (r == 0)
		r = tp_gcm_open(gcm, keys->nonce, aad, aad_size, in + TP_X25519_SIZE, size,
				in + TP_X25519_SIZE + size, out);
	if (r == -EINVAL)
		r = -EBADMSG;
	tp_gcm_free(gcm);
	tp_secret_free(keys, sizeof(*keys));
	if (r < 0)
		explicit_bzero(out, size);
	return r;
}
