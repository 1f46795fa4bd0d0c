/* `teepy volume ls|cat`: an output volume (teepy run --output-volume) read with its
 * key: its index checked first, each file against the index, every chunk of a file
 * before any of its plaintext is written (docs/protected-files.md). */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/term.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../pfs/pfs.h"
#include "../pfs/volume.h"
#include "../runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

enum volume_flag { VOLUME_HELP = 1, VOLUME_KEY, VOLUME_EXPECT, VOLUME_JSON };

static const struct tp_flag flags[] = {
	{ VOLUME_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ VOLUME_KEY, "volume-key", 0, "KEY", NULL,
	  "the key the volume was sealed with (teepy run --volume-key)" },
	{ VOLUME_EXPECT, "expect-version", 0, "N", NULL,
	  "refuse the volume unless it is at version N (an older state put back is refused)" },
	{ VOLUME_JSON, "json", 0, NULL, NULL,
	  "ls: print {\"version\", \"volume_id\", \"files\": [{\"name\", \"size\", \"id\"}]}" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "listed, or the file written" },
	{ TP_EXIT_USAGE, "usage error; DIR holds no volume; cat: no such file in the volume, or "
			 "stdout cannot be written" },
	{ TP_EXIT_DATA_REFUSED,
	  "the volume is refused: its index or a file changed, a file missing or another "
	  "file in its place, another key, or not at --expect-version's version (the line "
	  "says which); cat writes nothing of a file that does not authenticate whole" },
	{ TP_EXIT_KEY_MISSING, "no --volume-key" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto cannot be loaded, or out of memory" },
	{ 0, NULL },
};

const struct tp_command_help tp_volume_help = {
	.name = "volume",
	.synopsis = "ls DIR --volume-key KEY [--expect-version N] [--json]\n"
		    "cat DIR NAME --volume-key KEY [--expect-version N]",
	.about = "An output volume: the files a service wrote into /out, sealed by\n"
		 "teepy run --output-volume DIR --volume-key KEY when it ended normally. Each\n"
		 "run that publishes makes the next version. ls checks the index (its MAC, under\n"
		 "the key) and each file's header against it, then prints `version N` and a\n"
		 "line `SIZE NAME` per file. cat writes NAME's plaintext to stdout once every\n"
		 "chunk of it has authenticated. Names and sizes are readable in the index by\n"
		 "whoever holds the key; contents are AES-256-GCM (docs/protected-files.md).\n",
	.flags = flags,
	.exits = exits,
};

struct volume_cmd {
	const char *action, *dir, *name, *key_path;
	bool json, expect_given;
	uint64_t expect;
	uint8_t *key;
	int dir_fd;
	struct tp_volume_index ix;
};

static int refused(const struct volume_cmd *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refused(const struct volume_cmd *c, int code, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tp_error("volume %s: %s: %s%s", c->action, c->dir,
		 code == TP_EXIT_DATA_REFUSED ? "refused: " : "", line);
	return code;
}

/* The index, checked under the key and against --expect-version. */
static int open_volume(struct volume_cmd *c)
{
	char err[512];
	int r;

	/* a shared lock: a run publishing the next version exchanges the directory and
	 * removes the old one under an exclusive lock of it; the directory locked must
	 * still be the volume's (a reader that waited for an old one goes again) */
	for (int tries = 0;; tries++) {
		struct stat held, named;
		if ((c->dir_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return refused(c, TP_EXIT_USAGE, "%s", strerror(errno));
		while (flock(c->dir_fd, LOCK_SH) < 0 && errno == EINTR)
			;
		if (fstat(c->dir_fd, &held) == 0 && stat(c->dir, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			break;
		close(c->dir_fd);
		c->dir_fd = -1;
		if (tries == 10)
			return refused(c, TP_EXIT_USAGE, "replaced again and again while read");
	}
	r = tp_volume_read_index(c->dir_fd, c->key, &c->ix, err, sizeof(err));
	if (r == -ENOENT)
		return refused(c, TP_EXIT_USAGE, "no output volume here (no %s)",
			       TP_VOLUME_INDEX_FILE);
	if (r == -EKEYREJECTED)
		return refused(c, TP_EXIT_DATA_REFUSED,
			       "%s (is --volume-key the key it was sealed with?)", err);
	if (tp_pfs_refused(r))
		return refused(c, TP_EXIT_DATA_REFUSED, "%s", err);
	if (r < 0)
		return refused(c, r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE, "%s", err);
	if (c->expect_given && c->ix.version != c->expect)
		return refused(c, TP_EXIT_DATA_REFUSED,
			       "the volume is at version %llu, not %llu (--expect-version)",
			       (unsigned long long)c->ix.version, (unsigned long long)c->expect);
	return 0;
}

/* A file of the volume, refused as the volume is. Returns an exit code or 0. */
static int open_entry(const struct volume_cmd *c, const struct tp_volume_entry *e, int *fd,
		      struct tp_pfs_reader **rd)
{
	char err[TP_VOLUME_NAME_MAX + 512], shown[4 * sizeof(err)];
	int r = tp_volume_open_file(c->dir_fd, c->key, e, fd, rd, err, sizeof(err));

	if (r == 0)
		return 0;
	tp_term_escape_line(err, false, shown, sizeof(shown));
	if (tp_pfs_host_failed(r) || r == -ENOMEM)
		return refused(c, TP_EXIT_INTERNAL, "%s", shown);
	if (tp_pfs_refused(r) || r == -ENOENT)
		return refused(c, TP_EXIT_DATA_REFUSED, "%s", shown);
	return refused(c, TP_EXIT_USAGE, "%s", shown);
}

static int list(struct volume_cmd *c)
{
	char hex[2 * TP_PFS_ID_SIZE + 1];
	int code;

	/* every file against the index before a line is printed */
	for (size_t i = 0; i < c->ix.count; i++) {
		struct tp_pfs_reader *rd = NULL;
		int fd = -1;
		if ((code = open_entry(c, &c->ix.entries[i], &fd, &rd)) != 0)
			return code;
		tp_pfs_reader_free(rd);
		close(fd);
	}
	if (!c->json) {
		printf("version %llu\n", (unsigned long long)c->ix.version);
		for (size_t i = 0; i < c->ix.count; i++) {
			char shown[4 * TP_VOLUME_NAME_MAX + 8];
			printf("%llu %s\n", (unsigned long long)c->ix.entries[i].size,
			       tp_term_escape_line(c->ix.entries[i].name, false, shown,
						   sizeof(shown)));
		}
		return fflush(stdout) == 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
	}
	json_t *root = json_object(), *files = json_array();
	tp_hex(c->ix.volume_id, TP_PFS_ID_SIZE, hex);
	json_object_set_new(root, "version", json_integer((json_int_t)c->ix.version));
	json_object_set_new(root, "volume_id", json_string(hex));
	for (size_t i = 0; i < c->ix.count; i++) {
		const struct tp_volume_entry *e = &c->ix.entries[i];
		json_t *f = json_object();
		json_t *name = json_string(e->name);
		/* a name that is no UTF-8 (the service's bytes): as hex, never mangled */
		if (name)
			json_object_set_new(f, "name", name);
		else {
			size_t len = strlen(e->name);
			char *h = malloc(2 * len + 1);
			if (h) {
				tp_hex((const uint8_t *)e->name, len, h);
				json_object_set_new(f, "name_hex", json_string(h));
				free(h);
			}
		}
		json_object_set_new(f, "size", json_integer((json_int_t)e->size));
		tp_hex(e->id, TP_PFS_ID_SIZE, hex);
		json_object_set_new(f, "id", json_string(hex));
		json_array_append_new(files, f);
	}
	json_object_set_new(root, "files", files);
	code = json_dumpf(root, stdout, JSON_INDENT(2)) == 0 && fputc('\n', stdout) != EOF &&
		       fflush(stdout) == 0 ?
		   TP_EXIT_OK :
		   TP_EXIT_USAGE;
	json_decref(root);
	return code;
}

static int cat(struct volume_cmd *c)
{
	const struct tp_volume_entry *e = NULL;
	struct tp_pfs_reader *rd = NULL;
	char err[512];
	int fd = -1, plain, code, r;

	for (size_t i = 0; !e && i < c->ix.count; i++)
		if (strcmp(c->ix.entries[i].name, c->name) == 0)
			e = &c->ix.entries[i];
	if (!e)
		return refused(c, TP_EXIT_USAGE,
			       "no file %s in the volume (teepy volume ls lists them)", c->name);
	if ((code = open_entry(c, e, &fd, &rd)) != 0)
		return code;
	flock(c->dir_fd, LOCK_UN); /* the file is open: a publish may remove its name */
	/* nothing is written before every chunk has authenticated */
	plain = tp_pfs_unseal_memfd(rd, err, sizeof(err));
	tp_pfs_reader_free(rd);
	close(fd);
	if (plain < 0)
		return refused(c, tp_pfs_refused(plain) ? TP_EXIT_DATA_REFUSED : TP_EXIT_INTERNAL,
			       "%s: %s", c->name, err);
	r = tp_copy_fd(plain, STDOUT_FILENO);
	close(plain);
	if (r < 0) {
		tp_error("volume cat: cannot write the plaintext: %s", strerror(-r));
		return TP_EXIT_USAGE;
	}
	return TP_EXIT_OK;
}

int tp_cmd_volume(int argc, char **argv)
{
	struct volume_cmd c = { .dir_fd = -1 };
	const char *operands[4] = { NULL };
	size_t count = 0;
	struct tp_flag_parser p;
	char err[PATH_MAX + 128];
	int r, code;

	if (tp_flags_start(&p, "volume", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("volume: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (count == 3) {
				tp_error(
				    "volume: unexpected argument '%s' (see teepy volume --help)",
				    p.value);
				return TP_EXIT_USAGE;
			}
			operands[count++] = p.value;
			continue;
		}
		switch (p.flag->id) {
		case VOLUME_HELP:
			tp_help_print(stdout, &tp_volume_help);
			return TP_EXIT_OK;
		case VOLUME_KEY:
			c.key_path = p.value;
			break;
		case VOLUME_EXPECT:
			if (tp_parse_count(p.value, &c.expect) < 0) {
				tp_error("volume: %s: '%s' is not a version (0, 1, 2 ...)", p.given,
					 p.value);
				return TP_EXIT_USAGE;
			}
			c.expect_given = true;
			break;
		case VOLUME_JSON:
			c.json = true;
			break;
		}
	}
	/* after "--", operands alone: a name that starts with a dash */
	for (int i = p.rest; p.dashdash && i < argc; i++) {
		if (count == 3) {
			tp_error("volume: unexpected argument '%s' (see teepy volume --help)",
				 argv[i]);
			return TP_EXIT_USAGE;
		}
		operands[count++] = argv[i];
	}
	c.action = operands[0];
	c.dir = operands[1];
	c.name = operands[2];
	if (!c.action || (strcmp(c.action, "ls") != 0 && strcmp(c.action, "cat") != 0)) {
		tp_error("volume: %s (use ls or cat; see teepy volume --help)",
			 c.action ? "unknown action" : "missing ls or cat");
		return TP_EXIT_USAGE;
	}
	bool is_cat = strcmp(c.action, "cat") == 0;
	if (!c.dir || !*c.dir || (is_cat && (!c.name || !*c.name))) {
		tp_error("volume %s: missing %s (see teepy volume --help)", c.action,
			 !c.dir || !*c.dir ? "DIR" : "NAME");
		return TP_EXIT_USAGE;
	}
	if (!is_cat && c.name) {
		tp_error("volume ls: unexpected argument '%s' (ls takes DIR alone)", c.name);
		return TP_EXIT_USAGE;
	}
	if (is_cat && c.json) {
		tp_error("volume cat: --json has no use here (cat writes the file's bytes)");
		return TP_EXIT_USAGE;
	}
	if (!c.key_path) {
		tp_error("volume %s: %s: a volume opens only with its key: --volume-key KEY (the "
			 "one teepy run --volume-key sealed it with)",
			 c.action, c.dir);
		return TP_EXIT_KEY_MISSING;
	}
	/* key material never reaches a core dump; the key's memory is locked and wiped */
	tp_secret_no_core(true);
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("volume %s: %s", c.action, err);
		return TP_EXIT_INTERNAL;
	}
	if (!(c.key = tp_secret_alloc(TP_SYMKEY_SIZE))) {
		tp_error("volume %s: out of memory", c.action);
		return TP_EXIT_INTERNAL;
	}
	if (tp_symkey_read(c.key_path, c.key, err, sizeof(err)) < 0) {
		tp_error("volume %s: --volume-key %s: %s", c.action, c.key_path, err);
		code = TP_EXIT_USAGE;
	} else if ((code = open_volume(&c)) == 0)
		code = is_cat ? cat(&c) : list(&c);
	tp_volume_index_free(&c.ix);
	if (c.dir_fd >= 0)
		close(c.dir_fd);
	tp_secret_free(c.key, TP_SYMKEY_SIZE);
	return code;
}
