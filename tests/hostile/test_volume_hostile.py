"""An output volume gives the service one writable place, its /out: it still cannot
write anywhere else, execute what it writes there, or get teepy to follow a link,
read a FIFO or seal a name the index cannot hold; /out is capped by --output-max and
its pages count in the memory limit. Proven from Python and with raw system calls."""
import errno
import os
import resource
import textwrap

import pytest

import engine
from exit_codes import EXIT
from hostile_prelude import NOEXEC_PROBE, assert_noexec, failed, hostile
from volumes import ls, one_line, snapshot

WRITE_DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)
# a rename or link from /out to another mount: refused by the mount boundary or Landlock
CROSS_DENIED = WRITE_DENIED + (errno.EXDEV,)


def first_version(run, place, script):
    """Version 1 of the volume, holding keep.txt."""
    s = script('import teex\nopen("/out/keep.txt", "w").write("version 1")\n'
               'teex.TEEX_return("ok")\n', name="first.py")
    r = run("run", s, *place.flags)
    assert r.returncode == EXIT.OK, r
    assert ls(run, place) == (1, [("keep.txt", 9)])


def assert_nothing_published(run, place, r, before, existing):
    assert not [l for l in r.err_lines if l.startswith("teepy: output volume")], r
    assert snapshot(place.dir) == before
    assert place.siblings() == (["out"] if existing else [])
    if existing:
        assert ls(run, place) == (1, [("keep.txt", 9)])


# ---------------------------------------------------------------- writing elsewhere


def test_with_an_output_volume_writes_outside_out_still_fail(as_user, run, tmp, place, sentinel):
    """Python's open, and raw openat(O_CREAT), mkdirat, symlinkat, mknodat, renameat2
    and linkat: into /, the script's directory, /etc, /usr, the host's /tmp (no
    --scratch) they fail; into /out they work, and what was made there is published."""
    tmp.write("data.txt", "original")
    s = hostile(
        script=tmp.script,
        body="""
        here = os.path.dirname(os.path.abspath(__file__))
        targets = {"root": ROOT_FILE, "script_dir": os.path.join(here, "new.txt"),
                   "existing": os.path.join(here, "data.txt"), "etc": "/etc/teepy-pwned",
                   "usr": USR_FILE, "tmp": TMP_FILE, "etc_passwd": "/etc/passwd"}
        out = {"open": {}, "openat": {}, "mkdirat": {}, "symlinkat": {}, "mknodat": {}}
        for k, p in targets.items():
            def w(p=p):
                with open(p, "a") as f:
                    f.write("pwned")
                return "written"
            out["open"][k] = attempt(w)
            out["openat"][k] = sc(257, AT_FDCWD, p.encode(), os.O_CREAT | os.O_WRONLY, 0o644)
            out["mkdirat"][k] = sc(258, AT_FDCWD, (p + ".d").encode(), 0o755)
            out["symlinkat"][k] = sc(266, b"/out", AT_FDCWD, (p + ".l").encode())
            out["mknodat"][k] = sc(259, AT_FDCWD, (p + ".n").encode(), 0o100644, 0)
        with open("/out/moved.txt", "w") as f:
            f.write("stays in /out")
        out["rename_out"] = sc(316, AT_FDCWD, b"/out/moved.txt", AT_FDCWD,
                               (here + "/moved.txt").encode(), 0)
        out["rename_tmp"] = sc(316, AT_FDCWD, b"/out/moved.txt", AT_FDCWD, TMP_FILE.encode(), 0)
        out["link_out"] = sc(265, AT_FDCWD, b"/out/moved.txt", AT_FDCWD,
                             (here + "/linked.txt").encode(), 0)
        out["link_in"] = sc(265, AT_FDCWD, (here + "/data.txt").encode(), AT_FDCWD,
                            b"/out/linked-in.txt", 0)
        # what works: /out is writable, by Python and by raw calls
        out["in_open"] = attempt(lambda: open("/out/ok.txt", "w").write("written by open"))
        fd = sc(257, AT_FDCWD, b"/out/raw.txt", os.O_CREAT | os.O_WRONLY, 0o644)
        out["in_openat"] = fd["ret"] >= 0
        if fd["ret"] >= 0:
            os.write(fd["ret"], b"raw")
            os.close(fd["ret"])
        out["in_mkdirat"] = sc(258, AT_FDCWD, b"/out/rawdir", 0o755)
        open("/out/rawdir/inside.txt", "w").write("in a raw directory")
        report(out)
        """,
        ROOT_FILE=sentinel(directory="/"),
        USR_FILE=sentinel(directory=engine.STDLIB),
        TMP_FILE=sentinel(),
    )
    here_before = snapshot(tmp)
    r = run("run", s, *place.flags)
    out = r.json()
    for how in ("open", "openat", "mkdirat", "symlinkat", "mknodat"):
        for k, res in out[how].items():
            if how == "open":
                assert failed(res) and res[1] in WRITE_DENIED, (how, k, res)
            else:
                assert res["ret"] == -1 and res["errno"] in WRITE_DENIED, (how, k, res)
    for k in ("rename_out", "rename_tmp", "link_out", "link_in"):
        assert out[k]["ret"] == -1 and out[k]["errno"] in CROSS_DENIED, (k, out)
    assert out["in_open"] == {"ok": 15} and out["in_openat"] is True, out
    assert out["in_mkdirat"] == {"ret": 0, "errno": 0}, out
    assert snapshot(tmp) == here_before
    assert ls(run, place) == (1, [("moved.txt", 13), ("ok.txt", 15), ("raw.txt", 3),
                                     ("rawdir/inside.txt", 18)])


def test_the_volume_and_its_key_are_not_in_the_sandbox(as_user, run, tmp, place):
    """The service sees its empty /out, not DIR, the sealed files, the index or the key."""
    first_version(run, place, tmp.script)
    secret = open(place.key).read().split("\n")[1]
    s = hostile(
        tmp.script,
        """
        seen = {}
        for p in (DIR, DIR + "/index.tpv", KEY, ROOT):
            seen[p] = [os.path.lexists(p), attempt(lambda: open(p, "rb").read(16).hex())]
        report({"seen": seen, "out": os.listdir("/out"),
                "env": [k for k, v in os.environ.items() if SECRET in v or "volume" in k.lower()]})
        """,
        DIR=str(place.dir), KEY=str(place.key), ROOT=str(place.root), SECRET=secret,
    )
    r = run("run", s, *place.flags)
    out = r.json()
    for p, (exists, opened) in out["seen"].items():
        assert exists is False and opened[:2] == ["FileNotFoundError", errno.ENOENT], (p, out)
    assert out["out"] == [] and out["env"] == [], out
    assert secret.encode() not in r.stdout + r.stderr


def test_scratch_and_out_are_apart_and_only_out_is_published(run, tmp, place):
    s = hostile(
        tmp.script,
        """
        open("/tmp/scratch.txt", "w").write("scratch only")
        open("/out/out.txt", "w").write("published")
        report({"tmp": sorted(os.listdir("/tmp")), "out": sorted(os.listdir("/out"))})
        """,
    )
    out = run("run", s, "--scratch", "1M", *place.flags).json()
    assert "scratch.txt" in out["tmp"] and "out.txt" not in out["tmp"], out
    assert out["out"] == ["out.txt"], out
    assert ls(run, place) == (1, [("out.txt", 9)])


# ---------------------------------------------------------------- nothing in /out runs


def test_out_is_noexec_nosuid_nodev_and_capped_by_output_max(as_user, run, tmp, place):
    """What the service writes into /out cannot be executed, nor mapped executable (a
    library copied there does not load); /out holds --output-max."""
    s = hostile(
        tmp.script,
        NOEXEC_PROBE + textwrap.dedent("""
        shutil.copy(ENGINE_EXE, "/out/python3")
        os.chmod("/out/python3", 0o755)
        out = noexec_probe("/out")
        st = os.statvfs("/out")
        out.update(size=st.f_blocks * st.f_frsize,
                   execv=attempt(os.execv, "/out/python3", ["python3", "-c", "print(1)"]),
                   execve_raw=sc(59, b"/out/python3", None, None))
        report(out)
        """),
    )
    out = run("run", s, "--output-max", "8M", *place.flags).json()
    assert_noexec(out)
    assert out["size"] == 8 << 20, out
    assert out["execv"][:2] == ["PermissionError", errno.EPERM], out
    assert out["execve_raw"] == {"ret": -1, "errno": errno.EPERM}, out


@pytest.mark.parametrize("memory, output_max, size", [("256M", None, 64 << 20),
                                                      ("1G", None, 256 << 20),
                                                      ("256M", "100M", 100 << 20)])
def test_out_holds_a_quarter_of_the_memory_by_default(run, tmp, place, memory, output_max, size):
    s = hostile(tmp.script, 'st = os.statvfs("/out")\nreport(st.f_blocks * st.f_frsize)\n')
    extra = ["--output-max", output_max] if output_max else []
    assert run("run", s, "--memory", memory, *extra, *place.flags).json() == size


def test_writing_past_output_max_is_enospc_inside(as_user, run, tmp, place):
    """The service is told (ENOSPC), may clean up, and what it leaves is published."""
    s = hostile(
        tmp.script,
        """
        def fill():
            with open("/out/big.bin", "wb") as f:
                for i in range(4):
                    f.write(b"\\x07" * (1 << 20))
                    f.flush()
            return "written"
        res = attempt(fill)
        os.unlink("/out/big.bin")
        open("/out/small.txt", "w").write("after ENOSPC")
        report(res)
        """,
    )
    r = run("run", s, "--output-max", "2M", *place.flags)
    assert r.json()[:2] == ["OSError", errno.ENOSPC], r
    assert ls(run, place) == (1, [("small.txt", 12)])


def test_output_max_is_rounded_up_to_whole_pages_for_the_publish_too(as_user, run, tmp, place):
    """--output-max 10000 is a /out of three pages (12288 bytes): a 12000-byte file
    fits and is published (it fails, "sparse files or hard links", where the publish
    counts against the 10000 given), 12289 bytes are ENOSPC inside."""
    s = hostile(
        tmp.script,
        """
        def write(name, size):
            with open("/out/" + name, "wb") as f:
                f.write(b"\\x0a" * size)
            return size
        st = os.statvfs("/out")
        over = attempt(write, "over.bin", 12289)
        os.unlink("/out/over.bin")
        report({"size": st.f_blocks * st.f_frsize, "over": over,
                "fits": attempt(write, "a.bin", 12000)})
        """,
    )
    out = run("run", s, "--output-max", "10000", *place.flags).json()
    assert out["size"] == 12288 and out["fits"] == {"ok": 12000}, out
    assert out["over"][:2] == ["OSError", errno.ENOSPC], out
    assert ls(run, place) == (1, [("a.bin", 12000)])
    c = run("volume", "cat", place.dir, "a.bin", "--volume-key", place.key)
    assert (c.returncode, c.stdout) == (EXIT.OK, b"\x0a" * 12000), c


# ---------------------------------------------------------------- what teepy will not seal


LINK = """
import os, sys, teex
os.makedirs("/out/sub")
open("/out/a.txt", "w").write("a regular file")
os.symlink(TARGET, "/out/" + NAME)
teex.TEEX_return("left a link")
"""


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
@pytest.mark.parametrize("name, target", [
    ("evil", "/etc/shadow"),
    ("evil", "/etc"),
    ("evil", "HOST_SECRET"),
    ("evil", "HOST_DIR"),
    ("evil", "a.txt"),
    ("sub/evil", "../a.txt"),
    ("evil", "/nonexistent-teepy"),
])
def test_a_link_in_out_publishes_nothing(as_user, run, tmp, place, name, target, existing):
    """Whatever it points to (a host file, a host directory, a file in /out, nothing),
    a symbolic link in /out fails the run in one line naming it; teepy never follows
    it: nothing of its target reaches DIR or the output."""
    secret_dir = tmp.make_sibling("secret")
    marker = b"HOST-SECRET-MARKER-" + os.urandom(8).hex().encode()
    secret = secret_dir.write("secret.txt", marker)
    target = {"HOST_SECRET": str(secret), "HOST_DIR": str(secret_dir)}.get(target, target)
    if existing:
        first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = tmp.script(LINK.replace("TARGET", repr(target)).replace("NAME", repr(name)))
    r = run("run", s, *place.flags)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    line = one_line(r)
    assert name in line, line
    assert marker not in r.stdout + r.stderr
    assert_nothing_published(run, place, r, before, existing)
    for root, _dirs, files in os.walk(place.root):
        for n in files:
            assert marker not in open(os.path.join(root, n), "rb").read(), n


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_a_fifo_in_out_fails_the_run_without_hanging(as_user, run, tmp, place, existing):
    if existing:
        first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = tmp.script('import os, teex\nopen("/out/a.txt", "w").write("a")\nos.mkfifo("/out/fifo")\n'
                   'teex.TEEX_return("left a fifo")\n')
    r = run("run", s, *place.flags, timeout=60)  # a teepy that opened the FIFO would hang
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert "fifo" in one_line(r)
    assert_nothing_published(run, place, r, before, existing)


def test_a_socket_in_out_fails_the_run(as_user, run, tmp, place):
    first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = hostile(
        tmp.script,
        """
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        report(attempt(s.bind, "/out/sock"))
        """,
    )
    r = run("run", s, *place.flags)
    if r.stdout == b'{"ok": null}':  # the socket file exists: teepy refuses it
        assert r.returncode == EXIT.SERVICE_FAILED, r
        assert "sock" in one_line(r)
        assert_nothing_published(run, place, r, before, True)
    else:  # no socket could be made: nothing to refuse, the (empty) /out is published
        assert r.json()[:2] in (["PermissionError", errno.EPERM],
                                ["PermissionError", errno.EACCES]), r
        assert ls(run, place) == (2, [])


def test_no_device_node_can_be_made_in_out(as_user, run, tmp, place):
    s = hostile(
        tmp.script,
        """
        S_IFCHR, S_IFBLK = 0o020000, 0o060000
        report({"chr": attempt(os.mknod, "/out/null", 0o666 | S_IFCHR, os.makedev(1, 3)),
                "blk": sc(259, AT_FDCWD, b"/out/sda", 0o666 | S_IFBLK, os.makedev(8, 0))})
        """,
    )
    out = run("run", s, *place.flags).json()
    assert out["chr"][:2] == ["PermissionError", errno.EPERM], out
    assert out["blk"] == {"ret": -1, "errno": errno.EPERM}, out
    assert ls(run, place) == (1, [])


@pytest.mark.parametrize("name", ["bad\x01name", "bad\nname", "bad\x1b[31mname", "bad\x7fname",
                                  "/".join(["bad" + "d" * 197] * 6)],
                         ids=["control", "newline", "escape", "delete", "longer-than-1024"])
def test_a_name_the_index_cannot_hold_publishes_nothing(as_user, run, tmp, place, name):
    """In one line, without the raw control bytes on the terminal."""
    first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = tmp.script("import os, teex\npath = os.path.join('/out', %r)\n"
                   "os.makedirs(os.path.dirname(path), exist_ok=True)\n"
                   "open(path, 'w').write('x')\nopen('/out/fine.txt', 'w').write('fine')\n"
                   "teex.TEEX_return('done')\n" % name)
    r = run("run", s, *place.flags)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert "bad" in one_line(r)
    assert b"\x1b" not in r.stderr and b"\x01" not in r.stderr and b"\x7f" not in r.stderr, r
    assert_nothing_published(run, place, r, before, True)


@pytest.mark.slow
def test_more_files_than_an_index_holds_publish_nothing(run, tmp, place):
    first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = tmp.script('import teex\nfor i in range(100001):\n    open("/out/%06d" % i, "w").close()\n'
                   'teex.TEEX_return("many")\n')
    r = run("run", s, *place.flags, timeout=180)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert "100000" in one_line(r)
    assert_nothing_published(run, place, r, before, True)


# Ways to hold more bytes in /out's names than its tmpfs holds in pages: a sparse
# file (a hole takes no page) and hard links (one file's pages, many names).
AMPLIFY = {
    "sparse": """
        def make():
            with open("/out/sparse.bin", "wb") as f:
                f.write(b"head")
                f.truncate(256 << 20)
            return os.stat("/out/sparse.bin").st_size
        """,
    "hole-by-seek": """
        def make():
            fd = os.open("/out/holes.bin", os.O_WRONLY | os.O_CREAT, 0o600)
            os.lseek(fd, 256 << 20, os.SEEK_SET)
            os.write(fd, b"tail")
            os.close(fd)
            return os.stat("/out/holes.bin").st_size
        """,
    "hard-links": """
        def make():
            with open("/out/f.bin", "wb") as f:
                f.write(b"\\x09" * (4 << 20))
            for i in range(16):
                os.link("/out/f.bin", "/out/link%d.bin" % i)
            return os.stat("/out/f.bin").st_nlink
        """,
}


@pytest.mark.parametrize("how", AMPLIFY)
def test_the_volume_never_holds_more_than_output_max(as_user, run, tmp, place, how):
    """--output-max caps what a run may leave on the host's disk: a service whose
    /out names more bytes than that (in holes, or by hard links to one file) has the
    run fail with nothing published, or is stopped inside; never are hundreds of
    MiB sealed into DIR under an 8 MiB cap."""
    s = hostile(tmp.script, AMPLIFY[how] + "report(attempt(make))\n")
    r = run("run", s, "--output-max", "8M", *place.flags, timeout=180)
    if r.returncode == EXIT.OK:
        total = sum(size for _name, size in ls(run, place)[1])
        assert total <= 8 << 20, (r, f"{total} bytes published under --output-max 8M")
    else:
        assert r.returncode == EXIT.SERVICE_FAILED, r
        one_line(r)
        assert not os.path.lexists(place.dir), os.listdir(place.dir)
    assert place.siblings() in ([], ["out"])


# Makes names in /out (MAKE(i): the i-th) until one fails, or one more than /out has
# inodes; reports its inodes, the names made and the errno that stopped it.
UNTIL_FULL = """
st = os.statvfs("/out")
made, error = 0, None
while made <= st.f_files:
    try:
        MAKE(made)
    except OSError as e:
        error = e.errno
        break
    made += 1
report({"inodes": st.f_files, "made": made, "errno": error})
"""


def until_full(script, make):
    return hostile(script, "def MAKE(i):\n    " + make + "\n" + UNTIL_FULL)


@pytest.mark.parametrize("output_max, size", [("1M", 1 << 20), ("10000", 12288)])
def test_out_has_an_inode_a_page_and_1024_more(as_user, run, tmp, place, output_max, size):
    """Empty files cost no page: what bounds them (and the .tpf files a run leaves
    on the host's disk) is /out's inodes, one per 4 KiB of --output-max (rounded up)
    and 1024 more. The service gets ENOSPC at that many; what it made is published."""
    s = until_full(tmp.script, 'open("/out/%05d" % i, "w").close()')
    out = run("run", s, "--output-max", output_max, *place.flags, timeout=120).json()
    assert out["inodes"] == size // 4096 + 1024, out
    assert out["errno"] == errno.ENOSPC and 0 < out["made"] <= out["inodes"], out
    version, files = ls(run, place)
    assert version == 1 and len(files) == out["made"], (out, len(files))
    assert len(os.listdir(place.dir)) == out["made"] + 1  # and the index


def test_hard_links_never_publish_more_names_than_out_has_inodes(as_user, run, tmp, place):
    """One empty file linked again and again: tmpfs counts each link as an inode, so
    the service gets ENOSPC before it has more names than /out's inodes and what it
    made is published; a kernel that let it make more has teepy fail the run (exit 1,
    "hard links") with nothing published. Never are more names than inodes sealed."""
    first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    s = until_full(tmp.script,
                   'os.link("/out/f", "/out/l%05d" % i) if i else open("/out/f", "w").close()')
    r = run("run", s, "--output-max", "1M", *place.flags, timeout=120)
    if r.returncode == EXIT.OK:
        out = r.json()
        assert out["inodes"] == 1280 and out["errno"] == errno.ENOSPC, out
        version, files = ls(run, place)
        assert version == 2 and len(files) == out["made"] <= out["inodes"], (out, len(files))
    else:
        assert r.returncode == EXIT.SERVICE_FAILED, r
        assert "hard links" in one_line(r), r
        assert_nothing_published(run, place, r, before, True)


def test_directories_nested_deep_are_published_by_a_teepy_of_few_descriptors(as_user, run, tmp,
                                                                             place):
    """400 directories, one in the other, a file at the bottom: teepy, started with
    a soft RLIMIT_NOFILE of 64 (not a hard one: teepy gives the service a limit of
    its own, above 64), walks /out one directory at a time and publishes it. A walk
    holding a descriptor for each level it is in runs out of them: EMFILE, exit 70."""
    deep = "a/" * 400 + "f.txt"
    s = tmp.script("import os, teex\nos.makedirs(os.path.dirname('/out/' + DEEP))\n"
                   "open('/out/' + DEEP, 'w').write('at the bottom')\nteex.TEEX_return('ok')\n"
                   .replace("DEEP", repr(deep)))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert len(os.listdir("/proc/self/fd")) < 32  # what the test process itself holds
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        r = run("run", s, *place.flags)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    assert ls(run, place) == (1, [(deep, 13)])
    c = run("volume", "cat", place.dir, deep, "--volume-key", place.key)
    assert (c.returncode, c.stdout) == (EXIT.OK, b"at the bottom"), c


@pytest.mark.parametrize("how", ["file", "directory", "out"])
def test_what_the_service_made_unreadable_is_published_whole_or_refused(as_user, run, tmp, place,
                                                                        how):
    """A file of mode 000, a directory of mode 000 (a file in it), /out itself made
    000: the run either publishes every file with its bytes, or fails in one line and
    publishes nothing; never part of them."""
    first_version(run, place, tmp.script)
    before = snapshot(place.dir)
    locked = {"file": "/out/locked/inner.txt", "directory": "/out/locked", "out": "/out"}[how]
    s = tmp.script(f"""
import os, teex
os.makedirs("/out/locked")
open("/out/locked/inner.txt", "w").write("inner")
open("/out/plain.txt", "w").write("plain")
try:
    os.chmod({locked!r}, 0)
except OSError:
    pass
teex.TEEX_return("done")
""")
    r = run("run", s, *place.flags)
    if r.returncode == EXIT.OK:
        assert ls(run, place) == (2, [("locked/inner.txt", 5), ("plain.txt", 5)])
        c = run("volume", "cat", place.dir, "locked/inner.txt", "--volume-key", place.key)
        assert (c.returncode, c.stdout) == (EXIT.OK, b"inner"), c
    else:
        assert r.returncode == EXIT.SERVICE_FAILED, r
        one_line(r)
        assert_nothing_published(run, place, r, before, True)


# ---------------------------------------------------------------- memory


@pytest.mark.slow
def test_files_in_out_count_in_the_memory_limit(as_user, run, tmp, place):
    """150 MiB in /out and 120 MiB more on the heap do not fit in --memory 256M: with
    a cgroup the tmpfs pages are charged and the service is killed; without one the
    address space left beside --output-max is too small. Either way exit 5; the
    service that writes the same into /out and holds only 40 MiB lives."""
    fill = """
    block = b"\\x05" * (1 << 20)
    with open("/out/fill.bin", "wb") as f:
        for i in range(150):
            f.write(block)
    held = b"\\x06" * (HELD << 20)
    report("survived")
    """
    # PyPy maps about 70 MiB more before it runs: a larger limit, still overrun
    memory, held = ("384M", 260) if engine.PYPY else ("256M", 120)
    r = run("run", hostile(tmp.script, fill, HELD=held), "--memory", memory, "--output-max", "200M",
            *place.flags)
    assert r.returncode == EXIT.MEMORY, r
    assert "memory limit exceeded" in r.err
    assert not os.path.lexists(place.dir)
    r = run("run", hostile(tmp.script, fill, HELD=16, name="lives.py"), "--memory", memory,
            "--output-max", "200M", *place.flags)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"survived"'), r
    assert ls(run, place) == (1, [("fill.bin", 150 << 20)])
