/* The whole of what runs in Python before the service: import the runtime from its
 * own directory and hand over. Part of the runtime measurement. */
#ifndef TEEPY_PYBOOT_BOOT_H
#define TEEPY_PYBOOT_BOOT_H

#include "../channel/protocol.h"

/* The interpreter's program loader (its PT_INTERP): the kernel opens it, so no
 * trace sees it, and Landlock must let it be executed. */
#if defined(__x86_64__)
#define TP_LOADER "/lib64/ld-linux-x86-64.so.2"
#elif defined(__aarch64__)
#define TP_LOADER "/lib/ld-linux-aarch64.so.1"
#else
#error "teepy knows the program loader of x86_64 and aarch64 only"
#endif

#define TP_BOOT_TEXT                                                                               \
	"import sys;sys.path[:0]=['" TP_RUNTIME_DIR "'];import _teepy;raise SystemExit("           \
	"_teepy.boot())"

#endif
