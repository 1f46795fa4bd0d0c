/* Parts of the manifest's canonical JSON for other JSON writers (inspect --json),
 * so that each part is written one way. */
#ifndef TEEPY_MANIFEST_MANIFEST_JSON_H
#define TEEPY_MANIFEST_MANIFEST_JSON_H

#include "manifest.h"

#include <jansson.h>

/* [{"kind": ..., "path": ...}, ...], or NULL out of memory. New reference. */
json_t *tp_manifest_trees_json(const struct tp_manifest *m);

/* {"algorithm", "chunk_size", "key_id"}, or JSON null without encryption. New reference. */
json_t *tp_manifest_encryption_json(const struct tp_manifest_encryption *e);

#endif
