/* `teepy run` option parsing: flags first, TEEPY_* environment settings as defaults. */
#include "run_opts.h"

#include "../common/units.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char tp_run_usage[] =
	"usage: teepy run [OPTIONS] SCRIPT.py [OPTIONS] [-- ARG...]\n"
	"       teepy run [OPTIONS] APP.tpy --trust SIGNER.pub [OPTIONS] [-- ARG...]\n"
	"\n"
	"Runs SCRIPT.py with Debian's /usr/bin/python3 in a kernel-enforced sandbox:\n"
	"no network, no writes, no processes, only the stdlib, the script's directory\n"
	"and allowed paths visible. The service talks through the `teex` module.\n"
	"A sealed bundle (teepy build) runs in a root holding only its manifest's files,\n"
	"each checked against its signed SHA-256 first; its limits apply, and limit\n"
	"flags can only tighten them.\n"
	"\n"
	"Input and data:\n"
	"  --input STR            the input string (teex.TEEX_getinput())\n"
	"  --input-file FILE      read the input from FILE ('-' = stdin)\n"
	"                         (one input: --input or --input-file, once)\n"
	"  --data FILE            a service data item; repeat, kept in order\n"
	"  --task-data FILE       a task data item; repeat, after the service data\n"
	"  --output FILE          write the result to FILE instead of stdout ('-' = stdout)\n"
	"\n"
	"Limits:\n"
	"  --memory SIZE          memory limit (default 3G)            [TEEPY_MEMORY]\n"
	"  --cpu-time DURATION    CPU time, all threads (default 30m)  [TEEPY_CPU_TIME]\n"
	"  --timeout DURATION     wall-clock limit (default 60m)       [TEEPY_TIMEOUT]\n"
	"  --threads N            most threads the service may have (default 64)\n"
	"  --scratch SIZE         a private in-memory /tmp of SIZE (default: none)\n"
	"\n"
	"What the service may read:\n"
	"  --allow PATH           make PATH readable inside, at the same path; repeat\n"
	"  --pythonpath DIR       like --allow DIR, and put DIR on sys.path; repeat\n"
	"  --allow-site-packages  make Debian's dist-packages importable (numpy)\n"
	"  --env NAME=VALUE       set a variable inside; no host variable is passed\n"
	"\n"
	"Bundles:\n"
	"  --trust PUB            run bundles signed by this key; repeat  [TEEPY_TRUSTED_SIGNERS,\n"
	"                         a colon-separated list of .pub files]\n"
	"  --insecure-any-signer  run a bundle whatever key signed it (prints a warning)\n"
	"\n"
	"Other:\n"
	"  --mode MODE            sim | auto | hw (default auto = sim)  [TEEPY_MODE]\n"
	"  --print-config         print the configuration and applied protections\n"
	"                         to stderr before running         [TEEPY_VERSION=1]\n"
	"  -h, --help             show this help\n"
	"\n"
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
	"The result goes to stdout (or --output) exactly as returned; what the service\n"
	"prints goes to teepy's stderr.\n"
	"\n"
	"SIZE: bytes with an optional K, M, G, T (binary) unit, e.g. 512M, 3G.\n"
	"DURATION: a number with an optional ms, s (default), m, h unit, e.g. 1.5s, 30m.\n"
	"\n"
	"Exit codes: 0 result returned; 1 service failed (exception, syntax error,\n"
	"non-zero exit, crash); 2 usage error; 3 no result returned; 4 killed for a rule;\n"
	"5 memory limit; 6 CPU time limit; 7 wall-clock timeout; 8 bundle refused;\n"
	"70 internal error; 130 interrupted.\n";

static int fail(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

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
		return fail(err, err_size, "%s: '%s' is too large (use e.g. 512M or 3G)", what,
			    text);
	if (r < 0)
		return fail(err, err_size, "%s: '%s' is not a size (use e.g. 512M or 3G)", what, text);
	if (*out == 0)
		return fail(err, err_size, "%s: must be more than 0", what);
	return 0;
}

static int parse_duration_setting(const char *what, const char *text, uint64_t *out, char *err,
				  size_t err_size)
{
	int r = tp_parse_duration_ms(text, out);

	if (r == -ERANGE)
		return fail(err, err_size, "%s: '%s' is too long (use e.g. 2s, 1.5s or 30m)", what,
			    text);
	if (r < 0)
		return fail(err, err_size, "%s: '%s' is not a duration (use e.g. 2s, 1.5s or 30m)", what,
			    text);
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
		return fail(err, err_size, "%s: unknown mode '%s' (use sim, auto or hw)", what, text);
	}
	return 0;
}

/* TEEPY_* settings give the defaults that flags then override. */
static int apply_env(struct tp_run_opts *opts, tp_getenv_fn getenv_fn, char *err, size_t err_size)
{
	const char *v;
	int r;

	if (!getenv_fn)
		return 0;
	if ((v = getenv_fn("TEEPY_MEMORY")) && *v) {
		if ((r = parse_size_setting("TEEPY_MEMORY", v, &opts->limits.memory_bytes, err,
					    err_size)) < 0)
			return r;
		opts->limits_given |= TP_LIMIT_MEMORY;
	}
	if ((v = getenv_fn("TEEPY_CPU_TIME")) && *v) {
		if ((r = parse_duration_setting("TEEPY_CPU_TIME", v, &opts->limits.cpu_ms, err,
						err_size)) < 0)
			return r;
		opts->limits_given |= TP_LIMIT_CPU;
	}
	if ((v = getenv_fn("TEEPY_TIMEOUT")) && *v) {
		if ((r = parse_duration_setting("TEEPY_TIMEOUT", v, &opts->limits.timeout_ms, err,
						err_size)) < 0)
			return r;
		opts->limits_given |= TP_LIMIT_TIMEOUT;
	}
	if ((v = getenv_fn("TEEPY_MODE")) && *v &&
	    (r = parse_mode("TEEPY_MODE", v, opts, err, err_size)) < 0)
		return r;
	if ((v = getenv_fn("TEEPY_VERSION")) && strcmp(v, "1") == 0)
		opts->print_config = true;
	return 0;
}

static bool valid_env_name(const char *assignment)
{
	const char *eq = strchr(assignment, '=');

	if (!eq || eq == assignment || eq - assignment >= 256 || strncmp(assignment, "LD_", 3) == 0)
		return false;
	for (const char *p = assignment; p < eq; p++) {
		bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
			  (p > assignment && *p >= '0' && *p <= '9');
		if (!ok)
			return false;
	}
	return true;
}

int tp_run_opts_parse(struct tp_run_opts *opts, int argc, char **argv, tp_getenv_fn getenv_fn,
		      char *err, size_t err_size)
{
	struct tp_strv task_data = { 0 };
	bool input_given = false, output_given = false;
	/* run, or build for its sample run: each usage error names that command's help */
	const char *command = argc > 0 ? argv[0] : "run";
	int r;

	memset(opts, 0, sizeof(*opts));
	opts->limits = tp_limits_default();
	opts->mode = TP_MODE_SIM;
	opts->mode_was_auto = true;

	r = apply_env(opts, getenv_fn, err, err_size);
	if (r < 0)
		goto out;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value = NULL;
		const char *eq;
		char name[32];

		if (strcmp(arg, "--") == 0) {
			/* "--" ends teepy's options: the script (if not named yet), then its arguments */
			if (!opts->script && ++i < argc)
				opts->script = argv[i];
			while (++i < argc)
				if ((r = strv_push(&opts->script_args, argv[i])) < 0)
					goto out;
			break;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			opts->help = true;
			goto out;
		}
		if (strncmp(arg, "--", 2) != 0) {
			if (arg[0] == '-' && arg[1] != '\0') {
				r = fail(err, err_size, "unknown option '%s' (see teepy %s --help)", arg,
					 command);
				goto out;
			}
			if (opts->script) {
				r = fail(err, err_size,
					 "unexpected argument '%s' (arguments for the script go after --)",
					 arg);
				goto out;
			}
			opts->script = arg;
			continue;
		}

		/* --name=value or --name value */
		eq = strchr(arg, '=');
		if (eq) {
			size_t len = (size_t)(eq - arg);
			if (len >= sizeof(name)) {
				r = fail(err, err_size, "unknown option '%s' (see teepy %s --help)", arg,
					 command);
				goto out;
			}
			memcpy(name, arg, len);
			name[len] = '\0';
			value = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", arg);
		}

		if (strcmp(name, "--allow-site-packages") == 0 || strcmp(name, "--print-config") == 0 ||
		    strcmp(name, "--insecure-any-signer") == 0) {
			if (value) {
				r = fail(err, err_size, "%s takes no value", name);
				goto out;
			}
			if (strcmp(name, "--print-config") == 0)
				opts->print_config = true;
			else if (strcmp(name, "--insecure-any-signer") == 0)
				opts->insecure_any_signer = true;
			else
				opts->allow_site_packages = true;
			continue;
		}

		static const char *const with_value[] = {
			"--input",  "--input-file", "--data",    "--task-data", "--output",
			"--memory", "--cpu-time",   "--timeout", "--threads",   "--scratch",
			"--allow",  "--pythonpath", "--env",     "--mode",      "--trust",
		};
		bool known = false;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			known = known || strcmp(name, with_value[k]) == 0;
		if (!known) {
			r = fail(err, err_size, "unknown option '%s' (see teepy %s --help)", name,
				 command);
			goto out;
		}
		if (!value) {
			if (i + 1 >= argc) {
				r = fail(err, err_size, "%s needs a value", name);
				goto out;
			}
			value = argv[++i];
		}

		/* one input and one output: a second would silently replace the first */
		if ((strcmp(name, "--input") == 0 || strcmp(name, "--input-file") == 0) &&
		    input_given) {
			r = fail(err, err_size,
				 "%s: the input is already given (use one --input or --input-file)",
				 name);
			goto out;
		}
		if (strcmp(name, "--output") == 0 && output_given) {
			r = fail(err, err_size, "--output: given more than once (use one)");
			goto out;
		}

		if (strcmp(name, "--input") == 0) {
			opts->input = value;
			input_given = true;
		} else if (strcmp(name, "--input-file") == 0) {
			if (!*value) {
				r = fail(err, err_size, "--input-file: empty file name");
				goto out;
			}
			opts->input_file = value;
			input_given = true;
		} else if (strcmp(name, "--data") == 0 || strcmp(name, "--task-data") == 0) {
			if (!*value) {
				r = fail(err, err_size, "%s: empty file name", name);
				goto out;
			}
			r = strv_push(strcmp(name, "--data") == 0 ? &opts->data : &task_data, value);
		} else if (strcmp(name, "--output") == 0) {
			if (!*value) {
				r = fail(err, err_size, "--output: empty file name");
				goto out;
			}
			/* "-" is stdout, as "-" is stdin for --input-file; ./- names a file */
			opts->output_file = strcmp(value, "-") == 0 ? NULL : value;
			output_given = true;
		} else if (strcmp(name, "--trust") == 0) {
			if (!*value) {
				r = fail(err, err_size, "--trust: empty file name");
				goto out;
			}
			r = strv_push(&opts->trust, value);
		} else if (strcmp(name, "--memory") == 0) {
			r = parse_size_setting("--memory", value, &opts->limits.memory_bytes, err,
					       err_size);
			opts->limits_given |= TP_LIMIT_MEMORY;
		} else if (strcmp(name, "--scratch") == 0) {
			r = parse_size_setting("--scratch", value, &opts->limits.scratch_bytes, err,
					       err_size);
			opts->limits_given |= TP_LIMIT_SCRATCH;
		} else if (strcmp(name, "--cpu-time") == 0) {
			r = parse_duration_setting("--cpu-time", value, &opts->limits.cpu_ms, err,
						   err_size);
			opts->limits_given |= TP_LIMIT_CPU;
		} else if (strcmp(name, "--timeout") == 0) {
			r = parse_duration_setting("--timeout", value, &opts->limits.timeout_ms, err,
						   err_size);
			opts->limits_given |= TP_LIMIT_TIMEOUT;
		} else if (strcmp(name, "--threads") == 0) {
			char *end;
			unsigned long n;
			errno = 0;
			n = strtoul(value, &end, 10);
			if (errno || *end || end == value || value[0] == '-' || n < 1 ||
			    n > TP_MAX_THREADS)
				r = fail(err, err_size, "--threads: '%s' is not a number from 1 to %u",
					 value, TP_MAX_THREADS);
			else
				opts->limits.threads = (unsigned)n;
			opts->limits_given |= TP_LIMIT_THREADS;
		} else if (strcmp(name, "--allow") == 0 || strcmp(name, "--pythonpath") == 0) {
			if (!*value) {
				r = fail(err, err_size, "%s: empty path", name);
				goto out;
			}
			r = strv_push(strcmp(name, "--allow") == 0 ? &opts->allow : &opts->pythonpath,
				      value);
		} else if (strcmp(name, "--env") == 0) {
			if (!valid_env_name(value))
				r = fail(err, err_size,
					 "--env: '%.64s' is not NAME=VALUE (a name of letters, digits and _, "
					 "not LD_*)",
					 value);
			else
				r = strv_push(&opts->env, value);
		} else if (strcmp(name, "--mode") == 0) {
			r = parse_mode("--mode", value, opts, err, err_size);
		}
		if (r < 0)
			goto out;
	}

	if (!opts->script) {
		r = fail(err, err_size, "missing SCRIPT.py (see teepy %s --help)", command);
		goto out;
	}
	opts->service_data_count = opts->data.count;
	for (size_t k = 0; k < task_data.count; k++)
		if ((r = strv_push(&opts->data, task_data.items[k])) < 0)
			goto out;
	r = 0;
out:
	if (r == -ENOMEM)
		fail(err, err_size, "out of memory");
	free(task_data.items);
	return r;
}

const char *tp_run_shared_dir(const char *dir, const char *home)
{
	static const char *const shared[] = { "/tmp", "/var/tmp", "/dev/shm" };
	static const char *const homes[] = { "/root", "/home" };

	if (strcmp(dir, "/") == 0)
		return "the host's root";
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (strcmp(dir, shared[i]) == 0)
			return "shared by every user";
	for (size_t i = 0; i < sizeof(homes) / sizeof(homes[0]); i++)
		if (strcmp(dir, homes[i]) == 0)
			return "a home directory";
	if (home && *home && strcmp(dir, home) == 0)
		return "a home directory";
	if (strncmp(dir, "/home/", 6) == 0 && dir[6] && !strchr(dir + 6, '/'))
		return "a home directory";
	return NULL;
}

void tp_run_opts_free(struct tp_run_opts *opts)
{
	free(opts->script_args.items);
	free(opts->data.items);
	free(opts->allow.items);
	free(opts->pythonpath.items);
	free(opts->env.items);
	free(opts->trust.items);
	memset(opts, 0, sizeof(*opts));
}

const char *tp_run_opts_data_item(const struct tp_run_opts *opts, size_t i)
{
	return i < opts->data.count ? opts->data.items[i] : NULL;
}
