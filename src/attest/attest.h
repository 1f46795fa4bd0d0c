/* Evidence: what a runtime claims ({mode, runtime, app, signer, nonce, pubkey}, and
 * debug for a debug run), bound into 64 bytes of report data (report_data.c); evidence of
 * confidential VMs as the kernel's configfs-tsm gives it, Intel TDX quotes (versions 4 and 5) and
 * AMD SEV-SNP attestation reports with the host's certificate table; and teepy's
 * sim evidence, signed by a host's platform key (sim.c). The parsers (tdx.c, snp.c,
 * snp_certs.c, sim.c) are pure and take untrusted bytes; the verifiers (verify.c,
 * sim.c) check every signature and certificate chain up to the vendors' root keys
 * pinned here, or the platform keys a verifier trusts; json.c renders the fields;
 * tsm.c, the only OS code here, asks configfs-tsm for a report. What is verified and
 * what is not (TCB status and the vendors' other collateral): docs/cas.md,
 * "Evidence" and "Producing evidence". */
#ifndef TEEPY_ATTEST_ATTEST_H
#define TEEPY_ATTEST_ATTEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the claims and their report data (report_data.c) ---- */

#define TP_REPORT_DATA_SIZE 64
#define TP_CLAIM_SIZE	    32 /* runtime, app, signer, pubkey */
#define TP_NONCE_MAX	    64

/* What a runtime says of itself, bound into the report data of its evidence. */
struct tp_claims {
	char mode[4];			/* "sim" or "hw" */
	uint8_t runtime[TP_CLAIM_SIZE]; /* the runtime measurement (teepy inspect) */
	uint8_t app[TP_CLAIM_SIZE];	/* the app measurement */
	uint8_t signer[TP_CLAIM_SIZE];	/* SHA-256 of the bundle signer's Ed25519 key */
	uint8_t nonce[TP_NONCE_MAX];	/* the verifier's challenge */
	size_t nonce_size;		/* 1 to TP_NONCE_MAX */
	uint8_t pubkey[TP_CLAIM_SIZE];	/* the runtime's ephemeral X25519 public key */
	/* a debug run (teepy shell in a bundle's root): whoever runs it may read and
	 * change what runs; a CAS releases keys to it only if the policy tolerates
	 * "debug" */
	bool debug;
};

/* The report data: SHA-512 over "teepy report data v1" and each claim, in the order
 * above, as a 4-byte big-endian length and its bytes, a debug run's with the field
 * "debug" last, and no such field otherwise (so a run's report data is what it was
 * before debug runs existed) (docs/cas.md, "Report data"). Needs libcrypto. Returns
 * 0, or -EINVAL for another mode or nonce size. */
int tp_report_data(const struct tp_claims *c, uint8_t out[TP_REPORT_DATA_SIZE]);

/* ---- TDX quotes (Intel TDX DCAP quote format, versions 4 and 5) ---- */

#define TP_TDX_HEADER_SIZE	 48
#define TP_TDX_REPORT_1_0_SIZE	 584 /* TD report body 1.0 (TDX 1.0) */
#define TP_TDX_REPORT_1_5_SIZE	 648 /* 1.5 adds tee_tcb_svn2 and mr_servicetd */
#define TP_TDX_MR_SIZE		 48  /* SHA-384: MRTD, RTMRs, MRSEAM, ... */
#define TP_TDX_QE_REPORT_SIZE	 384 /* an SGX report body: the quoting enclave's */
#define TP_TDX_TEE_TYPE		 0x81
#define TP_TDX_KEY_ECDSA_P256	 2
#define TP_TDX_CERT_PCK_CHAIN	 5 /* certification data: PCK chain, PEM */
#define TP_TDX_CERT_QE_REPORT	 6 /* certification data: QE report and its data */
#define TP_TDX_BODY_TD_REPORT_10 2 /* v5 body types */
#define TP_TDX_BODY_TD_REPORT_15 3

/* The TD attributes a policy reads, bits of td_attributes (little-endian). */
#define TP_TDX_ATTR_DEBUG	    (1ull << 0)
#define TP_TDX_ATTR_SEPT_VE_DISABLE (1ull << 28)
#define TP_TDX_ATTR_PKS		    (1ull << 30)
#define TP_TDX_ATTR_KEY_LOCKER	    (1ull << 31)
#define TP_TDX_ATTR_PERFMON	    (1ull << 63)

/* The quoting enclave's report (SGX report body), which the PCK key signs. */
struct tp_sgx_report {
	uint8_t cpu_svn[16];
	uint32_t misc_select;
	uint8_t attributes[16];
	uint8_t mr_enclave[32];
	uint8_t mr_signer[32];
	uint16_t isv_prod_id, isv_svn;
	uint8_t report_data[64];
};

/* A quote's fields. Byte fields are as they stand in the quote; the pointers
 * borrow the bytes parsed, which must outlive the struct. */
struct tp_tdx_quote {
	/* header */
	uint16_t version, att_key_type;
	uint32_t tee_type;
	uint16_t qe_svn, pce_svn;
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
	/* the TD report body; v4 is always 1.0 */
	uint16_t body_type; /* TP_TDX_BODY_TD_REPORT_10 or _15 */
	uint8_t tee_tcb_svn[16];
	uint8_t mr_seam[TP_TDX_MR_SIZE], mr_signer_seam[TP_TDX_MR_SIZE];
	uint64_t seam_attributes, td_attributes, xfam;
	uint8_t mr_td[TP_TDX_MR_SIZE], mr_config_id[TP_TDX_MR_SIZE];
	uint8_t mr_owner[TP_TDX_MR_SIZE], mr_owner_config[TP_TDX_MR_SIZE];
	uint8_t rtmr[4][TP_TDX_MR_SIZE];
	uint8_t report_data[64];
	uint8_t tee_tcb_svn2[16], mr_servicetd[TP_TDX_MR_SIZE]; /* 1.5 only, else zeros */
	/* the signature data */
	uint8_t signature[64];	     /* ECDSA-P256 r || s over the signed region */
	uint8_t attestation_key[64]; /* P-256 X || Y */
	struct tp_sgx_report qe;
	const uint8_t *qe_report; /* the TP_TDX_QE_REPORT_SIZE bytes of qe, as signed */
	uint8_t qe_report_signature[64];
	const uint8_t *qe_auth_data;
	size_t qe_auth_size;
	const char *pck_chain; /* PEM: PCK certificate, intermediate CA, root CA */
	size_t pck_chain_size;
	/* the region the attestation key signs: header and body, [0, signed_size) */
	const uint8_t *bytes;
	size_t signed_size;
};

/* Parses a quote. Bytes after the signature data may only be zeros (a buffer of
 * configfs-tsm's size). Pure. Returns 0, or with the reason in err -EINVAL (not a
 * quote: cut short, lengths that do not add up) or -EPROTONOSUPPORT (another
 * version, TEE, key type or body). */
int tp_tdx_parse(const uint8_t *bytes, size_t size, struct tp_tdx_quote *q, char *err,
		 size_t err_size);

/* ---- SEV-SNP attestation reports (AMD SEV-SNP ABI, ATTESTATION_REPORT) ---- */

#define TP_SNP_REPORT_SIZE    1184
#define TP_SNP_SIGNED_SIZE    0x2a0 /* the signature covers [0, 0x2a0) */
#define TP_SNP_SIG_ECDSA_P384 1
#define TP_SNP_KEY_VCEK	      0
#define TP_SNP_KEY_VLEK	      1

/* Guest policy bits a policy reads (ABI: GUEST_POLICY). */
#define TP_SNP_POLICY_SMT	    (1ull << 16)
#define TP_SNP_POLICY_MIGRATE_MA    (1ull << 18)
#define TP_SNP_POLICY_DEBUG	    (1ull << 19)
#define TP_SNP_POLICY_SINGLE_SOCKET (1ull << 20)

/* A TCB_VERSION (Milan and Genoa layout): the security versions of each part. */
struct tp_snp_tcb {
	uint64_t raw;
	uint8_t bootloader, tee, snp, microcode;
};

struct tp_snp_report {
	uint32_t version, guest_svn;
	uint64_t policy;
	uint8_t family_id[16], image_id[16];
	uint32_t vmpl, signature_algo;
	struct tp_snp_tcb current_tcb;
	uint64_t platform_info;
	bool author_key_en, mask_chip_key;
	unsigned signing_key; /* TP_SNP_KEY_VCEK or _VLEK */
	uint8_t report_data[64];
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t id_key_digest[48], author_key_digest[48];
	uint8_t report_id[32], report_id_ma[32];
	struct tp_snp_tcb reported_tcb;
	uint8_t chip_id[64];
	struct tp_snp_tcb committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	struct tp_snp_tcb launch_tcb;
	uint8_t sig_r[48], sig_s[48]; /* big-endian, from the report's little-endian */
	const uint8_t *bytes;	      /* the report, borrowed: its signed region */
};

/* Parses a report of exactly TP_SNP_REPORT_SIZE bytes. Pure. Returns 0, or with
 * the reason in err -EINVAL (not a report) or -EPROTONOSUPPORT (another version
 * or signature algorithm). */
int tp_snp_parse(const uint8_t *bytes, size_t size, struct tp_snp_report *r, char *err,
		 size_t err_size);

/* ---- the SEV-SNP certificate table (snp_certs.c): configfs-tsm's auxblob ---- */

/* The certificates the host gives with a report (the GHCB's extended guest request,
 * MSG_REPORT_REQ; configfs-tsm's auxblob on an SEV-SNP guest): entries of a GUID (16
 * bytes, in the order its text form is written), the offset of its certificate and
 * its length (u32 little-endian each, from the start of the table), ended by an
 * entry of 24 zeros; then the certificates, DER. */
#define TP_SNP_CERT_ENTRY_SIZE 24
#define TP_SNP_CERTS_MAX       64 /* entries (the one of zeros not counted) */
#define TP_SNP_GUID_SIZE       16
#define TP_SNP_GUID_TEXT       37 /* "63da758d-e664-4564-adc5-f4b93be8accd" and its NUL */

enum tp_snp_cert_kind {
	TP_SNP_CERT_OTHER, /* a GUID AMD did not assign */
	TP_SNP_CERT_VCEK,
	TP_SNP_CERT_VLEK,
	TP_SNP_CERT_ASK, /* the ASK, or for a VLEK the ASVK: AMD gave it no GUID of its own */
	TP_SNP_CERT_ARK,
	TP_SNP_CERT_CRL,
};

struct tp_snp_cert {
	uint8_t guid[TP_SNP_GUID_SIZE];
	enum tp_snp_cert_kind kind;
	uint32_t offset;
	size_t size;	    /* 0: an empty slot, no certificate */
	const uint8_t *der; /* borrowed from the table's bytes; NULL for an empty slot */
};

struct tp_snp_certs {
	struct tp_snp_cert entries[TP_SNP_CERTS_MAX]; /* in the table's order */
	size_t count;
	size_t table_size; /* bytes of the entries, the one of zeros included */
};

/* Parses a certificate table: no bytes is a table without entries (the host gave
 * none). Refused (-EINVAL, the reason in err naming the entry, 0 for the first): a
 * table cut short before its entry of zeros, more than TP_SNP_CERTS_MAX entries, an
 * entry without a GUID, a GUID twice, a certificate that starts inside the table or
 * ends past the bytes. An entry of length 0 is an empty slot (its offset unread);
 * certificates may share bytes, and bytes no entry names are ignored. The
 * certificates are not parsed. Pure. Returns 0 or -EINVAL. */
int tp_snp_certs_parse(const uint8_t *bytes, size_t size, struct tp_snp_certs *t, char *err,
		       size_t err_size);
/* The (non-empty) certificate of that kind, or NULL. */
const struct tp_snp_cert *tp_snp_certs_find(const struct tp_snp_certs *t,
					    enum tp_snp_cert_kind kind);
/* "VCEK", "VLEK", "ASK", "ARK", "CRL" or "another GUID". */
const char *tp_snp_cert_kind_name(enum tp_snp_cert_kind kind);
/* The GUID in its text form, lower-case. */
void tp_snp_guid_text(const uint8_t guid[TP_SNP_GUID_SIZE], char out[TP_SNP_GUID_TEXT]);

/* ---- verification (verify.c): the command loads libcrypto first ---- */

/* How certificate times are checked (tests fix a time, as the evidence's
 * certificates expire; the CLI's --insecure-no-time-check turns them off). */
struct tp_attest_opts {
	bool insecure_no_time_check;
	int64_t at_time; /* seconds since the epoch; 0: now */
};

#define TP_ATTEST_CHECKS_MAX 5 /* a quote's four, and debug (tp_attest_check_debug) */

struct tp_attest_check {
	const char *name; /* "quote_signature" */
	const char *what; /* one line: what the check establishes */
	bool ok;
	char detail[256]; /* why it failed, or what it found ("Milan") */
};

struct tp_attest_result {
	struct tp_attest_check checks[TP_ATTEST_CHECKS_MAX];
	size_t count;
	char product[16]; /* SNP: "Milan" or "Genoa", by the pinned ARK the chain ends at */
};

/* The first check that failed, or NULL when every one passed. */
const struct tp_attest_check *tp_attest_failed(const struct tp_attest_result *res);

/* Adds the check "debug" to res: passes when debug is NULL (the evidence is no debug
 * run's, TD's or guest's), else names what debug says ("a debug TD") and fails unless
 * tolerated (a verifier's choice, as a CAS policy's "tolerate": ["debug"]): whoever
 * runs a debug run, TD or guest can read and change what runs. Pure. */
void tp_attest_check_debug(struct tp_attest_result *res, const char *debug, bool tolerated);

/* Every check of a quote, each run whatever the others gave: the quote's signature
 * by its attestation key, the QE report's binding of that key, the QE report's
 * signature by the PCK certificate, the PCK chain up to the pinned Intel SGX Root
 * CA. Returns 0 when all pass, -EBADMSG when one fails (tp_attest_failed). */
int tp_tdx_verify(const struct tp_tdx_quote *q, const struct tp_attest_opts *opts,
		  struct tp_attest_result *res);

/* Every check of a report: the VCEK or VLEK (cert, DER) chained through chain's
 * (PEM: ASK or ASVK, ARK) to a pinned AMD ARK, what the certificate says of the chip
 * and TCB against the report, the report's signature. Returns 0 or -EBADMSG. */
int tp_snp_verify(const struct tp_snp_report *r, const uint8_t *cert, size_t cert_size,
		  const char *chain, size_t chain_size, const struct tp_attest_opts *opts,
		  struct tp_attest_result *res);

/* A small non-negative DER INTEGER in its minimal encoding, the whole of v (02 01 08;
 * 02 02 00 80 to 02 02 00 ff), as a VCEK's TCB extensions hold them; -1 for anything
 * else. Pure. */
int tp_der_small_int(const uint8_t *v, size_t size);

/* ---- sim evidence (sim.c): SIMULATION, signed by a host's platform key ---- */

/* The first bytes of every sim evidence: what it is, to anyone who looks. */
#define TP_SIM_LABEL	  "teepy sim evidence: SIMULATION, not hardware\n"
#define TP_SIM_LABEL_SIZE (sizeof(TP_SIM_LABEL) - 1)
#define TP_SIM_VERSION	  1
/* a debug run's: one byte of flags after the version (TP_SIM_FLAG_*), the rest as 1 */
#define TP_SIM_VERSION_DEBUG 2
#define TP_SIM_FLAG_DEBUG    0x01
#define TP_SIM_PLATFORM_KEY  32 /* Ed25519 public key */
#define TP_SIM_SIGNATURE     64
/* label, version, runtime, app, signer, pubkey, nonce size, report data, platform
 * key, signature; and the nonce */
#define TP_SIM_FIXED_SIZE                                                                          \
	(TP_SIM_LABEL_SIZE + 2 + 4 * TP_CLAIM_SIZE + 1 + TP_REPORT_DATA_SIZE +                     \
	 TP_SIM_PLATFORM_KEY + TP_SIM_SIGNATURE)
#define TP_SIM_MAX_SIZE (TP_SIM_FIXED_SIZE + 1 + TP_NONCE_MAX)

struct tp_sim_evidence {
	uint16_t version;
	struct tp_claims claims; /* mode "sim"; debug for version 2 */
	uint8_t report_data[TP_REPORT_DATA_SIZE];
	uint8_t platform_key[TP_SIM_PLATFORM_KEY];
	uint8_t signature[TP_SIM_SIGNATURE];
	const uint8_t *bytes; /* borrowed: the signed region is [0, signed_size) */
	size_t signed_size;
};

/* Parses sim evidence, version 1, or 2 (a debug run's: its flags say debug): exactly
 * its size, nothing after. Pure. Returns 0, or with the reason in err -EINVAL (not
 * sim evidence, cut short, a nonce size out of range, unknown flags) or
 * -EPROTONOSUPPORT (another version). */
int tp_sim_parse(const uint8_t *bytes, size_t size, struct tp_sim_evidence *e, char *err,
		 size_t err_size);

struct tp_key;

/* Writes the sim evidence of c (mode "sim"), signed by platform (Ed25519), into out
 * (TP_SIM_MAX_SIZE bytes): version 1, or 2 for a debug run. Returns its size, or
 * -EINVAL (claims) or -EIO (signing). */
int tp_sim_write(const struct tp_claims *c, const struct tp_key *platform, uint8_t *out);

/* What a verifier expects of the claims; a NULL field is not compared. */
struct tp_sim_expect {
	const uint8_t *nonce;
	size_t nonce_size;
	const uint8_t *app, *signer, *runtime; /* TP_CLAIM_SIZE bytes each */
};

/* Every check of sim evidence, each run whatever the others gave: the report data
 * is the claims' (report_data), the platform key is one of trusted (platform_key),
 * the signature by that key (signature), and with expect the claims expected
 * (claims). Needs libcrypto. Returns 0 or -EBADMSG. */
int tp_sim_verify(const struct tp_sim_evidence *e, const uint8_t (*trusted)[TP_SIM_PLATFORM_KEY],
		  size_t count, const struct tp_sim_expect *expect, struct tp_attest_result *res);

/* ---- hw evidence from configfs-tsm (tsm.c, the only OS code of attest/) ---- */

#define TP_TSM_DIR	"/sys/kernel/config/tsm/report"
#define TP_TSM_OUT_MAX	(1 << 20) /* a quote is a few KiB */
#define TP_TSM_ATTEMPTS 3

struct tp_tsm_report {
	uint8_t *outblob; /* the report or quote, malloc'd */
	size_t size;
	char provider[32]; /* "tdx_guest", "sev_guest", "arm_cca_guest" */
	unsigned attempts; /* how many it took (the generation changed in the others) */
	/* sev_guest: the host's certificate table (tp_snp_certs_parse), malloc'd; empty
	 * when the host gave none; aux_present false when the entry has no auxblob */
	uint8_t *auxblob;
	size_t aux_size;
	bool aux_present;
};

/* Whether dir (TP_TSM_DIR) is there to ask: a confidential VM with configfs-tsm. */
bool tp_tsm_present(const char *dir);

/* Asks configfs-tsm under dir for a report over report_data: makes an entry of its
 * own (mkdir DIR/teepy-PID-RANDOM), writes inblob, reads outblob, provider and (for
 * sev_guest) auxblob before the generation again, and removes the entry; when the entry's
 * generation says another write came between inblob and outblob, asks again (TP_TSM_ATTEMPTS in
 * all). entry non-NULL is the test seam: an entry that is there already (a directory laid out like
 * configfs-tsm holding a recorded report), used and left in place, whose generation may stay as it
 * is. Returns 0, or -errno with one line in err. */
int tp_tsm_get(const char *dir, const char *entry, const uint8_t report_data[TP_REPORT_DATA_SIZE],
	       struct tp_tsm_report *out, char *err, size_t err_size);
void tp_tsm_report_free(struct tp_tsm_report *r);

/* ---- rendering (json.c) ---- */

/* The fields as JSON objects, in the order of the evidence; measurements as hex. */
json_t *tp_tdx_json(const struct tp_tdx_quote *q);
json_t *tp_snp_json(const struct tp_snp_report *r);
/* {"mode", "runtime", "app", "signer", "nonce", "pubkey"}, bytes as hex, and
 * "debug": true for a debug run */
json_t *tp_claims_json(const struct tp_claims *c);
/* {"label", "simulation": true, "version", the claims, "report_data", "platform_key"} */
json_t *tp_sim_json(const struct tp_sim_evidence *e);
/* [{"name", "ok", "detail"}] */
json_t *tp_attest_checks_json(const struct tp_attest_result *res);

#endif
