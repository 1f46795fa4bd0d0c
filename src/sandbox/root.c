/* Building the root: every construction step happens after the host's tree is
 * detached, so a path inside the new root can never lead back to the host. */
#include "root.h"

#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV  0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef SYS_open_tree
#define SYS_open_tree  428
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
struct mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};
#endif

/* ---- the plan (supervisor side) ---- */

int tp_root_plan_add(struct tp_root_plan *plan, enum tp_root_op_kind kind, const char *path,
		     const char *source, uint64_t size)
{
	struct tp_root_op *ops = realloc(plan->ops, (plan->count + 1) * sizeof(*ops));
	struct tp_root_op *op;

	if (!ops)
		return -ENOMEM;
	plan->ops = ops;
	op = &ops[plan->count];
	op->kind = kind;
	op->size = size;
	op->dev = op->ino = 0;
	op->path = strdup(path);
	op->source = source ? strdup(source) : NULL;
	if (!op->path || (source && !op->source)) {
		free(op->path);
		free(op->source);
		return -ENOMEM;
	}
	plan->count++;
	return 0;
}

bool tp_root_path_under(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static bool is_under(const char *path, const char *dir)
{
	return tp_root_path_under(path, dir);
}

/* File systems that show the host's processes, devices or kernel state: a bind
 * is cloned with every mount beneath it, so none of them may be inside one. */
static const char *const kernel_fs[] = {
	"proc",	   "sysfs",    "devtmpfs",    "devpts", "cgroup",   "cgroup2",
	"debugfs", "tracefs",  "securityfs",  "bpf",	"configfs", "fusectl",
	"pstore",  "efivarfs", "binfmt_misc", "mqueue", "nsfs",
};

/* A mountinfo field with the kernel's octal escapes (\040 for a space) undone. */
static void unescape_field(const char *field, size_t len, char *out, size_t out_size)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < out_size; i++) {
		if (field[i] == '\\' && i + 3 < len && field[i + 1] >= '0' && field[i + 1] <= '3' &&
		    field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' &&
		    field[i + 3] <= '7') {
			out[n++] = (char)(((field[i + 1] - '0') << 6) |
					  ((field[i + 2] - '0') << 3) | (field[i + 3] - '0'));
			i += 3;
		} else {
			out[n++] = field[i];
		}
	}
	out[n] = '\0';
}

int tp_root_kernel_mount_in(const char *mountinfo, const char *path, char *found, size_t found_size)
{
	for (const char *line = mountinfo; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t line_len = end ? (size_t)(end - line) : strlen(line);
		const char *p = line, *sep;
		char point[PATH_MAX], fstype[64];
		size_t len;

		/* id parent major:minor root MOUNT-POINT options [optional...] - FSTYPE source */
		for (int field = 0; field < 4 && p; field++) {
			p = memchr(p, ' ', line_len - (size_t)(p - line));
			p = p ? p + 1 : NULL;
		}
		sep = p ? strstr(p, " - ") : NULL;
		if (!p || !sep || sep >= line + line_len)
			goto next;
		len = strcspn(p, " \n");
		unescape_field(p, len, point, sizeof(point));
		len = strcspn(sep + 3, " \n");
		snprintf(fstype, sizeof(fstype), "%.*s", (int)len, sep + 3);
		for (size_t i = 0; i < sizeof(kernel_fs) / sizeof(kernel_fs[0]); i++) {
			if (strcmp(fstype, kernel_fs[i]) != 0)
				continue;
			if (is_under(point, path) || is_under(path, point)) {
				snprintf(found, found_size, "%s at %s", fstype, point);
				return 1;
			}
		}
next:
		line = end ? end + 1 : NULL;
	}
	return 0;
}

int tp_root_kernel_mount(const char *path, char *found, size_t found_size)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	char *text;
	size_t size;
	int r;

	if (fd < 0)
		return -errno;
	r = tp_read_all(fd, SIZE_MAX, &text, &size);
	close(fd);
	if (r < 0)
		return r;
	r = tp_root_kernel_mount_in(text, path, found, found_size);
	free(text);
	return r;
}

bool tp_root_plan_covers(const struct tp_root_plan *plan, const char *path)
{
	for (size_t i = 0; i < plan->count; i++)
		if (plan->ops[i].kind == TP_ROOT_BIND && is_under(path, plan->ops[i].path))
			return true;
	return false;
}

static bool has_symlink(const struct tp_root_plan *plan, const char *path)
{
	for (size_t i = 0; i < plan->count; i++)
		if (plan->ops[i].kind == TP_ROOT_SYMLINK && strcmp(plan->ops[i].path, path) == 0)
			return true;
	return false;
}

/* Walks PATH one component at a time as the kernel would, recording every symbolic
 * link met (with its target, followed in turn). On success `resolved` holds the
 * real path. At most 40 links, as in the kernel. */
static int walk_links(struct tp_root_plan *plan, const char *path, char *resolved, int depth)
{
	char done[PATH_MAX] = "";
	char rest[PATH_MAX];
	int r;

	if (depth > 40)
		return -ELOOP;
	if (path[0] != '/')
		return -EINVAL;
	snprintf(rest, sizeof(rest), "%s", path);

	for (char *p = rest; *p;) {
		char component[NAME_MAX + 1];
		char candidate[PATH_MAX];
		char target[PATH_MAX];
		struct stat st;
		size_t len;
		ssize_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		len = strcspn(p, "/");
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(component, p, len);
		component[len] = '\0';
		p += len;

		if (strcmp(component, ".") == 0)
			continue;
		if (strcmp(component, "..") == 0) {
			char *slash = strrchr(done, '/');
			if (slash)
				*slash = '\0';
			continue;
		}
		if ((size_t)snprintf(candidate, sizeof(candidate), "%s/%s", done, component) >=
		    sizeof(candidate))
			return -ENAMETOOLONG;
		if (lstat(candidate, &st) < 0)
			return -errno;
		if (!S_ISLNK(st.st_mode)) {
			memcpy(done, candidate, strlen(candidate) + 1);
			continue;
		}
		n = readlink(candidate, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		if (!has_symlink(plan, candidate) &&
		    (r = tp_root_plan_add(plan, TP_ROOT_SYMLINK, candidate, target, 0)) < 0)
			return r;

		/* continue from the link's target, then whatever is left of the path */
		char next[PATH_MAX];
		if (target[0] == '/')
			r = snprintf(next, sizeof(next), "%s%s", target, p);
		else
			r = snprintf(next, sizeof(next), "%s/%s%s", done, target, p);
		if (r < 0 || (size_t)r >= sizeof(next))
			return -ENAMETOOLONG;
		return walk_links(plan, next, resolved, depth + 1);
	}
	snprintf(resolved, PATH_MAX, "%s", done[0] ? done : "/");
	return 0;
}

int tp_root_plan_add_path(struct tp_root_plan *plan, const char *path)
{
	char resolved[PATH_MAX];
	int r = walk_links(plan, path, resolved, 0);

	if (r < 0)
		return r;
	if (access(resolved, R_OK) < 0)
		return -errno;
	if (tp_root_plan_covers(plan, resolved))
		return 0;
	return tp_root_plan_add(plan, TP_ROOT_BIND, resolved, resolved, 0);
}

int tp_root_plan_add_links(struct tp_root_plan *plan, const char *path)
{
	char resolved[PATH_MAX];
	size_t before = plan->count;
	int r = walk_links(plan, path, resolved, 0);

	if (r < 0 || !tp_root_plan_covers(plan, resolved)) {
		/* leads nowhere visible: do not leave dangling links behind */
		for (size_t i = before; i < plan->count; i++) {
			free(plan->ops[i].path);
			free(plan->ops[i].source);
		}
		plan->count = before;
	}
	return 0;
}

/* A runtime file in the new root (nothing of the host is reachable from here). */
static int write_new_file(const struct tp_root_op *op)
{
	int fd = open(op->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t len = strlen(op->source);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, op->source, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	return r;
}

static int op_rank(const struct tp_root_op *op)
{
	switch (op->kind) {
	case TP_ROOT_TMPFS:
		return 0;
	case TP_ROOT_DIR:
	case TP_ROOT_BIND:
	case TP_ROOT_DEVICE:
	case TP_ROOT_RUNTIME:
		return 1;
	case TP_ROOT_SYMLINK:
	case TP_ROOT_FILE:
		return 2;
	}
	return 3;
}

static int compare_ops(const void *a, const void *b)
{
	const struct tp_root_op *x = a, *y = b;
	int rx = op_rank(x), ry = op_rank(y);

	if (rx != ry)
		return rx - ry;
	return strcmp(x->path, y->path); /* a parent sorts before what is under it */
}

void tp_root_plan_finish(struct tp_root_plan *plan)
{
	size_t kept = 0;

	if (plan->count > 1)
		qsort(plan->ops, plan->count, sizeof(plan->ops[0]), compare_ops);
	for (size_t i = 0; i < plan->count; i++) {
		struct tp_root_op *op = &plan->ops[i];
		bool covered = false;

		/* a bind, or a link, under another bind is already there, read-only */
		for (size_t j = 0; j < kept && op->kind != TP_ROOT_TMPFS; j++)
			covered = covered || (plan->ops[j].kind == TP_ROOT_BIND &&
					      is_under(op->path, plan->ops[j].path));
		if (covered) {
			free(op->path);
			free(op->source);
			continue;
		}
		plan->ops[kept++] = *op;
	}
	plan->count = kept;
}

void tp_root_plan_free(struct tp_root_plan *plan)
{
	for (size_t i = 0; i < plan->count; i++) {
		free(plan->ops[i].path);
		free(plan->ops[i].source);
	}
	free(plan->ops);
	plan->ops = NULL;
	plan->count = 0;
}

/* ---- carrying it out (child side) ---- */

static int fail(char *err, size_t err_size, int r, const char *what, const char *path)
{
	snprintf(err, err_size, "%s %s: %s", what, path, strerror(-r));
	return r;
}

/* mkdir -p inside the new root; there is nothing but our own tmpfs to walk. */
static int make_parents(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int make_mountpoint(const char *path, bool dir)
{
	int r = make_parents(path);

	if (r < 0)
		return r;
	if (dir)
		return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
	r = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (r < 0)
		return -errno;
	close(r);
	return 0;
}

unsigned tp_root_tmpfs_inodes(uint64_t size)
{
	uint64_t n = size / 4096 + 1024;
	return n < TP_ROOT_TMPFS_INODES ? (unsigned)n : TP_ROOT_TMPFS_INODES;
}

int tp_root_enter(const struct tp_root_plan *plan, int (*after_pivot)(void *), void *arg, char *err,
		  size_t err_size)
{
	int *trees = calloc(plan->count ? plan->count : 1, sizeof(int));
	int r = 0;

	if (!trees)
		return fail(err, err_size, -ENOMEM, "allocate", "root plan");
	for (size_t i = 0; i < plan->count; i++)
		trees[i] = -1;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		r = fail(err, err_size, -errno, "make private", "/");
		goto out;
	}

	/* 1. clone every source while the host tree is still reachable */
	for (size_t i = 0; i < plan->count; i++) {
		const struct tp_root_op *op = &plan->ops[i];
		struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID };

		if (op->kind != TP_ROOT_BIND && op->kind != TP_ROOT_DEVICE &&
		    op->kind != TP_ROOT_RUNTIME)
			continue;
		trees[i] = (int)syscall(SYS_open_tree, AT_FDCWD, op->source,
					OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE);
		if (trees[i] < 0) {
			r = fail(err, err_size, -errno, "clone mount of", op->source);
			goto out;
		}
		/* the path was looked up again here, in our own mount namespace (a
		 * descriptor of the supervisor's names its namespace's mount, which
		 * cannot be cloned into ours): it must still lead where it was checked */
		struct stat st;
		if (op->ino &&
		    (fstat(trees[i], &st) < 0 || st.st_dev != op->dev || st.st_ino != op->ino)) {
			r = fail(err, err_size, -ESTALE, "clone mount of", op->source);
			goto out;
		}
		/* read-only for devices too: writing to a device node works on a read-only
		 * mount, changing the host's node (chmod, utime) does not */
		attr.attr_set |= MOUNT_ATTR_RDONLY;
		if (op->kind != TP_ROOT_DEVICE)
			attr.attr_set |= MOUNT_ATTR_NODEV;
		else
			attr.attr_set |= MOUNT_ATTR_NOEXEC;
		if (syscall(SYS_mount_setattr, trees[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
			    sizeof(attr)) < 0) {
			r = fail(err, err_size, -errno, "make read-only", op->source);
			goto out;
		}
	}

	/* 2. an empty tmpfs becomes the root; the host's tree is detached from us */
	char root_options[96];
	/* nr_inodes: a number of teepy's, not the kernel's default of half the host's
	 * RAM pages, which statvfs would show the service */
	int n = snprintf(root_options, sizeof(root_options), "mode=0755,size=%llu,nr_inodes=%u",
			 (unsigned long long)((16ULL << 20) + plan->reserve_bytes),
			 TP_ROOT_TMPFS_INODES);
	/* huge pages for the 2 MiB ranges of a sealed file, none that its size does not
	 * fill (within_size): hello's root filled in 8.8 ms instead of 10.5 (14.3 ms of
	 * CPU instead of 17.1, 40 interleaved runs). A kernel without transparent huge
	 * pages refuses the option: then without */
	snprintf(root_options + n, sizeof(root_options) - (size_t)n, ",huge=within_size");
	if (mount("teepy", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, root_options) < 0 &&
	    (root_options[n] = '\0',
	     mount("teepy", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, root_options) < 0)) {
		r = fail(err, err_size, -errno, "mount root tmpfs on", "/tmp");
		goto out;
	}
	if (chdir("/tmp") < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		r = fail(err, err_size, -errno, "pivot into", "the new root");
		goto out;
	}
	if (after_pivot && (r = after_pivot(arg)) < 0) {
		r = fail(err, err_size, r, "wait for the files of", "the sealed root");
		goto out;
	}

	/* 3. build the root from the clones, then links */
	for (size_t i = 0; i < plan->count; i++) {
		const struct tp_root_op *op = &plan->ops[i];
		char options[64];
		struct stat st;

		switch (op->kind) {
		case TP_ROOT_TMPFS:
			snprintf(options, sizeof(options), "mode=1777,size=%llu,nr_inodes=%u",
				 (unsigned long long)op->size, tp_root_tmpfs_inodes(op->size));
			/* noexec: a program written there is none of the root's files, the
			 * only ones a processes policy may run, nor may a library there be
			 * mapped executable */
			if ((r = make_mountpoint(op->path, true)) < 0 ||
			    (mount("teepy-scratch", op->path, "tmpfs",
				   MS_NOSUID | MS_NODEV | MS_NOEXEC, options) < 0 &&
			     (r = -errno)))
				goto fail_op;
			break;
		case TP_ROOT_BIND:
		case TP_ROOT_DEVICE:
		case TP_ROOT_RUNTIME:
			if (fstat(trees[i], &st) < 0) {
				r = -errno;
				goto fail_op;
			}
			if ((r = make_mountpoint(op->path, S_ISDIR(st.st_mode))) < 0)
				goto fail_op;
			if (syscall(SYS_move_mount, trees[i], "", AT_FDCWD, op->path,
				    MOVE_MOUNT_F_EMPTY_PATH) < 0) {
				r = -errno;
				goto fail_op;
			}
			break;
		case TP_ROOT_DIR:
			if ((r = make_mountpoint(op->path, true)) < 0)
				goto fail_op;
			break;
		case TP_ROOT_SYMLINK:
			if ((r = make_parents(op->path)) < 0)
				goto fail_op;
			if (symlink(op->source, op->path) < 0 && errno != EEXIST) {
				r = -errno;
				goto fail_op;
			}
			break;
		case TP_ROOT_FILE:
			if ((r = make_parents(op->path)) < 0 || (r = write_new_file(op)) < 0)
				goto fail_op;
			break;
		}
		continue;
fail_op:
		fail(err, err_size, r, "place", op->path);
		goto out;
	}

	{
		struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						     MOUNT_ATTR_NODEV };
		if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &ro, sizeof(ro)) < 0) {
			r = fail(err, err_size, -errno, "make read-only", "/");
			goto out;
		}
	}
	r = 0;
out:
	for (size_t i = 0; i < plan->count; i++)
		if (trees[i] >= 0)
			close(trees[i]);
	free(trees);
	return r;
}
