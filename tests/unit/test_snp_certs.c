/* The SEV-SNP certificate table (src/attest/snp_certs.c): tables built here from the
 * real VCEK and AMD's Milan ASK and ARK (../shared/testdata/attestation, RECORDED
 * certificates, laid out as a host lays them out), and every way the host's bytes
 * can be wrong: cut short, offsets into the table or past its end, lengths that
 * wrap, GUIDs twice or missing, too many entries. */
#include "test.h"
#include "../../src/attest/attest.h"
#include "../../src/common/io.h"
#include "../../src/common/le.h"
#include "../../src/crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

/* the GUIDs, in the order their text is written (AMD's, GHCB specification) */
static const uint8_t vcek_guid[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
				       0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
static const uint8_t ask_guid[16] = { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
				      0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 };
static const uint8_t ark_guid[16] = { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
				      0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae };
static const uint8_t vlek_guid[16] = { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
				       0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 };
static const uint8_t other_guid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

#define TABLE_MAX (64 << 10)

struct entry {
	const uint8_t *guid;
	const uint8_t *der; /* NULL: offset and size as given */
	size_t size;
	uint32_t offset;
};

/* A table as a host writes it: the entries, the one of zeros, then each certificate
 * in order. Returns its size. */
static size_t build(uint8_t *out, const struct entry *e, size_t n)
{
	size_t at = (n + 1) * TP_SNP_CERT_ENTRY_SIZE, i;

	memset(out, 0, at);
	for (i = 0; i < n; i++) {
		uint8_t *row = out + i * TP_SNP_CERT_ENTRY_SIZE;
		memcpy(row, e[i].guid, 16);
		if (e[i].der) {
			tp_put_le(row + 16, at, 4);
			tp_put_le(row + 20, e[i].size, 4);
			memcpy(out + at, e[i].der, e[i].size);
			at += e[i].size;
		} else {
			tp_put_le(row + 16, e[i].offset, 4);
			tp_put_le(row + 20, e[i].size, 4);
		}
	}
	return at;
}

static uint8_t *load(const char *name, size_t *size)
{
	char path[512], *text = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", TP_ATTEST_TESTDATA, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || tp_read_all(fd, 1 << 20, &text, size) < 0) {
		fprintf(stderr, "  cannot read %s: the test evidence (../shared/testdata)\n", path);
		abort();
	}
	close(fd);
	return (uint8_t *)text;
}

/* Stand-ins for the ASK and ARK: the table does not parse certificates (the
 * producer does), so any bytes do; the real ones are in the end-to-end tests. */
static const uint8_t ask_der[] = "ASK's DER, recorded elsewhere";
static const uint8_t ark_der[] = "ARK's DER, recorded elsewhere";

static void test_snp_certs_a_hosts_table_gives_each_certificate(void)
{
	static uint8_t table[TABLE_MAX];
	struct tp_snp_certs t;
	size_t vcek_size;
	uint8_t *vcek = load("snp/test-vcek.der", &vcek_size);
	const struct entry e[] = { { vcek_guid, vcek, vcek_size, 0 },
				   { ask_guid, ask_der, sizeof(ask_der), 0 },
				   { ark_guid, ark_der, sizeof(ark_der), 0 } };
	size_t size = build(table, e, 3);
	char err[256] = "";
	const struct tp_snp_cert *c;

	CHECK(tp_snp_certs_parse(table, size, &t, err, sizeof(err)) == 0);
	CHECK(t.count == 3 && t.table_size == 4 * TP_SNP_CERT_ENTRY_SIZE);
	CHECK((c = tp_snp_certs_find(&t, TP_SNP_CERT_VCEK)) && c->size == vcek_size &&
	      memcmp(c->der, vcek, vcek_size) == 0 && c->offset == 96);
	CHECK((c = tp_snp_certs_find(&t, TP_SNP_CERT_ASK)) && c->size == sizeof(ask_der) &&
	      memcmp(c->der, ask_der, sizeof(ask_der)) == 0);
	CHECK((c = tp_snp_certs_find(&t, TP_SNP_CERT_ARK)) &&
	      c->der == table + size - sizeof(ark_der));
	CHECK(!tp_snp_certs_find(&t, TP_SNP_CERT_VLEK));
	CHECK_STR(tp_snp_cert_kind_name(t.entries[1].kind), "ASK");
	free(vcek);
}

static void test_snp_certs_no_bytes_or_only_the_end_are_no_certificates(void)
{
	static const uint8_t zeros[TP_SNP_CERT_ENTRY_SIZE + 100];
	struct tp_snp_certs t;
	char err[256] = "";

	CHECK(tp_snp_certs_parse(zeros, 0, &t, err, sizeof(err)) == 0 && t.count == 0);
	/* the end entry, and padding after it */
	CHECK(tp_snp_certs_parse(zeros, TP_SNP_CERT_ENTRY_SIZE, &t, err, sizeof(err)) == 0 &&
	      t.count == 0);
	CHECK(tp_snp_certs_parse(zeros, sizeof(zeros), &t, err, sizeof(err)) == 0 && t.count == 0);
	CHECK(!tp_snp_certs_find(&t, TP_SNP_CERT_VCEK));
}

static void test_snp_certs_cut_short_at_every_length_is_refused(void)
{
	static uint8_t table[TABLE_MAX];
	const struct entry e[] = { { vcek_guid, ask_der, sizeof(ask_der), 0 },
				   { ark_guid, ark_der, sizeof(ark_der), 0 } };
	size_t size = build(table, e, 2);
	struct tp_snp_certs t;

	for (size_t n = 1; n < size; n++) {
		char err[256] = "";
		uint8_t *copy = malloc(n); /* exact: a read past it is ASan's to see */
		memcpy(copy, table, n);
		if (tp_snp_certs_parse(copy, n, &t, err, sizeof(err)) != -EINVAL || !err[0]) {
			fprintf(stderr, "  cut to %zu of %zu bytes: not refused\n", n, size);
			tp_test_failures++;
		}
		free(copy);
	}
}

/* Each table refused, and the words of its refusal. */
static void test_snp_certs_offsets_lengths_and_guids_the_host_got_wrong_are_refused(void)
{
	static uint8_t table[TABLE_MAX];
	static const uint8_t null_guid[16];
	const size_t t2 = 3 * TP_SNP_CERT_ENTRY_SIZE; /* two entries and the end */
	static const struct {
		const char *what;
		struct entry e[2];
		size_t extra; /* bytes after the table */
		const char *says;
	} cases[] = {
		{ "a certificate inside the table",
		  { { vcek_guid, NULL, 10, 0 }, { ask_guid, NULL, 10, 60 } },
		  100,
		  "entry 0 (VCEK): its certificate at offset 0 lies in the table itself (72 "
		  "bytes)" },
		{ "a certificate overlapping the end entry",
		  { { vcek_guid, NULL, 10, 72 }, { ask_guid, NULL, 10, 70 } },
		  100,
		  "entry 1 (ASK): its certificate at offset 70 lies in the table" },
		{ "past the end",
		  { { vcek_guid, NULL, 10, 72 }, { ask_guid, NULL, 29, 72 } },
		  28,
		  "entry 1 (ASK): bytes 72 to 101 are past the end (100 bytes" },
		{ "a length that wraps 32 bits",
		  { { vcek_guid, NULL, 0xffffffff, 0xffffffff }, { ask_guid, NULL, 1, 72 } },
		  28,
		  "entry 0 (VCEK): bytes 4294967295 to 8589934590 are past the end" },
		{ "a GUID twice",
		  { { ark_guid, NULL, 1, 72 }, { ark_guid, NULL, 1, 73 } },
		  28,
		  "entry 1 (ARK): the GUID of entry 0 again" },
		{ "an unknown GUID twice",
		  { { other_guid, NULL, 1, 72 }, { other_guid, NULL, 1, 73 } },
		  28,
		  "entry 1 (GUID 01020304-0506-0708-090a-0b0c0d0e0f10): the GUID of entry 0 "
		  "again" },
		{ "no GUID, yet an offset",
		  { { vcek_guid, NULL, 1, 72 }, { null_guid, NULL, 0, 72 } },
		  28,
		  "entry 1: no GUID, yet an offset or length" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tp_snp_certs t;
		char err[256] = "";
		size_t size = build(table, cases[i].e, 2);
		CHECK(size == t2);
		memset(table + t2, 0xab, cases[i].extra);
		int r = tp_snp_certs_parse(table, t2 + cases[i].extra, &t, err, sizeof(err));
		if (r != -EINVAL || !strstr(err, cases[i].says)) {
			fprintf(stderr, "  %s: %d '%s', want '%s'\n", cases[i].what, r, err,
				cases[i].says);
			tp_test_failures++;
		}
	}
}

static void test_snp_certs_at_most_64_entries(void)
{
	static uint8_t table[TABLE_MAX];
	static uint8_t guids[TP_SNP_CERTS_MAX + 1][16];
	struct entry e[TP_SNP_CERTS_MAX + 1];
	struct tp_snp_certs t;
	char err[256] = "";

	for (size_t i = 0; i <= TP_SNP_CERTS_MAX; i++) {
		guids[i][0] = (uint8_t)(i + 1);
		e[i] = (struct entry){ guids[i], ark_der, sizeof(ark_der), 0 };
	}
	CHECK(tp_snp_certs_parse(table, build(table, e, TP_SNP_CERTS_MAX), &t, err, sizeof(err)) ==
	      0);
	CHECK(t.count == TP_SNP_CERTS_MAX && t.entries[63].kind == TP_SNP_CERT_OTHER);
	CHECK(tp_snp_certs_parse(table, build(table, e, TP_SNP_CERTS_MAX + 1), &t, err,
				 sizeof(err)) == -EINVAL);
	CHECK_STR(err, "more than 64 entries");
}

/* What a host may do and a reader must take: an empty slot, two entries sharing
 * bytes, entries of GUIDs AMD did not assign, bytes no entry names. */
static void test_snp_certs_empty_slots_shared_bytes_and_other_guids_are_taken(void)
{
	static uint8_t table[TABLE_MAX];
	const struct entry e[] = {
		{ vlek_guid, NULL, 0, 0xffffffff }, /* empty: its offset is not read */
		{ other_guid, NULL, 5, 120 },
		{ ask_guid, NULL, 10, 120 }, /* the same bytes as the entry before */
		{ ark_guid, NULL, 10, 125 },
	};
	size_t size = build(table, e, 4);
	struct tp_snp_certs t;
	char err[256] = "", guid[TP_SNP_GUID_TEXT];

	CHECK(size == 120);
	memset(table + size, 0x5a, 100);
	CHECK(tp_snp_certs_parse(table, size + 100, &t, err, sizeof(err)) == 0);
	CHECK(t.count == 4 && t.entries[0].size == 0 && !t.entries[0].der);
	CHECK(!tp_snp_certs_find(&t, TP_SNP_CERT_VLEK)); /* an empty slot is no certificate */
	CHECK(t.entries[1].der == table + 120 && t.entries[2].der == table + 120);
	CHECK(tp_snp_certs_find(&t, TP_SNP_CERT_ARK)->der == table + 125);
	CHECK(t.entries[1].kind == TP_SNP_CERT_OTHER);
	tp_snp_guid_text(t.entries[1].guid, guid);
	CHECK_STR(guid, "01020304-0506-0708-090a-0b0c0d0e0f10");
	CHECK_STR(tp_snp_cert_kind_name(TP_SNP_CERT_OTHER), "another GUID");
}

/* The GUID's bytes are in the order of its text, as AMD's and the host tools write
 * them: the same GUID with its first three fields little-endian is another one. */
static void test_snp_certs_guid_bytes_are_in_the_order_of_their_text(void)
{
	static uint8_t table[TABLE_MAX];
	static const uint8_t vcek_mixed[16] = { 0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45,
						0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
	const struct entry e[] = { { vcek_mixed, ask_der, sizeof(ask_der), 0 } };
	struct tp_snp_certs t;
	char err[256] = "", guid[TP_SNP_GUID_TEXT];

	tp_snp_guid_text(vcek_guid, guid);
	CHECK_STR(guid, "63da758d-e664-4564-adc5-f4b93be8accd");
	tp_snp_guid_text(ask_guid, guid);
	CHECK_STR(guid, "4ab7b379-bbac-4fe4-a02f-05aef327c782");
	tp_snp_guid_text(ark_guid, guid);
	CHECK_STR(guid, "c0b406a4-a803-4952-9743-3fb6014cd0ae");
	tp_snp_guid_text(vlek_guid, guid);
	CHECK_STR(guid, "a8074bc2-a25a-483e-aae6-39c045a0b8a1");
	CHECK(tp_snp_certs_parse(table, build(table, e, 1), &t, err, sizeof(err)) == 0);
	CHECK(t.count == 1 && t.entries[0].kind == TP_SNP_CERT_OTHER);
	CHECK(!tp_snp_certs_find(&t, TP_SNP_CERT_VCEK));
}

/* The chain a CAS takes is PEM made from the table's DER: byte for byte what
 * OpenSSL writes, and it reads back as the same DER. */
static void test_pem_certificate_is_what_openssl_writes(void)
{
	static const struct {
		size_t size;
		const char *pem;
	} small[] = {
		{ 0, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" },
		{ 1, "-----BEGIN CERTIFICATE-----\nYQ==\n-----END CERTIFICATE-----\n" },
		{ 2, "-----BEGIN CERTIFICATE-----\nYWI=\n-----END CERTIFICATE-----\n" },
		{ 3, "-----BEGIN CERTIFICATE-----\nYWJj\n-----END CERTIFICATE-----\n" },
	};
	size_t size, again_size = 0;
	uint8_t *vcek, *again = NULL;
	const unsigned char *p;
	struct tp_cert *certs[2];
	char *pem, *openssl;
	X509 *x;
	BIO *bio;
	long n;

	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		pem = tp_pem_certificate("abc", small[i].size);
		CHECK_STR(pem, small[i].pem);
		free(pem);
	}
	NEED_CRYPTO();
	vcek = load("snp/test-vcek.der", &size);
	p = vcek;
	x = d2i_X509(NULL, &p, (long)size);
	bio = BIO_new(BIO_s_mem());
	CHECK(x && bio && PEM_write_bio_X509(bio, x) == 1);
	n = BIO_get_mem_data(bio, &openssl);
	pem = tp_pem_certificate(vcek, size);
	CHECK(pem && (long)strlen(pem) == n && memcmp(pem, openssl, (size_t)n) == 0);
	CHECK(tp_certs_from_pem(pem, strlen(pem), certs, 2) == 1);
	CHECK(tp_cert_der(certs[0], &again, &again_size) == 0);
	CHECK(again_size == size && memcmp(again, vcek, size) == 0);
	tp_cert_free(certs[0]);
	BIO_free(bio);
	X509_free(x);
	free(again);
	free(pem);
	free(vcek);
}

TESTS(snp_certs_tests) = {
	{ "snp_certs_a_hosts_table_gives_each_certificate",
	  test_snp_certs_a_hosts_table_gives_each_certificate },
	{ "snp_certs_no_bytes_or_only_the_end_are_no_certificates",
	  test_snp_certs_no_bytes_or_only_the_end_are_no_certificates },
	{ "snp_certs_cut_short_at_every_length_is_refused",
	  test_snp_certs_cut_short_at_every_length_is_refused },
	{ "snp_certs_offsets_lengths_and_guids_the_host_got_wrong_are_refused",
	  test_snp_certs_offsets_lengths_and_guids_the_host_got_wrong_are_refused },
	{ "snp_certs_at_most_64_entries", test_snp_certs_at_most_64_entries },
	{ "snp_certs_empty_slots_shared_bytes_and_other_guids_are_taken",
	  test_snp_certs_empty_slots_shared_bytes_and_other_guids_are_taken },
	{ "snp_certs_guid_bytes_are_in_the_order_of_their_text",
	  test_snp_certs_guid_bytes_are_in_the_order_of_their_text },
	{ "pem_certificate_is_what_openssl_writes", test_pem_certificate_is_what_openssl_writes },
	END_TESTS,
};
