/* Sealed data items opened for a run: the plaintext into a memfd that the channel
 * serves as it serves a plain data file. */
#include "runner.h"

#include "../common/io.h"
#include "../pfs/pfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

bool tp_data_is_sealed(int fd)
{
	char magic[sizeof(TP_PFS_MAGIC) - 1];
	return pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       memcmp(magic, TP_PFS_MAGIC, sizeof(magic)) == 0;
}

int tp_data_unseal(int fd, uint64_t size, const uint8_t key[32], char *err, size_t err_size)
{
	struct tp_pfs_reader *rd = NULL;
	int r;

	r = tp_pfs_reader_open(key, TP_PFS_DATA, tp_pread_fd, &fd, size, &rd, err, err_size);
	if (r < 0)
		return r;
	r = tp_pfs_unseal_memfd(rd, err, err_size);
	tp_pfs_reader_free(rd);
	return r;
}

int tp_pfs_unseal_memfd(struct tp_pfs_reader *rd, char *err, size_t err_size)
{
	int memfd, r;

	memfd = memfd_create("teepy-plain", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0) {
		r = -errno;
		snprintf(err, err_size, "cannot hold its plaintext: %s", strerror(-r));
		return r;
	}
	/* the size first: one allocation, and ENOSPC now rather than midway */
	r = ftruncate(memfd, (off_t)tp_pfs_reader_header(rd)->size) < 0 ? -errno : 0;
	if (r < 0)
		snprintf(err, err_size, "cannot hold its plaintext: %s", strerror(-r));
	else
		r = tp_pfs_open_all(rd, tp_write_fd, &memfd, err, err_size);
	if (r == 0 && (lseek(memfd, 0, SEEK_SET) < 0 ||
		       fcntl(memfd, F_ADD_SEALS,
			     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)) {
		r = -errno;
		snprintf(err, err_size, "cannot seal its plaintext: %s", strerror(-r));
	}
	if (r < 0) {
		close(memfd);
		return r;
	}
	return memfd;
}
