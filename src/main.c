/* teepy: run Python services sealed. Dispatches to one command per file in cli/. */
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: teepy <command> [options]\n"
	"\n"
	"Commands:\n"
	"  run SCRIPT.py   run a service in the sandbox (teepy run --help)\n"
	"\n"
	"Options:\n"
	"  -h, --help      show this help\n"
	"  --version       show the version and the Python it runs\n";

int main(int argc, char **argv)
{
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
	if (strcmp(argv[1], "run") == 0)
		return tp_cmd_run(argc - 1, argv + 1);
	tp_error("unknown command '%s' (see teepy --help)", argv[1]);
	return TP_EXIT_USAGE;
}
