"""The seccomp policy (../shared/DESIGN.md): calls that reach other processes or the
kernel fail with EPERM; calls only an escape attempt makes end the service with
exit code 4 and a line naming the call; other architectures' calls never succeed."""
import errno

import pytest

from exit_codes import EXIT
from hostile_prelude import hostile

# name -> (number, arguments as Python source evaluated inside the sandbox).
# The arguments are chosen so that the call would fail harmlessly with another errno
# if it were ever allowed (nonexistent paths, bad lengths): EPERM proves the policy,
# and a broken sandbox cannot change the host through these tests.
EPERM_CALLS = {
    "ptrace": (101, "0, 0, 0, 0"),  # PTRACE_TRACEME
    "process_vm_readv": (310, "os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0"),
    "process_vm_writev": (311, "os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0"),
    "bpf": (321, "0, buf, 72"),  # BPF_MAP_CREATE
    "perf_event_open": (298, "buf, 0, -1, -1, 0"),
    "io_uring_setup": (425, "8, buf"),
    "userfaultfd": (323, "0"),
    "keyctl": (250, "0, -3, 1"),  # KEYCTL_GET_KEYRING_ID of the session keyring, create
    "add_key": (248, 'b"user", b"teepy", b"payload", 7, -3'),
    "request_key": (249, 'b"user", b"teepy", None, -3'),
    "unshare_user": (272, "0x10000000"),  # CLONE_NEWUSER
    "unshare_net": (272, "0x40000000"),  # CLONE_NEWNET
    "setns": (308, "fd, 0"),  # /dev/null: EINVAL if the call were allowed
    "mount": (165, 'b"none", b"/nonexistent-teepy", b"tmpfs", 0, None'),
    "umount2": (166, 'b"/nonexistent-teepy", 2'),  # MNT_DETACH
    "pivot_root": (155, 'b"/nonexistent-teepy", b"/nonexistent-teepy"'),
    "chroot": (161, 'b"/nonexistent-teepy"'),
    "open_tree": (428, 'AT_FDCWD, b"/nonexistent-teepy", 1'),  # OPEN_TREE_CLONE
    "fsopen": (430, 'b"tmpfs", 0'),
    "open_by_handle_at": (304, "AT_FDCWD, buf, 0"),
    "name_to_handle_at": (303, 'AT_FDCWD, b"/usr", buf, ctypes.byref(mount_id), 0'),
    "pidfd_getfd": (438, "fd, 0, 0"),
    "sethostname": (170, 'b"x" * 80, 80'),  # too long: EINVAL if the call were allowed
    "syslog": (103, "3, buf, 64"),  # SYSLOG_ACTION_READ_ALL
}

SETUP = """
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
src = ctypes.create_string_buffer(b"secret in the same process", 64)
dst = ctypes.create_string_buffer(64)
local = iovec(ctypes.addressof(dst), 16)
remote = iovec(ctypes.addressof(src), 16)
buf = ctypes.create_string_buffer(512)
mount_id = ctypes.c_int(0)
fd = os.open("/dev/null", os.O_RDONLY)
"""


@pytest.mark.parametrize("name", sorted(EPERM_CALLS))
def test_denied_syscall_returns_eperm(run, script, name):
    nr, args = EPERM_CALLS[name]
    s = hostile(script, SETUP + f"report(sc({nr}, {args}))\n")
    out = run("run", s).json()
    assert out == {"ret": -1, "errno": errno.EPERM}, f"{name}({args}) -> {out}"


def test_identity_calls_only_keep_the_ids_the_service_has(as_user, run, script):
    """setuid and its kin pass seccomp, so that a program dropping privileges with
    setuid(getuid()) works; the kernel then refuses every id but the service's own,
    since its user namespace maps no other (EINVAL: a host user's 65534 or 1000) or,
    where one is mapped (root's namespace maps 0, for the sandbox's setup, to host
    0), since it holds no capability (EPERM); and supplementary groups (EPERM:
    setgroups is denied in the namespace, or needs a capability)."""
    s = hostile(
        script,
        """
        me, grp = os.getuid(), os.getgid()
        other = 65534 if me != 65534 else 1000
        report({"setresuid_own": sc(117, me, me, me), "setresgid_own": sc(119, grp, grp, grp),
                "setuid_own": sc(105, me), "setreuid_own": sc(113, me, me),
                "setuid_root": sc(105, 0), "setgid_root": sc(106, 0),
                "setuid_other": sc(105, other), "setresuid_other": sc(117, me, other, me),
                "setgroups": sc(116, 0, None), "after": [os.getuid(), os.geteuid(), os.getgid()],
                "me": me})
        """,
    )
    out = run("run", s).json()
    ok, einval = {"ret": 0, "errno": 0}, {"ret": -1, "errno": errno.EINVAL}
    for k in ("setresuid_own", "setresgid_own", "setuid_own", "setreuid_own"):
        assert out[k] == ok, (k, out)
    eperm = {"ret": -1, "errno": errno.EPERM}
    for k in ("setuid_other", "setresuid_other"):
        assert out[k] == einval, (k, out)
    for k in ("setuid_root", "setgid_root"):
        assert out[k] == (eperm if as_user == "root" else einval), (k, out)
    assert out["setgroups"] == {"ret": -1, "errno": errno.EPERM}, out
    assert out["after"] == [out["me"]] * 3, out


def test_pidfd_reaches_only_the_services_own_processes(run, script):
    """pidfd_open works on the service itself (its pid namespace holds nothing
    else: pid 1 is its reaper, pid 2 the service, and no host pid exists there);
    pidfd_getfd, which takes another process's descriptors, stays refused, on the
    service itself and on its reaper."""
    s = hostile(
        script,
        """
        pidfd = sc(434, os.getpid(), 0)
        reaper = sc(434, 1, 0)
        report({"self": pidfd["ret"] >= 0, "pid": os.getpid(), "host_pid": sc(434, 3, 0),
                "getfd": sc(438, pidfd["ret"], 0, 0),
                "reaper_getfd": sc(438, reaper["ret"], 0, 0),
                "signal0": sc(424, pidfd["ret"], 0, None, 0)})
        """,
    )
    out = run("run", s).json()
    assert out["self"] and out["pid"] == 2, out
    assert out["host_pid"] == {"ret": -1, "errno": errno.ESRCH}, out
    assert out["getfd"] == {"ret": -1, "errno": errno.EPERM}, out
    assert out["reaper_getfd"] == {"ret": -1, "errno": errno.EPERM}, out
    assert out["signal0"] == {"ret": 0, "errno": 0}, out


def test_denied_syscalls_as_unprivileged_user(as_user, run, script):
    """The most dangerous ones once more, for root and for uid 65534."""
    names = ["ptrace", "process_vm_readv", "bpf", "unshare_user", "mount", "setns", "keyctl"]
    body = SETUP + "report({" + ", ".join(
        f"{n!r}: sc({EPERM_CALLS[n][0]}, {EPERM_CALLS[n][1]})" for n in names) + "})\n"
    out = run("run", hostile(script, body)).json()
    for n in names:
        assert out[n] == {"ret": -1, "errno": errno.EPERM}, f"{n}: {out[n]}"


def test_personality_only_default_and_query(run, script):
    s = hostile(
        script,
        """
        report({"no_randomize": sc(135, 0x0040000),          # ADDR_NO_RANDOMIZE
                "read_implies_exec": sc(135, 0x0400000),
                "high_bits": sc(135, 0x100040000),
                "query": sc(135, 0xffffffff),
                "default": sc(135, 0)})
        """,
    )
    out = run("run", s).json()
    # DESIGN.md: personality only 0/0xffffffff; any other persona is denied (EPERM)
    for key in ("no_randomize", "read_implies_exec", "high_bits"):
        assert out[key]["ret"] == -1, f"personality {key} was accepted: {out}"
        assert out[key]["errno"] == errno.EPERM, out
    assert out["query"]["ret"] >= 0, out
    assert out["query"]["ret"] & 0x0440000 == 0, "a denied persona took effect"
    assert out["default"]["ret"] >= 0, out


def test_syscall_not_on_allow_list_fails_enosys(run, script):
    s = hostile(
        script,
        """
        report({"msgget": sc(68, 0, 0o1600),   # SysV IPC: not on the allow-list
                "shmget": sc(29, 0, 4096, 0o1600),
                "semget": sc(64, 0, 1, 0o1600),
                "getpid": sc(39)})
        """,
    )
    out = run("run", s).json()
    for key in ("msgget", "shmget", "semget"):
        assert out[key] == {"ret": -1, "errno": errno.ENOSYS}, f"{key}: {out[key]}"
    assert out["getpid"]["ret"] > 0


# Harmless arguments here too: without the rule each call fails with EINVAL/ENOENT/EFAULT.
KILL_CALLS = {
    "reboot": (169, "0, 0, 0, None"),  # wrong magic: EINVAL even if it were allowed
    "init_module": (175, 'None, 0, b""'),
    "finit_module": (313, "-1, b\"\", 0"),
    "delete_module": (176, 'b"teepy_nonexistent_module", 0'),
    "kexec_load": (246, "0, 1000, None, 0"),
    "iopl": (172, "0"),
    "ioperm": (173, "0x80, 1, 0"),  # turning access off
    "swapon": (167, 'b"/nonexistent", 0'),
    "acct": (163, 'b"/nonexistent-teepy/acct"'),
}


STILL_RUNNING = "still running after the call"


def assert_ended_by_the_kernel(r):
    """Exit 4 with the kill line; nothing the service did after the call happened."""
    assert r.returncode == EXIT.RULE, r
    assert "killed for a rule" in r.err and "forbidden system call" in r.err, r
    assert STILL_RUNNING not in r.err
    assert r.stdout == b""


@pytest.mark.parametrize("name", sorted(KILL_CALLS))
def test_kill_rule_syscall_ends_service_with_exit_4(run, script, name):
    nr, args = KILL_CALLS[name]
    s = hostile(
        script,
        f"""
        r = sc({nr}, {args})
        print(STILL_RUNNING, r, file=sys.stderr)
        report(r)
        """,
        STILL_RUNNING=STILL_RUNNING,
    )
    assert_ended_by_the_kernel(run("run", s))


def test_kill_rule_reboot_as_unprivileged_user(as_user, run, script):
    s = hostile(script, "r = sc(169, 0, 0, 0, None)\nreport(r)\n")
    r = run("run", s)
    assert r.returncode == EXIT.RULE, r
    assert "killed for a rule" in r.err and "reboot" in r.err, r


def test_kill_rule_cannot_be_caught_by_a_sigsys_handler(as_user, run, script):
    """The kernel ends the process (SECCOMP_RET_KILL_PROCESS): a handler the service
    installs for SIGSYS, or anything else in the process, cannot save it."""
    s = hostile(
        script,
        """
        import signal
        signal.signal(signal.SIGSYS, lambda *a: None)
        r = sc(175, None, 0, b"")  # init_module
        print("still running after the call", r, file=sys.stderr)
        report(r)
        """,
    )
    r = run("run", s)
    assert r.returncode == EXIT.RULE, r
    assert "still running after the call" not in r.err


def test_kill_rule_keeps_earlier_result(run, script):
    s = hostile(script, 'teex.TEEX_return("before the attack")\nsc(175, None, 0, b"")\n')
    r = run("run", s)
    assert r.returncode == EXIT.RULE, r
    assert r.stdout == b"before the attack"


def test_x32_syscall_does_not_succeed(run, script):
    s = hostile(
        script,
        """
        r = sc(0x40000000 | 39)   # getpid through the x32 ABI
        report(r)
        """,
    )
    r = run("run", s)
    if r.returncode == EXIT.OK:
        out = r.json()
        assert out == {"ret": -1, "errno": errno.ENOSYS}, f"x32 getpid succeeded: {out}"
    else:
        assert r.returncode == EXIT.RULE, r


# ---------------------------------------------------------------- watching the host
# The read-only binds of `teepy run` are the host's own inodes: a watch or a lease on
# them would see host processes open the stdlib (or delay them).


def test_file_watches_are_refused(as_user, run, script):
    s = hostile(
        script,
        """
        import fcntl
        fd = os.open("/dev/null", os.O_RDONLY)     # not an inotify/fanotify fd: EINVAL/EBADF if allowed
        d = os.open(ENGINE_STDLIB, os.O_RDONLY | os.O_DIRECTORY)
        report({"inotify_init": sc(253),
                "inotify_init1": sc(294, 0),
                "inotify_add_watch": sc(254, fd, ENGINE_STDLIB.encode(), 0x1 | 0x20),  # ACCESS|OPEN
                "inotify_rm_watch": sc(255, fd, 1),
                "fanotify_init": sc(300, 0, 0),
                "fanotify_mark": sc(301, fd, 1, 0x20, AT_FDCWD, ENGINE_STDLIB.encode()),
                "dnotify": attempt(fcntl.fcntl, d, fcntl.F_NOTIFY, fcntl.DN_ACCESS),
                "dnotify_raw": sc(72, d, 1026, 1)})
        """,
    )
    out = run("run", s).json()
    for key, res in out.items():
        if key == "dnotify":
            assert res[:2] == ["PermissionError", errno.EPERM], f"{key}: {res}"
        else:
            assert res == {"ret": -1, "errno": errno.EPERM}, f"{key}: {res}"


def test_leases_on_host_files_are_refused(as_user, run, script):
    s = hostile(
        script,
        """
        import fcntl
        fd = os.open(ENGINE_STDLIB + "/os.py", os.O_RDONLY)
        here = os.open(__file__, os.O_RDONLY)
        report({"setlease": attempt(fcntl.fcntl, fd, fcntl.F_SETLEASE, fcntl.F_RDLCK),
                "setlease_script": attempt(fcntl.fcntl, here, fcntl.F_SETLEASE, fcntl.F_RDLCK),
                "getlease": attempt(fcntl.fcntl, fd, fcntl.F_GETLEASE),
                "setlease_raw": sc(72, fd, 1024, 0),
                # the kernel reads cmd as 32 bits: high bits must not slip past the rule
                "setlease_high_bits": sc(72, fd, (1 << 32) | 1024, 0),
                "getlease_high_bits": sc(72, fd, (0xffffffff << 32) | 1025, 0),
                # everyday commands still work, high bits or not
                "getfd": sc(72, fd, 1, 0),
                "getfl_high_bits": sc(72, fd, (1 << 32) | 3, 0)["ret"] >= 0,
                # PyPy's fcntl lacks the name (Linux's value, 1030)
                "cloexec_dup": attempt(lambda: fcntl.fcntl(fd, getattr(fcntl, "F_DUPFD_CLOEXEC", 1030),
                                                           10) >= 10),
                "unknown": sc(72, fd, 1040, 0)})
        """,
    )
    out = run("run", s).json()
    for key in ("setlease", "setlease_script", "getlease"):
        assert out[key][:2] == ["PermissionError", errno.EPERM], f"{key}: {out[key]}"
    for key in ("setlease_raw", "setlease_high_bits", "getlease_high_bits"):
        assert out[key] == {"ret": -1, "errno": errno.EPERM}, f"{key}: {out[key]}"
    assert out["getfd"]["ret"] >= 0 and out["getfl_high_bits"] is True, out
    assert out["cloexec_dup"] == {"ok": True}, out
    assert out["unknown"] == {"ret": -1, "errno": errno.ENOSYS}, out


def test_locks_in_scratch_still_work(as_user, run, script):
    """sqlite (POSIX locks) and flock on scratch files are untouched by the fcntl rule."""
    s = hostile(
        script,
        """
        import fcntl, sqlite3
        db = sqlite3.connect("/tmp/t.db")
        db.execute("create table t (x)")
        db.executemany("insert into t values (?)", [(i,) for i in range(10)])
        db.commit()
        total = db.execute("select sum(x) from t").fetchone()[0]
        f = open("/tmp/lock", "w")
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        report({"sum": total, "locked": True})
        """,
    )
    assert run("run", s, "--scratch", "4M").json() == {"sum": 45, "locked": True}


INT80_GETPID = """
import ctypes, mmap
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])   # mov eax, 20 (i386 getpid); int 0x80; ret
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
getpid32 = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
"""


def test_int_0x80_syscall_ends_service_with_exit_4(as_user, run, script):
    """A 32-bit system call (int 0x80) is another architecture's: the kernel ends the
    service before the call runs."""
    import subprocess
    native = subprocess.run(["/usr/bin/python3", "-c", INT80_GETPID + "print(getpid32())"],
                            capture_output=True, text=True)
    if native.returncode != 0:
        pytest.skip("this kernel runs no 32-bit system calls (IA32 emulation off)")
    s = hostile(script, INT80_GETPID + "r = getpid32()\nprint(STILL_RUNNING, r, file=sys.stderr)\nreport(r)\n",
                STILL_RUNNING=STILL_RUNNING)
    r = run("run", s)
    assert_ended_by_the_kernel(r)
    assert "another architecture" in r.err, r
