/* `teepy attest [--mode sim|hw|auto]`: this host's evidence for the claims given (a
 * debugging aid: the ephemeral X25519 key it binds is made and thrown away here).
 * sim: signed by the platform key, SIMULATION; hw: a report from configfs-tsm. */
#include "attest_cmd.h"

#include "commands.h"
#include "exit_codes.h"
#include "../attest/attest.h"
#include "../cas/cas.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../crypto/crypto.h"
#include "../manifest/engine.h"
#include "../manifest/trust.h"
#include "../pyboot/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tp_attest_runtime(const char *who, enum tp_engine engine, uint8_t out[TP_CLAIM_SIZE])
{
	const struct tp_engine_build *built = tp_engine_built(engine);
	char so[PATH_MAX], reaper[PATH_MAX];
	int r = -ENOENT;

	if (!built || (r = tp_find_engine_runtime(built, so, sizeof(so))) < 0 ||
	    (r = tp_find_reaper(reaper, sizeof(reaper))) < 0 ||
	    (r = tp_runtime_measure(so, reaper, TP_BOOT_TEXT, out)) < 0) {
		tp_error("%s: cannot measure this teepy's runtime: %s (_teepy or teepy-reaper "
			 "beside teepy)",
			 who, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	return 0;
}

/* The claims: this teepy's runtime, the app and signer given (or zeros), the nonce
 * given (or 32 random bytes), a new X25519 key's public half. Returns an exit code
 * or 0. */
static int claims(const struct tp_attest_produce *p, const char *mode, struct tp_claims *c)
{
	struct tp_x25519 *k;
	int code, r;

	memset(c, 0, sizeof(*c));
	snprintf(c->mode, sizeof(c->mode), "%s", mode);
	if ((code = tp_attest_runtime("attest", TP_ENGINE_CPYTHON, c->runtime)) != 0)
		return code;
	if ((p->app_hex && (code = tp_flag_hex("attest", "--app", p->app_hex, c->app, TP_CLAIM_SIZE,
					       TP_CLAIM_SIZE, NULL)) != 0) ||
	    (p->signer_hex && (code = tp_flag_hex("attest", "--signer", p->signer_hex, c->signer,
						  TP_CLAIM_SIZE, TP_CLAIM_SIZE, NULL)) != 0) ||
	    (p->nonce_hex && (code = tp_flag_hex("attest", "--nonce", p->nonce_hex, c->nonce, 1,
						 TP_NONCE_MAX, &c->nonce_size)) != 0))
		return code;
	if (!p->nonce_hex) {
		c->nonce_size = 32;
		if ((r = tp_random(c->nonce, c->nonce_size)) < 0) {
			tp_error("attest: no random bytes for the nonce: %s", strerror(-r));
			return TP_EXIT_INTERNAL;
		}
	}
	/* the runtime's key: here only to show what is bound; its private half goes */
	if (!(k = tp_x25519_generate())) {
		tp_error("attest: cannot make an X25519 key");
		return TP_EXIT_INTERNAL;
	}
	tp_x25519_public(k, c->pubkey);
	tp_x25519_free(k);
	return 0;
}

/* The platform key, refused when others may read it. Returns an exit code or 0. */
static int load_platform_key(const char *who, const char *given, struct tp_key **key, char *path,
			     size_t size)
{
	char err[PATH_MAX + 128];
	struct stat st;

	if (tp_platform_key_path(given, path, size, err, sizeof(err)) < 0) {
		tp_error("%s: %s", who, err);
		return TP_EXIT_USAGE;
	}
	if (stat(path, &st) < 0) {
		tp_error("%s: no platform key at %s: %s (sim evidence is signed with it: "
			 "teepy platform init)",
			 who, path, strerror(errno));
		return TP_EXIT_KEY_MISSING;
	}
	if (st.st_mode & 077) {
		tp_error("%s: %s: others may read the platform key (mode %03o): chmod 600 it, "
			 "and make a new one (teepy platform init --force) if they did",
			 who, path, (unsigned)(st.st_mode & 0777));
		return TP_EXIT_USAGE;
	}
	if (!(*key = tp_key_load_private(path, err, sizeof(err)))) {
		tp_error("%s: %s: %s", who, path, err);
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* The report data inside a TDX quote or an SNP report, or NULL. */
static const uint8_t *bound_data(const struct tp_tsm_report *t, struct tp_tdx_quote *q,
				 struct tp_snp_report *s)
{
	if (strcmp(t->provider, "tdx_guest") == 0 &&
	    tp_tdx_parse(t->outblob, t->size, q, NULL, 0) == 0)
		return q->report_data;
	if (strcmp(t->provider, "sev_guest") == 0 &&
	    tp_snp_parse(t->outblob, t->size, s, NULL, 0) == 0)
		return s->report_data;
	return NULL;
}

static int hw(const char *who, const char *dir, const uint8_t *rd, struct tp_tsm_report *t)
{
	const char *entry = getenv("TEEPY_TSM_ENTRY");
	struct tp_tdx_quote q;
	struct tp_snp_report s;
	const uint8_t *in;
	char err[PATH_MAX + 256];

	if (entry && !*entry)
		entry = NULL;
	if (tp_tsm_get(dir, entry, rd, t, err, sizeof(err)) < 0) {
		tp_error("%s: --mode hw: %s", who, err);
		return TP_EXIT_INTERNAL;
	}
	if (entry)
		tp_warn("%s: TEEPY_TSM_ENTRY: the report is the one recorded in %s/%s, not "
			"one the kernel made now",
			who, dir, entry);
	in = bound_data(t, &q, &s);
	if (!in)
		tp_warn("%s: %s: the report is not one teepy reads, its report data unchecked", who,
			t->provider);
	else if (memcmp(in, rd, TP_REPORT_DATA_SIZE) != 0)
		tp_warn("%s: the report's data is not what teepy wrote: it binds none of these "
			"claims (a RECORDED report?)",
			who);
	return 0;
}

static int write_output(const char *path, const uint8_t *bytes, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r;

	if (fd < 0) {
		tp_error("attest: -o %s: %s", path, strerror(errno));
		return TP_EXIT_USAGE;
	}
	r = tp_write_full(fd, bytes, size);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		tp_error("attest: -o %s: %s", path, strerror(-r));
		return TP_EXIT_USAGE;
	}
	return 0;
}

static void print_hex_line(const char *label, const uint8_t *bytes, size_t size, const char *after)
{
	char *hex = malloc(2 * size + 1);

	if (!hex)
		return;
	tp_hex(bytes, size, hex);
	printf("%-13s %s%s\n", label, hex, after);
	free(hex);
}

/* Where -o FILE puts the SNP certificates: FILE.vcek (DER) and FILE.chain (PEM). */
struct cert_files {
	char vcek[PATH_MAX + 8], chain[PATH_MAX + 8];
};

static void print_text(const struct tp_claims *c, const struct tp_evidence *ev, const char *output,
		       const struct cert_files *files)
{
	char note[PATH_MAX + 32];
	bool sim = strcmp(c->mode, "sim") == 0;

	printf("%-13s %s\n", "mode",
	       sim ? "sim (SIMULATION: signed by this host's platform key, not by hardware)" :
		     "hw (a report from configfs-tsm)");
	print_hex_line("runtime", c->runtime, sizeof(c->runtime), "");
	print_hex_line("app", c->app, sizeof(c->app), "");
	print_hex_line("signer", c->signer, sizeof(c->signer), "");
	print_hex_line("nonce", c->nonce, c->nonce_size, "");
	print_hex_line("pubkey", c->pubkey, sizeof(c->pubkey),
		       " (X25519; its private half is gone: this shows evidence only)");
	print_hex_line("report_data", ev->report_data, TP_REPORT_DATA_SIZE, "");
	if (sim) {
		snprintf(note, sizeof(note), " (%s)", ev->key_path);
		print_hex_line("platform_key", ev->platform_pub, TP_SIM_PLATFORM_KEY, note);
	} else {
		printf("%-13s %s\n", "provider", ev->tsm.provider);
	}
	if (output)
		printf("%-13s written to %s (%zu bytes)\n", "evidence", output, ev->size);
	else
		print_hex_line("evidence", ev->bytes, ev->size, "");
	if (strcmp(ev->type, "snp") != 0)
		return;
	printf("%-13s %s\n", "host_certs", ev->host_certs);
	if (!ev->vcek)
		printf("%-13s none\n", "vcek");
	else if (output)
		printf("%-13s %s, written to %s (DER, %zu bytes)\n", "vcek", ev->vcek_from,
		       files->vcek, ev->vcek_size);
	else
		printf("%-13s %s (DER, %zu bytes; -o FILE or --json gives it)\n", "vcek",
		       ev->vcek_from, ev->vcek_size);
	if (!ev->chain)
		printf("%-13s none\n", "chain");
	else if (output)
		printf("%-13s %s, written to %s (PEM, %zu certificates)\n", "chain", ev->chain_from,
		       files->chain, ev->chain_certs);
	else
		printf("%-13s %s (PEM, %zu certificates; -o FILE or --json gives it)\n", "chain",
		       ev->chain_from, ev->chain_certs);
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* {"host_certs", "vcek_from", "vcek" (base64 DER) or "vcek_file", "chain_from",
 * "chain" (PEM) or "chain_file"}: a null for what there is none of */
static json_t *certs_json(const struct tp_evidence *ev, const char *output,
			  const struct cert_files *files)
{
	char *b64 = ev->vcek ? tp_base64_encode(ev->vcek, ev->vcek_size) : NULL;
	json_t *o = json_object();

	json_object_set_new(o, "host_certs", json_string(ev->host_certs));
	json_object_set_new(o, "vcek_from", string_or_null(ev->vcek ? ev->vcek_from : NULL));
	if (output)
		json_object_set_new(o, "vcek_file", string_or_null(ev->vcek ? files->vcek : NULL));
	else
		json_object_set_new(o, "vcek", string_or_null(b64));
	json_object_set_new(o, "chain_from", string_or_null(ev->chain ? ev->chain_from : NULL));
	if (output)
		json_object_set_new(o, "chain_file",
				    string_or_null(ev->chain ? files->chain : NULL));
	else
		json_object_set_new(o, "chain", string_or_null(ev->chain));
	free(b64);
	return o;
}

static void print_json(const struct tp_claims *c, const struct tp_evidence *ev, const char *output,
		       const struct cert_files *files)
{
	bool sim = strcmp(c->mode, "sim") == 0;
	json_t *o = json_object();
	size_t size = ev->size;
	char *hex = malloc(2 * (size > TP_REPORT_DATA_SIZE ? size : TP_REPORT_DATA_SIZE) + 1);

	if (!o || !hex) {
		free(hex);
		json_decref(o);
		return;
	}
	json_object_set_new(o, "mode", json_string(c->mode));
	json_object_set_new(o, "simulation", json_boolean(sim));
	json_object_set_new(o, "claims", tp_claims_json(c));
	tp_hex(ev->report_data, TP_REPORT_DATA_SIZE, hex);
	json_object_set_new(o, "report_data", json_string(hex));
	if (sim) {
		tp_hex(ev->platform_pub, TP_SIM_PLATFORM_KEY, hex);
		json_object_set_new(o, "platform_key", json_string(hex));
	} else {
		json_object_set_new(o, "provider", json_string(ev->tsm.provider));
	}
	json_object_set_new(o, "size", json_integer((json_int_t)size));
	if (output) {
		json_t *name = json_string(output);
		json_object_set_new(o, "evidence_file", name ? name : json_string("?"));
	} else {
		tp_hex(ev->bytes, size, hex);
		json_object_set_new(o, "evidence", json_string(hex));
	}
	if (strcmp(ev->type, "snp") == 0)
		json_object_set_new(o, "certificates", certs_json(ev, output, files));
	if (json_dumpf(o, stdout, JSON_INDENT(2)) == 0)
		putchar('\n');
	json_decref(o);
	free(hex);
}

static const char *tsm_dir(void)
{
	const char *dir = getenv("TEEPY_TSM_DIR");
	return dir && *dir ? dir : TP_TSM_DIR;
}

int tp_attest_mode(const char *who, const char *mode, const char **resolved)
{
	const char *dir = tsm_dir();

	if (!mode || strcmp(mode, "auto") == 0)
		mode = tp_tsm_present(dir) ? "hw" : "sim";
	else if (strcmp(mode, "sim") != 0 && strcmp(mode, "hw") != 0) {
		tp_error("%s: --mode: unknown mode '%s' (use sim, auto or hw)", who, mode);
		return TP_EXIT_USAGE;
	}
	if (strcmp(mode, "hw") == 0 && !tp_tsm_present(dir)) {
		tp_error("%s: --mode hw: no configfs-tsm at %s (not a confidential VM, or a "
			 "kernel without TSM reports; --mode sim makes SIMULATION evidence)",
			 who, dir);
		return TP_EXIT_USAGE;
	}
	*resolved = mode;
	return 0;
}

/* --snp-vcek and --snp-chain given as flags for evidence that is not SEV-SNP (the
 * settings, a deployment's defaults, are not worth a line each run) */
static void unused_snp_flags(const char *who, const struct tp_evidence_opts *opts, const char *type)
{
	const char *from[] = { opts->snp.vcek_from, opts->snp.chain_from };

	for (size_t i = 0; i < 2; i++)
		if (from[i] && strncmp(from[i], "--", 2) == 0)
			tp_warn("%s: %s: not used: the evidence is %s, not SEV-SNP", who, from[i],
				type);
}

int tp_attest_evidence(const char *who, const struct tp_claims *c,
		       const struct tp_evidence_opts *opts, struct tp_evidence *ev)
{
	struct tp_key *k = NULL;
	int code, n;

	memset(ev, 0, sizeof(*ev));
	if (tp_report_data(c, ev->report_data) < 0) {
		tp_error("%s: the claims cannot be encoded", who);
		return TP_EXIT_INTERNAL;
	}
	if (strcmp(c->mode, "sim") == 0) {
		if ((code = load_platform_key(who, opts->key, &k, ev->key_path,
					      sizeof(ev->key_path))) != 0)
			return code;
		tp_key_public_raw(k, ev->platform_pub);
		n = tp_sim_write(c, k, ev->sim);
		tp_key_free(k);
		if (n < 0) {
			tp_error("%s: cannot sign the sim evidence: %s", who, strerror(-n));
			return TP_EXIT_INTERNAL;
		}
		ev->bytes = ev->sim;
		ev->size = (size_t)n;
		snprintf(ev->type, sizeof(ev->type), "sim");
		unused_snp_flags(who, opts, ev->type);
		return 0;
	}
	if ((code = hw(who, tsm_dir(), ev->report_data, &ev->tsm)) != 0)
		return code;
	ev->bytes = ev->tsm.outblob;
	ev->size = ev->tsm.size;
	snprintf(ev->type, sizeof(ev->type), "%s",
		 strcmp(ev->tsm.provider, "tdx_guest") == 0 ? "tdx" :
		 strcmp(ev->tsm.provider, "sev_guest") == 0 ? "snp" :
							      ev->tsm.provider);
	/* a TDX quote carries its PCK chain; an SNP report needs its certificates */
	if (strcmp(ev->type, "snp") == 0)
		return tp_attest_snp_certs(who, opts, ev);
	unused_snp_flags(who, opts, ev->type);
	return 0;
}

json_t *tp_evidence_json(const struct tp_evidence *ev)
{
	json_t *out =
	    json_pack("{s:s, s:o}", "type", ev->type, "data", tp_base64_json(ev->bytes, ev->size));

	/* an SNP report's signer's certificate and AMD's chain: a verifier checks it with
	 * them (a TDX quote carries its own; sim evidence its platform key) */
	if (out && ev->vcek)
		json_object_set_new(out, "vcek", tp_base64_json(ev->vcek, ev->vcek_size));
	if (out && ev->chain)
		json_object_set_new(out, "chain", json_string(ev->chain));
	return out;
}

void tp_evidence_free(struct tp_evidence *ev)
{
	tp_tsm_report_free(&ev->tsm);
	free(ev->vcek);
	free(ev->chain);
	ev->vcek = NULL;
	ev->chain = NULL;
}

int tp_attest_produce(const struct tp_attest_produce *p)
{
	const struct tp_evidence_opts opts = { .key = p->key, .snp = p->snp };
	struct cert_files files = { "", "" };
	struct tp_evidence ev;
	struct tp_claims c;
	const char *mode;
	char err[256];
	int code;

	if ((code = tp_attest_mode("attest", p->mode, &mode)) != 0)
		return code;
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("attest: %s", err);
		return TP_EXIT_INTERNAL;
	}
	if ((code = claims(p, mode, &c)) != 0)
		return code;
	if ((code = tp_attest_evidence("attest", &c, &opts, &ev)) != 0) {
		tp_evidence_free(&ev);
		return code;
	}
	if (p->output) {
		snprintf(files.vcek, sizeof(files.vcek), "%s.vcek", p->output);
		snprintf(files.chain, sizeof(files.chain), "%s.chain", p->output);
		if ((code = write_output(p->output, ev.bytes, ev.size)) != 0 ||
		    (ev.vcek && (code = write_output(files.vcek, ev.vcek, ev.vcek_size)) != 0) ||
		    (ev.chain && (code = write_output(files.chain, (const uint8_t *)ev.chain,
						      strlen(ev.chain))) != 0)) {
			tp_evidence_free(&ev);
			return code;
		}
	}
	if (p->json)
		print_json(&c, &ev, p->output, &files);
	else
		print_text(&c, &ev, p->output, &files);
	tp_evidence_free(&ev);
	if (fflush(stdout) != 0) {
		tp_error("attest: cannot write the evidence: %s", strerror(errno));
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}
