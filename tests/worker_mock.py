"""A stand-in worker for the client's tests, written from docs/api.md alone (not from
teepy's C): HTTP/1.1 on loopback, the bundle, data, service and invoke requests with
the contract's statuses and error kinds, in development mode (keys come with the
deployment). It runs no service: an invocation answers from its input, so that a
test can ask for any end —

* "end:KIND" ends as KIND would (422 failed, 504 timeout, ...), with a log;
* anything else is a result: JSON of the input, the data ids the service reads
  (service data, then task data) and the data keys it was given.

It cannot verify a bundle's signature or compute its measurement: a bundle is
taken when it starts as one does ("TEEPYBDL"), its `app` stands in as the SHA-256 of
"app" and its id. Uploads are read in pieces, as a worker streams them. Everything a test may look at is kept: every request seen
(method, path, headers, body) and the keys received. It stands for the real worker
(`teepy serve`) where that is not built."""
import base64
import hashlib
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUNDLE_MAGIC = b"TEEPYBDL"
PFS_MAGIC = b"teepy-pf"

# an invocation's end: (status, kind, the runner's line)
ENDS = {
    "failed": (422, "failed", "the service failed: ValueError: as asked"),
    "no_result": (422, "no_result", "the service ended without returning a result"),
    "rule": (422, "rule", "killed for a rule: forbidden system call ptrace"),
    "memory": (422, "memory", "memory limit exceeded (64 MiB)"),
    "cpu": (422, "cpu", "CPU time limit exceeded (1 s)"),
    "timeout": (504, "timeout", "wall-clock timeout (2 s)"),
    "config": (400, "config", "the input is larger than the memory limit"),
    "key_missing": (409, "key_missing", "no key for sealed data item 0"),
    "refused": (500, "refused", "bundle refused: a file changed: /app/svc.py"),
    "internal": (500, "internal", "internal error: cannot make the sandbox"),
}

KEEP_MAX = 16 << 20  # an upload larger is not kept in seen (its body is None)

USAGE = {"cpu_ms": 12, "peak_memory_bytes": 12345678, "wall_ms": 34}


class MockWorker:
    """One worker's state; url is where it listens."""

    def __init__(self, max_upload=1 << 30, max_request=64 << 20, tls=None):
        self.max_upload, self.max_request = max_upload, max_request
        self.bundles, self.data, self.services = {}, {}, {}
        self.seen = []
        self.busy = False  # answer every invocation 503 busy
        self.garbage = False  # answer 200 with bytes that are not JSON
        self.lock = threading.Lock()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_expect_100(self):
                # a body over the limit is refused before it is sent
                if self._too_large():
                    self._error(413, "too_large", "the body is larger than the limit",
                                close=True)
                    return False
                return super().handle_expect_100()

            def _limit(self):
                upload = self.path in ("/v1/bundles", "/v1/data")
                return worker.max_upload if upload else worker.max_request

            def _too_large(self):
                return int(self.headers.get("Content-Length") or 0) > self._limit()

            def _answer(self, status, doc, headers=(), close=False):
                body = b"<html>not json</html>" if worker.garbage else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status, kind, message, extra=None, headers=(), close=False):
                doc = {"error": {"kind": kind, "message": message}}
                doc.update(extra or {})
                self._answer(status, doc, headers, close)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                worker.seen.append({"method": self.command, "path": self.path,
                                    "headers": dict(self.headers), "body": body})
                return body

            def _json_body(self):
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    self._body()
                    self._error(415, "unsupported_media_type", "not application/json")
                    return None
                try:
                    doc = json.loads(self._body())
                except ValueError:
                    self._error(400, "bad_request", "malformed JSON")
                    return None
                if not isinstance(doc, dict):
                    self._error(400, "bad_request", "not a JSON object")
                    return None
                return doc

            def do_GET(self):
                if self.path == "/v1/services":
                    with worker.lock:
                        listing = sorted(worker.services.values(), key=lambda s: s["deployed"])
                    return self._answer(200, {"services": listing})
                if self.path.startswith("/v1/services/"):
                    s = worker.services.get(self.path.rsplit("/", 1)[1])
                    if s:
                        return self._answer(200, s)
                return self._error(404, "not_found", f"no such thing: {self.path}")

            def do_DELETE(self):
                sid = self.path.rsplit("/", 1)[1]
                with worker.lock:
                    if worker.services.pop(sid, None):
                        return self._answer(200, {"service": sid})
                return self._error(404, "not_found", f"unknown service {sid}")

            def do_POST(self):
                if self._too_large():
                    return self._error(413, "too_large", "the body is larger than the limit",
                                       close=True)
                if self.path in ("/v1/bundles", "/v1/data"):
                    return self._upload()
                if self.path == "/v1/services":
                    return self._deploy()
                if self.path.startswith("/v1/services/") and self.path.endswith("/invoke"):
                    return self._invoke(self.path.split("/")[3])
                self._body()
                return self._error(404, "not_found", f"unknown path {self.path}")

            def _read_upload(self):
                """The body in pieces, as a worker streams it to its store: (its first
                bytes, its SHA-256, its size); kept whole in seen only when small."""
                n = int(self.headers.get("Content-Length") or 0)
                h, head, size, kept = hashlib.sha256(), b"", 0, []
                while size < n:
                    piece = self.rfile.read(min(n - size, 1 << 20))
                    if not piece:
                        break
                    h.update(piece)
                    head = head or piece[:16]
                    size += len(piece)
                    if n <= KEEP_MAX:
                        kept.append(piece)
                worker.seen.append({"method": self.command, "path": self.path,
                                    "headers": dict(self.headers),
                                    "body": b"".join(kept) if n <= KEEP_MAX else None})
                return head, h.hexdigest(), size

            def _upload(self):
                ctype = self.headers.get("Content-Type", "")
                head, oid, size = self._read_upload()
                if ctype != "application/octet-stream":
                    return self._error(415, "unsupported_media_type",
                                       "not application/octet-stream")
                if self.path == "/v1/data":
                    if not head.startswith(PFS_MAGIC):
                        return self._error(400, "bad_request",
                                           "not a sealed data item (teepy data seal)")
                    with worker.lock:
                        known = oid in worker.data
                        worker.data[oid] = size
                    return self._answer(200 if known else 201, {"data": oid, "size": size})
                if not head.startswith(BUNDLE_MAGIC):
                    return self._error(400, "bad_request", "not a teepy bundle")
                app = hashlib.sha256(b"app" + bytes.fromhex(oid)).hexdigest()
                with worker.lock:
                    known = oid in worker.bundles
                    worker.bundles[oid] = {"bundle": oid, "app": app, "signer": "00" * 32,
                                           "encrypted": False}
                return self._answer(200 if known else 201, worker.bundles[oid])

            def _deploy(self):
                doc = self._json_body()
                if doc is None:
                    return
                b = worker.bundles.get(doc.get("bundle"))
                if not b:
                    return self._error(404, "not_found", f"unknown bundle {doc.get('bundle')}")
                ids = doc.get("service_data", [])
                for i in ids:
                    if i not in worker.data:
                        return self._error(404, "not_found", f"unknown data {i}")
                if "config_id" in doc:
                    return self._error(400, "bad_request",
                                       "config_id on a worker without a CAS")
                keys = doc.get("keys")
                for name, value in _key_values(keys):
                    if len(_b64(value)) != 32:
                        return self._error(400, "bad_request", f"{name}: not a 32-byte key")
                sid = hashlib.sha256(b"teepy-service-v1\0" + bytes.fromhex(b["app"]) +
                                     b"".join(bytes.fromhex(i) for i in ids)).hexdigest()
                with worker.lock:
                    known = sid in worker.services
                    if not known:
                        worker.services[sid] = {
                            "service": sid, "app": b["app"], "bundle": b["bundle"],
                            "service_data": ids, "keys": "development" if keys else "none",
                            "deployed": time.time(), "invocations": 0, "state": "ready",
                            "_keys": keys}
                    s = worker.services[sid]
                public = {k: v for k, v in s.items()
                          if k in ("service", "app", "bundle", "service_data", "keys")}
                return self._answer(200 if known else 201, public)

            def _invoke(self, sid):
                doc = self._json_body()
                if doc is None:
                    return
                s = worker.services.get(sid)
                if not s:
                    return self._error(404, "not_found", f"unknown service {sid}")
                if worker.busy:
                    return self._error(503, "busy", "the invocation queue is full",
                                       headers=[("Retry-After", "1")])
                text, task = doc.get("input"), doc.get("task_data", [])
                if not isinstance(text, str):
                    return self._error(400, "bad_request", "input is not a string")
                for i in task:
                    if i not in worker.data:
                        return self._error(404, "not_found", f"unknown data {i}")
                s["invocations"] += 1
                log = f"service log: {len(text)} characters\n"
                extra = {"usage": USAGE, "log": log, "log_truncated": False}
                if text.startswith("end:"):
                    status, kind, message = ENDS[text[4:]]
                    return self._error(status, kind, message, extra)
                result = json.dumps({"input": text, "data": s["service_data"] + task,
                                     "data_keys": sorted((doc.get("data_keys") or {}))})
                return self._answer(200, {"result": result, **extra})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:  # (cert, key): https, as behind a TLS-terminating proxy
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self, path):
        return [r for r in self.seen if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _b64(value):
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return b""


def _key_values(keys):
    keys = keys or {}
    if "bundle_key" in keys:
        yield "bundle_key", keys["bundle_key"]
    for i, v in (keys.get("data_keys") or {}).items():
        yield i, v
