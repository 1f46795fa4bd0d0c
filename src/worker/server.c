/* The worker over HTTP: libmicrohttpd, plain HTTP, a few polling threads each with
 * its own epoll; bodies capped while they are read (JSON held up to --max-request,
 * uploads streamed into the store up to --max-upload), idle connections closed after
 * the timeout. An invocation suspends its connection: one collector thread watches
 * every running invocation's socket for its outcome and every waiting client's
 * socket for its going away (then the invocation is cancelled), hands queued jobs to
 * the spawner as others end, and resumes the connection with the answer. The api
 * answers; this file carries bytes and holds the queue. */
#include "worker.h"

#include "../common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* The inputs waiting in the queue, in all: beyond, 503 busy (each is at most
 * --max-request) */
#define QUEUED_BYTES_MAX(max_request) (4 * (max_request))

struct job {
	struct MHD_Connection *conn;
	enum job_state state;
	struct tp_worker_prepared prep;
	int sock;      /* the invocation's socket, once running */
	int client_fd; /* the client's connection (a copy), watched for its going away */
	bool cancelled;
	bool client_gone;
	bool counted; /* it ran to an outcome: its service's count is owed */
	size_t bytes; /* its input, held while it waits */
	struct tp_worker_answer ans;
	struct job *next;
};

struct tp_worker_server {
	struct MHD_Daemon *daemon;
	struct tp_worker_api *api;
	struct tp_worker_server_opts o;
	unsigned port;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct job *jobs; /* queued and running, oldest first */
	unsigned running, queued;
	uint64_t queued_bytes; /* the inputs waiting: at most QUEUED_BYTES_MAX */
	bool stopping, quit;
	int wake[2];
	pthread_t collector;
	bool collector_on;
	unsigned workers;  /* requests answered on threads of their own (a CAS's wait) */
	unsigned requests; /* begun and not completed (their answers not all written) */
	pthread_mutex_t log_lock;
};

/* One request as it arrives. */
struct pending {
	enum tp_worker_route route;
	char id[TP_WORKER_ID_HEX];
	bool answered; /* an answer is queued: the rest of the body is dropped */
	bool over;     /* the body went over its cap */
	uint64_t max;
	char *body;
	size_t size, cap;
	uint64_t dropped;
	struct tp_worker_upload *up;
	int upload_err;
	struct job *job;
	bool working, work_done; /* answered on a thread of its own (work_thread) */
	struct timespec start;
	char method[16], path[256], remote[INET6_ADDRSTRLEN + 1];
	struct tp_worker_answer ans; /* what was answered, for the log line */
};

static double ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static void wake(struct tp_worker_server *srv)
{
	char byte = 'w';
	if (write(srv->wake[1], &byte, 1) < 0) {
		/* full: a wake-up is pending already */
	}
}

/* ---- answers ---- */

static enum MHD_Result send_answer(struct MHD_Connection *conn, struct pending *p,
				   struct tp_worker_answer *a)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	if (!a->body)
		tp_worker_error(a, 500, "internal", "no answer");
	resp = MHD_create_response_from_buffer(a->size, a->body, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	a->body = NULL; /* the response owns it */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (a->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, a->allow);
	if (a->retry_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	r = MHD_queue_response(conn, a->status, resp);
	MHD_destroy_response(resp);
	if (p) {
		p->answered = true;
		if (a != &p->ans)
			p->ans = *a;
	}
	return r;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, struct pending *p, unsigned status,
				    const char *kind, const char *message)
{
	tp_worker_error(&p->ans, status, kind, "%s", message);
	return send_answer(conn, p, &p->ans);
}

/* The request's line on stderr: no input, result, log, data or key. */
static void log_request(struct tp_worker_server *srv, const struct pending *p)
{
	const struct tp_worker_answer *a = &p->ans;
	/* the method and path as the client sent them, which need not be UTF-8 */
	json_t *line =
	    json_pack("{s:I, s:s, s:o, s:o, s:i, s:f}", "time", (json_int_t)time(NULL), "remote",
		      p->remote, "method", tp_worker_utf8_string(p->method, strlen(p->method)),
		      "path", tp_worker_utf8_string(p->path, strlen(p->path)), "status",
		      (int)a->status, "ms", ms_since(&p->start));
	char *text;

	if (!line)
		return;
	if (p->route == TP_ROUTE_INVOKE && a->end) {
		json_object_set_new(line, "service", json_string(p->id));
		json_object_set_new(line, "end", json_string(a->end));
		if (a->start)
			json_object_set_new(line, "start", json_string(a->start));
		json_object_set_new(line, "usage",
				    json_pack("{s:I, s:I, s:I}", "cpu_ms",
					      (json_int_t)a->usage.cpu_ms, "peak_memory_bytes",
					      (json_int_t)a->usage.peak_memory_bytes, "wall_ms",
					      (json_int_t)a->usage.wall_ms));
	}
	text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (!text)
		return;
	pthread_mutex_lock(&srv->log_lock);
	fprintf(stderr, "%s\n", text);
	fflush(stderr);
	pthread_mutex_unlock(&srv->log_lock);
	free(text);
}

/* ---- the queue (the lock held) ---- */

static void job_start(struct tp_worker_server *srv, struct job *j)
{
	int r = tp_worker_spawn(srv->o.spawner, &j->prep.job, &j->sock);

	tp_worker_prepared_free(&j->prep); /* its keys are the child's now */
	srv->running++;
	j->state = JOB_RUNNING;
	if (r < 0) {
		j->sock = -1;
		tp_worker_error(&j->ans, 500, "internal", "the spawner is gone: %s", strerror(-r));
	}
}

static void job_unlink(struct tp_worker_server *srv, struct job *j)
{
	for (struct job **pp = &srv->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	j->next = NULL;
}

static void unqueue(struct tp_worker_server *srv, struct job *j)
{
	srv->queued--;
	srv->queued_bytes -= j->bytes;
}

/* A job answered: off the lists, its connection resumed, the next queued one started. */
static void job_done(struct tp_worker_server *srv, struct job *j)
{
	if (j->state == JOB_RUNNING)
		srv->running--;
	else if (j->state == JOB_QUEUED)
		unqueue(srv, j);
	j->state = JOB_DONE;
	job_unlink(srv, j);
	if (j->sock >= 0)
		close(j->sock);
	if (j->client_fd >= 0)
		close(j->client_fd);
	j->sock = j->client_fd = -1;
	tp_worker_prepared_free(&j->prep);
	for (struct job *q = srv->jobs; q && srv->running < srv->o.concurrency; q = q->next)
		if (q->state == JOB_QUEUED) {
			unqueue(srv, q);
			job_start(srv, q);
		}
	MHD_resume_connection(j->conn);
	if (!srv->jobs)
		pthread_cond_broadcast(&srv->idle);
}

/* ---- the collector ---- */

static void collect(struct tp_worker_server *srv, struct job *j)
{
	struct tp_worker_outcome o;
	char *result = NULL, *log = NULL;
	int r = tp_worker_outcome_read(j->sock, srv->o.max_result, &o, &result, &log);

	if (r == 0) {
		tp_worker_outcome_answer(&o, result, log, &j->ans);
		j->counted = true;
	} else if (r == -ENOMEM)
		tp_worker_error(&j->ans, 500, "internal",
				"the result is larger than the worker "
				"can hold");
	else if (r == -EFBIG)
		tp_worker_error(&j->ans, 500, "internal",
				"the result is larger than the worker takes (--max-result)");
	else
		tp_worker_error(&j->ans, 500, "internal",
				"the invocation's process ended without an outcome");
	if (r < 0)
		j->ans.end = "internal";
	free(result);
	free(log);
}

/* The services of answered jobs counted in the store, once their answers are on
 * their way (the count's commit is off their path); *count emptied. */
static void count_owed(struct tp_worker_server *srv, char (*owed)[TP_WORKER_ID_HEX], size_t *count)
{
	for (size_t i = 0; i < *count; i++)
		tp_worker_api_counted(srv->api, owed[i]);
	*count = 0;
}

static void *collector(void *arg)
{
	struct tp_worker_server *srv = arg;
	struct pollfd *pfds = NULL;
	struct job **who = NULL;
	/* the services of the jobs the last pass answered, not counted yet */
	char(*owed)[TP_WORKER_ID_HEX] = NULL;
	size_t cap = 0, owed_count = 0;

	pthread_mutex_lock(&srv->lock);
	while (!(srv->quit && !srv->jobs)) {
		size_t n = 1, count = 0;
		for (struct job *j = srv->jobs; j; j = j->next)
			count++;
		if (2 * count + 1 > cap) {
			cap = 2 * count + 16;
			free(pfds);
			free(who);
			pfds = calloc(cap, sizeof(*pfds));
			who = calloc(cap, sizeof(*who));
			/* what it holds is kept: the last pass's, not counted yet */
			owed = realloc(owed, cap * sizeof(*owed));
			if (!pfds || !who || !owed)
				abort();
		}
		/* the stopping and the never started first: each ends a job, and the walk
		 * starts again */
		for (bool again = true; again;) {
			again = false;
			for (struct job *j = srv->jobs; j && !again; j = j->next) {
				if (j->state == JOB_RUNNING && j->sock < 0) {
					j->ans.end = "internal"; /* the spawner is gone */
					job_done(srv, j);
					again = true;
				} else if (srv->stopping && j->state == JOB_QUEUED) {
					tp_worker_error(&j->ans, 503, "busy",
							"the worker is stopping");
					job_done(srv, j);
					again = true;
				} else if (srv->stopping && j->state == JOB_RUNNING &&
					   !j->cancelled) {
					shutdown(j->sock, SHUT_WR); /* stops the run */
					j->cancelled = true;
				}
			}
		}
		pfds[0] = (struct pollfd){ .fd = srv->wake[0], .events = POLLIN };
		for (struct job *j = srv->jobs; j; j = j->next) {
			if (j->state == JOB_RUNNING) {
				pfds[n] = (struct pollfd){ .fd = j->sock, .events = POLLIN };
				who[n++] = j;
			}
			if (j->client_fd >= 0) {
				/* a client's end of writing counts as its going away: an HTTP/1.1
				 * client does not half-close while it waits for its answer, and
				 * TCP does not tell that from a close */
				pfds[n] =
				    (struct pollfd){ .fd = j->client_fd, .events = POLLRDHUP };
				who[n++] = j;
			}
		}
		pthread_mutex_unlock(&srv->lock);
		count_owed(srv, owed, &owed_count);
		poll(pfds, n, -1);
		if (pfds[0].revents) {
			char buf[64];
			while (read(srv->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		/* outcomes are read without the lock: only this thread ends a running job */
		for (size_t i = 1; i < n; i++)
			if (pfds[i].revents && pfds[i].fd == who[i]->sock)
				collect(srv, who[i]);
		pthread_mutex_lock(&srv->lock);
		for (size_t i = 1; i < n; i++) {
			struct job *j = who[i];
			/* a job's other entry, once this pass ended it: skipped (its memory
			 * is freed only with the lock, after this pass) */
			if (!pfds[i].revents || j->state == JOB_DONE)
				continue;
			if (pfds[i].fd == j->sock) {
				if (j->counted)
					memcpy(owed[owed_count++], j->ans.service,
					       TP_WORKER_ID_HEX);
				job_done(srv, j);
			} else if (pfds[i].fd == j->client_fd) {
				/* the client went away */
				close(j->client_fd);
				j->client_fd = -1;
				j->client_gone = true;
				if (j->state == JOB_QUEUED) {
					tp_worker_error(&j->ans, 499, "cancelled",
							"the client went away");
					job_done(srv, j);
				} else if (!j->cancelled && j->sock >= 0) {
					shutdown(j->sock, SHUT_WR);
					j->cancelled = true;
				}
			}
		}
	}
	pthread_mutex_unlock(&srv->lock);
	count_owed(srv, owed, &owed_count);
	free(pfds);
	free(who);
	free(owed);
	return NULL;
}

/* ---- requests ---- */

static bool type_is(const char *type, const char *want)
{
	size_t n = strlen(want);
	return type && strncasecmp(type, want, n) == 0 &&
	       (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
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

/* The headers are in: what cannot be served is refused before a body is read. */
static enum MHD_Result first_call(struct tp_worker_server *srv, struct MHD_Connection *conn,
				  struct pending *p, const char *url, const char *method)
{
	const char *type =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *len =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool upload, json;
	char msg[128];

	p->route = tp_worker_route(method, url, p->id, &p->ans);
	if (p->route == TP_ROUTE_NONE)
		return send_answer(conn, p, &p->ans);
	upload = tp_worker_route_upload(p->route);
	json = p->route == TP_ROUTE_DEPLOY || p->route == TP_ROUTE_INVOKE ||
	       p->route == TP_ROUTE_EVIDENCE;
	p->max = upload ? srv->o.max_upload : srv->o.max_request;
	if (len && strtoull(len, NULL, 10) > p->max) {
		snprintf(msg, sizeof(msg), "the body is over %llu bytes (%s)",
			 (unsigned long long)p->max, upload ? "--max-upload" : "--max-request");
		return answer_error(conn, p, 413, "too_large", msg);
	}
	if (upload && !type_is(type, "application/octet-stream"))
		return answer_error(conn, p, 415, "unsupported_media_type",
				    "an upload must be Content-Type: application/octet-stream");
	if (json && !type_is(type, "application/json"))
		return answer_error(conn, p, 415, "unsupported_media_type",
				    "the body must be Content-Type: application/json");
	return MHD_YES;
}

static enum MHD_Result take_body(struct pending *p, const char *data, size_t n)
{
	if (p->answered)
		return MHD_YES; /* dropped */
	if (p->over || (p->up ? tp_worker_upload_size(p->up) : p->size) + n > p->max) {
		/* a body without a length (chunked) went over: dropped while it comes,
		 * answered at its end; one that goes on and on is cut off */
		p->over = true;
		free(p->body);
		p->body = NULL;
		p->size = p->cap = 0;
		tp_worker_upload_free(p->up);
		p->up = NULL;
		p->dropped += n;
		return p->dropped > 64ULL << 20 ? MHD_NO : MHD_YES;
	}
	if (p->up) {
		int r = p->upload_err ? 0 : tp_worker_upload_write(p->up, data, n);
		if (r < 0)
			p->upload_err = r;
		return MHD_YES;
	}
	if (p->size + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 4096;
		char *b;
		while (cap < p->size + n + 1)
			cap *= 2;
		if (!(b = realloc(p->body, cap)))
			return MHD_NO;
		p->body = b;
		p->cap = cap;
	}
	memcpy(p->body + p->size, data, n);
	p->size += n;
	return MHD_YES;
}

/* An invocation prepared and queued: 1 (the collector answers it, its connection
 * suspended: by this, with suspend), or 0 with p->ans the answer. */
static int invoke_start(struct tp_worker_server *srv, struct MHD_Connection *conn,
			struct pending *p, bool suspend)
{
	struct job *j = calloc(1, sizeof(*j));
	const union MHD_ConnectionInfo *info;

	if (!j)
		return tp_worker_error(&p->ans, 500, "internal", "out of memory"), 0;
	j->sock = j->client_fd = -1;
	j->conn = conn;
	if (tp_worker_api_invoke_prepare(srv->api, p->id, p->body ? p->body : "", p->size, &j->prep,
					 &j->ans) != 0) {
		tp_worker_prepared_free(&j->prep);
		p->ans = j->ans;
		free(j);
		return 0;
	}
	/* the input is in the parsed document now: the body is not held meanwhile */
	free(p->body);
	p->body = NULL;
	p->size = p->cap = 0;
	j->bytes = j->prep.iv.input_size;
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (info)
		j->client_fd = fcntl(info->connect_fd, F_DUPFD_CLOEXEC, 3);
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping ||
	    (srv->running >= srv->o.concurrency &&
	     (srv->queued >= srv->o.queue ||
	      srv->queued_bytes + j->bytes > QUEUED_BYTES_MAX(srv->o.max_request)))) {
		bool stopping = srv->stopping;
		pthread_mutex_unlock(&srv->lock);
		if (j->client_fd >= 0)
			close(j->client_fd);
		tp_worker_prepared_free(&j->prep);
		free(j);
		tp_worker_error(&p->ans, 503, "busy",
				stopping ? "the worker is stopping" :
					   "every invocation slot and the queue are taken: retry");
		p->ans.retry_after = true;
		return 0;
	}
	/* appended: the oldest waits least */
	struct job **tail = &srv->jobs;
	while (*tail)
		tail = &(*tail)->next;
	*tail = j;
	if (srv->running < srv->o.concurrency)
		job_start(srv, j);
	else {
		j->state = JOB_QUEUED;
		srv->queued++;
		srv->queued_bytes += j->bytes;
	}
	p->job = j;
	if (suspend)
		MHD_suspend_connection(conn);
	pthread_mutex_unlock(&srv->lock);
	wake(srv);
	return 1;
}

static enum MHD_Result invoke(struct tp_worker_server *srv, struct MHD_Connection *conn,
			      struct pending *p)
{
	return invoke_start(srv, conn, p, true) ? MHD_YES : send_answer(conn, p, &p->ans);
}

/* ---- requests that may wait on a CAS: on threads of their own ---- */

struct work {
	struct tp_worker_server *srv;
	struct MHD_Connection *conn;
	struct pending *p;
};

static void *work_thread(void *arg)
{
	struct work *w = arg;
	struct tp_worker_server *srv = w->srv;
	struct pending *p = w->p;
	struct MHD_Connection *conn = w->conn;
	bool queued = false;

	free(w);
	if (p->route == TP_ROUTE_INVOKE)
		queued = invoke_start(srv, conn, p, false); /* p is the collector's once queued */
	else
		tp_worker_api_handle(srv->api, p->route, p->id, p->body ? p->body : "", p->size,
				     &p->ans);
	pthread_mutex_lock(&srv->lock);
	if (!queued) {
		p->work_done = true;
		MHD_resume_connection(conn);
	}
	srv->workers--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* The request answered on a thread of its own, its connection suspended meanwhile:
 * a CAS that is slow to answer holds no connection thread (others are served). */
static enum MHD_Result off_thread(struct tp_worker_server *srv, struct MHD_Connection *conn,
				  struct pending *p)
{
	struct work *w = malloc(sizeof(*w));
	pthread_attr_t attr;
	pthread_t t;
	int r = -1;

	if (!w)
		return answer_error(conn, p, 500, "internal", "out of memory");
	*w = (struct work){ .srv = srv, .conn = conn, .p = p };
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* the lock held until suspended: the thread resumes only with it */
	pthread_mutex_lock(&srv->lock);
	if (!srv->stopping && (r = pthread_create(&t, &attr, work_thread, w)) == 0) {
		srv->workers++;
		p->working = true;
		MHD_suspend_connection(conn);
	}
	pthread_mutex_unlock(&srv->lock);
	pthread_attr_destroy(&attr);
	if (r == 0)
		return MHD_YES;
	free(w);
	tp_worker_error(&p->ans, 503, "busy",
			r < 0 ? "the worker is stopping" : "no thread for the request: retry");
	p->ans.retry_after = true;
	return send_answer(conn, p, &p->ans);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct tp_worker_server *srv = cls;
	struct pending *p = *con_cls;
	char msg[160];

	if (!p) {
		if (!(p = calloc(1, sizeof(*p))))
			return MHD_NO;
		*con_cls = p;
		pthread_mutex_lock(&srv->lock);
		srv->requests++;
		pthread_mutex_unlock(&srv->lock);
		clock_gettime(CLOCK_MONOTONIC, &p->start);
		snprintf(p->method, sizeof(p->method), "%s", method);
		snprintf(p->path, sizeof(p->path), "%s", url);
		remote_of(conn, p->remote, sizeof(p->remote));
		enum MHD_Result r = first_call(srv, conn, p, url, method);
		if (r == MHD_YES && !p->answered && tp_worker_route_upload(p->route)) {
			int e = tp_worker_upload_begin(
			    tp_worker_api_store(srv->api),
			    p->route == TP_ROUTE_BUNDLE_PUT ? "bundles" : "data", &p->up);
			if (e < 0) {
				snprintf(msg, sizeof(msg), "the store: %s", strerror(-e));
				return answer_error(conn, p, 500, "internal", msg);
			}
		}
		return r;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		return take_body(p, upload_data, n);
	}
	if (p->job) { /* resumed: the invocation has ended */
		bool done;
		pthread_mutex_lock(&srv->lock);
		done = p->job->state == JOB_DONE;
		pthread_mutex_unlock(&srv->lock);
		/* done: off the lists, the collector touches it no more */
		if (!done)
			return MHD_YES;
		if (p->job->client_gone) {
			/* nothing on the wire (499 is the log's word): the connection closed */
			p->ans = p->job->ans;
			p->ans.body = NULL;
			p->ans.status = 499;
			return MHD_NO;
		}
		return send_answer(conn, p, &p->job->ans);
	}
	if (p->working) { /* resumed: its thread has answered */
		bool done;
		pthread_mutex_lock(&srv->lock);
		done = p->work_done;
		pthread_mutex_unlock(&srv->lock);
		if (!done || p->answered)
			return MHD_YES;
		return send_answer(conn, p, &p->ans);
	}
	if (p->answered)
		return MHD_YES;
	if (p->over) {
		snprintf(msg, sizeof(msg), "the body is over %llu bytes (%s)",
			 (unsigned long long)p->max,
			 tp_worker_route_upload(p->route) ? "--max-upload" : "--max-request");
		return answer_error(conn, p, 413, "too_large", msg);
	}
	if (tp_worker_route_upload(p->route)) {
		if (p->upload_err) {
			snprintf(msg, sizeof(msg), "the store: %s", strerror(-p->upload_err));
			return answer_error(conn, p, 500, "internal", msg);
		}
		tp_worker_api_upload(srv->api, p->route, p->up, &p->ans);
		return send_answer(conn, p, &p->ans);
	}
	/* evidence may wait on configfs-tsm: off the connection threads too */
	if (((p->route == TP_ROUTE_INVOKE || p->route == TP_ROUTE_DEPLOY) &&
	     tp_worker_api_attests(srv->api)) ||
	    p->route == TP_ROUTE_EVIDENCE)
		return off_thread(srv, conn, p);
	if (p->route == TP_ROUTE_INVOKE)
		return invoke(srv, conn, p);
	tp_worker_api_handle(srv->api, p->route, p->id, p->body ? p->body : "", p->size, &p->ans);
	return send_answer(conn, p, &p->ans);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct tp_worker_server *srv = cls;
	struct pending *p = *con_cls;

	if (!p)
		return;
	if (!p->answered && !p->ans.status)
		p->ans.status = why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
	log_request(srv, p);
	if (p->job) {
		/* the collector may still be walking the poll entries of the pass that ended
		 * this job: it looks at a job only with the lock held */
		pthread_mutex_lock(&srv->lock);
		free(p->job->ans.body);
		free(p->job);
		pthread_mutex_unlock(&srv->lock);
	}
	free(p->ans.body);
	free(p->body);
	tp_worker_upload_free(p->up);
	free(p);
	*con_cls = NULL;
	pthread_mutex_lock(&srv->lock);
	if (--srv->requests == 0)
		pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}

/* ---- start and stop ---- */

int tp_worker_server_start(const struct tp_worker_server_opts *o, struct tp_worker_api *api,
			   struct tp_worker_server **out, char *err, size_t err_size)
{
	struct tp_worker_server *srv = calloc(1, sizeof(*srv));
	int fd;

	if (!srv)
		return -ENOMEM;
	srv->api = api;
	srv->o = *o;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->log_lock, NULL);
	pthread_cond_init(&srv->idle, NULL);
	if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(srv);
		return -errno;
	}
	if ((fd = tp_listen_tcp(o->host, o->port, 0, &srv->port, err, err_size)) < 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
		free(srv);
		return fd;
	}
	if (pthread_create(&srv->collector, NULL, collector, srv) != 0) {
		close(fd);
		snprintf(err, err_size, "cannot start a thread");
		tp_worker_server_stop(srv);
		return -EAGAIN;
	}
	srv->collector_on = true;
	srv->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, 0, NULL, NULL,
	    on_request, srv, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)o->timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conn,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, srv, MHD_OPTION_END);
	if (!srv->daemon) {
		close(fd);
		snprintf(err, err_size, "libmicrohttpd did not start");
		tp_worker_server_stop(srv);
		return -EIO;
	}
	*out = srv;
	return 0;
}

unsigned tp_worker_server_port(const struct tp_worker_server *srv)
{
	return srv->port;
}

void tp_worker_server_stop(struct tp_worker_server *srv)
{
	struct timespec until;

	if (!srv)
		return;
	/* the queued invocations are answered, the running ones stopped through their
	 * sockets; their answers go out before the server stops */
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	wake(srv);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	while (srv->jobs && pthread_cond_timedwait(&srv->idle, &srv->lock, &until) == 0)
		;
	/* requests on threads of their own end within the CAS client's timeouts */
	while (srv->workers && pthread_cond_timedwait(&srv->idle, &srv->lock, &until) == 0)
		;
	srv->quit = true;
	pthread_mutex_unlock(&srv->lock);
	wake(srv);
	if (srv->collector_on)
		pthread_join(srv->collector, NULL);
	if (srv->daemon) {
		/* no new connection; the requests begun are answered, their answers
		 * written (within a bound: a client may not read) */
		MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		pthread_mutex_lock(&srv->lock);
		while (srv->requests && pthread_cond_timedwait(&srv->idle, &srv->lock, &until) == 0)
			;
		pthread_mutex_unlock(&srv->lock);
		MHD_stop_daemon(srv->daemon);
	}
	close(srv->wake[0]);
	close(srv->wake[1]);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->log_lock);
	pthread_cond_destroy(&srv->idle);
	free(srv);
}
