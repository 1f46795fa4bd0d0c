/* `teepy shell`'s help text (shell_help.h): teepy run's flags, its own words. */
#include "shell_help.h"

#include "commands.h"
#include "exit_codes.h"
#include "run_opts.h"

#include <stddef.h>

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "the session ended (Ctrl-D, exit() or exit(0)) without a result, or with "
		      "one (shown after it, or written to --output)" },
	{ TP_EXIT_SERVICE_FAILED, "the session ended with exit(N), N not 0" },
	{ TP_EXIT_USAGE, "usage error; no terminal on stdin and stdout; a script given (a "
			 "bundle may be)" },
	{ TP_EXIT_RULE, "killed for a rule (a forbidden system call, malformed frames)" },
	{ TP_EXIT_MEMORY, "the memory limit was exceeded" },
	{ TP_EXIT_CPU, "the CPU-time limit was exceeded (over the whole session)" },
	{ TP_EXIT_TIMEOUT, "the wall-clock limit was exceeded (only with --timeout)" },
	{ TP_EXIT_BUNDLE, "the bundle was refused, as teepy run refuses it (signer, a file "
			  "changed)" },
	{ TP_EXIT_DATA_REFUSED, "a sealed data item or the output volume was refused" },
	{ TP_EXIT_KEY_MISSING, "an encrypted bundle's key, a sealed data item's or the output "
			       "volume's is missing; --cas: the CAS cannot be reached or gave no "
			       "key" },
	{ TP_EXIT_ATTESTATION_DENIED, "--cas: the CAS denied the shell's keys (a debug run: the "
				      "policy must tolerate \"debug\")" },
	{ TP_EXIT_INTERNAL, "internal error" },
	{ TP_EXIT_INTERRUPTED, "stopped by SIGTERM or SIGHUP (Ctrl-C interrupts a statement)" },
	{ 0, NULL },
};

const struct tp_command_help tp_shell_help = {
	.name = "shell",
	.synopsis = "[OPTIONS] [APP.tpy]",
	.about =
	    "A Python prompt inside the sandbox teepy run gives a script: the same flags,\n"
	    "limits and rules (no network, no writes, no processes; only the stdlib and\n"
	    "allowed paths visible; no script directory: --pythonpath DIR to import from one).\n"
	    "`teex` is importable, with the --input and --data given. teepy keeps the\n"
	    "terminal and edits each line (history: Up, Down; Tab completes names and\n"
	    "attributes from inside, as python3's); the sandboxed interpreter never holds\n"
	    "it. Ctrl-C interrupts the running statement (KeyboardInterrupt) or\n"
	    "discards the line being typed; Ctrl-D on an empty line leaves. stdin and stdout\n"
	    "must be a terminal. The wall clock (--timeout) and the output cap (--log-max)\n"
	    "hold only when given; the CPU time limit holds for the whole session.\n"
	    "With a bundle, APP.tpy (--trust, --bundle-key as teepy run), the prompt is in\n"
	    "its sealed root, with its sys.path, and its entry does not run: a DEBUG run,\n"
	    "said in the banner, by --print-config and by its evidence (--cas: a CAS\n"
	    "releases keys to it only where the policy tolerates \"debug\").\n",
	.flags = tp_run_flags,
	.after = "The service's output is shown on stdout, the terminal (teepy's own lines stay\n"
		 "on stderr), escaped (--escape never: byte for byte), without the marks teepy\n"
		 "run puts before its lines. A result (teex.TEEX_return) goes to --output, else\n"
		 "it is shown, escaped, when the session ends.\n",
	.exits = exits,
};
