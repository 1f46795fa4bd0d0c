/* `teepy keygen -o signer.key`: a new Ed25519 signing key (PEM, 0600) and
 * signer.pub beside it. */
#include "commands.h"

#include "exit_codes.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: teepy keygen -o KEY [--pub PUB]\n"
	"\n"
	"Writes a new Ed25519 signing key to KEY (PEM, mode 0600) and its public key to\n"
	"PUB (default: KEY with .key replaced by .pub, else KEY.pub). Refuses to overwrite\n"
	"either (exit 2). Give PUB to whoever runs your bundles: teepy run app.tpy --trust PUB.\n"
	"\n"
	"Options:\n"
	"  -h, --help          show this help\n"
	"  -o, --output KEY    where to write the private key (required)\n"
	"  --pub PUB           where to write the public key\n"
	"\n"
	"Exit codes: 0 written; 2 usage error, or KEY or PUB exists or cannot be written;\n"
	"70 OpenSSL's libcrypto cannot be loaded.\n";

int tp_cmd_keygen(int argc, char **argv)
{
	const char *out = NULL, *pub = NULL;
	char pub_buf[PATH_MAX];
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return TP_EXIT_OK;
		} else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
			out = argv[++i];
		} else if (strcmp(argv[i], "--pub") == 0 && i + 1 < argc) {
			pub = argv[++i];
		} else {
			tp_error("keygen: unexpected argument '%s' (see teepy keygen --help)", argv[i]);
			return TP_EXIT_USAGE;
		}
	}
	if (!out || !*out) {
		tp_error("keygen: missing -o KEY (see teepy keygen --help)");
		return TP_EXIT_USAGE;
	}
	if (!pub) {
		size_t len = strlen(out);
		if (len > 4 && strcmp(out + len - 4, ".key") == 0)
			snprintf(pub_buf, sizeof(pub_buf), "%.*s.pub", (int)(len - 4), out);
		else
			snprintf(pub_buf, sizeof(pub_buf), "%s.pub", out);
		pub = pub_buf;
	}
	char err[256];
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
	fprintf(stderr, "teepy: wrote %s (private, 0600) and %s (public)\n", out, pub);
	return TP_EXIT_OK;
}
