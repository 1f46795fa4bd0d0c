/* `teepy cas`, `teepy serve` and `teepy shell`: the CAS server, the worker and the
 * shell are programs of their own, teepy-cas, teepy-worker and teepy-shell, which
 * these execute. libmicrohttpd (with GnuTLS and a dozen more) and SQLite are then
 * mapped by the servers alone: linked into teepy they cost every `teepy run` about
 * 7 ms of its start (bench/RESULTS.md); the shell's line editor, libedit, brings
 * four libraries (about 0.15 ms each). */
#include "commands.h"

#include "cas_help.h"
#include "exit_codes.h"
#include "serve_help.h"
#include "shell_help.h"
#include "../common/log.h"
#include "../manifest/trust.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* Executes program (found beside teepy or installed) with argv, whose argv[0] is the
 * command's name, cmd, as the program takes it; what names the program in messages.
 * Returns only on failure, having said why. */
static int exec_program(const char *cmd, const char *program, const char *what, char **argv)
{
	char path[PATH_MAX];

	if (tp_find_beside(program, path, sizeof(path)) < 0) {
		tp_error("%s: %s, %s, is neither beside teepy nor installed", cmd, program, what);
		return TP_EXIT_INTERNAL;
	}
	execv(path, argv);
	tp_error("%s: cannot run %s: %s", cmd, path, strerror(errno));
	return TP_EXIT_INTERNAL;
}

int tp_cmd_cas(int argc, char **argv)
{
	(void)argc;
	return exec_program("cas", TP_CAS_PROGRAM, "the CAS server", argv);
}

int tp_cmd_serve(int argc, char **argv)
{
	(void)argc;
	return exec_program("serve", TP_WORKER_PROGRAM, "the worker", argv);
}

int tp_cmd_shell(int argc, char **argv)
{
	(void)argc;
	return exec_program("shell", TP_SHELL_PROGRAM, "the shell", argv);
}
