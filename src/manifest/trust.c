/* The trusted signers, the verdict on a bundle's signer and signature, and the
 * signer and runtime measurements. */
#include "trust.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tp_signers_load(struct tp_signers *s, const char *const *paths, size_t count, size_t *failed,
		    char *err, size_t err_size)
{
	int r;

	s->keys = NULL;
	s->count = 0;
	if (count == 0)
		return 0;
	s->keys = calloc(count, sizeof(*s->keys));
	if (!s->keys) {
		*failed = count;
		snprintf(err, err_size, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		if ((r = tp_key_read_public(paths[i], s->keys[i], err, err_size)) < 0) {
			*failed = i;
			tp_signers_free(s);
			return r;
		}
	}
	s->count = count;
	return 0;
}

void tp_signers_free(struct tp_signers *s)
{
	free(s->keys);
	s->keys = NULL;
	s->count = 0;
}

bool tp_signers_has(const struct tp_signers *s, const uint8_t key[TP_BUNDLE_KEY_SIZE])
{
	for (size_t i = 0; i < s->count; i++)
		if (memcmp(s->keys[i], key, TP_BUNDLE_KEY_SIZE) == 0)
			return true;
	return false;
}

enum tp_trust_verdict tp_trust_judge(const struct tp_signers *trusted, bool any_signer,
				     const uint8_t pubkey[TP_BUNDLE_KEY_SIZE], bool signature_valid)
{
	if (trusted->count && !tp_signers_has(trusted, pubkey))
		return TP_TRUST_UNKNOWN_SIGNER;
	if (!trusted->count && !any_signer)
		return TP_TRUST_NO_SIGNER_GIVEN;
	if (!signature_valid)
		return TP_TRUST_BAD_SIGNATURE;
	return trusted->count ? TP_TRUST_OK : TP_TRUST_OK_ANY_SIGNER;
}

bool tp_trust_signature_valid(const struct tp_bundle *b)
{
	size_t msg_size;
	uint8_t *msg = tp_bundle_signed_message(b->manifest, b->header.manifest_size, &msg_size);
	struct tp_key *key = tp_key_from_raw_public(b->pubkey);
	bool valid = msg && key && tp_verify(key, msg, msg_size, b->signature) == 0;

	free(msg);
	tp_key_free(key);
	return valid;
}

void tp_trust_signer_measure(const uint8_t pubkey[TP_BUNDLE_KEY_SIZE], uint8_t out[32])
{
	tp_sha256(pubkey, TP_BUNDLE_KEY_SIZE, out);
}

static int hash_file(const char *path, struct tp_sha256 *ctx)
{
	char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		tp_sha256_update(ctx, buf, (size_t)n);
	close(fd);
	return n < 0 ? -errno : 0;
}

int tp_runtime_measure(const char *runtime_so, const char *reaper, const char *boot_text,
		       uint8_t out[32])
{
	static const char tag[] = "teepy-runtime-v2";
	struct tp_sha256 *ctx = tp_sha256_new();
	int r;

	if (!ctx)
		return -ENOMEM;
	tp_sha256_update(ctx, tag, sizeof(tag));
	r = hash_file("/proc/self/exe", ctx);
	if (r == 0)
		r = hash_file(runtime_so, ctx);
	if (r == 0)
		r = hash_file(reaper, ctx);
	tp_sha256_update(ctx, boot_text, strlen(boot_text) + 1); /* with its NUL, as v1 was */
	tp_sha256_final(ctx, out);
	return r;
}

int tp_find_beside(const char *name, char *out, size_t size)
{
	char exe[PATH_MAX];
	char beside[PATH_MAX + 64], installed[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *candidates[2];

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	snprintf(beside, sizeof(beside), "%s/%s", dirname(exe), name);
	snprintf(installed, sizeof(installed), "%s/%s", TP_RUNTIME_INSTALL_DIR, name);
	candidates[0] = beside;
	candidates[1] = installed;
	for (size_t i = 0; i < 2; i++) {
		if (access(candidates[i], R_OK) == 0) {
			snprintf(out, size, "%s", candidates[i]);
			return 0;
		}
	}
	return -ENOENT;
}

int tp_find_runtime(char *out, size_t size)
{
	return tp_find_beside("_teepy" TP_PYTHON_EXT_SUFFIX, out, size);
}

int tp_find_engine_runtime(const struct tp_engine_build *engine, char *out, size_t size)
{
	char name[128];

	snprintf(name, sizeof(name), "_teepy%s", engine->ext_suffix);
	return tp_find_beside(name, out, size);
}

int tp_find_reaper(char *out, size_t size)
{
	return tp_find_beside(TP_REAPER_PROGRAM, out, size);
}
