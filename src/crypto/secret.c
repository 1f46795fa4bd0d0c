/* Secrets in memory (locked, kept out of core dumps, wiped when freed), random bytes
 * from the kernel, and teepy's symmetric key files. No OpenSSL here. */
#include "crypto.h"

#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- locked memory ----
 *
 * Keys, derived keys and the states that hold them (an AES context, an HMAC's
 * pads) are small and many: one locked arena of 256-byte slots holds them, so a
 * key costs no mmap, mlock and munmap of its own (a page fault alone is ~10 us on
 * the machines here). Larger secrets, or more than the arena holds, get pages of
 * their own, locked and marked the same way. */

#define SLOT_SIZE  256u
#define SLOT_COUNT 256u
#define ARENA_SIZE (SLOT_SIZE * SLOT_COUNT)

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *arena;
static bool arena_used[SLOT_COUNT];

/* Pages for secrets: out of any core dump, and locked where the limit allows
 * (RLIMIT_MEMLOCK: 8 MiB for a user on Debian; a refusal leaves them pageable). */
static void *secret_pages(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_DONTDUMP);
	mlock(p, size);
	return p;
}

static size_t page_round(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (size + page - 1) / page * page;
}

void *tp_secret_alloc(size_t size)
{
	void *p = NULL;

	if (size == 0)
		size = 1;
	if (size <= SLOT_SIZE) {
		pthread_mutex_lock(&arena_lock);
		if (!arena)
			arena = secret_pages(ARENA_SIZE);
		for (size_t i = 0; arena && i < SLOT_COUNT; i++) {
			if (!arena_used[i]) {
				arena_used[i] = true;
				p = arena + i * SLOT_SIZE;
				break;
			}
		}
		pthread_mutex_unlock(&arena_lock);
		if (p) {
			memset(p, 0, size);
			return p;
		}
	}
	return secret_pages(page_round(size)); /* zeroed by the kernel */
}

void tp_secret_free(void *p, size_t size)
{
	if (!p)
		return;
	if (size == 0)
		size = 1;
	explicit_bzero(p, size);
	if (arena && (uint8_t *)p >= arena && (uint8_t *)p < arena + ARENA_SIZE) {
		pthread_mutex_lock(&arena_lock);
		arena_used[((uint8_t *)p - arena) / SLOT_SIZE] = false;
		pthread_mutex_unlock(&arena_lock);
		return;
	}
	munlock(p, page_round(size));
	munmap(p, page_round(size));
}

void tp_free_wiped(void *p)
{
	if (!p)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

int tp_secret_no_core(bool undumpable)
{
	const struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &none) < 0)
		return -errno;
	/* a core_pattern that pipes to a handler ignores RLIMIT_CORE; not dumpable, no
	 * core is made at all, and no process of our uid reads /proc/PID/mem or fd/ */
	if (undumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int tp_random(void *buf, size_t size)
{
	uint8_t *p = buf;

	while (size) {
		ssize_t n = getrandom(p, size, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

/* ---- symmetric key files ----
 *
 *   -----BEGIN TEEPY SYMMETRIC KEY-----
 *   64 hex digits
 *   -----END TEEPY SYMMETRIC KEY-----
 *
 * A text file like the signing keys, so that it is recognised (build never bundles
 * it, see is_private_key's kin in cli/build.c) and survives copy and paste. */

#define SYMKEY_BEGIN "-----BEGIN TEEPY SYMMETRIC KEY-----"
#define SYMKEY_END   "-----END TEEPY SYMMETRIC KEY-----"

/* The line at *pos (its end: \n, \r\n or the text's end) into *line and *len;
 * *pos moves past it. Returns false at the text's end. */
static bool next_line(const char *text, size_t size, size_t *pos, const char **line, size_t *len)
{
	if (*pos >= size)
		return false;
	const char *start = text + *pos;
	const char *nl = memchr(start, '\n', size - *pos);
	size_t n = nl ? (size_t)(nl - start) : size - *pos;

	*pos += n + (nl ? 1 : 0);
	if (n && start[n - 1] == '\r')
		n--;
	*line = start;
	*len = n;
	return true;
}

static bool line_is(const char *line, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(line, want, len) == 0;
}

bool tp_symkey_looks_like(const char *text, size_t size)
{
	size_t pos = 0, len;
	const char *line;

	while (next_line(text, size, &pos, &line, &len))
		if (len)
			return line_is(line, len, SYMKEY_BEGIN);
	return false;
}

int tp_symkey_parse(const char *text, size_t size, uint8_t out[TP_SYMKEY_SIZE])
{
	char hex[2 * TP_SYMKEY_SIZE + 1];
	size_t pos = 0, len;
	const char *line;
	int r;

	if (!next_line(text, size, &pos, &line, &len) || !line_is(line, len, SYMKEY_BEGIN) ||
	    !next_line(text, size, &pos, &line, &len) || len != 2 * TP_SYMKEY_SIZE) {
		explicit_bzero(out, TP_SYMKEY_SIZE);
		return -EINVAL;
	}
	memcpy(hex, line, len);
	hex[len] = '\0';
	if (!next_line(text, size, &pos, &line, &len) || !line_is(line, len, SYMKEY_END))
		r = -EINVAL;
	else
		r = tp_unhex(hex, out, TP_SYMKEY_SIZE);
	/* nothing after the end line but blank lines */
	while (r == 0 && next_line(text, size, &pos, &line, &len))
		if (len)
			r = -EINVAL;
	explicit_bzero(hex, sizeof(hex));
	if (r < 0)
		explicit_bzero(out, TP_SYMKEY_SIZE);
	return r;
}

int tp_symkey_generate(const char *path)
{
	/* the text and the key in locked memory: nothing of either is left behind */
	size_t text_size = sizeof(SYMKEY_BEGIN "\n\n" SYMKEY_END "\n") + 2 * TP_SYMKEY_SIZE;
	uint8_t *key = tp_secret_alloc(TP_SYMKEY_SIZE);
	char *text = tp_secret_alloc(text_size);
	int fd = -1, r;

	if (!key || !text) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = tp_random(key, TP_SYMKEY_SIZE)) < 0)
		goto out;
	memcpy(text, SYMKEY_BEGIN "\n", sizeof(SYMKEY_BEGIN));
	tp_hex(key, TP_SYMKEY_SIZE, text + sizeof(SYMKEY_BEGIN));
	snprintf(text + sizeof(SYMKEY_BEGIN) + 2 * TP_SYMKEY_SIZE,
		 text_size - sizeof(SYMKEY_BEGIN) - 2 * TP_SYMKEY_SIZE, "\n%s\n", SYMKEY_END);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = tp_write_full(fd, text, strlen(text))) == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlink(path); /* no half-written key stays behind */
out:
	tp_secret_free(key, TP_SYMKEY_SIZE);
	tp_secret_free(text, text_size);
	return r;
}

int tp_symkey_read(const char *path, uint8_t out[TP_SYMKEY_SIZE], char *err, size_t err_size)
{
	/* a key file is 135 bytes; what is larger is no key of ours */
	enum { MAX = 4096 };
	char *text = tp_secret_alloc(MAX);
	struct stat st;
	ssize_t n = 0;
	size_t size = 0;
	int fd = -1, r = 0;

	if (!text)
		return -ENOMEM;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, err_size, "%s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, err_size, "not a regular file");
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EPERM;
		snprintf(err, err_size,
			 "other users may read it (mode %03o): chmod 600 %s, and make a new key if "
			 "they did",
			 (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	while (size < MAX && (n = read(fd, text + size, MAX - size)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, err_size, "%s", strerror(-r));
			goto out;
		}
		size += (size_t)n;
	}
	if (size == MAX || tp_symkey_parse(text, size, out) < 0) {
		r = -EINVAL;
		snprintf(err, err_size,
			 "not a teepy symmetric key (make one with teepy keygen --symmetric)");
	}
out:
	if (fd >= 0)
		close(fd);
	tp_secret_free(text, MAX);
	return r;
}

bool tp_same_bytes(const void *a, const void *b, size_t size)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < size; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
