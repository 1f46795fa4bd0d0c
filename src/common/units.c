/* Sizes and durations as users write them on the command line. */
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_uint(const char **p, uint64_t *value)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned digit = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		v = v * 10 + digit;
	}
	*p = s;
	*value = v;
	return 0;
}

int tp_parse_size(const char *text, uint64_t *bytes_out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },     { "b", 0 },   { "k", 10 },   { "kb", 10 },  { "kib", 10 },
		{ "m", 20 },   { "mb", 20 }, { "mib", 20 }, { "g", 30 },   { "gb", 30 },
		{ "gib", 30 }, { "t", 40 },  { "tb", 40 },  { "tib", 40 },
	};
	const char *p = text;
	uint64_t value;
	int r;

	if (!text)
		return -EINVAL;
	r = parse_uint(&p, &value);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(p, units[i].suffix) != 0)
			continue;
		if (units[i].shift && value > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*bytes_out = value << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int tp_parse_duration_ms(const char *text, uint64_t *ms_out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {
		{ "", 1000 },	{ "s", 1000 },	  { "ms", 1 },
		{ "m", 60000 }, { "min", 60000 }, { "h", 3600000 },
	};
	const char *p = text;
	uint64_t whole, frac = 0, frac_scale = 1;
	int r;

	if (!text)
		return -EINVAL;
	r = parse_uint(&p, &whole);
	if (r < 0)
		return r;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_scale >= 1000000000ULL)
				continue; /* digits beyond nanoseconds do not matter */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_scale *= 10;
		}
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t ms;
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (whole > UINT64_MAX / units[i].ms)
			return -ERANGE;
		ms = whole * units[i].ms + (frac * units[i].ms + frac_scale - 1) / frac_scale;
		if (ms == 0)
			return -EINVAL;
		*ms_out = ms;
		return 0;
	}
	return -EINVAL;
}

const char *tp_format_size(uint64_t bytes, char *buf, size_t buf_size)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	uint64_t unit = 1;

	while (i + 1 < sizeof(names) / sizeof(names[0]) && bytes >= unit * 1024) {
		unit *= 1024;
		i++;
	}
	if (bytes % unit == 0)
		snprintf(buf, buf_size, "%llu %s", (unsigned long long)(bytes / unit), names[i]);
	else
		snprintf(buf, buf_size, "%.1f %s", (double)bytes / (double)unit, names[i]);
	return buf;
}

const char *tp_format_duration(uint64_t ms, char *buf, size_t buf_size)
{
	if (ms % 3600000 == 0)
		snprintf(buf, buf_size, "%llu h", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(buf, buf_size, "%llu min", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, buf_size, "%llu s", (unsigned long long)(ms / 1000));
	else if (ms > 1000)
		snprintf(buf, buf_size, "%.3g s", (double)ms / 1000.0);
	else
		snprintf(buf, buf_size, "%llu ms", (unsigned long long)ms);
	return buf;
}

int tp_parse_count(const char *text, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || *end || end == text || text[0] == '-' || text[0] == '+')
		return -EINVAL;
	*out = n;
	return 0;
}
