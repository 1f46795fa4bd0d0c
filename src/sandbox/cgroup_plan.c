/* Where teepy's cgroups go and what the kernel's cgroup files say: text in, choices out. */
#include "cgroup_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether the comma-separated list [list, end) holds word. */
static bool comma_list_has(const char *list, const char *end, const char *word)
{
	size_t len = strlen(word);

	while (list < end) {
		const char *comma = memchr(list, ',', (size_t)(end - list));
		const char *stop = comma ? comma : end;
		if ((size_t)(stop - list) == len && memcmp(list, word, len) == 0)
			return true;
		list = stop + 1;
	}
	return false;
}

int tp_cgroup_own_path(const char *text, const char *controller, char *path, size_t size)
{
	/* each line: hierarchy-id:controller,list:/path */
	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		const char *end = eol ? eol : line + strlen(line);
		const char *first = memchr(line, ':', (size_t)(end - line));
		const char *second =
		    first ? memchr(first + 1, ':', (size_t)(end - first - 1)) : NULL;

		if (second) {
			bool match = *controller ? comma_list_has(first + 1, second, controller) :
						   second == first + 1;
			if (match) {
				size_t len = (size_t)(end - second - 1);
				if (len == 0)
					return -ENOENT;
				if (len >= size)
					return -ENAMETOOLONG;
				memcpy(path, second + 1, len);
				path[len] = '\0';
				return 0;
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	return -ENOENT;
}

bool tp_cgroup_list_has(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ') &&
		    (p[len] == '\0' || p[len] == ' ' || p[len] == '\n'))
			return true;
	return false;
}

int tp_cgroup_parent_path(const char *path, char *parent, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (path[0] != '/' || path[1] == '\0' || !slash)
		return -ENOENT;
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= size)
		return -ENAMETOOLONG;
	memmove(parent, path, len);
	parent[len] = '\0';
	return 0;
}

static void place_under(struct tp_cgroup_v2_plan *plan, enum tp_cgroup_v2_place place,
			const char *mount, const char *path, const char *subtree)
{
	plan->place = place;
	snprintf(plan->parent, sizeof(plan->parent), "%s%s", mount,
		 strcmp(path, "/") == 0 ? "" : path);
	plan->pids = tp_cgroup_list_has(subtree, "pids");
}

void tp_cgroup_v2_choose(const char *mount, const char *own, const char *own_subtree,
			 const char *const *up, size_t up_count, const char *root_controllers,
			 bool privileged, struct tp_cgroup_v2_plan *plan)
{
	char path[512];

	memset(plan, 0, sizeof(*plan));
	if (tp_cgroup_list_has(own_subtree, "memory")) {
		place_under(plan, TP_CGROUP_V2_OWN, mount, own, own_subtree);
		return;
	}
	/* The v2 root is exempt from the no-internal-processes rule: root can enable
	 * controllers there and in a cgroup of its own below it. */
	if (privileged && tp_cgroup_list_has(root_controllers, "memory")) {
		plan->place = TP_CGROUP_V2_TEEPY;
		snprintf(plan->parent, sizeof(plan->parent), "%s/teepy", mount);
		plan->pids = tp_cgroup_list_has(root_controllers, "pids");
		snprintf(plan->enable, sizeof(plan->enable), "+memory%s",
			 plan->pids ? " +pids" : "");
		return;
	}
	snprintf(path, sizeof(path), "%s", own);
	for (size_t i = 0; !privileged && i < up_count && i < TP_CGROUP_V2_MAX_UP; i++) {
		if (tp_cgroup_parent_path(path, path, sizeof(path)) < 0)
			break;
		if (tp_cgroup_list_has(up[i], "memory")) {
			place_under(plan, TP_CGROUP_V2_ANCESTOR, mount, path, up[i]);
			return;
		}
	}
	plan->place = TP_CGROUP_V2_NONE;
}

int tp_cgroup_run_name(const struct tp_cgroup_owner *owner, unsigned long suffix, char *name,
		       size_t size)
{
	int n = owner->has_start && owner->has_ns ?
		    snprintf(name, size, "teepy-%d-%" PRIu64 "-%" PRIx64 "-%lx", (int)owner->pid,
			     owner->start, owner->ns, suffix) :
		owner->has_start ? snprintf(name, size, "teepy-%d-%" PRIu64 "-%lx", (int)owner->pid,
					    owner->start, suffix) :
				   snprintf(name, size, "teepy-%d-%lx", (int)owner->pid, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* The decimal number at *p (no sign, no leading zero unless it is "0") up to stop;
 * moves *p past it. */
static bool take_decimal(const char **p, char stop, uint64_t max, uint64_t *value)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != stop)
		return false;
	*p = s;
	*value = v;
	return true;
}

static bool is_hex_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int tp_cgroup_run_owner(const char *name, struct tp_cgroup_owner *owner)
{
	const char *p = name + 6;
	uint64_t pid, start;

	memset(owner, 0, sizeof(*owner));
	if (strncmp(name, "teepy-", 6) != 0 || !take_decimal(&p, '-', 0x3fffffff, &pid) || pid == 0)
		return -EINVAL;
	p++;
	owner->pid = (pid_t)pid;
	if (is_hex_word(p))
		return 0; /* an older teepy's "teepy-<pid>-<suffix>" */
	if (!take_decimal(&p, '-', UINT64_MAX, &start)) {
		owner->pid = 0;
		return -EINVAL;
	}
	owner->has_start = true;
	owner->start = start;
	p++;
	if (is_hex_word(p))
		return 0; /* "teepy-<pid>-<start>-<suffix>": no namespaces */
	const char *dash = strchr(p, '-');
	char *end;
	if (!dash || dash == p || dash - p > 16 || !is_hex_word(dash + 1)) {
		memset(owner, 0, sizeof(*owner));
		return -EINVAL;
	}
	for (const char *q = p; q < dash; q++)
		if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) {
			memset(owner, 0, sizeof(*owner));
			return -EINVAL;
		}
	owner->ns = strtoull(p, &end, 16);
	owner->has_ns = true;
	return 0;
}

int tp_proc_stat_start(const char *stat, uint64_t *start)
{
	const char *p = strrchr(stat, ')');

	if (!p)
		return -EINVAL;
	/* from the space before field 3 to the one before field 22 */
	p++;
	for (int field = 3; field < 22; field++)
		if (*p != ' ' || !(p = strchr(p + 1, ' ')))
			return -EINVAL;
	p++;
	/* the kernel writes more fields after it */
	return take_decimal(&p, ' ', UINT64_MAX, start) ? 0 : -EINVAL;
}

bool tp_cgroup_owner_gone(const struct tp_cgroup_owner *owner, const char *owner_stat)
{
	uint64_t start;

	if (!owner_stat)
		return true;
	if (!owner->has_start || tp_proc_stat_start(owner_stat, &start) < 0)
		return false;
	return start != owner->start;
}

int tp_cgroup_stat_value(const char *text, const char *key, uint64_t *value)
{
	size_t len = strlen(key);

	for (const char *p = text; (p = strstr(p, key)); p += len) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ') {
			*value = strtoull(p + len + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}
