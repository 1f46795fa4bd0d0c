/* `teepy attest verify FILE --type tdx|snp|sim`: a TDX quote or an SEV-SNP report
 * parsed, every signature and certificate chain checked up to the vendors' pinned
 * root keys (attest/), or sim evidence checked against the platform keys given; its
 * fields and each check printed. `teepy attest` alone makes this host's evidence
 * (attest_produce.c). */
#include "commands.h"

#include "attest_cmd.h"
#include "exit_codes.h"
#include "flags.h"
#include "../attest/attest.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum attest_flag {
	ATTEST_HELP = 1,
	ATTEST_MODE,
	ATTEST_NONCE,
	ATTEST_APP,
	ATTEST_SIGNER,
	ATTEST_OUTPUT,
	ATTEST_KEY,
	ATTEST_SNP_VCEK,
	ATTEST_SNP_CHAIN,
	ATTEST_TYPE,
	ATTEST_VCEK,
	ATTEST_CHAIN,
	ATTEST_PLATFORM_KEY,
	ATTEST_NO_TIME,
	ATTEST_TOLERATE_DEBUG,
	ATTEST_JSON
};

static const struct tp_flag flags[] = {
	{ ATTEST_HELP, "help", 'h', NULL, NULL, "show this help" },
	TP_FLAG_HEADING("Producing evidence (teepy attest):"),
	{ ATTEST_MODE, "mode", 0, "MODE", "TEEPY_MODE",
	  "sim (SIMULATION: signed by the platform key), hw (a report from configfs-tsm) or "
	  "auto (default: hw when configfs-tsm is there, else sim)" },
	{ ATTEST_NONCE, "nonce", 0, "HEX", NULL,
	  "the verifier's challenge, 1 to 64 bytes (default: 32 random bytes); verify: the "
	  "nonce sim evidence must bind" },
	{ ATTEST_APP, "app", 0, "HEX", NULL,
	  "the app measurement to bind, 32 bytes (default zeros); verify: the one expected" },
	{ ATTEST_SIGNER, "signer", 0, "HEX", NULL,
	  "the signer measurement to bind, 32 bytes (default zeros); verify: the one expected" },
	{ ATTEST_OUTPUT, "output", 'o', "FILE", NULL,
	  "write the evidence to FILE instead of printing it in hex (SEV-SNP: its "
	  "certificate to FILE.vcek, DER, and AMD's chain to FILE.chain, PEM)" },
	{ ATTEST_KEY, "key", 0, "KEY", "TEEPY_PLATFORM_KEY",
	  "sim: the platform key that signs (default: teepy platform init's)" },
	{ ATTEST_SNP_VCEK, "snp-vcek", 0, "FILE", "TEEPY_SNP_VCEK",
	  "SEV-SNP: the VCEK or VLEK (DER or PEM) to go with the report instead of the "
	  "host's (configfs-tsm's auxblob), as teepy run --cas sends it" },
	{ ATTEST_SNP_CHAIN, "snp-chain", 0, "FILE", "TEEPY_SNP_CHAIN",
	  "SEV-SNP: AMD's chain (PEM: ASK or ASVK, and ARK) instead of the host's" },
	TP_FLAG_HEADING("Verifying evidence (teepy attest verify FILE):"),
	{ ATTEST_TYPE, "type", 0, "TYPE", NULL,
	  "what FILE is: tdx (a TDX quote, version 4 or 5), snp (an SEV-SNP attestation "
	  "report) or sim (sim evidence, SIMULATION)" },
	{ ATTEST_VCEK, "vcek", 0, "DER", NULL,
	  "snp: the VCEK or VLEK certificate that signed the report (DER, from AMD's KDS or "
	  "the host)" },
	{ ATTEST_CHAIN, "chain", 0, "PEM", NULL,
	  "snp: AMD's chain of the product (ASK or ASVK, ARK: KDS's cert_chain); it must end "
	  "at a pinned ARK (Milan, Genoa)" },
	{ ATTEST_PLATFORM_KEY, "platform-key", 0, "PUB", NULL,
	  "sim: a platform public key trusted to sign (its .pub, as teepy platform show names "
	  "it); repeat for more" },
	{ ATTEST_NO_TIME, "insecure-no-time-check", 0, NULL, NULL,
	  "do not check certificates' validity periods (to verify old evidence; says so on "
	  "stderr)" },
	{ ATTEST_TOLERATE_DEBUG, "insecure-tolerate-debug", 0, NULL, NULL,
	  "accept debug evidence (a debug run's: teepy shell's; a debug TD or guest), which is "
	  "refused without it; a warning on stderr says so" },
	{ ATTEST_JSON, "json", 0, NULL, NULL,
	  "print JSON instead (verify: {\"type\", \"verified\", \"checks\", ...the fields})" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "evidence made and printed; verify: every check passed (the fields and the "
		      "checks printed)" },
	{ TP_EXIT_USAGE, "usage error; FILE, --vcek, --chain or --platform-key cannot be read; "
			 "--mode hw without configfs-tsm; --snp-vcek or --snp-chain cannot be "
			 "read or holds no certificate" },
	{ TP_EXIT_KEY_MISSING, "sim: there is no platform key (teepy platform init)" },
	{ TP_EXIT_ATTESTATION_DENIED,
	  "verify: the evidence is refused: malformed, of a version or kind teepy does not read, "
	  "a signature or certificate chain that does not verify, an untrusted platform key, "
	  "claims not those expected, or debug evidence without --insecure-tolerate-debug (one "
	  "line "
	  "names the first check that failed; the fields and every check are printed all the "
	  "same, marked FAILED)" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded, out of memory, or "
			    "configfs-tsm refused the request" },
	{ 0, NULL },
};

const struct tp_command_help tp_attest_help = {
	.name = "attest",
	.synopsis =
	    "[--mode sim|hw|auto] [--nonce HEX] [--app HEX --signer HEX] [--snp-vcek FILE] "
	    "[--snp-chain FILE] [--json] [-o FILE]\n"
	    "verify QUOTE --type tdx [--insecure-no-time-check] [--insecure-tolerate-debug] "
	    "[--json]\n"
	    "verify REPORT --type snp --vcek DER --chain PEM [--insecure-no-time-check] "
	    "[--insecure-tolerate-debug] [--json]\n"
	    "verify EVIDENCE --type sim --platform-key PUB [--nonce HEX] [--app HEX] "
	    "[--signer HEX] [--insecure-tolerate-debug] [--json]",
	.about =
	    "teepy attest makes this host's evidence for the claims given and prints what it\n"
	    "binds (runtime: this teepy's; app and signer: given or zeros; nonce: given or\n"
	    "random; pubkey: a new X25519 key) and the evidence, for debugging: sim evidence is\n"
	    "SIMULATION, signed by this host's platform key (teepy platform init); hw evidence\n"
	    "is a report from the kernel's configfs-tsm (TDX, SEV-SNP, CCA guests), and for\n"
	    "SEV-SNP the certificates that verify it (its VCEK or VLEK and AMD's chain: the\n"
	    "host's, from configfs-tsm's auxblob, or those --snp-vcek and --snp-chain give).\n"
	    "\n"
	    "teepy attest verify checks evidence and prints its fields. A TDX quote (version 4\n"
	    "or 5): its signature by the attestation key, the quoting enclave's report binding\n"
	    "that key and signed by the PCK certificate, whose chain must end at the pinned\n"
	    "Intel SGX Root CA key. An SEV-SNP report: its ECDSA P-384 signature by the VCEK or\n"
	    "VLEK, whose chain must end at a pinned AMD ARK key (Milan, Genoa), and the\n"
	    "certificate's chip id and TCB against the report's. sim evidence: its report\n"
	    "data binds its claims, its platform key is one given, and it signed them. Debug\n"
	    "evidence is refused unless --insecure-tolerate-debug: a debug run's (sim\n"
	    "evidence of teepy shell), a debug TD's (TD attributes' DEBUG bit) or a debug\n"
	    "guest's (guest policy's DEBUG bit), whose insides its user or host can read, as\n"
	    "a CAS refuses it unless the policy tolerates \"debug\". A policy pins MRTD and\n"
	    "RTMR0-3 (TDX), or MEASUREMENT and the guest policy (SNP). TCB status and\n"
	    "Intel's and AMD's other collateral (TCB info, QE identity, revocation lists) are\n"
	    "not checked: see docs/cas.md, \"Evidence\" and \"Producing evidence\".\n",
	.flags = flags,
	.exits = exits,
};

#define EVIDENCE_MAX (1 << 20) /* a quote is a few KiB, a report 1184 bytes */
#define CERTS_MAX    (64 << 10)

#define PLATFORM_KEYS_MAX 16

struct attest_cmd {
	const char *file, *type, *vcek_path, *chain_path;
	const char *platform_keys[PLATFORM_KEYS_MAX];
	size_t platform_key_count;
	struct tp_attest_produce produce; /* its nonce, app, signer and json serve verify too */
	const char *given_produce;	  /* a flag of producing, given to verify */
	bool json;
	bool tolerate_debug;  /* --insecure-tolerate-debug: debug evidence passes its check */
	bool debug_tolerated; /* the evidence is debug, and it did */
	struct tp_attest_opts opts;
	char *bytes, *vcek, *chain;
	size_t size, vcek_size, chain_size;
};

/* Reads path whole. Returns an exit code or 0. */
static int read_input(const char *what, const char *path, size_t max, char **out, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0) {
		tp_error("attest verify: %s%s: %s", what, path, strerror(errno));
		return TP_EXIT_USAGE;
	}
	r = tp_read_all(fd, max, out, size);
	close(fd);
	if (r < 0) {
		tp_error("attest verify: %s%s: %s", what, path,
			 r == -EFBIG ? "larger than any evidence or certificate file" :
				       strerror(-r));
		return r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
	}
	return 0;
}

/* The fields of a JSON object one a line, "prefix.key value", nested objects
 * flattened: the same fields --json prints, in their order. */
static void print_fields(const char *prefix, json_t *o)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		char name[128];
		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (json_is_object(v))
			print_fields(name, v);
		else if (json_is_string(v))
			printf("%-34s %s\n", name, json_string_value(v));
		else if (json_is_integer(v))
			printf("%-34s %lld\n", name, (long long)json_integer_value(v));
		else if (json_is_boolean(v))
			printf("%-34s %s\n", name, json_is_true(v) ? "yes" : "no");
	}
}

static int print_report(const struct attest_cmd *c, json_t *fields,
			const struct tp_attest_result *res)
{
	bool ok = !tp_attest_failed(res);
	int r;

	if (c->json) {
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string(c->type));
		json_object_set_new(o, "verified", json_boolean(ok));
		json_object_set_new(o, "checks", tp_attest_checks_json(res));
		if (*res->product)
			json_object_set_new(o, "product", json_string(res->product));
		json_object_set_new(o, "time_checked",
				    json_boolean(!c->opts.insecure_no_time_check));
		json_object_update(o, fields);
		r = json_dumpf(o, stdout, JSON_INDENT(2));
		json_decref(o);
		if (r == 0)
			putchar('\n');
	} else {
		print_fields("", fields);
		if (*res->product)
			printf("%-34s %s\n", "product", res->product);
		printf("checks:\n");
		for (size_t i = 0; i < res->count; i++) {
			const struct tp_attest_check *k = &res->checks[i];
			printf("  %-6s  %-20s %s%s%s\n", k->ok ? "ok" : "FAILED", k->name, k->what,
			       *k->detail ? ": " : "", k->detail);
		}
		/* what "yes" covers, as docs/cas.md says: not the platform's TCB status */
		const char *debug = c->debug_tolerated ? "; DEBUG, tolerated" : "";
		if (ok && strcmp(c->type, "sim") == 0)
			printf("verified: yes (SIMULATION: signed by a trusted platform key, not "
			       "by hardware%s)\n",
			       debug);
		else if (ok)
			printf("verified: yes (signatures and chain; TCB status not checked%s%s)\n",
			       c->opts.insecure_no_time_check ? "; certificate times not checked" :
								"",
			       debug);
		else
			printf("verified: NO\n");
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

/* The claims verify compares with sim evidence's: those given. Returns an exit code
 * or 0. */
static int expected_claims(const struct attest_cmd *c, struct tp_sim_expect *x,
			   uint8_t nonce[TP_NONCE_MAX], uint8_t app[TP_CLAIM_SIZE],
			   uint8_t signer[TP_CLAIM_SIZE])
{
	const struct tp_attest_produce *p = &c->produce;
	int code;

	if (p->nonce_hex) {
		if ((code = tp_flag_hex("attest", "--nonce", p->nonce_hex, nonce, 1, TP_NONCE_MAX,
					&x->nonce_size)) != 0)
			return code;
		x->nonce = nonce;
	}
	if (p->app_hex) {
		if ((code = tp_flag_hex("attest", "--app", p->app_hex, app, TP_CLAIM_SIZE,
					TP_CLAIM_SIZE, NULL)) != 0)
			return code;
		x->app = app;
	}
	if (p->signer_hex) {
		if ((code = tp_flag_hex("attest", "--signer", p->signer_hex, signer, TP_CLAIM_SIZE,
					TP_CLAIM_SIZE, NULL)) != 0)
			return code;
		x->signer = signer;
	}
	return 0;
}

/* sim evidence against the platform keys given. Returns an exit code or 0 (then
 * res and fields are set, and debug when the evidence is a debug run's). */
static int verify_sim(struct attest_cmd *c, struct tp_attest_result *res, json_t **fields,
		      const char **debug)
{
	uint8_t keys[PLATFORM_KEYS_MAX][TP_SIM_PLATFORM_KEY], nonce[TP_NONCE_MAX];
	uint8_t app[TP_CLAIM_SIZE], signer[TP_CLAIM_SIZE];
	struct tp_sim_expect x = { 0 };
	struct tp_sim_evidence e;
	char err[512];
	int code;

	if ((code = expected_claims(c, &x, nonce, app, signer)) != 0)
		return code;
	for (size_t i = 0; i < c->platform_key_count; i++) {
		if (tp_key_read_public(c->platform_keys[i], keys[i], err, sizeof(err)) < 0) {
			tp_error("attest verify: --platform-key %s: %s", c->platform_keys[i], err);
			return TP_EXIT_USAGE;
		}
	}
	if (tp_sim_parse((const uint8_t *)c->bytes, c->size, &e, err, sizeof(err)) < 0) {
		tp_error("attest verify: %s: refused: not sim evidence teepy reads: %s", c->file,
			 err);
		return TP_EXIT_ATTESTATION_DENIED;
	}
	tp_sim_verify(&e, (const uint8_t(*)[TP_SIM_PLATFORM_KEY])keys, c->platform_key_count, &x,
		      res);
	*fields = tp_sim_json(&e);
	*debug = e.claims.debug ? "a debug run (teepy shell)" : NULL;
	return 0;
}

static int verify(struct attest_cmd *c)
{
	struct tp_attest_result res;
	const struct tp_attest_check *bad;
	const char *debug = NULL; /* what makes the evidence a debug one */
	json_t *fields;
	char err[512];
	int r, code;

	if ((code = read_input("", c->file, EVIDENCE_MAX, &c->bytes, &c->size)) != 0)
		return code;
	if (strcmp(c->type, "sim") == 0) {
		if ((code = verify_sim(c, &res, &fields, &debug)) != 0)
			return code;
	} else if (strcmp(c->type, "tdx") == 0) {
		struct tp_tdx_quote q;
		if ((r = tp_tdx_parse((const uint8_t *)c->bytes, c->size, &q, err, sizeof(err))) <
		    0) {
			struct tp_snp_report other;
			tp_error(
			    "attest verify: %s: refused: not a TDX quote teepy reads: %s%s",
			    c->file, err,
			    tp_snp_parse((const uint8_t *)c->bytes, c->size, &other, NULL, 0) == 0 ?
				" (an SEV-SNP report: --type snp)" :
				"");
			return TP_EXIT_ATTESTATION_DENIED;
		}
		tp_tdx_verify(&q, &c->opts, &res);
		fields = tp_tdx_json(&q);
		if (q.td_attributes & TP_TDX_ATTR_DEBUG)
			debug = "a debug TD (the TD attributes' DEBUG bit)";
	} else {
		struct tp_snp_report rep;
		if ((r = tp_snp_parse((const uint8_t *)c->bytes, c->size, &rep, err, sizeof(err))) <
		    0) {
			struct tp_tdx_quote other;
			tp_error(
			    "attest verify: %s: refused: not an SEV-SNP report teepy reads: %s%s",
			    c->file, err,
			    tp_tdx_parse((const uint8_t *)c->bytes, c->size, &other, NULL, 0) == 0 ?
				" (a TDX quote: --type tdx)" :
				"");
			return TP_EXIT_ATTESTATION_DENIED;
		}
		if ((code = read_input("--vcek ", c->vcek_path, CERTS_MAX, &c->vcek,
				       &c->vcek_size)) != 0 ||
		    (code = read_input("--chain ", c->chain_path, CERTS_MAX, &c->chain,
				       &c->chain_size)) != 0)
			return code;
		tp_snp_verify(&rep, (const uint8_t *)c->vcek, c->vcek_size, c->chain, c->chain_size,
			      &c->opts, &res);
		fields = tp_snp_json(&rep);
		if (rep.policy & TP_SNP_POLICY_DEBUG)
			debug = "a debug guest (the guest policy's DEBUG bit)";
	}
	/* as a CAS refuses it unless the policy tolerates "debug", and teepy invoke
	 * --sealed always: whoever runs it can look inside */
	tp_attest_check_debug(&res, debug, c->tolerate_debug);
	c->debug_tolerated = debug && c->tolerate_debug;
	if (c->debug_tolerated)
		tp_warn("attest verify: %s: %s, accepted (--insecure-tolerate-debug)", c->file,
			debug);
	if (!fields) {
		tp_error("attest verify: out of memory");
		return TP_EXIT_INTERNAL;
	}
	r = print_report(c, fields, &res);
	json_decref(fields);
	if ((bad = tp_attest_failed(&res))) {
		tp_error("attest verify: %s: refused: %s failed: %s", c->file, bad->name,
			 bad->detail);
		return TP_EXIT_ATTESTATION_DENIED;
	}
	if (r < 0) {
		tp_error("attest verify: cannot write the report: %s", strerror(-r));
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}

/* Checks the flags' combination. Returns an exit code or 0. */
static int check_usage(const struct attest_cmd *c, const char *action)
{
	const struct tp_attest_produce *p = &c->produce;

	if (!action) {
		const char *verify_flag = c->type		? "--type" :
					  c->vcek_path		? "--vcek" :
					  c->chain_path		? "--chain" :
					  c->platform_key_count ? "--platform-key" :
					  c->opts.insecure_no_time_check ?
								  "--insecure-no-time-check" :
					  c->tolerate_debug ? "--insecure-tolerate-debug" :
							      NULL;
		if (verify_flag) {
			tp_error("attest: %s is for verify (teepy attest verify FILE %s ...)",
				 verify_flag, verify_flag);
			return TP_EXIT_USAGE;
		}
		return 0;
	}
	if (strcmp(action, "verify") != 0) {
		tp_error("attest: unknown action '%s' (verify, or none to make evidence; see teepy "
			 "attest --help)",
			 action);
		return TP_EXIT_USAGE;
	}
	if (c->given_produce) {
		tp_error("attest verify: %s is for making evidence (teepy attest, without verify)",
			 c->given_produce);
		return TP_EXIT_USAGE;
	}
	if (!c->file || !*c->file) {
		tp_error(
		    "attest verify: missing FILE, the quote, report or sim evidence (see teepy "
		    "attest --help)");
		return TP_EXIT_USAGE;
	}
	if (!c->type) {
		tp_error("attest verify: %s: say what it is: --type tdx, snp or sim", c->file);
		return TP_EXIT_USAGE;
	}
	if (strcmp(c->type, "tdx") != 0 && strcmp(c->type, "snp") != 0 &&
	    strcmp(c->type, "sim") != 0) {
		tp_error("attest verify: --type: '%s' is no evidence type (tdx, snp or sim)",
			 c->type);
		return TP_EXIT_USAGE;
	}
	bool snp = strcmp(c->type, "snp") == 0, sim = strcmp(c->type, "sim") == 0;
	if (!snp && (c->vcek_path || c->chain_path)) {
		tp_error("attest verify: %s is for --type snp (%s)",
			 c->vcek_path ? "--vcek" : "--chain",
			 sim ? "sim evidence carries its platform key" :
			       "a TDX quote carries its own certificates");
		return TP_EXIT_USAGE;
	}
	if (snp && (!c->vcek_path || !c->chain_path)) {
		tp_error("attest verify: %s: an SEV-SNP report is verified with its signer's "
			 "certificate and AMD's chain: %s",
			 c->file,
			 !c->vcek_path ? "--vcek DER (the VCEK or VLEK)" :
					 "--chain PEM (ASK or ASVK, and ARK)");
		return TP_EXIT_USAGE;
	}
	if (!sim && (c->platform_key_count || p->nonce_hex || p->app_hex || p->signer_hex)) {
		tp_error(
		    "attest verify: %s is for --type sim (a quote's or report's claims are its "
		    "report data: docs/cas.md, Report data)",
		    c->platform_key_count ? "--platform-key" :
		    p->nonce_hex	  ? "--nonce" :
		    p->app_hex		  ? "--app" :
					    "--signer");
		return TP_EXIT_USAGE;
	}
	if (sim && !c->platform_key_count) {
		tp_error("attest verify: %s: sim evidence is verified against the platform keys "
			 "you trust: --platform-key PUB (teepy platform show names one)",
			 c->file);
		return TP_EXIT_USAGE;
	}
	if (sim && c->opts.insecure_no_time_check) {
		tp_error("attest verify: --insecure-no-time-check is for tdx and snp (sim evidence "
			 "has no certificates)");
		return TP_EXIT_USAGE;
	}
	return 0;
}

int tp_cmd_attest(int argc, char **argv)
{
	struct attest_cmd c = { 0 };
	const char *operands[3] = { NULL };
	size_t count = 0;
	struct tp_flag_parser p;
	char err[PATH_MAX + 128];
	int r, code;

	if (tp_flags_start(&p, "attest", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("attest: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (count == 2) {
				tp_error(
				    "attest: unexpected argument '%s' (see teepy attest --help)",
				    p.value);
				return TP_EXIT_USAGE;
			}
			operands[count++] = p.value;
			continue;
		}
		switch (p.flag->id) {
		case ATTEST_HELP:
			tp_help_print(stdout, &tp_attest_help);
			return TP_EXIT_OK;
		case ATTEST_MODE:
			c.produce.mode = p.value;
			c.given_produce = "--mode";
			break;
		case ATTEST_NONCE:
			c.produce.nonce_hex = p.value;
			break;
		case ATTEST_APP:
			c.produce.app_hex = p.value;
			break;
		case ATTEST_SIGNER:
			c.produce.signer_hex = p.value;
			break;
		case ATTEST_OUTPUT:
			c.produce.output = p.value;
			c.given_produce = "-o";
			break;
		case ATTEST_KEY:
			c.produce.key = p.value;
			c.given_produce = "--key";
			break;
		case ATTEST_SNP_VCEK:
			c.produce.snp.vcek = p.value;
			c.produce.snp.vcek_from = c.given_produce = "--snp-vcek";
			break;
		case ATTEST_SNP_CHAIN:
			c.produce.snp.chain = p.value;
			c.produce.snp.chain_from = c.given_produce = "--snp-chain";
			break;
		case ATTEST_PLATFORM_KEY:
			if (c.platform_key_count == PLATFORM_KEYS_MAX) {
				tp_error("attest verify: more than %d --platform-key",
					 PLATFORM_KEYS_MAX);
				return TP_EXIT_USAGE;
			}
			c.platform_keys[c.platform_key_count++] = p.value;
			break;
		case ATTEST_TYPE:
			c.type = p.value;
			break;
		case ATTEST_VCEK:
			c.vcek_path = p.value;
			break;
		case ATTEST_CHAIN:
			c.chain_path = p.value;
			break;
		case ATTEST_NO_TIME:
			c.opts.insecure_no_time_check = true;
			break;
		case ATTEST_TOLERATE_DEBUG:
			c.tolerate_debug = true;
			break;
		case ATTEST_JSON:
			c.json = true;
			break;
		}
	}
	/* after "--", operands alone: a file whose name starts with a dash */
	for (int i = p.rest; p.dashdash && i < argc; i++) {
		if (count == 2) {
			tp_error("attest: unexpected argument '%s' (see teepy attest --help)",
				 argv[i]);
			return TP_EXIT_USAGE;
		}
		operands[count++] = argv[i];
	}
	c.file = operands[1];
	if ((code = check_usage(&c, operands[0])) != 0)
		return code;
	if (!operands[0]) {
		c.produce.json = c.json;
		if (!c.produce.mode && getenv("TEEPY_MODE") && *getenv("TEEPY_MODE"))
			c.produce.mode = getenv("TEEPY_MODE");
		if (!c.produce.key)
			c.produce.key = getenv("TEEPY_PLATFORM_KEY");
		if (!c.produce.snp.vcek && getenv("TEEPY_SNP_VCEK") && *getenv("TEEPY_SNP_VCEK")) {
			c.produce.snp.vcek = getenv("TEEPY_SNP_VCEK");
			c.produce.snp.vcek_from = "TEEPY_SNP_VCEK";
		}
		if (!c.produce.snp.chain && getenv("TEEPY_SNP_CHAIN") &&
		    *getenv("TEEPY_SNP_CHAIN")) {
			c.produce.snp.chain = getenv("TEEPY_SNP_CHAIN");
			c.produce.snp.chain_from = "TEEPY_SNP_CHAIN";
		}
		return tp_attest_produce(&c.produce);
	}
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("attest verify: %s", err);
		return TP_EXIT_INTERNAL;
	}
	if (c.opts.insecure_no_time_check)
		tp_warn("attest verify: certificate validity periods are not checked "
			"(--insecure-no-time-check)");
	code = verify(&c);
	free(c.bytes);
	free(c.vcek);
	free(c.chain);
	return code;
}
