/* libFuzzer target: the CAS's policy parser and validator (src/cas/policy.c) on
 * arbitrary bytes, as an owner's create or update sends them. A document it accepts
 * must come back the same from its canonical JSON (same hash: the hash is what an
 * update's predecessor names), and its redacted copy must hold no secret's value.
 * Seeds: fuzz/corpus/policy. */
#include "src/cas/cas.h"
#include "src/crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "", h1[TP_CAS_HASH_HEX], h2[TP_CAS_HASH_HEX];
	json_t *doc = tp_cas_policy_parse((const char *)data, size, err, sizeof(err)), *again, *v;
	const char *key;
	size_t csize;
	char *c;

	if (!doc) {
		if (!err[0])
			abort();
		return 0;
	}
	if (!(c = tp_cas_canonical(doc, &csize)))
		abort();
	if (!(again = tp_cas_policy_parse(c, csize, err, sizeof(err))))
		abort();
	static const uint8_t hkey[TP_CAS_HASH_KEY_SIZE], salt[TP_CAS_HASH_SALT_SIZE];
	if (tp_cas_policy_hash(doc, hkey, salt, h1) < 0 ||
	    tp_cas_policy_hash(again, hkey, salt, h2) < 0 || strcmp(h1, h2) != 0)
		abort();
	json_t *red = tp_cas_policy_redact(doc);
	json_object_foreach(json_object_get(red, "secrets"), key, v)
	{
		if (json_object_get(v, "value") || !json_object_get(v, "sha256"))
			abort();
	}
	json_decref(red);
	json_decref(again);
	json_decref(doc);
	free(c);
	return 0;
}
