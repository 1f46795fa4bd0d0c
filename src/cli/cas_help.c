/* `teepy cas`'s flags and help text (cas_help.h). */
#include "cas_help.h"

#include "commands.h"
#include "exit_codes.h"

#include <stddef.h>

const struct tp_flag tp_cas_flags[] = {
	{ CAS_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ CAS_LISTEN, "listen", 0, "ADDR:PORT", NULL,
	  "serve HTTPS on this numeric address and port ([::1]:8443 for IPv6; port 0: any free "
	  "one)" },
	{ CAS_DB, "db", 0, "FILE", NULL,
	  "the SQLite database (made at first start); DB.tls.key, DB.tls.crt and "
	  "DB.master.key are made beside it" },
	{ CAS_MASTER, "master-key", 0, "FILE", NULL,
	  "the master key that encrypts secrets at rest instead of DB.master.key (a teepy "
	  "keygen --symmetric key, mode 0600)" },
	{ CAS_TIMEOUT, "timeout", 0, "S", NULL,
	  "close a connection idle this many seconds (default 10)" },
	{ CAS_NONCE_TTL, "nonce-ttl", 0, "S", NULL,
	  "how many seconds a challenge's nonce is good for (default 60)" },
	{ CAS_JSON, "json", 0, NULL, NULL, "audit: the rows as a JSON array" },
	{ CAS_DENIED, "denied", 0, NULL, NULL, "audit: only denials and refusals" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "served until SIGINT or SIGTERM, then stopped cleanly; audit: printed" },
	{ TP_EXIT_USAGE, "usage error; the port is taken, the database cannot be opened, the "
			 "master key is missing or others may read it" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded, or the server did not start" },
	{ 0, NULL },
};

const struct tp_command_help tp_cas_help = {
	.name = "cas",
	.synopsis = "--listen ADDR:PORT --db FILE [--master-key FILE] [--timeout S]\n"
		    "audit --db FILE [--json] [--denied]",
	.about =
	    "The Configuration and Attestation Service: owners' policies and their secrets,\n"
	    "released sealed to a runtime whose evidence a policy accepts. HTTPS with TLS 1.3\n"
	    "only; its key is made at first start and its fingerprint printed, for clients to\n"
	    "pin. Secrets are encrypted at rest with the master key; root on the CAS host can\n"
	    "read that key. `audit` prints every decision, oldest first. See docs/cas.md,\n"
	    "\"The server\".\n",
	.flags = tp_cas_flags,
	.exits = exits,
};
