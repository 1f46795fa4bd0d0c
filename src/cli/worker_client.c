/* The worker client's pure parts: ids, --data-key ID=KEYFILE, and the exit code of
 * an error answer (docs/api.md). */
#include "worker_client.h"

#include "exit_codes.h"

#include <errno.h>
#include <string.h>

int tp_worker_id_parse(const char *text, char out[TP_WORKER_ID_HEX + 1])
{
	size_t i;

	for (i = 0; i < TP_WORKER_ID_HEX && text[i]; i++) {
		char c = text[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
		out[i] = c;
	}
	if (i != TP_WORKER_ID_HEX || text[i])
		return -EINVAL;
	out[i] = '\0';
	return 0;
}

int tp_worker_key_spec_parse(const char *spec, char id[TP_WORKER_ID_HEX + 1], const char **path)
{
	const char *eq = strchr(spec, '=');
	char head[TP_WORKER_ID_HEX + 1];

	if (!eq || eq - spec != TP_WORKER_ID_HEX || !eq[1])
		return -EINVAL;
	memcpy(head, spec, TP_WORKER_ID_HEX);
	head[TP_WORKER_ID_HEX] = '\0';
	if (tp_worker_id_parse(head, id) < 0)
		return -EINVAL;
	*path = eq + 1;
	return 0;
}

bool tp_worker_answer_is_end(const json_t *answer)
{
	return json_is_object(json_object_get(answer, "usage"));
}

int tp_worker_exit_for(const char *kind, bool end, long status)
{
	/* docs/api.md's kinds of an invocation's end, as teepy run's ends */
	static const struct {
		const char *kind;
		int code;
	} ends[] = {
		{ "failed", TP_EXIT_SERVICE_FAILED },
		{ "no_result", TP_EXIT_NO_RESULT },
		{ "rule", TP_EXIT_RULE },
		{ "memory", TP_EXIT_MEMORY },
		{ "cpu", TP_EXIT_CPU },
		{ "timeout", TP_EXIT_TIMEOUT },
		{ "config", TP_EXIT_USAGE },
		{ "key_missing", TP_EXIT_KEY_MISSING },
		{ "refused", TP_EXIT_BUNDLE },
		{ "internal", TP_EXIT_INTERNAL },
	};

	if (end) {
		for (size_t i = 0; kind && i < sizeof(ends) / sizeof(ends[0]); i++)
			if (strcmp(kind, ends[i].kind) == 0)
				return ends[i].code;
		return TP_EXIT_INTERNAL; /* an end this teepy does not know */
	}
	return status >= 500 && status != 503 ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
}
