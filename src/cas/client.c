/* The CAS client: JSON over HTTPS with the CAS's key pinned (libcurl, loaded on first
 * use: every shared library mapped costs each `teepy run` about 0.15 ms, and
 * libcurl brings libssl and a dozen more), the bytes an owner signs, base64, and the
 * secrets of an attestation's answer in locked memory. */
#include "client.h"

#include "cas.h"

#include "../common/log.h"
#include "../crypto/crypto.h"

/* the table below calls through pointers: no type-checking macros of those names */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIBCURL "libcurl.so.4"

/* ---- libcurl, by name ---- */

#define CURL_FUNCTIONS(X)                                                                          \
	X(curl_global_init)                                                                        \
	X(curl_easy_init)                                                                          \
	X(curl_easy_setopt)                                                                        \
	X(curl_easy_perform)                                                                       \
	X(curl_easy_getinfo)                                                                       \
	X(curl_easy_cleanup)                                                                       \
	X(curl_easy_strerror)                                                                      \
	X(curl_slist_append)                                                                       \
	X(curl_slist_free_all)

static struct {
#define FIELD(name) __typeof__(name) *name;
	CURL_FUNCTIONS(FIELD)
#undef FIELD
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[256];

static void load_libcurl(void)
{
	void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		snprintf(load_error, sizeof(load_error),
			 "cannot load %s: %s (install libcurl4: the CAS is reached through it)",
			 LIBCURL, dlerror());
		return;
	}
#define RESOLVE(name)                                                                              \
	if (!(*(void **)&curl.name = dlsym(lib, #name))) {                                         \
		snprintf(load_error, sizeof(load_error), "%s has no %s", LIBCURL, #name);          \
		return;                                                                            \
	}
	CURL_FUNCTIONS(RESOLVE)
#undef RESOLVE
	if (curl.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(load_error, sizeof(load_error), "libcurl would not start");
		return;
	}
	loaded = true;
}

int tp_cas_load(char *err, size_t err_size)
{
	pthread_once(&load_once, load_libcurl);
	if (loaded)
		return 0;
	if (err)
		snprintf(err, err_size, "%s", load_error);
	return -ENOSYS;
}

/* ---- checks of what the person gives ---- */

int tp_cas_check_url(const char *url, char *err, size_t err_size)
{
	if (strncmp(url, "https://", 8) != 0 || !url[8]) {
		snprintf(err, err_size,
			 "'%.200s' is not an https:// URL (the CAS is reached over TLS: "
			 "https://HOST:PORT)",
			 url);
		return -EINVAL;
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(err, err_size, "the URL holds a space or a control character");
			return -EINVAL;
		}
	return 0;
}

int tp_cas_check_fingerprint(const char *fp, char *err, size_t err_size)
{
	const size_t prefix = sizeof(TP_CAS_FINGERPRINT_P) - 1;
	uint8_t *digest = NULL;
	size_t size = 0;
	bool ok = strncmp(fp, TP_CAS_FINGERPRINT_P, prefix) == 0 &&
		  tp_base64_decode(fp + prefix, strlen(fp + prefix), &digest, &size) == 0 &&
		  size == TP_SHA256_SIZE;

	free(digest);
	if (!ok) {
		snprintf(err, err_size,
			 "'%.100s' is not a key fingerprint: sha256// and the base64 of the "
			 "SHA-256 of the CAS's public key, as teepy cas prints it at start",
			 fp);
		return -EINVAL;
	}
	return 0;
}

/* ---- one request ---- */

struct answer_buf {
	char *bytes;
	size_t size;
	bool too_large;
};

static size_t take_answer(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct answer_buf *a = ctx;
	size_t n = size * nmemb;
	char *grown;

	if (a->size + n > TP_CAS_ANSWER_MAX) {
		a->too_large = true;
		return 0; /* libcurl stops: CURLE_WRITE_ERROR */
	}
	if (!(grown = realloc(a->bytes, a->size + n + 1)))
		return 0;
	memcpy(grown + a->size, ptr, n);
	a->bytes = grown;
	a->size += n;
	a->bytes[a->size] = '\0';
	return n;
}

/* One line of what the CAS said in an error answer: "MESSAGE (STATUS KIND)". */
static void server_error(const struct answer_buf *a, long status, char *err, size_t err_size)
{
	json_t *o = a->bytes ? json_loadb(a->bytes, a->size, 0, NULL) : NULL;
	json_t *e = json_object_get(o, "error");
	const char *kind = json_string_value(json_object_get(e, "kind"));
	const char *message = json_string_value(json_object_get(e, "message"));
	char shown[512];
	size_t n = 0;

	/* the server's words on one line: jansson gives valid UTF-8 ("…" stays), in which
	 * every control character, C0, DEL or C1, is shown as '?' */
	const unsigned char *p = (const unsigned char *)(message ? message : "");
	for (; *p && n + 4 < sizeof(shown); p++) {
		if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) {
			shown[n++] = '?';
			p += *p == 0xc2;
			continue;
		}
		shown[n++] = (char)*p;
	}
	if (*p) { /* cut short: not inside a character */
		size_t k = n;
		while (k && ((unsigned char)shown[k - 1] & 0xc0) == 0x80)
			k--;
		if (k && (unsigned char)shown[k - 1] >= 0xc0) {
			unsigned lead = (unsigned char)shown[k - 1];
			if (n - (k - 1) < (lead >= 0xf0 ? 4u : lead >= 0xe0 ? 3u : 2u))
				n = k - 1;
		}
	}
	shown[n] = '\0';
	if (message)
		snprintf(err, err_size, "%s (HTTP %ld%s%.32s)", shown, status, kind ? " " : "",
			 kind ? kind : "");
	else
		snprintf(err, err_size, "HTTP %ld, without the error's words", status);
	json_decref(o);
}

static void join_url(const char *base, const char *path, char *out, size_t size)
{
	size_t n = strlen(base);

	while (n && base[n - 1] == '/')
		n--;
	snprintf(out, size, "%.*s%s", (int)n, base, path);
}

int tp_cas_call(const struct tp_cas_conn *c, const char *method, const char *path,
		const json_t *body, long *status, json_t **answer, char *err, size_t err_size)
{
	char url[2048], curl_err[CURL_ERROR_SIZE] = "";
	struct answer_buf a = { 0 };
	struct curl_slist *headers = NULL;
	char *text = NULL;
	long code = 0;
	CURLcode cr = CURLE_OUT_OF_MEMORY;
	const char *cannot = NULL;
	CURL *h = NULL;
	int r;

	*answer = NULL;
	if (status)
		*status = 0;
	if ((r = tp_cas_load(err, err_size)) < 0)
		return r;
	join_url(c->url, path, url, sizeof(url));
	if (!(text = json_dumps(body, JSON_COMPACT)) || !(h = curl.curl_easy_init()) ||
	    !(headers = curl.curl_slist_append(NULL, "Content-Type: application/json")) ||
	    !(headers = curl.curl_slist_append(headers, "Accept: application/json")) ||
	    /* the body goes at once, without waiting for a "100 Continue" */
	    !(headers = curl.curl_slist_append(headers, "Expect:")))
		goto done;
	/* the pin is the trust: the CAS's certificate is self-signed, so neither its
	 * chain nor its name is checked; a key other than the pinned one is refused
	 * before anything is sent. A libcurl that cannot pin or require TLS 1.3 sends
	 * nothing. */
	if (curl.curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3) !=
	    CURLE_OK) {
		cannot = "cannot require TLS 1.3";
		goto done;
	}
	if (curl.curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, c->fingerprint) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK) {
		cannot = "cannot pin the CAS's key";
		goto done;
	}
	if (curl.curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_POSTFIELDS, text) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text)) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)TP_CAS_CONNECT_S) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TP_CAS_TIMEOUT_S) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, take_answer) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_WRITEDATA, &a) != CURLE_OK ||
	    curl.curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err) != CURLE_OK) {
		cannot = "cannot make the request as it must be (https only, no proxy, "
			 "time limits)";
		goto done;
	}
	cr = curl.curl_easy_perform(h);
	curl.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
done:
	if (status)
		*status = code;
	if (cannot) {
		snprintf(err, err_size, "this libcurl %s: nothing was sent to %s", cannot, c->url);
		r = -ENOTSUP;
		goto cleanup;
	}
	switch (cr) {
	case CURLE_OK:
		if (code < 200 || code > 299) {
			server_error(&a, code, err, err_size);
			r = -EREMOTEIO;
		} else if (!(*answer = json_loadb(a.bytes ? a.bytes : "", a.size, 0, NULL)) ||
			   !json_is_object(*answer)) {
			json_decref(*answer);
			*answer = NULL;
			snprintf(err, err_size, "the CAS's answer is not a JSON object");
			r = -EBADMSG;
		} else {
			r = 0;
		}
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(err, err_size, "cannot reach the CAS at %s: %s", c->url,
			 curl_err[0] ? curl_err : curl.curl_easy_strerror(cr));
		r = -ECONNREFUSED;
		break;
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		snprintf(err, err_size,
			 "the CAS's key is not the pinned one: %s does not hold the key of %s "
			 "(check --cas-fingerprint against what teepy cas printed)",
			 c->url, c->fingerprint);
		r = -EKEYREJECTED;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(err, err_size, "the CAS at %s did not answer within %d s", c->url,
			 TP_CAS_TIMEOUT_S);
		r = -ETIMEDOUT;
		break;
	case CURLE_WRITE_ERROR:
		if (a.too_large) {
			snprintf(err, err_size, "the CAS's answer is larger than %d bytes",
				 TP_CAS_ANSWER_MAX);
			r = -EBADMSG;
			break;
		}
		/* fall through */
	default:
		snprintf(err, err_size, "the CAS at %s: %s", c->url,
			 cr == CURLE_OUT_OF_MEMORY ? "out of memory" :
			 curl_err[0]		   ? curl_err :
						     curl.curl_easy_strerror(cr));
		r = -EIO;
		break;
	}
cleanup:
	if (h)
		curl.curl_easy_cleanup(h);
	if (headers)
		curl.curl_slist_free_all(headers);
	if (text) /* a policy's secret values, for a create or an update */
		explicit_bzero(text, strlen(text));
	free(text);
	free(a.bytes);
	return r;
}

/* ---- what an owner signs ---- */

int tp_cas_signed_bytes(const char *op, const char *const *parts, const size_t *sizes, size_t count,
			uint8_t **out, size_t *size)
{
	size_t n = sizeof(TP_CAS_SIGN_TAG) + strlen(op) + 1, at = 0;
	uint8_t *p;

	for (size_t i = 0; i < count; i++)
		n += sizes[i] + (i > 0);
	if (!(p = malloc(n)))
		return -ENOMEM;
	memcpy(p, TP_CAS_SIGN_TAG, sizeof(TP_CAS_SIGN_TAG)); /* with its NUL */
	at = sizeof(TP_CAS_SIGN_TAG);
	memcpy(p + at, op, strlen(op) + 1);
	at += strlen(op) + 1;
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			p[at++] = '\0';
		memcpy(p + at, parts[i], sizes[i]);
		at += sizes[i];
	}
	*out = p;
	*size = at;
	return 0;
}

/* ---- the released secrets ---- */

/* jansson's copies of the opened answer in locked memory, wiped when freed: a size
 * word before each block says how much to wipe */
#define LOCKED_HEAD 16

static void *locked_malloc(size_t size)
{
	uint8_t *p = tp_secret_alloc(size + LOCKED_HEAD);

	if (!p)
		return NULL;
	*(size_t *)p = size + LOCKED_HEAD;
	return p + LOCKED_HEAD;
}

static void locked_free(void *ptr)
{
	uint8_t *p = ptr;

	if (p)
		tp_secret_free(p - LOCKED_HEAD, *(size_t *)(p - LOCKED_HEAD));
}

static bool env_name_ok(const char *name)
{
	if (!*name || strlen(name) >= 256 || strncmp(name, "LD_", 3) == 0)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
		      (p > name && *p >= '0' && *p <= '9')))
			return false;
	return true;
}

/* A key's base64 into new locked memory (the decoder's copy wiped). */
static int take_key(const char *name, json_t *value, uint8_t **slot, char *err, size_t err_size)
{
	const char *text = json_string_value(value);
	uint8_t *bytes = NULL;
	size_t size = 0;
	int r = 0;

	if (!text || tp_base64_decode(text, json_string_length(value), &bytes, &size) < 0 ||
	    size != TP_CAS_KEY_SIZE)
		r = tp_errf(err, err_size, "secret %.64s: not the base64 of a 32-byte key", name);
	else if (!(*slot = tp_secret_alloc(TP_CAS_KEY_SIZE)))
		r = -ENOMEM;
	else
		memcpy(*slot, bytes, TP_CAS_KEY_SIZE);
	if (bytes)
		explicit_bzero(bytes, size);
	free(bytes);
	return r;
}

static int take_env(struct tp_cas_secrets *s, const char *name, json_t *value, char *err,
		    size_t err_size)
{
	const char *text = json_string_value(value);
	size_t len = json_string_length(value), size = strlen(name) + 1 + len + 1;
	char *item;

	if (!env_name_ok(name))
		return tp_errf(err, err_size,
			       "secret %.64s: an env secret's name is a variable's (letters, "
			       "digits and _, not LD_*)",
			       name);
	if (!text || memchr(text, '\0', len))
		return tp_errf(err, err_size, "secret %.64s: not a string without NUL", name);
	if (!(item = tp_secret_alloc(size)))
		return -ENOMEM;
	snprintf(item, size, "%s=%s", name, text);
	s->env[s->env_count] = item;
	s->env_sizes[s->env_count++] = size;
	return 0;
}

static int take_secret(struct tp_cas_secrets *s, const char *name, json_t *v, char *err,
		       size_t err_size)
{
	const char *kind = json_string_value(json_object_get(v, "kind"));
	json_t *value = json_object_get(v, "value");

	if (!json_is_object(v) || !kind || !json_is_string(value))
		return tp_errf(err, err_size, "secret %.64s: no kind and value", name);
	if (strcmp(kind, "bundle_key") == 0 || strcmp(kind, "volume_key") == 0) {
		uint8_t **slot = kind[0] == 'b' ? &s->bundle_key : &s->volume_key;
		if (*slot)
			return tp_errf(err, err_size, "secret %.64s: a second %s", name, kind);
		return take_key(name, value, slot, err, err_size);
	}
	if (strcmp(kind, "data_key") == 0) {
		struct tp_cas_data_key *d = &s->data[s->data_count];
		const char *id = json_string_value(json_object_get(v, "data_id"));
		if (!id || tp_unhex(id, d->id, TP_CAS_ID_SIZE) < 0)
			return tp_errf(
			    err, err_size,
			    "secret %.64s: a data key without its data_id (64 hex digits)", name);
		if (tp_cas_data_key_find(s, d->id))
			return tp_errf(err, err_size, "secret %.64s: a second key for item %.16s…",
				       name, id);
		int r = take_key(name, value, &d->key, err, err_size);
		s->data_count += r == 0;
		return r;
	}
	if (strcmp(kind, "env") == 0)
		return take_env(s, name, value, err, err_size);
	if (strcmp(kind, "blob") == 0) {
		size_t n = strlen(s->blobs);
		snprintf(s->blobs + n, sizeof(s->blobs) - n, "%s%s", n ? ", " : "", name);
		s->blob_count++;
		return 0;
	}
	return tp_errf(err, err_size, "secret %.64s: unknown kind '%.32s'", name, kind);
}

int tp_cas_secrets_parse(const char *json, size_t size, struct tp_cas_secrets *s, char *err,
			 size_t err_size)
{
	json_t *root, *secrets, *v;
	const char *name;
	size_t count;
	int r = 0;

	memset(s, 0, sizeof(*s));
	json_set_alloc_funcs(locked_malloc, locked_free);
	root = json_loadb(json, size, JSON_REJECT_DUPLICATES, NULL);
	secrets = json_object_get(root, "secrets");
	if (!json_is_object(secrets)) {
		r = tp_errf(err, err_size, "the sealed answer is not {\"secrets\": {...}}");
		goto out;
	}
	count = json_object_size(secrets);
	s->data = calloc(count + 1, sizeof(*s->data));
	s->env = calloc(count + 1, sizeof(*s->env));
	s->env_sizes = calloc(count + 1, sizeof(*s->env_sizes));
	if (!s->data || !s->env || !s->env_sizes) {
		r = -ENOMEM;
		goto out;
	}
	json_object_foreach(secrets, name, v)
	{
		if ((r = take_secret(s, name, v, err, err_size)) < 0)
			break;
	}
out:
	json_decref(root);
	json_set_alloc_funcs(malloc, free);
	if (r == -ENOMEM)
		tp_errf(err, err_size, "out of memory");
	if (r < 0) {
		tp_cas_secrets_free(s);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	return 0;
}

void tp_cas_secrets_free(struct tp_cas_secrets *s)
{
	tp_secret_free(s->bundle_key, TP_CAS_KEY_SIZE);
	tp_secret_free(s->volume_key, TP_CAS_KEY_SIZE);
	for (size_t i = 0; s->data && i < s->data_count; i++)
		tp_secret_free(s->data[i].key, TP_CAS_KEY_SIZE);
	for (size_t i = 0; s->env && i < s->env_count; i++)
		tp_secret_free(s->env[i], s->env_sizes[i]);
	free(s->data);
	free(s->env);
	free(s->env_sizes);
	memset(s, 0, sizeof(*s));
}

const uint8_t *tp_cas_data_key_find(const struct tp_cas_secrets *s,
				    const uint8_t id[TP_CAS_ID_SIZE])
{
	for (size_t i = 0; i < s->data_count; i++)
		if (memcmp(s->data[i].id, id, TP_CAS_ID_SIZE) == 0)
			return s->data[i].key;
	return NULL;
}
