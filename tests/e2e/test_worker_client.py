"""The worker's client commands (docs/api.md, "Client commands"): `teepy deploy`,
`teepy data put`, `teepy invoke` and `teepy services` against a worker stand-in
written from the contract (tests/worker_mock.py), and the same against the real
worker, `teepy serve` (the program teepy-worker beside teepy), when this build has
it: what is sent (the bundle's bytes, the service data, keys only with
--insecure-dev-keys), what is printed (ids, the result as it came, the log on
stderr), each end's exit code (teepy run's), and every failure in one line."""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from exit_codes import EXIT
from worker_mock import ENDS, MockWorker

SERVICE = """
import json, sys, teex
text = teex.TEEX_getinput()
print(f"service log: {len(text)} characters")
if text == "end:failed":
    raise ValueError("as asked")
if text == "end:no_result":
    sys.exit(0)
data = []
while True:
    try:
        data.append(teex.TEEX_getdata(len(data)).decode())
    except IndexError:
        break
teex.TEEX_return(json.dumps({"input": text, "data": data}))
"""

ID = re.compile(r"\A[0-9a-f]{64}\n\Z")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    env["TEEPY_NO_CACHE"] = "1"
    env.update(extra or {})
    return env


class Result(subprocess.CompletedProcess):
    @property
    def err_lines(self):
        return self.stderr.decode("utf-8", "replace").splitlines()


def teepy_run(teepy, *args, env=None, stdin=b""):
    r = subprocess.run([str(teepy), *map(str, args)], input=stdin, capture_output=True,
                       timeout=60, env=clean_env(env))
    r.__class__ = Result
    return r


def one_line(r):
    lines = r.err_lines
    assert len(lines) == 1, f"expected one stderr line: {r!r}"
    assert lines[0].startswith("teepy: "), r
    return lines[0]


@pytest.fixture(scope="module")
def kit(teepy):
    """Made once: a signed bundle of SERVICE, its signer's public key, and a sealed
    data item with its key."""
    d = Path(tempfile.mkdtemp(prefix="teepy-test-wclient-", dir="/tmp"))
    d.chmod(0o755)
    (d / "svc.py").write_text(textwrap.dedent(SERVICE))
    assert teepy_run(teepy, "keygen", "-o", d / "signer.key").returncode == EXIT.OK
    b = teepy_run(teepy, "build", d / "svc.py", "-o", d / "app.tpy", "--key", d / "signer.key",
                  "--input", "sample")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    (d / "train.txt").write_bytes(b"training data, sealed")
    s = teepy_run(teepy, "data", "seal", d / "train.txt", "-o", d / "train.tpd")
    assert s.returncode == EXIT.OK, s.stderr.decode()
    yield {"dir": d, "bundle": d / "app.tpy", "trust": d / "signer.pub", "item": d / "train.tpd",
           "item_key": d / "train.tpd.key", "plain": "training data, sealed"}
    shutil.rmtree(d, ignore_errors=True)


class RealWorker:
    """`teepy serve` on a new store, trusting the kit's signer; what it printed at
    start gives its URL. It keeps no log of requests a test can read (seen is None)."""

    seen = None
    kind = "real"

    def __init__(self, teepy, kit, d, max_upload=None):
        args = [str(teepy), "serve", "--listen", "127.0.0.1:0", "--store", str(d / "store"),
                "--trust", str(kit["trust"])]
        if max_upload is not None:
            args += ["--max-upload", str(max_upload)]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     env=clean_env())
        said, m = [], None
        for line in self.proc.stderr:
            said.append(line.decode())
            m = re.search(r"listening on (http://[^\s,]+)", said[-1])
            if m or len(said) > 8:
                break
        if not m:
            self.proc.kill()
            raise AssertionError(f"teepy serve did not start: {said!r}")
        self.url = m.group(1)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _has_worker(teepy):
    return (Path(teepy).parent / "teepy-worker").exists()


def start_worker(kind, teepy, kit, max_upload=None):
    if kind == "stand-in":
        w = MockWorker(**({"max_upload": max_upload} if max_upload is not None else {}))
        w.kind = "mock"
        return w
    if not _has_worker(teepy):
        pytest.skip("the worker (teepy serve, teepy-worker) is not in this build")
    d = Path(tempfile.mkdtemp(prefix="teepy-test-wstore-", dir="/tmp"))
    w = RealWorker(teepy, kit, d, max_upload)
    w.store = d
    return w


def stop_worker(w):
    """The worker stopped and its store (a real worker's) removed."""
    w.close()
    if getattr(w, "store", None):
        shutil.rmtree(w.store, ignore_errors=True)


@pytest.fixture(params=["stand-in", "teepy-worker"])
def worker(request, teepy, kit):
    w = start_worker(request.param, teepy, kit)
    yield w
    stop_worker(w)


@pytest.fixture
def mock():
    w = MockWorker()
    w.kind = "mock"
    yield w
    w.close()


def deploy(teepy, worker, kit, *args):
    r = teepy_run(teepy, "deploy", kit["bundle"], "--worker", worker.url, *args)
    assert r.returncode == EXIT.OK, r
    assert ID.match(r.stdout.decode()), r
    return r.stdout.decode().strip(), r


def put(teepy, worker, path):
    r = teepy_run(teepy, "data", "put", path, "--worker", worker.url)
    assert r.returncode == EXIT.OK, r
    assert ID.match(r.stdout.decode()), r
    return r.stdout.decode().strip()


def key_b64(path):
    return base64.b64encode(bytes.fromhex(Path(path).read_text().split("\n")[1])).decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- deploy ----


def test_deploy_prints_the_service_id_and_sends_the_bundles_bytes(teepy, worker, kit):
    sid, r = deploy(teepy, worker, kit)
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("teepy: deploy: "), r
    assert "deployed as service" in r.err_lines[0]
    again, r2 = deploy(teepy, worker, kit)
    assert again == sid and "deployed already" in r2.err_lines[0], r2
    if worker.seen is not None:
        up = worker.requests("/v1/bundles")[0]
        assert up["body"] == kit["bundle"].read_bytes()
        assert up["headers"]["Content-Type"] == "application/octet-stream"
        body = json.loads(worker.requests("/v1/services")[0]["body"])
        assert body == {"bundle": hashlib.sha256(up["body"]).hexdigest(), "service_data": []}
    listed = teepy_run(teepy, "services", "--worker", worker.url)
    assert listed.returncode == EXIT.OK and listed.stdout.decode().split()[0] == sid, listed


def test_deploy_sends_service_data_and_keys_only_with_insecure_dev_keys(teepy, worker, kit):
    did = put(teepy, worker, kit["item"])
    sid, r = deploy(teepy, worker, kit, "--service-data", did, "--insecure-dev-keys",
                    "--data-key", f"{did}={kit['item_key']}")
    warning = [l for l in r.err_lines if "warning" in l]
    assert len(warning) == 1 and "--insecure-dev-keys" in warning[0] \
        and "development only" in warning[0], r
    if worker.seen is not None:
        body = json.loads(worker.requests("/v1/services")[-1]["body"])
        assert body["service_data"] == [did]
        assert body["keys"] == {"data_keys": {did: key_b64(kit["item_key"])}}
    out = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "hi")
    assert out.returncode == EXIT.OK, out
    data = json.loads(out.stdout)["data"]
    assert data == ([did] if worker.kind == "mock" else [kit["plain"]])


def test_deploy_sends_a_bundle_key_as_base64(teepy, mock, kit, tmp):
    key = tmp / "b.key"
    assert teepy_run(teepy, "keygen", "--symmetric", "-o", key).returncode == EXIT.OK
    deploy(teepy, mock, kit, "--insecure-dev-keys", "--bundle-key", key)
    body = json.loads(mock.requests("/v1/services")[0]["body"])
    assert body["keys"] == {"bundle_key": key_b64(key)}


@pytest.mark.parametrize("args, says", [
    (["--bundle-key", "k.key"], "--bundle-key is sent to the worker only with --insecure-dev-keys"),
    (["--insecure-dev-keys"], "--insecure-dev-keys without --bundle-key or --data-key"),
    (["--config-id", "p/s", "--insecure-dev-keys", "--bundle-key", "k"],
     "--config-id and --insecure-dev-keys"),
    (["--config-id", "nosep"], "--config-id nosep: not POLICY/SERVICE"),
    (["--service-data", "abc"], "--service-data abc: not a data id"),
    (["--insecure-dev-keys", "--data-key", "x=k"], "--data-key x=k: not ID=KEYFILE"),
    (["--insecure-dev-keys", "--data-key", "a" * 64 + "=k"],
     "not one of the --service-data items"),
])
def test_deploy_refuses_what_it_cannot_send_before_sending(teepy, mock, kit, args, says):
    r = teepy_run(teepy, "deploy", kit["bundle"], "--worker", mock.url, *args)
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r), r
    assert mock.seen == []


def test_deploy_of_an_unknown_service_data_item_is_the_workers_refusal(teepy, worker, kit):
    r = teepy_run(teepy, "deploy", kit["bundle"], "--worker", worker.url, "--service-data",
                  "b" * 64)
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert line.startswith("teepy: deploy: the worker refused: ") and \
        line.endswith("(HTTP 404 not_found)"), line


# ---- data put ----


def test_data_put_prints_the_sha256_of_the_sealed_item(teepy, worker, kit):
    r = teepy_run(teepy, "data", "put", kit["item"], "--worker", worker.url)
    assert r.returncode == EXIT.OK, r
    assert r.stdout.decode() == hashlib.sha256(kit["item"].read_bytes()).hexdigest() + "\n"
    assert len(r.err_lines) == 1 and "stored" in r.err_lines[0], r
    again = teepy_run(teepy, "data", "put", kit["item"], "--worker", worker.url)
    assert again.stdout == r.stdout and "held already" in again.err_lines[0], again


# Runs argv in a fresh process and prints its exit code and peak memory (KiB). The
# child is a real fork of this small interpreter: a process spawned straight from
# pytest (posix_spawn shares its memory until the exec) is charged pytest's own peak
# by the kernel at exec, hundreds of MiB late in a full run.
PEAK_OF = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execve(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_an_upload_is_streamed_not_held_in_memory(teepy, mock, tmp):
    """256 MiB go to the worker with teepy's memory at a few MiB: the file is read as
    it is sent (its SHA-256 computed on the way), never loaded whole."""
    item = tmp / "big.tpd"
    with open(item, "wb") as f:
        f.write(b"teepy-pf")
        f.truncate(256 << 20)
    r = subprocess.run(["/usr/bin/python3", "-c", PEAK_OF, str(teepy), "data", "put",
                        str(item), "--worker", mock.url], env=clean_env(),
                       capture_output=True, check=True)
    code, peak_kib = map(int, r.stdout.split())
    assert code == EXIT.OK
    assert peak_kib < 48 * 1024, f"teepy's peak memory: {peak_kib} KiB"
    assert list(mock.data.values()) == [256 << 20]


def test_data_put_refuses_a_plain_file_before_sending(teepy, mock, kit):
    r = teepy_run(teepy, "data", "put", kit["dir"] / "svc.py", "--worker", mock.url)
    assert r.returncode == EXIT.DATA_REFUSED, r
    assert "not a sealed data item; nothing was sent" in one_line(r)
    assert mock.seen == []


# ---- invoke ----


def test_invoke_prints_the_result_as_it_came_and_the_log_on_stderr(teepy, worker, kit):
    sid, _ = deploy(teepy, worker, kit)
    r = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "héllo")
    assert r.returncode == EXIT.OK, r
    assert json.loads(r.stdout)["input"] == "héllo"
    assert not r.stdout.endswith(b"\n")  # nothing added, as teepy run
    assert r.err_lines == ["service log: 5 characters"], r


def test_invoke_reads_its_input_from_a_file_or_stdin(teepy, mock, kit, tmp):
    sid, _ = deploy(teepy, mock, kit)
    f = tmp.write("in.txt", "from a file\n")
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, "--input-file", f)
    assert r.returncode == EXIT.OK and json.loads(r.stdout)["input"] == "from a file\n", r
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, stdin=b"from stdin")
    assert r.returncode == EXIT.OK and json.loads(r.stdout)["input"] == "from stdin", r
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, stdin=b"\xff\xfe")
    assert r.returncode == EXIT.USAGE and "not UTF-8 text" in one_line(r), r


def test_invoke_sends_task_data_and_their_keys_with_insecure_dev_keys(teepy, mock, kit):
    sid, _ = deploy(teepy, mock, kit)
    did = put(teepy, mock, kit["item"])
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, "--input", "x", "--task-data", did,
                  "--insecure-dev-keys", "--data-key", f"{did}={kit['item_key']}")
    assert r.returncode == EXIT.OK, r
    body = json.loads(mock.requests(f"/v1/services/{sid}/invoke")[0]["body"])
    assert body == {"input": "x", "task_data": [did],
                    "data_keys": {did: key_b64(kit["item_key"])}}
    assert any("warning" in l and "development only" in l for l in r.err_lines), r


@pytest.mark.parametrize("kind", sorted(ENDS))
def test_each_end_is_teepy_runs_exit_code(teepy, mock, kit, kind):
    status, _, message = ENDS[kind]
    sid, _ = deploy(teepy, mock, kit)
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, "--input", f"end:{kind}")
    assert r.returncode == getattr(EXIT, {"failed": "SERVICE_FAILED", "config": "USAGE",
                                          "refused": "BUNDLE"}.get(kind, kind.upper())), r
    # the log, then the runner's line as teepy run prints it
    assert r.err_lines == [f"service log: {len(kind) + 4} characters", f"teepy: {message}"], r
    assert r.stdout == b""


def test_a_failing_service_on_the_worker_is_exit_1_and_no_result_exit_3(teepy, worker, kit):
    sid, _ = deploy(teepy, worker, kit)
    r = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "end:failed")
    # the log (a real service's stdout comes after its traceback: Python flushes it at
    # exit), then the runner's line
    assert r.returncode == EXIT.SERVICE_FAILED and "service log: 10 characters" in r.err_lines, r
    assert r.err_lines[-1].startswith("teepy: ") and "ValueError" in r.err_lines[-1], r
    r = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "end:no_result")
    assert r.returncode == EXIT.NO_RESULT, r


def test_invoke_json_prints_the_whole_answer(teepy, worker, kit):
    sid, _ = deploy(teepy, worker, kit)
    r = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "j", "--json")
    assert r.returncode == EXIT.OK, r
    answer = json.loads(r.stdout)
    assert set(answer) >= {"result", "usage", "log", "log_truncated"}, answer
    assert json.loads(answer["result"])["input"] == "j" and r.err_lines == [], r
    r = teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "end:failed", "--json")
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert json.loads(r.stdout)["error"]["kind"] == "failed"
    assert len(r.err_lines) == 1, r  # the line; the log is in the JSON


# ---- services ----


def test_services_lists_one_line_each_and_json(teepy, worker, kit):
    r = teepy_run(teepy, "services", "--worker", worker.url)
    assert (r.returncode, r.stdout) == (EXIT.OK, b""), r
    sid, _ = deploy(teepy, worker, kit)
    teepy_run(teepy, "invoke", sid, "--worker", worker.url, "--input", "1")
    r = teepy_run(teepy, "services", env={"TEEPY_WORKER": worker.url})
    assert r.returncode == EXIT.OK, r
    service, app, state, invocations = r.stdout.decode().split()
    assert (service, state, invocations) == (sid, "ready", "1") and len(app) == 64
    j = json.loads(teepy_run(teepy, "services", "--worker", worker.url, "--json").stdout)
    assert [s["service"] for s in j["services"]] == [sid]


# ---- failures, each one line ----


def test_nothing_listening_is_one_line(teepy):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["services"], ["invoke", "a" * 64, "--input", "x"]):
        r = teepy_run(teepy, *args, "--worker", url)
        assert r.returncode == EXIT.USAGE, r
        assert one_line(r).startswith(f"teepy: {args[0]}: cannot reach the worker at {url}: ")


def test_an_unknown_service_is_the_workers_404(teepy, worker):
    r = teepy_run(teepy, "invoke", "c" * 64, "--worker", worker.url, "--input", "x")
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert line.startswith("teepy: invoke: the worker refused: ") and \
        line.endswith("(HTTP 404 not_found)"), line


@pytest.mark.parametrize("kind", ["stand-in", "teepy-worker"])
def test_an_upload_over_the_limit_is_the_workers_413(teepy, kit, kind):
    w = start_worker(kind, teepy, kit, max_upload=1000)
    try:
        r = teepy_run(teepy, "deploy", kit["bundle"], "--worker", w.url)
    finally:
        stop_worker(w)
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert line.startswith("teepy: deploy: the worker refused: ") and \
        line.endswith("(HTTP 413 too_large)"), line


def test_a_busy_worker_is_503_in_one_line(teepy, mock, kit):
    sid, _ = deploy(teepy, mock, kit)
    mock.busy = True
    r = teepy_run(teepy, "invoke", sid, "--worker", mock.url, "--input", "x")
    assert r.returncode == EXIT.USAGE, r
    assert one_line(r) == ("teepy: invoke: the worker refused: the invocation queue is full "
                           "(HTTP 503 busy)")


def test_an_answer_that_is_not_json_is_one_line(teepy, mock, kit):
    mock.garbage = True
    r = teepy_run(teepy, "services", "--worker", mock.url)
    assert r.returncode == EXIT.USAGE, r
    assert one_line(r) == "teepy: services: the worker's answer is not a JSON object"
    r = teepy_run(teepy, "invoke", "c" * 64, "--worker", mock.url, "--input", "x")
    assert one_line(r) == ("teepy: invoke: the worker refused: HTTP 404, with an answer that "
                           "is not JSON"), r


def test_https_verifies_the_workers_certificate(teepy, tmp):
    """https:// is a proxy's TLS, checked as a browser checks it: a self-signed
    certificate is refused before anything is sent."""
    from cas_mock import make_cert
    cert, key, _ = make_cert(str(tmp), "worker")
    w = MockWorker(tls=(cert, key))
    try:
        r = teepy_run(teepy, "services", "--worker", w.url)
    finally:
        w.close()
    assert r.returncode == EXIT.USAGE, r
    assert one_line(r).startswith(f"teepy: services: the worker at {w.url}: its certificate "
                                  "does not verify: "), r
    assert w.seen == []


@pytest.mark.parametrize("args, says", [
    (["deploy", "--worker", "http://h"], "teepy: deploy: missing APP.tpy"),
    (["deploy", "x.tpy"], "teepy: deploy: missing --worker URL (or TEEPY_WORKER"),
    (["deploy", "x.tpy", "--worker", "h:1"], "--worker: 'h:1' is not an http:// or https://"),
    (["deploy", "x.tpy", "--nope"], "teepy: deploy: unknown option"),
    (["invoke", "--worker", "http://h"], "teepy: invoke: missing SERVICE_ID"),
    (["invoke", "abc", "--worker", "http://h"], "SERVICE_ID is 64 hex digits"),
    (["invoke", "a" * 64, "--worker", "http://h", "--input", "x", "--input-file", "f"],
     "--input and --input-file"),
    (["invoke", "a" * 64, "--worker", "http://h", "--data-key", "k"],
     "--data-key is sent to the worker only with --insecure-dev-keys"),
    (["services", "extra", "--worker", "http://h"], "teepy: services: unexpected argument 'extra'"),
    (["data", "put", "x.tpd"], "teepy: data put: missing --worker URL"),
    (["data", "put", "x.tpd", "--worker", "http://h", "--data-key", "k"],
     "teepy: data put: --data-key has no use here"),
    (["data", "seal", "x", "--worker", "http://h"], "teepy: data seal: --worker is for put"),
])
def test_bad_flags_are_one_line_and_exit_2(teepy, args, says):
    r = teepy_run(teepy, *args)
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r), r


def test_each_command_has_help_and_teepy_lists_them(teepy):
    top = teepy_run(teepy, "--help").stdout.decode()
    for command in ("deploy", "invoke", "services", "data put"):
        assert f"\n  {command} " in top, top
    for command, flag in (("deploy", "--insecure-dev-keys"), ("invoke", "--input-file FILE"),
                          ("services", "--json"), ("data", "--worker URL")):
        r = teepy_run(teepy, command, "--help")
        assert r.returncode == EXIT.OK and flag in r.stdout.decode() and r.stderr == b"", r
