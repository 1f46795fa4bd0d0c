/* `teepy serve`: the worker is a program of its own, teepy-worker, which this
 * executes, so that libmicrohttpd and SQLite are mapped by the worker alone, never by
 * a `teepy run` (cas_exec.c says what that costs). */
#include "commands.h"

#include "exit_codes.h"
#include "serve_help.h"
#include "../common/log.h"
#include "../manifest/trust.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

int tp_cmd_serve(int argc, char **argv)
{
	char path[PATH_MAX];

	(void)argc;
	if (tp_find_beside(TP_WORKER_PROGRAM, path, sizeof(path)) < 0) {
		tp_error("serve: %s, the worker, is neither beside teepy nor installed",
			 TP_WORKER_PROGRAM);
		return TP_EXIT_INTERNAL;
	}
	execv(path, argv); /* argv[0] is "serve", as teepy-worker takes it */
	tp_error("serve: cannot run %s: %s", path, strerror(errno));
	return TP_EXIT_INTERNAL;
}
