"""No processes: fork, spawn and exec fail (Python APIs and raw system calls),
threads keep working."""
import errno
import json
import subprocess
import textwrap

import engine
from exit_codes import EXIT
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
        if hasattr(os, "posix_spawn"):                # PyPy's os has none
            out["posix_spawn"] = attempt(os.posix_spawn, ENGINE_EXE,
                                         ["python3", "-c", "pass"], {})
        out["subprocess"] = attempt(lambda: subprocess.run([ENGINE_EXE, "-c", "1"]).returncode)
        out["system"] = attempt(os.system, "true")
        out["execv"] = attempt(os.execv, ENGINE_EXE, ["python3", "-c", "pass"])
        out["execve"] = attempt(os.execve, ENGINE_EXE, ["python3", "-c", "pass"], {})
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
    # PyPy's os has no posix_spawn: libc's is tried through ctypes below either way
    for key in ("fork", "subprocess", "execv", "execve") + (() if engine.PYPY else ("posix_spawn",)):
        assert failed(out[key]), f"{key}: {out[key]}"
        assert out[key][1] == errno.EPERM, f"{key}: {out[key]}"
    assert out["fork"][0] == "PermissionError"
    # os.system reports the failed start as glibc's system() does: the status of a
    # shell that exited 127 (test_system_and_posix_spawn_create_no_process tells the two apart)
    assert out["system"] == {"ok": 127 << 8}, out["system"]
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
        argv = (ctypes.c_char_p * 4)(ENGINE_EXE.encode(), b"-c", b"pass", None)
        envp = (ctypes.c_char_p * 1)(None)
        out["execve"] = sc(59, ENGINE_EXE.encode(), argv, envp)
        out["execveat"] = sc(322, AT_FDCWD, ENGINE_EXE.encode(), argv, envp, 0)
        fd = os.open(ENGINE_EXE, os.O_RDONLY)
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


SPAWN_PROBE = """
out = {}
# system(): a shell that ran would exit 3; a refused spawn gives glibc's 127 status
# with errno the spawn's error
ctypes.set_errno(0)
out["libc_system"] = [libc.system(b"exit 3"), ctypes.get_errno()]
out["os_system"] = os.system("exit 3")
pid = ctypes.c_int(0)
argv = (ctypes.c_char_p * 3)(b"sh", b"-c", b"exit 3")
envp = (ctypes.c_char_p * 1)(None)
for name in ("posix_spawn", "posix_spawnp"):
    pid.value = 0
    ctypes.set_errno(0)
    prog = b"/bin/sh" if name == "posix_spawn" else b"sh"
    ret = getattr(libc, name)(ctypes.byref(pid), prog, None, None, argv, envp)
    out[name] = {"ret": ret, "pid": pid.value}
    if ret == 0:
        os.waitpid(pid.value, 0)
if hasattr(os, "posix_spawn"):                    # PyPy's os has none
    out["os_posix_spawn"] = attempt(os.posix_spawn, "/bin/sh", ["sh", "-c", "exit 3"], {})
# no child of any kind is left to wait for (system() reaps its own, so this
# speaks for posix_spawn only)
out["waitpid"] = attempt(os.waitpid, -1, os.WNOHANG)
report(out)
"""


def test_system_and_posix_spawn_create_no_process(as_user, run, script):
    """libc system() and posix_spawn() through ctypes: the clone behind them is
    refused (EPERM), so no child exists. system()'s status alone (127 << 8) cannot
    tell a refused fork from a shell that ran and failed: errno can, and the probe's
    shell would exit 3. Natively (checked first) the shell runs: status 3 << 8,
    errno 0, a pid from posix_spawn."""
    s = hostile(script, SPAWN_PROBE)
    native_teex = ("import sys, types; sys.modules['teex'] = "
                   "types.SimpleNamespace(TEEX_return=print)\n")
    native = subprocess.run(["/usr/bin/python3", "-I", "-c", native_teex + s.read_text()],
                            capture_output=True, timeout=30)
    nat = json.loads(native.stdout)
    assert nat["libc_system"] == [3 << 8, 0] and nat["os_system"] == 3 << 8, nat
    assert nat["posix_spawn"]["ret"] == 0 and nat["posix_spawn"]["pid"] > 0, nat
    assert nat["posix_spawnp"]["ret"] == 0 and nat["posix_spawnp"]["pid"] > 0, nat

    out = run("run", s).json()
    assert out["libc_system"] == [127 << 8, errno.EPERM], out
    assert out["os_system"] == 127 << 8, out
    # posix_spawn returns the error number (it does not set errno) and no pid
    assert out["posix_spawn"] == {"ret": errno.EPERM, "pid": 0}, out
    assert out["posix_spawnp"] == {"ret": errno.EPERM, "pid": 0}, out
    if not engine.PYPY:
        assert out["os_posix_spawn"][:2] == ["PermissionError", errno.EPERM], out
    assert out["waitpid"][:2] == ["ChildProcessError", errno.ECHILD], out


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


# ---------------------------------------------------------------- processes policy
# A bundle built with --allow-processes may fork and run the programs of its
# manifest; nothing reached other than by a path inside its sealed root may run.

PROCESSES_SVC = """
import shutil, subprocess
out = {"gzip": subprocess.run(["gzip", "-c"], input=b"hello " * 20, capture_output=True).returncode}
argv = (ctypes.c_char_p * 3)(b"prog", b"--version", None)
envp = (ctypes.c_char_p * 1)(None)


def in_child(fn):
    # the attempt runs in a child: a successful exec replaces it, not the service;
    # the child reports an error through a pipe that closes on exec
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = fn()
        except OSError as e:
            res = [type(e).__name__, e.errno]
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    report = os.read(r, 4096).decode()
    _, status = os.waitpid(pid, 0)
    return {"report": json.loads(report) if report else "exec succeeded", "status": status}


if teex.get_input() == "attack":
    # no other way to name a descriptor by path exists in the root
    out["fd_paths"] = [p for p in ("/proc", "/dev/fd", "/dev/stdin") if os.path.lexists(p)]
    try:
        fd = os.memfd_create("prog")
        with open("/usr/bin/gzip", "rb") as f:
            os.write(fd, f.read())
    except PermissionError:
        # without a cgroup memfd_create itself is refused (the memory it would hold
        # is not counted); a descriptor of the root's own gzip stands in for it
        out["memfd_refused"] = True
        fd = os.open("/usr/bin/gzip", os.O_RDONLY)
    out["memfd_fexecve"] = in_child(lambda: os.execve(fd, ["prog", "--version"], {}))
    out["memfd_execveat"] = in_child(lambda: sc(322, fd, b"", argv, envp, 0x1000))  # AT_EMPTY_PATH
    shutil.copy("/usr/bin/gzip", "/tmp/prog")
    os.chmod("/tmp/prog", 0o755)
    out["scratch_execv"] = in_child(lambda: os.execv("/tmp/prog", ["prog", "--version"]))
    out["scratch_execve_raw"] = in_child(lambda: sc(59, b"/tmp/prog", argv, envp))
    # the loader as a program maps the file itself: noexec refuses the mapping
    out["scratch_via_loader"] = in_child(
        lambda: os.execv("/lib64/ld-linux-x86-64.so.2", ["ld.so", "/tmp/prog", "--version"]))
report(out)
"""


def build_processes_bundle(run, tmp, script, *extra):
    """keygen and build (as the test's user) of a --allow-processes bundle with scratch."""
    out = tmp.make_sibling("bundle")
    out.chmod(0o777)  # the unprivileged variant writes its key and bundle here
    assert run("keygen", "-o", out / "k.key").returncode == EXIT.OK
    s = hostile(script, PROCESSES_SVC)
    b = run("build", s, "-o", out / "p.tpy", "--key", out / "k.key", "--allow-processes",
            "--scratch", "4M", "--input", "sample", *extra)
    assert b.returncode == EXIT.OK, b
    return out / "p.tpy", out / "k.pub"


def test_processes_policy_runs_only_programs_of_the_root(as_user, run, tmp, script):
    bundle, pub = build_processes_bundle(run, tmp, script)
    out = run("run", bundle, "--trust", pub, "--input", "attack").json()
    assert out["gzip"] == 0, out  # the manifest's own program still runs
    assert out["fd_paths"] == [], out
    # a memfd is outside every path: fexecve and execveat(AT_EMPTY_PATH) are refused
    for key in ("memfd_fexecve", "memfd_execveat"):
        assert out[key]["status"] == 0, f"{key}: {out[key]}"
    assert out["memfd_fexecve"]["report"] == ["PermissionError", errno.EPERM], out
    assert out["memfd_execveat"]["report"] == {"ret": -1, "errno": errno.EPERM}, out
    # the scratch /tmp is noexec: a program copied there does not run, nor maps
    assert out["scratch_execv"]["report"] == ["PermissionError", errno.EACCES], out
    assert out["scratch_execve_raw"]["report"] == {"ret": -1, "errno": errno.EACCES}, out
    assert out["scratch_via_loader"]["report"] == "exec succeeded", out  # ld.so itself runs
    assert out["scratch_via_loader"]["status"] != 0, f"ld.so ran a program from scratch: {out}"
