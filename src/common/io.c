/* Whole reads and writes: the control channel, the input file and the kernel's
 * control files use these. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

bool tp_dir_is_empty(int dir_fd)
{
	DIR *d = tp_dir_open(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;
	bool empty = d != NULL;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = false;
			break;
		}
	if (d)
		closedir(d);
	return empty;
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

int tp_send_fds(int sock, const void *bytes, size_t size, const int *fds, size_t count, int flags)
{
	union {
		char buf[CMSG_SPACE(TP_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)bytes, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = CMSG_SPACE(count * sizeof(int)) };
	struct cmsghdr *c;
	ssize_t sent;

	if (count == 0 || count > TP_FDS_MAX)
		return -EINVAL;
	memset(u.buf, 0, sizeof(u.buf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(count * sizeof(int));
	memcpy(CMSG_DATA(c), fds, count * sizeof(int));
	do
		sent = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	return (size_t)sent == size ? 0 : -EMSGSIZE;
}

ssize_t tp_recv_fds(int sock, void *bytes, size_t size, int *fds, size_t count, int flags)
{
	union {
		char buf[CMSG_SPACE(TP_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = bytes, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = CMSG_SPACE(count * sizeof(int)) };
	struct cmsghdr *c;
	ssize_t got;

	for (size_t i = 0; i < count; i++)
		fds[i] = -1;
	if (count == 0 || count > TP_FDS_MAX)
		return -EINVAL;
	got = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	if (got < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)(void *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			if (i < count && fds[i] < 0)
				fds[i] = in[i];
			else
				close(in[i]); /* more than asked for: none kept */
		}
	}
	/* fewer than asked for: none kept, the message is the caller's to refuse */
	for (size_t i = 0; i < count; i++)
		if (fds[i] < 0) {
			for (size_t k = 0; k < count; k++)
				if (fds[k] >= 0)
					close(fds[k]), fds[k] = -1;
			break;
		}
	return got;
}
