/* Planning one invocation: the script or bundle loaded, its root, sys.path, limits,
 * environment and boot payload decided before anything is spawned. */
#include "plan.h"
#include "alternatives.h"
#include "cache.h"
#include "venv.h"

#include "../channel/channel.h"
#include "../crypto/crypto.h"
#include "../manifest/engine.h"
#include "../manifest/trust.h"

#include "../common/units.h"
#include "../pyboot/boot.h"
#include "../sandbox/landlock.h"
#include "../sandbox/sandbox.h"
#include "../sandbox/seccomp.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
				       "/dev/urandom" };

int tp_runner_fail(struct tp_outcome *out, enum tp_end end, const char *fmt, ...)
{
	va_list ap;

	out->end = end;
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
	return -1;
}

static size_t count_of(const char *const *list)
{
	size_t n = 0;

	while (list && list[n])
		n++;
	return n;
}

/* ---- the host's system trees ---- */

/* How an unsealed run shows a tree (NONE: it does not; only a bundle may take files
 * from it), and when. */
enum tree_show { SHOW_NONE, SHOW_BIND, SHOW_BIND_IF_PRESENT, SHOW_LINKS };
enum tree_when { WHEN_ALWAYS, WHEN_SITE_PACKAGES, WHEN_PROCESSES, WHEN_CPYTHON, WHEN_PYPY };

struct system_tree {
	const char *prefix; /* NULL, or what comes before path */
	const char *path;
	enum tree_show show;
	enum tree_when when; /* a bundle: WHEN_PROCESSES only with that policy, an
			      * engine's only if it runs on that engine */
	bool searched;	     /* the loader searches it for libraries, in this order */
};

/* The one list of what teepy takes from the host besides the script's directory and
 * what the person allows: an unsealed run shows it (and so a build's sample run, so
 * a bundle's manifest names it), and a sealed bundle's system files must lie under
 * it, as named and as resolved (links and all), unless the person running it
 * allows more with --allow. The signer writes the manifest: it cannot grant itself
 * host paths, not even by declaring a tree ("trees", bundle-format.md).
 *
 * A venv: teepy knows none yet (a manifest's "venv" tree is the signer's word, not
 * a grant). When a run names one, its directory joins the allowed paths the way an
 * --allow does (tp_plan_may_take); until then, --allow VENV does it. */
static const struct system_tree system_trees[] = {
	/* the engine: the interpreter, the link python3 names it by, its program loader */
	{ NULL, TP_PYTHON_EXE, SHOW_BIND, WHEN_CPYTHON, false },
	{ NULL, "/usr/bin/python3", SHOW_LINKS, WHEN_CPYTHON, false },
	{ NULL, TP_LOADER, SHOW_BIND, WHEN_ALWAYS, false },
	/* the interpreter's prefix: the stdlib and lib-dynload */
	{ NULL, TP_PYTHON_STDLIB, SHOW_BIND, WHEN_CPYTHON, false },
#ifdef TP_PYPY_EXE
	/* PyPy's: its interpreter (libpypy3.9-c.so, in the library directory, is the
	 * most of it), the link pypy3 names it by, its stdlib with lib_pypy in it */
	{ NULL, TP_PYPY_EXE, SHOW_BIND, WHEN_PYPY, false },
	{ NULL, TP_PYPY_COMMAND, SHOW_LINKS, WHEN_PYPY, false },
	{ NULL, TP_PYPY_STDLIB, SHOW_BIND, WHEN_PYPY, false },
#endif
	/* shared libraries: the loader's own search path when it has no ld.so.cache, as
	 * in a sealed root (ld.so --list-diagnostics: path.system_dirs), then the
	 * directories of the loader itself */
	{ NULL, "/lib/" TP_MULTIARCH, SHOW_LINKS, WHEN_ALWAYS, true },
	{ NULL, "/usr/lib/" TP_MULTIARCH, SHOW_BIND, WHEN_ALWAYS, true },
	{ NULL, "/lib", SHOW_NONE, WHEN_ALWAYS, true },
	{ NULL, "/usr/lib", SHOW_NONE, WHEN_ALWAYS, true },
	{ NULL, "/lib64", SHOW_NONE, WHEN_ALWAYS, false },
	{ NULL, "/usr/lib64", SHOW_NONE, WHEN_ALWAYS, false },
	/* the locale teepy sets (LC_CTYPE=C.UTF-8): without its data glibc falls back
	 * to "C" and CPython to its UTF-8 mode, which code and tests can tell apart.
	 * glibc may also have it built in, so its absence is no error. */
	{ NULL, "/usr/lib/locale/C.utf8", SHOW_BIND_IF_PRESENT, WHEN_ALWAYS, false },
	/* installed packages: Debian's, and pip's in /usr/local (Debian's posix_local
	 * scheme: /usr/local in place of /usr) */
	{ NULL, TP_PYTHON_DIST_PACKAGES, SHOW_BIND, WHEN_SITE_PACKAGES, false },
	{ "/usr/local", TP_PYTHON_STDLIB "/dist-packages" + sizeof("/usr") - 1, SHOW_NONE,
	  WHEN_CPYTHON, false },
	/* Debian's alternatives (BLAS, LAPACK): an unsealed run shows the links whose
	 * targets it shows (plan_alternatives) */
	{ NULL, "/etc/alternatives", SHOW_NONE, WHEN_ALWAYS, false },
	/* the time-zone database, one read-only directory: zoneinfo.ZoneInfo works as
	 * natively. The service's own zone stays UTC: no TZ is set and the host's
	 * /etc/localtime is not shown (zoneinfo's own "localtime" link dangles) */
	{ NULL, "/usr/share/zoneinfo", SHOW_BIND_IF_PRESENT, WHEN_ALWAYS, false },
	/* the programs a processes policy runs, and the shell their "#!" names */
	{ NULL, "/usr/bin", SHOW_BIND, WHEN_PROCESSES, false },
	{ NULL, "/bin/sh", SHOW_LINKS, WHEN_PROCESSES, false },
	{ NULL, "/bin", SHOW_NONE, WHEN_PROCESSES, false },
};

#define SYSTEM_TREE_COUNT (sizeof(system_trees) / sizeof(system_trees[0]))

/* Whether tree t is one of a run on engine with that processes policy (site-packages
 * aside: the caller decides them). */
static bool tree_of(const struct system_tree *t, bool processes, enum tp_engine engine)
{
	return (t->when != WHEN_PROCESSES || processes) &&
	       (t->when != WHEN_CPYTHON || engine == TP_ENGINE_CPYTHON) &&
	       (t->when != WHEN_PYPY || engine == TP_ENGINE_PYPY);
}

bool tp_system_tree_covers(const char *path, bool processes, enum tp_engine engine)
{
	for (size_t i = 0; i < SYSTEM_TREE_COUNT; i++) {
		const struct system_tree *t = &system_trees[i];
		size_t n = t->prefix ? strlen(t->prefix) : 0;
		if (!tree_of(t, processes, engine))
			continue;
		if (strncmp(path, t->prefix ? t->prefix : "", n) == 0 &&
		    tp_root_path_under(path + n, t->path))
			return true;
	}
	return false;
}

int tp_system_library_dirs_each(int (*fn)(const char *dir, void *ctx), void *ctx)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < SYSTEM_TREE_COUNT; i++)
		if (system_trees[i].searched)
			r = fn(system_trees[i].path, ctx);
	return r;
}

bool tp_plan_may_take(const struct tp_invocation *inv, const char *path)
{
	if (tp_system_tree_covers(path, inv->processes, inv->engine->name))
		return true;
	for (size_t i = 0; i < inv->allowed.count; i++)
		if (tp_root_path_under(path, inv->allowed.items[i]))
			return true;
	return false;
}

/* A bind shows every mount beneath it: no proc, sysfs, devtmpfs ... may be there.
 * WHAT names the flag or script in the message. */
static int check_no_kernel_mount(struct tp_outcome *out, const char *what, const char *real)
{
	char found[PATH_MAX + 64];
	int r = tp_root_kernel_mount(real, found, sizeof(found));

	if (r < 0)
		return tp_runner_fail(out, TP_END_INTERNAL,
				      "cannot read the mount table /proc/self/mountinfo: %s",
				      strerror(-r));
	if (r > 0)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: %s would show the host's kernel file system %s; use a "
				      "path without it",
				      what, real, found);
	return 0;
}

/* Whether root's service (host uid and gid TP_ROOT_SERVICE_HOST_ID, no other
 * group) is granted want (R_OK, X_OK) on a host file: the owner's, the group's or
 * the others' bits, the first that applies. */
static bool root_service_may(const struct stat *st, int want)
{
	unsigned id = TP_ROOT_SERVICE_HOST_ID;
	mode_t bits = st->st_uid == id ? st->st_mode >> 6 :
		      st->st_gid == id ? st->st_mode >> 3 :
					 st->st_mode;

	return ((want & R_OK) == 0 || (bits & S_IROTH)) && ((want & X_OK) == 0 || (bits & S_IXOTH));
}

/* Root's service is not root on the host: the script and its directory must be
 * open to it, which a 0600 file or a 0700 directory is not. Said here, in one
 * line, rather than by Python's PermissionError inside. */
static int check_root_service_reads(struct tp_invocation *inv, struct tp_outcome *out,
				    const struct stat *script)
{
	struct stat dir;

	if (getuid() != 0)
		return 0;
	if (!root_service_may(script, R_OK))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: root's service runs as host uid %u (nobody) and cannot "
				      "read it (mode %04o): make it readable to others (chmod o+r)",
				      inv->cfg->script, TP_ROOT_SERVICE_HOST_ID,
				      (unsigned)(script->st_mode & 07777));
	if (stat(inv->script_dir, &dir) == 0 && !root_service_may(&dir, R_OK | X_OK))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: root's service runs as host uid %u (nobody) and cannot "
				      "list its directory %s (mode %04o): open it to others "
				      "(chmod o+rx)",
				      inv->cfg->script, TP_ROOT_SERVICE_HOST_ID, inv->script_dir,
				      (unsigned)(dir.st_mode & 07777));
	return 0;
}

/* The unsealed script: its real path and directory. */
static int load_script(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct stat st;

	if (!realpath(cfg->script, inv->script))
		return tp_runner_fail(out, TP_END_CONFIG, "%s: %s", cfg->script, strerror(errno));
	if (stat(inv->script, &st) < 0 || !S_ISREG(st.st_mode))
		return tp_runner_fail(out, TP_END_CONFIG, "%s: not a regular file", cfg->script);
	if (access(inv->script, R_OK) < 0)
		return tp_runner_fail(out, TP_END_CONFIG, "%s: %s", cfg->script, strerror(errno));
	snprintf(inv->script_dir, sizeof(inv->script_dir), "%s", inv->script);
	*strrchr(inv->script_dir, '/') = '\0';
	if (!inv->script_dir[0])
		snprintf(inv->script_dir, sizeof(inv->script_dir), "/");

	/* the whole directory is visible inside: it must be the script's own */
	char home[PATH_MAX];
	const char *shared = tp_run_shared_dir(
	    inv->script_dir, cfg->home && *cfg->home && realpath(cfg->home, home) ? home : NULL);
	if (shared)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: its directory %s is %s, and all of it would be visible "
				      "inside; move the script into a directory of its own",
				      cfg->script, inv->script_dir, shared);
	if (check_no_kernel_mount(out, cfg->script, inv->script_dir) < 0 ||
	    check_root_service_reads(inv, out, &st) < 0)
		return -1;
	snprintf(inv->entry, sizeof(inv->entry), "%s", inv->script);
	snprintf(inv->cwd, sizeof(inv->cwd), "%s", inv->script_dir);
	return 0;
}

/* The memory limit holds the sealed root's files and, without a cgroup, the
 * scratch and output tmpfs (see limits.c); what is left must start the interpreter. Checked
 * once the limits are final: a bundle's signed limit, tightened by flags. */
static int check_memory(const struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	const struct tp_limits *l = &inv->limits;
	uint64_t root = inv->sealed ? inv->plan.reserve_bytes : 0;
	uint64_t taken = root + l->scratch_bytes + l->output_bytes;
	char limit[32], root_text[32], scratch[32], output[32], min[32], parts[160] = "";
	const char *fix;

	if (cfg->input_size > l->memory_bytes)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: larger than the memory limit (%s), which the service "
				      "could not hold (raise --memory)",
				      cfg->input_name ? cfg->input_name : "the input",
				      tp_format_size(l->memory_bytes, limit, sizeof(limit)));
	if (l->memory_bytes >= taken && l->memory_bytes - taken >= TP_LIMITS_MIN_MEMORY)
		return 0;
	if (root)
		snprintf(parts, sizeof(parts), " less the sealed root's files (%s)",
			 tp_format_size(root, root_text, sizeof(root_text)));
	if (l->scratch_bytes)
		snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts),
			 " less the scratch (%s)",
			 tp_format_size(l->scratch_bytes, scratch, sizeof(scratch)));
	if (l->output_bytes)
		snprintf(parts + strlen(parts), sizeof(parts) - strlen(parts), " less /out (%s)",
			 tp_format_size(l->output_bytes, output, sizeof(output)));
	if (l->output_bytes)
		fix = "lower --output-max (a quarter of --memory unless given), or raise --memory";
	else if (inv->sealed)
		fix = l->memory_bytes < inv->bundle.manifest.limits.memory_bytes ?
			  "raise --memory, up to the bundle's own limit" :
			  "rebuild the bundle with a larger --memory";
	else if (l->scratch_bytes)
		fix = "raise --memory or lower --scratch";
	else
		fix = "use --memory 32M or more";
	return tp_runner_fail(
	    out, TP_END_CONFIG,
	    "%s%smemory limit %s%s leaves less than the %s the interpreter needs (%s)",
	    inv->sealed ? cfg->script : "", inv->sealed ? ": " : "",
	    tp_format_size(l->memory_bytes, limit, sizeof(limit)), parts,
	    tp_format_size(TP_LIMITS_MIN_MEMORY, min, sizeof(min)), fix);
}

/* Landlock: what may be executed inside (the interpreter and its loader, and for a
 * processes policy the directory of programs). */
static void set_exec_files(struct tp_invocation *inv, const char *exe, const char *loader,
			   const char *more)
{
	snprintf(inv->exec_buf[0], PATH_MAX, "%s", exe);
	snprintf(inv->exec_buf[1], PATH_MAX, "%s", loader);
	inv->exec_files[0] = inv->exec_buf[0];
	inv->exec_files[1] = inv->exec_buf[1];
	inv->exec_files[2] = more;
	inv->exec_files[3] = NULL;
}

/* Debian's alternatives (BLAS, LAPACK) an unsealed run shows: decided from facts
 * kept in the cache directory where there is one (alternatives.c); a cache that is
 * off or fails its checks only costs the time, and is said by a sealed run. A
 * build's sample run takes them afresh: it makes no cache directory. */
static int plan_alternatives(struct tp_invocation *inv)
{
	const struct tp_run_config *cfg = inv->cfg;
	char path[PATH_MAX], why[256];
	int fd = cfg->no_cache || cfg->trace_log ?
		     -1 :
		     tp_cache_dir_open(cfg->cache_dir, cfg->runtime_dir, true, path, sizeof(path),
				       why, sizeof(why));
	int r = tp_alternatives_plan(&inv->plan, fd);

	if (fd >= 0)
		close(fd);
	return r;
}

/* One --allow or --pythonpath PATH (FLAG names it): its real path, or -1 with the
 * refusal said. WITH_SCRATCH: a private /tmp hides whatever is allowed under it. */
static int check_allowed(struct tp_invocation *inv, struct tp_outcome *out, const char *flag,
			 const char *path, bool with_scratch, char real[PATH_MAX])
{
	static const char *const kernel_dirs[] = { "/proc", "/sys", "/dev" };

	if (!realpath(path, real))
		return tp_runner_fail(out, TP_END_CONFIG, "%s %s: %s", flag, path, strerror(errno));
	if (strcmp(real, "/") == 0)
		return tp_runner_fail(out, TP_END_CONFIG, "%s %s: the whole host cannot be allowed",
				      flag, path);
	for (size_t k = 0; k < sizeof(kernel_dirs) / sizeof(kernel_dirs[0]); k++)
		if (tp_root_path_under(real, kernel_dirs[k]))
			return tp_runner_fail(out, TP_END_CONFIG,
					      "%s %s: %s is the host's kernel view (its processes, "
					      "devices, settings) and cannot be allowed",
					      flag, path, kernel_dirs[k]);
	if (with_scratch && inv->limits.scratch_bytes && tp_root_path_under(real, "/tmp"))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s %s: --scratch makes /tmp private; allow a path outside "
				      "/tmp, or drop --scratch",
				      flag, path);
	char what[PATH_MAX + 16];
	snprintf(what, sizeof(what), "%s %s", flag, path);
	return check_no_kernel_mount(out, what, real);
}

/* One --allow or --pythonpath PATH of an unsealed run: its real path into the plan. */
static int plan_allowed(struct tp_invocation *inv, struct tp_outcome *out, const char *flag,
			const char *path, char real[PATH_MAX])
{
	int r;

	if (check_allowed(inv, out, flag, path, true, real) < 0)
		return -1;
	if ((r = tp_root_plan_add_path(&inv->plan, real)) < 0)
		return tp_runner_fail(out, TP_END_CONFIG, "%s %s: %s", flag, path, strerror(-r));
	return 0;
}

/* A user database of the service's own account, root and nobody, and nothing of
 * the host's: pwd.getpwuid(os.getuid()), getpass.getuser(), Path.home() and
 * tarfile's owner names work as natively, and so does pwd.getpwuid(0), which
 * programs take for granted (CPython's test_tarfile looks root up at import). Every
 * Unix has root and nobody: naming them reveals no host account. Inside, uid 0 is
 * mapped to nothing; 65534 is what any unmapped owner shows as. */
static int plan_user_database(struct tp_invocation *inv)
{
	unsigned uid = tp_sandbox_service_uid(), gid = tp_sandbox_service_gid();
	const char *home = inv->limits.scratch_bytes ? "/tmp" : "/";
	char passwd[512], groups[256];
	int n, r;

	n = snprintf(passwd, sizeof(passwd),
		     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		     "teepy:x:%u:%u:teepy:%s:/usr/sbin/nologin\n",
		     uid, gid, home);
	if (uid != 65534)
		snprintf(passwd + n, sizeof(passwd) - (size_t)n,
			 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
	n = snprintf(groups, sizeof(groups), "root:x:0:\nteepy:x:%u:\n", gid);
	if (gid != 65534)
		snprintf(groups + n, sizeof(groups) - (size_t)n, "nogroup:x:65534:\n");
	r = tp_root_plan_add(&inv->plan, TP_ROOT_FILE, "/etc/passwd", passwd, 0);
	return r ?: tp_root_plan_add(&inv->plan, TP_ROOT_FILE, "/etc/group", groups, 0);
}

/* The output volume's tmpfs would hide whatever the root shows beneath /out: a
 * path the run makes visible there, or a sealed bundle's file. */
static int check_out_hides(const struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_root_plan *plan = &inv->plan;
	const struct tp_manifest *m = inv->sealed ? &inv->bundle.manifest : NULL;
	const char *hidden = NULL;

	if (!inv->has_out)
		return 0;
	for (size_t i = 0; !hidden && i < plan->count; i++)
		if (plan->ops[i].kind != TP_ROOT_TMPFS &&
		    tp_root_path_under(plan->ops[i].path, TP_OUT_DIR))
			hidden = plan->ops[i].path;
	for (size_t i = 0; !hidden && m && i < m->file_count; i++)
		if (tp_root_path_under(m->files[i].path, TP_OUT_DIR))
			hidden = m->files[i].path;
	if (!hidden)
		return 0;
	return tp_runner_fail(out, TP_END_CONFIG,
			      "--output-volume: the service's writable %s would hide %s, which "
			      "the run shows there (move it out of %s)",
			      TP_OUT_DIR, hidden, TP_OUT_DIR);
}

/* What every root has: devices, the runtime extension, the user database, scratch
 * and the output volume's /out. */
static int plan_runtime(struct tp_invocation *inv, struct tp_outcome *out)
{
	struct tp_root_plan *plan = &inv->plan;
	int r = 0;

	for (size_t i = 0; r == 0 && i < sizeof(devices) / sizeof(devices[0]); i++)
		r = tp_root_plan_add(plan, TP_ROOT_DEVICE, devices[i], devices[i], 0);
	char runtime[64 + sizeof(TP_RUNTIME_DIR)];
	snprintf(runtime, sizeof(runtime), "%s/_teepy%s", TP_RUNTIME_DIR, inv->engine->ext_suffix);
	r = r ?: tp_root_plan_add(plan, TP_ROOT_RUNTIME, runtime, inv->runtime_so, 0);
	r = r ?: plan_user_database(inv);
	if (r == 0 && inv->limits.scratch_bytes)
		r = tp_root_plan_add(plan, TP_ROOT_TMPFS, "/tmp", NULL, inv->limits.scratch_bytes);
	/* the output volume's /out: a quarter of the memory limit unless given, in whole
	 * pages (as tmpfs takes its size: what the publish checks is what it holds).
	 * teepy build's sample run has one too, published nowhere and out of no limit
	 * (at most TP_SAMPLE_OUT_MAX), so that a service that writes a volume can be
	 * built */
	uint64_t out_size = 0;
	if (!inv->cfg->output_volume) {
		inv->limits.output_bytes = 0;
		if (inv->cfg->trace_log)
			out_size = inv->limits.memory_bytes / 4 < TP_SAMPLE_OUT_MAX ?
				       inv->limits.memory_bytes / 4 :
				       TP_SAMPLE_OUT_MAX;
	} else {
		out_size = inv->limits.output_bytes ?: inv->limits.memory_bytes / 4;
		if (out_size > UINT64_MAX - 4095)
			out_size = UINT64_MAX - 4095;
		out_size = inv->limits.output_bytes = (out_size + 4095) & ~(uint64_t)4095;
	}
	inv->has_out = out_size > 0;
	if (r == 0 && inv->has_out)
		r = tp_root_plan_add(plan, TP_ROOT_TMPFS, TP_OUT_DIR, NULL, out_size);
	if (r < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot plan the root: %s",
				      strerror(-r));
	tp_root_plan_finish(plan);
	return check_out_hides(inv, out);
}

/* A venv's site-packages where a traced build sees it: under /venv. */
static void venv_site_inside(const struct tp_venv *venv, char *out, size_t size)
{
	snprintf(out, size, "%s%s", TP_VENV_DIR, venv->site + strlen(venv->dir));
}

/* sys.path of an unsealed run: the script's directory (or /app in a traced build),
 * the --pythonpath entries, the stdlib, lib-dynload, the venv's site-packages (its
 * .pth entries follow it, inside), and dist-packages if shown: a venv's python's
 * order. A build records the same list, rewritten to where the bundle has each
 * entry. */
static int plan_python_path(struct tp_invocation *inv, struct tp_outcome *out,
			    const struct tp_venv *venv)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_strlist *path = &inv->python_path;
	int r = cfg->trace_log	   ? tp_strlist_push(path, TP_APP_DIR) :
		inv->script_dir[0] ? tp_strlist_push(path, inv->script_dir) :
				     0; /* a shell's: no script */

	for (size_t i = 0; r == 0 && cfg->pythonpath && cfg->pythonpath[i]; i++) {
		char real[PATH_MAX];
		if (plan_allowed(inv, out, "--pythonpath", cfg->pythonpath[i], real) < 0)
			return -1;
		r = tp_strlist_push(path, real);
	}
	r = r ?: tp_strlist_push(path, inv->engine->stdlib);
	if (inv->engine->dynload)
		r = r ?: tp_strlist_push(path, inv->engine->dynload);
	if (r == 0 && venv) {
		char site[PATH_MAX];
		if (cfg->trace_log)
			venv_site_inside(venv, site, sizeof(site));
		else
			snprintf(site, sizeof(site), "%s", venv->site);
		r = tp_strlist_push(path, site) ?: tp_strlist_push(&inv->site_dirs, site);
	}
	if (r == 0 && inv->site_packages)
		r = tp_strlist_push(path, TP_PYTHON_DIST_PACKAGES);
	if (r < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	return 0;
}

/* --venv DIR: checked, and shown read-only at its path, or at /venv in a traced
 * build (as the app is at /app: the bundle carries the files the sample run used
 * from it, at the paths it used them). Its wish for the system's packages
 * (include-system-site-packages) shows dist-packages as --allow-site-packages does. */
static int plan_venv(struct tp_invocation *inv, struct tp_outcome *out, struct tp_venv *venv)
{
	const struct tp_run_config *cfg = inv->cfg;
	char err[PATH_MAX + 256], real[PATH_MAX];
	int r;

	if (tp_venv_open(cfg->venv, venv, err, sizeof(err)) < 0)
		return tp_runner_fail(out, TP_END_CONFIG, "--venv %s: %s", cfg->venv, err);
	if (!tp_root_path_under(venv->site, venv->dir))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "--venv %s: its site-packages leads outside it, to %s",
				      cfg->venv, venv->site);
	snprintf(inv->venv_dir, sizeof(inv->venv_dir), "%s", venv->dir);
	inv->site_packages = inv->site_packages || venv->system_site_packages;
	/* the directory checked is the one shown: its real path, resolved once */
	if (!cfg->trace_log)
		return plan_allowed(inv, out, "--venv", venv->dir, real);
	/* at /venv a private /tmp cannot hide it */
	if (check_allowed(inv, out, "--venv", venv->dir, false, real) < 0)
		return -1;
	if ((r = tp_root_plan_add(&inv->plan, TP_ROOT_BIND, TP_VENV_DIR, venv->dir, 0)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot plan the root: %s",
				      strerror(-r));
	return 0;
}

static int plan_unsealed(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	struct tp_root_plan *plan = &inv->plan;
	struct tp_venv venv;
	int r;

	inv->site_packages = cfg->allow_site_packages;
	if (cfg->venv && inv->engine->name != TP_ENGINE_CPYTHON)
		return tp_runner_fail(
		    out, TP_END_CONFIG,
		    "--venv: teepy reads CPython's virtual environments only (made "
		    "with /usr/bin/python3 -m venv): run this one with --engine "
		    "cpython");
	if (cfg->venv && plan_venv(inv, out, &venv) < 0)
		return -1;

	/* the interpreter, its stdlib and the shared libraries (with the links to them),
	 * dist-packages if allowed, the programs if a build allows processes */
	for (size_t i = 0; i < SYSTEM_TREE_COUNT; i++) {
		const struct system_tree *t = &system_trees[i];
		if (t->show == SHOW_NONE ||
		    (t->when == WHEN_SITE_PACKAGES && !inv->site_packages) ||
		    !tree_of(t, inv->processes, inv->engine->name))
			continue;
		r = t->show == SHOW_LINKS ? tp_root_plan_add_links(plan, t->path) :
					    tp_root_plan_add_path(plan, t->path);
		if (r == -ENOENT && t->show == SHOW_BIND_IF_PRESENT)
			continue;
		if (r < 0 && t->when == WHEN_SITE_PACKAGES)
			return tp_runner_fail(
			    out, TP_END_CONFIG,
			    "--allow-site-packages: %s: %s (install python3-numpy "
			    "or the packages you need)",
			    t->path, strerror(-r));
		if (r < 0)
			return tp_runner_fail(out, TP_END_INTERNAL,
					      "cannot show the system file %s in the root: %s",
					      t->path, strerror(-r));
	}

	/* what the user allows. A traced build sees its app where the sealed bundle
	 * will have it, at /app, so paths the sample run uses hold in the bundle */
	if (cfg->trace_log) {
		if ((r = tp_root_plan_add(plan, TP_ROOT_BIND, TP_APP_DIR, inv->script_dir, 0)) < 0)
			return tp_runner_fail(out, TP_END_INTERNAL, "cannot plan the root: %s",
					      strerror(-r));
		snprintf(inv->entry, sizeof(inv->entry), "%s%s", TP_APP_DIR,
			 inv->script + strlen(inv->script_dir));
		snprintf(inv->cwd, sizeof(inv->cwd), "%s", TP_APP_DIR);
	} else if (inv->script_dir[0] && (r = tp_root_plan_add_path(plan, inv->script_dir)) < 0) {
		return tp_runner_fail(out, TP_END_CONFIG, "%s: %s", inv->script_dir, strerror(-r));
	}
	for (size_t i = 0; cfg->allow && cfg->allow[i]; i++) {
		char real[PATH_MAX];
		if (plan_allowed(inv, out, "--allow", cfg->allow[i], real) < 0)
			return -1;
	}
	if (plan_python_path(inv, out, cfg->venv ? &venv : NULL) < 0)
		return -1;
	if ((inv->site_packages || cfg->venv || count_of(cfg->allow) ||
	     count_of(cfg->pythonpath)) &&
	    plan_alternatives(inv) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");

	char loader_real[PATH_MAX], exe_real[PATH_MAX];
	if (!realpath(TP_LOADER, loader_real) || !realpath(inv->engine->exe, exe_real))
		return tp_runner_fail(out, TP_END_INTERNAL, "cannot resolve the interpreter: %s",
				      strerror(errno));
	set_exec_files(inv, exe_real, loader_real, inv->processes ? "/usr/bin" : NULL);
	return plan_runtime(inv, out);
}

/* The engine the run's interpreter is, and the _teepy built for it. WHAT names
 * where the choice came from, for the message when this teepy has no such engine. */
static int plan_engine(struct tp_invocation *inv, struct tp_outcome *out, enum tp_engine name,
		       const char *what)
{
	if (!(inv->engine = tp_engine_built(name)))
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: this teepy was built without the engine %s (install "
				      "pypy3 and pypy3-dev, then rebuild teepy)",
				      what, tp_engine_word(name));
	if (tp_find_engine_runtime(inv->engine, inv->runtime_so, sizeof(inv->runtime_so)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL,
				      "runtime extension _teepy%s not found beside teepy or in %s "
				      "(rebuild with make)",
				      inv->engine->ext_suffix, TP_RUNTIME_INSTALL_DIR);
	return 0;
}

/* ---- sealed bundles ---- */

/* Who signed the bundle is settled before a byte of its manifest is parsed
 * (manifest/trust.c decides; the words are the runner's). */
int tp_runner_judge_signer(const struct tp_run_config *cfg, const struct tp_bundle_file *bf,
			   struct tp_outcome *out)
{
	size_t count = count_of(cfg->trust_paths), failed;
	const char *source = cfg->trust_source ? cfg->trust_source : "--trust";
	struct tp_signers signers = { 0 };
	char signer[65], err[256];
	int r = -1;

	tp_hex(bf->signer, 32, signer);
	if (tp_signers_load(&signers, cfg->trust_paths, count, &failed, err, sizeof(err)) < 0) {
		if (failed < count)
			return tp_runner_fail(out, TP_END_CONFIG, "%s %s: %s", source,
					      cfg->trust_paths[failed], err);
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	}
	switch (tp_trust_judge(&signers, cfg->insecure_any_signer, bf->bundle.pubkey,
			       bf->signature_ok)) {
	case TP_TRUST_UNKNOWN_SIGNER:
		tp_runner_fail(out, TP_END_REFUSED,
			       "%s: signed by %.16s…, which is none of the trusted signers (use "
			       "--trust KEY)",
			       cfg->script, signer);
		break;
	case TP_TRUST_NO_SIGNER_GIVEN:
		tp_runner_fail(out, TP_END_CONFIG,
			       "%s: no trusted signer given; the bundle is signed by %.16s… (use "
			       "--trust SIGNER.pub, or --insecure-any-signer)",
			       cfg->script, signer);
		break;
	case TP_TRUST_BAD_SIGNATURE:
		tp_runner_fail(out, TP_END_REFUSED,
			       "%s: the signature does not verify: the manifest or the signature "
			       "was changed after signing",
			       cfg->script);
		break;
	case TP_TRUST_OK_ANY_SIGNER:
		snprintf(err, sizeof(err),
			 "--insecure-any-signer: running %s signed by %.16s… without checking who "
			 "that is",
			 cfg->script, signer);
		if (cfg->warn)
			cfg->warn(cfg->observer, err);
		r = 0;
		break;
	case TP_TRUST_OK:
		r = 0;
		break;
	}
	tp_signers_free(&signers);
	return r;
}

/* An encrypted bundle runs only with the key its files were sealed with, which the
 * manifest names by its id (tp_symkey_id): a wrong key is refused before anything
 * is decrypted, a missing one said as such. */
static int check_bundle_key(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	const struct tp_manifest *m = &inv->bundle.manifest;
	char id[TP_SYMKEY_ID_SIZE];

	if (!tp_manifest_any_encrypted(m)) {
		if (cfg->bundle_key)
			tp_plan_warn(inv,
				     "--bundle-key: the bundle is not encrypted; the key is not "
				     "used");
		return 0;
	}
	if (!cfg->bundle_key)
		return tp_runner_fail(out, TP_END_KEY_MISSING,
				      "%s: its app files are encrypted (key id %s): give the "
				      "bundle key with --bundle-key KEY",
				      cfg->script, m->encryption.key_id);
	if (tp_symkey_id(cfg->bundle_key, id) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	if (strcmp(id, m->encryption.key_id) != 0)
		return tp_runner_fail(out, TP_END_REFUSED,
				      "%s: refused: --bundle-key is not the key its files were "
				      "encrypted with (key id %s; the key given is %s)",
				      cfg->script, m->encryption.key_id, id);
	return 0;
}

/* A run may add environment variables to a sealed bundle, never change one the
 * signer set: the manifest's values are part of what was measured. */
static int check_env(const struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_strlist *signed_env = &inv->bundle.manifest.env;
	const char *const *env = inv->cfg->env;

	for (size_t i = 0; env && env[i]; i++) {
		const char *assignment = env[i];
		size_t name_len = (size_t)(strchr(assignment, '=') - assignment);
		for (size_t j = 0; j < signed_env->count; j++) {
			if (strncmp(signed_env->items[j], assignment, name_len + 1) == 0)
				return tp_runner_fail(
				    out, TP_END_CONFIG,
				    "--env %.*s: the bundle's signed manifest sets %.*s; "
				    "a run may add variables, not change signed ones",
				    (int)name_len, assignment, (int)name_len, assignment);
		}
	}
	return 0;
}

void tp_plan_warn(struct tp_invocation *inv, const char *line)
{
	/* nothing is said of a manifest whose signer is not settled: kept until it is
	 * (tp_plan_settle), dropped if it is refused */
	if (inv->pending) {
		if (tp_strlist_push(&inv->held_warnings, line) < 0)
			return;
	} else if (inv->cfg->warn) {
		inv->cfg->warn(inv->cfg->observer, line);
	}
}

/* Who signed the bundle, settled: libcrypto loaded, the signature checked, the
 * measurements taken, the signer judged. */
static int settle_signer(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	char err[768];

	if (tp_crypto_load(err, sizeof(err)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "%s: %s", cfg->script, err);
	tp_bundle_file_verify(&inv->bundle);
	if (cfg->mark)
		cfg->mark("bundle read, signature checked");
	if (tp_runner_judge_signer(inv->cfg, &inv->bundle, out) < 0)
		return -1;
	if (cfg->mark)
		cfg->mark("signer trusted");
	return 0;
}

int tp_plan_settle(struct tp_invocation *inv, struct tp_outcome *out)
{
	int r;

	if (!inv->pending)
		return 0;
	inv->pending = false;
	r = settle_signer(inv, out);
	for (size_t i = 0; r == 0 && i < inv->held_warnings.count; i++)
		tp_plan_warn(inv, inv->held_warnings.items[i]);
	tp_strlist_free(&inv->held_warnings);
	return r;
}

int tp_plan_settle_first(struct tp_invocation *inv, struct tp_outcome *out)
{
	enum tp_end end = out->end;
	char message[sizeof(out->message)];

	if (!inv->pending)
		return -1;
	memcpy(message, out->message, sizeof(message));
	/* the refusals a run without the index says before anything else */
	if (tp_plan_settle(inv, out) == 0 && tp_cache_settle(inv, out) == 0) {
		out->end = end;
		memcpy(out->message, message, sizeof(message));
	}
	return -1;
}

/* The bundle opened, its signer trusted, its manifest parsed. Who signed it is
 * settled before a byte of the manifest is parsed, unless the manifest, key and
 * signature are byte for byte the ones a verified run of this uid recorded in the
 * cache's index (tp_cache_foresee): then the signature is checked again and the
 * signer settled once the interpreter is starting, beside its start-up, before the
 * service is told what to run (runner.c; inv->pending). Loading libcrypto and
 * starting Ed25519 took 4-5 ms of every start here, which that start-up hides. */
static int open_sealed(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	char err[768];
	int r;

	if (cfg->trace_log)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s: already a bundle; build from the service's script",
				      cfg->script);
	if ((r = tp_bundle_file_read(cfg->script, &inv->bundle, err, sizeof(err))) < 0)
		return tp_runner_fail(out, TP_END_REFUSED, "%s: %s", cfg->script, err);
	inv->sealed = true; /* tp_invocation_free closes the bundle from here on */
	inv->pending = tp_cache_foresee(inv);
	if (!inv->pending && settle_signer(inv, out) < 0)
		return -1;
	/* bytes the index holds passed this teepy's checks once: not encoded again */
	if ((r = tp_bundle_file_parse(&inv->bundle, inv->pending, err, sizeof(err))) < 0)
		return tp_runner_fail(out, TP_END_REFUSED, "%s: %s", cfg->script, err);
	enum tp_engine engine = inv->bundle.manifest.engine.name;
	if (cfg->engine_given && cfg->engine != engine)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s runs on %s, its signed manifest's engine: --engine %s "
				      "does not apply (a bundle is built for one engine)",
				      cfg->script, tp_engine_word(engine),
				      tp_engine_word(cfg->engine));
	if (engine != inv->engine->name && plan_engine(inv, out, engine, cfg->script) < 0)
		return -1;
	if (check_bundle_key(inv, out) < 0)
		return -1;
	return check_env(inv, out);
}

/* A sealed bundle takes its system files from the system trees, and from the host
 * paths the person running it allows (--allow): those, as given and resolved, join
 * inv->allowed. Every system file's path must lie under one of them; where it
 * leads is checked as each is opened (tp_host_source). Refused: the first file in
 * path order, and how many more. */
static int check_system_files(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	const struct tp_manifest *m = &inv->bundle.manifest;
	const char *first = NULL;
	size_t more = 0;

	for (size_t i = 0; cfg->allow && cfg->allow[i]; i++) {
		char real[PATH_MAX];
		const char *given = cfg->allow[i];
		if (check_allowed(inv, out, "--allow", given, false, real) < 0)
			return -1;
		if (tp_strlist_push(&inv->allowed, real) < 0 ||
		    (tp_path_is_normal(given) && strcmp(given, real) != 0 &&
		     tp_strlist_push(&inv->allowed, given) < 0))
			return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < m->file_count; i++) {
		if (m->files[i].bundled || tp_plan_may_take(inv, m->files[i].path))
			continue;
		if (first)
			more++;
		else
			first = m->files[i].path;
	}
	if (!first)
		return 0;
	char also[64] = "";
	if (more)
		snprintf(also, sizeof(also), " (and %zu more file%s)", more, more > 1 ? "s" : "");
	return tp_runner_fail(out, TP_END_REFUSED,
			      "%s: refused: file %s: a host file outside the system trees, which "
			      "the signed manifest cannot grant itself (run with --allow %s to "
			      "let this bundle read it)%s",
			      cfg->script, first, first, also);
}

static int plan_sealed(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;
	const struct tp_manifest *m = &inv->bundle.manifest;
	char err[256];

	inv->processes = m->processes == TP_PROCESSES_MANIFEST;
	inv->listen = m->network == TP_NETWORK_LISTEN;
	if (inv->listen && !cfg->listen)
		return tp_runner_fail(
		    out, TP_END_CONFIG,
		    "%s serves on a socket (policy network \"listen\"): give it one "
		    "(teepy run --listen ADDR:PORT or --listen-fd N)",
		    cfg->script);
	if (!inv->listen && cfg->listen)
		return tp_runner_fail(out, TP_END_CONFIG,
				      "%s has no network (policy network \"none\"): it takes no "
				      "listening socket",
				      cfg->script);
	snprintf(inv->entry, sizeof(inv->entry), "%s", m->entry);
	snprintf(inv->cwd, sizeof(inv->cwd), "%s", TP_APP_DIR);
	snprintf(inv->script, sizeof(inv->script), "%s", cfg->script);
	for (size_t i = 0; i < m->python_path.count; i++)
		if (tp_strlist_push(&inv->python_path, m->python_path.items[i]) < 0)
			return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");

	/* the bundle's signed limits hold; flags may only tighten them */
	inv->limits = tp_limits_tighten(&m->limits, &cfg->limits, cfg->limits_given);
	if ((cfg->limits_given & TP_LIMIT_SCRATCH) && cfg->limits.scratch_bytes &&
	    cfg->limits.scratch_bytes != m->limits.scratch_bytes) {
		snprintf(
		    err, sizeof(err),
		    "--scratch is set by the bundle's policy (%llu bytes); the flag is ignored",
		    (unsigned long long)m->limits.scratch_bytes);
		tp_plan_warn(inv, err);
	}
	if (count_of(cfg->pythonpath) || cfg->allow_site_packages || cfg->venv)
		tp_plan_warn(inv, "--pythonpath, --allow-site-packages and --venv do not apply to "
				  "a sealed bundle: it sees only its manifest's files");
	/* a venv the build used is at /venv: the signed site directories' .pth files
	 * are read as they were in the sample run */
	for (size_t i = 0; i < m->site.count; i++)
		if (tp_strlist_push(&inv->site_dirs, m->site.items[i]) < 0)
			return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	if (check_system_files(inv, out) < 0)
		return -1;
	/* a cached root's files are held in the cache, not in the service's memory */
	tp_cache_open(inv);
	/* a foreseen hit that is none after all: the signer is settled before a fill,
	 * and the entry looked for again under the verified manifest's key */
	if (inv->pending && inv->cache.state != TP_CACHE_HIT) {
		if (tp_plan_settle(inv, out) < 0)
			return -1;
		tp_cache_close(&inv->cache);
		inv->cache.foreseen = inv->cache.indexed = false;
		tp_cache_open(inv);
	}
	inv->plan.reserve_bytes = inv->cache.state == TP_CACHE_OFF ? tp_fill_reserve(m) : 0;

	/* sys.path directories exist even if empty: CPython finds its exec_prefix by
	 * lib-dynload, and an empty directory reveals nothing */
	for (size_t i = 0; i < inv->python_path.count; i++)
		if (tp_root_plan_add(&inv->plan, TP_ROOT_DIR, inv->python_path.items[i], NULL, 0) <
		    0)
			return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	/* only manifest files exist: in a processes policy any of them may be executed */
	set_exec_files(inv, inv->engine->exe, TP_LOADER, inv->processes ? "/" : NULL);
	return plan_runtime(inv, out);
}

static bool may_take(const void *inv, const char *path)
{
	return tp_plan_may_take(inv, path);
}

void tp_plan_sources(const struct tp_invocation *inv, struct tp_blob_source_ctx *blob_ctx,
		     struct tp_host_source_ctx *host_ctx, struct tp_file_source *blobs,
		     struct tp_file_source *host)
{
	*blob_ctx = (struct tp_blob_source_ctx){ .bundle_fd = inv->bundle.fd,
						 .blob_offset = inv->bundle.bundle.blob_offset,
						 .key = inv->cfg->bundle_key };
	*host_ctx = (struct tp_host_source_ctx){ may_take, inv };
	*blobs = tp_blob_source(blob_ctx);
	*host = tp_host_source(host_ctx);
}

/* ---- what the service may read ---- */

/* PATH into trees unless a tree already holds it; trees beneath it leave. */
static int add_read_tree(struct tp_strlist *trees, const char *path)
{
	for (size_t i = 0; i < trees->count; i++)
		if (tp_root_path_under(path, trees->items[i]))
			return 0;
	for (size_t i = 0; i < trees->count;) {
		if (tp_root_path_under(trees->items[i], path)) {
			free(trees->items[i]);
			trees->items[i] = trees->items[--trees->count];
		} else {
			i++;
		}
	}
	return tp_strlist_push(trees, path);
}

int tp_plan_read_trees(const struct tp_root_plan *plan, const struct tp_manifest *m,
		       struct tp_strlist *trees)
{
	char dir[PATH_MAX], prev[PATH_MAX] = "";
	int r = 0;

	for (size_t i = 0; r == 0 && i < plan->count; i++) {
		const struct tp_root_op *op = &plan->ops[i];
		switch (op->kind) {
		case TP_ROOT_BIND:
		case TP_ROOT_DEVICE:
		case TP_ROOT_DIR:
		case TP_ROOT_FILE:
			r = add_read_tree(trees, op->path);
			break;
		case TP_ROOT_RUNTIME: /* its directory too, which import lists */
			snprintf(dir, sizeof(dir), "%s", op->path);
			*strrchr(dir, '/') = '\0';
			r = add_read_tree(trees, dir[0] ? dir : op->path);
			break;
		case TP_ROOT_TMPFS: /* scratch: a rule of its own */
		case TP_ROOT_SYMLINK:
			break;
		}
	}
	/* the file table is sorted by path: a directory's files follow one another */
	for (size_t i = 0; r == 0 && m && i < m->file_count; i++) {
		const char *path = m->files[i].path;
		size_t len = (size_t)(strrchr(path, '/') - path);
		if (len == 0) {
			r = add_read_tree(trees, path); /* not / for one file */
			continue;
		}
		if (len >= sizeof(dir))
			continue; /* the fill refuses it: no directory so long is made */
		snprintf(dir, sizeof(dir), "%.*s", (int)len, path);
		if (strcmp(dir, prev) == 0)
			continue;
		snprintf(prev, sizeof(prev), "%s", dir);
		r = add_read_tree(trees, dir);
	}
	return r;
}

int tp_plan_open(struct tp_invocation *inv, struct tp_outcome *out)
{
	const struct tp_run_config *cfg = inv->cfg;

	/* a bundle's engine is its manifest's (open_sealed); until then CPython's, whose
	 * _teepy every teepy has */
	if (plan_engine(inv, out, cfg->is_bundle ? TP_ENGINE_CPYTHON : cfg->engine, "--engine") < 0)
		return -1;
	if (tp_find_reaper(inv->reaper, sizeof(inv->reaper)) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL,
				      "runtime program %s not found beside teepy or in %s "
				      "(rebuild with make)",
				      TP_REAPER_PROGRAM, TP_RUNTIME_INSTALL_DIR);
	inv->limits = cfg->limits;
	if (cfg->is_bundle)
		return open_sealed(inv, out);
	inv->processes = cfg->allow_processes;
	inv->listen = cfg->listen;
	if (cfg->shell.read_line) {
		/* a console, no script: nothing of the host's but what the flags show, and
		 * sys.argv [''] as python3's own prompt has it */
		snprintf(inv->cwd, sizeof(inv->cwd), "/");
		return 0;
	}
	if (load_script(inv, out) < 0)
		return -1;
	if (cfg->mark)
		cfg->mark("script loaded");
	return 0;
}

int tp_plan_root(struct tp_invocation *inv, struct tp_outcome *out)
{
	if ((inv->sealed ? plan_sealed(inv, out) : plan_unsealed(inv, out)) < 0)
		return -1;
	if (tp_plan_read_trees(&inv->plan, inv->sealed ? &inv->bundle.manifest : NULL,
			       &inv->read_trees) < 0)
		return tp_runner_fail(out, TP_END_INTERNAL, "out of memory");
	if (inv->cfg->mark)
		inv->cfg->mark("root planned");
	return check_memory(inv, out);
}

static int push_env(struct tp_invocation *inv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int push_env(struct tp_invocation *inv, const char *fmt, ...)
{
	char **envp = realloc(inv->envp, (inv->env_count + 2) * sizeof(char *));
	va_list ap;
	int r;

	if (!envp)
		return -ENOMEM;
	inv->envp = envp;
	va_start(ap, fmt);
	r = vasprintf(&envp[inv->env_count], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	envp[++inv->env_count] = NULL;
	return 0;
}

/* The L2 cache's bytes as PyPy's collector reads them natively: the least "cache
 * size" of /proc/cpuinfo (x86), or 0. */
static uint64_t l2_cache_bytes(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	unsigned long long least = 0, kib;
	char line[256];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cache size : %llu KB", &kib) == 1 && kib &&
		    (!least || kib < least))
			least = kib;
	if (f)
		fclose(f);
	return least * 1024;
}

/* PyPy's collector sizes itself from /proc/cpuinfo and /proc/meminfo, which the
 * sandbox has not (it would warn on every start, and guess): told here what it
 * would read natively, the total memory being the run's limit. */
static int pypy_gc_env(struct tp_invocation *inv)
{
	uint64_t l2 = l2_cache_bytes();
	int r = 0;

	if (l2)
		r = push_env(inv, "PYPY_GC_NURSERY=%llu", (unsigned long long)l2);
	return r ?:
		   push_env(inv, "PYPY_GC_MAX_DELTA=%llu",
			    (unsigned long long)(inv->limits.memory_bytes / 8));
}

int tp_plan_env(struct tp_invocation *inv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned cap = inv->limits.threads > 1 ? inv->limits.threads / 2 : 1;
	const char *const *env = inv->cfg->env;
	size_t manifest_count = inv->sealed ? inv->bundle.manifest.env.count : 0;
	size_t extra = count_of(env);
	int r = 0;

	inv->blas_threads = cpus > 0 && (unsigned long)cpus < cap ? (unsigned)cpus : cap;
	r = r ?: push_env(inv, "LC_CTYPE=C.UTF-8");
	r = r ?: push_env(inv, "OPENBLAS_NUM_THREADS=%u", inv->blas_threads);
	r = r ?: push_env(inv, "OMP_NUM_THREADS=%u", inv->blas_threads);
	r = r ?: push_env(inv, "MKL_NUM_THREADS=%u", inv->blas_threads);
	if (r == 0 && inv->engine->name == TP_ENGINE_PYPY)
		r = pypy_gc_env(inv);
	for (size_t i = 0; r == 0 && i < manifest_count + extra; i++) {
		const char *assignment = i < manifest_count ? inv->bundle.manifest.env.items[i] :
							      env[i - manifest_count];
		size_t name_len = (size_t)(strchr(assignment, '=') - assignment);
		/* a later assignment of the same name replaces the earlier one */
		for (size_t j = 0; j < inv->env_count; j++) {
			if (strncmp(inv->envp[j], assignment, name_len + 1) == 0) {
				free(inv->envp[j]);
				inv->envp[j] = inv->envp[--inv->env_count];
				inv->envp[inv->env_count] = NULL;
				break;
			}
		}
		r = push_env(inv, "%s", assignment);
	}
	return r;
}

/* ---- the boot payload ---- */

static bool listed(const struct tp_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

_Static_assert(TP_LISTEN_FD == TP_SECCOMP_LISTEN_FD,
	       "the filter allows accept where the socket is");

unsigned tp_seccomp_policy(const struct tp_invocation *inv)
{
	return (inv->processes ? TP_SECCOMP_PROCESSES : 0u) |
	       (inv->listen ? TP_SECCOMP_LISTEN : 0u);
}

int tp_plan_boot(const struct tp_invocation *inv, uint8_t **data, size_t *size)
{
	const struct tp_run_config *cfg = inv->cfg;
	const struct tp_bpf *stage2 =
	    cfg->zygote ? &tp_seccomp_stage2_zygote : &tp_seccomp_stage2_of[tp_seccomp_policy(inv)];
	/* a shell runs no entry: sys.argv is [''], as at python3's prompt, in a bundle's
	 * root too (its signed argv is its entry's) */
	bool shell = cfg->shell.read_line != NULL;
	const struct tp_strlist *argv = inv->sealed && !shell ? &inv->bundle.manifest.argv : NULL;
	const struct tp_strlist *signed_preload =
	    inv->sealed ? &inv->bundle.manifest.preload : NULL;
	size_t args = shell ? 0 : count_of(cfg->args);
	size_t argc = 1 + (argv ? argv->count : 0) + args;
	size_t preload_count = signed_preload ? signed_preload->count : count_of(cfg->preload);
	size_t n = 0;
	/* one array: sys.argv, then sys.path, then the preload names */
	const char **items = calloc(argc + inv->python_path.count + preload_count, sizeof(*items));
	int r;

	if (!items)
		return -ENOMEM;
	items[n++] = shell ? "" : inv->entry;
	for (size_t i = 0; argv && i < argv->count; i++)
		items[n++] = argv->items[i];
	for (size_t i = 0; i < args; i++)
		items[n++] = cfg->args[i];
	for (size_t i = 0; i < inv->python_path.count; i++)
		items[n++] = inv->python_path.items[i];
	for (size_t i = 0; i < preload_count; i++)
		items[n++] = signed_preload ? signed_preload->items[i] : cfg->preload[i];
	/* a zygote's children each restrict /tmp to their own directory: the rest of what
	 * the service may reach, by the root's entries that hold it */
	struct tp_strlist top = { 0 };
	for (size_t i = 0; cfg->zygote && i < inv->read_trees.count + 1; i++) {
		const char *tree = i < inv->read_trees.count ? inv->read_trees.items[i] :
				   inv->has_out		     ? TP_OUT_DIR :
							       NULL;
		char name[NAME_MAX + 1];
		size_t len;
		if (!tree || tree[0] != '/')
			continue;
		len = strcspn(tree + 1, "/");
		if (len == 0 || len > NAME_MAX)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)len, tree + 1);
		if (strcmp(name, "tmp") != 0 && !listed(&top, name) &&
		    tp_strlist_push(&top, name) < 0) {
			tp_strlist_free(&top);
			free(items);
			return -ENOMEM;
		}
	}
	struct tp_boot boot = {
		.filter = stage2->insns,
		.filter_size = stage2->size,
		.entry = inv->entry,
		.argv = items,
		.argv_count = argc,
		.path = items + argc,
		.path_count = inv->python_path.count,
		.preload = items + argc + inv->python_path.count,
		.preload_count = preload_count,
		.site = (const char *const *)inv->site_dirs.items,
		.site_count = inv->site_dirs.count,
		.sealed = inv->sealed,
		.zygote = cfg->zygote,
		.listen = inv->listen,
		.wsgi = inv->listen && !inv->sealed ? cfg->wsgi : NULL,
		.shell = shell,
		.top = (const char *const *)top.items,
		.top_count = top.count,
		.data_count = cfg->data_count,
	};
	r = tp_boot_encode(&boot, data, size);
	tp_strlist_free(&top);
	free(items);
	return r;
}
