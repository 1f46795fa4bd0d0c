/* The control channel between the supervisor and `_teepy`: frame layout and types.
 * Shared by both sides; the supervisor treats every frame from the service as
 * untrusted once the service runs. */
#ifndef TEEPY_CHANNEL_PROTOCOL_H
#define TEEPY_CHANNEL_PROTOCOL_H

#include <stdint.h>

/* The sandboxed interpreter finds the channel at this fd. */
#define TP_CTRL_FD 3

/* A service that serves on a handed socket (policy network "listen") has it here:
 * the first of the handed descriptors (the sandbox's fd 4, 5, ...) */
#define TP_LISTEN_FD 4

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
	/* a zygote's child: its supervisor has placed it (its cgroup); arg: how many data
	 * items this invocation has, payload: its input (what GET_INPUT would answer) */
	TP_FRAME_GO = 3,

	/* service -> supervisor */
	TP_FRAME_GET_INPUT = 16,
	TP_FRAME_GET_DATA = 17, /* arg: index */
	TP_FRAME_RESULT = 18,	/* payload: the result bytes */
	TP_FRAME_STATUS = 19,	/* arg: TP_STATUS_*, payload: exception type name */
	/* a zygote's child, first on its channel: here I am (the supervisor reads the
	 * kernel's SCM_CREDENTIALS of it: the child's pid, which no process can forge) */
	TP_FRAME_HELLO = 20,
	/* a zygote's child, last on its channel: it ends now, arg: its exit status
	 * (0-255), payload: none. Its supervisor answers at once (and kills it: nothing
	 * it does after counts), not after the zygote has reaped it. Refused on any
	 * other channel. */
	TP_FRAME_EXIT = 21,
	/* teepy shell's console: the next line, please; arg 0, payload: the prompt
	 * (">>> ", "... "), at most TP_MAX_PROMPT_SIZE bytes. Answered by a REPLY:
	 * TP_REPLY_OK with the line (no newline), TP_REPLY_EOF (Ctrl-D) or
	 * TP_REPLY_INTERRUPT (Ctrl-C at the prompt: the line is discarded). Refused on
	 * any other channel. */
	TP_FRAME_PROMPT = 22,
	/* teepy shell's console, answering a REPLY TP_REPLY_COMPLETE to its PROMPT: the
	 * completions of the word, each ended by a newline, at most
	 * TP_MAX_COMPLETIONS_SIZE bytes (what the console cannot send, it leaves out);
	 * then it waits again for its PROMPT's reply. Arg 0. Refused at any other time. */
	TP_FRAME_COMPLETIONS = 23,
};

enum tp_reply {
	TP_REPLY_OK = 0,
	TP_REPLY_OUT_OF_RANGE = 1,
	TP_REPLY_EOF = 2,	/* a PROMPT's: the person left (Ctrl-D) */
	TP_REPLY_INTERRUPT = 3, /* a PROMPT's: Ctrl-C at the prompt */
	/* a PROMPT's, not its last: Tab; payload: the word before the cursor (at most
	 * TP_MAX_COMPLETE_WORD bytes), answered by COMPLETIONS */
	TP_REPLY_COMPLETE = 4,
};

/* STATUS kinds. TP_STATUS_SYNTAX: the runtime has printed the one-line error itself,
 * so the supervisor adds none; the payload says what failed: "SyntaxError" in the
 * entry, or "preload" (TP_STATUS_PRELOAD_NAME) for a preload module that cannot be
 * imported. */
enum tp_status { TP_STATUS_OK = 0, TP_STATUS_EXCEPTION = 1, TP_STATUS_SYNTAX = 2 };
#define TP_STATUS_PRELOAD_NAME "preload"

/* BOOT payload: a sequence of fields, each a u32 length (host byte order) then that
 * many bytes, whose first byte is a tag and the rest the value. Filter, entry and
 * data count come once each, the flags (sealed, zygote, listen, shell) and wsgi at most once;
 * the lists in order. Strings hold no NUL byte.
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
	TP_BOOT_ZYGOTE = 'z',	  /* "1", at most once: preload, then fork one child per
				   * invocation (see "Zygotes" below) instead of running */
	TP_BOOT_TOP = 't',	  /* a zygote's: a name in the root the service may reach
				   * (its children's Landlock rules), in order */
	TP_BOOT_LISTEN = 'l',	  /* "1", at most once: a listening socket is handed in at
				   * fd 4 (teex.listen_socket()) */
	TP_BOOT_WSGI = 'w',	  /* at most once: serve the entry's WSGI callable of this
				   * name on the handed socket instead of running it */
	TP_BOOT_SHELL = 'c',	  /* "1", at most once, not with a zygote: teepy shell, an
				   * interactive console that asks for its lines with
				   * PROMPT frames instead of the entry */
};

/* Bytes of a STATUS frame's name: the supervisor keeps it NUL-terminated in 128. */
#define TP_MAX_STATUS_SIZE 127u
#define TP_MAX_BOOT_SIZE   (1u << 20)
/* Bytes of a PROMPT frame's prompt (the console cuts a longer sys.ps1 to this). */
#define TP_MAX_PROMPT_SIZE 1024u
/* A shell's Tab: the word sent, the completions answered. */
#define TP_MAX_COMPLETE_WORD	4096u
#define TP_MAX_COMPLETIONS_SIZE (64u << 10)

/* ---- Zygotes (the worker's warm starts, docs/zygote.md) ----
 * A zygote is a service's interpreter booted with TP_BOOT_ZYGOTE: it imports the
 * preload modules, then waits on TP_ZYGOTE_FD (a SOCK_SEQPACKET socket to the worker's
 * spawner) instead of running the entry. Each struct tp_zygote_fork there comes with
 * three descriptors (SCM_RIGHTS): the child's channel, its output (stdout and
 * stderr) and its status socket. The zygote forks; the child takes the channel as
 * TP_CTRL_FD and restricts itself (docs/zygote.md), says TP_FRAME_HELLO, waits for
 * TP_FRAME_GO (which brings the input) and runs the entry; a child that ends as
 * Python ends says TP_FRAME_EXIT last and waits to be killed. The zygote keeps the
 * status socket: when it has reaped the child it writes a struct tp_zygote_status
 * there (its supervisor reads it when no EXIT came). The zygote answers
 * with struct tp_zygote_note: once TP_ZYGOTE_READY (or TP_ZYGOTE_REFUSED) after the
 * preload, then TP_ZYGOTE_FORKED or TP_ZYGOTE_FORK_FAILED for each fork (and
 * TP_ZYGOTE_FLOOR for a floor request). */
#define TP_ZYGOTE_FD	       4
#define TP_ZYGOTE_FORK_MAGIC   0x747a6631u
#define TP_ZYGOTE_NOTE_MAGIC   0x747a6e31u
#define TP_ZYGOTE_STATUS_MAGIC 0x747a7331u

struct tp_zygote_fork {
	uint32_t magic;
	uint32_t token;	 /* the spawner's name for the child, in the note */
	uint64_t cpu_ms; /* the child's CPU-time limit (its RLIMIT_CPU backstop) */
	/* not 0: no child for an invocation, but the fork floor measured (bench/worker):
	 * this many children that exit at once, forked and reaped one after another,
	 * answered by TP_ZYGOTE_FLOOR (its descriptors are ignored) */
	uint32_t floor;
	uint32_t unused;
};

enum tp_zygote_note_kind {
	TP_ZYGOTE_READY = 1,
	TP_ZYGOTE_REFUSED = 2, /* message says why: no child will be forked */
	TP_ZYGOTE_FORKED = 3,
	TP_ZYGOTE_FORK_FAILED = 4,
	TP_ZYGOTE_FLOOR = 5, /* error: the children, message: the microseconds they took */
};

struct tp_zygote_note {
	uint32_t magic;
	uint32_t kind;
	uint32_t token;
	int32_t error; /* errno of a failed fork */
	char message[240];
};

struct tp_zygote_status {
	uint32_t magic;
	int32_t wait_status;
	uint64_t utime_us, stime_us;
	uint64_t maxrss_kib;
};

#endif
