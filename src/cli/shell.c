/* `teepy shell`: teepy run's sandbox with a Python prompt inside. teepy keeps the
 * terminal: libedit reads and edits each line here, on the host, and the sandboxed
 * console asks for it over the control channel (PROMPT); the service never holds the
 * terminal. Linked into teepy-shell alone (programs.c). */
#include "shell_help.h"

#include "commands.h"
#include "exit_codes.h"
#include "run.h"
#include "run_opts.h"
#include "../channel/protocol.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../common/term.h"

#include <editline/readline.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ctrl-C: a byte here. The runner takes it while a statement runs (SIGINT to the
 * service), read_line while the person types. SA_RESTART: libedit's reads go on. */
static int interrupt_pipe[2] = { -1, -1 };

/* set while the console is asked for a Tab's completions (attempt_completion): a
 * second Ctrl-C meanwhile ends the session, whatever the console does */
static volatile sig_atomic_t asking, interrupts_while_asking;

/* set once the console has asked for its first line: before, there is no statement
 * to interrupt (the root fills, a CAS answers, the interpreter starts), and a Ctrl-C
 * stops the run as SIGTERM does, rather than waiting to end the console as it comes */
static volatile sig_atomic_t console_up;

static void on_sigint(int sig)
{
	char byte = 'I';

	if (!console_up || (asking && interrupts_while_asking++)) {
		tp_run_cancel_from_signal(sig);
		return;
	}
	if (write(interrupt_pipe[1], &byte, 1) < 0) {
		/* full: a byte is already there */
	}
}

/* The terminal's size changed: libedit learns it before it draws again (its own
 * handler is off, rl_catch_signals). */
static volatile sig_atomic_t resized;

static void on_sigwinch(int sig)
{
	(void)sig;
	resized = 1;
}

/* Ctrl-Z stops teepy-shell alone (the sandbox is a session of its own). At the
 * prompt the terminal is libedit's: read_line gives it back first, stops, and takes
 * it again when continued; while a statement runs, it stops at once. */
static volatile sig_atomic_t at_prompt, suspend;

static void on_sigtstp(int sig)
{
	(void)sig;
	if (at_prompt)
		suspend = 1; /* poll ends with EINTR */
	else
		raise(SIGSTOP);
}

/* libedit's line handler has no context: the one line being read. */
static struct {
	bool done;
	char *line; /* malloc'd by libedit; NULL at the end of input */
} reading;

static void take_line(char *line)
{
	reading.done = true;
	reading.line = line;
	rl_callback_handler_remove();
}

struct prompt_text {
	char text[4 * TP_MAX_PROMPT_SIZE + 8];
	size_t size;
};

static void add_prompt_text(void *ctx, const char *bytes, size_t size)
{
	struct prompt_text *p = ctx;
	size_t room = sizeof(p->text) - 1 - p->size;

	size = size < room ? size : room;
	memcpy(p->text + p->size, bytes, size);
	p->size += size;
	p->text[p->size] = '\0';
}

static bool ascii_terminal;

/* A Tab: libedit asks attempt_completion for the word before the cursor, which the
 * console inside completes (struct tp_shell_prompt's complete); the candidates are
 * the service's, so only those tp_term_completions lets through are offered. A
 * second Ctrl-C while the console has not answered ends the session (on_sigint). */
#define MAX_CANDIDATES 2048
static struct {
	struct tp_shell_prompt *prompt; /* the prompt being read */
	int failed;			/* < 0: the channel failed in a completion */
	char *list;			/* the console's answer, split in place */
	const char *candidates[MAX_CANDIDATES];
	size_t count, next;
} completing;

/* The last Tab's answer let go (a new Tab, the prompt's end). */
static void forget_completions(void)
{
	free(completing.list);
	completing.list = NULL;
	completing.count = 0;
}

static char *next_candidate(const char *word, int state)
{
	(void)word;
	if (state == 0)
		completing.next = 0;
	return completing.next < completing.count ?
		   strdup(completing.candidates[completing.next++]) :
		   NULL;
}

static char **attempt_completion(const char *word, int start, int end)
{
	size_t size = strlen(word), list_size = 0;
	int r;

	(void)start;
	(void)end;
	rl_attempted_completion_over = 1; /* never the host's file names */
	forget_completions();
	/* as python3's: Tab with nothing to complete indents (the word is a tab) */
	if (!word[0]) {
		completing.candidates[completing.count++] = "\t";
		return rl_completion_matches(word, next_candidate);
	}
	if (!completing.prompt || size > TP_MAX_COMPLETE_WORD)
		return NULL;
	interrupts_while_asking = 0;
	asking = 1;
	r = completing.prompt->complete(completing.prompt, word, size, &completing.list,
					&list_size);
	asking = 0;
	if (r < 0) {
		completing.failed = r;
		return NULL;
	}
	completing.count = tp_term_completions(completing.list, list_size, word, ascii_terminal,
					       completing.candidates, MAX_CANDIDATES);
	return completing.count ? rl_completion_matches(word, next_candidate) : NULL;
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* read_line's loop, with the terminal in libedit's mode: TP_REPLY_OK when libedit
 * has a line (or the end: reading.line NULL), else what read_line returns. */
static int read_until_done(struct tp_shell_prompt *p, const char *prompt)
{
	rl_callback_handler_install(prompt, take_line);
	while (!reading.done) {
		struct pollfd fds[4] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = interrupt_pipe[0], .events = POLLIN },
			{ .fd = p->ended_fd, .events = POLLIN },
			{ .fd = p->output_fd, .events = POLLIN },
		};
		int n = poll(fds, 4, -1);
		if (resized) {
			resized = 0;
			rl_resize_terminal();
		}
		if (suspend) { /* Ctrl-Z: the terminal as it was, then libedit's again */
			char *kept = rl_line_buffer ? strdup(rl_line_buffer) : NULL;
			suspend = 0;
			rl_callback_handler_remove();
			tp_write_full(STDOUT_FILENO, "\n", 1);
			raise(SIGSTOP);
			rl_callback_handler_install(prompt, take_line);
			if (kept && *kept) {
				rl_insert_text(kept);
				tp_write_full(STDOUT_FILENO, "\r\033[K", 4);
				rl_forced_update_display();
			}
			free(kept);
		}
		if (n < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			rl_callback_handler_remove();
			return -e;
		}
		if (fds[2].revents) { /* the run has ended: a timeout, SIGTERM, a kill */
			rl_callback_handler_remove();
			tp_write_full(STDOUT_FILENO, "\n", 1);
			return -EPIPE;
		}
		if (fds[1].revents) {
			/* as python3: the line is dropped, the console says KeyboardInterrupt */
			drain(interrupt_pipe[0]);
			rl_replace_line("", 0);
			rl_callback_handler_remove();
			return TP_REPLY_INTERRUPT;
		}
		if (fds[3].revents) {
			/* the prompt's line cleared, the output in its place, then the prompt
			 * and the line typed so far again, on a line of their own */
			tp_write_full(STDOUT_FILENO, "\r\033[K", 4);
			int last = p->relay(p);
			if (last >= 0 && last != '\n') /* the output is on stdout too */
				tp_write_full(STDOUT_FILENO, "\n", 1);
			rl_forced_update_display();
			continue;
		}
		if (fds[0].revents & POLLIN) {
			rl_callback_read_char();
			if (completing.failed < 0) { /* the run has ended, or the channel broke */
				rl_callback_handler_remove();
				tp_write_full(STDOUT_FILENO, "\n", 1);
				return completing.failed;
			}
		} else if (fds[0].revents) { /* the terminal is gone */
			rl_callback_handler_remove();
			return TP_REPLY_EOF;
		}
	}
	return TP_REPLY_OK;
}

/* The runner's read_line (runner.h): the service's prompt shown escaped (it chose the
 * bytes), the line edited with libedit until Enter, Ctrl-D on an empty line, Ctrl-C,
 * or the run's end. What the service writes meanwhile (a thread of its) is shown as
 * it comes, on the prompt's line, and the prompt and the line drawn again below it. */
static int read_line(void *ctx, struct tp_shell_prompt *p, char **line, size_t *line_size)
{
	struct prompt_text shown = { .size = 0 };
	struct tp_term_escape esc;

	(void)ctx;
	console_up = 1;
	tp_term_escape_init(&esc, ascii_terminal, NULL);
	esc.one_line = true;
	tp_term_escape_write(&esc, p->prompt, p->prompt_size, add_prompt_text, &shown);
	tp_term_escape_flush(&esc, add_prompt_text, &shown);

	reading.done = false;
	reading.line = NULL;
	completing.prompt = p;
	completing.failed = 0;
	at_prompt = 1;
	int r = read_until_done(p, shown.text);
	at_prompt = 0;
	completing.prompt = NULL;
	forget_completions();
	if (r != TP_REPLY_OK)
		return r;
	if (!reading.line)
		return TP_REPLY_EOF;
	if (reading.line[0])
		add_history(reading.line);
	*line = reading.line;
	*line_size = strlen(reading.line);
	return TP_REPLY_OK;
}

static const char *host_getenv(const char *name)
{
	return getenv(name);
}

int tp_shell_main(int argc, char **argv)
{
	struct tp_run_opts opts;
	struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESTART };
	struct tp_run_shell_io io = { .read_line = read_line };
	char err[512];
	int code;

	if (tp_run_opts_parse(&opts, argc, argv, host_getenv, err, sizeof(err)) < 0) {
		tp_error("%s", err);
		tp_run_opts_free(&opts);
		return TP_EXIT_USAGE;
	}
	if (opts.help) {
		tp_help_print(stdout, &tp_shell_help);
		tp_run_opts_free(&opts);
		return TP_EXIT_OK;
	}
	code = TP_EXIT_USAGE;
	if (opts.wsgi)
		tp_error("shell: --wsgi serves a script's application; teepy shell runs no script "
			 "(give --listen, and serve from the prompt: teex.serve_wsgi(app))");
	else if (opts.script && opts.script_args.count)
		tp_error("shell: unexpected argument '%s' after the bundle (a shell runs no "
			 "entry: sys.argv is [''])",
			 opts.script_args.items[0]);
	else if (opts.input_file && strcmp(opts.input_file, "-") == 0)
		tp_error("shell: --input-file -: stdin is the shell's terminal (name a file)");
	else if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		tp_error("shell: stdin and stdout must be a terminal (to run a script without "
			 "one, use teepy run)");
	else
		code = TP_EXIT_OK;
	if (code != TP_EXIT_OK || pipe2(interrupt_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		if (code == TP_EXIT_OK) {
			tp_error("shell: %s", strerror(errno));
			code = TP_EXIT_INTERNAL;
		}
		tp_run_opts_free(&opts);
		return code;
	}

	/* a person sits at it: no wall clock and no cap on the output unless asked */
	if (!(opts.limits_given & TP_LIMIT_TIMEOUT))
		opts.limits.timeout_ms = TP_LIMIT_OFF_MS;
	if (!(opts.limits_given & TP_LIMIT_LOG))
		opts.limits.log_max_bytes = UINT64_MAX;

	setlocale(LC_CTYPE, ""); /* libedit edits the terminal's characters */
	ascii_terminal =
	    !tp_term_locale_is_utf8(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG"));
	rl_catch_signals = 0; /* SIGINT is ours */
	rl_readline_name = "teepy";
	using_history();
	stifle_history(1000);
	rl_initialize();
	/* Tab completes as python3's does, from the console inside (attempt_completion):
	 * its word breaks are CPython's readline module's, no space is appended */
	rl_attempted_completion_function = attempt_completion;
	static char python_breaks[] = " \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?";
	rl_basic_word_break_characters = python_breaks;
	rl_completer_word_break_characters = python_breaks;
	rl_completion_append_character = '\0';
	rl_completion_query_items = MAX_CANDIDATES + 1; /* a list is shown, never asked about */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_sigwinch;
	sigaction(SIGWINCH, &sa, NULL);
	sa.sa_handler = on_sigtstp;
	sigaction(SIGTSTP, &sa, NULL);
	io.interrupt_fd = interrupt_pipe[0];

	code = tp_run_shell(&opts, &io);

	signal(SIGINT, SIG_DFL);
	signal(SIGWINCH, SIG_DFL);
	signal(SIGTSTP, SIG_DFL);
	clear_history();
	close(interrupt_pipe[0]);
	close(interrupt_pipe[1]);
	tp_run_opts_free(&opts);
	return code;
}
