/* The worker's client (docs/api.md, "Client commands"): `teepy deploy`, `teepy data
 * put`, `teepy invoke` and `teepy services` talk to a worker (`teepy serve`) over
 * HTTP through the CAS client's libcurl call (cas/client.h). The helpers named
 * pure touch nothing but memory; the rest say their failures in one line. */
#ifndef TEEPY_CLI_WORKER_CLIENT_H
#define TEEPY_CLI_WORKER_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TP_WORKER_ID_HEX     64		/* an id: 32 bytes, lower-case hex */
#define TP_WORKER_ANSWER_MAX (1u << 30) /* an answer larger is refused (a result) */
#define TP_WORKER_INPUT_MAX  (1u << 30) /* an invocation's input read at most */
#define TP_WORKER_CALL_S     120	/* a request that is not an upload or invoke */

/* text as an id: 64 hex digits, written lower-case into out. Pure. Returns 0 or
 * -EINVAL. */
int tp_worker_id_parse(const char *text, char out[TP_WORKER_ID_HEX + 1]);

/* --data-key ID=KEYFILE: the id into id (lower-case) and *path at the file's name in
 * spec. Pure. Returns 0 or -EINVAL. */
int tp_worker_key_spec_parse(const char *spec, char id[TP_WORKER_ID_HEX + 1], const char **path);

/* Whether an error answer is an invocation's end (it carries "usage") rather than the
 * worker's refusal of the request. Pure. */
bool tp_worker_answer_is_end(const json_t *answer);

/* teepy's exit code for an error answer of this kind and HTTP status: an
 * invocation's end is `teepy run`'s exit code for the same end (an unknown kind
 * TP_EXIT_INTERNAL); a refused request is TP_EXIT_USAGE, the worker's own failure
 * (500 and other 5xx but 503 busy) TP_EXIT_INTERNAL. Pure. */
int tp_worker_exit_for(const char *kind, bool end, long status);

/* `teepy data put ITEM.tpd --worker URL` (data.c takes the flags): uploads the sealed
 * item at path and prints its id. worker may be NULL (then TEEPY_WORKER). Returns an
 * exit code, its failure said. */
int tp_worker_data_put(const char *worker, const char *path);

#endif
