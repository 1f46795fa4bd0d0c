/* Whole reads and writes on file descriptors, retried on EINTR. */
#ifndef TEEPY_COMMON_IO_H
#define TEEPY_COMMON_IO_H

#include <stddef.h>

/* Reads exactly size bytes. Returns 0, -EPIPE at end of file, or -errno. */
int tp_read_full(int fd, void *buf, size_t size);

/* Writes exactly size bytes. Returns 0 or -errno. */
int tp_write_full(int fd, const void *buf, size_t size);

/* Opens an existing file for writing and writes text to it whole (procfs and
 * cgroup control files). Returns 0 or -errno. */
int tp_write_text(const char *path, const char *text);

/* Reads to end of file into a malloc'd buffer (NUL-terminated, not counted in size).
 * Returns 0, -EFBIG as soon as more than max bytes came, or -errno. */
int tp_read_all(int fd, size_t max, char **out, size_t *out_size);

#endif
