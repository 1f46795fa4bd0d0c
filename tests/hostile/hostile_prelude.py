"""Shared text for hostile service scripts: raw system calls through ctypes.

Every hostile script reports what happened through teex.TEEX_return(json.dumps(...))
so the tests can assert exact errno values.
"""
import errno
import textwrap

import engine

PRELUDE = '''
import ctypes, errno, json, os, sys, threading, teex

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100


def sc(nr, *args):
    """A raw system call: {"ret": return value, "errno": errno when it failed}."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *conv)
    err = ctypes.get_errno()
    return {"ret": ret, "errno": err if ret == -1 else 0}


def attempt(fn, *args, **kwargs):
    """Runs fn; "ok" (or its result) if it worked, [exception name, errno] if it raised."""
    try:
        value = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - report everything, even SystemExit
        return [type(e).__name__, getattr(e, "errno", None), str(e)[:200]]
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)[:200]
    return {"ok": value}


def report(obj):
    teex.TEEX_return(json.dumps(obj))
'''


# For a hostile body, before its own lines: noexec_probe(DIR) copies a library into
# DIR, a directory the service may write, and returns DIR's mount flags and whether
# the copy maps executable or loads (the original does); assert_noexec checks them.
NOEXEC_PROBE = '''
import mmap, shutil


def noexec_probe(directory):
    lib = "/usr/lib/x86_64-linux-gnu/libz.so.1"
    copy = directory + "/libcopy.so"
    shutil.copy(lib, copy)
    st = os.statvfs(directory)
    fd = os.open(copy, os.O_RDONLY)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    ctypes.set_errno(0)
    addr = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_EXEC, mmap.MAP_PRIVATE, fd, 0)
    # PyPy's os has no ST_NOEXEC or ST_NODEV: statvfs(3)'s values
    flags = (getattr(os, "ST_NOEXEC", 8), getattr(os, "ST_NOSUID", 2), getattr(os, "ST_NODEV", 4))
    return {"flags": [bool(st.f_flag & f) for f in flags],
            "mmap_exec": [addr, ctypes.get_errno()],
            "mmap_read": attempt(lambda: len(mmap.mmap(fd, 4096, prot=mmap.PROT_READ))),
            "dlopen": attempt(ctypes.CDLL, copy),
            "dlopen_original": attempt(lambda: ctypes.CDLL(lib) and "loaded")}
'''


def assert_noexec(out):
    """What noexec_probe reported of a directory mounted noexec, nosuid and nodev."""
    assert out["flags"] == [True, True, True], out
    assert out["mmap_exec"] == [2**64 - 1, errno.EPERM], out  # MAP_FAILED
    assert out["mmap_read"] == {"ok": 4096}, out
    assert out["dlopen"][0] == "OSError", out
    assert out["dlopen_original"] == {"ok": "loaded"}, out


def hostile(script, body, name="svc.py", **values):
    """Writes a hostile service: PRELUDE, then NAME = value lines, then the body.
    ENGINE_EXE and ENGINE_STDLIB name the interpreter's own files in the root (the
    engine's under test: tests/engine.py)."""
    values = dict(ENGINE_EXE=engine.EXE, ENGINE_STDLIB=engine.STDLIB, **values)
    consts = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    return script(PRELUDE + consts + textwrap.dedent(body), name=name)


def failed(res):
    """True when an attempt() raised an OSError-family exception."""
    return isinstance(res, list) and res[0] in OSERRORS


OSERRORS = {"OSError", "PermissionError", "FileNotFoundError", "FileExistsError",
            "IsADirectoryError", "NotADirectoryError", "BlockingIOError", "ConnectionRefusedError",
            "ConnectionError", "TimeoutError", "InterruptedError", "ChildProcessError",
            "ProcessLookupError", "BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError"}
