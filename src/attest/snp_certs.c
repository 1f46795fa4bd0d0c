/* The SEV-SNP certificate table parser: the host's certificates for a report as
 * configfs-tsm's auxblob holds them (the certificate table of the GHCB's extended
 * guest request, MSG_REPORT_REQ). Pure: no OS calls, no cryptography; the bytes are
 * the host's, so every offset and length is checked before anything is read. */
#include "attest.h"

#include "../common/le.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The GUIDs AMD assigned (GHCB specification, "Certificate table"), as the table
 * holds them: the 16 bytes in the order the text form writes them (as the host
 * tools write them: AMD's sev-guest with libuuid, virtee's snphost, go-sev-guest).
 * A VLEK's ASVK goes under the ASK's GUID: AMD assigned it none of its own. */
static const struct {
	uint8_t guid[TP_SNP_GUID_SIZE];
	enum tp_snp_cert_kind kind;
} known[] = {
	/* 63da758d-e664-4564-adc5-f4b93be8accd */
	{ { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
	    0xac, 0xcd },
	  TP_SNP_CERT_VCEK },
	/* a8074bc2-a25a-483e-aae6-39c045a0b8a1 */
	{ { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0,
	    0xb8, 0xa1 },
	  TP_SNP_CERT_VLEK },
	/* 4ab7b379-bbac-4fe4-a02f-05aef327c782 */
	{ { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27,
	    0xc7, 0x82 },
	  TP_SNP_CERT_ASK },
	/* c0b406a4-a803-4952-9743-3fb6014cd0ae */
	{ { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c,
	    0xd0, 0xae },
	  TP_SNP_CERT_ARK },
	/* 92f81bc3-5811-4d3d-97ff-d19f88dc67ea: a revocation list, not a certificate */
	{ { 0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc,
	    0x67, 0xea },
	  TP_SNP_CERT_CRL },
};

const char *tp_snp_cert_kind_name(enum tp_snp_cert_kind kind)
{
	switch (kind) {
	case TP_SNP_CERT_VCEK:
		return "VCEK";
	case TP_SNP_CERT_VLEK:
		return "VLEK";
	case TP_SNP_CERT_ASK:
		return "ASK";
	case TP_SNP_CERT_ARK:
		return "ARK";
	case TP_SNP_CERT_CRL:
		return "CRL";
	case TP_SNP_CERT_OTHER:
		break;
	}
	return "another GUID";
}

void tp_snp_guid_text(const uint8_t guid[TP_SNP_GUID_SIZE], char out[TP_SNP_GUID_TEXT])
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < TP_SNP_GUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = digits[guid[i] >> 4];
		out[o++] = digits[guid[i] & 15];
	}
	out[o] = '\0';
}

static enum tp_snp_cert_kind kind_of(const uint8_t *guid)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (memcmp(known[i].guid, guid, TP_SNP_GUID_SIZE) == 0)
			return known[i].kind;
	return TP_SNP_CERT_OTHER;
}

static bool all_zero(const uint8_t *b, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (b[i])
			return false;
	return true;
}

__attribute__((format(printf, 3, 4))) static int refuse(char *err, size_t err_size, const char *fmt,
							...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "entry 2 (VCEK)" or "entry 2 (GUID 0123…)", for a refusal */
static void entry_name(size_t i, const struct tp_snp_cert *c, char *out, size_t size)
{
	char guid[TP_SNP_GUID_TEXT];

	if (c->kind != TP_SNP_CERT_OTHER) {
		snprintf(out, size, "entry %zu (%s)", i, tp_snp_cert_kind_name(c->kind));
		return;
	}
	tp_snp_guid_text(c->guid, guid);
	snprintf(out, size, "entry %zu (GUID %s)", i, guid);
}

int tp_snp_certs_parse(const uint8_t *bytes, size_t size, struct tp_snp_certs *t, char *err,
		       size_t err_size)
{
	size_t at = 0, i;
	char name[64];

	memset(t, 0, sizeof(*t));
	if (size == 0)
		return 0; /* the host gave none: configfs-tsm's auxblob is then empty */
	if (size > UINT32_MAX)
		return refuse(err, err_size, "%zu bytes, more than 32-bit offsets reach", size);
	/* the entries, up to the one of zeros that ends them */
	for (;;) {
		const uint8_t *e = bytes + at;
		if (size - at < TP_SNP_CERT_ENTRY_SIZE)
			return refuse(
			    err, err_size,
			    "cut short: no entry of zeros ends the table in its %zu bytes", size);
		at += TP_SNP_CERT_ENTRY_SIZE;
		if (all_zero(e, TP_SNP_CERT_ENTRY_SIZE))
			break;
		if (t->count == TP_SNP_CERTS_MAX)
			return refuse(err, err_size, "more than %d entries", TP_SNP_CERTS_MAX);
		struct tp_snp_cert *c = &t->entries[t->count];
		memcpy(c->guid, e, TP_SNP_GUID_SIZE);
		c->kind = kind_of(c->guid);
		c->offset = (uint32_t)tp_get_le(e + 16, 4);
		c->size = (uint32_t)tp_get_le(e + 20, 4);
		entry_name(t->count, c, name, sizeof(name));
		if (all_zero(c->guid, TP_SNP_GUID_SIZE))
			return refuse(err, err_size, "entry %zu: no GUID, yet an offset or length",
				      t->count);
		for (i = 0; i < t->count; i++)
			if (memcmp(t->entries[i].guid, c->guid, TP_SNP_GUID_SIZE) == 0)
				return refuse(
				    err, err_size,
				    "%s: the GUID of entry %zu again (which one is meant?)", name,
				    i);
		t->count++;
	}
	t->table_size = at;
	/* each certificate lies after the table, within the bytes; certificates may
	 * share bytes (nothing is written through them) */
	for (i = 0; i < t->count; i++) {
		struct tp_snp_cert *c = &t->entries[i];
		if (c->size == 0)
			continue; /* an empty slot: no certificate, whatever its offset */
		entry_name(i, c, name, sizeof(name));
		if (c->offset < t->table_size)
			return refuse(err, err_size,
				      "%s: its certificate at offset %u lies in the table itself "
				      "(%zu bytes)",
				      name, c->offset, t->table_size);
		if ((uint64_t)c->offset + c->size > size)
			return refuse(
			    err, err_size,
			    "%s: bytes %u to %llu are past the end (%zu bytes: cut short?)", name,
			    c->offset, (unsigned long long)c->offset + c->size, size);
		c->der = bytes + c->offset;
	}
	return 0;
}

const struct tp_snp_cert *tp_snp_certs_find(const struct tp_snp_certs *t,
					    enum tp_snp_cert_kind kind)
{
	for (size_t i = 0; i < t->count; i++)
		if (t->entries[i].kind == kind && t->entries[i].size)
			return &t->entries[i];
	return NULL;
}
