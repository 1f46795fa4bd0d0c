"""Reads only of libraries, the script's directory and allowed paths; no writes
anywhere (a --scratch /tmp excepted), proven from Python and with raw system calls."""
import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import engine
from exit_codes import EXIT, landlock_abi
from hostile_prelude import NOEXEC_PROBE, assert_noexec, failed, hostile
from supervision import WAITING, listing, waiting_root

WRITE_DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)
# What the sandbox's root may hold: the interpreter and libraries, teepy's own
# runtime directory, devices, and the first component of the script's directory.
ALLOWED_TOP = {"usr", "lib", "lib64", "lib32", "libx32", "bin", "sbin", "dev", "tmp", ".teepy",
               "etc"}  # etc: the runtime's user database (test_etc_passwd_is_the_runtimes_...)
HOST_ONLY_TOP = {"home", "root", "proc", "sys", "var", "boot", "run", "srv", "opt", "mnt",
                 "media", "work", "snap"}


def snapshot(d):
    """name -> (size, mode, mtime_ns, content) for every file under d."""
    out = {}
    for p in sorted(Path(d).rglob("*")):
        st = p.lstat()
        out[str(p)] = (st.st_size, st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


# ---------------------------------------------------------------- reading


def test_etc_passwd_is_the_runtimes_naming_no_host_account(as_user, run, script):
    """/etc holds a user database teepy writes (the service's own uid and gid, and
    root and nobody, which every Unix has), none of the host's accounts, and nothing
    else of the host's /etc: the same through raw openat and read system calls as
    through Python's open()."""
    s = hostile(
        script,
        """
        import pwd, grp, getpass, pathlib

        def raw_read(path):
            opened = sc(257, AT_FDCWD, path, os.O_RDONLY, 0)      # SYS_openat
            if opened["ret"] < 0:
                return opened
            buf, data = ctypes.create_string_buffer(4096), b""
            while True:
                n = sc(0, opened["ret"], buf, 4096)["ret"]         # SYS_read
                if n <= 0:
                    break
                data += buf.raw[:n]
            sc(3, opened["ret"])                                   # SYS_close
            return {"data": data.decode("utf-8", "replace")}

        report({"passwd": open("/etc/passwd").read(),
                "raw_passwd": raw_read(b"/etc/passwd"),
                "group": open("/etc/group").read(),
                "etc": attempt(os.listdir, "/etc"),
                "me": list(pwd.getpwuid(os.getuid()))[:4],
                "accounts": len(pwd.getpwall()), "groups": len(grp.getgrall()),
                "user": getpass.getuser(), "home": str(pathlib.Path.home()),
                "raw_shadow": sc(257, AT_FDCWD, b"/etc/shadow", os.O_RDONLY, 0),
                "hosts": attempt(lambda: open("/etc/hosts").read()),
                "write": attempt(lambda: open("/etc/passwd", "a").write("x:x:0:0::/:/bin/sh"))})
        """,
    )
    out = run("run", s).json()
    uid, gid = out["me"][2], out["me"][3]
    # the caller's ids, but root's service is an ordinary user (uid and gid 1000)
    assert (uid, gid) == ((1000, 1000) if as_user == "root" else (65534, 65534)), out
    name = "teepy"
    # the service's own account, and root and nobody, which every Unix has
    nobody = "" if uid == 65534 else "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    assert out["passwd"] == ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                             f"{name}:x:{uid}:{gid}:{name}:/:/usr/sbin/nologin\n" + nobody), out
    assert out["raw_passwd"] == {"data": out["passwd"]}, out
    with open("/etc/passwd") as f:
        host = f.read()
    assert len(host.splitlines()) > 1 and out["raw_passwd"]["data"] != host, out
    assert out["group"] == ("root:x:0:\n" f"teepy:x:{gid}:\n"
                            + ("" if gid == 65534 else "nogroup:x:65534:\n")), out
    # what /etc holds is listed from outside (test_etc_holds_only_alternatives_...):
    # it is none of the trees Landlock lets the service read, only its two files are
    assert out["etc"][:2] == ["PermissionError", errno.EACCES], out
    assert out["accounts"] == out["groups"] == (2 if uid == 65534 else 3), out
    assert out["user"] == name and out["home"] == "/", out
    assert out["raw_shadow"] == {"ret": -1, "errno": errno.ENOENT}, out
    assert out["hosts"][:2] == ["FileNotFoundError", errno.ENOENT], out
    assert out["write"][1] in WRITE_DENIED, out


def test_home_of_the_user_database_is_scratch_when_there_is_one(run, script):
    s = hostile(script, "import pathlib\nreport(str(pathlib.Path.home()))\n")
    assert run("run", s, "--scratch", "1M").json() == "/tmp"


def test_root_lists_only_expected_directories(as_user, start, script):
    """The mount namespace: the root holds nothing of the host's top level (listed
    from outside; the service itself may not list /)."""
    with waiting_root(start("run", script(WAITING))) as root:
        top = set(listing(root, "/"))
    assert not (top & HOST_ONLY_TOP), f"host directories visible: {sorted(top & HOST_ONLY_TOP)}"
    assert top <= ALLOWED_TOP, f"unexpected top-level entries: {sorted(top - ALLOWED_TOP)}"
    assert "usr" in top


# the directories of the root that lie above every tree the service may read
ABOVE_THE_TREES = ("/", "/usr", "/usr/lib", "/etc", "/etc/alternatives", "/dev", "/tmp")


def test_directories_above_the_readable_trees_cannot_be_listed(as_user, run, tmp, script):
    """Landlock handles the read rights and grants them only on the trees the root
    shows (the stdlib, the libraries, the script's directory, the devices ...): the
    directories between them and / can be walked through, not opened, whether by
    Python or by raw open and openat; the trees themselves read as before. (With
    an allowed path, so that /etc/alternatives is there too.)"""
    s = hostile(
        script,
        """
        import sysconfig
        def raw(nr, path):
            args = (path.encode(), os.O_RDONLY | os.O_DIRECTORY, 0)
            res = sc(nr, *((AT_FDCWD,) + args if nr == 257 else args))
            if res["ret"] >= 0:
                os.close(res["ret"])
            return res
        out = {}
        for d in ABOVE:
            out[d] = {"listdir": attempt(os.listdir, d),
                      "scandir": attempt(lambda: [e.name for e in os.scandir(d)]),
                      "open": attempt(os.open, d, os.O_RDONLY | os.O_DIRECTORY),
                      "openat": raw(257, d), "open(2)": raw(2, d),
                      "stat": attempt(lambda: os.stat(d).st_nlink > 0)}
        here = os.path.dirname(os.path.abspath(__file__))
        stdlib = sysconfig.get_paths()["stdlib"]
        report({"above": out,
                "here": attempt(os.listdir, here),
                "stdlib": attempt(lambda: "os.py" in os.listdir(stdlib)),
                "stdlib_raw": raw(257, stdlib),
                "runtime": attempt(os.listdir, "/.teepy"),
                "passwd": attempt(lambda: open("/etc/passwd").read().count("\\n")),
                "urandom": attempt(lambda: len(open("/dev/urandom", "rb").read(8)))})
        """,
        ABOVE=ABOVE_THE_TREES,
    )
    out = run("run", s, "--allow", tmp.make_sibling("allowed")).json()
    for d, res in out["above"].items():
        for how in ("listdir", "scandir", "open"):
            assert res[how][:2] == ["PermissionError", errno.EACCES], (d, how, res)
        for how in ("openat", "open(2)"):
            assert res[how] == {"ret": -1, "errno": errno.EACCES}, (d, how, res)
        assert res["stat"] == {"ok": True}, (d, res)  # there, only not readable
    assert out["here"] == {"ok": ["svc.py"]}, out
    assert out["stdlib"] == {"ok": True} and out["stdlib_raw"]["ret"] >= 0, out
    assert len(out["runtime"]["ok"]) == 1, out
    assert out["passwd"]["ok"] >= 2 and out["urandom"] == {"ok": 8}, out


def test_host_proc_and_devices_not_readable(run, script):
    s = hostile(
        script,
        """
        out = {}
        for p in ("/proc/1/environ", "/proc/self/mounts", "/proc/self/environ", "/proc/1/cmdline",
                  "/proc/kcore", "/sys/kernel/notes", "/dev/mem", "/dev/kmsg", "/dev/sda"):
            out[p] = attempt(lambda: open(p, "rb").read(64).hex())
        out["proc_dir"] = attempt(os.listdir, "/proc")
        out["dev_dir"] = attempt(os.listdir, "/dev")
        report(out)
        """,
    )
    out = run("run", s).json()
    for p in ("/proc/1/environ", "/proc/self/mounts", "/proc/self/environ", "/proc/1/cmdline",
              "/proc/kcore", "/sys/kernel/notes", "/dev/mem", "/dev/kmsg", "/dev/sda", "proc_dir",
              "dev_dir"):
        assert failed(out[p]), f"{p} readable: {out[p]}"
    # what /dev holds (its five devices alone): test_devices_read_only_null_writable


def test_script_directory_visible_sibling_host_directory_not(as_user, run, start, tmp, script):
    tmp.write("data.txt", "beside the script")
    hidden = tmp.make_sibling("hidden")
    hidden.write("secret.txt", "host secret")
    s = hostile(
        script,
        """
        here = os.path.dirname(os.path.abspath(__file__))
        report({"listing": sorted(os.listdir(here)),
                "data": open(os.path.join(here, "data.txt")).read(),
                "hidden_exists": os.path.exists(HIDDEN),
                "hidden_read": attempt(lambda: open(HIDDEN + "/secret.txt").read()),
                "tests_exist": os.path.exists(TEST_FILE)})
        """,
        HIDDEN=str(hidden),
        TEST_FILE=str(Path(__file__).resolve()),
    )
    out = run("run", s).json()
    assert {"data.txt", "svc.py"} <= set(out["listing"])
    assert out["data"] == "beside the script"
    assert out["hidden_exists"] is False
    assert out["hidden_read"][0] == "FileNotFoundError", out
    assert out["tests_exist"] is False
    with waiting_root(start("run", script(WAITING, name="waiting.py"))) as root:
        in_tmp = listing(root, "/tmp")
    assert in_tmp == [tmp.name], f"other host /tmp entries visible: {in_tmp}"


def test_allow_makes_directory_readable_not_writable(as_user, run, tmp, script):
    allowed = tmp.make_sibling("allowed")
    allowed.write("model.bin", b"\x00weights\xff")
    before = snapshot(allowed)
    s = hostile(
        script,
        """
        report({"read": open(ALLOWED + "/model.bin", "rb").read().hex(),
                "listing": sorted(os.listdir(ALLOWED)),
                "write_new": attempt(lambda: open(ALLOWED + "/new.txt", "w").write("x")),
                "append": attempt(lambda: open(ALLOWED + "/model.bin", "ab").write(b"x")),
                "mkdir": attempt(os.mkdir, ALLOWED + "/sub"),
                "unlink": attempt(os.unlink, ALLOWED + "/model.bin")})
        """,
        ALLOWED=str(allowed),
    )
    out = run("run", s, "--allow", allowed).json()
    assert bytes.fromhex(out["read"]) == b"\x00weights\xff"
    assert out["listing"] == ["model.bin"]
    for key in ("write_new", "append", "mkdir", "unlink"):
        assert failed(out[key]) and out[key][1] in WRITE_DENIED, f"{key}: {out[key]}"
    assert snapshot(allowed) == before


def test_allow_single_file_shows_only_that_file(run, tmp, script):
    d = tmp.make_sibling("onefile")
    wanted = d.write("wanted.txt", "yes")
    d.write("other.txt", "no")
    s = hostile(
        script,
        """
        report({"wanted": open(WANTED).read(),
                "other": attempt(lambda: open(OTHER).read())})
        """,
        WANTED=str(wanted),
        OTHER=str(d / "other.txt"),
    )
    out = run("run", s, "--allow", wanted).json()
    assert out["wanted"] == "yes"
    assert out["other"][0] == "FileNotFoundError", out


def test_pythonpath_dir_is_importable(run, tmp, script):
    lib = tmp.make_sibling("lib")
    lib.write("helper_mod_xyz.py", "VALUE = 'from pythonpath'\n")
    s = hostile(script, "import helper_mod_xyz\nreport(helper_mod_xyz.VALUE)\n")
    assert run("run", s, "--pythonpath", lib).json() == "from pythonpath"
    r = run("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED and "ModuleNotFoundError" in r.err, r


# ---------------------------------------------------------------- writing


def test_writes_anywhere_fail(as_user, run, tmp, script, sentinel):
    tmp.write("data.txt", "original")
    host_tmp_file = sentinel()
    names = {"root": sentinel(directory="/"), "stdlib": sentinel(directory=engine.STDLIB),
             "usr_bin": sentinel(directory="/usr/bin"), "devshm": sentinel(directory="/dev/shm")}
    s = hostile(
        script,
        """
        here = os.path.dirname(os.path.abspath(__file__))
        targets = {"script_dir": os.path.join(here, "new.txt"), "root": NAMES["root"],
                   "stdlib": NAMES["stdlib"], "tmp": HOST_TMP_FILE,
                   "usr_bin": NAMES["usr_bin"], "existing": os.path.join(here, "data.txt")}
        out = {}
        for k, p in targets.items():
            def w(p=p):
                with open(p, "w") as f:
                    f.write("pwned")
                return "written"
            out[k] = attempt(w)
        out["append"] = attempt(lambda: open(os.path.join(here, "data.txt"), "a").write("more"))
        out["rplus"] = attempt(lambda: open(os.path.join(here, "data.txt"), "r+").write("X"))
        out["devshm"] = attempt(lambda: open(NAMES["devshm"], "w").write("x"))
        report(out)
        """,
        HOST_TMP_FILE=host_tmp_file,
        NAMES=names,
    )
    before = snapshot(tmp)
    out = run("run", s).json()
    for key in ("script_dir", "root", "stdlib", "tmp", "usr_bin", "existing", "append", "rplus"):
        assert failed(out[key]), f"write to {key} worked: {out[key]}"
        assert out[key][1] in WRITE_DENIED, f"{key}: {out[key]}"
    assert failed(out["devshm"])
    assert snapshot(tmp) == before
    # (the sentinel fixture also asserts that none of the host paths exist)
    for p in names.values():
        assert not os.path.exists(p), p


def test_file_system_changes_fail(as_user, run, tmp, script):
    tmp.write("data.txt", "original content")
    (tmp / "subdir").mkdir()
    (tmp / "subdir").chmod(0o755)
    s = hostile(
        script,
        """
        here = os.path.dirname(os.path.abspath(__file__))
        data = os.path.join(here, "data.txt")
        out = {
            "mkdir": attempt(os.mkdir, os.path.join(here, "newdir")),
            "symlink": attempt(os.symlink, "/usr", os.path.join(here, "link")),
            "link": attempt(os.link, data, os.path.join(here, "hardlink")),
            "rename": attempt(os.rename, data, os.path.join(here, "renamed.txt")),
            "chmod": attempt(os.chmod, data, 0o777),
            "utime": attempt(os.utime, data, (0, 0)),
            "truncate": attempt(os.truncate, data, 0),
            "unlink": attempt(os.unlink, data),
            "rmdir": attempt(os.rmdir, os.path.join(here, "subdir")),
            "mkfifo": attempt(os.mkfifo, os.path.join(here, "fifo")),
            "chown": attempt(os.chown, data, 0, 0),
            "setxattr": attempt(os.setxattr, data, "user.pwned", b"1"),
        }
        report(out)
        """,
    )
    before = snapshot(tmp)
    out = run("run", s).json()
    for key, res in out.items():
        assert failed(res), f"{key} worked: {res}"
        assert res[1] in WRITE_DENIED, f"{key}: {res}"
    assert snapshot(tmp) == before


def test_raw_write_syscalls_fail(as_user, run, tmp, script, sentinel):
    tmp.write("data.txt", "original content")
    s = hostile(
        script,
        """
        here = os.path.dirname(os.path.abspath(__file__)).encode()
        data = here + b"/data.txt"
        out = {
            "openat_creat": sc(257, AT_FDCWD, here + b"/raw.txt", os.O_CREAT | os.O_WRONLY, 0o644),
            "openat_trunc": sc(257, AT_FDCWD, data, os.O_WRONLY | os.O_TRUNC, 0),
            "openat_root": sc(257, AT_FDCWD, ROOT_FILE.encode(), os.O_CREAT | os.O_WRONLY, 0o644),
            "mknodat_reg": sc(259, AT_FDCWD, here + b"/node", 0o100644, 0),
            "mknodat_chr": sc(259, AT_FDCWD, here + b"/mem", 0o020666, (1 << 8) | 1),
            "unlinkat": sc(263, AT_FDCWD, data, 0),
            "mkdirat": sc(258, AT_FDCWD, here + b"/rawdir", 0o755),
            "renameat2": sc(316, AT_FDCWD, data, AT_FDCWD, here + b"/moved", 0),
            "truncate": sc(76, data, 0),
            "symlinkat": sc(266, b"/", AT_FDCWD, here + b"/rawlink"),
        }
        report(out)
        """,
        ROOT_FILE=sentinel(directory="/"),
    )
    before = snapshot(tmp)
    out = run("run", s).json()
    for key, res in out.items():
        assert res["ret"] == -1, f"{key} succeeded: {res}"
        assert res["errno"] in WRITE_DENIED, f"{key}: {res}"
    # a plain-file node is seccomp's to allow and the read-only mount's to refuse;
    # a device node is refused by seccomp before the kernel looks at the mount
    assert out["mknodat_reg"]["errno"] == errno.EROFS
    assert out["mknodat_chr"]["errno"] == errno.EPERM
    assert snapshot(tmp) == before


def test_mount_syscall_denied(run, script):
    s = hostile(
        script,
        """
        # nonexistent targets: ENOENT if mount were allowed, EPERM from the policy
        report({"tmpfs": sc(165, b"none", b"/nonexistent-teepy", b"tmpfs", 0, None),
                "remount": sc(165, None, b"/nonexistent-teepy", None, 0x1020, None)})  # MS_REMOUNT|MS_BIND
        """,
    )
    out = run("run", s).json()
    assert out["tmpfs"] == {"ret": -1, "errno": errno.EPERM}
    assert out["remount"] == {"ret": -1, "errno": errno.EPERM}


# ---------------------------------------------------------------- scratch


def test_scratch_tmp_writable_size_capped_and_gone(as_user, run, tmp, script, sentinel):
    tmp.write("data.txt", "still visible")
    inside = sentinel("scratch")
    s = hostile(
        script,
        """
        here = os.path.dirname(os.path.abspath(__file__))
        out = {}
        def small():
            with open(INSIDE, "w") as f:
                f.write("scratch works")
            return open(INSIDE).read()
        out["small"] = attempt(small)
        def big():
            with open(BIG, "wb") as f:
                f.write(b"x" * (2 * 1024 * 1024))
            return "written"
        out["big"] = attempt(big)
        out["mkdir"] = attempt(lambda: os.mkdir(SUBDIR) or "made")
        out["script_dir"] = attempt(lambda: open(os.path.join(here, "data.txt")).read())
        out["script_dir_write"] = attempt(lambda: open(os.path.join(here, "new.txt"), "w").write("x"))
        out["stdlib_write"] = attempt(lambda: open(ENGINE_STDLIB + "/pwned.py", "w").write("x"))
        report(out)
        """,
        INSIDE=inside,
        BIG=sentinel("scratch-big"),
        SUBDIR=sentinel("scratch-dir"),
    )
    out = run("run", s, "--scratch", "1M").json()
    assert out["small"] == {"ok": "scratch works"}
    assert out["big"][:2] == ["OSError", errno.ENOSPC], out["big"]
    assert out["mkdir"] == {"ok": "made"}
    assert out["script_dir"] == {"ok": "still visible"}
    assert failed(out["script_dir_write"]) and out["script_dir_write"][1] in WRITE_DENIED
    assert failed(out["stdlib_write"]) and out["stdlib_write"][1] in WRITE_DENIED
    assert not os.path.exists(inside)
    assert not (tmp / "new.txt").exists()


def test_scratch_is_fresh_each_run(run, script, sentinel):
    marker = sentinel("scratch-fresh")
    s = hostile(
        script,
        """
        existed = os.path.exists(MARKER)
        open(MARKER, "w").write("x")
        report({"existed": existed})
        """,
        MARKER=marker,
    )
    assert run("run", s, "--scratch", "1M").json() == {"existed": False}
    assert run("run", s, "--scratch", "1M").json() == {"existed": False}
    assert not os.path.exists(marker)


def test_device_nodes_cannot_be_changed(as_user, run, script):
    """Writing to /dev/null works; changing the host's node (chmod, utime) does not."""
    before = os.stat("/dev/null")
    s = hostile(
        script,
        """
        import os
        out = {}
        with open("/dev/null", "w") as f:
            out["write"] = f.write("x")
        for name, f in (("chmod", lambda: os.chmod("/dev/null", 0o600)),
                        ("utime", lambda: os.utime("/dev/null", (0, 0)))):
            try:
                f(); out[name] = "changed"
            except OSError as e:
                out[name] = e.errno
        report(out)
        """,
    )
    out = run("run", s).json()
    after = os.stat("/dev/null")
    assert out["write"] == 1
    assert out["chmod"] != "changed" and out["utime"] != "changed", out
    assert (after.st_mode, after.st_mtime) == (before.st_mode, before.st_mtime)


def test_fifos_xattrs_and_chown_in_scratch_only_devices_never(as_user, run, script):
    """mkfifo, user.* extended attributes and chown to the service's own ids work in
    scratch, as on any tmpfs (user.* attributes on tmpfs came with Linux 6.6:
    before, ENOTSUP, as outside teepy); anywhere else they fail (read-only mounts, Landlock);
    chown to any other id fails (the user namespace maps no other id); a device or
    socket node is refused by seccomp whatever the place, also by raw mknodat."""
    s = hostile(
        script,
        """
        import stat
        os.mkfifo("/tmp/fifo")
        open("/tmp/plain", "w").close()
        set_xattr = attempt(os.setxattr, "/tmp/plain", "user.k", b"v")
        S_IFCHR, S_IFSOCK = 0o020000, 0o140000
        report({"fifo": stat.S_ISFIFO(os.stat("/tmp/fifo").st_mode),
                "xattr": attempt(os.getxattr, "/tmp/plain", "user.k") if "ok" in set_xattr
                         else set_xattr,
                "fifo_root": attempt(os.mkfifo, "/fifo"),
                "xattr_host": attempt(os.setxattr, ENGINE_STDLIB + "/os.py", "user.k", b"v"),
                "xattr_device": attempt(os.setxattr, "/dev/null", "user.k", b"v"),
                "chr": attempt(os.mknod, "/tmp/null", 0o666 | S_IFCHR, os.makedev(1, 3)),
                "raw_chr": sc(259, AT_FDCWD, b"/tmp/null2", 0o666 | S_IFCHR, os.makedev(1, 3)),
                "raw_chr_high": sc(259, AT_FDCWD, b"/tmp/null3",
                                   (1 << 32) | 0o666 | S_IFCHR, os.makedev(1, 3)),
                "raw_sock": sc(133, b"/tmp/sock", 0o666 | S_IFSOCK, 0),
                "chown_own": attempt(os.chown, "/tmp/plain", os.getuid(), os.getgid()),
                "chown_other": attempt(os.chown, "/tmp/plain", 4242, 4242),
                "raw_chown_other": sc(92, b"/tmp/plain", 4242, 4242),
                "chown_host": attempt(os.chown, ENGINE_STDLIB + "/os.py", os.getuid(), -1)})
        """,
    )
    out = run("run", s, "--scratch", "1M").json()
    kernel = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    assert out["fifo"] is True, out
    if kernel >= (6, 6):
        assert out["xattr"] == {"ok": "b'v'"}, out
    else:
        assert out["xattr"][:2] == ["OSError", errno.EOPNOTSUPP], out
    assert out["fifo_root"][1] in WRITE_DENIED, out
    assert out["xattr_host"][1] == errno.EROFS and out["xattr_device"][1] == errno.EROFS, out
    assert out["chr"][:2] == ["PermissionError", errno.EPERM], out
    for key in ("raw_chr", "raw_chr_high", "raw_sock"):
        assert out[key] == {"ret": -1, "errno": errno.EPERM}, (key, out)
    assert out["chown_own"] == {"ok": None}, out
    assert out["chown_other"][1] in (errno.EINVAL, errno.EPERM), out
    assert out["raw_chown_other"]["errno"] in (errno.EINVAL, errno.EPERM), out
    assert out["chown_host"][1] == errno.EROFS, out


def test_scratch_is_noexec_nosuid_nodev(as_user, run, script):
    """Nothing written to scratch can be executed or mapped executable (a library
    copied there does not load), whatever the policy."""
    s = hostile(script, NOEXEC_PROBE + 'report(noexec_probe("/tmp"))\n')
    assert_noexec(run("run", s, "--scratch", "4M").json())


# ---------------------------------------------------------------- what may be made visible

RETURN_OK = "import teex\nteex.TEEX_return('ok')\n"
MOVE_IT = "move the script into a directory of its own"


def one_line(r):
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("teepy: "), r
    return lines[0]


@pytest.mark.parametrize("directory", ["/tmp", "/var/tmp", "/dev/shm"])
def test_script_directly_in_a_shared_directory_is_refused(as_user, run, directory):
    """Its directory would be bound whole: the host's /tmp of every user."""
    path = Path(directory) / f"teepy-test-{uuid.uuid4().hex}.py"
    path.write_text('import os, teex\nteex.TEEX_return(repr(os.listdir(os.path.dirname(__file__))))\n')
    path.chmod(0o644)
    try:
        r = run("run", path)
    finally:
        path.unlink()
    assert r.returncode == EXIT.USAGE, r
    assert r.stdout == b""
    line = one_line(r)
    assert directory in line and MOVE_IT in line, line


def test_script_directly_in_the_home_directory_is_refused(as_user, run, tmp, script):
    s = script(RETURN_OK)
    r = run("run", s, env={"HOME": str(tmp)})
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert "home directory" in line and MOVE_IT in line, line
    # a directory of its own inside the home directory is fine
    assert run("run", s, env={"HOME": str(tmp.parent)}).returncode == EXIT.OK


@pytest.mark.parametrize("flag", ["--allow", "--pythonpath"])
@pytest.mark.parametrize("path", ["/proc", "/proc/self", "/proc/1", "/sys", "/sys/kernel", "/dev",
                                  "/dev/null", "/dev/shm"])
def test_allow_of_the_kernel_view_is_refused(run, script, flag, path):
    """--allow /proc showed host PIDs and their command lines."""
    r = run("run", script(RETURN_OK), flag, path)
    assert r.returncode == EXIT.USAGE, r
    assert r.stdout == b""
    line = one_line(r)
    assert f"{flag} {path}:" in line, line


def test_allow_of_the_kernel_view_as_unprivileged_user(as_user, run, script):
    r = run("run", script(RETURN_OK), "--allow", "/proc")
    assert r.returncode == EXIT.USAGE, r
    one_line(r)


@pytest.mark.parametrize("flag", ["--allow", "--pythonpath"])
def test_scratch_with_allow_under_tmp_is_usage_error(run, tmp, script, flag):
    other = tmp.make_sibling("other")
    s = script(RETURN_OK)
    for path in (other, "/tmp"):
        r = run("run", s, "--scratch", "1M", flag, path)
        assert r.returncode == EXIT.USAGE, r
        line = one_line(r)
        assert "--scratch" in line and f"{flag} {path}" in line, line
    # without --scratch the same path is simply readable
    assert run("run", s, flag, other).returncode == EXIT.OK


def test_kernel_file_system_mounted_beneath_an_allowed_path_is_refused(teepy, run_cwd, tmp):
    """A bind carries every mount beneath it: a chroot with its own /proc mount (made
    here in a private mount namespace) would show the host's processes."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    chroot = tmp.make_sibling("chroot")
    (chroot / "proc").mkdir()
    app = tmp.make_sibling("app")
    svc = app.script('import os, teex\nteex.TEEX_return(repr(os.listdir(CHROOT + "/proc")))\n'
                     .replace("CHROOT", repr(str(chroot))))
    inner = chroot / "svc.py"
    shutil.copy(svc, inner)
    inner.chmod(0o644)
    shell = ('mount --rbind /proc "$1/proc" || exit 99; "$2" run "$3" --allow "$1"; echo "exit $?"; '
             '"$2" run "$1/svc.py"; echo "exit $?"')
    p = subprocess.run(["unshare", "-rm", "sh", "-c", shell, "sh", str(chroot), str(teepy), str(svc)],
                       capture_output=True, text=True, cwd=run_cwd, timeout=60)
    assert p.stdout.count(f"exit {int(EXIT.USAGE)}") == 2, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and all(f"proc at {chroot}/proc" in l for l in lines), lines


def _landlock_abi():
    return landlock_abi()


def test_devices_read_only_null_writable(as_user, run, start, script):
    """README: all five devices read; only /dev/null takes writes; no device ioctl."""
    s = hostile(
        script,
        """
        import fcntl
        out = {}
        for d in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"):
            def rd(d=d):
                fd = os.open(d, os.O_RDONLY)
                return len(os.read(fd, 4))
            def wr(d=d):
                fd = os.open(d, os.O_WRONLY)
                return os.write(fd, b"x")
            def ioctl(d=d):
                fd = os.open(d, os.O_RDONLY)
                return fcntl.ioctl(fd, 0x80045200, b"\\0" * 4).hex()   # RNDGETENTCNT
            out[d] = {"read": attempt(rd), "write": attempt(wr), "ioctl": attempt(ioctl),
                      "raw_write": sc(257, AT_FDCWD, d.encode(), os.O_WRONLY, 0)}
        report(out)
        """,
    )
    out = run("run", s).json()
    with waiting_root(start("run", script(WAITING, name="waiting.py"))) as root:
        assert listing(root, "/dev") == ["full", "null", "random", "urandom", "zero"]
    for d, res in out.items():
        assert res["read"] == {"ok": 0 if d == "/dev/null" else 4}, (d, res)
        if d == "/dev/null":
            assert res["write"] == {"ok": 1}, res
            assert res["raw_write"]["ret"] >= 0, res
        else:
            assert res["write"][:2] == ["PermissionError", errno.EACCES], (d, res)
            assert res["raw_write"] == {"ret": -1, "errno": errno.EACCES}, (d, res)
        if _landlock_abi() >= 5:
            assert res["ioctl"][:2] == ["PermissionError", errno.EACCES], (d, res)


def test_etc_holds_only_alternatives_links_with_allow(as_user, start, tmp, script):
    """README: no /etc of the host, except /etc/alternatives links (only links) once
    a path is allowed; /etc/passwd and /etc/group are the runtime's. Seen from
    outside: the service may read those two files, not list /etc."""
    allowed = tmp.make_sibling("allowed")
    s = script(WAITING)

    def etc(*flags):
        with waiting_root(start("run", s, *flags)) as root:
            names = listing(root, "/etc/alternatives") or []
            with open(root + "/etc/passwd") as f:
                return {"etc": listing(root, "/etc"),
                        "not_links": [n for n in names
                                      if not os.path.islink(f"{root}/etc/alternatives/{n}")],
                        "accounts": [l.split(":")[0] for l in f]}

    accounts = ["root", "teepy"] + ([] if as_user == "user" else ["nobody"])
    assert etc() == {"etc": ["group", "passwd"], "not_links": [], "accounts": accounts}
    out = etc("--allow", allowed)
    assert out["etc"] in (["group", "passwd"], ["alternatives", "group", "passwd"]), out
    assert out["not_links"] == [] and out["accounts"] == accounts, out
