/* teepy: run Python services sealed. Dispatches to one command per file in cli/. */
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/flags.h"
#include "common/log.h"
#include "manifest/engine.h"
#include "sandbox/landlock.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int cmd_help(int argc, char **argv);

/* A command named twice is listed twice in --help, once for each of its uses. */
static const struct tp_command commands[] = {
	{ "run", "SCRIPT.py", "run a service in the sandbox", tp_cmd_run, &tp_run_help },
	{ "run", "APP.tpy", "run a sealed bundle (--trust PUB)", tp_cmd_run, &tp_run_help },
	{ "shell", "[OPTIONS]", "a Python prompt inside the sandbox (run's flags)", tp_cmd_shell,
	  &tp_shell_help },
	{ "build", "SCRIPT.py", "trace a sample run into a signed bundle", tp_cmd_build,
	  &tp_build_help },
	{ "inspect", "APP.tpy", "measurements, signer, policy and files of a bundle",
	  tp_cmd_inspect, &tp_inspect_help },
	{ "keygen", "-o KEY", "a new Ed25519 signing key and its .pub", tp_cmd_keygen,
	  &tp_keygen_help },
	{ "keygen", "--symmetric", "a new 256-bit encryption key (-o KEY)", tp_cmd_keygen,
	  &tp_keygen_help },
	{ "data", "seal|open|info", "a data file sealed for a service; open or describe one",
	  tp_cmd_data, &tp_data_help },
	{ "volume", "ls|cat", "an output volume a run sealed: list its files or print one",
	  tp_cmd_volume, &tp_volume_help },
	{ "attest", "verify FILE",
	  "verify a TDX quote, an SEV-SNP report or sim evidence, print its fields", tp_cmd_attest,
	  &tp_attest_help },
	{ "attest", "[--mode sim|hw|auto]",
	  "this host's evidence for given claims (debugging; sim is SIMULATION)", tp_cmd_attest,
	  &tp_attest_help },
	{ "platform", "init|show", "sim mode's platform key of this host: make it or show it",
	  tp_cmd_platform, &tp_platform_help },
	{ "cas", "--listen ADDR:PORT --db FILE",
	  "the CAS server: policies, attestation, sealed secrets over HTTPS", tp_cmd_cas,
	  &tp_cas_help },
	{ "cas", "audit --db FILE", "the CAS's audit log: every release and denial", tp_cmd_cas,
	  &tp_cas_help },
	{ "policy", "create|update|get|delete|list",
	  "a policy owner's requests to the CAS, signed with the owner's key", tp_cmd_policy,
	  &tp_policy_help },
	{ "serve", "--store DIR --trust PUB",
	  "the worker: deploy bundles, put sealed data, invoke services over HTTP", tp_cmd_serve,
	  &tp_serve_help },
	{ "deploy", "APP.tpy --worker URL",
	  "upload a sealed bundle to a worker and deploy it as a service", tp_cmd_deploy,
	  &tp_deploy_help },
	{ "data", "put ITEM.tpd --worker URL", "upload a sealed data item to a worker", tp_cmd_data,
	  &tp_data_help },
	{ "invoke", "SERVICE_ID --worker URL",
	  "invoke a service on a worker: the result on stdout, its log on stderr", tp_cmd_invoke,
	  &tp_invoke_help },
	{ "services", "--worker URL", "the services a worker holds", tp_cmd_services,
	  &tp_services_help },
	{ "cache", "ls|clear", "the cache of verified sealed roots: list or clear it", tp_cmd_cache,
	  &tp_cache_help },
	{ "help", "[TOPIC]",
	  "a command's help (as teepy COMMAND --help); exit-codes: every exit "
	  "code; flags: every command's flags, one a line",
	  cmd_help, NULL },
	{ 0 },
};

enum main_flag { MAIN_HELP = 1, MAIN_VERSION };

static const struct tp_flag flags[] = {
	{ MAIN_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ MAIN_VERSION, "version", 0, NULL, NULL,
	  "show the version, the Python it runs and the Landlock ABI it uses" },
	TP_FLAGS_END,
};

static const struct tp_exit_use no_exits[] = { { 0, NULL } };

static const struct tp_command_help help = {
	.name = NULL,
	.synopsis = "<command> [options]",
	.commands = commands,
	.flags = flags,
	.exits = no_exits, /* each command's help lists its own */
};

static const struct tp_command *find_command(const char *name)
{
	for (const struct tp_command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* `teepy help [TOPIC]`: this help, a command's, or a list for scripts and tests. */
static int cmd_help(int argc, char **argv)
{
	const struct tp_command *c;

	if (argc < 2) {
		tp_help_print(stdout, &help);
		return TP_EXIT_OK;
	}
	if (argc > 2) {
		tp_error("help: unexpected argument '%s' (see teepy --help)", argv[2]);
		return TP_EXIT_USAGE;
	}
	if (strcmp(argv[1], "exit-codes") == 0) {
		tp_exit_codes_print_list(stdout);
		return TP_EXIT_OK;
	}
	if (strcmp(argv[1], "flags") == 0) {
		tp_flags_print_list(stdout, "teepy", flags);
		for (c = commands; c->name; c++)
			if (c->help && find_command(c->name) == c)
				tp_flags_print_list(stdout, c->name, c->help->flags);
		return TP_EXIT_OK;
	}
	c = find_command(argv[1]);
	if (!c || !c->help) {
		tp_error("help: unknown topic '%s' (a command, exit-codes or flags)", argv[1]);
		return TP_EXIT_USAGE;
	}
	tp_help_print(stdout, c->help);
	return TP_EXIT_OK;
}

/* fds 0-2 must be taken: if one is closed, the first file or socket teepy opens
 * would become stdout, and a result would go into it. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int null_fd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (null_fd >= 0 && null_fd != fd) {
			dup2(null_fd, fd);
			close(null_fd);
		}
	}
}

int main(int argc, char **argv)
{
	ensure_std_fds();
	if (argc < 2) {
		tp_help_print(stderr, &help);
		return TP_EXIT_USAGE;
	}
	if (argv[1][0] == '-' && strcmp(argv[1], "--") != 0) {
		struct tp_flag_parser p;
		char err[256];
		int r;

		if (tp_flags_start(&p, NULL, flags, NULL, 2, argv) < 0)
			return TP_EXIT_INTERNAL;
		r = tp_flags_next(&p, err, sizeof(err));
		if (r < 0) {
			tp_error("%s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_FLAG && p.flag->id == MAIN_HELP) {
			tp_help_print(stdout, &help);
			return TP_EXIT_OK;
		}
		if (r == TP_FLAGS_FLAG && p.flag->id == MAIN_VERSION) {
			int abi = tp_landlock_abi();
			const struct tp_engine_build *pypy = tp_engine_built(TP_ENGINE_PYPY);
			char also[192] = "";
			if (pypy)
				snprintf(also, sizeof(also), "; --engine %s runs %s, %s, Python %s",
					 pypy->word, pypy->exe, pypy->release, pypy->version);
			printf("teepy %s (runs %s, Python %s%s; Landlock ABI %d%s)\n", TP_VERSION,
			       TP_PYTHON_EXE, TP_PYTHON_VERSION, also, abi > 0 ? abi : 0,
			       TP_LANDLOCK_ABI_MAX > 0 ? ", capped by the build" : "");
			return TP_EXIT_OK;
		}
	}
	const struct tp_command *c = find_command(argv[1]);
	if (c)
		return c->main(argc - 1, argv + 1);
	tp_error("unknown command '%s' (see teepy --help)", argv[1]);
	return TP_EXIT_USAGE;
}
