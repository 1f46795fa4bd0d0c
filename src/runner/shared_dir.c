/* Which script directories are not the script's own: pure, unit-tested. */
#include "runner.h"

#include <string.h>

const char *tp_run_shared_dir(const char *dir, const char *home)
{
	static const char *const shared[] = { "/tmp", "/var/tmp", "/dev/shm" };
	static const char *const homes[] = { "/root", "/home" };

	if (strcmp(dir, "/") == 0)
		return "the host's root";
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (strcmp(dir, shared[i]) == 0)
			return "shared by every user";
	for (size_t i = 0; i < sizeof(homes) / sizeof(homes[0]); i++)
		if (strcmp(dir, homes[i]) == 0)
			return "a home directory";
	if (home && *home && strcmp(dir, home) == 0)
		return "a home directory";
	if (strncmp(dir, "/home/", 6) == 0 && dir[6] && !strchr(dir + 6, '/'))
		return "a home directory";
	return NULL;
}
