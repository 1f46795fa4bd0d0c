/* Whole reads and writes on file descriptors, retried on EINTR. */
#ifndef TEEPY_COMMON_IO_H
#define TEEPY_COMMON_IO_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads exactly size bytes. Returns 0, -EPIPE at end of file, or -errno. */
int tp_read_full(int fd, void *buf, size_t size);

/* Reads exactly size bytes at offset (pread). Returns 0, -ENODATA when the file
 * ends before them, or -errno. */
int tp_pread_full(int fd, void *buf, size_t size, uint64_t offset);

/* The same as a protected-file read callback (pfs/pfs.h): ctx points to the fd. */
int tp_pread_fd(void *ctx, uint64_t offset, void *buf, size_t size);
/* Writes in order to the fd ctx points to, as a protected-file write callback. */
int tp_write_fd(void *ctx, uint64_t offset, const void *buf, size_t size);

/* The rest of from (read to its end) written to to, the buffer wiped after (it may
 * have held plaintext). Returns 0 or -errno. */
int tp_copy_fd(int from, int to);

/* What a file of this mode is, with its article, for messages: "a FIFO", "a
 * symbolic link", "a directory" ... */
const char *tp_file_kind(mode_t mode);

/* The directory fd opened to read with readdir (closedir closes fd), or NULL with
 * errno set, fd closed: fd may be a failed open's -1, whose errno stays. */
DIR *tp_dir_open(int fd);

/* Whether the directory dir_fd holds nothing but . and .. (false when it cannot be
 * read). */
bool tp_dir_is_empty(int dir_fd);

/* Writes exactly size bytes. Returns 0 or -errno. */
int tp_write_full(int fd, const void *buf, size_t size);

/* Opens an existing file for writing and writes text to it whole (procfs and
 * cgroup control files). Returns 0 or -errno. */
int tp_write_text(const char *path, const char *text);

/* Reads to end of file into a malloc'd buffer (NUL-terminated, not counted in size).
 * Returns 0, -EFBIG as soon as more than max bytes came, or -errno. */
int tp_read_all(int fd, size_t max, char **out, size_t *out_size);

/* Descriptors passed with a message over a unix socket (SCM_RIGHTS), at most: */
#define TP_FDS_MAX 6

/* Sends size bytes with count descriptors (1 to TP_FDS_MAX) in one message (sendmsg
 * flags, MSG_NOSIGNAL added). Returns 0, -EMSGSIZE for a message sent in part, or
 * -errno (-EAGAIN with MSG_DONTWAIT on a full socket). */
int tp_send_fds(int sock, const void *bytes, size_t size, const int *fds, size_t count, int flags);

/* Receives one message of up to size bytes (recvmsg flags, MSG_CMSG_CLOEXEC added)
 * with exactly count descriptors into fds (close-on-exec): the bytes' count, or
 * -errno. A message with fewer descriptors leaves fds all -1, one with more keeps
 * none of the extra (each closed). */
ssize_t tp_recv_fds(int sock, void *bytes, size_t size, int *fds, size_t count, int flags);

#endif
