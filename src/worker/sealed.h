/* A sealed invocation's two messages (docs/api.md, "Confidential invocation"): what
 * each binds besides its bytes, for the worker's invocation process, which opens the
 * input and seals the answer, and for teepy invoke --sealed, which does the reverse.
 * Header only: the client is teepy, the worker teepy-worker. */
#ifndef TEEPY_WORKER_SEALED_H
#define TEEPY_WORKER_SEALED_H

#include "../crypto/crypto.h"

#include <stdint.h>
#include <string.h>

#define TP_SEALED_INPUT_DOMAIN	"teepy sealed input v1" /* and its NUL */
#define TP_SEALED_ANSWER_DOMAIN "teepy sealed answer v1"
#define TP_SEALED_INPUT_AAD	(sizeof(TP_SEALED_INPUT_DOMAIN) + 64)
#define TP_SEALED_ANSWER_AAD	(sizeof(TP_SEALED_ANSWER_DOMAIN) + TP_SHA256_SIZE)

/* The input's: its domain, the service id, then each task data id, in order (64 hex
 * digits each; out holds TP_SEALED_INPUT_AAD + 64 * count bytes): it opens for that
 * service with those items only. */
static inline void tp_sealed_input_aad(const char service[64], const char (*task_ids)[64],
				       size_t count, uint8_t *out)
{
	memcpy(out, TP_SEALED_INPUT_DOMAIN, sizeof(TP_SEALED_INPUT_DOMAIN));
	memcpy(out + sizeof(TP_SEALED_INPUT_DOMAIN), service, 64);
	for (size_t i = 0; i < count; i++)
		memcpy(out + TP_SEALED_INPUT_AAD + 64 * i, task_ids[i], 64);
}

/* The answer's: its domain, then SHA-256 of the sealed input it answers (an answer
 * to another request does not open as this one's). */
static inline void tp_sealed_answer_aad(const void *sealed_input, size_t size,
					uint8_t out[TP_SEALED_ANSWER_AAD])
{
	memcpy(out, TP_SEALED_ANSWER_DOMAIN, sizeof(TP_SEALED_ANSWER_DOMAIN));
	tp_sha256(sealed_input, size, out + sizeof(TP_SEALED_ANSWER_DOMAIN));
}

#endif
