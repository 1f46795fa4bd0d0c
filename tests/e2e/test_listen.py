"""Network services through a handed socket: `teepy run --listen HOST:PORT`, `--listen-fd
N` (systemd's socket activation) and `--wsgi SCRIPT.py[:NAME]` serve real clients over
loopback, stop on SIGTERM or SIGINT with exit 0, and refuse a bad address, a port in
use or a descriptor that is no listening socket with one line."""
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from exit_codes import EXIT
from listening import HTTP_SERVICE, on_loopback, refused, serving
from supervision import process_gone, reaper_pid, service_pid

WSGI_APP = r'''
import json

def application(environ, start_response):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size else b""
    out = json.dumps({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                      "query": environ["QUERY_STRING"], "body": body.decode()}).encode()
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("X-Served-By", "teepy wsgi"),
                                   ("Content-Length", str(len(out)))])
    return [out]

def teapot(environ, start_response):
    start_response("418 I'm a teapot", [("Content-Type", "text/plain"),
                                        ("Content-Length", "15")])
    return [b"short and stout"]
'''

STARTED = 'import sys\nprint("started", file=sys.stderr, flush=True)\n'


def _one_line(r, *names):
    """The one line a refused run printed; it names one of NAMES."""
    assert len(r.err_lines) == 1, r
    assert any(n in r.err_lines[0] for n in names), r
    return r.err_lines[0]


# ---------------------------------------------------------------- serving


def test_http_server_on_the_handed_socket_answers_several_requests(as_user, start, script):
    with on_loopback(start, script(HTTP_SERVICE)) as served:
        assert served.host == "127.0.0.1" and served.port > 0, served.seen
        answers = [served.http("GET", f"/item/{i}?q={i}") for i in range(5)]
        assert [a[0] for a in answers] == [200] * 5, answers
        seen = [json.loads(a[2]) for a in answers]
        # one process served them all, in order, on the handed socket at fd 4
        assert [s["count"] for s in seen] == [1, 2, 3, 4, 5], seen
        assert [s["path"] for s in seen] == [f"/item/{i}?q={i}" for i in range(5)], seen
        assert {(s["fd"], s["family"], s["port"], s["type"]) for s in seen} == {
            (4, socket.AF_INET, served.port, "socket.socket")}, seen
        status, _, body = served.http("POST", "/echo", body=b"\x00binary\xffbody" * 1000)
        assert (status, body) == (200, b"\x00binary\xffbody" * 1000)
        # "listening on" comes before the service runs
        served.wait_for(re.compile("started"))
        assert served.seen.index("listening on") < served.seen.index("started"), served.seen
        assert served.stop() == EXIT.OK, served.seen


def test_a_keep_alive_connection_carries_several_requests(as_user, start, script):
    with on_loopback(start, script(HTTP_SERVICE)) as served:
        conn = http.client.HTTPConnection(served.host, served.port, timeout=10)
        try:
            for i in range(3):
                conn.request("GET", f"/{i}")
                resp = conn.getresponse()
                assert resp.status == 200 and b'"count": %d' % (i + 1) in resp.read()
        finally:
            conn.close()
        assert served.stop() == EXIT.OK, served.seen


def test_threads_serve_connections_at_once(as_user, start, script):
    """ThreadingHTTPServer: four requests wait for each other at a barrier inside the
    service, so all four must be accepted and in progress together."""
    s = script(r'''
        import http.server, socketserver, sys, threading, teex
        barrier = threading.Barrier(4, timeout=10)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = str(barrier.wait()).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def __init__(self, sock):
                socketserver.BaseServer.__init__(self, sock.getsockname()[:2], Handler)
                self.socket = sock

        Server(teex.listen_socket()).serve_forever()
        ''')
    with on_loopback(start, s) as served:
        results = [None] * 4

        def get(i):
            results[i] = served.http("GET", "/", timeout=15)

        threads = [threading.Thread(target=get, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert [r and r[0] for r in results] == [200] * 4, (results, served.seen)
        assert sorted(int(r[2]) for r in results) == [0, 1, 2, 3], results
        assert served.stop() == EXIT.OK, served.seen


def test_a_hand_written_accept_loop(as_user, start, script):
    """Also: a socket object from listen_socket() let go does not close fd 4 under
    the next one (it is one object, kept)."""
    s = script('''
        import gc, teex
        first = teex.listen_socket()
        del first
        gc.collect()
        sock = teex.listen_socket()
        while True:
            conn, peer = sock.accept()
            with conn:
                data = b""
                while not data.endswith(b"\\n"):
                    chunk = conn.recv(100)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(data.upper() + ("peer %s\\n" % peer[0]).encode())
        ''')
    with on_loopback(start, s) as served:
        for word in (b"one", b"two", b"three"):
            with served.connect() as c:
                c.sendall(word + b"\n")
                got = b""
                while got.count(b"\n") < 2:
                    chunk = c.recv(100)
                    assert chunk, got
                    got += chunk
            assert got == word.upper() + b"\npeer 127.0.0.1\n"
        assert served.stop() == EXIT.OK, served.seen


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_literal_is_listened_on(as_user, start, script):
    if not _ipv6_loopback():
        pytest.skip("the host has no IPv6 loopback")
    with serving(start, "run", "--listen", "[::1]:0", script(HTTP_SERVICE)) as served:
        served.listening()
        assert served.host == "::1", served.seen
        assert f"listening on [::1]:{served.port}" in served.seen, served.seen
        status, _, body = served.http("GET", "/six")
        assert status == 200 and b'"family": %d' % socket.AF_INET6 in body, body
        assert served.stop() == EXIT.OK, served.seen


def test_a_host_name_is_resolved(as_user, start, script):
    with serving(start, "run", "--listen", "localhost:0", script(HTTP_SERVICE)) as served:
        served.listening()
        assert served.host in ("127.0.0.1", "::1"), served.seen
        assert served.http("GET", "/name")[0] == 200
        assert served.stop() == EXIT.OK, served.seen


# ---------------------------------------------------------------- WSGI


@pytest.fixture
def wsgi_app(script):
    return script(WSGI_APP, name="app.py")


def test_wsgi_serves_application_by_default(as_user, start, wsgi_app):
    with on_loopback(start, "--wsgi", wsgi_app) as served:
        status, headers, body = served.http("GET", "/hello/there?x=1&y=2")
        assert status == 201, (status, headers, body)
        assert headers["x-served-by"] == "teepy wsgi", headers
        assert headers["content-type"] == "application/json", headers
        assert json.loads(body) == {"method": "GET", "path": "/hello/there",
                                    "query": "x=1&y=2", "body": ""}
        payload = "posted body, ümlaut and all " * 300
        status, _, body = served.http("POST", "/submit", body=payload.encode(),
                                      headers={"Content-Type": "text/plain"})
        assert status == 201
        assert json.loads(body) == {"method": "POST", "path": "/submit", "query": "",
                                    "body": payload}
        # one request at a time, but one after another as long as it runs
        assert [served.http("GET", f"/{i}")[0] for i in range(3)] == [201] * 3
        assert served.stop() == EXIT.OK, served.seen


def test_wsgi_serves_the_callable_named(as_user, start, wsgi_app):
    with on_loopback(start, "--wsgi", f"{wsgi_app}:teapot") as served:
        status, headers, body = served.http("GET", "/")
        assert (status, body) == (418, b"short and stout"), (status, headers, body)
        assert headers["content-type"] == "text/plain"
        assert served.stop() == EXIT.OK, served.seen


@pytest.mark.parametrize("name", ["teex", "os"])
def test_a_wsgi_script_named_as_a_module_the_server_needs_is_refused(as_user, start, script,
                                                                     name):
    """The script is imported under its file's stem: as teex.py it would replace the
    runtime's teex (which no service file may), as os.py a module already loaded."""
    app = script(WSGI_APP, name=f"{name}.py")
    with serving(start, "run", "--listen", "127.0.0.1:0", "--wsgi", app) as served:
        code = served.finish(timeout=15)
        assert code == EXIT.SERVICE_FAILED, served.seen
        assert "Traceback" not in served.seen, served.seen
        said = [l for l in served.lines if l.startswith("teepy: --wsgi:")]
        assert len(said) == 1 and f"would be imported as {name}," in said[0], served.seen


def test_a_servers_build_takes_one_sample_run(run, script, tmp):
    """A server's sample run lasts until it is stopped: several --sample-input would
    each need a stop, so they are refused, before anything runs."""
    key = tmp / "k"
    assert run("keygen", "-o", key).returncode == EXIT.OK
    sample = tmp.write("sample.txt", b"x")
    r = run("build", "--listen", "127.0.0.1:0", "--sample-input", sample, "--sample-input",
            sample, script(HTTP_SERVICE), "-o", tmp / "s.tpy", "--key", key)
    assert r.returncode == EXIT.USAGE, r
    _one_line(r, "--sample-input and --listen: a server's sample run serves until it is "
                 "stopped, once")
    assert "listening on" not in r.err, r


def test_wsgi_names_a_missing_callable_in_one_line(as_user, start, wsgi_app):
    with serving(start, "run", "--listen", "127.0.0.1:0", "--wsgi",
                 f"{wsgi_app}:no_such_app") as served:
        code = served.finish(timeout=15)
        assert code != EXIT.OK, served.seen
        assert "Traceback" not in served.seen, served.seen
        named = [l for l in served.lines if "no_such_app" in l]
        assert len(named) == 1, served.seen
        # that line is the only one after the address: no second "exited with status"
        after = served.lines[served.lines.index(named[0]):]
        assert [l for l in after if l.startswith("teepy:")] == named, served.seen
        assert code == EXIT.SERVICE_FAILED, served.seen


# ---------------------------------------------------------------- a socket handed by the caller


def _listener(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(16)
    return s


def test_listen_fd_serves_a_socket_the_caller_made(as_user, start, script):
    sock = _listener()
    try:
        fd = sock.fileno()
        with serving(start, "run", "--listen-fd", fd, script(HTTP_SERVICE),
                     pass_fds=(fd,)) as served:
            served.host, served.port = sock.getsockname()
            sock.close()  # the service's copy is the only one now
            status, _, body = served.http("GET", "/fd")
            assert status == 200 and b'"fd": 4' in body, (body, served.seen)
            assert served.http("GET", "/again")[0] == 200
            assert served.stop() == EXIT.OK, served.seen
    finally:
        sock.close()


# systemd's way: the socket at fd 3, LISTEN_FDS=1 and LISTEN_PID the pid that execs
# teepy (exec keeps it; setpriv for the user variant execs too)
def _systemd_wrapper(fd, with_pid):
    code = ("import os, sys\n"
            f"if {fd} != 3:\n"
            f"    os.dup2({fd}, 3)\n"
            f"    os.close({fd})\n"
            + ("os.environ['LISTEN_PID'] = str(os.getpid())\n" if with_pid else "")
            + "os.execvp(sys.argv[1], sys.argv[1:])\n")
    return ["/usr/bin/python3", "-c", code]


@pytest.mark.parametrize("with_pid", [True, False], ids=["LISTEN_PID", "no-LISTEN_PID"])
def test_listen_fd_takes_a_socket_as_systemd_hands_it(as_user, start, script, with_pid):
    sock = _listener()
    try:
        fd = sock.fileno()
        with serving(start, "run", "--listen-fd", "3", script(HTTP_SERVICE), pass_fds=(fd,),
                     wrapper=_systemd_wrapper(fd, with_pid),
                     env={"LISTEN_FDS": "1", "LISTEN_PID": None}) as served:
            served.host, served.port = sock.getsockname()
            status, _, body = served.http("GET", "/systemd")
            assert status == 200 and b'"fd": 4' in body, (body, served.seen)
            assert served.stop() == EXIT.OK, served.seen
    finally:
        sock.close()


def test_listen_fd_outside_the_systemd_range_is_refused(as_user, run, script):
    sock = _listener()
    try:
        fd = sock.fileno()
        if fd == 3:
            pytest.skip("the test's socket is fd 3, inside LISTEN_FDS=1's range")
        r = run("run", "--listen-fd", fd, script(STARTED), pass_fds=(fd,),
                env={"LISTEN_FDS": "1", "LISTEN_PID": None}, timeout=30)
        assert r.returncode == EXIT.USAGE, r
        _one_line(r, str(fd))
        assert "started" not in r.err, r
    finally:
        sock.close()


def test_listen_fd_with_another_process_s_listen_pid_is_refused(as_user, start, script):
    sock = _listener()
    try:
        fd = sock.fileno()
        with serving(start, "run", "--listen-fd", "3", script(STARTED), pass_fds=(fd,),
                     wrapper=_systemd_wrapper(fd, False),
                     env={"LISTEN_FDS": "1", "LISTEN_PID": "1"}) as served:
            assert served.finish(timeout=30) == EXIT.USAGE, served.seen
            assert len(served.lines) == 1 and "LISTEN_PID" in served.lines[0], served.seen
    finally:
        sock.close()


@pytest.mark.parametrize("kind", ["closed", "file", "unlistened-tcp", "udp", "unix-pair", "not-a-number"])
def test_listen_fd_that_is_no_listening_socket_is_refused(as_user, run, script, tmp, kind):
    keep = []
    if kind == "closed":
        fd = 200
        while True:
            try:
                os.fstat(fd)
                fd += 1
            except OSError:
                break
    elif kind == "file":
        fd = os.open(tmp.write("plain", b"not a socket"), os.O_RDONLY)
        keep.append(fd)
    elif kind == "unlistened-tcp":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        keep.append(s)
        fd = s.fileno()
    elif kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        keep.append(s)
        fd = s.fileno()
    elif kind == "unix-pair":
        a, b = socket.socketpair()
        keep += [a, b]
        fd = a.fileno()
    else:
        fd = "four"
    try:
        passed = (fd,) if isinstance(fd, int) and kind != "closed" else ()
        r = run("run", "--listen-fd", fd, script(STARTED), pass_fds=passed, timeout=30)
        assert r.returncode == EXIT.USAGE, r
        _one_line(r, str(fd))
        assert "started" not in r.err, r
    finally:
        for k in keep:
            k.close() if hasattr(k, "close") else os.close(k)


# ---------------------------------------------------------------- refusals of --listen


def test_a_port_in_use_is_said_in_one_line(as_user, run, script):
    held = _listener()
    try:
        port = held.getsockname()[1]
        r = run("run", "--listen", f"127.0.0.1:{port}", script(STARTED), timeout=30)
        assert r.returncode != EXIT.OK, r
        line = _one_line(r, "in use")
        assert str(port) in line, r
        assert "started" not in r.err, r
    finally:
        held.close()


def test_a_privileged_port_for_a_user_is_said_in_one_line(as_user, run, script):
    if as_user != "user":
        pytest.skip("root may bind any port")
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 1:
            pytest.skip("every port is unprivileged on this host")
    r = run("run", "--listen", "127.0.0.1:1", script(STARTED), timeout=30)
    assert r.returncode != EXIT.OK, r
    _one_line(r, "127.0.0.1:1", "port 1")
    assert "started" not in r.err, r


@pytest.mark.parametrize("value", [
    "127.0.0.1",                    # no port
    "127.0.0.1:",                   # an empty port
    "127.0.0.1:70000",              # past 65535
    "127.0.0.1:http",               # not a number
    "no-such-host.invalid:8080",    # a name that does not resolve
    "[::1:8080",                    # an unclosed bracket
    ":8080",                        # no host
])
def test_a_bad_listen_value_is_a_usage_error(as_user, run, script, value):
    r = run("run", "--listen", value, script(STARTED), timeout=30)
    assert r.returncode == EXIT.USAGE, r
    _one_line(r, value, "--listen")
    assert "started" not in r.err, r


@pytest.mark.parametrize("problem", ["missing-script", "memory-too-small"])
def test_a_usage_error_with_listen_is_one_line_without_listening(as_user, run, script, problem):
    args = (["--memory", "1k", script(STARTED)] if problem == "memory-too-small"
            else [str(script(STARTED)) + ".missing"])
    r = run("run", "--listen", "127.0.0.1:0", *args, timeout=30)
    assert r.returncode == EXIT.USAGE, r
    assert len(r.err_lines) == 1 and "listening on" not in r.err, r


def test_listen_socket_without_listen_raises_runtime_error(as_user, run, script):
    s = script('''
        import teex
        try:
            teex.listen_socket()
            teex.TEEX_return("a socket")
        except RuntimeError as e:
            teex.TEEX_return("RuntimeError: " + str(e))
        ''')
    r = run("run", s)
    assert r.returncode == EXIT.OK, r
    assert r.stdout.startswith(b"RuntimeError: "), r


# ---------------------------------------------------------------- stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_service_with_exit_0_and_nothing_left(as_user, start, script, sig):
    with on_loopback(start, script(HTTP_SERVICE)) as served:
        assert served.http("GET", "/")[0] == 200
        reaper, service = reaper_pid(served.proc.pid), service_pid(served.proc.pid)
        assert served.stop(sig) == EXIT.OK, served.seen
        assert process_gone(service, within=5.0), "the service outlived teepy"
        assert process_gone(reaper, within=5.0), "the reaper outlived teepy"
        assert refused(served.host, served.port), "something still listens on the port"


def test_a_service_that_ignores_the_signals_is_stopped_all_the_same(as_user, start, script):
    s = script('''
        import signal, sys, time, teex
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        sock = teex.listen_socket()
        print("ready", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
        ''')
    with on_loopback(start, s) as served:
        served.wait_for(re.compile("ready"))
        service = service_pid(served.proc.pid)
        began = time.monotonic()
        assert served.stop(signal.SIGTERM) == EXIT.OK, served.seen
        assert time.monotonic() - began < 10
        assert process_gone(service, within=5.0), "the service outlived teepy"
        assert refused(served.host, served.port)


# ---------------------------------------------------------------- limits


def _config(lines):
    """--print-config's settings as {name: text}."""
    out = {}
    for line in lines:
        if line.startswith("  ") and not line.startswith("   "):
            name, _, value = line.strip().partition("  ")
            out[name] = value.strip()
    return out


def test_listen_turns_the_default_clocks_off_but_keeps_memory_and_threads(as_user, run, start,
                                                                         script):
    s = script(HTTP_SERVICE)
    plain = _config(run("run", "--print-config", script("import teex\nteex.TEEX_return('x')\n",
                                                        name="plain.py")).err_lines)
    assert "30 min" in plain["cpu time"] and "1 h" in plain["timeout"], plain
    with on_loopback(start, "--print-config", s) as served:
        served.wait_for(re.compile(r"\n  timeout .*\n"))
        served.wait_for(re.compile(r"\n  threads .*\n"))
        listen = _config(served.lines)
        assert served.stop() == EXIT.OK, served.seen
    assert "30 min" not in listen["cpu time"], listen
    assert "1 h" not in listen["timeout"], listen
    assert listen["memory"] == plain["memory"] and listen["threads"] == plain["threads"], listen


def test_a_timeout_given_with_listen_still_ends_the_service(as_user, start, script):
    with on_loopback(start, "--timeout", "1s", script(HTTP_SERVICE)) as served:
        began = time.monotonic()
        assert served.http("GET", "/")[0] == 200
        assert served.finish(timeout=15) == EXIT.TIMEOUT, served.seen
        assert time.monotonic() - began < 10


def test_a_cpu_time_given_with_listen_still_ends_the_service(as_user, start, script):
    s = script('''
        import sys, teex
        sock = teex.listen_socket()
        while True:
            pass
        ''')
    with on_loopback(start, "--cpu-time", "1s", s) as served:
        assert served.finish(timeout=15) == EXIT.CPU, served.seen


def test_the_memory_limit_still_holds_with_listen(as_user, start, script):
    s = script("""
        import teex
        sock = teex.listen_socket()
        hog = bytearray(256 << 20)
        hog[::4096] = b"x" * len(hog[::4096])
        """)
    with on_loopback(start, "--memory", "96M", s) as served:
        assert served.finish(timeout=30) == EXIT.MEMORY, served.seen


def test_the_thread_limit_still_holds_with_listen(as_user, start, script):
    s = script("""
        import sys, threading, teex
        sock = teex.listen_socket()
        stop = threading.Event()
        started = 0
        for _ in range(12):
            try:
                threading.Thread(target=stop.wait, daemon=True).start()
                started += 1
            except RuntimeError:
                break
        print("threads started: %d" % started, file=sys.stderr, flush=True)
        stop.wait()
        """)
    with on_loopback(start, "--threads", "4", s) as served:
        started = int(served.wait_for(re.compile(r"threads started: (\d+)")).group(1))
        assert started < 4, served.seen
        assert served.stop() == EXIT.OK, served.seen


def test_without_a_timeout_the_service_outlives_a_short_one(as_user, start, script):
    """The counterpart of the --timeout test: the same service still answers after
    a few seconds when no --timeout is given."""
    with on_loopback(start, script(HTTP_SERVICE)) as served:
        time.sleep(2.5)
        assert served.proc.poll() is None, served.seen
        assert served.http("GET", "/late")[0] == 200
        assert served.stop() == EXIT.OK, served.seen
