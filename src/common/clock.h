/* Deadlines on CLOCK_MONOTONIC. */
#ifndef TEEPY_COMMON_CLOCK_H
#define TEEPY_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds from now to the deadline (CLOCK_MONOTONIC), rounded up and at most
 * INT32_MAX, as poll takes them; 0 once it has passed. */
int tp_ms_until(const struct timespec *deadline);

/* The deadline ms milliseconds from now. */
void tp_deadline_after(struct timespec *deadline, uint64_t ms);

#endif
