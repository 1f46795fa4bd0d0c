/* The CAS's state in SQLite (WAL mode): policies (documents without their secret
 * values), secret values encrypted with the master key (AES-256-GCM, a random nonce
 * each, associated data policy "\0" secret), challenges, the replay cache of signed
 * times, and the audit log, which triggers keep append-only. One connection; the
 * service calls in one request at a time. Commits are written to the WAL without
 * waiting for the disk; the service waits for it before an answer leaves, without
 * its lock, one sync serving every request then waiting (tp_cas_store_sync). */
#include "cas.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATEMENTS_KEPT 48 /* more than this file has */

struct tp_cas_store {
	sqlite3 *db;
	struct tp_gcm *master;
	uint8_t hash_key[TP_CAS_HASH_KEY_SIZE]; /* from the master key: policies' hashes */
	/* each statement prepared at its first use and kept: parsing and planning cost
	 * more than running most of them (a release runs a dozen) */
	struct {
		const char *sql; /* a string literal of this file */
		sqlite3_stmt *s;
	} kept[STATEMENTS_KEPT];
	size_t kept_count;
	/* group commit: marks of writes handed out (tp_cas_store_written) and synced */
	bool dirty; /* a commit since the last mark; only the store's user touches it */
	pthread_mutex_t sync_lock;
	pthread_cond_t synced_cond;
	uint64_t written, synced;
	bool syncing, sync_failed;
	char *wal_path;
	int wal_fd; /* -1 until the first sync */
};

static const char hash_key_info[] = "teepy-cas-v1 policy hash key";

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    /* the WAL is synced by tp_cas_store_sync, outside the service's lock; SQLite
     * still syncs around its checkpoints */
    "PRAGMA synchronous=NORMAL;"
    "PRAGMA secure_delete=ON;"
    "CREATE TABLE IF NOT EXISTS policies (name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " hash TEXT NOT NULL, doc TEXT NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS secrets (policy TEXT NOT NULL, name TEXT NOT NULL,"
    " sealed BLOB NOT NULL, PRIMARY KEY (policy, name));"
    "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS nonces_open ON nonces (used, expires);"
    /* forgetting what expired is a search, not a scan of a day's challenges (86.4
     * million rows at 1000 a second), on every challenge and attest */
    "CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);"
    "CREATE TABLE IF NOT EXISTS replay (signature TEXT PRIMARY KEY,"
    " expires INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS replay_expires ON replay (expires);"
    "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL, remote TEXT NOT NULL, op TEXT NOT NULL, subject TEXT NOT NULL,"
    " outcome TEXT NOT NULL, reason TEXT NOT NULL);"
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

/* SQLite's commit hook (called before each commit completes): the request has
 * written something its answer must wait for. */
static int on_commit(void *ctx)
{
	struct tp_cas_store *st = ctx;

	st->dirty = true;
	return 0;
}

int tp_cas_store_open(const char *path, const uint8_t master[TP_CAS_MASTER_SIZE],
		      struct tp_cas_store **out, char *err, size_t err_size)
{
	struct tp_cas_store *st = calloc(1, sizeof(*st));
	char *msg = NULL;
	int r;

	if (!st || (master && (!(st->master = tp_gcm_new(master)) ||
			       tp_hkdf_sha256(master, TP_CAS_MASTER_SIZE, NULL, 0, hash_key_info,
					      sizeof(hash_key_info) - 1, st->hash_key,
					      sizeof(st->hash_key)) < 0))) {
		if (st)
			tp_gcm_free(st->master);
		free(st);
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	st->wal_fd = -1;
	pthread_mutex_init(&st->sync_lock, NULL);
	pthread_cond_init(&st->synced_cond, NULL);
	if (asprintf(&st->wal_path, "%s-wal", path) < 0) {
		st->wal_path = NULL;
		tp_cas_store_close(st);
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	/* the file only its owner reads: values are encrypted, but the rest is the owners' */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	r = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (r == SQLITE_OK) {
		sqlite3_busy_timeout(st->db, 5000);
		sqlite3_commit_hook(st->db, on_commit, st);
	}
	if (r == SQLITE_OK && sqlite3_exec(st->db, schema, NULL, NULL, &msg) != SQLITE_OK)
		r = SQLITE_ERROR;
	if (r != SQLITE_OK) {
		snprintf(err, err_size, "%s", msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		tp_cas_store_close(st);
		return -EIO;
	}
	*out = st;
	return 0;
}

void tp_cas_store_close(struct tp_cas_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->kept_count; i++)
		sqlite3_finalize(st->kept[i].s);
	sqlite3_close(st->db);
	if (st->wal_fd >= 0)
		close(st->wal_fd);
	free(st->wal_path);
	pthread_mutex_destroy(&st->sync_lock);
	pthread_cond_destroy(&st->synced_cond);
	tp_gcm_free(st->master);
	explicit_bzero(st->hash_key, sizeof(st->hash_key));
	free(st);
}

/* The statement of sql (a string literal), prepared at its first use and kept; done()
 * makes it ready for the next. NULL when it does not prepare. (A kept statement whose
 * tables another connection changed is prepared again by its next step.) */
static sqlite3_stmt *prepare(struct tp_cas_store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	for (size_t i = 0; i < st->kept_count; i++)
		if (st->kept[i].sql == sql || strcmp(st->kept[i].sql, sql) == 0)
			return st->kept[i].s;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		sqlite3_finalize(s);
		return NULL;
	}
	if (st->kept_count < STATEMENTS_KEPT) {
		st->kept[st->kept_count].sql = sql;
		st->kept[st->kept_count++].s = s;
	}
	return s;
}

/* A statement used: reset (which ends its read of the database) and its values
 * unbound, or finalized if it was not kept. */
static void done(struct tp_cas_store *st, sqlite3_stmt *s)
{
	for (size_t i = 0; i < st->kept_count; i++)
		if (st->kept[i].s == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return;
		}
	sqlite3_finalize(s);
}

static int exec(struct tp_cas_store *st, const char *sql)
{
	sqlite3_stmt *s = prepare(st, sql);
	int r;

	if (!s)
		return -EIO;
	r = sqlite3_step(s);
	done(st, s);
	return r == SQLITE_DONE ? 0 : -EIO;
}

static void text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* ---- secrets ---- */

static int seal_value(struct tp_cas_store *st, const char *policy, const char *name,
		      const char *value, size_t size, uint8_t **out, size_t *out_size)
{
	size_t plen = strlen(policy), nlen = strlen(name);
	uint8_t *blob = malloc(TP_GCM_NONCE_SIZE + size + TP_GCM_TAG_SIZE);
	char *aad = malloc(plen + 1 + nlen);

	if (!st->master || !blob || !aad || tp_random(blob, TP_GCM_NONCE_SIZE) < 0) {
		free(blob);
		free(aad);
		return -ENOMEM;
	}
	memcpy(aad, policy, plen + 1);
	memcpy(aad + plen + 1, name, nlen);
	if (tp_gcm_seal(st->master, blob, aad, plen + 1 + nlen, value, size,
			blob + TP_GCM_NONCE_SIZE, blob + TP_GCM_NONCE_SIZE + size) < 0) {
		free(blob);
		free(aad);
		return -EIO;
	}
	free(aad);
	*out = blob;
	*out_size = TP_GCM_NONCE_SIZE + size + TP_GCM_TAG_SIZE;
	return 0;
}

static int open_value(struct tp_cas_store *st, const char *policy, const char *name,
		      const uint8_t *blob, size_t size, json_t **out)
{
	size_t plen = strlen(policy), nlen = strlen(name), n;
	char *aad, *plain;
	int r;

	if (!st->master || size < TP_GCM_NONCE_SIZE + TP_GCM_TAG_SIZE)
		return -EBADMSG;
	n = size - TP_GCM_NONCE_SIZE - TP_GCM_TAG_SIZE;
	aad = malloc(plen + 1 + nlen);
	plain = tp_secret_alloc(n + 1);
	if (!aad || !plain) {
		free(aad);
		tp_secret_free(plain, n + 1);
		return -ENOMEM;
	}
	memcpy(aad, policy, plen + 1);
	memcpy(aad + plen + 1, name, nlen);
	r = tp_gcm_open(st->master, blob, aad, plen + 1 + nlen, blob + TP_GCM_NONCE_SIZE, n,
			blob + TP_GCM_NONCE_SIZE + n, plain);
	free(aad);
	if (r == 0 && !(*out = json_stringn(plain, n)))
		r = -EBADMSG;
	tp_secret_free(plain, n + 1);
	return r < 0 ? -EBADMSG : 0;
}

/* ---- policies ---- */

int tp_cas_store_policy_get(struct tp_cas_store *st, const char *name, json_t **doc,
			    char owner[TP_CAS_HASH_HEX], char hash[TP_CAS_HASH_HEX])
{
	sqlite3_stmt *s = prepare(st, "SELECT owner, hash, doc FROM policies WHERE name = ?");
	json_t *d = NULL, *secrets;
	int r = -EIO;

	if (!s)
		return -EIO;
	text(s, 1, name);
	r = sqlite3_step(s);
	if (r != SQLITE_ROW) {
		done(st, s);
		return r == SQLITE_DONE ? -ENOENT : -EIO;
	}
	const char *o = (const char *)sqlite3_column_text(s, 0);
	const char *h = (const char *)sqlite3_column_text(s, 1);
	const char *json = (const char *)sqlite3_column_text(s, 2);
	/* NULL: a NULL column, or out of memory */
	if (o && h && json) {
		snprintf(owner, TP_CAS_HASH_HEX, "%s", o);
		snprintf(hash, TP_CAS_HASH_HEX, "%s", h);
		d = json_loads(json, 0, NULL);
	}
	done(st, s);
	if (!d)
		return -EIO;
	/* the values back in */
	s = prepare(st, "SELECT name, sealed FROM secrets WHERE policy = ?");
	if (!s) {
		json_decref(d);
		return -EIO;
	}
	text(s, 1, name);
	secrets = json_object_get(d, "secrets");
	r = 0;
	while (r == 0 && sqlite3_step(s) == SQLITE_ROW) {
		const char *sname = (const char *)sqlite3_column_text(s, 0);
		json_t *value = NULL, *sec = json_object_get(secrets, sname);
		r = open_value(st, name, sname, sqlite3_column_blob(s, 1),
			       (size_t)sqlite3_column_bytes(s, 1), &value);
		if (r == 0 && (!sec || json_object_set_new(sec, "value", value) < 0))
			r = -EIO;
	}
	done(st, s);
	if (r < 0) {
		json_decref(d);
		return r;
	}
	*doc = d;
	return 0;
}

static int current_hash(struct tp_cas_store *st, const char *name, char hash[TP_CAS_HASH_HEX])
{
	sqlite3_stmt *s = prepare(st, "SELECT hash FROM policies WHERE name = ?");
	int r;

	if (!s)
		return -EIO;
	text(s, 1, name);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		snprintf(hash, TP_CAS_HASH_HEX, "%s", (const char *)sqlite3_column_text(s, 0));
	done(st, s);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

static int put_in_transaction(struct tp_cas_store *st, const char *name, const char *owner,
			      const char *hash, const json_t *doc)
{
	json_t *bare = json_deep_copy(doc), *sec, *secrets;
	const char *sname;
	sqlite3_stmt *s;
	char *text_doc;
	int r = 0;

	if (!bare)
		return -ENOMEM;
	secrets = json_object_get(bare, "secrets");
	json_object_foreach(secrets, sname, sec) json_object_del(sec, "value");
	text_doc = json_dumps(bare, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(bare);
	if (!text_doc)
		return -ENOMEM;
	s = prepare(st, "INSERT OR REPLACE INTO policies (name, owner, hash, doc, updated)"
			" VALUES (?, ?, ?, ?, strftime('%s','now'))");
	if (!s) {
		free(text_doc);
		return -EIO;
	}
	text(s, 1, name);
	text(s, 2, owner);
	text(s, 3, hash);
	text(s, 4, text_doc);
	free(text_doc);
	r = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	done(st, s);
	if (r < 0)
		return r;
	if (!(s = prepare(st, "DELETE FROM secrets WHERE policy = ?")))
		return -EIO;
	text(s, 1, name);
	r = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
	done(st, s);
	if (r < 0 ||
	    !(s = prepare(st, "INSERT INTO secrets (policy, name, sealed) VALUES (?, ?, ?)")))
		return -EIO;
	json_object_foreach(json_object_get(doc, "secrets"), sname, sec)
	{
		const json_t *value = json_object_get(sec, "value");
		uint8_t *blob;
		size_t size;

		if ((r = seal_value(st, name, sname, json_string_value(value),
				    json_string_length(value), &blob, &size)) < 0)
			break;
		sqlite3_reset(s);
		text(s, 1, name);
		text(s, 2, sname);
		sqlite3_bind_blob(s, 3, blob, (int)size, free);
		if (sqlite3_step(s) != SQLITE_DONE) {
			r = -EIO;
			break;
		}
	}
	done(st, s);
	return r;
}

int tp_cas_store_policy_put(struct tp_cas_store *st, const char *name, const char *owner,
			    const json_t *doc, const char *predecessor, char hash[TP_CAS_HASH_HEX])
{
	uint8_t salt[TP_CAS_HASH_SALT_SIZE];
	char now[TP_CAS_HASH_HEX];
	int r;

	if (!st->master || tp_random(salt, sizeof(salt)) < 0)
		return -EIO;
	if ((r = tp_cas_policy_hash(doc, st->hash_key, salt, hash)) < 0)
		return r;
	if (exec(st, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	r = current_hash(st, name, now);
	if (!predecessor)
		r = r == 0 ? -EEXIST : r == -ENOENT ? 0 : r;
	else if (r == 0 && strcmp(now, predecessor) != 0)
		r = -ESTALE;
	if (r == 0)
		r = put_in_transaction(st, name, owner, hash, doc);
	if (r == 0 && exec(st, "COMMIT") == 0)
		return 0;
	exec(st, "ROLLBACK");
	return r < 0 ? r : -EIO;
}

int tp_cas_store_policy_delete(struct tp_cas_store *st, const char *name, const char *predecessor)
{
	char now[TP_CAS_HASH_HEX];
	sqlite3_stmt *s;
	int r;

	if (exec(st, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	r = current_hash(st, name, now);
	if (r == 0 && strcmp(now, predecessor) != 0)
		r = -ESTALE;
	for (int i = 0; r == 0 && i < 2; i++) {
		s = prepare(st, i == 0 ? "DELETE FROM secrets WHERE policy = ?" :
					 "DELETE FROM policies WHERE name = ?");
		if (!s) {
			r = -EIO;
			break;
		}
		text(s, 1, name);
		r = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
		done(st, s);
	}
	if (r == 0 && exec(st, "COMMIT") == 0)
		return 0;
	exec(st, "ROLLBACK");
	return r < 0 ? r : -EIO;
}

json_t *tp_cas_store_policy_list(struct tp_cas_store *st, const char *owner)
{
	sqlite3_stmt *s =
	    prepare(st, "SELECT name, hash FROM policies WHERE owner = ? ORDER BY name");
	json_t *list = json_array();
	int r;

	if (!s || !list) {
		done(st, s);
		json_decref(list);
		return NULL;
	}
	text(s, 1, owner);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		const char *hash = (const char *)sqlite3_column_text(s, 1);
		/* a NULL column or no memory fails the list, as a step that fails does:
		 * a list cut short would read as the whole */
		if (!name || !hash ||
		    json_array_append_new(
			list, json_pack("{s:s, s:s}", "name", name, "hash", hash)) < 0) {
			r = SQLITE_ERROR;
			break;
		}
	}
	done(st, s);
	if (r != SQLITE_DONE) {
		json_decref(list);
		return NULL;
	}
	return list;
}

/* ---- challenges and the replay cache ---- */

/* Forgets the nonces that expired more than a day before now (used or not): until
 * then a late use is told "expired" or "already used" rather than "not given". */
static void forget_nonces(struct tp_cas_store *st, int64_t now)
{
	sqlite3_stmt *s = prepare(st, "DELETE FROM nonces WHERE expires < ?");

	if (s) {
		sqlite3_bind_int64(s, 1, now - 86400);
		sqlite3_step(s);
		done(st, s);
	}
}

int tp_cas_store_nonce_add(struct tp_cas_store *st, const char *nonce, int64_t now, int64_t expires,
			   unsigned max_open)
{
	sqlite3_stmt *s;
	int r;

	/* A challenge's commit does not make its request wait for the disk: one lost to a
	 * power cut costs its runtime a retry ("not given"), and the attest that uses it
	 * waits for the WAL as a whole, this challenge with it. */
	bool dirty = st->dirty;

	if (exec(st, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	forget_nonces(st, now);
	/* challenges nobody used up yet: each is a row, and anyone may ask for one */
	s = prepare(st, "SELECT COUNT(*) FROM nonces WHERE expires >= ? AND used = 0");
	if (!s) {
		r = -EIO;
	} else {
		sqlite3_bind_int64(s, 1, now);
		r = sqlite3_step(s) != SQLITE_ROW		    ? -EIO :
		    sqlite3_column_int64(s, 0) >= (int64_t)max_open ? -EBUSY :
								      0;
		done(st, s);
	}
	if (r == 0 && !(s = prepare(st, "INSERT INTO nonces (nonce, expires) VALUES (?, ?)")))
		r = -EIO;
	if (r == 0) {
		text(s, 1, nonce);
		sqlite3_bind_int64(s, 2, expires);
		r = sqlite3_step(s);
		done(st, s);
		r = r == SQLITE_DONE ? 0 : r == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
	}
	if (r == 0 && exec(st, "COMMIT") < 0)
		r = -EIO;
	if (r < 0)
		exec(st, "ROLLBACK");
	st->dirty = dirty;
	return r;
}

/* Undoes what a savepoint's statements did and ends it. */
static void undo(struct tp_cas_store *st, const char *rollback_to, const char *release)
{
	exec(st, rollback_to);
	exec(st, release);
}

int tp_cas_store_nonce_take(struct tp_cas_store *st, const char *nonce, int64_t now)
{
	static const char rollback[] = "ROLLBACK TO nonce_take", release[] = "RELEASE nonce_take";
	sqlite3_stmt *s;
	int64_t expires = 0;
	int used = 0, r;

	/* a savepoint: its own transaction, or part of the caller's (an attest's, which
	 * commits the nonce used with its audit row) */
	if (exec(st, "SAVEPOINT nonce_take") < 0)
		return -EIO;
	forget_nonces(st, now);
	if (!(s = prepare(st, "SELECT expires, used FROM nonces WHERE nonce = ?"))) {
		undo(st, rollback, release);
		return -EIO;
	}
	text(s, 1, nonce);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		expires = sqlite3_column_int64(s, 0);
		used = sqlite3_column_int(s, 1);
	}
	done(st, s);
	if (r != SQLITE_ROW) {
		undo(st, rollback, release);
		return r == SQLITE_DONE ? -ENOENT : -EIO;
	}
	if (!used) {
		/* a nonce not marked used is not taken: any failure here fails the attest */
		if (!(s = prepare(st, "UPDATE nonces SET used = 1 WHERE nonce = ?"))) {
			undo(st, rollback, release);
			return -EIO;
		}
		text(s, 1, nonce);
		r = sqlite3_step(s);
		done(st, s);
		if (r != SQLITE_DONE) {
			undo(st, rollback, release);
			return -EIO;
		}
	}
	if (exec(st, release) < 0) {
		undo(st, rollback, release);
		return -EIO;
	}
	return used ? -EALREADY : now > expires ? -ETIME : 0;
}

int tp_cas_store_begin(struct tp_cas_store *st)
{
	return exec(st, "BEGIN IMMEDIATE");
}

int tp_cas_store_commit(struct tp_cas_store *st)
{
	if (exec(st, "COMMIT") == 0)
		return 0;
	exec(st, "ROLLBACK");
	return -EIO;
}

/* ---- waiting for the disk ---- */

uint64_t tp_cas_store_written(struct tp_cas_store *st)
{
	uint64_t mark;

	if (!st->dirty)
		return 0;
	st->dirty = false;
	pthread_mutex_lock(&st->sync_lock);
	mark = ++st->written;
	pthread_mutex_unlock(&st->sync_lock);
	return mark;
}

/* fdatasync of the WAL, which holds every commit since the last checkpoint (SQLite
 * syncs the database after a checkpoint, before it writes the WAL over). The first
 * also syncs the directory, whose entry names the WAL. */
static int sync_wal(struct tp_cas_store *st)
{
	if (st->wal_fd < 0) {
		char *dir = strdup(st->wal_path), *slash = dir ? strrchr(dir, '/') : NULL;
		int fd;

		if (!dir)
			return -ENOMEM;
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(dir);
		if (fd < 0 || fsync(fd) < 0) {
			int r = -errno;
			if (fd >= 0)
				close(fd);
			return r;
		}
		close(fd);
		if ((st->wal_fd = open(st->wal_path, O_RDONLY | O_CLOEXEC)) < 0)
			return -errno;
	}
	return fdatasync(st->wal_fd) < 0 ? -errno : 0;
}

int tp_cas_store_sync(struct tp_cas_store *st, uint64_t mark)
{
	int r;

	pthread_mutex_lock(&st->sync_lock);
	while (st->synced < mark && !st->sync_failed) {
		if (st->syncing) {
			pthread_cond_wait(&st->synced_cond, &st->sync_lock);
			continue;
		}
		/* this thread syncs, for every mark handed out so far (whose writes are
		 * all in the WAL: a mark is handed out after them) */
		uint64_t upto = st->written;
		st->syncing = true;
		pthread_mutex_unlock(&st->sync_lock);
		r = sync_wal(st);
		pthread_mutex_lock(&st->sync_lock);
		st->syncing = false;
		/* after a failed fdatasync the kernel may have dropped the pages it could
		 * not write: nothing written since the last good one is known to last */
		if (r < 0)
			st->sync_failed = true;
		else
			st->synced = upto;
		pthread_cond_broadcast(&st->synced_cond);
	}
	r = st->synced >= mark ? 0 : -EIO;
	pthread_mutex_unlock(&st->sync_lock);
	return r;
}

int tp_cas_store_replay_add(struct tp_cas_store *st, const char *signature, int64_t expires,
			    int64_t now)
{
	sqlite3_stmt *s = prepare(st, "DELETE FROM replay WHERE expires < ?");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_step(s);
	done(st, s);
	if (!(s = prepare(st, "INSERT INTO replay (signature, expires) VALUES (?, ?)")))
		return -EIO;
	text(s, 1, signature);
	sqlite3_bind_int64(s, 2, expires);
	r = sqlite3_step(s);
	done(st, s);
	return r == SQLITE_DONE ? 0 : r == SQLITE_CONSTRAINT ? -EALREADY : -EIO;
}

/* ---- the audit log ---- */

int tp_cas_store_audit(struct tp_cas_store *st, const struct tp_cas_audit *row)
{
	sqlite3_stmt *s = prepare(st, "INSERT INTO audit (time, remote, op, subject, outcome,"
				      " reason) VALUES (?, ?, ?, ?, ?, ?)");
	int r;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, row->time);
	text(s, 2, row->remote ? row->remote : "");
	text(s, 3, row->op);
	text(s, 4, row->subject ? row->subject : "");
	text(s, 5, row->outcome);
	text(s, 6, row->reason ? row->reason : "");
	r = sqlite3_step(s);
	done(st, s);
	return r == SQLITE_DONE ? 0 : -EIO;
}

int tp_cas_store_audit_each(struct tp_cas_store *st, bool denied_only,
			    int (*fn)(const struct tp_cas_audit *row, void *ctx), void *ctx)
{
	sqlite3_stmt *s = prepare(
	    st, denied_only ?
		    "SELECT * FROM audit WHERE outcome IN ('denied', 'refused') ORDER BY id" :
		    "SELECT * FROM audit ORDER BY id");
	int r = 0, step;

	if (!s)
		return -EIO;
	while (r == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
		struct tp_cas_audit row = {
			.id = sqlite3_column_int64(s, 0),
			.time = sqlite3_column_int64(s, 1),
			.remote = (const char *)sqlite3_column_text(s, 2),
			.op = (const char *)sqlite3_column_text(s, 3),
			.subject = (const char *)sqlite3_column_text(s, 4),
			.outcome = (const char *)sqlite3_column_text(s, 5),
			.reason = (const char *)sqlite3_column_text(s, 6),
		};
		r = fn(&row, ctx);
	}
	done(st, s);
	return r;
}
