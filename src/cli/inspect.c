/* `teepy inspect BUNDLE [--json]`: the measurements a policy owner pins, the
 * signer, the policy and the file table. */
#include "commands.h"

#include "bundle_file.h"
#include "exit_codes.h"
#include "../common/log.h"
#include "../common/units.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: teepy inspect BUNDLE.tpy [--json]\n"
	"\n"
	"Prints the bundle's measurements (app, runtime, signer), whether its signature\n"
	"verifies, its entry, limits, policy and file table. --json prints one JSON object.\n";

int tp_cmd_inspect(int argc, char **argv)
{
	const char *path = NULL;
	bool as_json = false;
	struct tp_bundle_file bf;
	char err[512], app[65], signer[65], runtime_hex[65] = "unknown", runtime_so[PATH_MAX];
	uint8_t runtime[32];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return TP_EXIT_OK;
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (argv[i][0] == '-' || path) {
			tp_error("inspect: unexpected argument '%s' (see teepy inspect --help)", argv[i]);
			return TP_EXIT_USAGE;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		tp_error("inspect: missing BUNDLE.tpy (see teepy inspect --help)");
		return TP_EXIT_USAGE;
	}
	if (tp_bundle_file_open(path, &bf, err, sizeof(err)) < 0) {
		tp_error("%s: %s", path, err);
		return TP_EXIT_BUNDLE;
	}
	if (tp_bundle_file_parse(&bf, err, sizeof(err)) < 0) {
		tp_error("%s: %s%s", path, err, bf.signature_ok ? "" : " (and the signature does not verify)");
		tp_bundle_file_close(&bf);
		return TP_EXIT_BUNDLE;
	}
	tp_hex(bf.app, 32, app);
	tp_hex(bf.signer, 32, signer);
	if (tp_find_runtime(runtime_so, sizeof(runtime_so)) == 0 &&
	    tp_runtime_measure(runtime_so, runtime) == 0)
		tp_hex(runtime, 32, runtime_hex);
	const struct tp_manifest *m = &bf.manifest;

	if (as_json) {
		json_t *o = json_object(), *files = json_array();
		json_object_set_new(o, "bundle", json_string(path));
		json_object_set_new(o, "app", json_string(app));
		json_object_set_new(o, "runtime", json_string(runtime_hex));
		json_object_set_new(o, "signer", json_string(signer));
		json_object_set_new(o, "signature_valid", json_boolean(bf.signature_ok));
		json_object_set_new(o, "entry", json_string(m->entry));
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
			json_object_set_new(f, "bundled", json_boolean(m->files[i].bundled));
			json_array_append_new(files, f);
		}
		json_object_set_new(o, "files", files);
		char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(text ? text : "{}");
		free(text);
		json_decref(o);
	} else {
		char mem[32], cpu[32], timeout[32], scratch[32];
		uint64_t bundled = 0, system = 0;
		for (size_t i = 0; i < m->file_count; i++)
			*(m->files[i].bundled ? &bundled : &system) += m->files[i].size;
		printf("bundle     %s (%llu bytes)\n", path, (unsigned long long)bf.file_size);
		printf("app        %s\n", app);
		printf("runtime    %s (this teepy and its _teepy)\n", runtime_hex);
		printf("signer     %s\n", signer);
		printf("signature  %s\n", bf.signature_ok ? "valid (check the signer with --trust)"
						       : "INVALID");
		printf("entry      %s\n", m->entry);
		printf("limits     memory %s, cpu %s, timeout %s, threads %u\n",
		       tp_format_size(m->memory_bytes, mem, sizeof(mem)),
		       tp_format_duration(m->cpu_ms, cpu, sizeof(cpu)),
		       tp_format_duration(m->timeout_ms, timeout, sizeof(timeout)), m->threads);
		printf("policy     processes %s, scratch %s, preload %zu module(s)\n",
		       m->processes ? "manifest" : "none",
		       m->scratch_bytes ? tp_format_size(m->scratch_bytes, scratch, sizeof(scratch))
					: "none",
		       m->preload.count);
		printf("files      %zu (%llu bytes bundled, %llu bytes of system files)\n",
		       m->file_count, (unsigned long long)bundled, (unsigned long long)system);
		for (size_t i = 0; i < m->file_count; i++) {
			char hex[65];
			tp_hex(m->files[i].sha256, 32, hex);
			printf("  %s %04o %10llu %s %s\n", m->files[i].bundled ? "B" : "S",
			       m->files[i].mode, (unsigned long long)m->files[i].size, hex,
			       m->files[i].path);
		}
	}
	int code = bf.signature_ok ? TP_EXIT_OK : TP_EXIT_BUNDLE;
	tp_bundle_file_close(&bf);
	return code;
}
