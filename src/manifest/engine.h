/* The engines this teepy runs, as the build found them (meson.build asked each
 * interpreter): Debian's CPython, and Debian's PyPy when pypy3 and pypy3-dev were
 * installed. Facts fixed at build time: no OS calls. */
#ifndef TEEPY_MANIFEST_ENGINE_H
#define TEEPY_MANIFEST_ENGINE_H

#include "manifest.h"

struct tp_engine_build {
	enum tp_engine name;
	const char *word;	/* what --engine and TEEPY_ENGINE call it: "cpython", "pypy3" */
	const char *exe;	/* the interpreter's real path, executed in the sandbox */
	const char *command;	/* the link a person calls it by: /usr/bin/python3 */
	const char *stdlib;	/* its standard library, on sys.path */
	const char *dynload;	/* its lib-dynload, on sys.path after it; NULL: none */
	const char *landmark;	/* the file by which it finds its stdlib (stat, not opened) */
	const char *ext_suffix; /* of the _teepy built for it */
	const char *version;	/* the Python language's, in full: "3.11.2" */
	const char *release;	/* the implementation's: "PyPy 7.3.11", "CPython 3.11.2" */
};

/* PyPy maps about 70 MiB (its library, the collector's arenas, the JIT's first code
 * blocks) before it runs anything: the least address space it starts in. */
#define TP_PYPY_MIN_ADDRESS_SPACE (96ULL << 20)

/* The engine of that name this teepy was built for, or NULL. */
const struct tp_engine_build *tp_engine_built(enum tp_engine name);

/* The engine --engine WORD names, or NULL when WORD is none teepy knows;
 * *known says whether it is one teepy knows at all (built here or not). */
const struct tp_engine_build *tp_engine_by_word(const char *word, bool *known);

/* What --engine calls the engine of that name: "cpython", "pypy3". */
const char *tp_engine_word(enum tp_engine name);

/* The words teepy knows, for messages: "cpython or pypy3". */
#define TP_ENGINE_WORDS "cpython or pypy3"

/* The manifest's engine for a bundle built to run on b: its name, MAJOR.MINOR. */
void tp_manifest_engine_of(const struct tp_engine_build *b, struct tp_manifest_engine *e);

#endif
