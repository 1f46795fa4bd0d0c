/* Limits the service cannot lift: cgroup memory.max (v2) or memory.limit_in_bytes
 * (v1) with pids.max; RLIMIT_AS / RLIMIT_NPROC when no cgroup can be made (weaker:
 * RLIMIT_AS counts address space, not memory, and may refuse BLAS thread stacks). */
#include "limits.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[640];
	int fd, r = 0;
	size_t len = strlen(text);

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -errno;
	close(fd);
	return r;
}

static int read_file(const char *dir, const char *name, char *buf, size_t size)
{
	char path[640];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* Finds "<hierarchy>:<path>" for a controller in /proc/self/cgroup; "" = the v2 line. */
static int own_cgroup(const char *controller, char *path, size_t size)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *controllers = strchr(line, ':');
		char *p = controllers ? strchr(controllers + 1, ':') : NULL;
		if (!p)
			continue;
		*p++ = '\0';
		controllers++;
		p[strcspn(p, "\n")] = '\0';
		bool match = false;
		if (!*controller) {
			match = *controllers == '\0';
		} else {
			for (char *tok = strtok(controllers, ","); tok; tok = strtok(NULL, ","))
				match = match || strcmp(tok, controller) == 0;
		}
		if (match) {
			snprintf(path, size, "%s", p);
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

static bool make_child_cgroup(const char *base, char *out, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(out, size, "%s/teepy-%d-%lx", base, (int)getpid(), (unsigned long)ts.tv_nsec);
	if (mkdir(out, 0755) == 0)
		return true;
	out[0] = '\0';
	return false;
}

static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' ' || p[len] == '\n'))
			return true;
	return false;
}

static const char *const v2_mounts[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

/* v2: only where our own cgroup already delegates memory and pids to children. */
static bool prepare_v2(struct tp_limits *limits)
{
	char own[512], base[1024], controllers[256], text[64];

	if (own_cgroup("", own, sizeof(own)) < 0)
		return false;
	for (size_t i = 0; i < sizeof(v2_mounts) / sizeof(v2_mounts[0]); i++) {
		snprintf(base, sizeof(base), "%s%s", v2_mounts[i], strcmp(own, "/") == 0 ? "" : own);
		if (read_file(base, "cgroup.subtree_control", controllers, sizeof(controllers)) < 0)
			continue;
		if (!has_word(controllers, "memory"))
			continue;
		if (!make_child_cgroup(base, limits->memory_dir, sizeof(limits->memory_dir)))
			continue;
		snprintf(text, sizeof(text), "%" PRIu64, limits->memory_bytes);
		if (write_file(limits->memory_dir, "memory.max", text) < 0) {
			rmdir(limits->memory_dir);
			limits->memory_dir[0] = '\0';
			continue;
		}
		write_file(limits->memory_dir, "memory.swap.max", "0");
		write_file(limits->memory_dir, "memory.oom.group", "1");
		limits->memory_mechanism = TP_LIMIT_CGROUP_V2;
		if (has_word(controllers, "pids")) {
			snprintf(text, sizeof(text), "%u", limits->threads);
			if (write_file(limits->memory_dir, "pids.max", text) == 0)
				limits->threads_mechanism = TP_LIMIT_CGROUP_V2;
		}
		return true;
	}
	return false;
}

static bool prepare_v1(const char *controller, const char *limit_file, uint64_t value,
		       char *dir, size_t dir_size)
{
	char own[512], base[1024], text[64];

	if (own_cgroup(controller, own, sizeof(own)) < 0)
		return false;
	snprintf(base, sizeof(base), "/sys/fs/cgroup/%s%s", controller,
		 strcmp(own, "/") == 0 ? "" : own);
	if (!make_child_cgroup(base, dir, dir_size))
		return false;
	snprintf(text, sizeof(text), "%" PRIu64, value);
	if (write_file(dir, limit_file, text) < 0) {
		rmdir(dir);
		dir[0] = '\0';
		return false;
	}
	return true;
}

void tp_limits_prepare(struct tp_limits *limits)
{
	limits->memory_mechanism = TP_LIMIT_RLIMIT;
	limits->threads_mechanism = TP_LIMIT_RLIMIT;
	limits->memory_dir[0] = limits->pids_dir[0] = '\0';

	if (prepare_v2(limits))
		return;
	if (prepare_v1("memory", "memory.limit_in_bytes", limits->memory_bytes, limits->memory_dir,
		       sizeof(limits->memory_dir))) {
		char text[64];
		snprintf(text, sizeof(text), "%" PRIu64, limits->memory_bytes);
		/* memsw exists only with swap accounting; there it must not exceed the limit */
		write_file(limits->memory_dir, "memory.memsw.limit_in_bytes", text);
		limits->memory_mechanism = TP_LIMIT_CGROUP_V1;
	}
	if (prepare_v1("pids", "pids.max", limits->threads, limits->pids_dir,
		       sizeof(limits->pids_dir)))
		limits->threads_mechanism = TP_LIMIT_CGROUP_V1;
}

int tp_limits_attach(const struct tp_limits *limits, pid_t pid)
{
	char text[32];
	int r;

	snprintf(text, sizeof(text), "%d", (int)pid);
	if (limits->memory_dir[0] && (r = write_file(limits->memory_dir, "cgroup.procs", text)) < 0)
		return r;
	if (limits->pids_dir[0] && (r = write_file(limits->pids_dir, "cgroup.procs", text)) < 0)
		return r;
	return 0;
}

int tp_limits_apply_rlimits(const struct tp_limits *limits, uint64_t cpu_ms)
{
	/* soft = hard: the kernel sends SIGKILL at the limit, nothing to catch */
	rlim_t cpu_s = (rlim_t)((cpu_ms + 999) / 1000);
	struct rlimit cpu = { cpu_s, cpu_s };
	struct rlimit none = { 0, 0 };

	if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_CORE, &none) < 0)
		return -errno;
	if (limits->memory_mechanism == TP_LIMIT_RLIMIT) {
		struct rlimit as = { limits->memory_bytes, limits->memory_bytes };
		if (setrlimit(RLIMIT_AS, &as) < 0)
			return -errno;
	}
	if (limits->threads_mechanism == TP_LIMIT_RLIMIT) {
		/* counted per user in the service's own user namespace */
		struct rlimit nproc = { limits->threads, limits->threads };
		if (setrlimit(RLIMIT_NPROC, &nproc) < 0)
			return -errno;
	}
	return 0;
}

static uint64_t read_counter(const char *dir, const char *file, const char *key)
{
	char buf[4096];
	const char *p;

	if (!dir[0] || read_file(dir, file, buf, sizeof(buf)) < 0)
		return 0;
	if (!key)
		return strtoull(buf, NULL, 10);
	for (p = buf; (p = strstr(p, key)); p++)
		if ((p == buf || p[-1] == '\n') && p[strlen(key)] == ' ')
			return strtoull(p + strlen(key) + 1, NULL, 10);
	return 0;
}

bool tp_limits_oom_killed(const struct tp_limits *limits)
{
	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V2)
		return read_counter(limits->memory_dir, "memory.events", "oom_kill") > 0;
	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V1)
		return read_counter(limits->memory_dir, "memory.oom_control", "oom_kill") > 0;
	return false;
}

uint64_t tp_limits_peak_memory(const struct tp_limits *limits)
{
	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V2)
		return read_counter(limits->memory_dir, "memory.peak", NULL);
	if (limits->memory_mechanism == TP_LIMIT_CGROUP_V1)
		return read_counter(limits->memory_dir, "memory.max_usage_in_bytes", NULL);
	return 0;
}

static void remove_cgroup(char *dir)
{
	if (!dir[0])
		return;
	/* the last task leaves its cgroup a moment after it is reaped */
	for (int i = 0; i < 200 && rmdir(dir) < 0 && errno == EBUSY; i++)
		usleep(500);
	dir[0] = '\0';
}

void tp_limits_cleanup(struct tp_limits *limits)
{
	remove_cgroup(limits->memory_dir);
	remove_cgroup(limits->pids_dir);
}

const char *tp_limit_mechanism_name(enum tp_limit_mechanism m, bool memory)
{
	switch (m) {
	case TP_LIMIT_CGROUP_V2:
		return memory ? "cgroup v2 memory.max (swap 0, oom.group)" : "cgroup v2 pids.max";
	case TP_LIMIT_CGROUP_V1:
		return memory ? "cgroup v1 memory.limit_in_bytes" : "cgroup v1 pids.max";
	case TP_LIMIT_RLIMIT:
		break;
	}
	return memory ? "RLIMIT_AS (fallback: address space, weaker than a cgroup)"
		      : "RLIMIT_NPROC (fallback)";
}
