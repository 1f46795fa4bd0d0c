/* The supervisor's side of the control channel: serves input and data, takes the
 * result. Sizes are checked before anything is read, unknown or malformed frames end
 * the conversation, only the first result counts. */
#include "channel.h"

#include "../common/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

void tp_channel_init(struct tp_channel *ch, int fd)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->result_fd = -1;
	ch->status_kind = -1;
}

/* Moves `size` bytes from the service to sink (or nowhere when sink < 0). A sink
 * that fails is noted in *sink_error and the rest drained, so the channel stays in
 * step. Returns 0, or -errno when the service side fails. */
static int pump(int from, int sink, uint64_t size, int *sink_error)
{
	char buf[65536];

	while (size) {
		size_t chunk = size < sizeof(buf) ? (size_t)size : sizeof(buf);
		ssize_t n = read(from, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		if (sink >= 0) {
			int r = tp_write_full(sink, buf, (size_t)n);
			if (r < 0) {
				*sink_error = r;
				sink = -1;
			}
		}
		size -= (uint64_t)n;
	}
	return 0;
}

static int send_data(struct tp_channel *ch, uint32_t index)
{
	struct stat st;
	off_t offset = 0;
	int r;

	if (index >= ch->data_count)
		return tp_frame_write(ch->fd, TP_FRAME_REPLY, TP_REPLY_OUT_OF_RANGE, NULL, 0);
	if (fstat(ch->data_fds[index], &st) < 0)
		return -errno;
	r = tp_frame_write_header(ch->fd, TP_FRAME_REPLY, TP_REPLY_OK, (uint64_t)st.st_size);
	if (r < 0)
		return r;
	while (offset < st.st_size) {
		ssize_t n =
		    sendfile(ch->fd, ch->data_fds[index], &offset, (size_t)(st.st_size - offset));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us: the stream cannot be kept in step
				      */
	}
	return 0;
}

/* A shell's PROMPT: the prompt read, a line asked for, the answer sent. */
static int serve_prompt(struct tp_channel *ch, uint64_t size)
{
	char prompt[TP_MAX_PROMPT_SIZE];
	char *line = NULL;
	size_t line_size = 0;
	int r;

	/* tp_frame_check has held size to TP_MAX_PROMPT_SIZE */
	if ((r = tp_read_full(ch->fd, prompt, (size_t)size)) < 0)
		return r;
	if ((r = ch->read_line(ch->line_ctx, prompt, (size_t)size, &line, &line_size)) < 0)
		return r;
	if (r != TP_REPLY_OK)
		line_size = 0;
	r = tp_frame_write(ch->fd, TP_FRAME_REPLY, (uint32_t)r, line, line_size);
	free(line);
	return r;
}

int tp_channel_ask_completions(struct tp_channel *ch, const char *word, size_t size)
{
	if (size > TP_MAX_COMPLETE_WORD)
		return -EMSGSIZE;
	return tp_frame_write(ch->fd, TP_FRAME_REPLY, TP_REPLY_COMPLETE, word, size);
}

int tp_channel_read_completions(struct tp_channel *ch, char **list, size_t *list_size)
{
	struct tp_frame frame;
	char *buf;
	int r = tp_frame_read_header(ch->fd, &frame);

	if (r == -EPROTO || r == -EMSGSIZE ||
	    (r == 0 && (frame.type != TP_FRAME_COMPLETIONS || frame.arg != 0))) {
		ch->protocol_violation = true;
		return -EPROTO;
	}
	if (r < 0)
		return r;
	/* tp_frame_check has held size to TP_MAX_COMPLETIONS_SIZE */
	if (!(buf = malloc((size_t)frame.size + 1)))
		return -ENOMEM;
	if ((r = tp_read_full(ch->fd, buf, (size_t)frame.size)) < 0) {
		free(buf);
		return r;
	}
	buf[frame.size] = '\0';
	*list = buf;
	*list_size = (size_t)frame.size;
	return 0;
}

int tp_channel_serve_one(struct tp_channel *ch)
{
	struct tp_frame frame;
	int r = tp_frame_read_header(ch->fd, &frame);

	if (r == -EPROTO || r == -EMSGSIZE)
		goto violation;
	if (r < 0)
		return r;
	/* tp_frame_check has held each type to its size */
	switch (frame.type) {
	case TP_FRAME_GET_INPUT:
		return tp_frame_write(ch->fd, TP_FRAME_REPLY, TP_REPLY_OK, ch->input,
				      ch->input_size);
	case TP_FRAME_GET_DATA:
		return send_data(ch, frame.arg);
	case TP_FRAME_RESULT:
		if (ch->max_result && frame.size > ch->max_result) {
			ch->result_too_large = true;
			break;
		}
		if (ch->have_result) /* only the first result counts */
			return tp_frame_skip(ch->fd, frame.size);
		ch->have_result = true;
		ch->result_size = frame.size;
		ch->result_fd = ch->open_result ? ch->open_result(ch->ctx) : -1;
		if (ch->result_fd < 0)
			ch->result_error = ch->result_fd < -1 ? ch->result_fd : -EBADF;
		ch->result_incomplete = true;
		r = pump(ch->fd, ch->result_fd, frame.size, &ch->result_error);
		if (r == 0)
			ch->result_incomplete = false;
		return r;
	case TP_FRAME_STATUS:
		if ((r = tp_read_full(ch->fd, ch->status_name, (size_t)frame.size)) < 0)
			return r;
		ch->status_name[frame.size] = '\0';
		ch->status_kind = (int)frame.arg;
		return 0;
	case TP_FRAME_EXIT:
		if (!ch->takes_exit || frame.arg > 255)
			break;
		ch->exited = true;
		ch->exit_status = (int)frame.arg;
		return -ECONNRESET;
	case TP_FRAME_PROMPT:
		if (!ch->read_line || frame.arg != 0)
			break;
		return serve_prompt(ch, frame.size);
	}
violation:
	ch->protocol_violation = true;
	return -EPROTO;
}
