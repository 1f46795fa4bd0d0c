/* Whole reads and writes: the control channel, the input file and the kernel's
 * control files use these. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tp_read_full(int fd, void *buf, size_t size)
{
	char *p = buf;

	while (size) {
		ssize_t n = read(fd, p, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

DIR *tp_dir_open(int fd)
{
	DIR *d;

	if (fd < 0)
		return NULL;
	if (!(d = fdopendir(fd))) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

const char *tp_file_kind(mode_t mode)
{
	return S_ISREG(mode)  ? "a regular file" :
	       S_ISDIR(mode)  ? "a directory" :
	       S_ISLNK(mode)  ? "a symbolic link" :
	       S_ISFIFO(mode) ? "a FIFO" :
	       S_ISSOCK(mode) ? "a socket" :
	       S_ISCHR(mode)  ? "a character device" :
	       S_ISBLK(mode)  ? "a block device" :
				"a special file";
}

int tp_copy_fd(int from, int to)
{
	char buf[1 << 16];
	ssize_t n;
	int r = 0;

	while (r == 0 && (n = read(from, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		r = n < 0 ? -errno : tp_write_full(to, buf, (size_t)n);
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}

int tp_write_full(int fd, const void *buf, size_t size)
{
	const char *p = buf;

	while (size) {
		ssize_t n = write(fd, p, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

int tp_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = tp_write_full(fd, text, strlen(text));
	close(fd);
	return r;
}

int tp_read_all(int fd, size_t max, char **out, size_t *out_size)
{
	size_t size = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;
		if (size + 1 >= cap) {
			char *bigger = realloc(buf, cap *= 2);
			if (!bigger) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
		}
		n = read(fd, buf + size, cap - size - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;
			free(buf);
			return r;
		}
		if (n == 0)
			break;
		size += (size_t)n;
		if (size > max) {
			free(buf);
			return -EFBIG;
		}
	}
	buf[size] = '\0';
	*out = buf;
	*out_size = size;
	return 0;
}

int tp_pread_full(int fd, void *buf, size_t size, uint64_t offset)
{
	uint8_t *p = buf;

	while (size) {
		ssize_t n = pread(fd, p, size, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		size -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

int tp_pread_fd(void *ctx, uint64_t offset, void *buf, size_t size)
{
	return tp_pread_full(*(const int *)ctx, buf, size, offset);
}

int tp_write_fd(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	(void)offset; /* the caller writes in order */
	return tp_write_full(*(const int *)ctx, buf, size);
}
