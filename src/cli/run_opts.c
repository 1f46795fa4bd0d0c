/* `teepy run` option parsing: flags first, TEEPY_* environment settings as defaults. */
#include "run_opts.h"

#include "flags.h"
#include "../cas/cas.h"
#include "../cas/client.h"
#include "../common/log.h"
#include "../common/units.h"
#include "../manifest/engine.h"
#include "../manifest/manifest.h"
#include "../runner/runner.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum run_flag {
	RUN_INPUT = 1,
	RUN_INPUT_FILE,
	RUN_DATA,
	RUN_TASK_DATA,
	RUN_DATA_KEY,
	RUN_OUTPUT,
	RUN_OUTPUT_VOLUME,
	RUN_VOLUME_KEY,
	RUN_OUTPUT_MAX,
	RUN_EXPECT_VERSION,
	RUN_MEMORY,
	RUN_CPU_TIME,
	RUN_TIMEOUT,
	RUN_THREADS,
	RUN_SCRATCH,
	RUN_LOG_MAX,
	RUN_ALLOW,
	RUN_PYTHONPATH,
	RUN_ALLOW_SITE_PACKAGES,
	RUN_VENV,
	RUN_ENV,
	RUN_TRUST,
	RUN_BUNDLE_KEY,
	RUN_INSECURE_ANY_SIGNER,
	RUN_MODE,
	RUN_PRINT_CONFIG,
	RUN_NO_CACHE,
	RUN_CACHE_MAX,
	RUN_ESCAPE,
	RUN_CAS,
	RUN_CAS_FINGERPRINT,
	RUN_CONFIG_ID,
	RUN_SNP_VCEK,
	RUN_SNP_CHAIN,
	RUN_LISTEN,
	RUN_LISTEN_FD,
	RUN_WSGI,
	RUN_ENGINE,
	RUN_HELP,
};

const struct tp_flag tp_run_flags[] = {
	TP_FLAG_HEADING("Input and data:"),
	{ RUN_INPUT, "input", 0, "STR", NULL, "the input string (teex.TEEX_getinput())" },
	{ RUN_INPUT_FILE, "input-file", 0, "FILE", NULL,
	  "read the input from FILE ('-' = stdin) (one input: --input or --input-file, once)" },
	{ RUN_DATA, "data", 0, "FILE", NULL, "a service data item; repeat, kept in order" },
	{ RUN_TASK_DATA, "task-data", 0, "FILE", NULL,
	  "a task data item; repeat, after the service data" },
	{ RUN_DATA_KEY, "data-key", 0, "KEY", NULL,
	  "the key of the sealed items (teepy data seal): one for all, or one each, in "
	  "order; or give an item's own as FILE:KEY" },
	{ RUN_OUTPUT, "output", 0, "FILE", NULL,
	  "write the result to FILE, not stdout ('-' = stdout)" },

	TP_FLAG_HEADING("Output volume:"),
	{ RUN_OUTPUT_VOLUME, "output-volume", 0, "DIR", NULL,
	  "give the service a writable in-memory /out; when it ends normally, seal every file "
	  "there into DIR (a new, empty or volume directory) as the volume's next version" },
	{ RUN_VOLUME_KEY, "volume-key", 0, "KEY", NULL,
	  "the key the volume is sealed with (teepy keygen --symmetric)" },
	{ RUN_OUTPUT_MAX, "output-max", 0, "SIZE", NULL,
	  "the most /out holds, counted in the memory limit (default a quarter of it)" },
	{ RUN_EXPECT_VERSION, "expect-version", 0, "N", NULL,
	  "refuse to run unless DIR's volume is at version N (0: none yet): an older state "
	  "put back is refused" },

	TP_FLAG_HEADING("Limits:"),
	{ RUN_MEMORY, "memory", 0, "SIZE", "TEEPY_MEMORY", "memory limit (default 3G)" },
	{ RUN_CPU_TIME, "cpu-time", 0, "DURATION", "TEEPY_CPU_TIME",
	  "CPU time, all threads (default 30m)" },
	{ RUN_TIMEOUT, "timeout", 0, "DURATION", "TEEPY_TIMEOUT",
	  "wall-clock limit (default 60m)" },
	{ RUN_THREADS, "threads", 0, "N", NULL, "most threads the service may have (default 64)" },
	{ RUN_SCRATCH, "scratch", 0, "SIZE", NULL,
	  "a private in-memory /tmp of SIZE (default: none)" },
	{ RUN_LOG_MAX, "log-max", 0, "SIZE", "TEEPY_LOG_MAX",
	  "relay at most SIZE of the service's stdout and stderr (default 16M)" },

	TP_FLAG_HEADING("What the service may read:"),
	{ RUN_ALLOW, "allow", 0, "PATH", NULL,
	  "make PATH readable inside, at the same path; a bundle may take system files from "
	  "it; repeat" },
	{ RUN_PYTHONPATH, "pythonpath", 0, "DIR", NULL,
	  "like --allow DIR, and put DIR on sys.path; repeat" },
	{ RUN_ALLOW_SITE_PACKAGES, "allow-site-packages", 0, NULL, NULL,
	  "make Debian's dist-packages importable (numpy)" },
	{ RUN_VENV, "venv", 0, "DIR", NULL,
	  "make a virtual environment's packages importable (made with /usr/bin/python3 -m "
	  "venv; its .pth files are read); build bundles the files the sample run used" },
	{ RUN_ENV, "env", 0, "NAME=VALUE", NULL,
	  "set a variable inside; no host variable is passed" },

	TP_FLAG_HEADING("Bundles:"),
	{ RUN_TRUST, "trust", 0, "PUB", "TEEPY_TRUSTED_SIGNERS",
	  "run bundles signed by this key; repeat (the variable: .pub files separated by "
	  "colons)" },
	{ RUN_INSECURE_ANY_SIGNER, "insecure-any-signer", 0, NULL, NULL,
	  "run a bundle whatever key signed it (prints a warning)" },
	{ RUN_BUNDLE_KEY, "bundle-key", 0, "KEY", NULL,
	  "the key an encrypted bundle's files are sealed with (teepy keygen --symmetric; "
	  "build: the key to encrypt with)" },

	TP_FLAG_HEADING("Keys by attestation (a sealed bundle):"),
	{ RUN_CAS, "cas", 0, "URL", "TEEPY_CAS_ADDR",
	  "get the bundle key, data keys, volume key and environment values from the CAS at "
	  "https://HOST:PORT by attestation (not with --bundle-key, --data-key, --volume-key)" },
	{ RUN_CAS_FINGERPRINT, "cas-fingerprint", 0, "FP", "TEEPY_CAS_FINGERPRINT",
	  "the CAS's key: sha256// and the base64 of the SHA-256 of its public key (teepy cas "
	  "prints it)" },
	{ RUN_CONFIG_ID, "config-id", 0, "POLICY/SERVICE", "TEEPY_CONFIG_ID",
	  "the policy and service whose secrets the run asks for" },
	{ RUN_SNP_VCEK, "snp-vcek", 0, "FILE", "TEEPY_SNP_VCEK",
	  "SEV-SNP: the VCEK (or VLEK) that signs this guest's reports, DER or PEM, sent "
	  "instead of the one the host gives with the report (configfs-tsm's auxblob)" },
	{ RUN_SNP_CHAIN, "snp-chain", 0, "FILE", "TEEPY_SNP_CHAIN",
	  "SEV-SNP: AMD's chain above it, PEM (ASK or ASVK, and ARK: KDS's cert_chain), "
	  "instead of the host's" },

	TP_FLAG_HEADING("Serving on a socket (policy network \"listen\"):"),
	{ RUN_LISTEN, "listen", 0, "ADDR:PORT", NULL,
	  "bind and listen on ADDR:PORT (127.0.0.1:8000, [::1]:8000, localhost:0 for any free "
	  "port) outside the sandbox and hand in only that socket: teex.listen_socket(); the "
	  "service runs until stopped, with no CPU-time or wall-clock limit unless given" },
	{ RUN_LISTEN_FD, "listen-fd", 0, "N", NULL,
	  "the same with a socket already listening at fd N (systemd socket activation: "
	  "LISTEN_FDS, LISTEN_PID)" },
	{ RUN_WSGI, "wsgi", 0, "SCRIPT.py[:NAME]", NULL,
	  "in place of SCRIPT.py: serve its WSGI application NAME (default application) with "
	  "the stdlib's wsgiref, one request at a time" },

	TP_FLAG_HEADING("Other:"),
	{ RUN_ENGINE, "engine", 0, "NAME", "TEEPY_ENGINE",
	  "the interpreter: cpython (default, Debian's python3) or pypy3 (Debian's PyPy, "
	  "with its JIT); a bundle runs on the engine it was built for" },
	{ RUN_MODE, "mode", 0, "MODE", "TEEPY_MODE",
	  "sim | auto | hw (default auto = sim; with --cas the evidence's: auto = hw where "
	  "configfs-tsm is, else sim)" },
	{ RUN_PRINT_CONFIG, "print-config", 0, NULL, "TEEPY_VERSION",
	  "print the configuration and applied protections to stderr before running" },
	{ RUN_NO_CACHE, "no-cache", 0, NULL, "TEEPY_NO_CACHE",
	  "build a sealed bundle's root from the host's files, not from the cache of "
	  "verified roots" },
	{ RUN_CACHE_MAX, "cache-max", 0, "SIZE", "TEEPY_CACHE_MAX",
	  "keep at most SIZE of verified roots in the cache, least recently used ones "
	  "evicted first (default 1G)" },
	{ RUN_ESCAPE, "escape", 0, "WHEN", "TEEPY_ESCAPE",
	  "auto | always | never: show the service's control characters as text and mark "
	  "its lines (default auto: when stderr is a terminal)" },
	{ RUN_HELP, "help", 'h', NULL, NULL, "show this help" },
	TP_FLAGS_END,
};

const struct tp_command_help tp_run_help = {
	.name = "run",
	.synopsis = "[OPTIONS] SCRIPT.py [OPTIONS] [-- ARG...]\n"
		    "[OPTIONS] APP.tpy --trust SIGNER.pub [OPTIONS] [-- ARG...]",
	.about = "Runs SCRIPT.py with Debian's /usr/bin/python3 in a kernel-enforced sandbox:\n"
		 "no network, no writes, no processes, only the stdlib, the script's directory\n"
		 "and allowed paths visible. The service talks through the `teex` module.\n"
		 "A sealed bundle (teepy build) runs in a root holding only its manifest's files,\n"
		 "each checked against its signed SHA-256 first; its limits apply, and limit\n"
		 "flags can only tighten them. Its system files come from the host's system\n"
		 "trees (interpreter, libraries, dist-packages), others only if --allow'ed.\n",
	.flags = tp_run_flags,
	.after =
	    "The teex module inside the service:\n"
	    "  TEEX_getinput(), get_input()   the input as str (undecodable bytes as\n"
	    "                                 surrogate escapes); \"\" when none was given\n"
	    "  get_input_bytes()              the input as bytes\n"
	    "  TEEX_return(s), set_result(s)  the result, str (UTF-8; surrogate escapes go\n"
	    "                                 back to their bytes) or bytes; the first call\n"
	    "                                 wins and returns True, later ones False\n"
	    "  TEEX_getdata(i), get_data(i)   data item i as bytes: the --data items, then\n"
	    "                                 the --task-data items (IndexError past the end)\n"
	    "  data_count()                   how many data items there are\n"
	    "  listen_socket()                the socket --listen or --listen-fd handed in\n"
	    "  serve_wsgi(app)                serve a WSGI application on it (wsgiref)\n"
	    "The result goes to stdout (or --output) exactly as returned; what the service\n"
	    "prints goes to teepy's stderr.\n"
	    "\n"
	    "SIZE: bytes with an optional K, M, G, T (binary) unit, e.g. 512M, 3G.\n"
	    "DURATION: a number with an optional ms, s (default), m, h unit, e.g. 1.5s, 30m.\n",
	.exits = NULL, /* all of them */
};

static int strv_push(struct tp_strv *v, const char *item)
{
	const char **items = realloc(v->items, (v->count + 1) * sizeof(*items));

	if (!items)
		return -ENOMEM;
	items[v->count++] = item;
	v->items = items;
	return 0;
}

static int parse_size_setting(const char *what, const char *text, uint64_t *out, char *err,
			      size_t err_size)
{
	int r = tp_parse_size(text, out);

	if (r == -ERANGE)
		return tp_errf(err, err_size, "%s: '%s' is too large (use e.g. 512M or 3G)", what,
			       text);
	if (r < 0)
		return tp_errf(err, err_size, "%s: '%s' is not a size (use e.g. 512M or 3G)", what,
			       text);
	if (*out == 0)
		return tp_errf(err, err_size, "%s: must be more than 0", what);
	return 0;
}

static int parse_duration_setting(const char *what, const char *text, uint64_t *out, char *err,
				  size_t err_size)
{
	int r = tp_parse_duration_ms(text, out);

	if (r == -ERANGE)
		return tp_errf(err, err_size, "%s: '%s' is too long (use e.g. 2s, 1.5s or 30m)",
			       what, text);
	if (r < 0)
		return tp_errf(err, err_size,
			       "%s: '%s' is not a duration (use e.g. 2s, 1.5s or 30m)", what, text);
	return 0;
}

static int parse_mode(const char *what, const char *text, struct tp_run_opts *opts, char *err,
		      size_t err_size)
{
	if (strcmp(text, "auto") == 0) {
		opts->mode = TP_MODE_SIM; /* hw is not implemented yet, so auto resolves to sim */
		opts->mode_was_auto = true;
	} else if (strcmp(text, "sim") == 0) {
		opts->mode = TP_MODE_SIM;
		opts->mode_was_auto = false;
	} else if (strcmp(text, "hw") == 0) {
		opts->mode = TP_MODE_HW;
		opts->mode_was_auto = false;
	} else {
		return tp_errf(err, err_size, "%s: unknown mode '%s' (use sim, auto or hw)", what,
			       text);
	}
	return 0;
}

/* The engine word names, or NULL with one line in err (err may be NULL): one teepy
 * does not know, or one this teepy was built without. */
static const struct tp_engine_build *engine_named(const char *what, const char *word, char *err,
						  size_t err_size)
{
	bool known;
	const struct tp_engine_build *e = tp_engine_by_word(word, &known);

	if (!known)
		tp_errf(err, err_size, "%s: unknown engine '%s' (use %s)", what, word,
			TP_ENGINE_WORDS);
	else if (!e)
		tp_errf(err, err_size,
			"%s %s: this teepy was built without it (install pypy3 and pypy3-dev, then "
			"rebuild teepy)",
			what, word);
	return e;
}

static int parse_escape(const char *what, const char *text, struct tp_run_opts *opts, char *err,
			size_t err_size)
{
	static const char *const names[] = { [TP_ESCAPE_AUTO] = "auto",
					     [TP_ESCAPE_ALWAYS] = "always",
					     [TP_ESCAPE_NEVER] = "never" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i]) == 0) {
			opts->escape = (enum tp_escape_when)i;
			return 0;
		}
	}
	return tp_errf(err, err_size, "%s: '%s' is not auto, always or never", what, text);
}

static bool valid_env_name(const char *assignment)
{
	const char *eq = strchr(assignment, '=');

	/* LD_*: the program loader's; PYPY*: PyPy's runtime reads them whatever -I says
	 * (PYPYLOG would print JIT traces of the code; teepy sets PYPY_GC_* itself) */
	if (!eq || eq == assignment || eq - assignment >= 256 ||
	    strncmp(assignment, "LD_", 3) == 0 || strncmp(assignment, "PYPY", 4) == 0)
		return false;
	for (const char *p = assignment; p < eq; p++) {
		bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
			  (p > assignment && *p >= '0' && *p <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* What one parse has seen besides opts. */
/* Sets what flag ID says, given as WHAT ("--memory", or "TEEPY_MEMORY" for a setting),
 * with VALUE (NULL for a switch). */
int tp_run_opts_set(struct tp_run_opts *opts, int id, const char *what, const char *value,
		    char *err, size_t err_size)
{
	struct tp_limits *l = &opts->limits;
	struct tp_run_opts_seen *seen = &opts->seen;

	switch (id) {
	case RUN_INPUT:
	case RUN_INPUT_FILE:
		/* one input and one output: a second would silently replace the first */
		if (seen->input)
			return tp_errf(
			    err, err_size,
			    "%s: the input is already given (use one --input or --input-file)",
			    what);
		if (id == RUN_INPUT_FILE && !*value)
			return tp_errf(err, err_size, "%s: empty file name", what);
		*(id == RUN_INPUT ? &opts->input : &opts->input_file) = value;
		seen->input = true;
		return 0;
	case RUN_DATA:
	case RUN_TASK_DATA:
		if (!*value)
			return tp_errf(err, err_size, "%s: empty file name", what);
		return strv_push(id == RUN_DATA ? &opts->data : &seen->task_data, value);
	case RUN_DATA_KEY:
		if (!*value)
			return tp_errf(err, err_size, "%s: empty file name", what);
		return strv_push(&opts->data_keys, value);
	case RUN_OUTPUT:
		if (seen->output)
			return tp_errf(err, err_size, "%s: given more than once (use one)", what);
		if (!*value)
			return tp_errf(err, err_size, "%s: empty file name", what);
		/* "-" is stdout, as "-" is stdin for --input-file; ./- names a file */
		opts->output_file = strcmp(value, "-") == 0 ? NULL : value;
		seen->output = true;
		return 0;
	case RUN_TRUST:
		if (!*value)
			return tp_errf(err, err_size, "%s: empty file name", what);
		return strv_push(&opts->trust, value);
	case RUN_BUNDLE_KEY:
	case RUN_OUTPUT_VOLUME:
	case RUN_VOLUME_KEY:
	case RUN_VENV: {
		/* a path given once */
		const char **slot = id == RUN_BUNDLE_KEY    ? &opts->bundle_key :
				    id == RUN_OUTPUT_VOLUME ? &opts->output_volume :
				    id == RUN_VOLUME_KEY    ? &opts->volume_key :
							      &opts->venv;
		if (!*value)
			return tp_errf(err, err_size, "%s: empty %s name", what,
				       id == RUN_OUTPUT_VOLUME || id == RUN_VENV ? "directory" :
										   "file");
		if (*slot)
			return tp_errf(err, err_size, "%s: given more than once (use one)", what);
		*slot = value;
		return 0;
	}
	case RUN_OUTPUT_MAX:
		return parse_size_setting(what, value, &l->output_bytes, err, err_size);
	case RUN_EXPECT_VERSION:
		if (tp_parse_count(value, &opts->expect_version) < 0)
			return tp_errf(err, err_size, "%s: '%s' is not a version (0, 1, 2 ...)",
				       what, value);
		opts->expect_version_given = true;
		return 0;
	case RUN_MEMORY:
		opts->limits_given |= TP_LIMIT_MEMORY;
		return parse_size_setting(what, value, &l->memory_bytes, err, err_size);
	case RUN_SCRATCH:
		opts->limits_given |= TP_LIMIT_SCRATCH;
		return parse_size_setting(what, value, &l->scratch_bytes, err, err_size);
	case RUN_LOG_MAX:
		opts->limits_given |= TP_LIMIT_LOG;
		return parse_size_setting(what, value, &l->log_max_bytes, err, err_size);
	case RUN_CPU_TIME:
		opts->limits_given |= TP_LIMIT_CPU;
		return parse_duration_setting(what, value, &l->cpu_ms, err, err_size);
	case RUN_TIMEOUT:
		opts->limits_given |= TP_LIMIT_TIMEOUT;
		return parse_duration_setting(what, value, &l->timeout_ms, err, err_size);
	case RUN_THREADS: {
		char *end;
		unsigned long n;

		opts->limits_given |= TP_LIMIT_THREADS;
		errno = 0;
		n = strtoul(value, &end, 10);
		if (errno || *end || end == value || value[0] == '-' || n < 1 || n > TP_MAX_THREADS)
			return tp_errf(err, err_size, "%s: '%s' is not a number from 1 to %u", what,
				       value, TP_MAX_THREADS);
		l->threads = (unsigned)n;
		return 0;
	}
	case RUN_ALLOW:
	case RUN_PYTHONPATH:
		if (!*value)
			return tp_errf(err, err_size, "%s: empty path", what);
		return strv_push(id == RUN_ALLOW ? &opts->allow : &opts->pythonpath, value);
	case RUN_ENV:
		if (!valid_env_name(value))
			return tp_errf(
			    err, err_size,
			    "%s: '%.64s' is not NAME=VALUE (a name of letters, digits and _, "
			    "not LD_* or PYPY*)",
			    what, value);
		return strv_push(&opts->env, value);
	case RUN_CAS:
	case RUN_CAS_FINGERPRINT:
	case RUN_CONFIG_ID: {
		const char **slot = id == RUN_CAS	      ? &opts->cas :
				    id == RUN_CAS_FINGERPRINT ? &opts->cas_fingerprint :
								&opts->config_id;
		if (!*value)
			return tp_errf(err, err_size, "%s: empty", what);
		if (id == RUN_CONFIG_ID && !tp_run_opts_config_id_ok(value))
			return tp_errf(err, err_size,
				       "%s: '%.140s' is not POLICY/SERVICE (each "
				       "[a-z0-9][a-z0-9_-]{0,63})",
				       what, value);
		bool *flag = id == RUN_CAS	       ? &seen->cas :
			     id == RUN_CAS_FINGERPRINT ? &seen->cas_fingerprint :
							 &seen->config_id;
		bool setting = strncmp(what, "TEEPY_", 6) == 0;
		/* a flag replaces what a setting said, not another flag */
		if (!setting && *flag)
			return tp_errf(err, err_size, "%s: given more than once (use one)", what);
		*slot = value;
		*flag = !setting;
		if (id == RUN_CAS)
			opts->cas_from_env = setting;
		return 0;
	}
	case RUN_SNP_VCEK:
	case RUN_SNP_CHAIN: {
		bool vcek = id == RUN_SNP_VCEK, setting = strncmp(what, "TEEPY_", 6) == 0;
		const char **from = vcek ? &opts->snp_vcek_from : &opts->snp_chain_from;
		if (!*value)
			return tp_errf(err, err_size, "%s: empty", what);
		/* a flag replaces what a setting said, not another flag */
		if (!setting && *from && strncmp(*from, "--", 2) == 0)
			return tp_errf(err, err_size, "%s: given more than once (use one)", what);
		*(vcek ? &opts->snp_vcek : &opts->snp_chain) = value;
		*from = vcek ? (setting ? "TEEPY_SNP_VCEK" : "--snp-vcek") :
			       (setting ? "TEEPY_SNP_CHAIN" : "--snp-chain");
		return 0;
	}
	case RUN_LISTEN:
	case RUN_LISTEN_FD: {
		char *end;
		long n;

		if (opts->listen || opts->listen_fd_given)
			return tp_errf(
			    err, err_size,
			    "%s: a socket is already given (use one --listen or --listen-fd)",
			    what);
		if (id == RUN_LISTEN && !*value)
			return tp_errf(err, err_size,
				       "%s: empty (give ADDR:PORT, e.g. 127.0.0.1:8000)", what);
		if (id == RUN_LISTEN) {
			opts->listen = value;
			return 0;
		}
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno || *end || end == value || n < 0 || n > INT_MAX)
			return tp_errf(err, err_size, "%s: '%s' is not a descriptor number", what,
				       value);
		opts->listen_fd = (int)n;
		opts->listen_fd_given = true;
		return 0;
	}
	case RUN_WSGI: {
		const char *colon = strrchr(value, ':');
		if (opts->wsgi)
			return tp_errf(err, err_size, "%s: given more than once (use one)", what);
		if (opts->script)
			return tp_errf(err, err_size,
				       "%s: names the script; '%s' is given already (--wsgi "
				       "SCRIPT.py[:NAME] takes its place)",
				       what, opts->script);
		if (!*value || colon == value)
			return tp_errf(err, err_size, "%s: empty script name", what);
		opts->script = value;
		opts->wsgi = "application";
		/* SCRIPT.py:NAME; a colon in a path with no name after it is the path's */
		if (colon && (colon[1] == '/' || strchr(colon + 1, '.')))
			colon = NULL;
		if (colon) {
			/* SCRIPT.py:NAME, the name a Python identifier (a module name with no
			 * dot: one with a dot was taken for the path's above) */
			if (!tp_module_name_ok(colon + 1))
				return tp_errf(err, err_size,
					       "%s: '%s' is not a Python name (SCRIPT.py:NAME)",
					       what, colon + 1);
			if (!(opts->wsgi_script = strndup(value, (size_t)(colon - value))))
				return -ENOMEM;
			opts->wsgi = colon + 1;
			opts->script = opts->wsgi_script;
		}
		return 0;
	}
	case RUN_ENGINE: {
		const struct tp_engine_build *e;
		/* a deployment's setting is a script's default: a bundle runs on its own
		 * engine, so a setting that names none here is refused only for a script
		 * (tp_run_opts_engine_check, once the runner knows which it is) */
		if (strncmp(what, "TEEPY_", 6) == 0) {
			opts->engine_setting = value;
			if ((e = engine_named(what, value, NULL, 0)))
				opts->engine = e->name;
			return 0;
		}
		if (!(e = engine_named(what, value, err, err_size)))
			return -EINVAL;
		opts->engine = e->name;
		opts->engine_given = true;
		return 0;
	}
	case RUN_MODE:
		return parse_mode(what, value, opts, err, err_size);
	case RUN_ESCAPE:
		return parse_escape(what, value, opts, err, err_size);
	case RUN_ALLOW_SITE_PACKAGES:
		opts->allow_site_packages = true;
		return 0;
	case RUN_PRINT_CONFIG:
		opts->print_config = true;
		return 0;
	case RUN_CACHE_MAX:
		return parse_size_setting(what, value, &opts->cache_max_bytes, err, err_size);
	case RUN_NO_CACHE:
		/* what names the setting in a buffer of the parser's */
		opts->no_cache =
		    strncmp(what, "TEEPY_", 6) == 0 ? "TEEPY_NO_CACHE=1" : "--no-cache";
		return 0;
	case RUN_INSECURE_ANY_SIGNER:
		opts->insecure_any_signer = true;
		return 0;
	case RUN_HELP:
		opts->help = true;
		return 0;
	}
	return tp_errf(err, err_size, "%s: not a flag of teepy run", what);
}

int tp_run_opts_engine_check(const struct tp_run_opts *opts, char *err, size_t err_size)
{
	if (opts->engine_given || !opts->engine_setting)
		return 0;
	return engine_named("TEEPY_ENGINE", opts->engine_setting, err, err_size) ? 0 : -EINVAL;
}

/* TEEPY_* settings give the defaults that flags then override: a value when it is
 * not empty, a switch's when it is 1. */
int tp_run_opts_env(struct tp_run_opts *opts, tp_getenv_fn getenv_fn, char *err, size_t err_size)
{
	const char *v;
	int r;

	if (!getenv_fn)
		return 0;
	for (const struct tp_flag *f = tp_run_flags; !tp_flag_is_end(f); f++) {
		/* TEEPY_TRUSTED_SIGNERS is a colon-separated list, which any --trust
		 * replaces: run.c reads it */
		if (!f->env || f->id == RUN_TRUST || !(v = getenv_fn(f->env)))
			continue;
		if (f->arg ? !*v : strcmp(v, "1") != 0)
			continue;
		if ((r = tp_run_opts_set(opts, f->id, f->env, f->arg ? v : NULL, err, err_size)) <
		    0)
			return r;
	}
	return 0;
}

void tp_run_opts_init(struct tp_run_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->limits = tp_limits_default();
	opts->mode = TP_MODE_SIM;
	opts->mode_was_auto = true;
	opts->cache_max_bytes = TP_CACHE_MAX_DEFAULT;
}

int tp_run_opts_operand(struct tp_run_opts *opts, const char *arg, char *err, size_t err_size)
{
	if (opts->script)
		return tp_errf(err, err_size,
			       "unexpected argument '%s' (arguments for the script go after --)",
			       arg);
	opts->script = arg;
	return 0;
}

int tp_run_opts_rest(struct tp_run_opts *opts, int argc, char **argv, int from)
{
	for (int i = from; i < argc; i++) {
		if (!opts->script)
			opts->script = argv[i];
		else if (strv_push(&opts->script_args, argv[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

int tp_run_opts_allow(struct tp_run_opts *opts, const char *path)
{
	return strv_push(&opts->allow, path);
}

int tp_run_opts_finish(struct tp_run_opts *opts, const char *command, char *err, size_t err_size)
{
	/* teepy shell runs a console, no script */
	if (!opts->script && strcmp(command, "shell") != 0)
		return tp_errf(err, err_size, "missing SCRIPT.py (see teepy %s --help)", command);
	const char *needs_volume = opts->volume_key	      ? "--volume-key" :
				   opts->limits.output_bytes  ? "--output-max" :
				   opts->expect_version_given ? "--expect-version" :
								NULL;
	if (strcmp(command, "build") == 0 && opts->output_volume)
		return tp_errf(err, err_size,
			       "--output-volume: a build's sample run publishes no volume (give it "
			       "to teepy run)");
	if (!opts->output_volume && needs_volume)
		return tp_errf(err, err_size,
			       "%s applies to an output volume: give --output-volume DIR too",
			       needs_volume);
	bool serves = opts->listen || opts->listen_fd_given;
	if (opts->wsgi && strcmp(command, "build") == 0)
		return tp_errf(err, err_size,
			       "--wsgi: a bundle names a script to run, not an application: build "
			       "one that calls teex.serve_wsgi(application)");
	if (serves && opts->output_volume)
		return tp_errf(
		    err, err_size,
		    "--output-volume: a server ends when it is stopped, which publishes no "
		    "volume (a volume is sealed only after a normal end)");
	if (opts->wsgi && !serves)
		return tp_errf(
		    err, err_size,
		    "--wsgi: serves on a socket: give --listen ADDR:PORT or --listen-fd N "
		    "too");
	/* a server runs until it is stopped: the CPU-time and wall-clock defaults, which
	 * would end it, are off unless given */
	if (serves && !(opts->limits_given & TP_LIMIT_CPU))
		opts->limits.cpu_ms = TP_LIMIT_OFF_MS;
	if (serves && !(opts->limits_given & TP_LIMIT_TIMEOUT))
		opts->limits.timeout_ms = TP_LIMIT_OFF_MS;
	/* nor is its log cut after 16M: it goes on for days, and is streamed, not kept */
	if (serves && !(opts->limits_given & TP_LIMIT_LOG))
		opts->limits.log_max_bytes = UINT64_MAX;
	if (opts->cas && opts->cas_from_env && strcmp(command, "build") == 0)
		opts->cas = NULL; /* the deployment's setting: not a sample run's */
	else if (opts->cas && strcmp(command, "build") == 0)
		return tp_errf(err, err_size,
			       "--cas: a build's sample run gets no keys from a CAS (give it to "
			       "teepy run)");
	if (opts->cas) {
		const char *given = opts->bundle_key	  ? "--bundle-key" :
				    opts->data_keys.count ? "--data-key" :
				    opts->volume_key	  ? "--volume-key" :
							    NULL;
		if (given && opts->cas_from_env)
			opts->cas = NULL; /* the flag wins over the deployment's setting */
		else if (given)
			return tp_errf(err, err_size,
				       "%s: with --cas the keys come from the CAS by attestation "
				       "(give one or the other)",
				       given);
		if (opts->cas && (!opts->cas_fingerprint || !opts->config_id))
			return tp_errf(err, err_size, "--cas: give %s too (or TEEPY_%s)",
				       !opts->cas_fingerprint ? "--cas-fingerprint FP" :
								"--config-id POLICY/SERVICE",
				       !opts->cas_fingerprint ? "CAS_FINGERPRINT" : "CONFIG_ID");
		char why[320];
		if (opts->cas && tp_cas_check_url(opts->cas, why, sizeof(why)) < 0)
			return tp_errf(err, err_size, "--cas: %s", why);
		if (opts->cas &&
		    tp_cas_check_fingerprint(opts->cas_fingerprint, why, sizeof(why)) < 0)
			return tp_errf(err, err_size, "--cas-fingerprint: %s", why);
	} else if (opts->seen.cas_fingerprint || opts->seen.config_id) {
		return tp_errf(err, err_size, "%s: applies to --cas URL: give it too",
			       opts->seen.config_id ? "--config-id" : "--cas-fingerprint");
	}
	/* the certificates go with evidence for a CAS; the settings are a deployment's
	 * defaults, which a run without one leaves alone */
	const char *snp_flag =
	    opts->snp_vcek_from && strncmp(opts->snp_vcek_from, "--", 2) == 0	? "--snp-vcek" :
	    opts->snp_chain_from && strncmp(opts->snp_chain_from, "--", 2) == 0 ? "--snp-chain" :
										  NULL;
	if (!opts->cas && snp_flag)
		return tp_errf(err, err_size,
			       "%s: applies to --cas URL (the certificates go with the evidence "
			       "sent to the CAS): give it too",
			       snp_flag);
	opts->service_data_count = opts->data.count;
	for (size_t k = 0; k < opts->seen.task_data.count; k++)
		if (strv_push(&opts->data, opts->seen.task_data.items[k]) < 0) {
			tp_errf(err, err_size, "out of memory");
			return -ENOMEM;
		}
	free(opts->seen.task_data.items);
	opts->seen.task_data = (struct tp_strv){ 0 };
	return 0;
}

int tp_run_opts_parse(struct tp_run_opts *opts, int argc, char **argv, tp_getenv_fn getenv_fn,
		      char *err, size_t err_size)
{
	struct tp_flag_parser p;
	/* run, or build for its sample run: each usage error names that command's help */
	const char *command = argc > 0 ? argv[0] : "run";
	int r;

	tp_run_opts_init(opts);
	if ((r = tp_run_opts_env(opts, getenv_fn, err, err_size)) < 0)
		goto out;
	if ((r = tp_flags_start(&p, command, tp_run_flags, NULL, argc, argv)) < 0)
		goto out;
	while ((r = tp_flags_next(&p, err, err_size)) != TP_FLAGS_DONE) {
		if (r < 0)
			goto out;
		if (r == TP_FLAGS_OPERAND)
			r = tp_run_opts_operand(opts, p.value, err, err_size);
		else
			r = tp_run_opts_set(opts, p.flag->id, p.given, p.value, err, err_size);
		if (r < 0)
			goto out;
		if (opts->help)
			return 0;
	}
	/* "--" ends teepy's options: the script (if not named yet), then its arguments */
	if (p.dashdash && (r = tp_run_opts_rest(opts, argc, argv, p.rest)) < 0)
		goto out;
	r = tp_run_opts_finish(opts, command, err, err_size);
out:
	if (r == -ENOMEM)
		tp_errf(err, err_size, "out of memory");
	return r;
}

void tp_run_opts_free(struct tp_run_opts *opts)
{
	free(opts->wsgi_script);
	free(opts->seen.task_data.items);
	free(opts->script_args.items);
	free(opts->data.items);
	free(opts->data_keys.items);
	free(opts->allow.items);
	free(opts->pythonpath.items);
	free(opts->env.items);
	free(opts->trust.items);
	memset(opts, 0, sizeof(*opts));
}

bool tp_run_opts_config_id_ok(const char *text)
{
	const char *slash = strchr(text, '/');
	char policy[TP_CAS_NAME_MAX + 1];

	if (!slash || slash == text || (size_t)(slash - text) > TP_CAS_NAME_MAX)
		return false;
	snprintf(policy, sizeof(policy), "%.*s", (int)(slash - text), text);
	return tp_cas_name_ok(policy) && tp_cas_name_ok(slash + 1);
}

const char *tp_run_opts_data_item(const struct tp_run_opts *opts, size_t i)
{
	return i < opts->data.count ? opts->data.items[i] : NULL;
}
