/* hw evidence: a report from the kernel's configfs-tsm (Documentation/ABI/testing/
 * configfs-tsm): an entry made under /sys/kernel/config/tsm/report, report data
 * written to its inblob, the report read from its outblob (and on SEV-SNP the host's
 * certificates from its auxblob). The only code of attest/ that touches the OS; it
 * parses nothing but the entry's small counters. */
#include "attest.h"

#include "../common/io.h"
#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool tp_tsm_present(const char *dir)
{
	struct stat st;

	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A file of the entry, whole (at most max bytes). Returns 0 or -errno. */
static int read_attr(const char *entry, const char *name, size_t max, char **out, size_t *size)
{
	char path[PATH_MAX + 16];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", entry, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	r = tp_read_all(fd, max, out, size);
	close(fd);
	return r;
}

/* The entry's generation counter. Returns 0 or -errno (-EINVAL: not a number). */
static int read_generation(const char *entry, unsigned long long *gen)
{
	char *text = NULL, *end;
	size_t size;
	int r = read_attr(entry, "generation", 64, &text, &size);

	if (r < 0)
		return r;
	errno = 0;
	*gen = strtoull(text, &end, 10);
	r = end == text || errno || (*end && *end != '\n') ? -EINVAL : 0;
	free(text);
	return r;
}

static int write_inblob(const char *entry, const uint8_t report_data[TP_REPORT_DATA_SIZE])
{
	char path[PATH_MAX + 16];
	int fd, r;

	snprintf(path, sizeof(path), "%s/inblob", entry);
	if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0)
		return -errno;
	r = tp_write_full(fd, report_data, TP_REPORT_DATA_SIZE);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* One request in entry. Returns 0, -EAGAIN when another writer came between, or
 * -errno with err set. */
static int request(const char *entry, bool recorded, const uint8_t *report_data,
		   struct tp_tsm_report *out, char *err, size_t err_size)
{
	unsigned long long before, after;
	char *provider = NULL;
	size_t size;
	int r;

	if ((r = read_generation(entry, &before)) < 0) {
		snprintf(err, err_size, "%s/generation: %s", entry, strerror(-r));
		return r;
	}
	if ((r = write_inblob(entry, report_data)) < 0) {
		snprintf(err, err_size, "%s/inblob: %s", entry, strerror(-r));
		return r;
	}
	/* reading outblob makes the report (the kernel asks the TDX module or the SNP
	 * firmware then) */
	if ((r = read_attr(entry, "outblob", TP_TSM_OUT_MAX, (char **)&out->outblob, &out->size)) <
	    0) {
		snprintf(err, err_size, "%s/outblob: %s", entry,
			 r == -EFBIG ? "larger than any report" : strerror(-r));
		return r;
	}
	if ((r = read_attr(entry, "provider", sizeof(out->provider) - 1, &provider, &size)) < 0) {
		snprintf(err, err_size, "%s/provider: %s", entry, strerror(-r));
		return r;
	}
	/* "tdx_guest\n": the name, without its newline; kept printable */
	snprintf(out->provider, sizeof(out->provider), "%.*s", (int)strcspn(provider, "\n"),
		 provider);
	for (char *p = out->provider; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	free(provider);
	/* SEV-SNP: the host's certificates, read in the same generation as the report
	 * (the kernel keeps both from one request); a kernel or entry without the file
	 * has none to give */
	if (strcmp(out->provider, "sev_guest") == 0) {
		r = read_attr(entry, "auxblob", TP_TSM_OUT_MAX, (char **)&out->auxblob,
			      &out->aux_size);
		if (r < 0 && r != -ENOENT) {
			snprintf(err, err_size, "%s/auxblob: %s", entry,
				 r == -EFBIG ? "larger than any certificate table" : strerror(-r));
			return r;
		}
		out->aux_present = r == 0;
	}
	if ((r = read_generation(entry, &after)) < 0) {
		snprintf(err, err_size, "%s/generation: %s", entry, strerror(-r));
		return r;
	}
	/* our write is one: any other means another writer's inblob may be in the report
	 * (a recorded entry's counter stands still) */
	if (after != before + 1 && !(recorded && after == before))
		return -EAGAIN;
	return 0;
}

int tp_tsm_get(const char *dir, const char *entry, const uint8_t report_data[TP_REPORT_DATA_SIZE],
	       struct tp_tsm_report *out, char *err, size_t err_size)
{
	char path[PATH_MAX];
	int r = -EAGAIN;

	memset(out, 0, sizeof(*out));
	if (strlen(dir) + (entry ? strlen(entry) : 0) + 64 > PATH_MAX) {
		snprintf(err, err_size, "%s: a path too long", dir);
		return -ENAMETOOLONG;
	}
	while (r == -EAGAIN && out->attempts < TP_TSM_ATTEMPTS) {
		uint64_t id = 0;
		out->attempts++;
		tp_tsm_report_free(out);
		if (entry) {
			snprintf(path, sizeof(path), "%s/%s", dir, entry);
		} else {
			/* an entry of our own: no other process writes its inblob */
			tp_random(&id, sizeof(id));
			snprintf(path, sizeof(path), "%s/teepy-%d-%016llx", dir, (int)getpid(),
				 (unsigned long long)id);
			if (mkdir(path, 0700) < 0) {
				r = -errno;
				snprintf(err, err_size, "cannot make a report entry in %s: %s%s",
					 dir, strerror(-r),
					 r == -EACCES || r == -EPERM ? " (only root may ask for "
								       "a report)" :
								       "");
				return r;
			}
		}
		r = request(path, entry != NULL, report_data, out, err, err_size);
		if (!entry)
			rmdir(path);
	}
	if (r == -EAGAIN)
		snprintf(err, err_size,
			 "the report's generation changed while it was made, %d times: another "
			 "writer in %s",
			 TP_TSM_ATTEMPTS, dir);
	if (r < 0)
		tp_tsm_report_free(out);
	return r;
}

void tp_tsm_report_free(struct tp_tsm_report *r)
{
	free(r->outblob);
	free(r->auxblob);
	r->outblob = r->auxblob = NULL;
	r->size = r->aux_size = 0;
	r->aux_present = false;
}
