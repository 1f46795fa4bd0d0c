"""Sealed bundles as an unprivileged user (uid 65534, user namespaces only): build,
run, refuse tampering, keep the sandbox. The binary and its extension are copied
where that user can read them."""
import os
import shutil
import subprocess

import pytest

from exit_codes import EXIT
from sealed_support import teepy_copy_for_nobody, write_app

NOBODY = 65534


@pytest.fixture
def as_nobody():
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534 (the suite already runs unprivileged)")
    d = teepy_copy_for_nobody()

    def run(*args, input=None):
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
               os.path.join(d, "teepy"), *map(str, args)]
        return subprocess.run(cmd, input=input, capture_output=True, timeout=120, cwd=d,
                              env={"PATH": "/usr/bin:/bin"})
    yield d, run
    shutil.rmtree(d, ignore_errors=True)


def test_build_and_run_sealed_as_unprivileged_user(as_nobody):
    d, run = as_nobody
    app = write_app(d, {"svc.py": "import os, socket, teex\n"
                                  "try:\n    socket.socket(socket.AF_INET); net = 'open'\n"
                                  "except OSError:\n    net = 'closed'\n"
                                  "teex.TEEX_return(f'{teex.TEEX_getinput()} uid={os.getuid()} net={net}')\n"})
    os.chmod(app, 0o777)
    assert run("keygen", "-o", "k.key").returncode == EXIT.OK
    b = run("build", os.path.join(app, "svc.py"), "-o", "u.tpy", "--key", "k.key", "--input", "x")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    r = run("run", "u.tpy", "--trust", "k.pub", "--input", "hi")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == f"hi uid={NOBODY} net=closed".encode()

    # the same tampering is refused for this user too
    bundle = os.path.join(d, "u.tpy")
    with open(bundle, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        last = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xff]))
    r = run("run", "u.tpy", "--trust", "k.pub")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    assert b"content differs from what the manifest expects" in r.stderr


def test_a_file_the_sample_run_may_not_open_is_left_out(as_nobody):
    """The app tries a root-owned 0600 file beside it: the open fails in the sample
    run, so the file is not the app's to bundle and the build goes on."""
    d, run = as_nobody
    app = write_app(d, {"svc.py": "import teex\n"
                                  "try:\n    open('/app/secret.txt').read(); seen = 'read'\n"
                                  "except OSError as e:\n    seen = type(e).__name__\n"
                                  "teex.TEEX_return(seen)\n",
                        "secret.txt": "root only\n"})
    os.chmod(app, 0o777)
    os.chmod(os.path.join(app, "secret.txt"), 0o600)  # owned by root, the test's user
    assert run("keygen", "-o", "k.key").returncode == EXIT.OK
    b = run("build", os.path.join(app, "svc.py"), "-o", "s.tpy", "--key", "k.key")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    assert b"root only" not in open(os.path.join(d, "s.tpy"), "rb").read()
    r = run("run", "s.tpy", "--trust", "k.pub")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"FileNotFoundError"  # absent from the sealed root


def test_unreadable_files_meet_a_warning_at_build_and_a_reason_at_run(as_nobody):
    """An --include-dir file the builder may not read is left out with a warning (not
    an internal error); a system file the runner may not read is refused as
    unreadable, not as missing."""
    d, run = as_nobody
    lib = os.path.join(d, "vendor")
    os.makedirs(lib)
    for name, text in (("vendored.py", "VALUE = 42\n"), ("secret.txt", "root only\n")):
        with open(os.path.join(lib, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(lib, "secret.txt"), 0o600)  # owned by root, the test's user
    app = write_app(d, {"svc.py": "import teex, vendored\nteex.TEEX_return(str(vendored.VALUE))\n"})
    os.chmod(app, 0o777)
    assert run("keygen", "-o", "k.key").returncode == EXIT.OK
    b = run("build", os.path.join(app, "svc.py"), "-o", "v.tpy", "--key", "k.key",
            "--pythonpath", lib, "--include-dir", lib)
    assert b.returncode == EXIT.OK, b.stderr.decode()
    warned = [l for l in b.stderr.decode().splitlines() if l.startswith("teepy: warning:")
              and "no cgroup for the limits" not in l]
    assert len(warned) == 2 and "secret.txt (Permission denied)" in warned[0], warned
    assert f"--include-dir {lib}: 1 system file outside the system trees" in warned[1], warned
    assert run("run", "v.tpy", "--trust", "k.pub", "--allow", lib).stdout == b"42"

    os.chmod(os.path.join(lib, "vendored.py"), 0o600)
    r = run("run", "v.tpy", "--trust", "k.pub", "--allow", lib)
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    line = r.stderr.decode().strip().splitlines()[-1]
    assert "vendored.py: cannot be read on this host: Permission denied" in line
    assert "missing" not in line
