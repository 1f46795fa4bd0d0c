/* _teepy: the runtime's bootstrap inside the sandboxed interpreter. Imported before
 * any service code: installs seccomp stage 2 (no execve), registers `teex`, wires
 * the control channel, and runs the service as __main__. The only C in the sandbox. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifdef PYPY_VERSION
#include "pypy_compat.h"
#endif

#include "zygote_filter.h"
#include "../channel/channel.h"
#include "../common/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct sock_filter) == TP_BOOT_FILTER_INSN_SIZE,
	       "the boot filter is sock_filter[]");

/* One request and its reply at a time, whichever thread asks. */
static pthread_mutex_t channel_lock = PTHREAD_MUTEX_INITIALIZER;
static Py_ssize_t data_count;
static bool result_sent;
static bool booted;
static bool sealed_run;	      /* a missing module or file gets a hint after its traceback */
static PyObject *input_bytes; /* cached after the first ask (a zygote's child: its GO's) */
static bool listen_handed;    /* a listening socket is at TP_LISTEN_FD (boot's listen) */
static PyObject *listen_sock; /* teex.listen_socket()'s, made on the first ask */
static const char *wsgi_name; /* serve the entry's WSGI callable of this name (boot's) */
static char wsgi_clash[256];  /* the module a --wsgi script's name would replace, or "" */

static PyObject *call_text(const char *text, const char *name, PyObject *arg);

/* ---- the channel (GIL released around every blocking call) ---- */

static PyObject *channel_error(void)
{
	PyErr_SetString(PyExc_RuntimeError,
			"teepy: the control channel to the supervisor is closed");
	return NULL;
}

/* A shell's completer runs the service's code (a __dir__, a __getattr__) while the
 * console holds the channel (answer_completion): a call on the channel from that
 * code, on that thread, would wait for itself. It is refused instead. */
static pthread_t completer;
static bool completer_running;

static bool channel_held_here(void)
{
	return completer_running && pthread_equal(completer, pthread_self());
}

static PyObject *channel_busy(void)
{
	PyErr_SetString(PyExc_RuntimeError, "teepy: the control channel is busy: teex and "
					    "input() cannot be used while Tab completes");
	return NULL;
}

/* Sends a request and returns the reply's payload as bytes, or None when the
 * supervisor answers out of range. */
static PyObject *request(uint32_t type, uint32_t arg)
{
	struct tp_frame reply;
	PyObject *bytes;
	int r;

	if (channel_held_here())
		return channel_busy();
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&channel_lock);
	r = tp_frame_write(TP_CTRL_FD, type, arg, NULL, 0);
	if (r == 0)
		r = tp_frame_read_header(TP_CTRL_FD, &reply);
	Py_END_ALLOW_THREADS
	if (r < 0 || reply.type != TP_FRAME_REPLY || reply.size > (uint64_t)PY_SSIZE_T_MAX) {
		pthread_mutex_unlock(&channel_lock);
		return channel_error();
	}
	if (reply.arg != TP_REPLY_OK) {
		pthread_mutex_unlock(&channel_lock);
		Py_RETURN_NONE;
	}
	bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)reply.size);
	if (!bytes) {
		/* keep the channel in step: drain what the supervisor sends */
		(void)tp_frame_skip(TP_CTRL_FD, reply.size);
		pthread_mutex_unlock(&channel_lock);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	r = tp_read_full(TP_CTRL_FD, PyBytes_AS_STRING(bytes), (size_t)reply.size);
	pthread_mutex_unlock(&channel_lock);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		Py_DECREF(bytes);
		return channel_error();
	}
	return bytes;
}

static int send_frame(uint32_t type, uint32_t arg, const void *payload, size_t size)
{
	int r;

	if (channel_held_here())
		return -EDEADLK;
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&channel_lock);
	r = tp_frame_write(TP_CTRL_FD, type, arg, payload, size);
	pthread_mutex_unlock(&channel_lock);
	Py_END_ALLOW_THREADS
	return r;
}

/* ---- the teex module ---- */

static PyObject *get_input_bytes(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	if (!input_bytes) {
		PyObject *b = request(TP_FRAME_GET_INPUT, 0);
		if (!b)
			return NULL;
		if (b == Py_None) {
			Py_DECREF(b);
			return channel_error();
		}
		input_bytes = b;
	}
	Py_INCREF(input_bytes);
	return input_bytes;
}

static PyObject *get_input(PyObject *self, PyObject *unused)
{
	PyObject *b = get_input_bytes(self, unused);
	PyObject *s;

	if (!b)
		return NULL;
	s = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), "surrogateescape");
	Py_DECREF(b);
	return s;
}

static PyObject *set_result(PyObject *self, PyObject *arg)
{
	PyObject *encoded = NULL;
	const char *data;
	Py_ssize_t size;
	bool first;

	(void)self;
	if (PyUnicode_Check(arg)) {
		encoded = PyUnicode_AsEncodedString(arg, "utf-8", "surrogateescape");
		if (!encoded)
			return NULL;
		data = PyBytes_AS_STRING(encoded);
		size = PyBytes_GET_SIZE(encoded);
	} else if (PyBytes_Check(arg)) {
		data = PyBytes_AS_STRING(arg);
		size = PyBytes_GET_SIZE(arg);
	} else {
		return PyErr_Format(PyExc_TypeError,
				    "TEEX_return() argument must be str or bytes, not '%.100s'",
				    Py_TYPE(arg)->tp_name);
	}

	if (channel_held_here()) {
		Py_XDECREF(encoded);
		return channel_busy();
	}
	/* the GIL orders concurrent callers: the first one to get here wins */
	first = !result_sent;
	result_sent = true;
	if (first && send_frame(TP_FRAME_RESULT, 0, data, (size_t)size) < 0) {
		Py_XDECREF(encoded);
		return channel_error();
	}
	Py_XDECREF(encoded);
	return PyBool_FromLong(first);
}

static PyObject *get_data(PyObject *self, PyObject *arg)
{
	Py_ssize_t index;
	PyObject *b;

	(void)self;
	if (!PyLong_Check(arg))
		return PyErr_Format(PyExc_TypeError,
				    "TEEX_getdata() index must be int, not '%.100s'",
				    Py_TYPE(arg)->tp_name);
	index = PyLong_AsSsize_t(arg);
	if (index == -1 && PyErr_Occurred()) {
		if (!PyErr_ExceptionMatches(PyExc_OverflowError))
			return NULL;
		PyErr_Clear();
		index = -1;
	}
	if (index < 0 || index >= data_count)
		return PyErr_Format(PyExc_IndexError,
				    "data index %R out of range: there are %zd data items "
				    "(service data first, then task data)",
				    arg, data_count);
	b = request(TP_FRAME_GET_DATA, (uint32_t)index);
	if (b == Py_None) {
		Py_DECREF(b);
		return PyErr_Format(PyExc_IndexError, "data index %zd out of range (%zd items)",
				    index, data_count);
	}
	return b;
}

static PyObject *get_data_count(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyLong_FromSsize_t(data_count);
}

/* The handed socket as a socket.socket: one object, so that it is closed only when
 * the service closes it. */
static const char listen_text[] = "def make(_):\n"
				  "    import socket\n"
				  "    return socket.socket(fileno=4)\n";
_Static_assert(TP_LISTEN_FD == 4, "listen_text names the handed socket's fd");

static PyObject *listen_socket(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	if (!listen_handed) {
		PyErr_SetString(PyExc_RuntimeError,
				"no listening socket was handed in (teepy run --listen ADDR:PORT "
				"or --listen-fd N gives one)");
		return NULL;
	}
	if (!listen_sock && !(listen_sock = call_text(listen_text, "make", Py_None)))
		return NULL;
	return Py_NewRef(listen_sock);
}

/* teex.serve_wsgi(app), and --wsgi's (main: the entry's callable NAME): a WSGI
 * application served on the handed socket with the stdlib's wsgiref, one request
 * at a time, until the run is stopped. wsgiref's server would make and bind a
 * socket of its own: it is given the handed one instead. */
static const char wsgi_text[] =
    "def serve(app):\n"
    "    import socketserver, teex\n"
    "    from wsgiref.simple_server import WSGIServer, WSGIRequestHandler\n"
    "    if not callable(app):\n"
    "        raise TypeError(f'serve_wsgi: {app!r} is not callable (a WSGI application '\n"
    "                        'is)')\n"
    "    sock = teex.listen_socket()\n"
    "    address = sock.getsockname()\n"
    "    if not isinstance(address, tuple):\n"
    "        address = ('localhost', 0)\n"
    "    class Server(WSGIServer):\n"
    "        def __init__(self):\n"
    "            socketserver.BaseServer.__init__(self, address[:2], WSGIRequestHandler)\n"
    "            self.socket = sock\n"
    "            self.server_name, self.server_port = address[0], address[1]\n"
    "            self.setup_environ()\n"
    "    server = Server()\n"
    "    server.set_app(app)\n"
    "    server.serve_forever()\n";

static PyObject *serve_wsgi(PyObject *self, PyObject *app)
{
	(void)self;
	return call_text(wsgi_text, "serve", app);
}

static PyMethodDef teex_methods[] = {
	{ "TEEX_getinput", get_input, METH_NOARGS, "The input string of this invocation." },
	{ "get_input", get_input, METH_NOARGS, "The input string of this invocation." },
	{ "get_input_bytes", get_input_bytes, METH_NOARGS, "The input as bytes." },
	{ "TEEX_return", set_result, METH_O,
	  "Return the result (str or bytes). Only the first call counts; later calls return "
	  "False." },
	{ "set_result", set_result, METH_O,
	  "Return the result (str or bytes). Only the first call counts; later calls return "
	  "False." },
	{ "TEEX_getdata", get_data, METH_O,
	  "Bytes of data item i: the service data in order, then the task data." },
	{ "get_data", get_data, METH_O,
	  "Bytes of data item i: the service data in order, then the task data." },
	{ "data_count", get_data_count, METH_NOARGS, "How many data items there are." },
	{ "listen_socket", listen_socket, METH_NOARGS,
	  "The listening socket teepy handed in (run --listen, --listen-fd): accept on it." },
	{ "serve_wsgi", serve_wsgi, METH_O,
	  "Serve a WSGI application on listen_socket() with wsgiref, one request at a time, "
	  "until the run is stopped." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef teex_def = {
	PyModuleDef_HEAD_INIT,
	"teex",
	"The TEEX service interface, provided by the teepy runtime.",
	-1,
	teex_methods,
	NULL,
	NULL,
	NULL,
	NULL,
};

/* ---- boot ---- */

/* sys.argv, sys.path or the preload names from the decoded boot, as str the way
 * the interpreter decodes file names (surrogateescape). */
static PyObject *str_list(const char *const *items, size_t count)
{
	PyObject *list = PyList_New((Py_ssize_t)count);

	for (size_t i = 0; list && i < count; i++) {
		PyObject *s = PyUnicode_DecodeFSDefault(items[i]);
		if (!s) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, s);
	}
	return list;
}

/* Reads the BOOT frame and decodes it. Returns 0, or -1 with a Python error set. */
static int read_boot(struct tp_boot *boot)
{
	struct tp_frame frame;
	char *payload;
	int r;

	r = tp_frame_read_header(TP_CTRL_FD, &frame);
	if (r < 0 || frame.type != TP_FRAME_BOOT) {
		channel_error();
		return -1;
	}
	payload = PyMem_Malloc(frame.size ? (size_t)frame.size : 1);
	if (!payload) {
		PyErr_NoMemory();
		return -1;
	}
	if (tp_read_full(TP_CTRL_FD, payload, (size_t)frame.size) < 0) {
		PyMem_Free(payload);
		channel_error();
		return -1;
	}
	r = tp_boot_decode(payload, (size_t)frame.size, boot);
	PyMem_Free(payload);
	if (r == -ENOMEM)
		PyErr_NoMemory();
	else if (r < 0)
		PyErr_SetString(PyExc_RuntimeError, "teepy: malformed boot frame");
	return r < 0 ? -1 : 0;
}

static int install_stage2(const struct sock_fprog *filter)
{
	/* TSYNC: every thread of the interpreter (there should be one) gets the filter */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, filter) != 0)
		return -1;
	return 0;
}

/* Prints a syntax error as one line: "teepy: FILE:LINE:COL: SyntaxError: MSG".
 * A file that cannot be decoded has no position (the tokenizer stops before a
 * line exists): then "teepy: FILE: SyntaxError: MSG", MSG naming the line. */
static void report_syntax_error(const char *entry)
{
	PyObject *type, *value, *tb;
	PyObject *msg = NULL, *filename = NULL, *lineno = NULL, *offset = NULL, *where = NULL;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value) {
		msg = PyObject_GetAttrString(value, "msg");
		filename = PyObject_GetAttrString(value, "filename");
		lineno = PyObject_GetAttrString(value, "lineno");
		offset = PyObject_GetAttrString(value, "offset");
	}
	PyErr_Clear();
	if (!filename || filename == Py_None) {
		Py_XDECREF(filename);
		filename = PyUnicode_DecodeFSDefault(entry);
	}
	if (lineno && lineno != Py_None && offset && offset != Py_None)
		where = PyUnicode_FromFormat("%S:%S:%S", filename, lineno, offset);
	else if (lineno && lineno != Py_None)
		where = PyUnicode_FromFormat("%S:%S", filename, lineno);
	else if (filename)
		where = PyUnicode_FromFormat("%S", filename);
	PyErr_Clear();
	PySys_FormatStderr("teepy: %S: %s: %S\n", where ? where : Py_None,
			   ((PyTypeObject *)type)->tp_name, msg ? msg : Py_None);
	Py_XDECREF(where);
	Py_XDECREF(msg);
	Py_XDECREF(filename);
	Py_XDECREF(lineno);
	Py_XDECREF(offset);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* SystemExit(code) -> the exit status Python itself would use. */
static int exit_status_of(PyObject *value)
{
	PyObject *code = value ? PyObject_GetAttrString(value, "code") : NULL;
	int status = 0;

	PyErr_Clear();
	if (!code || code == Py_None)
		status = 0;
	else if (PyLong_Check(code))
		status = (int)PyLong_AsLong(code) & 0xff;
	else {
		PyObject_Print(code, stderr, Py_PRINT_RAW);
		fputc('\n', stderr);
		status = 1;
	}
	PyErr_Clear();
	Py_XDECREF(code);
	return status;
}

/* Defines TEXT's functions in a fresh namespace: NAME, a new reference, or NULL with
 * the exception set; call_text calls it with ARG at once. Python is clearer than C for
 * what only touches Python objects. */
static PyObject *define_text(const char *text, const char *name)
{
	PyObject *globals = PyDict_New(), *r = NULL, *fn = NULL;

	if (globals && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0 &&
	    (r = PyRun_String(text, Py_file_input, globals, globals))) {
		Py_DECREF(r);
		fn = PyDict_GetItemString(globals, name); /* borrowed */
		Py_XINCREF(fn);
	}
	Py_XDECREF(globals);
	return fn;
}

static PyObject *call_text(const char *text, const char *name, PyObject *arg)
{
	PyObject *fn = define_text(text, name), *r = fn ? PyObject_CallOneArg(fn, arg) : NULL;

	Py_XDECREF(fn);
	return r;
}

/* A sealed root holds only what the manifest names, so a service that fails on a
 * module, a time zone or a file its sample runs never touched meets a bare
 * ModuleNotFoundError or FileNotFoundError; a missing module opens no file (the
 * import system lists directories), so no tracer could have said more. A zone
 * zoneinfo cannot find ends in its fallback's import (importlib.resources, for
 * the tzdata package), which a bundle of a service that found its zones lacks:
 * the zone is named from zoneinfo's frame. One line
 * after the traceback names what is missing and how to add it, for the first such
 * error in the exception's chain. Honest about what it cannot know from inside:
 * whether the thing exists where the bundle is built. */
static const char hint_text[] =
    "def hint(e):\n"
    "    import os\n"
    "    seen = set()\n"
    "    while e is not None and id(e) not in seen:\n"
    "        seen.add(id(e))\n"
    "        tb, key = e.__traceback__, None\n"
    "        while tb is not None:\n"
    "            code = tb.tb_frame.f_code\n"
    "            if (code.co_name == 'load_tzdata'\n"
    "                    and code.co_filename.endswith('/zoneinfo/_common.py')):\n"
    "                key = tb.tb_frame.f_locals.get('key')\n"
    "            tb = tb.tb_next\n"
    "        if (key is None and type(e).__name__ == 'ZoneInfoNotFoundError' and e.args\n"
    "                and isinstance(e.args[0], str) and 'with key ' in e.args[0]):\n"
    "            key = e.args[0].rsplit('with key ', 1)[1]\n"
    "        if isinstance(key, str):\n"
    "            return ('the time zone %s is not in this sealed bundle: if the service '\n"
    "                    'needs it, no sample run used it (rebuild with --include '\n"
    "                    '/usr/share/zoneinfo/%s, or --include-dir /usr/share/zoneinfo '\n"
    "                    'for every zone)' % (key, key))\n"
    "        if isinstance(e, ModuleNotFoundError) and isinstance(e.name, str) and e.name:\n"
    "            return ('the module %s is not in this sealed bundle: if the service needs '\n"
    "                    'it, no sample run imported it (rebuild with a --sample-input that '\n"
    "                    'does, or with --preload %s)' % (e.name, e.name))\n"
    "        if isinstance(e, FileNotFoundError) and isinstance(e.filename, str) and e.filename:\n"
    "            try:\n"
    "                p = os.path.normpath(os.path.join(os.getcwd(), e.filename))\n"
    "            except OSError:\n"
    "                p = e.filename\n"
    "            if p.startswith('/') and not any(p == d or p.startswith(d + '/') for d in\n"
    "                    ('/tmp', '/out', '/proc', '/dev', '/sys', '/.teepy')):\n"
    "                return ('%s is not in this sealed bundle: if the service needs it, no '\n"
    "                        'sample run opened it (rebuild with --include for it, or with a '\n"
    "                        '--sample-input that opens it)' % p)\n"
    "        e = e.__cause__ or e.__context__\n"
    "    return None\n";

static void print_hint(PyObject *exc)
{
	PyObject *line = call_text(hint_text, "hint", exc);

	if (line && PyUnicode_Check(line))
		PySys_FormatStderr("teepy: %U\n", line);
	Py_XDECREF(line);
	PyErr_Clear();
}

/* The entry made ready to run: its __main__ module and, with compile, its code. A
 * zygote's child compiles before its HELLO: the compiler's first pass after a fork
 * faults in pages a warm start would otherwise wait for. */
struct entry {
	const char *path;
	PyObject *module;
	PyObject *code;		     /* NULL: compiled from the file as it runs */
	PyObject *type, *value, *tb; /* the runtime's own failure to prepare it */
};

static PyObject *entry_code; /* a zygote's entry, compiled once for its children */

static int entry_prepare(const char *path, bool compile, struct entry *e)
{
	PyObject *globals, *sys_modules, *file;
	FILE *fp;

	memset(e, 0, sizeof(*e));
	e->path = path;
	/* a WSGI script is imported, as a WSGI server would: under its own name, so that
	 * what it runs under `if __name__ == "__main__"` (a development server) does not */
	char name[256] = "__main__";
	if (wsgi_name) {
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(base, "."), base);
		/* wsgiref's modules first: a script named as one of them, as teex or as
		 * any module the runtime holds would replace it (entry_run refuses it) */
		PyObject *server = PyImport_ImportModule("wsgiref.simple_server");
		if (!server)
			return -1;
		Py_DECREF(server);
		if (PyDict_GetItemString(PyImport_GetModuleDict(), name)) {
			snprintf(wsgi_clash, sizeof(wsgi_clash), "%s", name);
			snprintf(name, sizeof(name), "__wsgi__");
		}
	}
	if (!(e->module = PyModule_New(name)))
		return -1;
	globals = PyModule_GetDict(e->module);
	sys_modules = PyImport_GetModuleDict();
	file = PyUnicode_DecodeFSDefault(path);
	if (!file || PyDict_SetItemString(sys_modules, name, e->module) < 0 ||
	    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0 ||
	    PyDict_SetItemString(globals, "__file__", file) < 0 ||
	    PyDict_SetItemString(globals, "__cached__", Py_None) < 0) {
		Py_XDECREF(file);
		Py_CLEAR(e->module);
		return -1;
	}
	Py_DECREF(file);

	if (!compile)
		return 0;
	if (entry_code) { /* compiled once by the zygote */
		e->code = Py_NewRef(entry_code);
		return 0;
	}
	/* compiled ahead when it compiles; otherwise the error is the interpreter's own
	 * when it runs (the file compiled as a cold run compiles it) */
	if (!(fp = fopen(path, "rb")))
		return 0;
	char *text = NULL;
	size_t size = 0;
	FILE *mem = open_memstream(&text, &size);
	char buf[65536];
	size_t n;
	while (mem && (n = fread(buf, 1, sizeof(buf), fp)) > 0)
		fwrite(buf, 1, n, mem);
	bool failed = !mem || ferror(fp);
	fclose(fp);
	if (mem)
		fclose(mem);
	if (!failed && !memchr(text, '\0', size)) {
		PyCompilerFlags flags = _PyCompilerFlags_INIT;
		if (!(e->code = Py_CompileStringExFlags(text, path, Py_file_input, &flags, -1)))
			PyErr_Clear();
	}
	free(text);
	return 0;
}

/* A zygote's child's entry, prepared before its HELLO (failed: the runtime's own
 * exception, raised out of boot as a cold run would). */
static struct entry child_entry;
static bool child_entry_failed;

/* --wsgi refused, its line printed: the one line there is, as for a syntax error
 * (the supervisor adds none). Returns None. */
static PyObject *wsgi_refused(struct entry *e, int *status)
{
	*status = 1;
	send_frame(TP_FRAME_STATUS, TP_STATUS_SYNTAX, "wsgi", 4);
	Py_CLEAR(e->code);
	Py_CLEAR(e->module);
	Py_RETURN_NONE;
}

/* Runs a prepared entry; its end as a STATUS frame and *status. Returns None, or
 * NULL when the runtime itself failed. */
static PyObject *entry_run(struct entry *e, int *status)
{
	const char *entry = e->path;
	PyObject *result;

	if (child_entry_failed) {
		PyErr_Restore(e->type, e->value, e->tb);
		e->type = e->value = e->tb = NULL;
		return NULL;
	}
	if (wsgi_clash[0]) {
		PySys_WriteStderr("teepy: --wsgi: %.400s would be imported as %.100s, a module the "
				  "server needs (rename the script)\n",
				  entry, wsgi_clash);
		return wsgi_refused(e, status);
	}
	PyObject *globals = PyModule_GetDict(e->module);
	if (e->code) {
		result = PyEval_EvalCode(e->code, globals, globals);
	} else {
		FILE *fp = fopen(entry, "rb");
		if (!fp) {
			PyErr_SetFromErrnoWithFilename(PyExc_OSError, entry);
			Py_CLEAR(e->module);
			return NULL;
		}
		PyCompilerFlags flags = _PyCompilerFlags_INIT;
		result = PyRun_FileExFlags(fp, entry, Py_file_input, globals, globals, 1, &flags);
	}
	if (result && wsgi_name) {
		/* --wsgi names a callable the script lacks: the one line there is, as for a
		 * syntax error (the supervisor adds none) */
		PyObject *app = PyObject_GetAttrString(e->module, wsgi_name);
		if (!app || !PyCallable_Check(app)) {
			PySys_WriteStderr("teepy: --wsgi: %.400s has %s WSGI application '%.100s' "
					  "(name another as %.400s:NAME)\n",
					  entry, app ? "a non-callable" : "no", wsgi_name, entry);
			PyErr_Clear();
			Py_XDECREF(app);
			Py_DECREF(result);
			return wsgi_refused(e, status);
		}
		Py_DECREF(result);
		result = call_text(wsgi_text, "serve", app);
		Py_DECREF(app);
	}
	Py_XDECREF(result);
	*status = 0;
	if (!result) {
		char name[128] = "";
		uint32_t kind = TP_STATUS_EXCEPTION;

		if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
			PyObject *type, *value, *tb;
			PyErr_Fetch(&type, &value, &tb);
			PyErr_NormalizeException(&type, &value, &tb);
			*status = exit_status_of(value);
			Py_XDECREF(type);
			Py_XDECREF(value);
			Py_XDECREF(tb);
			kind = TP_STATUS_OK;
		} else {
			PyObject *type, *value, *tb;
			PyErr_Fetch(&type, &value, &tb);
			PyErr_NormalizeException(&type, &value, &tb);
			if (value && tb)
				PyException_SetTraceback(value, tb);
			snprintf(name, sizeof(name), "%s",
				 type ? ((PyTypeObject *)type)->tp_name : "exception");
			bool syntax = type && PyErr_GivenExceptionMatches(type, PyExc_SyntaxError);
			PyObject *seen = value;
			Py_XINCREF(seen);
			PyErr_Restore(type, value, tb);
			if (syntax) {
				kind = TP_STATUS_SYNTAX;
				report_syntax_error(entry);
			} else {
				PyErr_Print();
				if (sealed_run && seen)
					print_hint(seen);
			}
			Py_XDECREF(seen);
			*status = 1;
		}
		send_frame(TP_FRAME_STATUS, kind, name, strlen(name));
	} else {
		send_frame(TP_FRAME_STATUS, TP_STATUS_OK, "", 0);
	}
	Py_CLEAR(e->code);
	Py_CLEAR(e->module);
	Py_RETURN_NONE;
}

static PyObject *run_entry(const char *path, int *status)
{
	struct entry e;

	return entry_prepare(path, false, &e) < 0 ? NULL : entry_run(&e, status);
}

/* The policy's preload modules, imported before the entry (a worker imports them
 * before input arrives; the build's sample run imports them so their files are
 * traced). One that cannot be imported ends the run with one line naming it.
 * Returns 0, or -1 with that line printed and the status sent. */
static int import_preload(PyObject *names)
{
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
		PyObject *name = PyList_GET_ITEM(names, i);
		PyObject *module = PyImport_Import(name);
		PyObject *type, *value, *tb, *text;

		if (module) {
			Py_DECREF(module);
			continue;
		}
		PyErr_Fetch(&type, &value, &tb);
		PyErr_NormalizeException(&type, &value, &tb);
		text = value ? PyObject_Str(value) : NULL;
		PyErr_Clear();
		PySys_FormatStderr("teepy: preload module %U cannot be imported: %s: %S\n", name,
				   type ? ((PyTypeObject *)type)->tp_name : "error",
				   text ? text : Py_None);
		Py_XDECREF(text);
		Py_XDECREF(type);
		Py_XDECREF(value);
		Py_XDECREF(tb);
		send_frame(TP_FRAME_STATUS, TP_STATUS_SYNTAX, TP_STATUS_PRELOAD_NAME,
			   strlen(TP_STATUS_PRELOAD_NAME));
		return -1;
	}
	return 0;
}

/* What `site` gives every interpreter not started with -S, as teepy starts it so
 * that no site-packages directory or .pth file is read: exit, quit, help,
 * copyright, credits and license (a script ending in exit(0) would raise
 * NameError without them), the same objects site.setquit, setcopyright and
 * sethelper make on Linux. Made here from the frozen _sitebuiltins rather than by
 * importing site, which imports os, stat and posixpath (1.5 ms of a start-up here)
 * for a service that may need none of them; _Printer's constructor imports os
 * too, so its three objects are filled in as that constructor fills them.
 * tests/e2e compares every attribute of the six with a native python3 -I's. */
#ifdef PYPY_VERSION
/* PyPy's site.py says its own credits; its sys has no _stdlib_dir (3.11's) */
#define SITE_CREDITS	"'PyPy is maintained by the PyPy developers\\nhttp://pypy.org/'"
#define SITE_STDLIB_DIR "_sitebuiltins.__file__.rpartition('/')[0]"
#else
#define SITE_CREDITS                                                                               \
	"    '    Thanks to CWI, CNRI, BeOpen.com, Zope Corporation and a cast of thousands\\n'\n" \
	"    '    for supporting Python development.  See www.python.org for more information.'"
#define SITE_STDLIB_DIR "sys._stdlib_dir"
#endif
static const char site_builtins_text[] =
    "import _sitebuiltins, builtins, sys\n"
    "def _printer(name, data, files=(), dirs=()):\n"
    "    p = object.__new__(_sitebuiltins._Printer)\n"
    "    p.__dict__.update(_Printer__name=name, _Printer__data=data, _Printer__lines=None,\n"
    "                      _Printer__filenames=[d + '/' + f for d in dirs for f in files])\n"
    "    return p\n"
    "builtins.quit = _sitebuiltins.Quitter('quit', 'Ctrl-D (i.e. EOF)')\n"
    "builtins.exit = _sitebuiltins.Quitter('exit', 'Ctrl-D (i.e. EOF)')\n"
    "builtins.copyright = _printer('copyright', sys.copyright)\n"
    "builtins.credits = _printer('credits',\n" SITE_CREDITS ")\n"
    "_stdlib_dir = " SITE_STDLIB_DIR "\n"
    "builtins.license = _printer('license', 'See https://www.python.org/psf/license/',\n"
    "                            ['LICENSE.txt', 'LICENSE'],\n"
    "                            [_stdlib_dir + '/..', _stdlib_dir, '.'])\n"
    "builtins.help = _sitebuiltins._Helper()\n";

static int add_site_builtins(void)
{
	PyObject *globals = PyDict_New(), *r = NULL;

	if (globals && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0)
		r = PyRun_String(site_builtins_text, Py_file_input, globals, globals);
	Py_XDECREF(globals);
	if (!r)
		return -1;
	Py_DECREF(r);
	return 0;
}

/* A venv's site-packages as the interpreter's own `site` reads it (teepy starts
 * python3 with -S): each directory's .pth files, in name order, their path entries
 * placed right after the directory (as natively, before the system's
 * dist-packages) and their "import" lines run, here in the sandbox, before the
 * service: in a bundle the .pth files are measured like any file. site was
 * imported before sys.path became the service's (boot): never a site.py of its. */
static const char site_text[] = "def add(dirs):\n"
				"    import site, sys\n"
				"    for d in dirs:\n"
				"        tail = []\n"
				"        if d in sys.path:\n"
				"            i = sys.path.index(d) + 1\n"
				"            tail = sys.path[i:]\n"
				"            del sys.path[i:]\n"
				"        site.addsitedir(d)\n"
				"        sys.path.extend(p for p in tail if p not in sys.path)\n";

static int add_site_dirs(PyObject *dirs)
{
	PyObject *r = call_text(site_text, "add", dirs);

	Py_XDECREF(r);
	return r ? 0 : -1;
}

/* ---- the zygote (protocol.h's "Zygotes", docs/zygote.md) ---- */

/* How a child ends (child_exit): atexit functions, the standard streams flushed. */
static const char exit_text[] = "def f(_):\n"
				"    import atexit, sys\n"
				"    atexit._run_exitfuncs()\n"
				"    for s in (sys.stdout, sys.stderr):\n"
				"        try:\n"
				"            s.flush()\n"
				"        except Exception:\n"
				"            pass\n";
static PyObject *exit_fn;  /* exit_text's f, defined by the zygote once for its children */
static PyObject *child_fn; /* child_text's f, the same */

#define ZYGOTE_CHILDREN 512
#define ZYGOTE_TOP_MAX	128
/* Landlock's filesystem rights (uapi landlock.h), by the ABI that brought them */
#define LL_EXECUTE     (1ULL << 0)
#define LL_WRITE_FILE  (1ULL << 1)
#define LL_READ_FILE   (1ULL << 2)
#define LL_TRUNCATE    (1ULL << 14)
#define LL_IOCTL_DEV   (1ULL << 15)
#define LL_FILE_RIGHTS (LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV)
#define LL_SCOPE_ALL   3ULL /* abstract unix sockets and signals (ABI 6) */

struct zchild {
	pid_t pid;
	int status_fd;
	uint32_t token;
};

/* The zygote's state: its children, and what every child's Landlock layer allows. */
static struct {
	struct zchild children[ZYGOTE_CHILDREN];
	size_t count;
	int top_fds[ZYGOTE_TOP_MAX]; /* the root's entries but /tmp (O_PATH) */
	bool top_dir[ZYGOTE_TOP_MAX];
	size_t top_count;
	uint64_t handled; /* the filesystem rights this kernel's Landlock knows */
	int abi;
	bool scratch; /* the run has a scratch /tmp */
} zy;

static void zygote_note(uint32_t kind, uint32_t token, int error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void zygote_note(uint32_t kind, uint32_t token, int error, const char *fmt, ...)
{
	struct tp_zygote_note n = {
		.magic = TP_ZYGOTE_NOTE_MAGIC, .kind = kind, .token = token, .error = error
	};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(n.message, sizeof(n.message), fmt, ap);
	va_end(ap);
	(void)send(TP_ZYGOTE_FD, &n, sizeof(n), MSG_NOSIGNAL);
}

static void child_ended(int sig)
{
	(void)sig; /* wakes the zygote's ppoll */
}

/* Removes the directory path and everything beneath it (a child's scratch, once the
 * child is gone): without recursion and with one directory open at a time, however
 * deep the tree the child left. */
static void remove_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	unsigned depth = 0;

	/* bounded: a tree that will not go (it cannot) is left, not looped over */
	for (unsigned passes = 0; fd >= 0 && passes < 1000000; passes++) {
		int dup_fd = dup(fd), sub = -1;
		DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
		struct dirent *e;

		if (!d) {
			if (dup_fd >= 0)
				close(dup_fd);
			break;
		}
		while (sub < 0 && (e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
			    unlinkat(fd, e->d_name, 0) == 0 ||
			    unlinkat(fd, e->d_name, AT_REMOVEDIR) == 0)
				continue;
			/* a directory the child made unwritable or unreadable: its own again */
			if (errno == ENOTEMPTY && fchmodat(fd, e->d_name, 0700, 0) == 0)
				sub = openat(fd, e->d_name,
					     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		closedir(d);
		if (sub >= 0) { /* down into a directory that is not empty */
			close(fd);
			fd = sub;
			depth++;
			continue;
		}
		if (depth == 0)
			break;
		/* empty now: up, where it is removed on the next pass */
		sub = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = sub;
		depth--;
	}
	if (fd >= 0)
		close(fd);
	rmdir(path);
}

static void scratch_name(uint32_t token, char *out, size_t size)
{
	snprintf(out, size, "/tmp/teepy-%u", token);
}

/* Every child that has ended: its status to its supervisor, its scratch removed. */
static void zygote_reap(void)
{
	struct rusage ru;
	int status;
	pid_t pid;

	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
		for (size_t i = 0; i < zy.count; i++) {
			struct zchild *c = &zy.children[i];
			if (c->pid != pid)
				continue;
			struct tp_zygote_status s = {
				.magic = TP_ZYGOTE_STATUS_MAGIC,
				.wait_status = status,
				.utime_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u +
					    (uint64_t)ru.ru_utime.tv_usec,
				.stime_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u +
					    (uint64_t)ru.ru_stime.tv_usec,
				.maxrss_kib = (uint64_t)ru.ru_maxrss,
			};
			(void)send(c->status_fd, &s, sizeof(s), MSG_NOSIGNAL);
			close(c->status_fd);
			if (zy.scratch) {
				char dir[64];
				scratch_name(c->token, dir, sizeof(dir));
				remove_tree(dir);
			}
			*c = zy.children[--zy.count];
			break;
		}
	}
}

/* Checks what the preload left and opens the root's entries the service may reach. Returns 0, or -1
 * with the refusal noted. */
static int zygote_prepare(const char *const *top, size_t top_count)
{
	pid_t pid;
	int status;
	PyObject *threads;

	/* a process the preload started would outlive it beside every child */
	if ((pid = waitpid(-1, &status, WNOHANG)) >= 0) {
		zygote_note(TP_ZYGOTE_REFUSED, 0, 0,
			    "a preload module started a process: no warm starts for this "
			    "service");
		return -1;
	}
	threads = call_text("def f(_):\n"
			    "    import sys\n"
			    "    t = sys.modules.get('threading')\n"
			    "    return 0 if t is None else t.active_count() - 1\n",
			    "f", Py_None);
	if (!threads || PyLong_AsLong(threads) != 0) {
		PyErr_Clear();
		zygote_note(TP_ZYGOTE_REFUSED, 0, 0,
			    "a preload module left a thread running: no warm starts for this "
			    "service");
		Py_XDECREF(threads);
		return -1;
	}
	Py_DECREF(threads);

	zy.scratch = access("/tmp", W_OK) == 0;
	zy.abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, 1u /* VERSION */);
	/* a build that stands for an older kernel (make check-landlock) */
	if (TP_LANDLOCK_ABI_MAX > 0 && zy.abi > TP_LANDLOCK_ABI_MAX)
		zy.abi = TP_LANDLOCK_ABI_MAX;
	if (zy.abi < 1 && zy.scratch) {
		zygote_note(TP_ZYGOTE_REFUSED, 0, errno,
			    "Landlock is not available, so children could not each have their "
			    "own scratch: no warm starts");
		return -1;
	}
	zy.handled = zy.abi >= 5 ? (1ULL << 16) - 1 :
		     zy.abi >= 3 ? (1ULL << 15) - 1 :
		     zy.abi == 2 ? (1ULL << 14) - 1 :
				   (1ULL << 13) - 1;
	for (size_t i = 0; i < top_count; i++) {
		struct stat st;
		int fd = openat(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int entry = fd < 0 ? -1 : openat(fd, top[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		if (entry < 0 && errno == ENOENT)
			continue;
		if (zy.top_count == ZYGOTE_TOP_MAX || entry < 0 || fstat(entry, &st) < 0) {
			zygote_note(TP_ZYGOTE_REFUSED, 0, errno,
				    "cannot open /%s for the children's Landlock rules", top[i]);
			return -1;
		}
		zy.top_dir[zy.top_count] = S_ISDIR(st.st_mode);
		zy.top_fds[zy.top_count++] = entry;
	}
	return 0;
}

/* The child's own Landlock layer: everything as before but /tmp, of which only its
 * own directory. Returns 0 or -errno. */
static int child_landlock(const char *scratch)
{
	struct {
		uint64_t fs, net, scoped;
	} attr = { .fs = zy.handled, .scoped = zy.abi >= 6 ? LL_SCOPE_ALL : 0 };
	struct {
		uint64_t allowed;
		int32_t parent_fd;
	} __attribute__((packed)) rule;
	size_t size = zy.abi >= 6 ? 24 : zy.abi >= 4 ? 16 : 8;
	int rs, fd = -1, r = 0;

	if ((rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0)) < 0)
		return -errno;
	for (size_t i = 0; r == 0 && i <= zy.top_count; i++) {
		if (i == zy.top_count) {
			if (!scratch)
				break;
			if ((fd = open(scratch, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
			    0) {
				r = -errno;
				break;
			}
		}
		rule.allowed =
		    i == zy.top_count || zy.top_dir[i] ? zy.handled : zy.handled & LL_FILE_RIGHTS;
		rule.parent_fd = i == zy.top_count ? fd : zy.top_fds[i];
		if (syscall(SYS_landlock_add_rule, rs, 1 /* PATH_BENEATH */, &rule, 0) < 0)
			r = -errno;
	}
	if (r == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	close(rs);
	return r;
}

/* Python's side of a fresh child: numpy's global generator reseeded (random's is by
 * its own at-fork hook), the scratch as TMPDIR and HOME. The generator's whole state
 * (624 words) comes from the OS: as random as seed()'s, which mixes 128 bits through
 * a SeedSequence, and half the pages written (about 64 page faults against 143).
 * Its imports (teex's too: every service imports it) and the flush of the streams
 * (empty: the zygote flushed them) change nothing but are done here on purpose, before
 * HELLO: they write the pages the run's own imports and its exit's flush would (the
 * import machinery's, the streams'), so that those pages are copied before an
 * invocation waits: a hello's run and exit took 1.1 ms of CPU after GO, 0.46 with
 * them (bench/RESULTS.md, 2026-12-07). */
static const char child_text[] =
    "def f(scratch):\n"
    "    import os, sys, teex\n"
    "    for s in (sys.stdout, sys.stderr):\n"
    "        try:\n"
    "            s.flush()\n"
    "        except Exception:\n"
    "            pass\n"
    "    m = sys.modules.get('numpy.random')\n"
    "    if m is not None:\n"
    "        try:\n"
    "            n = sys.modules['numpy']\n"
    "            m.set_state(('MT19937', n.frombuffer(os.urandom(2496),\n"
    "                                 dtype=n.uint32), 624))\n"
    "        except Exception:\n"
    "            m.seed()\n"
    "    if scratch is not None:\n"
    "        os.environ['TMPDIR'] = os.environ['HOME'] = scratch\n"
    "        t = sys.modules.get('tempfile')\n"
    "        if t is not None:\n"
    "            t.tempdir = None\n";

/* In the child, before it has seen anything of its invocation: its descriptors,
 * process group, scratch, Landlock layer, RNGs and filter; then HELLO, and the
 * GO that says how many data items it has. Returns 0, or -1 with one line on
 * its stderr. */
static int zygote_child(const struct tp_zygote_fork *req, const char *entry, int ch, int out)
{
	uint32_t token = req->token;
	/* the backstop a second past the limit its supervisor watches (the zygote's own
	 * has none: its CPU time is all its forks') */
	rlim_t cpu_s = (rlim_t)((req->cpu_ms + 999) / 1000 + 1);
	struct rlimit cpu = { cpu_s, cpu_s };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sock_filter insns[TP_CHILD_FILTER_MAX];
	struct sock_fprog prog;
	struct tp_frame go;
	char scratch[64];
	sigset_t none;
	int n, r;

	sigaction(SIGCHLD, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < zy.count; i++)
		close(zy.children[i].status_fd);
	if (dup2(ch, TP_CTRL_FD) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		return -1;
	close(ch);
	close(out);
	close(TP_ZYGOTE_FD);
	/* its own group: the kill(0, ...) its filter allows reaches it alone */
	if (setpgid(0, 0) < 0 || setrlimit(RLIMIT_CPU, &cpu) < 0)
		return -1;

	scratch_name(token, scratch, sizeof(scratch));
	if (zy.scratch && mkdir(scratch, 0700) < 0) {
		fprintf(stderr, "teepy: cannot make the invocation's scratch %s: %s\n", scratch,
			strerror(errno));
		return -1;
	}
	if (zy.abi >= 1 && (r = child_landlock(zy.scratch ? scratch : NULL)) < 0) {
		fprintf(stderr, "teepy: cannot restrict the invocation's files: %s\n",
			strerror(-r));
		return -1;
	}
	for (size_t i = 0; i < zy.top_count; i++)
		close(zy.top_fds[i]);
	PyObject *arg = zy.scratch ? PyUnicode_FromString(scratch) : Py_NewRef(Py_None);
	PyObject *done = arg ? PyObject_CallOneArg(child_fn, arg) : NULL;
	Py_XDECREF(arg);
	if (!done) {
		PyErr_Print();
		return -1;
	}
	Py_DECREF(done);

	if (entry_prepare(entry, true, &child_entry) < 0) {
		child_entry_failed = true;
		PyErr_Fetch(&child_entry.type, &child_entry.value, &child_entry.tb);
	}
	if ((n = tp_child_filter_build(getpid(), insns, TP_CHILD_FILTER_MAX)) < 0)
		return -1;
	prog.len = (unsigned short)n;
	prog.filter = insns;
	/* no TSYNC: the child has one thread, and its zygote's stage 2 allows no flag */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
		fprintf(stderr, "teepy: cannot install the invocation's filter: %s\n",
			strerror(errno));
		return -1;
	}
	if (tp_frame_write(TP_CTRL_FD, TP_FRAME_HELLO, 0, NULL, 0) < 0 ||
	    tp_frame_read_header(TP_CTRL_FD, &go) < 0 || go.type != TP_FRAME_GO ||
	    go.size > (uint64_t)PY_SSIZE_T_MAX)
		return -1; /* its supervisor is gone */
	data_count = (Py_ssize_t)go.arg;
	/* the input comes with GO: no round trip to ask for it */
	if (!(input_bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)go.size)))
		return -1;
	if (tp_read_full(TP_CTRL_FD, PyBytes_AS_STRING(input_bytes), (size_t)go.size) < 0)
		return -1;
	return 0;
}

/* The fork floor: count children that exit at once, forked (without Python's fork
 * hooks) and reaped one after another; the time they took, noted. */
static void zygote_floor(uint32_t count)
{
	struct timespec a, b;
	uint32_t done = 0;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (; done < count; done++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	zygote_note(TP_ZYGOTE_FLOOR, 0, (int32_t)done, "%lld",
		    (long long)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000));
}

/* Forks one child for a request. Returns 1 in the zygote, 0 in the child (which then
 * runs the entry), or exits the child that could not be made. */
static int zygote_fork(const struct tp_zygote_fork *req, const char *entry, const int fds[3])
{
	pid_t pid;

	if (zy.count == ZYGOTE_CHILDREN) {
		zygote_note(TP_ZYGOTE_FORK_FAILED, req->token, EAGAIN, "too many children");
		return 1;
	}
	PyOS_BeforeFork();
	pid = fork();
	if (pid == 0) {
		PyOS_AfterFork_Child();
		close(fds[2]);
		if (zygote_child(req, entry, fds[0], fds[1]) < 0) {
			fflush(stderr);
			_exit(70);
		}
		return 0;
	}
	PyOS_AfterFork_Parent();
	close(fds[0]);
	close(fds[1]);
	if (pid < 0) {
		int e = errno;
		close(fds[2]);
		zygote_note(TP_ZYGOTE_FORK_FAILED, req->token, e, "fork: %s", strerror(e));
		return 1;
	}
	zy.children[zy.count++] =
	    (struct zchild){ .pid = pid, .status_fd = fds[2], .token = req->token };
	zygote_note(TP_ZYGOTE_FORKED, req->token, 0, "%d", (int)pid);
	return 1;
}

/* A fork copies the page-table entries of a private mapping only where the mapping
 * has anonymous pages: those of a file's code and constants it leaves out, counting
 * on a fault to fill them, and so each child faulted anew on every page of code it
 * ran: about 50 faults a hello child, each 20 to 30 µs on these guests (bench/RESULTS.md,
 * 2026-12-07). So each read-only segment of every object the zygote has loaded (the
 * interpreter, libc, the preload's extension modules; not the vdso) is given one
 * anonymous page: made writable for an instant, never losing PROT_EXEC (a preload's
 * thread running in it never faults), its first byte written back to itself (that
 * page copied), its protection restored. Its children then start with the zygote's
 * entries. Only whole pages of the segment's file bytes are touched: a page it
 * shares with a writable segment keeps that segment's protection. x86-64 only: on
 * aarch64 an mprotect without PROT_BTI would take branch-target protection off the
 * code, and BTI-marked objects are told apart only by their notes. */
struct code_tables {
	uintptr_t vdso;
	int unrestored;	 /* errno of a protection that could not be restored, or 0 */
	char where[160]; /* ... and which object's */
};

static bool holds_address(const struct dl_phdr_info *info, uintptr_t address)
{
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && address >= start && address - start < ph->p_memsz)
			return true;
	}
	return false;
}

static int code_tables_segments(struct dl_phdr_info *info, size_t size, void *data)
{
	struct code_tables *ct = data;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	(void)size;
	if (ct->vdso && holds_address(info, ct->vdso))
		return 0;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
			continue;
		uintptr_t from = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
		uintptr_t to = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz) & ~(page - 1);
		int prot =
		    ((ph->p_flags & PF_R) ? PROT_READ : 0) | ((ph->p_flags & PF_X) ? PROT_EXEC : 0);
		if (to <= from || !(prot & PROT_READ))
			continue;
		/* a change that fails partway is not undone by the kernel: restored either way */
		if (mprotect((void *)from, to - from, prot | PROT_WRITE) == 0) {
			volatile char *first = (volatile char *)from;
			*first = *first;
		}
		if (mprotect((void *)from, to - from, prot) != 0) {
			ct->unrestored = errno;
			snprintf(ct->where, sizeof(ct->where), "%s at %#lx",
				 info->dlpi_name && *info->dlpi_name ? info->dlpi_name :
								       "the interpreter",
				 (unsigned long)from);
			return 1;
		}
	}
	return 0;
}

/* Returns 0, or -1 with errno when a segment's protection could not be restored,
 * ct->where naming it. */
static int code_tables_copied_on_fork(struct code_tables *ct)
{
#if defined(__x86_64__)
	*ct = (struct code_tables){ .vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR) };
	dl_iterate_phdr(code_tables_segments, ct);
	if (ct->unrestored) {
		errno = ct->unrestored;
		return -1;
	}
#else
	(void)ct;
	(void)code_tables_segments;
#endif
	return 0;
}

/* After the preload: READY (or REFUSED), then one child per request until the
 * spawner closes its end. Returns 0 in a child, 1 when the zygote is done. */
static int zygote_serve(const struct tp_boot *b)
{
	struct sigaction on_child = { .sa_handler = child_ended };
	sigset_t block, waiting;

	if (zygote_prepare(b->top, b->top_count) < 0)
		return 1;
	/* what the preload wrote is flushed once, not by each child; what the
	 * children's own start and end import (child_text, exit_text: os is not
	 * imported at all under -S) is imported here, once, not executed anew by each
	 * child: os and what it imports cost a child about 400 page faults, most of
	 * them copies, several milliseconds here; the preload's objects go to the
	 * collector's permanent generation, so that a child's collections neither scan
	 * nor write (copy) their pages */
	PyObject *flushed = call_text("def f(_):\n"
				      "    import atexit, gc, os, sys\n"
				      "    for s in (sys.stdout, sys.stderr):\n"
				      "        s.flush()\n"
				      "    gc.collect()\n"
				      "    gc.freeze()\n",
				      "f", Py_None);
	Py_XDECREF(flushed);
	PyErr_Clear();
	struct code_tables ct;
	if (code_tables_copied_on_fork(&ct) < 0) {
		/* refused, and ended at once: nothing more runs with code left writable */
		zygote_note(TP_ZYGOTE_REFUSED, 0, 0, "cannot restore the protection of %s: %s",
			    ct.where, strerror(errno));
		_exit(70);
	}
	if (!(exit_fn = define_text(exit_text, "f")) ||
	    !(child_fn = define_text(child_text, "f"))) {
		PyErr_Clear();
		zygote_note(TP_ZYGOTE_REFUSED, 0, 0, "cannot define the children's start and exit");
		return 1;
	}
	/* the entry compiled once, shared by every child (one that does not compile is
	 * compiled by each child as a cold run would, its error the interpreter's own) */
	struct entry once;
	if (entry_prepare(b->entry, true, &once) == 0 && once.code)
		entry_code = Py_NewRef(once.code);
	Py_XDECREF(once.code);
	PyErr_Clear();
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &waiting);
	sigdelset(&waiting, SIGCHLD);
	sigaction(SIGCHLD, &on_child, NULL);
	zygote_note(TP_ZYGOTE_READY, 0, 0, "ready");

	for (;;) {
		struct pollfd pfd = { .fd = TP_ZYGOTE_FD, .events = POLLIN };
		struct tp_zygote_fork req;
		int fds[3];
		ssize_t got;

		zygote_reap();
		if (ppoll(&pfd, 1, NULL, &waiting) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		got = tp_recv_fds(TP_ZYGOTE_FD, &req, sizeof(req), fds, 3, MSG_DONTWAIT);
		if (got == -EINTR || got == -EAGAIN)
			continue;
		if (got <= 0)
			return 1; /* the spawner is done with this service */
		if (got == sizeof(req) && req.magic == TP_ZYGOTE_FORK_MAGIC && req.floor) {
			zygote_floor(req.floor);
			continue;
		}
		if (got != sizeof(req) || req.magic != TP_ZYGOTE_FORK_MAGIC || fds[2] < 0) {
			for (int i = 0; i < 3; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			zygote_note(TP_ZYGOTE_FORK_FAILED, 0, EPROTO, "a malformed request");
			continue;
		}
		if (zygote_fork(&req, b->entry, fds) == 0)
			return 0;
	}
}

/* ---- teepy shell: an interactive console whose lines the supervisor reads ---- */

/* A Tab at the prompt: the supervisor's word (size bytes, read here) completed by the
 * console's complete(word), a list of str, and the completions sent back in one
 * COMPLETIONS frame (each ended by a newline; one holding a newline is left out, and
 * a list past the frame's room is sent as none). Whatever complete raised (a Ctrl-C
 * the supervisor turned into SIGINT among it) is dropped: no completions. The
 * channel's lock is held: the service's code complete runs may not use the channel
 * on this thread (channel_held_here). Returns 0, or < 0 when the channel failed. */
static int answer_completion(PyObject *complete, uint64_t size)
{
	char word[TP_MAX_COMPLETE_WORD];
	char *out = NULL;
	size_t used = 0;
	PyObject *found = NULL, *text;
	int r;

	if (size > sizeof(word))
		return -EMSGSIZE;
	Py_BEGIN_ALLOW_THREADS
	r = tp_read_full(TP_CTRL_FD, word, (size_t)size);
	Py_END_ALLOW_THREADS
	if (r < 0)
		return r;
	if ((text = PyUnicode_DecodeUTF8(word, (Py_ssize_t)size, "surrogateescape"))) {
		completer = pthread_self();
		completer_running = true;
		found = PyObject_CallOneArg(complete, text);
		completer_running = false;
		Py_DECREF(text);
	}
	if (found && PyList_Check(found) && (out = PyMem_Malloc(TP_MAX_COMPLETIONS_SIZE))) {
		for (Py_ssize_t i = 0; i < PyList_GET_SIZE(found); i++) {
			PyObject *item = PyList_GET_ITEM(found, i);
			PyObject *bytes =
			    PyUnicode_Check(item) ?
				PyUnicode_AsEncodedString(item, "utf-8", "surrogateescape") :
				NULL;
			if (!bytes) {
				PyErr_Clear();
				continue;
			}
			size_t n = (size_t)PyBytes_GET_SIZE(bytes);
			bool fits = n < TP_MAX_COMPLETIONS_SIZE - used;
			if (fits && !memchr(PyBytes_AS_STRING(bytes), '\n', n)) {
				memcpy(out + used, PyBytes_AS_STRING(bytes), n);
				used += n;
				out[used++] = '\n';
			}
			Py_DECREF(bytes);
			if (!fits) { /* none rather than a cut list (its common part misleads) */
				used = 0;
				break;
			}
		}
	}
	Py_XDECREF(found);
	PyErr_Clear();
	Py_BEGIN_ALLOW_THREADS
	r = tp_frame_write(TP_CTRL_FD, TP_FRAME_COMPLETIONS, 0, out, used);
	Py_END_ALLOW_THREADS
	PyMem_Free(out);
	return r;
}

/* A Ctrl-C the supervisor sent to stop a completer that had already answered: its
 * KeyboardInterrupt, pending, would drop the line that comes next. Dropped itself
 * (the supervisor sends SIGINT at a prompt only during a completion). Called with the
 * channel free: a handler the service set runs here. Returns 0, or -1 with another
 * exception a handler raised. */
static int drop_completion_interrupt(bool completed)
{
	if (completed && PyErr_CheckSignals() < 0) {
		if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
			return -1;
		PyErr_Clear();
	}
	return 0;
}

/* The console's input: PROMPT with the prompt, and the supervisor's answer: the line
 * as str, None at the end (Ctrl-D), KeyboardInterrupt for a Ctrl-C at the prompt;
 * meanwhile each Tab's word, answered with complete(word) (answer_completion). A
 * Ctrl-C that came before the prompt is raised first, so that none is pending while
 * the line is on its way (the supervisor sends SIGINT only while a statement runs, or
 * a completion is computed). */
static PyObject *shell_prompt(PyObject *self, PyObject *args)
{
	PyObject *arg, *complete, *encoded, *text;
	struct tp_frame reply;
	bool completed = false;
	char *line;
	int r;

	(void)self;
	if (!PyArg_ParseTuple(args, "UO:prompt", &arg, &complete))
		return NULL;
	if (channel_held_here())
		return channel_busy();
	if (PyErr_CheckSignals() < 0)
		return NULL;
	if (!(encoded = PyUnicode_AsEncodedString(arg, "utf-8", "surrogateescape")))
		return NULL;
	Py_ssize_t size = PyBytes_GET_SIZE(encoded);
	if ((size_t)size > TP_MAX_PROMPT_SIZE) /* a sys.ps1 the supervisor would refuse */
		size = TP_MAX_PROMPT_SIZE;
	Py_BEGIN_ALLOW_THREADS
	pthread_mutex_lock(&channel_lock);
	r = tp_frame_write(TP_CTRL_FD, TP_FRAME_PROMPT, 0, PyBytes_AS_STRING(encoded),
			   (size_t)size);
	Py_END_ALLOW_THREADS
	Py_DECREF(encoded);
	for (;;) {
		if (r == 0) {
			Py_BEGIN_ALLOW_THREADS
			r = tp_frame_read_header(TP_CTRL_FD, &reply);
			Py_END_ALLOW_THREADS
		}
		if (r < 0 || reply.type != TP_FRAME_REPLY ||
		    reply.size > (uint64_t)PY_SSIZE_T_MAX ||
		    (reply.arg != TP_REPLY_OK && reply.arg != TP_REPLY_COMPLETE && reply.size)) {
			pthread_mutex_unlock(&channel_lock);
			return channel_error();
		}
		if (reply.arg != TP_REPLY_COMPLETE)
			break;
		r = answer_completion(complete, reply.size);
		completed = true;
	}
	if (reply.arg == TP_REPLY_EOF || reply.arg == TP_REPLY_INTERRUPT) {
		pthread_mutex_unlock(&channel_lock);
		if (drop_completion_interrupt(completed) < 0)
			return NULL;
		if (reply.arg == TP_REPLY_EOF)
			Py_RETURN_NONE;
		PyErr_SetNone(PyExc_KeyboardInterrupt);
		return NULL;
	}
	if (!(line = PyMem_Malloc(reply.size ? (size_t)reply.size : 1))) {
		(void)tp_frame_skip(TP_CTRL_FD, reply.size);
		pthread_mutex_unlock(&channel_lock);
		return PyErr_NoMemory();
	}
	Py_BEGIN_ALLOW_THREADS
	r = tp_read_full(TP_CTRL_FD, line, (size_t)reply.size);
	pthread_mutex_unlock(&channel_lock);
	Py_END_ALLOW_THREADS
	text = r < 0 ? channel_error() :
		       PyUnicode_DecodeUTF8(line, (Py_ssize_t)reply.size, "surrogateescape");
	PyMem_Free(line);
	if (text && drop_completion_interrupt(completed) < 0)
		Py_CLEAR(text);
	return text;
}

static PyMethodDef shell_prompt_def = {
	"prompt", shell_prompt, METH_VARARGS,
	"prompt(text, complete): the next line from the person at teepy shell."
};

/* python3's own prompt in __main__'s namespace, written with builtins and sys alone:
 * a sealed root holds only its manifest's files, and the stdlib's console (code,
 * codeop, traceback, linecache, tokenize, re, ...) is rarely among them; nothing is
 * added to a root for it, so a shell sees a bundle's root as its service does. The
 * rules are codeop's, by the interpreter's version (3.11 says "incomplete input"
 * itself; before, source + "\n" and + "\n\n" are compared), __future__ statements
 * stay in force, and errors are shown by sys.excepthook without the console's frame,
 * as code.InteractiveConsole shows them. Its lines, and input()'s, come from prompt;
 * stdout is line-buffered, as on a terminal, and both streams are flushed before each
 * prompt, so what a statement printed is shown before the next one is asked for.
 * SystemExit (exit()) ends it as it ends python3. note: the banner's last line. */
static const char shell_text[] =
    "def shell(prompt, main, note):\n"
    "    import builtins, sys\n"
    "    try:\n"
    "        sys.stdout.reconfigure(line_buffering=True)\n"
    "    except Exception:\n"
    "        pass\n"
    "    def ask(text=''):\n"
    "        for s in (sys.stdout, sys.stderr):\n"
    "            try:\n"
    "                s.flush()\n"
    "            except Exception:\n"
    "                pass\n"
    "        line = prompt(str(text), complete)\n"
    "        if line is None:\n"
    "            raise EOFError\n"
    "        return line\n"
    "    # codeop's rules, by the interpreter's version: 3.11 tells incomplete input\n"
    "    # itself; before, two compiles with more newlines are compared\n"
    "    new = sys.version_info >= (3, 11)\n"
    "    flags = 0x200 | (0x4000 if new else 0)\n"
    "    features = 0\n"
    "    def build(text):\n"
    "        nonlocal features\n"
    "        code = compile(text, '<stdin>', 'single', flags | features, True)\n"
    "        features |= code.co_flags & 0x1fe0000  # __future__ statements stay in force\n"
    "        return code\n"
    "    def take(source):\n"
    "        \"\"\"(code, None), (None, None) when more lines are needed, or (None, the\n"
    "        SyntaxError to show)\"\"\"\n"
    "        for line in source.split('\\n'):\n"
    "            line = line.strip()\n"
    "            if line and line[0] != '#':\n"
    "                break\n"
    "        else:\n"
    "            source = 'pass'\n"
    "        try:\n"
    "            return build(source), None\n"
    "        except SyntaxError as e:\n"
    "            err = e\n"
    "        try:\n"
    "            build(source + '\\n')\n"
    "            return None, None\n"
    "        except SyntaxError as e:\n"
    "            if new and 'incomplete input' not in str(e):\n"
    "                return None, err\n"
    "            if new:\n"
    "                return None, None\n"
    "            err = e\n"
    "        try:\n"
    "            build(source + '\\n\\n')\n"
    "            return None, None\n"
    "        except SyntaxError as e:\n"
    "            return None, err if repr(e) == repr(err) else None\n"
    "    def show(value, tb):\n"
    "        \"\"\"as python3 shows it: the console's own frame left out\"\"\"\n"
    "        value.__traceback__ = tb\n"
    "        sys.last_type, sys.last_value, sys.last_traceback = type(value), value, tb\n"
    "        sys.excepthook(type(value), value, tb)\n"
    "    # Tab, as python3's (rlcompleter's rules, with builtins and sys alone): keywords\n"
    "    # (where the keyword module is in the root) and names, or the attributes of a\n"
    "    # dotted name, found by getattr and never otherwise evaluated\n"
    "    try:\n"
    "        keywords = __import__('keyword').kwlist\n"
    "    except Exception:\n"
    "        keywords = []\n"
    "    bare = ('False', 'None', 'True', 'break', 'continue', 'pass', 'else')\n"
    "    def named(value, word):\n"
    "        return word + '(' if callable(value) else word\n"
    "    def complete(text):\n"
    "        try:\n"
    "            head, dot, attr = text.rpartition('.')\n"
    "            found = []\n"
    "            if not dot:\n"
    "                seen = {'__builtins__'}\n"
    "                for word in keywords:\n"
    "                    if word.startswith(text):\n"
    "                        seen.add(word)\n"
    "                        if word in ('finally', 'try'):\n"
    "                            word += ':'\n"
    "                        elif word not in bare:\n"
    "                            word += ' '\n"
    "                        found.append(word)\n"
    "                for space in (main.__dict__, builtins.__dict__):\n"
    "                    for word, value in list(space.items()):\n"
    "                        if word.startswith(text) and word not in seen:\n"
    "                            seen.add(word)\n"
    "                            found.append(named(value, word))\n"
    "                return found\n"
    "            parts = head.split('.')\n"
    "            if not all(part.isidentifier() for part in parts):\n"
    "                return found\n"
    "            if parts[0] in main.__dict__:\n"
    "                obj = main.__dict__[parts[0]]\n"
    "            else:\n"
    "                obj = getattr(builtins, parts[0])\n"
    "            for part in parts[1:]:\n"
    "                obj = getattr(obj, part)\n"
    "            words = set(dir(obj))\n"
    "            words.discard('__builtins__')\n"
    "            if hasattr(obj, '__class__'):\n"
    "                words.add('__class__')\n"
    "                words.update(dir(obj.__class__))\n"
    "            hide = '_' if not attr else '__' if attr == '_' else None\n"
    "            while True:\n"
    "                for word in words:\n"
    "                    if word.startswith(attr) and not (hide and word.startswith(hide)):\n"
    "                        match = head + '.' + word\n"
    "                        if isinstance(getattr(type(obj), word, None), property):\n"
    "                            found.append(match)  # not run to see if it is callable\n"
    "                        else:\n"
    "                            found.append(named(getattr(obj, word, None), match))\n"
    "                if found or not hide:\n"
    "                    return sorted(found)\n"
    "                hide = '__' if hide == '_' else None\n"
    "        except BaseException:\n"
    "            return []\n"
    "    builtins.input = ask\n"
    "    for name, text in (('ps1', '>>> '), ('ps2', '... ')):\n"
    "        if not hasattr(sys, name):\n"
    "            setattr(sys, name, text)\n"
    "    sys.stderr.write('Python %s on %s\\n'\n"
    "                     'Type \"help\", \"copyright\", \"credits\" or \"license\" for more "
    "information.\\n'\n"
    "                     '%s\\n' % (sys.version, sys.platform, note))\n"
    "    lines = []\n"
    "    while True:\n"
    "        try:\n"
    "            try:\n"
    "                line = ask(sys.ps2 if lines else sys.ps1)\n"
    "            except EOFError:\n"
    "                sys.stderr.write('\\n')\n"
    "                return\n"
    "            lines.append(line)\n"
    "            try:\n"
    "                code, err = take('\\n'.join(lines))\n"
    "            except (OverflowError, ValueError) as e:\n"
    "                code, err = None, e\n"
    "            if err is not None:\n"
    "                lines = []\n"
    "                show(err, None)\n"
    "                err = None\n"
    "                continue\n"
    "            if code is None:\n"
    "                continue\n"
    "            lines = []\n"
    "            try:\n"
    "                exec(code, main.__dict__)\n"
    "            except SystemExit:\n"
    "                raise\n"
    "            except BaseException as e:\n"
    "                show(e, e.__traceback__.tb_next)\n"
    "                e = None\n"
    "        except KeyboardInterrupt:\n"
    "            sys.stderr.write('\\nKeyboardInterrupt\\n')\n"
    "            lines = []\n";

/* The console as the service: its end as a STATUS frame and *status. Returns None, or
 * NULL when the runtime itself failed. */
static PyObject *run_shell(int *status)
{
	PyObject *main = PyModule_New("__main__"), *prompt = NULL, *args = NULL, *fn = NULL;
	/* a bundle's shell is a debug run (docs/cli.md): said before the first prompt */
	const char *note = sealed_run ?
			       "teepy shell: a DEBUG run in a bundle's sealed root (only "
			       "its manifest's files; any evidence of it says debug); Ctrl-D "
			       "leaves." :
			       "teepy shell: this prompt runs inside the sandbox; Ctrl-D "
			       "leaves.";
	PyObject *result = NULL;
	char name[128] = "";
	uint32_t kind = TP_STATUS_OK;

	if (!main || PyDict_SetItemString(PyImport_GetModuleDict(), "__main__", main) < 0 ||
	    PyDict_SetItemString(PyModule_GetDict(main), "__builtins__", PyEval_GetBuiltins()) <
		0 ||
	    !(prompt = PyCFunction_New(&shell_prompt_def, NULL)) ||
	    !(args = Py_BuildValue("(OOs)", prompt, main, note)) ||
	    !(fn = define_text(shell_text, "shell")))
		goto out;
	result = PyObject_Call(fn, args, NULL);
	*status = 0;
	if (!result) {
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		PyErr_NormalizeException(&type, &value, &tb);
		if (type && PyErr_GivenExceptionMatches(type, PyExc_SystemExit)) {
			*status = exit_status_of(value);
			Py_XDECREF(type);
			Py_XDECREF(value);
			Py_XDECREF(tb);
		} else {
			snprintf(name, sizeof(name), "%s",
				 type ? ((PyTypeObject *)type)->tp_name : "exception");
			PyErr_Restore(type, value, tb);
			PyErr_Print();
			kind = TP_STATUS_EXCEPTION;
			*status = 1;
		}
	}
	Py_XDECREF(result);
	send_frame(TP_FRAME_STATUS, kind, name, strlen(name));
	result = Py_NewRef(Py_None);
out:
	Py_XDECREF(fn);
	Py_XDECREF(args);
	Py_XDECREF(prompt);
	Py_XDECREF(main);
	return result;
}

/* A zygote's child ends as an interpreter would, less the teardown of what the
 * zygote imported, which it shares and which dies with it: atexit functions, then
 * the standard streams flushed (C's too), then EXIT with its status, and it waits:
 * its supervisor reads its CPU time and peak memory and kills it, and answers at
 * once rather than once its zygote has reaped it. A supervisor gone (the channel's
 * end) ends the wait. */

static void child_exit(int status)
{
	PyObject *done = exit_fn ? PyObject_CallOneArg(exit_fn, Py_None) : NULL;
	char byte;

	if (!done)
		PyErr_Print();
	Py_XDECREF(done);
	fflush(NULL);
	if (send_frame(TP_FRAME_EXIT, (uint32_t)status & 0xff, NULL, 0) == 0)
		while (read(TP_CTRL_FD, &byte, 1) > 0)
			;
	_exit(status);
}

static PyObject *boot(PyObject *self, PyObject *unused)
{
	struct tp_boot b = { 0 };
	struct sock_fprog filter;
	PyObject *argv = NULL, *path = NULL, *preload = NULL, *site = NULL, *site_module = NULL;
	PyObject *teex = NULL, *result = NULL;
	int status = 1;

	(void)self;
	(void)unused;
	if (booted) {
		PyErr_SetString(PyExc_RuntimeError, "teepy: the runtime is already booted");
		return NULL;
	}
	booted = true;

	if (read_boot(&b) < 0)
		return NULL;
	data_count = (Py_ssize_t)b.data_count;
	if (!(argv = str_list(b.argv, b.argv_count)) || !(path = str_list(b.path, b.path_count)) ||
	    !(preload = str_list(b.preload, b.preload_count)) ||
	    !(site = str_list(b.site, b.site_count)))
		goto out;
	sealed_run = b.sealed;
	listen_handed = b.listen;
	wsgi_name = b.wsgi;

	/* From here on no new program can run, ever. */
	filter.len = (unsigned short)(b.filter_size / sizeof(struct sock_filter));
	filter.filter = (struct sock_filter *)b.filter; /* aligned: the decoder's own copy */
	if (install_stage2(&filter) < 0) {
		PyErr_SetFromErrno(PyExc_OSError);
		goto out;
	}

	/* `teex` is a runtime module: a service file named teex.py cannot replace it */
	teex = PyModule_Create(&teex_def);
	if (!teex || PyDict_SetItemString(PyImport_GetModuleDict(), "teex", teex) < 0)
		goto out;
	/* the site builtins, and the site module a venv's .pth files are read with,
	 * come before the service's sys.path: the interpreter's own (frozen) modules,
	 * never a site.py of the service's */
	if (b.site_count && !(site_module = PyImport_ImportModule("site")))
		goto out;
	if (add_site_builtins() < 0 || PySys_SetObject("argv", argv) < 0 ||
	    PySys_SetObject("path", path) < 0 ||
	    PySys_SetObject("dont_write_bytecode", Py_True) < 0)
		goto out;
	if (b.site_count && add_site_dirs(site) < 0)
		goto out;
	if (import_preload(preload) < 0) {
		result = PyLong_FromLong(1);
		goto out;
	}
#ifdef PYPY_VERSION
	/* the worker keeps a PyPy service cold: its zygote forks through CPython's hooks */
	if (b.zygote) {
		PyErr_SetString(PyExc_RuntimeError, "teepy: a zygote runs on CPython only");
		goto out;
	}
#endif
	/* a zygote returns here in each child it forks; itself, when it is done */
	if (b.zygote && zygote_serve(&b) != 0) {
		result = PyLong_FromLong(0);
		goto out;
	}
	result = b.zygote ? entry_run(&child_entry, &status) :
		 b.shell  ? run_shell(&status) :
			    run_entry(b.entry, &status);
	if (!result)
		goto out;
	Py_DECREF(result);
	if (b.zygote)
		child_exit(status);
	result = PyLong_FromLong(status);
out:
	Py_XDECREF(teex);
	Py_XDECREF(argv);
	Py_XDECREF(path);
	Py_XDECREF(preload);
	Py_XDECREF(site);
	Py_XDECREF(site_module);
	tp_boot_free(&b);
	return result;
}

static PyMethodDef teepy_methods[] = {
	{ "boot", boot, METH_NOARGS, "Start the service (called once by the runtime)." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef teepy_def = {
	PyModuleDef_HEAD_INIT,
	"_teepy",
	"The teepy runtime bootstrap.",
	-1,
	teepy_methods,
	NULL,
	NULL,
	NULL,
	NULL,
};

PyMODINIT_FUNC PyInit__teepy(void);
PyMODINIT_FUNC PyInit__teepy(void)
{
	return PyModule_Create(&teepy_def);
}
