/* `teepy inspect BUNDLE [--json]`: the measurements a policy owner pins, the
 * signer, the policy and the file table. */
#include "commands.h"

#include "../manifest/bundle_file.h"
#include "../manifest/engine.h"
#include "../manifest/manifest_json.h"
#include "../manifest/trust.h"
#include "../pyboot/boot.h"
#include "exit_codes.h"
#include "flags.h"
#include "../common/log.h"
#include "../common/units.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum inspect_flag { INSPECT_HELP = 1, INSPECT_JSON };

static const struct tp_flag flags[] = {
	{ INSPECT_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ INSPECT_JSON, "json", 0, NULL, NULL, "one JSON object instead (ASCII, \\u escapes)" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "printed, signature valid (also for a bundle this teepy cannot run yet: "
		      "it says why)" },
	{ TP_EXIT_USAGE, "usage error" },
	{ TP_EXIT_BUNDLE, "the signature does not verify (printed all the same, marked INVALID) "
			  "or the bundle is malformed (one line says why, nothing printed)" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded" },
	{ 0, NULL },
};

const struct tp_command_help tp_inspect_help = {
	.name = "inspect",
	.synopsis = "BUNDLE.tpy [--json]",
	.about =
	    "Prints the bundle's measurements (app, runtime, signer), whether its signature\n"
	    "verifies, whether this teepy supports every feature it uses, its manifest\n"
	    "format, engine, product id and security version, entry, argv, environment,\n"
	    "sys.path, site directories (format 3: a venv's), limits, policy (with the\n"
	    "network and the preload modules), trees,\n"
	    "encryption and file table (B bundled / S system file, E encrypted, mode, mtime,\n"
	    "size, sha256, path): everything the signature pins. Bytes that are not printable\n"
	    "ASCII are shown as \\xNN.\n",
	.flags = flags,
	.exits = exits,
};

/* Prints s with every byte outside printable ASCII escaped: a manifest's strings
 * (argv and env values may hold any character) must not drive the terminal. */
static void put(const char *s)
{
	size_t size = 4 * strlen(s) + 8;
	char *buf = malloc(size);

	fputs(buf ? tp_escape(s, buf, size) : "?", stdout);
	free(buf);
}

/* A labelled list, one item a line; "(none)" when empty. */
static void put_list(const char *label, const struct tp_strlist *l)
{
	printf("%-10s %s", label, l->count ? "" : "(none)\n");
	for (size_t i = 0; i < l->count; i++) {
		printf("%s", i ? "           " : "");
		put(l->items[i]);
		putchar('\n');
	}
}

static json_t *strings(const struct tp_strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; i < l->count; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

/* The manifest's env, NAME=VALUE items, as an object. */
static json_t *env_object(const struct tp_strlist *env)
{
	json_t *o = json_object();

	for (size_t i = 0; i < env->count; i++) {
		const char *eq = strchr(env->items[i], '=');
		char *name = strndup(env->items[i], (size_t)(eq - env->items[i]));
		if (name)
			json_object_set_new(o, name, json_string(eq + 1));
		free(name);
	}
	return o;
}

/* unsupported: what of the bundle this teepy cannot run yet, or NULL. */
static void print_json(const char *path, const struct tp_bundle_file *bf, const char *app,
		       const char *runtime, const char *signer, const char *unsupported)
{
	const struct tp_manifest *m = &bf->manifest;
	const struct tp_limits *l = &m->limits;
	json_t *o = json_object(), *files = json_array();
	json_t *bundle = json_string(path);
	char *shown = NULL;

	if (!bundle) { /* a file name that is not UTF-8 */
		size_t size = 4 * strlen(path) + 8;
		shown = malloc(size);
		bundle = json_string(shown ? tp_escape(path, shown, size) : "?");
	}
	json_object_set_new(o, "bundle", bundle);
	json_object_set_new(o, "app", json_string(app));
	json_object_set_new(o, "runtime", json_string(runtime));
	json_object_set_new(o, "signer", json_string(signer));
	json_object_set_new(o, "signature_valid", json_boolean(bf->signature_ok));
	json_object_set_new(o, "supported", json_boolean(!unsupported));
	json_object_set_new(o, "unsupported", unsupported ? json_string(unsupported) : json_null());
	json_object_set_new(o, "format", json_integer(m->format));
	json_t *engine = json_object();
	json_object_set_new(engine, "name", json_string(tp_engine_name(m->engine.name)));
	json_object_set_new(engine, "version", json_string(m->engine.version));
	json_object_set_new(o, "engine", engine);
	json_object_set_new(o, "product_id", json_integer(m->product_id));
	json_object_set_new(o, "security_version", json_integer(m->security_version));
	json_object_set_new(o, "network", json_string(tp_network_name(m->network)));
	json_object_set_new(o, "trees", tp_manifest_trees_json(m));
	json_object_set_new(o, "encryption", tp_manifest_encryption_json(&m->encryption));
	json_object_set_new(o, "entry", json_string(m->entry));
	json_object_set_new(o, "argv", strings(&m->argv));
	json_object_set_new(o, "env", env_object(&m->env));
	json_object_set_new(o, "python_path", strings(&m->python_path));
	json_object_set_new(o, "site", strings(&m->site));
	json_object_set_new(o, "preload", strings(&m->preload));
	json_object_set_new(o, "processes", json_string(m->processes ? "manifest" : "none"));
	json_object_set_new(o, "memory", json_integer((json_int_t)l->memory_bytes));
	json_object_set_new(o, "cpu_ms", json_integer((json_int_t)l->cpu_ms));
	json_object_set_new(o, "timeout_ms", json_integer((json_int_t)l->timeout_ms));
	json_object_set_new(o, "threads", json_integer(l->threads));
	json_object_set_new(o, "scratch", json_integer((json_int_t)l->scratch_bytes));
	for (size_t i = 0; i < m->file_count; i++) {
		char hex[65];
		json_t *f = json_object();
		tp_hex(m->files[i].sha256, 32, hex);
		json_object_set_new(f, "path", json_string(m->files[i].path));
		json_object_set_new(f, "sha256", json_string(hex));
		json_object_set_new(f, "size", json_integer((json_int_t)m->files[i].size));
		json_object_set_new(f, "mode", json_integer(m->files[i].mode));
		json_object_set_new(f, "mtime", json_integer((json_int_t)m->files[i].mtime));
		json_object_set_new(f, "bundled", json_boolean(m->files[i].bundled));
		json_object_set_new(f, "encrypted", json_boolean(m->files[i].encrypted));
		if (m->files[i].encrypted) {
			tp_hex(m->files[i].id, 32, hex);
			json_object_set_new(f, "id", json_string(hex));
		}
		json_array_append_new(files, f);
	}
	json_object_set_new(o, "files", files);
	/* ASCII only: every control character and non-ASCII one as \u; jansson leaves
	 * DEL as it is, so it is escaped here */
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	for (const char *c = text ? text : "{}"; *c; c++) {
		if (*c == 0x7f)
			fputs("\\u007f", stdout);
		else
			putchar(*c);
	}
	putchar('\n');
	free(text);
	free(shown);
	json_decref(o);
}

static void print_text(const char *path, const struct tp_bundle_file *bf, const char *app,
		       const char *runtime, const char *signer, const char *unsupported)
{
	const struct tp_manifest *m = &bf->manifest;
	const struct tp_limits *l = &m->limits;
	char mem[32], cpu[32], timeout[32], scratch[32], chunk[32];
	uint64_t bundled = 0, system = 0;

	for (size_t i = 0; i < m->file_count; i++)
		*(m->files[i].bundled ? &bundled : &system) += m->files[i].size;
	printf("bundle     ");
	put(path);
	printf(" (%llu bytes)\n", (unsigned long long)bf->file_size);
	printf("app        %s\n", app);
	printf("runtime    %s (this teepy and its _teepy)\n", runtime);
	printf("signer     %s\n", signer);
	printf("signature  %s\n",
	       bf->signature_ok ? "valid (check the signer with --trust)" : "INVALID");
	printf("supported  %s%s\n",
	       unsupported ? "no: " : "yes (this teepy has every feature it uses)",
	       unsupported ? unsupported : "");
	printf("format     %u%s\n", m->format,
	       m->format == 1 ? " (engine, ids, network, trees and encryption: defaults)" : "");
	printf("engine     %s %s\n", tp_engine_name(m->engine.name), m->engine.version);
	printf("product    id %u, security version %u\n", m->product_id, m->security_version);
	printf("entry      ");
	put(m->entry);
	putchar('\n');
	put_list("argv", &m->argv);
	put_list("env", &m->env);
	put_list("sys.path", &m->python_path);
	if (m->format >= 3)
		put_list("site", &m->site);
	printf("limits     memory %s, cpu %s, timeout %s, threads %u\n",
	       tp_format_size(l->memory_bytes, mem, sizeof(mem)),
	       tp_limit_format_ms(l->cpu_ms, cpu, sizeof(cpu)),
	       tp_limit_format_ms(l->timeout_ms, timeout, sizeof(timeout)), l->threads);
	printf("policy     processes %s, network %s, scratch %s\n",
	       m->processes ? "manifest" : "none", tp_network_name(m->network),
	       l->scratch_bytes ? tp_format_size(l->scratch_bytes, scratch, sizeof(scratch)) :
				  "none");
	put_list("preload", &m->preload);
	printf("trees      %s", m->tree_count ? "" : "(none: each system file at its own path)\n");
	for (size_t i = 0; i < m->tree_count; i++) {
		printf("%s%-9s ", i ? "           " : "", tp_tree_kind_name(m->trees[i].kind));
		put(m->trees[i].path);
		putchar('\n');
	}
	if (m->encryption.cipher == TP_CIPHER_NONE)
		printf("encryption none\n");
	else
		printf("encryption %s, chunks of %s, key id %s\n",
		       tp_cipher_name(m->encryption.cipher),
		       tp_format_size(m->encryption.chunk_size, chunk, sizeof(chunk)),
		       m->encryption.key_id);
	printf("files      %zu (%llu bytes bundled, %llu bytes of system files)\n", m->file_count,
	       (unsigned long long)bundled, (unsigned long long)system);
	printf("  B/S mode      mtime       size %-64s path\n", "sha256");
	for (size_t i = 0; i < m->file_count; i++) {
		const struct tp_manifest_file *f = &m->files[i];
		char hex[65];
		tp_hex(f->sha256, 32, hex);
		printf("  %s%s  %04o %10llu %10llu %s ", f->bundled ? "B" : "S",
		       f->encrypted ? "E" : " ", f->mode, (unsigned long long)f->mtime,
		       (unsigned long long)f->size, hex);
		put(f->path);
		putchar('\n');
		if (f->encrypted) {
			tp_hex(f->id, 32, hex);
			printf(
			    "%*s id    %s (encrypted: size and sha256 are of its protected form)\n",
			    26, "", hex);
		}
	}
}

int tp_cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	bool as_json = false;
	struct tp_bundle_file bf;
	char err[512], app[65], signer[65], runtime_hex[65] = "unknown", runtime_so[PATH_MAX];
	char reaper[PATH_MAX];
	uint8_t runtime[32];
	struct tp_flag_parser p;
	int r;

	if (tp_flags_start(&p, "inspect", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("inspect: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND && !path && strcmp(p.value, "-") != 0) {
			path = p.value;
		} else if (r == TP_FLAGS_OPERAND) {
			tp_error("inspect: unexpected argument '%s' (see teepy inspect --help)",
				 p.value);
			return TP_EXIT_USAGE;
		} else if (p.flag->id == INSPECT_HELP) {
			tp_help_print(stdout, &tp_inspect_help);
			return TP_EXIT_OK;
		} else {
			as_json = true;
		}
	}
	if (p.dashdash) {
		tp_error("inspect: unexpected argument '--' (see teepy inspect --help)");
		return TP_EXIT_USAGE;
	}
	if (!path) {
		tp_error("inspect: missing BUNDLE.tpy (see teepy inspect --help)");
		return TP_EXIT_USAGE;
	}
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("inspect: %s", err);
		return TP_EXIT_INTERNAL;
	}
	if (tp_bundle_file_open(path, &bf, err, sizeof(err)) < 0) {
		tp_error("%s: %s", path, err);
		return TP_EXIT_BUNDLE;
	}
	/* a bundle this teepy cannot run yet is shown all the same, saying why */
	r = tp_bundle_file_parse(&bf, false, err, sizeof(err));
	if (r < 0 && r != -ENOTSUP) {
		tp_error("%s: %s%s", path, err,
			 bf.signature_ok ? "" : " (and the signature does not verify)");
		tp_bundle_file_close(&bf);
		return TP_EXIT_BUNDLE;
	}
	const char *unsupported = r == -ENOTSUP ? err : NULL;
	tp_hex(bf.app, 32, app);
	tp_hex(bf.signer, 32, signer);
	/* the runtime that runs it: this teepy with the _teepy of the bundle's engine */
	const struct tp_engine_build *engine = tp_engine_built(bf.manifest.engine.name);
	if (engine && tp_find_engine_runtime(engine, runtime_so, sizeof(runtime_so)) == 0 &&
	    tp_find_reaper(reaper, sizeof(reaper)) == 0 &&
	    tp_runtime_measure(runtime_so, reaper, TP_BOOT_TEXT, runtime) == 0)
		tp_hex(runtime, 32, runtime_hex);
	if (as_json)
		print_json(path, &bf, app, runtime_hex, signer, unsupported);
	else
		print_text(path, &bf, app, runtime_hex, signer, unsupported);
	int code = bf.signature_ok ? TP_EXIT_OK : TP_EXIT_BUNDLE;
	tp_bundle_file_close(&bf);
	return code;
}
