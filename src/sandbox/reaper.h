/* The reaper: pid 1 of the service's pid namespace and the service's parent. */
#ifndef TEEPY_SANDBOX_REAPER_H
#define TEEPY_SANDBOX_REAPER_H

#include <stdint.h>
#include <sys/types.h>

/* What the reaper tells the supervisor, in one write, as it ends. */
enum tp_reaper_kind {
	TP_REAPER_SERVICE = 1,	/* the service ended: status is its wait status */
	TP_REAPER_DEADLINE = 2, /* the reaper's own clock ran out (teepy's had not acted) */
	TP_REAPER_FAILED = 3,	/* the reaper could not hold its post: status is an errno */
};

struct tp_reaper_report {
	uint32_t kind;
	int32_t status;
};

/* The report pipe's descriptor in teepy-reaper (reaper_main.c). */
#define TP_REAPER_STATUS_FD 3

/* In the namespace's pid 1, with every descriptor but status_fd closed: waits for
 * service (its child), reaping every orphan on the way, and ends when the service
 * does or deadline_ms (0: none) has passed, writing one report to status_fd. The
 * kernel then kills whatever is left in the namespace. */
void tp_reaper_run(pid_t service, int status_fd, uint64_t deadline_ms) __attribute__((noreturn));

#endif
