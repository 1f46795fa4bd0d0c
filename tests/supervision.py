"""Watching a teepy run from outside: its service's host pid, when it is ready,
whether it is gone."""
import contextlib
import os
import time


def wait_until_ready(proc):
    """Reads teepy's stderr until the service says it runs; returns what came."""
    seen = b""
    for line in iter(proc.stderr.readline, b""):
        seen += line
        if line.strip() == b"ready":
            return seen
    raise AssertionError(f"the service never got ready: exit {proc.wait()}, stderr {seen!r}")


def reaper_pid(teepy_pid):
    """The host pid of the process teepy started (its only child): the reaper, pid 1
    of the service's namespace."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == teepy_pid:
            return int(entry)
    raise AssertionError(f"teepy {teepy_pid} has no child")


def service_pid(teepy_pid):
    """The host pid of the service: the reaper's first child."""
    reaper = reaper_pid(teepy_pid)
    with open(f"/proc/{reaper}/task/{reaper}/children") as f:
        children = f.read().split()
    assert children, f"teepy {teepy_pid}'s reaper {reaper} has no child"
    return int(children[0])


def process_gone(pid, within=10.0):
    """Whether pid ends (or is a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# A service that says it runs, then waits to be looked at (SIGTERM to teepy ends it).
WAITING = 'import sys, time\nprint("ready", file=sys.stderr, flush=True)\ntime.sleep(60)\n'


def service_root(proc):
    """The root of teepy PROC's service as seen from outside, through /proc/PID/root,
    once the service printed "ready": the mount namespace's view alone. Landlock
    refuses the service itself a listing of the directories above the trees it may
    read ("/", "/etc", "/dev"), so what the root holds is listed from here."""
    wait_until_ready(proc)
    return f"/proc/{service_pid(proc.pid)}/root"


@contextlib.contextmanager
def waiting_root(proc):
    """service_root(proc) for the block, then teepy is stopped as a person would
    (SIGTERM: it ends the service and removes its cgroups)."""
    try:
        yield service_root(proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def listing(root, path):
    """The sorted names in ROOT + PATH, or None if it is not a directory there."""
    return sorted(os.listdir(root + path)) if os.path.isdir(root + path) else None
