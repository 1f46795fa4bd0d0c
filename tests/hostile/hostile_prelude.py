"""Shared text for hostile service scripts: raw system calls through ctypes.

Every hostile script reports what happened through teex.TEEX_return(json.dumps(...))
so the tests can assert exact errno values.
"""
import textwrap

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


def hostile(script, body, name="svc.py", **values):
    """Writes a hostile service: PRELUDE, then NAME = value lines, then the body."""
    consts = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    return script(PRELUDE + consts + textwrap.dedent(body), name=name)


def failed(res):
    """True when an attempt() raised an OSError-family exception."""
    return isinstance(res, list) and res[0] in OSERRORS


OSERRORS = {"OSError", "PermissionError", "FileNotFoundError", "FileExistsError",
            "IsADirectoryError", "NotADirectoryError", "BlockingIOError", "ConnectionRefusedError",
            "ConnectionError", "TimeoutError", "InterruptedError", "ChildProcessError",
            "ProcessLookupError", "BrokenPipeError", "ConnectionResetError", "ConnectionAbortedError"}
