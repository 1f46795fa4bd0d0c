"""A teepy service on a handed listening socket, driven from the test: its address
read from teepy's "listening on" line, what it says on stderr waited for with a
deadline, and teepy stopped as an operator stops it (SIGTERM)."""
import contextlib
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

# teepy: listening on 127.0.0.1:40123, or [::1]:40123
LISTENING = re.compile(r"listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")
# what a hostile service says: one line of JSON (its stderr is relayed byte for byte)
REPORT = re.compile(r"^REPORT (\{.*\})$", re.M)

# A web service on teex.listen_socket() with the stdlib's http.server: GET answers
# JSON saying what the service sees (the request count shows one process served
# them all); POST echoes its body. http.server's own __init__ would make and bind a
# socket, so the server takes the handed one instead.
HTTP_SERVICE = r'''
import http.server, json, os, socketserver, sys, teex

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.count += 1
        sock = self.server.socket
        self.answer(200, json.dumps({
            "path": self.path, "count": Handler.count, "fd": sock.fileno(),
            "family": int(sock.family), "port": sock.getsockname()[1],
            "type": type(sock).__module__ + "." + type(sock).__name__,
        }).encode())

    def do_POST(self):
        self.answer(200, self.rfile.read(int(self.headers["Content-Length"])),
                    "application/octet-stream")

    def log_message(self, *args):
        pass


class Server(http.server.HTTPServer):
    def __init__(self, sock):
        socketserver.BaseServer.__init__(self, sock.getsockname()[:2], Handler)
        self.socket = sock

print("started", file=sys.stderr, flush=True)
Server(teex.listen_socket()).serve_forever()
'''


class Served:
    """A running teepy: PROC, and what it wrote on stderr so far (SEEN, text)."""

    def __init__(self, proc):
        self.proc = proc
        self.seen = ""
        self._raw = b""
        self.host = self.port = None

    def _read(self, timeout):
        """Whatever stderr holds within TIMEOUT seconds; False at its end."""
        readable, _, _ = select.select([self.proc.stderr], [], [], timeout)
        if not readable:
            return True
        chunk = os.read(self.proc.stderr.fileno(), 65536)
        if not chunk:
            return False
        self._raw += chunk
        self.seen = self._raw.decode("utf-8", errors="replace")
        return True

    def wait_for(self, pattern, timeout=30.0):
        """The first match of PATTERN (a compiled regex) in stderr, waiting up to
        TIMEOUT seconds; AssertionError with what came if teepy ended or it never came."""
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.seen)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern.pattern!r} on teepy's stderr within "
                                     f"{timeout}s: {self.seen[-3000:]!r}")
            if not self._read(min(left, 0.5)):
                code = self.proc.wait(timeout=30)
                m = pattern.search(self.seen)
                if m:
                    return m
                raise AssertionError(f"teepy ended (exit {code}) before {pattern.pattern!r}: "
                                     f"{self.seen[-3000:]!r}")

    def listening(self, timeout=30.0):
        """(host, port) of teepy's "listening on" line; host without brackets."""
        m = self.wait_for(LISTENING, timeout)
        self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
        return self.host, self.port

    def report(self, timeout=30.0):
        """The JSON a hostile service printed as "REPORT {...}"."""
        return json.loads(self.wait_for(REPORT, timeout).group(1))

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends SIG to teepy; its exit code, once all of stderr is read."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.finish(timeout)

    def finish(self, timeout=30.0):
        """teepy's exit code once it ended by itself (within TIMEOUT) and its stderr
        is read to the end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(max(0.0, deadline - time.monotonic())):
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    @property
    def lines(self):
        """stderr lines, without the warning a run without cgroups starts with"""
        return [l for l in self.seen.splitlines() if not l.startswith("teepy: warning: no cgroup")]

    def connect(self, timeout=10.0):
        """A TCP connection to the service."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        """(status, headers as a dict of lower-case names, body) of one request on a
        connection of its own."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@contextlib.contextmanager
def serving(start, *args, **kwargs):
    """start(*args, **kwargs) as a Served; teepy is stopped at the end of the block if
    the test did not stop it: SIGTERM, so that it removes its cgroups, then SIGKILL."""
    served = Served(start(*args, **kwargs))
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.terminate()
            try:
                served.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                served.proc.kill()
                served.proc.wait(timeout=30)


@contextlib.contextmanager
def on_loopback(start, *args, **kwargs):
    """serving(start, "run", "--listen", "127.0.0.1:0", *args), its address read."""
    with serving(start, "run", "--listen", "127.0.0.1:0", *args, **kwargs) as served:
        served.listening()
        yield served


def refused(host, port):
    """Whether nothing listens on host:port any more."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
