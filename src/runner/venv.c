/* --venv DIR: a directory python -m venv (or virtualenv) made for the interpreter
 * teepy runs. Its site-packages is what the service gets; the venv's own python
 * link is never run (teepy runs /usr/bin/python3 itself). */
#include "venv.h"

#include "../common/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* "pythonX.Y" of the interpreter teepy runs */
static const char *python_name(void)
{
	return strrchr(TP_PYTHON_STDLIB, '/') + 1;
}

static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
		(*n)--;
}

/* Whether the N bytes at S are NAME, any case (as CPython's site reads the file). */
static bool key_is(const char *s, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

static void copy_value(char *out, size_t out_size, const char *v, size_t n)
{
	snprintf(out, out_size, "%.*s", (int)(n < out_size ? n : out_size - 1), v);
}

int tp_venv_parse_cfg(const char *text, size_t size, struct tp_venv_cfg *cfg)
{
	bool home = false;

	memset(cfg, 0, sizeof(*cfg));
	while (size) {
		const char *nl = memchr(text, '\n', size);
		size_t len = nl ? (size_t)(nl - text) : size;
		const char *eq = memchr(text, '=', len);
		if (eq) {
			const char *k = text, *v = eq + 1;
			size_t kn = (size_t)(eq - text), vn = len - kn - 1;
			trim(&k, &kn);
			trim(&v, &vn);
			if (key_is(k, kn, "home")) {
				copy_value(cfg->home, sizeof(cfg->home), v, vn);
				home = true;
			} else if (key_is(k, kn, "version") || key_is(k, kn, "version_info")) {
				copy_value(cfg->version, sizeof(cfg->version), v, vn);
			} else if (key_is(k, kn, "include-system-site-packages")) {
				cfg->system_site_packages = key_is(v, vn, "true");
			}
		}
		text += len + (nl ? 1 : 0);
		size -= len + (nl ? 1 : 0);
	}
	return home ? 0 : -EINVAL;
}

/* Whether VERSION ("3.11.2", "3.11.2.final.0") is the MAJOR.MINOR of pythonX.Y. */
static bool same_minor(const char *version)
{
	const char *mine = python_name() + strlen("python");
	size_t n = strlen(mine);

	return strncmp(version, mine, n) == 0 && (version[n] == '.' || version[n] == '\0');
}

int tp_venv_open(const char *given, struct tp_venv *venv, char *err, size_t err_size)
{
	char cfg_path[PATH_MAX + 16], site[PATH_MAX + 64];
	struct tp_venv_cfg cfg;
	struct stat st;
	char *text = NULL;
	size_t size = 0;
	int fd, r;

	memset(venv, 0, sizeof(*venv));
	if (!realpath(given, venv->dir) || stat(venv->dir, &st) < 0) {
		snprintf(err, err_size, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_size, "not a directory (a virtual environment is one)");
		return -1;
	}
	snprintf(cfg_path, sizeof(cfg_path), "%s/pyvenv.cfg", venv->dir);
	fd = open(cfg_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		snprintf(err, err_size,
			 "not a virtual environment (no pyvenv.cfg in it; make one with "
			 "/usr/bin/python3 -m venv DIR)");
		return -1;
	}
	r = tp_read_all(fd, 64 << 10, &text, &size);
	close(fd);
	if (r < 0) {
		snprintf(err, err_size, "pyvenv.cfg: %s",
			 r == -EFBIG ? "larger than a venv's 64 KiB" : strerror(-r));
		return -1;
	}
	r = tp_venv_parse_cfg(text, size, &cfg);
	free(text);
	if (r < 0) {
		snprintf(err, err_size,
			 "not a virtual environment (its pyvenv.cfg has no \"home\" line; make "
			 "one with /usr/bin/python3 -m venv DIR)");
		return -1;
	}
	if (cfg.version[0] && !same_minor(cfg.version)) {
		snprintf(err, err_size,
			 "made for Python %s (home %s); teepy runs %s %s: make the venv with "
			 "%s -m venv DIR",
			 cfg.version, cfg.home, "/usr/bin/python3",
			 python_name() + strlen("python"), "/usr/bin/python3");
		return -1;
	}
	snprintf(site, sizeof(site), "%s/lib/%s/site-packages", venv->dir, python_name());
	if (!realpath(site, venv->site) || stat(venv->site, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, err_size, "no lib/%s/site-packages in it (a venv of %s has one)",
			 python_name(), python_name());
		return -1;
	}
	venv->system_site_packages = cfg.system_site_packages;
	return 0;
}
