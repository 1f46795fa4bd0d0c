/* Landlock ruleset: read rights handled and granted only on the root's trees, every
 * write right handled and none granted outside scratch. Debian 12's headers stop at
 * ABI 2, while kernels here offer more: the newer constants are defined below and
 * used only when the kernel says it has them. */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP	(1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL		    (1ULL << 1)
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule	    445
#define SYS_landlock_restrict_self  446
#endif

/* The ABI 6 layout; older kernels accept a prefix of it (size says how much). */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

#define RULE_PATH_BENEATH 1

#define WRITE_RIGHTS_V1                                                                            \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                           \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                           \
	 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                               \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |                             \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)
#define READ_RIGHTS (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* the rights a rule on a file (not a directory) may carry */
#define FILE_ONLY_RIGHTS                                                                           \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                              \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

int tp_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (abi < 0)
		return -errno;
	/* a test build (meson -Dlandlock_abi_max=N) acts as on an older kernel */
	if (TP_LANDLOCK_ABI_MAX > 0 && abi > TP_LANDLOCK_ABI_MAX)
		abi = TP_LANDLOCK_ABI_MAX;
	return (int)abi;
}

/* A rule on PATH; on a file only the rights a file has (the kernel refuses a rule
 * on a file with directory rights). */
static int allow_path(int ruleset_fd, const char *path, uint64_t rights)
{
	struct path_beneath_attr attr = { .allowed_access = rights };
	struct stat st;
	int r = 0;

	attr.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (attr.parent_fd < 0)
		return -errno;
	if (fstat(attr.parent_fd, &st) < 0)
		r = -errno;
	else if (!S_ISDIR(st.st_mode))
		attr.allowed_access &= FILE_ONLY_RIGHTS;
	if (r == 0 && syscall(SYS_landlock_add_rule, ruleset_fd, RULE_PATH_BENEATH, &attr, 0) < 0)
		r = -errno;
	close(attr.parent_fd);
	return r;
}

int tp_landlock_apply(const struct tp_landlock_paths *paths)
{
	struct ruleset_attr attr = {
		.handled_access_fs = READ_RIGHTS | WRITE_RIGHTS_V1 | LANDLOCK_ACCESS_FS_EXECUTE,
	};
	size_t attr_size = sizeof(attr.handled_access_fs);
	uint64_t scratch_rights;
	int abi = tp_landlock_abi();
	int fd, r = 0;

	if (abi < 0)
		return abi;

	/* Newest first, falling through: each ABI adds what the kernel can also deny. */
	switch (abi) {
	default:
	case 6:
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
		/* fall through */
	case 5:
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
		/* fall through */
	case 4:
		attr.handled_access_net =
		    LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
		if (attr_size < 2 * sizeof(uint64_t))
			attr_size = 2 * sizeof(uint64_t);
		/* fall through */
	case 3:
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
		/* fall through */
	case 2:
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
		/* fall through */
	case 1:
		break;
	}
	scratch_rights = attr.handled_access_fs & ~(uint64_t)LANDLOCK_ACCESS_FS_EXECUTE;

	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (fd < 0)
		return -errno;
	for (const char *const *p = paths->exec_files; r == 0 && p && *p; p++)
		r = allow_path(fd, *p, LANDLOCK_ACCESS_FS_EXECUTE);
	for (const char *const *p = paths->write_files; r == 0 && p && *p; p++)
		r = allow_path(fd, *p, LANDLOCK_ACCESS_FS_WRITE_FILE & attr.handled_access_fs);
	for (size_t i = 0; r == 0 && i < paths->read_count; i++)
		r = allow_path(fd, paths->read_trees[i], READ_RIGHTS);
	for (const char *const *p = paths->write_dirs; r == 0 && p && *p; p++)
		r = allow_path(fd, *p, scratch_rights);
	if (r == 0 && syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		r = -errno;
	close(fd);
	return r < 0 ? r : abi;
}

const char *tp_landlock_describe(int abi)
{
	if (abi >= 6)
		return "reads only of the root's trees, writes denied outside scratch and /out, "
		       "exec of "
		       "the interpreter only, TCP bind/connect denied, abstract unix sockets "
		       "and signals scoped";
	if (abi >= 4)
		return "reads only of the root's trees, writes denied outside scratch and /out, "
		       "exec of the "
		       "interpreter only, TCP bind/connect denied";
	if (abi >= 3)
		return "reads only of the root's trees, writes and truncation denied outside "
		       "scratch and /out, exec of the interpreter only";
	return "reads only of the root's trees, writes denied outside scratch and /out, exec of "
	       "the "
	       "interpreter only";
}
