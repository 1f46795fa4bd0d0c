/* Parsing and printing of sizes and durations: pure functions, no OS calls. */
#ifndef TEEPY_COMMON_UNITS_H
#define TEEPY_COMMON_UNITS_H

#include <stdint.h>
#include <stddef.h>

/* "3G", "512M", "1024", "4KiB" -> bytes (binary units). Returns 0 or -EINVAL / -ERANGE. */
int tp_parse_size(const char *text, uint64_t *bytes_out);

/* "30m", "2", "1.5s", "500ms", "1h" -> milliseconds, > 0. Returns 0 or -EINVAL / -ERANGE. */
int tp_parse_duration_ms(const char *text, uint64_t *ms_out);

/* A count: decimal digits, no sign or unit (a version, 0, 1, 2 ...). Returns 0,
 * -ERANGE past 64 bits, or -EINVAL. */
int tp_parse_count(const char *text, uint64_t *out);

/* Human-readable size, e.g. "3 GiB", "1.5 MiB", "100 B", into buf. */
const char *tp_format_size(uint64_t bytes, char *buf, size_t buf_size);

/* Human-readable duration, e.g. "30 min", "2 s", "1.5 s", "500 ms", into buf. */
const char *tp_format_duration(uint64_t ms, char *buf, size_t buf_size);

#endif
