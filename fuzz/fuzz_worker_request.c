/* libFuzzer target: the worker's pure request code (src/worker/request.c) on what
 * anyone on the network sends: the first byte picks the deploy body, the invoke body,
 * a method and path, bytes as a JSON string, an outcome as the spawner's child sends
 * it, or an evidence body; and what a worker sends teepy invoke --sealed
 * (src/cli/invoke_sealed.c): its evidence answer and its sealed answer. What is
 * accepted holds only ids and keys of the right shape, every answer is JSON with a
 * status the API lists, and no evidence passes that no trusted key signed. Seeds:
 * fuzz/corpus/worker_request. */
#include "src/cli/invoke_sealed.h"
#include "src/common/log.h"
#include "src/crypto/crypto.h"
#include "src/worker/worker.h"

#include <stdlib.h>
#include <string.h>

static void answer_is_json(const struct tp_worker_answer *a)
{
	json_error_t je;
	json_t *doc = json_loadb(a->body, a->size, JSON_ALLOW_NUL, &je); /* \u0000 is JSON */

	if (!doc || !a->status)
		abort();
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool loaded;
	char err[512];

	if (!loaded) {
		if (tp_crypto_load(err, sizeof(err)) < 0)
			abort();
		loaded = true;
	}
	if (size < 1)
		return 0;
	const char *body = (const char *)data + 1;
	size_t n = size - 1;

	switch (data[0] % 7) {
	case 0: {
		struct tp_worker_deploy d;
		if (tp_worker_deploy_parse(body, n, &d, err, sizeof(err)) == 0) {
			if (!tp_worker_id_ok(d.bundle))
				abort();
			for (size_t i = 0; i < d.service_data_count; i++)
				if (!tp_worker_id_ok(d.service_data[i]))
					abort();
			for (size_t i = 0; i < d.data_key_count; i++)
				if (!tp_worker_id_ok(d.data_keys[i].id))
					abort();
		}
		tp_worker_deploy_free(&d);
		break;
	}
	case 1: {
		struct tp_worker_invoke iv;
		if (tp_worker_invoke_parse(body, n, &iv, err, sizeof(err)) == 0) {
			if (!iv.input ||
			    (iv.sealed && iv.input_size < TP_SEAL_OVERHEAD + TP_X25519_SIZE))
				abort();
			for (size_t i = 0; i < iv.task_data_count; i++)
				if (!tp_worker_id_ok(iv.task_data[i]))
					abort();
		}
		tp_worker_invoke_free(&iv);
		break;
	}
	case 2: {
		/* METHOD NUL PATH */
		char *copy = malloc(n + 1), id[TP_WORKER_ID_HEX];
		struct tp_worker_answer a = { 0 };
		const char *path;
		if (!copy)
			return 0;
		memcpy(copy, body, n);
		copy[n] = '\0';
		path = strlen(copy) < n ? copy + strlen(copy) + 1 : "";
		if (tp_worker_route(copy, path, id, &a) == TP_ROUTE_NONE)
			answer_is_json(&a);
		else if (id[0] && !tp_worker_id_ok(id))
			abort();
		free(a.body);
		free(copy);
		break;
	}
	case 3: {
		json_t *s = tp_worker_utf8_string(body, n);
		char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		if (s && !text)
			abort();
		free(text);
		json_decref(s);
		break;
	}
	case 4: {
		struct tp_worker_outcome o = { 0 };
		struct tp_worker_answer a = { 0 };
		size_t head = n < sizeof(o) ? n : sizeof(o);
		memcpy(&o, body, head);
		o.result_size = (n - head) / 2;
		o.log_size = n - head - o.result_size;
		tp_worker_outcome_answer(&o, body + head, body + head + o.result_size, &a);
		answer_is_json(&a);
		free(a.body);
		break;
	}
	case 5: {
		uint8_t nonce[TP_NONCE_MAX];
		size_t nonce_size = 0;
		if (tp_worker_evidence_parse(body, n, nonce, &nonce_size, err, sizeof(err)) == 0 &&
		    (nonce_size < 1 || nonce_size > TP_NONCE_MAX))
			abort();
		break;
	}
	case 6: {
		/* a worker's answers to the client: the trusted platform key is a hash,
		 * whose private key no one has, so no evidence may pass */
		static struct tp_sealed_trust trust = { .key_count = 1 };
		struct tp_sealed_call sc = { 0 };
		tp_sha256("teepy fuzz: no one's key", 24, trust.keys[0]);
		json_error_t je;
		json_t *doc = json_loadb(body, n, 0, &je), *opened = NULL;
		if (!doc)
			break;
		tp_log_capture(err, sizeof(err)); /* its lines are not the fuzzer's output */
		if (tp_sealed_verify(&trust, doc, &sc) == 0)
			abort();
		if (tp_sealed_begin(&sc) == 0 && tp_sealed_open(&sc, doc, 200, &opened) == 0 &&
		    opened)
			abort(); /* nothing opens with a key made now, no plain 200 is taken */
		tp_log_capture(NULL, 0);
		json_decref(opened);
		tp_sealed_end(&sc);
		json_decref(doc);
		break;
	}
	}
	return 0;
}
