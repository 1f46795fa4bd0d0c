/* teepy's exit codes, each with its name and meaning: the one record that --help,
 * `teepy help exit-codes` and the tests read. */
#include "exit_codes.h"

/* clang-format off */
#define EXIT(name, meaning) { TP_EXIT_##name, #name, meaning }
/* clang-format on */

/* A code nothing produces yet is "reserved for" what will: a later command that
 * needs it uses it, and no other code takes its number. */
const struct tp_exit_code tp_exit_codes[] = {
	EXIT(OK, "the service returned a result and ended normally; a server (--listen) stopped "
		 "by SIGINT, SIGTERM or SIGHUP, or ended without a result"),
	EXIT(SERVICE_FAILED,
	     "the service failed: uncaught exception (traceback on stderr), syntax error (one "
	     "line), non-zero exit, a crash (killed by a signal other than a limit's, e.g. "
	     "SIGSEGV), or a result cut short (the service ended while sending it)"),
	EXIT(USAGE, "usage error: bad flag or value (a value too large, or memory below the "
		    "32 MiB the interpreter needs once scratch and a bundle's files are taken "
		    "off), missing script, unreadable input or data file, input larger than the "
		    "memory limit, the script's arguments, paths and preload names more than "
		    "1 MiB together; a --listen address that cannot be bound (in use, a port "
		    "below 1024 without root) or a --listen-fd that is not a listening socket; "
		    "a server's bundle (network \"listen\") without a socket, or a socket for a "
		    "bundle without that policy"),
	EXIT(NO_RESULT, "the service ended without returning a result"),
	EXIT(RULE, "killed for a rule: a forbidden system call that the policy answers by "
		   "ending the service, a corrupted control channel, or a result larger than the "
		   "memory limit"),
	EXIT(MEMORY, "memory limit exceeded: killed by the cgroup, or without a cgroup a "
		     "MemoryError the service did not catch (with a cgroup, a MemoryError is the "
		     "service's own error)"),
	EXIT(CPU, "CPU time limit exceeded (all threads and processes together)"),
	EXIT(TIMEOUT, "wall-clock timeout"),
	EXIT(BUNDLE, "bundle refused: malformed, signature does not verify, untrusted signer, a "
		     "file changed, missing, unreadable or not a regular file, a system file "
		     "outside the system trees and not allowed (--allow)"),
	EXIT(DATA_REFUSED,
	     "a sealed data item or output volume refused: an item not sealed, sealed with "
	     "another key, or changed, truncated or extended (a run's --data and --task-data, "
	     "teepy data open and info); a volume sealed with another key, whose index or "
	     "files changed, or at another version than --expect-version (a run's "
	     "--output-volume, teepy volume)"),
	EXIT(KEY_MISSING, "a key is missing: an encrypted bundle without --bundle-key, a sealed "
			  "data item without --data-key, an output volume without --volume-key, "
			  "teepy data open or teepy volume without it, sim evidence or teepy "
			  "platform show without a platform key; teepy run --cas: the CAS cannot "
			  "be reached, its key is not the pinned one, it refused the request "
			  "otherwise than by a denial, its answer is malformed, or it gave no key "
			  "for a sealed item; an SEV-SNP report without its VCEK or AMD's chain "
			  "(the host gave none or a malformed table, and no --snp-vcek or "
			  "--snp-chain)"),
	EXIT(ATTESTATION_DENIED,
	     "attestation evidence refused: teepy attest verify found a TDX quote, SEV-SNP "
	     "report or sim evidence malformed, a signature or certificate chain that does not "
	     "verify, an untrusted platform key, claims not those expected or debug evidence "
	     "without --insecure-tolerate-debug; teepy run --cas: "
	     "the CAS denied the run (its reason on one line)"),
	EXIT(INTERNAL, "internal error: teepy could not set up the sandbox or write the result, "
		       "or OpenSSL's libcrypto (needed for a bundle) cannot be loaded (the line "
		       "says what failed)"),
	EXIT(INTERRUPTED, "teepy itself was interrupted (SIGINT, SIGTERM, SIGHUP); the service "
			  "was stopped"),
	{ 0, NULL, NULL },
};

const struct tp_exit_code *tp_exit_code_find(int code)
{
	for (const struct tp_exit_code *e = tp_exit_codes; e->name; e++)
		if (e->code == code)
			return e;
	return NULL;
}

void tp_exit_codes_print_list(FILE *f)
{
	for (const struct tp_exit_code *e = tp_exit_codes; e->name; e++)
		fprintf(f, "%d %s %s\n", e->code, e->name, e->meaning);
}
