/* A CAS policy document: parsed, validated rule by rule, its canonical JSON and hash,
 * and the copy with secret values hidden that a get answers. Pure: no OS calls. */
#include "cas.h"

#include "../crypto/crypto.h"
#include "../manifest/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

bool tp_cas_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > TP_CAS_NAME_MAX || name[0] == '_' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* A secret's name: [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}; an env secret's a variable name. */
static bool secret_name_ok(const char *name, bool env)
{
	size_t n = strlen(name);

	if (n == 0 || n > TP_CAS_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	if (env && name[0] >= '0' && name[0] <= '9')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '_';
		if (!word && (env || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

static bool is_hex(const json_t *v, size_t bytes)
{
	const char *s = json_string_value(v);

	if (!s || json_string_length(v) != 2 * bytes)
		return false;
	for (size_t i = 0; i < 2 * bytes; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Every key of o is one of allowed (NULL-terminated). */
static int only_keys(const json_t *o, const char *const *allowed, const char *where, char *err,
		     size_t err_size)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)o, key, v)
	{
		const char *const *a = allowed;
		while (*a && strcmp(*a, key) != 0)
			a++;
		if (!*a)
			return fail(err, err_size, "%s: unknown key \"%.64s\"", where, key);
	}
	return 0;
}

/* A non-empty array of distinct hex strings of bytes each. */
static int hex_list(const json_t *v, size_t bytes, const char *where, char *err, size_t err_size)
{
	size_t i, j;
	json_t *e;

	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(err, err_size, "%s: not a non-empty list", where);
	json_array_foreach(v, i, e)
	{
		if (!is_hex(e, bytes))
			return fail(err, err_size, "%s[%zu]: not %zu bytes in lower-case hex",
				    where, i, bytes);
		for (j = 0; j < i; j++)
			if (json_equal(e, json_array_get(v, j)))
				return fail(err, err_size, "%s[%zu]: listed twice", where, i);
	}
	return 0;
}

static int small_int(const json_t *v, const char *where, char *err, size_t err_size)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > (json_int_t)TP_MANIFEST_MAX_ID)
		return fail(err, err_size, "%s: not an integer from 0 to %u", where,
			    TP_MANIFEST_MAX_ID);
	return 0;
}

static int check_signer(const json_t *s, const char *where, char *err, size_t err_size)
{
	static const char *const keys[] = { "key", "product_id", "min_security_version", NULL };
	char w[160];
	int r;

	if (!json_is_object(s))
		return fail(err, err_size, "%s.signer: not an object", where);
	if ((r = only_keys(s, keys, where, err, err_size)) < 0)
		return r;
	if (!is_hex(json_object_get(s, "key"), 32))
		return fail(err, err_size, "%s.signer.key: not 32 bytes in lower-case hex", where);
	snprintf(w, sizeof(w), "%s.signer.product_id", where);
	if ((r = small_int(json_object_get(s, "product_id"), w, err, err_size)) < 0)
		return r;
	snprintf(w, sizeof(w), "%s.signer.min_security_version", where);
	return small_int(json_object_get(s, "min_security_version"), w, err, err_size);
}

/* {"tdx": [{mr_td, rtmr0..3}], "snp": [{measurement, policy}]}: at least one entry. */
static int check_hw(const json_t *hw, const char *where, char *err, size_t err_size)
{
	static const char *const keys[] = { "tdx", "snp", NULL };
	static const char *const tdx_keys[] = { "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", NULL };
	static const char *const snp_keys[] = { "measurement", "policy", NULL };
	const json_t *tdx = json_object_get(hw, "tdx"), *snp = json_object_get(hw, "snp");
	size_t i, count = 0;
	json_t *e;
	int r;

	if (!json_is_object(hw))
		return fail(err, err_size, "%s.hw: not an object", where);
	if ((r = only_keys(hw, keys, where, err, err_size)) < 0)
		return r;
	if ((tdx && !json_is_array(tdx)) || (snp && !json_is_array(snp)))
		return fail(err, err_size, "%s.hw: tdx and snp are lists", where);
	json_array_foreach(tdx, i, e)
	{
		if (!json_is_object(e) || (r = only_keys(e, tdx_keys, where, err, err_size)) < 0)
			return r < 0 ?
				   r :
				   fail(err, err_size, "%s.hw.tdx[%zu]: not an object", where, i);
		if (!is_hex(json_object_get(e, "mr_td"), 48))
			return fail(err, err_size, "%s.hw.tdx[%zu].mr_td: not 48 bytes in hex",
				    where, i);
		for (const char *const *k = tdx_keys + 1; *k; k++) {
			const json_t *m = json_object_get(e, *k);
			if (m && !is_hex(m, 48))
				return fail(err, err_size, "%s.hw.tdx[%zu].%s: not 48 bytes in hex",
					    where, i, *k);
		}
		count++;
	}
	json_array_foreach(snp, i, e)
	{
		if (!json_is_object(e) || (r = only_keys(e, snp_keys, where, err, err_size)) < 0)
			return r < 0 ?
				   r :
				   fail(err, err_size, "%s.hw.snp[%zu]: not an object", where, i);
		if (!is_hex(json_object_get(e, "measurement"), 48))
			return fail(err, err_size,
				    "%s.hw.snp[%zu].measurement: not 48 bytes in hex", where, i);
		if (json_object_get(e, "policy") && !is_hex(json_object_get(e, "policy"), 8))
			return fail(err, err_size, "%s.hw.snp[%zu].policy: not 8 bytes in hex",
				    where, i);
		count++;
	}
	if (count == 0)
		return fail(err, err_size, "%s.hw: no tdx or snp entry", where);
	return 0;
}

static bool has_string(const json_t *list, const char *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) if (json_is_string(e) &&
					   strcmp(json_string_value(e), s) == 0) return true;
	return false;
}

static int check_service(const char *name, const json_t *svc, const json_t *secrets, char *err,
			 size_t err_size)
{
	static const char *const keys[] = { "app",	     "signer", "runtime", "tolerate",
					    "platform_keys", "hw",     "secrets", NULL };
	const json_t *tolerate = json_object_get(svc, "tolerate");
	const json_t *names = json_object_get(svc, "secrets");
	char where[96], w[128];
	unsigned bundle_keys = 0, volume_keys = 0;
	size_t i;
	json_t *e;
	int r;

	snprintf(where, sizeof(where), "services.%s", name);
	if (!tp_cas_name_ok(name))
		return fail(err, err_size, "service name \"%.64s\": not [a-z0-9][a-z0-9_-]{0,63}",
			    name);
	if (!json_is_object(svc))
		return fail(err, err_size, "%s: not an object", where);
	if ((r = only_keys(svc, keys, where, err, err_size)) < 0)
		return r;
	snprintf(w, sizeof(w), "%s.runtime", where);
	if ((r = hex_list(json_object_get(svc, "runtime"), 32, w, err, err_size)) < 0)
		return r;
	if (!json_object_get(svc, "app") && !json_object_get(svc, "signer"))
		return fail(err, err_size, "%s: neither app nor signer", where);
	snprintf(w, sizeof(w), "%s.app", where);
	if (json_object_get(svc, "app") &&
	    (r = hex_list(json_object_get(svc, "app"), 32, w, err, err_size)) < 0)
		return r;
	if (json_object_get(svc, "signer") &&
	    (r = check_signer(json_object_get(svc, "signer"), where, err, err_size)) < 0)
		return r;
	if (tolerate) {
		if (!json_is_array(tolerate))
			return fail(err, err_size, "%s.tolerate: not a list", where);
		json_array_foreach(tolerate, i, e)
		{
			const char *t = json_string_value(e);
			if (!t || (strcmp(t, "sim") != 0 && strcmp(t, "debug") != 0))
				return fail(err, err_size,
					    "%s.tolerate[%zu]: not \"sim\" or \"debug\"", where, i);
			for (size_t j = 0; j < i; j++)
				if (json_equal(e, json_array_get(tolerate, j)))
					return fail(err, err_size, "%s.tolerate[%zu]: listed twice",
						    where, i);
		}
	}
	if (json_object_get(svc, "platform_keys")) {
		snprintf(w, sizeof(w), "%s.platform_keys", where);
		if ((r = hex_list(json_object_get(svc, "platform_keys"), 32, w, err, err_size)) < 0)
			return r;
	}
	if (has_string(tolerate, "sim") && !json_object_get(svc, "platform_keys"))
		return fail(err, err_size, "%s: tolerates sim but lists no platform_keys", where);
	if (json_object_get(svc, "hw") &&
	    (r = check_hw(json_object_get(svc, "hw"), where, err, err_size)) < 0)
		return r;
	if (!has_string(tolerate, "sim") && !json_object_get(svc, "hw"))
		return fail(err, err_size, "%s: does not tolerate sim and has no hw entry", where);
	if (names && !json_is_array(names))
		return fail(err, err_size, "%s.secrets: not a list", where);
	json_array_foreach(names, i, e)
	{
		const char *s = json_string_value(e);
		const json_t *def = s ? json_object_get(secrets, s) : NULL;
		const char *kind = json_string_value(json_object_get(def, "kind"));
		if (!s)
			return fail(err, err_size, "%s.secrets[%zu]: not a string", where, i);
		if (!def)
			return fail(err, err_size,
				    "%s.secrets: \"%.64s\" is not defined in secrets", where, s);
		for (size_t j = 0; j < i; j++)
			if (json_equal(e, json_array_get(names, j)))
				return fail(err, err_size, "%s.secrets[%zu]: listed twice", where,
					    i);
		if ((strcmp(kind, "bundle_key") == 0 && ++bundle_keys > 1) ||
		    (strcmp(kind, "volume_key") == 0 && ++volume_keys > 1))
			return fail(err, err_size, "%s.secrets: more than one %s", where, kind);
	}
	return 0;
}

static int check_secret(const char *name, const json_t *sec, char *err, size_t err_size)
{
	static const char *const keys[] = { "kind", "value", "data_id", NULL };
	static const char *const kinds[] = { "bundle_key", "data_key", "volume_key",
					     "env",	   "blob",     NULL };
	const char *kind = json_string_value(json_object_get(sec, "kind"));
	const json_t *value = json_object_get(sec, "value");
	const char *const *k = kinds;
	uint8_t *bytes = NULL;
	size_t size = 0;
	int r;

	if (!json_is_object(sec))
		return fail(err, err_size, "secrets.%.64s: not an object", name);
	if ((r = only_keys(sec, keys, "secrets", err, err_size)) < 0)
		return r;
	while (kind && *k && strcmp(*k, kind) != 0)
		k++;
	if (!kind || !*k)
		return fail(err, err_size,
			    "secrets.%.64s.kind: not bundle_key, data_key, volume_key, env or blob",
			    name);
	if (!secret_name_ok(name, strcmp(kind, "env") == 0))
		return fail(err, err_size, "secret name \"%.64s\": not %s", name,
			    strcmp(kind, "env") == 0 ? "an environment variable's name" :
						       "[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}");
	/* the runner refuses them (the loader reads them before any code of the app) */
	if (strcmp(kind, "env") == 0 && strncmp(name, "LD_", 3) == 0)
		return fail(err, err_size, "secret name \"%.64s\": an env secret may not be LD_*",
			    name);
	if (!json_is_string(value))
		return fail(err, err_size, "secrets.%.64s.value: not a string", name);
	if (strcmp(kind, "env") == 0) {
		if (strlen(json_string_value(value)) != json_string_length(value))
			return fail(err, err_size, "secrets.%.64s.value: holds a NUL", name);
	} else {
		r = tp_base64_decode(json_string_value(value), json_string_length(value), &bytes,
				     &size);
		if (bytes) {
			memset(bytes, 0, size);
			free(bytes);
		}
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return fail(err, err_size, "secrets.%.64s.value: not base64", name);
		if (strcmp(kind, "blob") != 0 && size != 32)
			return fail(err, err_size, "secrets.%.64s.value: not 32 bytes (%zu)", name,
				    size);
	}
	if (strcmp(kind, "data_key") == 0 && !is_hex(json_object_get(sec, "data_id"), 32))
		return fail(err, err_size, "secrets.%.64s.data_id: not 32 bytes in hex", name);
	if (strcmp(kind, "data_key") != 0 && json_object_get(sec, "data_id"))
		return fail(err, err_size, "secrets.%.64s: data_id is for a data_key", name);
	return 0;
}

/* The entries of a list or an object (0 for anything else). */
static size_t entries(const json_t *v)
{
	return json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
}

int tp_cas_policy_limits(const json_t *doc, char *err, size_t err_size)
{
	static const char *const keys[] = { "name", "services", "secrets", NULL };
	static const char *const lists[] = { "app",	      "runtime", "tolerate",
					     "platform_keys", "secrets", NULL };
	static const char *const hw_kinds[] = { "tdx", "snp", NULL };
	const json_t *services = json_object_get(doc, "services");
	const char *name = json_string_value(json_object_get(doc, "name"));
	const char *key;
	json_t *svc;
	int r;

	if (!json_is_object(doc))
		return fail(err, err_size, "the policy is not a JSON object");
	if ((r = only_keys(doc, keys, "policy", err, err_size)) < 0)
		return r;
	if (!name || strlen(name) != json_string_length(json_object_get(doc, "name")) ||
	    !tp_cas_name_ok(name))
		return fail(err, err_size, "name: not [a-z0-9][a-z0-9_-]{0,63}");
	if (entries(services) > TP_CAS_LIST_MAX)
		return fail(err, err_size, "services: more than %d entries", TP_CAS_LIST_MAX);
	if (entries(json_object_get(doc, "secrets")) > TP_CAS_LIST_MAX)
		return fail(err, err_size, "secrets: more than %d entries", TP_CAS_LIST_MAX);
	json_object_foreach((json_t *)services, key, svc)
	{
		const json_t *hw = json_object_get(svc, "hw");
		for (const char *const *l = lists; *l; l++)
			if (entries(json_object_get(svc, *l)) > TP_CAS_LIST_MAX)
				return fail(err, err_size,
					    "services.%.64s.%s: more than %d entries", key, *l,
					    TP_CAS_LIST_MAX);
		for (const char *const *t = hw_kinds; *t; t++)
			if (entries(json_object_get(hw, *t)) > TP_CAS_LIST_MAX)
				return fail(err, err_size,
					    "services.%.64s.hw.%s: more than %d entries", key, *t,
					    TP_CAS_LIST_MAX);
	}
	return 0;
}

int tp_cas_policy_check(const json_t *doc, char *err, size_t err_size)
{
	const json_t *services = json_object_get(doc, "services");
	const json_t *secrets = json_object_get(doc, "secrets");
	const char *key;
	json_t *v;
	int r;

	if ((r = tp_cas_policy_limits(doc, err, err_size)) < 0)
		return r;
	if (secrets && !json_is_object(secrets))
		return fail(err, err_size, "secrets: not an object");
	json_object_foreach((json_t *)secrets, key, v)
	{
		if ((r = check_secret(key, v, err, err_size)) < 0)
			return r;
	}
	if (!json_is_object(services) || json_object_size(services) == 0)
		return fail(err, err_size, "services: not a non-empty object");
	json_object_foreach((json_t *)services, key, v)
	{
		if ((r = check_service(key, v, secrets, err, err_size)) < 0)
			return r;
	}
	return 0;
}

json_t *tp_cas_policy_parse(const char *json, size_t size, char *err, size_t err_size)
{
	json_error_t je;
	json_t *doc = json_loadb(json, size, JSON_REJECT_DUPLICATES, &je);

	if (!doc) {
		/* not je.text: it quotes the bytes near the fault, maybe a secret value */
		snprintf(err, err_size, "not JSON (line %d, column %d)", je.line, je.column);
		return NULL;
	}
	if (tp_cas_policy_check(doc, err, err_size) < 0) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

char *tp_cas_canonical(const json_t *doc, size_t *size)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (s)
		*size = strlen(s);
	return s;
}

int tp_cas_policy_hash(const json_t *doc, const uint8_t key[TP_CAS_HASH_KEY_SIZE],
		       const uint8_t salt[TP_CAS_HASH_SALT_SIZE], char out[TP_CAS_HASH_HEX])
{
	static const char tag[] = "teepy-cas-policy-v1";
	struct tp_hmac *mac = tp_hmac_new(key, TP_CAS_HASH_KEY_SIZE);
	uint8_t h[TP_SHA256_SIZE];
	size_t size;
	char *c = tp_cas_canonical(doc, &size);

	if (!c || !mac) {
		free(c);
		if (mac)
			tp_hmac_final(mac, h);
		return -ENOMEM;
	}
	tp_hmac_update(mac, tag, sizeof(tag)); /* with its NUL */
	tp_hmac_update(mac, salt, TP_CAS_HASH_SALT_SIZE);
	tp_hmac_update(mac, c, size);
	tp_hmac_final(mac, h);
	explicit_bzero(c, size);
	free(c);
	tp_hex(h, sizeof(h), out);
	return 0;
}

json_t *tp_cas_policy_redact(const json_t *doc)
{
	json_t *copy = json_deep_copy(doc), *v;
	json_t *secrets = json_object_get(copy, "secrets");
	const char *key;

	if (!copy)
		return NULL;
	json_object_foreach(secrets, key, v)
	{
		const json_t *value = json_object_get(v, "value");
		const char *kind = json_string_value(json_object_get(v, "kind"));
		uint8_t h[TP_SHA256_SIZE], *bytes = NULL;
		char hex[2 * TP_SHA256_SIZE + 1];
		size_t size = 0;

		if (!json_is_string(value))
			continue;
		if (kind && strcmp(kind, "env") != 0 &&
		    tp_base64_decode(json_string_value(value), json_string_length(value), &bytes,
				     &size) == 0) {
			tp_sha256(bytes, size, h);
			memset(bytes, 0, size);
			free(bytes);
		} else
			tp_sha256(json_string_value(value), json_string_length(value), h);
		tp_hex(h, sizeof(h), hex);
		json_object_del(v, "value");
		json_object_set_new(v, "sha256", json_string(hex));
	}
	return copy;
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *tp_base64_json(const void *bytes, size_t size)
{
	char *text = tp_base64_encode(bytes, size);
	json_t *s = text ? json_string(text) : NULL;

	free(text);
	return s;
}

char *tp_base64_encode(const uint8_t *bytes, size_t size)
{
	char *out = malloc((size + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < size; i += 3) {
		uint32_t v = (uint32_t)bytes[i] << 16;
		if (i + 1 < size)
			v |= (uint32_t)bytes[i + 1] << 8;
		if (i + 2 < size)
			v |= bytes[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < size ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < size ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int tp_base64_decode(const char *text, size_t len, uint8_t **out, size_t *size)
{
	size_t pad = 0, n = 0;
	uint8_t *bytes;

	*out = NULL;
	*size = 0;
	if (len % 4)
		return -EINVAL;
	if (len && text[len - 1] == '=')
		pad = len >= 2 && text[len - 2] == '=' ? 2 : 1;
	if (!(bytes = malloc(len / 4 * 3 + 1)))
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		bool last = i + 4 == len;
		for (int j = 0; j < 4; j++) {
			bool padded = last && j >= 4 - (int)pad;
			v[j] = padded ? 0 : b64_value(text[i + j]);
			if (v[j] < 0) {
				free(bytes);
				return -EINVAL;
			}
		}
		uint32_t w =
		    (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
		/* canonical: the bits a padded group does not use are zero */
		if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
			free(bytes);
			return -EINVAL;
		}
		bytes[n++] = (uint8_t)(w >> 16);
		if (!(last && pad == 2))
			bytes[n++] = (uint8_t)(w >> 8);
		if (!(last && pad >= 1))
			bytes[n++] = (uint8_t)w;
	}
	*out = bytes;
	*size = n;
	return 0;
}
