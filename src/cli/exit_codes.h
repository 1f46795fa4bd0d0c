/* Exit codes of teepy, documented in docs/cli.md and the README. */
#ifndef TEEPY_CLI_EXIT_CODES_H
#define TEEPY_CLI_EXIT_CODES_H

enum tp_exit {
	TP_EXIT_OK = 0,            /* the service returned a result and ended normally */
	TP_EXIT_SERVICE_FAILED = 1, /* uncaught exception, syntax error, non-zero exit, crash */
	TP_EXIT_USAGE = 2,         /* bad flag, value or input file */
	TP_EXIT_NO_RESULT = 3,     /* ended without TEEX_return */
	TP_EXIT_RULE = 4,          /* killed for a rule */
	TP_EXIT_MEMORY = 5,        /* memory limit exceeded */
	TP_EXIT_CPU = 6,           /* CPU time limit exceeded */
	TP_EXIT_TIMEOUT = 7,       /* wall-clock timeout */
	TP_EXIT_BUNDLE = 8,        /* bundle refused: malformed, bad signature, untrusted signer, a file changed */
	TP_EXIT_INTERNAL = 70,     /* teepy could not do its part */
	TP_EXIT_INTERRUPTED = 130, /* teepy itself was interrupted (SIGINT, SIGTERM) */
};

#endif
