/* The CAS over HTTPS: libmicrohttpd with TLS 1.3 only (GnuTLS priorities), a key and
 * self-signed certificate made at first start, whose key clients pin. A few polling
 * threads, each with its own epoll, hold many connections at once (a thread a
 * connection would be a thousand threads for a thousand idle clients); each request's
 * body is read up to TP_CAS_BODY_MAX and no further, an idle connection is closed
 * after the timeout (slowloris), and the connections at once are capped. The service
 * answers; this file only carries bytes. */
#include "cas.h"

#include "../common/io.h"
#include "../common/net.h"
#include "../crypto/crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct tp_cas_server {
	struct MHD_Daemon *daemon;
	struct tp_cas_service *service;
	unsigned port;
	char *key, *cert; /* PEM, kept while the daemon runs */
};

/* One request's body as it arrives. */
struct pending {
	uint8_t *body;
	size_t size, cap;
	unsigned early; /* 413 or 415: the answer, without reading on */
	size_t dropped; /* bytes of a body over the cap, dropped */
};

/* A request body freed, wiped first: a create's holds a policy's secret values. */
static void wipe_free(uint8_t *body, size_t size)
{
	if (body)
		explicit_bzero(body, size);
	free(body);
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, unsigned status, char *body,
				   size_t size)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(size, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *kind,
				  const char *message)
{
	char *body = NULL;

	if (asprintf(&body, "{\"error\":{\"kind\":\"%s\",\"message\":\"%s\"}}", kind, message) < 0)
		return MHD_NO;
	return send_answer(conn, status, body, strlen(body));
}

static void remote_of(struct MHD_Connection *conn, char *out, size_t size)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;

	snprintf(out, size, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
			  (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  (socklen_t)size);
}

static bool is_json_type(const char *type)
{
	return type && strncasecmp(type, "application/json", 16) == 0 &&
	       (type[16] == '\0' || type[16] == ';' || type[16] == ' ');
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct tp_cas_server *srv = cls;
	struct pending *p = *con_cls;
	const char *type =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	char remote[INET6_ADDRSTRLEN + 1];
	struct tp_cas_answer ans;

	if (!p) {
		/* the headers are in: refuse what cannot be served before reading a body */
		const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							      MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (!(p = calloc(1, sizeof(*p))))
			return MHD_NO;
		*con_cls = p;
		if (len && strtoull(len, NULL, 10) > TP_CAS_BODY_MAX)
			p->early = 413;
		else if ((strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) &&
			 !is_json_type(type))
			p->early = 415;
		if (p->early == 413)
			return send_error(conn, 413, "too_large", "the body is over 1 MiB");
		if (p->early == 415)
			return send_error(conn, 415, "unsupported_media_type",
					  "the body must be Content-Type: application/json");
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (p->early == 415 || (p->early == 413 && p->size == 0 && !p->dropped))
			return MHD_YES; /* answered already: the rest is dropped */
		if (p->early == 413 || p->size + n > TP_CAS_BODY_MAX) {
			/* a body without a length (chunked) went over: dropped while it comes,
			 * answered at its end; one that goes on and on is cut off */
			p->early = 413;
			wipe_free(p->body, p->size);
			p->body = NULL;
			p->size = p->cap = 0;
			p->dropped += n;
			return p->dropped > 8 * TP_CAS_BODY_MAX ? MHD_NO : MHD_YES;
		}
		if (p->size + n > p->cap) {
			size_t cap = p->cap ? p->cap : 4096;
			while (cap < p->size + n)
				cap *= 2;
			/* not realloc: it would leave the old bytes (secrets, maybe) behind */
			uint8_t *b = malloc(cap);
			if (!b)
				return MHD_NO;
			if (p->size)
				memcpy(b, p->body, p->size);
			wipe_free(p->body, p->size);
			p->body = b;
			p->cap = cap;
		}
		memcpy(p->body + p->size, upload_data, n);
		p->size += n;
		return MHD_YES;
	}
	if (p->early == 413 && p->dropped)
		return send_error(conn, 413, "too_large", "the body is over 1 MiB");
	if (p->early)
		return MHD_YES;
	remote_of(conn, remote, sizeof(remote));
	struct tp_cas_request req = {
		.method = method,
		.path = url,
		.content_type = type,
		.body = p->body ? p->body : (const uint8_t *)"",
		.size = p->size,
		.remote = remote,
		.now = (int64_t)time(NULL),
	};
	tp_cas_handle(srv->service, &req, &ans);
	return send_answer(conn, ans.status, ans.body, ans.size);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct pending *p = *con_cls;

	if (p) {
		wipe_free(p->body, p->size);
		free(p);
		*con_cls = NULL;
	}
}

/* A PEM file, NUL-terminated, as GnuTLS takes it. */
static int read_pem(const char *path, char **out, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = tp_read_all(fd, 1 << 16, out, size);
	close(fd);
	return r;
}

/* The key and certificate, made when both are missing. */
static int load_tls(struct tp_cas_server *srv, const struct tp_cas_server_opts *o,
		    char *fingerprint, size_t fp_size, char *err, size_t err_size)
{
	bool have_key = access(o->key, F_OK) == 0, have_cert = access(o->cert, F_OK) == 0;
	struct tp_cert *certs[1] = { NULL };
	uint8_t sha[TP_SHA256_SIZE];
	size_t size;
	char *b64;
	int r;

	if (!have_key && !have_cert &&
	    (r = tp_tls_key_generate(o->key, o->cert, "teepy cas")) < 0) {
		snprintf(err, err_size, "cannot make the TLS key %s: %s", o->key, strerror(-r));
		return r;
	}
	if (have_key != have_cert) {
		snprintf(err, err_size, "%s is there but %s is not (remove it to make both anew)",
			 have_key ? o->key : o->cert, have_key ? o->cert : o->key);
		return -ENOENT;
	}
	if ((r = read_pem(o->key, &srv->key, &size)) < 0 ||
	    (r = read_pem(o->cert, &srv->cert, &size)) < 0) {
		snprintf(err, err_size, "cannot read %s: %s", srv->key ? o->cert : o->key,
			 strerror(-r));
		return r;
	}
	if (tp_certs_from_pem(srv->cert, size, certs, 1) != 1 ||
	    tp_cert_key_sha256(certs[0], sha) < 0) {
		tp_cert_free(certs[0]);
		snprintf(err, err_size, "%s: not a PEM certificate", o->cert);
		return -EINVAL;
	}
	tp_cert_free(certs[0]);
	if (!(b64 = tp_base64_encode(sha, sizeof(sha))))
		return -ENOMEM;
	snprintf(fingerprint, fp_size, "sha256//%s", b64);
	free(b64);
	return 0;
}

int tp_cas_server_start(const struct tp_cas_server_opts *o, struct tp_cas_service *s,
			struct tp_cas_server **out, char *fingerprint, size_t fp_size, char *err,
			size_t err_size)
{
	struct tp_cas_server *srv = calloc(1, sizeof(*srv));
	int fd, r;

	if (!srv)
		return -ENOMEM;
	srv->service = s;
	if ((r = load_tls(srv, o, fingerprint, fp_size, err, err_size)) < 0 ||
	    (r = fd = tp_listen_tcp(o->host, o->port, 0, &srv->port, err, err_size)) < 0) {
		tp_cas_server_stop(srv);
		return r;
	}
	srv->daemon = MHD_start_daemon(
	    MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, srv,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_HTTPS_MEM_KEY, srv->key,
	    MHD_OPTION_HTTPS_MEM_CERT, srv->cert, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)o->max_conn, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
	if (!srv->daemon) {
		close(fd);
		snprintf(err, err_size,
			 "libmicrohttpd did not start (the TLS key, or GnuTLS without TLS 1.3?)");
		tp_cas_server_stop(srv);
		return -EIO;
	}
	*out = srv;
	return 0;
}

unsigned tp_cas_server_port(const struct tp_cas_server *srv)
{
	return srv->port;
}

void tp_cas_server_stop(struct tp_cas_server *srv)
{
	if (!srv)
		return;
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	if (srv->key) {
		memset(srv->key, 0, strlen(srv->key));
		free(srv->key);
	}
	free(srv->cert);
	free(srv);
}
