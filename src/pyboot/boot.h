/* The whole of what runs in Python before the service: import the runtime from its
 * own directory and hand over. Part of the runtime measurement. */
#ifndef TEEPY_PYBOOT_BOOT_H
#define TEEPY_PYBOOT_BOOT_H

#include "protocol.h"

#define TP_BOOT_TEXT                                                                   \
	"import sys;sys.path[:0]=['" TP_RUNTIME_DIR "'];import _teepy;raise SystemExit(" \
	"_teepy.boot())"

#endif
