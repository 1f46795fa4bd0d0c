/* Options of `teepy run`: parsed from argv and TEEPY_* settings, no OS calls. */
#ifndef TEEPY_CLI_RUN_OPTS_H
#define TEEPY_CLI_RUN_OPTS_H

#include "flags.h"
#include "../common/limits.h"
#include "../manifest/manifest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tp_mode { TP_MODE_AUTO, TP_MODE_SIM, TP_MODE_HW };

/* --escape: when the service's output is shown escaped (auto: when stderr is a terminal) */
enum tp_escape_when { TP_ESCAPE_AUTO, TP_ESCAPE_ALWAYS, TP_ESCAPE_NEVER };

struct tp_strv {
	const char **items; /* borrowed from argv/env; the array itself is owned */
	size_t count;
};

/* What the parser has seen so far (tp_run_opts_finish settles it). */
struct tp_run_opts_seen {
	struct tp_strv task_data; /* kept apart until the end: they follow the service data */
	bool input, output;
	bool cas, cas_fingerprint, config_id; /* given as flags, not TEEPY_* settings */
};

struct tp_run_opts {
	const char *script;
	struct tp_strv script_args;
	const char *input;	   /* --input, or NULL */
	const char *input_file;	   /* --input-file, "-" = stdin, or NULL */
	const char *output_file;   /* --output, or NULL = stdout (also for --output -) */
	struct tp_strv data;	   /* service data then task data, in order */
	size_t service_data_count; /* how many of data.items are service data */
	struct tp_strv data_keys;  /* --data-key: the sealed items' keys, in order */
	struct tp_strv allow;	   /* --allow paths */
	struct tp_strv pythonpath; /* --pythonpath paths: allowed, and on sys.path */
	const char *venv;	   /* --venv DIR, or NULL */
	struct tp_strv env;	   /* NAME=VALUE */
	struct tp_limits limits;   /* the defaults, TEEPY_* settings, then flags */
	struct tp_strv trust;	   /* --trust PUB: signers whose bundles may run */
	const char *bundle_key;	   /* --bundle-key KEY, or NULL */
	const char *output_volume; /* --output-volume DIR, or NULL */
	const char *volume_key;	   /* --volume-key KEY, or NULL */
	bool expect_version_given; /* --expect-version N */
	uint64_t expect_version;
	bool insecure_any_signer;
	bool allow_processes; /* set by teepy build --allow-processes, not a run flag */
	/* which limits were given (flag or TEEPY_*), a set of enum tp_limit_bit: a
	 * bundle's own limits are only tightened by them */
	unsigned limits_given;
	bool allow_site_packages;
	enum tp_engine engine; /* --engine, TEEPY_ENGINE: CPython unless given */
	bool engine_given;     /* by the flag, not the setting */
	/* TEEPY_ENGINE as set, checked only where it applies (tp_run_opts_engine_check): a
	 * bundle runs on the engine it records, whatever the setting names */
	const char *engine_setting;
	bool print_config;
	const char *no_cache; /* "--no-cache" or "TEEPY_NO_CACHE" as given, or NULL */
	uint64_t cache_max_bytes;
	enum tp_escape_when escape;
	bool help;
	enum tp_mode mode;
	bool mode_was_auto;
	/* --cas URL, --cas-fingerprint FP, --config-id POLICY/SERVICE: the keys by
	 * attestation; cas_from_env: all three came from TEEPY_* settings (which an
	 * unsealed script and a build's sample run leave alone) */
	const char *cas, *cas_fingerprint, *config_id;
	bool cas_from_env;
	/* --listen ADDR:PORT, --listen-fd N (listen_fd_given), --wsgi's NAME: a service
	 * that serves on a handed socket (policy network "listen") */
	const char *listen;
	int listen_fd;
	bool listen_fd_given;
	const char *wsgi;
	char *wsgi_script; /* --wsgi SCRIPT.py:NAME's script (opts->script then) */
	/* --snp-vcek FILE, --snp-chain FILE (or TEEPY_SNP_*): the certificates an SEV-SNP
	 * report goes to the CAS with, instead of the host's; *_from: the flag or the
	 * setting that gave each */
	const char *snp_vcek, *snp_chain, *snp_vcek_from, *snp_chain_from;
	struct tp_run_opts_seen seen;
};

/* Looks up a setting such as TEEPY_MEMORY; getenv in production, a table in tests. */
typedef const char *(*tp_getenv_fn)(const char *name);

/* Parses `teepy run` arguments (argv[0] is "run", or "build" for a build's sample
 * run: a usage error points to that command's --help). On a usage error returns
 * -EINVAL and writes one line (without "teepy: ") into err. The caller owns opts and frees
 * it with tp_run_opts_free. */
int tp_run_opts_parse(struct tp_run_opts *opts, int argc, char **argv, tp_getenv_fn getenv_fn,
		      char *err, size_t err_size);

/* The same in steps, for a command that takes teepy run's flags among its own (build
 * parses its argv once, handing each of run's flags here). Each returns 0 or -errno
 * (-EINVAL with one line in err for a usage error). */
void tp_run_opts_init(struct tp_run_opts *opts); /* the defaults */
int tp_run_opts_env(struct tp_run_opts *opts, tp_getenv_fn getenv_fn, char *err, size_t err_size);
/* flag ID of tp_run_flags, as the person wrote it (GIVEN), VALUE NULL for a switch */
int tp_run_opts_set(struct tp_run_opts *opts, int id, const char *given, const char *value,
		    char *err, size_t err_size);
int tp_run_opts_operand(struct tp_run_opts *opts, const char *arg, char *err, size_t err_size);
/* argv[from..] after "--": the script if not named yet, then its arguments */
int tp_run_opts_rest(struct tp_run_opts *opts, int argc, char **argv, int from);
/* path (borrowed) made visible, as --allow does */
int tp_run_opts_allow(struct tp_run_opts *opts, const char *path);
int tp_run_opts_finish(struct tp_run_opts *opts, const char *command, char *err, size_t err_size);

/* For a script (or a shell's prompt), not a bundle: whether TEEPY_ENGINE, unless
 * --engine was given, names an engine this teepy runs. Returns 0, or -EINVAL with one
 * line in err (an unknown engine, or one this teepy was built without). Pure. */
int tp_run_opts_engine_check(const struct tp_run_opts *opts, char *err, size_t err_size);

void tp_run_opts_free(struct tp_run_opts *opts);

/* Whether text is POLICY/SERVICE, each [a-z0-9][a-z0-9_-]{0,63} (cas-api.md). */
bool tp_run_opts_config_id_ok(const char *text);

/* Data item i of the TEEX list (service data, then task data), or NULL if out of range. */
const char *tp_run_opts_data_item(const struct tp_run_opts *opts, size_t i);

/* The flags of `teepy run` (build takes them too) and its --help. */
extern const struct tp_flag tp_run_flags[];
extern const struct tp_command_help tp_run_help;

#endif
