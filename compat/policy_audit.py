# What a test tried that the TEEX policy forbids, noted from CPython's audit events
# (PEP 578): process creation, network use, writes outside the temporary directory,
# reads of host directories a sealed root does not have. compat/run uses this as
# the evidence for "blocked by policy"; a test that lost in teepy without any of
# it is an incompatibility.
import os
import socket
import sys
import tempfile

_PROCESS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
            "os.fork", "os.forkpty", "pty.spawn", "os.startfile"}
_NETWORK = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
            "socket.gethostbyaddr", "socket.gethostname", "socket.sendto", "socket.sendmsg"}
_CHANGE = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
           "os.chmod", "os.chown", "os.utime", "os.truncate", "os.mkfifo", "os.mknod",
           "shutil.copyfile", "shutil.rmtree", "shutil.move"}
_HOST_DIRS = ("/proc/", "/sys/", "/etc/", "/home/", "/root/", "/var/", "/run/", "/srv/",
              "/mnt/", "/media/", "/opt/", "/boot/")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

attempts = set()   # (kind, what) since the last reset()
_tmp = None
_busy = False


def reset():
    attempts.clear()


def taken():
    return sorted(f"{k}: {w}" for k, w in attempts)


def _abs(path):
    if isinstance(path, int) or path is None:
        return None
    try:
        return os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError, OSError):
        return None


def _outside_tmp(path):
    return not (path == _tmp or path.startswith(_tmp + "/")) and path not in _DEVICES


def _hook(event, args):
    global _busy
    if _busy:
        return
    _busy = True
    try:
        if event in _PROCESS:
            what = args[0] if args else ""
            if isinstance(what, (list, tuple)):
                what = " ".join(map(str, what))
            attempts.add(("subprocess", f"{event} {str(what)[:80]}"))
        elif event == "socket.__new__":
            family, kind = (list(args[1:3]) + [-1, -1])[:2]
            if family not in (socket.AF_UNIX, -1):
                attempts.add(("network", f"socket(family {family})"))
            elif family == socket.AF_UNIX and isinstance(kind, int) and \
                    kind & 0xF == socket.SOCK_DGRAM:
                # a datagram socket could sendto() any socket path it can name
                attempts.add(("network", "socket(AF_UNIX, SOCK_DGRAM)"))
        elif event in _NETWORK:
            target = args[1] if len(args) > 1 else (args[0] if args else "")
            attempts.add(("network", f"{event} {str(target)[:60]}"))
        elif event == "open" and args:
            path = _abs(args[0])
            if path is None:
                return
            mode, flags = (args + (None, None))[1:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and _outside_tmp(path):
                attempts.add(("write", path[:120]))
            elif path.startswith(_HOST_DIRS):
                attempts.add(("host files", path[:120]))
        elif event in _CHANGE and args:
            path = _abs(args[0])
            if path and _outside_tmp(path):
                attempts.add(("write", f"{event} {path[:120]}"))
    finally:
        _busy = False


def install():
    global _tmp
    _tmp = os.path.realpath(tempfile.gettempdir())
    sys.addaudithook(_hook)
