/* teepy-reaper: the reaper as a program of its own (reaper.c's loop), which the
 * sandbox's pid 1 executes once the service has exec'd. It is static, so the
 * sandbox's root lends it nothing, and it has an address space of its own: pid 1
 * sets up the sandbox on teepy's memory (sandbox.c), and a process sharing teepy's
 * memory would take teepy with it when the OOM killer chose it.
 *
 * argv: teepy-reaper SERVICE_PID DEADLINE_MS (0: none); the report pipe is fd 3.
 * Started with no capability and every other descriptor closed. */
#include "reaper.h"

#include <stdlib.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 127;
	/* not dumpable: the service, same uid for a user's runs, cannot read us */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	tp_reaper_run((pid_t)strtol(argv[1], NULL, 10), TP_REAPER_STATUS_FD,
		      strtoull(argv[2], NULL, 10));
}
