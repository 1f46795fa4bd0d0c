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
#include <ctype.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static bool has_space_or_control(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return true;
	return false;
}

int tp_cas_check_url(const char *url, char *err, size_t err_size)
{
	if (strncmp(url, "https://", 8) != 0 || !url[8]) {
		snprintf(err, err_size,
			 "'%.200s' is not an https:// URL (the CAS is reached over TLS: "
			 "https://HOST:PORT)",
			 url);
		return -EINVAL;
	}
	if (has_space_or_control(url)) {
		snprintf(err, err_size, "the URL holds a space or a control character");
		return -EINVAL;
	}
	return 0;
}

int tp_http_check_url(const char *url, const char *what, char *err, size_t err_size)
{
	size_t scheme = strncmp(url, "http://", 7) == 0	 ? 7 :
			strncmp(url, "https://", 8) == 0 ? 8 :
							   0;

	if (!scheme || !url[scheme] || url[scheme] == '/') {
		snprintf(err, err_size, "%s: '%.200s' is not an http:// or https:// URL", what,
			 url);
		return -EINVAL;
	}
	if (has_space_or_control(url)) {
		snprintf(err, err_size, "%s: the URL holds a space or a control character", what);
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
	size_t size, capacity, max;
	bool too_large;
};

static size_t take_answer(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct answer_buf *a = ctx;
	size_t n = size * nmemb;

	if (n > a->max || a->size > a->max - n) {
		a->too_large = true;
		return 0; /* libcurl stops: CURLE_WRITE_ERROR */
	}
	if (a->size + n + 1 > a->capacity) {
		size_t want = a->capacity ? a->capacity : 4096;
		while (want < a->size + n + 1)
			want *= 2;
		char *grown = realloc(a->bytes, want);
		if (!grown)
			return 0;
		a->bytes = grown;
		a->capacity = want;
	}
	memcpy(a->bytes + a->size, ptr, n);
	a->size += n;
	a->bytes[a->size] = '\0';
	return n;
}

/* A file's bytes as libcurl asks for them. */
struct upload {
	int fd;
	uint64_t size, sent;
	struct tp_sha256 *hash;
	bool failed; /* a read failed, or the file ended early */
};

static size_t give_upload(char *buf, size_t size, size_t nitems, void *ctx)
{
	struct upload *u = ctx;
	size_t want = size * nitems;
	ssize_t n;

	if (want > u->size - u->sent)
		want = (size_t)(u->size - u->sent);
	if (want == 0)
		return 0;
	do
		n = pread(u->fd, buf, want, (off_t)u->sent);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		u->failed = true;
		return CURL_READFUNC_ABORT;
	}
	if (u->hash)
		tp_sha256_update(u->hash, buf, (size_t)n);
	u->sent += (uint64_t)n;
	return (size_t)n;
}

/* One line of what the peer said in an error answer o (a JSON object or NULL):
 * "MESSAGE (HTTP STATUS KIND)". */
static void server_error(const json_t *o, long status, char *err, size_t err_size)
{
	json_t *e = json_object_get(o, "error");
	const char *kind = json_string_value(json_object_get(e, "kind"));
	const char *message = json_string_value(json_object_get(e, "message"));
	char shown[512], shown_kind[33];
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
	/* the kind is a word: anything else in it is shown as '?' */
	for (n = 0; kind && kind[n] && n < sizeof(shown_kind) - 1; n++)
		shown_kind[n] =
		    isalnum((unsigned char)kind[n]) || kind[n] == '_' || kind[n] == '-' ? kind[n] :
											  '?';
	shown_kind[kind ? n : 0] = '\0';
	if (message)
		snprintf(err, err_size, "%s (HTTP %ld%s%s)", shown, status, kind ? " " : "",
			 shown_kind);
	else if (o)
		snprintf(err, err_size, "HTTP %ld, without the error's words", status);
	else
		snprintf(err, err_size, "HTTP %ld, with an answer that is not JSON", status);
}

static void join_url(const char *base, const char *path, char *out, size_t size)
{
	size_t n = strlen(base);

	while (n && base[n - 1] == '/')
		n--;
	snprintf(out, size, "%.*s%s", (int)n, base, path);
}

#define SET(opt, value) (curl.curl_easy_setopt(h, (opt), (value)) == CURLE_OK)

/* The connection's trust: a pinned key (TLS 1.3, nothing else checked), else http as
 * it is or https verified as libcurl verifies by default. NULL, or what cannot be
 * set. */
static const char *set_trust(CURL *h, const struct tp_http_peer *p)
{
	bool https = strncmp(p->url, "https://", 8) == 0;

	if (p->fingerprint) {
		/* the pin is the trust: the CAS's certificate is self-signed, so neither its
		 * chain nor its name is checked; a key other than the pinned one is refused
		 * before anything is sent. A libcurl that cannot pin or require TLS 1.3
		 * sends nothing. */
		if (!SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3))
			return "cannot require TLS 1.3";
		if (!SET(CURLOPT_PINNEDPUBLICKEY, p->fingerprint) ||
		    !SET(CURLOPT_SSL_VERIFYPEER, 0L) || !SET(CURLOPT_SSL_VERIFYHOST, 0L))
			return "cannot pin the CAS's key";
		return SET(CURLOPT_PROTOCOLS_STR, "https") ? NULL : "cannot require https";
	}
	if (https && (!SET(CURLOPT_SSL_VERIFYPEER, 1L) || !SET(CURLOPT_SSL_VERIFYHOST, 2L)))
		return "cannot verify certificates";
	return SET(CURLOPT_PROTOCOLS_STR, https ? "https" : "http") ?
		   NULL :
		   "cannot require the URL's scheme";
}

/* The body's options and headers. NULL, or what cannot be set. */
static const char *set_body(CURL *h, const char *method, const char *text,
			    const struct tp_http_body *body, struct upload *up,
			    struct curl_slist **headers)
{
	struct curl_slist *l = curl.curl_slist_append(NULL, "Accept: application/json");

	if (!l)
		return "is out of memory";
	*headers = l;
	if (text) {
		/* the body goes at once, without waiting for a "100 Continue" */
		if (!(l = curl.curl_slist_append(l, "Content-Type: application/json")) ||
		    !(l = curl.curl_slist_append(l, "Expect:")))
			return "is out of memory";
		if (!SET(CURLOPT_POSTFIELDS, text) ||
		    !SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text)))
			return "cannot send a body";
	} else if (body && body->fd >= 0) {
		/* "100 Continue" first: a peer that refuses the upload (too large, not
		 * there) says so before any of its bytes are sent */
		if (!(l = curl.curl_slist_append(l, "Content-Type: application/octet-stream")) ||
		    !(l = curl.curl_slist_append(l, "Expect: 100-continue")))
			return "is out of memory";
		*up = (struct upload){ .fd = body->fd, .size = body->size, .hash = body->hash };
		if (!SET(CURLOPT_POST, 1L) || !SET(CURLOPT_READFUNCTION, give_upload) ||
		    !SET(CURLOPT_READDATA, up) ||
		    !SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->size))
			return "cannot stream an upload";
	} else if (strcmp(method, "GET") == 0 && !SET(CURLOPT_HTTPGET, 1L)) {
		return "cannot make a GET";
	}
	*headers = l;
	return SET(CURLOPT_CUSTOMREQUEST, method) && SET(CURLOPT_HTTPHEADER, l) ?
		   NULL :
		   "cannot set the method or the headers";
}

/* The outcome of a transfer that ended with cr (and answer a) as a return code and
 * err's line. */
static int transfer_error(const struct tp_http_peer *p, CURLcode cr, const struct answer_buf *a,
			  const struct upload *up, const char *curl_err, bool connected, char *err,
			  size_t err_size)
{
	const char *words = curl_err[0] ? curl_err : curl.curl_easy_strerror(cr);

	switch (cr) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(err, err_size, "cannot reach %s at %s: %s", p->name, p->url, words);
		return -ECONNREFUSED;
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		snprintf(err, err_size,
			 "the CAS's key is not the pinned one: %s does not hold the key of %s "
			 "(check --cas-fingerprint against what teepy cas printed)",
			 p->url, p->fingerprint);
		return -EKEYREJECTED;
	case CURLE_PEER_FAILED_VERIFICATION:
		snprintf(err, err_size, "%s at %s: its certificate does not verify: %s", p->name,
			 p->url, words);
		return -EKEYREJECTED;
	case CURLE_OPERATION_TIMEDOUT:
		/* the one that fired: connecting (TLS's handshake too), or the whole */
		if (!connected)
			snprintf(err, err_size, "%s at %s could not be connected to within %d s",
				 p->name, p->url, TP_CAS_CONNECT_S);
		else
			snprintf(err, err_size, "%s at %s did not answer within %ld s", p->name,
				 p->url, p->timeout_s ? p->timeout_s : (long)TP_CAS_CONNECT_S);
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		if (up->failed) {
			snprintf(err, err_size,
				 "the file could not be read, or it changed size, while it was "
				 "sent");
			return -ENODATA;
		}
		break;
	case CURLE_WRITE_ERROR:
		if (a->too_large) {
			snprintf(err, err_size, "%s's answer is larger than %zu bytes", p->name,
				 p->answer_max);
			return -EBADMSG;
		}
		break;
	default:
		break;
	}
	snprintf(err, err_size, "%s at %s: %s", p->name, p->url,
		 cr == CURLE_OUT_OF_MEMORY ? "out of memory" : words);
	return -EIO;
}

int tp_http_call(const struct tp_http_peer *p, const char *method, const char *path,
		 const struct tp_http_body *body, long *status, json_t **answer, char *err,
		 size_t err_size)
{
	char url[2048], curl_err[CURL_ERROR_SIZE] = "";
	struct answer_buf a = { .max = p->answer_max };
	struct upload up = { .fd = -1 };
	struct curl_slist *headers = NULL;
	char *text = NULL;
	long code = 0;
	double connect_s = 0;
	CURLcode cr = CURLE_OUT_OF_MEMORY;
	const char *cannot = NULL;
	CURL *h = NULL;
	int r;

	*answer = NULL;
	if (status)
		*status = 0;
	if ((r = tp_cas_load(err, err_size)) < 0)
		return r;
	join_url(p->url, path, url, sizeof(url));
	if ((body && body->json && !(text = json_dumps(body->json, JSON_COMPACT))) ||
	    !(h = curl.curl_easy_init()))
		goto done;
	if ((cannot = set_trust(h, p)) || (cannot = set_body(h, method, text, body, &up, &headers)))
		goto done;
	if (!SET(CURLOPT_URL, url) || !SET(CURLOPT_NOPROXY, "*") || !SET(CURLOPT_NOSIGNAL, 1L) ||
	    !SET(CURLOPT_CONNECTTIMEOUT, (long)TP_CAS_CONNECT_S) ||
	    !SET(CURLOPT_TIMEOUT, p->timeout_s) || !SET(CURLOPT_FOLLOWLOCATION, 0L) ||
	    !SET(CURLOPT_WRITEFUNCTION, take_answer) || !SET(CURLOPT_WRITEDATA, &a) ||
	    !SET(CURLOPT_ERRORBUFFER, curl_err)) {
		cannot = "cannot make the request as it must be (no proxy, time limits)";
		goto done;
	}
	cr = curl.curl_easy_perform(h);
	curl.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	/* connected: TCP's and, for https, TLS's (what CURLOPT_CONNECTTIMEOUT bounds) */
	curl.curl_easy_getinfo(
	    h, strncmp(url, "https:", 6) == 0 ? CURLINFO_APPCONNECT_TIME : CURLINFO_CONNECT_TIME,
	    &connect_s);
	if (cr == CURLE_OK && up.fd >= 0 && up.sent != up.size) {
		up.failed = true; /* libcurl stopped asking: the peer answered early */
		cr = code >= 300 ? CURLE_OK : CURLE_ABORTED_BY_CALLBACK;
	}
done:
	if (status)
		*status = code;
	if (cannot) {
		snprintf(err, err_size, "this libcurl %s: nothing was sent to %s", cannot, p->url);
		r = -ENOTSUP;
	} else if (cr != CURLE_OK) {
		r = transfer_error(p, cr, &a, &up, curl_err, connect_s > 0, err, err_size);
	} else {
		json_t *o = json_loadb(a.bytes ? a.bytes : "", a.size, 0, NULL);
		if (o && !json_is_object(o)) {
			json_decref(o);
			o = NULL;
		}
		if (code < 200 || code > 299) {
			server_error(o, code, err, err_size);
			*answer = o;
			r = -EREMOTEIO;
		} else if (!o) {
			snprintf(err, err_size, "%s's answer is not a JSON object", p->name);
			r = -EBADMSG;
		} else {
			*answer = o;
			r = 0;
		}
	}
	if (h)
		curl.curl_easy_cleanup(h);
	if (headers)
		curl.curl_slist_free_all(headers);
	if (text) /* a policy's secret values, a deployment's keys */
		explicit_bzero(text, strlen(text));
	free(text);
	free(a.bytes);
	return r;
}

#undef SET

int tp_cas_call(const struct tp_cas_conn *c, const char *method, const char *path,
		const json_t *body, long *status, json_t **answer, char *err, size_t err_size)
{
	const struct tp_http_peer peer = {
		.url = c->url,
		.fingerprint = c->fingerprint,
		.name = "the CAS",
		.answer_max = TP_CAS_ANSWER_MAX,
		.timeout_s = TP_CAS_TIMEOUT_S,
	};
	const struct tp_http_body b = { .json = body, .fd = -1 };
	int r;

	if (!c->fingerprint) { /* never unpinned */
		snprintf(err, err_size, "the CAS's key fingerprint is missing");
		return -EINVAL;
	}
	r = tp_http_call(&peer, method, path, &b, status, answer, err, err_size);
	if (r == -EREMOTEIO) {
		json_decref(*answer);
		*answer = NULL;
	}
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

/* jansson's copies of the opened answer in locked memory, wiped when freed. jansson
 * has one allocator for the whole process, and the worker's other threads use it
 * meanwhile: so the pair installed (once) serves every thread, and only the thread
 * parsing secrets, while it does (json_locked), gets locked blocks, a size word
 * before each. That thread frees, in that while, only blocks it made in it (the
 * answer's tree); every other block is malloc's, wiped when freed. */
#define LOCKED_HEAD 16

static __thread bool json_locked;
static pthread_once_t json_alloc_once = PTHREAD_ONCE_INIT;

static void *json_malloc(size_t size)
{
	uint8_t *p;

	if (!json_locked)
		return malloc(size);
	if (size > SIZE_MAX - LOCKED_HEAD || !(p = tp_secret_alloc(size + LOCKED_HEAD)))
		return NULL;
	*(size_t *)p = size + LOCKED_HEAD;
	return p + LOCKED_HEAD;
}

static void json_free(void *ptr)
{
	uint8_t *p = ptr;

	if (!p)
		return;
	if (json_locked)
		tp_secret_free(p - LOCKED_HEAD, *(const size_t *)(p - LOCKED_HEAD));
	else
		tp_free_wiped(p);
}

static void json_alloc_install(void)
{
	json_set_alloc_funcs(json_malloc, json_free);
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
	pthread_once(&json_alloc_once, json_alloc_install);
	json_locked = true;
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
	json_locked = false;
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
