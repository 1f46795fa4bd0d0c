/* A command's flags as one table (name, argument, environment variable, help line):
 * its --help is printed from the table and its parser is glibc's getopt_long over it.
 * No OS calls but printing to the FILE given. */
#ifndef TEEPY_CLI_FLAGS_H
#define TEEPY_CLI_FLAGS_H

#include <getopt.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct tp_flag {
	int id;		  /* the command's own number for the flag (its switch case) */
	const char *name; /* long name without "--"; NULL for a heading, or the end */
	char short_name;  /* 'o' for -o, or 0 */
	const char *arg;  /* the value's name in help ("SIZE"); NULL: a switch */
	const char *env;  /* TEEPY_* that sets it as well (a switch: when "1"), or NULL */
	const char *help; /* one line, wrapped when printed; a heading's title */
};

/* Table rows besides flags: a heading in --help, and the end of the table. */
/* clang-format off */
#define TP_FLAG_HEADING(title) { .help = (title) }
#define TP_FLAGS_END { 0 }
/* clang-format on */

static inline bool tp_flag_is_end(const struct tp_flag *f)
{
	return !f->name && !f->help;
}

/* What a command means by an exit code, for its --help; ends with meaning NULL. */
struct tp_exit_use {
	int code;
	const char *meaning;
};

struct tp_command_help;

/* A command of teepy (or later a command's own subcommand). */
struct tp_command {
	const char *name;		    /* "run"; NULL ends a table */
	const char *args;		    /* after the name in a list of commands: "SCRIPT.py" */
	const char *summary;		    /* one line */
	int (*main)(int argc, char **argv); /* argv from the command's name on; an exit code */
	const struct tp_command_help *help; /* its --help */
};

struct tp_command_help {
	const char *name;		   /* "run"; NULL for teepy itself */
	const char *synopsis;		   /* after "usage: teepy NAME "; lines after the first
					    * are whole synopses of NAME too */
	const char *about;		   /* paragraphs between the synopsis and the flags */
	const struct tp_command *commands; /* listed under "Commands:", or NULL */
	const struct tp_flag *flags;	   /* printed under their headings, or "Options:" */
	const char *after;		   /* paragraphs after the flags, or NULL */
	const struct tp_exit_use *exits;   /* NULL: teepy's whole exit-code table; an empty
					    * list: no exit-code section */
};

/* Prints the command's --help: synopsis, about, commands, flags, after, exit codes. */
void tp_help_print(FILE *f, const struct tp_command_help *help);

/* Prints the command's flags one a line, for scripts and for the check of
 * docs/cli.md: "COMMAND --NAME -S ARG ENV", "-" for what a flag has not. */
void tp_flags_print_list(FILE *f, const char *command, const struct tp_flag *flags);

#define TP_FLAGS_MAX 64

/* One parse of argv by getopt_long: options, operands and "--" in the order given,
 * flags before and after operands alike. Abbreviated long names are refused. */
struct tp_flag_parser {
	/* after each tp_flags_next that returned TP_FLAGS_FLAG or TP_FLAGS_OPERAND */
	const struct tp_flag *flag; /* NULL for an operand */
	bool flag_is_also;	    /* the flag is one of the `also` table's */
	const char *value;	    /* the flag's value (NULL for a switch), or the operand */
	const char *given;	    /* the flag as typed, without a value: "--memory", "-o" */
	int first, end;		    /* the argv elements it took: [first, end) */
	/* after TP_FLAGS_DONE */
	bool dashdash; /* the options ended with "--" */
	int rest;      /* argv index of the first argument after "--"; argc without one */

	/* private */
	const char *command;
	int argc;
	char **argv;
	const struct tp_flag *by_index[TP_FLAGS_MAX];
	size_t count, own_count; /* flags in by_index; how many are the command's own */
	struct option longopts[TP_FLAGS_MAX + 1];
	char shortopts[2 * TP_FLAGS_MAX + 4];
	char given_buf[48];
};

enum { TP_FLAGS_DONE = 0, TP_FLAGS_FLAG = 1, TP_FLAGS_OPERAND = 2 };

/* Starts a parse of argv[1..argc) for COMMAND ("run"; NULL for teepy itself, which
 * usage errors name as "see teepy COMMAND --help"). FLAGS are the command's own;
 * ALSO (may be NULL) are another command's it takes as well (build takes run's),
 * minus names FLAGS has. Resets getopt's state, so a process may parse many times.
 * The tables and argv are borrowed for the parse. Returns 0, or -E2BIG when the
 * tables hold more than TP_FLAGS_MAX flags. */
int tp_flags_start(struct tp_flag_parser *p, const char *command, const struct tp_flag *flags,
		   const struct tp_flag *also, int argc, char **argv);

/* The next flag or operand: TP_FLAGS_FLAG, TP_FLAGS_OPERAND, or TP_FLAGS_DONE at the
 * end of argv or at "--". On a usage error (an unknown flag, a value missing or
 * given to a switch) writes one line into err (without "teepy: ") and returns
 * -EINVAL. */
int tp_flags_next(struct tp_flag_parser *p, char *err, size_t err_size);

/* A value given in hex by flag ("--nonce") of min to max bytes into out (how many in
 * *size, when size); WHO starts the line ("attest", "invoke"). Returns an exit code
 * (one line said) or 0. */
int tp_flag_hex(const char *who, const char *flag, const char *hex, uint8_t *out, size_t min,
		size_t max, size_t *size);

/* The flag of TABLE with this long name, or NULL. */
const struct tp_flag *tp_flag_find(const struct tp_flag *table, const char *name);

#endif
