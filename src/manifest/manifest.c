/* Canonical manifest JSON with jansson. Parsing is strict: unknown keys, wrong
 * types, unsorted or duplicate files, bad hashes and non-canonical bytes are all
 * refused, so one manifest has exactly one byte representation to sign. */
#include "manifest.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_SIZE (1ULL << 40)
#define MAX_FILES     1000000

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
	tp_strlist_free(&m->preload);
	for (size_t i = 0; i < m->file_count; i++)
		free(m->files[i].path);
	free(m->files);
	memset(m, 0, sizeof(*m));
}

static int compare_files(const void *a, const void *b)
{
	return strcmp(((const struct tp_manifest_file *)a)->path,
		      ((const struct tp_manifest_file *)b)->path);
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

int tp_manifest_to_json(const struct tp_manifest *m, char **out, size_t *size)
{
	json_t *root = json_object(), *files = json_object(), *env = json_object();
	json_t *limits = json_object(), *policy = json_object();
	const struct tp_limits *l = &m->limits;
	char hex[65];
	int r = -ENOMEM;

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
		json_object_set_new(entry, "encrypted", json_false());
		json_object_set_new(entry, "mode", json_integer(f->mode));
		json_object_set_new(entry, "mtime", json_integer((json_int_t)f->mtime));
		json_object_set_new(entry, "sha256", json_string(hex));
		json_object_set_new(entry, "size", json_integer((json_int_t)f->size));
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

	/* every string must be UTF-8: a name or value jansson refuses fails the whole */
	bool ok = json_object_set_new(policy, "preload", string_array(&m->preload)) == 0;
	ok = json_object_set_new(root, "argv", string_array(&m->argv)) == 0 && ok;
	ok = json_object_set_new(root, "entry", json_string(m->entry ? m->entry : "")) == 0 && ok;
	json_object_set_new(root, "env", env);
	json_object_set_new(root, "files", files);
	json_object_set_new(root, "format", json_integer(TP_MANIFEST_FORMAT));
	json_object_set_new(root, "limits", limits);
	json_object_set_new(root, "policy", policy);
	ok = json_object_set_new(root, "python_path", string_array(&m->python_path)) == 0 && ok;
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

static int parse_file(const char *path, json_t *entry, struct tp_manifest_file *f, char *err,
		      size_t err_size)
{
	static const char *const keys[] = {"bundled", "encrypted", "mode", "mtime",
					   "sha256",  "size",	   NULL};
	uint64_t mode;
	int r;

	if (!json_is_object(entry))
		return bad(err, err_size, "file %s: entry must be an object", path);
	if ((r = only_keys(entry, "a file entry", keys, err, err_size)) < 0)
		return r;
	if (!tp_path_is_normal(path)) {
		char shown[256];
		return bad(err, err_size, "file %s: not a normal absolute path",
			   tp_escape(path, shown, sizeof(shown)));
	}
	/* the runtime's own directory, devices and user database are teepy's, never a
	 * bundle's */
	static const char *const reserved[] = {"/.teepy", "/dev", "/proc", "/sys", "/etc/passwd",
					       "/etc/group"};
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		size_t len = strlen(reserved[i]);
		if (strncmp(path, reserved[i], len) == 0 && (path[len] == '/' || path[len] == '\0'))
			return bad(err, err_size, "file %s: %s belongs to the runtime", path,
				   reserved[i]);
	}
	if (!json_is_boolean(json_object_get(entry, "bundled")))
		return bad(err, err_size, "file %s: \"bundled\" must be true or false", path);
	if (!json_is_false(json_object_get(entry, "encrypted")))
		return bad(err, err_size,
			   "file %s: encrypted files are not supported by this version", path);
	if ((r = get_uint(entry, "mode", 07777, &mode, err, err_size)) < 0 ||
	    (r = get_uint(entry, "size", MAX_FILE_SIZE, &f->size, err, err_size)) < 0 ||
	    (r = get_uint(entry, "mtime", UINT32_MAX, &f->mtime, err, err_size)) < 0)
		return r;
	json_t *hash = json_object_get(entry, "sha256");
	if (!json_is_string(hash) || tp_unhex(json_string_value(hash), f->sha256, 32) < 0)
		return bad(err, err_size, "file %s: \"sha256\" must be 64 hex digits", path);
	f->mode = (uint32_t)mode;
	f->bundled = json_is_true(json_object_get(entry, "bundled"));
	/* only the app's own files travel in a bundle: a bundled interpreter or stdlib
	 * module would run before the runtime's last seccomp stage */
	if (f->bundled && strncmp(path, TP_APP_DIR "/", strlen(TP_APP_DIR) + 1) != 0)
		return bad(err, err_size, "file %s: only files under %s can be bundled", path,
			   TP_APP_DIR);
	f->path = strdup(path);
	return f->path ? 0 : -ENOMEM;
}

int tp_manifest_from_json(const char *json, size_t size, struct tp_manifest *m, char *err,
			  size_t err_size)
{
	static const char *const top_keys[] = {"argv",	 "entry",  "env",	  "files", "format",
					       "limits", "policy", "python_path", NULL};
	static const char *const limit_keys[] = {"cpu_ms", "memory", "threads", "timeout_ms", NULL};
	static const char *const policy_keys[] = {"preload", "processes", "scratch", NULL};
	json_error_t jerr;
	json_t *root, *obj, *value;
	struct tp_limits *l = &m->limits;
	const char *key;
	uint64_t v;
	char *again = NULL;
	size_t again_size;
	int r = -EINVAL;

	memset(m, 0, sizeof(*m));
	if (memchr(json, '\0', size))
		return bad(err, err_size, "contains a NUL byte");
	root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return bad(err, err_size, "not JSON: %s at byte %d", jerr.text, jerr.position);
	if (!json_is_object(root)) {
		r = bad(err, err_size, "must be a JSON object");
		goto out;
	}
	if ((r = only_keys(root, "the manifest", top_keys, err, err_size)) < 0)
		goto out;
	if ((r = get_uint(root, "format", 1000, &v, err, err_size)) < 0)
		goto out;
	if (v != TP_MANIFEST_FORMAT) {
		r = bad(err, err_size, "format %llu is not supported (this teepy reads format %d)",
			(unsigned long long)v, TP_MANIFEST_FORMAT);
		goto out;
	}

	value = json_object_get(root, "entry");
	if (!json_is_string(value) || !tp_path_is_normal(json_string_value(value))) {
		r = bad(err, err_size, "\"entry\" must be a normal absolute path");
		goto out;
	}
	m->entry = strdup(json_string_value(value));
	if ((r = get_strings(root, "argv", &m->argv, ANY_STRINGS, err, err_size)) < 0 ||
	    (r = get_strings(root, "python_path", &m->python_path, PATHS, err, err_size)) < 0)
		goto out;

	obj = json_object_get(root, "env");
	if (!json_is_object(obj)) {
		r = bad(err, err_size, "\"env\" must be an object of strings");
		goto out;
	}
	json_object_foreach(obj, key, value)
	{
		char assignment[8192];
		if (!json_is_string(value) || !*key || strchr(key, '=') || strlen(key) >= 256 ||
		    tp_has_control(key) ||
		    strlen(json_string_value(value)) != json_string_length(value)) {
			char shown[256];
			r = bad(err, err_size, "\"env\" entry \"%s\" is not NAME: string",
				tp_escape(key, shown, sizeof(shown)));
			goto out;
		}
		/* the program loader reads LD_*: a manifest must not steer it */
		if (strncmp(key, "LD_", 3) == 0) {
			r = bad(err, err_size, "\"env\" entry %.64s would steer the program loader",
				key);
			goto out;
		}
		if ((size_t)snprintf(assignment, sizeof(assignment), "%s=%s", key,
				     json_string_value(value)) >= sizeof(assignment)) {
			r = bad(err, err_size, "\"env\" entry \"%s\" is too long", key);
			goto out;
		}
		if ((r = tp_strlist_push(&m->env, assignment)) < 0)
			goto out;
	}

	obj = json_object_get(root, "limits");
	if (!json_is_object(obj)) {
		r = bad(err, err_size, "\"limits\" must be an object");
		goto out;
	}
	if ((r = only_keys(obj, "\"limits\"", limit_keys, err, err_size)) < 0 ||
	    (r = get_uint(obj, "cpu_ms", UINT32_MAX * 1000ULL, &l->cpu_ms, err, err_size)) < 0 ||
	    (r = get_uint(obj, "memory", 1ULL << 50, &l->memory_bytes, err, err_size)) < 0 ||
	    (r = get_uint(obj, "timeout_ms", UINT32_MAX * 1000ULL, &l->timeout_ms, err, err_size)) <
		0 ||
	    (r = get_uint(obj, "threads", TP_MAX_THREADS, &v, err, err_size)) < 0)
		goto out;
	l->threads = (unsigned)v;
	if (!l->cpu_ms || !l->memory_bytes || !l->timeout_ms || !l->threads) {
		r = bad(err, err_size, "\"limits\" must all be more than 0");
		goto out;
	}

	obj = json_object_get(root, "policy");
	if (!json_is_object(obj)) {
		r = bad(err, err_size, "\"policy\" must be an object");
		goto out;
	}
	if ((r = only_keys(obj, "\"policy\"", policy_keys, err, err_size)) < 0 ||
	    (r = get_uint(obj, "scratch", 1ULL << 50, &l->scratch_bytes, err, err_size)) < 0 ||
	    (r = get_strings(obj, "preload", &m->preload, NAMES, err, err_size)) < 0)
		goto out;
	value = json_object_get(obj, "processes");
	if (json_is_string(value) && strcmp(json_string_value(value), "none") == 0)
		m->processes = TP_PROCESSES_NONE;
	else if (json_is_string(value) && strcmp(json_string_value(value), "manifest") == 0)
		m->processes = TP_PROCESSES_MANIFEST;
	else {
		r = bad(err, err_size, "\"processes\" must be \"none\" or \"manifest\"");
		goto out;
	}

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
		if ((r = parse_file(key, value, &m->files[m->file_count], err, err_size)) < 0)
			goto out;
		m->file_count++;
	}
	if ((r = tp_manifest_finish(m, err, err_size)) < 0)
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
	if ((r = tp_manifest_to_json(m, &again, &again_size)) < 0) {
		r = bad(err, err_size, "cannot be encoded again (%s)", strerror(-r));
		goto out;
	}
	if (again_size != size || memcmp(again, json, size) != 0) {
		r = bad(err, err_size, "not in canonical form (sorted keys, no spaces)");
		goto out;
	}
	r = 0;
out:
	free(again);
	json_decref(root);
	if (r < 0)
		tp_manifest_free(m);
	return r;
}
