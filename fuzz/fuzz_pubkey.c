/* libFuzzer target: the Ed25519 public-key PEM reader (a --trust file may hold
 * anything). It must accept only the one SubjectPublicKeyInfo shape, read nothing
 * outside the input, and agree with itself on what it accepts. */
#include "src/crypto/crypto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[TP_ED25519_PUB_SIZE], again[TP_ED25519_PUB_SIZE];
	char *copy = malloc(size ? size : 1);

	/* an exact-size heap copy, not NUL-terminated, so ASan sees any read past the end */
	memcpy(copy, data, size);
	if (tp_ed25519_public_from_pem(copy, size, key) == 0 &&
	    (tp_ed25519_public_from_pem(copy, size, again) != 0 || memcmp(key, again, sizeof(key))))
		abort();
	free(copy);
	return 0;
}
