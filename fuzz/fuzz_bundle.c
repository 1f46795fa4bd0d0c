/* libFuzzer target: the head of a bundle (header, manifest, key, signature) as
 * stored on hostile storage. Parsing must refuse or accept without crashing, and
 * whatever it accepts must lie inside the bytes given. */
#include "src/manifest/bundle.h"
#include "src/manifest/manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_bundle b;
	struct tp_manifest m;
	char err[512];

	/* the file size is the input's size, or claims more (a truncated read) */
	for (uint64_t extra = 0; extra < 2; extra++) {
		if (tp_bundle_parse(data, size, size + extra * 4096, &b, err, sizeof(err)) < 0)
			continue;
		if ((const uint8_t *)b.manifest + b.header.manifest_size > data + size ||
		    b.signature + 64 > data + size)
			abort();
		if (tp_manifest_from_json(b.manifest, b.header.manifest_size, &m, err,
					  sizeof(err)) == 0) {
			tp_bundle_check_blobs(&b, &m, err, sizeof(err));
			tp_manifest_free(&m);
		}
	}
	/* the manifest parser on its own: what it accepts is canonical, so it encodes
	 * back to exactly the bytes given, and is judged runnable or not without a crash */
	if (tp_manifest_from_json((const char *)data, size, &m, err, sizeof(err)) == 0) {
		char *again;
		size_t again_size;
		if (tp_manifest_to_json(&m, &again, &again_size) != 0 || again_size != size ||
		    memcmp(again, data, size) != 0)
			abort();
		free(again);
		tp_manifest_check_runnable(&m, err, sizeof(err));
		tp_manifest_free(&m);
	}
	return 0;
}
