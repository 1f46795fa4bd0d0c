/* Bundles on disk. The manifest is copied into private memory before it
 * is verified, so a bundle changed under us cannot show one manifest to the
 * signature check and another to the parser. */
#include "bundle_file.h"

#include "trust.h"

#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool tp_is_bundle(const char *path)
{
	char magic[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool yes;

	if (fd < 0)
		return false;
	yes = pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	      memcmp(magic, TP_BUNDLE_MAGIC, sizeof(magic)) == 0;
	close(fd);
	return yes;
}

int tp_bundle_file_read(const char *path, struct tp_bundle_file *bf, char *err, size_t err_size)
{
	uint8_t header[TP_BUNDLE_HEADER_SIZE];
	struct tp_bundle_header h;
	struct stat st;
	size_t head_size;
	int r;

	memset(bf, 0, sizeof(*bf));
	bf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (bf->fd < 0) {
		snprintf(err, err_size, "%s", strerror(errno));
		return -errno;
	}
	if (fstat(bf->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_size, "not a regular file");
		r = -EINVAL;
		goto fail;
	}
	bf->file_size = (uint64_t)st.st_size;
	if (pread(bf->fd, header, sizeof(header), 0) != (ssize_t)sizeof(header)) {
		snprintf(err, err_size, "bundle is cut short: no complete header");
		r = -EINVAL;
		goto fail;
	}
	if ((r = tp_bundle_parse_header(header, sizeof(header), bf->file_size, &h, err, err_size)) <
	    0)
		goto fail;
	head_size =
	    TP_BUNDLE_HEADER_SIZE + h.manifest_size + TP_BUNDLE_KEY_SIZE + TP_BUNDLE_SIG_SIZE;
	bf->head = malloc(head_size);
	if (!bf->head) {
		r = -ENOMEM;
		goto fail;
	}
	if (pread(bf->fd, bf->head, head_size, 0) != (ssize_t)head_size) {
		snprintf(err, err_size, "bundle is cut short");
		r = -EINVAL;
		goto fail;
	}
	/* parse our copy: the header read again must agree with the first read */
	if ((r = tp_bundle_parse(bf->head, head_size, bf->file_size, &bf->bundle, err, err_size)) <
	    0)
		goto fail;
	if (bf->bundle.header.manifest_size != h.manifest_size) {
		snprintf(err, err_size, "bundle changed while it was read");
		r = -EINVAL;
		goto fail;
	}

	return 0;
fail:
	tp_bundle_file_close(bf);
	return r;
}

void tp_bundle_file_verify(struct tp_bundle_file *bf)
{
	tp_trust_signer_measure(bf->bundle.pubkey, bf->signer);
	bf->signature_ok = tp_trust_signature_valid(&bf->bundle);
	tp_manifest_measure(bf->bundle.manifest, bf->bundle.header.manifest_size, bf->app);
}

int tp_bundle_file_open(const char *path, struct tp_bundle_file *bf, char *err, size_t err_size)
{
	int r = tp_bundle_file_read(path, bf, err, err_size);

	/* the signature is checked before the manifest is trusted for anything */
	if (r == 0)
		tp_bundle_file_verify(bf);
	return r;
}

int tp_bundle_file_parse(struct tp_bundle_file *bf, bool known, char *err, size_t err_size)
{
	int r = (known ? tp_manifest_from_known_json : tp_manifest_from_json)(
	    bf->bundle.manifest, bf->bundle.header.manifest_size, &bf->manifest, err, err_size);

	if (r < 0)
		return r;
	if ((r = tp_bundle_check_blobs(&bf->bundle, &bf->manifest, err, err_size)) < 0)
		return r;
	return tp_manifest_check_runnable(&bf->manifest, err, err_size);
}

void tp_bundle_file_close(struct tp_bundle_file *bf)
{
	if (bf->fd > 0)
		close(bf->fd);
	free(bf->head);
	tp_manifest_free(&bf->manifest);
	memset(bf, 0, sizeof(*bf));
	bf->fd = -1;
}

int tp_bundle_write(const char *path, const char *json, size_t json_size, const struct tp_key *key,
		    const struct tp_manifest *m, void *const *blobs)
{
	struct tp_bundle_header h = { .version = TP_BUNDLE_VERSION,
				      .manifest_size = (uint32_t)json_size,
				      .blob_size = tp_manifest_blob_size(m) };
	uint8_t header[TP_BUNDLE_HEADER_SIZE], pub[TP_BUNDLE_KEY_SIZE], sig[TP_BUNDLE_SIG_SIZE];
	char tmp[PATH_MAX];
	size_t msg_size;
	uint8_t *msg;
	int fd, r;

	if (json_size == 0 || json_size > TP_BUNDLE_MAX_MANIFEST)
		return -EFBIG;
	msg = tp_bundle_signed_message(json, json_size, &msg_size);
	if (!msg || tp_sign(key, msg, msg_size, sig) < 0) {
		free(msg);
		return -EIO;
	}
	free(msg);
	tp_key_public_raw(key, pub);
	tp_bundle_encode_header(&h, header);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.teepy-XXXXXX", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = tp_write_full(fd, header, sizeof(header));
	r = r ?: tp_write_full(fd, json, json_size);
	r = r ?: tp_write_full(fd, pub, sizeof(pub));
	r = r ?: tp_write_full(fd, sig, sizeof(sig));
	for (size_t i = 0; r == 0 && i < m->file_count; i++)
		if (m->files[i].bundled)
			r = tp_write_full(fd, blobs[i], m->files[i].size);
	mode_t mask = umask(0);
	umask(mask);
	if (r == 0 && (fchmod(fd, 0666 & ~mask) < 0 || fsync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
