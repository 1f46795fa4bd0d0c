/* The limits record: defaults, and a bundle's limits tightened by a person's. */
#include "limits.h"
#include "units.h"

#include <stdio.h>

struct tp_limits tp_limits_default(void)
{
	return (struct tp_limits){
		.memory_bytes = TP_DEFAULT_MEMORY,
		.cpu_ms = TP_DEFAULT_CPU_MS,
		.timeout_ms = TP_DEFAULT_TIMEOUT_MS,
		.scratch_bytes = 0,
		.threads = TP_DEFAULT_THREADS,
		.log_max_bytes = TP_DEFAULT_LOG_MAX,
	};
}

const char *tp_limit_format_ms(uint64_t ms, char *buf, size_t size)
{
	if (ms < TP_LIMIT_OFF_MS)
		return tp_format_duration(ms, buf, size);
	snprintf(buf, size, "off");
	return buf;
}

static uint64_t tighter(bool given, uint64_t flag, uint64_t signed_value)
{
	return given && flag < signed_value ? flag : signed_value;
}

struct tp_limits tp_limits_tighten(const struct tp_limits *signed_limits,
				   const struct tp_limits *given_limits, unsigned given)
{
	struct tp_limits l = *signed_limits;

	l.memory_bytes =
	    tighter(given & TP_LIMIT_MEMORY, given_limits->memory_bytes, l.memory_bytes);
	l.cpu_ms = tighter(given & TP_LIMIT_CPU, given_limits->cpu_ms, l.cpu_ms);
	l.timeout_ms = tighter(given & TP_LIMIT_TIMEOUT, given_limits->timeout_ms, l.timeout_ms);
	l.threads = (unsigned)tighter(given & TP_LIMIT_THREADS, given_limits->threads, l.threads);
	l.log_max_bytes = given_limits->log_max_bytes;
	l.output_bytes = given_limits->output_bytes;
	return l;
}
