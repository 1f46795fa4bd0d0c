/* Frames on the control channel: a 16-byte header, then the payload. Both sides read
 * and write them through these, so the header is checked in one place. */
#include "channel.h"

#include "../common/io.h"

#include <errno.h>

int tp_frame_write_header(int fd, uint32_t type, uint32_t arg, uint64_t size)
{
	struct tp_frame frame = { .type = type, .arg = arg, .size = size };

	return tp_write_full(fd, &frame, sizeof(frame));
}

int tp_frame_write(int fd, uint32_t type, uint32_t arg, const void *payload, size_t size)
{
	int r = tp_frame_write_header(fd, type, arg, size);

	return r < 0 ? r : tp_write_full(fd, payload, size);
}

int tp_frame_check(const struct tp_frame *frame)
{
	switch (frame->type) {
	case TP_FRAME_GET_INPUT:
	case TP_FRAME_GET_DATA:
	case TP_FRAME_HELLO:
	case TP_FRAME_EXIT:
		return frame->size == 0 ? 0 : -EMSGSIZE;
	case TP_FRAME_STATUS:
		return frame->size <= TP_MAX_STATUS_SIZE ? 0 : -EMSGSIZE;
	case TP_FRAME_BOOT:
		return frame->size <= TP_MAX_BOOT_SIZE ? 0 : -EMSGSIZE;
	case TP_FRAME_PROMPT:
		return frame->size <= TP_MAX_PROMPT_SIZE ? 0 : -EMSGSIZE;
	case TP_FRAME_COMPLETIONS:
		return frame->size <= TP_MAX_COMPLETIONS_SIZE ? 0 : -EMSGSIZE;
	case TP_FRAME_GO:
	case TP_FRAME_REPLY:
	case TP_FRAME_RESULT:
		return 0;
	}
	return -EPROTO;
}

int tp_frame_read_header(int fd, struct tp_frame *frame)
{
	int r = tp_read_full(fd, frame, sizeof(*frame));

	return r < 0 ? r : tp_frame_check(frame);
}

int tp_frame_skip(int fd, uint64_t size)
{
	char sink[65536];

	while (size) {
		size_t chunk = size < sizeof(sink) ? (size_t)size : sizeof(sink);
		int r = tp_read_full(fd, sink, chunk);
		if (r < 0)
			return r;
		size -= chunk;
	}
	return 0;
}
