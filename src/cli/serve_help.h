/* teepy serve's flags and help: in teepy, which lists them, and in teepy-worker,
 * which parses them (without the worker's libraries in teepy). */
#ifndef TEEPY_CLI_SERVE_HELP_H
#define TEEPY_CLI_SERVE_HELP_H

#include "flags.h"

/* the worker program `teepy serve` executes, beside teepy or in the install directory */
#define TP_WORKER_PROGRAM "teepy-worker"

enum serve_flag {
	SERVE_HELP = 1,
	SERVE_LISTEN,
	SERVE_STORE,
	SERVE_TRUST,
	SERVE_CAS,
	SERVE_CAS_FINGERPRINT,
	SERVE_CONCURRENCY,
	SERVE_QUEUE,
	SERVE_INVOKE_TIMEOUT,
	SERVE_TIMEOUT,
	SERVE_MAX_REQUEST,
	SERVE_MAX_UPLOAD,
	SERVE_MAX_RESULT,
	SERVE_ZYGOTES,
	SERVE_ZYGOTE_POOL,
	SERVE_ZYGOTE_IDLE,
	SERVE_MODE,
};

extern const struct tp_flag tp_serve_flags[];

/* teepy-worker's main: what `teepy serve ARGS` runs, argv[0] "serve" (cli/serve.c) */
int tp_serve_main(int argc, char **argv);

#endif
