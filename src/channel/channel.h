/* The control channel, the whole API: frames on a stream (frame.c), the boot payload
 * as a struct with a pure encoder and decoder (boot.c), and the supervisor's serving
 * side (serve.c). `_teepy` compiles in frame.c and boot.c only: libc, no OS policy. */
#ifndef TEEPY_CHANNEL_CHANNEL_H
#define TEEPY_CHANNEL_CHANNEL_H

#include "protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- frames ---- */

/* Writes one frame: the header, then size bytes of payload (payload may be NULL when
 * size is 0). Returns 0 or -errno. */
int tp_frame_write(int fd, uint32_t type, uint32_t arg, const void *payload, size_t size);

/* Writes a header alone, for a payload the caller sends itself (a file, by sendfile).
 * Returns 0 or -errno. */
int tp_frame_write_header(int fd, uint32_t type, uint32_t arg, uint64_t size);

/* The protocol's rule for a header, whichever side reads it: a known type, and no more
 * payload than that type carries (a request none, a status name TP_MAX_STATUS_SIZE
 * bytes, a boot payload TP_MAX_BOOT_SIZE). A result or a reply may be of any size:
 * the reader holds it to its own limit. Returns 0, -EPROTO for an unknown type or
 * -EMSGSIZE for a size the type cannot have. */
int tp_frame_check(const struct tp_frame *frame);

/* Reads one frame header and checks it with tp_frame_check. Returns 0, -EPIPE at the
 * end of the stream, -errno from read, or tp_frame_check's -EPROTO / -EMSGSIZE (which
 * read never gives on a stream socket). */
int tp_frame_read_header(int fd, struct tp_frame *frame);

/* Reads and drops size payload bytes, keeping the stream in step. Returns 0, -EPIPE
 * at the end of the stream or -errno. */
int tp_frame_skip(int fd, uint64_t size);

/* ---- the boot payload ---- */

/* Bytes of one seccomp instruction (struct sock_filter) and the most a program has
 * (struct sock_fprog counts them in an unsigned short). */
#define TP_BOOT_FILTER_INSN_SIZE 8u
#define TP_BOOT_MAX_FILTER_INSNS 0xffffu

/* What the supervisor tells `_teepy` before the service runs. To encode, the caller
 * fills it with pointers it keeps owning. A decoded one owns everything it points to,
 * in one block (`owned`) that tp_boot_free releases. */
struct tp_boot {
	const void *filter;	 /* stage-2 seccomp program; decoded: aligned for sock_filter */
	size_t filter_size;	 /* bytes: a non-zero multiple of TP_BOOT_FILTER_INSN_SIZE */
	const char *entry;	 /* the entry script's path inside the root */
	const char *const *argv; /* sys.argv, argv[0] included */
	size_t argv_count;
	const char *const *path; /* sys.path */
	size_t path_count;
	const char *const *preload; /* modules imported before the entry, in order */
	size_t preload_count;
	/* site directories: each already on sys.path (or appended), its .pth files read
	 * as site.addsitedir reads them, their entries placed right after it */
	const char *const *site;
	size_t site_count;
	/* a zygote's: the root's entries whose trees the service may reach (names, no
	 * slash), for each child's own Landlock layer */
	const char *const *top;
	size_t top_count;
	bool sealed;	     /* a sealed bundle: a missing module or file gets a hint */
	bool zygote;	     /* a zygote (protocol.h): preload, then fork on request */
	bool listen;	     /* a listening socket at fd 4: teex.listen_socket() */
	const char *wsgi;    /* serve the entry's WSGI callable of this name, or NULL */
	bool shell;	     /* teepy shell: a console asks for lines (PROMPT), no entry runs */
	uint64_t data_count; /* data items the service may ask for, at most UINT32_MAX */
	void *owned;	     /* decoded only */
};

/* Encodes boot into a malloc'd payload of *out_size bytes, *out owned by the caller.
 * Pure. Returns 0, -EINVAL for a boot the decoder would refuse (no entry or filter, a
 * filter of a wrong size, a NULL string, too many data items, a zygote's shell), -EMSGSIZE when the
 * payload would be larger than TP_MAX_BOOT_SIZE, or -ENOMEM. */
int tp_boot_encode(const struct tp_boot *boot, uint8_t **out, size_t *out_size);

/* Decodes size bytes (only read, and not referred to afterwards) into *boot. Pure:
 * every length is checked against the bytes, nothing is trusted. Returns 0 (release
 * with tp_boot_free), -EBADMSG for bytes that are not a sequence of well-formed fields
 * (a length past the end, an empty field, a filter of a wrong size, a NUL inside a
 * string, a data count that is not a decimal number up to UINT32_MAX, more than
 * TP_MAX_BOOT_SIZE bytes), -EPROTO for fields that do not make a boot payload (an
 * unknown tag; filter, entry or data count missing or given twice; a shell and a
 * zygote), or -ENOMEM.
 * On failure *boot is zeroed. */
int tp_boot_decode(const void *bytes, size_t size, struct tp_boot *boot);

/* Releases a decoded boot and zeroes it; harmless on a zeroed or caller-filled one. */
void tp_boot_free(struct tp_boot *boot);

/* ---- the supervisor's side: serving the service ---- */

/* Serves input and data, takes the result. Every frame comes from the service and is
 * treated as hostile. */
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
	bool takes_exit;     /* a zygote's child's: EXIT ends it (else it breaks it) */
	/* a shell's (else PROMPT breaks the channel): the next line for the prompt of
	 * prompt_size bytes (not NUL-terminated; the service's bytes). Returns
	 * TP_REPLY_OK with *line (malloc'd, the caller frees it) of *line_size bytes,
	 * TP_REPLY_EOF or TP_REPLY_INTERRUPT; or -errno when no line will come (the
	 * service has ended, the run is cancelled): the channel is then finished. */
	int (*read_line)(void *ctx, const char *prompt, size_t prompt_size, char **line,
			 size_t *line_size);
	void *line_ctx;

	/* what the service told us */
	bool have_result;
	uint64_t result_size; /* bytes of the first result */
	bool result_incomplete;
	bool protocol_violation;
	bool result_too_large;
	int result_error; /* -errno from writing the result, 0 if none */
	int result_fd;
	int status_kind; /* -1: no STATUS frame */
	char status_name[TP_MAX_STATUS_SIZE + 1];
	bool exited; /* an EXIT frame came (takes_exit): the service says it ends */
	int exit_status;
};

void tp_channel_init(struct tp_channel *ch, int fd);

/* Reads and answers one frame (a PROMPT waits for read_line). Returns 0, or < 0 once
 * the channel is finished (-EPIPE: the service closed it; -ECONNRESET: it said EXIT,
 * and exited is set; read_line's -errno) or broken (-EPROTO: a malformed frame, and
 * protocol_violation is set). */
int tp_channel_serve_one(struct tp_channel *ch);

/* A shell's Tab, while read_line has its PROMPT: asks the console to complete word
 * (size bytes, at most TP_MAX_COMPLETE_WORD) with a REPLY TP_REPLY_COMPLETE. Returns 0
 * or -errno. */
int tp_channel_ask_completions(struct tp_channel *ch, const char *word, size_t size);

/* ... and reads its answer, a COMPLETIONS frame: *list (malloc'd, NUL-terminated, the
 * caller frees it) of *list_size bytes, the service's, unchecked. Returns 0, or -errno
 * (-EPROTO, protocol_violation set, for any other frame). */
int tp_channel_read_completions(struct tp_channel *ch, char **list, size_t *list_size);

#endif
