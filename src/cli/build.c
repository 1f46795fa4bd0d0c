/* `teepy build SCRIPT.py -o APP.tpy --key KEY`: SGXPy's idea done right. One sample
 * run in the sandbox is traced; every file it opened and program it executed is
 * measured into a canonical manifest, signed, and written with the app's own files
 * into one bundle. */
#include "commands.h"

#include "exit_codes.h"
#include "flags.h"
#include "run.h"
#include "run_opts.h"
#include "../common/log.h"
#include "../pyboot/boot.h"
#include "../runner/venv.h"
#include "../common/units.h"
#include "../crypto/crypto.h"
#include "../manifest/bundle.h"
#include "../manifest/bundle_file.h"
#include "../manifest/engine.h"
#include "../manifest/manifest.h"
#include "../pfs/pfs.h"
#include "../trace/elf.h"
#include "../trace/trace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum build_flag {
	BUILD_HELP = 1,
	BUILD_BUNDLE,
	BUILD_KEY,
	BUILD_INCLUDE,
	BUILD_INCLUDE_DIR,
	BUILD_PRELOAD,
	BUILD_ALLOW_PROCESSES,
	BUILD_ENCRYPT,
	BUILD_ENCRYPT_PATH,
	BUILD_SAMPLE_INPUT,
};

/* build's own flags; every other flag of teepy run goes to the sample run */
static const struct tp_flag flags[] = {
	TP_FLAG_HEADING("Build options:"),
	{ BUILD_HELP, "help", 'h', NULL, NULL, "show this help" },
	{ BUILD_BUNDLE, "bundle", 'o', "APP.tpy", NULL, "where to write the bundle (required)" },
	{ BUILD_KEY, "key", 0, "SIGNER.key", NULL,
	  "Ed25519 signing key from teepy keygen (required)" },
	{ BUILD_INCLUDE, "include", 0, "PATH", NULL,
	  "add a file (at the path given, and its target if it is a link) or directory the "
	  "sample run did not open; repeat" },
	{ BUILD_INCLUDE_DIR, "include-dir", 0, "DIR", NULL,
	  "add every file under DIR (links to files as files); repeat" },
	{ BUILD_SAMPLE_INPUT, "sample-input", 0, "FILE", NULL,
	  "one sample run with FILE as its input (each with the same data flags); repeat: the "
	  "manifest holds what any of them used (instead of one --input or --input-file)" },
	{ BUILD_PRELOAD, "preload", 0, "MOD", NULL,
	  "a module imported before the entry (and before input arrives on a worker); the "
	  "sample run imports it; repeat" },
	{ BUILD_ALLOW_PROCESSES, "allow-processes", 0, NULL, NULL,
	  "policy processes = \"manifest\": the service may run the programs the sample run ran "
	  "(they, their #! interpreters and their libraries are traced into the manifest)" },
	{ BUILD_ENCRYPT, "encrypt", 0, NULL, NULL,
	  "store the app's own files encrypted (docs/protected-files.md) under --bundle-key, "
	  "or a new key written to APP.tpy.key" },
	{ BUILD_ENCRYPT_PATH, "encrypt-path", 0, "GLOB", NULL,
	  "encrypt only the app files whose path under the app's directory matches GLOB "
	  "(fnmatch; * matches / too); repeat; implies --encrypt" },
	TP_FLAGS_END,
};

static const struct tp_exit_use exits[] = {
	{ TP_EXIT_OK, "bundle written (also when the sample run returned no result)" },
	{ TP_EXIT_SERVICE_FAILED, "the sample run failed (the line above says how)" },
	{ TP_EXIT_USAGE, "usage error: a flag, the key, an include, a --preload module the sample "
			 "run cannot import, a bundle that cannot be written" },
	{ TP_EXIT_INTERNAL, "internal error (OpenSSL's libcrypto cannot be loaded, say)" },
	{ 0, NULL },
};

const struct tp_command_help tp_build_help = {
	.name = "build",
	.synopsis = "SCRIPT.py -o APP.tpy --key SIGNER.key [OPTIONS] [-- ARG...]",
	.about = "Runs SCRIPT.py once in the sandbox with the sample input and data you give,\n"
		 "traces every file it opens and program it runs, and writes a signed bundle:\n"
		 "the app's own files (its directory) inside, system files (stdlib, libraries,\n"
		 "dist-packages) by path, size and SHA-256. teepy run APP.tpy --trust SIGNER.pub\n"
		 "then runs it in a root holding only those files, each verified first. Private\n"
		 "keys and bundles (the --key file, the -o file, any other) are never bundled.\n"
		 "The sample run's result is not printed; build says how many bytes it returned.\n",
	.flags = flags,
	.after = "The sample run takes teepy run's options (--input, --input-file, --data,\n"
		 "--task-data, --data-key, --allow-site-packages, --allow, --pythonpath, --venv,\n"
		 "--env, --scratch); a --venv's files the sample runs used are bundled at /venv.\n"
		 "--memory, --cpu-time, --timeout, --threads and --scratch are recorded in the\n"
		 "manifest as the bundle's limits. Included paths are visible in the sample run.\n"
		 "An ELF file in the bundle (an included extension module) brings the libraries\n"
		 "it links, found as the program loader finds them (runpath, then /lib and "
		 "/usr/lib).\n"
		 "What lies outside the app's directory is not bundled but taken from the host\n"
		 "that runs the bundle; outside the system trees (interpreter, libraries,\n"
		 "dist-packages) teepy run refuses it unless run with --allow: build warns, one\n"
		 "line per path.\n",
	.exits = exits,
};

/* What an --include-dir walk could not add, for one warning line per directory. */
struct dropped {
	char text[512];
	size_t count;
};

struct build {
	const char *bundle_path;
	const char *key_path;
	struct tp_strlist includes;	/* --include, as given */
	struct tp_strlist include_dirs; /* --include-dir, as given */
	struct tp_strlist preload;
	struct tp_strlist samples; /* --sample-input FILEs: one sample run each */
	bool allow_processes;
	bool encrypt;
	struct tp_strlist encrypt_paths;     /* --encrypt-path GLOBs; none: every app file */
	char new_key[PATH_MAX + 8];	     /* a key made for the bundle: removed unless it is
					      * written ("" for none) */
	char encrypted_line[PATH_MAX + 256]; /* said once the bundle is written */
	struct tp_manifest manifest;
	struct tp_traced_run traced;
	void **blobs; /* contents of bundled files, by manifest index */
	struct stat key_st, out_st;
	bool have_out_st;	     /* the -o file exists already (an earlier build) */
	struct tp_strlist left_out;  /* "PATH (why)": never bundled, said in one warning */
	struct host_source *sources; /* the host paths the builder named */
	size_t source_count;
	bool out_of_memory; /* a list lost an entry: the build stops before writing */
};

/* Adds s to l; out of memory is remembered in b and reported once, before a bundle
 * that would lack the entry is written. */
static void push(struct build *b, struct tp_strlist *l, const char *s)
{
	if (tp_strlist_push(l, s) < 0)
		b->out_of_memory = true;
}

/* A host path the builder named (--include, --include-dir, --allow, --pythonpath):
 * where system files outside the system trees come from, for the warnings. */
struct host_source {
	const char *flag, *given;
	char real[PATH_MAX];
};

static bool under(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	return strncmp(path, dir, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

static bool runtime_owned(const char *path)
{
	return under(path, "/dev") || under(path, "/proc") || under(path, "/sys") ||
	       under(path, TP_RUNTIME_DIR) || strcmp(path, "/etc/passwd") == 0 ||
	       strcmp(path, "/etc/group") == 0;
}

static int read_file(const char *path, void **out, uint64_t *size, struct stat *st)
{
	/* a FIFO or device met on the way must not block the build */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
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

/* A PEM private key of any kind ("-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE
 * KEY-----") as the file's first line. */
static bool is_private_key(const char *content, uint64_t size)
{
	static const char begin[] = "-----BEGIN ", end[] = "PRIVATE KEY-----";
	uint64_t i = 0;

	while (i < size && (content[i] == ' ' || content[i] == '\t' || content[i] == '\r' ||
			    content[i] == '\n'))
		i++;
	if (size - i < sizeof(begin) - 1 || memcmp(content + i, begin, sizeof(begin) - 1) != 0)
		return false;
	const char *line = content + i;
	const char *nl = memchr(line, '\n', (size_t)(size - i));
	size_t len = nl ? (size_t)(nl - line) : (size_t)(size - i);
	while (len && line[len - 1] == '\r')
		len--;
	return len >= sizeof(end) - 1 &&
	       memcmp(line + len - (sizeof(end) - 1), end, sizeof(end) - 1) == 0;
}

/* Why a file of the app must not travel in the bundle, or NULL. The signing key and
 * the bundle being written are told by their inode, whatever they are called; any
 * other private key, symmetric key (teepy keygen --symmetric) or bundle by its
 * content. */
static const char *secret_reason(const struct build *b, const struct stat *st, const char *content,
				 uint64_t size)
{
	if (st->st_dev == b->key_st.st_dev && st->st_ino == b->key_st.st_ino)
		return "the --key file";
	if (b->have_out_st && st->st_dev == b->out_st.st_dev && st->st_ino == b->out_st.st_ino)
		return "the -o bundle";
	if (size >= 8 && memcmp(content, TP_BUNDLE_MAGIC, 8) == 0)
		return "a bundle";
	if (is_private_key(content, size))
		return "a private key";
	if (tp_symkey_looks_like(content, (size_t)size))
		return "a symmetric key";
	return NULL;
}

static void note_left_out(struct build *b, const char *inside, const char *why)
{
	char item[PATH_MAX + 64];
	size_t len = strlen(inside);

	for (size_t i = 0; i < b->left_out.count; i++)
		if (strncmp(b->left_out.items[i], inside, len) == 0 &&
		    strncmp(b->left_out.items[i] + len, " (", 2) == 0)
			return; /* met twice: traced and included */
	snprintf(item, sizeof(item), "%s (%s)", inside, why);
	push(b, &b->left_out, item);
}

static int add_seen(struct build *b, const char *path);
static void host_view(const struct build *b, const char *path, char *out, size_t size);

struct library_search {
	struct build *b;
	const char *name;
	int result;
};

/* One directory of the loader's search: the first that holds the library wins. */
static int try_library_dir(const char *dir, void *ctx)
{
	struct library_search *ls = ctx;
	char path[PATH_MAX], host[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, ls->name) >= sizeof(path))
		return 0;
	host_view(ls->b, path, host, sizeof(host));
	if (stat(host, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	ls->result = add_seen(ls->b, path);
	return 1;
}

/* The libraries an ELF file links (DT_NEEDED), looked up as the loader does: its
 * runpath, then the loader's own directories (tp_system_library_dirs_each: there
 * is no ld.so.cache in a sealed root). The sample run traced those it loaded; an extension module
 * added by --include-dir would otherwise arrive without its libraries. A library not on this host
 * is left to fail as it would natively. */
static int add_libraries(struct build *b, const char *inside, const struct tp_elf_deps *deps)
{
	char origin[PATH_MAX];

	snprintf(origin, sizeof(origin), "%s", inside);
	*strrchr(origin, '/') = '\0';
	for (size_t i = 0; i < deps->count; i++) {
		struct library_search ls = { .b = b, .name = deps->needed[i] };
		if (strchr(ls.name, '/'))
			continue; /* a path of its own: the loader does not search for it */
		if (!(deps->runpath &&
		      tp_elf_runpath_each(deps->runpath, origin, try_library_dir, &ls)))
			tp_system_library_dirs_each(try_library_dir, &ls);
		if (ls.result < 0 && ls.result != -ENOENT)
			return ls.result;
	}
	return 0;
}

/* Adds one host file under its path inside the root; app files are bundled. Returns
 * 0 (also for a file left out as a secret) or -errno when it cannot be read. */
static int add_file(struct build *b, const char *host_path, const char *inside, bool bundled)
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
	const char *why = bundled ? secret_reason(b, &st, content, size) : NULL;
	if (why) {
		note_left_out(b, inside, why);
		free(content);
		return 0;
	}
	files = realloc(m->files, (m->file_count + 1) * sizeof(*files));
	if (files)
		m->files = files;
	void **blobs = realloc(b->blobs, (m->file_count + 1) * sizeof(void *));
	if (blobs)
		b->blobs = blobs;
	if (!files || !blobs) {
		free(content);
		return -ENOMEM;
	}
	struct tp_manifest_file *f = &files[m->file_count];
	memset(f, 0, sizeof(*f));
	f->path = strdup(inside);
	f->size = size;
	/* what the kernel needs: executable or not. The builder's umask is not the app's */
	f->mode = st.st_mode & 0111 ? 0755 : 0644;
	f->bundled = bundled;
	f->mtime = bundled ? 0 : (uint64_t)st.st_mtime; /* kept or cleared by settle_mtimes */
	tp_sha256(content, size, f->sha256);
	struct tp_elf_deps deps;
	bool elf = tp_elf_deps(content, (size_t)size, &deps) == 0 && deps.count;
	if (bundled) {
		blobs[m->file_count] = content;
	} else {
		blobs[m->file_count] = NULL;
		free(content);
	}
	m->file_count++;
	if (!f->path)
		r = -ENOMEM;
	else if (elf)
		r = add_libraries(b, inside, &deps);
	tp_elf_deps_free(&deps);
	return r;
}

/* Where a path of the sample run is on this host: the app's directory was at /app,
 * the venv at /venv. */
static void host_view(const struct build *b, const char *path, char *out, size_t size)
{
	const char *venv = b->traced.venv_dir;
	int n = under(path, TP_APP_DIR) ?
		    snprintf(out, size, "%s%s", b->traced.script_dir, path + strlen(TP_APP_DIR)) :
		venv[0] && under(path, TP_VENV_DIR) ?
		    snprintf(out, size, "%s%s", venv, path + strlen(TP_VENV_DIR)) :
		    snprintf(out, size, "%s", path);
	if (n < 0 || (size_t)n >= size)
		out[0] = '\0'; /* too long to exist: nothing is found there */
}

/* Maps a path seen in the sandbox to its place in the manifest: the app's own
 * directory moves to /app and is bundled; anything else stays at its path, with
 * the content of the file it leads to. Returns 0 (added, or not the bundle's to
 * carry) or -errno when it cannot be read. */
static int add_seen(struct build *b, const char *path)
{
	char inside[PATH_MAX];
	const char *dir = b->traced.script_dir;
	struct stat st;

	if (runtime_owned(path))
		return 0;
	char host_path[PATH_MAX];
	host_view(b, path, host_path, sizeof(host_path));
	if (stat(host_path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0; /* gone since, or not a file */
	/* a cached module is only used beside its source: CPython stats the .py (the
	 * tracer sees no open) and checks its mtime and size against the .pyc */
	const char *cache = strstr(path, "/__pycache__/");
	if (cache && strlen(path) > 4 && strcmp(path + strlen(path) - 4, ".pyc") == 0) {
		char source[PATH_MAX];
		const char *name = cache + strlen("/__pycache__/");
		size_t stem = strcspn(name, ".");
		snprintf(source, sizeof(source), "%.*s/%.*s.py", (int)(cache - path), path,
			 (int)stem, name);
		int r = add_seen(b, source);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	/* where the sample run saw them, or their host paths (an --include): a venv
	 * inside the app's directory is the venv's, at /venv */
	const char *venv = b->traced.venv_dir;
	bool in_venv = venv[0] && (under(path, TP_VENV_DIR) || under(path, venv));
	bool in_app = !in_venv && (under(path, TP_APP_DIR) || under(path, dir));
	/* the bundled files' caches carry their sources' mtimes, which a bundle does not
	 * keep (reproducible): of no use, and not reproducible either */
	if ((in_app || in_venv) && cache)
		return 0;
	if (in_app || in_venv) {
		/* the sample run saw the app's directory at /app and the venv at /venv; a
		 * link in them that leads elsewhere on the host is not theirs to bundle */
		const char *host_dir = in_app ? dir : venv,
			   *inside_dir = in_app ? TP_APP_DIR : TP_VENV_DIR;
		char host[PATH_MAX], real_host[PATH_MAX];
		const char *rest =
		    under(path, inside_dir) ? path + strlen(inside_dir) : path + strlen(host_dir);
		snprintf(host, sizeof(host), "%s%s", host_dir, rest);
		snprintf(inside, sizeof(inside), "%s%s", inside_dir, rest);
		if (!realpath(host, real_host) || !under(real_host, host_dir)) {
			tp_warn("build: %s leads outside the %s; not bundled", host,
				in_app ? "app's directory" : "venv");
			return 0;
		}
		return add_file(b, real_host, inside, true);
	}
	/* visibility is a matter of the real file: the loader asks for /lib/<multiarch>/...,
	 * reached through the /lib -> usr/lib link; the content goes at the path asked for */
	char real[PATH_MAX];
	if (!realpath(path, real))
		return 0;
	if (!tp_root_plan_covers(&b->traced.plan, real) && strcmp(path, TP_LOADER) != 0)
		return 0; /* not visible in the run */
	return add_file(b, path, path, false);
}

/* A "#!" script that ran had its interpreter opened by the kernel, which no traced
 * call shows: add it at the path the script names (like the loader, the content
 * at that path, links followed), and its own interpreter in turn, as deep as the
 * kernel goes (4). */
static int add_interpreters(struct build *b, const char *program, int depth)
{
	char host[PATH_MAX], head[256], interpreter[PATH_MAX];
	ssize_t n;
	int fd, r;

	host_view(b, program, host, sizeof(host));
	fd = open(host, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	n = read(fd, head, sizeof(head));
	close(fd);
	if (n <= 0 ||
	    tp_trace_script_interpreter(head, (size_t)n, interpreter, sizeof(interpreter)) < 0)
		return 0;
	if ((r = add_seen(b, interpreter)) < 0)
		return r;
	return depth < 4 ? add_interpreters(b, interpreter, depth + 1) : 0;
}

static void note_dropped(struct dropped *d, const char *path, const char *why)
{
	size_t used = strlen(d->text);

	if (d->count < 3 && used < sizeof(d->text) - 1)
		snprintf(d->text + used, sizeof(d->text) - used, "%s%s (%s)", d->count ? ", " : "",
			 path, why);
	d->count++;
}

/* Every file under dir, and every link in it to a file (placed as a file at the
 * link's path). What cannot be added is noted in d. Returns 0 or -ENOMEM. */
static int add_tree(struct build *b, const char *dir, struct dropped *d)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!dp) {
		note_dropped(d, dir, strerror(errno));
		return 0;
	}
	while (r == 0 && (e = readdir(dp))) {
		char path[PATH_MAX];
		struct stat st, target;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0) {
			note_dropped(d, path, strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			r = add_tree(b, path, d);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			if (stat(path, &target) < 0) {
				note_dropped(d, path, "a dangling link");
				continue;
			}
			if (!S_ISREG(target.st_mode)) {
				/* a link to a directory may loop back; name it with --include-dir
				 */
				note_dropped(d, path,
					     S_ISDIR(target.st_mode) ? "a link to a directory" :
								       "a link to no regular file");
				continue;
			}
		} else if (!S_ISREG(st.st_mode)) {
			note_dropped(d, path, "not a regular file");
			continue;
		}
		int added = add_seen(b, path);
		if (added == -ENOMEM)
			r = added;
		else if (added < 0)
			note_dropped(d, path, strerror(-added));
	}
	closedir(dp);
	return r;
}

/* An --include PATH as named: its directory resolved, its last name kept, so an
 * included link is placed at its own path (and its target beside it). */
static int named_path(const char *given, char *out, size_t size)
{
	char copy[PATH_MAX], copy2[PATH_MAX], dir[PATH_MAX];
	const char *base;

	snprintf(copy, sizeof(copy), "%s", given);
	snprintf(copy2, sizeof(copy2), "%s", given);
	base = basename(copy);
	if (!realpath(dirname(copy2), dir))
		return -errno;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(base, "/") == 0 || !*base)
		return realpath(given, out) ? 0 : -errno;
	if ((size_t)snprintf(out, size, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* Before the sample run: what --include and --include-dir name must exist, be
 * readable, and be something a bundle can hold. Returns 0 or an exit code. */
static int check_include(const char *flag, const char *given, bool want_dir, char real[PATH_MAX])
{
	char named[PATH_MAX];
	struct stat st;
	int r;

	if (realpath(given, real) == NULL || stat(real, &st) < 0) {
		tp_error("build: %s %s: %s", flag, given, strerror(errno));
		return TP_EXIT_USAGE;
	}
	if ((r = named_path(given, named, sizeof(named))) < 0) {
		tp_error("build: %s %s: %s", flag, given, strerror(-r));
		return TP_EXIT_USAGE;
	}
	if (runtime_owned(real) || runtime_owned(named)) {
		tp_error("build: %s %s: /dev, /proc, /sys and %s belong to the runtime; a bundle "
			 "cannot carry them",
			 flag, given, TP_RUNTIME_DIR);
		return TP_EXIT_USAGE;
	}
	if (want_dir && !S_ISDIR(st.st_mode)) {
		tp_error("build: %s %s: not a directory (use --include for a file)", flag, given);
		return TP_EXIT_USAGE;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		tp_error("build: %s %s: not a regular file or directory (a FIFO, socket or device "
			 "cannot be in a bundle)",
			 flag, given);
		return TP_EXIT_USAGE;
	}
	if (access(real, R_OK) < 0) {
		tp_error("build: %s %s: %s", flag, given, strerror(errno));
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* After the sample run: adds one --include or --include-dir. Returns 0 or an exit code. */
static int add_include(struct build *b, const char *flag, const char *given)
{
	char real[PATH_MAX], named[PATH_MAX];
	struct stat st;
	int r;

	if (!realpath(given, real) || stat(real, &st) < 0 ||
	    named_path(given, named, sizeof(named)) < 0) {
		tp_error("build: %s %s: %s", flag, given, strerror(errno));
		return TP_EXIT_USAGE;
	}
	if (S_ISDIR(st.st_mode)) {
		struct dropped d = { .count = 0 };
		if (add_tree(b, real, &d) < 0) {
			tp_error("build: %s %s: out of memory", flag, given);
			return TP_EXIT_INTERNAL;
		}
		if (d.count)
			tp_warn("build: %s %s: %zu entr%s not in the bundle: %s%s", flag, given,
				d.count, d.count == 1 ? "y" : "ies", d.text,
				d.count > 3 ? ", ..." : "");
		return 0;
	}
	/* the file at the path named, and where a link leads; a link from the app's
	 * directory out of it brings only its target, as a system file (warn_host_files) */
	if (under(named, b->traced.script_dir) && !under(real, b->traced.script_dir))
		r = add_seen(b, real);
	else if ((r = add_seen(b, named)) == 0 && strcmp(named, real) != 0)
		r = add_seen(b, real);
	if (r < 0) {
		tp_error("build: %s %s: %s", flag, given, strerror(-r));
		return r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
	}
	return 0;
}

/* Notes a host path the builder named, resolved (one that cannot be is skipped: the
 * run or the include says why). */
static int note_source(struct build *b, const char *flag, const char *given)
{
	struct host_source *s = realloc(b->sources, (b->source_count + 1) * sizeof(*s));

	if (!s)
		return -ENOMEM;
	b->sources = s;
	s = &s[b->source_count];
	*s = (struct host_source){ .flag = flag, .given = given };
	if (!realpath(given, s->real))
		return 0;
	b->source_count++;
	return 0;
}

/* An --include of a link in the app's directory that leads out of it. */
static bool leads_out(const struct build *b, const struct host_source *s)
{
	char named[PATH_MAX];

	return strcmp(s->flag, "--include") == 0 &&
	       named_path(s->given, named, sizeof(named)) == 0 &&
	       under(named, b->traced.script_dir) && !under(s->real, b->traced.script_dir);
}

/* Whether teepy run takes a system file without an --allow: the path named, and
 * where it leads, lie under the system trees (as tp_plan_may_take judges a run). */
static bool in_system_trees(const char *path, bool processes, enum tp_engine engine)
{
	char real[PATH_MAX];

	return tp_system_tree_covers(path, processes, engine) &&
	       (!realpath(path, real) || tp_system_tree_covers(real, processes, engine));
}

/* The manifest names its system files, and cannot grant itself host paths: teepy
 * run refuses one outside the system trees unless the person running the bundle
 * allows it (--allow). Says so, one line per host path the builder named that such
 * files lie under, and one per file under none; and says where an --include of a
 * link led out of the app's directory (its target is not bundled). */
static int warn_host_files(const struct build *b)
{
	const struct tp_manifest *m = &b->manifest;
	bool processes = m->processes == TP_PROCESSES_MANIFEST;
	bool *said = calloc(m->file_count + 1, sizeof(bool));

	if (!said)
		return -ENOMEM;
	for (size_t i = 0; i < m->file_count; i++)
		said[i] = m->files[i].bundled ||
			  in_system_trees(m->files[i].path, processes, m->engine.name);
	for (size_t k = 0; k < b->source_count; k++) {
		const struct host_source *s = &b->sources[k];
		const char *first = NULL;
		size_t n = 0;
		for (size_t i = 0; i < m->file_count; i++) {
			if (said[i] || !(under(m->files[i].path, s->real) ||
					 (s->given[0] == '/' && under(m->files[i].path, s->given))))
				continue;
			said[i] = true;
			first = first ? first : m->files[i].path;
			n++;
		}
		if (leads_out(b, s))
			tp_warn("build: %s %s leads to %s, outside the app's directory: not "
				"bundled, but taken from the host that runs the bundle%s%s",
				s->flag, s->given, s->real,
				n ? ", and teepy run refuses it there unless run with --allow " :
				    "",
				n ? s->real : "");
		else if (n)
			tp_warn("build: %s %s: %zu system file%s outside the system trees (%s%s): "
				"teepy run refuses the bundle unless run with --allow %s",
				s->flag, s->given, n, n > 1 ? "s" : "", first, n > 1 ? ", ..." : "",
				s->real);
	}
	for (size_t i = 0; i < m->file_count; i++)
		if (!said[i])
			tp_warn("build: system file %s lies outside the system trees: teepy run "
				"refuses the bundle unless run with --allow %s",
				m->files[i].path, m->files[i].path);
	free(said);
	return 0;
}

/* A .py file's mtime matters only where its cached .pyc is in the root: CPython
 * stats the source and uses the cache only if the mtime and size recorded in the
 * .pyc's header match (else it compiles the source, and a read-only root keeps
 * nothing). The .pyc's own mtime is never looked at, nor anything else's (the
 * sealed root's directories are made fresh). So a source keeps its mtime only
 * when some __pycache__/STEM.*.pyc beside it is in the manifest; every other
 * mtime is 0. Debian ships a source's mtime in its package, identical on every
 * machine, while .pyc files and everything compiled or unpacked at install time
 * carry the install time, which is not: so the same app measures the same on
 * every worker. m is sorted by path. */
static void settle_mtimes(struct tp_manifest *m)
{
	for (size_t i = 0; i < m->file_count; i++) {
		struct tp_manifest_file *f = &m->files[i];
		size_t len = strlen(f->path);
		bool keep = false;

		if (!f->bundled && len > 3 && strcmp(f->path + len - 3, ".py") == 0) {
			char prefix[PATH_MAX];
			const char *slash = strrchr(f->path, '/');
			snprintf(prefix, sizeof(prefix), "%.*s/__pycache__/%.*s.",
				 (int)(slash - f->path), f->path,
				 (int)(f->path + len - 3 - slash - 1), slash + 1);
			/* the first path not below prefix, by binary search; caches follow */
			size_t lo = 0, hi = m->file_count, plen = strlen(prefix);
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (strcmp(m->files[mid].path, prefix) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (; !keep && lo < m->file_count &&
			       strncmp(m->files[lo].path, prefix, plen) == 0;
			     lo++) {
				size_t l = strlen(m->files[lo].path);
				keep = l > 4 && strcmp(m->files[lo].path + l - 4, ".pyc") == 0;
			}
		}
		if (!keep)
			f->mtime = 0;
	}
}

/* Sorts files and their blobs together (the manifest's order is by path). */
static void sort_with_blobs(struct tp_manifest *m, void **blobs)
{
	for (size_t i = 1; i < m->file_count; i++) {
		for (size_t j = i; j > 0 && strcmp(m->files[j - 1].path, m->files[j].path) > 0;
		     j--) {
			struct tp_manifest_file f = m->files[j];
			void *blob = blobs[j];
			m->files[j] = m->files[j - 1];
			blobs[j] = blobs[j - 1];
			m->files[j - 1] = f;
			blobs[j - 1] = blob;
		}
	}
}

/* ---- --encrypt: the app's files as protected files ---- */

struct blob_reader {
	const uint8_t *bytes;
	uint64_t size;
};

static int blob_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
	const struct blob_reader *br = ctx;

	if (offset > br->size || size > br->size - offset)
		return -ENODATA;
	memcpy(buf, br->bytes + offset, size);
	return 0;
}

struct blob_writer {
	uint8_t *bytes;
	uint64_t size, used;
};

static int blob_write(void *ctx, uint64_t offset, const void *buf, size_t size)
{
	struct blob_writer *bw = ctx;

	if (offset != bw->used || size > bw->size - bw->used)
		return -EIO;
	memcpy(bw->bytes + bw->used, buf, size);
	bw->used += size;
	return 0;
}

static bool chosen(const struct build *b, const char *path)
{
	const char *rel = path + strlen(TP_APP_DIR "/");

	if (!b->encrypt_paths.count)
		return true;
	for (size_t i = 0; i < b->encrypt_paths.count; i++)
		if (fnmatch(b->encrypt_paths.items[i], rel, 0) == 0)
			return true;
	return false;
}

/* The bundle's key: --bundle-key's, or a new one beside the bundle (said so). Into
 * key (locked memory). Returns an exit code or 0. */
static int bundle_key(const struct build *b, const char *given, uint8_t *key, char *made,
		      size_t made_size)
{
	char err[PATH_MAX + 128];
	int r;

	made[0] = '\0';
	if (!given) {
		snprintf(made, made_size, "%s.key", b->bundle_path);
		if ((r = tp_symkey_generate(made)) < 0) {
			tp_error("build: %s: %s", made,
				 r == -EEXIST ?
				     "exists already; teepy never overwrites a key (give "
				     "it with --bundle-key to encrypt under it again)" :
				     strerror(-r));
			made[0] = '\0';
			return TP_EXIT_USAGE;
		}
		given = made;
	}
	if (tp_symkey_read(given, key, err, sizeof(err)) < 0) {
		tp_error("build: --bundle-key %s: %s", given, err);
		return TP_EXIT_USAGE;
	}
	return 0;
}

/* Every chosen app file sealed into its blob, deterministically (a keyed id from
 * its path and content, docs/protected-files.md): the same files and key give the
 * same bundle and measurement. The manifest records each one's id, and the size
 * and SHA-256 of its protected form. Returns an exit code or 0. */
static int encrypt_files(struct build *b, const char *key_path)
{
	struct tp_manifest *m = &b->manifest;
	uint8_t *key = tp_secret_alloc(TP_SYMKEY_SIZE);
	char *made = b->new_key, key_id[TP_SYMKEY_ID_SIZE], err[256], size_text[32];
	size_t count = 0;
	uint64_t bytes = 0;
	int code;

	/* no core dump holds the key or the plaintext; the sample run is over, no
	 * sandbox follows, so nothing needs this process dumpable */
	tp_secret_no_core(true);
	if (!key) {
		tp_error("build: out of memory");
		return TP_EXIT_INTERNAL;
	}
	if ((code = bundle_key(b, key_path, key, made, sizeof(b->new_key))) != 0)
		goto out;
	code = TP_EXIT_INTERNAL;
	if (tp_symkey_id(key, key_id) < 0) {
		tp_error("build: out of memory");
		goto out;
	}
	m->encryption.cipher = TP_CIPHER_AES_256_GCM;
	m->encryption.chunk_size = 1u << TP_PFS_DEFAULT_SHIFT;
	snprintf(m->encryption.key_id, sizeof(m->encryption.key_id), "%s", key_id);
	for (size_t i = 0; i < m->file_count; i++) {
		struct tp_manifest_file *f = &m->files[i];
		/* the app's own files; a venv's packages are others' (public) code */
		if (!f->bundled || !under(f->path, TP_APP_DIR) || !chosen(b, f->path))
			continue;
		struct blob_reader br = { b->blobs[i], f->size };
		struct tp_pfs_header h = { .purpose = TP_PFS_BUNDLE,
					   .chunk_shift = TP_PFS_DEFAULT_SHIFT,
					   .size = f->size };
		struct blob_writer bw = { .size = tp_pfs_sealed_size(f->size, h.chunk_shift) };
		if (!bw.size || !(bw.bytes = malloc(bw.size))) {
			tp_error("build: out of memory");
			goto out;
		}
		if (tp_pfs_derive_id(key, TP_PFS_BUNDLE, h.chunk_shift, f->path, f->size, blob_read,
				     &br, h.id, err, sizeof(err)) < 0 ||
		    tp_pfs_seal(key, &h, blob_read, &br, blob_write, &bw, err, sizeof(err)) < 0) {
			tp_error("build: %s: cannot encrypt it: %s", f->path, err);
			free(bw.bytes);
			goto out;
		}
		/* the plaintext leaves the build's memory; the blob is its protected form */
		explicit_bzero(b->blobs[i], f->size);
		free(b->blobs[i]);
		b->blobs[i] = bw.bytes;
		bytes += f->size;
		memcpy(f->id, h.id, sizeof(f->id));
		f->encrypted = true;
		f->size = bw.size;
		tp_sha256(bw.bytes, bw.size, f->sha256);
		count++;
	}
	if (count == 0) {
		/* a bundle that says it is encrypted and holds nothing so is no use */
		tp_error("build: --encrypt-path: none of the app's bundled files matches; nothing "
			 "would be encrypted");
		code = TP_EXIT_USAGE;
		goto out;
	}
	for (size_t g = 0; g < b->encrypt_paths.count; g++) {
		bool matched = false;
		for (size_t i = 0; i < m->file_count && !matched; i++)
			matched = m->files[i].bundled && under(m->files[i].path, TP_APP_DIR) &&
				  fnmatch(b->encrypt_paths.items[g],
					  m->files[i].path + strlen(TP_APP_DIR "/"), 0) == 0;
		if (!matched)
			tp_warn("build: --encrypt-path %s matches none of the app's files",
				b->encrypt_paths.items[g]);
	}
	size_t plain_venv = 0;
	for (size_t i = 0; i < m->file_count; i++)
		plain_venv += m->files[i].bundled && under(m->files[i].path, TP_VENV_DIR);
	if (plain_venv)
		tp_warn(
		    "build: --encrypt: the venv's %zu bundled file%s under %s stay in plaintext "
		    "(--encrypt seals the app's own files; keep a private package in the app's "
		    "directory to have it encrypted)",
		    plain_venv, plain_venv == 1 ? "" : "s", TP_VENV_DIR);
	snprintf(b->encrypted_line, sizeof(b->encrypted_line),
		 "encrypted %zu app file%s (%s) with AES-256-GCM under %s%s (key id %s)", count,
		 count == 1 ? "" : "s", tp_format_size(bytes, size_text, sizeof(size_text)),
		 made[0] ? made : key_path, made[0] ? ", a new key: keep it, a run needs it" : "",
		 key_id);
	code = 0;
out:
	tp_secret_free(key, TP_SYMKEY_SIZE);
	return code;
}

/* The sample runs, traced into one log: one with the input given (--input,
 * --input-file, or none), or one per --sample-input FILE, each with the same data
 * and flags. b->traced is the first run's view (every run has the same one).
 * Returns an exit code or 0. */
static int trace_samples(struct build *b, struct tp_run_opts *opts, struct tp_trace_log *log)
{
	size_t count = b->samples.count ? b->samples.count : 1;
	char which[PATH_MAX + 64] = "the sample run";

	for (size_t i = 0; i < count; i++) {
		struct tp_traced_run later = { 0 };
		struct tp_traced_run *traced = i ? &later : &b->traced;
		int r;
		if (b->samples.count) {
			opts->input_file = b->samples.items[i];
			snprintf(which, sizeof(which), "sample run %zu of %zu (--sample-input %s)",
				 i + 1, count, b->samples.items[i]);
			tp_info("tracing %s", which);
		} else if (opts->listen || opts->listen_fd_given) {
			tp_info("tracing a sample run of %s: a server, it runs until you stop it "
				"(Ctrl-C); make the requests it should serve meanwhile",
				opts->script);
		} else {
			tp_info("tracing a sample run of %s", opts->script);
		}
		r = tp_run_traced(opts, &b->preload, log, traced);
		bool preload_failed = traced->preload_failed, had_result = traced->had_result;
		uint64_t result_size = traced->result_size;
		tp_root_plan_free(&later.plan);
		tp_strlist_free(&later.python_path);
		tp_strlist_free(&later.site_dirs);
		if (preload_failed)
			return TP_EXIT_USAGE; /* the runtime said which module, in one line */
		if (r != TP_EXIT_OK && r != TP_EXIT_NO_RESULT) {
			tp_error("build: %s failed (exit code %d, see above); fix it or give it "
				 "the input and data it needs",
				 which, r);
			return r == TP_EXIT_USAGE ? TP_EXIT_USAGE : TP_EXIT_SERVICE_FAILED;
		}
		if (had_result)
			tp_info("%s returned %llu bytes (build prints no result)", which,
				(unsigned long long)result_size);
	}
	return 0;
}

int tp_cmd_build(int argc, char **argv)
{
	struct build b = { 0 };
	struct tp_run_opts opts;
	struct tp_trace_log log;
	struct tp_key *key = NULL;
	char err[512] = "", *json = NULL;
	char **includes_real = NULL;
	int code = TP_EXIT_USAGE, r;
	size_t json_size, include_count = 0;
	struct timespec t0, t1;
	struct tp_flag_parser p;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tp_trace_log_init(&log);
	/* one pass: build's own flags here, teepy run's (the sample run's) into opts */
	tp_run_opts_init(&opts);
	if (tp_flags_start(&p, "build", flags, tp_run_flags, argc, argv) < 0) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	while ((r = tp_flags_next(&p, err, sizeof(err))) != TP_FLAGS_DONE) {
		if (r < 0) {
			tp_error("build: %s", err);
			goto out;
		}
		/* the script and teepy run's flags are the sample run's */
		if (r == TP_FLAGS_OPERAND || p.flag_is_also) {
			r = r == TP_FLAGS_OPERAND ?
				tp_run_opts_operand(&opts, p.value, err, sizeof(err)) :
				tp_run_opts_set(&opts, p.flag->id, p.given, p.value, err,
						sizeof(err));
			if (r < 0) {
				tp_error("build: %s", err);
				goto out;
			}
			continue;
		}
		if (p.flag->arg && !*p.value) {
			tp_error("build: %s needs a value", p.given);
			goto out;
		}
		switch (p.flag->id) {
		case BUILD_HELP:
			tp_help_print(stdout, &tp_build_help);
			code = TP_EXIT_OK;
			goto out;
		case BUILD_BUNDLE:
			b.bundle_path = p.value;
			break;
		case BUILD_KEY:
			b.key_path = p.value;
			break;
		case BUILD_INCLUDE:
			push(&b, &b.includes, p.value);
			break;
		case BUILD_INCLUDE_DIR:
			push(&b, &b.include_dirs, p.value);
			break;
		case BUILD_PRELOAD:
			push(&b, &b.preload, p.value);
			break;
		case BUILD_SAMPLE_INPUT:
			push(&b, &b.samples, p.value);
			break;
		case BUILD_ALLOW_PROCESSES:
			b.allow_processes = true;
			break;
		case BUILD_ENCRYPT:
			b.encrypt = true;
			break;
		case BUILD_ENCRYPT_PATH:
			b.encrypt = true;
			push(&b, &b.encrypt_paths, p.value);
			break;
		}
	}
	/* a wrong flag is named first, before what else is missing */
	if ((p.dashdash && tp_run_opts_rest(&opts, argc, argv, p.rest) < 0) ||
	    tp_run_opts_finish(&opts, "build", err, sizeof(err)) < 0) {
		tp_error("build: %s", err[0] ? err : "out of memory");
		goto out;
	}
	if (!b.bundle_path) {
		tp_error("build: missing -o APP.tpy (see teepy build --help)");
		goto out;
	}
	if (!b.key_path) {
		tp_error(
		    "build: missing --key SIGNER.key (make one with teepy keygen -o SIGNER.key)");
		goto out;
	}
	if (b.samples.count && (opts.listen || opts.listen_fd_given)) {
		tp_error("build: --sample-input and %s: a server's sample run serves until it is "
			 "stopped, once (make the requests it should serve meanwhile)",
			 opts.listen ? "--listen" : "--listen-fd");
		goto out;
	}
	if (b.samples.count && (opts.input || opts.input_file)) {
		tp_error("build: --sample-input and %s: give every sample as --sample-input FILE "
			 "(one --input or --input-file is a single sample)",
			 opts.input ? "--input" : "--input-file");
		goto out;
	}
	for (size_t i = 0; i < b.samples.count; i++) {
		const char *sample = b.samples.items[i];
		struct stat st;
		if (strcmp(sample, "-") == 0) {
			tp_error("build: --sample-input -: standard input is one sample (give it "
				 "with --input-file -, or save it to a file)");
			goto out;
		}
		if (access(sample, R_OK) < 0 || stat(sample, &st) < 0) {
			tp_error("build: --sample-input %s: %s", sample, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			tp_error("build: --sample-input %s: is a directory", sample);
			goto out;
		}
	}
	if (opts.venv) { /* said before a sample run starts, in one line */
		struct tp_venv venv;
		char why[PATH_MAX + 256];
		if (tp_venv_open(opts.venv, &venv, why, sizeof(why)) < 0) {
			tp_error("build: --venv %s: %s", opts.venv, why);
			goto out;
		}
	}
	if (opts.bundle_key && !b.encrypt) {
		tp_error("build: --bundle-key %s: nothing is encrypted without --encrypt (or "
			 "--encrypt-path)",
			 opts.bundle_key);
		goto out;
	}
	if (tp_crypto_load(err, sizeof(err)) < 0) {
		tp_error("build: %s", err);
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	key = tp_key_load_private(b.key_path, err, sizeof(err));
	if (!key) {
		tp_error("build: --key %s: %s", b.key_path, err);
		goto out;
	}
	/* told apart by inode, not by name: never bundled even when the app reads them */
	if (stat(b.key_path, &b.key_st) < 0) {
		tp_error("build: --key %s: %s", b.key_path, strerror(errno));
		goto out;
	}
	b.have_out_st = stat(b.bundle_path, &b.out_st) == 0;
	for (size_t i = 0; i < b.preload.count; i++) {
		if (!tp_module_name_ok(b.preload.items[i])) {
			char shown[128];
			tp_error("build: --preload %s: not a module name (dotted identifiers, e.g. "
				 "numpy.linalg)",
				 tp_escape(b.preload.items[i], shown, sizeof(shown)));
			goto out;
		}
	}

	/* the host paths named, for warn_host_files: the includes first, whose lines
	 * say more */
	r = 0;
	for (size_t i = 0; i < b.includes.count; i++)
		r = r ?: note_source(&b, "--include", b.includes.items[i]);
	for (size_t i = 0; i < b.include_dirs.count; i++)
		r = r ?: note_source(&b, "--include-dir", b.include_dirs.items[i]);
	for (size_t i = 0; i < opts.allow.count; i++)
		r = r ?: note_source(&b, "--allow", opts.allow.items[i]);
	for (size_t i = 0; i < opts.pythonpath.count; i++)
		r = r ?: note_source(&b, "--pythonpath", opts.pythonpath.items[i]);
	if (r < 0) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}

	/* what the build adds is visible in the sample run too (at its real path, as
	 * --allow makes it), so the run sees what the sealed root will hold */
	include_count = b.includes.count + b.include_dirs.count;
	includes_real = calloc(include_count + 1, sizeof(char *));
	if (!includes_real) {
		code = TP_EXIT_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < include_count; i++) {
		bool dir = i >= b.includes.count;
		const char *given =
		    dir ? b.include_dirs.items[i - b.includes.count] : b.includes.items[i];
		char real[PATH_MAX];
		if ((code = check_include(dir ? "--include-dir" : "--include", given, dir, real)) !=
		    0)
			goto out;
		if (!(includes_real[i] = strdup(real)) ||
		    tp_run_opts_allow(&opts, includes_real[i]) < 0) {
			code = TP_EXIT_INTERNAL;
			goto out;
		}
	}
	code = TP_EXIT_USAGE;
	opts.allow_processes = b.allow_processes;

	/* the bundle records the sample run's limits, policy and engine; the keys no flag
	 * sets yet (ids, trees, encryption) keep today's defaults */
	const struct tp_engine_build *engine = tp_engine_built(opts.engine);
	tp_manifest_init(&b.manifest);
	tp_manifest_engine_of(engine, &b.manifest.engine);
	b.manifest.limits = opts.limits;
	b.manifest.processes = b.allow_processes ? TP_PROCESSES_MANIFEST : TP_PROCESSES_NONE;
	b.manifest.network =
	    opts.listen || opts.listen_fd_given ? TP_NETWORK_LISTEN : TP_NETWORK_NONE;
	for (size_t i = 0; i < opts.env.count; i++)
		push(&b, &b.manifest.env, opts.env.items[i]);
	for (size_t i = 0; i < opts.script_args.count; i++)
		push(&b, &b.manifest.argv, opts.script_args.items[i]);

	/* the sample runs borrow opts; --bundle-key's path (argv's) is build's */
	const char *bundle_key_path = opts.bundle_key;
	tp_run_escapes_output(&opts); /* teepy's lines are marked from here on */
	if ((code = trace_samples(&b, &opts, &log)) != 0)
		goto out_paths;
	code = TP_EXIT_USAGE;
	if (log.missed)
		tp_warn("build: the tracer could not read the path of %zu file%s the sample run "
			"opened or ran; the manifest may be incomplete (add what is missing with "
			"--include)",
			log.missed, log.missed == 1 ? "" : "s");

	/* every file seen, the interpreters of the scripts that ran, then what the user adds */
	tp_trace_log_sort(&log);
	for (size_t i = 0; i < log.count; i++) {
		r = add_seen(&b, log.paths[i]);
		if (r == 0 && log.kinds[i] == TP_TRACE_EXEC)
			r = add_interpreters(&b, log.paths[i], 1);
		if (r == -ENOMEM) {
			tp_error("build: out of memory");
			code = TP_EXIT_INTERNAL;
			goto out_paths;
		}
		if (r < 0)
			tp_warn(
			    "build: %s was opened in the sample run but cannot be read now (%s); "
			    "it is not in the manifest",
			    log.paths[i], strerror(-r));
	}
	/* the loader (the kernel opens it, no open call is traced), the interpreter, and
	 * the landmark by which it finds its prefix: os.py for CPython (os itself is
	 * frozen), site.py for PyPy */
	if ((r = add_seen(&b, TP_LOADER)) < 0 || (r = add_seen(&b, engine->exe)) < 0 ||
	    (r = add_seen(&b, engine->landmark)) < 0) {
		tp_error("build: the interpreter's files: %s", strerror(-r));
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	for (size_t i = 0; i < include_count; i++) {
		bool dir = i >= b.includes.count;
		if ((code = add_include(&b, dir ? "--include-dir" : "--include",
					dir ? b.include_dirs.items[i - b.includes.count] :
					      b.includes.items[i])) != 0)
			goto out_paths;
	}
	code = TP_EXIT_USAGE;
	if (b.left_out.count) {
		char line[2048] = "";
		for (size_t i = 0; i < b.left_out.count; i++)
			snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s",
				 i ? ", " : "", b.left_out.items[i]);
		tp_warn("build: not bundled (private keys and bundles never are): %s", line);
	}

	/* where things are inside the sealed root */
	char entry[PATH_MAX];
	snprintf(entry, sizeof(entry), "%s%s", TP_APP_DIR,
		 b.traced.script + strlen(b.traced.script_dir));
	b.manifest.entry = strdup(entry);
	/* the sample run's sys.path (the runner made it: /app first), with what lay in
	 * the app's directory moved to where the bundle has it */
	for (size_t i = 0; i < b.traced.python_path.count; i++) {
		const char *dir = b.traced.python_path.items[i];
		char inside[PATH_MAX];
		if (under(dir, b.traced.script_dir)) {
			snprintf(inside, sizeof(inside), "%s%s", TP_APP_DIR,
				 dir + strlen(b.traced.script_dir));
			dir = inside;
		}
		push(&b, &b.manifest.python_path, dir);
	}
	for (size_t i = 0; i < b.preload.count; i++)
		push(&b, &b.manifest.preload, b.preload.items[i]);
	for (size_t i = 0; i < b.traced.site_dirs.count; i++)
		push(&b, &b.manifest.site, b.traced.site_dirs.items[i]);

	sort_with_blobs(&b.manifest, b.blobs);
	settle_mtimes(&b.manifest);
	/* a bundle without a venv keeps format 2: the same app, the same measurement */
	b.manifest.format = tp_manifest_lowest_format(&b.manifest);
	if (b.encrypt && (code = encrypt_files(&b, bundle_key_path)) != 0)
		goto out_paths;
	code = TP_EXIT_USAGE;
	if (warn_host_files(&b) < 0 || b.out_of_memory) {
		tp_error("build: out of memory");
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	if (tp_manifest_finish(&b.manifest, err, sizeof(err)) < 0) {
		tp_error("build: cannot write the manifest: %s", err);
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	if ((r = tp_manifest_to_json(&b.manifest, &json, &json_size)) < 0) {
		tp_error("build: cannot write the manifest: %s",
			 r == -EILSEQ	    ? "a file name, argument or --env value is not UTF-8" :
			 r == -ENAMETOOLONG ? "an --env name is too long" :
					      strerror(-r));
		code = r == -ENOMEM ? TP_EXIT_INTERNAL : TP_EXIT_USAGE;
		goto out_paths;
	}
	if (json_size > TP_BUNDLE_MAX_MANIFEST) {
		tp_error("build: the manifest is %zu bytes, more than a bundle holds", json_size);
		code = TP_EXIT_INTERNAL;
		goto out_paths;
	}
	if ((r = tp_bundle_write(b.bundle_path, json, json_size, key, &b.manifest, b.blobs)) < 0) {
		tp_error("build: cannot write %s: %s", b.bundle_path, strerror(-r));
		code = TP_EXIT_USAGE;
		goto out_paths;
	}

	if (b.encrypted_line[0])
		tp_info("%s", b.encrypted_line);
	b.new_key[0] = '\0'; /* the bundle needs it now */

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
	tp_info("built %s: %zu files (%zu bundled, %s; %zu system, %s) in %.0f ms", b.bundle_path,
		b.manifest.file_count, n_bundled, tp_format_size(bundled, s1, sizeof(s1)),
		b.manifest.file_count - n_bundled, tp_format_size(system, s2, sizeof(s2)),
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	tp_info("app measurement %s", app_hex);
	code = TP_EXIT_OK;
out_paths:
out:
	if (b.new_key[0])
		unlink(b.new_key); /* made for a bundle that was not written: of no use */
	/* an app's plaintext does not stay behind in freed memory */
	for (size_t i = 0; b.blobs && i < b.manifest.file_count; i++) {
		if (b.blobs[i])
			explicit_bzero(b.blobs[i], b.manifest.files[i].size);
		free(b.blobs[i]);
	}
	free(b.blobs);
	free(json);
	tp_key_free(key);
	tp_manifest_free(&b.manifest);
	tp_root_plan_free(&b.traced.plan);
	tp_strlist_free(&b.traced.python_path);
	tp_strlist_free(&b.traced.site_dirs);
	tp_strlist_free(&b.includes);
	tp_strlist_free(&b.include_dirs);
	tp_strlist_free(&b.preload);
	tp_strlist_free(&b.samples);
	tp_strlist_free(&b.encrypt_paths);
	tp_strlist_free(&b.left_out);
	free(b.sources);
	tp_trace_log_free(&log);
	for (size_t i = 0; includes_real && i < include_count; i++)
		free(includes_real[i]);
	free(includes_real);
	tp_run_opts_free(&opts);
	return code;
}
