"""A bundle's limits hold for the whole service: all its processes together (policy
processes = "manifest") where a cgroup counts them, and the sealed root's files
out of the memory limit; where they cannot hold, teepy says so."""
import os

import pytest

from exit_codes import EXIT
from sealed_support import build, teepy, write_app
from test_unprivileged import as_nobody  # noqa: F401 - a fixture


# The sample run (input "light") is cheap; "burn" makes 6 children each want 1.5 s
# of CPU (9 s together), "hold" makes 4 children hold 100 MiB each at once.
CHILDREN_SVC = '''import os, time, teex
what = teex.TEEX_getinput()
kids = []
for i in range(6 if what == "burn" else 4):
    pid = os.fork()
    if pid == 0:
        if what == "burn":
            t0 = time.process_time()
            while time.process_time() - t0 < 1.5:
                pass
        elif what == "hold":
            block = b"\\x06" * (100 << 20)
            time.sleep(2)
        os._exit(0)
    kids.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in kids]
teex.TEEX_return(" ".join(map(str, codes)))
'''


@pytest.fixture
def children_bundle(work, keys):
    app = write_app(work, {"svc.py": CHILDREN_SVC})
    return build(work, keys, os.path.join(app, "svc.py"), "--allow-processes",
                 "--input", "light", "--cpu-time", "2")


def root_only():
    if os.geteuid() != 0:
        pytest.skip("cgroups are made for root on this host")


def test_cpu_time_holds_for_all_processes_together(children_bundle, keys):
    root_only()
    r = teepy("run", children_bundle, "--trust", keys[1], "--input", "burn")
    err = r.stderr.decode()
    assert r.returncode == EXIT.CPU, (r.returncode, r.stdout, err)
    assert "CPU time limit exceeded" in err


def test_memory_holds_for_all_processes_together(work, keys):
    """Four children of 100 MiB each against 300 MiB. The bundle's CPU time is ample:
    writing 400 MiB takes 5 s of CPU under emulation (make check-kernel)."""
    root_only()
    app = write_app(work, {"svc.py": CHILDREN_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-processes",
                   "--input", "light", "--cpu-time", "60", name="hold.tpy")
    r = teepy("run", bundle, "--trust", keys[1], "--input", "hold", "--memory", "300M")
    err = r.stderr.decode()
    assert r.returncode == EXIT.MEMORY, (r.returncode, r.stdout, err)
    assert "memory limit exceeded (300 MiB, killed by the cgroup, peak" in err


def test_limits_per_process_without_cgroup_are_announced(as_nobody):  # noqa: F811
    d, run = as_nobody
    app = write_app(d, {"svc.py": CHILDREN_SVC})
    os.chmod(app, 0o777)
    assert run("keygen", "-o", "k.key").returncode == EXIT.OK
    b = run("build", os.path.join(app, "svc.py"), "-o", "c.tpy", "--key", "k.key",
            "--allow-processes", "--input", "light", "--cpu-time", "2")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    r = run("run", "c.tpy", "--trust", "k.pub", "--input", "light", "--print-config")
    err = r.stderr.decode()
    assert r.returncode == EXIT.OK, err
    warnings = [l for l in err.splitlines() if l.startswith("teepy: warning: no cgroup")]
    assert len(warnings) == 1, err
    assert "address space of each process" in warnings[0]
    assert "CPU time holds per process, not in total" in warnings[0]
    assert "not memory, of each process separately" in err
    assert "cpu time      2 s for each process separately" in err


BIG_SVC = '''import teex
need = int(teex.TEEX_getinput() or 0)
block = b"\\x07" * (need << 20)
teex.TEEX_return(str(len(block)))
'''


def big_app(work):
    app = write_app(work, {"svc.py": BIG_SVC})
    with open(os.path.join(app, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) * 40)  # 40 MiB held by the sealed root
    return app


def test_sealed_files_count_against_the_memory_limit(work, keys):
    root_only()
    app = big_app(work)
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--input", "0",
                   "--include", os.path.join(app, "big.bin"), "--memory", "128M")
    ok = teepy("run", bundle, "--trust", keys[1], "--input", "8")
    assert (ok.returncode, ok.stdout) == (EXIT.OK, str(8 << 20).encode()), ok.stderr.decode()
    # 100 MiB would fit in 128 MiB, but not beside the root's 40 MiB and more
    r = teepy("run", bundle, "--trust", keys[1], "--input", "100")
    err = r.stderr.decode()
    assert r.returncode == EXIT.MEMORY, (r.returncode, err)
    assert "with the sealed root's files" in err, err


def test_sealed_files_leaving_too_little_memory_are_refused(work, keys):
    app = big_app(work)
    # the sample run has no sealed root, so the build itself passes
    signed_low = build(work, keys, os.path.join(app, "svc.py"), "--input", "0",
                       "--include", os.path.join(app, "big.bin"), "--memory", "64M",
                       name="low.tpy")
    r = teepy("run", signed_low, "--trust", keys[1])
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert len(lines) == 1 and "less the sealed root's files" in lines[0], lines
    assert "rebuild the bundle with a larger --memory" in lines[0], lines

    signed_high = build(work, keys, os.path.join(app, "svc.py"), "--input", "0",
                        "--include", os.path.join(app, "big.bin"), "--memory", "256M",
                        name="high.tpy")
    r = teepy("run", signed_high, "--trust", keys[1], "--memory", "64M")
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert len(lines) == 1 and "raise --memory, up to the bundle's own limit" in lines[0], lines
