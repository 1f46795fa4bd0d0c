/* Canonical manifest JSON with jansson. Parsing is strict: unknown keys, wrong
 * types, unsorted or duplicate files, bad hashes and non-canonical bytes are all
 * refused, so one manifest has exactly one byte representation to sign. */
#include "manifest.h"
#include "engine.h"
#include "manifest_json.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_SIZE (1ULL << 40)
#define MAX_FILES     1000000
#define MAX_TREES     256

int tp_strlist_push(struct tp_strlist *l, const char *s)
{
	char **items = realloc(l->items, (l->count + 1) * sizeof(*items));

	if (!items)
		return -ENOMEM;
	l->items = items;
	items[l->count] = strdup(s);
	if (!items[l->count])
		return -ENOMEM;
	l->count++;
	return 0;
}

void tp_strlist_free(struct tp_strlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

bool tp_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

const char *tp_escape(const char *s, char *out, size_t size)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[n++] = (char)c;
		} else if (c == '\\') {
			out[n++] = '\\';
			out[n++] = '\\';
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = digits[c >> 4];
			out[n++] = digits[c & 15];
		}
	}
	if (*s && size >= 4) { /* cut short: say so */
		while (n + 4 > size)
			n--;
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

bool tp_path_is_normal(const char *path)
{
	/* a control character in a name has no use but to forge lines on a terminal */
	if (!path || path[0] != '/' || strlen(path) > 4096 || tp_has_control(path))
		return false;
	if (strcmp(path, "/") == 0)
		return false;
	for (const char *p = path; *p;) {
		const char *start = ++p; /* past the slash */
		size_t len = strcspn(start, "/");
		if (len == 0 || (len == 1 && start[0] == '.') ||
		    (len == 2 && start[0] == '.' && start[1] == '.'))
			return false;
		p = start + len;
	}
	return true;
}

bool tp_module_name_ok(const char *name)
{
	/* dotted ASCII identifiers: "json", "numpy.linalg"; what import takes, minus
	 * the non-ASCII identifiers nobody preloads */
	size_t len = strlen(name);

	if (len == 0 || len > 255)
		return false;
	for (const char *p = name; *p; p++) {
		bool start = p == name || p[-1] == '.';
		if (*p == '.' && !start && p[1] != '\0')
			continue;
		if (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			continue;
		if (!start && *p >= '0' && *p <= '9')
			continue;
		return false;
	}
	return true;
}

void tp_manifest_free(struct tp_manifest *m)
{
	free(m->entry);
	tp_strlist_free(&m->argv);
	tp_strlist_free(&m->env);
	tp_strlist_free(&m->python_path);
	tp_strlist_free(&m->site);
	tp_strlist_free(&m->preload);
	for (size_t i = 0; i < m->file_count; i++)
		free(m->files[i].path);
	free(m->files);
	for (size_t i = 0; i < m->tree_count; i++)
		free(m->trees[i].path);
	free(m->trees);
	memset(m, 0, sizeof(*m));
}

void tp_manifest_engine_this(struct tp_manifest_engine *e)
{
	tp_manifest_engine_of(tp_engine_built(TP_ENGINE_CPYTHON), e);
}

void tp_manifest_init(struct tp_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->format = TP_MANIFEST_FORMAT;
	m->limits = tp_limits_default();
	m->processes = TP_PROCESSES_NONE;
	m->network = TP_NETWORK_NONE;
	tp_manifest_engine_this(&m->engine);
	m->encryption.cipher = TP_CIPHER_NONE;
}

static const char *const engine_names[] = {
	[TP_ENGINE_CPYTHON] = "cpython", [TP_ENGINE_PYPY] = "pypy"
};
static const char *const network_names[] = {
	[TP_NETWORK_NONE] = "none", [TP_NETWORK_LISTEN] = "listen"
};
static const char *const tree_kind_names[] = { [TP_TREE_PREFIX] = "prefix",
					       [TP_TREE_LIBRARIES] = "libraries",
					       [TP_TREE_PACKAGES] = "packages",
					       [TP_TREE_VENV] = "venv" };
static const char *const cipher_names[] = {
	[TP_CIPHER_NONE] = "none", [TP_CIPHER_AES_256_GCM] = "aes-256-gcm"
};

#define COUNT(table)	  (sizeof(table) / sizeof((table)[0]))
#define NAME_OF(table, i) ((size_t)(i) < COUNT(table) ? table[i] : "?")

const char *tp_engine_name(enum tp_engine e)
{
	return NAME_OF(engine_names, e);
}

const char *tp_network_name(enum tp_network n)
{
	return NAME_OF(network_names, n);
}

const char *tp_tree_kind_name(enum tp_tree_kind k)
{
	return NAME_OF(tree_kind_names, k);
}

const char *tp_cipher_name(enum tp_cipher c)
{
	return NAME_OF(cipher_names, c);
}

/* The index of name in table, or -1. */
static int name_index(const char *const *table, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(table[i], name) == 0)
			return (int)i;
	return -1;
}

bool tp_manifest_any_encrypted(const struct tp_manifest *m)
{
	if (m->encryption.cipher != TP_CIPHER_NONE)
		return true;
	for (size_t i = 0; i < m->file_count; i++)
		if (m->files[i].encrypted)
			return true;
	return false;
}

int tp_manifest_check_runnable(const struct tp_manifest *m, char *err, size_t err_size)
{
	const struct tp_engine_build *built = tp_engine_built(m->engine.name);
	struct tp_manifest_engine this;

	if (!built) {
		snprintf(err, err_size,
			 "engine %s is not built into this teepy (install pypy3 and pypy3-dev, "
			 "then rebuild teepy)",
			 tp_engine_name(m->engine.name));
		return -ENOTSUP;
	}
	tp_manifest_engine_of(built, &this);
	if (strcmp(m->engine.version, this.version) != 0) {
		snprintf(err, err_size,
			 "engine %s %s is not supported by this teepy, which runs %s %s (rebuild "
			 "the bundle with this teepy)",
			 tp_engine_name(m->engine.name), m->engine.version,
			 tp_engine_name(this.name), this.version);
		return -ENOTSUP;
	}
	return 0;
}

static int compare_files(const void *a, const void *b)
{
	return strcmp(((const struct tp_manifest_file *)a)->path,
		      ((const struct tp_manifest_file *)b)->path);
}

static int compare_trees(const void *a, const void *b)
{
	return strcmp(((const struct tp_manifest_tree *)a)->path,
		      ((const struct tp_manifest_tree *)b)->path);
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int tp_manifest_finish(struct tp_manifest *m, char *err, size_t err_size)
{
	uint64_t offset = 0;

	/* qsort must not be given a NULL array, even of no elements */
	if (m->file_count > 1)
		qsort(m->files, m->file_count, sizeof(m->files[0]), compare_files);
	if (m->env.count > 1)
		qsort(m->env.items, m->env.count, sizeof(char *), compare_strings);
	if (m->tree_count > 1)
		qsort(m->trees, m->tree_count, sizeof(m->trees[0]), compare_trees);
	for (size_t i = 1; i < m->tree_count; i++) {
		if (strcmp(m->trees[i - 1].path, m->trees[i].path) == 0) {
			snprintf(err, err_size, "tree %s is listed twice", m->trees[i].path);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < m->file_count; i++) {
		if (i && strcmp(m->files[i - 1].path, m->files[i].path) == 0) {
			snprintf(err, err_size, "file %s is listed twice", m->files[i].path);
			return -EINVAL;
		}
		m->files[i].offset = m->files[i].bundled ? offset : 0;
		if (m->files[i].bundled)
			offset += m->files[i].size;
	}
	return 0;
}

uint64_t tp_manifest_blob_size(const struct tp_manifest *m)
{
	uint64_t total = 0;

	for (size_t i = 0; i < m->file_count; i++)
		if (m->files[i].bundled)
			total += m->files[i].size;
	return total;
}

void tp_manifest_measure(const char *canonical, size_t size, uint8_t out[32])
{
	static const char tag[] = "teepy-app-v1"; /* the NUL is part of the tag */
	struct tp_sha256 *ctx = tp_sha256_new();

	tp_sha256_update(ctx, tag, sizeof(tag));
	tp_sha256_update(ctx, canonical, size);
	tp_sha256_final(ctx, out);
}

/* ---- encoding ---- */

/* NULL when an item is not UTF-8 (jansson refuses it): the caller fails. */
static json_t *string_array(const struct tp_strlist *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->count; i++) {
		if (json_array_append_new(a, json_string(l->items[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static bool path_under(const char *path, const char *dir);

/* Whether a file may be bundled at path: the app's own, or (format 3) the venv's;
 * a bundled interpreter or stdlib module would run before the runtime's last
 * seccomp stage. */
static bool bundled_place(const char *path, unsigned format, const char **dirs)
{
	*dirs = format >= 3 ? TP_APP_DIR " and " TP_VENV_DIR : TP_APP_DIR;
	return (path_under(path, TP_APP_DIR) && strcmp(path, TP_APP_DIR) != 0) ||
	       (format >= 3 && path_under(path, TP_VENV_DIR) && strcmp(path, TP_VENV_DIR) != 0);
}

unsigned tp_manifest_lowest_format(const struct tp_manifest *m)
{
	const char *dirs;

	if (m->site.count)
		return 3;
	for (size_t i = 0; i < m->file_count; i++)
		if (m->files[i].bundled && !bundled_place(m->files[i].path, 2, &dirs))
			return 3;
	return 2;
}

/* Format 1 has no key for these: a format 1 manifest must leave them at their
 * defaults (the engine's version is this teepy's, whatever it says). */
static bool fits_format_1(const struct tp_manifest *m)
{
	return m->network == TP_NETWORK_NONE && m->engine.name == TP_ENGINE_CPYTHON &&
	       m->product_id == 0 && m->security_version == 0 && m->tree_count == 0 &&
	       !tp_manifest_any_encrypted(m);
}

static json_t *encode_engine(const struct tp_manifest_engine *e)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(tp_engine_name(e->name)));
	json_object_set_new(o, "version", json_string(e->version));
	return o;
}

json_t *tp_manifest_encryption_json(const struct tp_manifest_encryption *e)
{
	json_t *o;

	if (e->cipher == TP_CIPHER_NONE)
		return json_null();
	o = json_object();
	json_object_set_new(o, "algorithm", json_string(tp_cipher_name(e->cipher)));
	json_object_set_new(o, "chunk_size", json_integer(e->chunk_size));
	json_object_set_new(o, "key_id", json_string(e->key_id));
	return o;
}

/* NULL when a path is not UTF-8. */
json_t *tp_manifest_trees_json(const struct tp_manifest *m)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < m->tree_count; i++) {
		json_t *t = json_object();
		json_object_set_new(t, "kind", json_string(tp_tree_kind_name(m->trees[i].kind)));
		if (json_object_set_new(t, "path", json_string(m->trees[i].path)) < 0 ||
		    json_array_append_new(a, t) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int tp_manifest_to_json(const struct tp_manifest *m, char **out, size_t *size)
{
	json_t *root = json_object(), *files = json_object(), *env = json_object();
	json_t *limits = json_object(), *policy = json_object();
	const struct tp_limits *l = &m->limits;
	bool v2 = m->format >= 2;
	char hex[65];
	int r = -ENOMEM;

	if (m->format < TP_MANIFEST_FORMAT_MIN || m->format > TP_MANIFEST_FORMAT ||
	    (m->format == 1 && !fits_format_1(m)) ||
	    (m->format < 3 && tp_manifest_lowest_format(m) >= 3)) {
		r = -EINVAL;
		goto out;
	}
	if (!root || !files || !env || !limits || !policy)
		goto out;
	for (size_t i = 0; i < m->env.count; i++) {
		const char *eq = strchr(m->env.items[i], '=');
		char name[256];
		size_t len = eq ? (size_t)(eq - m->env.items[i]) : 0;
		if (!eq || len >= sizeof(name)) {
			r = -ENAMETOOLONG;
			goto out;
		}
		memcpy(name, m->env.items[i], len);
		name[len] = '\0';
		if (json_object_set_new(env, name, json_string(eq + 1)) < 0) {
			r = -EILSEQ;
			goto out;
		}
	}
	for (size_t i = 0; i < m->file_count; i++) {
		const struct tp_manifest_file *f = &m->files[i];
		json_t *entry = json_object();
		tp_hex(f->sha256, 32, hex);
		json_object_set_new(entry, "bundled", json_boolean(f->bundled));
		json_object_set_new(entry, "encrypted", json_boolean(f->encrypted));
		json_object_set_new(entry, "mode", json_integer(f->mode));
		json_object_set_new(entry, "mtime", json_integer((json_int_t)f->mtime));
		json_object_set_new(entry, "sha256", json_string(hex));
		json_object_set_new(entry, "size", json_integer((json_int_t)f->size));
		if (f->encrypted) {
			tp_hex(f->id, 32, hex);
			json_object_set_new(entry, "id", json_string(hex));
		}
		if (json_object_set_new(files, f->path, entry) < 0) {
			r = -EILSEQ; /* a file name that is not UTF-8 */
			goto out;
		}
	}
	json_object_set_new(limits, "cpu_ms", json_integer((json_int_t)l->cpu_ms));
	json_object_set_new(limits, "memory", json_integer((json_int_t)l->memory_bytes));
	json_object_set_new(limits, "threads", json_integer(l->threads));
	json_object_set_new(limits, "timeout_ms", json_integer((json_int_t)l->timeout_ms));
	json_object_set_new(
	    policy, "processes",
	    json_string(m->processes == TP_PROCESSES_MANIFEST ? "manifest" : "none"));
	json_object_set_new(policy, "scratch", json_integer((json_int_t)l->scratch_bytes));
	if (v2)
		json_object_set_new(policy, "network", json_string(tp_network_name(m->network)));

	/* every string must be UTF-8: a name or value jansson refuses fails the whole */
	bool ok = json_object_set_new(policy, "preload", string_array(&m->preload)) == 0;
	ok = json_object_set_new(root, "argv", string_array(&m->argv)) == 0 && ok;
	ok = json_object_set_new(root, "entry", json_string(m->entry ? m->entry : "")) == 0 && ok;
	json_object_set_new(root, "env", env);
	json_object_set_new(root, "files", files);
	json_object_set_new(root, "format", json_integer(m->format));
	json_object_set_new(root, "limits", limits);
	json_object_set_new(root, "policy", policy);
	ok = json_object_set_new(root, "python_path", string_array(&m->python_path)) == 0 && ok;
	if (v2) {
		json_object_set_new(root, "encryption",
				    tp_manifest_encryption_json(&m->encryption));
		ok = json_object_set_new(root, "engine", encode_engine(&m->engine)) == 0 && ok;
		json_object_set_new(root, "product_id", json_integer(m->product_id));
		json_object_set_new(root, "security_version", json_integer(m->security_version));
		ok = json_object_set_new(root, "trees", tp_manifest_trees_json(m)) == 0 && ok;
	}
	if (m->format >= 3)
		ok = json_object_set_new(root, "site", string_array(&m->site)) == 0 && ok;
	env = files = limits = policy = NULL;
	if (!ok) {
		r = -EILSEQ;
		goto out;
	}

	*out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	if (!*out)
		goto out;
	*size = strlen(*out);
	r = 0;
out:
	json_decref(root);
	json_decref(files);
	json_decref(env);
	json_decref(limits);
	json_decref(policy);
	return r;
}

/* ---- decoding ---- */

static int bad(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, err_size, "manifest: ");
	va_start(ap, fmt);
	vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Every key of obj must be one of names (NULL-terminated). */
static int only_keys(json_t *obj, const char *where, const char *const *names, char *err,
		     size_t err_size)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value)
	{
		bool known = false;
		(void)value;
		for (const char *const *n = names; *n; n++)
			known = known || strcmp(key, *n) == 0;
		if (!known)
			return bad(err, err_size, "unknown key \"%s\" in %s", key, where);
	}
	for (const char *const *n = names; *n; n++)
		if (!json_object_get(obj, *n))
			return bad(err, err_size, "%s lacks \"%s\"", where, *n);
	return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *out, char *err,
		    size_t err_size)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return bad(err, err_size, "\"%s\" must be an integer from 0 to %llu", key,
			   (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

enum strings_kind { ANY_STRINGS, PATHS, NAMES };

static int get_strings(json_t *obj, const char *key, struct tp_strlist *out, enum strings_kind kind,
		       char *err, size_t err_size)
{
	json_t *a = json_object_get(obj, key), *v;
	size_t i;

	if (!json_is_array(a))
		return bad(err, err_size, "\"%s\" must be a list of strings", key);
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return bad(err, err_size, "\"%s\"[%zu] must be a string without NUL", key,
				   i);
		if (kind == PATHS && !tp_path_is_normal(json_string_value(v)))
			return bad(err, err_size, "\"%s\"[%zu] is not a normal absolute path", key,
				   i);
		if (kind == NAMES && !tp_module_name_ok(json_string_value(v)))
			return bad(err, err_size, "\"%s\"[%zu] is not a module name", key, i);
		if (tp_strlist_push(out, json_string_value(v)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The runtime's own directory, devices and user database are teepy's, never a
 * bundle's: the reserved path path lies at or under, or NULL. */
static const char *runtime_owned(const char *path)
{
	static const char *const reserved[] = { "/.teepy", "/dev",	  "/proc",
						"/sys",	   "/etc/passwd", "/etc/group" };

	for (size_t i = 0; i < COUNT(reserved); i++) {
		size_t len = strlen(reserved[i]);
		if (strncmp(path, reserved[i], len) == 0 && (path[len] == '/' || path[len] == '\0'))
			return reserved[i];
	}
	return NULL;
}

static bool path_under(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

static int parse_file(const char *path, json_t *entry, unsigned format, struct tp_manifest_file *f,
		      char *err, size_t err_size)
{
	static const char *const keys[] = { "bundled", "encrypted", "mode", "mtime",
					    "sha256",  "size",	    NULL };
	static const char *const encrypted_keys[] = { "bundled", "encrypted", "id",   "mode",
						      "mtime",	 "sha256",    "size", NULL };
	const char *reserved;
	uint64_t mode;
	int r;

	if (!tp_path_is_normal(path)) {
		char shown[256];
		return bad(err, err_size, "file %s: not a normal absolute path",
			   tp_escape(path, shown, sizeof(shown)));
	}
	if (!json_is_object(entry))
		return bad(err, err_size, "file %s: entry must be an object", path);
	if ((reserved = runtime_owned(path)))
		return bad(err, err_size, "file %s: %s belongs to the runtime", path, reserved);
	/* an encrypted file of format 2 also names its protected-file id */
	json_t *encrypted = json_object_get(entry, "encrypted");
	if (encrypted && !json_is_boolean(encrypted))
		return bad(err, err_size, "file %s: \"encrypted\" must be true or false", path);
	if (format == 1 && json_is_true(encrypted))
		return bad(err, err_size, "file %s: \"encrypted\" must be false in format 1", path);
	if ((r = only_keys(entry, "a file entry", json_is_true(encrypted) ? encrypted_keys : keys,
			   err, err_size)) < 0)
		return r;
	if (!json_is_boolean(json_object_get(entry, "bundled")))
		return bad(err, err_size, "file %s: \"bundled\" must be true or false", path);
	if ((r = get_uint(entry, "mode", 07777, &mode, err, err_size)) < 0 ||
	    (r = get_uint(entry, "size", MAX_FILE_SIZE, &f->size, err, err_size)) < 0 ||
	    (r = get_uint(entry, "mtime", UINT32_MAX, &f->mtime, err, err_size)) < 0)
		return r;
	json_t *hash = json_object_get(entry, "sha256");
	if (!json_is_string(hash) || tp_unhex(json_string_value(hash), f->sha256, 32) < 0)
		return bad(err, err_size, "file %s: \"sha256\" must be 64 hex digits", path);
	if (json_is_true(encrypted)) {
		hash = json_object_get(entry, "id");
		if (!json_is_string(hash) || tp_unhex(json_string_value(hash), f->id, 32) < 0)
			return bad(err, err_size, "file %s: \"id\" must be 64 hex digits", path);
		/* its content comes with the bundle: a host file is never decrypted */
		if (!json_is_true(json_object_get(entry, "bundled")))
			return bad(err, err_size, "file %s: an encrypted file must be bundled",
				   path);
	}
	f->mode = (uint32_t)mode;
	f->bundled = json_is_true(json_object_get(entry, "bundled"));
	f->encrypted = json_is_true(encrypted);
	/* only the app's own files and its venv's travel in a bundle */
	const char *dirs;
	if (f->bundled && !bundled_place(path, format, &dirs))
		return bad(err, err_size, "file %s: only files under %s can be bundled%s", path,
			   dirs, format < 3 ? " (in format 3 also /venv)" : "");
	f->path = strdup(path);
	return f->path ? 0 : -ENOMEM;
}

/* "MAJOR.MINOR": one to three digits each, no leading zero (one spelling each). */
static bool engine_version_ok(const char *v)
{
	for (int part = 0; part < 2; part++) {
		size_t digits = strspn(v, "0123456789");
		if (digits == 0 || digits > 3 || (digits > 1 && v[0] == '0'))
			return false;
		v += digits;
		if (part == 0 && *v++ != '.')
			return false;
	}
	return *v == '\0';
}

static int parse_engine(json_t *obj, struct tp_manifest_engine *e, char *err, size_t err_size)
{
	static const char *const keys[] = { "name", "version", NULL };
	json_t *name, *version;
	int r, i;

	if (!json_is_object(obj))
		return bad(err, err_size, "\"engine\" must be an object");
	if ((r = only_keys(obj, "\"engine\"", keys, err, err_size)) < 0)
		return r;
	name = json_object_get(obj, "name");
	version = json_object_get(obj, "version");
	i = json_is_string(name) ?
		name_index(engine_names, COUNT(engine_names), json_string_value(name)) :
		-1;
	if (i < 0)
		return bad(err, err_size, "\"engine\".\"name\" must be \"cpython\" or \"pypy\"");
	if (!json_is_string(version) || !engine_version_ok(json_string_value(version)))
		return bad(
		    err, err_size,
		    "\"engine\".\"version\" must be the Python version MAJOR.MINOR (\"3.11\")");
	e->name = (enum tp_engine)i;
	snprintf(e->version, sizeof(e->version), "%s", json_string_value(version));
	return 0;
}

/* A key id is what a CAS names a key by: ASCII letters, digits and ._:/- */
static bool key_id_ok(const char *id)
{
	size_t len = strlen(id);

	return len >= 1 && len <= TP_MANIFEST_KEY_ID_MAX &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-") ==
		   len;
}

static int parse_encryption(json_t *obj, struct tp_manifest_encryption *e, char *err,
			    size_t err_size)
{
	static const char *const keys[] = { "algorithm", "chunk_size", "key_id", NULL };
	json_t *algorithm, *key_id;
	uint64_t chunk;
	int r;

	if (json_is_null(obj)) {
		e->cipher = TP_CIPHER_NONE;
		return 0;
	}
	if (!json_is_object(obj))
		return bad(err, err_size, "\"encryption\" must be null or an object");
	if ((r = only_keys(obj, "\"encryption\"", keys, err, err_size)) < 0)
		return r;
	algorithm = json_object_get(obj, "algorithm");
	if (!json_is_string(algorithm) ||
	    strcmp(json_string_value(algorithm), cipher_names[TP_CIPHER_AES_256_GCM]) != 0)
		return bad(err, err_size, "\"encryption\".\"algorithm\" must be \"aes-256-gcm\"");
	if ((r = get_uint(obj, "chunk_size", TP_MANIFEST_CHUNK_MAX, &chunk, err, err_size)) < 0)
		return r;
	if (chunk < TP_MANIFEST_CHUNK_MIN || (chunk & (chunk - 1)) != 0)
		return bad(err, err_size,
			   "\"encryption\".\"chunk_size\" must be a power of 2 from %u to %u",
			   TP_MANIFEST_CHUNK_MIN, TP_MANIFEST_CHUNK_MAX);
	key_id = json_object_get(obj, "key_id");
	if (!json_is_string(key_id) || !key_id_ok(json_string_value(key_id)))
		return bad(err, err_size,
			   "\"encryption\".\"key_id\" must be 1 to %d ASCII letters, digits or "
			   "._:/-",
			   TP_MANIFEST_KEY_ID_MAX);
	e->cipher = TP_CIPHER_AES_256_GCM;
	e->chunk_size = (uint32_t)chunk;
	snprintf(e->key_id, sizeof(e->key_id), "%s", json_string_value(key_id));
	return 0;
}

static int parse_trees(json_t *a, struct tp_manifest *m, char *err, size_t err_size)
{
	static const char *const keys[] = { "kind", "path", NULL };
	json_t *t;
	size_t i;
	int r;

	if (!json_is_array(a) || json_array_size(a) > MAX_TREES)
		return bad(err, err_size, "\"trees\" must be a list of at most %d trees",
			   MAX_TREES);
	m->trees = calloc(json_array_size(a) + 1, sizeof(*m->trees));
	if (!m->trees)
		return -ENOMEM;
	json_array_foreach(a, i, t)
	{
		json_t *kind = json_object_get(t, "kind"), *path = json_object_get(t, "path");
		const char *p, *reserved;
		int k;
		if (!json_is_object(t))
			return bad(err, err_size, "\"trees\"[%zu] must be an object", i);
		if ((r = only_keys(t, "a tree", keys, err, err_size)) < 0)
			return r;
		k = json_is_string(kind) ? name_index(tree_kind_names, COUNT(tree_kind_names),
						      json_string_value(kind)) :
					   -1;
		if (k < 0)
			return bad(err, err_size,
				   "\"trees\"[%zu].\"kind\" must be \"prefix\", \"libraries\", "
				   "\"packages\" or \"venv\"",
				   i);
		if (!json_is_string(path) || !tp_path_is_normal(json_string_value(path)))
			return bad(err, err_size, "\"trees\"[%zu] is not a normal absolute path",
				   i);
		p = json_string_value(path);
		if ((reserved = runtime_owned(p)))
			return bad(err, err_size, "tree %s: %s belongs to the runtime", p,
				   reserved);
		if (path_under(p, TP_APP_DIR) || path_under(p, TP_VENV_DIR))
			return bad(err, err_size, "tree %s: the files under %s and %s are bundled",
				   p, TP_APP_DIR, TP_VENV_DIR);
		if (i && strcmp(m->trees[i - 1].path, p) >= 0)
			return bad(err, err_size,
				   "\"trees\" must be sorted by path, each path once");
		if (!(m->trees[i].path = strdup(p)))
			return -ENOMEM;
		m->trees[i].kind = (enum tp_tree_kind)k;
		m->tree_count++;
	}
	return 0;
}

/* With trees, every system file lies under one of them; without, each stands
 * at its own path (format 1's behaviour). */
static int check_trees(const struct tp_manifest *m, char *err, size_t err_size)
{
	for (size_t i = 0; m->tree_count && i < m->file_count; i++) {
		bool inside = m->files[i].bundled;
		for (size_t t = 0; !inside && t < m->tree_count; t++)
			inside = path_under(m->files[i].path, m->trees[t].path);
		if (!inside)
			return bad(err, err_size, "file %s lies under none of the manifest's trees",
				   m->files[i].path);
	}
	return 0;
}

static int parse_env(json_t *obj, struct tp_manifest *m, char *err, size_t err_size)
{
	const char *key;
	json_t *value;
	int r;

	if (!json_is_object(obj))
		return bad(err, err_size, "\"env\" must be an object of strings");
	json_object_foreach(obj, key, value)
	{
		char assignment[8192];
		if (!json_is_string(value) || !*key || strchr(key, '=') || strlen(key) >= 256 ||
		    tp_has_control(key) ||
		    strlen(json_string_value(value)) != json_string_length(value)) {
			char shown[256];
			return bad(err, err_size, "\"env\" entry \"%s\" is not NAME: string",
				   tp_escape(key, shown, sizeof(shown)));
		}
		/* the program loader reads LD_*, PyPy's runtime PYPY* (its JIT's log, its
		 * collector): a manifest must not steer them */
		if (strncmp(key, "LD_", 3) == 0 || strncmp(key, "PYPY", 4) == 0)
			return bad(err, err_size, "\"env\" entry %.64s would steer the %s", key,
				   key[0] == 'L' ? "program loader" : "PyPy runtime");
		if ((size_t)snprintf(assignment, sizeof(assignment), "%s=%s", key,
				     json_string_value(value)) >= sizeof(assignment))
			return bad(err, err_size, "\"env\" entry \"%s\" is too long", key);
		if ((r = tp_strlist_push(&m->env, assignment)) < 0)
			return r;
	}
	return 0;
}

static int parse_limits(json_t *obj, struct tp_limits *l, char *err, size_t err_size)
{
	static const char *const keys[] = { "cpu_ms", "memory", "threads", "timeout_ms", NULL };
	uint64_t threads;
	int r;

	if (!json_is_object(obj))
		return bad(err, err_size, "\"limits\" must be an object");
	if ((r = only_keys(obj, "\"limits\"", keys, err, err_size)) < 0 ||
	    (r = get_uint(obj, "cpu_ms", UINT32_MAX * 1000ULL, &l->cpu_ms, err, err_size)) < 0 ||
	    (r = get_uint(obj, "memory", 1ULL << 50, &l->memory_bytes, err, err_size)) < 0 ||
	    (r = get_uint(obj, "timeout_ms", UINT32_MAX * 1000ULL, &l->timeout_ms, err, err_size)) <
		0 ||
	    (r = get_uint(obj, "threads", TP_MAX_THREADS, &threads, err, err_size)) < 0)
		return r;
	l->threads = (unsigned)threads;
	if (!l->cpu_ms || !l->memory_bytes || !l->timeout_ms || !l->threads)
		return bad(err, err_size, "\"limits\" must all be more than 0");
	return 0;
}

static int parse_policy(json_t *obj, struct tp_manifest *m, char *err, size_t err_size)
{
	static const char *const keys_v1[] = { "preload", "processes", "scratch", NULL };
	static const char *const keys_v2[] = { "network", "preload", "processes", "scratch", NULL };
	json_t *value;
	int r;

	if (!json_is_object(obj))
		return bad(err, err_size, "\"policy\" must be an object");
	if ((r = only_keys(obj, "\"policy\"", m->format == 1 ? keys_v1 : keys_v2, err, err_size)) <
		0 ||
	    (r = get_uint(obj, "scratch", 1ULL << 50, &m->limits.scratch_bytes, err, err_size)) <
		0 ||
	    (r = get_strings(obj, "preload", &m->preload, NAMES, err, err_size)) < 0)
		return r;
	value = json_object_get(obj, "processes");
	if (json_is_string(value) && strcmp(json_string_value(value), "none") == 0)
		m->processes = TP_PROCESSES_NONE;
	else if (json_is_string(value) && strcmp(json_string_value(value), "manifest") == 0)
		m->processes = TP_PROCESSES_MANIFEST;
	else
		return bad(err, err_size, "\"processes\" must be \"none\" or \"manifest\"");
	if (m->format == 1)
		return 0;
	value = json_object_get(obj, "network");
	int n = json_is_string(value) ?
		    name_index(network_names, COUNT(network_names), json_string_value(value)) :
		    -1;
	if (n < 0)
		return bad(err, err_size, "\"network\" must be \"none\" or \"listen\"");
	m->network = (enum tp_network)n;
	return 0;
}

/* The keys format 2 adds at the top: engine, identity, trees, encryption. */
static int parse_format_2(json_t *root, struct tp_manifest *m, char *err, size_t err_size)
{
	uint64_t v;
	int r;

	if ((r = parse_engine(json_object_get(root, "engine"), &m->engine, err, err_size)) < 0 ||
	    (r = get_uint(root, "product_id", TP_MANIFEST_MAX_ID, &v, err, err_size)) < 0)
		return r;
	m->product_id = (uint32_t)v;
	if ((r = get_uint(root, "security_version", TP_MANIFEST_MAX_ID, &v, err, err_size)) < 0)
		return r;
	m->security_version = (uint32_t)v;
	if ((r = parse_encryption(json_object_get(root, "encryption"), &m->encryption, err,
				  err_size)) < 0)
		return r;
	return parse_trees(json_object_get(root, "trees"), m, err, err_size);
}

/* The key format 3 adds: the site directories, each a python_path entry strictly
 * under /venv, once. */
static int parse_format_3(json_t *root, struct tp_manifest *m, char *err, size_t err_size)
{
	int r = get_strings(root, "site", &m->site, PATHS, err, err_size);

	for (size_t i = 0; r == 0 && i < m->site.count; i++) {
		const char *dir = m->site.items[i];
		bool on_path = false;
		if (!path_under(dir, TP_VENV_DIR) || strcmp(dir, TP_VENV_DIR) == 0)
			return bad(err, err_size, "site %s: a site directory lies under %s", dir,
				   TP_VENV_DIR);
		for (size_t k = 0; k < m->python_path.count; k++)
			on_path = on_path || strcmp(m->python_path.items[k], dir) == 0;
		if (!on_path)
			return bad(err, err_size, "site %s: not on \"python_path\"", dir);
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->site.items[k], dir) == 0)
				return bad(err, err_size, "site %s: named twice", dir);
	}
	return r;
}

static int from_json(const char *json, size_t size, bool check_canonical, struct tp_manifest *m,
		     char *err, size_t err_size)
{
	static const char *const keys_v1[] = { "argv",	 "entry",  "env",	  "files", "format",
					       "limits", "policy", "python_path", NULL };
	static const char *const keys_v2[] = { "argv",	     "encryption",  "engine",
					       "entry",	     "env",	    "files",
					       "format",     "limits",	    "policy",
					       "product_id", "python_path", "security_version",
					       "trees",	     NULL };
	static const char *const keys_v3[] = { "argv",	     "encryption",  "engine",
					       "entry",	     "env",	    "files",
					       "format",     "limits",	    "policy",
					       "product_id", "python_path", "security_version",
					       "site",	     "trees",	    NULL };
	json_error_t jerr;
	json_t *root, *obj, *value;
	const char *key;
	uint64_t format;
	char *again = NULL;
	size_t again_size;
	int r = -EINVAL;

	tp_manifest_init(m);
	if (memchr(json, '\0', size))
		return bad(err, err_size, "contains a NUL byte");
	root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return bad(err, err_size, "not JSON: %s at byte %d", jerr.text, jerr.position);
	if (!json_is_object(root)) {
		r = bad(err, err_size, "must be a JSON object");
		goto out;
	}
	/* the format says which keys there are */
	if (!json_object_get(root, "format")) {
		r = bad(err, err_size, "the manifest lacks \"format\"");
		goto out;
	}
	if ((r = get_uint(root, "format", 1000, &format, err, err_size)) < 0)
		goto out;
	if (format < TP_MANIFEST_FORMAT_MIN || format > TP_MANIFEST_FORMAT) {
		r = bad(err, err_size,
			"format %llu is not supported (this teepy reads formats %d to %d%s)",
			(unsigned long long)format, TP_MANIFEST_FORMAT_MIN, TP_MANIFEST_FORMAT,
			format > TP_MANIFEST_FORMAT ? "; a newer teepy built it" : "");
		goto out;
	}
	m->format = (unsigned)format;
	if ((r = only_keys(root, "the manifest",
			   format == 1 ? keys_v1 :
			   format == 2 ? keys_v2 :
					 keys_v3,
			   err, err_size)) < 0)
		goto out;

	value = json_object_get(root, "entry");
	if (!json_is_string(value) || !tp_path_is_normal(json_string_value(value))) {
		r = bad(err, err_size, "\"entry\" must be a normal absolute path");
		goto out;
	}
	if (!(m->entry = strdup(json_string_value(value)))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = get_strings(root, "argv", &m->argv, ANY_STRINGS, err, err_size)) < 0 ||
	    (r = get_strings(root, "python_path", &m->python_path, PATHS, err, err_size)) < 0 ||
	    (r = parse_env(json_object_get(root, "env"), m, err, err_size)) < 0 ||
	    (r = parse_limits(json_object_get(root, "limits"), &m->limits, err, err_size)) < 0 ||
	    (r = parse_policy(json_object_get(root, "policy"), m, err, err_size)) < 0 ||
	    (format >= 2 && (r = parse_format_2(root, m, err, err_size)) < 0) ||
	    (format >= 3 && (r = parse_format_3(root, m, err, err_size)) < 0))
		goto out;

	obj = json_object_get(root, "files");
	if (!json_is_object(obj) || json_object_size(obj) > MAX_FILES) {
		r = bad(err, err_size, "\"files\" must be an object of at most %d files",
			MAX_FILES);
		goto out;
	}
	m->files = calloc(json_object_size(obj) + 1, sizeof(*m->files));
	if (!m->files) {
		r = -ENOMEM;
		goto out;
	}
	json_object_foreach(obj, key, value)
	{
		struct tp_manifest_file *f = &m->files[m->file_count];
		if ((r = parse_file(key, value, m->format, f, err, err_size)) < 0)
			goto out;
		m->file_count++;
		if (f->encrypted && m->encryption.cipher == TP_CIPHER_NONE) {
			r = bad(err, err_size,
				"file %s is encrypted but the manifest's \"encryption\" is null",
				f->path);
			goto out;
		}
	}
	if ((r = tp_manifest_finish(m, err, err_size)) < 0 ||
	    (r = check_trees(m, err, err_size)) < 0)
		goto out;
	/* the scratch /tmp would hide files under it */
	for (size_t i = 0; m->limits.scratch_bytes && i < m->file_count; i++) {
		if (strncmp(m->files[i].path, "/tmp/", 5) == 0) {
			r = bad(err, err_size,
				"file %s lies under /tmp, where the policy's scratch goes",
				m->files[i].path);
			goto out;
		}
	}

	/* one manifest, one byte string: what was signed must be the canonical form */
	if (check_canonical && (r = tp_manifest_to_json(m, &again, &again_size)) < 0) {
		r = bad(err, err_size, "cannot be encoded again (%s)", strerror(-r));
		goto out;
	}
	if (check_canonical && (again_size != size || memcmp(again, json, size) != 0)) {
		r = bad(err, err_size, "not in canonical form (sorted keys, no spaces)");
		goto out;
	}
	r = 0;
out:
	if (r == -ENOMEM)
		snprintf(err, err_size, "manifest: out of memory");
	free(again);
	json_decref(root);
	if (r < 0)
		tp_manifest_free(m);
	return r;
}

int tp_manifest_from_json(const char *json, size_t size, struct tp_manifest *m, char *err,
			  size_t err_size)
{
	return from_json(json, size, true, m, err, err_size);
}

int tp_manifest_from_known_json(const char *json, size_t size, struct tp_manifest *m, char *err,
				size_t err_size)
{
	return from_json(json, size, false, m, err, err_size);
}
