/* The root plan: links recorded on the way, binds ordered, nothing twice. */
#include "test.h"
#include "../../src/sandbox/root.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct tp_root_op *find(const struct tp_root_plan *p, const char *path)
{
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->ops[i].path, path) == 0)
			return &p->ops[i];
	return NULL;
}

static void test_links_on_the_way_are_recorded(void)
{
	char dir[] = "/tmp/teepy-unit-XXXXXX";
	char path[512], link1[512], link2[512];
	struct tp_root_plan plan = { 0 };
	const struct tp_root_op *op;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/real", dir);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/real/lib.so", dir);
	fclose(fopen(path, "w"));
	/* alt -> real/lib.so (absolute), entry -> alt (relative): like /etc/alternatives */
	snprintf(link1, sizeof(link1), "%s/alt", dir);
	CHECK(symlink(path, link1) == 0);
	snprintf(link2, sizeof(link2), "%s/entry", dir);
	CHECK(symlink("alt", link2) == 0);

	snprintf(path, sizeof(path), "%s/real", dir);
	CHECK(tp_root_plan_add_path(&plan, path) == 0);
	CHECK(tp_root_plan_add_links(&plan, link2) == 0);
	tp_root_plan_finish(&plan);

	op = find(&plan, link2);
	CHECK(op && op->kind == TP_ROOT_SYMLINK && strcmp(op->source, "alt") == 0);
	op = find(&plan, link1);
	CHECK(op && op->kind == TP_ROOT_SYMLINK);
	op = find(&plan, path);
	CHECK(op && op->kind == TP_ROOT_BIND);
	/* binds come before links */
	CHECK(plan.count == 3 && plan.ops[0].kind == TP_ROOT_BIND);
	tp_root_plan_free(&plan);

	snprintf(path, sizeof(path), "rm -rf %s", dir);
	CHECK(system(path) == 0);
}

static void test_links_to_nowhere_visible_are_dropped(void)
{
	char dir[] = "/tmp/teepy-unit-XXXXXX";
	char link[512];
	struct tp_root_plan plan = { 0 };

	CHECK(mkdtemp(dir) != NULL);
	snprintf(link, sizeof(link), "%s/passwd-link", dir);
	CHECK(symlink("/etc/passwd", link) == 0);
	CHECK(tp_root_plan_add_links(&plan, link) == 0);
	CHECK(plan.count == 0);
	tp_root_plan_free(&plan);
	unlink(link);
	rmdir(dir);
}

static void test_binds_under_binds_are_dropped(void)
{
	struct tp_root_plan plan = { 0 };

	CHECK(tp_root_plan_add(&plan, TP_ROOT_BIND, "/usr/lib/python3.11", "/usr/lib/python3.11",
			       0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_BIND, "/usr/lib", "/usr/lib", 0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_BIND, "/usr/libexec", "/usr/libexec", 0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_TMPFS, "/tmp", NULL, 1024) == 0);
	tp_root_plan_finish(&plan);
	CHECK(plan.count == 3);
	CHECK(plan.ops[0].kind == TP_ROOT_TMPFS);
	CHECK(find(&plan, "/usr/lib") != NULL);
	CHECK(find(&plan, "/usr/libexec") != NULL); /* a sibling, not a child */
	CHECK(find(&plan, "/usr/lib/python3.11") == NULL);
	CHECK(tp_root_plan_covers(&plan, "/usr/lib/x/y"));
	CHECK(!tp_root_plan_covers(&plan, "/usr/li"));
	tp_root_plan_free(&plan);
}

static void test_missing_path_is_an_error(void)
{
	struct tp_root_plan plan = { 0 };
	CHECK(tp_root_plan_add_path(&plan, "/nonexistent/teepy/path") < 0);
	CHECK(tp_root_plan_add_path(&plan, "relative") < 0);
	tp_root_plan_free(&plan);
}

static void test_kernel_mounts_at_beneath_or_above_a_path_are_found(void)
{
	static const char mountinfo[] =
	    "21 1 0:19 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
	    "22 21 0:20 / /proc rw,nosuid shared:2 - proc proc rw\n"
	    "23 21 0:21 / /sys rw,nosuid shared:3 - sysfs sysfs rw\n"
	    "24 21 0:22 / /tmp rw shared:4 - tmpfs tmpfs rw\n"
	    "40 24 0:20 / /srv/my\\040root/proc rw master:2 - proc proc rw\n"
	    "41 21 0:23 / /srv/plain/data rw - tmpfs tmpfs rw\n";
	char found[256] = "";

	CHECK(tp_root_kernel_mount_in(mountinfo, "/srv/my root", found, sizeof(found)) == 1);
	CHECK_STR(found, "proc at /srv/my root/proc");
	CHECK(tp_root_kernel_mount_in(mountinfo, "/srv", found, sizeof(found)) == 1);
	CHECK(tp_root_kernel_mount_in(mountinfo, "/proc/1", found, sizeof(found)) == 1);
	CHECK_STR(found, "proc at /proc");
	CHECK(tp_root_kernel_mount_in(mountinfo, "/sys", found, sizeof(found)) == 1);
	CHECK(tp_root_kernel_mount_in(mountinfo, "/srv/plain", found, sizeof(found)) == 0);
	CHECK(tp_root_kernel_mount_in(mountinfo, "/tmp/app", found, sizeof(found)) == 0);
	CHECK(tp_root_kernel_mount_in(mountinfo, "/srv/my", found, sizeof(found)) == 0);
	CHECK(tp_root_kernel_mount_in("", "/x", found, sizeof(found)) == 0);
	CHECK(tp_root_kernel_mount_in("garbage without fields", "/x", found, sizeof(found)) == 0);
	/* the host's own table: /proc is proc */
	CHECK(tp_root_kernel_mount("/proc", found, sizeof(found)) == 1);
	CHECK(tp_root_kernel_mount("/usr/lib", found, sizeof(found)) == 0);
}

TESTS(root_plan_tests) = {
	{ "links_on_the_way_are_recorded", test_links_on_the_way_are_recorded },
	{ "links_to_nowhere_visible_are_dropped", test_links_to_nowhere_visible_are_dropped },
	{ "binds_under_binds_are_dropped", test_binds_under_binds_are_dropped },
	{ "missing_path_is_an_error", test_missing_path_is_an_error },
	{ "kernel_mounts_at_beneath_or_above_a_path_are_found",
	  test_kernel_mounts_at_beneath_or_above_a_path_are_found },
	END_TESTS,
};
