/* teepy's own messages: one line each, on stderr, prefixed "teepy: ". */
#ifndef TEEPY_COMMON_LOG_H
#define TEEPY_COMMON_LOG_H

void tp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
