/* The engines this teepy was built for (engine.h). */
#include "engine.h"

#include <string.h>

static const struct tp_engine_build engines[] = {
	{
	    .name = TP_ENGINE_CPYTHON,
	    .word = "cpython",
	    .exe = TP_PYTHON_EXE,
	    .command = "/usr/bin/python3",
	    .stdlib = TP_PYTHON_STDLIB,
	    .dynload = TP_PYTHON_STDLIB "/lib-dynload",
	    .landmark = TP_PYTHON_STDLIB "/os.py",
	    .ext_suffix = TP_PYTHON_EXT_SUFFIX,
	    .version = TP_PYTHON_VERSION,
	    .release = "CPython " TP_PYTHON_VERSION,
	},
#ifdef TP_PYPY_EXE
	{
	    .name = TP_ENGINE_PYPY,
	    .word = "pypy3",
	    .exe = TP_PYPY_EXE,
	    .command = TP_PYPY_COMMAND,
	    .stdlib = TP_PYPY_STDLIB,
	    .dynload = NULL, /* its C modules are cffi ones in the stdlib itself */
	    .landmark = TP_PYPY_STDLIB "/site.py", /* even under -S */
	    .ext_suffix = TP_PYPY_EXT_SUFFIX,
	    .version = TP_PYPY_VERSION,
	    .release = "PyPy " TP_PYPY_RELEASE,
	},
#endif
};

/* every engine teepy knows, built here or not */
static const char *const words[] = { [TP_ENGINE_CPYTHON] = "cpython", [TP_ENGINE_PYPY] = "pypy3" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct tp_engine_build *tp_engine_built(enum tp_engine name)
{
	for (size_t i = 0; i < COUNT(engines); i++)
		if (engines[i].name == name)
			return &engines[i];
	return NULL;
}

const struct tp_engine_build *tp_engine_by_word(const char *word, bool *known)
{
	*known = false;
	for (size_t i = 0; i < COUNT(words); i++) {
		if (strcmp(word, words[i]) == 0) {
			*known = true;
			return tp_engine_built((enum tp_engine)i);
		}
	}
	return NULL;
}

const char *tp_engine_word(enum tp_engine name)
{
	return (size_t)name < COUNT(words) ? words[name] : "?";
}

void tp_manifest_engine_of(const struct tp_engine_build *b, struct tp_manifest_engine *e)
{
	/* "3.11.2" -> "3.11": a bundle is for a language version; the interpreter's
	 * own bytes are a manifest file and pin the rest */
	const char *dot = strchr(b->version, '.');
	size_t len =
	    dot ? strcspn(dot + 1, ".") + (size_t)(dot + 1 - b->version) : strlen(b->version);

	e->name = b->name;
	if (len >= sizeof(e->version))
		len = sizeof(e->version) - 1;
	memcpy(e->version, b->version, len);
	e->version[len] = '\0';
}
