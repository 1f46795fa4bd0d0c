/* Debian's /etc/alternatives in an unsealed run's root. Some libraries are reached
 * through it (BLAS, LAPACK: numpy's), so a run that shows dist-packages or a path
 * the person allows keeps the links that lead into what it shows, and nothing else
 * of /etc. Following all 473 links here (most lead to programs and manuals, through
 * more links) took about 1,500 system calls: 4.5 ms of every such start on these
 * guests.
 *
 * Where each link ends is a fact of the host, not of the run. The facts are kept
 * in the cache directory (cache.c's checks: a tmpfs of the invoking uid, mode 0700)
 * with the identity and times of /etc/alternatives and of the directories each
 * link's target and end lie in; a later run that finds all of those unchanged
 * decides from the facts, with about 60 stats, and follows only the links that end
 * in its binds, adding the links they pass through as before. Adding, removing or
 * replacing a link changes its directory's times. A stale fact (a link through
 * a third directory, changed since) could only leave a link out of the root, or
 * follow one that leads nowhere shown: what a link may reach is the binds'. */
#include "alternatives.h"

#include "../common/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ALTERNATIVES "/etc/alternatives"
#define FACTS_MAGIC  "teepy-alternatives-v2\n"
#define FACTS_MAX    (4u << 20)

/* A directory the facts depend on, as it was when they were taken. */
struct fact_dir {
	char *path;
	int error; /* 0: there, as stamped; else stat's errno */
	dev_t dev;
	ino_t ino;
	struct timespec mtime, ctime;
};

/* One link of /etc/alternatives and where it ends (its real path), NULL if it
 * leads nowhere. */
struct fact_link {
	char *name;
	char *end;
};

struct facts {
	struct fact_dir *dirs; /* dirs[0] is /etc/alternatives itself */
	size_t dir_count, dir_room;
	struct fact_link *links;
	size_t link_count, link_room;
	char *text;  /* read from the cache: the strings point into it */
	bool unsure; /* taken with an error that may pass, or as a directory changed */
};

static void facts_free(struct facts *f)
{
	for (size_t i = 0; !f->text && i < f->dir_count; i++)
		free(f->dirs[i].path);
	for (size_t i = 0; !f->text && i < f->link_count; i++) {
		free(f->links[i].name);
		free(f->links[i].end);
	}
	free(f->text);
	free(f->dirs);
	free(f->links);
	*f = (struct facts){ 0 };
}

/* Room for one more item of SIZE bytes at *items (count held, room for *room; grown
 * twofold from FIRST), zeroed; NULL when out of memory. */
static void *one_more(void *items, size_t *count, size_t *room, size_t size, size_t first)
{
	char *list;

	memcpy(&list, items, sizeof(list)); /* *items is a pointer of another type */
	if (*count == *room) {
		size_t more = *room ? 2 * *room : first;
		char *grown = realloc(list, more * size);
		if (!grown)
			return NULL;
		list = grown;
		memcpy(items, &list, sizeof(list));
		*room = more;
	}
	char *item = list + (*count)++ * size;
	memset(item, 0, size);
	return item;
}

static struct fact_dir *new_dir(struct facts *f)
{
	return one_more(&f->dirs, &f->dir_count, &f->dir_room, sizeof(*f->dirs), 64);
}

static struct fact_link *new_link(struct facts *f)
{
	return one_more(&f->links, &f->link_count, &f->link_room, sizeof(*f->links), 512);
}

static void stamp(struct fact_dir *d)
{
	struct stat st;

	d->error = stat(d->path, &st) == 0 ? 0 : errno;
	if (d->error == 0) {
		d->dev = st.st_dev;
		d->ino = st.st_ino;
		d->mtime = st.st_mtim;
		d->ctime = st.st_ctim;
	}
}

static bool unchanged(const struct fact_dir *d)
{
	struct stat st;

	if (stat(d->path, &st) < 0)
		return d->error == errno;
	return d->error == 0 && st.st_dev == d->dev && st.st_ino == d->ino &&
	       st.st_mtim.tv_sec == d->mtime.tv_sec && st.st_mtim.tv_nsec == d->mtime.tv_nsec &&
	       st.st_ctim.tv_sec == d->ctime.tv_sec && st.st_ctim.tv_nsec == d->ctime.tv_nsec;
}

/* Notes that the facts depend on the directory holding PATH (a file's path):
 * stamped when first named. Returns 0 or -ENOMEM. */
static int depend_on_dir_of(struct facts *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%.*s", slash > path ? (int)(slash - path) : 1, path);
	for (size_t i = 0; i < f->dir_count; i++)
		if (strcmp(f->dirs[i].path, dir) == 0)
			return 0;
	struct fact_dir *d = new_dir(f);
	if (!d || !(d->path = strdup(dir)))
		return -ENOMEM;
	stamp(d);
	return 0;
}

/* The facts read off the host: where every link ends. Returns 0 or -ENOMEM. */
static int take_facts(struct facts *f)
{
	time_t started = time(NULL);
	DIR *d;
	struct dirent *e;

	if (depend_on_dir_of(f, ALTERNATIVES "/") < 0)
		return -ENOMEM;
	if (!(d = opendir(ALTERNATIVES))) {
		f->unsure = errno != ENOENT; /* none at all is a fact; EMFILE is not */
		return 0;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX], target[PATH_MAX], end[PATH_MAX];
		ssize_t n;

		if (e->d_name[0] == '.' || e->d_type != DT_LNK)
			continue;
		n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (n <= 0) {
			f->unsure |= n < 0 && errno != ENOENT && errno != EINVAL;
			continue;
		}
		target[n] = '\0';
		snprintf(path, sizeof(path), ALTERNATIVES "/%s", e->d_name);
		struct fact_link *l = new_link(f);
		if (!l || !(l->name = strdup(e->d_name)))
			goto oom;
		if (realpath(path, end)) {
			if (!(l->end = strdup(end)))
				goto oom;
		} else {
			/* leading nowhere is a fact; a lack of memory or descriptors is not */
			f->unsure |= errno != ENOENT && errno != ENOTDIR && errno != ELOOP &&
				     errno != EACCES && errno != ENAMETOOLONG;
		}
		if ((target[0] == '/' && depend_on_dir_of(f, target) < 0) ||
		    (l->end && depend_on_dir_of(f, l->end) < 0))
			goto oom;
	}
	closedir(d);
	/* a directory stamped after it was read, or changed twice within one tick of
	 * a coarse clock, could look unchanged while the facts are not: facts taken
	 * while one was changing (its times within a second of the start) are used
	 * once, not kept */
	for (size_t i = 0; i < f->dir_count; i++)
		f->unsure |= f->dirs[i].error == 0 && (f->dirs[i].mtime.tv_sec >= started - 1 ||
						       f->dirs[i].ctime.tv_sec >= started - 1);
	return 0;
oom:
	closedir(d);
	return -ENOMEM;
}

/* A field that cannot be written as one: a tab or a line break in a name. */
static bool unwritable(const char *s)
{
	return s && strpbrk(s, "\t\n");
}

/* Keeps the facts in the cache directory (a new file renamed over the old, so a
 * reader sees one whole or the other); best effort. */
static void save_facts(const struct facts *f, int cache_fd)
{
	char temp[64];
	FILE *out;
	int fd;

	if (f->unsure)
		return;
	for (size_t i = 0; i < f->dir_count; i++)
		if (unwritable(f->dirs[i].path))
			return;
	for (size_t i = 0; i < f->link_count; i++)
		if (unwritable(f->links[i].name) || unwritable(f->links[i].end))
			return;
	/* tmp-PID-: cache.c removes it once this pid is gone, should we die writing */
	snprintf(temp, sizeof(temp), "tmp-%ld-" TP_ALTERNATIVES_FACTS, (long)getpid());
	fd = openat(cache_fd, temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (!(out = fdopen(fd, "w"))) {
		close(fd);
		unlinkat(cache_fd, temp, 0);
		return;
	}
	fputs(FACTS_MAGIC, out);
	for (size_t i = 0; i < f->dir_count; i++) {
		const struct fact_dir *d = &f->dirs[i];
		fprintf(out, "d %d %llu %llu %lld %ld %lld %ld %s\n", d->error,
			(unsigned long long)d->dev, (unsigned long long)d->ino,
			(long long)d->mtime.tv_sec, d->mtime.tv_nsec, (long long)d->ctime.tv_sec,
			d->ctime.tv_nsec, d->path);
	}
	for (size_t i = 0; i < f->link_count; i++) {
		const struct fact_link *l = &f->links[i];
		fprintf(out, "l %s\t%s\n", l->name, l->end ? l->end : "");
	}
	if (fclose(out) != 0 || renameat(cache_fd, temp, cache_fd, TP_ALTERNATIVES_FACTS) < 0)
		unlinkat(cache_fd, temp, 0);
}

static int parse_dir(struct facts *f, char *line)
{
	unsigned long long dev, ino;
	long long msec, csec;
	long mnsec, cnsec;
	int error, used = 0;
	char *path;

	if (sscanf(line, "d %d %llu %llu %lld %ld %lld %ld %n", &error, &dev, &ino, &msec, &mnsec,
		   &csec, &cnsec, &used) != 7 ||
	    !used || (path = line + used)[0] != '/' ||
	    (f->dir_count == 0 && strcmp(path, ALTERNATIVES) != 0))
		return -1;
	struct fact_dir *d = new_dir(f);
	if (!d)
		return -1;
	*d = (struct fact_dir){
		.path = path,
		.error = error,
		.dev = (dev_t)dev,
		.ino = (ino_t)ino,
		.mtime = { (time_t)msec, mnsec },
		.ctime = { (time_t)csec, cnsec },
	};
	return 0;
}

static int parse_link(struct facts *f, char *line)
{
	char *name, *tab, *end;

	if (strncmp(line, "l ", 2) != 0)
		return -1;
	name = line + 2;
	tab = strchr(name, '\t');
	if (!tab || tab == name || ((end = tab + 1)[0] && end[0] != '/'))
		return -1;
	*tab = '\0';
	struct fact_link *l = new_link(f);
	if (!l)
		return -1;
	*l = (struct fact_link){ .name = name, .end = end[0] ? end : NULL };
	return 0;
}

/* The facts in TEXT (SIZE bytes and a NUL after them, changed in place; f->text
 * takes it): 0, or -1 when they are not as save_facts writes them. */
static int parse_facts(struct facts *f, char *text, size_t size)
{
	size_t magic = strlen(FACTS_MAGIC);
	char *line, *next;

	f->text = text;
	if (size < magic || memchr(text, '\0', size) || memcmp(text, FACTS_MAGIC, magic) != 0 ||
	    text[size - 1] != '\n')
		return -1;
	text[size - 1] = '\0'; /* the last line's end */
	for (line = size > magic ? text + magic : NULL; line; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		if ((line[0] == 'd' && f->link_count == 0 ? parse_dir(f, line) :
		     line[0] == 'l'			  ? parse_link(f, line) :
							    -1) < 0)
			return -1;
	}
	return f->dir_count ? 0 : -1;
}

int tp_alternatives_parse(const char *bytes, size_t size)
{
	struct facts f = { 0 };
	char *text = malloc(size + 1);
	int r;

	if (!text)
		return -1;
	memcpy(text, bytes, size);
	text[size] = '\0';
	r = parse_facts(&f, text, size) < 0 ? -1 : (int)f.link_count;
	facts_free(&f);
	return r;
}

/* The facts kept in the cache, if every directory they depend on is as it was.
 * Returns 0, or -1 (f empty) when there are none to trust. */
static int load_facts(struct facts *f, int cache_fd)
{
	int fd =
	    openat(cache_fd, TP_ALTERNATIVES_FACTS, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *text;
	int r = -1;

	if (fd < 0)
		return -1;
	/* read whole in one go: its size is known, and the heap grown once (on these
	 * guests each new page costs a fault of ~10 us) */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    st.st_size > 0 && st.st_size <= FACTS_MAX && (text = malloc((size_t)st.st_size + 1))) {
		text[st.st_size] = '\0';
		if (tp_read_full(fd, text, (size_t)st.st_size) == 0)
			r = parse_facts(f, text, (size_t)st.st_size);
		else
			free(text);
	}
	for (size_t i = 0; r == 0 && i < f->dir_count; i++)
		if (!unchanged(&f->dirs[i]))
			r = -1;
	close(fd);
	if (r < 0)
		facts_free(f);
	return r;
}

int tp_alternatives_plan(struct tp_root_plan *plan, int cache_fd)
{
	struct facts f = { 0 };

	if (cache_fd < 0 || load_facts(&f, cache_fd) < 0) {
		if (take_facts(&f) < 0) {
			facts_free(&f);
			return -ENOMEM;
		}
		if (cache_fd >= 0)
			save_facts(&f, cache_fd);
	}
	for (size_t i = 0; i < f.link_count; i++) {
		char path[PATH_MAX];
		/* followed again (the links it passes through join the plan) only when
		 * it ends in what the run shows */
		if (!f.links[i].end || !tp_root_plan_covers(plan, f.links[i].end))
			continue;
		snprintf(path, sizeof(path), ALTERNATIVES "/%s", f.links[i].name);
		tp_root_plan_add_links(plan, path);
	}
	facts_free(&f);
	return 0;
}
