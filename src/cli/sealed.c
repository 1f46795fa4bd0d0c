/* The sealed root's content, verified: the only files a bundle's service can see. */
#include "sealed.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct job {
	const struct tp_bundle_file *bf;
	struct tp_sealed *out;
	atomic_size_t next;   /* next file to take: the threads share the list */
	atomic_int failed;
	pthread_mutex_t err_lock;
	char *err;
	size_t err_size;
};

static int read_exact(int fd, void *buf, uint64_t size, uint64_t offset)
{
	char *p = buf;

	while (size) {
		ssize_t n = pread(fd, p, size > (1U << 30) ? (1U << 30) : (size_t)size, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		size -= (uint64_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

static void report(struct job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct job *job, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&job->err_lock);
	if (atomic_fetch_add(&job->failed, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(job->err, job->err_size, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&job->err_lock);
}

static int load_one(struct job *job, size_t i)
{
	const struct tp_manifest_file *f = &job->bf->manifest.files[i];
	uint8_t digest[32];
	char want[65], got[65];
	struct stat st;
	void *buf;
	int fd, r;

	buf = malloc(f->size ? f->size : 1);
	if (!buf) {
		report(job, "file %s: out of memory for %llu bytes", f->path, (unsigned long long)f->size);
		return -ENOMEM;
	}
	if (f->bundled) {
		r = read_exact(job->bf->fd, buf, f->size, job->bf->bundle.blob_offset + f->offset);
		if (r < 0) {
			report(job, "file %s: cannot read it from the bundle: %s", f->path, strerror(-r));
			free(buf);
			return r;
		}
	} else {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			report(job, "file %s: missing on this host: %s (the manifest expects sha256 %.16s…)",
			       f->path, strerror(errno), (tp_hex(f->sha256, 32, want), want));
			free(buf);
			return r;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
			report(job, "file %s: size is %lld bytes, the manifest says %llu (changed on this host)",
			       f->path, (long long)st.st_size, (unsigned long long)f->size);
			close(fd);
			free(buf);
			return -EBADMSG;
		}
		r = read_exact(fd, buf, f->size, 0);
		close(fd);
		if (r < 0) {
			report(job, "file %s: %s", f->path, r == -ENODATA ? "shrank while read" : strerror(-r));
			free(buf);
			return r;
		}
	}
	tp_sha256(buf, f->size, digest);
	if (memcmp(digest, f->sha256, 32) != 0) {
		tp_hex(f->sha256, 32, want);
		tp_hex(digest, 32, got);
		report(job, "file %s: sha256 is %s, the manifest says %s (changed since it was signed)",
		       f->path, got, want);
		free(buf);
		return -EBADMSG;
	}
	job->out->contents[i] = buf;
	return 0;
}

static void *worker(void *arg)
{
	struct job *job = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&job->next, 1);
		if (i >= job->bf->manifest.file_count || atomic_load(&job->failed))
			break;
		load_one(job, i);
	}
	return NULL;
}

int tp_sealed_load(const struct tp_bundle_file *bf, struct tp_sealed *out, char *err,
		   size_t err_size)
{
	struct job job = { .bf = bf, .out = out, .err = err, .err_size = err_size };
	struct timespec t0, t1;
	pthread_t helper;
	bool have_helper;

	memset(out, 0, sizeof(*out));
	out->count = bf->manifest.file_count;
	out->contents = calloc(out->count ? out->count : 1, sizeof(void *));
	if (!out->contents)
		return -ENOMEM;
	pthread_mutex_init(&job.err_lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* this thread and one more: hashing is CPU-bound and the machines have two cores */
	have_helper = pthread_create(&helper, NULL, worker, &job) == 0;
	worker(&job);
	if (have_helper)
		pthread_join(helper, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_destroy(&job.err_lock);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	for (size_t i = 0; i < out->count; i++)
		out->bytes += bf->manifest.files[i].size;
	if (atomic_load(&job.failed)) {
		tp_sealed_free(out);
		return -EBADMSG;
	}
	return 0;
}

int tp_sealed_plan(const struct tp_bundle_file *bf, const struct tp_sealed *sealed,
		   struct tp_root_plan *plan)
{
	for (size_t i = 0; i < sealed->count; i++) {
		const struct tp_manifest_file *f = &bf->manifest.files[i];
		int r = tp_root_plan_add_file(plan, f->path, sealed->contents[i], f->size, f->mode,
					  f->mtime);
		if (r < 0)
			return r;
	}
	return 0;
}

void tp_sealed_free(struct tp_sealed *s)
{
	for (size_t i = 0; s->contents && i < s->count; i++)
		free(s->contents[i]);
	free(s->contents);
	memset(s, 0, sizeof(*s));
}
