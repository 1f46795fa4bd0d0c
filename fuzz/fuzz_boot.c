/* libFuzzer target: the boot payload decoder on arbitrary bytes. It must refuse or
 * accept without crashing or reading outside them, and whatever it accepts the
 * encoder must write back as an equal boot of the same size. */
#include "src/channel/channel.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool same_list(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static bool same_boot(const struct tp_boot *a, const struct tp_boot *b)
{
	return a->filter_size == b->filter_size &&
	       memcmp(a->filter, b->filter, a->filter_size) == 0 &&
	       strcmp(a->entry, b->entry) == 0 &&
	       same_list(a->argv, a->argv_count, b->argv, b->argv_count) &&
	       same_list(a->path, a->path_count, b->path, b->path_count) &&
	       same_list(a->preload, a->preload_count, b->preload, b->preload_count) &&
	       a->data_count == b->data_count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_boot boot, again;
	uint8_t *bytes = NULL, *bytes_again = NULL;
	size_t bytes_size = 0, again_size = 0;
	int r;

	r = tp_boot_decode(data, size, &boot);
	if (r == -EBADMSG || r == -EPROTO || r == -ENOMEM) {
		if (boot.owned || boot.entry)
			abort(); /* a refusal leaves nothing behind */
		return 0;
	}
	if (r != 0)
		abort();
	if (boot.filter_size == 0 || boot.filter_size % TP_BOOT_FILTER_INSN_SIZE ||
	    (uintptr_t)boot.filter % 8 || boot.data_count > UINT32_MAX)
		abort();

	/* the same fields, re-encoded in the encoder's order: the same size */
	if (tp_boot_encode(&boot, &bytes, &bytes_size) != 0 || bytes_size != size)
		abort();
	if (tp_boot_decode(bytes, bytes_size, &again) != 0 || !same_boot(&boot, &again))
		abort();
	/* and the encoder's order is a fixed point */
	if (tp_boot_encode(&again, &bytes_again, &again_size) != 0 || again_size != bytes_size ||
	    memcmp(bytes, bytes_again, bytes_size) != 0)
		abort();

	free(bytes_again);
	free(bytes);
	tp_boot_free(&again);
	tp_boot_free(&boot);
	return 0;
}
