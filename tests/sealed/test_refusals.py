"""teepy run APP.tpy: what an operator may not change (signed variables, signers given
wrongly) and how a system file that is not what the manifest says is refused: one
line naming the file and what is wrong, with the expected hash, never what the
host's file holds (its hash or size)."""
import hashlib
import os
import shutil

import pytest

from exit_codes import EXIT
from sealed_support import build, teepy, write_app



def run_bundle(bundle, keys, *args, **kw):
    return teepy("run", bundle, "--trust", keys[1], *args, **kw)


def errors(r):
    return [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]


# ---- the environment ----

ENV_SVC = "import os, teex\nteex.TEEX_return(os.environ.get('FOO', '-') + ' ' + os.environ.get('EXTRA', '-'))\n"


@pytest.fixture
def env_bundle(work, keys):
    app = write_app(work, {"svc.py": ENV_SVC})
    return build(work, keys, os.path.join(app, "svc.py"), "--env", "FOO=signed")


def test_a_run_may_add_variables(env_bundle, keys):
    r = run_bundle(env_bundle, keys, "--env", "EXTRA=operator")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"signed operator"


def test_a_run_may_not_change_a_signed_variable(env_bundle, keys):
    r = run_bundle(env_bundle, keys, "--env", "FOO=operator")
    assert r.returncode == EXIT.USAGE, r.stdout
    assert r.stdout == b""
    lines = errors(r)
    assert len(lines) == 1 and "--env FOO" in lines[0] and "signed" in lines[0]


# ---- signers ----

@pytest.fixture
def hello(work, keys):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    return build(work, keys, os.path.join(app, "svc.py"))


@pytest.mark.parametrize("order", ["bad first", "good first"])
def test_every_trusted_signer_entry_is_checked(work, keys, hello, order):
    missing = os.path.join(work, "nonexist.pub")
    entries = [missing, keys[1]] if order == "bad first" else [keys[1], missing]
    r = teepy("run", hello, env={"TEEPY_TRUSTED_SIGNERS": ":".join(entries)})
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1 and "nonexist.pub" in lines[0] and "TEEPY_TRUSTED_SIGNERS" in lines[0]


@pytest.mark.parametrize("what, says", [
    ("private", "a private key, not a public one"),
    ("text", "not an Ed25519 public key (a .pub from teepy keygen)"),
])
def test_trust_given_no_public_key_says_so_in_words(work, keys, hello, what, says):
    path = keys[0] if what == "private" else os.path.join(work, "notes.txt")
    if what == "text":
        with open(path, "w") as f:
            f.write("hello\n")
    for r in (teepy("run", hello, "--trust", path),
              teepy("run", hello, "--trust", keys[1], "--trust", path)):
        assert r.returncode == EXIT.USAGE, r.stderr.decode()
        lines = errors(r)
        assert len(lines) == 1 and says in lines[0], lines
        assert "error:" not in lines[0] and "DECODER" not in lines[0]


def test_build_given_a_public_key_says_so(work, keys):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    r = teepy("build", os.path.join(app, "svc.py"), "-o", os.path.join(work, "x.tpy"), "--key", keys[1])
    assert r.returncode == EXIT.USAGE
    lines = errors(r)
    assert len(lines) == 1 and "a public key" in lines[0] and "error:" not in lines[0]


# ---- system files that are not what was signed ----

@pytest.fixture
def vendored(work, keys):
    """A bundle taking vendor/vendored.py from the host: outside the system trees,
    so every run allows the directory."""
    lib = os.path.join(work, "vendor")
    os.makedirs(lib)
    target = os.path.join(lib, "vendored.py")
    with open(target, "w") as f:
        f.write("VALUE = 42\n")
    app = write_app(work, {"svc.py": "import teex, vendored\nteex.TEEX_return(str(vendored.VALUE))\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib, "--include-dir", lib)
    assert run_bundle(bundle, keys, "--allow", lib).returncode == EXIT.OK
    return bundle, target, hashlib.sha256(b"VALUE = 42\n").hexdigest()


def run_vendored(vendored, keys):
    bundle, target, _ = vendored
    return run_bundle(bundle, keys, "--allow", os.path.dirname(target))


@pytest.mark.parametrize("replacement", ["directory", "fifo"])
def test_what_is_not_a_regular_file_is_named_so(work, keys, vendored, replacement):
    bundle, target, want = vendored
    os.remove(target)
    if replacement == "directory":
        os.mkdir(target)
    else:
        os.mkfifo(target)
    r = run_vendored(vendored, keys)
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    line = errors(r)[-1]
    assert "vendored.py" in line and "not a regular file" in line and want in line


def test_a_link_leading_out_of_the_allowed_paths_is_refused_unopened(work, keys, vendored):
    """A link at the file's place to /dev/zero: refused for where it leads, which
    the line does not say; the device is not opened (nor read)."""
    bundle, target, want = vendored
    os.remove(target)
    os.symlink("/dev/zero", target)
    r = run_vendored(vendored, keys)
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    line = errors(r)[-1]
    assert "vendored.py: leads out of the system trees and the allowed paths" in line, line
    assert "/dev/zero" not in line and "device" not in line


@pytest.mark.parametrize("now", ["VALUE = 4242\n", "VALUE = 43\n"])
def test_a_changed_file_is_refused_without_what_the_host_holds(work, keys, vendored, now):
    """Resized or the same size: one line, the same either way, with the hash the
    manifest expects; the file's actual hash and size are not said."""
    bundle, target, want = vendored
    with open(target, "w") as f:
        f.write(now)
    r = run_vendored(vendored, keys)
    assert r.returncode == EXIT.BUNDLE
    line = errors(r)[-1]
    got = hashlib.sha256(now.encode()).hexdigest()
    assert line == (f"teepy: {bundle}: refused: file {target}: its content differs from what "
                    f"the manifest expects (changed since it was signed; the manifest expects "
                    f"sha256 {want})"), line
    assert got not in r.stderr.decode()
    rest = line.replace(want, "").replace(target, "").replace(bundle, "").replace("sha256", "")
    assert not any(c.isdigit() for c in rest), rest  # no size


def test_a_missing_file_is_refused_with_the_expected_hash(work, keys, vendored):
    bundle, target, want = vendored
    os.remove(target)
    r = run_vendored(vendored, keys)
    assert r.returncode == EXIT.BUNDLE
    line = errors(r)[-1]
    assert "vendored.py: missing on this host" in line and want in line
