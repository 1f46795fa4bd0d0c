"""What a service finds around it behaves as in plain CPython: the locale teepy sets
is really in effect (not CPython's fallback UTF-8 mode), and the user database
answers for the service's own ids. Found missing by compat/run (CPython's own
tests: test_io, test_builtin, test_readline, test_tarfile, test_pathlib)."""
import json
import subprocess

from exit_codes import EXIT

SERVICE = """
import getpass, grp, json, locale, os, pathlib, pwd, sys, tarfile, io, teex
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:       # tarfile names the owner
    info = tarfile.TarInfo("x")
    t.addfile(info, io.BytesIO(b""))
teex.TEEX_return(json.dumps({
    "ctype": locale.setlocale(locale.LC_CTYPE),
    "utf8_mode": sys.flags.utf8_mode,
    "preferred": locale.getpreferredencoding(False),
    "user": getpass.getuser(),
    "uid_name": pwd.getpwuid(os.getuid()).pw_name,
    "gid_name": grp.getgrgid(os.getgid()).gr_name,
    "home": str(pathlib.Path.home()),
}))
"""


def test_locale_and_user_database_work_as_natively(as_user, run, script):
    out = run("run", script(SERVICE)).json()
    assert out["ctype"] == "C.UTF-8" and out["utf8_mode"] == 0, out
    assert out["preferred"] == "UTF-8", out
    assert out["uid_name"] == "teepy" and out["user"] == "teepy", out
    assert out["gid_name"] == "teepy" and out["home"] == "/", out


def test_locale_and_user_database_work_in_a_sealed_bundle(as_user, run, script, tmp):
    svc = script(SERVICE)
    out_dir = tmp.make_sibling("bundle")
    out_dir.chmod(0o777)
    assert run("keygen", "-o", out_dir / "k.key").returncode == EXIT.OK
    b = run("build", svc, "-o", out_dir / "s.tpy", "--key", out_dir / "k.key")
    assert b.returncode == EXIT.OK, b
    out = json.loads(run("run", out_dir / "s.tpy", "--trust", out_dir / "k.pub").stdout)
    assert out["ctype"] == "C.UTF-8" and out["utf8_mode"] == 0, out
    assert out["user"] == out["uid_name"] and out["home"] == "/", out


SITE_BUILTINS = """
import builtins, json
names = ("exit", "quit", "help", "copyright", "credits", "license")
seen = {n: [type(getattr(builtins, n)).__module__, type(getattr(builtins, n)).__qualname__,
            vars(getattr(builtins, n)), repr(getattr(builtins, n))] for n in names}
try:
    import teex
except ImportError:      # natively
    print(json.dumps(seen))
else:
    teex.TEEX_return(json.dumps(seen))
exit(0)
"""


def test_site_builtins_are_those_of_plain_python(as_user, run, script):
    """teepy starts the interpreter with -S (no site-packages, no .pth file) and
    makes site's builtins itself, without importing site (and os): a script may
    end with exit(0) or call help() or license(), and each of the six is the object
    plain python3 -I has, to the last attribute."""
    svc = script(SITE_BUILTINS)
    r = run("run", svc)
    assert r.returncode == EXIT.OK, r  # exit(0) ended it cleanly, after the result
    native = subprocess.run(["/usr/bin/python3", "-I", str(svc)], capture_output=True,
                            text=True, env={"LC_ALL": "C.UTF-8"}, check=True)
    assert r.json() == json.loads(native.stdout)
    assert r.json()["license"][2]["_Printer__filenames"][2] == "/usr/lib/python3.11/LICENSE.txt"


def test_quit_with_a_status_is_the_service_exit_status(run, script):
    r = run("run", script("import teex\nteex.TEEX_return('x')\nquit(3)\n"))
    assert r.returncode == EXIT.SERVICE_FAILED and "exited with status 3" in r.err, r


EXTRACT = """
import io, json, os, tarfile, teex
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    d = tarfile.TarInfo("d"); d.type = tarfile.DIRTYPE; d.mode = 0o700
    d.mtime = 1041808783; d.uid = d.gid = 4321; d.uname = d.gname = "someone"
    t.addfile(d)
    f = tarfile.TarInfo("d/f"); f.mode = 0o640; f.mtime = 1041808783; f.uid = 4321
    t.addfile(f, io.BytesIO(b""))
buf.seek(0)
with tarfile.open(fileobj=buf) as t:
    t.extractall("/tmp/x")
st = {p: os.stat("/tmp/x/" + p) for p in ("d", "d/f")}
teex.TEEX_return(json.dumps({"euid": os.geteuid(),
                             **{p: [oct(s.st_mode & 0o777), s.st_mtime] for p, s in st.items()}}))
"""


def test_root_service_is_no_root_and_tarfile_keeps_modes_and_times(as_user, run, script):
    """Found by CPython's test_tarfile: a service that saw euid 0 without
    capabilities made tarfile restore each member's owner, which failed, and skip
    its mode and time. Root's service is uid 1000 inside, so extraction works as for
    any user: modes and times are those of the archive."""
    out = run("run", "--scratch", "16M", script(EXTRACT)).json()
    assert out["euid"] == (1000 if as_user == "root" else 65534), out
    assert out["d"] == ["0o700", 1041808783.0] and out["d/f"] == ["0o640", 1041808783.0], out
