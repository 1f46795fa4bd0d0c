/* The service's root: a plan computed from host paths by the supervisor, carried
 * out by the child in its own mount namespace. */
#ifndef TEEPY_SANDBOX_ROOT_H
#define TEEPY_SANDBOX_ROOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tp_root_op_kind {
	TP_ROOT_TMPFS,	 /* scratch: a size-capped writable tmpfs */
	TP_ROOT_BIND,	 /* a host file or directory, read-only, at the same path */
	TP_ROOT_DEVICE,	 /* a host device node (/dev/null ...), not read-only */
	TP_ROOT_RUNTIME, /* a host file placed at another path (the _teepy extension) */
	TP_ROOT_SYMLINK, /* a symbolic link, as on the host */
	TP_ROOT_DIR,	 /* an empty directory (sys.path entries of a sealed root) */
	TP_ROOT_FILE,	 /* a small file the runtime writes: source is its content */
};

/* Inodes of the root's tmpfs: far more than any root holds, and the same on every
 * host (a tmpfs's default, half the host's RAM pages, would tell the service how
 * much memory the host has). */
#define TP_ROOT_TMPFS_INODES 1048576u

/* Inodes of a writable tmpfs of size bytes (scratch, /out): one a page and 1024 more
 * for directories and empty files, at most TP_ROOT_TMPFS_INODES. Each inode is
 * kernel memory a memory cgroup may not count (RLIMIT_AS never does): what a
 * service can pin so stays in proportion to the size it was given. Pure. */
unsigned tp_root_tmpfs_inodes(uint64_t size);

struct tp_root_op {
	enum tp_root_op_kind kind;
	char *path;    /* inside the root, absolute */
	char *source;  /* host path (bind, device, runtime), link target (symlink) or
			* content (file) */
	uint64_t size; /* tmpfs size in bytes */
	/* a bind whose source must be this very file or directory (a cached root's,
	 * checked by the supervisor through a descriptor): its device and inode, else 0 */
	uint64_t dev, ino;
};

struct tp_root_plan {
	struct tp_root_op *ops;
	size_t count;
	uint64_t reserve_bytes; /* room in the root's tmpfs for files written into it */
};

/* Adds host PATH (file or directory) read-only at its real path, and the symbolic
 * links passed on the way so the given spelling works inside too. Returns 0 or
 * -errno (-ENOENT, -EACCES ... naming the host's answer). */
int tp_root_plan_add_path(struct tp_root_plan *plan, const char *path);

/* Adds the symbolic links of PATH (not its content) if it resolves into the plan. */
int tp_root_plan_add_links(struct tp_root_plan *plan, const char *path);

int tp_root_plan_add(struct tp_root_plan *plan, enum tp_root_op_kind kind, const char *path,
		     const char *source, uint64_t size);

/* Orders the operations (tmpfs, then binds parents first, then links) and drops
 * binds a parent bind already shows. */
void tp_root_plan_finish(struct tp_root_plan *plan);

/* True if PATH is inside (or is) a bind of the plan. */
bool tp_root_plan_covers(const struct tp_root_plan *plan, const char *path);

void tp_root_plan_free(struct tp_root_plan *plan);

/* True if PATH is DIR or beneath it (both absolute and canonical). */
bool tp_root_path_under(const char *path, const char *dir);

/* Whether a kernel file system (proc, sysfs, devtmpfs, cgroup ...) is mounted at,
 * beneath or above host PATH: a bind of PATH would show it. Returns 1 and names
 * it ("proc at /srv/chroot/proc") in found, 0 if none, or -errno if the mount
 * table cannot be read. tp_root_kernel_mount_in does the same on the text of a
 * /proc/self/mountinfo. */
int tp_root_kernel_mount(const char *path, char *found, size_t found_size);
int tp_root_kernel_mount_in(const char *mountinfo, const char *path, char *found,
			    size_t found_size);

/* In the child, in a new mount namespace with CAP_SYS_ADMIN there: clones every
 * source, pivots into an empty tmpfs, detaches the host, calls after_pivot (if
 * any: a sealed root is filled then, from outside), builds the rest of the root
 * from the clones, and makes it read-only. On error returns -errno and names the
 * step in err. */
int tp_root_enter(const struct tp_root_plan *plan, int (*after_pivot)(void *), void *arg, char *err,
		  size_t err_size);

#endif
