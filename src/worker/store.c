/* The worker's state: DIR/worker.db (SQLite, WAL: bundles, data, services and the
 * development-mode keys) and the blobs, DIR/bundles/ID.tpy and DIR/data/ID.tpd.
 * An upload is written to an unnamed file (O_TMPFILE) in its directory while it is
 * hashed, and linked to its name only once complete and checked: a worker killed
 * midway leaves nothing a later one reads. */
#include "worker.h"

#include "../common/io.h"
#include "../common/log.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA secure_delete=ON;"
    "CREATE TABLE IF NOT EXISTS bundles(id TEXT PRIMARY KEY, app TEXT NOT NULL, signer TEXT "
    "NOT NULL, encrypted INTEGER NOT NULL, key_id TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS data(id TEXT PRIMARY KEY, size INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS services(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE "
    "NOT NULL, bundle TEXT NOT NULL, app TEXT NOT NULL, service_data TEXT NOT NULL, keys TEXT "
    "NOT NULL, config_id TEXT NOT NULL DEFAULT '', deployed INTEGER NOT NULL, invocations INTEGER "
    "NOT NULL DEFAULT 0);"
    /* development mode only: the keys uploaded with a deployment, in plaintext */
    "CREATE TABLE IF NOT EXISTS dev_keys(service TEXT NOT NULL, name TEXT NOT NULL, key BLOB "
    "NOT NULL, PRIMARY KEY(service, name));";

struct tp_worker_store {
	pthread_mutex_t lock;
	sqlite3 *db;
	char dir[PATH_MAX];
	int bundles_fd, data_fd;
};

struct tp_worker_upload {
	int fd, dir_fd;
	struct tp_sha256 *sha;
	uint64_t size;
	uint8_t id[32]; /* its SHA-256, once finished */
};

static int make_dir(const char *path, char *err, size_t err_size)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return tp_errf(err, err_size, "cannot make %s: %s", path, strerror(errno)), -errno;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return tp_errf(err, err_size, "%s is not a directory", path), -ENOTDIR;
	if (st.st_uid != geteuid())
		return tp_errf(err, err_size, "%s belongs to uid %u, not to the worker's (%u)",
			       path, (unsigned)st.st_uid, (unsigned)geteuid()),
		       -EPERM;
	if ((st.st_mode & 077) && chmod(path, 0700) < 0)
		return tp_errf(err, err_size, "cannot make %s 0700: %s", path, strerror(errno)),
		       -errno;
	return 0;
}

int tp_worker_store_open(const char *dir, struct tp_worker_store **out, char *err, size_t err_size)
{
	struct tp_worker_store *st = calloc(1, sizeof(*st));
	char path[PATH_MAX + 32];
	char *msg = NULL;
	int r, fd;

	if (!st)
		return -ENOMEM;
	st->bundles_fd = st->data_fd = -1;
	pthread_mutex_init(&st->lock, NULL);
	if ((r = make_dir(dir, err, err_size)) < 0)
		goto fail;
	if (!realpath(dir, st->dir)) {
		r = -errno;
		tp_errf(err, err_size, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/bundles", st->dir);
	if ((r = make_dir(path, err, err_size)) < 0)
		goto fail;
	st->bundles_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/data", st->dir);
	if ((r = make_dir(path, err, err_size)) < 0)
		goto fail;
	st->data_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->bundles_fd < 0 || st->data_fd < 0) {
		r = -errno;
		tp_errf(err, err_size, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* made 0600 before SQLite opens it */
	snprintf(path, sizeof(path), "%s/worker.db", st->dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		r = -errno;
		tp_errf(err, err_size, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fchmod(fd, 0600);
	close(fd);
	if (sqlite3_open_v2(path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(st->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(st->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
		tp_errf(err, err_size, "%s: %s", path,
			msg    ? msg :
			st->db ? sqlite3_errmsg(st->db) :
				 "out of memory");
		sqlite3_free(msg);
		r = -EIO;
		goto fail;
	}
	*out = st;
	return 0;
fail:
	tp_worker_store_close(st);
	return r;
}

void tp_worker_store_close(struct tp_worker_store *st)
{
	if (!st)
		return;
	if (st->db)
		sqlite3_close(st->db);
	if (st->bundles_fd >= 0)
		close(st->bundles_fd);
	if (st->data_fd >= 0)
		close(st->data_fd);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

const char *tp_worker_store_dir(const struct tp_worker_store *st)
{
	return st->dir;
}

void tp_worker_bundle_path(const struct tp_worker_store *st, const char *id, char *out, size_t size)
{
	snprintf(out, size, "%s/bundles/%s.tpy", st->dir, id);
}

void tp_worker_data_path(const struct tp_worker_store *st, const char *id, char *out, size_t size)
{
	snprintf(out, size, "%s/data/%s.tpd", st->dir, id);
}

/* ---- uploads ---- */

int tp_worker_upload_begin(struct tp_worker_store *st, const char *kind,
			   struct tp_worker_upload **out)
{
	struct tp_worker_upload *up = calloc(1, sizeof(*up));

	if (!up)
		return -ENOMEM;
	up->dir_fd = strcmp(kind, "bundles") == 0 ? st->bundles_fd : st->data_fd;
	up->fd = openat(up->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (up->fd < 0 || !(up->sha = tp_sha256_new())) {
		int r = up->fd < 0 ? -errno : -ENOMEM;
		tp_worker_upload_free(up);
		return r;
	}
	*out = up;
	return 0;
}

int tp_worker_upload_write(struct tp_worker_upload *up, const void *bytes, size_t size)
{
	int r = tp_write_full(up->fd, bytes, size);

	if (r == 0) {
		tp_sha256_update(up->sha, bytes, size);
		up->size += size;
	}
	return r;
}

uint64_t tp_worker_upload_size(const struct tp_worker_upload *up)
{
	return up->size;
}

int tp_worker_upload_finish(struct tp_worker_upload *up, char id[TP_WORKER_ID_HEX])
{
	uint8_t sha[32];

	tp_sha256_final(up->sha, sha);
	up->sha = NULL;
	memcpy(up->id, sha, sizeof(up->id));
	tp_hex(sha, 32, id);
	return fsync(up->fd) < 0 ? -errno : 0;
}

int tp_worker_upload_fd(const struct tp_worker_upload *up)
{
	return up->fd;
}

/* Whether the file name in dir_fd hashes to sha: 1, 0 (another file, or none), or
 * -errno. */
static int same_bytes(int dir_fd, const char *name, const uint8_t sha[32])
{
	struct tp_sha256 *ctx;
	uint8_t buf[65536], got[32];
	ssize_t n;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno;
	if (!(ctx = tp_sha256_new())) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			tp_sha256_update(ctx, buf, (size_t)n);
	tp_sha256_final(ctx, got);
	close(fd);
	if (n < 0)
		return 0; /* unreadable: replaced */
	return memcmp(got, sha, 32) == 0;
}

int tp_worker_upload_link(struct tp_worker_upload *up, const char *name)
{
	char proc[64];

	/* through /proc, not AT_EMPTY_PATH: that needs CAP_DAC_READ_SEARCH */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", up->fd);
	if (linkat(AT_FDCWD, proc, up->dir_fd, name, AT_SYMLINK_FOLLOW) < 0) {
		char tmp[128];
		static unsigned serial;
		int r;
		if (errno != EEXIST)
			return -errno;
		/* the name is the bytes' hash: a file there that is not those bytes
		 * (damaged, or put there) is replaced, never recorded as the one checked */
		if ((r = same_bytes(up->dir_fd, name, up->id)) < 0)
			return r;
		if (r == 1)
			return 0;
		snprintf(tmp, sizeof(tmp), ".%s.%d.%u", name, (int)getpid(),
			 __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED));
		if (linkat(AT_FDCWD, proc, up->dir_fd, tmp, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
		if (renameat(up->dir_fd, tmp, up->dir_fd, name) < 0) {
			r = -errno;
			unlinkat(up->dir_fd, tmp, 0);
			return r;
		}
	}
	return fsync(up->dir_fd) < 0 ? -errno : 0;
}

void tp_worker_upload_free(struct tp_worker_upload *up)
{
	uint8_t sha[32];

	if (!up)
		return;
	if (up->sha)
		tp_sha256_final(up->sha, sha);
	if (up->fd >= 0)
		close(up->fd);
	free(up);
}

/* ---- rows ---- */

static sqlite3_stmt *prepare(struct tp_worker_store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	return s;
}

static void text_col(sqlite3_stmt *s, int col, char *out, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	snprintf(out, size, "%s", t ? (const char *)t : "");
}

static int bundle_get_unlocked(struct tp_worker_store *st, const char *id,
			       struct tp_worker_bundle_row *row)
{
	sqlite3_stmt *s =
	    prepare(st, "SELECT app, signer, encrypted, key_id FROM bundles WHERE id = ?");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		snprintf(row->id, sizeof(row->id), "%s", id);
		text_col(s, 0, row->app, sizeof(row->app));
		text_col(s, 1, row->signer, sizeof(row->signer));
		row->encrypted = sqlite3_column_int(s, 2) != 0;
		text_col(s, 3, row->key_id, sizeof(row->key_id));
	}
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

static int bundle_add_unlocked(struct tp_worker_store *st, const struct tp_worker_bundle_row *row)
{
	sqlite3_stmt *s = prepare(st, "INSERT OR IGNORE INTO bundles(id, app, signer, encrypted, "
				      "key_id) VALUES (?, ?, ?, ?, ?)");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, row->app, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, row->signer, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, row->encrypted);
	sqlite3_bind_text(s, 5, row->key_id, -1, SQLITE_STATIC);
	r = sqlite3_step(s);
	sqlite3_finalize(s);
	return r == SQLITE_DONE ? 0 : -EIO;
}

static int data_get_unlocked(struct tp_worker_store *st, const char *id,
			     struct tp_worker_data_row *row)
{
	sqlite3_stmt *s = prepare(st, "SELECT size FROM data WHERE id = ?");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		snprintf(row->id, sizeof(row->id), "%s", id);
		row->size = (uint64_t)sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

static int data_add_unlocked(struct tp_worker_store *st, const struct tp_worker_data_row *row)
{
	sqlite3_stmt *s = prepare(st, "INSERT OR IGNORE INTO data(id, size) VALUES (?, ?)");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, row->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)row->size);
	r = sqlite3_step(s);
	sqlite3_finalize(s);
	return r == SQLITE_DONE ? 0 : -EIO;
}

static json_t *service_row(sqlite3_stmt *s)
{
	json_error_t je;
	const char *data = (const char *)sqlite3_column_text(s, 3);
	const char *config_id = (const char *)sqlite3_column_text(s, 7);
	json_t *list = json_loads(data ? data : "[]", 0, &je);
	json_t *doc = json_pack(
	    "{s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:s}", "service",
	    (const char *)sqlite3_column_text(s, 0), "app", (const char *)sqlite3_column_text(s, 2),
	    "bundle", (const char *)sqlite3_column_text(s, 1), "service_data",
	    list ? list : json_array(), "keys", (const char *)sqlite3_column_text(s, 4), "deployed",
	    (json_int_t)sqlite3_column_int64(s, 5), "invocations",
	    (json_int_t)sqlite3_column_int64(s, 6), "state", "ready");

	/* what its keys are released for: a deployer can see the CAS config it runs under */
	if (doc && config_id && *config_id)
		json_object_set_new(doc, "config_id", json_string(config_id));
	return doc;
}

#define SERVICE_COLS "id, bundle, app, service_data, keys, deployed, invocations, config_id"

static json_t *service_get_unlocked(struct tp_worker_store *st, const char *id, int *err)
{
	sqlite3_stmt *s = prepare(st, "SELECT " SERVICE_COLS " FROM services WHERE id = ?");
	json_t *doc = NULL;
	int r;

	*err = -EIO;
	if (!s)
		return NULL;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW && (doc = service_row(s)))
		*err = 0;
	else if (r == SQLITE_DONE)
		*err = -ENOENT;
	sqlite3_finalize(s);
	return doc;
}

static json_t *service_list_unlocked(struct tp_worker_store *st)
{
	sqlite3_stmt *s = prepare(st, "SELECT " SERVICE_COLS " FROM services ORDER BY seq");
	json_t *list = json_array();
	int r;

	if (!s || !list) {
		sqlite3_finalize(s);
		json_decref(list);
		return NULL;
	}
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if (json_array_append_new(list, service_row(s)) < 0)
			break;
	sqlite3_finalize(s);
	if (r != SQLITE_DONE) {
		json_decref(list);
		return NULL;
	}
	return list;
}

static int service_count_unlocked(struct tp_worker_store *st)
{
	sqlite3_stmt *s = prepare(st, "SELECT count(*) FROM services");
	int n = -EIO;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

static int exec_step(sqlite3_stmt *s)
{
	int r = s ? sqlite3_step(s) : SQLITE_ERROR;

	sqlite3_finalize(s);
	return r == SQLITE_DONE ? 0 : r == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

static int add_key(struct tp_worker_store *st, const char *service, const char *name,
		   const uint8_t key[32])
{
	sqlite3_stmt *s =
	    prepare(st, "INSERT OR REPLACE INTO dev_keys(service, name, key) VALUES (?, ?, ?)");

	if (s) {
		sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, key, 32, SQLITE_STATIC);
	}
	return exec_step(s);
}

static int service_add_unlocked(struct tp_worker_store *st, const char *id, const char *bundle,
				const char *app, const char (*data)[TP_WORKER_ID_HEX], size_t count,
				const char *keys, const char *config_id, const uint8_t *bundle_key,
				const struct tp_worker_key *data_keys, size_t data_key_count,
				int64_t now)
{
	json_t *list = json_array();
	char *text;
	sqlite3_stmt *s;
	int r;

	for (size_t i = 0; list && i < count; i++)
		json_array_append_new(list, json_string(data[i]));
	text = list ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	if (!text)
		return -ENOMEM;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		free(text);
		return -EIO;
	}
	s = prepare(st, "INSERT INTO services(id, bundle, app, service_data, keys, deployed, "
			"config_id) VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, bundle, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, app, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, text, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, keys, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 6, now);
		sqlite3_bind_text(s, 7, config_id ? config_id : "", -1, SQLITE_STATIC);
	}
	r = exec_step(s);
	if (r == 0 && bundle_key)
		r = add_key(st, id, "bundle", bundle_key);
	for (size_t i = 0; r == 0 && i < data_key_count; i++)
		r = add_key(st, id, data_keys[i].id, data_keys[i].key);
	sqlite3_exec(st->db, r == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	free(text);
	return r;
}

static int service_delete_unlocked(struct tp_worker_store *st, const char *id)
{
	sqlite3_stmt *s;
	int r, changed;

	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	if ((s = prepare(st, "DELETE FROM services WHERE id = ?")))
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = exec_step(s);
	changed = sqlite3_changes(st->db);
	if (r == 0 && (s = prepare(st, "DELETE FROM dev_keys WHERE service = ?")))
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (r == 0)
		r = exec_step(s);
	sqlite3_exec(st->db, r == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	return r < 0 ? r : changed ? 0 : -ENOENT;
}

/* A count is written on every invocation's path, before its answer: its commit
 * appends to the WAL without an fsync of its own (synchronous=NORMAL for it alone),
 * which the next commit of anything else makes durable with it. A power cut may lose
 * the last counts, never a deployment, and never leaves the database torn. */
static int service_counted_unlocked(struct tp_worker_store *st, const char *id)
{
	sqlite3_stmt *s = prepare(st, "UPDATE services SET invocations = invocations + 1 WHERE "
				      "id = ?");
	int r;

	if (s)
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	r = exec_step(s);
	sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	return r;
}

static int service_key_unlocked(struct tp_worker_store *st, const char *service, const char *name,
				uint8_t key[32])
{
	sqlite3_stmt *s = prepare(st, "SELECT key FROM dev_keys WHERE service = ? AND name = ?");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32)
		memcpy(key, sqlite3_column_blob(s, 0), 32);
	else if (r == SQLITE_ROW)
		r = SQLITE_ERROR;
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

/* ---- each under the store's lock: one connection holds one transaction at a time,
 * so no statement of another thread lands inside a service's add or delete ---- */

int tp_worker_bundle_get(struct tp_worker_store *st, const char *id,
			 struct tp_worker_bundle_row *row)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = bundle_get_unlocked(st, id, row);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_bundle_add(struct tp_worker_store *st, const struct tp_worker_bundle_row *row)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = bundle_add_unlocked(st, row);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_data_get(struct tp_worker_store *st, const char *id, struct tp_worker_data_row *row)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = data_get_unlocked(st, id, row);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_data_add(struct tp_worker_store *st, const struct tp_worker_data_row *row)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = data_add_unlocked(st, row);
	pthread_mutex_unlock(&st->lock);
	return r;
}

json_t *tp_worker_service_get(struct tp_worker_store *st, const char *id, int *err)
{
	json_t *r;

	pthread_mutex_lock(&st->lock);
	r = service_get_unlocked(st, id, err);
	pthread_mutex_unlock(&st->lock);
	return r;
}

json_t *tp_worker_service_list(struct tp_worker_store *st)
{
	json_t *r;

	pthread_mutex_lock(&st->lock);
	r = service_list_unlocked(st);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_count(struct tp_worker_store *st)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_count_unlocked(st);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_add(struct tp_worker_store *st, const char *id, const char *bundle,
			  const char *app, const char (*data)[TP_WORKER_ID_HEX], size_t count,
			  const char *keys, const char *config_id, const uint8_t *bundle_key,
			  const struct tp_worker_key *data_keys, size_t data_key_count, int64_t now)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_add_unlocked(st, id, bundle, app, data, count, keys, config_id, bundle_key,
				 data_keys, data_key_count, now);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_delete(struct tp_worker_store *st, const char *id)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_delete_unlocked(st, id);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_counted(struct tp_worker_store *st, const char *id)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_counted_unlocked(st, id);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_key(struct tp_worker_store *st, const char *service, const char *name,
			  uint8_t key[32])
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_key_unlocked(st, service, name, key);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int tp_worker_service_config(struct tp_worker_store *st, const char *id, char out[160])
{
	sqlite3_stmt *s;
	int r = SQLITE_ERROR;

	pthread_mutex_lock(&st->lock);
	if ((s = prepare(st, "SELECT config_id FROM services WHERE id = ?"))) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		if ((r = sqlite3_step(s)) == SQLITE_ROW)
			text_col(s, 0, out, 160);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

json_t *tp_worker_service_deploy(struct tp_worker_store *st, const char *id, const char *bundle,
				 const char *app, const char (*data)[TP_WORKER_ID_HEX],
				 size_t count, const char *keys, const char *config_id,
				 const uint8_t *bundle_key, const struct tp_worker_key *data_keys,
				 size_t data_key_count, int64_t now, bool *added, int *err)
{
	json_t *doc = NULL;
	int r;

	pthread_mutex_lock(&st->lock);
	r = service_add_unlocked(st, id, bundle, app, data, count, keys, config_id, bundle_key,
				 data_keys, data_key_count, now);
	*added = r == 0;
	*err = r;
	if (r == 0 || r == -EEXIST)
		doc = service_get_unlocked(st, id, err);
	pthread_mutex_unlock(&st->lock);
	return doc;
}
