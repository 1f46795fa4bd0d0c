/* The fields of a quote or report as JSON, in the order they stand in the
 * evidence: measurements and other byte fields as lower-case hex, counters as
 * numbers, 64-bit flag words as 16 hex digits with the bits a policy reads beside. */
#include "attest.h"

#include "../crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>

static void set_hex(json_t *o, const char *key, const uint8_t *bytes, size_t size)
{
	char *hex = malloc(2 * size + 1);

	if (!hex)
		return;
	tp_hex(bytes, size, hex);
	json_object_set_new(o, key, json_string(hex));
	free(hex);
}

#define SET_HEX(o, key, field) set_hex(o, key, field, sizeof(field))

static void set_int(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

static void set_bool(json_t *o, const char *key, bool v)
{
	json_object_set_new(o, key, json_boolean(v));
}

/* A 64-bit word as 16 hex digits, most significant first. */
static void set_word(json_t *o, const char *key, uint64_t v)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)v);
	json_object_set_new(o, key, json_string(hex));
}

static json_t *sgx_report_json(const struct tp_sgx_report *r)
{
	json_t *o = json_object();

	SET_HEX(o, "cpu_svn", r->cpu_svn);
	set_int(o, "misc_select", r->misc_select);
	SET_HEX(o, "attributes", r->attributes);
	SET_HEX(o, "mr_enclave", r->mr_enclave);
	SET_HEX(o, "mr_signer", r->mr_signer);
	set_int(o, "isv_prod_id", r->isv_prod_id);
	set_int(o, "isv_svn", r->isv_svn);
	SET_HEX(o, "report_data", r->report_data);
	return o;
}

json_t *tp_tdx_json(const struct tp_tdx_quote *q)
{
	json_t *root = json_object(), *h = json_object(), *b = json_object(),
	       *flags = json_object();
	char name[8];

	set_int(h, "version", q->version);
	set_int(h, "att_key_type", q->att_key_type);
	set_int(h, "tee_type", q->tee_type);
	set_int(h, "qe_svn", q->qe_svn);
	set_int(h, "pce_svn", q->pce_svn);
	SET_HEX(h, "qe_vendor_id", q->qe_vendor_id);
	SET_HEX(h, "user_data", q->user_data);
	json_object_set_new(root, "header", h);

	json_object_set_new(b, "type",
			    json_string(q->body_type == TP_TDX_BODY_TD_REPORT_15 ?
					    "td_report_1.5" :
					    "td_report_1.0"));
	SET_HEX(b, "tee_tcb_svn", q->tee_tcb_svn);
	SET_HEX(b, "mr_seam", q->mr_seam);
	SET_HEX(b, "mr_signer_seam", q->mr_signer_seam);
	set_word(b, "seam_attributes", q->seam_attributes);
	set_word(b, "td_attributes", q->td_attributes);
	set_bool(flags, "debug", q->td_attributes & TP_TDX_ATTR_DEBUG);
	set_bool(flags, "septve_disable", q->td_attributes & TP_TDX_ATTR_SEPT_VE_DISABLE);
	set_bool(flags, "protection_keys", q->td_attributes & TP_TDX_ATTR_PKS);
	set_bool(flags, "key_locker", q->td_attributes & TP_TDX_ATTR_KEY_LOCKER);
	set_bool(flags, "perfmon", q->td_attributes & TP_TDX_ATTR_PERFMON);
	json_object_set_new(b, "td_attributes_flags", flags);
	set_word(b, "xfam", q->xfam);
	SET_HEX(b, "mr_td", q->mr_td);
	SET_HEX(b, "mr_config_id", q->mr_config_id);
	SET_HEX(b, "mr_owner", q->mr_owner);
	SET_HEX(b, "mr_owner_config", q->mr_owner_config);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "rtmr%d", i);
		SET_HEX(b, name, q->rtmr[i]);
	}
	SET_HEX(b, "report_data", q->report_data);
	if (q->body_type == TP_TDX_BODY_TD_REPORT_15) {
		SET_HEX(b, "tee_tcb_svn2", q->tee_tcb_svn2);
		SET_HEX(b, "mr_servicetd", q->mr_servicetd);
	}
	json_object_set_new(root, "body", b);

	SET_HEX(root, "attestation_key", q->attestation_key);
	json_object_set_new(root, "qe_report", sgx_report_json(&q->qe));
	return root;
}

static json_t *tcb_json(const struct tp_snp_tcb *t)
{
	json_t *o = json_object();

	set_word(o, "raw", t->raw);
	set_int(o, "bootloader", t->bootloader);
	set_int(o, "tee", t->tee);
	set_int(o, "snp", t->snp);
	set_int(o, "microcode", t->microcode);
	return o;
}

static json_t *version_json(uint8_t major, uint8_t minor, uint8_t build)
{
	char v[16];

	snprintf(v, sizeof(v), "%u.%u.%u", major, minor, build);
	return json_string(v);
}

json_t *tp_snp_json(const struct tp_snp_report *r)
{
	json_t *o = json_object(), *policy = json_object(), *signer = json_object();

	set_int(o, "version", r->version);
	set_int(o, "guest_svn", r->guest_svn);
	set_word(o, "policy", r->policy);
	set_int(policy, "abi_major", (r->policy >> 8) & 0xff);
	set_int(policy, "abi_minor", r->policy & 0xff);
	set_bool(policy, "smt", r->policy & TP_SNP_POLICY_SMT);
	set_bool(policy, "migrate_ma", r->policy & TP_SNP_POLICY_MIGRATE_MA);
	set_bool(policy, "debug", r->policy & TP_SNP_POLICY_DEBUG);
	set_bool(policy, "single_socket", r->policy & TP_SNP_POLICY_SINGLE_SOCKET);
	json_object_set_new(o, "policy_flags", policy);
	SET_HEX(o, "family_id", r->family_id);
	SET_HEX(o, "image_id", r->image_id);
	set_int(o, "vmpl", r->vmpl);
	set_int(o, "signature_algo", r->signature_algo);
	json_object_set_new(o, "current_tcb", tcb_json(&r->current_tcb));
	set_word(o, "platform_info", r->platform_info);
	set_bool(signer, "author_key_en", r->author_key_en);
	set_bool(signer, "mask_chip_key", r->mask_chip_key);
	json_object_set_new(signer, "signing_key",
			    json_string(r->signing_key == TP_SNP_KEY_VLEK ? "vlek" : "vcek"));
	json_object_set_new(o, "signer", signer);
	SET_HEX(o, "report_data", r->report_data);
	SET_HEX(o, "measurement", r->measurement);
	SET_HEX(o, "host_data", r->host_data);
	SET_HEX(o, "id_key_digest", r->id_key_digest);
	SET_HEX(o, "author_key_digest", r->author_key_digest);
	SET_HEX(o, "report_id", r->report_id);
	SET_HEX(o, "report_id_ma", r->report_id_ma);
	json_object_set_new(o, "reported_tcb", tcb_json(&r->reported_tcb));
	SET_HEX(o, "chip_id", r->chip_id);
	json_object_set_new(o, "committed_tcb", tcb_json(&r->committed_tcb));
	json_object_set_new(o, "current_version",
			    version_json(r->current_major, r->current_minor, r->current_build));
	json_object_set_new(
	    o, "committed_version",
	    version_json(r->committed_major, r->committed_minor, r->committed_build));
	json_object_set_new(o, "launch_tcb", tcb_json(&r->launch_tcb));
	return o;
}

json_t *tp_claims_json(const struct tp_claims *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "mode", json_string(c->mode));
	SET_HEX(o, "runtime", c->runtime);
	SET_HEX(o, "app", c->app);
	SET_HEX(o, "signer", c->signer);
	set_hex(o, "nonce", c->nonce, c->nonce_size);
	SET_HEX(o, "pubkey", c->pubkey);
	if (c->debug) /* said only when so: a run's claims read as they always have */
		set_bool(o, "debug", true);
	return o;
}

json_t *tp_sim_json(const struct tp_sim_evidence *e)
{
	json_t *o = json_object();

	json_object_set_new(o, "label", json_string("SIMULATION, not hardware"));
	set_bool(o, "simulation", true);
	set_int(o, "version", e->version);
	json_object_set_new(o, "claims", tp_claims_json(&e->claims));
	SET_HEX(o, "report_data", e->report_data);
	SET_HEX(o, "platform_key", e->platform_key);
	return o;
}

json_t *tp_attest_checks_json(const struct tp_attest_result *res)
{
	json_t *a = json_array();

	for (size_t i = 0; i < res->count; i++) {
		const struct tp_attest_check *c = &res->checks[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "ok", json_boolean(c->ok));
		json_object_set_new(o, "what", json_string(c->what));
		json_object_set_new(o, "detail", json_string(c->detail));
		json_array_append_new(a, o);
	}
	return a;
}
