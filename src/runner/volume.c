/* Output volumes (docs/protected-files.md, "Output volumes"): the directory's state
 * checked before a run, the service's /out reached while it runs, and after a
 * normal end every file there sealed into the volume's next version, written
 * beside the directory and switched in for it at once. */
#include "plan.h"

#include "../common/io.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../pfs/volume.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The largest index a writer makes: every entry at its longest name. */
#define INDEX_MAX                                                                                  \
	((size_t)TP_VOLUME_INDEX_HEADER +                                                          \
	 (size_t)TP_VOLUME_MAX_FILES * (2 + TP_VOLUME_NAME_MAX + TP_PFS_ID_SIZE + 8) +             \
	 TP_VOLUME_MAC_SIZE)

/* How long a publish waits for the volume directory's lock (held by a reader, or
 * another run's publish, for the moment it takes): then it gives up. */
#define LOCK_WAIT_MS 30000

/* a sibling's name after the volume's: ".teepy-" and 8 hex digits */
#define STAGE_TAIL 15

void tp_volume_file_name(const uint8_t id[32], char name[69])
{
	tp_hex(id, 32, name);
	memcpy(name + 64, ".tpf", 5);
}

/* A regular file of dir_fd, not followed if a link, not waited on if a FIFO. */
static int open_regular(int dir_fd, const char *name, struct stat *st, char *err, size_t err_size)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;
		if (r != -ENOENT)
			snprintf(err, err_size, "cannot open %s: %s", name, strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		snprintf(err, err_size, "%s is not a regular file", name);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int tp_volume_read_index(int dir_fd, const uint8_t key[32], struct tp_volume_index *ix, char *err,
			 size_t err_size)
{
	struct stat st;
	char *bytes = NULL;
	size_t size = 0;
	int fd = open_regular(dir_fd, TP_VOLUME_INDEX_FILE, &st, err, err_size);
	int r;

	if (fd < 0)
		return fd;
	r = tp_read_all(fd, INDEX_MAX, &bytes, &size);
	close(fd);
	if (r == -EFBIG) {
		snprintf(err, err_size, "%s is larger than any index", TP_VOLUME_INDEX_FILE);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(err, err_size, "cannot read %s: %s", TP_VOLUME_INDEX_FILE, strerror(-r));
		return r;
	}
	r = tp_volume_index_decode(key, (const uint8_t *)bytes, size, ix, err, err_size);
	free(bytes);
	return r;
}

int tp_volume_open_file(int dir_fd, const uint8_t key[32], const struct tp_volume_entry *e, int *fd,
			struct tp_pfs_reader **rd, char *err, size_t err_size)
{
	char name[69], why[256];
	struct stat st;
	int r;

	*rd = NULL;
	tp_volume_file_name(e->id, name);
	if ((*fd = open_regular(dir_fd, name, &st, why, sizeof(why))) < 0) {
		r = *fd;
		*fd = -1;
		if (r == -ENOENT)
			snprintf(err, err_size, "%s: its file %s is missing", e->name, name);
		else
			snprintf(err, err_size, "%s: %s", e->name, why);
		return r;
	}
	r = tp_pfs_reader_open(key, TP_PFS_VOLUME, tp_pread_fd, fd, (uint64_t)st.st_size, rd, why,
			       sizeof(why));
	if (r == 0) {
		const struct tp_pfs_header *h = tp_pfs_reader_header(*rd);
		if (memcmp(h->id, e->id, sizeof(h->id)) != 0)
			snprintf(why, sizeof(why), "holds another file of the volume");
		else if (h->size != e->size)
			snprintf(why, sizeof(why), "is %llu bytes, the index says %llu",
				 (unsigned long long)h->size, (unsigned long long)e->size);
		else
			return 0;
		r = -EBADMSG;
		tp_pfs_reader_free(*rd);
		*rd = NULL;
	}
	snprintf(err, err_size, "%s (%s): %s", e->name, name, why);
	close(*fd);
	*fd = -1;
	return r;
}

/* ---- before the run ---- */

/* The volume's state as the directory shows it now: *exists (and its stat in *st),
 * and for a volume its version and id (a new or empty directory: version 0).
 * Returns 0, or -1 with out said (end: how a refusal ends). */
static int read_state(const struct tp_run_config *cfg, const struct tp_out_volume *v, bool *exists,
		      struct stat *st, uint64_t *version, uint8_t volume_id[32],
		      struct tp_outcome *out)
{
	const char *given = cfg->output_volume;
	struct tp_volume_index ix;
	char err[512];
	int fd, r;

	*exists = false;
	*version = 0;
	if (fstatat(v->parent_fd, v->name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return tp_runner_fail(out, TP_END_CONFIG, "--output-volume %s: %s", given,
				      strerror(errno));
	}
	if (S_ISLNK(st->st_mode))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: a symbolic link; give the volume's "
				      "directory itself",
				      given);
	if (!S_ISDIR(st->st_mode))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: not a directory; give a new or empty "
				      "directory, or a volume's",
				      given);
	if ((fd = openat(v->parent_fd, v->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
	    0)
		return tp_runner_fail(out, TP_END_CONFIG, "--output-volume %s: %s", given,
				      strerror(errno));
	*exists = true;
	/* each version replaces the directory: this user must be able to (its own, or
	 * one it may write, and not another's in a sticky directory such as /tmp) */
	struct stat parent;
	const char *cannot = NULL;
	if (fstat(v->parent_fd, &parent) < 0 || parent.st_dev != st->st_dev)
		cannot = "a mount point";
	else if (faccessat(v->parent_fd, v->name, W_OK | X_OK, AT_EACCESS) < 0)
		cannot = "not writable by this user";
	else if (geteuid() != 0 && (parent.st_mode & S_ISVTX) && st->st_uid != geteuid() &&
		 parent.st_uid != geteuid())
		cannot = "another user's, in a sticky directory";
	if (cannot) {
		close(fd);
		return tp_runner_fail(
		    out, TP_END_CONFIG,
		    "--output-volume %s: a directory this user cannot replace (%s); "
		    "give a directory of its own",
		    given, cannot);
	}
	r = tp_volume_read_index(fd, cfg->volume_key, &ix, err, sizeof(err));
	if (r == -ENOENT) {
		bool empty = tp_dir_is_empty(fd);
		close(fd);
		if (empty)
			return 0;
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: holds no output volume (no %s) and is "
				      "not empty; give a new or empty directory, or a volume's",
				      given, TP_VOLUME_INDEX_FILE);
	}
	close(fd);
	if (tp_pfs_refused(r))
		return tp_runner_fail(out, TP_END_VOLUME_REFUSED, "--output-volume %s: refused: %s",
				      given, err);
	if (r < 0)
		return tp_runner_fail(out, r == -ENOMEM ? TP_END_INTERNAL : TP_END_CONFIG,
				      "--output-volume %s: %s", given, err);
	*version = ix.version;
	memcpy(volume_id, ix.volume_id, 32);
	tp_volume_index_free(&ix);
	return 0;
}

/* Whether a file's name is one a volume's directory holds: its index, or a file's. */
static bool volume_file_name(const char *name)
{
	if (strcmp(name, TP_VOLUME_INDEX_FILE) == 0)
		return true;
	if (strlen(name) != 68 || strcmp(name + 64, ".tpf") != 0)
		return false;
	return strspn(name, "0123456789abcdef") == 64;
}

/* The directory named name in parent_fd emptied of a volume's files and removed; a
 * directory that holds anything else (the person's own) is kept. */
static int remove_dir(int parent_fd, const char *name)
{
	DIR *d =
	    tp_dir_open(openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (volume_file_name(de->d_name))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* Whether name is the sibling of a run that publishes the volume v names. */
static bool stage_of(const struct tp_out_volume *v, const char *name)
{
	size_t len = strlen(v->name);

	return name[0] == '.' && strncmp(name + 1, v->name, len) == 0 &&
	       strncmp(name + 1 + len, ".teepy-", 7) == 0 && strlen(name + len + 8) == 8 &&
	       strspn(name + len + 8, "0123456789abcdef") == 8;
}

/* The siblings of runs that died (killed, or their host crashed) before removing
 * theirs: each live run holds a lock on its own. */
static void remove_stale_siblings(const struct tp_out_volume *v)
{
	DIR *d = tp_dir_open(openat(v->parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!stage_of(v, de->d_name))
			continue;
		int stage = openat(v->parent_fd, de->d_name,
				   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		/* not one a live run made a moment ago and has yet to lock */
		if (stage >= 0 && flock(stage, LOCK_EX | LOCK_NB) == 0 && fstat(stage, &st) == 0 &&
		    st.st_ctime + 60 < time(NULL))
			remove_dir(v->parent_fd, de->d_name);
		if (stage >= 0)
			close(stage);
	}
	closedir(d);
}

int tp_out_volume_prepare(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_out_volume *v = &inv->volume;
	const char *given = cfg->output_volume;
	char path[PATH_MAX], err[256];
	const char *parent = ".", *name;
	size_t len;

	if (!given)
		return 0;
	if (cfg->trace_log)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume: a traced run (teepy build's sample run) "
				      "publishes no volume; its /out is dropped");
	if (!cfg->volume_key)
		return tp_runner_fail(
		    out, TP_END_KEY_MISSING,
		    "--output-volume %s: no volume key; give it with --volume-key "
		    "KEY (make one with: teepy keygen --symmetric -o vol.key)",
		    given);
	if (tp_crypto_load(err, sizeof(err)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "%s", err);
	len = strlen(given);
	if (len == 0 || len >= sizeof(path))
		return tp_runner_fail(out, TP_END_CONFIG, "--output-volume: %s directory name",
				      len ? "too long a" : "an empty");
	memcpy(path, given, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	char *slash = strrchr(path, '/');
	name = slash ? slash + 1 : path;
	if (slash) {
		*slash = '\0';
		parent = slash == path ? "/" : path;
	}
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: name a directory of the volume's own "
				      "(out/, results/), which each version replaces",
				      given);
	/* the sibling's name, ".NAME.teepy-XXXXXXXX", is a name too (NAME_MAX) */
	size_t name_len = strlen(name);
	if (1 + name_len + STAGE_TAIL > NAME_MAX)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: too long a name (at most %d bytes)",
				      given, NAME_MAX - 1 - STAGE_TAIL);
	memcpy(v->name, name, name_len + 1);
	if ((v->parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--output-volume %s: its directory %s: %s", given, parent,
				      strerror(errno));
	struct stat dir;
	if (read_state(cfg, v, &v->exists, &dir, &v->version, v->volume_id, out) < 0)
		return -1;
	/* root publishing a user's volume keeps it theirs */
	v->give_owner = v->exists && geteuid() == 0 && dir.st_uid != 0;
	if (v->give_owner) {
		v->owner_uid = dir.st_uid;
		v->owner_gid = dir.st_gid;
	}
	remove_stale_siblings(v);
	if (v->version == 0 && tp_random(v->volume_id, sizeof(v->volume_id)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "no random bytes for a volume id");
	if (cfg->expect_version_given && cfg->expect_version != v->version)
		return tp_runner_fail(out, TP_END_VOLUME_REFUSED,
				      "--output-volume %s: the volume is at version %llu, not %llu "
				      "(--expect-version): %s",
				      given, (unsigned long long)v->version,
				      (unsigned long long)cfg->expect_version,
				      v->version < cfg->expect_version ?
					  "an older state was put back, or the volume was removed" :
					  "another run has published since");

	/* the next version's sibling: hidden, the owner's alone */
	for (int tries = 0;; tries++) {
		uint32_t tag;
		if (tp_random(&tag, sizeof(tag)) < 0)
			return tp_runner_fail(out, TP_END_INTERNAL, "no random bytes");
		snprintf(v->stage, sizeof(v->stage), ".%.*s.teepy-%08x", NAME_MAX - 1 - STAGE_TAIL,
			 v->name, tag);
		if (mkdirat(v->parent_fd, v->stage, 0700) == 0)
			break;
		if (errno != EEXIST || tries == 16) {
			int e = errno;
			v->stage[0] = '\0';
			return tp_runner_fail(
			    out, TP_END_CONFIG,
			    "--output-volume %s: cannot write beside it in %s: %s", given, parent,
			    strerror(e));
		}
	}
	v->stage_fd =
	    openat(v->parent_fd, v->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* held while this run lasts: a sibling nobody holds is a dead run's */
	if (v->stage_fd < 0 || flock(v->stage_fd, LOCK_EX | LOCK_NB) < 0 ||
	    (v->give_owner && fchown(v->stage_fd, v->owner_uid, v->owner_gid) < 0))
		return tp_runner_fail(out, TP_END_INTERNAL, "--output-volume %s: %s: %s", given,
				      v->stage, strerror(errno));
	return 0;
}

int tp_out_volume_reach(struct tp_out_volume *v, pid_t pid, char *err, size_t err_size)
{
	char path[64];
	struct statfs fs;

	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, TP_OUT_DIR);
	v->out_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->out_fd < 0) {
		int r = -errno;
		snprintf(err, err_size, "cannot reach the service's %s through %s: %s", TP_OUT_DIR,
			 path, strerror(-r));
		return r;
	}
	if (fstatfs(v->out_fd, &fs) < 0 || fs.f_type != TMPFS_MAGIC) {
		snprintf(err, err_size, "the service's %s is not the tmpfs teepy made", TP_OUT_DIR);
		close(v->out_fd);
		v->out_fd = -1;
		return -EXDEV;
	}
	return 0;
}

/* ---- after the run ---- */

struct out_file {
	char *name; /* relative to /out */
	uint64_t size;
	bool dir; /* a directory, read in its turn, then dropped */
};

struct walk {
	int out_fd;
	struct out_file *files; /* files and directories, in the order found */
	size_t count, cap, files_only;
	uint64_t bytes;	    /* the files' sizes together */
	uint64_t max_bytes; /* what /out holds at most */
	size_t max_names;   /* its inodes: more names are hard links */
	char name[TP_VOLUME_NAME_MAX + 2];
	char err[TP_VOLUME_NAME_MAX + 256];
	bool service_fault; /* what /out holds cannot be a volume: the service's doing */
};

/* Says why /out cannot be sealed (the service's doing: -EINVAL); returns r. */
static int walk_fail(struct walk *w, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int walk_fail(struct walk *w, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	w->service_fault = r == -EINVAL || r == -EACCES;
	return r;
}

/* A file or directory the service made unreadable to its owner (chmod 0), which
 * its owner (teepy, or root) reads all the same: the service is gone, and what it
 * wrote is published whole. */
static void let_owner_read(int dir_fd, const char *name, struct stat *st)
{
	mode_t need = S_ISDIR(st->st_mode) ? S_IRUSR | S_IXUSR : S_IRUSR;

	if ((S_ISDIR(st->st_mode) || S_ISREG(st->st_mode)) && (st->st_mode & need) != need &&
	    fchmodat(dir_fd, name, (st->st_mode & 07777) | need, 0) == 0)
		st->st_mode |= need;
}

/* A file or directory of /out by its relative name, resolved beneath it alone. */
static int open_beneath(int out_fd, const char *name, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC),
		.resolve =
		    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, out_fd, name, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

static int add_name(struct walk *w, const struct stat *st)
{
	if (w->count == w->max_names)
		return walk_fail(w, -EINVAL,
				 "%s holds more names than its %zu inodes: hard links; an output "
				 "volume holds each file once",
				 TP_OUT_DIR, w->max_names);
	if (!S_ISDIR(st->st_mode) && w->files_only == TP_VOLUME_MAX_FILES)
		return walk_fail(w, -EINVAL, "%s holds more than %d files, an output volume's most",
				 TP_OUT_DIR, TP_VOLUME_MAX_FILES);
	if (w->count == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct out_file *f = realloc(w->files, cap * sizeof(*f));
		if (!f)
			return walk_fail(w, -ENOMEM, "out of memory");
		w->files = f;
		w->cap = cap;
	}
	struct out_file *f = &w->files[w->count];
	if (!(f->name = strdup(w->name)))
		return walk_fail(w, -ENOMEM, "out of memory");
	f->dir = S_ISDIR(st->st_mode);
	f->size = f->dir ? 0 : (uint64_t)st->st_size;
	w->count++;
	if (f->dir)
		return 0;
	w->files_only++;
	w->bytes += f->size;
	/* holes and hard links name more than /out holds: what is published (and
	 * written to the host's disk) stays within its size too */
	if (w->bytes > w->max_bytes) {
		char cap[32];
		return walk_fail(w, -EINVAL,
				 "%s's files come to more than its %s together: sparse files or "
				 "hard links",
				 TP_OUT_DIR, tp_format_size(w->max_bytes, cap, sizeof(cap)));
	}
	return 0;
}

/* The entries of /out's directory dir ("" for /out itself) into w. One directory is
 * open at a time, however deep they nest. */
static int walk_dir(struct walk *w, const char *dir)
{
	size_t len = strlen(dir);
	DIR *d = tp_dir_open(len ? open_beneath(w->out_fd, dir, O_RDONLY | O_DIRECTORY) :
				   openat(w->out_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;
	int r = 0;

	if (!d)
		return walk_fail(w, -errno, "cannot read %s%s%s: %s", TP_OUT_DIR, len ? "/" : "",
				 dir, strerror(errno));
	while (r == 0 && (errno = 0, de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (len + (len > 0) + n > TP_VOLUME_NAME_MAX) {
			r = walk_fail(w, -EINVAL,
				      "%s/%s holds a name longer than an output volume keeps "
				      "(%d bytes with its directories)",
				      TP_OUT_DIR, len ? dir : ".", TP_VOLUME_NAME_MAX);
			break;
		}
		snprintf(w->name, sizeof(w->name), "%s%s%s", dir, len ? "/" : "", de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = walk_fail(w, -errno, "cannot read %s/%s: %s", TP_OUT_DIR, w->name,
				      strerror(errno));
			break;
		}
		let_owner_read(dirfd(d), de->d_name, &st);
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			r = walk_fail(w, -EINVAL,
				      "%s/%s is %s: an output volume holds regular files (in "
				      "directories) only",
				      TP_OUT_DIR, w->name, tp_file_kind(st.st_mode));
		else if (S_ISREG(st.st_mode) && !tp_volume_name_ok(w->name))
			r = walk_fail(w, -EINVAL,
				      "%s/%s: a name an output volume cannot hold (printable bytes "
				      "only)",
				      TP_OUT_DIR, w->name);
		else
			r = add_name(w, &st);
	}
	if (r == 0 && errno)
		r = walk_fail(w, -errno, "cannot read %s: %s", TP_OUT_DIR, strerror(errno));
	closedir(d);
	return r;
}

/* Every regular file beneath /out into w->files, directories read in turn and
 * then dropped. The service is gone: nothing changes meanwhile. */
static int walk_out(struct walk *w)
{
	int r = walk_dir(w, "");
	size_t kept = 0;

	/* the list grows as it is read: an index, not a pointer, into it */
	for (size_t i = 0; r == 0 && i < w->count; i++)
		if (w->files[i].dir)
			r = walk_dir(w, w->files[i].name);
	for (size_t i = 0; i < w->count; i++) {
		if (w->files[i].dir)
			free(w->files[i].name);
		else
			w->files[kept++] = w->files[i];
	}
	w->count = kept;
	return r;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct out_file *)a)->name, ((const struct out_file *)b)->name);
}

/* Seals /out's file f into the sibling under a fresh id (into e). */
static int seal_file(const struct tp_out_volume *v, const uint8_t *key, const struct out_file *f,
		     struct tp_volume_entry *e, char *err, size_t err_size)
{
	struct tp_pfs_header h = { .purpose = TP_PFS_VOLUME,
				   .chunk_shift = TP_PFS_DEFAULT_SHIFT,
				   .size = f->size };
	char file[69], why[256];
	struct stat st;
	int in, sealed, r;

	if ((in = open_beneath(v->out_fd, f->name, O_RDONLY)) < 0) {
		snprintf(err, err_size, "cannot read %s/%s: %s", TP_OUT_DIR, f->name,
			 strerror(-in));
		return in;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		snprintf(err, err_size, "%s/%s changed as it was sealed", TP_OUT_DIR, f->name);
		close(in);
		return -ESTALE;
	}
	if (tp_random(h.id, sizeof(h.id)) < 0) {
		close(in);
		snprintf(err, err_size, "no random bytes for a file id");
		return -EIO;
	}
	tp_volume_file_name(h.id, file);
	sealed = openat(v->stage_fd, file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sealed < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot write %s: %s", file, strerror(-r));
		close(in);
		return r;
	}
	if (v->give_owner && fchown(sealed, v->owner_uid, v->owner_gid) < 0) {
		r = -errno;
		snprintf(why, sizeof(why), "cannot give it its owner: %s", strerror(-r));
	} else
		r = tp_pfs_seal(key, &h, tp_pread_fd, &in, tp_write_fd, &sealed, why, sizeof(why));
	if (r < 0)
		snprintf(err, err_size, "cannot seal %s/%s: %s", TP_OUT_DIR, f->name, why);
	close(sealed);
	close(in);
	memcpy(e->id, h.id, sizeof(e->id));
	e->size = f->size;
	return r;
}

/* The sibling's index: the files of e under the next version. */
static int write_index(const struct tp_out_volume *v, const uint8_t *key, struct tp_volume_entry *e,
		       size_t count, char *err, size_t err_size)
{
	struct tp_volume_index ix = { .version = v->version + 1, .entries = e, .count = count };
	uint8_t *bytes = NULL;
	size_t size = 0;
	int fd, r;

	memcpy(ix.volume_id, v->volume_id, sizeof(ix.volume_id));
	if ((r = tp_volume_index_encode(key, &ix, &bytes, &size, err, err_size)) < 0)
		return r;
	fd = openat(v->stage_fd, TP_VOLUME_INDEX_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	r = fd < 0 ? -errno : tp_write_full(fd, bytes, size);
	if (r == 0 && v->give_owner && fchown(fd, v->owner_uid, v->owner_gid) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(bytes);
	if (r < 0)
		snprintf(err, err_size, "cannot write %s: %s", TP_VOLUME_INDEX_FILE, strerror(-r));
	return r;
}

/* Whether the caller has asked the run to stop (its cancel descriptor). */
static bool cancelled(const struct tp_run_config *cfg)
{
	struct pollfd p = { .fd = cfg->cancel_fd, .events = POLLIN };
	return cfg->cancel_fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* A publish the caller stopped before the switch. Returns -1. */
static int say_cancelled(struct tp_outcome *out, const char *given)
{
	return tp_runner_fail(out, TP_END_CANCELLED,
			      "stopped before the output volume %s was published; nothing was "
			      "published",
			      given);
}

/* An exclusive lock of the volume's directory (fd), waited for while the caller
 * lets it: a reader (teepy volume) or another run's publish holds it briefly.
 * Only this user and root can open the directory (0700 once a version is in). */
static int lock_dir(const struct tp_run_config *cfg, int fd)
{
	for (int waited_ms = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited_ms += 20) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (cancelled(cfg))
			return -ECANCELED;
		if (waited_ms >= LOCK_WAIT_MS)
			return -ETIMEDOUT;
		poll(NULL, 0, 20);
	}
	return 0;
}

/* Under the directory's lock: it is still in the state the run began from; the
 * sibling takes its place (exchanged with it, or named so), and the old version,
 * now at the sibling's name, is removed before a reader waiting for the lock can
 * look. */
static int switch_in(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_out_volume *v = &inv->volume;
	const char *given = cfg->output_volume;
	uint8_t volume_id[32];
	uint64_t version;
	struct stat dir;
	bool exists;
	int dir_fd = -1, r = 0;

	if (v->exists) {
		dir_fd =
		    openat(v->parent_fd, v->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = dir_fd < 0 ? -errno : lock_dir(cfg, dir_fd);
	}
	if (r == -ECANCELED)
		r = say_cancelled(out, given);
	else if (r == -ETIMEDOUT)
		r = tp_runner_fail(
		    out, TP_END_INTERNAL,
		    "--output-volume %s: locked by another process for more than %d s "
		    "(a teepy volume reading it?); nothing was published",
		    given, LOCK_WAIT_MS / 1000);
	else if (r < 0 && r != -ENOENT)
		r = tp_runner_fail(out, TP_END_INTERNAL,
				   "--output-volume %s: cannot lock it: %s; nothing was published",
				   given, strerror(-r));
	else
		r = read_state(cfg, v, &exists, &dir, &version, volume_id, out);
	if (r == 0 && (exists != v->exists || version != v->version ||
		       (version && memcmp(volume_id, v->volume_id, 32) != 0)))
		r = tp_runner_fail(out, TP_END_VOLUME_REFUSED,
				   "--output-volume %s: changed while the service ran (now %s "
				   "%llu); this run's files were not published",
				   given, exists ? "version" : "gone, was version",
				   (unsigned long long)(exists ? version : v->version));
	if (r == 0 && syscall(SYS_renameat2, v->parent_fd, v->stage, v->parent_fd, v->name,
			      v->exists ? RENAME_EXCHANGE : RENAME_NOREPLACE) < 0)
		r = errno == EEXIST ?
			tp_runner_fail(
			    out, TP_END_VOLUME_REFUSED,
			    "--output-volume %s: another run published it while this one "
			    "ran; this run's files were not published",
			    given) :
			tp_runner_fail(
			    out, TP_END_INTERNAL,
			    "--output-volume %s: cannot put the new version in place: %s", given,
			    strerror(errno));
	if (r == 0) {
		fsync(v->parent_fd);
		close(v->stage_fd);
		v->stage_fd = -1;
		/* the sibling's name now holds the old version, or nothing */
		if (v->exists && (r = remove_dir(v->parent_fd, v->stage)) < 0 && cfg->warn) {
			char line[PATH_MAX + 256];
			snprintf(line, sizeof(line),
				 "--output-volume %s: the old version is kept as %s (%s): it holds "
				 "files no volume has",
				 given, v->stage, strerror(-r));
			cfg->warn(cfg->observer, line);
		}
		v->stage[0] = '\0';
		r = 0;
	}
	if (dir_fd >= 0)
		close(dir_fd); /* and its lock */
	return r;
}

void tp_out_volume_publish(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_out_volume *v = &inv->volume;
	const char *given = cfg->output_volume;
	struct walk w = { .out_fd = v->out_fd,
			  .max_bytes = inv->limits.output_bytes,
			  .max_names = tp_root_tmpfs_inodes(inv->limits.output_bytes) };
	struct tp_volume_entry *entries = NULL;
	char err[TP_VOLUME_NAME_MAX + 512];
	int r = 0;

	if (!given || v->stage_fd < 0 ||
	    (out->end != TP_END_RESULT && out->end != TP_END_NO_RESULT))
		return;
	if (v->out_fd < 0) {
		tp_runner_fail(out, TP_END_INTERNAL,
			       "--output-volume %s: the service's %s was not reached; nothing was "
			       "published",
			       given, TP_OUT_DIR);
		return;
	}
	struct stat st;
	if (fstat(v->out_fd, &st) == 0 && (st.st_mode & 0500) != 0500)
		fchmod(v->out_fd, (st.st_mode & 07777) | 0500);
	if (walk_out(&w) < 0) {
		tp_runner_fail(out, w.service_fault ? TP_END_FAILED : TP_END_INTERNAL,
			       "%s; nothing was published to %s", w.err, given);
		goto out;
	}
	qsort(w.files, w.count, sizeof(*w.files), by_name);
	if (w.count && !(entries = calloc(w.count, sizeof(*entries)))) {
		tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; r == 0 && i < w.count; i++) {
		entries[i].name = w.files[i].name;
		r = cancelled(cfg) ?
			-ECANCELED :
			seal_file(v, cfg->volume_key, &w.files[i], &entries[i], err, sizeof(err));
	}
	if (r == 0)
		r = write_index(v, cfg->volume_key, entries, w.count, err, sizeof(err));
	/* every file on disk before the switch: a crash leaves the old version or the new */
	if (r == 0 && syncfs(v->stage_fd) < 0) {
		r = -errno;
		snprintf(err, sizeof(err), "cannot write its files to disk: %s", strerror(-r));
	}
	if (r == 0 && cancelled(cfg))
		r = -ECANCELED;
	if (r == -ECANCELED) {
		say_cancelled(out, given);
		goto out;
	}
	if (r < 0) {
		tp_runner_fail(out, TP_END_INTERNAL,
			       "--output-volume %s: %s; nothing was published", given, err);
		goto out;
	}
	if (switch_in(inv, out) < 0)
		goto out;
	out->volume.published = true;
	out->volume.version = v->version + 1;
	out->volume.files = w.count;
	out->volume.bytes = w.bytes;
out:
	for (size_t i = 0; i < w.count; i++)
		free(w.files[i].name);
	free(w.files);
	free(entries);
	close(v->out_fd);
	v->out_fd = -1;
}

void tp_out_volume_close(struct tp_out_volume *v)
{
	if (v->out_fd >= 0)
		close(v->out_fd);
	if (v->stage_fd >= 0)
		close(v->stage_fd);
	if (v->parent_fd >= 0 && v->stage[0])
		remove_dir(v->parent_fd, v->stage);
	if (v->parent_fd >= 0)
		close(v->parent_fd);
	v->out_fd = v->stage_fd = v->parent_fd = -1;
	v->stage[0] = '\0';
}
