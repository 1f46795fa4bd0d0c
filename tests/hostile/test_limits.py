"""Limits: memory, CPU time, wall clock and threads end or constrain the service
with the exit codes and messages of docs/cli.md; numpy works when allowed."""
import errno
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import engine
from exit_codes import EXIT
from hostile_prelude import hostile
from limits_host import host_memory_cgroup_is_v2, memory_cgroup

pytestmark = pytest.mark.slow

# The small limit the tests of kernel-held memory run under, in MiB. PyPy maps about
# 70 MiB before it runs a line, so under RLIMIT_AS it needs more than CPython's 64
# (teepy refuses less than 96 MiB of address space for it: tests/e2e/test_engine.py).
SMALL = 128 if engine.PYPY else 64

MEMORY_BOMB = """
chunks = []
for i in range(16):                              # up to 1 GiB, bounded even if unlimited
    chunks.append(b"\\x01" * (64 * 1024 * 1024))   # written, so the pages are real
    print("allocated", (i + 1) * 64, "MiB", file=sys.stderr, flush=True)
report({"survived_mib": len(chunks) * 64})
"""


def test_memory_bomb_ends_with_exit_5(as_user, run, script):
    s = hostile(script, MEMORY_BOMB)
    start = time.monotonic()
    r = run("run", "--memory", "256M", s)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.MEMORY, r
    assert "memory limit exceeded" in r.err
    # the report says how much was used: the cgroup's peak, or the peak resident size
    peak = re.search(r"memory limit exceeded \(256 MiB, (killed by the cgroup|MemoryError), "
                     r"peak (resident )?([\d.]+) (MiB|GiB)\)", r.err)
    assert peak, r.err
    if memory_cgroup(as_user):
        assert peak.group(1) == "killed by the cgroup" and not peak.group(2)
        assert 200 <= float(peak.group(3)) <= 256, r.err
    else:
        assert 64 <= float(peak.group(3)) <= 256, r.err
    assert r.stdout == b""
    assert "allocated 512 MiB" not in r.err, "the service went far past a 256 MiB limit"
    assert elapsed < 30


NATIVE_MEMORY_BOMB = """
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
MAP_PRIVATE, MAP_ANONYMOUS, MAP_POPULATE = 0x02, 0x20, 0x8000
mapped = 0
for i in range(16):                              # up to 1 GiB, bounded even if unlimited
    # MAP_POPULATE: the kernel faults every page in at once, no Python object holds it
    p = libc.mmap(None, 64 << 20, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
    if p is None or p == 2**64 - 1:              # MAP_FAILED
        raise MemoryError(f"mmap failed: errno {ctypes.get_errno()}")
    mapped += 64
    print("mapped", mapped, "MiB", file=sys.stderr, flush=True)
report({"survived_mib": mapped})
"""


def test_native_memory_bomb_ends_with_exit_5(as_user, run, script):
    """The memory limit is the kernel's, not the interpreter's: pages that libc mmap
    populates behind Python's back end the run too. With a cgroup (root) the cgroup
    kills it; without one (uid 65534 on a v1 host) RLIMIT_AS makes mmap fail with
    ENOMEM, and the service's MemoryError is reported as the memory limit."""
    s = hostile(script, NATIVE_MEMORY_BOMB)
    r = run("run", "--memory", "256M", s)
    assert r.returncode == EXIT.MEMORY, r
    peak = re.search(r"memory limit exceeded \(256 MiB, (killed by the cgroup|MemoryError), "
                     r"peak (resident )?([\d.]+) (MiB|GiB)\)", r.err)
    assert peak, r.err
    assert "mapped 64 MiB" in r.err, f"the first map should fit in 256 MiB: {r.err}"
    assert "mapped 256 MiB" not in r.err, "the service mapped past a 256 MiB limit"
    if memory_cgroup(as_user):
        assert peak.group(1) == "killed by the cgroup" and not peak.group(2), r.err
        assert 200 <= float(peak.group(3)) <= 256, r.err
        assert "MemoryError" not in r.err, r.err
    else:
        assert peak.group(1) == "MemoryError" and peak.group(2), r.err
        assert f"MemoryError: mmap failed: errno {errno.ENOMEM}" in r.err, r.err
        assert 64 <= float(peak.group(3)) <= 256, r.err
    assert r.stdout == b""


def test_a_memory_error_of_the_service_is_no_limit_under_a_cgroup(as_user, run, script):
    """A cgroup never fails an allocation (it kills at the limit), so a MemoryError
    the service raises itself, or gets for an impossible size as it would natively,
    is the service's failure (exit 1), not the memory limit: a service cannot pass
    itself off as killed by the limit. Without a cgroup (uid 65534 on this v1 host)
    RLIMIT_AS shows the limit as exactly that exception, so it counts as the limit."""
    s = hostile(script, "raise MemoryError('made up by the service')\n")
    r = run("run", "--memory", "256M", s)
    if memory_cgroup(as_user):
        assert r.returncode == EXIT.SERVICE_FAILED, r
        assert "teepy: the service raised MemoryError (traceback above)" in r.err, r.err
        assert "memory limit exceeded" not in r.err, r.err
    else:
        assert r.returncode == EXIT.MEMORY, r
        assert "memory limit exceeded (256 MiB, MemoryError, peak resident" in r.err, r.err


def test_memory_limit_from_environment(run, script):
    s = hostile(script, MEMORY_BOMB)
    r = run("run", s, env={"TEEPY_MEMORY": "256M"})
    assert r.returncode == EXIT.MEMORY, r
    assert "memory limit exceeded" in r.err


def test_memory_within_limit_is_fine(run, script):
    s = hostile(
        script,
        """
        block = b"\\x02" * (100 * 1024 * 1024)
        report({"len": len(block)})
        """,
    )
    assert run("run", "--memory", "512M", s).json() == {"len": 100 * 1024 * 1024}


# ---------------------------------------------------------------- memory the kernel holds

# Without a memory cgroup (uid 65534 on this v1 host) RLIMIT_AS counts address
# space only: these channels hold memory outside it. A cgroup counts them (exit 5);
# the fallback must keep each bounded below the limit.

SOCKET_FILL = """
import socket
held, pairs, stopped = 0, [], None
chunk = b"x" * 65536
try:
    for i in range(4000):                        # 889 MiB when nothing bounds it
        a, b = socket.socketpair()
        pairs.append((a, b))
        for end in (a, b):
            end.setblocking(False)
            try:
                while True:
                    held += end.send(chunk)
            except BlockingIOError:
                pass
except OSError as e:
    stopped = errno.errorcode.get(e.errno, e.errno)
report({"pairs": len(pairs), "held_mib": held / 2**20, "stopped": stopped})
"""


def test_socket_buffers_stay_below_the_memory_limit(as_user, run, script):
    r = run("run", "--memory", f"{SMALL}M", hostile(script, SOCKET_FILL))
    if r.returncode == EXIT.MEMORY:
        assert "memory limit exceeded" in r.err  # counted by the cgroup
        return
    out = r.json()
    assert out["held_mib"] < SMALL, f"socket buffers held past a {SMALL} MiB limit: {out}"
    assert out["stopped"] == "EMFILE", out


def test_buffers_cannot_grow_and_memfd_is_refused_without_a_cgroup(as_user, run, script):
    s = hostile(
        script,
        """
        import fcntl, socket
        a, b = socket.socketpair()
        size = ctypes.c_int(4 << 20)
        r, w = os.pipe()
        report({
            "sndbuf": attempt(a.setsockopt, socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20),
            "rcvbuf": attempt(a.setsockopt, socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20),
            "sndbuf_raw": sc(54, a.fileno(), 1, 7, ctypes.byref(size), 4),
            "pipe": attempt(fcntl.fcntl, w, 1031, 1 << 20),            # F_SETPIPE_SZ
            "pipe_raw": sc(72, w, 1031, 1 << 20),
            "memfd": attempt(os.memfd_create, "hold"),
            "memfd_raw": sc(319, b"hold", 0),
            "keepalive": attempt(a.setsockopt, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        })
        """,
    )
    out = run("run", "--memory", f"{SMALL}M", s).json()
    assert out["keepalive"] == {"ok": None}, out  # other socket options still work
    if memory_cgroup(run.variant):  # a cgroup counts these: nothing is refused
        assert out["sndbuf"] == {"ok": None} and out["pipe"] == {"ok": 1 << 20}, out
        assert out["memfd_raw"]["ret"] >= 0, out
        return
    for name in ("sndbuf", "rcvbuf", "pipe", "memfd"):
        assert out[name][:2] == ["PermissionError", errno.EPERM], (name, out)
    for name in ("sndbuf_raw", "pipe_raw", "memfd_raw"):
        assert out[name] == {"ret": -1, "errno": errno.EPERM}, (name, out)


def test_memfd_pages_count_against_the_memory_limit(as_user, run, script):
    s = hostile(
        script,
        """
        made = attempt(os.memfd_create, "hold")
        if "ok" in made:
            block = b"\\x03" * (1 << 20)
            for i in range(2 * SMALL):             # twice the limit, never mapped
                os.write(made["ok"], block)
        report(made)
        """,
        SMALL=SMALL,
    )
    r = run("run", "--memory", f"{SMALL}M", s)
    if memory_cgroup(run.variant):
        assert r.returncode == EXIT.MEMORY, r
        assert "memory limit exceeded" in r.err
    elif engine.PYPY:
        # refused, but PyPy's os.memfd_create reports a stale errno (natively too:
        # ENOTTY on its first failure); the raw call's EPERM is tested above
        assert r.json()[0] in ("OSError", "PermissionError"), r.json()
    else:
        assert r.json()[:2] == ["PermissionError", errno.EPERM]


def test_scratch_counts_against_the_memory_limit(as_user, run, script):
    s = hostile(
        script,
        """
        with open("/tmp/fill", "wb") as f:           # 60 MiB of tmpfs pages
            for i in range(60):
                f.write(b"\\x04" * (1 << 20))
        block = b"\\x05" * (BLOCK << 20)              # past the limit together
        report("survived")
        """,
        BLOCK=180 if engine.PYPY else 90,            # with the 60 and the interpreter
    )
    r = run("run", "--memory", f"{2 * SMALL}M", "--scratch", "64M", s)
    assert r.returncode == EXIT.MEMORY, r
    assert "memory limit exceeded" in r.err


def test_descriptors_are_capped(as_user, run, script):
    s = hostile(
        script,
        """
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        report({"soft": soft, "hard": hard,
                "raise": attempt(resource.setrlimit, resource.RLIMIT_NOFILE, (hard + 1, hard + 1))})
        """,
    )
    out = run("run", "--memory", f"{SMALL}M", s).json()
    expected = 1024 if memory_cgroup(run.variant) else SMALL // 2  # no cgroup: one per 2 MiB
    assert (out["soft"], out["hard"]) == (expected, expected), out
    assert out["raise"][0] == "ValueError", out


def test_weaker_limits_are_announced_in_one_line(as_user, run, script):
    r = run("run", "--memory", f"{SMALL}M", script("import teex\nteex.TEEX_return('ok')\n"))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    warnings = [l for l in r.err.splitlines() if "no cgroup for the limits" in l]
    if memory_cgroup(run.variant):
        assert warnings == [], r.err
    else:
        assert len(warnings) == 1 and warnings[0].startswith("teepy: warning: "), r.err
        assert "RLIMIT_AS" in warnings[0] and "kernel buffers are not counted" in warnings[0]


def test_print_config_names_what_the_memory_limit_does_not_count(as_user, run, script):
    r = run("run", "--print-config", "--memory", f"{SMALL}M", "--scratch", "16M",
            script("import teex\nteex.TEEX_return('ok')\n"))
    assert r.returncode == EXIT.OK, r
    config = r.err
    if memory_cgroup(run.variant):
        mechanism = ("v2 memory.max (oom.group)" if host_memory_cgroup_is_v2()
                     else "v1 memory.limit_in_bytes")
        assert f"{SMALL} MiB via cgroup {mechanism}, all processes together" in config, config
        assert "not counted   memory the kernel" not in config
        assert "descriptors   1024 per process" in config
    else:
        assert f"{SMALL} MiB via RLIMIT_AS {SMALL - 16} MiB (fallback, no cgroup" in config, config
        assert "less the 16 MiB scratch" in config
        assert "not counted   memory the kernel holds for the service" in config
        assert f"{SMALL // 2} descriptors per process" in config and "memfd_create refused" in config


BUSY = """
import time
t0 = time.monotonic()
x = 0
while time.monotonic() - t0 < 30:                # bounded even if unlimited
    x += 1
report("survived")
"""


def test_cpu_time_limit_ends_with_exit_6(as_user, run, script):
    s = hostile(script, BUSY)
    start = time.monotonic()
    r = run("run", "--cpu-time", "2", s, timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.CPU, r
    assert "CPU time limit exceeded" in r.err
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert elapsed >= 1.5, f"ended after {elapsed:.1f}s, before 2 s of CPU could be used"


# x86-64 `jmp $` (EB FE) in an executable anonymous page, called through ctypes: the
# thread spins in native code and never returns to the interpreter, so nothing at
# the Python level (signal handlers, the eval loop) can be what stops it.
NATIVE_SPIN = """
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = libc.mmap(None, 4096, 3, 0x22, -1, 0)     # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
if page is None or page == 2**64 - 1:
    report({"mmap": ctypes.get_errno()})
    raise SystemExit(0)
ctypes.memmove(page, b"\\xeb\\xfe", 2)               # jmp $
if libc.mprotect(page, 4096, 5) != 0:            # PROT_READ|PROT_EXEC
    report({"mprotect": ctypes.get_errno()})
    raise SystemExit(0)
print("spinning in native code", file=sys.stderr, flush=True)
ctypes.CFUNCTYPE(None)(page)()
report("returned")
"""


def test_native_spin_ends_with_exit_6(as_user, run, script):
    """A busy loop in machine code is stopped by the CPU clock, not by the
    interpreter. Natively the same code runs until the kernel's RLIMIT_CPU sends
    SIGXCPU (checked first with a 1 s limit), so the probe really spins."""
    import resource
    import signal

    s = hostile(script, NATIVE_SPIN)
    native_teex = "import sys, types; sys.modules['teex'] = types.SimpleNamespace(TEEX_return=print)\n"
    native = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", native_teex + s.read_text()], capture_output=True,
        timeout=30, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (1, 5)))
    assert native.returncode == -signal.SIGXCPU, native
    assert b"spinning in native code" in native.stderr and native.stdout == b"", native

    start = time.monotonic()
    r = run("run", "--cpu-time", "2", s, timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.CPU, r
    assert re.search(r"teepy: CPU time limit exceeded \([\d.]+ s used of 2 s\)", r.err), r.err
    assert "spinning in native code" in r.err, r.err  # mmap and mprotect worked inside
    assert r.stdout == b"", r
    assert 1.5 <= elapsed < 20, f"took {elapsed:.1f}s"


def test_cpu_time_counts_all_threads(run, script):
    s = hostile(
        script,
        """
        import hashlib, time
        def spin():
            data = b"x" * (1 << 20)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                hashlib.sha256(data).digest()   # releases the GIL: threads really run in parallel
        ts = [threading.Thread(target=spin, daemon=True) for _ in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        report("survived")
        """,
    )
    r = run("run", "--cpu-time", "2", s, timeout=60)
    assert r.returncode == EXIT.CPU, r
    assert "CPU time limit exceeded" in r.err


def test_cpu_time_from_environment_and_flag_wins(run, script):
    s = hostile(script, BUSY)
    r = run("run", s, env={"TEEPY_CPU_TIME": "1s"})
    assert r.returncode == EXIT.CPU, r
    spin = hostile(
        script,
        """
        import time
        t0 = time.process_time()
        while time.process_time() - t0 < 1.8:
            pass
        report("spun")
        """,
        name="spin.py",
    )
    r2 = run("run", "--cpu-time", "30", spin, env={"TEEPY_CPU_TIME": "1s"})
    assert (r2.returncode, r2.stdout) == (EXIT.OK, b'"spun"'), r2


def test_wall_clock_timeout_ends_with_exit_7(as_user, run, script):
    s = hostile(script, "import time\ntime.sleep(30)\nreport('woke up')\n")
    start = time.monotonic()
    r = run("run", "--timeout", "2", s)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.TIMEOUT, r
    assert "timeout" in r.err
    assert r.stdout == b""
    assert 1.5 <= elapsed < 20, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("how", ["nanosleep", "pause"])
def test_raw_sleep_ends_with_exit_7(as_user, run, script, how):
    """A sleep the interpreter never sees (the nanosleep system call through
    libc.syscall, or libc pause()) ends at the wall-clock timeout: teepy's own timer
    kills the service, no Python-level timeout is involved."""
    s = hostile(
        script,
        """
        class timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
        print("sleeping", file=sys.stderr, flush=True)
        if HOW == "nanosleep":
            res = sc(35, ctypes.byref(timespec(30, 0)), None)   # SYS_nanosleep, 30 s
        else:
            res = libc.pause()                                  # until a signal: never
        report({"woke": res})
        """,
        HOW=how,
    )
    start = time.monotonic()
    r = run("run", "--timeout", "2", s)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.TIMEOUT, r
    assert "teepy: wall-clock timeout (2 s) exceeded; the service was killed" in r.err, r.err
    assert "sleeping" in r.err, r.err
    assert r.stdout == b""
    assert 1.5 <= elapsed < 20, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("stall", ["result", "reply"])
def test_a_service_that_stalls_the_channel_still_ends_at_the_timeout(as_user, run, script, stall):
    """Half a frame and then nothing (a result promised and never sent), or a reply
    never read (an input larger than the socket holds): teepy is inside a frame,
    blocked on the service, when the deadline comes, and still ends it there."""
    s = hostile(
        script,
        """
        import struct, time
        if STALL == "result":
            os.write(3, struct.pack("=IIQ", 18, 0, 100) + b"x" * 10)   # RESULT, 10 of 100
        else:
            os.write(3, struct.pack("=IIQ", 16, 0, 0))                 # GET_INPUT, unread
        time.sleep(30)
        """,
        STALL=stall,
    )
    big = os.path.join(os.path.dirname(s), "big-input")
    with open(big, "wb") as f:
        f.write(b"i" * (16 << 20))
    start = time.monotonic()
    r = run("run", "--timeout", "2", "--input-file", big, s)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT.TIMEOUT, r
    assert "teepy: wall-clock timeout (2 s) exceeded; the service was killed" in r.err, r.err
    assert 1.5 <= elapsed < 10, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("how", ["print", "raw"])
def test_output_past_the_log_cap_is_dropped_and_said_once(as_user, run, script, how):
    """20 MiB written to stdout and stderr, by print or the raw write call: teepy
    relays the first --log-max (1 MiB), drops the rest, and says so in one line;
    the result and the exit code are the service's."""
    s = hostile(
        script,
        """
        chunk = b"y" * 65535 + b"\\n"
        for i in range(320):
            if HOW == "raw":
                sc(1, 1 + i % 2, chunk, len(chunk))    # SYS_write to fd 1 and 2
            else:
                print(chunk.decode(), end="", file=sys.stdout if i % 2 else sys.stderr, flush=True)
        report("written")
        """,
        HOW=how,
    )
    r = run("run", "--log-max", "1M", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"written"'), r.err[-500:]
    lines = [l for l in r.err_lines if l.startswith("teepy:")]
    assert lines == ["teepy: warning: the service's output was cut at 1 MiB: 19 MiB more "
                     "were dropped (raise --log-max)"], lines
    ours = [l for l in r.stderr.split(b"\n") if l.startswith(b"teepy:")]
    relayed = len(r.stderr) - sum(len(l) + 1 for l in ours)
    assert (1 << 20) - 1 <= relayed <= (1 << 20) + 1, relayed


def test_timeout_keeps_result_returned_before(run, script):
    s = hostile(script, "import time\nreport('early')\ntime.sleep(30)\n")
    r = run("run", "--timeout", "1.5s", s)
    assert r.returncode == EXIT.TIMEOUT, r
    assert r.stdout == b'"early"'


def test_timeout_from_environment_flag_wins(run, script):
    s = hostile(script, "import time\ntime.sleep(SLEEP)\nreport('done')\n", SLEEP=2)
    r = run("run", s, env={"TEEPY_TIMEOUT": "500ms"})
    assert r.returncode == EXIT.TIMEOUT, r
    r2 = run("run", "--timeout", "30s", s, env={"TEEPY_TIMEOUT": "500ms"})
    assert (r2.returncode, r2.stdout) == (EXIT.OK, b'"done"'), r2


def test_thread_cap_refuses_extra_threads(as_user, run, script):
    s = hostile(
        script,
        """
        stop = threading.Event()
        started, errors = [], []
        for i in range(50):
            t = threading.Thread(target=stop.wait)
            try:
                t.start()
                started.append(t)
            except RuntimeError as e:
                errors.append(str(e))
        stop.set()
        for t in started:
            t.join()
        # after the others ended, a new thread can start again
        again = threading.Thread(target=lambda: None)
        again.start()
        again.join()
        report({"started": len(started), "errors": len(errors), "msg": errors[:1]})
        """,
    )
    out = run("run", "--threads", "8", s).json()
    assert out["errors"] > 0, f"all 50 threads started under --threads 8: {out}"
    assert 1 <= out["started"] < 8, out
    assert "can't start new thread" in out["msg"][0]


def test_thread_cap_without_cgroups_holds_for_root(teepy, tmp):
    """The kernel lets host uid 0 past RLIMIT_NPROC, but root's service is host uid
    65534: without a pids cgroup (hidden here by a tmpfs over /sys/fs/cgroup, in a
    private mount namespace) root's thread cap still holds, through RLIMIT_NPROC,
    and teepy says so."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to hide the cgroup trees")
    s = hostile(
        tmp.script,
        """
        stop = threading.Event()
        started = 0
        try:
            for i in range(40):
                threading.Thread(target=stop.wait).start()
                started += 1
        except RuntimeError:
            pass
        stop.set()
        report(started)
        """,
    )
    hide = 'mount --make-rprivate / && mount -t tmpfs none /sys/fs/cgroup && exec "$@"'
    p = subprocess.run(["unshare", "-m", "sh", "-c", hide, "sh", str(teepy), "run",
                        "--print-config", "--threads", "8", str(s)],
                       capture_output=True, timeout=60, cwd=tmp)
    err = p.stderr.decode()
    assert p.returncode == EXIT.OK, err
    assert json.loads(p.stdout) == 7, err   # the main thread and 7 more make 8
    assert "threads       8 via RLIMIT_NPROC" in err and "host uid 65534" in err, err
    warnings = [l for l in err.splitlines() if l.startswith("teepy: warning: no cgroup")]
    assert len(warnings) == 1 and "threads" not in warnings[0], err


def test_thread_pool_works_under_default_cap(run, script):
    s = hostile(
        script,
        """
        from concurrent.futures import ThreadPoolExecutor
        import hashlib
        with ThreadPoolExecutor(max_workers=4) as ex:
            got = list(ex.map(lambda i: hashlib.sha256(str(i).encode()).hexdigest(), range(200)))
        report(got)
        """,
    )
    import hashlib

    assert run("run", s).json() == [hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)]


# ---------------------------------------------------------------- what the service starts with

FD_PROBE = """
import fcntl, resource, stat
soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
fds = {}
for fd in range(soft):                   # no /proc inside: every number is probed
    try:
        st = os.fstat(fd)
    except OSError as e:
        if e.errno != errno.EBADF:
            fds[fd] = ["fstat", e.errno]
        continue
    fds[fd] = [stat.S_IFMT(st.st_mode), fcntl.fcntl(fd, fcntl.F_GETFD)]
report({"probed": soft, "fds": fds})
"""


def test_inherited_descriptors_are_closed_inside(as_user, run, script, tmp):
    """A descriptor teepy inherits (here: open files of a host file outside every
    visible path) must not reach the service: inside only 0 (/dev/null), 1 and 2
    (the output pipe) and 3 (the control channel, a socket) are open, none of them
    close-on-exec. Natively the same probe sees the passed descriptors, so the
    probe can tell."""
    import stat

    secret = tmp.make_sibling("secret").write("host.txt", "host secret\n")
    passed = [os.open(secret, os.O_RDONLY) for _ in range(3)]
    try:
        s = hostile(script, FD_PROBE)
        native_teex = ("import sys, types, json; sys.modules['teex'] = "
                       "types.SimpleNamespace(TEEX_return=print)\n")
        native = subprocess.run(["/usr/bin/python3", "-I", "-c", native_teex + s.read_text()],
                                capture_output=True, timeout=30, pass_fds=passed)
        seen = json.loads(native.stdout)["fds"]
        assert all(str(fd) in seen for fd in passed), (passed, seen)

        out = run("run", s, pass_fds=passed).json()
    finally:
        for fd in passed:
            os.close(fd)
    assert out["probed"] >= 32, out
    assert out["fds"] == {"0": [stat.S_IFCHR, 0], "1": [stat.S_IFIFO, 0],
                          "2": [stat.S_IFIFO, 0], "3": [stat.S_IFSOCK, 0]}, (passed, out)


def test_many_inherited_descriptors_do_not_stop_a_small_service(as_user, run, script):
    """Without a memory cgroup (a user's runs here), --memory under 64M caps the
    service's descriptors at 32 (src/sandbox/limits.c). A caller with more than that
    open must still get its service started: the cap is set once the service's
    descriptors are down to its own four, not while it still holds the caller's
    (then `open /dev/null: Too many open files`)."""
    s = hostile(script, FD_PROBE)
    memory = 96 if engine.PYPY else 40            # PyPy's least under RLIMIT_AS: 48 then
    passed = [os.open("/dev/null", os.O_RDONLY) for _ in range(max(32, memory // 2) + 8)]
    try:
        r = run("run", "--memory", f"{memory}M", s, pass_fds=passed)
    finally:
        for fd in passed:
            os.close(fd)
    assert r.returncode == EXIT.OK, r
    assert sorted(r.json()["fds"]) == ["0", "1", "2", "3"], r.json()


@pytest.mark.parametrize("limit, backstop", [("10", 11), ("2.5", 4), ("1500ms", 3)])
def test_rlimit_cpu_is_a_backstop_one_second_past_the_limit(run, script, limit, backstop):
    """RLIMIT_CPU is set soft == hard to the limit rounded up to whole seconds plus
    one (src/sandbox/limits.c): the kernel's SIGXCPU comes only after teepy's own
    kill, and the service can neither raise it nor get a soft limit it could catch
    as a signal before the hard one."""
    s = hostile(
        script,
        """
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        report({"soft": soft, "hard": hard,
                "raise": attempt(resource.setrlimit, resource.RLIMIT_CPU, (hard + 1, hard + 1))})
        """,
    )
    r = run("run", "--cpu-time", limit, "--print-config", s)
    out = r.json()
    assert (out["soft"], out["hard"]) == (backstop, backstop), out
    assert out["raise"][0] == "ValueError", out
    assert f"RLIMIT_CPU {backstop} s per process as a backstop" in r.err, r.err


@pytest.mark.parametrize("threads", [None, "2", "3", "8"])
def test_blas_and_openmp_threads_are_capped(run, script, threads):
    """build_env (src/cli/run.c) caps OpenBLAS, OpenMP and MKL at min(online CPUs,
    threads / 2) (at least 1): a BLAS call must not start more threads than the
    thread cap leaves room for. No host variable passes, so these are teepy's."""
    s = hostile(
        script,
        """
        report({k: os.environ.get(k) for k in
                ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        """,
    )
    cap = int(threads or 64)
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    expected = str(min(cpus, max(cap // 2, 1)))
    args = ["--threads", threads] if threads else []
    env = {"OPENBLAS_NUM_THREADS": "99", "OMP_NUM_THREADS": "99", "MKL_NUM_THREADS": "99"}
    out = run("run", *args, s, env=env).json()
    assert out == {"OPENBLAS_NUM_THREADS": expected, "OMP_NUM_THREADS": expected,
                   "MKL_NUM_THREADS": expected}, (cpus, out)
    if threads in ("2", "3"):
        assert expected == "1"


# ---------------------------------------------------------------- numpy

NUMPY_SOLVE = """
import numpy as np
n = 200
i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
a = ((i * 31 + j * 17) % 101) / 10.0 + np.eye(n) * 250.0
b = np.sin(np.arange(n) / 7.0)
x = np.linalg.solve(a, b)
"""


@pytest.fixture(scope="module")
def native_numpy_solution():
    code = NUMPY_SOLVE + "import json\nprint(json.dumps(x.tolist()))\n"
    try:
        p = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("/usr/bin/python3 missing")
    if p.returncode != 0:
        pytest.skip(f"numpy is not installed for /usr/bin/python3 (python3-numpy): {p.stderr[-300:]!r}")
    return json.loads(p.stdout)


def test_numpy_solve_matches_native_with_site_packages(run, script, native_numpy_solution):
    if engine.PYPY:
        pytest.skip("Debian's numpy is built for CPython: PyPy cannot import it")
    s = hostile(script, NUMPY_SOLVE + "report({'x': x.tolist(), 'version': np.__version__})\n")
    out = run("run", "--allow-site-packages", s).json()
    expected = native_numpy_solution
    assert len(out["x"]) == 200
    worst = max(abs(a - b) for a, b in zip(out["x"], expected))
    assert worst < 1e-9, f"numpy inside differs from native by {worst}"


def test_numpy_not_importable_without_site_packages(run, script, native_numpy_solution):
    s = hostile(script, "report(attempt(__import__, 'numpy'))\n")
    out = run("run", s).json()
    assert isinstance(out, list) and out[0] == "ModuleNotFoundError", out
