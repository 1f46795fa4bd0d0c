"""Watching a teepy run from outside: its service's host pid, when it is ready,
whether it is gone."""
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
