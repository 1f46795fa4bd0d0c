"""make's targets over a build that lacks what they test: `make check-pypy` on a
teepy built without PyPy says in one line why it skips, rather than running the
hostile suite on an engine the binary refuses (every run exit 2)."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_check_pypy_on_a_teepy_without_pypy_skips_in_one_line(tmp):
    """A build directory with nothing left to build (an empty build.ninja), whose teepy
    says what a teepy built with -Dpypy=disabled says. PY=/bin/false stands in for the
    interpreter of the suite: had make started the suite, it would have failed."""
    build = tmp / "build"
    build.mkdir()
    (build / "build.ninja").write_text("")
    teepy = build / "teepy"
    teepy.write_text("#!/bin/sh\n"
                     "echo 'teepy 0.1.0 (runs /usr/bin/python3.11, Python 3.11.2; Landlock ABI 7)'\n")
    teepy.chmod(0o755)
    r = subprocess.run(["make", "--no-print-directory", "check-pypy", f"BUILD={build}",
                        "DEB_PACKAGES=", "PY=/bin/false"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, ""), r
    said = [line for line in r.stdout.splitlines() if not line.startswith("ninja")]
    assert said == [f"check-pypy: skipped: {build}/teepy was built without PyPy (install pypy3 "
                    f"and pypy3-dev, then meson setup --reconfigure {build} -Dpypy=enabled)"], r


def test_check_pypy_fails_when_teepy_cannot_say_its_version(tmp):
    """A teepy that fails to start (a library missing, a crash) is no teepy without
    PyPy: check-pypy fails, it does not skip."""
    build = tmp / "build"
    build.mkdir()
    (build / "build.ninja").write_text("")
    teepy = build / "teepy"
    teepy.write_text("#!/bin/sh\necho 'teepy: error while loading shared libraries' >&2\nexit 127\n")
    teepy.chmod(0o755)
    r = subprocess.run(["make", "--no-print-directory", "check-pypy", f"BUILD={build}",
                        "DEB_PACKAGES=", "PY=/bin/false"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0, r
    assert f"check-pypy: {build}/teepy --version failed" in r.stdout, r
    assert "skipped" not in r.stdout, r
