"""A hostile service holding a handed listening socket (teepy run --listen): it may
accept on that socket and use what it accepted, nothing more. Connecting any socket
(the handed one, an accepted one, after a disconnect), TCP fast open (a send that
connects), binding, listening, new inet sockets and accepting on another descriptor
of the listener fail with EPERM, through Python and raw system calls, and a listener
of the host receives nothing. Run as root and as a user; `make check-landlock` runs
them with Landlock capped at ABI 2, so they hold with seccomp alone."""
import errno
import select
import socket
import textwrap

import pytest

from exit_codes import EXIT
from hostile_prelude import hostile
from listening import on_loopback

EPERM = errno.EPERM
MSG_FASTOPEN = 0x20000000

# Raw socket calls for the hostile bodies, after hostile_prelude's PRELUDE; say()
# prints the report on stderr, where the test reads it while the service still runs.
NET = '''
import socket, struct, select

MSG_FASTOPEN = 0x20000000
NR = {"socket": 41, "connect": 42, "accept": 43, "sendto": 44, "sendmsg": 46,
      "shutdown": 48, "bind": 49, "listen": 50, "accept4": 288, "sendmmsg": 307}


def sockaddr_in(port, host=(127, 0, 0, 1)):
    return ctypes.create_string_buffer(struct.pack("=H", 2) + struct.pack("!H", port)
                                       + bytes(host) + bytes(8), 16)


def sockaddr_in6(port):
    raw = struct.pack("=H", 10) + struct.pack("!HI", port, 0) + bytes(15) + b"\\x01" + bytes(4)
    return ctypes.create_string_buffer(raw, 28)


UNSPEC = ctypes.create_string_buffer(bytes(16), 16)  # connect(AF_UNSPEC): a disconnect


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]


_keep = []


def raw_sends(fd, port, flags):
    """sendto, sendmsg and sendmmsg of one byte to 127.0.0.1:PORT with FLAGS."""
    addr = sockaddr_in(port)
    data = ctypes.create_string_buffer(b"x", 1)
    iov = iovec(ctypes.cast(data, ctypes.c_void_p), 1)
    hdr = msghdr(ctypes.cast(addr, ctypes.c_void_p), 16,
                 ctypes.cast(ctypes.pointer(iov), ctypes.c_void_p), 1, None, 0, 0)
    mm = mmsghdr(hdr, 0)
    _keep.extend([addr, data, iov, hdr, mm])
    return {"sendto": sc(NR["sendto"], fd, data, 1, flags, addr, 16),
            "sendmsg": sc(NR["sendmsg"], fd, ctypes.byref(hdr), flags),
            "sendmmsg": sc(NR["sendmmsg"], fd, ctypes.byref(mm), 1, flags)}


def pending(fd, timeout=10):
    """Waits until a connection is queued on FD (the test connects)."""
    return bool(select.select([fd], [], [], timeout)[0])


def say(obj):
    print("REPORT " + json.dumps(obj), file=sys.stderr, flush=True)
'''


def _served(start, script, *bodies, **values):
    """on_loopback for hostile bodies, one after another, after PRELUDE and NET."""
    text = NET + "".join(textwrap.dedent(b) for b in bodies)
    return on_loopback(start, hostile(script, text, **values))


@pytest.fixture
def host_listener():
    """A TCP socket listening on the host's 127.0.0.1 that the service tries to reach;
    asserted afterwards that no connection reached it."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    yield tcp.getsockname()[1]
    readable, _, _ = select.select([tcp], [], [], 0.3)
    tcp.close()
    assert not readable, "the host listener received a connection from the sandbox"


def _denied(out, *keys):
    """Every named attempt failed with EPERM: {"ret": -1, "errno": 1} for raw calls,
    [exception, 1, text] for Python's."""
    bad = {}
    for k in keys:
        v = out[k]
        if isinstance(v, dict) and "ret" in v:
            if (v["ret"], v["errno"]) != (-1, EPERM):
                bad[k] = v
        elif not (isinstance(v, list) and v[1] == EPERM):
            bad[k] = v
    assert not bad, f"not refused with EPERM: {bad} (all: {out})"


def _stop(served):
    assert served.stop() == EXIT.OK, served.seen


def test_the_handed_socket_cannot_connect(as_user, start, script, host_listener):
    with _served(start, script, """
        L = teex.listen_socket()
        out = {
            "python": attempt(L.connect, ("127.0.0.1", HOST_PORT)),
            "raw": sc(NR["connect"], 4, sockaddr_in(HOST_PORT), 16),
            "disconnect": sc(NR["connect"], 4, UNSPEC, 16),
            "dup": sc(NR["connect"], os.dup(4), sockaddr_in(HOST_PORT), 16),
            # the kernel reads the descriptor's low word: 4 with high bits set
            "high_fd": sc(NR["connect"], (1 << 32) | 4, sockaddr_in(HOST_PORT), 16),
        }
        L.shutdown(socket.SHUT_RDWR)  # a listener shut down can be connected again
        out["after_shutdown"] = attempt(L.connect, ("127.0.0.1", HOST_PORT))
        out["after_shutdown_raw"] = sc(NR["connect"], 4, sockaddr_in(HOST_PORT), 16)
        say(out)
        threading.Event().wait()
        """, HOST_PORT=host_listener) as served:
        out = served.report()
        _denied(out, *out)
        _stop(served)


def test_an_accepted_connection_cannot_connect_elsewhere(as_user, start, script, host_listener):
    """Without the rule connect(AF_UNSPEC) disconnects an accepted TCP socket, which can
    then be connected anywhere from the host's network namespace."""
    with _served(start, script, """
        L = teex.listen_socket()
        c, _ = L.accept()
        fd = c.fileno()
        out = {
            "disconnect": sc(NR["connect"], fd, UNSPEC, 16),
            "python": attempt(c.connect, ("127.0.0.1", HOST_PORT)),
            "raw": sc(NR["connect"], fd, sockaddr_in(HOST_PORT), 16),
            "inet6": sc(NR["connect"], fd, sockaddr_in6(HOST_PORT), 28),
        }
        c.sendall(b"still yours")  # the connection itself works on
        say(out)
        threading.Event().wait()
        """, HOST_PORT=host_listener) as served:
        with served.connect() as client:
            out = served.report()
            assert client.recv(100) == b"still yours"
        _denied(out, *out)
        _stop(served)


def test_nothing_can_be_bound_or_listened_on(as_user, start, script):
    with _served(start, script, """
        L = teex.listen_socket()
        c, _ = L.accept()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        out = {
            "bind_handed": attempt(L.bind, ("127.0.0.1", 0)),
            "bind_handed_raw": sc(NR["bind"], 4, sockaddr_in(0), 16),
            "bind_accepted": attempt(c.bind, ("127.0.0.1", 0)),
            "bind_accepted_raw": sc(NR["bind"], c.fileno(), sockaddr_in(0), 16),
            "bind_unix": attempt(u.bind, "\\0teepy-listen-test"),
            "listen_handed": attempt(L.listen, 1000),
            "listen_handed_raw": sc(NR["listen"], 4, 1000),
            "listen_accepted": attempt(c.listen, 5),
            "listen_accepted_raw": sc(NR["listen"], c.fileno(), 5),
            "listen_unix": sc(NR["listen"], u.fileno(), 5),
        }
        say(out)
        threading.Event().wait()
        """) as served:
        with served.connect():
            out = served.report()
        _denied(out, *out)
        _stop(served)


def test_no_inet_socket_can_be_made(as_user, start, script):
    with _served(start, script, """
        teex.listen_socket()
        out = {
            "python_inet": attempt(socket.socket, socket.AF_INET, socket.SOCK_STREAM),
            "python_inet6": attempt(socket.socket, socket.AF_INET6, socket.SOCK_STREAM),
            "python_udp": attempt(socket.socket, socket.AF_INET, socket.SOCK_DGRAM),
            "raw_inet": sc(NR["socket"], 2, 1, 0),
            "raw_inet6": sc(NR["socket"], 10, 1, 0),
            "raw_inet_dgram": sc(NR["socket"], 2, 2, 0),
            "raw_inet6_dgram": sc(NR["socket"], 10, 2, 0),
            "raw_inet_high_bits": sc(NR["socket"], (1 << 32) | 2, 1, 0),
            "raw_inet_nonblock": sc(NR["socket"], 2, 1 | 0o4000 | 0o2000000, 0),
        }
        say(out)
        threading.Event().wait()
        """) as served:
        out = served.report()
        _denied(out, *out)
        _stop(served)


FAST_OPEN = """
    L = teex.listen_socket()
    c, _ = L.accept()
    out = {}
    for name, value in raw_sends(c.fileno(), HOST_PORT, MSG_FASTOPEN).items():
        out["accepted_" + name] = value
    out["accepted_python"] = attempt(c.sendto, b"x", MSG_FASTOPEN, ("127.0.0.1", HOST_PORT))
    # the flags are an int: the kernel ignores the high word
    for name, value in raw_sends(c.fileno(), HOST_PORT, (1 << 32) | MSG_FASTOPEN).items():
        out["accepted_high_bits_" + name] = value
    c.sendall(b"plain sends work")
    L.shutdown(socket.SHUT_RDWR)
    for name, value in raw_sends(4, HOST_PORT, MSG_FASTOPEN).items():
        out["handed_" + name] = value
    out["handed_python"] = attempt(L.sendto, b"x", MSG_FASTOPEN, ("127.0.0.1", HOST_PORT))
    say(out)
    threading.Event().wait()
    """


def _fast_open(start, script, port):
    with _served(start, script, FAST_OPEN, HOST_PORT=port) as served:
        with served.connect() as client:
            out = served.report()
            assert client.recv(100) == b"plain sends work"
        _stop(served)
    return out


def test_tcp_fast_open_cannot_connect(as_user, start, script, host_listener):
    """A send with MSG_FASTOPEN connects a TCP socket that is not connected, with no
    connect(): tried on an accepted socket and on the handed one once shut down, by
    sendto and sendmsg."""
    out = _fast_open(start, script, host_listener)
    _denied(out, *(k for k in out if not k.endswith("sendmmsg")))


def test_tcp_fast_open_through_sendmmsg_cannot_connect(as_user, start, script, host_listener):
    """sendmmsg hands its flags argument to every message it sends: MSG_FASTOPEN
    there connects as sendto's does (checked on the host: a fresh TCP socket's
    sendmmsg with it reaches a listener)."""
    out = _fast_open(start, script, host_listener)
    _denied(out, *(k for k in out if k.endswith("sendmmsg")))


def test_accept_only_on_the_handed_descriptor(as_user, start, script):
    """A connection is queued first, so that an accept the rule let through would
    take it rather than wait; the listener is non-blocking as well."""
    with _served(start, script, """
        L = teex.listen_socket()
        L.setblocking(False)
        assert pending(4)
        d = os.dup(4)
        os.dup2(4, 40)
        out = {
            "accept_dup": sc(NR["accept"], d, 0, 0),
            "accept4_dup": sc(NR["accept4"], d, 0, 0, 0),
            "accept_40": sc(NR["accept"], 40, 0, 0),
            "accept4_40": sc(NR["accept4"], 40, 0, 0, 0o4000),
            "python_dup": attempt(lambda: socket.socket(fileno=d).accept() and "accepted"),
            # the low word is the descriptor the kernel reads: the dup, with 4 above it
            "accept_dup_high_4": sc(NR["accept"], (4 << 32) | d, 0, 0),
        }
        # the handed descriptor itself accepts, raw and through Python
        first = sc(NR["accept4"], 4, 0, 0, 0)
        out["accept4_handed"] = first["ret"] >= 0
        if first["ret"] >= 0:
            os.write(first["ret"], b"one")
        assert pending(4)
        c, _ = L.accept()
        c.setblocking(True)
        c.sendall(b"two")
        out["accept_handed"] = True
        say(out)
        threading.Event().wait()
        """) as served:
        with served.connect() as one:
            with served.connect() as two:
                out = served.report()
                assert one.recv(10) == b"one" and two.recv(10) == b"two"
        assert out.pop("accept4_handed") and out.pop("accept_handed"), out
        _denied(out, *out)
        _stop(served)


INTERFACES = """
    import fcntl


    def interfaces(fd):
        \"\"\"The names of the interfaces of FD's network namespace, by index.\"\"\"
        names = []
        for index in range(1, 64):
            try:
                got = fcntl.ioctl(fd, 0x8910, struct.pack("16si20x", b"", index))  # SIOCGIFNAME
            except OSError:
                continue
            names.append(got[:16].split(b"\\0")[0].decode())
        return names


    def addresses(fd):
        \"\"\"The IPv4 addresses of FD's namespace's interfaces (SIOCGIFCONF).\"\"\"
        buf = ctypes.create_string_buffer(40 * 32)
        got = fcntl.ioctl(fd, 0x8912, struct.pack("iL", len(buf), ctypes.addressof(buf)))
        size = struct.unpack("iL", got)[0]
        return [socket.inet_ntoa(buf.raw[i + 20:i + 24]) for i in range(0, size, 40)]
    """


def test_the_sandbox_network_namespace_stays_empty(as_user, start, script):
    """The handed socket is the host's; the sandbox's own namespace has no interface
    but loopback. Interfaces are named by index with SIOCGIFNAME on a socket, which
    answers for the socket's namespace (if_nameindex needs netlink, which seccomp
    refuses, so it proves nothing): an AF_UNIX socket made inside is the sandbox's."""
    with _served(start, script, INTERFACES, """
        L = teex.listen_socket()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        say({"inside": interfaces(u.fileno()), "handed": L.getsockname()[0]})
        threading.Event().wait()
        """) as served:
        out = served.report()
        assert out["inside"] in ([], ["lo"]), out
        assert out["handed"] == "127.0.0.1", out
        _stop(served)


def test_the_handed_socket_does_not_tell_the_host_interfaces(as_user, start, script):
    """The sandbox's empty namespace hides the host's network, but a socket answers
    interface ioctls for its own namespace: the handed one and those accepted on it
    for the host's (names, IPv4 and hardware addresses; no capability needed). The
    socket ioctls (type 0x89) are refused, high bits in cmd or not; others work."""
    with _served(start, script, INTERFACES, """
        L = teex.listen_socket()
        c, _ = L.accept()
        ifreq = lambda name=b"", index=0: ctypes.create_string_buffer(
            struct.pack("16si20x", name, index), 40)
        conf = ctypes.create_string_buffer(40 * 32)
        ifconf = ctypes.create_string_buffer(struct.pack("iL", len(conf), ctypes.addressof(conf)), 16)
        out = {"names": attempt(interfaces, 4), "addresses": attempt(addresses, 4),
               "accepted_names": attempt(interfaces, c.fileno())}
        for fd, who in ((4, "handed"), (c.fileno(), "accepted")):
            out[who + "_SIOCGIFNAME"] = sc(16, fd, 0x8910, ifreq(index=1))
            out[who + "_SIOCGIFNAME_high_bits"] = sc(16, fd, (1 << 32) | 0x8910, ifreq(index=1))
            out[who + "_SIOCGIFCONF"] = sc(16, fd, 0x8912, ifconf)
            out[who + "_SIOCGIFINDEX"] = sc(16, fd, 0x8933, ifreq(b"lo"))
            out[who + "_SIOCGIFHWADDR"] = sc(16, fd, 0x8927, ifreq(b"lo"))
            out[who + "_SIOCGIWNAME"] = sc(16, fd, 0x8b01, ifreq(b"lo"))
        count = ctypes.c_int(-1)
        fionread = sc(16, c.fileno(), 0x541B, ctypes.byref(count))  # FIONREAD: not a socket ioctl
        say({"denied": out, "fionread": [fionread, count.value]})
        threading.Event().wait()
        """) as served:
        with served.connect() as client:
            client.sendall(b"four")
            out = served.report()
        _stop(served)
    denied = out["denied"]
    for key in ("names", "accepted_names"):
        assert denied.pop(key) == {"ok": []}, out
    assert denied.pop("addresses")[1] == EPERM, out
    _denied(denied, *denied)
    assert out["fionread"][0] == {"ret": 0, "errno": 0} and out["fionread"][1] in (0, 4), out
