"""--engine: the service runs on Debian's PyPy in the same sandbox as on CPython, with
the same teex module; an unknown engine is one line. (The hostile suite runs whole
on PyPy too: make check-pypy.)"""
import re
import shutil
import subprocess
import time

import pytest

from exit_codes import EXIT
from limits_host import memory_cgroup


@pytest.fixture(autouse=True)
def needs_pypy(teepy):
    out = subprocess.run([str(teepy), "--version"], capture_output=True, text=True).stdout
    if "--engine pypy3" not in out:
        pytest.skip("this teepy was built without PyPy (pypy3, pypy3-dev)")


SERVICE = """
import json, sys, time, teex
t = time.perf_counter()
s = 0
for i in range(3000000):
    s += i % 7
teex.TEEX_return(json.dumps({
    "impl": sys.implementation.name, "version": sys.version_info[:2],
    "input": teex.TEEX_getinput(), "data": teex.TEEX_getdata(0).decode(),
    "path": sys.path, "flags": [sys.flags.isolated, sys.flags.no_site],
    "sum": s, "seconds": time.perf_counter() - t,
    "builtins": [callable(exit), str(credits)[:4]]}))
"""


def test_pypy_runs_the_service_with_teex_in_the_sandbox(as_user, run, script, tmp):
    item = tmp.make_sibling("data").write("item", "datum")
    s = script(SERVICE)
    r = run("run", "--engine", "pypy3", s, "--input", "hi", "--data", item)
    assert r.returncode == EXIT.OK, r
    out = r.json()
    assert out["impl"] == "pypy" and out["version"] == [3, 9], out
    assert (out["input"], out["data"], out["sum"]) == ("hi", "datum", 8999994), out
    assert out["path"] == [str(s.parent), "/usr/lib/pypy3.9"], out
    assert out["flags"] == [1, 1] and out["builtins"] == [True, "PyPy"], out
    assert out["seconds"] < 1.0, out  # the JIT compiled the loop (CPython: ~0.3 s)
    assert "L2 cache" not in r.err, r.err  # the collector was told what it reads natively


def test_the_setting_chooses_the_engine_and_the_flag_wins(run, script):
    s = script("import sys, teex\nteex.TEEX_return(sys.implementation.name)\n")
    assert run("run", s, env={"TEEPY_ENGINE": "pypy3"}).stdout == b"pypy"
    assert run("run", "--engine", "cpython", s, env={"TEEPY_ENGINE": "pypy3"}).stdout == b"cpython"


@pytest.mark.parametrize("given", [("--engine", "jython"), ("--engine", "")])
def test_an_unknown_engine_is_one_line_and_exit_2(run, script, given):
    r = run("run", *given, script("import teex\n"))
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == [f"teepy: --engine: unknown engine '{given[1]}' (use cpython or pypy3)"], r.err


def test_the_setting_unknown_is_one_line_too(run, script):
    r = run("run", script("import teex\n"), env={"TEEPY_ENGINE": "pypy"})
    assert (r.returncode, r.err_lines) == (
        EXIT.USAGE, ["teepy: TEEPY_ENGINE: unknown engine 'pypy' (use cpython or pypy3)"]), r


def test_print_config_and_version_name_the_engine(run, script, teepy):
    r = run("run", "--engine", "pypy3", "--print-config", script("import teex\nteex.TEEX_return('ok')\n"))
    assert r.returncode == EXIT.OK, r
    assert "interpreter   /usr/bin/pypy3.9 (PyPy 7.3.11, Python 3.9.16), executed" in r.err, r.err
    assert "runtime       " in r.err and "_teepy.pypy39-pp73-x86_64-linux-gnu.so" in r.err, r.err
    version = subprocess.run([str(teepy), "--version"], capture_output=True, text=True).stdout
    assert "--engine pypy3 runs /usr/bin/pypy3.9, PyPy 7.3.11, Python 3.9.16" in version


def test_a_syntax_error_and_a_traceback_are_said_as_on_cpython(run, script):
    r = run("run", "--engine", "pypy3", script("x = (\n"))
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert r.err_lines[0].startswith("teepy: ") and "SyntaxError" in r.err_lines[0], r.err
    s = script("def f():\n    raise KeyError('k')\nf()\n")
    r = run("run", "--engine", "pypy3", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert f'File "{s}", line 3, in <module>' in r.err and "KeyError: 'k'" in r.err, r.err


def runtime_measurement(teepy, ext_suffix):
    """docs/bundle-format.md's runtime measurement, computed here: a tag, the teepy
    executable, the _teepy of the engine, teepy-reaper and the boot text."""
    import hashlib
    h = hashlib.sha256(b"teepy-runtime-v2\0")
    for path in (teepy, teepy.parent / f"_teepy{ext_suffix}", teepy.parent / "teepy-reaper"):
        h.update(path.read_bytes())
    h.update(b"import sys;sys.path[:0]=['/.teepy'];import _teepy;raise SystemExit(_teepy.boot())\0")
    return h.hexdigest()


def test_a_pypy_bundle_records_its_engine_runs_on_it_and_has_its_own_runtime(as_user, run, script, tmp,
                                                                             teepy):
    svc = script(SERVICE)
    out_dir = tmp.make_sibling("bundle")
    out_dir.chmod(0o777)
    assert run("keygen", "-o", out_dir / "k.key").returncode == EXIT.OK
    item = tmp.make_sibling("data").write("item", "datum")
    built = {}
    for engine in ("pypy3", "cpython"):
        b = run("build", "--engine", engine, svc, "-o", out_dir / f"{engine}.tpy", "--key",
                out_dir / "k.key", "--input", "s", "--data", item)
        assert b.returncode == EXIT.OK, b
        r = run("inspect", out_dir / f"{engine}.tpy", "--json")
        assert r.returncode == EXIT.OK, r
        built[engine] = r.json()
    info = built["pypy3"]
    assert info["engine"] == {"name": "pypy", "version": "3.9"}, info
    files = [f["path"] for f in info["files"]]
    assert "/usr/bin/pypy3.9" in files and "/usr/lib/pypy3.9/site.py" in files, sorted(files)
    assert "/usr/lib/x86_64-linux-gnu/libpypy3.9-c.so" in files or \
        "/lib/x86_64-linux-gnu/libpypy3.9-c.so" in files, sorted(files)
    assert not any("python3.11" in f for f in files), sorted(files)
    # the runtime that runs it is another: this teepy with the _teepy built for PyPy
    assert built["cpython"]["engine"]["name"] == "cpython"
    assert info["runtime"] == runtime_measurement(teepy, ".pypy39-pp73-x86_64-linux-gnu.so"), info
    assert built["cpython"]["runtime"] == runtime_measurement(teepy, ".cpython-311-x86_64-linux-gnu.so")

    r = run("run", out_dir / "pypy3.tpy", "--trust", out_dir / "k.pub", "--input", "sealed",
            "--data", item)
    assert r.returncode == EXIT.OK, r
    out = r.json()
    assert (out["impl"], out["input"], out["data"]) == ("pypy", "sealed", "datum"), out
    assert out["path"] == ["/app", "/usr/lib/pypy3.9"], out
    # a bundle is built for one engine: the flag naming another is refused, the setting not
    r = run("run", "--engine", "cpython", out_dir / "pypy3.tpy", "--trust", out_dir / "k.pub")
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == [f"teepy: {out_dir / 'pypy3.tpy'} runs on pypy3, its signed manifest's "
                           "engine: --engine cpython does not apply (a bundle is built for one "
                           "engine)"], r.err
    r = run("run", out_dir / "cpython.tpy", "--trust", out_dir / "k.pub", "--input", "x", "--data", item,
            env={"TEEPY_ENGINE": "pypy3"})
    assert r.returncode == EXIT.OK and r.json()["impl"] == "cpython", r


def test_under_rlimit_as_pypy_needs_96m_or_says_so(as_user, run, script):
    """Without a memory cgroup (uid 65534 on the hybrid build machines) the limit is
    address space, and PyPy maps about 70 MiB before it runs: less than 96 MiB is one
    line, not an abort."""
    if memory_cgroup(as_user):
        pytest.skip(f"a memory cgroup holds the limit of {as_user}'s runs here, not RLIMIT_AS")
    s = script("import teex\nteex.TEEX_return('ok')\n")
    r = run("run", "--engine", "pypy3", "--memory", "64M", s)
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines[-1] == ("teepy: PyPy maps 96 MiB of address space to start, and without a "
                               "memory cgroup the memory limit is held as address space: RLIMIT_AS "
                               "64 MiB here (raise --memory)"), r.err
    r = run("run", "--engine", "pypy3", "--memory", "96M", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r


def test_in_a_memory_cgroup_pypy_starts_in_64m(as_user, run, script):
    """Where a memory cgroup holds the limit (root's runs here) it counts memory, not
    address space: the 96 MiB PyPy maps to start are no reason to refuse 64M."""
    if not memory_cgroup(as_user):
        pytest.skip(f"no memory cgroup for {as_user}'s runs here: RLIMIT_AS holds the limit")
    r = run("run", "--engine", "pypy3", "--memory", "64M", "--print-config",
            script("import teex\nteex.TEEX_return('ok')\n"))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    assert re.search(r"^  memory +64 MiB via cgroup ", r.err, re.M), r.err


def test_a_venv_is_cpythons_only(run, script, tmp):
    r = run("run", "--engine", "pypy3", "--venv", tmp.make_sibling("venv"), script("import teex\n"))
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == ["teepy: --venv: teepy reads CPython's virtual environments only (made with "
                           "/usr/bin/python3 -m venv): run this one with --engine cpython"], r.err


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is needed (apt-get install tmux)")
def test_a_shell_on_pypy_takes_lines_and_ctrl_c(as_user, teepy_command, run_cwd, tmp):
    """teepy shell --engine pypy3: PyPy's prompt in the sandbox, its console driven
    by the same _teepy; Ctrl-C stops a loop the JIT compiled, not the sandbox."""
    from test_shell import Shell
    command, env = teepy_command
    s = Shell(command, env, run_cwd, tmp.make_sibling("tmux") / "socket", ("--engine", "pypy3"))
    try:
        s.wait(r"^>>> ?$")
        assert "[PyPy 7.3" in s.screen()
        assert s.ask("import sys, teex; sys.implementation.name") == "'pypy'"
        before = s.prompts()
        s.type("while True: pass")
        s.type("")
        time.sleep(1)
        s.keys("C-c")
        s.wait_prompts(before + 1)
        assert "KeyboardInterrupt" in s.screen()
        assert s.ask("6 * 7") == "42"
        s.keys("C-d")
        assert s.exit_code() == EXIT.OK
    finally:
        s.close()
