/* teepy's own messages: one line each, on stderr, prefixed "teepy: ". */
#ifndef TEEPY_COMMON_LOG_H
#define TEEPY_COMMON_LOG_H

#include <stddef.h>

void tp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For library code that says what is wrong to its caller: one line into err (no
 * "teepy: " prefix). Returns -EINVAL, for `return tp_errf(...)`. */
int tp_errf(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
