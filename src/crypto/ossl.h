/* libcrypto's functions as crypto.c loads them on first use (dlopen): the table the
 * files of crypto/ call through. Only crypto/ includes this; the rest of teepy never
 * sees an OpenSSL type. */
#ifndef TEEPY_CRYPTO_OSSL_H
#define TEEPY_CRYPTO_OSSL_H

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>

/* Every OpenSSL function teepy calls, taken from libcrypto by name; their types
 * come from OpenSSL's own headers. */
#define OSSL_FUNCTIONS(X)                                                                          \
	X(OPENSSL_init_crypto)                                                                     \
	X(ERR_clear_error)                                                                         \
	X(EVP_MD_CTX_new)                                                                          \
	X(EVP_MD_CTX_free)                                                                         \
	X(EVP_sha256)                                                                              \
	X(EVP_sha384)                                                                              \
	X(EVP_Digest)                                                                              \
	X(EVP_DigestInit_ex)                                                                       \
	X(EVP_DigestUpdate)                                                                        \
	X(EVP_DigestFinal_ex)                                                                      \
	X(EVP_DigestSignInit)                                                                      \
	X(EVP_DigestSign)                                                                          \
	X(EVP_DigestVerifyInit)                                                                    \
	X(EVP_DigestVerify)                                                                        \
	X(EVP_PKEY_Q_keygen)                                                                       \
	X(EVP_PKEY_new_raw_public_key)                                                             \
	X(EVP_PKEY_get_raw_public_key)                                                             \
	X(EVP_PKEY_get_base_id)                                                                    \
	X(EVP_PKEY_get_bits)                                                                       \
	X(EVP_PKEY_free)                                                                           \
	X(EVP_PKEY_new_raw_private_key)                                                            \
	X(EVP_PKEY_get_raw_private_key)                                                            \
	X(EVP_PKEY_CTX_new)                                                                        \
	X(EVP_PKEY_CTX_free)                                                                       \
	X(EVP_PKEY_derive_init)                                                                    \
	X(EVP_PKEY_derive_set_peer)                                                                \
	X(EVP_PKEY_derive)                                                                         \
	X(PEM_read_PrivateKey)                                                                     \
	X(PEM_write_PrivateKey)                                                                    \
	X(PEM_write_PUBKEY)                                                                        \
	X(EVP_CIPHER_CTX_new)                                                                      \
	X(EVP_CIPHER_CTX_free)                                                                     \
	X(EVP_CIPHER_CTX_ctrl)                                                                     \
	X(EVP_aes_256_gcm)                                                                         \
	X(EVP_EncryptInit_ex)                                                                      \
	X(EVP_EncryptUpdate)                                                                       \
	X(EVP_EncryptFinal_ex)                                                                     \
	X(EVP_DecryptInit_ex)                                                                      \
	X(EVP_DecryptUpdate)                                                                       \
	X(EVP_DecryptFinal_ex)                                                                     \
	OSSL_X509_FUNCTIONS(X)

/* x509.c's: certificates, chains, ECDSA signatures */
#define OSSL_X509_FUNCTIONS(X)                                                                     \
	X(EVP_add_digest)                                                                          \
	X(EVP_sha512)                                                                              \
	X(BIO_new_mem_buf)                                                                         \
	X(BIO_free)                                                                                \
	X(PEM_read_bio_X509)                                                                       \
	X(d2i_X509)                                                                                \
	X(i2d_X509)                                                                                \
	X(X509_free)                                                                               \
	X(X509_get0_pubkey)                                                                        \
	X(X509_get_X509_PUBKEY)                                                                    \
	X(i2d_X509_PUBKEY)                                                                         \
	X(X509_get_subject_name)                                                                   \
	X(X509_NAME_get_text_by_NID)                                                               \
	X(X509_get_ext_by_OBJ)                                                                     \
	X(X509_get_ext)                                                                            \
	X(X509_EXTENSION_get_data)                                                                 \
	X(OBJ_txt2obj)                                                                             \
	X(ASN1_OBJECT_free)                                                                        \
	X(ASN1_STRING_get0_data)                                                                   \
	X(ASN1_STRING_length)                                                                      \
	X(X509_STORE_new)                                                                          \
	X(X509_STORE_free)                                                                         \
	X(X509_STORE_add_cert)                                                                     \
	X(X509_STORE_CTX_new)                                                                      \
	X(X509_STORE_CTX_free)                                                                     \
	X(X509_STORE_CTX_init)                                                                     \
	X(X509_STORE_CTX_set_flags)                                                                \
	X(X509_STORE_CTX_set_time)                                                                 \
	X(X509_STORE_CTX_get_error)                                                                \
	X(X509_STORE_CTX_get_current_cert)                                                         \
	X(X509_verify_cert)                                                                        \
	X(X509_verify_cert_error_string)                                                           \
	X(OPENSSL_sk_new_null)                                                                     \
	X(OPENSSL_sk_push)                                                                         \
	X(OPENSSL_sk_free)                                                                         \
	X(d2i_PUBKEY)                                                                              \
	X(BN_bin2bn)                                                                               \
	X(BN_free)                                                                                 \
	X(ECDSA_SIG_new)                                                                           \
	X(ECDSA_SIG_free)                                                                          \
	X(ECDSA_SIG_set0)                                                                          \
	X(i2d_ECDSA_SIG)                                                                           \
	OSSL_TLS_FUNCTIONS(X)

/* x509.c's: the CAS server's self-signed TLS certificate */
#define OSSL_TLS_FUNCTIONS(X)                                                                      \
	X(X509_new)                                                                                \
	X(X509_set_version)                                                                        \
	X(X509_get_serialNumber)                                                                   \
	X(ASN1_INTEGER_set)                                                                        \
	X(X509_getm_notBefore)                                                                     \
	X(X509_getm_notAfter)                                                                      \
	X(X509_gmtime_adj)                                                                         \
	X(X509_set_pubkey)                                                                         \
	X(X509_NAME_add_entry_by_txt)                                                              \
	X(X509_set_issuer_name)                                                                    \
	X(X509_sign)                                                                               \
	X(PEM_write_X509)

#define OSSL_DECLARE(name) __typeof__(name) *name;
struct tp_ossl {
	OSSL_FUNCTIONS(OSSL_DECLARE)
};
#undef OSSL_DECLARE

/* The table, filled by the first tp_crypto_load. */
extern struct tp_ossl tp_ossl;

/* Whether libcrypto is loaded (it is loaded by this call if it was not). */
bool tp_ossl_ready(void);

#endif
