/* `teepy cache ls` and `teepy cache clear`: the cache of verified sealed roots a
 * `teepy run APP.tpy` of this user would use. */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "../common/log.h"
#include "../common/units.h"
#include "../runner/runner.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum cache_flag { CACHE_HELP = 1 };

static const struct tp_flag flags[] = {
	{ CACHE_HELP, "help", 'h', NULL, NULL, "show this help" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "listed or cleared (also when there is no cache)" },
	{ TP_EXIT_USAGE, "usage error, or the cache directory fails the checks" },
	{ TP_EXIT_INTERNAL, "the cache cannot be read" },
	{ 0, NULL },
};

const struct tp_command_help tp_cache_help = {
	.name = "cache",
	.synopsis = "ls | clear",
	.about = "The cache of verified sealed roots (docs/cli.md): /run/teepy for root,\n"
		 "$XDG_RUNTIME_DIR/teepy for a user, TEEPY_CACHE_DIR if set. ls: one line an\n"
		 "entry: its key, the memory it holds, its files and when a run last used it.\n"
		 "clear: removes every entry no run is using now, and the facts about\n"
		 "/etc/alternatives that unsealed runs keep there.\n",
	.flags = flags,
	.exits = exits,
};

static const char *cache_dir(void)
{
	const char *dir = getenv("TEEPY_CACHE_DIR");
	return dir && *dir ? dir : NULL;
}

static void ago(const struct timespec *t, char *buf, size_t size)
{
	time_t now = time(NULL);
	uint64_t ms = now > t->tv_sec ? (uint64_t)(now - t->tv_sec) * 1000 : 0;

	if (ms < 1000)
		snprintf(buf, size, "now");
	else
		snprintf(buf, size, "%s ago", tp_format_duration(ms, (char[32]){ 0 }, 32));
}

static int list(int fd, const char *path)
{
	struct tp_cache_entry *entries;
	uint64_t total = 0;
	size_t n;
	int r = tp_cache_list(fd, &entries, &n);

	if (r < 0) {
		tp_error("cache %s: cannot be read: %s", path, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	for (size_t i = 0; i < n; i++) {
		char size[32], when[64];
		ago(&entries[i].last_use, when, sizeof(when));
		printf("%s  %9s  %5zu files  used %s\n", entries[i].key,
		       tp_format_size(entries[i].bytes, size, sizeof(size)), entries[i].files,
		       when);
		total += entries[i].bytes;
	}
	char size[32];
	tp_info("cache %s: %zu entr%s, %s", path, n, n == 1 ? "y" : "ies",
		tp_format_size(total, size, sizeof(size)));
	free(entries);
	return TP_EXIT_OK;
}

static int clear(int fd, const char *path)
{
	size_t removed, in_use;
	int r = tp_cache_clear(fd, &removed, &in_use);

	if (r < 0) {
		tp_error("cache %s: cannot be cleared: %s", path, strerror(-r));
		return TP_EXIT_INTERNAL;
	}
	if (in_use)
		tp_info("cache %s: removed %zu entr%s; %zu in use by a run now, kept", path,
			removed, removed == 1 ? "y" : "ies", in_use);
	else
		tp_info("cache %s: removed %zu entr%s", path, removed, removed == 1 ? "y" : "ies");
	return TP_EXIT_OK;
}

int tp_cmd_cache(int argc, char **argv)
{
	const char *action = NULL;
	char path[PATH_MAX], why[PATH_MAX + 160], err[256];
	struct tp_flag_parser p;
	int r, fd, code;

	if (tp_flags_start(&p, "cache", flags, NULL, argc, argv) < 0)
		return TP_EXIT_INTERNAL;
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("cache: %s", err);
			return TP_EXIT_USAGE;
		}
		if (r == TP_FLAGS_OPERAND) {
			if (action) {
				tp_error("cache: unexpected argument '%s' (see teepy cache --help)",
					 p.value);
				return TP_EXIT_USAGE;
			}
			action = p.value;
			continue;
		}
		if (p.flag->id == CACHE_HELP) {
			tp_help_print(stdout, &tp_cache_help);
			return TP_EXIT_OK;
		}
	}
	if (!action || (strcmp(action, "ls") != 0 && strcmp(action, "clear") != 0)) {
		tp_error("cache: %s (use ls or clear; see teepy cache --help)",
			 action ? "unknown action" : "missing ls or clear");
		return TP_EXIT_USAGE;
	}
	fd = tp_cache_dir_open(cache_dir(), getenv("XDG_RUNTIME_DIR"), false, path, sizeof(path),
			       why, sizeof(why));
	if (fd == -ENOENT) {
		tp_info("%s", why);
		return TP_EXIT_OK;
	}
	if (fd < 0) {
		tp_error("%s (teepy runs without it)", why);
		return TP_EXIT_USAGE;
	}
	code = strcmp(action, "ls") == 0 ? list(fd, path) : clear(fd, path);
	close(fd);
	return code;
}
