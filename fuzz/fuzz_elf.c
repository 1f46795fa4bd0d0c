/* libFuzzer target: the ELF dependency reader on arbitrary bytes (an included file
 * may be anything). It must refuse or accept without reading outside the input. */
#include "src/trace/elf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_elf_deps d;
	uint8_t *copy = malloc(size ? size : 1);

	/* an exact-size heap copy, so ASan sees any read past the end */
	memcpy(copy, data, size);
	if (tp_elf_deps(copy, size, &d) == 0) {
		for (size_t i = 0; i < d.count; i++)
			if (!d.needed[i] || !d.needed[i][0])
				abort();
	}
	tp_elf_deps_free(&d);
	free(copy);
	return 0;
}
