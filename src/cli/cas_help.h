/* teepy cas's flags and help: in teepy, which lists them, and in teepy-cas, which
 * parses them (without the server's libraries in teepy). */
#ifndef TEEPY_CLI_CAS_HELP_H
#define TEEPY_CLI_CAS_HELP_H

#include "flags.h"

/* the server program `teepy cas` executes, beside teepy or in the install directory */
#define TP_CAS_PROGRAM "teepy-cas"

enum cas_flag {
	CAS_HELP = 1,
	CAS_LISTEN,
	CAS_DB,
	CAS_MASTER,
	CAS_TIMEOUT,
	CAS_NONCE_TTL,
	CAS_JSON,
	CAS_DENIED
};

extern const struct tp_flag tp_cas_flags[];

/* teepy-cas's main: what `teepy cas ARGS` runs, argv[0] "cas" (cli/cas.c) */
int tp_cas_main(int argc, char **argv);

#endif
