/* `teepy cas`: the CAS server is a program of its own, teepy-cas, which this
 * executes. libmicrohttpd (with GnuTLS and a dozen more) and SQLite are then mapped
 * by the server alone: linked into teepy they cost every `teepy run` about 7 ms of
 * its start (bench/RESULTS.md). */
#include "commands.h"

#include "cas_help.h"
#include "exit_codes.h"
#include "../common/log.h"
#include "../manifest/trust.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

int tp_cmd_cas(int argc, char **argv)
{
	char path[PATH_MAX];

	(void)argc;
	if (tp_find_beside(TP_CAS_PROGRAM, path, sizeof(path)) < 0) {
		tp_error("cas: %s, the CAS server, is neither beside teepy nor installed",
			 TP_CAS_PROGRAM);
		return TP_EXIT_INTERNAL;
	}
	execv(path, argv); /* argv[0] is "cas", as teepy-cas takes it */
	tp_error("cas: cannot run %s: %s", path, strerror(errno));
	return TP_EXIT_INTERNAL;
}
