/* What _teepy uses of CPython's C API that PyPy's cpyext (Python 3.9's API) lacks,
 * in the terms cpyext has. Included by _teepy.c only when built for PyPy. */
#ifndef TEEPY_PYBOOT_PYPY_COMPAT_H
#define TEEPY_PYBOOT_PYPY_COMPAT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* 3.10's */
#ifndef Py_NewRef
static inline PyObject *tp_new_ref(PyObject *o)
{
	Py_INCREF(o);
	return o;
}
#define Py_NewRef(o) tp_new_ref((PyObject *)(o))
#endif

/* As CPython's: to sys.stderr, else C's stderr; the pending exception kept. */
static void PySys_FormatStderr(const char *format, ...)
{
	PyObject *type, *value, *tb, *message, *file;
	va_list ap;

	PyErr_Fetch(&type, &value, &tb);
	va_start(ap, format);
	message = PyUnicode_FromFormatV(format, ap);
	va_end(ap);
	file = PySys_GetObject("stderr"); /* borrowed */
	if (message &&
	    (!file || file == Py_None || PyFile_WriteObject(message, file, Py_PRINT_RAW) < 0)) {
		PyErr_Clear();
		const char *text = PyUnicode_AsUTF8(message);
		if (text)
			fputs(text, stderr);
	}
	Py_XDECREF(message);
	PyErr_Clear();
	PyErr_Restore(type, value, tb);
}

/* The file's bytes compiled as the builtin compile() compiles them (a coding cookie
 * honoured, a NUL refused, no future flags of the caller's), then run: the frames a
 * traceback shows are the file's alone, as with CPython's. */
static PyObject *PyRun_FileExFlags(FILE *fp, const char *path, int start, PyObject *globals,
				   PyObject *locals, int closeit, PyCompilerFlags *flags)
{
	PyObject *source = NULL, *name, *code = NULL, *result = NULL;
	PyObject *compile = PyDict_GetItemString(PyEval_GetBuiltins(), "compile"); /* borrowed */
	char *text = NULL, buf[65536];
	size_t size = 0, n;
	FILE *mem = open_memstream(&text, &size);

	(void)flags;
	while (mem && (n = fread(buf, 1, sizeof(buf), fp)) > 0)
		fwrite(buf, 1, n, mem);
	if (!mem || ferror(fp)) {
		PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
	} else {
		fclose(mem);
		mem = NULL;
		source = PyBytes_FromStringAndSize(text, (Py_ssize_t)size);
	}
	if (mem)
		fclose(mem);
	free(text);
	if (closeit)
		fclose(fp);
	name = source ? PyUnicode_DecodeFSDefault(path) : NULL;
	if (name && compile)
		code = PyObject_CallFunction(compile, "OOsii", source, name,
					     start == Py_eval_input ? "eval" : "exec", 0, 1);
	if (code)
		result = PyEval_EvalCode(code, globals, locals);
	Py_XDECREF(code);
	Py_XDECREF(name);
	Py_XDECREF(source);
	return result;
}

/* The worker's zygote is CPython's alone: boot refuses one on PyPy, so its compiler
 * and fork calls are never reached here. */
#define Py_CompileStringExFlags(text, path, start, flags, optimize)                                \
	Py_CompileStringFlags(text, path, start, flags)
static inline void PyOS_BeforeFork(void)
{
	abort();
}
static inline void PyOS_AfterFork_Parent(void)
{
	abort();
}
static inline void PyOS_AfterFork_Child(void)
{
	abort();
}

#endif
