"""No network: a hostile service cannot reach a socket listening on the host,
neither through Python's socket module nor through raw system calls."""
import errno
import os
import select
import socket

import pytest

import engine
from hostile_prelude import failed, hostile

DENIED = (errno.EPERM, errno.EAFNOSUPPORT)


@pytest.fixture
def listeners():
    """A TCP and a UDP socket listening on the host's 127.0.0.1; checks afterwards
    that nothing reached them."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    yield tcp.getsockname()[1], udp.getsockname()[1]
    readable, _, _ = select.select([tcp, udp], [], [], 0.2)
    tcp.close()
    udp.close()
    assert not readable, "the host listener received a connection or datagram from the sandbox"


def test_inet_connect_to_host_listener_fails(as_user, run, script, listeners):
    tcp_port, udp_port = listeners
    s = hostile(
        script,
        """
        import socket
        out = {}
        def tcp():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect(("127.0.0.1", TCP_PORT))
            return "connected"
        out["tcp"] = attempt(tcp)
        out["create_connection"] = attempt(lambda: socket.create_connection(("127.0.0.1", TCP_PORT), timeout=3) and "connected")
        def udp():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            return s.sendto(b"escaped", ("127.0.0.1", UDP_PORT))
        out["udp"] = attempt(udp)
        out["inet6"] = attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).connect(("::1", TCP_PORT, 0, 0)))
        out["getaddrinfo"] = attempt(lambda: socket.getaddrinfo("example.com", 80) and "resolved")
        report(out)
        """,
        TCP_PORT=tcp_port,
        UDP_PORT=udp_port,
    )
    out = run("run", s).json()
    for key in ("tcp", "create_connection", "udp", "inet6"):
        assert failed(out[key]), f"{key}: {out[key]}"
    assert out["tcp"][0] == "PermissionError" and out["tcp"][1] == errno.EPERM, out["tcp"]
    assert out["getaddrinfo"] != {"ok": "resolved"}


def test_raw_inet_socket_syscall_denied(as_user, run, script, listeners):
    tcp_port, _ = listeners
    s = hostile(
        script,
        """
        import struct
        out = {"socket": sc(41, 2, 1, 0)}           # socket(AF_INET, SOCK_STREAM, 0)
        fd = out["socket"]["ret"]
        if fd >= 0:
            addr = ctypes.create_string_buffer(struct.pack("=H", 2) + struct.pack("!H", PORT)
                                               + bytes([127, 0, 0, 1]) + bytes(8), 16)
            out["connect"] = sc(42, fd, addr, 16)
        out["dgram"] = sc(41, 2, 2, 0)              # socket(AF_INET, SOCK_DGRAM, 0)
        out["raw"] = sc(41, 2, 3, 1)                # socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)
        report(out)
        """,
        PORT=tcp_port,
    )
    out = run("run", s).json()
    for key in ("socket", "dgram", "raw"):
        assert out[key]["ret"] == -1, f"{key}: {out}"
        assert out[key]["errno"] in DENIED, f"{key}: {out}"
    assert "connect" not in out


@pytest.mark.parametrize(
    "family,type_,proto",
    [
        pytest.param(10, 1, 0, id="AF_INET6"),
        pytest.param(16, 3, 0, id="AF_NETLINK"),
        pytest.param(17, 3, 0x0300, id="AF_PACKET"),
        pytest.param(40, 1, 0, id="AF_VSOCK"),
        pytest.param(38, 5, 0, id="AF_ALG"),
    ],
)
def test_other_socket_families_denied(run, script, family, type_, proto):
    s = hostile(
        script,
        """
        import socket
        out = {"raw": sc(41, FAMILY, TYPE, PROTO), "socketpair": None}
        out["python"] = attempt(lambda: socket.socket(FAMILY, TYPE, PROTO) and "created")
        fds = (ctypes.c_int * 2)()
        out["socketpair"] = sc(53, FAMILY, TYPE, PROTO, fds)
        report(out)
        """,
        FAMILY=family,
        TYPE=type_,
        PROTO=proto,
    )
    out = run("run", s).json()
    assert out["raw"]["ret"] == -1 and out["raw"]["errno"] in DENIED, out
    assert failed(out["python"]), out
    assert out["socketpair"]["ret"] == -1, out


def test_unix_socketpair_works(as_user, run, script):
    s = hostile(
        script,
        """
        import socket
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendall(b"ping through a unix socketpair")
        got = b.recv(100)
        try:
            socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            dgram = "made"
        except PermissionError:
            dgram = "refused"
        report({"stream": got.decode(), "dgram": dgram, "family": int(a.family)})
        """,
    )
    out = run("run", s).json()
    # datagram sockets can address any socket file in sendmsg, which seccomp cannot inspect
    assert out == {"stream": "ping through a unix socketpair", "dgram": "refused", "family": 1}


def test_host_unix_socket_in_a_visible_directory_is_unreachable(as_user, run, script):
    """A daemon of the host listening on a socket file in the script's directory (which
    the service can see) must not be reachable: connect, bind and datagram sockets are
    refused."""
    import socket as pysocket
    sock_path = os.path.join(os.path.dirname(script("x = 1\n")), "host.sock")
    server = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    server.bind(sock_path)
    os.chmod(sock_path, 0o777)
    server.listen(1)
    server.settimeout(0.2)
    try:
        s = hostile(
            script,
            f"""
            import socket
            out = {{}}
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                c.connect({sock_path!r}); out["connect"] = "connected"
            except OSError as e:
                out["connect"] = e.errno
            try:
                c.bind({sock_path!r} + "2"); out["bind"] = "bound"
            except OSError as e:
                out["bind"] = e.errno
            libc_fd = sc(41, 1, 2, 0)  # raw socket(AF_UNIX, SOCK_DGRAM)
            out["raw_dgram"] = libc_fd
            report(out)
            """,
        )
        out = run("run", s).json()
        assert out["connect"] == errno.EPERM and out["bind"] == errno.EPERM, out
        assert out["raw_dgram"]["ret"] == -1, out
        try:
            conn, _ = server.accept()
            conn.close()
            raise AssertionError("the host's socket received a connection")
        except pysocket.timeout:
            pass
    finally:
        server.close()
        os.unlink(sock_path)


def test_socket_domain_high_bits_do_not_make_inet_socket(run, script, listeners):
    s = hostile(
        script,
        """
        import socket
        SO_DOMAIN = 39
        def domain_of(fd):
            val = ctypes.c_int(-1)
            size = ctypes.c_uint(4)
            sc(55, fd, 1, SO_DOMAIN, ctypes.byref(val), ctypes.byref(size))  # getsockopt
            return val.value
        out = {}
        for name, dom in (("high_unix", 0x100000001), ("high_inet", 0x100000002),
                          ("high_inet6", 0x10000000A), ("all_high_inet", -0x100000000 + 2)):
            r = sc(41, dom, 1, 0)
            if r["ret"] >= 0:
                r["domain"] = domain_of(r["ret"])
            out[name] = r
        report(out)
        """,
    )
    out = run("run", s).json()
    for name, r in out.items():
        if r["ret"] >= 0:
            assert r["domain"] not in (2, 10), f"{name} made an inet socket: {r}"
    # the low 32 bits are what the kernel reads: these must be refused
    for name in ("high_inet", "high_inet6", "all_high_inet"):
        assert out[name]["ret"] == -1 and out[name]["errno"] in DENIED, out


def test_network_namespace_has_no_usable_interface(as_user, run, script):
    """The sandbox's namespace has no interface but loopback. Interfaces are named
    by index with SIOCGIFNAME on an AF_UNIX socket made inside, which answers for
    the sandbox's namespace (socket.if_nameindex needs netlink, which seccomp
    refuses: it proved nothing, and passed with the sandbox in the host's namespace)."""
    s = hostile(
        script,
        """
        import fcntl, socket, struct
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        names = []
        for index in range(1, 64):
            try:
                got = fcntl.ioctl(u.fileno(), 0x8910, struct.pack("16si20x", b"", index))
            except OSError:
                continue
            names.append(got[:16].split(b"\\0")[0].decode())
        # PyPy's socket has no if_nameindex
        nameindex = attempt(socket.if_nameindex) if hasattr(socket, "if_nameindex") else "absent"
        report({"ifaces": names, "nameindex": nameindex})
        """,
    )
    out = run("run", s).json()
    assert out["ifaces"] in ([], ["lo"]), out
    assert out["nameindex"] == "absent" if engine.PYPY else failed(out["nameindex"]), out
