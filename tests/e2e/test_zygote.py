"""Warm starts in the worker (`teepy serve`): a service's zygote, started at its first
invocation with the manifest's preload modules imported, forks one child an invocation.
What an invocation leaves (module state, RNG state, scratch files, memory) is never seen
by the next; concurrent invocations of one service or of two cannot signal, inspect or
reprioritize each other (the pid-naming syscalls name only the caller), nor share SysV
IPC or scratch; a crashing, memory-hungry or spinning invocation leaves the others and
the zygote serving; a preload that leaves a process or thread behind gets no warm start;
a worker killed with SIGKILL leaves no zygote behind.

The tests hold with zygotes off (`TEEPY_ZYGOTES=0`, or a worker without them: every
invocation cold, each in its own sandbox). Where an invocation's log line says
`"start"`, they assert that the invocations meant to be warm were; without that field
(a worker without zygotes) that assertion is skipped, the rest still holds."""
import errno
import json
import os
import re
import shutil
import struct
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from test_worker import Worker, _direct, comm, deployed, descendants, raw_invoke, \
    store  # noqa: F401 (store is a fixture)

# The service. Its state lives in a preloaded module of its own (zstate), imported once
# in a zygote, so that a child that saw another's state would show it.
ZSTATE = """
calls = 0
kept = []
"""

# Which read-only pages of the objects loaded the kernel lets this process write: in
# the service (its "code" mode) and in numpy's.
CODE_CHECK = r'''
import ctypes, os, sys

code_libc = ctypes.CDLL(None, use_errno=True)
code_libc.syscall.restype = ctypes.c_long
code_libc.getauxval.restype = ctypes.c_ulong


class Phdr(ctypes.Structure):
    _fields_ = [("p_type", ctypes.c_uint32), ("p_flags", ctypes.c_uint32),
                ("p_offset", ctypes.c_uint64), ("p_vaddr", ctypes.c_uint64),
                ("p_paddr", ctypes.c_uint64), ("p_filesz", ctypes.c_uint64),
                ("p_memsz", ctypes.c_uint64), ("p_align", ctypes.c_uint64)]


class PhdrInfo(ctypes.Structure):
    _fields_ = [("dlpi_addr", ctypes.c_uint64), ("dlpi_name", ctypes.c_char_p),
                ("dlpi_phdr", ctypes.POINTER(Phdr)), ("dlpi_phnum", ctypes.c_uint16)]


def code_pages():
    """The first and the last whole page of each read-only segment (code, constants) of
    every object loaded (the vdso's aside): [(object, address)]."""
    pages = []
    vdso = code_libc.getauxval(33)  # AT_SYSINFO_EHDR

    def each(info, size, data):
        i = info.contents
        for k in range(i.dlpi_phnum if i.dlpi_addr != vdso else 0):
            ph = i.dlpi_phdr[k]
            if ph.p_type != 1 or ph.p_flags & 2:  # PT_LOAD, not PF_W
                continue
            lo = (i.dlpi_addr + ph.p_vaddr + 4095) & ~4095
            hi = (i.dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~4095
            if hi > lo:
                name = (i.dlpi_name or b"").decode() or sys.executable
                pages.extend([(name, lo), (name, hi - 4096)])
        return 0

    walk = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(PhdrInfo), ctypes.c_size_t,
                            ctypes.c_void_p)(each)
    code_libc.dl_iterate_phdr(walk, None)
    return pages


def write_in_place(address):
    """The kernel asked to write this process's memory at address: read(2) of one byte
    from a pipe that holds the byte already there (a write that went through changes
    nothing). [-1, EFAULT] where the page is not writable."""
    r, w = os.pipe()
    os.write(w, ctypes.string_at(address, 1))
    ctypes.set_errno(0)
    got = code_libc.syscall(ctypes.c_long(0), ctypes.c_long(r), ctypes.c_void_p(address),
                            ctypes.c_long(1))
    os.close(r)
    os.close(w)
    return [int(got), ctypes.get_errno() if got < 0 else 0]
'''

SERVICE = r'''
import ctypes, errno, gc, glob, json, mmap, os, random, signal, sys, tempfile, time
import teex
import zstate

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long


def marker():
    """Built at run time and held in no global: the source's constants and the module's
    namespace never hold it whole."""
    return "-".join(["ZYGOTE", "LEFT", "BEHIND", "c41d"])


def sys_call(nr, *args):
    """A raw system call: (return value, errno)."""
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *[L(a) if isinstance(a, int) else
                              ctypes.c_void_p(None) if a is None else a for a in args])
    return [int(r), ctypes.get_errno() if r < 0 else 0]


def attempt(fn):
    try:
        fn()
        return [0, 0]
    except OSError as e:
        return [-1, e.errno]


def left_behind():
    """What this process sees of an earlier invocation: the marker in fresh memory, in
    objects the collector tracks, in the scratch directory."""
    seen = {}
    want = marker().encode()
    # fresh allocations: an anonymous mapping, a bytearray, small malloc'd blocks (the
    # heap's free lists) read without being written first
    m = mmap.mmap(-1, 16 << 20)
    seen["mmap"] = m.find(want) >= 0
    m.close()
    seen["bytearray"] = bytearray(16 << 20).find(want) >= 0
    libc.malloc.restype = ctypes.c_void_p
    blocks, found = [], False
    for _ in range(512):
        p = libc.malloc(4096)
        blocks.append(p)
        if p and want in ctypes.string_at(p, 4096):
            found = True
    for p in blocks:
        libc.free(ctypes.c_void_p(p))
    seen["malloc"] = found
    # a string left in a container (zstate.kept, say)
    kept, found = marker() + " kept", False
    for o in gc.get_objects():
        items = (o.values() if isinstance(o, dict) else
                 o if isinstance(o, (list, tuple, set)) else ())
        if any(isinstance(x, str) and x == kept for x in items):
            found = True
            break
    del kept
    seen["gc"] = found
    seen["scratch"] = sorted(n for n in os.listdir(tempfile.gettempdir()) if n.startswith("left-"))
    return seen


def leave():
    """Leave state behind: in the preloaded module, the heap, a big buffer, scratch."""
    zstate.kept.append(marker() + " kept")
    # blocks of malloc's 4096 (a bytes object's header is 33 bytes), freed: back on the
    # heap's free lists, where the next malloc(4096) finds them in the same process
    chunks = [(marker() * 200)[:4096 - 33].encode() for _ in range(512)]
    del chunks
    zstate.kept.append(bytearray((marker() * ((8 << 20) // len(marker()))).encode()))
    with open(os.path.join(tempfile.gettempdir(), "left-%d" % os.getpid()), "w") as f:
        f.write(marker())


def own_state():
    nofile = (ctypes.c_ulong * 2)()
    sys_call(302, 0, 7, None, ctypes.byref(nofile))
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0), "affinity": sorted(os.sched_getaffinity(0)),
            "nofile": list(nofile), "pgid": os.getpgid(0)}


def attacks():
    """Every way this process tries to reach another one (pids 1..64 but its own, and
    any pid found in a readable scratch file), each with what it gave."""
    me = os.getpid()
    out = {"pid": me, "tmpdir": tempfile.gettempdir(), "by_pid": {}, "other": {}, "self": {}}
    found = {}
    mine = tempfile.gettempdir().rstrip("/")
    for pattern in ("/tmp/*", "/tmp/*/*", "/tmp/*/*/*",
                    os.path.join(os.path.dirname(mine) or "/", "*", "*")):
        for path in glob.glob(pattern):
            if os.path.isfile(path) and not path.startswith(mine + "/"):
                try:
                    with open(path, errors="replace") as f:
                        found[path] = f.read(4096)
                except OSError:
                    pass
    out["found"] = found
    out["list_tmp"] = attempt(lambda: os.listdir("/tmp"))
    targets = set(range(1, 65))
    for text in found.values():
        if text.strip().isdigit():
            targets.add(int(text.strip()))
    targets.discard(me)
    mask = (ctypes.c_ulong * 16)(1)  # CPU 0 only
    info = (ctypes.c_int * 32)(0, 0, -1)  # si_signo 0, si_errno 0, si_code SI_QUEUE
    old = (ctypes.c_ulong * 2)()
    r, w = os.pipe()
    for pid in sorted(targets):
        got = {
            "kill0": attempt(lambda: os.kill(pid, 0)),
            "sys_kill": sys_call(62, pid, 0),
            "tgkill": sys_call(234, pid, pid, 0),
            "tkill": sys_call(200, pid, 0),
            "pidfd_open": sys_call(434, pid, 0),
            "rt_sigqueueinfo": sys_call(129, pid, 0, ctypes.byref(info)),
            "prlimit64": sys_call(302, pid, 7, None, ctypes.byref(old)),
            "sched_setaffinity": sys_call(203, pid, ctypes.sizeof(mask), ctypes.byref(mask)),
            "setpriority_process": sys_call(141, 0, pid, 19),
            "setpriority_pgrp": sys_call(141, 1, pid, 19),
            "setpgid": sys_call(109, pid, pid),
            "f_setown": sys_call(72, w, 8, pid),
            # F_SETOWN by another name: who gets SIGIO (and, with F_SETSIG, any signal)
            "ioctl_fiosetown": sys_call(16, w, 0x8901, ctypes.byref(ctypes.c_int(pid))),
            "ioctl_siocspgrp": sys_call(16, w, 0x8902, ctypes.byref(ctypes.c_int(pid))),
            "sigkill": attempt(lambda: os.kill(pid, signal.SIGKILL)),
        }
        if got["pidfd_open"][0] >= 0:
            os.close(got["pidfd_open"][0])
        out["by_pid"][pid] = got
    os.close(r)
    os.close(w)
    o = out["other"]
    o["setpriority_user_0"] = sys_call(141, 2, 0, 19)
    o["setpriority_user_uid"] = sys_call(141, 2, os.getuid(), 19)
    o["setpgid_0_1"] = sys_call(109, 0, 1)
    o["shmget"] = sys_call(29, 0, 4096, 0o1600)
    o["semget"] = sys_call(64, 0, 1, 0o1600)
    o["msgget"] = sys_call(68, 0, 0o1600)
    o["mq_open"] = sys_call(240, b"zygote-mq", os.O_CREAT | os.O_RDWR, 0o600, None)
    # process creation: a child that got through ends at once
    for name, nr, args in (("fork", 57, ()), ("vfork", 58, ()), ("clone", 56, (17, 0, 0, 0, 0))):
        got = sys_call(nr, *args)
        if got[0] == 0:
            os._exit(0)
        o[name] = got
    argv = (ctypes.c_char_p * 2)(sys.executable.encode(), None)
    o["execve"] = sys_call(59, sys.executable.encode(), argv, None)
    # on itself all of this works
    s = out["self"]
    s["kill0"] = attempt(lambda: os.kill(me, 0))
    s["sys_kill"] = sys_call(62, me, 0)
    s["prlimit64_0"] = sys_call(302, 0, 7, None, ctypes.byref(old))
    s["prlimit64_me"] = sys_call(302, me, 7, None, ctypes.byref(old))
    return out


''' + CODE_CHECK + r'''
mode = teex.TEEX_getinput()
word = mode.split()[0] if mode else ""
print("log-of-the-service", flush=True)
if word == "state":
    zstate.calls += 1
    seen = left_behind()
    leave()
    teex.TEEX_return(json.dumps({"calls": zstate.calls, "random": random.random(),
                                 "seen": seen, "pid": os.getpid()}))
elif word == "hold":
    # hold MARKER SECONDS: the pid and a marker in scratch, then a sleep
    _, marker, seconds = mode.split()
    d = tempfile.gettempdir()
    for name, text in (("pid", str(os.getpid())), ("marker", marker)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    before = own_state()
    began = time.time()
    time.sleep(float(seconds))
    with open(os.path.join(d, "marker")) as f:
        intact = f.read() == marker
    teex.TEEX_return(json.dumps({"held": [began, time.time()], "pid": os.getpid(),
                                 "tmpdir": d, "intact": intact,
                                 "before": before, "after": own_state()}))
elif word == "attack":
    began = time.time()
    out = attacks()
    out["window"] = [began, time.time()]
    teex.TEEX_return(json.dumps(out))
elif word == "exit":
    # exit N: an atexit function that says so, then SystemExit(N), no result
    import atexit
    atexit.register(lambda: print("atexit-ran", file=sys.stderr, flush=True))
    sys.exit(int(mode.split()[1]))
elif word == "hardexit":
    # hardexit N: os._exit(N): no atexit, no word on the channel
    import atexit
    atexit.register(lambda: print("atexit-ran", file=sys.stderr, flush=True))
    os._exit(int(mode.split()[1]))
elif word == "late":
    # a result, then more log, a 70 KiB line (more than a pipe holds), then the end
    teex.TEEX_return("late-result")
    print("after-the-result " + "y" * (70 << 10), file=sys.stderr, flush=True)
elif word == "code":
    teex.TEEX_return(json.dumps([[name, address, write_in_place(address)]
                                 for name, address in code_pages()]))
elif word == "abort":
    os.abort()
elif word == "segv":
    ctypes.string_at(0)
elif word == "memory":
    blob = b"x" * (1 << 30)
elif word == "spin":
    while True:
        pass
else:
    teex.TEEX_return(json.dumps({"input": mode, "pid": os.getpid()}))
'''

NUMPY_SERVICE = CODE_CHECK + """
import json, numpy, teex
if teex.TEEX_getinput() == "code":
    teex.TEEX_return(json.dumps([[name, address, write_in_place(address)]
                                 for name, address in code_pages()]))
else:
    teex.TEEX_return(json.dumps({"numpy": float(numpy.random.rand())}))
"""

# A preload that leaves a process behind (a child of the importer, sleeping), and one
# that leaves a thread running: neither can be forked safely as a zygote.
FORKER = """
import os, time
if os.fork() == 0:
    time.sleep(20)
    os._exit(0)
"""

THREADER = """
import threading, time
threading.Thread(target=time.sleep, args=(20,), daemon=True).start()
"""

PLAIN = """
import json, os, teex
teex.TEEX_return(json.dumps({"input": teex.TEEX_getinput(), "pid": os.getpid()}))
"""

ERRORS = {"bad_request", "forbidden", "not_found", "conflict", "failed", "no_result", "rule",
          "memory", "cpu", "timeout", "config", "key_missing", "refused", "internal"}


def load_segments(path):
    """The PT_LOAD segments of the ELF object at path: [(its first page's file offset,
    the end of its file bytes, p_flags)]; None for a file that is no 64-bit ELF."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
            return None
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    segments = []
    for i in range(phnum):
        p_type, p_flags, p_offset, _, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", table, i * phentsize)
        if p_type == 1:  # PT_LOAD
            segments.append((p_offset & ~4095, p_offset + p_filesz, p_flags))
    return segments


def protections_unlike_their_segments(pid):
    """Process pid's file mappings, seen from the host as root: how many map a
    segment of an ELF object, and those whose protection is not what the segment's
    flags ask (executable without PF_X or not executable with it, writable without
    PF_W). Each file is read through /proc/PID/map_files, whatever its path is in the
    sandbox."""
    checked, wrong = 0, []
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return 0, []  # gone since it was listed (a zombie's maps are empty too)
    for line in maps.splitlines():
        span, perms, offset, _, inode = line.split()[:5]
        if inode == "0":
            continue
        try:
            segments = load_segments(f"/proc/{pid}/map_files/{span}")
        except OSError:
            continue  # gone, or no regular file
        offset = int(offset, 16)
        covering = [s for s in segments or () if s[0] <= offset < s[1]]
        if len(covering) > 1:  # a page two segments share: the one starting there
            covering = [s for s in covering if s[0] == offset]
        if len(covering) != 1:
            continue
        flags = covering[0][2]
        checked += 1
        if ("x" in perms) != bool(flags & 1) or ("w" in perms and not flags & 2):
            wrong.append(line)
    return checked, wrong


@pytest.fixture(scope="module")
def zapps(teepy):
    """The bundles, built once: the service (preload random and its zstate module, 8M
    scratch, 256M, 3 s of CPU: filling 256 MiB takes about a second of CPU on these
    machines, whose page faults are slow, and more when they are loaded), the same app
    with other limits (another service), numpy preloaded, a preload that forks, one
    that starts a thread."""
    d = Path(tempfile.mkdtemp(prefix="teepy-test-zygote-", dir="/tmp"))
    d.chmod(0o755)
    app = d / "app"
    app.mkdir()
    (app / "svc.py").write_text(SERVICE)
    (app / "zstate.py").write_text(textwrap.dedent(ZSTATE))
    _direct(teepy, "keygen", "-o", d / "signer.key")
    common = ["--key", d / "signer.key", "--scratch", "8M", "--cpu-time", "3s"]
    for name, memory in (("svc", "256M"), ("alt", "200M")):
        # the attack as the sample run: what it opens (ctypes, libffi) is in the manifest
        _direct(teepy, "build", app / "svc.py", "-o", d / f"{name}.tpy", "--input", "attack",
                "--memory", memory, "--preload", "random", "--preload", "zstate", *common)
    for name, source, preload, extra in (
            ("np", NUMPY_SERVICE, "numpy", ["--allow-site-packages"]),
            ("forker", PLAIN, "forker", ["--allow-processes"]),
            ("threader", PLAIN, "threader", [])):
        sub = d / name
        sub.mkdir()
        (sub / "svc.py").write_text(textwrap.dedent(source))
        if preload in ("forker", "threader"):
            module = FORKER if preload == "forker" else THREADER
            (sub / f"{preload}.py").write_text(textwrap.dedent(module))
        _direct(teepy, "build", sub / "svc.py", "-o", d / f"{name}.tpy", "--input", "x",
                "--preload", preload, "--memory", "256M", "--key", d / "signer.key", *extra)
    for p in d.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def invoke_lines(w, service, count, wait=10):
    """The request lines of the service's invocations (the first `count`), once `count`
    of them are in or `wait` seconds have passed."""
    deadline = time.time() + wait
    while True:
        lines = [l for l in w.request_lines()
                 if l["path"].endswith("/invoke") and l.get("service") == service]
        if len(lines) >= count or time.time() > deadline:
            return lines[:count]


def assert_warm(w, service, count, first_warm):
    """Where the worker says how an invocation started: those from the `first_warm`-th
    (0-based, in the order logged) of the service's `count` were warm."""
    lines = invoke_lines(w, service, count)
    assert len(lines) == count, lines
    if any("start" in l for l in lines):
        assert all(l.get("start") in ("warm", "cold") for l in lines), lines
        assert [l["start"] for l in lines[first_warm:]] == ["warm"] * (count - first_warm), lines


def zygotes_on(w):
    return any("start" in l for l in w.request_lines())


def ok(w, service, mode):
    s, r = w.invoke(service, mode)
    assert s == 200, (mode, r)
    return json.loads(r["result"])


def in_cgroups_of(owners):
    """Processes on the host in a teepy cgroup named after one of `owners` (pids):
    {pid: (comm, cgroup)}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        for m in re.finditer(r"teepy-(\d+)-\S*", text):
            if int(m.group(1)) in owners:
                found[int(entry)] = (comm(int(entry)), m.group(0))
    return found


# ---------------------------------------------------------------------------
# one invocation after another


def test_nothing_of_an_invocation_is_seen_by_the_next(as_user, start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub")
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    runs = [ok(w, service, "state") for _ in range(5)]
    w.stop()
    assert_warm(w, service, 5, 1)
    for r in runs:
        # a module-level counter starts from the zygote's 0 every time
        assert r["calls"] == 1, runs
        # nothing left: not in the heap, a fresh mapping, live objects, scratch
        assert r["seen"] == {"mmap": False, "bytearray": False, "malloc": False, "gc": False,
                             "scratch": []}, r
    # the RNG was reseeded for each child
    assert len({r["random"] for r in runs}) == len(runs), runs


def test_a_warm_invocation_reports_what_it_used(as_user, start, zapps, store):
    """The usage of an invocation that held two 16 MiB buffers and keeps an 8 MiB one:
    its peak memory (its own cgroup's; without one, as a user here, its zygote's report
    of its end, wait4's rusage: the worker waits for it even after EXIT), CPU time and
    wall time are all there and plausible."""
    w = Worker(start, store, zapps / "signer.pub")
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    ok(w, service, "state")
    answers = [w.invoke(service, "state") for _ in range(3)]
    w.stop()
    assert_warm(w, service, 4, 1)
    for s, r in answers:
        assert s == 200, r
        usage = r["usage"]
        assert usage["peak_memory_bytes"] >= 8 << 20, usage
        assert usage["cpu_ms"] >= 1 and usage["wall_ms"] >= 1, usage


def test_with_zygotes_off_every_invocation_is_cold(start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub", env={"TEEPY_ZYGOTES": "0"})
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    runs = [ok(w, service, "state") for _ in range(3)]
    w.stop()
    lines = invoke_lines(w, service, 3)
    assert [l.get("start", "cold") for l in lines] == ["cold"] * 3, lines
    assert [r["calls"] for r in runs] == [1, 1, 1], runs
    assert len({r["random"] for r in runs}) == 3, runs


def test_a_warm_invocation_ends_as_a_cold_one(start, zapps, store):
    """How a service ends is answered alike warm and cold: SystemExit with a status
    (atexit functions run, their output in the log), os._exit (nothing runs after it),
    a result followed by more output than a pipe holds. A warm child that ends as
    Python ends says EXIT on its channel and is answered at once; one that ends by
    os._exit is answered from its zygote's wait status: both must match the cold run."""
    modes = ["exit 3", "exit 0", "hardexit 5", "late"]
    answers = {}
    for name, env in (("warm", {}), ("cold", {"TEEPY_ZYGOTES": "0"})):
        w = Worker(start, store, zapps / "signer.pub", env=env)
        try:
            service, _ = deployed(w, zapps, (), bundle="svc.tpy")
            ok(w, service, "plain")  # the zygote started (warm), or a first cold run
            answers[name] = [w.invoke(service, m) for m in modes]
        finally:
            w.stop()
        if name == "warm":
            assert_warm(w, service, len(modes) + 1, 1)
    for mode, warm, cold in zip(modes, answers["warm"], answers["cold"]):
        (ws, wr), (cs, cr) = warm, cold
        assert ws == cs, (mode, warm, cold)
        assert wr.get("error") == cr.get("error"), (mode, warm, cold)
        assert wr.get("result") == cr.get("result"), (mode, warm, cold)
        for r in (wr, cr):
            log = r.get("log", "")
            assert log.startswith("log-of-the-service\n"), (mode, r)
            assert ("atexit-ran" in log) == mode.startswith("exit"), (mode, r)
        if mode == "late":  # the log capped alike (64 KiB), the line's head in it
            assert wr["log"] == cr["log"] and "after-the-result yyy" in wr["log"], mode
            assert wr.get("log_truncated") is True and cr.get("log_truncated") is True
    exit3 = answers["warm"][0][1]
    assert exit3["error"]["kind"] == "failed" and "3" in exit3["error"]["message"], exit3
    assert answers["warm"][2][1]["error"]["kind"] == "failed", answers["warm"][2]
    assert answers["warm"][3][1]["result"] == "late-result", answers["warm"][3]


def test_numpy_preloaded_gives_each_invocation_its_own_random_stream(start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub")
    service, _ = deployed(w, zapps, (), bundle="np.tpy")
    got = [ok(w, service, "x")["numpy"] for _ in range(4)]
    w.stop()
    assert_warm(w, service, 4, 1)
    assert len(set(got)) == len(got), got


def test_the_zygotes_code_stays_read_only_in_its_children(as_user, start, zapps, store):
    """A zygote makes each read-only segment of what it has loaded writable for an
    instant, so that a fork copies their page-table entries (_teepy.c,
    code_tables_copied_on_fork). In a warm child, as in a cold run, the kernel refuses
    a write to any of them: to the first and the last whole page of each segment of the
    interpreter, libc, the loader and every extension module (EFAULT), those of a numpy
    zygote too, whose preload left BLAS threads running while it did so. Seen from the
    host, the zygote and its children map each segment with the protection its ELF
    flags give it: none made executable that was not, none left writable."""
    for bundle, env in (("svc.tpy", {}), ("np.tpy", {}), ("svc.tpy", {"TEEPY_ZYGOTES": "0"})):
        w = Worker(start, store, zapps / "signer.pub", env=env)
        try:
            service, _ = deployed(w, zapps, (), bundle=bundle)
            ok(w, service, "x")  # the zygote started (warm), or a first cold run
            pages = ok(w, service, "code")
            # from the host: the zygote and the children it forked ahead map every
            # segment as its ELF flags say (no constants made executable, no code
            # left writable)
            looked_at = 0
            for pid in pythons_under(w):  # the invocation's own child may be ending
                checked, wrong = protections_unlike_their_segments(pid)
                assert not wrong, (bundle, pid, wrong)
                looked_at += checked > 0
        finally:
            w.stop()
        if not env:
            assert_warm(w, service, 2, 1)
            assert looked_at, "no zygote or child under the worker to look at"
        names = {os.path.basename(name) for name, _, _ in pages}
        assert {"libc.so.6", "ld-linux-x86-64.so.2"} <= names, names
        assert any(n.startswith("python3") for n in names), names
        assert any(n.startswith("_ctypes") for n in names), names
        if bundle == "np.tpy":  # the preload's own objects, the zygote's threads beside
            assert any(n.startswith("_multiarray_umath") for n in names), names
            assert any("blas" in n for n in names), names
        assert all(got == [-1, errno.EFAULT] for _, _, got in pages), (bundle, env, pages)


# ---------------------------------------------------------------------------
# concurrent invocations


def pythons_under(w):
    return {p for p in descendants(w.proc.pid) if (comm(p) or "").startswith("python")}


def wait_for_new_python(w, before):
    """Waits for a python under the worker that is not one of `before` (an invocation's
    interpreter, or a zygote's child): the processes under the worker then."""
    deadline = time.time() + 20
    while time.time() < deadline:
        below = set(descendants(w.proc.pid))
        if any((comm(p) or "").startswith("python") for p in below - before):
            return below
        time.sleep(0.05)
    raise AssertionError(f"the invocation did not start under the worker: {below!r}")


def hold_and_attack(w, holder_service, attacker_service):
    """The holder invoked (it writes its pid and a marker to its scratch, then sleeps),
    the attacker invoked while it holds: the holder's marker and both answers. Tried
    again with a longer hold if the attack did not fall within the hold (a slow
    machine)."""
    for seconds in (4, 10):
        marker = "HOLDER-" + uuid.uuid4().hex
        answers = {}

        def hold():
            answers["holder"] = w.invoke(holder_service, f"hold {marker} {seconds}")

        before = pythons_under(w)
        t = threading.Thread(target=hold)
        t.start()
        wait_for_new_python(w, before)
        time.sleep(0.5)  # past its start: its files written
        answers["attacker"] = w.invoke(attacker_service, "attack")
        t.join(timeout=60)
        try:
            holder = json.loads(answers["holder"][1]["result"])
            attack = json.loads(answers["attacker"][1]["result"])
        except KeyError:
            break  # a failed one: check_attack says how
        if holder["held"][0] <= attack["window"][0] and attack["window"][1] <= holder["held"][1]:
            break
    return marker, answers


def check_attack(marker, answers, strict):
    """The holder was not disturbed and no attack reached it. `strict` (zygotes on, the
    two in one pid namespace possibly): every call naming another pid failed with EPERM,
    SysV IPC and mqueues too, and /tmp itself is not listable."""
    s, h = answers["holder"]
    assert s == 200, h
    holder = json.loads(h["result"])
    s, a = answers["attacker"]
    assert s == 200, a
    attack = json.loads(a["result"])
    # the attack ran while the holder held (else the test proves nothing)
    assert holder["held"][0] <= attack["window"][0] and attack["window"][1] <= holder["held"][1], \
        (holder["held"], attack["window"])
    # the holder ended on its own, its state as it was, its scratch intact
    assert holder["intact"] is True and holder["before"] == holder["after"], holder
    # nothing of the holder's scratch was read
    assert not [p for p, text in attack["found"].items()
                if marker in text or p.startswith(holder["tmpdir"] + "/")], attack["found"]
    # no call naming the holder's pid got through (two invocations in one pid namespace
    # have two pids; the same pid means two namespaces, the holder out of reach)
    by_pid = {int(k): v for k, v in attack["by_pid"].items()}
    if holder["pid"] != attack["pid"]:
        got = by_pid[holder["pid"]]
        assert all(r[0] < 0 for r in got.values()), got
    # no process created, no SysV IPC or message queue made
    other = attack["other"]
    for name in ("fork", "vfork", "clone", "execve", "shmget", "semget", "msgget", "mq_open"):
        assert other[name][0] < 0, (name, other)
    # on itself it works
    assert all(r == [0, 0] for r in attack["self"].values()), attack["self"]
    if strict:
        reached = {(pid, name): r for pid, got in by_pid.items() for name, r in got.items()
                   if r != [-1, 1]}
        assert not reached, reached
        for name in ("setpriority_user_0", "setpriority_user_uid", "shmget",
                     "semget", "msgget", "mq_open", "fork", "vfork", "clone", "execve"):
            assert other[name] == [-1, 1], (name, other)
        assert attack["list_tmp"][0] < 0, attack["list_tmp"]
        # each its own scratch directory under /tmp as TMPDIR
        assert holder["tmpdir"].startswith("/tmp/") and attack["tmpdir"].startswith("/tmp/") \
            and holder["tmpdir"] != attack["tmpdir"], (holder["tmpdir"], attack["tmpdir"])
    return holder, attack


def test_concurrent_invocations_of_a_service_cannot_reach_each_other(as_user, start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub", "--concurrency", "3")
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    for _ in range(2):
        ok(w, service, "warm up")  # the zygote started, the next ones warm
    marker, answers = hold_and_attack(w, service, service)
    w.stop()
    assert_warm(w, service, 4, 1)
    check_attack(marker, answers, zygotes_on(w))


def test_one_service_cannot_reach_another(start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub", "--concurrency", "3")
    one, _ = deployed(w, zapps, (), bundle="svc.tpy")
    two, _ = deployed(w, zapps, (), bundle="alt.tpy")
    assert one != two
    for service in (one, two):
        ok(w, service, "warm up")
    marker, answers = hold_and_attack(w, two, one)
    w.stop()
    assert_warm(w, one, 2, 1)
    assert_warm(w, two, 2, 1)
    check_attack(marker, answers, zygotes_on(w))


# ---------------------------------------------------------------------------
# failing invocations


def test_crashing_hungry_and_spinning_invocations_leave_the_others_serving(start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub", "--concurrency", "6", "--invoke-timeout", "20")
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    other, _ = deployed(w, zapps, (), bundle="alt.tpy")
    ok(w, service, "warm up")
    ok(w, other, "warm up")
    answers = {}

    def call(name, svc, mode):
        answers[name] = w.invoke(svc, mode)

    calls = [("abort", service, "abort"), ("segv", service, "segv"),
             ("memory", service, "memory"), ("spin", service, "spin"),
             ("other", other, "fine"), ("same", service, "fine")]
    threads = [threading.Thread(target=call, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers["other"][0] == 200 and answers["same"][0] == 200, answers
    expect = {"abort": (422, "failed"), "segv": (422, "failed"), "memory": (422, "memory"),
              "spin": (422, "cpu")}
    for name, (status, kind) in expect.items():
        s, doc = answers[name]
        assert (s, doc["error"]["kind"]) == (status, kind), (name, doc)
        assert "log-of-the-service\n" in doc["log"], (name, doc)
    # the zygote outlived its failing children: the next invocations are warm
    for _ in range(2):
        ok(w, service, "after")
    w.stop()
    assert_warm(w, service, 8, 1)  # the failing ones too
    ends = sorted(l["end"] for l in w.request_lines() if l["path"].endswith("/invoke"))
    assert ends == ["cpu", "failed", "failed", "memory"] + ["result"] * 6, ends


# ---------------------------------------------------------------------------
# preloads that cannot be a zygote


@pytest.mark.parametrize("bundle", ["forker.tpy", "threader.tpy"])
def test_a_preload_leaving_a_process_or_thread_gets_no_warm_start_and_no_hang(start, zapps,
                                                                             store, bundle):
    """Assumed: a zygote whose preload left a child process or a running thread is
    refused (it cannot be forked safely); the worker then runs the service cold ("start":
    "cold") or ends each invocation with a clear error (one line, a documented kind). An
    answer must come (a hang fails the request's timeout)."""
    w = Worker(start, store, zapps / "signer.pub")
    service, _ = deployed(w, zapps, (), bundle=bundle)
    answers = [w.invoke(service, f"call {i}", timeout=60) for i in range(3)]
    w.stop()
    lines = invoke_lines(w, service, 3)
    assert len(lines) == 3, lines
    for (s, doc), line in zip(answers, lines):
        if s == 200:
            assert json.loads(doc["result"])["input"].startswith("call "), doc
            assert line.get("start", "cold") == "cold", line
        else:
            err = doc["error"]
            assert err["kind"] in ERRORS and err["message"] and "\n" not in err["message"], doc
            assert line.get("start") != "warm", line


# ---------------------------------------------------------------------------
# a worker killed


def test_a_worker_killed_after_warm_starts_leaves_no_zygote_or_child(start, zapps, store):
    w = Worker(start, store, zapps / "signer.pub")
    service, _ = deployed(w, zapps, (), bundle="svc.tpy")
    other, _ = deployed(w, zapps, (), bundle="alt.tpy")
    for _ in range(3):
        ok(w, service, "warm up")
    ok(w, other, "warm up")  # a second zygote, idle
    pythons = pythons_under(w)
    c = raw_invoke(w, service, "hold x 60")
    below = wait_for_new_python(w, pythons)
    time.sleep(0.5)  # past its start: it holds
    pids = sorted(set(descendants(w.proc.pid)) | below | pythons)
    if zygotes_on(w):
        assert pythons, "no zygote under the worker"  # else this test would not see it
    owners = {w.proc.pid, *pids}
    w.proc.kill()
    w.proc.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline and any(comm(p) for p in pids):
        time.sleep(0.1)
    assert not [(p, comm(p)) for p in pids if comm(p)]
    # nor anywhere on the host (a zygote that left the worker's tree) in a cgroup the
    # worker's processes made
    assert not in_cgroups_of(owners)
    c.close()
    # the held invocation had not ended when the worker was killed
    assert len(invoke_lines(w, service, 4, wait=0)) == 3
    assert_warm(w, service, 3, 1)
    # a worker started again serves; its first run removes the dead one's cgroups
    w = Worker(start, store, zapps / "signer.pub")
    for svc in (service, other):
        ok(w, svc, "after")
    w.stop()
