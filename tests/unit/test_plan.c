/* The runner's planning, config in, plan out: what the root shows, sys.path, the
 * entry and the final limits, and the config errors said, not printed. Nothing is
 * spawned. Needs _teepy beside the test program, as teepy does. */
#include "test.h"
#include "../../src/pyboot/boot.h"
#include "../../src/runner/plan.h"
#include "../../src/runner/runner.h"
#include "../../src/runner/venv.h"
#include "../../src/channel/protocol.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/teepy-unit-plan-XXXXXX";
static char script_path[600], lib_path[600];

static void make_app(void)
{
	FILE *f;

	if (script_path[0])
		return;
	/* open to others, as root's service (host uid 65534) must find it */
	if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(script_path, sizeof(script_path), "%s/svc.py", dir);
	snprintf(lib_path, sizeof(lib_path), "%s/lib", dir);
	f = fopen(script_path, "w");
	if (!f || fputs("import teex\n", f) < 0 || fclose(f) != 0 || mkdir(lib_path, 0755) < 0) {
		perror(script_path);
		exit(2);
	}
}

/* Opens and plans cfg into inv; returns what tp_plan_root returned (or -1). */
static int plan(const struct tp_run_config *cfg, struct tp_invocation *inv, struct tp_outcome *out)
{
	if (tp_invocation_open(cfg, inv, out) < 0)
		return -1;
	return tp_plan_root(inv, out);
}

static struct tp_run_config config(void)
{
	make_app();
	/* no cache: the host's /run/teepy stays as it was (an --allow-site-packages
	 * plan keeps its facts about /etc/alternatives there) */
	return (struct tp_run_config){ .script = script_path,
				       .limits = tp_limits_default(),
				       .cancel_fd = -1,
				       .no_cache = "test_plan" };
}

static const struct tp_root_op *op_at(const struct tp_root_plan *p, const char *path)
{
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->ops[i].path, path) == 0)
			return &p->ops[i];
	return NULL;
}

static void test_a_script_sees_its_directory_the_stdlib_and_nothing_of_the_host(void)
{
	struct tp_run_config cfg = config();
	struct tp_invocation inv;
	struct tp_outcome out;

	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK(op_at(&inv.plan, dir) && op_at(&inv.plan, dir)->kind == TP_ROOT_BIND);
	CHECK(tp_root_plan_covers(&inv.plan, TP_PYTHON_STDLIB "/os.py"));
	CHECK(!tp_root_plan_covers(&inv.plan, "/etc/shadow"));
	CHECK(!tp_root_plan_covers(&inv.plan, "/usr/lib/python3/dist-packages"));
	CHECK(op_at(&inv.plan, "/etc/passwd") &&
	      op_at(&inv.plan, "/etc/passwd")->kind == TP_ROOT_FILE);
	CHECK(!op_at(&inv.plan, "/tmp")); /* no scratch unless asked */
	CHECK_STR(inv.entry, script_path);
	CHECK_STR(inv.cwd, dir);
	CHECK(inv.python_path.count == 3);
	CHECK_STR(inv.python_path.items[0], dir);
	CHECK_STR(inv.python_path.items[1], TP_PYTHON_STDLIB);
	CHECK_STR(inv.python_path.items[2], TP_PYTHON_STDLIB "/lib-dynload");
	CHECK(!inv.sealed && !inv.processes);
	CHECK(inv.limits.memory_bytes == TP_DEFAULT_MEMORY);
	tp_invocation_free(&inv);
}

static void test_pythonpath_and_site_packages_go_on_sys_path_in_order(void)
{
	struct tp_run_config cfg = config();
	const char *pythonpath[] = { lib_path, NULL };
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.pythonpath = pythonpath;
	cfg.allow_site_packages = true;
	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK(inv.python_path.count == 5);
	CHECK_STR(inv.python_path.items[0], dir);
	CHECK_STR(inv.python_path.items[1], lib_path);
	CHECK_STR(inv.python_path.items[4], TP_PYTHON_DIST_PACKAGES);
	CHECK(tp_root_plan_covers(&inv.plan, TP_PYTHON_DIST_PACKAGES));
	tp_invocation_free(&inv);
}

static void test_a_traced_build_sees_its_app_at_app(void)
{
	struct tp_run_config cfg = config();
	struct tp_invocation inv;
	struct tp_outcome out;
	struct tp_trace_log *log = (struct tp_trace_log *)&cfg; /* only tested for NULL */

	cfg.trace_log = log;
	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK_STR(inv.entry, "/app/svc.py");
	CHECK_STR(inv.cwd, "/app");
	CHECK_STR(inv.python_path.items[0], "/app");
	CHECK(op_at(&inv.plan, "/app") && strcmp(op_at(&inv.plan, "/app")->source, dir) == 0);
	tp_invocation_free(&inv);
}

static void test_scratch_is_a_private_tmp_and_no_allowed_path_may_lie_there(void)
{
	struct tp_run_config cfg = config();
	const char *allow[] = { lib_path, NULL }; /* under /tmp */
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.limits.scratch_bytes = 1 << 20;
	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK(op_at(&inv.plan, "/tmp") && op_at(&inv.plan, "/tmp")->kind == TP_ROOT_TMPFS);
	tp_invocation_free(&inv);
	cfg.allow = allow;
	CHECK(plan(&cfg, &inv, &out) < 0);
	CHECK(out.end == TP_END_CONFIG);
	CHECK(strstr(out.message, "--scratch makes /tmp private") != NULL);
	tp_invocation_free(&inv);
}

static void test_config_errors_are_said_with_what_to_do(void)
{
	struct tp_run_config cfg = config();
	const char *allow[] = { "/proc/self", NULL };
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.script = "/nonexistent/svc.py";
	CHECK(plan(&cfg, &inv, &out) < 0 && out.end == TP_END_CONFIG);
	CHECK_STR(out.message, "/nonexistent/svc.py: No such file or directory");
	tp_invocation_free(&inv);

	cfg = config();
	cfg.allow = allow;
	CHECK(plan(&cfg, &inv, &out) < 0 && out.end == TP_END_CONFIG);
	CHECK(strstr(out.message, "/proc is the host's kernel view") != NULL);
	tp_invocation_free(&inv);

	cfg = config();
	cfg.limits.memory_bytes = 16 << 20;
	CHECK(plan(&cfg, &inv, &out) < 0 && out.end == TP_END_CONFIG);
	CHECK(strstr(out.message, "use --memory 32M or more") != NULL);
	tp_invocation_free(&inv);

	cfg = config();
	cfg.limits.memory_bytes = 40 << 20;
	cfg.input = "x";
	cfg.input_size = 41 << 20; /* only the size is read */
	cfg.input_name = "--input-file big";
	CHECK(plan(&cfg, &inv, &out) < 0 && out.end == TP_END_CONFIG);
	CHECK(strstr(out.message, "--input-file big: larger than the memory limit") != NULL);
	tp_invocation_free(&inv);
}

static void test_processes_policy_lets_programs_be_seen_and_run(void)
{
	struct tp_run_config cfg = config();
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.allow_processes = true;
	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK(inv.processes);
	CHECK(tp_root_plan_covers(&inv.plan, "/usr/bin/gzip"));
	CHECK(inv.exec_files[2] && strcmp(inv.exec_files[2], "/usr/bin") == 0);
	tp_invocation_free(&inv);
}

static int parse_cfg(const char *text, struct tp_venv_cfg *cfg)
{
	return tp_venv_parse_cfg(text, strlen(text), cfg);
}

static void test_venv_cfg_is_read_as_cpython_reads_it(void)
{
	struct tp_venv_cfg cfg;

	/* what python -m venv writes */
	CHECK(parse_cfg("home = /usr/bin\ninclude-system-site-packages = false\n"
			"version = 3.11.2\nexecutable = /usr/bin/python3.11\n",
			&cfg) == 0);
	CHECK_STR(cfg.home, "/usr/bin");
	CHECK_STR(cfg.version, "3.11.2");
	CHECK(!cfg.system_site_packages);
	/* virtualenv's spelling, any case, spaces and CRLF around, no final newline */
	CHECK(parse_cfg("HOME=/opt/x\r\n  Include-System-Site-Packages =  True \r\n"
			"version_info = 3.11.2.final.0",
			&cfg) == 0);
	CHECK_STR(cfg.home, "/opt/x");
	CHECK_STR(cfg.version, "3.11.2.final.0");
	CHECK(cfg.system_site_packages);
	/* only "true" is true; unknown keys and lines without '=' are ignored */
	CHECK(parse_cfg("home = /usr/bin\ninclude-system-site-packages = yes\njunk\nx = y\n",
			&cfg) == 0);
	CHECK(!cfg.system_site_packages && cfg.version[0] == '\0');
	/* no home: not a venv (CPython's own mark) */
	CHECK(parse_cfg("version = 3.11.2\n", &cfg) == -EINVAL);
	CHECK(parse_cfg("", &cfg) == -EINVAL);
	CHECK(parse_cfg("homes = /usr/bin\n", &cfg) == -EINVAL);
}

static void test_system_trees_cover_the_engine_libraries_and_packages_only(void)
{
	static const char *const taken[] = {
		TP_PYTHON_EXE,
		TP_LOADER,
		TP_PYTHON_STDLIB "/json/__init__.py",
		"/lib/" TP_MULTIARCH "/libc.so.6",
		"/usr/lib/" TP_MULTIARCH "/libz.so.1",
		"/usr/lib64/ld-linux-x86-64.so.2",
		TP_PYTHON_DIST_PACKAGES "/numpy/__init__.py",
		"/etc/alternatives/libblas.so.3-" TP_MULTIARCH,
		"/usr/share/zoneinfo/UTC",
	};
	static const char *const refused[] = {
		"/etc/shadow",	"/etc/passwd",	       "/root/.profile",
		"/home/a/b.py", "/usr/libx/y",	       "/usr/lib64x",
		"/etc",		"/usr/share/doc/x",    "/usr/bin/gzip",
		"/bin/sh",	"/usr/local/lib/x.so", "/usr/bin/python3-config",
	};

	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		CHECK(tp_system_tree_covers(taken[i], false, TP_ENGINE_CPYTHON));
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		CHECK(!tp_system_tree_covers(refused[i], false, TP_ENGINE_CPYTHON));
	/* pip's packages in /usr/local, not the rest of it */
	char local[256];
	snprintf(local, sizeof(local), "/usr/local%s/dist-packages/x.py",
		 TP_PYTHON_STDLIB + strlen("/usr"));
	CHECK(tp_system_tree_covers(local, false, TP_ENGINE_CPYTHON));
	snprintf(local, sizeof(local), "/usr/local%s/site.py", TP_PYTHON_STDLIB + strlen("/usr"));
	CHECK(!tp_system_tree_covers(local, false, TP_ENGINE_CPYTHON));
	/* the processes policy takes the programs it runs */
	CHECK(tp_system_tree_covers("/usr/bin/gzip", true, TP_ENGINE_CPYTHON));
	CHECK(tp_system_tree_covers("/bin/sh", true, TP_ENGINE_CPYTHON));
	CHECK(!tp_system_tree_covers("/etc/shadow", true, TP_ENGINE_CPYTHON));
}

#ifdef TP_PYPY_EXE
/* each engine's interpreter is a system file of its own bundles only (both stdlibs
 * lie under /usr/lib, which the loader searches for libraries: every bundle's) */
static void test_system_trees_cover_an_engines_files_for_its_own_runs(void)
{
	CHECK(tp_system_tree_covers(TP_PYPY_EXE, false, TP_ENGINE_PYPY));
	CHECK(tp_system_tree_covers(TP_PYPY_COMMAND, false, TP_ENGINE_PYPY));
	CHECK(tp_system_tree_covers(TP_PYPY_STDLIB "/os.py", false, TP_ENGINE_PYPY));
	CHECK(tp_system_tree_covers("/usr/lib/" TP_MULTIARCH "/libpypy3.9-c.so", false,
				    TP_ENGINE_PYPY));
	CHECK(tp_system_tree_covers(TP_PYTHON_DIST_PACKAGES "/x.py", false, TP_ENGINE_PYPY));
	CHECK(!tp_system_tree_covers(TP_PYTHON_EXE, false, TP_ENGINE_PYPY));
	CHECK(!tp_system_tree_covers("/usr/bin/python3", false, TP_ENGINE_PYPY));
	CHECK(!tp_system_tree_covers(TP_PYPY_EXE, false, TP_ENGINE_CPYTHON));
	CHECK(!tp_system_tree_covers(TP_PYPY_COMMAND, false, TP_ENGINE_CPYTHON));
}

static void test_a_pypy_run_sees_pypys_interpreter_and_stdlib_not_cpythons(void)
{
	struct tp_run_config cfg = config();
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.engine = TP_ENGINE_PYPY;
	CHECK(plan(&cfg, &inv, &out) == 0);
	CHECK(inv.engine->name == TP_ENGINE_PYPY);
	CHECK(tp_root_plan_covers(&inv.plan, TP_PYPY_STDLIB "/os.py"));
	CHECK(tp_root_plan_covers(&inv.plan, TP_PYPY_EXE));
	CHECK(!tp_root_plan_covers(&inv.plan, TP_PYTHON_STDLIB "/os.py"));
	CHECK(!tp_root_plan_covers(&inv.plan, TP_PYTHON_EXE));
	CHECK(op_at(&inv.plan, TP_RUNTIME_DIR "/_teepy" TP_PYPY_EXT_SUFFIX));
	CHECK(!op_at(&inv.plan, TP_RUNTIME_DIR "/_teepy" TP_PYTHON_EXT_SUFFIX));
	CHECK(inv.python_path.count == 2);
	CHECK_STR(inv.python_path.items[1], TP_PYPY_STDLIB);
	CHECK_STR(inv.exec_files[0], TP_PYPY_EXE);
	tp_invocation_free(&inv);
}
#endif

static int note_dir(const char *searched, void *ctx)
{
	char *order = ctx;

	snprintf(order + strlen(order), 256 - strlen(order), "%s:", searched);
	return strcmp(searched, "/usr/lib") == 0 ? 7 : 0;
}

static void test_library_dirs_are_the_loaders_search_path_in_order(void)
{
	char order[256] = "";

	CHECK(tp_system_library_dirs_each(note_dir, order) == 7);
	CHECK_STR(order, "/lib/" TP_MULTIARCH ":/usr/lib/" TP_MULTIARCH ":/lib:/usr/lib:");
}

static bool reads(const struct tp_invocation *inv, const char *path)
{
	for (size_t i = 0; i < inv->read_trees.count; i++)
		if (strcmp(inv->read_trees.items[i], path) == 0)
			return true;
	return false;
}

static void test_landlock_reads_only_the_trees_the_root_shows(void)
{
	struct tp_run_config cfg = config();
	const char *pythonpath[] = { lib_path, NULL };
	struct tp_invocation inv;
	struct tp_outcome out;

	cfg.pythonpath = pythonpath;
	CHECK(plan(&cfg, &inv, &out) == 0);
	/* the binds, devices, the runtime's directory (import lists it), the user
	 * database; the script's directory holds lib, which is no tree of its own */
	CHECK(reads(&inv, dir) && !reads(&inv, lib_path));
	CHECK(reads(&inv, TP_PYTHON_STDLIB) && reads(&inv, "/usr/lib/" TP_MULTIARCH));
	CHECK(reads(&inv, "/dev/null") && reads(&inv, "/dev/urandom"));
	CHECK(reads(&inv, TP_RUNTIME_DIR));
	CHECK(reads(&inv, "/etc/passwd") && reads(&inv, "/etc/group"));
	/* nothing above them: not /, /usr, /etc, /dev, nor the links' places */
	for (size_t i = 0; i < inv.read_trees.count; i++) {
		const char *t = inv.read_trees.items[i];
		CHECK(strcmp(t, "/") != 0 && strcmp(t, "/usr") != 0 && strcmp(t, "/usr/lib") != 0 &&
		      strcmp(t, "/etc") != 0 && strcmp(t, "/dev") != 0 && strcmp(t, "/tmp") != 0);
		CHECK(strcmp(t, "/lib64") != 0 && strcmp(t, "/usr/bin/python3") != 0);
		for (size_t j = 0; j < inv.read_trees.count; j++)
			CHECK(i == j || !tp_root_path_under(t, inv.read_trees.items[j]));
	}
	tp_invocation_free(&inv);
}

/* A sealed root: the directories its files go into, not /, /usr or /app/sub again;
 * a file directly in / alone. */
static void test_landlock_reads_the_directories_of_a_sealed_roots_files(void)
{
	struct tp_root_plan plan = { 0 };
	struct tp_manifest_file files[] = {
		{ .path = "/app/sub/b.py" },
		{ .path = "/app/svc.py" },
		{ .path = "/top.py" },
		{ .path = "/usr/lib/python3.11/json/__init__.py" },
		{ .path = "/usr/lib/python3.11/os.py" },
	};
	struct tp_manifest m = { .files = files, .file_count = 5 };
	struct tp_invocation inv = { 0 };

	CHECK(tp_root_plan_add(&plan, TP_ROOT_DIR, "/usr/lib/python3.11/lib-dynload", NULL, 0) ==
	      0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_FILE, "/etc/passwd", "x", 0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_DEVICE, "/dev/null", "/dev/null", 0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_RUNTIME, "/.teepy/_teepy.so", "/x/_teepy.so", 0) ==
	      0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_SYMLINK, "/lib64", "usr/lib64", 0) == 0);
	CHECK(tp_root_plan_add(&plan, TP_ROOT_TMPFS, "/tmp", NULL, 1 << 20) == 0);
	CHECK(tp_plan_read_trees(&plan, &m, &inv.read_trees) == 0);
	CHECK(inv.read_trees.count == 6);
	CHECK(reads(&inv, "/usr/lib/python3.11") && reads(&inv, "/app") && reads(&inv, "/top.py"));
	CHECK(reads(&inv, "/etc/passwd") && reads(&inv, "/dev/null") && reads(&inv, "/.teepy"));
	tp_strlist_free(&inv.read_trees);
	tp_root_plan_free(&plan);
}

static void test_cleanup(void)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

TESTS(plan_tests) = {
	{ "plan: a script sees its directory and the stdlib, nothing else of the host",
	  test_a_script_sees_its_directory_the_stdlib_and_nothing_of_the_host },
	{ "plan: --pythonpath and site-packages on sys.path, in order",
	  test_pythonpath_and_site_packages_go_on_sys_path_in_order },
	{ "plan: a traced build sees its app at /app", test_a_traced_build_sees_its_app_at_app },
	{ "plan: Landlock reads only the trees the root shows, nothing above them",
	  test_landlock_reads_only_the_trees_the_root_shows },
	{ "plan: Landlock reads the directories of a sealed root's files",
	  test_landlock_reads_the_directories_of_a_sealed_roots_files },
	{ "plan: scratch is a private /tmp; no allowed path lies there",
	  test_scratch_is_a_private_tmp_and_no_allowed_path_may_lie_there },
	{ "plan: config errors are said, with what to do",
	  test_config_errors_are_said_with_what_to_do },
	{ "plan: the processes policy shows the programs and lets them run",
	  test_processes_policy_lets_programs_be_seen_and_run },
	{ "plan: system files come from the engine's, library and package trees only",
	  test_system_trees_cover_the_engine_libraries_and_packages_only },
#ifdef TP_PYPY_EXE
	{ "plan: an engine's interpreter and stdlib are system files of its bundles only",
	  test_system_trees_cover_an_engines_files_for_its_own_runs },
	{ "plan: a PyPy run sees PyPy's interpreter, stdlib and _teepy, not CPython's",
	  test_a_pypy_run_sees_pypys_interpreter_and_stdlib_not_cpythons },
#endif
	{ "plan: library directories are the loader's search path, in order",
	  test_library_dirs_are_the_loaders_search_path_in_order },
	{ "plan: a venv's pyvenv.cfg is read as CPython reads it",
	  test_venv_cfg_is_read_as_cpython_reads_it },
	{ "plan: (cleanup)", test_cleanup },
	END_TESTS
};
