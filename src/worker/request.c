/* The worker's pure part: requests' JSON bodies parsed and checked, routes, ids, an
 * invocation's outcome as its answer (docs/api.md). No OS calls; fuzzed
 * (fuzz/fuzz_worker_request.c). */
#include "worker.h"

#include "../cas/cas.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char OOM_BODY[] = "{\"error\":{\"kind\":\"internal\",\"message\":\"out of memory\"}}";

unsigned tp_worker_json(struct tp_worker_answer *out, unsigned status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	free(out->body);
	if (!text) {
		out->status = 500;
		out->body = strdup(OOM_BODY);
		out->size = out->body ? strlen(out->body) : 0;
		return out->status;
	}
	out->status = status;
	out->body = text;
	out->size = strlen(text);
	return status;
}

unsigned tp_worker_error(struct tp_worker_answer *out, unsigned status, const char *kind,
			 const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return tp_worker_json(out, status,
			      json_pack("{s:{s:s, s:s}}", "error", "kind", kind, "message", line));
}

bool tp_worker_id_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

int tp_worker_key_decode(const char *b64, uint8_t key[32])
{
	uint8_t *bytes = NULL;
	size_t size = 0;
	int r = tp_base64_decode(b64, strlen(b64), &bytes, &size);

	if (r == 0 && size != 32)
		r = -EINVAL;
	if (r == 0)
		memcpy(key, bytes, 32);
	if (bytes) {
		explicit_bzero(bytes, size);
		free(bytes);
	}
	return r;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

json_t *tp_worker_utf8_string(const char *bytes, size_t size)
{
	const unsigned char *s = (const unsigned char *)bytes;
	char *buf;
	size_t o = 0;
	json_t *v;

	if (size > (SIZE_MAX - 1) / 3 || !(buf = malloc(size * 3 + 1)))
		return NULL;
	for (size_t i = 0; i < size;) {
		size_t len = utf8_seq(s + i, size - i);
		if (len) {
			memcpy(buf + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3); /* U+FFFD */
			o += 3;
			i++;
		}
	}
	v = json_stringn_nocheck(buf, o);
	explicit_bzero(buf, o); /* a result or a log, maybe sealed for its client */
	free(buf);
	return v;
}

int tp_worker_service_id(const uint8_t app[32], const char *const *data_ids, size_t count,
			 char out[TP_WORKER_ID_HEX])
{
	size_t tag = sizeof(TP_WORKER_SERVICE_TAG); /* with its NUL */
	size_t size = tag + 32 + 32 * count;
	uint8_t *msg = malloc(size), sha[32];

	if (!msg)
		return -ENOMEM;
	memcpy(msg, TP_WORKER_SERVICE_TAG, tag);
	memcpy(msg + tag, app, 32);
	for (size_t i = 0; i < count; i++)
		if (tp_unhex(data_ids[i], msg + tag + 32 + 32 * i, 32) < 0) {
			free(msg);
			return -EINVAL;
		}
	tp_sha256(msg, size, sha);
	free(msg);
	tp_hex(sha, 32, out);
	return 0;
}

/* ---- bodies ---- */

static json_t *parse_object(const char *body, size_t size, const char *const *known, char *err,
			    size_t err_size)
{
	json_error_t je;
	/* an input may hold NUL (\u0000): it is bytes to the service */
	json_t *doc = json_loadb(body, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je), *v;
	const char *key;

	if (!doc) {
		snprintf(err, err_size, "malformed JSON: %s (line %d)", je.text, je.line);
		return NULL;
	}
	if (!json_is_object(doc)) {
		snprintf(err, err_size, "the body must be a JSON object");
		json_decref(doc);
		return NULL;
	}
	json_object_foreach(doc, key, v)
	{
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (!known[i]) {
			snprintf(err, err_size, "unknown field \"%.64s\"", key);
			json_decref(doc);
			return NULL;
		}
	}
	return doc;
}

/* A list of data ids (absent: empty) into *ids. Returns 0, -EINVAL with err, -ENOMEM. */
static int id_list(const json_t *v, const char *name, char (**ids)[TP_WORKER_ID_HEX], size_t *count,
		   char *err, size_t err_size)
{
	size_t n;

	*count = 0;
	if (!v)
		return 0;
	if (!json_is_array(v) || (n = json_array_size(v)) > TP_WORKER_LIST_MAX) {
		snprintf(err, err_size, "%s must be a list of at most %d data ids", name,
			 TP_WORKER_LIST_MAX);
		return -EINVAL;
	}
	if (!(*ids = calloc(n ? n : 1, TP_WORKER_ID_HEX)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(v, i));
		if (!s || !tp_worker_id_ok(s)) {
			snprintf(err, err_size, "%s[%zu] is not a data id (64 lower-case hex)",
				 name, i);
			return -EINVAL;
		}
		memcpy((*ids)[i], s, TP_WORKER_ID_HEX);
	}
	*count = n;
	return 0;
}

/* {"DATA_ID": "<base64>"} into *keys. */
static int key_map(const json_t *v, const char *name, struct tp_worker_key **keys, size_t *count,
		   char *err, size_t err_size)
{
	const char *id;
	json_t *k;
	size_t n = 0;

	*count = 0;
	if (!json_is_object(v) || json_object_size(v) > TP_WORKER_LIST_MAX) {
		snprintf(err, err_size, "%s must be an object of data id: base64 key", name);
		return -EINVAL;
	}
	if (!(*keys = calloc(json_object_size(v) + 1, sizeof(**keys))))
		return -ENOMEM;
	json_object_foreach((json_t *)v, id, k)
	{
		if (!tp_worker_id_ok(id)) {
			snprintf(err, err_size,
				 "%s: \"%.64s\" is not a data id (64 lower-case hex)", name, id);
			return -EINVAL;
		}
		if (!json_is_string(k) ||
		    tp_worker_key_decode(json_string_value(k), (*keys)[n].key) < 0) {
			snprintf(err, err_size, "%s[%s] is not the base64 of a 32-byte key", name,
				 id);
			return -EINVAL;
		}
		memcpy((*keys)[n].id, id, TP_WORKER_ID_HEX);
		*count = ++n;
	}
	return 0;
}

int tp_worker_deploy_parse(const char *body, size_t size, struct tp_worker_deploy *d, char *err,
			   size_t err_size)
{
	static const char *const known[] = { "bundle", "service_data", "config_id", "keys", NULL };
	static const char *const key_known[] = { "bundle_key", "data_keys", NULL };
	json_t *doc, *v, *keys;
	const char *s;
	int r = -EINVAL;

	memset(d, 0, sizeof(*d));
	if (!(doc = parse_object(body, size, known, err, err_size)))
		return -EINVAL;
	s = json_string_value(json_object_get(doc, "bundle"));
	if (!s || !tp_worker_id_ok(s)) {
		snprintf(err, err_size, "bundle must be a bundle id (64 lower-case hex)");
		goto out;
	}
	memcpy(d->bundle, s, TP_WORKER_ID_HEX);
	if ((r = id_list(json_object_get(doc, "service_data"), "service_data", &d->service_data,
			 &d->service_data_count, err, err_size)) < 0)
		goto out;
	r = -EINVAL;
	if ((v = json_object_get(doc, "config_id"))) {
		s = json_string_value(v);
		if (!s || !*s || strlen(s) >= sizeof(d->config_id) || !strchr(s, '/')) {
			snprintf(err, err_size, "config_id must be \"policy/service\"");
			goto out;
		}
		snprintf(d->config_id, sizeof(d->config_id), "%s", s);
	}
	if ((keys = json_object_get(doc, "keys"))) {
		const char *key;
		json_object_foreach(keys, key, v)
		{
			size_t i;
			for (i = 0; key_known[i] && strcmp(key_known[i], key) != 0; i++)
				;
			if (!key_known[i]) {
				snprintf(err, err_size, "keys: unknown field \"%.64s\"", key);
				goto out;
			}
		}
		if (!json_is_object(keys)) {
			snprintf(err, err_size, "keys must be an object");
			goto out;
		}
		d->has_keys = true;
		if ((v = json_object_get(keys, "bundle_key"))) {
			if (!json_is_string(v) ||
			    tp_worker_key_decode(json_string_value(v), d->bundle_key) < 0) {
				snprintf(err, err_size,
					 "keys.bundle_key is not the base64 of a 32-byte key");
				goto out;
			}
			d->has_bundle_key = true;
		}
		if ((v = json_object_get(keys, "data_keys")) &&
		    (r = key_map(v, "keys.data_keys", &d->data_keys, &d->data_key_count, err,
				 err_size)) < 0)
			goto out;
	}
	r = 0;
out:
	json_decref(doc);
	return r;
}

void tp_worker_deploy_free(struct tp_worker_deploy *d)
{
	free(d->service_data);
	if (d->data_keys)
		explicit_bzero(d->data_keys, d->data_key_count * sizeof(*d->data_keys));
	free(d->data_keys);
	explicit_bzero(d->bundle_key, sizeof(d->bundle_key));
	memset(d, 0, sizeof(*d));
}

int tp_worker_invoke_parse(const char *body, size_t size, struct tp_worker_invoke *iv, char *err,
			   size_t err_size)
{
	static const char *const known[] = { "input", "sealed_input", "task_data", "data_keys",
					     NULL };
	json_t *v, *sealed;
	size_t sealed_size = 0;
	int r;

	memset(iv, 0, sizeof(*iv));
	if (!(iv->doc = parse_object(body, size, known, err, err_size)))
		return -EINVAL;
	v = json_object_get(iv->doc, "input");
	sealed = json_object_get(iv->doc, "sealed_input");
	if (v && !json_is_string(v)) {
		snprintf(err, err_size, "input must be a string");
		return -EINVAL;
	}
	if (v && sealed) {
		snprintf(err, err_size, "input and sealed_input: give one");
		return -EINVAL;
	}
	iv->input = v ? json_string_value(v) : "";
	iv->input_size = v ? json_string_length(v) : 0;
	if (sealed) {
		/* its bytes are the service key's to open: only their form is checked here */
		if (!json_is_string(sealed) ||
		    (r = tp_base64_decode(json_string_value(sealed), json_string_length(sealed),
					  &iv->sealed_bytes, &sealed_size)) == -EINVAL) {
			snprintf(err, err_size, "sealed_input must be a string of base64");
			return -EINVAL;
		}
		if (r < 0)
			return r;
		if (sealed_size < TP_SEAL_OVERHEAD + TP_X25519_SIZE) {
			snprintf(err, err_size,
				 "sealed_input is too short to be a sealed input (%zu bytes)",
				 sealed_size);
			return -EINVAL;
		}
		iv->sealed = true;
		iv->input = (const char *)iv->sealed_bytes;
		iv->input_size = sealed_size;
	}
	if ((r = id_list(json_object_get(iv->doc, "task_data"), "task_data", &iv->task_data,
			 &iv->task_data_count, err, err_size)) < 0)
		return r;
	if ((v = json_object_get(iv->doc, "data_keys"))) {
		iv->has_data_keys = true;
		if ((r = key_map(v, "data_keys", &iv->data_keys, &iv->data_key_count, err,
				 err_size)) < 0)
			return r;
	}
	return 0;
}

void tp_worker_invoke_free(struct tp_worker_invoke *iv)
{
	json_decref(iv->doc);
	free(iv->sealed_bytes);
	free(iv->task_data);
	if (iv->data_keys)
		explicit_bzero(iv->data_keys, iv->data_key_count * sizeof(*iv->data_keys));
	free(iv->data_keys);
	memset(iv, 0, sizeof(*iv));
}

int tp_worker_evidence_parse(const char *body, size_t size, uint8_t nonce[TP_NONCE_MAX],
			     size_t *nonce_size, char *err, size_t err_size)
{
	static const char *const known[] = { "nonce", NULL };
	json_t *doc = parse_object(body, size, known, err, err_size);
	const char *hex = json_string_value(json_object_get(doc, "nonce"));
	size_t n = hex ? strlen(hex) : 0;

	if (!doc)
		return -EINVAL;
	if (!hex || n < 2 || n > 2 * TP_NONCE_MAX || n % 2 || tp_unhex(hex, nonce, n / 2) < 0) {
		snprintf(err, err_size, "nonce must be 1 to %d bytes in hex", TP_NONCE_MAX);
		json_decref(doc);
		return -EINVAL;
	}
	*nonce_size = n / 2;
	json_decref(doc);
	return 0;
}

/* ---- routes ---- */

enum tp_worker_route tp_worker_route(const char *method, const char *path,
				     char id[TP_WORKER_ID_HEX], struct tp_worker_answer *out)
{
	const char *allow = NULL, *rest;
	bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;

	id[0] = '\0';
	if (strcmp(path, "/v1/bundles") == 0 || strcmp(path, "/v1/data") == 0) {
		if (post)
			return path[4] == 'b' ? TP_ROUTE_BUNDLE_PUT : TP_ROUTE_DATA_PUT;
		allow = "POST";
	} else if (strcmp(path, "/v1/services") == 0) {
		if (post)
			return TP_ROUTE_DEPLOY;
		if (get)
			return TP_ROUTE_LIST;
		allow = "GET, POST";
	} else if (strncmp(path, "/v1/services/", 13) == 0) {
		rest = path + 13;
		size_t n = strcspn(rest, "/");
		if (n != 64 || (rest[64] && strcmp(rest + 64, "/invoke") != 0 &&
				strcmp(rest + 64, "/evidence") != 0)) {
			tp_worker_error(out, 404, "not_found", "no such path: %.200s", path);
			return TP_ROUTE_NONE;
		}
		memcpy(id, rest, 64);
		id[64] = '\0';
		if (!tp_worker_id_ok(id)) {
			tp_worker_error(out, 400, "bad_request",
					"not a service id (64 lower-case hex): %.64s", id);
			return TP_ROUTE_NONE;
		}
		if (rest[64]) {
			if (post)
				return rest[65] == 'i' ? TP_ROUTE_INVOKE : TP_ROUTE_EVIDENCE;
			allow = "POST";
		} else {
			if (get)
				return TP_ROUTE_GET;
			if (strcmp(method, "DELETE") == 0)
				return TP_ROUTE_DELETE;
			allow = "GET, DELETE";
		}
	} else {
		tp_worker_error(out, 404, "not_found", "no such path: %.200s", path);
		return TP_ROUTE_NONE;
	}
	tp_worker_error(out, 405, "method_not_allowed", "%.16s %.200s: use %s", method, path,
			allow);
	out->allow = allow;
	return TP_ROUTE_NONE;
}

/* ---- an invocation's answer ---- */

static const struct {
	enum tp_end end;
	unsigned status;
	const char *kind;
} ENDS[] = {
	{ TP_END_FAILED, 422, "failed" },     { TP_END_NO_RESULT, 422, "no_result" },
	{ TP_END_RULE, 422, "rule" },	      { TP_END_MEMORY, 422, "memory" },
	{ TP_END_CPU, 422, "cpu" },	      { TP_END_TIMEOUT, 504, "timeout" },
	{ TP_END_CONFIG, 400, "config" },     { TP_END_KEY_MISSING, 409, "key_missing" },
	{ TP_END_REFUSED, 500, "refused" },   { TP_END_VOLUME_REFUSED, 500, "internal" },
	{ TP_END_INTERNAL, 500, "internal" }, { TP_END_CANCELLED, 503, "cancelled" },
};

/* The status and kind of an outcome's end. */
static void end_of(const struct tp_worker_outcome *o, unsigned *status, const char **kind)
{
	if (o->end == TP_END_RESULT && o->have_result) {
		*status = 200;
		*kind = "result";
		return;
	}
	for (size_t i = 0; i < sizeof(ENDS) / sizeof(ENDS[0]); i++)
		if ((int)ENDS[i].end == o->end) {
			*status = ENDS[i].status;
			*kind = ENDS[i].kind;
		}
	if (o->end == TP_END_RESULT) { /* ended normally without a result */
		*status = 422;
		*kind = "no_result";
	}
}

unsigned tp_worker_outcome_answer(const struct tp_worker_outcome *o, const char *result,
				  const char *log, struct tp_worker_answer *out)
{
	json_t *doc = json_object(), *usage;
	unsigned status = 500;
	const char *kind = "internal";
	char message[sizeof(o->message) + 1];
	bool ok;

	out->start = o->warm ? "warm" : "cold";
	out->usage.cpu_ms = o->cpu_ms;
	out->usage.peak_memory_bytes = o->peak_memory_bytes;
	out->usage.wall_ms = o->wall_ms;
	usage = json_pack("{s:I, s:I, s:I}", "cpu_ms", (json_int_t)o->cpu_ms, "peak_memory_bytes",
			  (json_int_t)o->peak_memory_bytes, "wall_ms", (json_int_t)o->wall_ms);
	if (!doc || !usage) {
		json_decref(doc);
		json_decref(usage);
		return tp_worker_json(out, 500, NULL);
	}
	end_of(o, &status, &kind);
	if (o->sealed) {
		/* the answer below, sealed to the client in the invocation's process: here
		 * only its status, kind and usage */
		ok = o->have_result &&
		     json_object_set_new(doc, "sealed",
					 tp_base64_json(result, (size_t)o->result_size)) == 0;
		if (ok && status != 200)
			ok = json_object_set_new(
				 doc, "error",
				 json_pack("{s:s, s:s}", "kind", kind, "message",
					   "sealed: the answer holds the message")) == 0;
	} else if (status == 200) {
		ok = json_object_set_new(doc, "result",
					 tp_worker_utf8_string(result, o->result_size)) == 0;
	} else {
		memcpy(message, o->message, sizeof(o->message));
		message[sizeof(o->message)] = '\0';
		if (!message[0]) /* the service said it already: its log holds it */
			snprintf(message, sizeof(message), "the service %s (its log says why)",
				 strcmp(kind, "failed") == 0 ? "failed" : "ended");
		ok = json_object_set_new(
			 doc, "error",
			 json_pack("{s:s, s:o}", "kind", kind, "message",
				   tp_worker_utf8_string(message, strlen(message)))) == 0;
	}
	out->end = kind;
	ok = json_object_set_new(doc, "usage", usage) == 0 && ok;
	if (!o->sealed) {
		ok = json_object_set_new(doc, "log",
					 tp_worker_utf8_string(log ? log : "", o->log_size)) == 0 &&
		     ok;
		ok = json_object_set_new(doc, "log_truncated", json_boolean(o->log_truncated)) ==
			 0 &&
		     ok;
	}
	if (!ok) { /* never a 200 without its result */
		json_decref(doc);
		out->end = "internal";
		return tp_worker_error(out, 500, "internal",
				       "the worker ran out of memory for the answer");
	}
	return tp_worker_json(out, status, doc);
}
