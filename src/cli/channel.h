/* The supervisor's side of the control channel: serves input and data, takes the
 * result. Every frame comes from the service and is treated as hostile. */
#ifndef TEEPY_CLI_CHANNEL_H
#define TEEPY_CLI_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_channel {
	int fd;
	const char *input;
	size_t input_size;
	const int *data_fds; /* regular files, read with sendfile from offset 0 */
	size_t data_count;
	/* Where the result goes; called once, on the first RESULT frame. Returns an fd
	 * or -errno (the result is then drained and dropped). */
	int (*open_result)(void *ctx);
	void *ctx;
	uint64_t max_result; /* bytes; a larger RESULT frame breaks the channel */

	/* what the service told us */
	bool have_result;
	uint64_t result_size; /* bytes of the first result */
	bool result_incomplete;
	bool protocol_violation;
	bool result_too_large;
	int result_error; /* -errno from writing the result, 0 if none */
	int result_fd;
	int status_kind; /* -1: no STATUS frame */
	char status_name[128];
};

void tp_channel_init(struct tp_channel *ch, int fd);

/* Reads and answers one frame. Returns 0, or < 0 once the channel is finished
 * (-EPIPE: the service closed it) or broken (-EPROTO: a malformed frame, and
 * protocol_violation is set). */
int tp_channel_serve_one(struct tp_channel *ch);

#endif
