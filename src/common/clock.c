/* Deadlines on CLOCK_MONOTONIC. */
#include "clock.h"

#include <stdint.h>

int tp_ms_until(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
		     (deadline->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	int64_t ms = (ns + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

void tp_deadline_after(struct timespec *deadline, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, deadline);
	deadline->tv_sec += (time_t)(ms / 1000);
	deadline->tv_nsec += (long)(ms % 1000) * 1000000L;
	deadline->tv_sec += deadline->tv_nsec / 1000000000L;
	deadline->tv_nsec %= 1000000000L;
}
