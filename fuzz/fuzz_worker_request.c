/* libFuzzer target: the worker's pure request code (src/worker/request.c) on what
 * anyone on the network sends: the first byte picks the deploy body, the invoke body,
 * a method and path, bytes as a JSON string, or an outcome as the spawner's child
 * sends it. What is accepted holds only ids and keys of the right shape, every
 * answer is JSON with a status the API lists. Seeds: fuzz/corpus/worker_request. */
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

	switch (data[0] % 5) {
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
			if (!iv.input)
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
	}
	return 0;
}
