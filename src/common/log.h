/* teepy's own messages: one line each, on stderr, prefixed "teepy: ". */
#ifndef TEEPY_COMMON_LOG_H
#define TEEPY_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>

void tp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* what teepy reports that is not a problem: "teepy: built app.tpy …" */
void tp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* On: each line is printed bold (term.h), told apart from a service's output on a
 * terminal (teepy run --escape). */
void tp_log_mark_own(bool on);

/* The calling thread's lines go into line (the last one said, without "teepy: ")
 * instead of stderr, until called with NULL: a server answers with what a command
 * would have printed (the worker's attestation, cli/serve.c). */
void tp_log_capture(char *line, size_t size);

/* For library code that says what is wrong to its caller: one line into err (no
 * "teepy: " prefix). Returns -EINVAL, for `return tp_errf(...)`. */
int tp_errf(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
