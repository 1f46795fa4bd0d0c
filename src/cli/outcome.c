/* A run's outcome as teepy's exit code: the runner says how it ended, the command
 * says what number that is. Pure. */
#include "exit_codes.h"
#include "run.h"

int tp_exit_code_for(enum tp_end end)
{
	switch (end) {
	case TP_END_RESULT:
		return TP_EXIT_OK;
	case TP_END_FAILED:
		return TP_EXIT_SERVICE_FAILED;
	case TP_END_CONFIG:
		return TP_EXIT_USAGE;
	case TP_END_NO_RESULT:
		return TP_EXIT_NO_RESULT;
	case TP_END_RULE:
		return TP_EXIT_RULE;
	case TP_END_MEMORY:
		return TP_EXIT_MEMORY;
	case TP_END_CPU:
		return TP_EXIT_CPU;
	case TP_END_TIMEOUT:
		return TP_EXIT_TIMEOUT;
	case TP_END_REFUSED:
		return TP_EXIT_BUNDLE;
	case TP_END_KEY_MISSING:
		return TP_EXIT_KEY_MISSING;
	case TP_END_VOLUME_REFUSED:
		return TP_EXIT_DATA_REFUSED;
	case TP_END_CANCELLED:
		return TP_EXIT_INTERRUPTED;
	case TP_END_INTERNAL:
		break;
	}
	return TP_EXIT_INTERNAL;
}
