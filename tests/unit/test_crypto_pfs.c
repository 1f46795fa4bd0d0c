/* HMAC, HKDF and AES-GCM against their published vectors; symmetric key files;
 * the protected-file codec: round trips, random access, and every change to a
 * sealed file refused with its own error. */
#include "test.h"
#include "../../src/crypto/crypto.h"
#include "../../src/pfs/pfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool tp_test_crypto_ready(void)
{
	char err[256];

	if (tp_crypto_load(err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s\n", err);
		return false;
	}
	return true;
}

static void unhex(const char *hex, uint8_t *out, size_t size)
{
	if (strlen(hex) != 2 * size || tp_unhex(hex, out, size) < 0) {
		fprintf(stderr, "  bad vector: %s\n", hex);
		abort();
	}
}

static bool equals_hex(const uint8_t *bytes, size_t size, const char *hex)
{
	char got[2 * 256 + 1];

	if (size > 256)
		abort();
	tp_hex(bytes, size, got);
	if (strcmp(got, hex) != 0) {
		fprintf(stderr, "  got      %s\n  expected %s\n", got, hex);
		return false;
	}
	return true;
}

/* ---- HMAC-SHA-256, RFC 4231 ---- */

static void test_hmac_sha256_matches_rfc4231(void)
{
	uint8_t key[131], mac[TP_SHA256_SIZE];
	const char *six = "Test Using Larger Than Block-Size Key - Hash Key First";

	NEED_CRYPTO();
	/* 1: a 20-byte key */
	memset(key, 0x0b, 20);
	CHECK(tp_hmac_sha256(key, 20, "Hi There", 8, mac) == 0);
	CHECK(equals_hex(mac, sizeof(mac),
			 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
	/* 2: a key shorter than the output */
	CHECK(tp_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac) == 0);
	CHECK(equals_hex(mac, sizeof(mac),
			 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
	/* 6: a key longer than SHA-256's block, hashed first */
	memset(key, 0xaa, sizeof(key));
	CHECK(tp_hmac_sha256(key, sizeof(key), six, strlen(six), mac) == 0);
	CHECK(equals_hex(mac, sizeof(mac),
			 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
}

static void test_hmac_streamed_in_pieces_equals_one_call(void)
{
	const char *six = "Test Using Larger Than Block-Size Key - Hash Key First";
	uint8_t key[131], mac[TP_SHA256_SIZE];
	struct tp_hmac *h;

	NEED_CRYPTO();
	memset(key, 0xaa, sizeof(key));
	h = tp_hmac_new(key, sizeof(key));
	CHECK(h != NULL);
	if (!h)
		return;
	for (size_t i = 0; i < strlen(six); i += 5)
		tp_hmac_update(h, six + i, strlen(six) - i < 5 ? strlen(six) - i : 5);
	tp_hmac_final(h, mac);
	CHECK(equals_hex(mac, sizeof(mac),
			 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
}

/* ---- HKDF-SHA-256, RFC 5869 ---- */

static void test_hkdf_sha256_matches_rfc5869(void)
{
	uint8_t ikm[80], salt[80], info[80], okm[82];

	NEED_CRYPTO();
	/* 1: the basic case */
	memset(ikm, 0x0b, 22);
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (uint8_t)(0xf0 + i);
	CHECK(tp_hkdf_sha256(ikm, 22, salt, 13, info, 10, okm, 42) == 0);
	CHECK(equals_hex(okm, 42,
			 "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d"
			 "5b887185865"));
	/* 2: long inputs and an output of three blocks */
	for (int i = 0; i < 80; i++) {
		ikm[i] = (uint8_t)i;
		salt[i] = (uint8_t)(0x60 + i);
		info[i] = (uint8_t)(0xb0 + i);
	}
	CHECK(tp_hkdf_sha256(ikm, 80, salt, 80, info, 80, okm, 82) == 0);
	CHECK(equals_hex(okm, 82,
			 "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99"
			 "cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87"
			 "c14c01d5c1f3434f1d87"));
	/* 3: no salt, no info */
	memset(ikm, 0x0b, 22);
	CHECK(tp_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 42) == 0);
	CHECK(equals_hex(okm, 42,
			 "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395f"
			 "aa4b61a96c8"));
}

static void test_hkdf_refuses_more_than_255_blocks(void)
{
	static uint8_t okm[255 * TP_SHA256_SIZE + 1];

	NEED_CRYPTO();
	CHECK(tp_hkdf_sha256("k", 1, NULL, 0, NULL, 0, okm, sizeof(okm) - 1) == 0);
	CHECK(tp_hkdf_sha256("k", 1, NULL, 0, NULL, 0, okm, sizeof(okm)) == -EINVAL);
}

/* ---- AES-256-GCM: McGrew and Viega's test cases 13 and 16 ---- */

#define GCM16_KEY   "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define GCM16_NONCE "cafebabefacedbaddecaf888"
#define GCM16_AAD   "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define GCM16_PLAIN                                                                                \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24" \
	"49a6b525b16aedf5aa0de657ba637b39"
#define GCM16_CIPHER                                                                               \
	"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10" \
	"56828838c5f61e6393ba7a0abcc9f662"
#define GCM16_TAG "76fc6ece0f4e1768cddf8853bb2d551b"

static void test_aes256_gcm_seal_matches_the_gcm_spec_vectors(void)
{
	uint8_t key[32], nonce[12], aad[20], plain[60], out[60], tag[16];
	struct tp_gcm *g;

	NEED_CRYPTO();
	/* 13: zero key and nonce, nothing to encrypt */
	memset(key, 0, sizeof(key));
	memset(nonce, 0, sizeof(nonce));
	g = tp_gcm_new(key);
	CHECK(g != NULL);
	CHECK(tp_gcm_seal(g, nonce, NULL, 0, NULL, 0, out, tag) == 0);
	CHECK(equals_hex(tag, sizeof(tag), "530f8afbc74536b9a963b4f1c4cb738b"));
	CHECK(tp_gcm_open(g, nonce, NULL, 0, NULL, 0, tag, out) == 0);
	tp_gcm_free(g);
	/* 16: a 60-byte message with 20 bytes of associated data */
	unhex(GCM16_KEY, key, sizeof(key));
	unhex(GCM16_NONCE, nonce, sizeof(nonce));
	unhex(GCM16_AAD, aad, sizeof(aad));
	unhex(GCM16_PLAIN, plain, sizeof(plain));
	g = tp_gcm_new(key);
	CHECK(g != NULL);
	CHECK(tp_gcm_seal(g, nonce, aad, sizeof(aad), plain, sizeof(plain), out, tag) == 0);
	CHECK(equals_hex(out, sizeof(out), GCM16_CIPHER));
	CHECK(equals_hex(tag, sizeof(tag), GCM16_TAG));
	/* in place, and again with the same context: the same bytes */
	memcpy(out, plain, sizeof(plain));
	CHECK(tp_gcm_seal(g, nonce, aad, sizeof(aad), out, sizeof(out), out, tag) == 0);
	CHECK(equals_hex(out, sizeof(out), GCM16_CIPHER));
	CHECK(equals_hex(tag, sizeof(tag), GCM16_TAG));
	tp_gcm_free(g);
}

static void test_aes256_gcm_open_refuses_any_changed_byte(void)
{
	uint8_t key[32], nonce[12], aad[20], plain[60], cipher[60], tag[16], out[60];
	struct tp_gcm *g;

	NEED_CRYPTO();
	unhex(GCM16_KEY, key, sizeof(key));
	unhex(GCM16_NONCE, nonce, sizeof(nonce));
	unhex(GCM16_AAD, aad, sizeof(aad));
	unhex(GCM16_PLAIN, plain, sizeof(plain));
	unhex(GCM16_CIPHER, cipher, sizeof(cipher));
	unhex(GCM16_TAG, tag, sizeof(tag));
	g = tp_gcm_new(key);
	CHECK(g != NULL);
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) == 0);
	CHECK(memcmp(out, plain, sizeof(plain)) == 0);

	cipher[17] ^= 0x01;
	memset(out, 0x55, sizeof(out));
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) ==
	      -EBADMSG);
	for (size_t i = 0; i < sizeof(out); i++)
		CHECK(out[i] == 0); /* wiped, not left half-decrypted */
	cipher[17] ^= 0x01;

	tag[15] ^= 0x80;
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) ==
	      -EBADMSG);
	tag[15] ^= 0x80;

	aad[0] ^= 0x01;
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) ==
	      -EBADMSG);
	aad[0] ^= 0x01;

	nonce[11] ^= 0x01;
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) ==
	      -EBADMSG);
	nonce[11] ^= 0x01;

	/* the context is still good after refusals */
	CHECK(tp_gcm_open(g, nonce, aad, sizeof(aad), cipher, sizeof(cipher), tag, out) == 0);
	CHECK(memcmp(out, plain, sizeof(plain)) == 0);
	tp_gcm_free(g);
}

static void test_secret_memory_is_zeroed_and_random_fills(void)
{
	uint8_t *small = tp_secret_alloc(32), *large = tp_secret_alloc(10000);
	uint8_t a[32] = { 0 }, b[32] = { 0 };

	CHECK(small != NULL);
	CHECK(large != NULL);
	if (!small || !large)
		return;
	for (size_t i = 0; i < 32; i++)
		CHECK(small[i] == 0);
	for (size_t i = 0; i < 10000; i += 997)
		CHECK(large[i] == 0);
	memset(small, 0xff, 32);
	memset(large, 0xff, 10000);
	tp_secret_free(large, 10000);
	/* wiped as it is freed, not when it is handed out again: a slot of the arena
	 * stays mapped, so what was there can be read right after */
	volatile uint8_t *freed = small;
	tp_secret_free(small, 32);
	for (size_t i = 0; i < 32; i++)
		CHECK(freed[i] == 0);

	CHECK(tp_random(a, sizeof(a)) == 0);
	CHECK(tp_random(b, sizeof(b)) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(tp_random(a, 0) == 0);
}

/* ---- symmetric key files ---- */

#define BEGIN "-----BEGIN TEEPY SYMMETRIC KEY-----"
#define END   "-----END TEEPY SYMMETRIC KEY-----"
#define HEX64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static int parse(const char *text, uint8_t key[TP_SYMKEY_SIZE])
{
	memset(key, 0x77, TP_SYMKEY_SIZE);
	return tp_symkey_parse(text, strlen(text), key);
}

static bool is_zero(const uint8_t *p, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (p[i])
			return false;
	return true;
}

static void test_symkey_parse_reads_the_one_shape(void)
{
	uint8_t key[TP_SYMKEY_SIZE];

	CHECK(parse(BEGIN "\n" HEX64 "\n" END "\n", key) == 0);
	for (size_t i = 0; i < sizeof(key); i++)
		CHECK(key[i] == i);
	CHECK(parse(BEGIN "\n" HEX64 "\n" END, key) == 0);	      /* no final newline */
	CHECK(parse(BEGIN "\r\n" HEX64 "\r\n" END "\r\n", key) == 0); /* CRLF */
	CHECK(key[31] == 31);
	CHECK(parse(BEGIN "\n" HEX64 "\n" END "\n\n\r\n", key) == 0); /* blank lines after */
	CHECK(parse(BEGIN "\n"
			  "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n" END
			  "\n",
		    key) == 0); /* upper-case hex */
	CHECK(key[10] == 10);
	CHECK(tp_symkey_looks_like(BEGIN "\n", strlen(BEGIN "\n")));
	CHECK(tp_symkey_looks_like("\n\r\n" BEGIN, strlen("\n\r\n" BEGIN)));
	CHECK(!tp_symkey_looks_like("-----BEGIN PRIVATE KEY-----\n", 28));
	CHECK(!tp_symkey_looks_like("", 0));
}

static void test_symkey_parse_refuses_anything_else(void)
{
	uint8_t key[TP_SYMKEY_SIZE];
	const char *bad[] = {
		"",
		BEGIN,
		BEGIN "\n" HEX64,
		BEGIN "\n" HEX64 "\n",
		"-----BEGIN TEEPY SYMMETRIC KEY----\n" HEX64 "\n" END "\n",
		"-----BEGIN PRIVATE KEY-----\n" HEX64 "\n" END "\n",
		BEGIN " \n" HEX64 "\n" END "\n",
		BEGIN "\n" HEX64 "\n-----END TEEPY PRIVATE KEY-----\n",
		BEGIN "\n" HEX64 "\n" END "-\n",
		BEGIN "\n" HEX64 "\n\n" END "\n",
		/* 63 and 65 digits */
		BEGIN "\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n" END
		      "\n",
		BEGIN "\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n" END
		      "\n",
		/* not hex */
		BEGIN "\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n" END
		      "\n",
		BEGIN "\n 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" END
		      "\n",
		BEGIN "\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e+f\n" END
		      "\n",
		/* trailing garbage */
		BEGIN "\n" HEX64 "\n" END "\nx",
		BEGIN "\n" HEX64 "\n" END "\n" BEGIN "\n" HEX64 "\n" END "\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], key) != -EINVAL || !is_zero(key, sizeof(key))) {
			fprintf(stderr, "  accepted or not wiped: case %zu\n", i);
			CHECK(false);
		}
	}
	/* a NUL inside: the text's size, not a terminator, is its end */
	const char nul[] = BEGIN "\n" HEX64 "\n" END "\n\0x";
	CHECK(tp_symkey_parse(nul, sizeof(nul) - 1, key) == -EINVAL);
	CHECK(tp_symkey_parse(nul, sizeof(nul) - 3, key) == 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void test_symkey_generate_writes_a_private_file_read_back(void)
{
	char dir[] = "/tmp/teepy-unit-XXXXXX", path[64], other[64], err[256];
	uint8_t a[TP_SYMKEY_SIZE], b[TP_SYMKEY_SIZE], text[256];
	struct stat st;
	int fd;
	ssize_t n;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/key", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	CHECK(tp_symkey_generate(path) == 0);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
	CHECK(tp_symkey_read(path, a, err, sizeof(err)) == 0);
	/* the file is what the parser reads */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = read(fd, text, sizeof(text));
	close(fd);
	CHECK(n > 0 && tp_symkey_parse((char *)text, (size_t)n, b) == 0 &&
	      memcmp(a, b, sizeof(a)) == 0);
	CHECK(n > 0 && tp_symkey_looks_like((char *)text, (size_t)n));
	/* never overwritten */
	CHECK(tp_symkey_generate(path) == -EEXIST);
	CHECK(tp_symkey_read(path, b, err, sizeof(err)) == 0 && memcmp(a, b, sizeof(a)) == 0);
	/* each key is new */
	CHECK(tp_symkey_generate(other) == 0);
	CHECK(tp_symkey_read(other, b, err, sizeof(err)) == 0 && memcmp(a, b, sizeof(a)) != 0);
	unlink(other);
	/* no file others may read */
	CHECK(chmod(path, 0644) == 0);
	CHECK(tp_symkey_read(path, b, err, sizeof(err)) == -EPERM);
	CHECK(strstr(err, "chmod 600") != NULL);
	CHECK(chmod(path, 0640) == 0);
	CHECK(tp_symkey_read(path, b, err, sizeof(err)) == -EPERM);
	/* a private file that is no key */
	write_file(other, BEGIN "\n" HEX64 "\n" END "\ngarbage\n", 0600);
	CHECK(tp_symkey_read(other, b, err, sizeof(err)) == -EINVAL);
	write_file(other, BEGIN "\r\n" HEX64 "\r\n" END "\r\n", 0600);
	CHECK(tp_symkey_read(other, b, err, sizeof(err)) == 0 && b[0] == 0 && b[31] == 31);
	unlink(other);
	CHECK(tp_symkey_read(other, b, err, sizeof(err)) == -ENOENT);
	CHECK(tp_symkey_read(dir, b, err, sizeof(err)) == -EINVAL);
	unlink(path);
	rmdir(dir);
}

/* ---- protected files ---- */

/* a growing buffer for the callbacks */
struct mem {
	uint8_t *data;
	size_t size, cap;
};

static int mem_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
	struct mem *m = ctx;

	if (offset > m->size || size > m->size - offset)
		return -ENODATA;
	memcpy(buf, m->data + offset, size);
	return 0;
}

static int mem_write(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	struct mem *m = ctx;

	if (offset != m->size) /* the codec writes in order, every byte once */
		return -ESPIPE;
	if (m->size + size > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < m->size + size)
			cap *= 2;
		uint8_t *p = realloc(m->data, cap);
		if (!p)
			return -ENOMEM;
		m->data = p;
		m->cap = cap;
	}
	memcpy(m->data + m->size, buf, size);
	m->size += size;
	return 0;
}

static void mem_free(struct mem *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

static void mem_copy(struct mem *to, const struct mem *from)
{
	to->data = malloc(from->size ? from->size : 1);
	memcpy(to->data, from->data, from->size);
	to->size = to->cap = from->size;
}

/* A cheap pattern no two chunks share: byte o of a test's plaintext. */
static uint8_t pattern_byte(uint64_t o, uint8_t seed)
{
	return (uint8_t)(o ^ (o >> 8) ^ (o >> 16) ^ (o >> 24) ^ seed);
}

static void pattern(struct mem *m, size_t size, uint8_t seed)
{
	m->data = malloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		m->data[i] = pattern_byte(i, seed);
	m->size = m->cap = size;
}

static const uint8_t key_a[TP_PFS_KEY_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t key_b[TP_PFS_KEY_SIZE] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };

static struct tp_pfs_header header(enum tp_pfs_purpose purpose, unsigned shift, uint64_t size,
				   uint8_t id_byte)
{
	struct tp_pfs_header h = { .purpose = purpose, .chunk_shift = shift, .size = size };

	memset(h.id, id_byte, sizeof(h.id));
	return h;
}

/* plain sealed under key with h into *sealed; 0 or the error (with its reason) */
static int seal(const uint8_t *key, const struct tp_pfs_header *h, struct mem *plain,
		struct mem *sealed)
{
	char err[256] = "";
	int r;

	memset(sealed, 0, sizeof(*sealed));
	r = tp_pfs_seal(key, h, mem_read, plain, mem_write, sealed, err, sizeof(err));
	CHECK(r == 0 || err[0]);
	return r;
}

/* sealed opened whole under key and purpose into *plain: 0 or the first error */
static int open_all(const uint8_t *key, enum tp_pfs_purpose purpose, struct mem *sealed,
		    struct mem *plain)
{
	struct tp_pfs_reader *rd;
	char err[256] = "";
	int r;

	memset(plain, 0, sizeof(*plain));
	r = tp_pfs_reader_open(key, purpose, mem_read, sealed, sealed->size, &rd, err, sizeof(err));
	if (r < 0) {
		CHECK(rd == NULL && err[0]);
		return r;
	}
	r = tp_pfs_open_all(rd, mem_write, plain, err, sizeof(err));
	CHECK(r == 0 || err[0]);
	tp_pfs_reader_free(rd);
	return r;
}

static bool round_trips(enum tp_pfs_purpose purpose, unsigned shift, size_t size)
{
	struct tp_pfs_header h = header(purpose, shift, size, 0x42);
	struct mem plain, sealed, back;
	bool ok;

	pattern(&plain, size, (uint8_t)size);
	ok = seal(key_a, &h, &plain, &sealed) == 0 &&
	     sealed.size == tp_pfs_sealed_size(size, shift) &&
	     open_all(key_a, purpose, &sealed, &back) == 0 && back.size == size &&
	     (size == 0 || memcmp(back.data, plain.data, size) == 0);
	/* no plaintext byte shows through */
	if (ok && size >= 64)
		ok = memmem(sealed.data, sealed.size, plain.data, 64) == NULL;
	if (!ok)
		fprintf(stderr, "  round trip of %zu bytes, shift %u\n", size, shift);
	mem_free(&plain);
	mem_free(&sealed);
	mem_free(&back);
	return ok;
}

/* The format pinned by an implementation that is not this one: Python's
 * `cryptography` (HKDF, HMAC, AESGCM) written from docs/protected-files.md sealed
 * these 5,000 bytes (two chunks of 4 KiB, the second the last) into 5,104 bytes
 * with this SHA-256. A change of the key derivation, the header, the nonce or the
 * associated data (its last-chunk flag included) changes it. */
static void test_pfs_seals_as_an_independent_implementation_does(void)
{
	struct tp_pfs_header h = { .purpose = TP_PFS_DATA, .chunk_shift = 12, .size = 5000 };
	uint8_t key[TP_PFS_KEY_SIZE], digest[32];
	struct mem plain = { 0 }, sealed, back;

	if (!tp_test_crypto_ready())
		return;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(h.id); i++)
		h.id[i] = (uint8_t)(100 + i);
	plain.data = malloc(5000);
	plain.size = plain.cap = 5000;
	for (size_t i = 0; i < 5000; i++)
		plain.data[i] = (uint8_t)((i * 7) & 0xff);
	CHECK(seal(key, &h, &plain, &sealed) == 0);
	CHECK(sealed.size == 5104);
	tp_sha256(sealed.data, sealed.size, digest);
	CHECK(equals_hex(digest, sizeof(digest),
			 "4a8c51e091b4b718db4b87f01ff1a1ec9a160b2e8260d72f75e8e9a13b52cafb"));
	CHECK(open_all(key, TP_PFS_DATA, &sealed, &back) == 0);
	CHECK(back.size == 5000 && memcmp(back.data, plain.data, 5000) == 0);
	mem_free(&plain);
	mem_free(&sealed);
	mem_free(&back);
}

static void test_pfs_round_trips_at_every_edge_of_a_chunk(void)
{
	const unsigned shifts[] = { TP_PFS_DEFAULT_SHIFT, TP_PFS_MIN_SHIFT };

	NEED_CRYPTO();
	for (size_t s = 0; s < 2; s++) {
		size_t chunk = (size_t)1 << shifts[s];
		const size_t sizes[] = { 0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5 };
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			CHECK(round_trips(TP_PFS_DATA, shifts[s], sizes[i]));
	}
	CHECK(round_trips(TP_PFS_BUNDLE, TP_PFS_MIN_SHIFT, 5000));
	CHECK(round_trips(TP_PFS_VOLUME, TP_PFS_MAX_SHIFT, ((size_t)1 << TP_PFS_MAX_SHIFT) + 7));
}

/* 100 MB: the plaintext made and checked on the fly, only the sealed bytes kept. It
 * repeats every PERIOD bytes, a prime, so that no two chunks are alike and both
 * callbacks work at memcpy's speed. */
#define PERIOD 65521u
static uint8_t period[PERIOD];

static int pattern_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
	uint8_t *p = buf;

	while (size) {
		size_t at = (size_t)(offset % PERIOD), n = PERIOD - at < size ? PERIOD - at : size;
		memcpy(p, period + at, n);
		p += n;
		offset += n;
		size -= n;
	}
	return 0;
}

static int pattern_check(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	uint64_t *seen = ctx;
	const uint8_t *p = buf;

	if (offset != *seen)
		return -ESPIPE;
	*seen += size;
	while (size) {
		size_t at = (size_t)(offset % PERIOD), n = PERIOD - at < size ? PERIOD - at : size;
		if (memcmp(p, period + at, n) != 0)
			return -EILSEQ;
		p += n;
		offset += n;
		size -= n;
	}
	return 0;
}

static void test_pfs_round_trips_100_mb(void)
{
	const uint64_t size = 100 * 1000 * 1000;
	struct tp_pfs_header h = header(TP_PFS_DATA, TP_PFS_DEFAULT_SHIFT, size, 3);
	struct tp_pfs_reader *rd = NULL;
	struct mem sealed = { 0 };
	uint64_t seen = 0;
	char err[256];

	NEED_CRYPTO();
	for (size_t i = 0; i < PERIOD; i++)
		period[i] = pattern_byte(i, 7);
	/* in huge pages where the kernel has them: a fault per 4 KiB page cost more than
	 * the AES here */
	sealed.cap = tp_pfs_sealed_size(size, h.chunk_shift);
	sealed.data =
	    mmap(NULL, sealed.cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(sealed.data != MAP_FAILED);
	if (sealed.data == MAP_FAILED)
		return;
	madvise(sealed.data, sealed.cap, MADV_HUGEPAGE);
	CHECK(tp_pfs_seal(key_a, &h, pattern_read, NULL, mem_write, &sealed, err, sizeof(err)) ==
	      0);
	CHECK(sealed.size == sealed.cap); /* and it never grew */
	CHECK(tp_pfs_reader_open(key_a, TP_PFS_DATA, mem_read, &sealed, sealed.size, &rd, err,
				 sizeof(err)) == 0);
	if (rd) {
		CHECK(tp_pfs_reader_header(rd)->size == size);
		CHECK(tp_pfs_open_all(rd, pattern_check, &seen, err, sizeof(err)) == 0);
		CHECK(seen == size);
	}
	tp_pfs_reader_free(rd);
	munmap(sealed.data, sealed.cap);
}

static void test_pfs_chunks_read_alone_in_reverse_order(void)
{
	const unsigned shift = TP_PFS_MIN_SHIFT;
	const size_t chunk = (size_t)1 << shift, size = 7 * chunk + 123;
	struct tp_pfs_header h = header(TP_PFS_VOLUME, shift, size, 9);
	struct tp_pfs_reader *rd = NULL;
	struct mem plain, sealed;
	uint8_t *buf = malloc(chunk);
	size_t len;
	char err[256];

	NEED_CRYPTO();
	pattern(&plain, size, 1);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);
	CHECK(tp_pfs_reader_open(key_a, TP_PFS_VOLUME, mem_read, &sealed, sealed.size, &rd, err,
				 sizeof(err)) == 0);
	if (rd) {
		const struct tp_pfs_header *got = tp_pfs_reader_header(rd);
		CHECK(got->purpose == TP_PFS_VOLUME && got->chunk_shift == shift &&
		      got->size == size && memcmp(got->id, h.id, sizeof(h.id)) == 0);
		for (uint64_t i = 8; i-- > 0;) {
			size_t want = i == 7 ? 123 : chunk;
			CHECK(tp_pfs_read_chunk(rd, i, buf, &len, err, sizeof(err)) == 0);
			CHECK(len == want && memcmp(buf, plain.data + i * chunk, want) == 0);
		}
		/* one chunk again, after the others */
		CHECK(tp_pfs_read_chunk(rd, 3, buf, &len, err, sizeof(err)) == 0);
		CHECK(len == chunk && memcmp(buf, plain.data + 3 * chunk, chunk) == 0);
		CHECK(tp_pfs_read_chunk(rd, 8, buf, &len, err, sizeof(err)) == -ERANGE && len == 0);
		CHECK(tp_pfs_read_chunk(rd, UINT64_MAX, buf, &len, err, sizeof(err)) == -ERANGE);
	}
	tp_pfs_reader_free(rd);
	free(buf);
	mem_free(&plain);
	mem_free(&sealed);
}

/* Runs of chunks read at once (the sealed root's fill): the same plaintext as the
 * chunks one by one, from any chunk, the run cut where the file ends. */
static void test_pfs_runs_of_chunks_read_at_once(void)
{
	const unsigned shift = TP_PFS_MIN_SHIFT;
	const size_t chunk = (size_t)1 << shift, size = 7 * chunk + 123, run = 3;
	struct tp_pfs_header h = header(TP_PFS_BUNDLE, shift, size, 10);
	struct tp_pfs_reader *rd = NULL;
	struct mem plain, sealed;
	uint8_t *buf = malloc(run * chunk), *in = malloc(run * (chunk + TP_PFS_TAG_SIZE));
	size_t len;
	char err[256];

	NEED_CRYPTO();
	pattern(&plain, size, 3);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);
	CHECK(tp_pfs_reader_open(key_a, TP_PFS_BUNDLE, mem_read, &sealed, sealed.size, &rd, err,
				 sizeof(err)) == 0);
	if (rd && buf && in) {
		for (uint64_t first = 0; first < 8; first++) {
			size_t want = first + run >= 8 ? size - first * chunk : run * chunk;
			CHECK(tp_pfs_read_chunks(rd, first, run, in, buf, &len, err, sizeof(err)) ==
			      0);
			CHECK(len == want && memcmp(buf, plain.data + first * chunk, want) == 0);
		}
		len = 1;
		CHECK(tp_pfs_read_chunks(rd, 2, 0, in, buf, &len, err, sizeof(err)) == -ERANGE &&
		      len == 0);
		CHECK(tp_pfs_read_chunks(rd, 8, run, in, buf, &len, err, sizeof(err)) == -ERANGE);
	}
	tp_pfs_reader_free(rd);
	free(buf);
	free(in);
	mem_free(&plain);
	mem_free(&sealed);
}

/* A file of several runs with a bad chunk in its second: open_all writes the first
 * run whole and nothing of the second. */
static void test_pfs_open_all_stops_at_the_run_holding_a_bad_chunk(void)
{
	const size_t chunk = 4096, per_run = (256u << 10) / 4096, size = 70 * chunk + 9;
	struct tp_pfs_header h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, size, 0x12);
	struct mem plain, sealed, back;

	NEED_CRYPTO();
	pattern(&plain, size, 4);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);
	sealed.data[TP_PFS_HEADER_SIZE + 66 * (chunk + TP_PFS_TAG_SIZE) + 7] ^= 0x20;
	CHECK(open_all(key_a, TP_PFS_DATA, &sealed, &back) == -EBADMSG);
	CHECK(back.size == per_run * chunk && memcmp(back.data, plain.data, back.size) == 0);
	mem_free(&back);
	mem_free(&plain);
	mem_free(&sealed);
}

/* sealed with byte at flipped by mask: what opening it gives */
static int open_flipped(const struct mem *sealed, size_t at, uint8_t mask,
			enum tp_pfs_purpose purpose)
{
	struct mem copy, back;
	int r;

	mem_copy(&copy, sealed);
	copy.data[at] ^= mask;
	r = open_all(key_a, purpose, &copy, &back);
	mem_free(&copy);
	mem_free(&back);
	return r;
}

/* what reader_open alone gives for sealed's header changed */
static int parse_flipped(const struct mem *sealed, size_t at, uint8_t mask)
{
	uint8_t bytes[TP_PFS_HEADER_SIZE];
	struct tp_pfs_header h;
	char err[256];

	memcpy(bytes, sealed->data, sizeof(bytes));
	bytes[at] ^= mask;
	return tp_pfs_header_parse(bytes, &h, err, sizeof(err));
}

static void test_pfs_header_changes_are_refused_each_with_its_error(void)
{
	const size_t size = 3 * 4096 + 5;
	struct tp_pfs_header h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, size, 0x11);
	struct mem plain, sealed;

	NEED_CRYPTO();
	pattern(&plain, size, 2);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);
	CHECK(sealed.size == tp_pfs_sealed_size(size, TP_PFS_MIN_SHIFT));
	CHECK(memcmp(sealed.data, TP_PFS_MAGIC, 8) == 0);
	CHECK(sealed.data[8] == TP_PFS_VERSION && sealed.data[9] == 0);
	CHECK(sealed.data[10] == TP_PFS_DATA && sealed.data[11] == TP_PFS_MIN_SHIFT);
	CHECK(open_flipped(&sealed, 0, 0, TP_PFS_DATA) == 0);

	/* magic, bytes 0-7: not a protected file */
	for (size_t at = 0; at < 8; at++) {
		CHECK(open_flipped(&sealed, at, 0x01, TP_PFS_DATA) == -EINVAL);
		CHECK(parse_flipped(&sealed, at, 0x01) == -EINVAL);
	}
	/* version, 8-9 */
	CHECK(open_flipped(&sealed, 8, 0x01, TP_PFS_DATA) == -EPROTONOSUPPORT); /* 0 */
	CHECK(open_flipped(&sealed, 8, 0x02, TP_PFS_DATA) == -EPROTONOSUPPORT); /* 3 */
	CHECK(open_flipped(&sealed, 9, 0x01, TP_PFS_DATA) == -EPROTONOSUPPORT); /* 257 */
	CHECK(parse_flipped(&sealed, 8, 0x02) == -EPROTONOSUPPORT);
	/* purpose, 10: none, or another kind, whose key check then fails */
	CHECK(open_flipped(&sealed, 10, 0x01, TP_PFS_DATA) == -EINVAL);	     /* 0 */
	CHECK(open_flipped(&sealed, 10, 0x04, TP_PFS_DATA) == -EINVAL);	     /* 5 */
	CHECK(open_flipped(&sealed, 10, 0x02, TP_PFS_DATA) == -EMEDIUMTYPE); /* 3: volume */
	CHECK(open_flipped(&sealed, 10, 0x02, TP_PFS_VOLUME) == -EKEYREJECTED);
	CHECK(open_flipped(&sealed, 10, 0x03, TP_PFS_BUNDLE) == -EKEYREJECTED);
	CHECK(parse_flipped(&sealed, 10, 0x01) == -EINVAL);
	CHECK(parse_flipped(&sealed, 10, 0x02) == 0);
	/* chunk shift, 11: out of range, or another that the key check covers */
	CHECK(open_flipped(&sealed, 11, 0x80, TP_PFS_DATA) == -EINVAL);	      /* 140 */
	CHECK(open_flipped(&sealed, 11, 0x08, TP_PFS_DATA) == -EINVAL);	      /* 4 */
	CHECK(open_flipped(&sealed, 11, 0x01, TP_PFS_DATA) == -EKEYREJECTED); /* 13 */
	CHECK(open_flipped(&sealed, 11, 0x1c, TP_PFS_DATA) == -EKEYREJECTED); /* 16 */
	/* reserved, 12-15 */
	for (size_t at = 12; at < 16; at++) {
		CHECK(open_flipped(&sealed, at, 0x01, TP_PFS_DATA) == -EINVAL);
		CHECK(parse_flipped(&sealed, at, 0x01) == -EINVAL);
	}
	/* size 16-23, id 24-55 and the key check 56-71 */
	for (size_t at = 16; at < TP_PFS_HEADER_SIZE; at++) {
		if (open_flipped(&sealed, at, 0x01, TP_PFS_DATA) != -EKEYREJECTED ||
		    open_flipped(&sealed, at, 0x80, TP_PFS_DATA) != -EKEYREJECTED) {
			fprintf(stderr, "  header byte %zu changed is not -EKEYREJECTED\n", at);
			CHECK(false);
		}
	}
	/* the header's own parse does not see those: only the key does */
	CHECK(parse_flipped(&sealed, 16, 0x01) == 0);
	CHECK(parse_flipped(&sealed, 40, 0x01) == 0);
	CHECK(parse_flipped(&sealed, 70, 0x01) == 0);
	/* a size no file can have (its sealed size past 64 bits) */
	{
		uint8_t bytes[TP_PFS_HEADER_SIZE];
		struct tp_pfs_header got;
		char err[256];

		memcpy(bytes, sealed.data, sizeof(bytes));
		memset(bytes + 16, 0xff, 8);
		CHECK(tp_pfs_header_parse(bytes, &got, err, sizeof(err)) == -EINVAL);
	}
	mem_free(&plain);
	mem_free(&sealed);
}

/* A file of 4 chunks of 4096 bytes (the last short) with the chunks in bad_mask not
 * authenticating: open_all stops at the first with nothing of it written (nor of
 * the chunks read in the same run before it: all four here), and read_chunk refuses
 * each of them alone, wiping the buffer, and reads the others. */
static void check_chunks_refused(struct mem *sealed, unsigned bad_mask)
{
	struct tp_pfs_reader *rd = NULL;
	struct mem back;
	uint8_t buf[4096];
	uint64_t first_bad = (uint64_t)__builtin_ctz(bad_mask);
	size_t len = 1;
	char err[256];

	CHECK(open_all(key_a, TP_PFS_DATA, sealed, &back) == -EBADMSG);
	CHECK(back.size == 0);
	mem_free(&back);
	CHECK(tp_pfs_reader_open(key_a, TP_PFS_DATA, mem_read, sealed, sealed->size, &rd, err,
				 sizeof(err)) == 0);
	if (!rd)
		return;
	for (uint64_t i = 0; i < 4; i++) {
		memset(buf, 0x5a, sizeof(buf));
		if (!(bad_mask & (1u << i))) {
			CHECK(tp_pfs_read_chunk(rd, i, buf, &len, err, sizeof(err)) == 0);
			continue;
		}
		CHECK(tp_pfs_read_chunk(rd, i, buf, &len, err, sizeof(err)) == -EBADMSG);
		CHECK(len == 0 && is_zero(buf, i == 3 ? 5 : sizeof(buf))); /* wiped */
		CHECK(strstr(err, "does not authenticate") != NULL);
	}
	/* all four as one run: refused, and none of its plaintext is left */
	{
		uint8_t run[4 * 4096], in[4 * (4096 + TP_PFS_TAG_SIZE)];
		memset(run, 0x5a, sizeof(run));
		CHECK(tp_pfs_read_chunks(rd, 0, 4, in, run, &len, err, sizeof(err)) == -EBADMSG);
		CHECK(len == 0 && is_zero(run, first_bad * 4096 + (first_bad == 3 ? 5 : 4096)));
		CHECK(strstr(err, "does not authenticate") != NULL);
	}
	tp_pfs_reader_free(rd);
}

static void test_pfs_chunk_changes_are_refused_as_bad_messages(void)
{
	const size_t chunk = 4096, sealed_chunk = chunk + TP_PFS_TAG_SIZE, size = 3 * chunk + 5;
	struct tp_pfs_header h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, size, 0x11);
	struct mem plain, sealed, copy, back;
	const size_t at1 = TP_PFS_HEADER_SIZE + sealed_chunk; /* chunk 1 */

	NEED_CRYPTO();
	pattern(&plain, size, 2);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);

	/* a ciphertext byte, a tag byte, of a middle and of the last (short) chunk */
	mem_copy(&copy, &sealed);
	copy.data[at1 + 100] ^= 0x01;
	check_chunks_refused(&copy, 1u << 1);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	copy.data[at1 + chunk + 3] ^= 0x40;
	check_chunks_refused(&copy, 1u << 1);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	copy.data[sealed.size - TP_PFS_TAG_SIZE - 1] ^= 0x01;
	check_chunks_refused(&copy, 1u << 3);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	copy.data[sealed.size - 1] ^= 0x01;
	check_chunks_refused(&copy, 1u << 3);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	copy.data[TP_PFS_HEADER_SIZE] ^= 0x01;
	check_chunks_refused(&copy, 1u << 0);
	mem_free(&copy);

	/* chunks 0 and 1 swapped: each authenticates only where it was */
	mem_copy(&copy, &sealed);
	memcpy(copy.data + TP_PFS_HEADER_SIZE, sealed.data + at1, sealed_chunk);
	memcpy(copy.data + at1, sealed.data + TP_PFS_HEADER_SIZE, sealed_chunk);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EBADMSG && back.size == 0);
	check_chunks_refused(&copy, 1u << 0 | 1u << 1);
	mem_free(&copy);
	mem_free(&back);

	/* truncated: at a chunk boundary, mid-chunk, to the header alone, below it */
	const size_t cuts[] = { sealed.size - (5 + TP_PFS_TAG_SIZE), at1 + sealed_chunk, at1 + 17,
				sealed.size - 1, TP_PFS_HEADER_SIZE };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		mem_copy(&copy, &sealed);
		copy.size = cuts[i];
		CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EBADMSG && back.size == 0);
		mem_free(&copy);
		mem_free(&back);
	}
	mem_copy(&copy, &sealed);
	copy.size = TP_PFS_HEADER_SIZE - 1;
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EINVAL);
	copy.size = 0;
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EINVAL);
	mem_free(&copy);

	/* extended by one byte, or by a whole chunk */
	mem_copy(&copy, &sealed);
	CHECK(mem_write(&copy, copy.size, "", 1) == 0);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EBADMSG);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	CHECK(mem_write(&copy, copy.size, sealed.data + at1, sealed_chunk) == 0);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EBADMSG);
	mem_free(&copy);

	/* a reader whose source shrank after it was opened: read_chunk says -EBADMSG */
	{
		struct tp_pfs_reader *rd = NULL;
		uint8_t buf[4096];
		size_t len;
		char err[256];

		mem_copy(&copy, &sealed);
		CHECK(tp_pfs_reader_open(key_a, TP_PFS_DATA, mem_read, &copy, copy.size, &rd, err,
					 sizeof(err)) == 0);
		copy.size = at1 + 10;
		if (rd) {
			CHECK(tp_pfs_read_chunk(rd, 0, buf, &len, err, sizeof(err)) == 0);
			CHECK(tp_pfs_read_chunk(rd, 2, buf, &len, err, sizeof(err)) == -EBADMSG);
		}
		tp_pfs_reader_free(rd);
		mem_free(&copy);
	}
	mem_free(&plain);
	mem_free(&sealed);
}

static void test_pfs_chunks_of_another_file_or_key_are_refused(void)
{
	const size_t chunk = 4096, sealed_chunk = chunk + TP_PFS_TAG_SIZE, size = 3 * chunk + 5;
	struct tp_pfs_header h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, size, 0x11);
	struct tp_pfs_header other_id = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, size, 0x12);
	struct tp_pfs_header as_volume = header(TP_PFS_VOLUME, TP_PFS_MIN_SHIFT, size, 0x11);
	struct mem plain, sealed, other, copy, back;
	const size_t at1 = TP_PFS_HEADER_SIZE + sealed_chunk;

	NEED_CRYPTO();
	pattern(&plain, size, 2);
	CHECK(seal(key_a, &h, &plain, &sealed) == 0);

	/* the same plaintext under the same key and another id: chunk 1 moved over */
	CHECK(seal(key_a, &other_id, &plain, &other) == 0);
	CHECK(open_all(key_a, TP_PFS_DATA, &other, &back) == 0);
	mem_free(&back);
	CHECK(memcmp(other.data + at1, sealed.data + at1, sealed_chunk) != 0);
	mem_copy(&copy, &sealed);
	memcpy(copy.data + at1, other.data + at1, sealed_chunk);
	check_chunks_refused(&copy, 1u << 1);
	mem_free(&copy);
	/* nor its header over these chunks */
	mem_copy(&copy, &sealed);
	memcpy(copy.data, other.data, TP_PFS_HEADER_SIZE);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EBADMSG);
	mem_free(&copy);
	mem_free(&back);
	mem_free(&other);

	/* the same id under another purpose: a header of its own, chunks of their own */
	CHECK(seal(key_a, &as_volume, &plain, &other) == 0);
	mem_copy(&copy, &sealed);
	memcpy(copy.data + at1, other.data + at1, sealed_chunk);
	check_chunks_refused(&copy, 1u << 1);
	mem_free(&copy);
	mem_free(&other);

	/* another key, another purpose */
	CHECK(open_all(key_b, TP_PFS_DATA, &sealed, &back) == -EKEYREJECTED);
	CHECK(open_all(key_a, TP_PFS_VOLUME, &sealed, &back) == -EMEDIUMTYPE);
	CHECK(open_all(key_a, TP_PFS_BUNDLE, &sealed, &back) == -EMEDIUMTYPE);
	CHECK(open_all(key_a, TP_PFS_DATA, &sealed, &back) == 0 && back.size == size);
	mem_free(&back);

	/* a header that claims more than its chunks hold (the file made as long): the key
	 * check covers the size */
	mem_copy(&copy, &sealed);
	copy.data[16] += 1;
	CHECK(mem_write(&copy, copy.size, "x", 1) == 0);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EKEYREJECTED);
	mem_free(&copy);
	mem_copy(&copy, &sealed);
	copy.data[17] += 0x10; /* 4096 more: a whole chunk */
	CHECK(mem_write(&copy, copy.size, sealed.data + at1, sealed_chunk) == 0);
	CHECK(open_all(key_a, TP_PFS_DATA, &copy, &back) == -EKEYREJECTED);
	mem_free(&copy);
	mem_free(&plain);
	mem_free(&sealed);
}

static void test_pfs_seal_refuses_fields_no_file_has_and_short_plaintext(void)
{
	struct mem plain, sealed;
	struct tp_pfs_header h;
	char err[256];

	NEED_CRYPTO();
	pattern(&plain, 100, 0);
	h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT - 1, 100, 1);
	CHECK(seal(key_a, &h, &plain, &sealed) == -EINVAL && sealed.size == 0);
	h = header(TP_PFS_DATA, TP_PFS_MAX_SHIFT + 1, 100, 1);
	CHECK(seal(key_a, &h, &plain, &sealed) == -EINVAL && sealed.size == 0);
	h = header((enum tp_pfs_purpose)0, TP_PFS_MIN_SHIFT, 100, 1);
	CHECK(seal(key_a, &h, &plain, &sealed) == -EINVAL && sealed.size == 0);
	h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, UINT64_MAX, 1);
	CHECK(seal(key_a, &h, &plain, &sealed) == -EINVAL && sealed.size == 0);
	/* the plaintext ends before the header's size */
	memset(&sealed, 0, sizeof(sealed));
	h = header(TP_PFS_DATA, TP_PFS_MIN_SHIFT, 101, 1);
	CHECK(tp_pfs_seal(key_a, &h, mem_read, &plain, mem_write, &sealed, err, sizeof(err)) ==
	      -ENODATA);
	CHECK(strstr(err, "ended before its size") != NULL);
	mem_free(&sealed);
	mem_free(&plain);
}

/* ---- ids ---- */

static bool derive(const uint8_t *key, enum tp_pfs_purpose purpose, const char *name,
		   struct mem *plain, uint8_t id[TP_PFS_ID_SIZE])
{
	char err[256];

	return tp_pfs_derive_id(key, purpose, TP_PFS_DEFAULT_SHIFT, name, plain->size, mem_read,
				plain, id, err, sizeof(err)) == 0;
}

static void test_pfs_derived_id_follows_key_name_and_every_byte(void)
{
	const size_t size = 200 * 1000; /* more than the hash's read buffer */
	uint8_t a[TP_PFS_ID_SIZE], b[TP_PFS_ID_SIZE];
	struct mem plain, empty = { 0 };
	char err[256];

	NEED_CRYPTO();
	pattern(&plain, size, 5);
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py", &plain, a));
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	plain.data[size - 1] ^= 0x01; /* in the last read */
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	plain.data[size - 1] ^= 0x01;
	plain.data[0] ^= 0x80;
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	plain.data[0] ^= 0x80;
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.pz", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py ", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(derive(key_b, TP_PFS_BUNDLE, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(derive(key_a, TP_PFS_DATA, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	/* one byte shorter */
	plain.size--;
	CHECK(derive(key_a, TP_PFS_BUNDLE, "app/main.py", &plain, b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	plain.size++;
	/* the lengths keep name and content apart: "ab" + "c" is not "a" + "bc" */
	{
		struct mem c = { (uint8_t *)"c", 1, 1 }, bc = { (uint8_t *)"bc", 2, 2 };
		CHECK(derive(key_a, TP_PFS_BUNDLE, "ab", &c, a));
		CHECK(derive(key_a, TP_PFS_BUNDLE, "a", &bc, b));
		CHECK(memcmp(a, b, sizeof(a)) != 0);
	}
	CHECK(derive(key_a, TP_PFS_BUNDLE, "", &empty, a));
	/* the plaintext shorter than its size: an error and no id */
	memset(b, 0x33, sizeof(b));
	CHECK(tp_pfs_derive_id(key_a, TP_PFS_BUNDLE, TP_PFS_DEFAULT_SHIFT, "x", size + 1, mem_read,
			       &plain, b, err, sizeof(err)) == -ENODATA);
	CHECK(is_zero(b, sizeof(b)));
	mem_free(&plain);
}

static void test_pfs_deterministic_seal_is_byte_identical(void)
{
	const size_t size = 3 * 4096 + 5;
	struct mem plain, one, two, three;
	struct tp_pfs_header h = header(TP_PFS_BUNDLE, TP_PFS_MIN_SHIFT, size, 0);

	NEED_CRYPTO();
	pattern(&plain, size, 8);
	CHECK(derive(key_a, TP_PFS_BUNDLE, "lib/x.py", &plain, h.id));
	CHECK(seal(key_a, &h, &plain, &one) == 0);
	CHECK(seal(key_a, &h, &plain, &two) == 0);
	CHECK(one.size == two.size && memcmp(one.data, two.data, one.size) == 0);
	/* a changed byte: another id, so no chunk shares a nonce with the first */
	plain.data[5000] ^= 1;
	CHECK(derive(key_a, TP_PFS_BUNDLE, "lib/x.py", &plain, h.id));
	CHECK(seal(key_a, &h, &plain, &three) == 0);
	CHECK(memcmp(one.data + 24, three.data + 24, TP_PFS_ID_SIZE) != 0);
	CHECK(memcmp(one.data + TP_PFS_HEADER_SIZE, three.data + TP_PFS_HEADER_SIZE, 4096) != 0);
	mem_free(&plain);
	mem_free(&one);
	mem_free(&two);
	mem_free(&three);
}

static void test_pfs_size_arithmetic_and_its_overflow(void)
{
	CHECK(tp_pfs_chunk_count(0, 12) == 1);
	CHECK(tp_pfs_chunk_count(1, 12) == 1);
	CHECK(tp_pfs_chunk_count(4095, 12) == 1);
	CHECK(tp_pfs_chunk_count(4096, 12) == 1);
	CHECK(tp_pfs_chunk_count(4097, 12) == 2);
	CHECK(tp_pfs_chunk_count(3 * 65536 + 5, 16) == 4);
	CHECK(tp_pfs_chunk_count(UINT64_MAX, 12) == (uint64_t)1 << 52);
	CHECK(tp_pfs_chunk_count(UINT64_MAX, 20) == (uint64_t)1 << 44);

	CHECK(tp_pfs_sealed_size(0, 16) == TP_PFS_HEADER_SIZE + TP_PFS_TAG_SIZE);
	CHECK(tp_pfs_sealed_size(1, 16) == TP_PFS_HEADER_SIZE + TP_PFS_TAG_SIZE + 1);
	CHECK(tp_pfs_sealed_size(65536, 16) == TP_PFS_HEADER_SIZE + TP_PFS_TAG_SIZE + 65536);
	CHECK(tp_pfs_sealed_size(65537, 16) == TP_PFS_HEADER_SIZE + 2 * TP_PFS_TAG_SIZE + 65537);
	CHECK(tp_pfs_sealed_size(100000000, 16) == 72 + 1526 * 16 + 100000000);
	/* the largest sizes that fit in 64 bits, and one more */
	CHECK(tp_pfs_sealed_size(0xff00ff00ff00feb7, 12) == UINT64_MAX);
	CHECK(tp_pfs_sealed_size(0xff00ff00ff00feb8, 12) == 0);
	CHECK(tp_pfs_sealed_size(0xfff000fff000ffa7, 16) == UINT64_MAX);
	CHECK(tp_pfs_sealed_size(0xfff000fff000ffa8, 16) == 0);
	CHECK(tp_pfs_sealed_size(0xffff0000fffeffb7, 20) == UINT64_MAX);
	CHECK(tp_pfs_sealed_size(0xffff0000fffeffb8, 20) == 0);
	CHECK(tp_pfs_sealed_size(UINT64_MAX, 12) == 0);
	CHECK(tp_pfs_sealed_size(UINT64_MAX - TP_PFS_HEADER_SIZE, 20) == 0);
}

TESTS(crypto_pfs_tests) = {
	{ "hmac_sha256_matches_rfc4231", test_hmac_sha256_matches_rfc4231 },
	{ "hmac_streamed_in_pieces_equals_one_call", test_hmac_streamed_in_pieces_equals_one_call },
	{ "hkdf_sha256_matches_rfc5869", test_hkdf_sha256_matches_rfc5869 },
	{ "hkdf_refuses_more_than_255_blocks", test_hkdf_refuses_more_than_255_blocks },
	{ "aes256_gcm_seal_matches_the_gcm_spec_vectors",
	  test_aes256_gcm_seal_matches_the_gcm_spec_vectors },
	{ "aes256_gcm_open_refuses_any_changed_byte",
	  test_aes256_gcm_open_refuses_any_changed_byte },
	{ "secret_memory_is_zeroed_and_random_fills",
	  test_secret_memory_is_zeroed_and_random_fills },
	{ "symkey_parse_reads_the_one_shape", test_symkey_parse_reads_the_one_shape },
	{ "symkey_parse_refuses_anything_else", test_symkey_parse_refuses_anything_else },
	{ "symkey_generate_writes_a_private_file_read_back",
	  test_symkey_generate_writes_a_private_file_read_back },
	{ "pfs_round_trips_at_every_edge_of_a_chunk",
	  test_pfs_round_trips_at_every_edge_of_a_chunk },
	{ "pfs_round_trips_100_mb", test_pfs_round_trips_100_mb },
	{ "pfs_seals_as_an_independent_implementation_does",
	  test_pfs_seals_as_an_independent_implementation_does },
	{ "pfs_chunks_read_alone_in_reverse_order", test_pfs_chunks_read_alone_in_reverse_order },
	{ "pfs_runs_of_chunks_read_at_once", test_pfs_runs_of_chunks_read_at_once },
	{ "pfs_open_all_stops_at_the_run_holding_a_bad_chunk",
	  test_pfs_open_all_stops_at_the_run_holding_a_bad_chunk },
	{ "pfs_header_changes_are_refused_each_with_its_error",
	  test_pfs_header_changes_are_refused_each_with_its_error },
	{ "pfs_chunk_changes_are_refused_as_bad_messages",
	  test_pfs_chunk_changes_are_refused_as_bad_messages },
	{ "pfs_chunks_of_another_file_or_key_are_refused",
	  test_pfs_chunks_of_another_file_or_key_are_refused },
	{ "pfs_seal_refuses_fields_no_file_has_and_short_plaintext",
	  test_pfs_seal_refuses_fields_no_file_has_and_short_plaintext },
	{ "pfs_derived_id_follows_key_name_and_every_byte",
	  test_pfs_derived_id_follows_key_name_and_every_byte },
	{ "pfs_deterministic_seal_is_byte_identical",
	  test_pfs_deterministic_seal_is_byte_identical },
	{ "pfs_size_arithmetic_and_its_overflow", test_pfs_size_arithmetic_and_its_overflow },
	END_TESTS,
};
