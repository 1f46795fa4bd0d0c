"""The cache of verified sealed roots: a second run of a bundle binds the root a
first run verified; a changed blob, another manifest or another teepy misses it; a
cache directory that is not a private tmpfs is refused with one warning and the run
goes on without it; concurrent and killed fills leave one complete entry or none."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from exit_codes import EXIT
from sealed_support import TEEPY, build, copy_teepy, teepy, teepy_copy_for_nobody, write_app

SVC = "import teex, vendored\nteex.TEEX_return(str(vendored.VALUE))\n"


@pytest.fixture
def cache():
    """A cache directory on a tmpfs (/dev/shm), mode 0700, removed afterwards."""
    d = tempfile.mkdtemp(prefix="teepy-sealed-cache-", dir="/dev/shm")
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def vendored(work, keys):
    """A bundle taking vendor/vendored.py from the host (allowed on every run)."""
    lib = os.path.join(work, "vendor")
    os.makedirs(lib)
    target = os.path.join(lib, "vendored.py")
    with open(target, "w") as f:
        f.write("VALUE = 42\n")
    app = write_app(work, {"svc.py": SVC})
    bundle = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib,
                   "--include-dir", lib)
    return bundle, target


def run(bundle, keys, cache_dir, *args, allow=None, binary=None):
    env = {"TEEPY_NO_CACHE": "0", "TEEPY_CACHE_DIR": cache_dir}
    extra = ["--allow", allow] if allow else []
    if binary:
        full = dict(os.environ, **env)
        return subprocess.run([binary, "run", bundle, "--trust", keys[1], "--print-config",
                               *extra, *args], capture_output=True, timeout=120, env=full)
    return teepy("run", bundle, "--trust", keys[1], "--print-config", *extra, *args, env=env)


def cache_line(r):
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("  cache ")]
    assert len(lines) == 1, r.stderr.decode()
    return lines[0].split(None, 1)[1]


def warnings(r):
    return [l for l in r.stderr.decode().splitlines() if l.startswith("teepy: warning")]


def entries(cache_dir):
    """The cache's entries (and temporary ones), not its index files (b-…)."""
    return sorted(n for n in os.listdir(cache_dir) if not n.startswith("b-"))


def index_files(cache_dir):
    return sorted(os.path.join(cache_dir, n) for n in os.listdir(cache_dir)
                  if n.startswith("b-"))


INDEXED = "the bundle's bytes are a verified run's"


def run_vendored(vendored, keys, cache_dir, *args, **kw):
    bundle, target = vendored
    return run(bundle, keys, cache_dir, *args, allow=os.path.dirname(target), **kw)


def test_a_second_run_binds_the_root_the_first_verified(vendored, keys, cache):
    first = run_vendored(vendored, keys, cache)
    assert first.returncode == EXIT.OK, first.stderr.decode()
    assert first.stdout == b"42"
    assert cache_line(first).startswith("miss:")
    assert len(entries(cache)) == 1
    second = run_vendored(vendored, keys, cache)
    assert second.returncode == EXIT.OK, second.stderr.decode()
    assert second.stdout == b"42"
    assert cache_line(second).startswith("hit:")
    assert not warnings(second)


def test_a_warm_run_uses_the_verified_copy_of_a_changed_host_file(vendored, keys, cache):
    """What a warm entry means: the host's file changed after the entry was made,
    the run uses the copy that was verified against the manifest (the README says
    so); without the cache the same run is refused."""
    bundle, target = vendored
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    with open(target, "w") as f:
        f.write("VALUE = 43\n")
    warm = run_vendored(vendored, keys, cache)
    assert warm.returncode == EXIT.OK, warm.stderr.decode()
    assert warm.stdout == b"42"
    cold = run_vendored(vendored, keys, cache, "--no-cache")
    assert cold.returncode == EXIT.BUNDLE
    assert cache_line(cold) == "off: --no-cache"


def test_a_changed_blob_is_refused_on_a_warm_run(vendored, keys, cache):
    bundle, _ = vendored
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    with open(bundle, "r+b") as f:  # the last bytes are the app's own blob
        f.seek(-3, os.SEEK_END)
        last = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    assert b"content differs from what the manifest expects" in r.stderr


def test_another_manifest_misses(work, keys, vendored, cache):
    assert cache_line(run_vendored(vendored, keys, cache)).startswith("miss:")
    app = write_app(work, {"svc.py": SVC + "# another manifest\n"})
    other = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath",
                  os.path.dirname(vendored[1]), "--include-dir", os.path.dirname(vendored[1]),
                  name="other.tpy")
    r = run(other, keys, cache, allow=os.path.dirname(vendored[1]))
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert cache_line(r).startswith("miss:")
    assert len(entries(cache)) == 2


def test_another_teepy_misses(work, keys, vendored, cache):
    assert cache_line(run_vendored(vendored, keys, cache)).startswith("miss:")
    d = os.path.join(work, "bin")
    os.makedirs(d)
    r = run_vendored(vendored, keys, cache, binary=copy_teepy(d))
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert cache_line(r).startswith("miss:")


def _fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def noexec_tmpfs(work):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    d = os.path.join(work, "noexec")
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,mode=0700", "teepy-test", d], check=True)
    yield d
    subprocess.run(["umount", d], check=True)


@pytest.mark.parametrize("flaw", ["owner", "mode", "not-tmpfs", "symlink", "noexec"])
def test_an_untrusted_cache_dir_is_refused_with_one_warning(request, work, keys, vendored, cache,
                                                            flaw):
    where = cache
    if flaw == "owner":
        os.chown(cache, 65534, 65534)
        says = "owned by uid 65534"
    elif flaw == "mode":
        os.chmod(cache, 0o755)
        says = "has mode 0755, not 0700"
    elif flaw == "not-tmpfs":
        where = os.path.join(work, "cache")
        os.mkdir(where, 0o700)
        if _fs_type(where) == "tmpfs":
            pytest.skip(f"{work} is on a tmpfs here")
        says = "not on a tmpfs"
    elif flaw == "noexec":
        where = request.getfixturevalue("noexec_tmpfs")
        says = "on a tmpfs mounted noexec"
    else:
        where = os.path.join(work, "link")
        os.symlink(cache, where)
        says = "a symbolic link"
    r = run_vendored(vendored, keys, where)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"42"
    assert cache_line(r).startswith("off:") and says in cache_line(r)
    lines = warnings(r)
    assert len(lines) == 1 and says in lines[0] and "running without the cache" in lines[0]
    assert entries(cache) == []


def left_run_dir(work):
    """A /run to bind over the host's in a mount namespace: a directory on disk
    holding the empty teepy directory an umount of root's cache leaves."""
    run_dir = os.path.join(work, "run")
    os.makedirs(os.path.join(run_dir, "teepy"), 0o700)
    if _fs_type(run_dir) == "tmpfs":
        pytest.skip(f"{work} is on a tmpfs here")
    return run_dir


def root_cache_env():
    """The environment of a run with root's own cache (no TEEPY_CACHE_DIR)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    env["TEEPY_NO_CACHE"] = "0"
    return env


@pytest.mark.skipif(os.geteuid() != 0, reason="root's cache, /run/teepy")
@pytest.mark.parametrize("left", ["empty", "holding a file"])
def test_roots_run_teepy_left_by_an_umount_is_mounted_again_if_empty(work, vendored, keys, left):
    """Where /run is no tmpfs, an umount of /run/teepy leaves its directory: the next
    run mounts the tmpfs again (else every run warned and went without the cache), but
    never over a directory that holds anything. In a mount namespace of its own, /run
    a directory on disk: the host's /run is not touched."""
    run_dir = left_run_dir(work)
    if left != "empty":
        open(os.path.join(run_dir, "teepy", "kept"), "w").close()
    bundle, target = vendored
    env = root_cache_env()
    run = [TEEPY, "run", bundle, "--trust", keys[1], "--allow", os.path.dirname(target),
           "--print-config"]
    script = ('mount --bind "$1" /run && shift && "$@" && "$@" && '
              "echo fs=$(stat -f -c %T /run/teepy)")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", run_dir, *run], capture_output=True, timeout=120, env=env)
    err = r.stderr.decode()
    assert r.returncode == EXIT.OK, err
    assert r.stdout.endswith(b"\n") and r.stdout.split(b"fs=")[0] == b"4242", r.stdout
    caches = [l.split(None, 1)[1] for l in err.splitlines() if l.startswith("  cache ")]
    if left == "empty":
        assert r.stdout.endswith(b"fs=tmpfs\n"), r.stdout
        assert caches[0].startswith("miss: the verified files are kept in /run/teepy/"), err
        assert caches[1].startswith("hit:"), err
        assert "warning" not in err, err
    else:
        assert not r.stdout.endswith(b"fs=tmpfs\n"), r.stdout
        assert all(c.startswith("off:") and "not on a tmpfs" in c for c in caches), err
        assert os.listdir(os.path.join(run_dir, "teepy")) == ["kept"]
    assert not os.path.ismount(os.path.join(run_dir, "teepy"))


@pytest.mark.skipif(os.geteuid() != 0, reason="root's cache, /run/teepy")
def test_runs_finding_run_teepy_left_at_once_mount_it_once(work, vendored, keys):
    """Eight runs at once find the left directory: one tmpfs is mounted on it, not a
    stack of them (a lower one would hold entries nobody sees or clears), round
    after round."""
    run_dir = left_run_dir(work)
    bundle, target = vendored
    env = root_cache_env()
    run = " ".join([TEEPY, "run", bundle, "--trust", keys[1], "--allow",
                    os.path.dirname(target)])
    # counted before and after: the host's own /run/teepy, hidden under the bind,
    # is still listed
    count = "grep -c ' /run/teepy tmpfs ' /proc/self/mounts"
    # five rounds, each ending with the mount undone as an admin would (the race a
    # stack needs is narrow)
    script = (f'mount --bind "$1" /run || exit 9; before=$({count}); '
              'for round in 1 2 3 4 5; do '
              f'for i in 1 2 3 4 5 6 7 8; do {run} > /dev/null & done; wait; '
              f'echo $(($({count}) - before)); '
              'while umount /run/teepy 2>/dev/null; do :; done; done')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", run_dir], capture_output=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"1\n" * 5, (r.stdout, r.stderr.decode())


@pytest.mark.skipif(os.geteuid() != 0, reason="root's cache, /run/teepy")
def test_run_teepy_left_stays_where_root_may_not_mount(work, vendored, keys):
    """Root without CAP_SYS_ADMIN (a container, a unit without mount rights): the
    directory stays as it was, and the run says why it has no cache."""
    run_dir = left_run_dir(work)
    bundle, target = vendored
    env = root_cache_env()
    script = ('mount --bind "$1" /run && shift && '
              'capsh --drop=cap_sys_admin -- -c \'exec "$@"\' sh "$@"')
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", run_dir, TEEPY, "run", bundle, "--trust", keys[1], "--allow",
                        os.path.dirname(target), "--print-config"],
                       capture_output=True, timeout=120, env=env)
    err = r.stderr.decode()
    assert r.returncode == EXIT.OK, err
    assert r.stdout == b"42"
    lines = [l for l in err.splitlines() if l.startswith("teepy: warning")]
    assert len(lines) == 1 and "not on a tmpfs" in lines[0], err
    assert os.path.isdir(os.path.join(run_dir, "teepy"))


def test_an_entry_the_checks_refuse_is_made_again(vendored, keys, cache):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    [entry] = entries(cache)
    os.chmod(os.path.join(cache, entry), 0o777)
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert cache_line(r).startswith("miss:")
    assert any("has mode 0777" in l and "made again" in l for l in warnings(r))
    assert os.stat(os.path.join(cache, entry)).st_mode & 0o7777 == 0o755


def test_two_runs_filling_one_entry_both_succeed_with_one_entry(vendored, keys, cache):
    bundle, target = vendored
    env = dict(os.environ, TEEPY_NO_CACHE="0", TEEPY_CACHE_DIR=cache)
    env.pop("TEEPY_TRUSTED_SIGNERS", None)
    cmd = [TEEPY, "run", bundle, "--trust", keys[1], "--allow", os.path.dirname(target)]
    for _ in range(3):
        shutil.rmtree(cache)
        os.mkdir(cache, 0o700)
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == EXIT.OK, err.decode()
            assert out == b"42"
        assert len(entries(cache)) == 1 and not entries(cache)[0].startswith("tmp-")


def test_a_killed_fill_leaves_nothing_a_later_run_uses(vendored, keys, cache):
    """A fill killed with SIGKILL at some point leaves at most a temporary entry,
    which the next fill removes (its pid is gone); the next run works. A fill that
    died mid-way is simulated too, with a half-written temporary entry."""
    bundle, target = vendored
    env = dict(os.environ, TEEPY_NO_CACHE="0", TEEPY_CACHE_DIR=cache)
    env.pop("TEEPY_TRUSTED_SIGNERS", None)
    cmd = [TEEPY, "run", bundle, "--trust", keys[1], "--allow", os.path.dirname(target)]
    for delay in (0.005, 0.02, 0.05):
        shutil.rmtree(cache)
        os.mkdir(cache, 0o700)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        # a dead filler's half-made entry
        half = os.path.join(cache, f"tmp-{p.pid}-0000000000000000")
        if not os.path.exists(half):
            os.makedirs(os.path.join(half, "usr"))
        r = run_vendored(vendored, keys, cache)
        assert r.returncode == EXIT.OK, r.stderr.decode()
        assert r.stdout == b"42"
        made = [e for e in entries(cache) if not e.startswith("tmp-")]
        assert len(made) == 1 and made[0] in cache_line(r)
        # a fill removes a dead filler's temporary entry; a hit (the killed run had
        # finished its entry) leaves it to the next fill or to cache clear
        if cache_line(r).startswith("hit:"):
            assert cache_cmd(cache, "clear").returncode == EXIT.OK
        assert [e for e in entries(cache) if e.startswith("tmp-")] == []


@pytest.fixture
def nobody():
    """(run, directory): teepy as uid 65534 in a directory it owns, with a bundle
    u.tpy of its own building; run(*args, env) runs teepy there."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    d = teepy_copy_for_nobody()
    app = write_app(d, {"svc.py": "import teex\nteex.TEEX_return('ok')\n"})
    os.chmod(app, 0o777)

    def as_nobody(*args, env=None):
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               os.path.join(d, "teepy"), *args], capture_output=True,
                              timeout=120, cwd=d, env=dict({"PATH": "/usr/bin:/bin"}, **(env or {})))
    assert as_nobody("keygen", "-o", "k.key").returncode == EXIT.OK
    b = as_nobody("build", os.path.join(app, "svc.py"), "-o", "u.tpy", "--key", "k.key")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    yield as_nobody
    shutil.rmtree(d, ignore_errors=True)


def test_without_xdg_runtime_dir_a_user_runs_without_cache(nobody):
    """uid 65534 with no XDG_RUNTIME_DIR: no cache, no warning, the run works."""
    r = nobody("run", "u.tpy", "--trust", "k.pub", "--print-config")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == b"ok"
    assert cache_line(r) == "off: no XDG_RUNTIME_DIR to keep a cache in"
    assert not [l for l in warnings(r) if "cache" in l]


def test_a_user_keeps_a_cache_in_xdg_runtime_dir(nobody):
    xdg = tempfile.mkdtemp(prefix="teepy-sealed-xdg-", dir="/dev/shm")
    try:
        os.chown(xdg, 65534, 65534)
        runs = [nobody("run", "u.tpy", "--trust", "k.pub", "--print-config",
                       env={"XDG_RUNTIME_DIR": xdg}) for _ in range(2)]
        for r in runs:
            assert r.returncode == EXIT.OK, r.stderr.decode()
            assert r.stdout == b"ok"
        assert cache_line(runs[0]).startswith(f"miss: the verified files are kept in {xdg}/teepy/")
        assert cache_line(runs[1]).startswith(f"hit: the root is bound read-only from {xdg}/teepy/")
        st = os.stat(os.path.join(xdg, "teepy"))
        assert (st.st_uid, st.st_mode & 0o7777) == (65534, 0o700)
    finally:
        shutil.rmtree(xdg, ignore_errors=True)


def cache_cmd(cache_dir, *args):
    return teepy("cache", *args, env={"TEEPY_CACHE_DIR": cache_dir})


def test_cache_ls_lists_entries_and_clear_removes_them(vendored, keys, cache):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    [entry] = entries(cache)
    r = cache_cmd(cache, "ls")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    [line] = r.stdout.decode().splitlines()
    assert line.startswith(entry) and " files " in line and "used " in line
    assert b"1 entry" in r.stderr
    r = cache_cmd(cache, "clear")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert b"removed 1 entry" in r.stderr
    assert entries(cache) == [] and index_files(cache) == []
    assert cache_cmd(cache, "ls").stdout == b""
    # and the next run makes it again
    assert cache_line(run_vendored(vendored, keys, cache)).startswith("miss:")


def test_cache_clear_keeps_an_entry_a_run_is_using(vendored, keys, cache):
    bundle, target = vendored
    app_dir = os.path.dirname(target)
    env = dict(os.environ, TEEPY_NO_CACHE="0", TEEPY_CACHE_DIR=cache)
    env.pop("TEEPY_TRUSTED_SIGNERS", None)
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    # a run that waits for its input: its entry is in use until it ends
    slow = os.path.join(os.path.dirname(bundle), "slow.tpy")
    app = write_app(os.path.dirname(bundle), {"slow.py": SVC + "import time\ntime.sleep(3)\n"})
    slow = build(os.path.dirname(bundle), keys, os.path.join(app, "slow.py"), "--pythonpath",
                 app_dir, "--include-dir", app_dir, name="slow.tpy")
    p = subprocess.Popen([TEEPY, "run", slow, "--trust", keys[1], "--allow", app_dir],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while len(entries(cache)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    r = cache_cmd(cache, "clear")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert b"removed 1 entry; 1 in use by a run now, kept" in r.stderr, r.stderr
    out, err = p.communicate(timeout=120)
    assert p.returncode == EXIT.OK, err.decode()
    assert out == b"42"
    assert len(entries(cache)) == 1


@pytest.mark.parametrize("flaw", ["mode", "symlink"])
def test_cache_commands_refuse_an_untrusted_cache_dir(work, cache, flaw):
    where = cache
    if flaw == "mode":
        os.chmod(cache, 0o755)
    else:
        where = os.path.join(work, "link")
        os.symlink(cache, where)
    for action in ("ls", "clear"):
        r = cache_cmd(where, action)
        assert r.returncode == EXIT.USAGE
        [line] = r.stderr.decode().splitlines()
        assert line.startswith(f"teepy: cache {where}: "), line


def test_cache_commands_without_a_cache_say_so(work):
    r = cache_cmd(os.path.join("/dev/shm", "teepy-sealed-none-" + os.path.basename(work)), "ls")
    assert r.returncode == EXIT.OK and b"no cache at" in r.stderr


def test_the_least_recently_used_entries_are_evicted_at_the_cap(work, keys, vendored, cache):
    """Three roots of ~10.5 MiB under a 23M cap: the third evicts the one used
    least recently (b, since a was used again after it)."""
    lib = os.path.dirname(vendored[1])
    bundles = {}
    for name in "abc":
        app = write_app(work, {f"svc_{name}.py": SVC})
        bundles[name] = build(work, keys, os.path.join(app, f"svc_{name}.py"), "--pythonpath",
                              lib, "--include-dir", lib, name=f"{name}.tpy")
    keys_of = {}
    for name in ("a", "b", "a", "c"):
        before = set(entries(cache))
        r = run(bundles[name], keys, cache, "--cache-max", "23M", allow=lib)
        assert r.returncode == EXIT.OK, r.stderr.decode()
        keys_of.setdefault(name, (set(entries(cache)) - before) or None)
        time.sleep(0.05)
    assert set(entries(cache)) == keys_of["a"] | keys_of["c"]
    # a root larger than the cap is not cached
    r = run(bundles["b"], keys, cache, "--cache-max", "5M", allow=lib)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert cache_line(r).startswith("off: the root (") and "larger than --cache-max" in cache_line(r)


# --- the index: a later run of the same bundle file checks its signature as the
# interpreter starts, when its bytes are the ones a verified run recorded


def test_a_later_run_checks_the_signature_as_the_interpreter_starts(vendored, keys, cache):
    first = run_vendored(vendored, keys, cache)
    assert first.returncode == EXIT.OK and INDEXED not in cache_line(first)
    [index] = index_files(cache)
    assert os.stat(index).st_mode & 0o777 == 0o600
    [entry] = entries(cache)
    with open(index, "rb") as f:
        assert f.read(65) == entry.encode() + b"\n"
    for _ in range(2):
        r = run_vendored(vendored, keys, cache)
        assert r.returncode == EXIT.OK and r.stdout == b"42", r.stderr.decode()
        assert cache_line(r).startswith("hit:") and INDEXED in cache_line(r)
    assert index_files(cache) == [index]


@pytest.mark.parametrize("flags", [(), ("--scratch", "1M", "--allow-site-packages"),
                                   ("--timeout", "1ms"), ("--timeout", "5ms")],
                         ids=["plain", "flags a bundle warns of", "1 ms", "5 ms"])
def test_an_indexed_run_refuses_a_signer_not_trusted_as_any_run_does(work, vendored, keys, cache,
                                                                       flags):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    other = os.path.join(work, "other.key")
    assert teepy("keygen", "-o", other).returncode == EXIT.OK
    untrusted = (keys[0], os.path.join(work, "other.pub"))
    warm = run_vendored(vendored, untrusted, cache, *flags)
    cold = run_vendored(vendored, untrusted, cache, "--no-cache", *flags)
    assert (warm.returncode, cold.returncode) == (EXIT.BUNDLE, EXIT.BUNDLE), warm.stderr.decode()
    assert warm.stdout == b"" and b"none of the trusted signers" in warm.stderr
    # the same line, and no configuration nor warning printed for a signer not
    # settled, however short the run's clock
    assert warm.stderr == cold.stderr
    # nothing of the refused run is left: the trusted signer's next run is indexed
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.OK and INDEXED in cache_line(r), r.stderr.decode()


def test_an_index_with_other_bytes_is_not_used_and_is_made_again(vendored, keys, cache):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    [index] = index_files(cache)
    with open(index, "rb") as f:
        good = f.read()
    bad = bytearray(good)
    bad[-1] ^= 1  # the signature's last byte
    with open(index, "wb") as f:
        f.write(bad)
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert cache_line(r).startswith("hit:") and INDEXED not in cache_line(r)
    with open(index, "rb") as f:
        assert f.read() == good


def test_an_index_naming_another_entry_is_refused_and_removed(work, vendored, keys, cache):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    [index] = index_files(cache)
    app = write_app(work, {"svc.py": SVC + "# another manifest\n"})
    lib = os.path.dirname(vendored[1])
    other = build(work, keys, os.path.join(app, "svc.py"), "--pythonpath", lib,
                  "--include-dir", lib, name="other.tpy")
    assert run(other, keys, cache, allow=lib).returncode == EXIT.OK
    [other_entry] = [e for e in entries(cache) if e not in open(index, "rb").read(64).decode()]
    with open(index, "rb") as f:
        data = f.read()
    with open(index, "wb") as f:
        f.write(other_entry.encode() + data[64:])
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.INTERNAL and r.stdout == b"", r.stderr.decode()
    assert b"its index named entry" in r.stderr
    assert not os.path.exists(index)
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.OK and r.stdout == b"42", r.stderr.decode()


def test_an_index_naming_a_gone_entry_is_made_again(vendored, keys, cache):
    assert run_vendored(vendored, keys, cache).returncode == EXIT.OK
    [index] = index_files(cache)
    [entry] = entries(cache)
    shutil.rmtree(os.path.join(cache, entry))  # evicted behind the index's back
    r = run_vendored(vendored, keys, cache)
    assert r.returncode == EXIT.OK and r.stdout == b"42", r.stderr.decode()
    assert cache_line(r).startswith("miss:") and INDEXED not in cache_line(r)
    assert index_files(cache) == [index] and entries(cache) == [entry]
    r = run_vendored(vendored, keys, cache)
    assert INDEXED in cache_line(r)
