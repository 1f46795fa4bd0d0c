"""A sealed bundle's system files are host files its root takes by path and sha256.
The signer writes the manifest, so it may not name any host file: only files under
the system trees teepy knows (the interpreter, its loader and prefix, the library
directories, dist-packages, /etc/alternatives, time-zone data), as named and
where their links lead; anything else only when the person running the bundle
allows it (--allow). Before this, a bundle run as root read the host's /etc/shadow
into its root."""
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from exit_codes import EXIT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sealed"))
from sealed_support import bundle_manifest, resign  # noqa: E402

# what the service does with each path the manifest names: return its content
READ = '''
import json, teex
out = {}
for p in PATHS:
    try:
        with open(p, "rb") as f:
            out[p] = f.read().decode("latin-1")
    except OSError as e:
        out[p] = type(e).__name__
teex.TEEX_return(json.dumps(out))
'''
LOCAL_PACKAGES = Path(f"/usr/local/lib/python{sys.version_info.major}.{sys.version_info.minor}"
                      "/dist-packages")


def teepy_as_root(teepy, *args, cwd):
    # no cache of verified roots: root's /run/teepy stays as it was
    r = subprocess.run([str(teepy), *map(str, args)], capture_output=True, cwd=cwd, timeout=120,
                       env=dict(os.environ, TEEPY_NO_CACHE="1"))
    assert r.returncode == EXIT.OK, r.stderr.decode()
    return r


@pytest.fixture
def bundle_naming(teepy, tmp):
    """bundle_naming(*paths) -> (bundle, pub): a bundle built and signed by a key of
    the test's making whose manifest also names each path as a system file, with the
    size and sha256 of what is there now on the host (the signer knows the file)."""
    key = tmp / "signer.key"
    teepy_as_root(teepy, "keygen", "-o", key, cwd=tmp)

    def make(*paths):
        app = tmp / f"app-{uuid.uuid4().hex[:8]}"
        app.mkdir()
        (app / "svc.py").write_text(f"PATHS = {list(map(str, paths))!r}\n" + READ)
        built = tmp / f"{app.name}.tpy"
        teepy_as_root(teepy, "build", app / "svc.py", "-o", built, "--key", key, cwd=tmp)
        manifest = bundle_manifest(built)
        for p in map(str, paths):
            data = open(p, "rb").read()
            manifest["files"][p] = {"bundled": False, "encrypted": False, "mode": 0o644,
                                    "mtime": 0, "sha256": hashlib.sha256(data).hexdigest(),
                                    "size": len(data)}
        manifest["files"] = dict(sorted(manifest["files"].items()))
        out = tmp / f"{app.name}-signed.tpy"
        resign(built, key, manifest, out)
        out.chmod(0o644)
        return out, tmp / "signer.pub"

    return make


def stat_of(paths):
    """What a test must leave as it was: each path's kind, size, mode and times."""
    out = {}
    for p in map(str, paths):
        st = os.lstat(p)
        out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


@pytest.fixture
def root_file():
    """A file of root's own under /root, made for the test and removed after."""
    if os.geteuid() != 0 or not os.path.isdir("/root") or not os.access("/root", os.W_OK):
        pytest.skip("needs root and a writable /root (the check-kernel guest shares it read-only)")
    p = Path("/root") / f"teepy-test-secret-{uuid.uuid4().hex}"
    p.write_text("root's own\n")
    p.chmod(0o600)
    yield p
    p.unlink()


def assert_refused(r, path, says):
    assert r.returncode == EXIT.BUNDLE, r
    assert r.stdout == b"", r
    lines = [l for l in r.err_lines if l.startswith("teepy:")]
    assert len(lines) == 1 and str(path) in lines[0] and says in lines[0], r.err_lines


def test_a_manifest_naming_etc_shadow_is_refused(as_user, run, bundle_naming):
    shadow = Path("/etc/shadow")
    if not shadow.is_file():
        pytest.skip("no /etc/shadow here")
    before = stat_of([shadow])
    bundle, pub = bundle_naming(shadow)
    r = run("run", bundle, "--trust", pub)
    assert_refused(r, shadow, "a host file outside the system trees, which the signed "
                              "manifest cannot grant itself (run with --allow /etc/shadow")
    assert stat_of([shadow]) == before


def test_a_manifest_naming_a_file_under_root_is_refused(as_user, run, bundle_naming, root_file):
    bundle, pub = bundle_naming(root_file)
    r = run("run", bundle, "--trust", pub)
    assert_refused(r, root_file, "outside the system trees")
    assert root_file.read_text() == "root's own\n"


def test_etc_passwd_is_the_runtimes_whatever_is_allowed(as_user, run, bundle_naming):
    """The runtime writes the root's /etc/passwd (the service's account, root and
    nobody): no manifest names it, and no --allow changes that."""
    bundle, pub = bundle_naming("/etc/passwd")
    for extra in ([], ["--allow", "/etc/passwd"]):
        r = run("run", bundle, "--trust", pub, *extra)
        assert_refused(r, "/etc/passwd", "belongs to the runtime")


def test_a_host_file_the_person_running_allows_is_taken(as_user, run, tmp, bundle_naming):
    """Outside the system trees, the person running the bundle decides: refused
    without --allow, read with it (the file or a directory above it)."""
    note = tmp.write("notes/note.txt", "allowed by the operator\n")
    bundle, pub = bundle_naming(note)
    assert_refused(run("run", bundle, "--trust", pub), note, f"--allow {note}")
    for allowed in (note, note.parent):
        out = run("run", bundle, "--trust", pub, "--allow", allowed).json()
        assert out == {str(note): "allowed by the operator\n"}


def test_every_file_outside_is_counted_the_first_named(run, bundle_naming, root_file):
    shadow = Path("/etc/shadow")
    bundle, pub = bundle_naming(shadow, root_file)
    first = min(str(shadow), str(root_file))
    assert_refused(run("run", bundle, "--trust", pub), first, "(and 1 more file)")


@pytest.fixture
def link_in_system_tree():
    """A link in pip's dist-packages (a system tree) to /etc/shadow, removed after."""
    if (os.geteuid() != 0 or not LOCAL_PACKAGES.is_dir() or not os.path.isfile("/etc/shadow")
            or not os.access(LOCAL_PACKAGES, os.W_OK)):
        pytest.skip(f"needs root, a writable {LOCAL_PACKAGES} and /etc/shadow")
    link = LOCAL_PACKAGES / f"teepy-test-link-{uuid.uuid4().hex}.py"
    link.symlink_to("/etc/shadow")
    yield link
    link.unlink()
    assert not os.path.lexists(link)


def test_a_link_in_a_system_tree_leading_out_is_refused(as_user, run, bundle_naming,
                                                        link_in_system_tree):
    """The path lies in a system tree; where it leads does not. Refused before the
    file is opened for reading, for root (who could read it) and the user alike,
    without saying where it leads."""
    before = stat_of(["/etc/shadow"])
    bundle, pub = bundle_naming(link_in_system_tree)
    r = run("run", bundle, "--trust", pub)
    assert_refused(r, link_in_system_tree,
                   "leads out of the system trees and the allowed paths through a link")
    assert "/etc/shadow" not in r.err
    assert stat_of(["/etc/shadow"]) == before


def test_a_link_in_an_allowed_directory_leading_out_is_refused(as_user, run, tmp, bundle_naming):
    """--allow DIR lets in what lies in DIR, not what a link there leads to."""
    shadow = "/etc/shadow" if os.path.isfile("/etc/shadow") else "/etc/hostname"
    (tmp / "lib").mkdir()
    link = tmp / "lib" / "data.txt"
    link.symlink_to(shadow)
    bundle, pub = bundle_naming(link)
    r = run("run", bundle, "--trust", pub, "--allow", tmp / "lib")
    assert_refused(r, link, "leads out of the system trees and the allowed paths")
    assert shadow not in r.err
    # allowing where it leads lets it in (for root, who may read it)
    if run.variant == "root":
        out = run("run", bundle, "--trust", pub, "--allow", tmp / "lib", "--allow", shadow).json()
        assert out[str(link)] == open(shadow, "rb").read().decode("latin-1")
