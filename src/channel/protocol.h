/* The control channel between the supervisor and `_teepy`: frame layout and types.
 * Shared by both sides; the supervisor treats every frame from the service as
 * untrusted once the service runs. */
#ifndef TEEPY_CHANNEL_PROTOCOL_H
#define TEEPY_CHANNEL_PROTOCOL_H

#include <stdint.h>

/* The sandboxed interpreter finds the channel at this fd. */
#define TP_CTRL_FD 3

/* Where the runtime's own files are inside the sealed root. */
#define TP_RUNTIME_DIR "/.teepy"

/* Every frame: this header, then `size` payload bytes (host byte order: both
 * ends are on one machine). */
struct tp_frame {
	uint32_t type;
	uint32_t arg;
	uint64_t size;
};
_Static_assert(sizeof(struct tp_frame) == 16, "a frame header is 16 bytes, no padding");

enum tp_frame_type {
	/* supervisor -> service */
	TP_FRAME_BOOT = 1,  /* payload: boot fields, see below */
	TP_FRAME_REPLY = 2, /* arg: TP_REPLY_*, payload: the bytes asked for */

	/* service -> supervisor */
	TP_FRAME_GET_INPUT = 16,
	TP_FRAME_GET_DATA = 17, /* arg: index */
	TP_FRAME_RESULT = 18,	/* payload: the result bytes */
	TP_FRAME_STATUS = 19,	/* arg: TP_STATUS_*, payload: exception type name */
};

enum tp_reply { TP_REPLY_OK = 0, TP_REPLY_OUT_OF_RANGE = 1 };

/* STATUS kinds. TP_STATUS_SYNTAX: the runtime has printed the one-line error itself,
 * so the supervisor adds none; the payload says what failed: "SyntaxError" in the
 * entry, or "preload" (TP_STATUS_PRELOAD_NAME) for a preload module that cannot be
 * imported. */
enum tp_status { TP_STATUS_OK = 0, TP_STATUS_EXCEPTION = 1, TP_STATUS_SYNTAX = 2 };
#define TP_STATUS_PRELOAD_NAME "preload"

/* BOOT payload: a sequence of fields, each a u32 length (host byte order) then that
 * many bytes, whose first byte is a tag and the rest the value. Filter, entry and
 * data count come once each, sealed at most once; the lists in order. Strings hold no NUL byte.
 * src/channel/boot.c is the one encoder and decoder. */
enum tp_boot_tag {
	TP_BOOT_FILTER = 'f',	  /* stage-2 seccomp program (struct sock_filter[], 8 bytes each) */
	TP_BOOT_ENTRY = 'e',	  /* the entry script's path inside the root */
	TP_BOOT_ARG = 'a',	  /* sys.argv, in order */
	TP_BOOT_PATH = 'p',	  /* sys.path, in order */
	TP_BOOT_DATA_COUNT = 'n', /* decimal count of data items, at most UINT32_MAX */
	TP_BOOT_PRELOAD = 'i',	  /* a module to import before the entry, in order */
	TP_BOOT_SITE = 's',	  /* a site directory (a venv's): its .pth files read, in order */
	TP_BOOT_SEALED = 'b',	  /* "1", at most once: a sealed bundle runs (for hints) */
};

/* Bytes of a STATUS frame's name: the supervisor keeps it NUL-terminated in 128. */
#define TP_MAX_STATUS_SIZE 127u
#define TP_MAX_BOOT_SIZE   (1u << 20)

#endif
