/* `teepy keygen -o signer.key`: a new Ed25519 signing key (PEM, 0600) and
 * signer.pub beside it; `teepy keygen --symmetric -o vol.key`: a new 256-bit
 * encryption key (0600). */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

enum keygen_flag { KEYGEN_HELP = 1, KEYGEN_OUTPUT, KEYGEN_PUB, KEYGEN_SYMMETRIC };

static const struct tp_flag flags[] = {
	{ KEYGEN_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ KEYGEN_OUTPUT, "output", 'o', "KEY", NULL, "where to write the private key (required)" },
	{ KEYGEN_PUB, "pub", 0, "PUB", NULL, "where to write the public key" },
	{ KEYGEN_SYMMETRIC, "symmetric", 0, NULL, NULL,
	  "a random 256-bit encryption key (bundle, data or volume key) instead: KEY only, "
	  "no public half" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "written" },
	{ TP_EXIT_USAGE, "usage error, or KEY or PUB exists or cannot be written" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded, or no random bytes" },
	{ 0, NULL },
};

const struct tp_command_help tp_keygen_help = {
	.name = "keygen",
	.synopsis = "-o KEY [--pub PUB]\n"
		    "--symmetric -o KEY",
	.about =
	    "Writes a new Ed25519 signing key to KEY (PEM, mode 0600) and its public key to\n"
	    "PUB (default: KEY with .key replaced by .pub, else KEY.pub). Refuses to overwrite\n"
	    "either. Give PUB to whoever runs your bundles: teepy run app.tpy --trust PUB.\n"
	    "\n"
	    "With --symmetric, writes a random 256-bit key to KEY (mode 0600), for\n"
	    "encryption: teepy data seal --data-key KEY, and the bundle and volume keys.\n"
	    "Whoever holds it can read what it seals: give it only to who must.\n",
	.flags = flags,
	.exits = exits,
};

static int symmetric_key(const char *out, const char *pub)
{
	int r;

	if (pub) {
		tp_error("keygen: --pub has no use with --symmetric (a symmetric key has no "
			 "public half)");
		return TP_EXIT_USAGE;
	}
	tp_secret_no_core(true); /* the key passes through this process's memory */
	r = tp_symkey_generate(out);
	if (r == -EEXIST) {
		tp_error("keygen: %s already exists; teepy never overwrites a key", out);
		return TP_EXIT_USAGE;
	}
	if (r < 0) {
		tp_error("keygen: cannot write %s: %s", out, strerror(-r));
		return r == -ENOSYS || r == -EIO ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
	}
	tp_info("wrote %s (a 256-bit symmetric key, 0600)", out);
	return TP_EXIT_OK;
}

void tp_keygen_pub_path(const char *key, char *out, size_t size)
{
	size_t len = strlen(key);

	if (len > 4 && strcmp(key + len - 4, ".key") == 0)
		snprintf(out, size, "%.*s.pub", (int)(len - 4), key);
	else
		snprintf(out, size, "%s.pub", key);
}

int tp_cmd_keygen(int argc, char **argv)
{
	const char *out = NULL, *pub = NULL;
	bool symmetric = false;
	char pub_buf[PATH_MAX], err[256];
	struct tp_flag_parser p;
	int r;

	if (tp_flags_start(&p, "keygen", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("keygen: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			tp_error("keygen: unexpected argument '%s' (see teepy keygen --help)",
				 p.value);
			return TP_EXIT_USAGE;
		}
		switch (p.flag->id) {
		case KEYGEN_HELP:
			tp_help_print(stdout, &tp_keygen_help);
			return TP_EXIT_OK;
		case KEYGEN_OUTPUT:
			out = p.value;
			break;
		case KEYGEN_PUB:
			pub = p.value;
			break;
		case KEYGEN_SYMMETRIC:
			symmetric = true;
			break;
		}
	}
	if (p.dashdash) {
		tp_error("keygen: unexpected argument '--' (see teepy keygen --help)");
		return TP_EXIT_USAGE;
	}
	if (!out || !*out) {
		tp_error("keygen: missing -o KEY (see teepy keygen --help)");
		return TP_EXIT_USAGE;
	}
	if (symmetric)
		return symmetric_key(out, pub);
	if (!pub) {
		tp_keygen_pub_path(out, pub_buf, sizeof(pub_buf));
		pub = pub_buf;
	}
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("keygen: %s", err);
		return TP_EXIT_INTERNAL;
	}
	r = tp_key_generate(out, pub);
	if (r == -EEXIST) {
		tp_error("keygen: %s or %s already exists; teepy never overwrites a key", out, pub);
		return TP_EXIT_USAGE;
	}
	if (r < 0) {
		tp_error("keygen: cannot write %s: %s", out, strerror(-r));
		return TP_EXIT_USAGE;
	}
	tp_info("wrote %s (private, 0600) and %s (public)", out, pub);
	return TP_EXIT_OK;
}
