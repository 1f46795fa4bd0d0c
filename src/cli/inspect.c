/* `teepy inspect BUNDLE [--json]`: the measurements a policy owner pins, the
 * signer, the policy and the file table. */
#include "commands.h"

#include "bundle_file.h"
#include "exit_codes.h"
#include "flags.h"
#include "../common/log.h"
#include "../common/units.h"

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
	{ TP_EXIT_OK, "printed, signature valid" },
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
	    "verifies, its entry, argv, environment, sys.path, limits, policy (with the\n"
	    "preload modules) and file table (B bundled / S system file, mode, mtime, size,\n"
	    "sha256, path): everything the signature pins. Bytes that are not printable ASCII\n"
	    "are shown as \\xNN.\n",
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

static void print_json(const char *path, const struct tp_bundle_file *bf, const char *app,
		       const char *runtime, const char *signer)
{
	const struct tp_manifest *m = &bf->manifest;
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
	json_object_set_new(o, "entry", json_string(m->entry));
	json_object_set_new(o, "argv", strings(&m->argv));
	json_object_set_new(o, "env", env_object(&m->env));
	json_object_set_new(o, "python_path", strings(&m->python_path));
	json_object_set_new(o, "preload", strings(&m->preload));
	json_object_set_new(o, "processes", json_string(m->processes ? "manifest" : "none"));
	json_object_set_new(o, "memory", json_integer((json_int_t)m->memory_bytes));
	json_object_set_new(o, "cpu_ms", json_integer((json_int_t)m->cpu_ms));
	json_object_set_new(o, "timeout_ms", json_integer((json_int_t)m->timeout_ms));
	json_object_set_new(o, "threads", json_integer(m->threads));
	json_object_set_new(o, "scratch", json_integer((json_int_t)m->scratch_bytes));
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
		       const char *runtime, const char *signer)
{
	const struct tp_manifest *m = &bf->manifest;
	char mem[32], cpu[32], timeout[32], scratch[32];
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
	printf("entry      ");
	put(m->entry);
	putchar('\n');
	put_list("argv", &m->argv);
	put_list("env", &m->env);
	put_list("sys.path", &m->python_path);
	printf("limits     memory %s, cpu %s, timeout %s, threads %u\n",
	       tp_format_size(m->memory_bytes, mem, sizeof(mem)),
	       tp_format_duration(m->cpu_ms, cpu, sizeof(cpu)),
	       tp_format_duration(m->timeout_ms, timeout, sizeof(timeout)), m->threads);
	printf("policy     processes %s, scratch %s\n", m->processes ? "manifest" : "none",
	       m->scratch_bytes ? tp_format_size(m->scratch_bytes, scratch, sizeof(scratch))
				: "none");
	put_list("preload", &m->preload);
	printf("files      %zu (%llu bytes bundled, %llu bytes of system files)\n", m->file_count,
	       (unsigned long long)bundled, (unsigned long long)system);
	printf("  B/S mode      mtime       size %-64s path\n", "sha256");
	for (size_t i = 0; i < m->file_count; i++) {
		const struct tp_manifest_file *f = &m->files[i];
		char hex[65];
		tp_hex(f->sha256, 32, hex);
		printf("  %s   %04o %10llu %10llu %s ", f->bundled ? "B" : "S", f->mode,
		       (unsigned long long)f->mtime, (unsigned long long)f->size, hex);
		put(f->path);
		putchar('\n');
	}
}

int tp_cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	bool as_json = false;
	struct tp_bundle_file bf;
	char err[512], app[65], signer[65], runtime_hex[65] = "unknown", runtime_so[PATH_MAX];
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
	if (tp_bundle_file_parse(&bf, err, sizeof(err)) < 0) {
		tp_error("%s: %s%s", path, err,
			 bf.signature_ok ? "" : " (and the signature does not verify)");
		tp_bundle_file_close(&bf);
		return TP_EXIT_BUNDLE;
	}
	tp_hex(bf.app, 32, app);
	tp_hex(bf.signer, 32, signer);
	if (tp_find_runtime(runtime_so, sizeof(runtime_so)) == 0 &&
	    tp_runtime_measure(runtime_so, runtime) == 0)
		tp_hex(runtime, 32, runtime_hex);
	if (as_json)
		print_json(path, &bf, app, runtime_hex, signer);
	else
		print_text(path, &bf, app, runtime_hex, signer);
	int code = bf.signature_ok ? TP_EXIT_OK : TP_EXIT_BUNDLE;
	tp_bundle_file_close(&bf);
	return code;
}
