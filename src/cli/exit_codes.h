/* Exit codes of teepy. Each one's name and meaning are in the table in
 * exit_codes.c, from which --help, `teepy help exit-codes` and the tests read them;
 * docs/cli.md and the README are checked against it. */
#ifndef TEEPY_CLI_EXIT_CODES_H
#define TEEPY_CLI_EXIT_CODES_H

#include <stdio.h>

enum tp_exit {
	TP_EXIT_OK = 0,
	TP_EXIT_SERVICE_FAILED = 1,
	TP_EXIT_USAGE = 2,
	TP_EXIT_NO_RESULT = 3,
	TP_EXIT_RULE = 4,
	TP_EXIT_MEMORY = 5,
	TP_EXIT_CPU = 6,
	TP_EXIT_TIMEOUT = 7,
	TP_EXIT_BUNDLE = 8,
	TP_EXIT_DATA_REFUSED = 9,
	TP_EXIT_KEY_MISSING = 10,
	TP_EXIT_ATTESTATION_DENIED = 11,
	TP_EXIT_INTERNAL = 70,
	TP_EXIT_INTERRUPTED = 130,
};

struct tp_exit_code {
	int code;
	const char *name; /* the enum's name without TP_EXIT_: "BUNDLE" */
	const char *meaning;
};

/* Every exit code, by code; ends with name NULL. */
extern const struct tp_exit_code tp_exit_codes[];

/* The entry of CODE, or NULL for a code teepy does not use. */
const struct tp_exit_code *tp_exit_code_find(int code);

/* "8 BUNDLE bundle refused: ..." for each code, one a line, for scripts and tests. */
void tp_exit_codes_print_list(FILE *f);

#endif
