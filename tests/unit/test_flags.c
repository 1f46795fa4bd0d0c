/* Flag tables: getopt_long over them, --help from them, and the exit-code table. */
#include "test.h"
#include "../../src/cli/exit_codes.h"
#include "../../src/cli/flags.h"
#include "../../src/cli/run_opts.h"

#include <errno.h>
#include <stdlib.h>

enum { F_HELP = 1, F_OUT, F_KEY, F_QUIET, F_RUNLIKE };

static const struct tp_flag own[] = {
	TP_FLAG_HEADING("Things:"),
	{ F_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ F_OUT, "out", 'o', "FILE", NULL, "where to write" },
	{ F_KEY, "key", 0, "KEY", "TEEPY_TEST_KEY", "the key" },
	{ F_QUIET, "quiet", 0, NULL, "TEEPY_TEST_QUIET", "say less" },
	TP_FLAGS_END,
};

static const struct tp_flag other[] = {
	{ F_HELP, "help", 'h', NULL, NULL, "another command's help" },
	{ F_RUNLIKE, "input", 0, "STR", NULL, "an input" },
	TP_FLAGS_END,
};

/* Parses ARGS (after the command name) with own and, if given, also: each item as
 * "f:NAME=VALUE", "f:NAME", "a:NAME=VALUE" (also's), "op:VALUE", then "end:REST"
 * or "err:MESSAGE", joined by " | ". */
static const char *trace(const struct tp_flag *also, const char *const *args)
{
	static char out[1024];
	struct tp_flag_parser p;
	char *argv[32], err[256];
	int argc = 0, r;
	size_t n = 0;

	argv[argc++] = (char *)"cmd";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	out[0] = '\0';
	if (tp_flags_start(&p, "cmd", own, also, argc, argv) < 0)
		return "start failed";
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			snprintf(out + n, sizeof(out) - n, "err:%s", err);
			return out;
		}
		if (r == TP_FLAGS_OPERAND)
			n += (size_t)snprintf(out + n, sizeof(out) - n, "op:%s | ", p.value);
		else
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s:%s%s%s | ",
					      p.flag_is_also ? "a" : "f", p.given,
					      p.value ? "=" : "", p.value ? p.value : "");
	}
	snprintf(out + n, sizeof(out) - n, "end:%s", p.dashdash ? argv[p.rest - 1] : "");
	for (int i = p.rest; p.dashdash && i < argc; i++) {
		n = strlen(out);
		snprintf(out + n, sizeof(out) - n, " %s", argv[i]);
	}
	return out;
}

static void test_flags_and_operands_come_in_order(void)
{
	CHECK_STR(trace(NULL, (const char *[]){ "a", "--out", "x", "b", "--quiet", NULL }),
		  "op:a | f:--out=x | op:b | f:--quiet | end:");
	CHECK_STR(trace(NULL, (const char *[]){ "-o", "x", "--out=y", "-oz", NULL }),
		  "f:-o=x | f:--out=y | f:-o=z | end:");
	/* a value is the next element whatever it looks like */
	CHECK_STR(trace(NULL, (const char *[]){ "--key", "--quiet", "--out", "--", NULL }),
		  "f:--key=--quiet | f:--out=-- | end:");
	CHECK_STR(trace(NULL, (const char *[]){ "--key=", "-", NULL }), "f:--key= | op:- | end:");
}

static void test_double_dash_ends_the_flags(void)
{
	CHECK_STR(trace(NULL, (const char *[]){ "a", "--", "--out", "b", NULL }),
		  "op:a | end:-- --out b");
	CHECK_STR(trace(NULL, (const char *[]){ "--", NULL }), "end:--");
	CHECK_STR(trace(NULL, (const char *[]){ NULL }), "end:");
}

static void test_usage_errors_name_the_flag_and_the_help(void)
{
	CHECK_STR(trace(NULL, (const char *[]){ "a", "--bogus", NULL }),
		  "op:a | err:unknown option '--bogus' (see teepy cmd --help)");
	CHECK_STR(trace(NULL, (const char *[]){ "--bogus=1", NULL }),
		  "err:unknown option '--bogus' (see teepy cmd --help)");
	CHECK_STR(trace(NULL, (const char *[]){ "-x", NULL }),
		  "err:unknown option '-x' (see teepy cmd --help)");
	CHECK_STR(trace(NULL, (const char *[]){ "--key", NULL }), "err:--key needs a value");
	CHECK_STR(trace(NULL, (const char *[]){ "-o", NULL }), "err:-o needs a value");
	CHECK_STR(trace(NULL, (const char *[]){ "--quiet=yes", NULL }),
		  "err:--quiet takes no value");
}

static void test_abbreviated_names_are_refused(void)
{
	/* getopt_long takes a unique prefix; a flag is named whole */
	CHECK_STR(trace(NULL, (const char *[]){ "--qui", NULL }),
		  "err:unknown option '--qui' (see teepy cmd --help)");
	CHECK_STR(trace(NULL, (const char *[]){ "--ke=x", NULL }),
		  "err:unknown option '--ke' (see teepy cmd --help)");
}

static void test_another_commands_flags_are_told_apart(void)
{
	const char *const args[] = { "--input", "x", "s.py", "--input=y", "--help", NULL };
	struct tp_flag_parser p;
	char *argv[8] = { (char *)"cmd" };
	char err[256];
	int n = 1;

	/* the command's own --help wins over the other's */
	CHECK_STR(trace(other, args), "a:--input=x | op:s.py | a:--input=y | f:--help | end:");
	for (const char *const *a = args; *a; a++)
		argv[n++] = (char *)*a;
	CHECK(tp_flags_start(&p, "cmd", own, other, n, argv) == 0);
	CHECK(tp_flags_next(&p, err, sizeof(err)) == TP_FLAGS_FLAG);
	CHECK(p.first == 1 && p.end == 3); /* "--input" "x": both go to the other parser */
	CHECK(tp_flags_next(&p, err, sizeof(err)) == TP_FLAGS_OPERAND);
	CHECK(p.first == 3 && p.end == 4);
	CHECK(tp_flags_next(&p, err, sizeof(err)) == TP_FLAGS_FLAG);
	CHECK(p.first == 4 && p.end == 5);
}

static void test_parsing_twice_starts_over(void)
{
	const char *first = "f:--out=a | op:b | end:";

	CHECK_STR(trace(NULL, (const char *[]){ "--out", "a", "b", NULL }), first);
	/* stopped half-way, then again from the start */
	CHECK_STR(trace(NULL, (const char *[]){ "-o", "a", "-x", "c", NULL }),
		  "f:-o=a | err:unknown option '-x' (see teepy cmd --help)");
	CHECK_STR(trace(NULL, (const char *[]){ "--out", "a", "b", NULL }), first);
}

static void test_posixly_correct_changes_nothing(void)
{
	setenv("POSIXLY_CORRECT", "1", 1);
	CHECK_STR(trace(NULL, (const char *[]){ "a", "--quiet", NULL }), "op:a | f:--quiet | end:");
	unsetenv("POSIXLY_CORRECT");
}

static char *help_text(const struct tp_command_help *help)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	tp_help_print(f, help);
	fclose(f);
	return text;
}

static void test_help_lists_every_flag_with_its_argument_and_variable(void)
{
	static const struct tp_exit_use exits[] = { { TP_EXIT_USAGE, "a bad flag" }, { 0, NULL } };
	const struct tp_command_help help = {
		.name = "cmd", .synopsis = "[OPTIONS] X\nY", .flags = own, .exits = exits
	};
	const char *usage = "usage: teepy cmd [OPTIONS] X\n       teepy cmd Y\n";
	char *text = help_text(&help);

	CHECK(text && strncmp(text, usage, strlen(usage)) == 0);
	CHECK(text && strstr(text, "\nThings:\n  -h, --help  "));
	CHECK(text && strstr(text, "  -o, --out FILE         where to write\n"));
	CHECK(text && strstr(text, "  --key KEY              the key [TEEPY_TEST_KEY]\n"));
	CHECK(text && strstr(text, "  --quiet                say less [TEEPY_TEST_QUIET=1]\n"));
	CHECK(text && strstr(text, "\nExit codes:\n  2   USAGE               a bad flag\n"));
	free(text);
}

static void test_run_help_fits_80_columns_and_has_every_exit_code(void)
{
	char *text = help_text(&tp_run_help);
	char line[16];

	CHECK(text != NULL);
	for (const char *l = text; l && *l; l += strcspn(l, "\n") + 1) {
		size_t len = strcspn(l, "\n");
		if (len > 80)
			fprintf(stderr, "  longer than 80: %.*s\n", (int)len, l);
		CHECK(len <= 80);
		if (!l[len])
			break;
	}
	for (const struct tp_flag *f = tp_run_flags; !tp_flag_is_end(f); f++) {
		char shown[64];
		if (!f->name)
			continue;
		snprintf(shown, sizeof(shown), "--%s%s%s ", f->name, f->arg ? " " : "",
			 f->arg ? f->arg : "");
		CHECK(text && strstr(text, shown));
	}
	for (const struct tp_exit_code *e = tp_exit_codes; e->name; e++) {
		snprintf(line, sizeof(line), "\n  %-3d %s ", e->code, e->name);
		CHECK(text && strstr(text, line));
	}
	free(text);
}

static void test_exit_codes_are_one_table_by_code(void)
{
	int previous = -1;
	size_t count = 0;

	for (const struct tp_exit_code *e = tp_exit_codes; e->name; e++, count++) {
		CHECK(e->code > previous);
		CHECK(e->meaning && *e->meaning);
		previous = e->code;
	}
	CHECK(count == 14);
	CHECK_STR(tp_exit_code_find(TP_EXIT_BUNDLE)->name, "BUNDLE");
	CHECK_STR(tp_exit_code_find(TP_EXIT_ATTESTATION_DENIED)->name, "ATTESTATION_DENIED");
	CHECK(tp_exit_code_find(12) == NULL);
}

TESTS(flags_tests) = {
	{ "flags_and_operands_come_in_order", test_flags_and_operands_come_in_order },
	{ "double_dash_ends_the_flags", test_double_dash_ends_the_flags },
	{ "usage_errors_name_the_flag_and_the_help", test_usage_errors_name_the_flag_and_the_help },
	{ "abbreviated_names_are_refused", test_abbreviated_names_are_refused },
	{ "another_commands_flags_are_told_apart", test_another_commands_flags_are_told_apart },
	{ "parsing_twice_starts_over", test_parsing_twice_starts_over },
	{ "posixly_correct_changes_nothing", test_posixly_correct_changes_nothing },
	{ "help_lists_every_flag_with_its_argument_and_variable",
	  test_help_lists_every_flag_with_its_argument_and_variable },
	{ "run_help_fits_80_columns_and_has_every_exit_code",
	  test_run_help_fits_80_columns_and_has_every_exit_code },
	{ "exit_codes_are_one_table_by_code", test_exit_codes_are_one_table_by_code },
	END_TESTS,
};
