/* `teepy platform init [--force]`: this host's platform key, which signs its sim
 * evidence (Ed25519, PEM, 0600); `teepy platform show`: where it is and its public
 * key, for a policy to list. Root's key is the host's (/var/lib/teepy), a user's is
 * that user's ($XDG_DATA_HOME/teepy): docs/cas.md, "Who holds the platform key". */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOT_DIR "/var/lib/teepy"

enum platform_flag { PLATFORM_HELP = 1, PLATFORM_FORCE, PLATFORM_KEY };

static const struct tp_flag flags[] = {
	{ PLATFORM_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ PLATFORM_FORCE, "force", 0, NULL, NULL,
	  "init: replace the key there is (evidence it signed no longer verifies against a "
	  "policy listing the new one)" },
	{ PLATFORM_KEY, "key", 0, "KEY", "TEEPY_PLATFORM_KEY",
	  "the platform key's path instead of the default (root: " ROOT_DIR
	  "/platform.key; a user: $XDG_DATA_HOME/teepy/platform.key)" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "made (init) or printed (show)" },
	{ TP_EXIT_USAGE, "usage error; init: the key exists (without --force) or cannot be "
			 "written" },
	{ TP_EXIT_KEY_MISSING, "show: there is no platform key (teepy platform init)" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded" },
	{ 0, NULL },
};

const struct tp_command_help tp_platform_help = {
	.name = "platform",
	.synopsis = "init [--force] [--key KEY]\n"
		    "show [--key KEY]",
	.about =
	    "sim mode's platform key: `init` makes it (Ed25519, PEM, mode 0600, with its .pub),\n"
	    "`show` prints where it is, its public key and its fingerprint (SHA-256 of the raw\n"
	    "key), for a policy that tolerates sim evidence to list. Root's key is the host's\n"
	    "(" ROOT_DIR "/platform.key); a user's is their own\n"
	    "($XDG_DATA_HOME/teepy/platform.key, default ~/.local/share/teepy). SIMULATION: sim\n"
	    "evidence proves only that a holder of the key signed it, and root on this host can\n"
	    "read every key: see docs/cas.md, \"Producing evidence\".\n",
	.flags = flags,
	.exits = exits,
};

int tp_platform_key_path(const char *given, char *out, size_t size, char *err, size_t err_size)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	int n;

	if (given && *given)
		n = snprintf(out, size, "%s", given);
	else if (geteuid() == 0)
		n = snprintf(out, size, "%s/platform.key", ROOT_DIR);
	else if (xdg && xdg[0] == '/') /* the XDG spec: a relative path is ignored */
		n = snprintf(out, size, "%s/teepy/platform.key", xdg);
	else if (home && home[0] == '/')
		n = snprintf(out, size, "%s/.local/share/teepy/platform.key", home);
	else {
		snprintf(err, err_size,
			 "no HOME or XDG_DATA_HOME to keep a platform key in (give --key KEY)");
		return -ENOENT;
	}
	if (n < 0 || (size_t)n >= size) {
		snprintf(err, err_size, "the platform key's path is too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* The directories above the default key, made as they are missing: root's
 * readable by all (the .pub is for anyone), a user's their own. */
static int make_dirs(const char *key, mode_t mode)
{
	char path[PATH_MAX];
	char *slash;

	snprintf(path, sizeof(path), "%s", key);
	if (!(slash = strrchr(path, '/')) || slash == path)
		return 0;
	*slash = '\0';
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(path, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* The three lines init and show print. Returns 0 or -errno (with err). */
static int print_key(const char *key, const char *pub, char *err, size_t err_size)
{
	uint8_t raw[TP_ED25519_PUB_SIZE], fp[TP_SHA256_SIZE];
	char hex[2 * TP_SHA256_SIZE + 1];
	int r;

	if ((r = tp_key_read_public(pub, raw, err, err_size)) < 0)
		return r;
	tp_sha256(raw, sizeof(raw), fp);
	printf("key           %s (private, 0600: signs this host's sim evidence)\n", key);
	printf("pub           %s\n", pub);
	tp_hex(raw, sizeof(raw), hex);
	printf("public        %s\n", hex);
	tp_hex(fp, sizeof(fp), hex);
	printf("fingerprint   sha256:%s\n", hex);
	return 0;
}

static int init(const char *key, const char *pub, bool by_default, bool force)
{
	char err[512];
	int r;

	if (!force && (access(key, F_OK) == 0 || access(pub, F_OK) == 0)) {
		tp_error("platform init: %s already exists (teepy platform show prints it; "
			 "--force makes a new one)",
			 access(key, F_OK) == 0 ? key : pub);
		return TP_EXIT_USAGE;
	}
	if (by_default && (r = make_dirs(key, geteuid() == 0 ? 0755 : 0700)) < 0) {
		tp_error("platform init: cannot make the directory of %s: %s", key, strerror(-r));
		return TP_EXIT_USAGE;
	}
	if (force &&
	    ((unlink(key) < 0 && errno != ENOENT) || (unlink(pub) < 0 && errno != ENOENT))) {
		tp_error("platform init: cannot replace %s: %s", key, strerror(errno));
		return TP_EXIT_USAGE;
	}
	if ((r = tp_key_generate(key, pub)) < 0) {
		tp_error("platform init: cannot write %s: %s", key, strerror(-r));
		return TP_EXIT_USAGE;
	}
	if (print_key(key, pub, err, sizeof(err)) < 0) {
		tp_error("platform init: %s: %s", pub, err);
		return TP_EXIT_INTERNAL;
	}
	tp_info("platform init: sim evidence signed with this key is SIMULATION: it proves only "
		"that a holder of the key signed it (root on this host can read it)");
	return TP_EXIT_OK;
}

static int show(const char *key, const char *pub)
{
	char err[512];

	if (access(key, F_OK) < 0 && access(pub, F_OK) < 0) {
		tp_error("platform show: no platform key at %s (make one: teepy platform init)",
			 key);
		return TP_EXIT_KEY_MISSING;
	}
	if (print_key(key, pub, err, sizeof(err)) < 0) {
		tp_error("platform show: %s: %s", pub, err);
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}

int tp_cmd_platform(int argc, char **argv)
{
	const char *action = NULL, *given = NULL;
	char key[PATH_MAX], pub[PATH_MAX], err[PATH_MAX + 128];
	struct tp_flag_parser p;
	bool force = false;
	int r;

	if (tp_flags_start(&p, "platform", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("platform: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (action) {
				tp_error("platform: unexpected argument '%s' (see teepy platform "
					 "--help)",
					 p.value);
				return TP_EXIT_USAGE;
			}
			action = p.value;
			continue;
		}
		switch (p.flag->id) {
		case PLATFORM_HELP:
			tp_help_print(stdout, &tp_platform_help);
			return TP_EXIT_OK;
		case PLATFORM_FORCE:
			force = true;
			break;
		case PLATFORM_KEY:
			given = p.value;
			break;
		}
	}
	if (!given)
		given = getenv("TEEPY_PLATFORM_KEY");
	if (p.dashdash) {
		tp_error("platform: unexpected argument '--' (see teepy platform --help)");
		return TP_EXIT_USAGE;
	}
	if (!action || (strcmp(action, "init") != 0 && strcmp(action, "show") != 0)) {
		tp_error("platform: %s%s%s (init or show; see teepy platform --help)",
			 action ? "unknown action '" : "missing init or show", action ? action : "",
			 action ? "'" : "");
		return TP_EXIT_USAGE;
	}
	if (force && strcmp(action, "init") != 0) {
		tp_error("platform show: --force is for init");
		return TP_EXIT_USAGE;
	}
	if (tp_platform_key_path(given, key, sizeof(key), err, sizeof(err)) < 0) {
		tp_error("platform %s: %s", action, err);
		return TP_EXIT_USAGE;
	}
	tp_keygen_pub_path(key, pub, sizeof(pub));
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("platform %s: %s", action, err);
		return TP_EXIT_INTERNAL;
	}
	if (strcmp(action, "init") == 0)
		return init(key, pub, !given || !*given, force);
	return show(key, pub);
}
