"""Limits: memory, CPU time, wall clock and threads end or constrain the service
with the exit codes and messages of docs/cli.md; numpy works when allowed."""
import json
import subprocess
import time

import pytest

from hostile_prelude import hostile

pytestmark = pytest.mark.slow

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
    assert r.returncode == 5, r
    assert "memory limit exceeded" in r.err
    assert r.stdout == b""
    assert "allocated 512 MiB" not in r.err, "the service went far past a 256 MiB limit"
    assert elapsed < 30


def test_memory_limit_from_environment(run, script):
    s = hostile(script, MEMORY_BOMB)
    r = run("run", s, env={"TEEPY_MEMORY": "256M"})
    assert r.returncode == 5, r
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
    assert r.returncode == 6, r
    assert "CPU time limit exceeded" in r.err
    assert elapsed < 20, f"took {elapsed:.1f}s"
    assert elapsed >= 1.5, f"ended after {elapsed:.1f}s, before 2 s of CPU could be used"


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
    assert r.returncode == 6, r
    assert "CPU time limit exceeded" in r.err


def test_cpu_time_from_environment_and_flag_wins(run, script):
    s = hostile(script, BUSY)
    r = run("run", s, env={"TEEPY_CPU_TIME": "1s"})
    assert r.returncode == 6, r
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
    assert (r2.returncode, r2.stdout) == (0, b'"spun"'), r2


def test_wall_clock_timeout_ends_with_exit_7(as_user, run, script):
    s = hostile(script, "import time\ntime.sleep(30)\nreport('woke up')\n")
    start = time.monotonic()
    r = run("run", "--timeout", "2", s)
    elapsed = time.monotonic() - start
    assert r.returncode == 7, r
    assert "timeout" in r.err
    assert r.stdout == b""
    assert 1.5 <= elapsed < 20, f"took {elapsed:.1f}s"


def test_timeout_keeps_result_returned_before(run, script):
    s = hostile(script, "import time\nreport('early')\ntime.sleep(30)\n")
    r = run("run", "--timeout", "1.5s", s)
    assert r.returncode == 7, r
    assert r.stdout == b'"early"'


def test_timeout_from_environment_flag_wins(run, script):
    s = hostile(script, "import time\ntime.sleep(SLEEP)\nreport('done')\n", SLEEP=2)
    r = run("run", s, env={"TEEPY_TIMEOUT": "500ms"})
    assert r.returncode == 7, r
    r2 = run("run", "--timeout", "30s", s, env={"TEEPY_TIMEOUT": "500ms"})
    assert (r2.returncode, r2.stdout) == (0, b'"done"'), r2


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
