/* One place that formats teepy's own messages. */
#include "log.h"

#include "term.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static bool marked;
/* the calling thread's lines go here instead of stderr (tp_log_capture) */
static __thread char *captured;
static __thread size_t captured_size;

void tp_log_capture(char *line, size_t size)
{
	captured = line;
	captured_size = size;
	if (line && size)
		line[0] = '\0';
}

void tp_log_mark_own(bool on)
{
	marked = on;
}

static void emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (captured) {
		snprintf(captured, captured_size, "%s%s", prefix, line);
		return;
	}
	fprintf(stderr, "%steepy: %s%s%s\n", marked ? TP_TERM_OWN_START : "", prefix, line,
		marked ? TP_TERM_OWN_END : "");
}

void tp_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("", fmt, ap);
	va_end(ap);
}

/* the same line, said of what is not a problem */
void tp_info(const char *fmt, ...) __attribute__((alias("tp_error")));

void tp_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit("warning: ", fmt, ap);
	va_end(ap);
}

int tp_errf(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}
