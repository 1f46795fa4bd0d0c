"""pid 1 of the check-kernel VM (tools/check-kernel boots it; tests/kernel/initramfs-init
mounts the host's root read-only over 9p and execs this as /usr/bin/python3 -B).

* The cgroup v2 tree a Debian 12 system with systemd has, reduced to what teepy
  meets: memory and pids enabled from the root down, pid 1 in /init.scope, root's
  login in /user.slice/user-0.slice/session-1.scope, and uid 65534's user manager
  subtree /user.slice/user-65534.slice/user@65534.service delegated to it (the
  directory and its cgroup.procs, cgroup.threads and cgroup.subtree_control owned
  by 65534, memory and pids enabled), whose app.slice/check-kernel.scope holds
  the suite's uid 65534 runs (conftest.py: TEEPY_TEST_USER_CGROUP).
* pytest runs as root in root's session, with tests/kernel/kernel_progress.py
  recording each test's start and outcome. A test that kills the harness (on
  Landlock ABI < 6 a service can signal teepy's process group) or outlives
  --test-timeout is recorded as failed with the reason, and pytest starts again
  without the tests already done; the last line counts the whole suite.
* pid 1 reaps every orphan, prints `teepy-check-kernel: exit N` and powers off.
"""
import ctypes
import datetime
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter

CG = "/sys/fs/cgroup"
NOBODY = 65534
ROOT_SESSION = f"{CG}/user.slice/user-0.slice/session-1.scope"
USER_SERVICE = f"{CG}/user.slice/user-{NOBODY}.slice/user@{NOBODY}.service"
USER_LEAF = f"{USER_SERVICE}/app.slice/check-kernel.scope"
PROGRESS = "/run/check-kernel/progress"
SUMMARY = re.compile(r"^=+ (.*\b\d+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b.*) =+$")


def out(msg):
    print(f"teepy-check-kernel: {msg}", flush=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read().strip()


# --------------------------------------------------------------------------
# the machine


def landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return abi if abi >= 0 else f"none (errno {ctypes.get_errno()})"


def make_cgroups():
    """systemd's layout, as far as teepy sees it (see the module's docstring)."""
    enable = "+memory +pids"
    write(f"{CG}/cgroup.subtree_control", enable)
    os.makedirs(f"{CG}/init.scope")
    write(f"{CG}/init.scope/cgroup.procs", "0")
    for d in (f"{CG}/user.slice", f"{CG}/user.slice/user-0.slice",
              f"{CG}/user.slice/user-{NOBODY}.slice"):
        os.makedirs(d, exist_ok=True)
        write(f"{d}/cgroup.subtree_control", enable)
    os.makedirs(ROOT_SESSION)
    # delegation as systemd does it (Delegate=yes on user@.service): the directory
    # and the three files a delegatee writes belong to the user
    os.makedirs(USER_SERVICE)
    for name in ("", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
        os.chown(os.path.join(USER_SERVICE, name), NOBODY, NOBODY)
    # what the user's manager then does in its own subtree, as that user
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            write(f"{USER_SERVICE}/cgroup.subtree_control", enable)
            os.mkdir(f"{USER_SERVICE}/app.slice")
            write(f"{USER_SERVICE}/app.slice/cgroup.subtree_control", enable)
            os.mkdir(USER_LEAF)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - report and fail, whatever it is
            print(f"teepy-check-kernel: uid {NOBODY} cannot use its delegated cgroup: {e!r}",
                  flush=True)
            os._exit(1)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        raise SystemExit(2)


def describe():
    uname = os.uname()
    return (f"booted: kernel {uname.release}, Landlock ABI {landlock_abi()}, cgroup v2 "
            f"controllers '{read(f'{CG}/cgroup.controllers')}', enabled "
            f"'{read(f'{CG}/cgroup.subtree_control')}', {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 20} MiB, "
            f"{time.monotonic():.1f} s after the kernel started")


def read_job(path):
    job = {"env": {}, "args": []}
    for line in open(path).read().splitlines():
        key, _, value = line.partition("=")
        if key == "env":
            k, _, v = value.partition("=")
            job["env"][k] = v
        elif key == "arg":
            job["args"].append(value)
        else:
            job[key] = value
    return job


# --------------------------------------------------------------------------
# the suite


PYTEST = ("import sys; sys.path.insert(0, sys.argv[1]); import pytest, kernel_progress; "
          "raise SystemExit(pytest.main(sys.argv[2:], plugins=[kernel_progress]))")


def progress():
    """[(kind, nodeid, fields...)] from the progress file."""
    try:
        with open(PROGRESS) as f:
            return [line.rstrip("\n").split("\t") for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []


def in_flight():
    """The test that started and has not finished, if any."""
    running = None
    for rec in progress():
        if rec[0] == "start":
            running = rec[1]
        elif rec[0] in ("end", "killed") and rec[1] == running:
            running = None
    return running


def record(*fields):
    with open(PROGRESS, "a") as f:
        f.write("\t".join(fields) + "\n")


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pytest_run(job, n, deadline):
    """One pytest process; returns (exit status or -signal, why it was stopped or None)."""
    repo = job["repo"]
    cmd = ["/usr/bin/python3", "-c", PYTEST, os.path.join(repo, "tests", "kernel"),
           "-c", "tests/pytest.ini", *job["args"]]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "USER": "root",
        "LOGNAME": "root",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TEEPY_BIN": job["teepy"],
        "TEEPY_TEST_USER_CGROUP": USER_LEAF,
        "TEEPY_KERNEL_PROGRESS": PROGRESS,
        "TEEPY_KERNEL_RUN": str(n),
        # the repository is read-only here; hypothesis's plugin would warn every run
        "HYPOTHESIS_STORAGE_DIRECTORY": "/run/check-kernel/hypothesis",
        **job["env"],
    }
    # its own session: a service that signals teepy's process group reaches pytest
    # (the harness) but not this driver
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    test_timeout = int(job.get("test_timeout", 300))
    stopped = None
    buf = b""
    current, since = None, time.monotonic()
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                m = SUMMARY.match(line)
                # each pytest process's own count line is relabelled: the last line
                # of the VM's output counts the whole suite, over every process
                print(f"teepy-check-kernel: pytest process {n}: {m.group(1)}" if m else line,
                      flush=True)
        now = time.monotonic()
        running = in_flight()
        if running != current:
            current, since = running, now
        if current and now - since > test_timeout:
            stopped = f"still running after {test_timeout} s (--test-timeout): stopped"
            kill_group(proc)
        elif now > deadline:
            stopped = "out of time: the suite's deadline passed while it ran"
            kill_group(proc)
    if buf:
        print(buf.decode("utf-8", "replace"), flush=True)
    return proc.wait(), stopped


def summary_line(counts, seconds):
    order = ("failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "error", "not run")
    parts = []
    for key in order + tuple(sorted(set(counts) - set(order))):
        if counts.get(key):
            name = "errors" if key == "error" and counts[key] != 1 else key
            parts.append(f"{counts[key]} {name}")
    took = f"{seconds:.2f}s"
    if seconds >= 60:
        took += f" ({datetime.timedelta(seconds=int(seconds))})"  # as pytest writes it
    return f"{', '.join(parts) or 'no tests ran'} in {took}"


def run_suite(job):
    os.makedirs(os.path.dirname(PROGRESS), exist_ok=True)
    started = time.monotonic()
    deadline = started + int(job.get("timeout", 840))
    n = 0
    rc = 0
    killed = []
    while True:
        n += 1
        rc, stopped = pytest_run(job, n, deadline)
        victim = in_flight()
        if rc >= 0 and not stopped:
            break
        why = stopped or f"the harness (pytest) was killed by {signal.Signals(-rc).name}"
        if victim is None:
            out(f"pytest process {n} ended ({why}) outside any test; not restarted")
            rc = 2
            break
        record("killed", victim, why)
        # as pytest names it in its own lines (relative to the repository, not tests/)
        shown = f"tests/{victim}" if os.path.exists(
            os.path.join(job["repo"], "tests", victim.split("::")[0])) else victim
        killed.append((shown, why))
        out(f"FAILED {shown}: {why}")
        if time.monotonic() > deadline:
            rc = 1
            break
        out("restarting pytest without the tests already done")
    seconds = time.monotonic() - started

    counts = Counter()
    deselected = collected = 0
    finished = set()
    for rec in progress():
        if rec[0] == "report":
            counts[rec[2]] += 1
        elif rec[0] == "killed":
            counts["failed"] += 1
            finished.add(rec[1])
        elif rec[0] == "end":
            finished.add(rec[1])
        elif rec[0] == "deselected":
            deselected += int(rec[1])
        elif rec[0] == "collected":
            collected += int(rec[1])
    if deselected:
        counts["deselected"] = deselected
    if collected > len(finished):
        counts["not run"] = collected - len(finished)
        out(f"{collected - len(finished)} selected test(s) did not run (out of time)")
    if killed:
        out(f"{len(killed)} test(s) stopped the harness:")
        for victim, why in killed:
            out(f"  {victim}: {why}")
    if n > 1:
        out(f"the suite ran in {n} pytest processes; the line below counts all of them")
    print(f"{'=' * 20} {summary_line(counts, seconds)} {'=' * 20}", flush=True)
    if rc in (0, 1) or rc < 0:
        rc = 1 if (counts["failed"] or counts["error"] or counts["not run"] or killed or rc) else 0
    return rc


# --------------------------------------------------------------------------
# pid 1


def loopback_up():
    """lo up, as any booted system has it (the kernel gives it 127.0.0.1 and ::1 then):
    the handed socket's tests connect to their server over it."""
    import fcntl
    import socket
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sh14x", b"lo", flags | 0x1))  # SIOCSIFFLAGS, IFF_UP


def main():
    status = 2
    try:
        job = read_job(os.environ["teepy_job"])
        os.environ.clear()
        loopback_up()
        make_cgroups()
        out(describe())
        driver = os.fork()
        if driver == 0:
            code = 2
            try:
                write(f"{ROOT_SESSION}/cgroup.procs", "0")
                os.setsid()
                code = run_suite(job)
            except BaseException as e:  # noqa: BLE001 - whatever it is, pid 1 reports it
                out(f"the driver failed: {e!r}")
            finally:
                sys.stdout.flush()
                os._exit(code)
        # init's part: reap every process that ends up here until the driver ends
        while True:
            pid, st = os.wait()
            if pid == driver:
                status = os.waitstatus_to_exitcode(st)
                break
    except BaseException as e:  # noqa: BLE001
        out(f"pid 1 failed: {e!r}")
    try:
        os.kill(-1, signal.SIGKILL)
        while True:
            os.wait()
    except (ChildProcessError, OSError):
        pass
    out(f"exit {status}")
    sys.stdout.flush()
    os.sync()
    libc = ctypes.CDLL(None)
    libc.reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF
    time.sleep(60)


if __name__ == "__main__":
    main()
