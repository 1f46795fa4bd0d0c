/* Flag tables: --help printed from them, and getopt_long driven by them. */
#include "flags.h"

#include "../common/log.h"
#include "../crypto/crypto.h"

#include "exit_codes.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

/* --help lines are at most this wide (columns); a flag's help starts at FLAG_COLUMN. */
#define HELP_WIDTH  80
#define FLAG_COLUMN 25
#define EXIT_COLUMN 26

/* Writes TEXT from column COL on, wrapped at spaces before HELP_WIDTH, each further
 * line indented to INDENT; ends the line. */
static void put_wrapped(FILE *f, size_t col, size_t indent, const char *text)
{
	const char *p = text;

	while (*p) {
		size_t room = col < HELP_WIDTH ? HELP_WIDTH - col : 0;
		size_t len = strcspn(p, "\n");
		size_t take = len;

		if (len > room) {
			/* the last space that fits; a longer word stays whole */
			take = 0;
			for (size_t i = 0; i <= room && i < len; i++)
				if (p[i] == ' ')
					take = i;
			if (take == 0)
				take = strcspn(p, " \n");
		}
		fprintf(f, "%.*s\n", (int)take, p);
		p += take;
		if (*p == ' ' || *p == '\n')
			p++;
		if (*p)
			fprintf(f, "%*s", (int)indent, "");
		col = indent;
	}
	if (!*text)
		fputc('\n', f);
}

/* "  LEFT" padded to COLUMN (two spaces at least), then TEXT wrapped. */
static void put_row(FILE *f, const char *left, size_t column, const char *text)
{
	int n = fprintf(f, "  %s", left);
	size_t col = n > 0 ? (size_t)n : 0;

	if (col + 2 > column) {
		fputs("  ", f);
		col += 2;
	} else {
		fprintf(f, "%*s", (int)(column - col), "");
		col = column;
	}
	put_wrapped(f, col, column, text);
}

static void put_flag(FILE *f, const struct tp_flag *flag)
{
	char left[64], text[512];
	int n = 0;

	if (flag->short_name)
		n = snprintf(left, sizeof(left), "-%c, ", flag->short_name);
	snprintf(left + n, sizeof(left) - (size_t)n, "--%s%s%s", flag->name, flag->arg ? " " : "",
		 flag->arg ? flag->arg : "");
	if (flag->env) /* a switch's variable sets it when it is 1 */
		snprintf(text, sizeof(text), "%s [%s%s]", flag->help, flag->env,
			 flag->arg ? "" : "=1");
	else
		snprintf(text, sizeof(text), "%s", flag->help);
	put_row(f, left, FLAG_COLUMN, text);
}

static void put_exits(FILE *f, const struct tp_exit_use *uses)
{
	char left[32];

	if (uses && !uses->meaning)
		return;
	fputs("\nExit codes:\n", f);
	if (!uses) {
		for (const struct tp_exit_code *e = tp_exit_codes; e->name; e++) {
			snprintf(left, sizeof(left), "%-3d %s", e->code, e->name);
			put_row(f, left, EXIT_COLUMN, e->meaning);
		}
		return;
	}
	for (const struct tp_exit_use *u = uses; u->meaning; u++) {
		const struct tp_exit_code *e = tp_exit_code_find(u->code);
		snprintf(left, sizeof(left), "%-3d %s", u->code, e ? e->name : "?");
		put_row(f, left, EXIT_COLUMN, u->meaning);
	}
}

void tp_help_print(FILE *f, const struct tp_command_help *help)
{
	const char *name = help->name ? help->name : "";
	const char *line = help->synopsis;
	bool first = true;

	/* one synopsis a line, each after "teepy NAME " */
	while (*line) {
		size_t len = strcspn(line, "\n");
		fprintf(f, "%s teepy %s%s%.*s\n", first ? "usage:" : "      ", name,
			*name ? " " : "", (int)len, line);
		line += len + (line[len] == '\n');
		first = false;
	}
	if (help->about)
		fprintf(f, "\n%s", help->about);
	if (help->commands) {
		fputs("\nCommands:\n", f);
		for (const struct tp_command *c = help->commands; c->name; c++) {
			char left[64];
			snprintf(left, sizeof(left), "%s%s%s", c->name, c->args ? " " : "",
				 c->args ? c->args : "");
			put_row(f, left, FLAG_COLUMN, c->summary);
		}
	}
	if (help->flags) {
		const struct tp_flag *fl = help->flags;
		if (fl->name)
			fputs("\nOptions:\n", f);
		for (; !tp_flag_is_end(fl); fl++) {
			if (fl->name)
				put_flag(f, fl);
			else
				fprintf(f, "\n%s\n", fl->help);
		}
	}
	if (help->after)
		fprintf(f, "\n%s", help->after);
	put_exits(f, help->exits);
}

void tp_flags_print_list(FILE *f, const char *command, const struct tp_flag *flags)
{
	char short_name[3] = "-";

	for (const struct tp_flag *fl = flags; !tp_flag_is_end(fl); fl++) {
		if (!fl->name)
			continue;
		if (fl->short_name)
			snprintf(short_name, sizeof(short_name), "-%c", fl->short_name);
		else
			snprintf(short_name, sizeof(short_name), "-");
		fprintf(f, "%s --%s %s %s %s\n", command, fl->name, short_name,
			fl->arg ? fl->arg : "-", fl->env ? fl->env : "-");
	}
}

int tp_flag_hex(const char *who, const char *flag, const char *hex, uint8_t *out, size_t min,
		size_t max, size_t *size)
{
	size_t len = strlen(hex);

	if (len % 2 || len / 2 < min || len / 2 > max || tp_unhex(hex, out, len / 2) < 0) {
		if (min == max)
			tp_error("%s: %s: not %zu bytes in hex (%zu hex digits)", who, flag, min,
				 2 * min);
		else
			tp_error("%s: %s: not %zu to %zu bytes in hex", who, flag, min, max);
		return TP_EXIT_USAGE;
	}
	if (size)
		*size = len / 2;
	return 0;
}

const struct tp_flag *tp_flag_find(const struct tp_flag *table, const char *name)
{
	for (const struct tp_flag *f = table; f && !tp_flag_is_end(f); f++)
		if (f->name && strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* getopt_long's value for the flag at index i of by_index: above any char, so a
 * short option (its own char) and a long one are told apart */
#define LONG_VALUE(i) (256 + (int)(i))

int tp_flags_start(struct tp_flag_parser *p, const char *command, const struct tp_flag *flags,
		   const struct tp_flag *also, int argc, char **argv)
{
	char *s = p->shortopts;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	p->command = command;
	p->argc = argc;
	p->argv = argv;
	*s++ = '-'; /* operands come back in order, whatever POSIXLY_CORRECT says */
	*s++ = ':'; /* a missing value is told apart from an unknown flag; getopt prints nothing */
	for (int t = 0; t < 2; t++) {
		const struct tp_flag *table = t ? also : flags;
		for (const struct tp_flag *f = table; f && !tp_flag_is_end(f); f++) {
			if (!f->name || (t && tp_flag_find(flags, f->name)))
				continue;
			if (n == TP_FLAGS_MAX)
				return -E2BIG;
			p->by_index[n] = f;
			p->longopts[n] =
			    (struct option){ f->name, f->arg ? required_argument : no_argument,
					     NULL, LONG_VALUE(n) };
			if (f->short_name && !strchr(p->shortopts + 2, f->short_name)) {
				*s++ = f->short_name;
				if (f->arg)
					*s++ = ':';
			}
			n++;
		}
		if (t == 0)
			p->own_count = n;
	}
	*s = '\0';
	p->count = n;
	p->longopts[n] = (struct option){ 0 };
	optind = 0; /* getopt's state is the process's: start over */
	opterr = 0;
	return 0;
}

static int unknown(struct tp_flag_parser *p, const char *arg, char *err, size_t err_size)
{
	/* "--name=value" names "--name" */
	size_t len = strncmp(arg, "--", 2) == 0 ? strcspn(arg, "=") : strlen(arg);

	return tp_errf(err, err_size, "unknown option '%.*s' (see teepy %s%s--help)", (int)len, arg,
		       p->command ? p->command : "", p->command ? " " : "");
}

/* The index of the flag getopt_long answered with VALUE (a LONG_VALUE or a short
 * option's char), or p->count for none. */
static size_t flag_index(const struct tp_flag_parser *p, int value)
{
	if (value >= LONG_VALUE(0))
		return (size_t)(value - LONG_VALUE(0));
	for (size_t i = 0; i < p->count; i++)
		if (p->by_index[i]->short_name == value)
			return i;
	return p->count;
}

static const char *given_name(struct tp_flag_parser *p, int value, const struct tp_flag *f)
{
	if (value >= LONG_VALUE(0))
		snprintf(p->given_buf, sizeof(p->given_buf), "--%s", f->name);
	else
		snprintf(p->given_buf, sizeof(p->given_buf), "-%c", value);
	return p->given_buf;
}

int tp_flags_next(struct tp_flag_parser *p, char *err, size_t err_size)
{
	/* the element getopt looks at: none is skipped, as operands are returned in order */
	int at = optind ? optind : 1;
	int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts, NULL);
	const char *arg = at < p->argc ? p->argv[at] : "";
	size_t i;

	p->flag = NULL;
	p->flag_is_also = false;
	p->value = NULL;
	p->given = NULL;
	p->first = at;
	p->end = optind;
	if (c == -1) {
		p->dashdash = strcmp(arg, "--") == 0;
		p->rest = optind;
		return TP_FLAGS_DONE;
	}
	if (c == 1) {
		p->value = optarg;
		return TP_FLAGS_OPERAND;
	}
	/* '?': an unknown flag (optopt 0 for a long name, else the char) or a switch
	 * given a value (optopt the flag's); ':': a value missing */
	if (c == '?' && optopt < LONG_VALUE(0))
		return unknown(p, arg, err, err_size);
	i = flag_index(p, c == ':' || c == '?' ? optopt : c);
	if (i >= p->count)
		return unknown(p, arg, err, err_size);
	p->flag = p->by_index[i];
	p->flag_is_also = i >= p->own_count;
	p->given = given_name(p, c == ':' || c == '?' ? optopt : c, p->flag);
	if (c == ':')
		return tp_errf(err, err_size, "%s needs a value", p->given);
	if (c == '?')
		return tp_errf(err, err_size, "%s takes no value", p->given);
	/* getopt_long takes a unique prefix of a name; teepy takes names whole */
	if (c >= LONG_VALUE(0) &&
	    (strncmp(arg, "--", 2) != 0 || strcspn(arg + 2, "=") != strlen(p->flag->name) ||
	     strncmp(arg + 2, p->flag->name, strlen(p->flag->name)) != 0))
		return unknown(p, arg, err, err_size);
	p->value = p->flag->arg ? optarg : NULL;
	return TP_FLAGS_FLAG;
}
