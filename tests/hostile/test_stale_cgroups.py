"""Cgroups a dead teepy left behind: the next run kills what is still in them and
removes them (v2 cgroup.kill; v1 SIGKILL to each process until none is left). It
tells a dead run's cgroup from a live one's by the owner's pid and start time, so a
pid the kernel gave to another process does not keep a dead run's cgroup, and a
concurrent run's cgroup is left alone.

A service can no longer outlive a teepy killed with SIGKILL (test_supervisor.py), so
a populated cgroup of a dead run is made here by hand, where teepy makes its own
(found from a live run's /proc/<pid>/cgroup), with processes moved into it."""
import os
import signal
import subprocess
import time

import pytest

from exit_codes import EXIT
from hostile_prelude import hostile
from supervision import process_gone, service_pid, wait_until_ready

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def namespaces():
    """The hex of teepy's cgroup names: our pid namespace's inode (high 32 bits) and
    our time namespace's."""
    pid_ns = os.stat("/proc/self/ns/pid").st_ino & 0xFFFFFFFF
    time_ns = os.stat("/proc/self/ns/time").st_ino & 0xFFFFFFFF if os.path.exists("/proc/self/ns/time") else 0
    return f"{(pid_ns << 32) | time_ns:x}"


def start_time(pid):
    """Field 22 of /proc/<pid>/stat: clock ticks after boot."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def _mounts():
    """{controller: mount point} of the v1 hierarchies, and "" for the v2 one."""
    found = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, where, kind, opts = line.split()[:4]
            if kind == "cgroup2":
                found.setdefault("", where)
            elif kind == "cgroup":
                for opt in opts.split(","):
                    found.setdefault(opt, where)
    return found


def run_cgroups(pid):
    """The directories of teepy's cgroups that process pid is in."""
    mounts = _mounts()
    dirs = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if not os.path.basename(path).startswith("teepy-"):
                continue
            where = mounts.get(controllers.split(",")[0])
            if where:
                dirs.append(where + path)
    return dirs


def a_dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# what a service that started processes would leave
TWO_CHILDREN = "sleep 60 & sleep 60 & wait"
# one that forks as fast as it can, up to pids.max (bounded by the test's deadline)
FORKING = "end=$(($(date +%s) + 60)); while [ $(date +%s) -lt $end ]; do sleep 60 & done"


class HandMade:
    """Cgroups named `name` in each parent, with a process tree moved into them
    (pids.max 64, as teepy sets by default); for uid 65534 they and the processes
    are that user's, as its teepy's would be."""

    def __init__(self, parents, name, user, command=TWO_CHILDREN):
        self.dirs = [os.path.join(p, name) for p in parents]
        for d in self.dirs:
            os.mkdir(d)
            if os.path.exists(os.path.join(d, "pids.max")):
                with open(os.path.join(d, "pids.max"), "w") as f:
                    f.write("64")
            if user:
                # the kernel gives the files of a new cgroup to whoever made it
                for n in [""] + os.listdir(d):
                    os.chown(os.path.join(d, n), NOBODY, NOBODY)

        def enter():
            for d in self.dirs:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write("0")

        self.proc = subprocess.Popen((AS_NOBODY if user else []) + ["sh", "-c", command],
                                     preexec_fn=enter)

    def populated(self):
        with open(os.path.join(self.dirs[0], "cgroup.procs")) as f:
            return len(f.read().split())

    def gone(self):
        return not any(os.path.exists(d) for d in self.dirs)

    def remove(self):
        """The test's own cleanup, whatever teepy did."""
        self.proc.kill()
        self.proc.wait()
        for d in self.dirs:
            for _ in range(200):
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            os.kill(int(pid), signal.SIGKILL)
                    os.rmdir(d)
                except (FileNotFoundError, ProcessLookupError):
                    break
                except OSError:
                    time.sleep(0.01)


WAIT_FOR_GO = """
import time
print("ready", file=sys.stderr, flush=True)
for _ in range(600):
    if os.path.exists(GO):
        break
    time.sleep(0.1)
report(os.path.exists(GO))
"""


def test_a_dead_runs_cgroup_is_emptied_and_removed_a_live_ones_kept(as_user, start, run,
                                                                    script, tmp):
    """Cgroups of a dead owner named in our namespaces (pid gone; pid now another
    process's; pid gone and a process forking as fast as it can) lose their
    processes and go. One whose owner lives (pid and start time match), one named in
    other namespaces (a teepy in a container sharing the parent: its pids are not
    ours to judge), an older teepy's name without namespaces, and a concurrent run's
    stay, and that run ends normally."""
    if os.geteuid() != 0:
        pytest.skip("the test makes cgroups and moves processes into them as root")
    go = tmp / "go"
    proc = start("run", "--timeout", "60", hostile(script, WAIT_FOR_GO, name="live.py", GO=str(go)))
    wait_until_ready(proc)
    live = run_cgroups(service_pid(proc.pid))
    if not live:
        proc.kill()
        pytest.skip(f"teepy makes no cgroup for {as_user} here (cgroup v1 is root's)")
    parents = sorted({os.path.dirname(d) for d in live})
    user = as_user == "user"
    me, dead = os.getpid(), a_dead_pid()
    made = {}
    try:
        ns, other_ns = namespaces(), f"{int(namespaces(), 16) ^ (1 << 40):x}"
        made["pid gone"] = HandMade(parents, f"teepy-{dead}-{start_time(me)}-{ns}-d1", user)
        made["pid reused"] = HandMade(parents, f"teepy-{me}-{start_time(me) + 1}-{ns}-d2", user)
        made["pid gone, forking"] = HandMade(parents, f"teepy-{dead}-{start_time(me)}-{ns}-d4",
                                             user, FORKING)
        kept = {
            "owner alive": HandMade(parents, f"teepy-{me}-{start_time(me)}-{ns}-a1", user),
            "other namespaces": HandMade(parents, f"teepy-{dead}-{start_time(me)}-{other_ns}-a2",
                                        user),
            "older name, pid gone": HandMade(parents, f"teepy-{dead}-a3", user),
        }
        made.update(kept)
        for why, h in made.items():
            assert h.populated() >= 1, why

        ok = script("import teex\nteex.TEEX_return('ok')\n", name="ok.py")
        r = run("run", ok)
        assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r

        for why, h in made.items():
            if why in kept:
                continue
            assert process_gone(h.proc.pid, within=1.0), f"{why}: its process lives on"
            assert h.gone(), f"{why}: its cgroup is still there: {h.dirs}"
        for why, h in kept.items():
            assert h.proc.poll() is None, f"{why}: the cgroup was emptied"
            assert not h.gone() and h.populated() >= 1, why
        assert all(os.path.isdir(d) for d in live), "a concurrent run lost its cgroup"
    finally:
        for h in made.values():
            h.remove()
        go.write_text("")
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (EXIT.OK, b"true"), (proc.returncode, out, err[-2000:])
