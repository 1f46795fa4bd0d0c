/* `teepy build SCRIPT.py -o APP.tpy --key KEY`: SGXPy's idea done right. One sample
 * run in the sandbox is traced; every file it opened and program it executed is
 * measured into a canonical manifest, signed, and written with the app's own files
 * into one bundle. */
#include "commands.h"

#include "exit_codes.h"
#include "run.h"
#include "run_opts.h"
#include "../common/io.h"
#include "../common/log.h"
#include "../pyboot/boot.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../manifest/bundle.h"
#include "../manifest/manifest.h"
#include "../trace/trace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: teepy build SCRIPT.py -o APP.tpy --key SIGNER.key [OPTIONS] [-- ARG...]\n"
	"\n"
	"Runs SCRIPT.py once in the sandbox with the sample input and data you give,\n"
	"traces every file it opens and program it runs, and writes a signed bundle:\n"
	"the app's own files (its directory) inside, system files (stdlib, libraries,\n"
	"dist-packages) by path, size and SHA-256. teepy run APP.tpy --trust SIGNER.pub\n"
	"then runs it in a root holding only those files, each verified first.\n"
	"\n"
	"Build options:\n"
	"  -o, --bundle APP.tpy   where to write the bundle (required)\n"
	"  --key SIGNER.key       Ed25519 signing key from teepy keygen (required)\n"
	"  --include PATH         add a file the sample run did not open; repeat\n"
	"  --include-dir DIR      add every file under DIR; repeat\n"
	"  --preload MOD          a module to import before input arrives (warm starts); repeat\n"
	"  --allow-processes      policy processes = \"manifest\": the service may run the\n"
	"                         programs the sample run ran (they and their libraries are\n"
	"                         traced into the manifest)\n"
	"\n"
	"The sample run takes teepy run's options (--input, --input-file, --data,\n"
	"--task-data, --allow-site-packages, --allow, --pythonpath, --env, --scratch);\n"
	"--memory, --cpu-time, --timeout, --threads and --scratch are recorded in the\n"
	"manifest as the bundle's limits.\n";

struct build {
	const char *bundle_path;
	const char *key_path;
	struct tp_strlist includes;
	struct tp_strlist include_dirs;
	struct tp_strlist preload;
	bool allow_processes;
	struct tp_manifest manifest;
	struct tp_traced_run traced;
	void **blobs; /* contents of bundled files, by manifest index after finish */
};

static bool under(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

static int read_file(const char *path, void **out, uint64_t *size, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	uint64_t done = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (done < (uint64_t)st->st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st->st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (uint64_t)n;
	}
	close(fd);
	if (done != (uint64_t)st->st_size) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*size = done;
	return 0;
}

/* Adds one host file under its path inside the root; app files are bundled. */
static int add_file(struct build *b, const char *host_path, const char *inside, bool bundled,
		    void ***blobs_by_file)
{
	struct tp_manifest *m = &b->manifest;
	struct tp_manifest_file *files;
	struct stat st;
	void *content = NULL;
	uint64_t size = 0;
	int r;

	for (size_t i = 0; i < m->file_count; i++)
		if (strcmp(m->files[i].path, inside) == 0)
			return 0;
	r = read_file(host_path, &content, &size, &st);
	if (r < 0)
		return r;
	files = realloc(m->files, (m->file_count + 1) * sizeof(*files));
	void **blobs = realloc(*blobs_by_file, (m->file_count + 1) * sizeof(void *));
	if (!files || !blobs) {
		free(content);
		if (files)
			m->files = files;
		if (blobs)
			*blobs_by_file = blobs;
		return -ENOMEM;
	}
	m->files = files;
	*blobs_by_file = blobs;
	struct tp_manifest_file *f = &files[m->file_count];
	memset(f, 0, sizeof(*f));
	f->path = strdup(inside);
	f->size = size;
	f->mode = st.st_mode & 0755; /* never setuid, never writable by others */
	f->bundled = bundled;
	f->mtime = bundled ? 0 : (uint64_t)st.st_mtime;
	tp_sha256(content, size, f->sha256);
	if (bundled) {
		blobs[m->file_count] = content;
	} else {
		blobs[m->file_count] = NULL;
		free(content);
	}
	m->file_count++;
	return f->path ? 0 : -ENOMEM;
}

/* Maps a path seen in the sandbox to its place in the manifest: the app's own
 * directory moves to /app and is bundled; anything else stays at its path. */
static int add_seen(struct build *b, const char *path, void ***blobs)
{
	char inside[PATH_MAX];
	const char *dir = b->traced.script_dir;
	struct stat st;

	if (under(path, "/dev") || under(path, "/proc") || under(path, "/sys") ||
	    under(path, "/.teepy"))
		return 0;
	char host_view[PATH_MAX];
	if (under(path, TP_APP_DIR))
		snprintf(host_view, sizeof(host_view), "%s%s", dir, path + strlen(TP_APP_DIR));
	else
		snprintf(host_view, sizeof(host_view), "%s", path);
	if (stat(host_view, &st) < 0 || !S_ISREG(st.st_mode))
		return 0; /* it failed in the run, or is not a file */
	/* a cached module is only used beside its source: CPython stats the .py (the
	 * tracer sees no open) and checks its mtime and size against the .pyc */
	const char *cache = strstr(path, "/__pycache__/");
	if (cache && strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".pyc") == 0) {
		char source[PATH_MAX];
		const char *name = cache + strlen("/__pycache__/");
		size_t stem = strcspn(name, ".");
		snprintf(source, sizeof(source), "%.*s/%.*s.py", (int)(cache - path), path, (int)stem,
			 name);
		int r = add_seen(b, source, blobs);
		if (r < 0)
			return r;
	}
	if ((under(path, TP_APP_DIR) || under(path, dir)) && cache)
		return 0; /* the app's own caches carry its files' mtimes: not reproducible */
	if (under(path, TP_APP_DIR) || under(path, dir)) {
		/* the sample run saw the app's directory at /app; a link in it that leads
		 * elsewhere on the host is not the app's to bundle */
		char host[PATH_MAX], real_host[PATH_MAX];
		const char *rest = under(path, TP_APP_DIR) ? path + strlen(TP_APP_DIR) : path + strlen(dir);
		snprintf(host, sizeof(host), "%s%s", dir, rest);
		snprintf(inside, sizeof(inside), "%s%s", TP_APP_DIR, rest);
		if (!realpath(host, real_host) || !under(real_host, dir)) {
			tp_warn("build: %s leads outside the app's directory; not bundled", host);
			return 0;
		}
		return add_file(b, real_host, inside, true, blobs);
	}
	/* visibility is a matter of the real file: the loader asks for /lib/<multiarch>/...,
	 * reached through the /lib -> usr/lib link; the content goes at the path asked for */
	char real[PATH_MAX];
	if (!realpath(path, real))
		return 0;
	if (!tp_root_plan_covers(&b->traced.plan, real) && strcmp(path, TP_LOADER) != 0)
		return 0; /* not visible in the run: the open failed there */
	return add_file(b, path, path, false, blobs);
}

static int add_tree(struct build *b, const char *dir, void ***blobs)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			r = add_tree(b, path, blobs);
		else if (S_ISREG(st.st_mode))
			r = add_seen(b, path, blobs);
	}
	closedir(d);
	return r;
}

static int write_bundle(struct build *b, void **blobs, const struct tp_key *key, const char *json,
			size_t json_size)
{
	struct tp_bundle_header h = { .version = TP_BUNDLE_VERSION,
				      .manifest_size = (uint32_t)json_size,
				      .blob_size = tp_manifest_blob_size(&b->manifest) };
	uint8_t header[TP_BUNDLE_HEADER_SIZE], pub[32], sig[64];
	char tmp[PATH_MAX];
	size_t msg_size;
	uint8_t *msg = tp_bundle_signed_message(json, json_size, &msg_size);
	int fd, r;

	if (!msg || tp_sign(key, msg, msg_size, sig) < 0) {
		free(msg);
		return -EIO;
	}
	free(msg);
	tp_key_public_raw(key, pub);
	tp_bundle_encode_header(&h, header);
	snprintf(tmp, sizeof(tmp), "%s.teepy-XXXXXX", b->bundle_path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = tp_write_full(fd, header, sizeof(header));
	r = r ?: tp_write_full(fd, json, json_size);
	r = r ?: tp_write_full(fd, pub, sizeof(pub));
	r = r ?: tp_write_full(fd, sig, sizeof(sig));
	for (size_t i = 0; r == 0 && i < b->manifest.file_count; i++)
		if (b->manifest.files[i].bundled)
			r = tp_write_full(fd, blobs[i], b->manifest.files[i].size);
	mode_t mask = umask(0);
	umask(mask);
	if (r == 0 && (fchmod(fd, 0666 & ~mask) < 0 || fsync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, b->bundle_path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Sorts files and their blobs together (the manifest's order is by path). */
static void sort_with_blobs(struct tp_manifest *m, void **blobs)
{
	for (size_t i = 1; i < m->file_count; i++) {
		for (size_t j = i; j > 0 && strcmp(m->files[j - 1].path, m->files[j].path) > 0; j--) {
			struct tp_manifest_file f = m->files[j];
			void *blob = blobs[j];
			m->files[j] = m->files[j - 1];
			blobs[j] = blobs[j - 1];
			m->files[j - 1] = f;
			blobs[j - 1] = blob;
		}
	}
}

int tp_cmd_build(int argc, char **argv)
{
	struct build b = { 0 };
	struct tp_run_opts opts;
	struct tp_trace_log log;
	struct tp_key *key = NULL;
	void **blobs = NULL;
	char err[512] = "", *json = NULL;
	char **run_argv = calloc((size_t)argc + 1, sizeof(char *));
	int run_argc = 0, code = TP_EXIT_USAGE, r;
	size_t json_size;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tp_trace_log_init(&log);
	if (!run_argv)
		return TP_EXIT_INTERNAL;
	run_argv[run_argc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--") == 0) {
			while (i < argc)
				run_argv[run_argc++] = argv[i++];
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			code = TP_EXIT_OK;
			goto out;
		}
		if (strcmp(a, "--allow-processes") == 0) {
			b.allow_processes = true;
			continue;
		}
		bool takes = strcmp(a, "-o") == 0 || strcmp(a, "--bundle") == 0 ||
			     strcmp(a, "--key") == 0 || strcmp(a, "--include") == 0 ||
			     strcmp(a, "--include-dir") == 0 || strcmp(a, "--preload") == 0;
		if (!takes) {
			run_argv[run_argc++] = argv[i];
			continue;
		}
		if (!next || !*next) {
			tp_error("build: %s needs a value", a);
			goto out;
		}
		i++;
		if (strcmp(a, "-o") == 0 || strcmp(a, "--bundle") == 0)
			b.bundle_path = next;
		else if (strcmp(a, "--key") == 0)
			b.key_path = next;
		else if (strcmp(a, "--include") == 0)
			tp_strlist_push(&b.includes, next);
		else if (strcmp(a, "--include-dir") == 0)
			tp_strlist_push(&b.include_dirs, next);
		else
			tp_strlist_push(&b.preload, next);
	}
	if (!b.bundle_path) {
		tp_error("build: missing -o APP.tpy (see teepy build --help)");
		goto out;
	}
	if (!b.key_path) {
		tp_error("build: missing --key SIGNER.key (make one with teepy keygen -o SIGNER.key)");
		goto out;
	}
	key = tp_key_load_private(b.key_path, err, sizeof(err));
	if (!key) {
		tp_error("build: --key %s: %s", b.key_path, err);
		goto out;
	}
	if (tp_run_opts_parse(&opts, run_argc, run_argv, NULL, err, sizeof(err)) < 0) {
		tp_error("build: %s", err);
		tp_run_opts_free(&opts);
		goto out;
	}
	opts.allow_processes = b.allow_processes;
	for (size_t i = 0; i < b.include_dirs.count; i++)
		tp_strlist_push(&b.includes, b.include_dirs.items[i]);
	for (size_t i = 0; i < b.includes.count; i++) {
		/* what the build adds must be readable by the sample run too */
		struct stat st;
		if (stat(b.includes.items[i], &st) < 0) {
			tp_error("build: --include %s: %s", b.includes.items[i], strerror(errno));
			tp_run_opts_free(&opts);
			goto out;
		}
	}

	/* the bundle records the sample run's limits and policy */
	b.manifest.memory_bytes = opts.memory_bytes;
	b.manifest.cpu_ms = opts.cpu_ms;
	b.manifest.timeout_ms = opts.timeout_ms;
	b.manifest.threads = opts.threads;
	b.manifest.scratch_bytes = opts.scratch_bytes;
	b.manifest.processes = b.allow_processes ? TP_PROCESSES_MANIFEST : TP_PROCESSES_NONE;
	for (size_t i = 0; i < opts.env.count; i++)
		tp_strlist_push(&b.manifest.env, opts.env.items[i]);
	for (size_t i = 0; i < opts.script_args.count; i++)
		tp_strlist_push(&b.manifest.argv, opts.script_args.items[i]);
	bool site_packages = opts.allow_site_packages;
	struct tp_strv pythonpath = opts.pythonpath;
	char **pythonpath_copy = calloc(pythonpath.count + 1, sizeof(char *));
	for (size_t i = 0; pythonpath_copy && i < pythonpath.count; i++)
		pythonpath_copy[i] = realpath(pythonpath.items[i], NULL);

	fprintf(stderr, "teepy: tracing a sample run of %s\n", opts.script);
	r = tp_run_traced(&opts, &log, &b.traced);
	if (r != TP_EXIT_OK && r != TP_EXIT_NO_RESULT) {
		tp_error("build: the sample run failed (exit code %d, see above); fix it or give it "
			 "the input and data it needs",
			 r);
		code = r == TP_EXIT_USAGE ? TP_EXIT_USAGE : TP_EXIT_SERVICE_FAILED;
		goto out_paths;
	}

	/* every file seen, then what the user adds */
	tp_trace_log_sort(&log);
	for (size_t i = 0; i < log.count; i++) {
		if ((r = add_seen(&b, log.paths[i], &blobs)) < 0) {
			tp_error("build: %s: %s", log.paths[i], strerror(-r));
			code = TP_EXIT_INTERNAL;
			goto out_paths;
		}
	}
	/* the loader (the kernel opens it, no open call is traced), the interpreter, and
	 * os.py, the landmark by which CPython finds its prefix (os itself is frozen) */
	if ((r = add_seen(&b, TP_LOADER, &blobs)) < 0 || (r = add_seen(&b, TP_PYTHON_EXE, &blobs)) < 0 ||
	    (r = add_seen(&b, TP_PYTHON_STDLIB "/os.py", &blobs)) < 0) {
		tp_error("build: the interpreter's files: %s", strerror(-r));
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	for (size_t i = 0; i < b.includes.count; i++) {
		char real[PATH_MAX];
		struct stat st;
		if (!realpath(b.includes.items[i], real) || stat(real, &st) < 0) {
			tp_error("build: --include %s: %s", b.includes.items[i], strerror(errno));
			goto out_paths;
		}
		/* included paths count as visible: they are system files named on purpose */
		tp_root_plan_add(&b.traced.plan, TP_ROOT_BIND, real, real, 0);
		r = S_ISDIR(st.st_mode) ? add_tree(&b, real, &blobs) : add_seen(&b, real, &blobs);
		if (r < 0) {
			tp_error("build: --include %s: %s", b.includes.items[i], strerror(-r));
			goto out_paths;
		}
	}

	/* where things are inside the sealed root */
	char entry[PATH_MAX];
	snprintf(entry, sizeof(entry), "%s%s", TP_APP_DIR, b.traced.script + strlen(b.traced.script_dir));
	b.manifest.entry = strdup(entry);
	tp_strlist_push(&b.manifest.python_path, TP_APP_DIR);
	for (size_t i = 0; pythonpath_copy && pythonpath_copy[i]; i++) {
		if (under(pythonpath_copy[i], b.traced.script_dir)) {
			char inside[PATH_MAX];
			snprintf(inside, sizeof(inside), "%s%s", TP_APP_DIR,
				 pythonpath_copy[i] + strlen(b.traced.script_dir));
			tp_strlist_push(&b.manifest.python_path, inside);
		} else {
			tp_strlist_push(&b.manifest.python_path, pythonpath_copy[i]);
		}
	}
	tp_strlist_push(&b.manifest.python_path, TP_PYTHON_STDLIB);
	tp_strlist_push(&b.manifest.python_path, TP_PYTHON_STDLIB "/lib-dynload");
	if (site_packages)
		tp_strlist_push(&b.manifest.python_path, TP_PYTHON_DIST_PACKAGES);
	for (size_t i = 0; i < b.preload.count; i++)
		tp_strlist_push(&b.manifest.preload, b.preload.items[i]);

	sort_with_blobs(&b.manifest, blobs);
	if (tp_manifest_finish(&b.manifest, err, sizeof(err)) < 0 ||
	    tp_manifest_to_json(&b.manifest, &json, &json_size) < 0) {
		tp_error("build: cannot write the manifest: %s", err[0] ? err : "an --env name is too long");
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	if (json_size > TP_BUNDLE_MAX_MANIFEST) {
		tp_error("build: the manifest is %zu bytes, more than a bundle holds", json_size);
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	if ((r = write_bundle(&b, blobs, key, json, json_size)) < 0) {
		tp_error("build: cannot write %s: %s", b.bundle_path, strerror(-r));
		code = TP_EXIT_USAGE;
		goto out_paths;
	}

	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t bundled = 0, system = 0;
	size_t n_bundled = 0;
	for (size_t i = 0; i < b.manifest.file_count; i++) {
		if (b.manifest.files[i].bundled) {
			bundled += b.manifest.files[i].size;
			n_bundled++;
		} else {
			system += b.manifest.files[i].size;
		}
	}
	uint8_t app[32];
	char app_hex[65], s1[32], s2[32];
	tp_manifest_measure(json, json_size, app);
	tp_hex(app, 32, app_hex);
	fprintf(stderr,
		"teepy: built %s: %zu files (%zu bundled, %s; %zu system, %s) in %.0f ms\n"
		"teepy: app measurement %s\n",
		b.bundle_path, b.manifest.file_count, n_bundled, tp_format_size(bundled, s1, sizeof(s1)),
		b.manifest.file_count - n_bundled, tp_format_size(system, s2, sizeof(s2)),
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		app_hex);
	code = TP_EXIT_OK;
out_paths:
	for (size_t i = 0; pythonpath_copy && pythonpath_copy[i]; i++)
		free(pythonpath_copy[i]);
	free(pythonpath_copy);
out:
	for (size_t i = 0; blobs && i < b.manifest.file_count; i++)
		free(blobs[i]);
	free(blobs);
	free(json);
	tp_key_free(key);
	tp_manifest_free(&b.manifest);
	tp_root_plan_free(&b.traced.plan);
	tp_strlist_free(&b.includes);
	tp_strlist_free(&b.include_dirs);
	tp_strlist_free(&b.preload);
	tp_trace_log_free(&log);
	free(run_argv);
	return code;
}
