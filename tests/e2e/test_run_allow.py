"""--allow PATH for a sealed bundle: the person running it lets it take system files
from PATH, a host path outside the system trees that its signed manifest names
(an --include-dir of the builder's, say); teepy build says which paths those are.
A refusal names the file and what is wrong, never what the host's file holds."""
import hashlib
import os
import subprocess
import uuid

import pytest

from exit_codes import EXIT

SVC = "import teex, vendored\nteex.TEEX_return(vendored.VALUE)\n"


def teepy_as_root(teepy, *args, cwd):
    return subprocess.run([str(teepy), *map(str, args)], capture_output=True, cwd=cwd,
                          timeout=120)


def teepy_lines(r):
    return [l for l in r.err_lines if l.startswith("teepy:")]


@pytest.fixture
def vendored(teepy, tmp):
    """(bundle, pub, vendor dir, vendored.py): a bundle whose module comes from a
    directory of the builder's, outside the app and the system trees."""
    vendor = tmp / "vendor"
    module = tmp.write("vendor/vendored.py", "VALUE = 'from the host'\n")
    app = tmp / "app"
    tmp.write("app/svc.py", SVC)
    key = tmp / "signer.key"
    assert teepy_as_root(teepy, "keygen", "-o", key, cwd=tmp).returncode == EXIT.OK
    bundle = tmp / "v.tpy"
    r = teepy_as_root(teepy, "build", app / "svc.py", "-o", bundle, "--key", key,
                      "--pythonpath", vendor, "--include-dir", vendor, cwd=tmp)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    bundle.chmod(0o644)
    return bundle, tmp / "signer.pub", vendor, module


def test_a_bundle_taking_host_files_runs_only_where_they_are_allowed(as_user, run, vendored):
    bundle, pub, vendor, module = vendored
    r = run("run", bundle, "--trust", pub)
    assert r.returncode == EXIT.BUNDLE, r
    lines = teepy_lines(r)
    assert lines == [f"teepy: {bundle}: refused: file {module}: a host file outside the system "
                     f"trees, which the signed manifest cannot grant itself (run with --allow "
                     f"{module} to let this bundle read it)"], r.err
    for allowed in (vendor, module):
        ok = run("run", bundle, "--trust", pub, "--allow", allowed)
        assert ok.returncode == EXIT.OK and ok.stdout == b"from the host", ok


@pytest.mark.parametrize("now", ["VALUE = 'changed on the host, longer'\n",
                                 "VALUE = 'FROM THE HOST'\n"], ids=["resized", "same size"])
def test_a_changed_host_file_is_named_without_its_hash_or_size(as_user, run, vendored, now):
    bundle, pub, vendor, module = vendored
    module.write_text(now)
    r = run("run", bundle, "--trust", pub, "--allow", vendor)
    assert r.returncode == EXIT.BUNDLE, r
    (line,) = teepy_lines(r)
    want = hashlib.sha256(b"VALUE = 'from the host'\n").hexdigest()
    assert line == (f"teepy: {bundle}: refused: file {module}: its content differs from what "
                    f"the manifest expects (changed since it was signed; the manifest expects "
                    f"sha256 {want})"), line
    assert hashlib.sha256(now.encode()).hexdigest() not in r.err
    # the paths are the test's temporary directory, whose random name may hold digits
    assert str(len(now)) not in line.replace(want, "").replace(str(bundle), "").replace(
        str(module), "")


def test_not_a_regular_file_is_named_without_its_size(as_user, run, vendored):
    bundle, pub, vendor, module = vendored
    module.unlink()
    module.mkdir()
    r = run("run", bundle, "--trust", pub, "--allow", vendor)
    assert r.returncode == EXIT.BUNDLE, r
    (line,) = teepy_lines(r)
    assert f"file {module}: not a regular file on this host (a directory;" in line, line
    assert "bytes" not in line and "size" not in line


@pytest.mark.parametrize("path, says", [("/", "the whole host cannot be allowed"),
                                        ("/proc/self", "the host's kernel view"),
                                        ("/nonexistent-teepy-path", "No such file")])
def test_allow_for_a_bundle_refuses_what_it_refuses_for_a_script(as_user, run, vendored, path,
                                                                 says):
    bundle, pub, _, _ = vendored
    r = run("run", bundle, "--trust", pub, "--allow", path)
    assert r.returncode == EXIT.USAGE, r
    (line,) = teepy_lines(r)
    assert line.startswith(f"teepy: --allow {path}: ") and says in line, line


def test_build_warns_once_per_path_outside_the_system_trees(teepy, tmp):
    """One line for the --include-dir (its --pythonpath, the same files, says
    nothing more), one for an --include of a link out of the app's directory; an
    --include under a system tree is no news."""
    vendor = tmp / "vendor"
    tmp.write("vendor/vendored.py", "VALUE = 'v'\n")
    tmp.write("vendor/more.py", "")
    outside = tmp.write(f"outside-{uuid.uuid4().hex[:6]}.txt", "beside the app\n")
    app = tmp / "app"
    tmp.write("app/svc.py", SVC)
    os.symlink(outside, app / "data.txt")
    key = tmp / "signer.key"
    assert teepy_as_root(teepy, "keygen", "-o", key, cwd=tmp).returncode == EXIT.OK
    r = teepy_as_root(teepy, "build", app / "svc.py", "-o", tmp / "b.tpy", "--key", key,
                      "--pythonpath", vendor, "--include-dir", vendor,
                      "--include", app / "data.txt", "--include", "/usr/share/zoneinfo/UTC",
                      cwd=tmp)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    warned = [l for l in r.stderr.decode().splitlines() if l.startswith("teepy: warning:")]
    assert warned == [
        f"teepy: warning: build: --include {app}/data.txt leads to {outside}, outside the app's "
        f"directory: not bundled, but taken from the host that runs the bundle, and teepy run "
        f"refuses it there unless run with --allow {outside}",
        f"teepy: warning: build: --include-dir {vendor}: 2 system files outside the system "
        f"trees ({vendor}/more.py, ...): teepy run refuses the bundle unless run with --allow "
        f"{vendor}",
    ], r.stderr.decode()
    assert b"beside the app" not in (tmp / "b.tpy").read_bytes()
