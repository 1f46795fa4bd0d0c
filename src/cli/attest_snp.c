/* The certificates an SEV-SNP report goes with: its signer's (the VCEK, or a VLEK)
 * and AMD's chain above it (ASK or ASVK, ARK), without which no CAS can verify it.
 * They come from the files the person gave (--snp-vcek, --snp-chain), else from the
 * host's certificate table that configfs-tsm hands over with the report (auxblob,
 * parsed by attest/snp_certs.c); each is checked to be a certificate before it is
 * sent (docs/cas.md, "The runtime side"). */
#include "attest_cmd.h"

#include "exit_codes.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIVEN_MAX (64 << 10) /* a certificate is 1 to 2 KiB, a chain three of them */
#define CHAIN_MAX 8	     /* certificates of a chain file (the CAS reads no more) */

/* A file the person named, whole. Returns an exit code (one line said) or 0. */
static int read_given(const char *who, const char *from, const char *path, char **text,
		      size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0) {
		tp_error("%s: %s %s: %s", who, from, path, strerror(errno));
		return TP_EXIT_USAGE;
	}
	r = tp_read_all(fd, GIVEN_MAX, text, size);
	close(fd);
	if (r < 0) {
		tp_error("%s: %s %s: %s", who, from, path,
			 r == -EFBIG ? "larger than any certificate file" : strerror(-r));
		return r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
	}
	return 0;
}

/* The signer's certificate the person gave, DER or PEM, as DER into ev. Returns an
 * exit code or 0. */
static int given_vcek(const char *who, const struct tp_snp_given *g, struct tp_evidence *ev)
{
	struct tp_cert *cert = NULL;
	char *text = NULL;
	size_t size = 0;
	int code, n = 0;

	if ((code = read_given(who, g->vcek_from, g->vcek, &text, &size)) != 0)
		return code;
	if (memmem(text, size, "-----BEGIN", 10)) {
		n = tp_certs_from_pem(text, size, &cert, 1);
		if (n == 1 && tp_cert_der(cert, &ev->vcek, &ev->vcek_size) < 0)
			n = -ENOMEM;
	} else if ((cert = tp_cert_from_der(text, size)) && (ev->vcek = malloc(size ? size : 1))) {
		memcpy(ev->vcek, text, size);
		ev->vcek_size = size;
		n = 1;
	}
	tp_cert_free(cert);
	free(text);
	if (n == -ENOMEM || (n == 1 && !ev->vcek)) {
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	if (n != 1) {
		tp_error("%s: %s %s: not one certificate, DER or PEM (the VCEK or VLEK that "
			 "signed the report)",
			 who, g->vcek_from, g->vcek);
		return TP_EXIT_USAGE;
	}
	snprintf(ev->vcek_from, sizeof(ev->vcek_from), "%s %s", g->vcek_from, g->vcek);
	return 0;
}

/* certs as PEM, one block each in order, malloc'd; NULL when out of memory. */
static char *chain_pem(struct tp_cert *const *certs, size_t count)
{
	char *out = calloc(1, 1);
	size_t size = 0;

	for (size_t i = 0; out && i < count; i++) {
		uint8_t *der = NULL;
		size_t der_size = 0;
		char *pem = NULL, *grown = NULL;
		if (tp_cert_der(certs[i], &der, &der_size) == 0 &&
		    (pem = tp_pem_certificate(der, der_size)) &&
		    (grown = realloc(out, size + strlen(pem) + 1))) {
			memcpy(grown + size, pem, strlen(pem) + 1);
			size += strlen(pem);
		}
		free(der);
		free(pem);
		if (!grown)
			free(out);
		out = grown;
	}
	return out;
}

/* The chain the person gave, PEM, into ev: its certificates written again, so that
 * nothing but them (no text around them) goes to the CAS. Returns an exit code or
 * 0. */
static int given_chain(const char *who, const struct tp_snp_given *g, struct tp_evidence *ev)
{
	struct tp_cert *certs[CHAIN_MAX];
	char *text = NULL;
	size_t size = 0;
	int code, n;

	if ((code = read_given(who, g->chain_from, g->chain, &text, &size)) != 0)
		return code;
	n = tp_certs_from_pem(text, size, certs, CHAIN_MAX);
	free(text);
	if (n <= 0) {
		tp_error("%s: %s %s: %s (AMD's chain: the ASK or ASVK and the ARK, PEM, as "
			 "KDS's cert_chain)",
			 who, g->chain_from, g->chain,
			 n == -E2BIG ? "more than 8 certificates" : "no PEM certificate in it");
		return TP_EXIT_USAGE;
	}
	ev->chain = chain_pem(certs, (size_t)n);
	for (int i = 0; i < n; i++)
		tp_cert_free(certs[i]);
	if (!ev->chain) {
		tp_error("out of memory");
		return TP_EXIT_INTERNAL;
	}
	ev->chain_certs = (size_t)n;
	snprintf(ev->chain_from, sizeof(ev->chain_from), "%s %s", g->chain_from, g->chain);
	return 0;
}

/* Whether a certificate of the host's table is one; why not in bad. */
static bool host_cert_ok(const struct tp_snp_cert *c, char *bad, size_t bad_size)
{
	struct tp_cert *cert = tp_cert_from_der(c->der, c->size);

	if (cert) {
		tp_cert_free(cert);
		return true;
	}
	snprintf(bad, bad_size, "the host's %s (%zu bytes at offset %u) is not a DER certificate",
		 tp_snp_cert_kind_name(c->kind), c->size, c->offset);
	return false;
}

/* "VCEK 1360 bytes, ASK 1563 bytes, ARK 1600 bytes" */
static void describe(const struct tp_snp_certs *t, char *out, size_t size)
{
	size_t at = 0;

	out[0] = '\0';
	for (size_t i = 0; i < t->count && at < size; i++) {
		char guid[TP_SNP_GUID_TEXT];
		const struct tp_snp_cert *c = &t->entries[i];
		tp_snp_guid_text(c->guid, guid);
		at += (size_t)snprintf(
		    out + at, size - at, "%s%s %zu bytes", i ? ", " : "",
		    c->kind == TP_SNP_CERT_OTHER ? guid : tp_snp_cert_kind_name(c->kind), c->size);
	}
}

/* The host's certificates into ev, where the person gave none. Returns 0 (what the
 * table lacks is left NULL), -ENOMEM, or -EINVAL when one of them is no certificate
 * (why in bad: then none of the host's is taken). */
static int from_host(const struct tp_snp_certs *t, enum tp_snp_cert_kind signer,
		     struct tp_evidence *ev, char *bad, size_t bad_size)
{
	const struct tp_snp_cert *s = ev->vcek ? NULL : tp_snp_certs_find(t, signer);
	const struct tp_snp_cert *ask = ev->chain ? NULL : tp_snp_certs_find(t, TP_SNP_CERT_ASK);
	const struct tp_snp_cert *ark = ev->chain ? NULL : tp_snp_certs_find(t, TP_SNP_CERT_ARK);

	if ((s && !host_cert_ok(s, bad, bad_size)) || (ask && !host_cert_ok(ask, bad, bad_size)) ||
	    (ark && !host_cert_ok(ark, bad, bad_size)))
		return -EINVAL;
	if (s) {
		if (!(ev->vcek = malloc(s->size)))
			return -ENOMEM;
		memcpy(ev->vcek, s->der, s->size);
		ev->vcek_size = s->size;
		snprintf(ev->vcek_from, sizeof(ev->vcek_from), "the host's %s (auxblob)",
			 tp_snp_cert_kind_name(s->kind));
	}
	if (ask && ark) {
		char *a = tp_pem_certificate(ask->der, ask->size);
		char *b = tp_pem_certificate(ark->der, ark->size);
		size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
		if (a && b && (ev->chain = malloc(la + lb + 1))) {
			memcpy(ev->chain, a, la);
			memcpy(ev->chain + la, b, lb + 1);
		}
		free(a);
		free(b);
		if (!ev->chain)
			return -ENOMEM;
		ev->chain_certs = 2;
		snprintf(ev->chain_from, sizeof(ev->chain_from),
			 "the host's ASK and ARK (auxblob)");
	}
	return 0;
}

/* "its VCEK and AMD's chain (ASK and ARK)", ... of what is missing (t: the host's
 * table when it was read, else NULL), and the flags that give it. */
static void missing_text(const struct tp_evidence *ev, const struct tp_snp_certs *t,
			 enum tp_snp_cert_kind signer, char *out, size_t size, char *flags,
			 size_t flags_size)
{
	bool ask = t && tp_snp_certs_find(t, TP_SNP_CERT_ASK),
	     ark = t && tp_snp_certs_find(t, TP_SNP_CERT_ARK);
	const char *chain = ev->chain	? "" :
			    ask && !ark ? "AMD's chain (its ARK)" :
			    ark && !ask ? "AMD's chain (its ASK)" :
					  "AMD's chain (ASK and ARK)";

	snprintf(out, size, "%s%s%s",
		 ev->vcek		    ? "" :
		 signer == TP_SNP_CERT_VLEK ? "its VLEK" :
					      "its VCEK",
		 !ev->vcek && !ev->chain ? " and " : "", chain);
	snprintf(flags, flags_size, "%s%s%s", ev->vcek ? "" : "--snp-vcek FILE",
		 !ev->vcek && !ev->chain ? " " : "", ev->chain ? "" : "--snp-chain FILE");
}

int tp_attest_snp_certs(const char *who, const struct tp_evidence_opts *opts,
			struct tp_evidence *ev)
{
	const struct tp_snp_given *g = &opts->snp;
	const struct tp_tsm_report *tsm = &ev->tsm;
	enum tp_snp_cert_kind signer = TP_SNP_CERT_VCEK;
	struct tp_snp_report report;
	struct tp_snp_certs table = { 0 };
	const struct tp_snp_certs *read = NULL; /* the host's table, when it was taken */
	char why[512] = "", missing[128], flags[64], parse_err[256] = "";
	int code, r;

	if ((g->vcek && (code = given_vcek(who, g, ev)) != 0) ||
	    (g->chain && (code = given_chain(who, g, ev)) != 0))
		return code;
	/* the report names the key that signed it; one teepy does not read is sent as
	 * it is, with the VCEK (the CAS says what it is) */
	if (tp_snp_parse(ev->bytes, ev->size, &report, NULL, 0) == 0 &&
	    report.signing_key == TP_SNP_KEY_VLEK)
		signer = TP_SNP_CERT_VLEK;
	if (!tsm->aux_present) {
		snprintf(why, sizeof(why), "configfs-tsm gave no auxblob with the report");
	} else if (tsm->aux_size == 0) {
		snprintf(why, sizeof(why), "the host gave none (configfs-tsm's auxblob is empty)");
	} else if (tp_snp_certs_parse(tsm->auxblob, tsm->aux_size, &table, parse_err,
				      sizeof(parse_err)) < 0) {
		snprintf(why, sizeof(why),
			 "the host's certificate table (configfs-tsm's auxblob, %zu bytes) is "
			 "malformed: %s",
			 tsm->aux_size, parse_err);
	} else {
		describe(&table, ev->host_certs, sizeof(ev->host_certs));
		if ((r = from_host(&table, signer, ev, why, sizeof(why))) == -ENOMEM) {
			tp_error("out of memory");
			return TP_EXIT_INTERNAL;
		}
		read = r == 0 ? &table : NULL;
		if (r == 0 && table.count)
			snprintf(why, sizeof(why), "the host's certificate table holds only %.400s",
				 ev->host_certs);
		else if (r == 0)
			snprintf(why, sizeof(why), "the host's certificate table is empty");
	}
	if (!ev->host_certs[0])
		snprintf(ev->host_certs, sizeof(ev->host_certs), "none: %.500s", why);
	if (ev->vcek && ev->chain)
		return 0;
	missing_text(ev, read, signer, missing, sizeof(missing), flags, sizeof(flags));
	if (!opts->snp_certs_needed) {
		tp_warn("%s: the SEV-SNP report lacks %s, without which a CAS cannot verify it: %s "
			"(the host provides them: snphost import, given to its VMM; or give %s)",
			who, missing, why, flags);
		return 0;
	}
	tp_error("%s: the SEV-SNP report needs %s for the CAS to verify it, and %s: the host "
		 "must provide them (snphost import, given to its VMM), or give %s (from AMD's "
		 "KDS)",
		 who, missing, why, flags);
	return TP_EXIT_KEY_MISSING;
}
