/* The cache of verified sealed roots. An entry is a directory named by a key over
 * the manifest's bytes (the app measurement) and this teepy (its executable and
 * runtime extension, by inode and time), holding every manifest file as a fill
 * verified it. It is made under a temporary name and renamed into place whole, so
 * a run sees a complete entry or none. The cache directory is trusted only once
 * its descriptor shows a tmpfs owned by the invoking uid with mode 0700; from then
 * on everything is done relative to that descriptor, never through its path. */
#include "cache.h"

#include "alternatives.h"
#include "plan.h"
#include "../common/io.h"
#include "../crypto/crypto.h"
#include "../manifest/trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* A temporary entry whose filler is gone (or that is older than this, whatever its
 * pid says: pids are reused, and another pid namespace's are not ours to ask). */
#define STALE_TEMP_SECONDS 600
#define TEMP_PREFIX	   "tmp-"

static void set_off(struct tp_invocation *inv, bool say, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_off(struct tp_invocation *inv, bool say, const char *fmt, ...)
{
	struct tp_cache *c = &inv->cache;
	va_list ap;

	tp_cache_close(c);
	c->state = TP_CACHE_OFF;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	if (say && !c->warned) {
		char line[sizeof(c->why) + 64];
		snprintf(line, sizeof(line), "%s; running without the cache", c->why);
		tp_plan_warn(inv, line);
		c->warned = true;
	}
}

void tp_cache_close(struct tp_cache *c)
{
	if (c->entry_fd >= 0)
		close(c->entry_fd);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	c->entry_fd = c->dir_fd = -1;
}

/* Removes NAME under dir_fd and all it holds, without following a link. */
static int remove_tree(int dir_fd, const char *name, int depth)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	int r = 0;

	if (fd < 0)
		return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
	if (depth > 256 || !(d = fdopendir(fd))) {
		close(fd);
		return depth > 256 ? -ELOOP : -errno;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int rr = e->d_type == DT_DIR ? remove_tree(fd, e->d_name, depth + 1) :
					       (unlinkat(fd, e->d_name, 0) < 0 ? -errno : 0);
		if (rr == -EISDIR)
			rr = remove_tree(fd, e->d_name, depth + 1);
		r = r ?: rr;
	}
	closedir(d);
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0)
		r = r ?: -errno;
	return r;
}

/* Calls fn for every name in the cache directory (through its descriptor). */
static void each_name(int dir_fd, void (*fn)(int dir_fd, const char *name))
{
	DIR *d = tp_dir_open(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		fn(dir_fd, e->d_name);
	closedir(d);
}

/* A temporary entry (or index file) of a fill that was killed (its pid is gone) or
 * that is old. */
static void remove_if_stale_temp(int dir_fd, const char *name)
{
	struct stat st;
	long pid;
	char *end;

	if (strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0)
		return;
	pid = strtol(name + strlen(TEMP_PREFIX), &end, 10);
	if (*end != '-' || fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	bool dead = pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
	if (dead || time(NULL) - st.st_mtime > STALE_TEMP_SECONDS)
		remove_tree(dir_fd, name, 0);
}

static void remove_stale_temps(int dir_fd)
{
	each_name(dir_fd, remove_if_stale_temp);
}

static bool on_tmpfs(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

/* What is wrong with a directory for holding a cache or an entry, or NULL. */
static const char *untrusted(int fd, mode_t want_mode, char *why, size_t why_size)
{
	struct statfs sf;
	struct stat st;

	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
		snprintf(why, why_size, "cannot be examined: %s", strerror(errno));
	else if (sf.f_type != TMPFS_MAGIC)
		snprintf(why, why_size, "not on a tmpfs (a cache must live in memory)");
	else if (sf.f_flags & ST_NOEXEC) /* a bind keeps it: the interpreter would not run */
		snprintf(why, why_size, "on a tmpfs mounted noexec");
	else if (st.st_uid != geteuid())
		snprintf(why, why_size, "owned by uid %u, not by uid %u, who runs teepy",
			 (unsigned)st.st_uid, (unsigned)geteuid());
	else if ((st.st_mode & 07777) != want_mode)
		snprintf(why, why_size, "has mode %04o, not %04o", (unsigned)(st.st_mode & 07777),
			 (unsigned)want_mode);
	else
		return NULL;
	return why;
}

/* Root's /run/teepy is a tmpfs of its own, with huge pages for the 2 MiB ranges a
 * file fills, as a sealed root without the cache has (sandbox/root.c): bound from
 * a tmpfs without them, hello's service took 20-30 ms longer to start here (the
 * interpreter and libraries mapped in 4 KiB pages). Mode 0700 from the start. */
static int mount_cache_tmpfs(const char *target)
{
	char options[96];
	int n;

	n = snprintf(options, sizeof(options), "mode=0700,nr_inodes=%u", TP_ROOT_TMPFS_INODES);
	snprintf(options + n, sizeof(options) - (size_t)n, ",huge=within_size");
	if (mount("teepy-cache", target, "tmpfs", MS_NOSUID | MS_NODEV, options) == 0 ||
	    (options[n] = '\0',
	     mount("teepy-cache", target, "tmpfs", MS_NOSUID | MS_NODEV, options) == 0))
		return 0;
	return -errno;
}

static int mount_root_cache(const char *path)
{
	int r;

	if (mkdir(path, 0700) < 0)
		return -errno;
	if ((r = mount_cache_tmpfs(path)) < 0)
		rmdir(path);
	return r;
}

/* An empty /run/teepy that is no tmpfs, where /run is none either: an umount left
 * it. Mounted again on that very directory (through its fd, not its path, which
 * another run could change meanwhile), under a lock on it: of two runs finding it
 * so, one mounts and the other finds the mount made. Returns 0 when path is a
 * tmpfs now; the directory is left as it was on any failure (no right to mount, a
 * file in it). */
static int mount_left_directory(const char *path, int fd)
{
	char target[64];
	int now, r;

	if (flock(fd, LOCK_EX) < 0)
		return -errno;
	now = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (now >= 0 && on_tmpfs(now))
		r = 0; /* another run mounted it while this one waited */
	else if (!tp_dir_is_empty(fd))
		r = -ENOTEMPTY;
	else {
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
		r = mount_cache_tmpfs(target);
	}
	if (now >= 0)
		close(now);
	flock(fd, LOCK_UN);
	return r;
}

int tp_cache_dir_open(const char *cache_dir, const char *runtime_dir, bool create, char *path,
		      size_t path_size, char *why, size_t why_size)
{
	bool created = false;
	char problem[160];
	int fd;

	if (cache_dir)
		snprintf(path, path_size, "%s", cache_dir);
	else if (geteuid() == 0)
		snprintf(path, path_size, "/run/teepy");
	else if (runtime_dir && runtime_dir[0] == '/')
		snprintf(path, path_size, "%s/teepy", runtime_dir);
	else {
		path[0] = '\0';
		snprintf(why, why_size, "no XDG_RUNTIME_DIR to keep a cache in");
		return -ENOENT;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* made only where it would pass the checks: a parent on a tmpfs */
		char parent[PATH_MAX];
		struct statfs sf;
		char *slash;
		snprintf(parent, sizeof(parent), "%s", path);
		slash = strrchr(parent, '/');
		if (slash)
			*(slash == parent ? slash + 1 : slash) = '\0';
		if (!create) {
			snprintf(why, why_size, "no cache at %s yet", path);
			return -ENOENT;
		}
		if (!cache_dir && geteuid() == 0 && mount_root_cache(path) == 0)
			return tp_cache_dir_open(cache_dir, runtime_dir, false, path, path_size,
						 why, why_size);
		if (!slash || statfs(parent, &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
			snprintf(why, why_size, "cache %s: its directory is not a tmpfs", path);
			/* said only of a directory named on purpose */
			return cache_dir ? -EPERM : -ENOENT;
		}
		if (mkdir(path, 0700) == 0)
			created = true;
		else if (errno != EEXIST) {
			snprintf(why, why_size, "cache %s: cannot be made: %s", path,
				 strerror(errno));
			return -EPERM;
		}
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(why, why_size, "cache %s: %s", path,
			 errno == ELOOP || errno == ENOTDIR ? "a symbolic link or not a directory" :
							      strerror(errno));
		return -EPERM;
	}
	if (created && fchmod(fd, 0700) < 0) { /* whatever the umask took away */
		snprintf(why, why_size, "cache %s: %s", path, strerror(errno));
		close(fd);
		return -EPERM;
	}
	if (!cache_dir && geteuid() == 0 && create && !on_tmpfs(fd) &&
	    mount_left_directory(path, fd) == 0) {
		close(fd);
		return tp_cache_dir_open(cache_dir, runtime_dir, false, path, path_size, why,
					 why_size);
	}
	if (untrusted(fd, 0700, problem, sizeof(problem))) {
		snprintf(why, why_size, "cache %s: %s", path, problem);
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* The cache directory, checked, or -1 with the cache set off. */
static int open_cache_dir(struct tp_invocation *inv)
{
	struct tp_cache *c = &inv->cache;
	char why[sizeof(c->why)];
	int fd = tp_cache_dir_open(inv->cfg->cache_dir, inv->cfg->runtime_dir, true, c->path,
				   sizeof(c->path), why, sizeof(why));

	if (fd < 0)
		set_off(inv, fd != -ENOENT, "%s", why);
	return fd;
}

/* A file told apart without reading it: device, inode, size and times. */
typedef uint64_t file_id[7];

static void file_id_of(const struct stat *st, file_id id)
{
	const uint64_t v[] = { st->st_dev,
			       st->st_ino,
			       (uint64_t)st->st_size,
			       (uint64_t)st->st_mtim.tv_sec,
			       (uint64_t)st->st_mtim.tv_nsec,
			       (uint64_t)st->st_ctim.tv_sec,
			       (uint64_t)st->st_ctim.tv_nsec };

	memcpy(id, v, sizeof(v));
}

/* Which teepy this is: its executable's and CPython runtime extension's file ids
 * (the one every teepy has: a bundle's engine is not known until its manifest is
 * read, after the index is looked at). Returns 0 or -errno. */
static int teepy_id(const struct tp_invocation *inv, file_id id[2])
{
	char runtime[PATH_MAX];
	const char *parts[] = { "/proc/self/exe", runtime };

	if (tp_find_runtime(runtime, sizeof(runtime)) < 0)
		return -ENOENT;

	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		if (stat(parts[i], &st) < 0)
			return -errno;
		file_id_of(&st, id[i]);
	}
	return 0;
}

/* The entry's name: the manifest's bytes (through the app measurement) and which
 * teepy fills and binds it. The runtime extension is not in the entry (it is bound
 * from the host on every run), but another teepy may lay an entry out otherwise:
 * its files' inode and modification time tell it apart without hashing it. */
static int make_key(const struct tp_invocation *inv, char key[65])
{
	static const char tag[] = "teepy-root-cache-v1";
	struct tp_sha256 *h;
	file_id teepy[2];
	uint8_t digest[32];
	int r;

	if ((r = teepy_id(inv, teepy)) < 0)
		return r;
	if (!(h = tp_sha256_new()))
		return -ENOMEM;
	tp_sha256_update(h, tag, sizeof(tag));
	tp_sha256_update(h, inv->bundle.app, sizeof(inv->bundle.app));
	tp_sha256_update(h, teepy, sizeof(teepy));
	tp_sha256_final(h, digest);
	tp_hex(digest, 32, key);
	return 0;
}

/* The entry, if there is one and it can be trusted: a directory of the cache's
 * owner, mode 0755, on the cache's own file system. Returns its fd, -ENOENT when
 * there is none, or -EBADMSG with why said. */
static int open_entry(int dir_fd, const char *key, char *why, size_t why_size)
{
	int fd = openat(dir_fd, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat dir_st, st;

	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		snprintf(why, why_size, "%s",
			 errno == ELOOP || errno == ENOTDIR ? "a symbolic link or not a directory" :
							      strerror(errno));
		return -EBADMSG;
	}
	if (untrusted(fd, 0755, why, why_size) ||
	    (fstat(dir_fd, &dir_st) == 0 && fstat(fd, &st) == 0 && dir_st.st_dev != st.st_dev &&
	     snprintf(why, why_size, "on another file system than the cache") > 0)) {
		close(fd);
		return -EBADMSG;
	}
	return fd;
}

static bool still_in_place(int dir_fd, const char *key, int fd)
{
	struct stat at_key, held;

	return fstatat(dir_fd, key, &at_key, AT_SYMLINK_NOFOLLOW) == 0 && fstat(fd, &held) == 0 &&
	       at_key.st_dev == held.st_dev && at_key.st_ino == held.st_ino;
}

void tp_cache_open(struct tp_invocation *inv)
{
	struct tp_cache *c = &inv->cache;
	char why[160];
	int fd;

	c->entry_fd = -1;
	if (inv->cfg->no_cache) {
		set_off(inv, false, "%s", inv->cfg->no_cache);
		return;
	}
	uint64_t size = tp_fill_reserve(&inv->bundle.manifest);
	if (size > inv->cfg->cache_max_bytes) {
		set_off(inv, false, "the root (%llu bytes) is larger than --cache-max (%llu bytes)",
			(unsigned long long)size, (unsigned long long)inv->cfg->cache_max_bytes);
		return;
	}
	/* their plaintext goes only into the service's own root, never into a cache */
	if (tp_manifest_any_encrypted(&inv->bundle.manifest)) {
		set_off(inv, false, "the bundle has encrypted files, which are never cached");
		return;
	}
	if (c->dir_fd < 0 && (c->dir_fd = open_cache_dir(inv)) < 0)
		return;
	if (!c->foreseen && (fd = make_key(inv, c->key)) < 0) {
		set_off(inv, true, "cache %s: cannot identify this teepy: %s", c->path,
			strerror(-fd));
		return;
	}
	fd = open_entry(c->dir_fd, c->key, why, sizeof(why));
	if (fd == -EBADMSG) {
		/* an entry the checks refuse is never used: removed and made again */
		if (remove_tree(c->dir_fd, c->key, 0) < 0) {
			set_off(inv, true, "cache entry %s/%s: %s, and cannot be removed", c->path,
				c->key, why);
			return;
		}
		char line[sizeof(why) + PATH_MAX + 160];
		snprintf(line, sizeof(line), "cache entry %s/%s: %s; made again", c->path, c->key,
			 why);
		tp_plan_warn(inv, line);
		fd = -ENOENT;
	}
	/* held while the run lasts: teepy cache clear leaves an entry in use alone; one
	 * it removed meanwhile is no longer under its key, and is made again */
	if (fd >= 0 && (flock(fd, LOCK_SH) < 0 || !still_in_place(c->dir_fd, c->key, fd))) {
		close(fd);
		fd = -ENOENT;
	}
	if (fd >= 0)
		futimens(fd, NULL); /* its last use, for teepy cache ls */
	c->entry_fd = fd;
	c->state = fd >= 0 ? TP_CACHE_HIT : TP_CACHE_MISS;
	snprintf(c->why, sizeof(c->why), "%s/%s", c->path, c->key);
}

static bool is_key(const char *name)
{
	return strlen(name) == 64 && strspn(name, "0123456789abcdef") == 64;
}

/* ---- the index: the entry a bundle file had ---- */

/* A later run of the same bundle file finds its entry here without hashing the
 * manifest, which needs libcrypto (4-5 ms to load and start Ed25519 on these
 * guests), and the bytes a verified run read: manifest, key and signature. A run
 * whose bytes are the same (plan.c's open_sealed) parses and plans at once and
 * checks the signature while the interpreter starts; the key made from the
 * verified manifest must then be the one foreseen (check_hit). A file
 * INDEX_PREFIX + name: the key, a newline, the bytes; made by a verified run.
 * Only the cache's owner can write it, who could change teepy itself. */
#define INDEX_PREFIX "b-"

/* The index's name: FNV-1a over the bundle file's device, inode, size and times
 * (bundles are written whole under a new inode: tp_bundle_write) and this teepy's
 * executable and runtime extension, as make_key takes them. Only a name: what the
 * file holds is compared. Returns 0 or -errno. */
static int index_name(const struct tp_invocation *inv, char name[32])
{
	struct {
		file_id bundle, teepy[2];
	} ids;
	struct stat st;
	uint64_t hash = 0xcbf29ce484222325ULL;
	int r;

	if (fstat(inv->bundle.fd, &st) < 0)
		return -errno;
	file_id_of(&st, ids.bundle);
	if ((r = teepy_id(inv, ids.teepy)) < 0)
		return r;
	const uint8_t *bytes = (const uint8_t *)&ids;
	for (size_t j = 0; j < sizeof(ids); j++)
		hash = (hash ^ bytes[j]) * 0x100000001b3ULL;
	snprintf(name, 32, INDEX_PREFIX "%016llx", (unsigned long long)hash);
	return 0;
}

/* The bytes a verified run read: from the header to the signature. */
static size_t head_size(const struct tp_bundle_file *bf)
{
	return TP_BUNDLE_HEADER_SIZE + bf->bundle.header.manifest_size + TP_BUNDLE_KEY_SIZE +
	       TP_BUNDLE_SIG_SIZE;
}

/* Whether the index file NAME holds this bundle's bytes; its key into key. */
static bool index_matches(int dir_fd, const char *name, const struct tp_bundle_file *bf,
			  char key[65])
{
	/* non-blocking: a FIFO in its place must not hang the run (fstat refuses it) */
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	size_t size = head_size(bf);
	struct stat st;
	bool same = false;
	char *text;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    (uint64_t)st.st_size == 65 + size && (text = malloc(65 + size))) {
		same = tp_read_full(fd, text, 65 + size) == 0 && text[64] == '\n' &&
		       memcmp(text + 65, bf->head, size) == 0;
		text[64] = '\0';
		same = same && is_key(text);
		if (same)
			memcpy(key, text, 65);
		free(text);
	}
	close(fd);
	return same;
}

bool tp_cache_foresee(struct tp_invocation *inv)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_cache *c = &inv->cache;
	char name[32], why[160];
	int fd;

	/* descriptors handed to the service would reach it before the signer is
	 * settled: such a run settles it first */
	if (cfg->no_cache || cfg->handed_count || index_name(inv, name) < 0)
		return false;
	fd = tp_cache_dir_open(cfg->cache_dir, cfg->runtime_dir, false, c->path, sizeof(c->path),
			       why, sizeof(why));
	if (fd < 0)
		return false;
	c->indexed = c->foreseen = index_matches(fd, name, &inv->bundle, c->key);
	if (c->foreseen)
		c->dir_fd = fd; /* tp_cache_open goes on with it */
	else
		close(fd);
	return c->foreseen;
}

/* A verified run's entry and bytes join the index (a new file renamed over the
 * old); best effort. */
static void remember(const struct tp_invocation *inv)
{
	const struct tp_cache *c = &inv->cache;
	char name[32], temp[64], key[65];
	int fd;

	if (c->entry_fd < 0 || c->dir_fd < 0 || index_name(inv, name) < 0 ||
	    (index_matches(c->dir_fd, name, &inv->bundle, key) && strcmp(key, c->key) == 0))
		return;
	snprintf(temp, sizeof(temp), TEMP_PREFIX "%ld-%s", (long)getpid(), name);
	fd = openat(c->dir_fd, temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	memcpy(key, c->key, 64);
	key[64] = '\n';
	bool ok = tp_write_full(fd, key, 65) == 0 &&
		  tp_write_full(fd, inv->bundle.head, head_size(&inv->bundle)) == 0;
	if (close(fd) < 0 || !ok || renameat(c->dir_fd, temp, c->dir_fd, name) < 0)
		unlinkat(c->dir_fd, temp, 0);
}

static void forget(const struct tp_invocation *inv)
{
	char name[32];

	if (inv->cache.dir_fd >= 0 && index_name(inv, name) == 0)
		unlinkat(inv->cache.dir_fd, name, 0);
}

/* An index file whose entry is gone (evicted, cleared). */
static void remove_if_dangling_index(int dir_fd, const char *name)
{
	char key[65];
	struct stat st;
	int fd;

	if (strncmp(name, INDEX_PREFIX, strlen(INDEX_PREFIX)) != 0)
		return;
	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool keep = fd >= 0 && tp_read_full(fd, key, 64) == 0;
	if (fd >= 0)
		close(fd);
	key[64] = '\0';
	if (!keep || !is_key(key) || fstatat(dir_fd, key, &st, AT_SYMLINK_NOFOLLOW) < 0)
		unlinkat(dir_fd, name, 0);
}

static void remove_dangling_index(int dir_fd)
{
	each_name(dir_fd, remove_if_dangling_index);
}

/* ---- filling an entry ---- */

static void make_room(int dir_fd, uint64_t need, uint64_t max);

static bool cancelled(void *arg)
{
	const struct tp_invocation *inv = arg;
	struct pollfd p = { .fd = inv->cfg->cancel_fd, .events = POLLIN };

	return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* mkdir -p of an absolute PATH under dir_fd (a fresh entry: nothing to follow). */
static int make_dirs_at(int dir_fd, const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s/", path + 1);
	for (char *p = buf; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (buf[0] && mkdirat(dir_fd, buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* A miss: the files verified into a temporary entry, which is then renamed into
 * place; a run that loses the race to another uses the winner's. Returns 0 with
 * entry_fd set, or -1 with out said. */
static int fill_entry(struct tp_invocation *inv, struct tp_outcome *out)
{
	struct tp_cache *c = &inv->cache;
	struct tp_blob_source_ctx blob_ctx;
	struct tp_host_source_ctx host_ctx;
	struct tp_file_source blobs, host;
	char temp[64], err[768];
	uint8_t nonce[8];
	int fd, r;

	remove_stale_temps(c->dir_fd);
	make_room(c->dir_fd, tp_fill_reserve(&inv->bundle.manifest), inv->cfg->cache_max_bytes);
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot name a cache entry: %s",
				      strerror(errno));
	char hex[17];
	tp_hex(nonce, sizeof(nonce), hex);
	snprintf(temp, sizeof(temp), TEMP_PREFIX "%ld-%s", (long)getpid(), hex);
	if (mkdirat(c->dir_fd, temp, 0755) < 0 ||
	    (fd = openat(c->dir_fd, temp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cache %s: cannot make an entry: %s",
				      c->path, strerror(errno));
	flock(fd, LOCK_SH); /* in use from the start (tp_cache_open) */
	tp_plan_sources(inv, &blob_ctx, &host_ctx, &blobs, &host);
	r = tp_fill_root(&inv->bundle.manifest, &blobs, &host, fd, &inv->fill, err, sizeof(err),
			 cancelled, inv);
	/* sys.path directories exist even if empty (plan_sealed) */
	for (size_t i = 0; r == 0 && i < inv->python_path.count; i++)
		if ((r = make_dirs_at(fd, inv->python_path.items[i])) < 0)
			snprintf(err, sizeof(err), "cannot make %s in the cache entry: %s",
				 inv->python_path.items[i], strerror(-r));
	if (r == 0 && fchmod(fd, 0755) < 0) {
		r = -errno;
		snprintf(err, sizeof(err), "%s", strerror(-r));
	}
	if (r == 0 && renameat2(c->dir_fd, temp, c->dir_fd, c->key, RENAME_NOREPLACE) == 0) {
		c->entry_fd = fd;
		return 0;
	}
	int rename_errno = errno;
	close(fd);
	remove_tree(c->dir_fd, temp, 0);
	if (r < 0) {
		if (cancelled(inv))
			return tp_runner_fail(out, TP_END_CANCELLED,
					      "the run was stopped; so was the service");
		return tp_runner_fail(out, TP_END_REFUSED, "%s: refused: %s", inv->cfg->script,
				      err);
	}
	/* another run made the same entry first: its copy was verified as ours was */
	if (rename_errno == EEXIST || rename_errno == ENOTEMPTY) {
		char why[160];
		if ((c->entry_fd = open_entry(c->dir_fd, c->key, why, sizeof(why))) >= 0) {
			flock(c->entry_fd, LOCK_SH);
			return 0;
		}
	}
	return tp_runner_fail(out, TP_END_INTERNAL, "cache %s: cannot put entry %s in place: %s",
			      c->path, c->key, strerror(rename_errno));
}

/* ---- binding an entry ---- */

/* Whether a runtime operation (a device, the extension, the user database, scratch)
 * lies at or under PATH: the entry's tree there cannot be bound whole over it. */
static int hole_at(const struct tp_root_plan *plan, size_t count, const char *path)
{
	int found = 0;

	for (size_t i = 0; i < count; i++) {
		if (plan->ops[i].kind == TP_ROOT_DIR || plan->ops[i].kind == TP_ROOT_BIND)
			continue;
		if (strcmp(plan->ops[i].path, path) == 0)
			return 2;
		if (tp_root_path_under(plan->ops[i].path, path))
			found = 1;
	}
	return found;
}

/* The entry's trees under REL bound read-only at the same paths inside: each whole
 * where no runtime operation lies beneath it, else what it holds, one by one. The
 * child looks each up by its path, in its own mount namespace, and binds it only if
 * it is the inode seen here through entry_fd (tp_root_enter). */
static int bind_entry(struct tp_root_plan *plan, size_t count, int entry_fd, const char *entry_path,
		      const char *rel, int depth)
{
	DIR *d = tp_dir_open(openat(entry_fd, rel[0] ? rel + 1 : ".",
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	struct dirent *e;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (e = readdir(d))) {
		char path[PATH_MAX], source[PATH_MAX + 32];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", rel, e->d_name) >= sizeof(path))
			r = -ENAMETOOLONG;
		else if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		if (r < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
			continue; /* a fill makes nothing else */
		switch (hole_at(plan, count, path)) {
		case 2:
			continue; /* the runtime's, as in a filled root */
		case 1:
			if (S_ISDIR(st.st_mode) && depth < 64) {
				r = bind_entry(plan, count, entry_fd, entry_path, path, depth + 1);
				continue;
			}
			break;
		}
		snprintf(source, sizeof(source), "%s%s", entry_path, path);
		if ((r = tp_root_plan_add(plan, TP_ROOT_BIND, path, source, 0)) == 0) {
			plan->ops[plan->count - 1].dev = st.st_dev;
			plan->ops[plan->count - 1].ino = st.st_ino;
		}
	}
	closedir(d);
	return r;
}

/* A hit's checks, on a verified manifest: the foreseen key is the manifest's, and
 * the bundle's own blobs are what it names (the system files are the entry's
 * verified copies; the bundle may have changed under the same manifest). */
static int check_hit(struct tp_invocation *inv, struct tp_outcome *out)
{
	struct tp_cache *c = &inv->cache;
	struct tp_blob_source_ctx blob_ctx;
	struct tp_host_source_ctx host_ctx;
	struct tp_file_source blobs, host;
	char err[768], key[65];
	int r;

	if (c->foreseen) {
		if ((r = make_key(inv, key)) < 0)
			return tp_runner_fail(out, TP_END_INTERNAL,
					      "cache %s: cannot identify this teepy: %s", c->path,
					      strerror(-r));
		if (strcmp(key, c->key) != 0) {
			/* an index its owner changed by hand: never trusted again */
			forget(inv);
			return tp_runner_fail(
			    out, TP_END_INTERNAL,
			    "cache %s: its index named entry %.16s… for %s, not the "
			    "entry of its manifest (the index file is removed; run "
			    "again)",
			    c->path, c->key, inv->cfg->script);
		}
		c->foreseen = false;
	}
	tp_plan_sources(inv, &blob_ctx, &host_ctx, &blobs, &host);
	if (tp_fill_root(&inv->bundle.manifest, &blobs, NULL, -1, &inv->fill, err, sizeof(err),
			 cancelled, inv) < 0)
		return tp_runner_fail(out, TP_END_REFUSED, "%s: refused: %s", inv->cfg->script,
				      err);
	return 0;
}

int tp_cache_root(struct tp_invocation *inv, struct tp_outcome *out)
{
	struct tp_cache *c = &inv->cache;
	int r;

	if (c->state == TP_CACHE_MISS && fill_entry(inv, out) < 0)
		return -1;
	/* a pending signer: checked once it is settled (tp_cache_settle) */
	if (c->state == TP_CACHE_HIT && !inv->pending && check_hit(inv, out) < 0)
		return -1;
	if (!inv->pending)
		remember(inv);
	if ((r = bind_entry(&inv->plan, inv->plan.count, c->entry_fd, c->why, "", 0)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cache entry %s: cannot bind it: %s",
				      c->why, strerror(-r));
	tp_root_plan_finish(&inv->plan);
	return 0;
}

int tp_cache_settle(struct tp_invocation *inv, struct tp_outcome *out)
{
	return inv->cache.state == TP_CACHE_HIT ? check_hit(inv, out) : 0;
}

/* ---- teepy cache ---- */

static void measure_tree(int dir_fd, const char *name, struct tp_cache_entry *e, int depth)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = depth < 256 ? tp_dir_open(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0 && depth >= 256)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		e->bytes += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode))
			measure_tree(fd, de->d_name, e, depth + 1);
		else
			e->files++;
	}
	closedir(d);
}

int tp_cache_list(int dir_fd, struct tp_cache_entry **entries, size_t *count)
{
	DIR *d = tp_dir_open(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct tp_cache_entry *list = NULL;
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;
		if (!is_key(de->d_name) ||
		    fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		struct tp_cache_entry *grown = realloc(list, (n + 1) * sizeof(*list));
		if (!grown) {
			free(list);
			closedir(d);
			return -ENOMEM;
		}
		list = grown;
		list[n] = (struct tp_cache_entry){ .last_use = st.st_mtim };
		/* is_key: 64 hex digits */
		snprintf(list[n].key, sizeof(list[n].key), "%.64s", de->d_name);
		measure_tree(dir_fd, de->d_name, &list[n], 0);
		n++;
	}
	closedir(d);
	*entries = list;
	*count = n;
	return 0;
}

/* Removes the entry KEY unless a run is using it (-EBUSY): a run holds its entry
 * shared, so its root's files stay. Returns 0 or -errno. */
static int remove_entry(int dir_fd, const char *key)
{
	int fd = openat(dir_fd, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char temp[64 + 32];
	int r;

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -EBUSY;
	}
	/* out of its key first: a run that opens it meanwhile sees it gone */
	snprintf(temp, sizeof(temp), TEMP_PREFIX "0-%s", key);
	r = renameat(dir_fd, key, dir_fd, temp) < 0 ? -errno : remove_tree(dir_fd, temp, 0);
	close(fd);
	return r;
}

static int older_first(const void *a, const void *b)
{
	const struct timespec *x = &((const struct tp_cache_entry *)a)->last_use,
			      *y = &((const struct tp_cache_entry *)b)->last_use;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* Evicts the least recently used entries no run is using until NEED more bytes
 * fit under MAX. */
static void make_room(int dir_fd, uint64_t need, uint64_t max)
{
	struct tp_cache_entry *list;
	uint64_t total = 0;
	size_t n;

	if (tp_cache_list(dir_fd, &list, &n) < 0 || n == 0)
		return;
	qsort(list, n, sizeof(*list), older_first);
	for (size_t i = 0; i < n; i++)
		total += list[i].bytes;
	for (size_t i = 0; i < n && total + need > max; i++)
		if (remove_entry(dir_fd, list[i].key) == 0)
			total -= list[i].bytes;
	free(list);
	remove_dangling_index(dir_fd);
}

int tp_cache_clear(int dir_fd, size_t *removed, size_t *in_use)
{
	struct tp_cache_entry *list;
	size_t n;
	int r = tp_cache_list(dir_fd, &list, &n);

	*removed = *in_use = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = remove_entry(dir_fd, list[i].key);
		*removed += r == 0;
		*in_use += r == -EBUSY;
	}
	free(list);
	remove_stale_temps(dir_fd);
	remove_dangling_index(dir_fd);
	unlinkat(dir_fd, TP_ALTERNATIVES_FACTS, 0);
	return 0;
}
