/* libFuzzer target: the SEV-SNP certificate table parser (src/attest/snp_certs.c),
 * the host's bytes from configfs-tsm's auxblob. A refusal is -EINVAL with a reason;
 * an accepted table's every certificate lies after its entries and within the
 * bytes, no GUID is null or there twice, and at most TP_SNP_CERTS_MAX are read.
 * Seeds: tables built from the real VCEK, ASK and ARK (fuzz/corpus/snp_certs). */
#include "evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t null_guid[TP_SNP_GUID_SIZE];
	struct tp_snp_certs t;
	uint8_t *copy = exact_copy(data, size);
	char err[256] = "", guid[TP_SNP_GUID_TEXT];
	int e = tp_snp_certs_parse(copy, size, &t, err, sizeof(err));

	if (e < 0) {
		if (e != -EINVAL || !err[0])
			abort();
		free(copy);
		return 0;
	}
	if (t.count > TP_SNP_CERTS_MAX ||
	    (size && t.table_size != (t.count + 1) * TP_SNP_CERT_ENTRY_SIZE) || t.table_size > size)
		abort();
	for (size_t i = 0; i < t.count; i++) {
		const struct tp_snp_cert *c = &t.entries[i];
		if (memcmp(c->guid, null_guid, TP_SNP_GUID_SIZE) == 0 ||
		    memcmp(c->guid, copy + i * TP_SNP_CERT_ENTRY_SIZE, TP_SNP_GUID_SIZE) != 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (memcmp(t.entries[j].guid, c->guid, TP_SNP_GUID_SIZE) == 0)
				abort();
		if (c->size == 0 ? c->der != NULL :
				   c->der != copy + c->offset || c->offset < t.table_size ||
				       c->offset + c->size > size)
			abort();
		tp_snp_guid_text(c->guid, guid);
		if (strlen(guid) != TP_SNP_GUID_TEXT - 1 || !*tp_snp_cert_kind_name(c->kind))
			abort();
	}
	for (int k = TP_SNP_CERT_OTHER; k <= TP_SNP_CERT_CRL; k++) {
		const struct tp_snp_cert *c = tp_snp_certs_find(&t, (enum tp_snp_cert_kind)k);
		if (c && (c->kind != (enum tp_snp_cert_kind)k || !c->size))
			abort();
	}
	free(copy);
	return 0;
}
