"""teepy keygen / build / inspect / run BUNDLE: signing, measurements, the sealed
root, and refusal of every kind of tampering (on copies; system files are never
modified)."""
import errno
import json
import os
import shutil
import stat
import struct
import subprocess

import pytest

from exit_codes import EXIT
from sealed_support import TEEPY, build, flip, inspect_json, teepy, write_app
from supervision import listing, waiting_root

HELLO = '''import teex
import helper
teex.TEEX_return(helper.greet(teex.TEEX_getinput()))
'''
HELPER = '''def greet(name):
    return "hello, " + name
'''


@pytest.fixture
def hello(work, keys):
    app = write_app(work, {"svc.py": HELLO, "helper.py": HELPER,
                           "unused.py": "raise SystemExit('never opened')\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--input", "sample")
    return bundle, app


def run_bundle(bundle, keys, *args, **kw):
    return teepy("run", bundle, "--trust", keys[1], *args, **kw)


def test_keygen_writes_private_key_0600_and_pub_beside_it(work):
    key = os.path.join(work, "k.key")
    r = teepy("keygen", "-o", key)
    assert r.returncode == EXIT.OK, r.stderr
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert open(os.path.join(work, "k.pub")).read().startswith("-----BEGIN PUBLIC KEY-----")
    again = teepy("keygen", "-o", key)
    assert again.returncode == EXIT.USAGE and b"already exists" in again.stderr


def test_sealed_run_gives_the_result(hello, keys):
    bundle, _ = hello
    r = run_bundle(bundle, keys, "--input", "sealed")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"hello, sealed"


def test_inspect_prints_measurements_and_files(hello):
    bundle, _ = hello
    info = inspect_json(bundle)
    for key in ("app", "runtime", "signer"):
        assert len(info[key]) == 64 and int(info[key], 16) >= 0
    assert info["signature_valid"] is True
    paths = {f["path"]: f for f in info["files"]}
    assert paths["/app/svc.py"]["bundled"] is True
    assert paths["/app/helper.py"]["bundled"] is True
    assert paths["/usr/bin/python3.11"]["bundled"] is False
    text = teepy("inspect", bundle)
    assert text.returncode == EXIT.OK and b"app " in text.stdout and b"signer " in text.stdout


def test_build_is_reproducible(work, keys, hello):
    bundle, app = hello
    again = build(work, keys, os.path.join(app, "svc.py"), "--input", "other sample", name="again.tpy")
    assert inspect_json(bundle)["app"] == inspect_json(again)["app"]


ABSENT_SVC = """import os, sys, time, teex
if os.environ.get('WAIT'):
    print('ready', file=sys.stderr, flush=True)
    time.sleep(60)
try:
    etc = sorted(os.listdir('/etc'))
except OSError as e:
    etc = e.errno
teex.TEEX_return(repr((os.path.exists('/app/unused.py'), os.path.exists('/etc/hosts'),
                       sorted(os.listdir('/app')), etc, len(open('/etc/passwd').readlines()))))
"""


def test_a_file_the_sample_run_did_not_open_is_absent(work, keys):
    """Only the manifest's files and the runtime's are there. The service reads the
    directories its files were written into and the user database, and may not list
    /etc (Landlock grants nothing above them), so what /etc holds is listed from
    outside."""
    app = write_app(work, {"svc.py": ABSENT_SVC, "unused.py": "x = 1\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    # /etc holds only the runtime's user database: root, the service and nobody
    assert r.stdout.decode() == repr((False, False, ["svc.py"], errno.EACCES, 3))
    env = {k: v for k, v in os.environ.items() if k != "TEEPY_TRUSTED_SIGNERS"}
    env["TEEPY_NO_CACHE"] = "1"  # root's /run/teepy stays as it was
    proc = subprocess.Popen([TEEPY, "run", bundle, "--trust", keys[1], "--env", "WAIT=1"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with waiting_root(proc) as root:
        assert listing(root, "/etc") == ["group", "passwd"]
        assert listing(root, "/app") == ["svc.py"]
    proc.stdout.close()
    proc.stderr.close()


def test_a_file_added_on_the_host_is_invisible(work, keys):
    app = write_app(work, {"svc.py": "import os, teex\n"
                                     "teex.TEEX_return(str(os.path.exists('/app/added.py')))\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    with open(os.path.join(app, "added.py"), "w") as f:
        f.write("x = 1\n")
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"False"


def test_untrusted_signer_is_refused(work, hello):
    bundle, _ = hello
    other = os.path.join(work, "other.key")
    assert teepy("keygen", "-o", other).returncode == EXIT.OK
    r = teepy("run", bundle, "--trust", os.path.join(work, "other.pub"))
    assert r.returncode == EXIT.BUNDLE
    assert b"none of the trusted signers" in r.stderr


def test_no_signer_is_refused_unless_insecure(hello):
    bundle, _ = hello
    r = teepy("run", bundle)
    assert r.returncode == EXIT.USAGE and b"--trust" in r.stderr
    r = teepy("run", bundle, "--insecure-any-signer", "--input", "x")
    assert r.returncode == EXIT.OK and b"warning" in r.stderr
    assert r.stdout == b"hello, x"


def test_trusted_signers_from_environment(hello, keys):
    bundle, _ = hello
    r = teepy("run", bundle, "--input", "env", env={"TEEPY_TRUSTED_SIGNERS": keys[1]})
    assert r.returncode == EXIT.OK, r.stderr.decode()


def test_an_engine_setting_teepy_cannot_use_is_ignored_for_a_bundle(work, keys, hello):
    """TEEPY_ENGINE is a script's default; a bundle runs on the engine it records
    (docs/cli.md), so a setting that names none this teepy runs does not stop it."""
    bundle, app = hello
    r = run_bundle(bundle, keys, "--input", "x", env={"TEEPY_ENGINE": "foo"})
    assert (r.returncode, r.stdout, r.stderr) == (EXIT.OK, b"hello, x", b""), r
    # for a script, whose engine it names, it is refused in one line
    svc = os.path.join(app, "svc.py")
    r = teepy("run", svc, "--input", "x", env={"TEEPY_ENGINE": "foo"})
    assert (r.returncode, r.stderr) == (
        EXIT.USAGE, b"teepy: TEEPY_ENGINE: unknown engine 'foo' (use cpython or pypy3)\n"), r
    # unless --engine names one: the flag wins over the setting
    r = teepy("run", "--engine", "cpython", svc, "--input", "x", env={"TEEPY_ENGINE": "foo"})
    assert (r.returncode, r.stdout) == (EXIT.OK, b"hello, x"), r


def copy(bundle, work, name):
    dst = os.path.join(work, name)
    shutil.copy(bundle, dst)
    return dst


def layout(bundle):
    with open(bundle, "rb") as f:
        head = f.read(24)
    magic, version, msize, bsize = struct.unpack("<8sIIQ", head)
    return msize, bsize, 24 + msize + 32 + 64


def one_line_error(r):
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]
    assert lines, r.stderr
    return lines[-1]


SIGNATURE_FAILS = ("the signature does not verify: the manifest or the signature was "
                   "changed after signing")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_tampered_manifest_is_refused(work, keys, hello, where):
    bundle = copy(hello[0], work, "m.tpy")
    msize, _, _ = layout(bundle)
    flip(bundle, 24 + {"first": 0, "middle": msize // 2, "last": msize - 1}[where])
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE, r.stderr
    assert one_line_error(r) == f"teepy: {bundle}: {SIGNATURE_FAILS}"
    assert r.stdout == b""


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_tampered_signature_is_refused(work, keys, hello, where):
    """A changed signature gives the same words as a changed manifest: Ed25519 only
    says that signature and message do not belong together, never which of the two
    was changed, so teepy names both."""
    bundle = copy(hello[0], work, "s.tpy")
    msize, _, _ = layout(bundle)
    flip(bundle, 56 + msize + {"first": 0, "middle": 32, "last": 63}[where])
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE
    assert one_line_error(r) == f"teepy: {bundle}: {SIGNATURE_FAILS}"
    assert r.stdout == b""


@pytest.mark.parametrize("where", ["first", "last"])
def test_tampered_signer_key_is_an_unknown_signer(work, keys, hello, where):
    """The embedded key is compared with the trusted ones before the signature is
    checked: a changed key is a signer nobody trusts (named by the SHA-256 of the
    key as it now is), not a bad signature."""
    import hashlib

    bundle = copy(hello[0], work, "k.tpy")
    msize, _, _ = layout(bundle)
    flip(bundle, 24 + msize + {"first": 0, "last": 31}[where])
    key = open(bundle, "rb").read()[24 + msize:56 + msize]
    signer = hashlib.sha256(key).hexdigest()
    assert signer != inspect_json(hello[0])["signer"]
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE
    assert one_line_error(r) == (f"teepy: {bundle}: signed by {signer[:16]}\u2026, which is none "
                                 "of the trusted signers (use --trust KEY)")


@pytest.mark.parametrize("where", ["first", "last"])
def test_tampered_app_file_in_blob_area_is_refused(work, keys, hello, where):
    """The blobs hold the bundled files back to back in path order: the first byte
    of the area is /app/helper.py's, the last /app/svc.py's; each is named with the
    hash the manifest says, never the hash of what is there now."""
    import hashlib

    bundle = copy(hello[0], work, "b.tpy")
    _, bsize, blob = layout(bundle)
    bundled = [f for f in inspect_json(bundle)["files"] if f["bundled"]]
    assert [f["path"] for f in bundled] == ["/app/helper.py", "/app/svc.py"], bundled
    assert bsize == sum(f["size"] for f in bundled)
    offset = blob if where == "first" else blob + bsize - 1
    flip(bundle, offset)
    victim = bundled[0] if where == "first" else bundled[-1]
    start = blob if where == "first" else blob + bsize - victim["size"]
    now = open(bundle, "rb").read()[start:start + victim["size"]]
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE
    assert one_line_error(r) == (
        f"teepy: {bundle}: refused: file {victim['path']}: its content differs from what "
        f"the manifest expects (changed since it was signed; the manifest expects sha256 "
        f"{victim['sha256']})")
    assert hashlib.sha256(now).hexdigest() not in r.stderr.decode()
    assert r.stdout == b""


def test_swapped_blobs_are_refused(work, keys):
    """Two bundled files of the same size swapped: the sizes all fit, the hashes do
    not. Both files are now wrong. teepy checks every file (on two threads, largest
    first, src/cli/sealed.c) and names the first wrong one in the manifest's path
    order, with the hash it should have, and counts the rest: the same line on every
    run."""
    import hashlib

    a, b = "X = 'aaaa'\n", "X = 'bbbb'\n"
    app = write_app(work, {"svc.py": "import teex, a, b\nteex.TEEX_return(a.X + b.X)\n",
                           "a.py": a, "b.py": b})
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    _, _, blob = layout(bundle)
    data = bytearray(open(bundle, "rb").read())
    i = data.index(a.encode(), blob)
    j = data.index(b.encode(), blob)
    data[i:i + 11], data[j:j + 11] = data[j:j + 11], data[i:i + 11]
    open(bundle, "wb").write(bytes(data))
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    for _ in range(5):
        r = run_bundle(bundle, keys)
        assert r.returncode == EXIT.BUNDLE
        assert one_line_error(r) == (
            f"teepy: {bundle}: refused: file /app/a.py: its content differs from what the "
            f"manifest expects (changed since it was signed; the manifest expects sha256 "
            f"{sha(a)}) (and 1 more file)"), r.stderr


# where a bundle is cut, as a function of the manifest size M and the file size
CUTS = {
    "empty": lambda m, size: 0,
    "inside the magic": lambda m, size: 10,
    "a byte short of the header": lambda m, size: 23,
    "after the header": lambda m, size: 24,
    "a byte short of the manifest": lambda m, size: 24 + m - 1,
    "after the manifest": lambda m, size: 24 + m,
    "a byte short of the key": lambda m, size: 24 + m + 31,
    "after the key": lambda m, size: 56 + m,
    "a byte short of the signature": lambda m, size: 120 + m - 1,
    "after the signature": lambda m, size: 120 + m,
    "a byte short of the end": lambda m, size: size - 1,
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_truncated_bundle_is_refused(work, keys, hello, cut):
    """Any cut is a refused bundle (exit 8, not a usage error): without a whole
    header it says so; with one, the size check names the size the header promises
    (120 + M + B) before anything else is read."""
    bundle = copy(hello[0], work, "t.tpy")
    msize, bsize, blob = layout(bundle)
    size = os.path.getsize(bundle)
    assert size == blob + bsize
    keep = CUTS[cut](msize, size)
    with open(bundle, "r+b") as f:
        f.truncate(keep)
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE, r.stderr
    if keep < 24:
        says = "bundle is cut short: no complete header"
    else:
        says = f"bundle is {keep} bytes but its header says {blob} + {bsize} (truncated or extended)"
    assert one_line_error(r) == f"teepy: {bundle}: {says}"
    assert r.stdout == b""


@pytest.mark.parametrize("version", [0, 2, 0xFFFFFFFF])
def test_other_bundle_version_is_refused(work, keys, hello, version):
    bundle = copy(hello[0], work, "v.tpy")
    with open(bundle, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", version))
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE
    assert one_line_error(r) == (f"teepy: {bundle}: bundle version {version} is not supported "
                                 "(this teepy reads 1)")


def test_extended_bundle_is_refused(work, keys, hello):
    bundle = copy(hello[0], work, "x.tpy")
    with open(bundle, "ab") as f:
        f.write(b"extra")
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.BUNDLE
    assert "truncated or extended" in one_line_error(r)


def test_changed_referenced_library_is_refused(work, keys):
    lib = os.path.join(work, "vendor")
    os.makedirs(lib)
    with open(os.path.join(lib, "vendored.py"), "w") as f:
        f.write("VALUE = 42\n")
    app = write_app(work, {"svc.py": "import teex, vendored\nteex.TEEX_return(str(vendored.VALUE))\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib, "--include-dir", lib)
    ok = run_bundle(bundle, keys, "--allow", lib)
    assert ok.returncode == EXIT.OK and ok.stdout == b"42", ok.stderr.decode()
    with open(os.path.join(lib, "vendored.py"), "w") as f:
        f.write("VALUE = 43\n")  # same size, other content
    r = run_bundle(bundle, keys, "--allow", lib)
    assert r.returncode == EXIT.BUNDLE
    line = one_line_error(r)
    assert "vendored.py" in line and "content differs" in line
    os.remove(os.path.join(lib, "vendored.py"))
    r = run_bundle(bundle, keys, "--allow", lib)
    assert r.returncode == EXIT.BUNDLE and "missing" in one_line_error(r)


def test_a_file_added_beside_a_system_file_is_invisible(work, keys):
    """A directory outside the app whose files the manifest references by path
    (--include-dir) is not the host's directory inside: a file added to it on the
    host after the build does not exist in the sealed root, and the listing holds
    only the manifest's files."""
    lib = os.path.join(work, "lib", "vendor")
    os.makedirs(lib)
    with open(os.path.join(lib, "vendored.py"), "w") as f:
        f.write("VALUE = 42\n")
    src = ("import os, teex, vendored\n"
           f"lib = {lib!r}\n"
           "teex.TEEX_return(repr((sorted(os.listdir(lib)), os.path.exists(lib + '/added.py'),"
           " os.path.exists(lib + '/sub'))))\n")
    app = write_app(work, {"svc.py": src})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib, "--include-dir", lib)
    under = sorted(f["path"] for f in inspect_json(bundle)["files"] if f["path"].startswith(lib + "/"))
    assert under == [os.path.join(lib, "vendored.py")], under
    before = run_bundle(bundle, keys, "--allow", lib)
    assert before.returncode == EXIT.OK, before.stderr.decode()
    assert before.stdout == b"(['vendored.py'], False, False)"
    with open(os.path.join(lib, "added.py"), "w") as f:
        f.write("SECRET = 1\n")
    os.makedirs(os.path.join(lib, "sub"))
    with open(os.path.join(lib, "sub", "more.py"), "w") as f:
        f.write("SECRET = 2\n")
    r = run_bundle(bundle, keys, "--allow", lib)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"(['vendored.py'], False, False)"


def test_sealed_service_keeps_the_sandbox(work, keys):
    src = ("import os, socket, teex\n"
           "out = []\n"
           "for f in (lambda: socket.socket(socket.AF_INET), lambda: open('/app/x', 'w'), os.fork):\n"
           "    try:\n        f(); out.append('allowed')\n"
           "    except OSError as e:\n        out.append(type(e).__name__)\n"
           "teex.TEEX_return(' '.join(out))\n")
    app = write_app(work, {"svc.py": src})
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert "allowed" not in r.stdout.decode()


GZIP_SVC = '''import subprocess, teex
out = subprocess.run(["gzip", "-c"], input=teex.TEEX_getinput().encode(), capture_output=True)
teex.TEEX_return(str(len(out.stdout)) + " " + str(out.returncode))
'''


def test_processes_policy_manifest_runs_traced_programs(work, keys):
    app = write_app(work, {"svc.py": GZIP_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-processes", "--input", "abc")
    info = inspect_json(bundle)
    assert info["processes"] == "manifest"
    assert any(f["path"].endswith("/gzip") for f in info["files"])
    r = run_bundle(bundle, keys, "--input", "hello hello hello")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    size, code = r.stdout.decode().split()
    assert code == "0" and int(size) > 10


def test_processes_policy_none_refuses_subprocess(work, keys):
    """With processes = "none" the fork behind subprocess is refused by the kernel
    (EPERM), whatever program is asked for: gzip is not in the root, but the error
    is not the FileNotFoundError a missing program would give."""
    app = write_app(work, {"svc.py": "import subprocess, teex\n"
                                     "try:\n    subprocess.run(['gzip', '-c'], input=b'x')\n    teex.TEEX_return('ran')\n"
                                     "except OSError as e:\n    teex.TEEX_return(f'{type(e).__name__} {e.errno}')\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    assert inspect_json(bundle)["processes"] == "none"
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == f"PermissionError {errno.EPERM}".encode()


NUMPY_SVC = '''import numpy as np, teex
a = np.arange(16.0).reshape(4, 4) + np.eye(4) * 10
teex.TEEX_return(repr(np.linalg.solve(a, np.ones(4)).round(9).tolist()))
'''


def test_numpy_sealed_matches_native(work, keys):
    app = write_app(work, {"svc.py": NUMPY_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-site-packages")
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    native = subprocess.run(["/usr/bin/python3", "-c", NUMPY_SVC.replace("import numpy as np, teex", "import numpy as np")
                             .replace("teex.TEEX_return(", "print(")], capture_output=True, text=True)
    assert r.stdout.decode() == native.stdout.strip()


EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "examples", "numpy", "service.py")
# the example run by Debian's python3 itself, with a stand-in teex module
NATIVE_TEEX = '''import sys, types
teex = types.ModuleType("teex")
teex.TEEX_getinput = lambda: sys.argv[2]
teex.TEEX_return = sys.stdout.write
sys.modules["teex"] = teex
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), {"__name__": "__main__"})
'''


def test_the_numpy_example_sealed_matches_native(work, keys):
    bundle = build(work, keys, EXAMPLE, "--allow-site-packages",
                   "--input", '{"a": [[3, 1], [1, 2]], "b": [9, 8]}')
    request = '{"a": [[4, 1, 0], [1, 3, 1], [0, 1, 2]], "b": [1, 2, 3]}'
    r = run_bundle(bundle, keys, "--input", request)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    native = subprocess.run(["/usr/bin/python3", "-c", NATIVE_TEEX, EXAMPLE, request],
                            capture_output=True, check=True)
    assert r.stdout == native.stdout
    assert json.loads(r.stdout)["x"] == [0.222222222, 0.111111111, 1.444444444]


def test_bundle_limits_are_recorded_and_only_tightened(work, keys):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--memory", "512M", "--cpu-time", "10")
    info = inspect_json(bundle)
    assert info["memory"] == 512 << 20 and info["cpu_ms"] == 10000
    r = run_bundle(bundle, keys, "--memory", "8G", "--print-config")
    assert r.returncode == EXIT.OK
    assert b"512 MiB" in r.stderr


def test_build_without_key_is_a_usage_error(work):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    r = teepy("build", os.path.join(app, "svc.py"), "-o", os.path.join(work, "x.tpy"))
    assert r.returncode == EXIT.USAGE and b"--key" in r.stderr
    assert not os.path.exists(os.path.join(work, "x.tpy"))


def test_build_of_a_failing_sample_run_writes_nothing(work, keys):
    app = write_app(work, {"svc.py": "raise ValueError('boom')\n"})
    out = os.path.join(work, "bad.tpy")
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0])
    assert r.returncode != EXIT.OK and b"sample run failed" in r.stderr
    assert not os.path.exists(out)


def test_inspect_of_garbage_is_one_line(work):
    junk = os.path.join(work, "junk.tpy")
    open(junk, "wb").write(b"TEEPYBDL" + b"\xff" * 100)
    r = teepy("inspect", junk)
    assert r.returncode == EXIT.BUNDLE
    assert len(r.stderr.decode().strip().splitlines()) == 1


# ---- regressions from review ----

def test_fifo_at_a_system_path_is_refused_not_hung(work, keys):
    lib = os.path.join(work, "vendor")
    os.makedirs(lib)
    with open(os.path.join(lib, "vendored.py"), "w") as f:
        f.write("VALUE = 1\n")
    app = write_app(work, {"svc.py": "import teex, vendored\nteex.TEEX_return('ok')\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib, "--include-dir", lib)
    os.remove(os.path.join(lib, "vendored.py"))
    os.mkfifo(os.path.join(lib, "vendored.py"))
    start = __import__("time").monotonic()
    r = run_bundle(bundle, keys, "--allow", lib, "--timeout", "5", timeout=30)
    assert __import__("time").monotonic() - start < 5
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    assert "vendored.py" in one_line_error(r)


def test_a_link_out_of_the_app_directory_is_not_bundled(work, keys):
    secret_dir = os.path.join(work, "secret")
    os.makedirs(secret_dir)
    with open(os.path.join(secret_dir, "creds"), "w") as f:
        f.write("password=hunter2\n")
    app = write_app(work, {"svc.py": "import teex\n"
                                     "try:\n    open('/app/config.ini').read()\nexcept OSError:\n    pass\n"
                                     "teex.TEEX_return('ok')\n"})
    os.symlink(os.path.join(secret_dir, "creds"), os.path.join(app, "config.ini"))
    bundle = build(work, keys, os.path.join(app, "svc.py"))
    assert b"hunter2" not in open(bundle, "rb").read()
    assert "/app/config.ini" not in {f["path"] for f in inspect_json(bundle)["files"]}


def test_processes_policy_still_refuses_namespaces(work, keys):
    src = ("import ctypes, teex\n"
           "libc = ctypes.CDLL(None, use_errno=True)\n"
           "CLONE_NEWUSER, SIGCHLD = 0x10000000, 17\n"
           "r = libc.syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)\n"
           "if r == 0:\n    libc.syscall(60, 0)\n"
           "teex.TEEX_return(str(r) + ' ' + str(ctypes.get_errno()))\n")
    app = write_app(work, {"svc.py": src})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-processes")
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    ret, err = r.stdout.decode().split()
    assert ret == "-1", r.stdout


def test_timeout_while_verifying_reports_the_timeout(work, keys):
    app = write_app(work, {"svc.py": NUMPY_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-site-packages")
    r = run_bundle(bundle, keys, "--timeout", "1ms")
    assert r.returncode == EXIT.TIMEOUT, r.stderr.decode()
    assert "timeout" in one_line_error(r)
