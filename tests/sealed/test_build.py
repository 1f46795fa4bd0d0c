"""teepy build: what goes into a bundle and what never does, scripts, includes,
preload, reproducible measurements, a clean stdout; teepy inspect shows and
escapes everything the signature pins."""
import json
import os
import shutil
import subprocess

import pytest

from exit_codes import EXIT
from sealed_support import TEEPY, build, inspect_json, teepy, write_app


READ_EVERYTHING = '''import os, teex
total = 0
for name in sorted(os.listdir('/app')):
    try:
        total += len(open('/app/' + name, 'rb').read())
    except OSError:
        pass
teex.TEEX_return(str(total))
'''


def run_bundle(bundle, keys, *args, **kw):
    return teepy("run", bundle, "--trust", keys[1], *args, **kw)


def warnings(r):
    return [l for l in r.stderr.decode().splitlines() if l.startswith("teepy: warning:")]


# ---- secrets and bundles never travel ----

def test_the_readme_workflow_bundles_no_key_and_no_earlier_bundle(work):
    """cd app; keygen; build twice into the app's own directory, with a service that
    reads every file there: neither the key nor the previous bundle goes in, and the
    measurement does not change from one build to the next."""
    app = write_app(work, {"svc.py": READ_EVERYTHING})
    assert teepy("keygen", "-o", os.path.join(app, "signer.key")).returncode == EXIT.OK
    # another private key and another bundle, under names that say nothing
    shutil.copy(os.path.join(app, "signer.key"), os.path.join(app, "config.dat"))
    # keygen writes 0600, which root's service (host uid 65534) cannot read at all;
    # opened to others here so that the sample run sees them and build leaves them out
    for name in ("signer.key", "config.dat"):
        os.chmod(os.path.join(app, name), 0o644)
    measurements = []
    for round in range(2):
        r = subprocess.run([TEEPY, "build", "svc.py", "-o", "svc.tpy",
                            "--key", "signer.key"], cwd=app, capture_output=True)
        assert r.returncode == EXIT.OK, r.stderr.decode()
        data = open(os.path.join(app, "svc.tpy"), "rb").read()
        assert data.count(b"BEGIN PRIVATE KEY") == 0
        assert data.count(b"TEEPYBDL") == 1  # only its own header
        info = inspect_json(os.path.join(app, "svc.tpy"))
        paths = {f["path"] for f in info["files"]}
        assert not paths & {"/app/signer.key", "/app/config.dat", "/app/svc.tpy", "/app/old.tpy"}
        assert "/app/signer.pub" in paths  # a public key is no secret
        measurements.append(info["app"])
        lines = warnings(r)
        assert len(lines) == 1, r.stderr.decode()
        assert "/app/signer.key (the --key file)" in lines[0]
        assert "/app/config.dat (a private key)" in lines[0]
        if round == 0:
            assert "svc.tpy" not in lines[0]
            shutil.copy(os.path.join(app, "svc.tpy"), os.path.join(app, "old.tpy"))
        else:
            assert "/app/svc.tpy (the -o bundle)" in lines[0]
            assert "/app/old.tpy (a bundle)" in lines[0]
    assert measurements[0] == measurements[1]


def test_a_symmetric_key_is_never_bundled_whatever_its_name(work):
    """A key from keygen --symmetric in the app's directory, under a name that says
    nothing, is read by the sample run but left out of the bundle, with a warning."""
    app = write_app(work, {"svc.py": READ_EVERYTHING})
    assert teepy("keygen", "-o", os.path.join(app, "signer.key")).returncode == EXIT.OK
    assert teepy("keygen", "--symmetric", "-o",
                 os.path.join(app, "settings.txt")).returncode == EXIT.OK
    secret = open(os.path.join(app, "settings.txt")).read().splitlines()[1]
    os.chmod(os.path.join(app, "settings.txt"), 0o644)  # readable by root's service
    r = subprocess.run([TEEPY, "build", "svc.py", "-o", "svc.tpy", "--key", "signer.key"],
                       cwd=app, capture_output=True)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    data = open(os.path.join(app, "svc.tpy"), "rb").read()
    assert secret.encode() not in data and b"TEEPY SYMMETRIC KEY" not in data
    paths = {f["path"] for f in inspect_json(os.path.join(app, "svc.tpy"))["files"]}
    assert "/app/settings.txt" not in paths and "/app/svc.py" in paths
    assert any("/app/settings.txt (a symmetric key)" in l for l in warnings(r)), r.stderr


# ---- inspect ----

def test_inspect_shows_what_the_signature_pins_and_escapes_it(work, keys):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    evil = "x\x1b[2K\n  S 0644 forged row\x07"
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--env", "GREETING=" + evil,
                   "--env", "PLAIN=1", "--preload", "json", "--", evil, "two")
    text = teepy("inspect", bundle)
    assert text.returncode == EXIT.OK, text.stderr
    out = text.stdout
    assert b"\x1b" not in out and b"\x07" not in out
    assert b"forged row" in out and b"\n  S 0644 forged row" not in out
    assert b"GREETING=x\\x1b[2K\\x0a  S 0644 forged row\\x07" in out
    assert b"PLAIN=1" in out and b"json" in out and b"/usr/lib/python3.11/lib-dynload" in out
    raw = teepy("inspect", bundle, "--json").stdout
    assert all(b < 0x80 for b in raw) and b"\x1b" not in raw
    info = json.loads(raw)
    assert info["env"] == {"GREETING": evil, "PLAIN": "1"}
    assert info["argv"] == [evil, "two"]
    assert info["preload"] == ["json"]
    assert info["python_path"][0] == "/app"
    assert all("mtime" in f for f in info["files"])


# ---- programs run by a processes policy ----

GUNZIP_SVC = '''import gzip, subprocess, teex
packed = gzip.compress(teex.TEEX_getinput().encode())
out = subprocess.run(["gunzip", "-c"], input=packed, capture_output=True)
teex.TEEX_return(out.stdout.decode() + " " + str(out.returncode))
'''


def test_a_shell_script_program_runs_sealed_with_its_interpreter(work, keys):
    """gunzip is a #!/bin/sh script: the kernel opens /bin/sh itself, so the build
    must add it (at that path) for the sealed run to start the script."""
    app = write_app(work, {"svc.py": GUNZIP_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-processes", "--input", "x")
    paths = {f["path"] for f in inspect_json(bundle)["files"]}
    assert "/bin/sh" in paths
    r = run_bundle(bundle, keys, "--input", "hello")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"hello 0"


FORKS_SVC = '''import os, teex
r, w = os.pipe()
children = []
error = "none"
for _ in range(40):
    try:
        pid = os.fork()
    except OSError as e:
        error = type(e).__name__
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    children.append(pid)
os.close(w)
for pid in children:
    os.waitpid(pid, 0)
teex.TEEX_return(f"{len(children)} {error}")
'''


def test_the_thread_cap_bounds_the_processes_of_a_processes_bundle(work, keys):
    app = write_app(work, {"svc.py": FORKS_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--allow-processes", "--threads", "8")
    assert inspect_json(bundle)["threads"] == 8
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    forked, error = r.stdout.decode().split()
    assert int(forked) < 8 and error == "BlockingIOError", r.stdout


# ---- includes ----

LINKS_SVC = '''import os, teex
names = ["/usr/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
         "/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC"]
teex.TEEX_return(" ".join(str(os.path.isfile(n)) for n in names))
'''


def test_an_included_link_is_at_its_own_path_and_its_target(work, keys):
    app = write_app(work, {"svc.py": LINKS_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"),
                   "--include", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                   "--include", "/usr/share/zoneinfo/UTC")
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"True True True True"


def test_include_dir_places_links_to_files_and_says_what_it_drops(work, keys):
    vendor = os.path.join(work, "vendor")
    os.makedirs(os.path.join(vendor, "sub"))
    with open(os.path.join(vendor, "real.txt"), "w") as f:
        f.write("content\n")
    os.symlink("real.txt", os.path.join(vendor, "alias.txt"))
    os.symlink("sub", os.path.join(vendor, "subdir-link"))
    os.symlink("nowhere", os.path.join(vendor, "dangling"))
    os.mkfifo(os.path.join(vendor, "pipe"))
    app = write_app(work, {"svc.py": "import teex\n"
                                     f"teex.TEEX_return(open('{vendor}/alias.txt').read())\n"})
    out = os.path.join(work, "v.tpy")
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0],
              "--include-dir", vendor)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    lines = warnings(r)
    assert len(lines) == 2 and "3 entries not in the bundle" in lines[0], r.stderr.decode()
    for what in ("subdir-link (a link to a directory)", "dangling (a dangling link)",
                 "pipe (not a regular file)"):
        assert what in lines[0]
    # the files it holds are the host's, outside the system trees: run must allow them
    assert lines[1] == (f"teepy: warning: build: --include-dir {vendor}: 2 system files outside "
                        f"the system trees ({vendor}/alias.txt, ...): teepy run refuses the "
                        f"bundle unless run with --allow {vendor}")
    ok = run_bundle(out, keys, "--allow", vendor)
    assert ok.returncode == EXIT.OK and ok.stdout == b"content\n", ok.stderr.decode()


@pytest.mark.parametrize("path, why", [("/proc/cpuinfo", "belong to the runtime"),
                                       ("/dev/null", "belong to the runtime"),
                                       ("/sys/kernel", "belong to the runtime"),
                                       ("FIFO", "not a regular file or directory")])
def test_include_of_what_a_bundle_cannot_hold_is_refused(work, keys, path, why):
    if path == "FIFO":
        path = os.path.join(work, "fifo")
        os.mkfifo(path)
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    out = os.path.join(work, "r.tpy")
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0], "--include", path)
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    errors = [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]
    assert len(errors) == 1 and why in errors[0] and path in errors[0]
    assert not os.path.exists(out)


def test_included_files_are_visible_in_the_sample_run(work, keys):
    data = os.path.join(work, "table.csv")
    with open(data, "w") as f:
        f.write("a,b\n")
    app = write_app(work, {"svc.py": f"import teex\nteex.TEEX_return(open('{data}').read())\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--include", data)
    r = run_bundle(bundle, keys, "--allow", data)
    assert r.returncode == EXIT.OK and r.stdout == b"a,b\n", r.stderr.decode()


def test_an_included_extension_module_brings_the_libraries_it_links(work, keys):
    """The sample run imports nothing but json; _bz2, _lzma and _ssl arrive by
    --include-dir alone, and their libraries (libbz2, liblzma, libssl, libcrypto)
    must come with them, or the sealed import fails for want of a .so."""
    app = write_app(work, {"svc.py": "import importlib, teex\n"
                                     "name = teex.get_input()\n"
                                     "importlib.import_module(name)\n"
                                     "teex.TEEX_return(name)\n"})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--input", "json",
                   "--include-dir", "/usr/lib/python3.11/lib-dynload")
    paths = {f["path"] for f in inspect_json(bundle)["files"]}
    for lib in ("libbz2.so.1.0", "liblzma.so.5", "libssl.so.3", "libcrypto.so.3"):
        assert f"/lib/x86_64-linux-gnu/{lib}" in paths, lib
    for module in ("_bz2", "_lzma", "_ssl"):
        r = run_bundle(bundle, keys, "--input", module)
        assert r.returncode == EXIT.OK and r.stdout == module.encode(), r.stderr.decode()


# ---- preload ----

PRELOAD_SVC = '''import sys, teex
teex.TEEX_return(" ".join(m for m in ("json", "decimal") if m in sys.modules))
'''


def test_preload_modules_are_imported_first_and_their_files_traced(work, keys):
    app = write_app(work, {"svc.py": PRELOAD_SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--preload", "json")
    info = inspect_json(bundle)
    assert info["preload"] == ["json"]
    assert "/usr/lib/python3.11/json/__init__.py" in {f["path"] for f in info["files"]}
    r = run_bundle(bundle, keys)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"json"


@pytest.mark.parametrize("name", ["nonexistent_mod_xyz", "not a name"])
def test_a_preload_that_cannot_be_imported_refuses_the_build(work, keys, name):
    app = write_app(work, {"svc.py": PRELOAD_SVC})
    out = os.path.join(work, "p.tpy")
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0], "--preload", name)
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    errors = [l for l in r.stderr.decode().splitlines()
              if l.startswith("teepy:") and "tracing a sample run" not in l]
    assert len(errors) == 1 and name in errors[0], r.stderr.decode()
    assert not os.path.exists(out)


@pytest.mark.parametrize("flag, value, said", [
    ("--data", "/nonexistent/d.bin", "--data /nonexistent/d.bin: No such file or directory"),
    ("--input-file", "/nonexistent/in.txt", "--input-file /nonexistent/in.txt: No such file"),
    ("--mode", "hw", "mode hw: hardware attestation needs a confidential VM"),
])
def test_a_sample_run_refused_before_it_starts_is_one_line(work, keys, flag, value, said):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('x')\n"})
    out = os.path.join(work, "s.tpy")
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0], flag, value)
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    errors = [l for l in r.stderr.decode().splitlines()
              if l.startswith("teepy:") and "tracing a sample run" not in l
              and "sample run failed" not in l]
    assert len(errors) == 1 and said in errors[0], r.stderr.decode()
    assert not os.path.exists(out)


# ---- reproducible measurements ----

def test_mtimes_are_kept_only_for_sources_whose_cache_is_in_the_root(work, keys):
    app = write_app(work, {"svc.py": "import json, teex\nteex.TEEX_return('ok')\n"})
    info = inspect_json(build(work, keys, os.path.join(app, "svc.py")))
    paths = {f["path"] for f in info["files"]}
    kept = [f["path"] for f in info["files"] if f["mtime"]]
    assert "/usr/lib/python3.11/json/__init__.py" in kept
    for path in kept:
        assert path.endswith(".py")
        d, name = os.path.split(path)
        assert any(p.startswith(f"{d}/__pycache__/{name[:-3]}.") and p.endswith(".pyc")
                   for p in paths), path
    # install-time stamps (.pyc, libraries, the interpreter) are never recorded
    assert not [f for f in info["files"] if f["mtime"] and not f["path"].endswith(".py")]


def test_same_app_measures_the_same_whatever_umask_and_touched_includes(work, keys):
    vendor = os.path.join(work, "vendor")
    os.makedirs(vendor)
    with open(os.path.join(vendor, "data.bin"), "wb") as f:
        f.write(b"\0" * 10)
    src = {"svc.py": "import teex, helper\nteex.TEEX_return(helper.X)\n",
           "helper.py": "X = 'ok'\n", "tool.sh": "#!/bin/sh\n"}
    apps, measures = [], []
    # as root the service is host uid 65534 (nobody): it reads what others may
    # (test_build_as_root_refuses_an_app_its_service_cannot_read), so the modes
    # differ in the owner's and group's bits only
    for i, mode in enumerate((0o604, 0o644)):
        d = os.path.join(work, f"copy{i}")
        os.makedirs(d)
        app = write_app(d, src)
        for name in src:
            os.chmod(os.path.join(app, name), 0o700 if name == "tool.sh" else mode)
        os.utime(os.path.join(vendor, "data.bin"), (1000000000 + i, 1000000000 + i))
        bundle = build(work, keys, os.path.join(app, "svc.py"), "--include", os.path.join(app, "tool.sh"),
                       "--include-dir", vendor, name=f"m{i}.tpy")
        info = inspect_json(bundle)
        modes = {f["path"]: f["mode"] for f in info["files"]}
        assert modes["/app/helper.py"] == 0o644 and modes["/app/tool.sh"] == 0o755
        measures.append(info["app"])
    assert measures[0] == measures[1]


# ---- output ----

def test_build_keeps_stdout_clean_and_says_what_the_sample_run_returned(work, keys):
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('twelve bytes')\n"})
    r = teepy("build", os.path.join(app, "svc.py"), "-o", os.path.join(work, "o.tpy"), "--key", keys[0])
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b""
    assert b"the sample run returned 12 bytes" in r.stderr
    assert not warnings(r)  # nothing the tracer missed, nothing left out


def _size(n):
    """tp_format_size: binary units, a whole number when exact, else one decimal."""
    names, i, unit = ["B", "KiB", "MiB", "GiB", "TiB"], 0, 1
    while i + 1 < len(names) and n >= unit * 1024:
        unit, i = unit * 1024, i + 1
    return f"{n // unit} {names[i]}" if n % unit == 0 else f"{n / unit:.1f} {names[i]}"


def test_build_prints_a_summary_line_matching_the_bundle(work, keys):
    """The summary build ends with names the bundle and counts what inspect finds
    in it: files, bundled and system ones with their sizes, the time taken, and the
    app measurement."""
    import re
    import time

    sources = {"svc.py": "import teex, helper\nteex.TEEX_return(helper.X)\n",
               "helper.py": "X = 'helped'\n"}
    app = write_app(work, sources)
    out = os.path.join(work, "s.tpy")
    start = time.monotonic()
    r = teepy("build", os.path.join(app, "svc.py"), "-o", out, "--key", keys[0])
    elapsed_ms = (time.monotonic() - start) * 1000
    assert r.returncode == EXIT.OK, r.stderr.decode()
    lines = r.stderr.decode().splitlines()
    built = [l for l in lines if l.startswith("teepy: built ")]
    assert len(built) == 1, lines
    m = re.fullmatch(r"teepy: built (.+): (\d+) files \((\d+) bundled, (.+?); (\d+) system, (.+?)\) "
                     r"in (\d+) ms", built[0])
    assert m, built[0]
    info = inspect_json(out)
    files = info["files"]
    bundled = [f for f in files if f["bundled"]]
    system = [f for f in files if not f["bundled"]]
    assert m.group(1) == out
    assert int(m.group(2)) == len(files) and len(files) > 2
    assert int(m.group(3)) == len(bundled) == 2
    assert m.group(4) == _size(sum(f["size"] for f in bundled))
    assert m.group(4) == f"{sum(len(t) for t in sources.values())} B"
    assert int(m.group(5)) == len(system) > 0
    assert m.group(6) == _size(sum(f["size"] for f in system))
    assert 0 < int(m.group(7)) <= elapsed_ms + 1
    assert f"teepy: app measurement {info['app']}" in lines


def test_build_as_root_refuses_an_app_its_service_cannot_read(work, keys):
    """Root's service is host uid 65534 (nobody): a script only its owner may read
    is refused before the sample run, in one line naming the fix."""
    if os.geteuid() != 0:
        pytest.skip("root's service only")
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    os.chmod(os.path.join(app, "svc.py"), 0o600)
    r = teepy("build", os.path.join(app, "svc.py"), "-o", os.path.join(work, "x.tpy"), "--key", keys[0])
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert "root's service runs as host uid 65534 (nobody) and cannot read it (mode 0600)" in r.stderr.decode()
    assert not os.path.exists(os.path.join(work, "x.tpy"))
    os.chmod(os.path.join(app, "svc.py"), 0o644)
    os.chmod(app, 0o700)
    r = teepy("run", os.path.join(app, "svc.py"))
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert "cannot list its directory" in r.stderr.decode() and "(mode 0700)" in r.stderr.decode()


def test_build_reads_no_run_setting(work, keys):
    """TEEPY_ENGINE, TEEPY_MEMORY, TEEPY_CPU_TIME in the environment change nothing a
    bundle records (docs/cli.md): the same bundle as without them, byte for byte."""
    app = write_app(work, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    script = os.path.join(app, "svc.py")
    plain = build(work, keys, script, name="plain.tpy")
    r = teepy("build", script, "-o", os.path.join(work, "set.tpy"), "--key", keys[0],
              env={"TEEPY_ENGINE": "pypy3", "TEEPY_MEMORY": "64M", "TEEPY_CPU_TIME": "5s",
                   "TEEPY_THREADS": "3"})
    assert r.returncode == EXIT.OK, r.stderr.decode()
    m = inspect_json(os.path.join(work, "set.tpy"))
    assert "cpython" in json.dumps(m["engine"]), m["engine"]
    with open(plain, "rb") as a, open(os.path.join(work, "set.tpy"), "rb") as b:
        assert a.read() == b.read()
