/* `teepy data seal|open|info`: a data provider's items as protected files
 * (docs/protected-files.md), each under its own key unless one is given. */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "worker_client.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../pfs/pfs.h"
#include "../runner/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum data_flag { DATA_HELP = 1, DATA_OUTPUT, DATA_KEY, DATA_WORKER };

static const struct tp_flag flags[] = {
	{ DATA_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ DATA_OUTPUT, "output", 'o', "FILE", NULL,
	  "seal: the sealed item (default: FILE.tpd); open: the plaintext (default: stdout)" },
	{ DATA_KEY, "data-key", 0, "KEY", NULL,
	  "the item's key, from teepy keygen --symmetric or an earlier seal (seal: default a "
	  "new key, written to OUTPUT.key)" },
	{ DATA_WORKER, "worker", 0, "URL", "TEEPY_WORKER",
	  "put: the worker (teepy serve): http://HOST:PORT" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "sealed, opened, or described" },
	{ TP_EXIT_USAGE, "usage error; a file that cannot be read or written, or that exists "
			 "already (teepy never overwrites one); put: the worker refused the item "
			 "(its words on one line) or cannot be reached" },
	{ TP_EXIT_DATA_REFUSED,
	  "the item is refused: not a sealed item, sealed with another key, or changed, "
	  "truncated or extended (the line says which); nothing of it is written; put: a "
	  "file that is not a sealed item, refused before anything is sent" },
	{ TP_EXIT_KEY_MISSING, "open without --data-key" },
	{ TP_EXIT_INTERNAL, "OpenSSL's libcrypto (or for put libcurl) cannot be loaded, or no "
			    "random bytes; put: the worker failed (HTTP 500)" },
	{ 0, NULL },
};

const struct tp_command_help tp_data_help = {
	.name = "data",
	.synopsis = "seal FILE [-o ITEM.tpd] [--data-key KEY]\n"
		    "open ITEM.tpd --data-key KEY [-o FILE]\n"
		    "info ITEM.tpd [--data-key KEY]\n"
		    "put ITEM.tpd --worker URL",
	.about = "A data provider's file as a sealed item: AES-256-GCM in chunks under a key of\n"
		 "the item's own (docs/protected-files.md). seal writes ITEM.tpd and, unless\n"
		 "--data-key names one, a new key ITEM.tpd.key (0600), and prints the item's id\n"
		 "on stdout. open checks every chunk and writes the plaintext only if all of\n"
		 "them authenticate. info shows the header (id, size, chunk size) without a key,\n"
		 "and with --data-key checks every chunk too. A run takes items with\n"
		 "teepy run --data ITEM.tpd --data-key KEY (TEEX_getdata returns the plaintext).\n"
		 "put uploads a sealed item as it is to a worker (teepy serve, docs/api.md) and\n"
		 "prints the id the worker knows it by, the SHA-256 of its bytes, for teepy\n"
		 "deploy --service-data and teepy invoke --task-data; the key is not sent.\n",
	.flags = flags,
	.exits = exits,
};

/* ---- files as the codec's callbacks ---- */

static int discard(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	(void)ctx, (void)offset, (void)buf, (void)size;
	return 0;
}

/* ---- a new file that appears whole or not at all ---- */

struct new_file {
	const char *path;
	char tmp[PATH_MAX];
	int fd;
};

/* An unnamed file in path's directory (O_TMPFILE), named path by new_file_publish.
 * Where the file system has no unnamed files, a hidden name beside it, but only
 * when named_ok: never for plaintext, which a killed teepy would leave there. */
static int new_file_open(struct new_file *f, const char *path, bool named_ok)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	f->path = path;
	f->tmp[0] = '\0';
	if (access(path, F_OK) == 0)
		return -EEXIST;
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
		 slash ? path : ".");
	f->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (f->fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return f->fd < 0 ? -errno : 0;
	if (!named_ok)
		return -EOPNOTSUPP;
	if ((size_t)snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.%d.tmp", dir, slash ? slash + 1 : path,
			     (int)getpid()) >= sizeof(f->tmp)) {
		f->tmp[0] = '\0';
		return -ENAMETOOLONG;
	}
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return f->fd < 0 ? -errno : 0;
}

static int new_file_publish(struct new_file *f, mode_t mode)
{
	char proc[64];
	int r = 0;

	if (fchmod(f->fd, mode) < 0 || fsync(f->fd) < 0)
		r = -errno;
	if (r == 0 && !f->tmp[0]) {
		/* by the descriptor itself where allowed (CAP_DAC_READ_SEARCH), else
		 * through /proc */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
		if (linkat(f->fd, "", AT_FDCWD, f->path, AT_EMPTY_PATH) < 0 &&
		    linkat(AT_FDCWD, proc, AT_FDCWD, f->path, AT_SYMLINK_FOLLOW) < 0)
			r = -errno;
	} else if (r == 0) {
		/* link, not rename: an existing path is never replaced */
		if (link(f->tmp, f->path) < 0)
			r = -errno;
		unlink(f->tmp);
	}
	close(f->fd);
	f->fd = -1;
	return r;
}

static void new_file_abandon(struct new_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp[0])
		unlink(f->tmp);
	f->fd = -1;
}

/* ---- the key ---- */

/* KEY's bytes into key (locked memory). Returns 0, or an exit code said. */
static int load_key(const char *action, const char *path, uint8_t *key)
{
	char err[PATH_MAX + 128];

	if (tp_symkey_read(path, key, err, sizeof(err)) < 0) {
		tp_error("data %s: --data-key %s: %s", action, path, err);
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* ---- the three actions ---- */

/* The permission bits a new file of this user gets (0666 less the umask). */
static mode_t new_file_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return 0666 & ~mask;
}

/* An input opened for reading: a regular file (a FIFO does not block the open).
 * Returns the fd, or -1 with the line said. */
static int open_input(const char *action, const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || fstat(fd, st) < 0) {
		tp_error("data %s: %s: %s", action, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		tp_error("data %s: %s: not a regular file", action, path);
		close(fd);
		return -1;
	}
	return fd;
}

/* The exit code of a codec failure that is not the file's fault. */
static int internal_or(int r, int code)
{
	return tp_pfs_host_failed(r) ? TP_EXIT_INTERNAL : code;
}

static int seal(const char *file, const char *out_arg, const char *key_path, uint8_t *key)
{
	char out[PATH_MAX], new_key[PATH_MAX + 8] = "", id_hex[2 * TP_PFS_ID_SIZE + 1];
	char err[256], size_text[32], extra;
	struct tp_pfs_header h = { .purpose = TP_PFS_DATA, .chunk_shift = TP_PFS_DEFAULT_SHIFT };
	struct new_file nf = { .fd = -1 };
	struct stat st, after;
	int in = -1, r, code = TP_EXIT_USAGE;

	snprintf(out, sizeof(out), "%s", out_arg ? out_arg : file);
	if (!out_arg && strlen(file) + 5 <= sizeof(out))
		strcat(out, ".tpd");
	if ((in = open_input("seal", file, &st)) < 0)
		goto out;
	h.size = (uint64_t)st.st_size;
	if (tp_random(h.id, sizeof(h.id)) < 0) {
		tp_error("data seal: no random bytes from the kernel: %s", strerror(errno));
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	if ((r = new_file_open(&nf, out, true)) < 0) {
		tp_error("data seal: %s: %s", out,
			 r == -EEXIST ? "exists already; teepy never overwrites a file" :
					strerror(-r));
		goto out;
	}
	if (key_path) {
		if ((code = load_key("seal", key_path, key)) != 0)
			goto out;
	} else {
		snprintf(new_key, sizeof(new_key), "%s.key", out);
		if ((r = tp_symkey_generate(new_key)) < 0) {
			tp_error("data seal: %s: %s", new_key,
				 r == -EEXIST ?
				     "exists already; teepy never overwrites a key (give "
				     "it with --data-key to seal under it)" :
				     strerror(-r));
			new_key[0] = '\0';
			goto out;
		}
		if ((code = load_key("seal", new_key, key)) != 0)
			goto out;
	}
	code = TP_EXIT_USAGE;
	if ((r = tp_pfs_seal(key, &h, tp_pread_fd, &in, tp_write_fd, &nf.fd, err, sizeof(err))) <
	    0) {
		tp_error("data seal: %s: %s", r == -ENODATA || r == -EIO ? file : out, err);
		code = internal_or(r, TP_EXIT_USAGE);
		goto out;
	}
	/* what was sealed is the whole file: it neither grew nor changed meanwhile */
	if (fstat(in, &after) < 0 || after.st_size != st.st_size ||
	    after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != st.st_mtim.tv_nsec || pread(in, &extra, 1, st.st_size) != 0) {
		tp_error("data seal: %s: changed while it was sealed; nothing written (seal it "
			 "again once it is complete)",
			 file);
		goto out;
	}
	if ((r = new_file_publish(&nf, new_file_mode())) < 0) {
		tp_error("data seal: %s: %s", out, strerror(-r));
		goto out;
	}
	tp_hex(h.id, sizeof(h.id), id_hex);
	printf("%s\n", id_hex);
	tp_info("sealed %s (%s) into %s, item id %.16s...; key %s%s", file,
		tp_format_size(h.size, size_text, sizeof(size_text)), out, id_hex,
		key_path ? key_path : new_key,
		key_path ? "" : " (new, 0600: give it only to who runs the service)");
	new_key[0] = '\0';
	code = TP_EXIT_OK;
out:
	new_file_abandon(&nf);
	if (new_key[0])
		unlink(new_key); /* a key for an item that was not sealed is of no use */
	if (in >= 0)
		close(in);
	return code;
}

/* The exit code of a sealed item's refusal (or of a failure that is not one). */
static int refusal_code(int r)
{
	/* a read error: as an unreadable file */
	return tp_pfs_refused(r) ? TP_EXIT_DATA_REFUSED : internal_or(r, TP_EXIT_USAGE);
}

static int say_refusal(const char *action, const char *path, int r, const char *err)
{
	int code = refusal_code(r);

	tp_error("data %s: %s: %s%s%s", action, path,
		 code == TP_EXIT_DATA_REFUSED ? "refused: " : "", err,
		 r == -EKEYREJECTED ? " (is --data-key the key it was sealed with?)" : "");
	return code;
}

/* The sealed item at path opened for reading: 0 with *fd and *rd, or an exit code said. */
static int open_item(const char *action, const char *path, const uint8_t *key, int *fd,
		     struct tp_pfs_reader **rd)
{
	char err[256];
	struct stat st;
	int r;

	if ((*fd = open_input(action, path, &st)) < 0)
		return TP_EXIT_USAGE;
	r = tp_pfs_reader_open(key, TP_PFS_DATA, tp_pread_fd, fd, (uint64_t)st.st_size, rd, err,
			       sizeof(err));
	return r < 0 ? say_refusal(action, path, r, err) : 0;
}

static int open_data(const char *path, const char *out, const uint8_t *key)
{
	struct new_file nf = { .fd = -1 };
	struct tp_pfs_reader *rd = NULL;
	struct stat st;
	char err[256];
	int fd = -1, plain = -1, code, r;

	if (!out) {
		/* to stdout, nothing is written before every chunk has authenticated: the
		 * plaintext is made whole in memory first (one pass over the item, so it
		 * cannot change between a check and the copy) */
		if ((fd = open_input("open", path, &st)) < 0)
			return TP_EXIT_USAGE;
		plain = tp_data_unseal(fd, (uint64_t)st.st_size, key, err, sizeof(err));
		close(fd);
		if (plain < 0)
			return say_refusal("open", path, plain, err);
		r = tp_copy_fd(plain, STDOUT_FILENO);
		close(plain);
		if (r < 0) {
			tp_error("data open: cannot write the plaintext: %s", strerror(-r));
			return TP_EXIT_USAGE;
		}
		return TP_EXIT_OK;
	}
	if ((code = open_item("open", path, key, &fd, &rd)) != 0)
		goto done;
	if ((r = new_file_open(&nf, out, false)) < 0) {
		tp_error("data open: %s: %s", out,
			 r == -EEXIST ? "exists already; teepy never overwrites a file" :
			 r == -EOPNOTSUPP ?
					"this file system makes no unnamed file (O_TMPFILE), and "
					"teepy names no file of plaintext before it is whole: "
					"write to stdout instead" :
					strerror(-r));
		code = TP_EXIT_USAGE;
		goto done;
	}
	/* an unnamed file: what a refused chunk leaves behind vanishes with it */
	if ((r = tp_pfs_open_all(rd, tp_write_fd, &nf.fd, err, sizeof(err))) < 0) {
		code = r == -EBADMSG || tp_pfs_host_failed(r) ? say_refusal("open", path, r, err) :
								TP_EXIT_USAGE;
		if (code == TP_EXIT_USAGE)
			tp_error("data open: %s: %s", out, err);
		goto done;
	}
	if ((r = new_file_publish(&nf, 0600)) < 0) {
		tp_error("data open: %s: %s", out, strerror(-r));
		code = TP_EXIT_USAGE;
		goto done;
	}
	code = TP_EXIT_OK;
done:
	new_file_abandon(&nf);
	tp_pfs_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return code;
}

static int info(const char *path, const uint8_t *key)
{
	uint8_t bytes[TP_PFS_HEADER_SIZE];
	struct tp_pfs_header h;
	struct tp_pfs_reader *rd = NULL;
	struct stat st;
	char err[256] = "", id_hex[2 * TP_PFS_ID_SIZE + 1], size_text[32], chunk_text[32];
	int fd = -1, code = TP_EXIT_USAGE, r;

	if (key) {
		if ((code = open_item("info", path, key, &fd, &rd)) != 0)
			goto done;
		if ((r = tp_pfs_open_all(rd, discard, NULL, err, sizeof(err))) < 0) {
			code = say_refusal("info", path, r, err);
			goto done;
		}
		h = *tp_pfs_reader_header(rd);
	} else {
		if ((fd = open_input("info", path, &st)) < 0)
			goto done;
		r = tp_pread_fd(&fd, 0, bytes, sizeof(bytes));
		if (r < 0 && r != -ENODATA) {
			tp_error("data info: %s: %s", path, strerror(-r));
			goto done;
		}
		if ((r = r < 0 ? -EINVAL : tp_pfs_header_parse(bytes, &h, err, sizeof(err))) < 0) {
			code = say_refusal("info", path, r,
					   r == -EINVAL && !err[0] ? "not a teepy protected file" :
								     err);
			goto done;
		}
		if (h.purpose != TP_PFS_DATA) {
			code = say_refusal("info", path, -EMEDIUMTYPE,
					   "a protected file, but not a sealed data item");
			goto done;
		}
	}
	tp_hex(h.id, sizeof(h.id), id_hex);
	printf("id        %s\n", id_hex);
	printf("size      %s (%llu bytes)\n", tp_format_size(h.size, size_text, sizeof(size_text)),
	       (unsigned long long)h.size);
	printf("chunks    %llu of %s, AES-256-GCM\n",
	       (unsigned long long)tp_pfs_chunk_count(h.size, h.chunk_shift),
	       tp_format_size((uint64_t)1 << h.chunk_shift, chunk_text, sizeof(chunk_text)));
	printf("checked   %s\n", key ? "every chunk authenticates under the key" :
				       "no (give --data-key to check every chunk)");
	code = TP_EXIT_OK;
done:
	tp_pfs_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return code;
}

int tp_cmd_data(int argc, char **argv)
{
	const char *operands[3] = { NULL }, *out = NULL, *key_path = NULL, *worker = NULL;
	size_t count = 0;
	struct tp_flag_parser p;
	char err[256];
	uint8_t *key = NULL;
	int r, code;

	if (tp_flags_start(&p, "data", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("data: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (count == 2) {
				tp_error("data: unexpected argument '%s' (see teepy data --help)",
					 p.value);
				return TP_EXIT_USAGE;
			}
			operands[count++] = p.value;
			continue;
		}
		switch (p.flag->id) {
		case DATA_HELP:
			tp_help_print(stdout, &tp_data_help);
			return TP_EXIT_OK;
		case DATA_OUTPUT:
			out = p.value;
			break;
		case DATA_KEY:
			key_path = p.value;
			break;
		case DATA_WORKER:
			worker = p.value;
			break;
		}
	}
	const char *action = operands[0], *file = operands[1];
	if (!action || (strcmp(action, "seal") != 0 && strcmp(action, "open") != 0 &&
			strcmp(action, "info") != 0 && strcmp(action, "put") != 0)) {
		tp_error("data: %s (use seal, open, info or put; see teepy data --help)",
			 action ? "unknown action" : "missing seal, open, info or put");
		return TP_EXIT_USAGE;
	}
	if (!file || !*file) {
		tp_error("data %s: missing %s (see teepy data --help)", action,
			 strcmp(action, "seal") == 0 ? "FILE" : "ITEM.tpd");
		return TP_EXIT_USAGE;
	}
	if (strcmp(action, "put") == 0) {
		if (out || key_path) {
			tp_error("data put: %s has no use here (the item is sent as it is sealed; "
				 "its key never is)",
				 out ? "-o" : "--data-key");
			return TP_EXIT_USAGE;
		}
		return tp_worker_data_put(worker, file);
	}
	if (worker) {
		tp_error("data %s: --worker is for put", action);
		return TP_EXIT_USAGE;
	}
	if (out && strcmp(action, "info") == 0) {
		tp_error("data info: -o has no use here (info prints to stdout)");
		return TP_EXIT_USAGE;
	}
	if (strcmp(action, "open") == 0 && !key_path) {
		tp_error("data open: %s: a sealed item opens only with its key: --data-key KEY "
			 "(data seal wrote a new one beside the item: %s.key)",
			 file, file);
		return TP_EXIT_KEY_MISSING;
	}
	/* key material never reaches a core dump; the key's memory is locked and wiped */
	tp_secret_no_core(true);
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("data %s: %s", action, err);
		return TP_EXIT_INTERNAL;
	}
	if (!(key = tp_secret_alloc(TP_SYMKEY_SIZE))) {
		tp_error("data %s: out of memory", action);
		return TP_EXIT_INTERNAL;
	}
	if (strcmp(action, "seal") == 0)
		code = seal(file, out, key_path, key);
	else if (key_path && (code = load_key(action, key_path, key)) != 0)
		;
	else if (strcmp(action, "open") == 0)
		code = open_data(file, out, key);
	else
		code = info(file, key_path ? key : NULL);
	tp_secret_free(key, TP_SYMKEY_SIZE);
	return code;
}
