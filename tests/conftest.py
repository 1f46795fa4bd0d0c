"""Fixtures for the end-to-end and hostile tests: they drive the built `teepy`
binary through subprocess, as root and as an unprivileged user (uid 65534), and
check after every test that nothing on the host changed that the test itself did
not create.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests
"""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import engine
from exit_codes import EXIT
from volumes import Place, own

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "build" / "teepy"
NOBODY = 65534

# Every temporary directory the fixtures make starts with this prefix, so the
# host check can tell them apart (also those of a suite running concurrently).
TMP_PREFIX = "teepy-test-"


def _binary_path():
    return Path(os.environ.get("TEEPY_BIN") or DEFAULT_BIN)


def _runtime_files(binary):
    """What teepy needs beside it: the _teepy extension, the teepy-reaper program,
    teepy-cas (the CAS server `teepy cas` executes), teepy-worker (`teepy serve`'s) and
    teepy-shell (`teepy shell`'s)."""
    return (sorted(binary.parent.glob("_teepy*.so")) + sorted(binary.parent.glob("teepy-reaper"))
            + sorted(binary.parent.glob("teepy-cas")) + sorted(binary.parent.glob("teepy-worker"))
            + sorted(binary.parent.glob("teepy-shell")))


def _mkdtemp(tag):
    path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{tag}-", dir="/tmp"))
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------
# the binary


@pytest.fixture(scope="session")
def teepy():
    """Path of the teepy binary under test; skips everything if it is missing."""
    binary = _binary_path()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.skip(f"teepy binary not found at {binary} (build it with `make build` or set TEEPY_BIN)")
    if len(_runtime_files(binary)) < 2:
        pytest.skip(f"the _teepy extension or teepy-reaper is missing beside {binary}")
    return binary


@pytest.fixture(scope="session")
def user_teepy(teepy):
    """A copy of teepy and its runtime files that uid 65534 can reach (mode 0755 under /tmp)."""
    d = _mkdtemp("bin")
    shutil.copy2(teepy, d / "teepy")
    (d / "teepy").chmod(0o755)
    for so in _runtime_files(teepy):
        shutil.copy2(so, d / so.name)
        (d / so.name).chmod(0o755)
    yield d / "teepy"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def run_cwd():
    """An empty directory teepy is started in; the host check asserts it stays empty."""
    d = _mkdtemp("cwd")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# who runs teepy


@pytest.fixture(params=["root", "user"])
def as_user(request):
    """Run teepy as root and as the unprivileged uid 65534."""
    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("the root variant needs the tests to run as root")
    if request.param == "user" and os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to run teepy as uid 65534")
    return request.param


def _variant(request):
    if "as_user" in request.fixturenames:
        return request.getfixturevalue("as_user")
    return "root" if os.geteuid() == 0 else "user"


@pytest.fixture
def variant(request):
    """'root' or 'user': who runs teepy in this test."""
    return _variant(request)


_launched_pids = set()
# (start, end) wall-clock times of every teepy run, for the host check
_run_windows = []


def _base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    # no cache of verified roots (a host's /run/teepy stays as it was)
    env["TEEPY_NO_CACHE"] = "1"
    # make check-pypy: scripts on PyPy (the setting, not the flag: a bundle runs on
    # the engine it was built for, and teepy build reads no TEEPY_* setting)
    if engine.PYPY:
        env["TEEPY_ENGINE"] = engine.NAME
    return env


def _command(request, teepy):
    """How this test's variant starts teepy: the binary, or setpriv and a copy of it."""
    if _variant(request) == "user" and os.geteuid() == 0:
        binary = request.getfixturevalue("user_teepy")
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary)]
    return [str(teepy)]


@pytest.fixture
def teepy_command(request, teepy):
    """(argv prefix, environment) that start teepy as this test's variant does (the
    binary, or setpriv and a copy of it), for a test that starts it itself: in a
    terminal, say."""
    return _command(request, teepy), _env(None)


def _user_cgroup(request):
    """preexec_fn placing a uid 65534 run started by root in TEEPY_TEST_USER_CGROUP,
    as a login places a user's processes in the cgroup subtree delegated to them
    (make check-kernel sets it: tests/kernel/guest.py); None elsewhere."""
    procs = os.path.join(os.environ.get("TEEPY_TEST_USER_CGROUP", ""), "cgroup.procs")
    if procs == "cgroup.procs" or _variant(request) != "user" or os.geteuid() != 0:
        return None

    def enter():
        with open(procs, "w") as f:
            f.write("0")  # this process, before setpriv drops to uid 65534

    return enter


def _env(env):
    full_env = _base_env()
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    return full_env


@pytest.fixture
def run(request, teepy, run_cwd):
    """run(*args, stdin=b"", env=None, timeout=60, pass_fds=()) -> CompletedProcess (bytes).

    args follow the binary (e.g. run("run", script, "--input", "x")). `env` adds
    to (value None: removes from) the test process's environment minus TEEPY_*.
    `pass_fds`: descriptors of the test process teepy inherits (as subprocess's).
    """
    who = _variant(request)
    prefix = _command(request, teepy)

    def _run(*args, stdin=b"", env=None, timeout=60, pass_fds=()):
        full_env = _env(env)
        started = time.time()
        proc = subprocess.Popen(
            prefix + [str(a) for a in args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=run_cwd,
            pass_fds=pass_fds,
            preexec_fn=_user_cgroup(request),
        )
        _launched_pids.add(proc.pid)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            _run_windows.append((started, time.time()))
            raise AssertionError(
                f"teepy did not finish within {timeout}s: {args!r}\nstderr: {err[-2000:]!r}"
            )
        _run_windows.append((started, time.time()))
        return Result(proc.args, proc.returncode, out, err)

    _run.variant = who
    return _run


@pytest.fixture
def start(request, teepy, run_cwd):
    """start(*args, stdout=PIPE, env=None, pass_fds=(), wrapper=()) -> Popen of teepy
    that the test drives (signals, a dead supervisor, stdout on a full device); stdin
    is /dev/null and stderr a pipe. Whatever is still running at the end of the test
    is killed. `pass_fds`: as run's. `wrapper`: a command that execs its arguments
    (the teepy command line), e.g. a shell that moves a descriptor and sets a
    variable naming its own pid, which exec keeps (systemd's LISTEN_PID)."""
    prefix = _command(request, teepy)
    started = []

    def _start(*args, stdout=subprocess.PIPE, env=None, pass_fds=(), wrapper=()):
        proc = subprocess.Popen(list(wrapper) + prefix + [str(a) for a in args],
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                                env=_env(env), cwd=run_cwd, pass_fds=pass_fds,
                                preexec_fn=_user_cgroup(request))
        _launched_pids.add(proc.pid)
        started.append((proc, time.time()))
        return proc

    yield _start
    for proc, when in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
        _run_windows.append((when, time.time()))


@pytest.fixture
def run_tty(request, teepy, run_cwd):
    """run_tty(*args, env=None, timeout=60) -> Result: as run, but teepy's stderr is a
    pseudo-terminal, as an operator's is. Its stderr holds every byte the terminal
    was sent (the line discipline's output processing is off, so nothing is added)."""
    import pty
    import termios
    import threading

    prefix = _command(request, teepy)

    def _run(*args, env=None, timeout=60):
        master, slave = pty.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # no \n -> \r\n: the bytes as teepy wrote them
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        received = []

        def drain():
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal has closed it
                    return
                if not chunk:
                    return
                received.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        started = time.time()
        try:
            proc = subprocess.Popen(prefix + [str(a) for a in args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=slave, env=_env(env),
                                    cwd=run_cwd, preexec_fn=_user_cgroup(request))
        finally:
            os.close(slave)
        _launched_pids.add(proc.pid)
        reader.start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"teepy did not finish within {timeout}s: {args!r}")
        finally:
            _run_windows.append((started, time.time()))
            reader.join(timeout=10)
            os.close(master)
        return Result(proc.args, proc.returncode, out, b"".join(received))

    _run.variant = _variant(request)
    return _run


# What a run prints first when no cgroup could be made (an unprivileged user on a
# cgroup v1 host): the limits that hold less than a cgroup's.
LIMITS_WARNING = "teepy: warning: no cgroup for the limits:"


class Result(subprocess.CompletedProcess):
    """A finished teepy run; stdout and stderr are bytes."""

    @property
    def err(self):
        """stderr as text"""
        return self.stderr.decode("utf-8", errors="replace")

    @property
    def err_lines(self):
        """stderr lines, without the one warning a run without cgroups starts with"""
        return [l for l in self.err.splitlines() if not l.startswith(LIMITS_WARNING)]

    def json(self):
        """The JSON result of a run that must have ended with exit code 0."""
        return result_json(self)

    def __repr__(self):
        return f"<teepy exit {self.returncode}, stdout {self.stdout[:300]!r}, stderr {self.err[-1500:]!r}>"


# --------------------------------------------------------------------------
# files


class Workdir(type(Path())):
    """A Path to a fresh directory (mode 0755 under /tmp) with small helpers."""

    def write(self, name, data, mode=0o644):
        p = self / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        p.write_bytes(data)
        p.chmod(mode)
        return p

    def script(self, source, name="svc.py"):
        return self.write(name, textwrap.dedent(source).lstrip("\n"))


@pytest.fixture
def tmp(request):
    """A fresh directory readable by anyone (0755, under /tmp), removed afterwards."""
    made = []

    def make(tag="t"):
        d = Workdir(_mkdtemp(tag))
        made.append(d)
        return d

    d = make("t")
    d.make_sibling = make
    yield d
    for m in made:
        # the tests make some files unreadable or read-only; undo before removing
        for root, dirs, files in os.walk(m):
            for n in dirs + files:
                try:
                    os.chmod(os.path.join(root, n), 0o755, follow_symlinks=False)
                except (OSError, NotImplementedError):  # a link: Linux has no lchmod
                    pass
        shutil.rmtree(m, ignore_errors=True)


@pytest.fixture
def script(tmp):
    """script(source, name="svc.py") -> Path of a service script in `tmp`."""
    return tmp.script


@pytest.fixture
def place(run, tmp, variant):
    """The place of an output volume (volumes.Place): a directory beside `tmp` the
    variant's user owns, with a volume key; the volume itself is not made yet."""
    root = tmp.make_sibling("vol")
    own(root, variant)
    return Place(root, run, variant)


def result_json(r):
    """The JSON result of a run that must have ended with exit code 0."""
    assert r.returncode == EXIT.OK, f"exit {r.returncode}\nstdout: {r.stdout[-2000:]!r}\nstderr: {r.stderr.decode(errors='replace')[-4000:]}"
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"result is not JSON: {r.stdout[:2000]!r}\nstderr: {r.stderr[-2000:]!r}")


# --------------------------------------------------------------------------
# the host must be unchanged


# Names other programs on the machine make while the suite runs: compilers' and
# mkdtemp's temporary files, other teepy test suites' work directories (tests/sealed,
# benchmarks). Extra shell patterns: TEEPY_TEST_HOST_IGNORE="pat1,pat2". The names a
# hostile script tries (teepy-pwned-*, teepy-scratch-*) are never ignored.
_TRANSIENT = re.compile(
    r"^(cc\w{6}\.\w+|tmp\w+|pytest-of-.*|\.X\d+-lock|bash_tool_.*|bash_jobs\..*|teepy-(sealed|bench|build|fuzz|unit)-.*)$"
)


def _ignored(name):
    if name.startswith(TMP_PREFIX) or _TRANSIENT.match(name):
        return True
    extra = [p for p in os.environ.get("TEEPY_TEST_HOST_IGNORE", "").split(",") if p]
    return any(fnmatch.fnmatchcase(name, p) for p in extra)


def _names(d):
    try:
        return set(os.listdir(d))
    except OSError:
        return set()


def _mount_count():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def _teepy_cgroups():
    found = set()
    for top in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if not os.path.isdir(top):
            continue
        for root, dirs, _files in os.walk(top):
            for n in dirs:
                if n.startswith("teepy"):
                    found.add(os.path.join(root, n))
            # keep the walk to cgroup trees only (the v1 layout has a tmpfs at the top)
            if root == "/sys/fs/cgroup" and top == "/sys/fs/cgroup":
                dirs[:] = [x for x in dirs if x not in ("memory", "pids", "unified")]
    return found


def _cgroup_owner_alive(path):
    """A teepy cgroup of another (still running) teepy is not ours to judge."""
    m = re.match(r"teepy-(\d+)-", os.path.basename(path))
    if not m:
        return False
    pid = int(m.group(1))
    if pid in _launched_pids:
        return False
    return os.path.exists(f"/proc/{pid}")


def _snapshot():
    return {
        "/tmp": _names("/tmp"),
        "/dev/shm": _names("/dev/shm"),
        "/var/tmp": _names("/var/tmp"),
        "cwd": _names(os.getcwd()),
        "mounts": _mount_count(),
        "cgroups": _teepy_cgroups(),
        "/run/teepy": _names("/run/teepy"),
        "runs": len(_run_windows),
    }


def _made_during_a_run(directory, name, windows):
    """Whether the entry's inode changed while one of the test's teepy runs was going.

    The machine is shared (other suites, editors and profilers write to /tmp while
    this suite runs): an entry that appeared outside every teepy run of the test
    cannot be the work of a sandboxed service, whose processes end with the run."""
    try:
        st = os.lstat(os.path.join(directory, name))
    except OSError:
        return False  # gone again: a transient file of another program
    stamp = st.st_ctime
    # the kernel's file times come from a coarse clock (a tick behind); the service
    # is gone shortly after teepy ends
    return any(start - 0.05 <= stamp <= end + 0.25 for start, end in windows)


def _shared_host():
    return os.environ.get("TEEPY_TEST_SHARED_HOST", "") not in ("", "0")


def _suspicious_on_shared_host(directory, name):
    """On a shared machine only what can be told apart from others' files counts:
    entries owned by the unprivileged test user, or named like teepy's own."""
    try:
        st = os.lstat(os.path.join(directory, name))
    except OSError:
        return False
    return st.st_uid == NOBODY or name.startswith("teepy")


def _differences(before):
    now = _snapshot()
    diff = []
    windows = _run_windows[before["runs"]:]
    for key in ("/tmp", "/dev/shm", "/var/tmp", "cwd"):
        directory = os.getcwd() if key == "cwd" else key
        new = {n for n in now[key] - before[key]
               if not _ignored(n) and _made_during_a_run(directory, n, windows)
               and (not _shared_host() or _suspicious_on_shared_host(directory, n))}
        if new:
            diff.append(f"new entries in {key}: {sorted(new)}")
    if now["mounts"] > before["mounts"]:
        diff.append(f"/proc/self/mountinfo grew from {before['mounts']} to {now['mounts']} lines")
    # the suite runs without the cache or with one of its own (TEEPY_CACHE_DIR): an
    # entry of root's cache made while a run of the test went is the test's, on a
    # shared host too (only teepy makes them)
    new = {n for n in now["/run/teepy"] - before["/run/teepy"]
           if _made_during_a_run("/run/teepy", n, windows)}
    if new:
        diff.append(f"new entries in root's cache /run/teepy: {sorted(new)}")
    new_cg = {c for c in now["cgroups"] - before["cgroups"] if not _cgroup_owner_alive(c)}
    if new_cg:
        diff.append(f"teepy cgroups left behind: {sorted(new_cg)}")
    return diff


_CHECKED_DIRS = (REPO / "tests" / "e2e", REPO / "tests" / "hostile")


@pytest.fixture(autouse=True)
def host_unchanged(request, run_cwd):
    """Snapshot what a sandbox escape could change; after the test nothing new may exist.

    Applies to the tests in tests/e2e and tests/hostile. Checked: names in /tmp,
    /dev/shm, /var/tmp and the working directory (entries made while a teepy run of
    the test was going, minus the fixtures' own teepy-test-* directories), the
    number of mounts, and teepy* cgroups under the v1 memory/pids and v2 trees."""
    path = Path(str(request.node.fspath)).resolve()
    if not any(d in path.parents for d in _CHECKED_DIRS):
        yield
        return
    before = _snapshot()
    yield
    diff = _differences(before)
    if diff:
        time.sleep(0.5)  # let transient files of concurrent programs and cgroup removal settle
        diff = _differences(before)
    leftovers = os.listdir(run_cwd)
    if leftovers:
        diff.append(f"teepy's working directory {run_cwd} is not empty: {leftovers}")
    assert not diff, (
        "the host changed: " + "; ".join(diff) + ". (On a machine where other programs write "
        "to /tmp while the suite runs, TEEPY_TEST_SHARED_HOST=1 limits the check to entries "
        "owned by uid 65534 or named teepy*; TEEPY_TEST_HOST_IGNORE=pattern,... ignores names.)"
    )


@pytest.fixture
def sentinel():
    """sentinel(tag="pwned", directory="/tmp") -> a unique host path
    (/tmp/teepy-pwned-<uuid>) a hostile script tries to create; asserted absent after
    the test (and removed if a broken sandbox let the script create it)."""
    made = []

    def make(tag="pwned", directory="/tmp"):
        p = f"{directory.rstrip('/')}/teepy-{tag}-{uuid.uuid4().hex}"
        made.append(p)
        return p

    yield make
    present = [p for p in made if os.path.lexists(p)]
    for p in present:
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)
    assert not present, f"sandbox escape: the service created {present} on the host"


@pytest.fixture
def host_check():
    """The host check's parts, for the suite's own self-test."""
    import types

    def note_run(start, end):
        _run_windows.append((start, end))

    return types.SimpleNamespace(snapshot=_snapshot, differences=_differences, note_run=note_run)
