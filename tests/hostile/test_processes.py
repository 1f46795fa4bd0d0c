"""No processes: fork, spawn and exec fail (Python APIs and raw system calls),
threads keep working."""
import errno
import textwrap

from hostile_prelude import failed, hostile

THREAD_CHECK = """
def thread_check():
    box = []
    t = threading.Thread(target=lambda: box.append(sum(range(1000))))
    t.start()
    t.join()
    return box == [499500]
out["threads_after"] = thread_check()
"""


def test_python_process_apis_fail(as_user, run, script):
    s = hostile(
        script,
        textwrap.dedent("""
        import subprocess
        out = {}
        def fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            return "forked"
        out["fork"] = attempt(fork)
        out["posix_spawn"] = attempt(os.posix_spawn, "/usr/bin/python3.11",
                                     ["python3", "-c", "pass"], {})
        out["subprocess"] = attempt(lambda: subprocess.run(["/usr/bin/python3.11", "-c", "1"]).returncode)
        out["system"] = attempt(os.system, "true")
        out["execv"] = attempt(os.execv, "/usr/bin/python3.11", ["python3", "-c", "pass"])
        out["execve"] = attempt(os.execve, "/usr/bin/python3.11", ["python3", "-c", "pass"], {})
        def forkpty():
            import pty
            pid, fd = pty.fork()
            if pid == 0:
                os._exit(0)
            return "forked"
        out["pty_fork"] = attempt(forkpty)
        """)
        + THREAD_CHECK
        + "report(out)\n",
    )
    out = run("run", s).json()
    for key in ("fork", "posix_spawn", "subprocess", "execv", "execve"):
        assert failed(out[key]), f"{key}: {out[key]}"
        assert out[key][1] == errno.EPERM, f"{key}: {out[key]}"
    assert out["fork"][0] == "PermissionError"
    # os.system either raises or reports a failed start (-1 or exit status 127)
    assert failed(out["system"]) or out["system"]["ok"] != 0, out["system"]
    assert failed(out["pty_fork"]), out["pty_fork"]
    assert out["threads_after"] is True


def test_raw_process_syscalls_denied(as_user, run, script):
    s = hostile(
        script,
        textwrap.dedent("""
        out = {}
        def guarded(nr, *args):
            r = sc(nr, *args)
            if r["ret"] == 0:       # a child of a broken sandbox: leave quietly
                os._exit(0)
            return r
        out["fork"] = guarded(57)
        out["vfork"] = guarded(58)
        out["clone"] = guarded(56, 17, 0, 0, 0, 0)            # clone(SIGCHLD): a fork
        args = (ctypes.c_uint64 * 11)()
        args[4] = 17                                          # clone_args.exit_signal = SIGCHLD
        out["clone3"] = guarded(435, args, 88)
        argv = (ctypes.c_char_p * 4)(b"/usr/bin/python3.11", b"-c", b"pass", None)
        envp = (ctypes.c_char_p * 1)(None)
        out["execve"] = sc(59, b"/usr/bin/python3.11", argv, envp)
        out["execveat"] = sc(322, AT_FDCWD, b"/usr/bin/python3.11", argv, envp, 0)
        fd = os.open("/usr/bin/python3.11", os.O_RDONLY)
        out["execveat_fd"] = sc(322, fd, b"", argv, envp, 0x1000)   # AT_EMPTY_PATH
        """)
        + THREAD_CHECK
        + "report(out)\n",
    )
    out = run("run", s).json()
    assert out["fork"] == {"ret": -1, "errno": errno.EPERM}
    assert out["vfork"] == {"ret": -1, "errno": errno.EPERM}
    assert out["clone"] == {"ret": -1, "errno": errno.EPERM}
    assert out["clone3"] == {"ret": -1, "errno": errno.ENOSYS}
    assert out["execve"] == {"ret": -1, "errno": errno.EPERM}
    assert out["execveat"] == {"ret": -1, "errno": errno.EPERM}
    assert out["execveat_fd"] == {"ret": -1, "errno": errno.EPERM}
    assert out["threads_after"] is True


def test_multiprocessing_cannot_start_process(run, script):
    s = hostile(
        script,
        """
        import multiprocessing
        def start():
            p = multiprocessing.Process(target=print, args=("child ran",))
            p.start()
            p.join()
            return p.exitcode
        out = {"process": attempt(start)}
        report(out)
        """,
    )
    r = run("run", s)
    out = r.json()
    assert isinstance(out["process"], list), f"a process was started: {out}"
    assert "child ran" not in r.err
