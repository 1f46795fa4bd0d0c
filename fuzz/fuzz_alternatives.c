/* libFuzzer target: the facts an unsealed run keeps about /etc/alternatives in the
 * cache directory (src/runner/alternatives.c). The directory is the invoking uid's,
 * but a file cut short or changed by hand must be refused or read, never read out
 * of bounds; and the parse must agree with itself. */
#include "src/runner/alternatives.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size heap copy, so ASan sees any read past the end */
	char *copy = malloc(size ? size : 1);
	int links;

	memcpy(copy, data, size);
	links = tp_alternatives_parse(copy, size);
	if (tp_alternatives_parse(copy, size) != links)
		abort();
	free(copy);
	return 0;
}
