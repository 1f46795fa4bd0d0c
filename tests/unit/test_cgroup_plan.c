/* Where teepy's cgroups go, from the text real hosts give (fixtures below). */
#include "test.h"
#include "../../src/sandbox/cgroup_plan.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

/* A stock Debian 12 host (systemd, pure cgroup v2), root logged in over ssh. */
static const char debian12_self[] = "0::/user.slice/user-0.slice/session-3.scope\n";
static const char debian12_root_controllers[] = "cpuset cpu io memory hugetlb pids rdma misc\n";

/* The hybrid build machines: v1 controllers, an empty v2 at /sys/fs/cgroup/unified. */
static const char hybrid_self[] = "9:name=systemd:/\n"
				  "8:pids:/\n"
				  "7:blkio:/\n"
				  "4:memory:/process_api/67ea89da17b24dade54d7c6024d3677b\n"
				  "2:cpuacct:/\n"
				  "1:cpu:/\n"
				  "0::/\n";

/* Debian 10 style v1: cpu and cpuacct mounted together. */
static const char comounted_self[] = "5:cpu,cpuacct:/user.slice\n4:memory:/user.slice\n";

static void test_own_path_of_the_v2_line(void)
{
	char path[256];

	CHECK(tp_cgroup_own_path(debian12_self, "", path, sizeof(path)) == 0);
	CHECK_STR(path, "/user.slice/user-0.slice/session-3.scope");
	CHECK(tp_cgroup_own_path(hybrid_self, "", path, sizeof(path)) == 0);
	CHECK_STR(path, "/");
}

static void test_own_path_of_a_v1_controller(void)
{
	char path[256];

	CHECK(tp_cgroup_own_path(hybrid_self, "memory", path, sizeof(path)) == 0);
	CHECK_STR(path, "/process_api/67ea89da17b24dade54d7c6024d3677b");
	CHECK(tp_cgroup_own_path(hybrid_self, "pids", path, sizeof(path)) == 0);
	CHECK_STR(path, "/");
	/* a controller mounted with another is found by its own name */
	CHECK(tp_cgroup_own_path(comounted_self, "cpuacct", path, sizeof(path)) == 0);
	CHECK_STR(path, "/user.slice");
	CHECK(tp_cgroup_own_path(comounted_self, "cpu", path, sizeof(path)) == 0);
	CHECK_STR(path, "/user.slice");
}

static void test_own_path_absent_or_too_long(void)
{
	char path[8];

	CHECK(tp_cgroup_own_path(debian12_self, "memory", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_own_path(comounted_self, "", path, sizeof(path)) == -ENOENT);
	/* "name=systemd" is not the "systemd" controller, nor is "cpu" in "cpuacct" */
	CHECK(tp_cgroup_own_path(hybrid_self, "systemd", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_own_path("2:cpuacct:/\n", "cpu", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_own_path(debian12_self, "", path, sizeof(path)) == -ENAMETOOLONG);
	CHECK(tp_cgroup_own_path("", "", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_own_path("garbage\n0:\n", "", path, sizeof(path)) == -ENOENT);
}

static void test_controller_lists_match_whole_words(void)
{
	CHECK(tp_cgroup_list_has(debian12_root_controllers, "memory"));
	CHECK(tp_cgroup_list_has(debian12_root_controllers, "misc"));
	CHECK(tp_cgroup_list_has("memory pids\n", "pids"));
	CHECK(!tp_cgroup_list_has("cpuset cpu io\n", "cpuacct"));
	CHECK(!tp_cgroup_list_has("cpuset io\n", "cpu"));
	CHECK(!tp_cgroup_list_has("", "memory"));
}

static void test_v2_own_cgroup_when_it_delegates_memory(void)
{
	struct tp_cgroup_v2_plan plan;

	/* systemd-run -p Delegate=yes: the unit's cgroup hands memory and pids down */
	tp_cgroup_v2_choose("/sys/fs/cgroup", "/system.slice/run-1.service", "memory pids\n", NULL,
			    0, debian12_root_controllers, false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_OWN);
	CHECK_STR(plan.parent, "/sys/fs/cgroup/system.slice/run-1.service");
	CHECK(plan.pids);
	CHECK_STR(plan.enable, "");
}

static void test_v2_root_in_a_session_scope_uses_a_teepy_cgroup(void)
{
	struct tp_cgroup_v2_plan plan;

	/* the scope holds the shell: nothing can be enabled in its subtree */
	tp_cgroup_v2_choose("/sys/fs/cgroup", "/user.slice/user-0.slice/session-3.scope", "", NULL,
			    0, debian12_root_controllers, true, &plan);
	CHECK(plan.place == TP_CGROUP_V2_TEEPY);
	CHECK_STR(plan.parent, "/sys/fs/cgroup/teepy");
	CHECK_STR(plan.enable, "+memory +pids");
	CHECK(plan.pids);
}

static void test_v2_user_in_a_session_scope_gets_no_cgroup(void)
{
	struct tp_cgroup_v2_plan plan;

	tp_cgroup_v2_choose("/sys/fs/cgroup", "/user.slice/user-1000.slice/session-3.scope", "",
			    NULL, 0, debian12_root_controllers, false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_NONE);
}

/* What a user's manager starts (a terminal, `systemd-run --user --scope`) sits in a
 * scope under app.slice, in the subtree systemd delegates to the user (user@.service):
 * make check-kernel's guest builds the same for uid 65534. */
static const char user_scope[] =
    "/user.slice/user-65534.slice/user@65534.service/app.slice/check-kernel.scope";

static void test_v2_user_uses_the_nearest_delegated_ancestor(void)
{
	static const char *const app_slice_delegates[] = { "memory pids\n", "cpu memory pids\n" };
	struct tp_cgroup_v2_plan plan;

	tp_cgroup_v2_choose("/sys/fs/cgroup", user_scope, "", app_slice_delegates, 2,
			    debian12_root_controllers, false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_ANCESTOR);
	CHECK_STR(plan.parent,
		  "/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service/app.slice");
	CHECK(plan.pids);
	CHECK_STR(plan.enable, "");
}

static void test_v2_user_passes_ancestors_without_memory(void)
{
	static const char *const only_the_service[] = { "cpu\n", "memory\n" };
	struct tp_cgroup_v2_plan plan;

	tp_cgroup_v2_choose("/sys/fs/cgroup", user_scope, "", only_the_service, 2,
			    debian12_root_controllers, false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_ANCESTOR);
	CHECK_STR(plan.parent, "/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service");
	CHECK(!plan.pids);
}

static void test_v2_user_without_a_delegated_ancestor_gets_no_cgroup(void)
{
	static const char *const none[] = { "pids\n", "" };
	static const char *const past_the_root[] = { "memory\n", "memory\n" };
	struct tp_cgroup_v2_plan plan;

	/* the ancestors it may write delegate no memory (up stops at one it may not) */
	tp_cgroup_v2_choose("/sys/fs/cgroup", user_scope, "", none, 2, debian12_root_controllers,
			    false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_NONE);
	/* "/a" has one ancestor, "/": nothing is made above it */
	tp_cgroup_v2_choose("/sys/fs/cgroup", "/a", "", past_the_root, 2, debian12_root_controllers,
			    false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_ANCESTOR);
	CHECK_STR(plan.parent, "/sys/fs/cgroup");
	tp_cgroup_v2_choose("/sys/fs/cgroup", "/", "", past_the_root, 2, debian12_root_controllers,
			    false, &plan);
	CHECK(plan.place == TP_CGROUP_V2_NONE);
}

static void test_v2_root_keeps_its_teepy_cgroup_over_ancestors(void)
{
	static const char *const delegated[] = { "memory pids\n" };
	struct tp_cgroup_v2_plan plan;

	tp_cgroup_v2_choose("/sys/fs/cgroup", user_scope, "", delegated, 1,
			    debian12_root_controllers, true, &plan);
	CHECK(plan.place == TP_CGROUP_V2_TEEPY);
	CHECK_STR(plan.parent, "/sys/fs/cgroup/teepy");
}

static void test_parent_of_a_cgroup_path(void)
{
	char path[16] = "/a/bc/d";

	CHECK(tp_cgroup_parent_path(path, path, sizeof(path)) == 0);
	CHECK_STR(path, "/a/bc");
	CHECK(tp_cgroup_parent_path(path, path, sizeof(path)) == 0);
	CHECK_STR(path, "/a");
	CHECK(tp_cgroup_parent_path(path, path, sizeof(path)) == 0);
	CHECK_STR(path, "/");
	CHECK(tp_cgroup_parent_path(path, path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_parent_path("", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_parent_path("a/b", path, sizeof(path)) == -ENOENT);
	CHECK(tp_cgroup_parent_path("/abcd/e", path, 5) == -ENAMETOOLONG);
}

static void test_v2_without_memory_controller_gets_no_cgroup(void)
{
	struct tp_cgroup_v2_plan plan;

	/* the hybrid hosts: the v1 hierarchies hold memory and pids */
	tp_cgroup_v2_choose("/sys/fs/cgroup/unified", "/", "", NULL, 0, "", true, &plan);
	CHECK(plan.place == TP_CGROUP_V2_NONE);
	/* memory without pids: the cgroup is still made, pids are capped otherwise */
	tp_cgroup_v2_choose("/sys/fs/cgroup", "/", "", NULL, 0, "cpu memory\n", true, &plan);
	CHECK(plan.place == TP_CGROUP_V2_TEEPY);
	CHECK_STR(plan.enable, "+memory");
	CHECK(!plan.pids);
}

static void test_v2_own_root_cgroup_is_not_doubled(void)
{
	struct tp_cgroup_v2_plan plan;

	tp_cgroup_v2_choose("/sys/fs/cgroup", "/", "cpu memory\n", NULL, 0, "cpu memory\n", true,
			    &plan);
	CHECK(plan.place == TP_CGROUP_V2_OWN);
	CHECK_STR(plan.parent, "/sys/fs/cgroup");
	CHECK(!plan.pids);
}

static void test_run_name_holds_pid_and_start_time(void)
{
	const struct tp_cgroup_owner me = { 4242, true, 987654321, true, 0xeffffffceffffffbull };
	const struct tp_cgroup_owner no_ns = { 4242, true, 987654321, false, 0 };
	const struct tp_cgroup_owner old = { 4242, false, 0, false, 0 };
	struct tp_cgroup_owner o;
	char name[64];

	CHECK(tp_cgroup_run_name(&me, 0x1a2b, name, sizeof(name)) == 0);
	CHECK_STR(name, "teepy-4242-987654321-effffffceffffffb-1a2b");
	CHECK(tp_cgroup_run_owner(name, &o) == 0);
	CHECK(o.pid == 4242 && o.has_start && o.start == 987654321);
	CHECK(o.has_ns && o.ns == 0xeffffffceffffffbull);
	CHECK(tp_cgroup_run_name(&no_ns, 0x1a2b, name, sizeof(name)) == 0);
	CHECK_STR(name, "teepy-4242-987654321-1a2b");
	CHECK(tp_cgroup_run_owner(name, &o) == 0);
	CHECK(o.pid == 4242 && o.has_start && o.start == 987654321 && !o.has_ns);
	CHECK(tp_cgroup_run_name(&old, 0x1a2b, name, sizeof(name)) == 0);
	CHECK_STR(name, "teepy-4242-1a2b");
	CHECK(tp_cgroup_run_name(&me, 0x1a2b, name, 20) == -ENAMETOOLONG);
}

static void test_run_owner_from_cgroup_name(void)
{
	struct tp_cgroup_owner o;

	CHECK(tp_cgroup_run_owner("teepy-1234-5678-1a2b3c", &o) == 0);
	CHECK(o.pid == 1234 && o.has_start && o.start == 5678 && !o.has_ns);
	CHECK(tp_cgroup_run_owner("teepy-1234-5678-f00000001-1a2b3c", &o) == 0);
	CHECK(o.pid == 1234 && o.start == 5678 && o.has_ns && o.ns == 0xf00000001ull);
	CHECK(tp_cgroup_run_owner("teepy-1234-5678--1a", &o) == -EINVAL && o.pid == 0);
	CHECK(tp_cgroup_run_owner("teepy-1234-5678-12345678901234567-1a", &o) == -EINVAL);
	CHECK(tp_cgroup_run_owner("teepy-1234-5678-1X-1a", &o) == -EINVAL);
	CHECK(tp_cgroup_run_owner("teepy-1-0-0", &o) == 0);
	CHECK(o.pid == 1 && o.has_start && o.start == 0);
	CHECK(tp_cgroup_run_owner("teepy-7-18446744073709551615-f", &o) == 0);
	CHECK(o.start == UINT64_MAX);
	/* an older teepy's name: the pid alone, then a hex suffix (digits too) */
	CHECK(tp_cgroup_run_owner("teepy-1234-1a2b3c", &o) == 0);
	CHECK(o.pid == 1234 && !o.has_start);
	CHECK(tp_cgroup_run_owner("teepy-1234-5678", &o) == 0);
	CHECK(o.pid == 1234 && !o.has_start);
	/* anything else is not a run's cgroup, and o says no owner */
	static const char *const others[] = {
		"teepy",
		"teepy-",
		"teepy-0-1",
		"teepy--5-1",
		"teepy-12x-1",
		"teepy-012-1",
		"teepy-99999999999-1",
		"user.slice",
		"teepy-12-",
		"teepy-12-34-",
		"teepy-12-34-5-6-7",
		"teepy-12-3x-5",
		"teepy-12-18446744073709551616-5",
		"teepy-12-1A2B",
		"teepy-12-07-5",
		"xteepy-12-34-5",
		"teepy-12-34-5\n",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		o.pid = 99;
		if (tp_cgroup_run_owner(others[i], &o) != -EINVAL || o.pid != 0)
			fprintf(stderr, "  accepted as a run's cgroup: '%s'\n", others[i]);
		CHECK(tp_cgroup_run_owner(others[i], &o) == -EINVAL && o.pid == 0);
	}
}

/* /proc/<pid>/stat of a Python process on the build machines, and one whose
 * command name holds ") " and digits, as a process may name itself. */
static const char stat_python[] =
    "4096 (python3) S 4000 4096 4000 34816 4096 4194304 1520 0 0 0 3 1 0 0 20 0 1 0 "
    "123456 21237760 2369 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0\n";
static const char stat_odd_name[] =
    "77 (a) 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22) R 1 77 77 0 -1 "
    "4194560 100 0 0 0 0 0 0 0 20 0 1 0 555 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 "
    "0 17 0 0 0 0 0 0\n";

static void test_proc_stat_start_time(void)
{
	uint64_t start = 0;

	CHECK(tp_proc_stat_start(stat_python, &start) == 0 && start == 123456);
	CHECK(tp_proc_stat_start(stat_odd_name, &start) == 0 && start == 555);
	CHECK(tp_proc_stat_start("", &start) == -EINVAL);
	CHECK(tp_proc_stat_start("4096 (python3) S 4000 4096", &start) == -EINVAL);
	CHECK(tp_proc_stat_start("4096 (python3) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 "
				 "-5 6 7\n",
				 &start) == -EINVAL);
	/* cut short after field 22: not the kernel's text */
	CHECK(tp_proc_stat_start("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
				 &start) == -EINVAL);
}

static void test_owner_gone_by_pid_and_start_time(void)
{
	const struct tp_cgroup_owner same = { 4096, true, 123456, true, 1 };
	const struct tp_cgroup_owner other = { 4096, true, 123455, true, 1 };
	const struct tp_cgroup_owner old = { 4096, false, 0, false, 0 };

	/* the pid names no process: dead, whatever the name's form */
	CHECK(tp_cgroup_owner_gone(&same, NULL));
	CHECK(tp_cgroup_owner_gone(&old, NULL));
	/* the pid is the owner, started when the name says: alive */
	CHECK(!tp_cgroup_owner_gone(&same, stat_python));
	/* the pid was given to another process since: dead */
	CHECK(tp_cgroup_owner_gone(&other, stat_python));
	/* an older name cannot tell: alive while the pid is */
	CHECK(!tp_cgroup_owner_gone(&old, stat_python));
	/* the pid exists but its start time cannot be read: alive */
	CHECK(!tp_cgroup_owner_gone(&other, ""));
}

static void test_stat_values(void)
{
	static const char oom_control[] = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
	static const char cpu_stat[] =
	    "usage_usec 2503411\nuser_usec 2400000\nsystem_usec 103411\n";
	uint64_t v = 0;

	CHECK(tp_cgroup_stat_value(oom_control, "oom_kill", &v) == 0 && v == 2);
	CHECK(tp_cgroup_stat_value(oom_control, "oom_kill_disable", &v) == 0 && v == 0);
	CHECK(tp_cgroup_stat_value(cpu_stat, "usage_usec", &v) == 0 && v == 2503411);
	CHECK(tp_cgroup_stat_value(cpu_stat, "system_usec", &v) == 0 && v == 103411);
	CHECK(tp_cgroup_stat_value(cpu_stat, "usec", &v) == -ENOENT);
	CHECK(tp_cgroup_stat_value("", "oom_kill", &v) == -ENOENT);
}

TESTS(cgroup_plan_tests) = {
	{ "cgroup own path of the v2 line", test_own_path_of_the_v2_line },
	{ "cgroup own path of a v1 controller", test_own_path_of_a_v1_controller },
	{ "cgroup own path absent or too long", test_own_path_absent_or_too_long },
	{ "cgroup controller lists match whole words", test_controller_lists_match_whole_words },
	{ "cgroup v2 own cgroup when it delegates memory",
	  test_v2_own_cgroup_when_it_delegates_memory },
	{ "cgroup v2 root in a session scope uses a teepy cgroup",
	  test_v2_root_in_a_session_scope_uses_a_teepy_cgroup },
	{ "cgroup v2 user in a session scope gets no cgroup",
	  test_v2_user_in_a_session_scope_gets_no_cgroup },
	{ "cgroup v2 user uses the nearest delegated ancestor",
	  test_v2_user_uses_the_nearest_delegated_ancestor },
	{ "cgroup v2 user passes ancestors without memory",
	  test_v2_user_passes_ancestors_without_memory },
	{ "cgroup v2 user without a delegated ancestor gets no cgroup",
	  test_v2_user_without_a_delegated_ancestor_gets_no_cgroup },
	{ "cgroup v2 root keeps its teepy cgroup over ancestors",
	  test_v2_root_keeps_its_teepy_cgroup_over_ancestors },
	{ "cgroup parent of a cgroup path", test_parent_of_a_cgroup_path },
	{ "cgroup v2 without memory controller gets no cgroup",
	  test_v2_without_memory_controller_gets_no_cgroup },
	{ "cgroup v2 own root cgroup is not doubled", test_v2_own_root_cgroup_is_not_doubled },
	{ "cgroup run name holds pid and start time", test_run_name_holds_pid_and_start_time },
	{ "cgroup run owner from cgroup name", test_run_owner_from_cgroup_name },
	{ "cgroup proc stat start time", test_proc_stat_start_time },
	{ "cgroup owner gone by pid and start time", test_owner_gone_by_pid_and_start_time },
	{ "cgroup stat values", test_stat_values },
	END_TESTS,
};
