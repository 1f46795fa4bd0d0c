"""The worker, `teepy serve` (docs/api.md): started for real on 127.0.0.1 with a free
port and driven with http.client. Bundles made by `teepy build`, data items by `teepy
data seal`. Deploy then invoke with service data and task data in TEEX's order (as root
and as uid 65534); an encrypted bundle in development mode; an untrusted signer; one
bundle with two data lists; a restart; bad requests while the worker keeps serving; a
service that raises, goes over its memory, spins or sleeps past the wall clock while
another succeeds; a full queue; a client that goes away; a worker killed with SIGKILL
leaving no sandboxed process; no input, result or plaintext in the log lines or the
store."""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from volumes import own

# A service's reading of every data item it was given, in order (the worker's tests'
# services share it)
READ_DATA = """\
data = []
while True:
    try:
        data.append(teex.TEEX_getdata(len(data)).decode())
    except IndexError:
        break
"""

SERVICE = """
import json, os, sys, time, teex
mode = teex.TEEX_getinput()
""" + READ_DATA + """\
print("log-of-the-service", flush=True)
if mode == "raise":
    raise ValueError("asked to raise")
if mode == "memory":
    blob = b"x" * (1 << 30)
if mode == "spin":
    while True:
        pass
if mode.startswith("sleep "):
    time.sleep(float(mode.split()[1]))
if mode == "big":
    teex.TEEX_return("z" * 200000)
if mode == "env":
    teex.TEEX_return(os.environ.get("API_TOKEN", "none"))
if mode == "loud":
    sys.stdout.write("y" * 100000)
if mode == "badlog":
    sys.stdout.flush()
    sys.stdout.buffer.write(b"bad \\xff\\xfe bytes\\n")
    sys.stdout.flush()
teex.TEEX_return(json.dumps({"input": mode, "data": data}))
"""

INPUT_MARKER = "INPUT-MARKER-5b1e"
DATA_MARKERS = {"a": b"SERVICE-DATA-MARKER-91c2", "b": b"TASK-DATA-MARKER-44d0",
                "c": b"OTHER-DATA-MARKER-0e7a"}


def _direct(teepy, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    env["TEEPY_NO_CACHE"] = "1"
    r = subprocess.run([str(teepy), *map(str, args)], capture_output=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr.decode()
    return r


def _key_b64(path):
    return base64.b64encode(bytes.fromhex(Path(path).read_text().split("\n")[1])).decode()


@pytest.fixture(scope="module")
def apps(teepy):
    """The bundles (plain, encrypted, by an untrusted signer) and sealed data items,
    made once for the module."""
    d = Path(tempfile.mkdtemp(prefix="teepy-test-worker-", dir="/tmp"))
    d.chmod(0o755)
    (d / "app").mkdir()
    (d / "app" / "svc.py").write_text(textwrap.dedent(SERVICE))
    _direct(teepy, "keygen", "-o", d / "signer.key")
    _direct(teepy, "keygen", "-o", d / "stranger.key")
    limits = ["--memory", "256M", "--cpu-time", "1s"]
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "svc.tpy", "--key", d / "signer.key",
            "--input", "sample", *limits)
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "enc.tpy", "--key", d / "signer.key",
            "--input", "sample", "--encrypt", *limits)
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "other.tpy", "--key",
            d / "stranger.key", "--input", "sample")
    # the same signer, another app (other limits): a bundle the worker trusts too
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "alt.tpy", "--key", d / "signer.key",
            "--input", "sample", "--memory", "200M")
    for name, marker in DATA_MARKERS.items():
        (d / f"{name}.txt").write_bytes(marker)
        _direct(teepy, "data", "seal", d / f"{name}.txt", "-o", d / f"{name}.tpd")
        os.remove(d / f"{name}.txt")
    for p in d.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Worker:
    """`teepy serve --listen 127.0.0.1:0` started through the test's `start` fixture
    (root, or uid 65534); its stderr lines collected."""

    def __init__(self, start, store, trust, *args, env=None):
        self.proc = start("serve", "--listen", "127.0.0.1:0", "--store", store, "--trust", trust,
                          *args, env=env)
        self.lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+), store .*, (\d+) services?,", line)
            if m:
                self.port, self.services_at_start = int(m.group(1)), int(m.group(2))
                break
        else:
            line = ""
        if not hasattr(self, "port"):
            self.proc.kill()
            raise AssertionError(f"teepy serve did not start: {self.lines!r} {self.proc.stderr.read()!r}")
        self.start_line = self.lines[-1]
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.decode())

    def request(self, method, path, body=b"", ctype="application/json", headers=None,
                timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": ctype} if ctype else {}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        assert r.getheader("Content-Type") == "application/json", (r.status, data)
        return r.status, json.loads(data), r

    def upload(self, kind, path):
        s, doc, _ = self.request("POST", f"/v1/{kind}", Path(path).read_bytes(),
                                 "application/octet-stream")
        return s, doc

    def deploy(self, bundle, service_data=(), **keys):
        body = {"bundle": bundle, "service_data": list(service_data)}
        if keys:
            body["keys"] = keys
        s, doc, _ = self.request("POST", "/v1/services", json.dumps(body).encode())
        return s, doc

    def invoke(self, service, input, task_data=(), data_keys=None, timeout=60):
        body = {"input": input, "task_data": list(task_data)}
        if data_keys:
            body["data_keys"] = data_keys
        s, doc, _ = self.request("POST", f"/v1/services/{service}/invoke",
                                 json.dumps(body).encode(), timeout=timeout)
        return s, doc

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.drain.join(timeout=10)
        return rc

    def request_lines(self):
        return [json.loads(l) for l in self.lines if l.startswith("{")]


@pytest.fixture
def store(tmp, variant):
    """A directory the variant's user owns, and the store's path inside it."""
    d = tmp.make_sibling("store")
    own(d, variant)
    return d / "store"


def deployed(w, apps, data=("a",), bundle="svc.tpy"):
    """The bundle and data items uploaded, the service deployed: (service id, data ids)."""
    s, b = w.upload("bundles", apps / bundle)
    assert s in (200, 201), b
    ids, keys = [], {}
    for name in data:
        s, item = w.upload("data", apps / f"{name}.tpd")
        assert s in (200, 201), item
        ids.append(item["data"])
        keys[item["data"]] = _key_b64(apps / f"{name}.tpd.key")
    extra = {"data_keys": keys} if keys else {}
    s, svc = w.deploy(b["bundle"], ids, **extra)
    assert s in (200, 201), svc
    return svc["service"], ids


def raw_invoke(w, service, input):
    """An invocation sent on a socket of the test's own (left open): the socket."""
    body = json.dumps({"input": input}).encode()
    c = socket.create_connection(("127.0.0.1", w.port))
    c.sendall(b"POST /v1/services/%s/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (service.encode(), len(body), body))
    return c


def service_processes(w):
    """Waits for a service's python under the worker: the worker's descendants then."""
    deadline = time.time() + 20
    while time.time() < deadline:
        below = descendants(w.proc.pid)
        if any(comm(p) and comm(p).startswith("python") for p in below):
            return below
        time.sleep(0.1)
    raise AssertionError(f"no service process under the worker: {below!r}")


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, said", [
    (["--store", "{d}/s"], "no trusted signer: --trust PUB"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--listen", "localhost:80"],
     "--listen 'localhost:80': the address must be numeric"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--listen", "::1:8080"],
     "--listen '::1:8080': put an IPv6 address in brackets ([::1]:8000)"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--listen", "127.0.0.1:+80"],
     "--listen '127.0.0.1:+80': the port must be a number from 0 to 65535"),
    (["--store", "{d}/s", "--trust", "{d}/nothing.pub"], "--trust {d}/nothing.pub:"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--queue", "x"], "--queue x: not a number"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--cas", "https://h:1"],
     "--cas: give --cas-fingerprint FP too"),
    (["--store", "{d}/s", "--trust", "{d}/signer.pub", "--cas", "http://h:1",
      "--cas-fingerprint", "sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM="],
     "--cas: 'http://h:1' is not an https:// URL"),
    (["--trust", "{d}/signer.pub"], "--store DIR is needed"),
    (["--bogus"], "unknown option '--bogus' (see teepy serve --help)"),
])
def test_a_bad_start_is_one_line(run, apps, args, said):
    r = run("serve", *[a.format(d=apps) for a in args], timeout=30)
    assert r.returncode == 2 and len(r.err_lines) == 1, r
    assert r.err_lines[0].startswith(f"teepy: serve: {said.format(d=apps)}"), r
    assert not (apps / "s").exists()



def test_deploy_then_invoke_with_service_and_task_data_in_teex_order(as_user, start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    assert "keys: development mode" in w.start_line and w.services_at_start == 0
    service, (a_id,) = deployed(w, apps, ("a",))
    s, b_item = w.upload("data", apps / "b.tpd")
    assert s == 201 and b_item["size"] == (apps / "b.tpd").stat().st_size
    s, r = w.invoke(service, INPUT_MARKER, [b_item["data"]],
                    {b_item["data"]: _key_b64(apps / "b.tpd.key")})
    assert s == 200, r
    assert json.loads(r["result"]) == {"input": INPUT_MARKER,
                                       "data": [DATA_MARKERS["a"].decode(),
                                                DATA_MARKERS["b"].decode()]}
    assert r["log"] == "log-of-the-service\n" and r["log_truncated"] is False
    assert set(r["usage"]) == {"cpu_ms", "peak_memory_bytes", "wall_ms"}
    # the count is written just after the answer is sent (docs/api.md)
    deadline = time.time() + 5
    while True:
        s, got, _ = w.request("GET", f"/v1/services/{service}", ctype=None)
        if s != 200 or got["invocations"] == 1 or time.time() > deadline:
            break
        time.sleep(0.01)
    assert s == 200 and got["invocations"] == 1 and got["service_data"] == [a_id]
    # the service id as docs/api.md defines it
    assert service == hashlib.sha256(b"teepy-service-v1\0" + bytes.fromhex(got["app"])
                                     + bytes.fromhex(a_id)).hexdigest()
    assert got["keys"] == "development" and got["state"] == "ready"
    assert w.stop() == 0
    # the request lines: one each, an invocation's with its end, nothing of the bytes
    lines = w.request_lines()
    inv = [l for l in lines if l["path"].endswith("/invoke")]
    assert len(inv) == 1 and inv[0]["end"] == "result" and inv[0]["service"] == service
    assert {"time", "remote", "method", "path", "status", "ms"} <= set(inv[0])
    said = "".join(w.lines)
    assert INPUT_MARKER not in said and "log-of-the-service" not in said
    # the store: 0700 and 0600, no plaintext of a sealed item
    assert (store.stat().st_mode & 0o777) == 0o700
    assert ((store / "worker.db").stat().st_mode & 0o777) == 0o600
    for p in store.rglob("*"):
        if p.is_file():
            content = p.read_bytes()
            assert not any(m in content for m in DATA_MARKERS.values()), p
            assert INPUT_MARKER.encode() not in content, p


def test_an_encrypted_bundle_needs_its_key_and_the_right_one(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    s, b = w.upload("bundles", apps / "enc.tpy")
    assert s == 201 and b["encrypted"] is True
    s, doc = w.deploy(b["bundle"])
    assert s == 409 and doc["error"]["kind"] == "conflict", doc
    wrong = base64.b64encode(b"\x01" * 32).decode()
    s, doc = w.deploy(b["bundle"], bundle_key=wrong)
    assert s == 400 and doc["error"]["message"] == "bundle_key does not open the bundle"
    s, doc = w.deploy(b["bundle"], bundle_key=_key_b64(apps / "enc.tpy.key"))
    assert s == 201 and doc["keys"] == "development", doc
    s, r = w.invoke(doc["service"], "hello")
    assert s == 200 and json.loads(r["result"])["input"] == "hello", r
    # a data key that does not open its item
    s, item = w.upload("data", apps / "a.tpd")
    s, doc = w.deploy(b["bundle"], [item["data"]], bundle_key=_key_b64(apps / "enc.tpy.key"),
                      data_keys={item["data"]: wrong})
    assert s == 400 and doc["error"]["message"] == f"the key of {item['data']} does not open it"
    w.stop()


def test_an_untrusted_signer_is_refused_at_upload(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    s, doc = w.upload("bundles", apps / "other.tpy")
    assert s == 403 and doc["error"]["kind"] == "forbidden", doc
    assert "--trust" in doc["error"]["message"]
    assert not list((store / "bundles").iterdir())
    w.stop()


def test_a_servers_bundle_is_refused_at_upload(start, apps, store, tmp_path):
    """A bundle with the policy network "listen" serves on a socket for its whole
    life (teepy run --listen); a worker's invocations give none."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sealed"))
    from sealed_support import bundle_manifest, resign
    m = bundle_manifest(apps / "svc.tpy")
    m["policy"]["network"] = "listen"
    server = resign(apps / "svc.tpy", apps / "signer.key", m, tmp_path / "server.tpy")
    w = Worker(start, store, apps / "signer.pub")
    s, doc = w.upload("bundles", server)
    assert s == 400 and doc["error"]["kind"] == "bad_request", doc
    assert 'serves on a socket (policy network "listen")' in doc["error"]["message"]
    assert not list((store / "bundles").iterdir())
    w.stop()


def test_a_pypy_bundle_is_refused_at_upload(start, apps, store, tmp_path):
    """A worker forks its invocations from CPython zygotes and names CPython's runtime
    measurement: a bundle for PyPy runs with teepy run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sealed"))
    from sealed_support import bundle_manifest, resign
    m = bundle_manifest(apps / "svc.tpy")
    m["engine"] = {"name": "pypy", "version": "3.9"}
    pypy = resign(apps / "svc.tpy", apps / "signer.key", m, tmp_path / "pypy.tpy")
    w = Worker(start, store, apps / "signer.pub")
    s, doc = w.upload("bundles", pypy)
    assert s == 400 and doc["error"]["kind"] == "bad_request", doc
    assert "it runs on pypy3, and a worker runs CPython's bundles" in doc["error"]["message"], doc
    assert not list((store / "bundles").iterdir())
    w.stop()


def test_one_bundle_with_two_data_lists_is_two_services_and_survives_a_restart(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    first, _ = deployed(w, apps, ("a",))
    second, _ = deployed(w, apps, ("c",))
    assert first != second
    again, _ = deployed(w, apps, ("a",))
    assert again == first
    s, doc = w.upload("bundles", apps / "svc.tpy")
    assert s == 200  # held already
    s, listed, _ = w.request("GET", "/v1/services", ctype=None)
    assert [x["service"] for x in listed["services"]] == [first, second]
    # a stop with an invocation running: it is stopped, its client answered
    answer = {}
    t = threading.Thread(target=lambda: answer.update(r=w.invoke(first, "sleep 30")))
    t.start()
    service_processes(w)
    stopped = time.time()
    assert w.stop() == 0
    t.join(timeout=30)
    assert time.time() - stopped < 15
    assert answer["r"][0] == 503, answer
    assert "stopped (SIGTERM)" in w.lines[-1]

    w = Worker(start, store, apps / "signer.pub")
    assert w.services_at_start == 2
    s, r = w.invoke(second, "x")
    assert s == 200 and json.loads(r["result"])["data"] == [DATA_MARKERS["c"].decode()]
    s, doc, _ = w.request("DELETE", f"/v1/services/{second}", ctype=None)
    assert s == 200 and doc == {"service": second}
    s, doc = w.invoke(second, "x")
    assert s == 404 and doc["error"]["kind"] == "not_found"
    w.stop()


def test_bad_requests_are_refused_and_the_worker_keeps_serving(start, apps, store):
    w = Worker(start, store, apps / "signer.pub", "--max-request", "1K", "--max-upload", "64K",
               "--timeout", "1")
    service, _ = deployed(w, apps, ())
    # a slow client: headers never finished; the worker closes it after --timeout
    slow = socket.create_connection(("127.0.0.1", w.port))
    slow.sendall(b"POST /v1/services HTTP/1.1\r\nHost: x\r\n")
    cases = [
        ("POST", "/v1/services", b"{not json", "application/json", 400, "bad_request"),
        ("POST", "/v1/services", b"[1]", "application/json", 400, "bad_request"),
        ("POST", "/v1/services", json.dumps({"bundle": "ab" * 32}).encode(), "application/json",
         404, "not_found"),
        ("POST", "/v1/services", json.dumps({"bundle": "xyz"}).encode(), "application/json", 400,
         "bad_request"),
        ("POST", "/v1/services", b"{}", "text/plain", 415, "unsupported_media_type"),
        ("POST", "/v1/services", b"x" * 2048, "application/json", 413, "too_large"),
        ("POST", "/v1/bundles", b"x" * 1000, "application/json", 415, "unsupported_media_type"),
        ("POST", "/v1/bundles", b"not a bundle", "application/octet-stream", 400, "bad_request"),
        ("POST", "/v1/bundles", b"x" * 70000, "application/octet-stream", 413, "too_large"),
        ("POST", "/v1/data", b"plain bytes", "application/octet-stream", 400, "bad_request"),
        ("PUT", "/v1/services", b"{}", "application/json", 405, "method_not_allowed"),
        ("GET", "/v1/nothing", b"", None, 404, "not_found"),
        ("GET", "/v1/services/" + "cd" * 32, b"", None, 404, "not_found"),
        ("GET", "/v1/services/" + "CD" * 32, b"", None, 400, "bad_request"),
        ("POST", f"/v1/services/{service}/invoke", b'{"input": 5}', "application/json", 400,
         "bad_request"),
        ("POST", f"/v1/services/{service}/invoke", json.dumps({"task_data": ["ef" * 32]}).encode(),
         "application/json", 404, "not_found"),
        ("POST", "/v1/services/" + "cd" * 32 + "/invoke", b"{}", "application/json", 404,
         "not_found"),
    ]
    for method, path, body, ctype, status, kind in cases:
        s, doc, r = w.request(method, path, body, ctype)
        assert (s, doc["error"]["kind"]) == (status, kind), (method, path, body[:40], doc)
        if status == 405:
            assert r.getheader("Allow") == "GET, POST"
    # a body without a length that goes over
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=30)
    conn.request("POST", "/v1/services", body=iter([b"{" * 700, b" " * 700]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()
    slow.settimeout(10)
    assert slow.recv(100) == b""  # closed by the worker
    slow.close()
    s, r = w.invoke(service, "still here")
    assert s == 200, r
    # an invocation longer than --timeout: its connection waits, suspended, not idle
    s, r = w.invoke(service, "sleep 2")
    assert s == 200, r
    # an input with a NUL reaches the service whole
    s, r = w.invoke(service, "a\u0000b")
    assert s == 200 and json.loads(r["result"])["input"] == "a\u0000b", r
    # a task data item without its key; a log that is not UTF-8
    s, item = w.upload("data", apps / "b.tpd")
    s, doc = w.invoke(service, "x", [item["data"]])
    assert s == 409 and doc["error"]["kind"] == "key_missing", doc
    s, r = w.invoke(service, "badlog")
    assert s == 200 and "bad \ufffd\ufffd bytes\n" in r["log"], r
    s, r = w.invoke(service, "loud")
    assert s == 200 and r["log_truncated"] is True and len(r["log"]) == 64 * 1024, r["usage"]
    w.stop()


def test_failing_services_get_their_kinds_while_another_succeeds(start, apps, store):
    w = Worker(start, store, apps / "signer.pub", "--concurrency", "5", "--invoke-timeout", "10")
    service, _ = deployed(w, apps, ())
    answers = {}

    def call(mode):
        answers[mode] = w.invoke(service, mode)

    threads = [threading.Thread(target=call, args=(m,))
               for m in ("raise", "memory", "spin", "sleep 30", "fine")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers["fine"][0] == 200, answers["fine"]
    expect = {"raise": (422, "failed"), "memory": (422, "memory"), "spin": (422, "cpu"),
              "sleep 30": (504, "timeout")}
    for mode, (status, kind) in expect.items():
        s, doc = answers[mode]
        assert (s, doc["error"]["kind"]) == (status, kind), (mode, doc)
        assert "log-of-the-service\n" in doc["log"], (mode, doc)
    assert "ValueError: asked to raise" in answers["raise"][1]["log"]
    w.stop()
    ends = sorted(l["end"] for l in w.request_lines() if l["path"].endswith("/invoke"))
    assert ends == ["cpu", "failed", "memory", "result", "timeout"]


def test_a_result_over_max_result_ends_failed_and_the_worker_never_holds_it(start, apps, store):
    w = Worker(start, store, apps / "signer.pub", "--max-result", "100K")
    service, _ = deployed(w, apps, ())
    s, doc = w.invoke(service, "big")
    assert s == 422 and doc["error"]["kind"] == "failed" and "result" not in doc, doc
    assert doc["error"]["message"] == \
        "the result is larger than the worker takes (--max-result)", doc
    s, doc = w.invoke(service, "fine")
    assert s == 200, doc
    w.stop()


def test_a_full_queue_is_503_and_a_client_gone_stops_its_invocation(start, apps, store):
    w = Worker(start, store, apps / "signer.pub", "--concurrency", "1", "--queue", "1")
    service, _ = deployed(w, apps, ())
    first = raw_invoke(w, service, "sleep 30")
    service_processes(w)  # running
    # two more: one waits, the other (whichever comes second) finds the queue full
    answers = []
    body = json.dumps({"input": "fine"}).encode()
    threads = [threading.Thread(target=lambda: answers.append(
        w.request("POST", f"/v1/services/{service}/invoke", body))) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while not answers and time.time() < deadline:
        time.sleep(0.1)
    s, doc, r = answers[0]
    assert s == 503 and doc["error"]["kind"] == "busy" and r.getheader("Retry-After") == "1"
    gone = time.time()
    first.close()  # the client goes away: its invocation is stopped, the queued one runs
    for t in threads:
        t.join(timeout=30)
    assert [a[0] for a in answers] == [503, 200], answers
    assert time.time() - gone < 10
    w.stop()
    statuses = [l["status"] for l in w.request_lines() if l["path"].endswith("/invoke")]
    assert sorted(statuses) == [200, 499, 503]


def test_the_inputs_waiting_are_bounded_in_bytes(start, apps, store):
    """Inputs of 900 bytes with --max-request 1K: four wait (4 KiB in all), a fifth is
    503 busy, whichever it is."""
    w = Worker(start, store, apps / "signer.pub", "--concurrency", "1", "--queue", "10",
               "--max-request", "1K")
    service, _ = deployed(w, apps, ())
    running = raw_invoke(w, service, "sleep 30")
    service_processes(w)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(w.invoke(service, "x" * 900)))
               for _ in range(5)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while not answers and time.time() < deadline:
        time.sleep(0.1)
    assert [(s, doc["error"]["kind"]) for s, doc in answers] == [(503, "busy")], answers
    running.close()  # the four waiting run
    for t in threads:
        t.join(timeout=60)
    assert sorted(s for s, _ in answers) == [200, 200, 200, 200, 503], answers
    w.stop()


def test_a_client_that_half_closes_is_gone_and_gets_no_499_on_the_wire(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    service, _ = deployed(w, apps, ())
    c = raw_invoke(w, service, "sleep 30")
    c.shutdown(socket.SHUT_WR)
    c.settimeout(20)
    got = b""
    while chunk := c.recv(4096):
        got += chunk
    c.close()
    assert got == b"", got
    w.stop()
    assert [l["status"] for l in w.request_lines() if l["path"].endswith("/invoke")] == [499]


def test_an_invocations_job_file_holds_no_key(start, apps, store):
    """The keys go to the invocation's process over its socket, into locked memory,
    not in the job's memfd (whose pages may be swapped)."""
    w = Worker(start, store, apps / "signer.pub")
    service, _ = deployed(w, apps, ("a",))
    c = raw_invoke(w, service, "sleep 30")
    jobs = []
    for pid in service_processes(w):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:teepy-job"):
                    jobs.append(Path(f"/proc/{pid}/fd/{fd}").read_bytes())
        except OSError:
            continue
    c.close()
    key = bytes.fromhex((apps / "a.tpd.key").read_text().split("\n")[1])
    assert jobs and all(b"sleep 30" in job and key not in job for job in jobs), len(jobs)
    w.stop()


def test_a_worker_killed_leaves_no_sandboxed_process(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    service, _ = deployed(w, apps, ())
    c = raw_invoke(w, service, "sleep 60")
    below = service_processes(w)
    w.proc.kill()
    w.proc.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline and any(comm(p) for p in below):
        time.sleep(0.1)
    assert not [(p, comm(p)) for p in below if comm(p)]
    c.close()
    # a worker started again serves; its first run removes the dead one's cgroups
    w = Worker(start, store, apps / "signer.pub")
    s, r = w.invoke(service, "after")
    assert s == 200, r
    w.stop()


def test_a_bundle_changed_in_the_store_is_refused_at_run_time(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    service, _ = deployed(w, apps, ())
    (blob,) = (store / "bundles").iterdir()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01  # the last byte of the app's own file
    blob.write_bytes(bytes(data))
    s, doc = w.invoke(service, "x")
    assert s == 500 and doc["error"]["kind"] == "refused", doc
    w.stop()


def test_another_signed_bundle_in_a_services_place_is_refused_not_run(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    service, _ = deployed(w, apps, ())
    s, alt = w.upload("bundles", apps / "alt.tpy")
    assert s == 201, alt
    (blob,) = [p for p in (store / "bundles").iterdir() if alt["bundle"] not in p.name]
    shutil.copyfile(apps / "alt.tpy", blob)  # trusted and signed, not the service's
    s, doc = w.invoke(service, "x")
    assert s == 500 and doc["error"]["kind"] == "refused" and "result" not in doc, doc
    assert "not the service's" in doc["error"]["message"], doc
    w.stop()


def test_an_upload_replaces_a_file_at_its_name_that_is_not_its_bytes(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    s, b = w.upload("bundles", apps / "svc.tpy")
    assert s == 201, b
    path = store / "bundles" / f"{b['bundle']}.tpy"
    shutil.copyfile(apps / "alt.tpy", path)
    s, again = w.upload("bundles", apps / "svc.tpy")
    assert s == 200, again
    assert hashlib.sha256(path.read_bytes()).hexdigest() == b["bundle"]
    w.stop()


def test_the_openapi_document_names_the_routes_the_worker_serves(start, apps, store):
    spec = json.loads((Path(__file__).resolve().parents[2] / "docs" / "api.openapi.json").read_text())
    w = Worker(start, store, apps / "signer.pub")
    for path, ops in spec["paths"].items():
        concrete = path.replace("{id}", "ab" * 32)
        methods = sorted(m.upper() for m in ops if m != "parameters")
        for method in methods:
            s, doc, _ = w.request(method, concrete, b"{}" if method == "POST" else b"",
                                  "application/json")
            assert s not in (404, 405) or doc["error"]["message"].startswith("no service"), \
                (method, path, doc)
        s, doc, r = w.request("PATCH", concrete, b"", None)
        assert s == 405 and sorted(r.getheader("Allow").split(", ")) == methods, (path, doc)
    w.stop()


def test_concurrent_deployments_and_deletions_keep_the_store_whole(start, apps, store):
    w = Worker(start, store, apps / "signer.pub")
    s, b = w.upload("bundles", apps / "svc.tpy")
    statuses, failed = [], []

    def churn():
        for _ in range(5):
            s, doc = w.deploy(b["bundle"])
            statuses.append(s)
            if s >= 500:
                failed.append(doc)
                continue
            s, d2, _ = w.request("DELETE", f"/v1/services/{doc['service']}", ctype=None)
            statuses.append(s)
            if s >= 500:
                failed.append(d2)

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failed and len(statuses) == 80 and set(statuses) <= {200, 201, 404}, failed
    w.stop()


def test_a_cas_slow_to_answer_holds_no_connection_thread(start, teepy, apps, store, tmp):
    """Deployments waiting on a CAS that never answers (more of them than the worker
    has connection threads) leave the worker serving others."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    env = {"TEEPY_PLATFORM_KEY": str(tmp / "platform.key")}
    r = subprocess.run([str(teepy), "platform", "init"], capture_output=True, timeout=30,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    w = Worker(start, store, apps / "signer.pub", "--cas", f"https://127.0.0.1:{hole.getsockname()[1]}",
               "--cas-fingerprint", "sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM=", env=env)
    s, b = w.upload("bundles", apps / "svc.tpy")
    body = json.dumps({"bundle": b["bundle"], "config_id": "mysvc/main"}).encode()
    answers = []

    def deploy():
        answers.append(w.request("POST", "/v1/services", body, timeout=60)[0])

    threads = [threading.Thread(target=deploy) for _ in range(6)]
    for t in threads:
        t.start()
    hole.settimeout(20)
    first, _ = hole.accept()  # one deployment is in the CAS's call, the others wait
    try:
        s, doc, _ = w.request("GET", "/v1/services", ctype=None, timeout=5)
        assert s == 200, doc
    finally:
        first.close()
        hole.close()
    for t in threads:
        t.join(timeout=60)
    assert answers == [500] * 6, answers
    w.stop()


def test_keys_by_attestation_from_a_cas(start, teepy, apps, store, tmp):
    """--cas: the keys of an encrypted bundle, its sealed service data, a sealed task
    data item and an env value released by the CAS (the stand-in written from its
    contract, tests/cas_mock.py) for this worker's runtime, at deployment and again at
    the first invocation after a restart; nothing of them in the store."""
    from cas_mock import MockCas
    cas = MockCas(str(tmp.make_sibling("cas")))
    try:
        env = {"TEEPY_PLATFORM_KEY": str(tmp / "platform.key")}
        r = subprocess.run([str(teepy), "platform", "init"], capture_output=True, timeout=30,
                           env={**os.environ, **env})
        assert r.returncode == 0, r.stderr
        platform = re.search(r"^public\s+([0-9a-f]{64})$", r.stdout.decode(), re.M).group(1)
        args = ["--cas", cas.url, "--cas-fingerprint", cas.fingerprint]
        w = Worker(start, store, apps / "signer.pub", *args, env=env)
        runtime = re.search(r"runtime measurement ([0-9a-f]{64})", w.start_line).group(1)

        def pfs_id(item):
            info = _direct(teepy, "data", "info", item).stdout.decode()
            return re.search(r"^id\s+([0-9a-f]{64})$", info, re.M).group(1)

        def b64(keyfile):
            return _key_b64(keyfile)

        app = json.loads(_direct(teepy, "inspect", apps / "enc.tpy", "--json").stdout)["app"]
        secrets = {
            "app_key": {"kind": "bundle_key", "value": b64(apps / "enc.tpy.key")},
            "a": {"kind": "data_key", "value": b64(apps / "a.tpd.key"), "data_id": pfs_id(apps / "a.tpd")},
            "b": {"kind": "data_key", "value": b64(apps / "b.tpd.key"), "data_id": pfs_id(apps / "b.tpd")},
            "API_TOKEN": {"kind": "env", "value": "token from the CAS"},
        }
        policy = {"name": "mysvc", "services": {"main": {
            "app": [app], "runtime": [runtime], "tolerate": ["sim"], "platform_keys": [platform],
            "secrets": list(secrets)}}, "secrets": secrets}
        f = tmp.write("mysvc.json", json.dumps(policy))
        _direct(teepy, "keygen", "-o", tmp / "owner.key")
        _direct(teepy, "policy", "create", f, *args, "--owner", tmp / "owner.key")

        s, b = w.upload("bundles", apps / "enc.tpy")
        s, a_item = w.upload("data", apps / "a.tpd")
        s, b_item = w.upload("data", apps / "b.tpd")
        s, doc = w.deploy(b["bundle"], [a_item["data"]], bundle_key=b64(apps / "enc.tpy.key"))
        assert s == 403 and doc["error"]["kind"] == "forbidden", doc
        # another bundle than the policy's: the CAS denies it, with its reason
        s, plain = w.upload("bundles", apps / "svc.tpy")
        body = {"bundle": plain["bundle"], "config_id": "mysvc/main"}
        s, doc, _ = w.request("POST", "/v1/services", json.dumps(body).encode())
        assert s == 403 and "the CAS denied mysvc/main" in doc["error"]["message"], doc
        body = {"bundle": b["bundle"], "service_data": [a_item["data"]], "config_id": "mysvc/main"}
        s, svc, _ = w.request("POST", "/v1/services", json.dumps(body).encode())
        assert s == 201 and svc["keys"] == "cas" and svc["config_id"] == "mysvc/main", svc
        # another config that releases keys for the same bundle: the first deployer's
        # config stands, and the second is told so
        other = tmp.write("othersvc.json", json.dumps({**policy, "name": "othersvc"}))
        _direct(teepy, "policy", "create", other, *args, "--owner", tmp / "owner.key")
        s, again, _ = w.request("POST", "/v1/services", json.dumps(
            {**body, "config_id": "othersvc/main"}).encode())
        assert s == 409 and again["error"]["kind"] == "conflict", again
        assert "from config_id mysvc/main" in again["error"]["message"], again
        s, again, _ = w.request("POST", "/v1/services", json.dumps(body).encode())
        assert s == 200 and again == svc, again
        s, r = w.invoke(svc["service"], "x", [b_item["data"]])
        assert s == 200 and json.loads(r["result"])["data"] == [
            DATA_MARKERS["a"].decode(), DATA_MARKERS["b"].decode()], r
        s, doc = w.invoke(svc["service"], "x", [b_item["data"]],
                          {b_item["data"]: b64(apps / "b.tpd.key")})
        assert s == 403 and doc["error"]["kind"] == "forbidden", doc
        w.stop()

        w = Worker(start, store, apps / "signer.pub", *args, env=env)
        s, r = w.invoke(svc["service"], "env")
        assert s == 200 and r["result"] == "token from the CAS", r
        w.stop()
        for p in store.rglob("*"):
            if p.is_file():
                content = p.read_bytes()
                assert b"token from the CAS" not in content, p
                for k in ("enc.tpy.key", "a.tpd.key", "b.tpd.key"):
                    key = bytes.fromhex((apps / k).read_text().split("\n")[1])
                    assert key not in content, (p, k)
    finally:
        cas.close()
