/* What fuzz_tdx.c and fuzz_snp.c ask of both evidence parsers (src/attest/). */
#ifndef TEEPY_FUZZ_EVIDENCE_H
#define TEEPY_FUZZ_EVIDENCE_H

#include "src/attest/attest.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An exact-size heap copy of the input, so ASan sees any read past its end. */
static inline uint8_t *exact_copy(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		abort();
	memcpy(copy, data, size);
	return copy;
}

/* A refusal is one of the two errors attest.h documents, with a reason. */
static inline void refused_as_documented(int r, const char *err)
{
	if ((r != -EINVAL && r != -EPROTONOSUPPORT) || !err[0])
		abort();
}

/* An accepted quote's or report's fields render as JSON (and are freed). */
static inline void renders(json_t *json)
{
	char *text = json_dumps(json, 0);

	if (!text)
		abort();
	free(text);
	json_decref(json);
}

#endif
