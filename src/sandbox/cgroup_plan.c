/* Where teepy's cgroups go and what the kernel's cgroup files say: text in, choices out. */
#include "cgroup_plan.h"

#include <errno.h>
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

void tp_cgroup_v2_choose(const char *mount, const char *own, const char *own_subtree,
			 const char *root_controllers, bool privileged,
			 struct tp_cgroup_v2_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	if (tp_cgroup_list_has(own_subtree, "memory")) {
		plan->place = TP_CGROUP_V2_OWN;
		snprintf(plan->parent, sizeof(plan->parent), "%s%s", mount,
			 strcmp(own, "/") == 0 ? "" : own);
		plan->pids = tp_cgroup_list_has(own_subtree, "pids");
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
	plan->place = TP_CGROUP_V2_NONE;
}

pid_t tp_cgroup_run_owner(const char *name)
{
	char *end;
	long pid;

	if (strncmp(name, "teepy-", 6) != 0 || name[6] < '1' || name[6] > '9')
		return 0;
	pid = strtol(name + 6, &end, 10);
	if (*end != '-' || pid <= 0 || pid > 0x3fffffff)
		return 0;
	return (pid_t)pid;
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
