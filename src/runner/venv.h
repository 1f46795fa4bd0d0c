/* A virtual environment named by --venv: what makes a directory one, and where its
 * packages are. */
#ifndef TEEPY_RUNNER_VENV_H
#define TEEPY_RUNNER_VENV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* What pyvenv.cfg says (the keys python -m venv and virtualenv write). */
struct tp_venv_cfg {
	char version[32];	   /* "version" or "version_info": "3.11.2"; "" if absent */
	char home[PATH_MAX];	   /* the base interpreter's directory; "" if absent */
	bool system_site_packages; /* include-system-site-packages = true */
};

/* Parses pyvenv.cfg's "key = value" lines (others ignored, as CPython's site does).
 * Pure. Returns 0, or -EINVAL when no line has a "home" key (CPython's own mark of
 * a venv). */
int tp_venv_parse_cfg(const char *text, size_t size, struct tp_venv_cfg *cfg);

struct tp_venv {
	char dir[PATH_MAX];  /* its real path */
	char site[PATH_MAX]; /* DIR/lib/pythonX.Y/site-packages, real */
	bool system_site_packages;
};

/* Checks GIVEN is a venv of this teepy's Python (its MAJOR.MINOR) and finds its
 * site-packages. Returns 0, or -1 with one line in err (without the flag's name)
 * naming what is wrong and how to make one. */
int tp_venv_open(const char *given, struct tp_venv *venv, char *err, size_t err_size);

#endif
