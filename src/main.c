/* teepy: run Python services sealed. Dispatches to one command per file in cli/. */
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: teepy <command> [options]\n"
	"\n"
	"Commands:\n"
	"  run SCRIPT.py   run a service in the sandbox (teepy run --help)\n"
	"  run APP.tpy     run a sealed bundle (--trust PUB)\n"
	"  build SCRIPT.py trace a sample run into a signed bundle (teepy build --help)\n"
	"  inspect APP.tpy measurements, signer, policy and files of a bundle\n"
	"  keygen -o KEY   a new Ed25519 signing key and its .pub\n"
	"\n"
	"Options:\n"
	"  -h, --help      show this help\n"
	"  --version       show the version and the Python it runs\n";

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
		fputs(usage, stderr);
		return TP_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return TP_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("teepy %s (runs %s, Python %s)\n", TP_VERSION, TP_PYTHON_EXE, TP_PYTHON_VERSION);
		return TP_EXIT_OK;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} commands[] = {
		{ "run", tp_cmd_run },
		{ "build", tp_cmd_build },
		{ "inspect", tp_cmd_inspect },
		{ "keygen", tp_cmd_keygen },
	};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	tp_error("unknown command '%s' (see teepy --help)", argv[1]);
	return TP_EXIT_USAGE;
}
