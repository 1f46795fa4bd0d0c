/* One request answered from the store (docs/api.md): uploads checked and named,
 * deployments with their keys checked against what they open, services listed, an
 * invocation made ready for the spawner. Every check is here; no socket. */
#include "worker.h"

#include "../common/io.h"
#include "../crypto/crypto.h"
#include "../manifest/bundle_file.h"
#include "../manifest/trust.h"
#include "../pfs/pfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a CAS released for a service, kept in memory only (nothing of a key is
 * written): got at deployment, or at the first invocation after a restart. */
struct cas_entry {
	char service[TP_WORKER_ID_HEX];
	struct tp_cas_secrets s;
	bool pending; /* being fetched (cas_lock not held meanwhile): wait on cas_ready */
	bool gone;    /* deleted while pending: its fetcher frees it */
	struct cas_entry *next;
};

struct tp_worker_api {
	struct tp_worker_store *st;
	struct tp_worker_api_opts o;
	struct tp_signers signers;
	pthread_mutex_t cas_lock; /* the entries; never held over a CAS's network call */
	pthread_cond_t cas_ready; /* a pending entry ended */
	struct cas_entry *cas;
	pthread_mutex_t evidence_lock;
	unsigned evidence_running;
};

struct tp_worker_api *tp_worker_api_new(struct tp_worker_store *st,
					const struct tp_worker_api_opts *o, char *err,
					size_t err_size)
{
	struct tp_worker_api *a = calloc(1, sizeof(*a));
	size_t count = 0, failed = 0;
	char why[256];
	int r;

	if (!a) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	a->st = st;
	a->o = *o;
	pthread_mutex_init(&a->cas_lock, NULL);
	pthread_mutex_init(&a->evidence_lock, NULL);
	pthread_cond_init(&a->cas_ready, NULL);
	while (o->trust_paths && o->trust_paths[count])
		count++;
	if ((r = tp_signers_load(&a->signers, o->trust_paths, count, &failed, why, sizeof(why))) <
	    0) {
		snprintf(err, err_size, "--trust %s: %s",
			 failed < count ? o->trust_paths[failed] : "", why);
		free(a);
		return NULL;
	}
	return a;
}

struct tp_worker_store *tp_worker_api_store(struct tp_worker_api *a)
{
	return a->st;
}

bool tp_worker_api_attests(const struct tp_worker_api *a)
{
	return a->o.cas_fetch != NULL;
}

void tp_worker_api_free(struct tp_worker_api *a)
{
	if (!a)
		return;
	while (a->cas) {
		struct cas_entry *e = a->cas;
		a->cas = e->next;
		tp_cas_secrets_free(&e->s);
		free(e);
	}
	pthread_mutex_destroy(&a->cas_lock);
	pthread_mutex_destroy(&a->evidence_lock);
	pthread_cond_destroy(&a->cas_ready);
	tp_signers_free(&a->signers);
	free(a);
}

/* ---- uploads ---- */

static json_t *bundle_json(const struct tp_worker_bundle_row *b)
{
	return json_pack("{s:s, s:s, s:s, s:b}", "bundle", b->id, "app", b->app, "signer",
			 b->signer, "encrypted", b->encrypted);
}

/* The bundle just uploaded, opened as teepy run opens one: layout, signature, signer,
 * manifest. */
static void bundle_put(struct tp_worker_api *a, struct tp_worker_upload *up,
		       struct tp_worker_answer *out)
{
	struct tp_worker_bundle_row row = { 0 };
	struct tp_bundle_file bf = { .fd = -1 };
	char path[96], err[512], id[TP_WORKER_ID_HEX];
	bool had;
	int r;

	if ((r = tp_worker_upload_finish(up, id)) < 0) {
		tp_worker_error(out, 500, "internal", "the store: %s", strerror(-r));
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", tp_worker_upload_fd(up));
	if (tp_bundle_file_open(path, &bf, err, sizeof(err)) < 0) {
		tp_worker_error(out, 400, "bad_request", "not a teepy bundle: %s", err);
		goto out;
	}
	tp_hex(bf.signer, 32, row.signer);
	switch (tp_trust_judge(&a->signers, false, bf.bundle.pubkey, bf.signature_ok)) {
	case TP_TRUST_OK:
	case TP_TRUST_OK_ANY_SIGNER:
		break;
	case TP_TRUST_BAD_SIGNATURE:
		tp_worker_error(out, 400, "bad_request",
				"the bundle's signature does not verify (changed after signing)");
		goto out;
	case TP_TRUST_UNKNOWN_SIGNER:
	case TP_TRUST_NO_SIGNER_GIVEN:
		tp_worker_error(out, 403, "forbidden",
				"the bundle's signer %s is not one this worker trusts (teepy serve "
				"--trust PUB)",
				row.signer);
		goto out;
	}
	if ((r = tp_bundle_file_parse(&bf, false, err, sizeof(err))) < 0) {
		tp_worker_error(out, 400, "bad_request", "%s: %s",
				r == -ENOTSUP ? "this teepy cannot run the bundle" :
						"a malformed manifest",
				err);
		goto out;
	}
	/* an invocation is a call with an input, never a server's life */
	if (bf.manifest.network == TP_NETWORK_LISTEN) {
		tp_worker_error(out, 400, "bad_request",
				"this teepy cannot run the bundle here: it serves on a socket "
				"(policy network \"listen\"), which a worker's invocations do not "
				"give (run it with teepy run --listen)");
		goto out;
	}
	/* its invocations fork from CPython's zygotes, and its evidence names CPython's
	 * runtime measurement */
	if (bf.manifest.engine.name != TP_ENGINE_CPYTHON) {
		tp_worker_error(out, 400, "bad_request",
				"this teepy cannot run the bundle here: it runs on %s, and a "
				"worker runs CPython's bundles (run it with teepy run)",
				tp_engine_word(bf.manifest.engine.name));
		goto out;
	}
	snprintf(row.id, sizeof(row.id), "%s", id);
	tp_hex(bf.app, 32, row.app);
	row.encrypted = tp_manifest_any_encrypted(&bf.manifest);
	snprintf(row.key_id, sizeof(row.key_id), "%s", bf.manifest.encryption.key_id);
	had = tp_worker_bundle_get(a->st, id, &(struct tp_worker_bundle_row){ 0 }) == 0;
	snprintf(path, sizeof(path), "%s.tpy", id);
	if ((r = tp_worker_upload_link(up, path)) < 0 ||
	    (r = tp_worker_bundle_add(a->st, &row)) < 0)
		tp_worker_error(out, 500, "internal", "the store: %s", strerror(-r));
	else
		tp_worker_json(out, had ? 200 : 201, bundle_json(&row));
out:
	tp_bundle_file_close(&bf);
}

static void data_put(struct tp_worker_api *a, struct tp_worker_upload *up,
		     struct tp_worker_answer *out)
{
	struct tp_worker_data_row row = { .size = tp_worker_upload_size(up) };
	uint8_t head[TP_PFS_HEADER_SIZE];
	struct tp_pfs_header h;
	char err[256], name[80];
	bool had;
	int r;

	if ((r = tp_worker_upload_finish(up, row.id)) < 0) {
		tp_worker_error(out, 500, "internal", "the store: %s", strerror(-r));
		return;
	}
	if (tp_pread_full(tp_worker_upload_fd(up), head, sizeof(head), 0) < 0 ||
	    tp_pfs_header_parse(head, &h, err, sizeof(err)) < 0 || h.purpose != TP_PFS_DATA ||
	    tp_pfs_sealed_size(h.size, h.chunk_shift) != row.size) {
		tp_worker_error(out, 400, "bad_request",
				"not a sealed data item (teepy data seal)");
		return;
	}
	had = tp_worker_data_get(a->st, row.id, &(struct tp_worker_data_row){ 0 }) == 0;
	snprintf(name, sizeof(name), "%s.tpd", row.id);
	if ((r = tp_worker_upload_link(up, name)) < 0 || (r = tp_worker_data_add(a->st, &row)) < 0)
		tp_worker_error(out, 500, "internal", "the store: %s", strerror(-r));
	else
		tp_worker_json(
		    out, had ? 200 : 201,
		    json_pack("{s:s, s:I}", "data", row.id, "size", (json_int_t)row.size));
}

void tp_worker_api_upload(struct tp_worker_api *a, enum tp_worker_route r,
			  struct tp_worker_upload *up, struct tp_worker_answer *out)
{
	if (r == TP_ROUTE_BUNDLE_PUT)
		bundle_put(a, up, out);
	else
		data_put(a, up, out);
}

/* ---- keys ---- */

/* Whether key opens the stored data item id: 0, -EKEYREJECTED, or another -errno
 * (the store is damaged) with err. */
static int data_key_opens(struct tp_worker_api *a, const char *id, const uint8_t key[32], char *err,
			  size_t err_size)
{
	struct tp_pfs_reader *rd = NULL;
	char path[PATH_MAX];
	struct stat st;
	int fd, r;

	tp_worker_data_path(a->st, id, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, err_size, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return r == -ENOENT ? -EIO : r;
	}
	r = tp_pfs_reader_open(key, TP_PFS_DATA, tp_pread_fd, &fd, (uint64_t)st.st_size, &rd, err,
			       err_size);
	tp_pfs_reader_free(rd);
	close(fd);
	return r;
}

static const struct tp_worker_key *find_key(const struct tp_worker_key *keys, size_t count,
					    const char *id)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(keys[i].id, id) == 0)
			return &keys[i];
	return NULL;
}

/* ---- keys by attestation ---- */

/* The id in the header of the stored data item id, which a CAS's data key names.
 * Returns 0 or -errno. */
static int data_pfs_id(struct tp_worker_api *a, const char *id, uint8_t out[TP_PFS_ID_SIZE])
{
	uint8_t head[TP_PFS_HEADER_SIZE];
	struct tp_pfs_header h;
	char path[PATH_MAX], err[128];
	int fd, r;

	tp_worker_data_path(a->st, id, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	r = tp_pread_full(fd, head, sizeof(head), 0);
	close(fd);
	if (r == 0 && tp_pfs_header_parse(head, &h, err, sizeof(err)) < 0)
		r = -EINVAL;
	if (r == 0)
		memcpy(out, h.id, TP_PFS_ID_SIZE);
	return r;
}

/* The CAS's key of the stored data item id, or NULL. */
static const uint8_t *cas_data_key(struct tp_worker_api *a, const struct tp_cas_secrets *s,
				   const char *id)
{
	uint8_t pid[TP_PFS_ID_SIZE];

	return data_pfs_id(a, id, pid) == 0 ? tp_cas_data_key_find(s, pid) : NULL;
}

/* Attests for the bundle under config_id: 0 with *s filled, or 1 with out answered. */
static int cas_attest(struct tp_worker_api *a, const char *bundle, const char *config_id,
		      struct tp_cas_secrets *s, struct tp_worker_answer *out)
{
	char path[PATH_MAX], err[1024];
	int r;

	tp_worker_bundle_path(a->st, bundle, path, sizeof(path));
	memset(s, 0, sizeof(*s));
	if ((r = a->o.cas_fetch(a->o.cas_ctx, path, config_id, s, err, sizeof(err))) == 0)
		return 0;
	if (r == -EACCES)
		return tp_worker_error(out, 403, "forbidden", "%s", err), 1;
	return tp_worker_error(out, 500, "internal", "keys of %s: %s", config_id, err), 1;
}

static struct cas_entry *cas_find(struct tp_worker_api *a, const char *service)
{
	for (struct cas_entry *e = a->cas; e; e = e->next)
		if (!e->gone && strcmp(e->service, service) == 0)
			return e;
	return NULL;
}

static void cas_unlink(struct tp_worker_api *a, struct cas_entry *gone)
{
	for (struct cas_entry **pp = &a->cas; *pp; pp = &(*pp)->next)
		if (*pp == gone) {
			*pp = gone->next;
			break;
		}
	tp_cas_secrets_free(&gone->s);
	free(gone);
}

/* A service's secrets, kept, or got now (cas_lock held, but not over the CAS's
 * network call: one fetch a service, others for it wait). 0 with *s, or 1 answered. */
static int cas_secrets(struct tp_worker_api *a, const char *service, const char *bundle,
		       struct tp_cas_secrets **s, struct tp_worker_answer *out)
{
	struct tp_cas_secrets got;
	struct cas_entry *e;
	char config_id[160];
	int r;

	while ((e = cas_find(a, service)) && e->pending)
		pthread_cond_wait(&a->cas_ready, &a->cas_lock);
	if (e) {
		*s = &e->s;
		return 0;
	}
	if (!a->o.cas_fetch)
		return tp_worker_error(out, 409, "key_missing",
				       "the service gets its keys from a CAS, and this worker has "
				       "none (teepy serve --cas)"),
		       1;
	if (tp_worker_service_config(a->st, service, config_id) < 0)
		return tp_worker_error(out, 500, "internal", "the store failed"), 1;
	if (!(e = calloc(1, sizeof(*e))))
		return tp_worker_error(out, 500, "internal", "out of memory"), 1;
	snprintf(e->service, sizeof(e->service), "%s", service);
	e->pending = true;
	e->next = a->cas;
	a->cas = e;
	pthread_mutex_unlock(&a->cas_lock);
	r = cas_attest(a, bundle, config_id, &got, out);
	pthread_mutex_lock(&a->cas_lock);
	e->pending = false;
	pthread_cond_broadcast(&a->cas_ready);
	if (r != 0 || e->gone) {
		cas_unlink(a, e);
		if (r == 0)
			tp_cas_secrets_free(&got);
		return r != 0 ? 1 :
				(tp_worker_error(out, 404, "not_found",
						 "service %s was deleted meanwhile", service),
				 1);
	}
	e->s = got;
	*s = &e->s;
	return 0;
}

/* ---- deploy ---- */

static void deploy(struct tp_worker_api *a, const char *body, size_t size,
		   struct tp_worker_answer *out)
{
	struct tp_worker_deploy d;
	struct tp_worker_bundle_row b;
	char err[512], sid[TP_WORKER_ID_HEX], key_id[TP_SYMKEY_ID_SIZE];
	const char **ids = NULL;
	uint8_t app[32];
	const char *mode;
	json_t *doc = NULL;
	bool added = false, cas = false;
	struct tp_cas_secrets secrets = { 0 };
	int r;

	if ((r = tp_worker_deploy_parse(body, size, &d, err, sizeof(err))) < 0) {
		if (r == -ENOMEM)
			tp_worker_error(out, 500, "internal", "out of memory");
		else
			tp_worker_error(out, 400, "bad_request", "%s", err);
		goto out;
	}
	if (d.config_id[0] && !a->o.cas_fetch) {
		tp_worker_error(out, 400, "bad_request",
				"config_id: this worker gets no keys from a CAS (teepy serve --cas "
				"URL); deploy with keys");
		goto out;
	}
	if (d.has_keys && a->o.cas_fetch) {
		tp_worker_error(out, 403, "forbidden",
				"keys are not taken by a worker that gets them from a CAS");
		goto out;
	}
	if ((r = tp_worker_bundle_get(a->st, d.bundle, &b)) < 0) {
		if (r == -ENOENT)
			tp_worker_error(out, 404, "not_found",
					"no bundle %s here (POST /v1/bundles first)", d.bundle);
		else
			tp_worker_error(out, 500, "internal", "the store failed");
		goto out;
	}
	for (size_t i = 0; i < d.service_data_count; i++) {
		struct tp_worker_data_row row;
		if ((r = tp_worker_data_get(a->st, d.service_data[i], &row)) < 0) {
			if (r == -ENOENT)
				tp_worker_error(out, 404, "not_found",
						"no data item %s here (POST /v1/data first)",
						d.service_data[i]);
			else
				tp_worker_error(out, 500, "internal", "the store failed");
			goto out;
		}
	}
	for (size_t i = 0; i < d.data_key_count; i++) {
		size_t j;
		for (j = 0; j < d.service_data_count; j++)
			if (strcmp(d.service_data[j], d.data_keys[i].id) == 0)
				break;
		if (j == d.service_data_count) {
			tp_worker_error(out, 400, "bad_request",
					"keys.data_keys names %s, which is not in service_data",
					d.data_keys[i].id);
			goto out;
		}
	}
	if (d.config_id[0]) {
		/* the CAS's keys in place of uploaded ones: checked as those are */
		if (cas_attest(a, d.bundle, d.config_id, &secrets, out) != 0)
			goto out;
		cas = true;
		if (secrets.bundle_key) {
			d.has_bundle_key = true;
			memcpy(d.bundle_key, secrets.bundle_key, sizeof(d.bundle_key));
		}
		if (!(d.data_keys = calloc(d.service_data_count + 1, sizeof(*d.data_keys)))) {
			tp_worker_error(out, 500, "internal", "out of memory");
			goto out;
		}
		for (size_t i = 0; i < d.service_data_count; i++) {
			const uint8_t *k = cas_data_key(a, &secrets, d.service_data[i]);
			if (!k)
				continue;
			memcpy(d.data_keys[d.data_key_count].id, d.service_data[i],
			       TP_WORKER_ID_HEX);
			memcpy(d.data_keys[d.data_key_count++].key, k, 32);
		}
	}
	if (b.encrypted && !d.has_bundle_key) {
		tp_worker_error(out, 409, "conflict",
				"bundle %s has encrypted files: its key is needed (%s)", d.bundle,
				cas ? "the CAS gave none" : "keys.bundle_key");
		goto out;
	}
	if (b.encrypted && (tp_symkey_id(d.bundle_key, key_id) < 0 || strcmp(key_id, b.key_id))) {
		tp_worker_error(out, 400, "bad_request", "bundle_key does not open the bundle");
		goto out;
	}
	for (size_t i = 0; i < d.service_data_count; i++) {
		const struct tp_worker_key *k =
		    find_key(d.data_keys, d.data_key_count, d.service_data[i]);
		if (!k) {
			tp_worker_error(out, 409, "conflict",
					"service data %s is sealed: its key is needed (%s)",
					d.service_data[i],
					cas ? "the CAS gave none" : "keys.data_keys");
			goto out;
		}
		if ((r = data_key_opens(a, k->id, k->key, err, sizeof(err))) < 0) {
			if (r == -EKEYREJECTED)
				tp_worker_error(out, 400, "bad_request",
						"the key of %s does not open it", k->id);
			else
				tp_worker_error(out, 500, "internal", "data item %s: %s", k->id,
						err);
			goto out;
		}
	}
	if (!(ids = calloc(d.service_data_count + 1, sizeof(*ids)))) {
		tp_worker_error(out, 500, "internal", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < d.service_data_count; i++)
		ids[i] = d.service_data[i];
	tp_unhex(b.app, app, 32);
	tp_worker_service_id(app, ids, d.service_data_count, sid);
	mode = cas				 ? TP_WORKER_KEYS_CAS :
	       (b.encrypted || d.data_key_count) ? TP_WORKER_KEYS_DEV :
						   TP_WORKER_KEYS_NONE;
	doc = tp_worker_service_deploy(
	    a->st, sid, d.bundle, b.app, (const char(*)[TP_WORKER_ID_HEX])d.service_data,
	    d.service_data_count, mode, d.config_id, b.encrypted && !cas ? d.bundle_key : NULL,
	    d.data_keys, cas ? 0 : d.data_key_count, (int64_t)time(NULL), &added, &r);
	if (!doc) {
		tp_worker_error(out, 500, "internal", "the store failed");
		goto out;
	}
	if (!added && (strcmp(json_string_value(json_object_get(doc, "keys")), mode) != 0 ||
		       strcmp(json_string_value(json_object_get(doc, "config_id")) ?: "",
			      d.config_id) != 0)) {
		/* the first deployer's keys stand: another's is told, not answered 200 */
		const char *had = json_string_value(json_object_get(doc, "config_id"));
		tp_worker_error(out, 409, "conflict",
				"service %s is deployed already with keys %s%s%s: delete it first "
				"(DELETE /v1/services/ID)",
				sid, json_string_value(json_object_get(doc, "keys")),
				had ? " from config_id " : "", had ? had : "");
		json_decref(doc);
		goto out;
	}
	/* the deployment's answer: the service without its counters; deploying the same
	 * again answers 200 with the same (the first deployment's keys stand) */
	json_object_del(doc, "deployed");
	json_object_del(doc, "invocations");
	json_object_del(doc, "state");
	tp_worker_json(out, added ? 201 : 200, doc);
	if (cas && added) { /* kept in memory: the first deployment's keys stand */
		pthread_mutex_lock(&a->cas_lock);
		struct cas_entry *e = cas_find(a, sid) ? NULL : calloc(1, sizeof(*e));
		if (e) {
			snprintf(e->service, sizeof(e->service), "%s", sid);
			e->s = secrets;
			memset(&secrets, 0, sizeof(secrets));
			e->next = a->cas;
			a->cas = e;
		}
		pthread_mutex_unlock(&a->cas_lock);
	}
out:
	tp_cas_secrets_free(&secrets);
	free(ids);
	tp_worker_deploy_free(&d);
}

/* A service as the store holds it (the caller's), its bundle's row and that bundle's
 * measurements; NULL with out answered (404, or 500 for a store that lost them). */
static json_t *service_bundle(struct tp_worker_api *a, const char *id,
			      struct tp_worker_bundle_row *b, uint8_t app[32], uint8_t signer[32],
			      struct tp_worker_answer *out)
{
	json_t *svc;
	int r;

	if (!(svc = tp_worker_service_get(a->st, id, &r))) {
		if (r == -ENOENT)
			tp_worker_error(out, 404, "not_found", "no service %s here", id);
		else
			tp_worker_error(out, 500, "internal", "the store failed");
		return NULL;
	}
	if (tp_worker_bundle_get(a->st, json_string_value(json_object_get(svc, "bundle")), b) < 0) {
		tp_worker_error(out, 500, "internal", "the store lost the service's bundle");
	} else if (tp_unhex(b->app, app, 32) < 0 || tp_unhex(b->signer, signer, 32) < 0) {
		tp_worker_error(out, 500, "internal", "the store's bundle row is damaged");
	} else {
		return svc;
	}
	json_decref(svc);
	return NULL;
}

/* ---- evidence for sealed invocations (docs/api.md, "Confidential invocation") ---- */

#define EVIDENCE_AT_ONCE 4 /* evidence made at once (configfs-tsm may be slow); beyond, 503 */

static void evidence(struct tp_worker_api *a, const char *id, const char *body, size_t size,
		     struct tp_worker_answer *out)
{
	struct tp_worker_bundle_row b;
	struct tp_claims c = { 0 };
	json_t *svc, *ev = NULL;
	char err[512] = "";
	bool busy;
	int r;

	snprintf(out->service, sizeof(out->service), "%s", id);
	if (tp_worker_evidence_parse(body, size, c.nonce, &c.nonce_size, err, sizeof(err)) < 0) {
		tp_worker_error(out, 400, "bad_request", "%s", err);
		return;
	}
	if (!(svc = service_bundle(a, id, &b, c.app, c.signer, out)))
		return;
	json_decref(svc);
	if (!a->o.evidence || a->o.spawner < 0) {
		tp_worker_error(out, 500, "internal", "this worker makes no evidence");
		return;
	}
	if ((r = tp_worker_sealing_key(a->o.spawner, id, c.app, c.signer, c.pubkey)) < 0) {
		tp_worker_error(out, 500, "internal", "the spawner gave no key for the service: %s",
				r == -ENOKEY ? "it could not make one" : strerror(-r));
		return;
	}
	pthread_mutex_lock(&a->evidence_lock);
	busy = a->evidence_running >= EVIDENCE_AT_ONCE;
	if (!busy)
		a->evidence_running++;
	pthread_mutex_unlock(&a->evidence_lock);
	if (busy) {
		tp_worker_error(out, 503, "busy", "evidence is being made for %d requests already",
				EVIDENCE_AT_ONCE);
		out->retry_after = true;
		return;
	}
	ev = a->o.evidence(a->o.evidence_ctx, &c, err, sizeof(err));
	pthread_mutex_lock(&a->evidence_lock);
	a->evidence_running--;
	pthread_mutex_unlock(&a->evidence_lock);
	if (!ev) {
		tp_worker_error(out, 500, "internal", "the worker cannot make evidence: %s", err);
		return;
	}
	tp_worker_json(out, 200,
		       json_pack("{s:s, s:o, s:o}", "service", id, "claims", tp_claims_json(&c),
				 "evidence", ev));
}

void tp_worker_api_handle(struct tp_worker_api *a, enum tp_worker_route r, const char *id,
			  const char *body, size_t size, struct tp_worker_answer *out)
{
	json_t *doc;
	int e;

	switch (r) {
	case TP_ROUTE_DEPLOY:
		deploy(a, body, size, out);
		return;
	case TP_ROUTE_LIST:
		if (!(doc = tp_worker_service_list(a->st)))
			tp_worker_error(out, 500, "internal", "the store failed");
		else
			tp_worker_json(out, 200, json_pack("{s:o}", "services", doc));
		return;
	case TP_ROUTE_GET:
		if ((doc = tp_worker_service_get(a->st, id, &e)))
			tp_worker_json(out, 200, doc);
		else if (e == -ENOENT)
			tp_worker_error(out, 404, "not_found", "no service %s here", id);
		else
			tp_worker_error(out, 500, "internal", "the store failed");
		return;
	case TP_ROUTE_EVIDENCE:
		evidence(a, id, body, size, out);
		return;
	case TP_ROUTE_DELETE:
		pthread_mutex_lock(&a->cas_lock); /* what a CAS gave it goes too */
		for (struct cas_entry *c; (c = cas_find(a, id));) {
			if (c->pending)
				c->gone = true; /* its fetcher frees it */
			else
				cas_unlink(a, c);
		}
		pthread_mutex_unlock(&a->cas_lock);
		if ((e = tp_worker_service_delete(a->st, id)) == 0) {
			/* its keys for sealed inputs go too */
			if (a->o.spawner >= 0)
				tp_worker_sealing_forget(a->o.spawner, id);
			tp_worker_json(out, 200, json_pack("{s:s}", "service", id));
		} else if (e == -ENOENT)
			tp_worker_error(out, 404, "not_found", "no service %s here", id);
		else
			tp_worker_error(out, 500, "internal", "the store failed");
		return;
	default:
		tp_worker_error(out, 500, "internal", "no handler for this request");
		return;
	}
}

/* ---- invoke ---- */

static int add_item(struct tp_worker_api *a, struct tp_worker_prepared *p, const char *id,
		    const uint8_t key[32])
{
	char path[PATH_MAX];

	tp_worker_data_path(a->st, id, path, sizeof(path));
	if (!(p->paths[p->count] = strdup(path)) ||
	    !(p->keys[p->count] = tp_secret_alloc(TP_SYMKEY_SIZE)))
		return -ENOMEM;
	memcpy(p->keys[p->count], key, TP_SYMKEY_SIZE);
	p->count++;
	return 0;
}

static int prepare(struct tp_worker_api *a, const char *id, const char *body, size_t size,
		   struct tp_worker_prepared *p, struct tp_worker_answer *out)
{
	struct tp_worker_invoke *iv = &p->iv;
	struct tp_worker_bundle_row b;
	struct tp_cas_secrets *s = NULL;
	json_t *svc, *list;
	char err[512];
	uint8_t key[32];
	size_t n;
	int r;

	memset(p, 0, sizeof(*p));
	snprintf(p->service, sizeof(p->service), "%s", id);
	snprintf(out->service, sizeof(out->service), "%s", id);
	if ((r = tp_worker_invoke_parse(body, size, iv, err, sizeof(err))) < 0) {
		if (r == -ENOMEM)
			return tp_worker_error(out, 500, "internal", "out of memory"), 1;
		return tp_worker_error(out, 400, "bad_request", "%s", err), 1;
	}
	if (iv->has_data_keys && a->o.cas_fetch)
		return tp_worker_error(out, 403, "forbidden",
				       "data_keys are not taken by a worker that gets keys from a "
				       "CAS"),
		       1;
	if (!(svc = service_bundle(a, id, &b, p->app, p->signer, out)))
		return 1;
	list = json_object_get(svc, "service_data");
	n = json_array_size(list) + iv->task_data_count;
	tp_worker_bundle_path(a->st, b.id, p->bundle_path, sizeof(p->bundle_path));
	if (!(p->paths = calloc(n + 1, sizeof(char *))) ||
	    !(p->keys = calloc(n + 1, sizeof(uint8_t *)))) {
		json_decref(svc);
		return tp_worker_error(out, 500, "internal", "out of memory"), 1;
	}
	if (strcmp(json_string_value(json_object_get(svc, "keys")), TP_WORKER_KEYS_CAS) == 0 &&
	    cas_secrets(a, id, b.id, &s, out) != 0) {
		json_decref(svc);
		return 1;
	}
	if (b.encrypted) {
		if (!(p->bundle_key = tp_secret_alloc(TP_SYMKEY_SIZE)) ||
		    (s ? !s->bundle_key || !memcpy(p->bundle_key, s->bundle_key, TP_SYMKEY_SIZE) :
			 tp_worker_service_key(a->st, id, "bundle", p->bundle_key) < 0)) {
			json_decref(svc);
			return tp_worker_error(out, 409, "key_missing",
					       "the worker holds no key for the service's bundle"),
			       1;
		}
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		const char *did = json_string_value(json_array_get(list, i));
		const uint8_t *ck = s && did ? cas_data_key(a, s, did) : NULL;
		if (ck)
			memcpy(key, ck, sizeof(key));
		if (!did || (s ? !ck : tp_worker_service_key(a->st, id, did, key) < 0)) {
			json_decref(svc);
			explicit_bzero(key, sizeof(key));
			return tp_worker_error(out, 409, "key_missing",
					       "the worker holds no key for service data %s",
					       did ? did : "?"),
			       1;
		}
		r = add_item(a, p, did, key);
		explicit_bzero(key, sizeof(key));
		if (r < 0) {
			json_decref(svc);
			return tp_worker_error(out, 500, "internal", "out of memory"), 1;
		}
	}
	p->job.service_data_count = p->count;
	json_decref(svc);
	for (size_t i = 0; i < iv->task_data_count; i++) {
		const char *did = iv->task_data[i];
		const struct tp_worker_key *k = find_key(iv->data_keys, iv->data_key_count, did);
		struct tp_worker_key from_cas;
		struct tp_worker_data_row row;
		if ((r = tp_worker_data_get(a->st, did, &row)) < 0)
			return tp_worker_error(out, r == -ENOENT ? 404 : 500,
					       r == -ENOENT ? "not_found" : "internal",
					       "no data item %s here", did),
			       1;
		if (s) {
			const uint8_t *ck = cas_data_key(a, s, did);
			if (ck) {
				memcpy(from_cas.key, ck, sizeof(from_cas.key));
				k = &from_cas;
			}
		}
		if (!k)
			return tp_worker_error(out, 409, "key_missing",
					       "task data %s is sealed and the worker holds no key "
					       "for it (%s)",
					       did, s ? "the CAS gave none" : "data_keys"),
			       1;
		if ((r = data_key_opens(a, did, k->key, err, sizeof(err))) < 0)
			return tp_worker_error(out, r == -EKEYREJECTED ? 400 : 500,
					       r == -EKEYREJECTED ? "bad_request" : "internal",
					       r == -EKEYREJECTED ?
						   "the key of %s does not open it" :
						   "data item %s: damaged in the store",
					       did),
			       1;
		r = add_item(a, p, did, k->key);
		explicit_bzero(&from_cas, sizeof(from_cas));
		if (r < 0)
			return tp_worker_error(out, 500, "internal", "out of memory"), 1;
	}
	if (s && s->env_count) {
		if (!(p->env = calloc(s->env_count + 1, sizeof(char *))))
			return tp_worker_error(out, 500, "internal", "out of memory"), 1;
		for (size_t i = 0; i < s->env_count; i++, p->env_count++)
			if (!(p->env[i] = strdup(s->env[i])))
				return tp_worker_error(out, 500, "internal", "out of memory"), 1;
	}
	for (size_t i = 0; i < iv->data_key_count; i++) {
		size_t j;
		for (j = 0; j < iv->task_data_count; j++)
			if (strcmp(iv->task_data[j], iv->data_keys[i].id) == 0)
				break;
		if (j == iv->task_data_count)
			return tp_worker_error(out, 400, "bad_request",
					       "data_keys names %s, which is not in task_data",
					       iv->data_keys[i].id),
			       1;
	}
	p->job = (struct tp_worker_job){
		.service = p->service,
		.bundle_path = p->bundle_path,
		.app = p->app,
		.signer = p->signer,
		.bundle_key = p->bundle_key,
		.data_paths = (const char *const *)p->paths,
		.data_keys = (const uint8_t *const *)p->keys,
		.data_count = p->count,
		.service_data_count = p->job.service_data_count,
		.input = iv->input,
		.input_size = iv->input_size,
		.sealed = iv->sealed,
		.env = (const char *const *)p->env,
		.env_count = p->env_count,
	};
	return 0;
}

int tp_worker_api_invoke_prepare(struct tp_worker_api *a, const char *id, const char *body,
				 size_t size, struct tp_worker_prepared *p,
				 struct tp_worker_answer *out)
{
	int r;

	pthread_mutex_lock(&a->cas_lock);
	r = prepare(a, id, body, size, p, out);
	pthread_mutex_unlock(&a->cas_lock);
	return r;
}

void tp_worker_prepared_free(struct tp_worker_prepared *p)
{
	for (size_t i = 0; p->paths && p->paths[i]; i++)
		free(p->paths[i]);
	for (size_t i = 0; p->keys && p->keys[i]; i++)
		tp_secret_free(p->keys[i], TP_SYMKEY_SIZE);
	free(p->paths);
	free(p->keys);
	tp_secret_free(p->bundle_key, TP_SYMKEY_SIZE);
	for (size_t i = 0; i < p->env_count; i++) {
		explicit_bzero(p->env[i], strlen(p->env[i]));
		free(p->env[i]);
	}
	free(p->env);
	tp_worker_invoke_free(&p->iv);
	memset(p, 0, sizeof(*p));
}

void tp_worker_api_counted(struct tp_worker_api *a, const char *service)
{
	tp_worker_service_counted(a->st, service);
}
