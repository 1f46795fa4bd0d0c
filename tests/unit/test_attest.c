/* TDX quotes and SEV-SNP reports: real evidence from confidential-containers/trustee
 * (../shared/testdata/attestation, its README) parsed field by field against
 * trustee's own parse, every signature and chain verified, and each signed region
 * changed by one byte refused by the check that covers it. The evidence's
 * certificates expire, so chains are checked at a fixed time, 2025-06-01, when every
 * one of them was valid (and once with time checks off), never at the time the
 * tests run. */
#include "test.h"
#include "../../src/attest/attest.h"
#include "../../src/common/io.h"
#include "../../src/crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#define AT_2025_06_01 1748736000 /* every certificate of the evidence valid */
#define AT_2026_06_01 1780272000 /* the VLEK (valid to 2025-12-10) expired */
#define AT_2050_01_01 2524608000 /* the Intel SGX Root CA (to 2049-12-31) expired */

static const struct tp_attest_opts at_fixed_time = { .at_time = AT_2025_06_01 };

struct blob {
	uint8_t *bytes;
	size_t size;
};

/* A file of the test data, whole; aborts the run when it is missing: the evidence
 * is beside the repository (../shared), as the README says. */
static struct blob load(const char *name)
{
	char path[512];
	struct blob b = { 0 };
	char *text = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", TP_ATTEST_TESTDATA, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || tp_read_all(fd, 1 << 20, &text, &b.size) < 0) {
		fprintf(stderr, "  cannot read %s: the test evidence (../shared/testdata)\n", path);
		abort();
	}
	close(fd);
	b.bytes = (uint8_t *)text;
	return b;
}

const char *tp_test_failed_names(const struct tp_attest_result *res)
{
	static char out[256];

	out[0] = '\0';
	for (size_t i = 0; i < res->count; i++)
		if (!res->checks[i].ok)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
				 *out ? " " : "", res->checks[i].name);
	return out;
}

static const char *detail_of(const struct tp_attest_result *res, const char *name)
{
	for (size_t i = 0; i < res->count; i++)
		if (strcmp(res->checks[i].name, name) == 0)
			return res->checks[i].detail;
	return "";
}

static void check_hex(const uint8_t *bytes, size_t size, json_t *expected, const char *key)
{
	char got[2 * 128 + 1];
	const char *want = json_string_value(json_object_get(expected, key));

	CHECK(size <= 128);
	tp_hex(bytes, size, got);
	if (!want || strcmp(got, want) != 0) {
		fprintf(stderr, "  %s: got %s, trustee has %s\n", key, got, want ? want : "(none)");
		tp_test_failures++;
	}
}

/* v little-endian in size bytes, as the quote holds it */
static void check_le(uint64_t v, size_t size, json_t *expected, const char *key)
{
	uint8_t le[8];

	for (size_t i = 0; i < size; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	check_hex(le, size, expected, key);
}

/* Every key of trustee's object must be one this test compared. */
static void check_all_compared(json_t *expected, const char *const *keys)
{
	const char *key;
	json_t *v;

	json_object_foreach(expected, key, v)
	{
		bool known = false;
		for (const char *const *k = keys; *k; k++)
			known |= strcmp(*k, key) == 0;
		if (!known) {
			fprintf(stderr, "  trustee's field %s is not compared\n", key);
			tp_test_failures++;
		}
	}
}

/* ---- TDX ---- */

static void test_tdx_quote_4_fields_are_trustees(void)
{
	static const char *const header_keys[] = { "version",  "att_key_type", "tee_type",
						   "reserved", "vendor_id",    "user_data",
						   NULL };
	static const char *const body_keys[] = {
		"tcb_svn", "mr_seam", "mrsigner_seam", "seam_attributes", "td_attributes",
		"xfam",	   "mr_td",   "mr_config_id",  "mr_owner",	  "mr_owner_config",
		"rtmr_0",  "rtmr_1",  "rtmr_2",	       "rtmr_3",	  "report_data",
		NULL,
	};
	struct blob b = load("tdx/tdx_quote_4.dat");
	json_t *all =
	    json_load_file(TP_ATTEST_TESTDATA "/tdx/parse_tdx_claims_expected.json", 0, NULL);
	json_t *h = json_object_get(json_object_get(all, "quote"), "header");
	json_t *body = json_object_get(json_object_get(all, "quote"), "body");
	json_t *attrs = json_object_get(all, "td_attributes");
	struct tp_tdx_quote q;
	char err[256], name[8];

	CHECK(h && body && attrs);
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	check_le(q.version, 2, h, "version");
	check_le(q.att_key_type, 2, h, "att_key_type");
	check_le(q.tee_type, 4, h, "tee_type");
	check_le((uint32_t)q.qe_svn | (uint32_t)q.pce_svn << 16, 4, h, "reserved");
	check_hex(q.qe_vendor_id, sizeof(q.qe_vendor_id), h, "vendor_id");
	check_hex(q.user_data, sizeof(q.user_data), h, "user_data");
	check_all_compared(h, header_keys);

	check_hex(q.tee_tcb_svn, sizeof(q.tee_tcb_svn), body, "tcb_svn");
	check_hex(q.mr_seam, sizeof(q.mr_seam), body, "mr_seam");
	check_hex(q.mr_signer_seam, sizeof(q.mr_signer_seam), body, "mrsigner_seam");
	check_le(q.seam_attributes, 8, body, "seam_attributes");
	check_le(q.td_attributes, 8, body, "td_attributes");
	check_le(q.xfam, 8, body, "xfam");
	check_hex(q.mr_td, sizeof(q.mr_td), body, "mr_td");
	check_hex(q.mr_config_id, sizeof(q.mr_config_id), body, "mr_config_id");
	check_hex(q.mr_owner, sizeof(q.mr_owner), body, "mr_owner");
	check_hex(q.mr_owner_config, sizeof(q.mr_owner_config), body, "mr_owner_config");
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "rtmr_%d", i);
		check_hex(q.rtmr[i], sizeof(q.rtmr[i]), body, name);
	}
	check_hex(q.report_data, sizeof(q.report_data), body, "report_data");
	check_hex(q.report_data, sizeof(q.report_data), all, "report_data");
	check_all_compared(body, body_keys);

	/* the attribute bits, as trustee decodes them and teepy's JSON shows them */
	json_t *json = tp_tdx_json(&q);
	json_t *mine = json_object_get(json_object_get(json, "body"), "td_attributes_flags");
	CHECK(json_object_size(mine) == json_object_size(attrs));
	const char *key;
	json_t *v;
	json_object_foreach(attrs, key, v)
	{
		CHECK(json_is_boolean(json_object_get(mine, key)));
		CHECK(json_equal(json_object_get(mine, key), v));
	}
	CHECK(q.td_attributes & TP_TDX_ATTR_DEBUG);
	CHECK(q.body_type == TP_TDX_BODY_TD_REPORT_10);
	json_decref(json);
	json_decref(all);
	free(b.bytes);
}

static void test_tdx_quotes_4_5_6_verify_up_to_the_pinned_intel_root(void)
{
	static const char *const files[] = { "tdx/tdx_quote_4.dat", "tdx/tdx_quote_5.dat",
					     "tdx/tdx_quote_6.dat" };
	NEED_CRYPTO();
	for (size_t i = 0; i < 3; i++) {
		struct blob b = load(files[i]);
		struct tp_tdx_quote q;
		struct tp_attest_result res;
		char err[256];
		CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
		CHECK(tp_tdx_verify(&q, &at_fixed_time, &res) == 0);
		CHECK_STR(tp_test_failed_names(&res), "");
		CHECK(res.count == 4);
		free(b.bytes);
	}
}

static void test_tdx_quote_5_has_a_td_report_1_5(void)
{
	struct blob b = load("tdx/tdx_quote_5.dat");
	struct tp_tdx_quote q;
	char err[256];

	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	CHECK(q.version == 5);
	CHECK(q.body_type == TP_TDX_BODY_TD_REPORT_15);
	/* the signed region takes the body's type and size: header, 6 bytes, body */
	CHECK(q.signed_size == TP_TDX_HEADER_SIZE + 6 + TP_TDX_REPORT_1_5_SIZE);
	json_t *json = tp_tdx_json(&q);
	CHECK(json_is_string(json_object_get(json_object_get(json, "body"), "mr_servicetd")));
	json_decref(json);
	free(b.bytes);
}

static void test_tdx_verify_with_time_checks_off(void)
{
	struct tp_attest_opts off = { .insecure_no_time_check = true, .at_time = AT_2050_01_01 };
	struct blob b = load("tdx/tdx_quote_4.dat");
	struct tp_tdx_quote q;
	struct tp_attest_result res;
	char err[256];

	NEED_CRYPTO();
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	CHECK(tp_tdx_verify(&q, &off, &res) == 0);
	free(b.bytes);
}

static void test_tdx_expired_root_is_refused(void)
{
	struct tp_attest_opts late = { .at_time = AT_2050_01_01 };
	struct blob b = load("tdx/tdx_quote_4.dat");
	struct tp_tdx_quote q;
	struct tp_attest_result res;
	char err[256];

	NEED_CRYPTO();
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	CHECK(tp_tdx_verify(&q, &late, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "pck_chain");
	CHECK(strstr(detail_of(&res, "pck_chain"), "expired") != NULL);
	free(b.bytes);
}

/* One byte of each signed region changed: refused by exactly the checks that
 * cover it. */
static void test_tdx_a_byte_changed_in_each_signed_region_is_refused(void)
{
	struct blob b = load("tdx/tdx_quote_4.dat");
	struct tp_tdx_quote q;
	char err[256];

	NEED_CRYPTO();
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	const char *pem = strstr(q.pck_chain, "-----BEGIN CERTIFICATE-----");
	struct {
		const char *region;
		size_t offset;
		const char *failed;
	} cases[] = {
		{ "header (user data)", 30, "quote_signature" },
		{ "header (QE vendor id)", 12, "quote_signature" },
		{ "TD report (MRTD)", 0, "quote_signature" },
		{ "TD report (RTMR3)", 0, "quote_signature" },
		{ "TD report (report data)", 0, "quote_signature" },
		{ "quote signature", 0, "quote_signature" },
		{ "attestation key", 0, "qe_report_data quote_signature" },
		{ "QE report (MRENCLAVE)", 0, "qe_report_signature" },
		{ "QE report (report data)", 0, "qe_report_signature qe_report_data" },
		{ "QE report signature", 0, "qe_report_signature" },
		{ "QE authentication data", 0, "qe_report_data" },
		{ "PCK certificate", 0, "pck_chain" },
	};
	/* offsets in the quote, from where the parser found each part (v4: the body at 48) */
	size_t body = TP_TDX_HEADER_SIZE, sig = q.signed_size + 4;
	size_t qe = (size_t)(q.qe_report - b.bytes);
	cases[2].offset = body + 16 + 48 + 48 + 24 + 5;			   /* mr_td */
	cases[3].offset = body + 16 + 48 + 48 + 24 + 4 * 48 + 3 * 48 + 47; /* rtmr3 */
	cases[4].offset = body + TP_TDX_REPORT_1_0_SIZE - 1;		   /* report_data */
	cases[5].offset = sig + 10;					   /* r */
	cases[6].offset = sig + 64 + 40;				   /* the key's Y */
	cases[7].offset = qe + 64 + 3;					   /* mr_enclave */
	cases[8].offset = qe + 320 + 1;					   /* report_data */
	cases[9].offset = qe + TP_TDX_QE_REPORT_SIZE + 50;		   /* its s */
	cases[10].offset = (size_t)(q.qe_auth_data - b.bytes) + 7;	   /* auth data */
	/* the leaf's serial number: base64 digits 20 to 47 after the 28 bytes of its
	 * BEGIN line (its DER bytes 15 to 35) */
	cases[11].offset = (size_t)((const uint8_t *)pem - b.bytes) + 28 + 30;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *copy = malloc(b.size);
		struct tp_tdx_quote t;
		struct tp_attest_result res;
		memcpy(copy, b.bytes, b.size);
		/* in the PEM a base64 digit stays one; elsewhere a bit flips */
		uint8_t *at = &copy[cases[i].offset];
		if (cases[i].offset > (size_t)((const uint8_t *)pem - b.bytes))
			*at = *at == 'A' ? 'B' : 'A';
		else
			*at ^= 0x01;
		CHECK(tp_tdx_parse(copy, b.size, &t, err, sizeof(err)) == 0);
		CHECK(tp_tdx_verify(&t, &at_fixed_time, &res) == -EBADMSG);
		if (strcmp(tp_test_failed_names(&res), cases[i].failed) != 0) {
			fprintf(stderr, "  %s changed: failed [%s], expected [%s]\n",
				cases[i].region, tp_test_failed_names(&res), cases[i].failed);
			tp_test_failures++;
		}
		free(copy);
	}
	free(b.bytes);
}

static int parse_tdx(const uint8_t *bytes, size_t size)
{
	struct tp_tdx_quote q;
	char err[256];

	return tp_tdx_parse(bytes, size, &q, err, sizeof(err));
}

static int parse_snp(const uint8_t *bytes, size_t size)
{
	struct tp_snp_report r;
	char err[256];

	return tp_snp_parse(bytes, size, &r, err, sizeof(err));
}

/* How many of the evidence's first n bytes, for every n below its size, parse
 * refuses as malformed (-EINVAL). */
static size_t cut_short_refused(const struct blob *b, int (*parse)(const uint8_t *, size_t))
{
	size_t refused = 0;

	for (size_t n = 0; n < b->size; n++) {
		/* a copy of exactly n bytes: a read past it is ASan's to catch */
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, b->bytes, n);
		refused += parse(cut, n) == -EINVAL;
		free(cut);
	}
	return refused;
}

static void test_tdx_cut_short_at_every_length_is_refused(void)
{
	static const char *const files[] = { "tdx/tdx_quote_4.dat", "tdx/tdx_quote_5.dat" };

	for (size_t f = 0; f < 2; f++) {
		struct blob b = load(files[f]);
		CHECK(cut_short_refused(&b, parse_tdx) == b.size);
		free(b.bytes);
	}
}

static void test_tdx_zeros_after_a_quote_are_padding_anything_else_is_refused(void)
{
	struct blob b = load("tdx/tdx_quote_4.dat");
	uint8_t *more = calloc(1, b.size + 70);
	struct tp_tdx_quote q;
	char err[256];

	memcpy(more, b.bytes, b.size);
	CHECK(tp_tdx_parse(more, b.size + 70, &q, err, sizeof(err)) == 0);
	more[b.size + 69] = 1;
	CHECK(tp_tdx_parse(more, b.size + 70, &q, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "after the quote") != NULL);
	free(more);
	free(b.bytes);
}

static void test_tdx_other_versions_tees_and_keys_are_refused(void)
{
	struct blob b = load("tdx/tdx_quote_4.dat");
	struct tp_tdx_quote q;
	char err[256];

	b.bytes[0] = 3; /* version 3: an SGX quote's format */
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == -EPROTONOSUPPORT);
	CHECK(strstr(err, "version 3") != NULL);
	b.bytes[0] = 4;
	b.bytes[4] = 0; /* TEE type SGX */
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == -EPROTONOSUPPORT);
	CHECK(strstr(err, "SGX") != NULL);
	b.bytes[4] = 0x81;
	b.bytes[2] = 3; /* ECDSA-P384 attestation key */
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == -EPROTONOSUPPORT);
	b.bytes[2] = 2;
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	free(b.bytes);
}

/* ---- SEV-SNP ---- */

static struct tp_attest_result snp_verify(const char *report, const char *cert, const char *chain,
					  const struct tp_attest_opts *opts, int *r)
{
	struct blob rep = load(report), c = load(cert), ch = load(chain);
	struct tp_snp_report parsed;
	struct tp_attest_result res = { 0 };
	char err[256];

	if (tp_snp_parse(rep.bytes, rep.size, &parsed, err, sizeof(err)) < 0) {
		fprintf(stderr, "  %s: %s\n", report, err);
		tp_test_failures++;
	} else
		*r = tp_snp_verify(&parsed, c.bytes, c.size, (const char *)ch.bytes, ch.size, opts,
				   &res);
	free(rep.bytes);
	free(c.bytes);
	free(ch.bytes);
	return res;
}

static void test_snp_report_fields(void)
{
	struct blob b = load("snp/test-report.bin");
	struct tp_snp_report r;
	char err[256], hex[129];

	CHECK(tp_snp_parse(b.bytes, b.size, &r, err, sizeof(err)) == 0);
	CHECK(r.version == 2);
	CHECK(r.guest_svn == 4);
	CHECK(r.policy == 0x3001f);
	CHECK(r.policy & TP_SNP_POLICY_SMT);
	CHECK(!(r.policy & TP_SNP_POLICY_DEBUG));
	CHECK(r.vmpl == 0);
	CHECK(r.signing_key == TP_SNP_KEY_VCEK);
	tp_hex(r.measurement, sizeof(r.measurement), hex);
	CHECK_STR(hex, "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c235006"
		       "44e0e692e6be917f9050d3d38c");
	CHECK(r.reported_tcb.bootloader == 3 && r.reported_tcb.tee == 0 &&
	      r.reported_tcb.snp == 8 && r.reported_tcb.microcode == 115);
	CHECK(r.current_tcb.microcode == 206);
	CHECK(r.current_major == 1 && r.current_minor == 52 && r.current_build == 4);
	tp_hex(r.chip_id, 8, hex);
	CHECK_STR(hex, "c38427a30d4c7af9");
	free(b.bytes);
}

static void test_snp_vcek_and_vlek_reports_verify_up_to_the_milan_ark(void)
{
	struct tp_attest_result res;
	int r = 0;

	NEED_CRYPTO();
	res = snp_verify("snp/test-report.bin", "snp/test-vcek.der", "snp/milan_ask_ark_asvk.pem",
			 &at_fixed_time, &r);
	CHECK(r == 0);
	CHECK_STR(tp_test_failed_names(&res), "");
	CHECK_STR(res.product, "Milan");
	res = snp_verify("snp/test-vlek-report.bin", "snp/test-vlek.der",
			 "snp/milan_ask_ark_asvk.pem", &at_fixed_time, &r);
	CHECK(r == 0);
	CHECK_STR(tp_test_failed_names(&res), "");
	CHECK_STR(res.product, "Milan");
}

/* Evidence that does not verify with what was given: the checks that fail, and
 * what the first one says. */
static void test_snp_wrong_certificate_chain_or_time_is_refused(void)
{
	static const struct tp_attest_opts late = { .at_time = AT_2026_06_01 };
	static const struct {
		const char *report, *cert, *chain;
		const struct tp_attest_opts *opts;
		const char *failed, *says;
	} cases[] = {
		/* the VLEK is valid to 2025-12-10 */
		{ "snp/test-vlek-report.bin", "snp/test-vlek.der", "snp/milan_ask_ark_asvk.pem",
		  &late, "cert_chain", "expired" },
		/* trustee's VCEK that must be rejected: the ASK's signature over it fails */
		{ "snp/test-report.bin", "snp/test-vcek-invalid-new.der",
		  "snp/milan_ask_ark_asvk.pem", &at_fixed_time,
		  "cert_chain cert_report report_signature", "signature failure" },
		/* a Milan VCEK with Genoa's ASK and ARK */
		{ "snp/test-report.bin", "snp/test-vcek.der", "snp/genoa_ask_ark_asvk.pem",
		  &at_fixed_time, "cert_chain", "" },
		/* a report signed by a VLEK, given a VCEK */
		{ "snp/test-vlek-report.bin", "snp/test-vcek.der", "snp/milan_ask_ark_asvk.pem",
		  &at_fixed_time, "cert_report report_signature", "names a VLEK" },
	};

	NEED_CRYPTO();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = 0;
		struct tp_attest_result res =
		    snp_verify(cases[i].report, cases[i].cert, cases[i].chain, cases[i].opts, &r);
		const struct tp_attest_check *first = tp_attest_failed(&res);
		CHECK(r == -EBADMSG);
		CHECK_STR(tp_test_failed_names(&res), cases[i].failed);
		CHECK(first && strstr(first->detail, cases[i].says));
	}
}

static void test_snp_a_byte_changed_in_the_report_or_signature_is_refused(void)
{
	static const struct {
		const char *region;
		size_t offset;
		const char *failed;
	} cases[] = {
		{ "policy", 0x08, "report_signature" },
		{ "report data", 0x50 + 3, "report_signature" },
		{ "measurement", 0x90 + 47, "report_signature" },
		{ "host data", 0xc0, "report_signature" },
		{ "reported TCB", 0x180, "cert_report report_signature" },
		{ "chip id", 0x1a0 + 10, "cert_report report_signature" },
		{ "reserved, last signed byte", TP_SNP_SIGNED_SIZE - 1, "report_signature" },
		{ "signature r", TP_SNP_SIGNED_SIZE + 5, "report_signature" },
		{ "signature s", TP_SNP_SIGNED_SIZE + 72 + 40, "report_signature" },
	};
	struct blob rep = load("snp/test-report.bin"), cert = load("snp/test-vcek.der"),
		    chain = load("snp/milan_ask_ark_asvk.pem");

	NEED_CRYPTO();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tp_snp_report r;
		struct tp_attest_result res;
		char err[256];
		rep.bytes[cases[i].offset] ^= 0x01;
		CHECK(tp_snp_parse(rep.bytes, rep.size, &r, err, sizeof(err)) == 0);
		CHECK(tp_snp_verify(&r, cert.bytes, cert.size, (const char *)chain.bytes,
				    chain.size, &at_fixed_time, &res) == -EBADMSG);
		if (strcmp(tp_test_failed_names(&res), cases[i].failed) != 0) {
			fprintf(stderr, "  %s changed: failed [%s], expected [%s]\n",
				cases[i].region, tp_test_failed_names(&res), cases[i].failed);
			tp_test_failures++;
		}
		rep.bytes[cases[i].offset] ^= 0x01;
	}
	free(rep.bytes);
	free(cert.bytes);
	free(chain.bytes);
}

static void test_snp_any_other_size_or_version_is_refused(void)
{
	struct blob b = load("snp/test-report.bin");
	uint8_t *longer = calloc(1, b.size + 1);
	struct tp_snp_report r;
	char err[256];

	CHECK(cut_short_refused(&b, parse_snp) == b.size);
	memcpy(longer, b.bytes, b.size);
	CHECK(tp_snp_parse(longer, b.size + 1, &r, err, sizeof(err)) == -EINVAL);
	b.bytes[0] = 1;
	CHECK(tp_snp_parse(b.bytes, b.size, &r, err, sizeof(err)) == -EPROTONOSUPPORT);
	b.bytes[0] = 2;
	b.bytes[0x34] = 2; /* another signature algorithm */
	CHECK(tp_snp_parse(b.bytes, b.size, &r, err, sizeof(err)) == -EPROTONOSUPPORT);
	free(longer);
	free(b.bytes);
}

/* ---- certificates made here, with OpenSSL itself (linked into this test only):
 * chains that look like the vendors' but end at a root the test made ---- */

struct made_cert {
	EVP_PKEY *key;
	X509 *cert;
};

/* A certificate for a new P-256 key, subject CN cn (size bytes, any bytes),
 * issued by issuer (NULL: self-signed), a CA when ca. Valid 2020 to 2040. */
static struct made_cert make_cert(const char *cn, size_t size, const struct made_cert *issuer,
				  bool ca)
{
	struct made_cert m = { EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), X509_new() };
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	if (!m.key || !m.cert || !name)
		abort();
	X509_set_version(m.cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(m.cert), 1);
	ASN1_TIME_set(X509_getm_notBefore(m.cert), 1577836800); /* 2020-01-01 */
	ASN1_TIME_set(X509_getm_notAfter(m.cert), 2208988800);	/* 2040-01-01 */
	/* the bytes as they are: a UTF8String that need not be UTF-8 */
	X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
				   (const unsigned char *)cn, (int)size, -1, 0);
	X509_set_subject_name(m.cert, name);
	X509_set_issuer_name(m.cert, issuer ? X509_get_subject_name(issuer->cert) : name);
	X509_set_pubkey(m.cert, m.key);
	X509V3_set_ctx(&ctx, issuer ? issuer->cert : m.cert, m.cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(m.cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(m.cert, issuer ? issuer->key : m.key, EVP_sha256()) <= 0)
		abort();
	X509_NAME_free(name);
	return m;
}

static void made_free(struct made_cert *m)
{
	EVP_PKEY_free(m->key);
	X509_free(m->cert);
}

/* The certificates' PEM, one after another, appended to out (NUL-terminated). */
static void pem_append(char *out, size_t size, const struct made_cert *certs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long n;
		PEM_write_bio_X509(bio, certs[i].cert);
		n = BIO_get_mem_data(bio, &data);
		if (strlen(out) + (size_t)n >= size)
			abort();
		strncat(out, data, (size_t)n);
		BIO_free(bio);
	}
}

/* A certificate's DER, in a buffer of at least 4096 bytes; returns its size. */
static size_t der_of(const struct made_cert *m, uint8_t *out)
{
	int n = i2d_X509(m->cert, NULL);
	unsigned char *p = out;

	if (n <= 0 || n > 4096 || i2d_X509(m->cert, &p) != n)
		abort();
	return (size_t)n;
}

#define CN(s) s, sizeof(s) - 1

/* A subject name is untrusted evidence that is printed: no control byte, DEL or
 * non-ASCII byte of it comes out, so it cannot move the cursor, forge a
 * "verified: yes" line or be invalid UTF-8 in JSON. */
static void test_cert_subject_cn_shows_only_printable_ascii(void)
{
	/* C0 controls, DEL, a C1 control (CSI, U+009B) and an e acute in UTF-8 */
	static const char forged[] = "SEV-VCEK\n\033[2Kverified: yes\r\x7f\xc2\x9b\xc3\xa9!";
	struct made_cert m;
	struct tp_cert *cert;
	uint8_t der[4096];
	char cn[128], small[6];

	NEED_CRYPTO();
	m = make_cert(CN(forged), NULL, false);
	cert = tp_cert_from_der(der, der_of(&m, der));
	CHECK(cert != NULL);
	tp_cert_subject_cn(cert, cn, sizeof(cn));
	CHECK_STR(cn, "SEV-VCEK\?\?[2Kverified: yes\?\?\?\?\?\?!");
	tp_cert_subject_cn(cert, small, sizeof(small)); /* cut short, still terminated */
	CHECK(strlen(small) < sizeof(small));
	tp_cert_free(cert);
	made_free(&m);
}

/* The forged name reaches the detail of a failed check only as '?'s. */
static void test_snp_forged_certificate_name_is_shown_escaped(void)
{
	static const char forged[] = "x\nverified: yes\033[0m";
	struct blob rep = load("snp/test-report.bin"), chain = load("snp/milan_ask_ark_asvk.pem");
	struct made_cert m;
	struct tp_snp_report r;
	struct tp_attest_result res;
	uint8_t der[4096];
	char err[256];

	NEED_CRYPTO();
	m = make_cert(CN(forged), NULL, false);
	CHECK(tp_snp_parse(rep.bytes, rep.size, &r, err, sizeof(err)) == 0);
	CHECK(tp_snp_verify(&r, der, der_of(&m, der), (const char *)chain.bytes, chain.size,
			    &at_fixed_time, &res) == -EBADMSG);
	CHECK(strstr(detail_of(&res, "cert_report"), "is x?verified: yes?[0m") != NULL);
	for (size_t i = 0; i < res.count; i++)
		for (const char *p = res.checks[i].detail; *p; p++)
			CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	made_free(&m);
	free(rep.bytes);
	free(chain.bytes);
}

/* The pin is the root's key, not its name: a chain as Intel's, PCK certificate,
 * intermediate and "Intel SGX Root CA", made here, is refused for the pin; and so
 * is that chain with Intel's real root beside it. */
static void test_tdx_chain_to_a_root_named_like_intels_is_refused_by_the_pin(void)
{
	struct blob b = load("tdx/tdx_quote_4.dat");
	struct made_cert fake[3];
	struct tp_tdx_quote q;
	struct tp_attest_result res;
	char err[256], pem[16384] = "";
	const char *real_root;

	NEED_CRYPTO();
	fake[2] = make_cert(CN("Intel SGX Root CA"), NULL, true);
	fake[1] = make_cert(CN("Intel SGX PCK Platform CA"), &fake[2], true);
	fake[0] = make_cert(CN("Intel SGX PCK Certificate"), &fake[1], false);
	pem_append(pem, sizeof(pem), fake, 3);
	CHECK(tp_tdx_parse(b.bytes, b.size, &q, err, sizeof(err)) == 0);
	real_root = q.pck_chain;
	for (const char *p;
	     (p = memmem(real_root + 1, q.pck_chain_size - (size_t)(real_root + 1 - q.pck_chain),
			 "-----BEGIN CERTIFICATE-----", 27));)
		real_root = p;
	q.pck_chain = pem;
	q.pck_chain_size = strlen(pem);
	CHECK(tp_tdx_verify(&q, &at_fixed_time, &res) == -EBADMSG);
	CHECK_STR(tp_test_failed_names(&res), "pck_chain qe_report_signature");
	CHECK_STR(detail_of(&res, "pck_chain"),
		  "no CA certificate of the chain has the pinned Intel SGX Root CA key");

	/* the real root present, but not the one the chain goes up to */
	strncat(pem, real_root, q.pck_chain_size == 0 ? 0 : sizeof(pem) - strlen(pem) - 1);
	q.pck_chain_size = strlen(pem);
	CHECK(tp_tdx_verify(&q, &at_fixed_time, &res) == -EBADMSG);
	CHECK(strstr(tp_test_failed_names(&res), "pck_chain") != NULL);
	for (size_t i = 0; i < 3; i++)
		made_free(&fake[i]);
	free(b.bytes);
}

/* The same for AMD: VCEK, ASK and an "ARK-Milan" made here. */
static void test_snp_chain_to_a_root_named_like_amds_is_refused_by_the_pin(void)
{
	struct blob rep = load("snp/test-report.bin");
	struct made_cert fake[3];
	struct tp_snp_report r;
	struct tp_attest_result res;
	uint8_t der[4096];
	char err[256], pem[16384] = "";

	NEED_CRYPTO();
	fake[2] = make_cert(CN("ARK-Milan"), NULL, true);
	fake[1] = make_cert(CN("SEV-Milan"), &fake[2], true);
	fake[0] = make_cert(CN("SEV-VCEK"), &fake[1], false);
	pem_append(pem, sizeof(pem), fake + 1, 2);
	CHECK(tp_snp_parse(rep.bytes, rep.size, &r, err, sizeof(err)) == 0);
	CHECK(tp_snp_verify(&r, der, der_of(&fake[0], der), pem, strlen(pem), &at_fixed_time,
			    &res) == -EBADMSG);
	CHECK(strstr(tp_test_failed_names(&res), "cert_chain") != NULL);
	CHECK_STR(detail_of(&res, "cert_chain"),
		  "no certificate of the chain has a pinned AMD ARK key (Milan, Genoa)");
	CHECK_STR(res.product, "");
	for (size_t i = 0; i < 3; i++)
		made_free(&fake[i]);
	free(rep.bytes);
}

/* tp_certs_from_pem counts the blocks OpenSSL reads as certificates: the old label
 * "X509 CERTIFICATE" too, so a bad block cannot hide behind one under it. */
static void test_certs_from_pem_counts_every_label_openssl_reads(void)
{
	struct made_cert m[2];
	struct tp_cert *out[4];
	char pem[8192] = "", old[8192 + 64], *p;
	int n;

	NEED_CRYPTO();
	m[0] = make_cert(CN("one"), NULL, true);
	m[1] = make_cert(CN("two"), &m[0], false);
	pem_append(pem, sizeof(pem), m, 2);
	n = tp_certs_from_pem(pem, strlen(pem), out, 4);
	CHECK(n == 2);
	while (n > 0)
		tp_cert_free(out[--n]);
	/* the first under the old label, the second broken */
	snprintf(old, sizeof(old), "-----BEGIN X509 CERTIFICATE-----%s",
		 pem + strlen("-----BEGIN CERTIFICATE-----"));
	p = strstr(old, "-----END CERTIFICATE-----");
	CHECK(p != NULL);
	memmove(p + 30, p + 25, strlen(p + 25) + 1);
	memcpy(p, "-----END X509 CERTIFICATE-----", 30);
	CHECK(tp_certs_from_pem(old, strlen(old), out, 4) == 2);
	tp_cert_free(out[0]);
	tp_cert_free(out[1]);
	p = strstr(old, "-----BEGIN CERTIFICATE-----") + 40;
	*p = *p == 'A' ? 'B' : 'A';
	CHECK(tp_certs_from_pem(old, strlen(old), out, 4) == -EINVAL);
	CHECK(tp_certs_from_pem(old, strlen(old), out, 1) == -E2BIG);
	made_free(&m[0]);
	made_free(&m[1]);
}

static void test_der_small_int_takes_only_the_minimal_encoding(void)
{
	static const struct {
		uint8_t der[5];
		size_t size;
		int want;
	} cases[] = {
		{ { 0x02, 0x01, 0x08 }, 3, 8 },
		{ { 0x02, 0x01, 0x00 }, 3, 0 },
		{ { 0x02, 0x01, 0x7f }, 3, 127 },
		{ { 0x02, 0x02, 0x00, 0x80 }, 4, 128 },
		{ { 0x02, 0x02, 0x00, 0xff }, 4, 255 },
		{ { 0x02, 0x01, 0x80 }, 3, -1 },	     /* negative */
		{ { 0x02, 0x02, 0x00, 0x05 }, 4, -1 },	     /* a sign byte it does not need */
		{ { 0x02, 0x02, 0x00, 0x00 }, 4, -1 },	     /* zero, twice */
		{ { 0x02, 0x02, 0x01, 0x00 }, 4, -1 },	     /* 256 */
		{ { 0x02, 0x03, 0x00, 0x00, 0x80 }, 5, -1 }, /* longer */
		{ { 0x02, 0x02, 0x08 }, 3, -1 },	     /* a length past the end */
		{ { 0x04, 0x01, 0x08 }, 3, -1 },	     /* not an INTEGER */
		{ { 0x02, 0x00 }, 2, -1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tp_der_small_int(cases[i].der, cases[i].size) != cases[i].want) {
			fprintf(stderr, "  case %zu: %d, want %d\n", i,
				tp_der_small_int(cases[i].der, cases[i].size), cases[i].want);
			tp_test_failures++;
		}
}

TESTS(attest_tests) = {
	{ "tdx_quote_4_fields_are_trustees", test_tdx_quote_4_fields_are_trustees },
	{ "tdx_quotes_4_5_6_verify_up_to_the_pinned_intel_root",
	  test_tdx_quotes_4_5_6_verify_up_to_the_pinned_intel_root },
	{ "tdx_quote_5_has_a_td_report_1_5", test_tdx_quote_5_has_a_td_report_1_5 },
	{ "tdx_verify_with_time_checks_off", test_tdx_verify_with_time_checks_off },
	{ "tdx_expired_root_is_refused", test_tdx_expired_root_is_refused },
	{ "tdx_a_byte_changed_in_each_signed_region_is_refused",
	  test_tdx_a_byte_changed_in_each_signed_region_is_refused },
	{ "tdx_cut_short_at_every_length_is_refused",
	  test_tdx_cut_short_at_every_length_is_refused },
	{ "tdx_zeros_after_a_quote_are_padding_anything_else_is_refused",
	  test_tdx_zeros_after_a_quote_are_padding_anything_else_is_refused },
	{ "tdx_other_versions_tees_and_keys_are_refused",
	  test_tdx_other_versions_tees_and_keys_are_refused },
	{ "snp_report_fields", test_snp_report_fields },
	{ "snp_vcek_and_vlek_reports_verify_up_to_the_milan_ark",
	  test_snp_vcek_and_vlek_reports_verify_up_to_the_milan_ark },
	{ "snp_wrong_certificate_chain_or_time_is_refused",
	  test_snp_wrong_certificate_chain_or_time_is_refused },
	{ "snp_a_byte_changed_in_the_report_or_signature_is_refused",
	  test_snp_a_byte_changed_in_the_report_or_signature_is_refused },
	{ "snp_any_other_size_or_version_is_refused",
	  test_snp_any_other_size_or_version_is_refused },
	{ "cert_subject_cn_shows_only_printable_ascii",
	  test_cert_subject_cn_shows_only_printable_ascii },
	{ "snp_forged_certificate_name_is_shown_escaped",
	  test_snp_forged_certificate_name_is_shown_escaped },
	{ "tdx_chain_to_a_root_named_like_intels_is_refused_by_the_pin",
	  test_tdx_chain_to_a_root_named_like_intels_is_refused_by_the_pin },
	{ "snp_chain_to_a_root_named_like_amds_is_refused_by_the_pin",
	  test_snp_chain_to_a_root_named_like_amds_is_refused_by_the_pin },
	{ "certs_from_pem_counts_every_label_openssl_reads",
	  test_certs_from_pem_counts_every_label_openssl_reads },
	{ "der_small_int_takes_only_the_minimal_encoding",
	  test_der_small_int_takes_only_the_minimal_encoding },
	END_TESTS,
};
