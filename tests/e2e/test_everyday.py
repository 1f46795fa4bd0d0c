"""Everyday Python, sealed and not: the time-zone database, virtual environments
with pip-installed packages, and builds from several sample inputs, as root and as
an unprivileged user. Each failure a new user met before this worked is here too:
ZoneInfoNotFoundError in a plain run, a venv only half usable, a bundle built from
one input failing bare on another's module."""
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from exit_codes import EXIT

PY = "/usr/bin/python3"
SITE = "lib/python3.11/site-packages"

def _keyed(run, tmp):
    """A directory any variant's user may write into, holding a signing key k.key."""
    out = tmp.make_sibling("out")
    out.chmod(0o777)
    assert run("keygen", "-o", out / "k.key").returncode == EXIT.OK
    return out


# ---- time zones ------------------------------------------------------------

ZONES = """
import datetime, json, os, time, zoneinfo, teex
key = teex.TEEX_getinput() or "Europe/Berlin"
z = zoneinfo.ZoneInfo(key)
teex.TEEX_return(json.dumps({
    "winter": str(datetime.datetime(2026, 1, 15, 12, tzinfo=z).utcoffset()),
    "summer": str(datetime.datetime(2026, 7, 15, 12, tzinfo=z).utcoffset()),
    "tzname": list(time.tzname),
    "TZ": os.environ.get("TZ"),
    "localtime": os.path.lexists("/etc/localtime"),
    "local_offset": time.localtime().tm_gmtoff,
}))
"""


def test_zoneinfo_works_in_a_plain_run_and_the_zone_stays_utc(as_user, run, script):
    out = run("run", script(ZONES), "--input", "Europe/Berlin").json()
    assert out["winter"] == "1:00:00" and out["summer"] == "2:00:00", out
    assert out["tzname"] == ["UTC", "UTC"] and out["local_offset"] == 0, out
    assert out["TZ"] is None and out["localtime"] is False, out


def test_the_zone_database_is_one_read_only_directory(as_user, run, script):
    svc = script("""
        import ctypes, errno, json, os, teex
        libc = ctypes.CDLL(None, use_errno=True)
        said = {}
        try:
            open("/usr/share/zoneinfo/teepy-new", "w")
        except OSError as e:
            said["open"] = e.errno
        # the raw syscall, past Python: mkdirat(AT_FDCWD, path, 0755)
        r = libc.syscall(258, -100, b"/usr/share/zoneinfo/teepy-dir", 0o755)
        said["mkdirat"] = ctypes.get_errno() if r < 0 else 0
        said["others"] = [p for p in ("/usr/share/doc", "/usr/share/common-licenses",
                                      "/etc/timezone", "/usr/share/zoneinfo/localtime")
                          if os.path.exists(p)]
        said["berlin"] = os.path.getsize("/usr/share/zoneinfo/Europe/Berlin")
        teex.TEEX_return(json.dumps(said))
    """)
    out = run("run", svc).json()
    assert out["open"] in (13, 30) and out["mkdirat"] in (13, 30), out  # EACCES/EROFS
    assert out["others"] == [], out  # zoneinfo's "localtime" leads to /etc/localtime
    assert out["berlin"] == os.path.getsize("/usr/share/zoneinfo/Europe/Berlin")
    assert not os.path.exists("/usr/share/zoneinfo/teepy-new")
    assert not os.path.exists("/usr/share/zoneinfo/teepy-dir")


def test_build_records_the_zones_the_sample_used_and_names_a_missing_one(as_user, run, tmp):
    svc = tmp.script(ZONES)
    out = _keyed(run, tmp)
    b = run("build", svc, "-o", out / "z.tpy", "--key", out / "k.key", "--input", "Europe/Berlin")
    assert b.returncode == EXIT.OK, b
    listing = run("inspect", out / "z.tpy").stdout.decode()
    assert "/usr/share/zoneinfo/Europe/Berlin" in listing
    assert "/usr/share/zoneinfo/Asia/Tokyo" not in listing
    ok = run("run", out / "z.tpy", "--trust", out / "k.pub", "--input", "Europe/Berlin").json()
    assert ok["summer"] == "2:00:00" and ok["tzname"] == ["UTC", "UTC"], ok
    r = run("run", out / "z.tpy", "--trust", out / "k.pub", "--input", "Asia/Tokyo")
    assert r.returncode == EXIT.SERVICE_FAILED, r
    hint = [l for l in r.err_lines if l.startswith("teepy: the time zone")]
    assert hint == ["teepy: the time zone Asia/Tokyo is not in this sealed bundle: if the "
                    "service needs it, no sample run used it (rebuild with --include "
                    "/usr/share/zoneinfo/Asia/Tokyo, or --include-dir /usr/share/zoneinfo "
                    "for every zone)"], r
    # after the traceback, before teepy's own last line
    assert r.err_lines.index(hint[0]) == len(r.err_lines) - 2, r


# ---- virtual environments ----------------------------------------------------

PURE_PKG = {
    "setup.py": """
        from setuptools import setup
        setup(name="purepkg", version="1.0", packages=["purepkg"])
    """,
    "purepkg/__init__.py": """
        def greet(who):
            return "hello " + who
    """,
}
C_PKG = {
    "setup.py": """
        from setuptools import setup, Extension
        setup(name="cpkg", version="1.0", packages=["cpkg"],
              ext_modules=[Extension("cpkg.fast", ["cpkg/fast.c"])])
    """,
    "cpkg/__init__.py": "",
    "cpkg/fast.c": """
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>
        static PyObject *add(PyObject *self, PyObject *args)
        {
            long a, b;
            if (!PyArg_ParseTuple(args, "ll", &a, &b))
                return NULL;
            return PyLong_FromLong(a + b);
        }
        static PyMethodDef methods[] = { { "add", add, METH_VARARGS, "a + b" }, { 0 } };
        static struct PyModuleDef def = { PyModuleDef_HEAD_INIT, "cpkg.fast", 0, -1, methods };
        PyMODINIT_FUNC PyInit_fast(void) { return PyModule_Create(&def); }
    """,
}


def _write_tree(root, files):
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))


def _quiet_env(work):
    """pip and the build leave nothing outside work: no cache, temporary files inside."""
    tmpdir = work / "tmp"
    tmpdir.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(tmpdir),
            "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def venvs():
    """Two wheels built here (a pure-Python package and one with a C extension), and
    two venvs of /usr/bin/python3 they are pip-installed into without an index: one
    plain, one with the system's site-packages. The plain one also has a .pth file
    with a path entry and one with an import line, as packages install them."""
    work = Path(tempfile.mkdtemp(prefix="teepy-test-venvs-", dir="/tmp"))
    work.chmod(0o755)
    env = _quiet_env(work)
    try:
        for name, files in (("purepkg", PURE_PKG), ("cpkg", C_PKG)):
            _write_tree(work / "src" / name, files)
            subprocess.run([PY, "-m", "pip", "wheel", "-q", "--no-index", "--no-build-isolation",
                            "--no-deps", str(work / "src" / name), "-w", str(work / "wheels")],
                           check=True, env=env, cwd=work, capture_output=True)
        wheels = sorted(str(w) for w in (work / "wheels").glob("*.whl"))
        made = {}
        for name, extra in (("venv", []), ("syssite", ["--system-site-packages"])):
            venv = work / name
            subprocess.run([PY, "-m", "venv", *extra, str(venv)], check=True, env=env,
                           capture_output=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index",
                            "--no-build-isolation", *wheels], check=True, env=env,
                           capture_output=True)
            made[name] = venv
        site = made["venv"] / SITE
        (site / "extra").mkdir()
        (site / "extra" / "extramod.py").write_text("WHERE = 'from a .pth path entry'\n")
        (site / "teepy-extra.pth").write_text("# a comment\nextra\nmissing-dir\n")
        (site / "teepy-hook.pth").write_text(
            "import builtins; builtins.TEEPY_PTH_HOOK = 'ran'\n")
        (site / "purepkg" / "data.txt").write_text("package data no sample opened\n")
        shutil.rmtree(work / "tmp")
        for root, dirs, files in os.walk(work):  # uid 65534 reads them too
            for n in dirs + files:
                path = os.path.join(root, n)
                if not os.path.islink(path):
                    os.chmod(path, 0o755)
        yield made
    finally:
        shutil.rmtree(work, ignore_errors=True)


VENV_SERVICE = """
import builtins, json, sys, teex
import purepkg, cpkg.fast, extramod
said = {
    "greet": purepkg.greet("venv"),
    "add": cpkg.fast.add(2, 3),
    "extra": extramod.WHERE,
    "hook": getattr(builtins, "TEEPY_PTH_HOOK", None),
    "path": sys.path,
    "cpkg_file": cpkg.fast.__file__,
}
teex.TEEX_return(json.dumps(said))
"""


def test_a_venv_packages_pure_and_c_extension_run_with_pth_files(as_user, run, script, venvs):
    venv = venvs["venv"]
    out = run("run", "--venv", venv, script(VENV_SERVICE)).json()
    assert out["greet"] == "hello venv" and out["add"] == 5, out
    assert out["extra"] == "from a .pth path entry" and out["hook"] == "ran", out
    site = str(venv / SITE)
    # a venv's python's order: the script's directory, the stdlib, the venv, then the
    # .pth entries that exist; no dist-packages (the venv does not include them)
    assert out["path"][1:] == ["/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload", site,
                               site + "/extra"], out
    assert out["cpkg_file"].startswith(site + "/cpkg/fast.cpython-311"), out


def test_a_venv_with_system_site_packages_sees_dist_packages_after_its_own(as_user, run, script,
                                                                           venvs):
    pytest.importorskip("numpy")
    venv = venvs["syssite"]
    svc = script("""
        import json, sys, cpkg.fast, numpy, teex
        teex.TEEX_return(json.dumps([cpkg.fast.add(2, 3), int(numpy.arange(4).sum()), sys.path]))
    """)
    add, total, path = run("run", "--venv", venv, svc).json()
    assert add == 5 and total == 6, (add, total)
    assert path[3:] == [str(venv / SITE), "/usr/lib/python3/dist-packages"], path


def test_without_the_venv_its_packages_are_not_there(as_user, run, script, venvs):
    r = run("run", script(VENV_SERVICE))
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert "No module named 'purepkg'" in r.err, r


def test_build_with_a_venv_bundles_what_the_sample_used(as_user, run, tmp, venvs):
    venv = venvs["venv"]
    svc = tmp.script(VENV_SERVICE)
    out = _keyed(run, tmp)
    data = venv / SITE / "purepkg" / "data.txt"
    b = run("build", svc, "--venv", venv, "-o", out / "v.tpy", "--key", out / "k.key",
            "--include", data)
    assert b.returncode == EXIT.OK, b
    # the venv's files are bundled, not taken from the host: no warning about them
    assert not any("warning" in l for l in b.err_lines), b
    listing = run("inspect", out / "v.tpy").stdout.decode()
    assert "format     3\n" in listing, listing
    assert f"site       /venv/{SITE}\n" in listing, listing
    bundled = [l.split()[-1] for l in listing.splitlines() if l.strip().startswith("B ")]
    # an --include of a venv file goes where the venv is in the bundle
    assert f"/venv/{SITE}/purepkg/data.txt" in bundled, listing
    assert "/venv/" + SITE + "/purepkg/__init__.py" in bundled, listing
    assert any(p.startswith("/venv/" + SITE + "/cpkg/fast.cpython-311") for p in bundled), listing
    assert "/venv/" + SITE + "/teepy-hook.pth" in bundled, listing
    assert "/venv/" + SITE + "/extra/extramod.py" in bundled, listing
    assert not any("__pycache__" in p for p in bundled), listing
    assert "/venv/" + SITE in listing  # on the bundle's sys.path
    # the bundle carries the venv: it runs where there is none
    sealed = run("run", out / "v.tpy", "--trust", out / "k.pub").json()
    site = "/venv/" + SITE
    assert sealed["greet"] == "hello venv" and sealed["add"] == 5, sealed
    assert sealed["extra"] == "from a .pth path entry" and sealed["hook"] == "ran", sealed
    assert sealed["path"] == ["/app", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload",
                              site, site + "/extra"], sealed
    # --venv means nothing to a bundle: said once, and the bundle's own files are used
    again = run("run", out / "v.tpy", "--trust", out / "k.pub", "--venv", venvs["syssite"])
    assert again.json()["path"] == sealed["path"], again
    assert any("--venv do not apply to a sealed bundle" in l for l in again.err_lines), again


def test_a_venv_inside_the_apps_directory_is_bundled_once_at_venv(as_user, run, tmp, venvs):
    app = tmp
    shutil.copytree(venvs["venv"], app / ".venv", symlinks=True)
    svc = app.script(VENV_SERVICE)
    out = _keyed(run, tmp)
    plain = run("run", "--venv", app / ".venv", svc).json()
    assert plain["greet"] == "hello venv", plain
    b = run("build", svc, "--venv", app / ".venv", "-o", out / "v.tpy", "--key", out / "k.key")
    assert b.returncode == EXIT.OK, b
    listing = run("inspect", out / "v.tpy").stdout.decode()
    assert "/app/.venv/" not in listing, listing
    assert run("run", out / "v.tpy", "--trust", out / "k.pub").json()["add"] == 5


def test_a_bundle_without_a_venv_stays_format_2(as_user, run, tmp):
    svc = tmp.script("import teex; teex.TEEX_return('x')")
    out = _keyed(run, tmp)
    assert run("build", svc, "-o", out / "p.tpy", "--key", out / "k.key").returncode == EXIT.OK
    listing = run("inspect", out / "p.tpy").stdout.decode()
    assert "format     2\n" in listing and "\nsite " not in listing, listing


def test_encrypt_with_a_venv_says_the_venv_stays_plain(as_user, run, tmp, venvs):
    svc = tmp.script(VENV_SERVICE)
    out = _keyed(run, tmp)
    b = run("build", svc, "--venv", venvs["venv"], "-o", out / "e.tpy", "--key", out / "k.key",
            "--encrypt", "--bundle-key", out / "b.key")
    assert b.returncode == EXIT.USAGE, b  # the bundle key does not exist yet
    assert run("keygen", "--symmetric", "-o", out / "b.key").returncode == EXIT.OK
    b = run("build", svc, "--venv", venvs["venv"], "-o", out / "e.tpy", "--key", out / "k.key",
            "--encrypt", "--bundle-key", out / "b.key")
    assert b.returncode == EXIT.OK, b
    said = [l for l in b.err_lines if "stay in plaintext" in l]
    assert len(said) == 1 and said[0].startswith("teepy: warning: build: --encrypt: the venv's "), b
    listing = run("inspect", out / "e.tpy").stdout.decode().splitlines()
    marks = {l.split()[-1]: l.split()[0] for l in listing if l.strip()[:1] in ("B", "S")}
    assert marks["/app/svc.py"] == "BE", listing
    assert marks[f"/venv/{SITE}/purepkg/__init__.py"] == "B", listing
    r = run("run", out / "e.tpy", "--trust", out / "k.pub", "--bundle-key", out / "b.key")
    assert r.json()["greet"] == "hello venv", r


def test_a_venv_under_tmp_with_scratch(as_user, run, tmp, venvs):
    """A private /tmp would hide a venv under /tmp in a plain run: refused, saying so.
    A build's sample sees it at /venv, where scratch hides nothing."""
    svc = tmp.script(VENV_SERVICE)
    r = run("run", "--scratch", "16M", "--venv", venvs["venv"], svc)
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == [f"teepy: --venv {venvs['venv']}: --scratch makes /tmp private; "
                           "allow a path outside /tmp, or drop --scratch"], r
    out = _keyed(run, tmp)
    b = run("build", svc, "--scratch", "16M", "--venv", venvs["venv"], "-o", out / "s.tpy",
            "--key", out / "k.key")
    assert b.returncode == EXIT.OK, b
    assert run("run", out / "s.tpy", "--trust", out / "k.pub").json()["add"] == 5


def test_a_venv_whose_packages_lie_elsewhere_or_whose_cfg_is_huge(as_user, run, tmp):
    svc = tmp.script("import teex")
    elsewhere = tmp.make_sibling("elsewhere")
    venv = tmp.make_sibling("linked")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    (venv / "lib" / "python3.11").mkdir(parents=True)
    (venv / "lib" / "python3.11" / "site-packages").symlink_to(elsewhere)
    r = run("run", "--venv", venv, svc)
    assert r.returncode == EXIT.USAGE and r.err_lines == [
        f"teepy: --venv {venv}: its site-packages leads outside it, to {elsewhere}"], r
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n" + "# padding\n" * 8000)
    r = run("run", "--venv", venv, svc)
    assert r.returncode == EXIT.USAGE and r.err_lines == [
        f"teepy: --venv {venv}: pyvenv.cfg: larger than a venv's 64 KiB"], r


@pytest.mark.parametrize("make, said", [
    (lambda d: None, "not a virtual environment (no pyvenv.cfg in it; make one with "
                     "/usr/bin/python3 -m venv DIR)"),
    (lambda d: (d / "pyvenv.cfg").write_text("version = 3.11.2\n"),
     "not a virtual environment (its pyvenv.cfg has no \"home\" line; make one with "
     "/usr/bin/python3 -m venv DIR)"),
    (lambda d: (d / "pyvenv.cfg").write_text("home = /opt/py/bin\nversion = 3.12.1\n"),
     "made for Python 3.12.1 (home /opt/py/bin); teepy runs /usr/bin/python3 3.11: make the "
     "venv with /usr/bin/python3 -m venv DIR"),
    (lambda d: (d / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n"),
     "no lib/python3.11/site-packages in it (a venv of python3.11 has one)"),
])
def test_a_directory_that_is_not_a_venv_gets_one_line(as_user, run, tmp, make, said):
    d = tmp.make_sibling("notvenv")
    make(d)
    svc = tmp.script("import teex; teex.TEEX_return('x')")
    out = _keyed(run, tmp)
    for command, prefix in ((["run"], "teepy: "),
                            (["build", "-o", out / "x.tpy", "--key", out / "k.key"], "teepy: build: ")):
        r = run(*command, "--venv", d, svc)
        assert r.returncode == EXIT.USAGE, r
        assert r.err_lines == [f"{prefix}--venv {d}: {said}"], r


def test_venv_flag_errors_are_one_line(as_user, run, script, venvs, tmp):
    svc = script("import teex")
    r = run("run", "--venv", venvs["venv"], "--venv", venvs["syssite"], svc)
    assert r.returncode == EXIT.USAGE and r.err_lines == [
        "teepy: --venv: given more than once (use one)"], r
    r = run("run", "--venv", tmp / "missing", svc)
    assert r.returncode == EXIT.USAGE and r.err_lines == [
        f"teepy: --venv {tmp / 'missing'}: No such file or directory"], r
    f = tmp.write("file", "x")
    r = run("run", "--venv", f, svc)
    assert r.returncode == EXIT.USAGE and r.err_lines == [
        f"teepy: --venv {f}: not a directory (a virtual environment is one)"], r


def test_a_pth_import_line_runs_inside_the_sandbox(as_user, run, tmp, venvs):
    """What a .pth file runs is service code: the sandbox holds it, directly and
    through a raw syscall."""
    venv = tmp.make_sibling("hostile") / "venv"
    shutil.copytree(venvs["venv"], venv, symlinks=True)
    marker = f"/tmp/teepy-pwned-pth-{os.getpid()}"
    (venv / SITE / "teepy-hook.pth").write_text(
        "import builtins, ctypes, socket; "
        "builtins.TEEPY_PTH_HOOK = [getattr(__import__('os'), 'system')("
        f"'touch {marker}'), ctypes.CDLL(None, use_errno=True).syscall(41, 2, 1, 0), "
        "ctypes.get_errno()]\n")
    svc = tmp.script("""
        import builtins, json, teex
        teex.TEEX_return(json.dumps(builtins.TEEPY_PTH_HOOK))
    """, name="hook.py")
    system, sock, err = run("run", "--venv", venv, svc).json()
    assert system != 0 and sock == -1 and err in (1, 13), (system, sock, err)  # EPERM/EACCES
    assert not os.path.exists(marker)


# ---- several samples -----------------------------------------------------------

BRANCHES = """
import teex
x = teex.TEEX_getinput().strip()
if x == "csv":
    import csv
    teex.TEEX_return(",".join(next(csv.reader(["a,b"]))))
elif x == "json":
    import json
    teex.TEEX_return(json.dumps([1]))
elif x == "file":
    teex.TEEX_return(open("/app/data.txt").read())
else:
    teex.TEEX_return("plain")
"""


def _samples(tmp, *inputs):
    return [a for i, text in enumerate(inputs)
            for a in ("--sample-input", tmp.write(f"sample{i}.txt", text))]


def test_several_samples_make_one_manifest_of_all_they_used(as_user, run, tmp):
    svc = tmp.script(BRANCHES)
    out = _keyed(run, tmp)
    b = run("build", svc, "-o", out / "s.tpy", "--key", out / "k.key",
            *_samples(tmp, "csv", "json\n"))
    assert b.returncode == EXIT.OK, b
    assert "teepy: tracing sample run 1 of 2 (--sample-input" in b.err, b
    assert "sample run 2 of 2 (--sample-input" in b.err and "returned 3 bytes" in b.err, b
    for given, want in (("csv", b"a,b"), ("json", b"[1]"), ("other", b"plain")):
        r = run("run", out / "s.tpy", "--trust", out / "k.pub", "--input", given)
        assert r.returncode == EXIT.OK and r.stdout == want, (given, r)


def test_a_module_no_sample_imported_is_named_after_the_traceback(as_user, run, tmp):
    svc = tmp.script(BRANCHES)
    out = _keyed(run, tmp)
    b = run("build", svc, "-o", out / "s.tpy", "--key", out / "k.key", "--input", "json")
    assert b.returncode == EXIT.OK, b
    r = run("run", out / "s.tpy", "--trust", out / "k.pub", "--input", "csv")
    assert r.returncode == EXIT.SERVICE_FAILED, r
    lines = r.err_lines
    assert "ModuleNotFoundError: No module named 'csv'" in lines, r
    assert lines[-2:] == [
        "teepy: the module csv is not in this sealed bundle: if the service needs it, no "
        "sample run imported it (rebuild with a --sample-input that does, or with --preload csv)",
        "teepy: the service raised ModuleNotFoundError (traceback above)"], r
    # an unsealed run of a module that is nowhere gets no such line
    plain = run("run", tmp.script("import nosuchmodule_teepy", name="plain.py"))
    assert plain.returncode == EXIT.SERVICE_FAILED, plain
    assert not any("sealed bundle" in l for l in plain.err_lines), plain


def test_a_file_no_sample_opened_is_named_after_the_traceback(as_user, run, tmp):
    svc = tmp.script(BRANCHES)
    tmp.write("data.txt", "the data")
    out = _keyed(run, tmp)
    b = run("build", svc, "-o", out / "s.tpy", "--key", out / "k.key", "--input", "x")
    assert b.returncode == EXIT.OK, b
    r = run("run", out / "s.tpy", "--trust", out / "k.pub", "--input", "file")
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert r.err_lines[-2] == (
        "teepy: /app/data.txt is not in this sealed bundle: if the service needs it, no sample "
        "run opened it (rebuild with --include for it, or with a --sample-input that opens it)"), r
    b = run("build", svc, "-o", out / "s.tpy", "--key", out / "k.key", *_samples(tmp, "file"))
    assert b.returncode == EXIT.OK, b
    r = run("run", out / "s.tpy", "--trust", out / "k.pub", "--input", "file")
    assert r.returncode == EXIT.OK and r.stdout == b"the data", r


def test_sample_input_errors_are_one_line(as_user, run, tmp):
    svc = tmp.script(BRANCHES)
    out = _keyed(run, tmp)
    common = ["build", svc, "-o", out / "s.tpy", "--key", out / "k.key"]
    cases = [
        ([*_samples(tmp, "csv"), "--input", "x"],
         "teepy: build: --sample-input and --input: give every sample as --sample-input FILE "
         "(one --input or --input-file is a single sample)"),
        (["--sample-input", "-"],
         "teepy: build: --sample-input -: standard input is one sample (give it with "
         "--input-file -, or save it to a file)"),
        (["--sample-input", tmp / "none.txt"],
         f"teepy: build: --sample-input {tmp / 'none.txt'}: No such file or directory"),
        (["--sample-input", tmp], f"teepy: build: --sample-input {tmp}: is a directory"),
    ]
    for extra, said in cases:
        r = run(*common, *extra)
        assert r.returncode == EXIT.USAGE and r.err_lines == [said], (extra, r)
    assert not (out / "s.tpy").exists()


def test_a_failing_sample_is_named_and_no_bundle_is_written(as_user, run, tmp):
    svc = tmp.script(BRANCHES)
    out = _keyed(run, tmp)
    r = run("build", svc, "-o", out / "s.tpy", "--key", out / "k.key",
            *_samples(tmp, "csv", "file"))
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert any(l.startswith("teepy: build: sample run 2 of 2 (--sample-input ") and
               l.endswith("failed (exit code 1, see above); fix it or give it the input and "
                          "data it needs") for l in r.err_lines), r
    assert not (out / "s.tpy").exists()
