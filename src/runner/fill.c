/* The sealed root's content, verified as it is written: the hash is computed over
 * each chunk on its way from the source into the root, so what the service will
 * read is exactly what was checked, whatever the source does meanwhile. */
#include "fill.h"

#include "../common/io.h"
#include "../crypto/crypto.h"
#include "../pfs/pfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256u << 10) /* stays in L2 between read, hash and write */

/* Each chunk is read with pread into a private buffer, hashed there and written
 * from there: the source (a host file, or the bundle) may change meanwhile, the
 * buffer cannot. Mapping the sources with MAP_POPULATE and copying from the map,
 * as before, cost more than the read: page-table work is dear in the VMs here
 * (hello's 17 files, 10.8 MB, 40 interleaved runs: 15.3 ms to fill before, 8.9 ms
 * with pread and the root on huge pages, root.c). */

/* A fill thread's buffers, kept from one file to the next: the chunk being copied,
 * and for encrypted files the run of sealed chunks read at once. Mapped already
 * populated: a page faulted in costs ~10 us in the VMs here, one populated with the
 * rest under 1 us. Held out of core dumps, wiped at the end (an encrypted file's
 * plaintext passes through it). */
struct scratch {
	char *buf; /* CHUNK bytes, or a larger encrypted chunk */
	size_t buf_size;
	uint8_t *sealed; /* a run of sealed chunks with their tags */
	size_t sealed_size;
};

static void *scratch_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_DONTDUMP);
	return p;
}

static void scratch_unmap(void *p, size_t size)
{
	if (p) {
		explicit_bzero(p, size);
		munmap(p, size);
	}
}

/* Makes room for size bytes in *p (of *have): mapped anew only when it grows. */
static int scratch_room(void **p, size_t *have, size_t size)
{
	void *q;

	if (*p && *have >= size)
		return 0;
	if (!(q = scratch_map(size)))
		return -ENOMEM;
	scratch_unmap(*p, *have);
	*p = q;
	*have = size;
	return 0;
}

struct job {
	const struct tp_manifest *m;
	const struct tp_file_source *bundled, *system;
	int root_fd;
	size_t *order;	      /* file indexes, largest first */
	atomic_size_t next;   /* the threads take files from the same list */
	atomic_int failed;    /* refusals reported, of files or not */
	atomic_int bad_files; /* files refused */
	atomic_bool internal; /* a failure of this host (memory, OpenSSL), not a file's */
	size_t err_index;     /* the manifest index of the file err names (SIZE_MAX: none) */
	pthread_mutex_t lock; /* err, err_index, cpu_seconds */
	bool (*stop)(void *);
	void *stop_ctx;
	char *err;
	size_t err_size;
	double cpu_seconds; /* of the threads that have finished, under lock */
};

/* The manifest index of the file this thread is on (SIZE_MAX: none). */
static __thread size_t current_file = SIZE_MAX;

/* A refusal. Every file is still checked, and the one named is the first in the
 * manifest's (path) order that failed, so the same bundle on the same host is
 * always refused with the same line, whichever thread found what first. */
static void report(struct job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct job *job, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&job->lock);
	atomic_fetch_add(&job->failed, 1);
	if (current_file < job->err_index || !job->err[0]) {
		job->err_index = current_file;
		va_start(ap, fmt);
		vsnprintf(job->err, job->err_size, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&job->lock);
}

/* Every directory the files need, each made once before the copying starts (a
 * mkdir per component of every file took 1,800 calls for numpy's 307 files, under
 * a lock both threads wanted). The manifest is sorted by path, so each file's
 * directory shares a prefix with the one before it: only what lies past it is
 * made. The root is a fresh tmpfs holding only what we create: no link to follow. */
static int make_dirs(const struct tp_manifest *m, int root_fd, char *err, size_t err_size)
{
	char prev[4096] = "", dir[4096];

	for (size_t i = 0; i < m->file_count; i++) {
		const char *path = m->files[i].path + 1; /* relative to the root */
		const char *slash = strrchr(path, '/');
		size_t len = slash ? (size_t)(slash - path) : 0, common = 0;

		if (len >= sizeof(dir)) {
			snprintf(err, err_size, "file /%s: its directory's name is too long", path);
			return -ENAMETOOLONG;
		}
		memcpy(dir, path, len);
		dir[len] = '\0';
		/* the longest whole-component prefix of dir that prev already made */
		size_t k = 0;
		for (; dir[k] && dir[k] == prev[k]; k++)
			if (dir[k] == '/')
				common = k;
		if (dir[k] == prev[k])
			continue; /* the same directory as the file before */
		if ((dir[k] == '/' || dir[k] == '\0') && (prev[k] == '/' || prev[k] == '\0'))
			common = k; /* one of the two lies inside the other */
		for (k = common + (common > 0); k <= len; k++) {
			if (dir[k] != '/' && dir[k] != '\0')
				continue;
			dir[k] = '\0';
			if (k > 0 && mkdirat(root_fd, dir, 0755) < 0 && errno != EEXIST) {
				int r = -errno;
				snprintf(err, err_size,
					 "file /%s: cannot make its directory /%s in the "
					 "sealed root: %s",
					 path, dir, strerror(-r));
				return r;
			}
			if (k < len)
				dir[k] = '/';
		}
		memcpy(prev, path, len);
		prev[len] = '\0';
	}
	return 0;
}

/* The refusals of a system file that is not what the manifest says, each naming the
 * file and what is wrong, never what the host's file holds: a refusal may travel to
 * a remote client (the worker), and a host file's actual size or hash would tell
 * it about the content. What the manifest expects is the signer's, and is said. */
#define CONTENT_DIFFERS                                                                            \
	"file %s: its content differs from what the manifest expects (changed since it was "       \
	"signed; the manifest expects sha256 %s)"

static void refuse_unreadable(const struct tp_manifest_file *f, const char *want, int err,
			      char *line, size_t size)
{
	if (err == ENOENT || err == ENOTDIR)
		snprintf(line, size,
			 "file %s: missing on this host (the manifest expects sha256 %s)", f->path,
			 want);
	else
		snprintf(
		    line, size,
		    "file %s: cannot be read on this host: %s (the manifest expects sha256 %s)",
		    f->path, strerror(err), want);
}

/* What fd is must be a regular file of the manifest's size. Returns 0, or -errno
 * (-EBADMSG for a refusal) with err said. */
static int check_file(const struct tp_manifest_file *f, const char *want, int fd, char *err,
		      size_t err_size)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		refuse_unreadable(f, want, -r, err, err_size);
		return r;
	}
	if (!S_ISREG(st.st_mode))
		snprintf(err, err_size,
			 "file %s: not a regular file on this host (%s; the manifest expects a "
			 "file with sha256 %s)",
			 f->path, tp_file_kind(st.st_mode), want);
	else if ((uint64_t)st.st_size != f->size)
		snprintf(err, err_size, CONTENT_DIFFERS, f->path, want);
	else
		return 0;
	return -EBADMSG;
}

/* ---- the sources ---- */

/* A system file whose path has a link on the way (/lib/<multiarch>/libc.so.6, a
 * file of Debian's alternatives): opened as a path only, then where it leads is
 * checked, and its type, before anything there is opened for reading (a device's
 * driver is never asked); then the same file is opened through /proc/self/fd, so
 * what is read is what was checked. Returns the fd, or -errno with err said. */
static int open_through_links(const struct tp_host_source_ctx *h, const struct tp_manifest_file *f,
			      const char *want, char *err, size_t err_size)
{
	char self[64], real[PATH_MAX];
	int at, fd = -1, r = 0;
	ssize_t n;

	if ((at = open(f->path, O_PATH | O_CLOEXEC)) < 0) {
		r = -errno;
		refuse_unreadable(f, want, -r, err, err_size);
		return r;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", at);
	if (h && h->may_take) {
		n = readlink(self, real, sizeof(real) - 1);
		if (n < 0 || (size_t)n >= sizeof(real) - 1) {
			r = n < 0 ? -errno : -ENAMETOOLONG;
			refuse_unreadable(f, want, -r, err, err_size);
			goto out;
		}
		real[n] = '\0';
		if (!h->may_take(h->may_take_ctx, real)) {
			/* where it leads is the host's business: not said */
			snprintf(err, err_size,
				 "file %s: leads out of the system trees and the allowed paths "
				 "through a link on this host (allow where it leads with --allow, "
				 "if you mean to)",
				 f->path);
			r = -EBADMSG;
			goto out;
		}
	}
	if ((r = check_file(f, want, at, err, err_size)) == 0 &&
	    (fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		r = -errno;
		refuse_unreadable(f, want, -r, err, err_size);
	}
out:
	close(at);
	return r < 0 ? r : fd;
}

/* Most system files have no link on their path, which is then where they are: one
 * openat2 (the path is one the plan let through, tp_plan_may_take). The others,
 * and a kernel without openat2, take the longer way above. */
static int host_open(void *ctx, const struct tp_manifest_file *f, struct tp_source_file *out,
		     char *err, size_t err_size)
{
	const struct tp_host_source_ctx *h = ctx;
	/* a FIFO or device planted at a system path must not block us */
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
				.resolve = RESOLVE_NO_SYMLINKS };
	char want[65];
	int fd, r;

	tp_hex(f->sha256, 32, want);
	if (h && h->may_take && !h->may_take(h->may_take_ctx, f->path)) {
		snprintf(err, err_size,
			 "file %s: lies outside the system trees and the allowed paths", f->path);
		return -EBADMSG;
	}
	fd = (int)syscall(SYS_openat2, AT_FDCWD, f->path, &how, sizeof(how));
	if (fd >= 0) {
		if ((r = check_file(f, want, fd, err, err_size)) < 0) {
			close(fd);
			return r;
		}
	} else if (errno == ELOOP || errno == ENOSYS) {
		if ((fd = open_through_links(h, f, want, err, err_size)) < 0)
			return fd;
	} else {
		r = -errno;
		refuse_unreadable(f, want, -r, err, err_size);
		return r;
	}
	*out = (struct tp_source_file){ .fd = fd, .base = 0, .owned = true };
	return 0;
}

static ssize_t fd_read(void *ctx, const struct tp_source_file *sf, void *buf, size_t size,
		       uint64_t offset)
{
	(void)ctx;
	return pread(sf->fd, buf, size, (off_t)(sf->base + offset));
}

static void fd_close(void *ctx, struct tp_source_file *sf)
{
	(void)ctx;
	if (sf->owned && sf->fd >= 0)
		close(sf->fd);
	sf->fd = -1;
}

struct tp_file_source tp_host_source(const struct tp_host_source_ctx *ctx)
{
	return (struct tp_file_source){ host_open, fd_read, fd_close, (void *)ctx, NULL };
}

static int blob_open(void *ctx, const struct tp_manifest_file *f, struct tp_source_file *out,
		     char *err, size_t err_size)
{
	const struct tp_blob_source_ctx *b = ctx;

	(void)err;
	(void)err_size;
	*out = (struct tp_source_file){ .fd = b->bundle_fd,
					.base = b->blob_offset + f->offset,
					.owned = false };
	return 0;
}

struct tp_file_source tp_blob_source(struct tp_blob_source_ctx *ctx)
{
	return (struct tp_file_source){ blob_open, fd_read, fd_close, ctx, ctx->key };
}

/* ---- an encrypted blob: a protected file, decrypted into the root ---- */

/* An opened blob (an fd and where the file starts in it) as the codec's reader: an
 * encrypted file is always a bundle's blob (tp_blob_source), read as its read
 * would, by pread at base + offset. */
static int blob_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
	const struct tp_source_file *sf = ctx;
	return tp_pread_full(sf->fd, buf, size, sf->base + offset);
}

static unsigned log2_of(uint32_t v)
{
	unsigned s = 0;
	while ((1u << s) < v)
		s++;
	return s;
}

/* File i, encrypted: its blob opened as a protected file under the bundle key, its
 * header the manifest's (its id: no other file under the same key passes), every
 * chunk's tag checked as it is decrypted and before it is written. The tags are the
 * check: no SHA-256 pass over it. Returns as copy_one. */
static int copy_encrypted(struct job *job, size_t i, struct tp_source_file *src, int dst,
			  struct scratch *sc)
{
	const struct tp_manifest_file *f = &job->m->files[i];
	struct tp_pfs_reader *rd = NULL;
	const struct tp_pfs_header *h;
	size_t chunk, run, len;
	uint64_t chunks;
	char line[512];
	int r;

	if (!job->bundled->key) {
		report(job, "file %s: encrypted, and no key to open it", f->path);
		return -EBADMSG;
	}
	r = tp_pfs_reader_open(job->bundled->key, TP_PFS_BUNDLE, blob_read, src, f->size, &rd, line,
			       sizeof(line));
	if (r < 0) {
		report(job, "file %s: its encrypted content is refused: %s", f->path, line);
		return tp_pfs_host_failed(r) ? r : -EBADMSG;
	}
	h = tp_pfs_reader_header(rd);
	if (memcmp(h->id, f->id, sizeof(f->id)) != 0) {
		report(job,
		       "file %s: its encrypted content is refused: another file sealed under the "
		       "same key (its id is not the manifest's)",
		       f->path);
		r = -EBADMSG;
		goto out;
	}
	if (h->chunk_shift != log2_of(job->m->encryption.chunk_size)) {
		report(job,
		       "file %s: its encrypted content is refused: sealed in chunks of %llu bytes, "
		       "the manifest says %u",
		       f->path, 1ULL << h->chunk_shift, job->m->encryption.chunk_size);
		r = -EBADMSG;
		goto out;
	}
	chunk = (size_t)1 << h->chunk_shift;
	/* runs of chunks: one read and one write for them (a system call costs 1-2 us
	 * here, twice per 64 KiB chunk before) */
	run = tp_pfs_run_chunks(h->chunk_shift);
	chunks = tp_pfs_chunk_count(h->size, h->chunk_shift);
	r = scratch_room((void **)&sc->buf, &sc->buf_size, run * chunk);
	if (r == 0)
		r = scratch_room((void **)&sc->sealed, &sc->sealed_size,
				 run * (chunk + TP_PFS_TAG_SIZE));
	/* the plaintext's size first: one allocation in the tmpfs */
	if (r == 0 && dst >= 0 && ftruncate(dst, (off_t)h->size) < 0)
		r = -errno;
	if (r < 0) {
		report(job, "file %s: cannot create it in the sealed root: %s", f->path,
		       strerror(-r));
		goto out;
	}
	for (uint64_t c = 0; c < chunks; c += run) {
		if ((r = tp_pfs_read_chunks(rd, c, run, sc->sealed, sc->buf, &len, line,
					    sizeof(line))) < 0) {
			report(job, "file %s: its encrypted content is refused: %s", f->path, line);
			r = r == -ENOTRECOVERABLE ? r : -EBADMSG;
			goto out;
		}
		if (dst >= 0 && len && (r = tp_write_full(dst, sc->buf, len)) < 0) {
			report(job, "file %s: cannot write it into the sealed root: %s", f->path,
			       strerror(-r));
			goto out;
		}
	}
	r = 0;
out:
	tp_pfs_reader_free(rd);
	return r;
}

static int copy_one(struct job *job, size_t i, struct scratch *sc)
{
	const struct tp_manifest_file *f = &job->m->files[i];
	const struct tp_file_source *source = f->bundled ? job->bundled : job->system;
	struct tp_source_file src = { .fd = -1 };
	struct tp_sha256 *ctx = NULL;
	uint8_t digest[32];
	char want[65], line[1024];
	int dst = -1, r = 0;

	tp_hex(f->sha256, 32, want);
	if ((r = source->open(source->ctx, f, &src, line, sizeof(line))) < 0) {
		report(job, "%s", line);
		return r;
	}

	if (job->root_fd >= 0 &&
	    (dst = openat(job->root_fd, f->path + 1,
			  O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444)) < 0)
		r = -errno;
	if (r == 0 && f->encrypted) {
		if ((r = copy_encrypted(job, i, &src, dst, sc)) < 0)
			goto out;
		goto written;
	}
	if (r == 0 && !(ctx = tp_sha256_new()))
		r = -ENOMEM;
	/* the final size first: the tmpfs then gives the file huge pages (within_size) */
	if (r == 0 && dst >= 0 && ftruncate(dst, (off_t)f->size) < 0)
		r = -errno;
	if (r < 0) {
		report(job, "file %s: cannot create it in the sealed root: %s", f->path,
		       strerror(-r));
		goto out;
	}
	for (uint64_t offset = 0; offset < f->size;) {
		size_t want_n = f->size - offset < CHUNK ? (size_t)(f->size - offset) : CHUNK;
		ssize_t n = source->read(source->ctx, &src, sc->buf, want_n, offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EBADMSG;
			if (n < 0)
				report(job, "file %s: cannot be read: %s", f->path, strerror(-r));
			else
				report(job,
				       "file %s: shrank while it was read (changed on this host)",
				       f->path);
			goto out;
		}
		tp_sha256_update(ctx, sc->buf, (size_t)n);
		if (dst >= 0 && (r = tp_write_full(dst, sc->buf, (size_t)n)) < 0) {
			report(job, "file %s: cannot write it into the sealed root: %s", f->path,
			       strerror(-r));
			goto out;
		}
		offset += (uint64_t)n;
	}
	tp_sha256_final(ctx, digest);
	ctx = NULL;
	if (memcmp(digest, f->sha256, 32) != 0) {
		report(job, CONTENT_DIFFERS, f->path, want);
		r = -EBADMSG;
		goto out;
	}
written:
	if (dst < 0)
		goto out; /* checked only, nothing written */
	if (fchmod(dst, f->mode & 0755) < 0)
		r = -errno;
	if (r == 0 && f->mtime) {
		/* CPython checks a .pyc against its source's mtime */
		struct timespec times[2] = { { (time_t)f->mtime, 0 }, { (time_t)f->mtime, 0 } };
		if (futimens(dst, times) < 0)
			r = -errno;
	}
	if (r < 0)
		report(job, "file %s: %s", f->path, strerror(-r));
out:
	if (ctx) {
		uint8_t scratch[32];
		tp_sha256_final(ctx, scratch);
	}
	if (dst >= 0)
		close(dst);
	source->close(source->ctx, &src);
	return r;
}

static double thread_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	struct job *job = arg;
	double cpu0 = thread_cpu_seconds();
	struct scratch sc = { 0 };

	if (scratch_room((void **)&sc.buf, &sc.buf_size, CHUNK) < 0) {
		report(job, "out of memory");
		atomic_store(&job->internal, true);
		return NULL;
	}
	for (;;) {
		size_t k = atomic_fetch_add(&job->next, 1);
		if (k >= job->m->file_count)
			break;
		if (job->stop && job->stop(job->stop_ctx)) {
			report(job, "stopped before every file was verified");
			break;
		}
		current_file = job->order[k];
		if (!job->system && !job->m->files[current_file].bundled)
			continue; /* checking the bundle's blobs only */
		int r = copy_one(job, current_file, &sc);
		if (tp_pfs_host_failed(r))
			atomic_store(&job->internal, true);
		if (r < 0)
			atomic_fetch_add(&job->bad_files, 1);
		current_file = SIZE_MAX;
	}
	scratch_unmap(sc.buf, sc.buf_size);
	scratch_unmap(sc.sealed, sc.sealed_size);
	pthread_mutex_lock(&job->lock);
	job->cpu_seconds += thread_cpu_seconds() - cpu0;
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

static int larger_first(const void *a, const void *b, void *files_arg)
{
	const struct tp_manifest_file *files = files_arg;
	uint64_t x = files[*(const size_t *)a].size, y = files[*(const size_t *)b].size;

	return x < y ? 1 : x > y ? -1 : 0;
}

uint64_t tp_fill_reserve(const struct tp_manifest *m)
{
	uint64_t total = 0;

	/* tmpfs rounds every file up to whole pages; directories cost a page or so */
	for (size_t i = 0; i < m->file_count; i++)
		total += (m->files[i].size + 4095) / 4096 * 4096 + 4096;
	return total;
}

int tp_fill_root(const struct tp_manifest *m, const struct tp_file_source *bundled,
		 const struct tp_file_source *system, int root_fd, struct tp_fill_stats *out,
		 char *err, size_t err_size, bool (*stop)(void *stop_ctx), void *stop_ctx)
{
	struct job job = { .m = m,
			   .bundled = bundled,
			   .system = system,
			   .root_fd = root_fd,
			   .err = err,
			   .err_size = err_size,
			   .stop = stop,
			   .stop_ctx = stop_ctx,
			   .err_index = SIZE_MAX };
	size_t n = m->file_count;
	struct timespec t0, t1;
	pthread_t helper;
	bool have_helper;
	int r;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	job.order = malloc((n ? n : 1) * sizeof(size_t));
	if (!job.order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		job.order[i] = i;
	if (n > 1)
		qsort_r(job.order, n, sizeof(size_t), larger_first, (void *)m->files);
	pthread_mutex_init(&job.lock, NULL);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	double dirs_cpu = thread_cpu_seconds();
	r = root_fd >= 0 ? make_dirs(m, root_fd, err, err_size) : 0;
	job.cpu_seconds = thread_cpu_seconds() - dirs_cpu;
	if (r < 0) {
		pthread_mutex_destroy(&job.lock);
		free(job.order);
		return r;
	}
	/* this thread and one more: hashing is CPU-bound, the machines have two cores;
	 * alone for a few small files (a cached root's blobs), not worth a thread */
	uint64_t todo = 0;
	for (size_t i = 0; i < n; i++)
		todo += system || m->files[i].bundled ? m->files[i].size : 0;
	have_helper = todo >= (1u << 20) && pthread_create(&helper, NULL, worker, &job) == 0;
	worker(&job);
	if (have_helper)
		pthread_join(helper, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	pthread_mutex_destroy(&job.lock);
	free(job.order);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	out->cpu_seconds = job.cpu_seconds;
	out->threads = have_helper ? 2 : 1;
	for (size_t i = 0; i < n; i++) {
		if (!system && !m->files[i].bundled)
			continue;
		out->count++;
		out->bytes += m->files[i].size;
	}
	/* the other files refused, beside the one err names (if it names a file) */
	int more = atomic_load(&job.bad_files) - (job.err_index != SIZE_MAX);
	if (more > 0) {
		size_t len = strlen(err);
		snprintf(err + len, err_size - len, " (and %d more file%s)", more,
			 more > 1 ? "s" : "");
	}
	if (!atomic_load(&job.failed))
		return 0;
	return atomic_load(&job.internal) ? -ENOTRECOVERABLE : -EBADMSG;
}
