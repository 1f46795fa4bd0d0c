/* libFuzzer target: arbitrary bytes from a hostile service on the control channel.
 * The server must answer, drop or refuse them without crashing, hanging or
 * reading out of bounds. */
#include "src/channel/channel.h"
#include "src/common/term.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

struct feed {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *writer(void *arg)
{
	struct feed *f = arg;

	for (size_t off = 0; off < f->size;) {
		ssize_t n = write(f->fd, f->data + off, f->size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

static void *drainer(void *arg)
{
	char buf[65536];

	while (read(*(int *)arg, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

static int open_null(void *ctx)
{
	(void)ctx;
	return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* a shell's reader: every kind of answer, by the prompt's size; a size of 4 modulo 8
 * is a Tab first, the prompt asked to be completed and the answer read from the
 * same bytes (a COMPLETIONS frame, or anything else) */
static int answer_line(void *ctx, const char *prompt, size_t prompt_size, char **line,
		       size_t *line_size)
{
	struct tp_channel *ch = ctx;

	if (prompt_size % 8 == 4) {
		char *list = NULL, word[TP_MAX_PROMPT_SIZE + 1];
		const char *offered[64];
		size_t list_size = 0;
		int r = tp_channel_ask_completions(ch, prompt, prompt_size);
		if (r == 0 && (r = tp_channel_read_completions(ch, &list, &list_size)) == 0) {
			/* what the shell would offer: each starts with the word, lies in the
			 * list, and holds no byte that is not shown as itself */
			memcpy(word, prompt, prompt_size);
			word[prompt_size] = '\0';
			size_t n = tp_term_completions(list, list_size, word,
						       prompt_size % 16 == 12, offered, 64);
			for (size_t i = 0; i < n; i++)
				if (offered[i] < list || offered[i] >= list + list_size ||
				    strncmp(offered[i], word, strlen(word)) != 0 ||
				    strpbrk(offered[i], "\t\n\r\x1b\x7f") ||
				    strlen(offered[i]) > TP_TERM_MAX_CANDIDATE)
					abort();
		}
		free(list);
		if (r < 0)
			return r;
	}
	if (prompt_size % 4 == 3)
		return -EPIPE;
	if (prompt_size % 4 != 0)
		return prompt_size % 4 == 1 ? TP_REPLY_EOF : TP_REPLY_INTERRUPT;
	/* the prompt's bytes back as the line (NUL bytes and all) */
	if (!(*line = malloc(prompt_size + 1)))
		return -ENOMEM;
	memcpy(*line, prompt, prompt_size);
	*line_size = prompt_size;
	return TP_REPLY_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int data_fds[2] = { -1, -1 };
	struct tp_channel ch;
	struct feed feed;
	pthread_t w, d;
	int sv[2];

	if (data_fds[0] < 0) {
		for (int i = 0; i < 2; i++) {
			data_fds[i] = memfd_create("fuzz-data", MFD_CLOEXEC);
			if (write(data_fds[i], "data item", 9 + (size_t)i) < 0)
				abort();
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	feed = (struct feed){ .fd = sv[1], .data = data, .size = size };
	pthread_create(&w, NULL, writer, &feed);
	pthread_create(&d, NULL, drainer, &sv[1]);

	tp_channel_init(&ch, sv[0]);
	ch.input = "input";
	ch.input_size = 5;
	ch.data_fds = data_fds;
	ch.data_count = 2;
	ch.open_result = open_null;
	ch.read_line = answer_line;
	ch.line_ctx = &ch;
	while (tp_channel_serve_one(&ch) == 0)
		;
	if (ch.result_fd >= 0)
		close(ch.result_fd);
	/* whatever the bytes were, the outcome is one of these */
	if (ch.status_kind >= 0 && strlen(ch.status_name) >= sizeof(ch.status_name))
		abort();

	shutdown(sv[0], SHUT_RDWR);
	pthread_join(w, NULL);
	pthread_join(d, NULL);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
