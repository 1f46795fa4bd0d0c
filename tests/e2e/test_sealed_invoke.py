"""Confidential invocation (docs/api.md, "Confidential invocation"): the worker
(`teepy serve --mode sim`, its platform key from TEEPY_PLATFORM_KEY) answers
`POST /v1/services/ID/evidence` with sim evidence binding the service's X25519 key,
and `teepy invoke --sealed --expect-app APP --trust-platform PUB` checks it before it
sends anything, seals the input to that key and opens the sealed answer. Driven
through the CLI (as root and as uid 65534) and on the wire by a client written here
from the contract (tests/cas_mock.py's tp_seal, and its reverse): the answer as an
unsealed invocation's, no input, result or log in the worker's lines or its store,
refusals that send nothing, bad requests, a key that dies with the worker; and the
client against a compromised or on-path worker, a fake one written here (FakeWorker)
that answers with real sim evidence (a real worker's, or `teepy attest`'s) replayed,
for another app, with claims that lie beside it, and with answers that are not sealed
or do not open."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cas_mock import seal
from exit_codes import EXIT
from test_worker import (  # noqa: F401 (store: a fixture)
    READ_DATA, Worker, _direct, _key_b64, comm, deployed, descendants, store)
from volumes import own

SERVICE = """
import hashlib, json, teex
text = teex.TEEX_getinput()
""" + READ_DATA + """\
print("logged " + text[::-1], flush=True)
if text.startswith("raise "):
    raise ValueError("failed " + text[6:][::-1])
made = hashlib.sha256(text.encode()).hexdigest()
teex.TEEX_return(json.dumps({"input": text, "data": data, "made": made}))
"""

DATA_MARKER = b"SEALED-SERVICE-DATA-7f3a"

AAD_IN = b"teepy sealed input v1\0"
AAD_OUT = b"teepy sealed answer v1\0"


class Kit(type(Path())):
    """The module's directory of bundles and items; .app is the bundle's measurement."""


def marker():
    """A fresh input, and what the service makes of it: its log's marker (the input
    reversed) and its result's (the input's SHA-256)."""
    text = f"SEALED-INPUT-{uuid.uuid4().hex}"
    return text, text[::-1], hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def apps(teepy):
    """The service's bundle (svc.tpy), its sealed data item (a.tpd) and the app
    measurement, made once for the module, laid out as test_worker's `deployed` takes."""
    d = Kit(tempfile.mkdtemp(prefix="teepy-test-sealed-inv-", dir="/tmp"))
    d.chmod(0o755)
    (d / "app").mkdir()
    (d / "app" / "svc.py").write_text(textwrap.dedent(SERVICE))
    _direct(teepy, "keygen", "-o", d / "signer.key")
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "svc.tpy", "--key", d / "signer.key",
            "--input", "sample", "--memory", "256M", "--cpu-time", "3s")
    (d / "a.txt").write_bytes(DATA_MARKER)
    _direct(teepy, "data", "seal", d / "a.txt", "-o", d / "a.tpd")
    os.remove(d / "a.txt")
    for p in d.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    d.app = json.loads(_direct(teepy, "inspect", d / "svc.tpy", "--json").stdout)["app"]
    yield d
    shutil.rmtree(d, ignore_errors=True)


def platform_key(run, tmp, variant, tag="platform"):
    """A platform key `teepy platform init` made for the variant's user: (key, pub)."""
    d = tmp.make_sibling(tag)
    own(d, variant)
    r = run("platform", "init", "--key", d / "platform.key")
    assert r.returncode == EXIT.OK, r
    return d / "platform.key", d / "platform.pub"


@pytest.fixture
def platform(run, tmp, variant):
    return platform_key(run, tmp, variant)


def sim_worker(start, store, apps, key, *args):
    return Worker(start, store, apps / "signer.pub", "--mode", "sim", *args,
                  env={"TEEPY_PLATFORM_KEY": str(key)})


def url(w):
    return f"http://127.0.0.1:{w.port}"


def invoke(run, w, service, text, *extra):
    return run("invoke", service, "--worker", url(w), "--input", text, *extra, timeout=120)


def sealed(pub, app):
    return ["--sealed", "--expect-app", app, "--trust-platform", pub]


def evidence(w, service, nonce):
    return w.request("POST", f"/v1/services/{service}/evidence",
                     json.dumps({"nonce": nonce}).encode())


def raw(key):
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def open_sealed(reply, aad, blob):
    """tp_seal_open: blob is the ephemeral public key || ciphertext || tag."""
    eph = blob[:32]
    shared = reply.exchange(X25519PublicKey.from_public_bytes(eph))
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=eph + raw(reply.public_key()),
               info=b"teepy seal v1").derive(shared)
    return AESGCM(okm[:32]).decrypt(okm[32:], blob[32:], aad)


def sealed_input(pubkey, service, text, task=(), reply=None):
    """(the reply key, the sealed input's bytes) of `text` sealed to the service's key,
    for the task data ids `task` (aad_in names them after the service); a new reply
    key unless one is given."""
    reply = reply or X25519PrivateKey.generate()
    aad = AAD_IN + service.encode() + b"".join(i.encode() for i in task)
    eph, ct = seal(pubkey, aad, raw(reply.public_key()) + text.encode())
    return reply, eph + ct


def opened_answer(reply, blob, doc):
    """The answer to the sealed input `blob`, opened with the reply key: JSON."""
    return json.loads(open_sealed(reply, AAD_OUT + hashlib.sha256(blob).digest(),
                                  base64.b64decode(doc["sealed"])))


DOES_NOT_OPEN = "does not open with the service's key"
NO_KEY = "holds no key for the sealed input"
REPLAY = "was sent before"


def refused_409(doc, why):
    """A 409 key_missing whose message says why (DOES_NOT_OPEN, NO_KEY or REPLAY)."""
    assert doc.get("error", {}).get("kind") == "key_missing", doc
    assert why in doc["error"]["message"], (why, doc)


def wire_invoke(w, service, blob, **extra):
    body = {"sealed_input": base64.b64encode(blob).decode(), **extra}
    s, doc, _ = w.request("POST", f"/v1/services/{service}/invoke", json.dumps(body).encode(),
                          timeout=120)
    return s, doc


def wire_sealed(w, service, text):
    """A sealed invocation as the contract describes it, by this test's own client:
    (status, the outer answer, the opened answer)."""
    s, got, _ = evidence(w, service, os.urandom(32).hex())
    assert s == 200, got
    reply, blob = sealed_input(bytes.fromhex(got["claims"]["pubkey"]), service, text)
    s, doc = wire_invoke(w, service, blob)
    if "sealed" not in doc:
        return s, doc, None
    return s, doc, opened_answer(reply, blob, doc)


def store_bytes(store):
    """Every file of the store (worker.db, its -wal and -shm, bundles, data), read whole."""
    return {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}


def assert_nowhere(w, store, *secrets):
    """None of the secrets in the worker's stderr lines or any file of its store."""
    said = "".join(w.lines)
    for s in secrets:
        assert s not in said, s
    for p, content in store_bytes(store).items():
        for s in secrets:
            assert s.encode() not in content, (p, s)


def memory(pid):
    """The bytes of a process's writable private mappings (heap, stacks, anonymous)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5].startswith("/")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


def invoke_lines(w, service):
    return [l for l in w.request_lines() if l["path"] == f"/v1/services/{service}/invoke"]


# ---------------------------------------------------------------------------


def test_a_sealed_invoke_prints_the_result_and_the_log_as_an_unsealed_one(
        as_user, run, start, apps, store, platform):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    text, logged, made = marker()
    r = invoke(run, w, service, text, *sealed(pub, apps.app))
    assert r.returncode == EXIT.OK, r
    assert json.loads(r.stdout) == {"input": text, "data": [DATA_MARKER.decode()], "made": made}
    assert f"logged {logged}" in r.err_lines, r
    said = [l for l in r.err_lines if l.startswith("teepy:")]
    assert len(said) == 1 and "SIMULATION" in said[0], r
    # as an unsealed invocation prints (of another input), but the line saying what
    # was verified
    p_text, p_logged, p_made = marker()
    plain = invoke(run, w, service, p_text)
    assert plain.returncode == EXIT.OK, plain
    swap = ((p_text, text), (p_logged, logged), (p_made, made))

    def swapped(b):
        for a, z in swap:
            b = b.replace(a, z)
        return b

    assert swapped(plain.stdout.decode()) == r.stdout.decode(), (plain, r)
    assert [swapped(l) for l in plain.err_lines] == \
        [l for l in r.err_lines if not l.startswith("teepy:")], (plain, r)
    # --json: the opened answer, as an unsealed invocation's
    other, other_logged, other_made = marker()
    r = invoke(run, w, service, other, "--json", *sealed(pub, apps.app))
    assert r.returncode == EXIT.OK, r
    doc = json.loads(r.stdout)
    assert set(doc) == {"result", "usage", "log", "log_truncated"}, doc
    assert json.loads(doc["result"])["made"] == other_made
    assert doc["log"] == f"logged {other_logged}\n" and doc["log_truncated"] is False
    assert set(doc["usage"]) == {"cpu_ms", "peak_memory_bytes", "wall_ms"}
    assert_nowhere(w, store, text, logged, made, other, other_logged, other_made)
    assert w.stop() == 0
    ends = [(l["status"], l["end"]) for l in invoke_lines(w, service)]
    assert ends == [(200, "result")] * 3, ends
    assert_nowhere(w, store, text, logged, made, other, other_logged, other_made,
                   DATA_MARKER.decode())


def test_the_wire_carries_only_ciphertext_and_the_answer_opens_to_the_unsealed_one(
        start, apps, store, platform):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    text, logged, made = marker()
    s, doc, opened = wire_sealed(w, service, text)
    assert s == 200 and set(doc) == {"sealed", "usage"}, doc
    assert set(doc["usage"]) == {"cpu_ms", "peak_memory_bytes", "wall_ms"}
    assert set(opened) == {"result", "usage", "log", "log_truncated"}, opened
    assert json.loads(opened["result"]) == {"input": text, "data": [DATA_MARKER.decode()],
                                            "made": made}
    assert opened["log"] == f"logged {logged}\n"
    for secret in (text, logged, made, DATA_MARKER.decode()):
        assert secret not in json.dumps(doc)
    # the answer is bound to its input: another input's aad does not open it
    s, got, _ = evidence(w, service, "01")
    reply, blob = sealed_input(bytes.fromhex(got["claims"]["pubkey"]), service, text)
    s, doc = wire_invoke(w, service, blob)
    assert s == 200, doc
    with pytest.raises(Exception):
        open_sealed(reply, AAD_OUT + hashlib.sha256(blob + b"x").digest(),
                    base64.b64decode(doc["sealed"]))
    assert_nowhere(w, store, text, logged, made)
    w.stop()
    assert_nowhere(w, store, text, logged, made, DATA_MARKER.decode())
    ends = [(l["status"], l.get("end"), l.get("service")) for l in invoke_lines(w, service)]
    assert ends == [(200, "result", service)] * 2, ends


def test_the_sealed_input_binds_its_task_data(run, start, apps, store, platform):
    """aad_in names the task data after the service: the input opens with the items
    the client sealed it for, in their order, and with no others."""
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    s, item = w.upload("data", apps / "a.tpd")
    assert s in (200, 201), item
    did = item["data"]
    keys = {did: _key_b64(apps / "a.tpd.key")}
    s, got, _ = evidence(w, service, os.urandom(32).hex())
    assert s == 200, got
    pubkey = bytes.fromhex(got["claims"]["pubkey"])
    text, _, made = marker()
    reply, blob = sealed_input(pubkey, service, text, task=[did])
    s, doc = wire_invoke(w, service, blob, task_data=[did], data_keys=keys)
    assert s == 200, doc
    opened = opened_answer(reply, blob, doc)
    assert json.loads(opened["result"]) == {"input": text, "data": [DATA_MARKER.decode()],
                                            "made": made}, opened
    # sent again as it is: a replay
    s, doc = wire_invoke(w, service, blob, task_data=[did], data_keys=keys)
    assert s == 409, doc
    refused_409(doc, REPLAY)
    # sealed for its task data, sent with them taken away, or twice: not opened
    for task in ([], [did, did]):
        _, anew = sealed_input(pubkey, service, text, task=[did], reply=reply)
        s, doc = wire_invoke(w, service, anew, task_data=task,
                             **({"data_keys": keys} if task else {}))
        assert s == 409, (task, doc)
        refused_409(doc, DOES_NOT_OPEN)
    # sealed without naming its task data, sent with them: not opened
    _, unbound = sealed_input(pubkey, service, text)
    s, doc = wire_invoke(w, service, unbound, task_data=[did], data_keys=keys)
    assert s == 409, doc
    refused_409(doc, DOES_NOT_OPEN)
    # the client binds them as it sends them
    keyfile = store.parent / "a.tpd.key"
    shutil.copy(apps / "a.tpd.key", keyfile)
    keyfile.chmod(0o600)
    r = invoke(run, w, service, text, "--task-data", did, "--insecure-dev-keys", "--data-key",
               f"{did}={keyfile}", *sealed(pub, apps.app))
    assert r.returncode == EXIT.OK, r
    assert json.loads(r.stdout)["data"] == [DATA_MARKER.decode()], r
    assert w.stop() == 0
    assert_nowhere(w, store, text, made)


def test_a_task_item_put_at_anothers_name_in_the_store_is_not_run(run, start, apps, store,
                                                                   platform, tmp):
    """Two items sealed under one key; the store's file of the one the input was sealed
    for replaced by the other's bytes: the invocation's process names each task item
    by its bytes' hash, so the input does not open (409), and the other item is never
    given to the service."""
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    items = {}
    for name, text in (("x", b"TASK-ITEM-X-31f0"), ("y", b"TASK-ITEM-Y-92aa")):
        tmp.write(f"{name}.txt", text)
        args = [tmp / f"{name}.txt", "-o", tmp / f"{name}.tpd"]
        if name == "y":
            args += ["--data-key", tmp / "x.tpd.key"]
        r = run("data", "seal", *args)
        assert r.returncode == EXIT.OK, r
        s, item = w.upload("data", tmp / f"{name}.tpd")
        assert s in (200, 201), item
        items[name] = item["data"]
    keys = {items["x"]: _key_b64(tmp / "x.tpd.key")}
    s, got, _ = evidence(w, service, "00")
    assert s == 200, got
    text, _, _ = marker()
    pubkey = bytes.fromhex(got["claims"]["pubkey"])
    reply, blob = sealed_input(pubkey, service, text, task=[items["x"]])
    s, doc = wire_invoke(w, service, blob, task_data=[items["x"]], data_keys=keys)
    assert s == 200, doc
    opened = opened_answer(reply, blob, doc)
    assert json.loads(opened["result"])["data"] == ["TASK-ITEM-X-31f0"], opened
    # the store's file of x now holds y's bytes (sealed under the same key: they open)
    shutil.copy(tmp / "y.tpd", store / "data" / f"{items['x']}.tpd")
    _, anew = sealed_input(pubkey, service, text, task=[items["x"]], reply=reply)
    s, doc = wire_invoke(w, service, anew, task_data=[items["x"]], data_keys=keys)
    assert s == 409, doc
    refused_409(doc, DOES_NOT_OPEN)
    assert w.stop() == 0


def test_a_cold_start_is_sealed_as_a_warm_one(start, apps, store, platform):
    key, _ = platform
    w = sim_worker(start, store, apps, key, "--zygotes", "0")
    service, _ = deployed(w, apps, ("a",))
    text, logged, made = marker()
    s, doc, opened = wire_sealed(w, service, text)
    assert s == 200 and json.loads(opened["result"])["made"] == made, (doc, opened)
    assert opened["log"] == f"logged {logged}\n", opened
    w.stop()
    assert [l["start"] for l in invoke_lines(w, service)] == ["cold"]
    assert_nowhere(w, store, text, logged, made, DATA_MARKER.decode())


def test_the_evidence_binds_the_services_app_nonce_and_key(run, start, apps, store, platform, tmp):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    s, b = w.upload("bundles", apps / "svc.tpy")
    assert s == 201 and b["app"] == apps.app, b
    service, _ = deployed(w, apps, ("a",))
    nonce = os.urandom(32).hex()
    s, got, _ = evidence(w, service, nonce)
    assert s == 200, got
    assert set(got) == {"service", "claims", "evidence"} and got["service"] == service, got
    claims = got["claims"]
    assert set(claims) == {"mode", "runtime", "app", "signer", "nonce", "pubkey"}, claims
    assert claims["mode"] == "sim" and claims["app"] == apps.app and claims["nonce"] == nonce
    assert claims["signer"] == b["signer"]
    assert len(bytes.fromhex(claims["pubkey"])) == 32 and len(bytes.fromhex(claims["runtime"])) == 32
    assert got["evidence"]["type"] == "sim", got
    f = tmp.write("evidence.bin", base64.b64decode(got["evidence"]["data"]))
    r = run("attest", "verify", f, "--type", "sim", "--platform-key", pub, "--app", apps.app,
            "--nonce", nonce, "--json")
    assert r.returncode == EXIT.OK, r
    assert json.loads(r.stdout)["claims"] == claims
    # another nonce: refused by the verifier
    r = run("attest", "verify", f, "--type", "sim", "--platform-key", pub, "--nonce", "ab" * 32)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    # the key stays the service's for the worker's life
    s, again, _ = evidence(w, service, "00")
    assert s == 200 and again["claims"]["nonce"] == "00", again
    assert again["claims"]["pubkey"] == claims["pubkey"]
    # the runtime the client may pin
    r = invoke(run, w, service, "pinned", *sealed(pub, apps.app),
               "--expect-runtime", claims["runtime"])
    assert r.returncode == EXIT.OK and json.loads(r.stdout)["input"] == "pinned", r
    w.stop()


def test_a_bad_evidence_request_is_400(start, apps, store, platform):
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    path = f"/v1/services/{service}/evidence"
    for body in [{"nonce": "zz"}, {"nonce": "abc"}, {"nonce": ""}, {"nonce": "ab" * 65},
                 {"nonce": 5}, {}, "not json"]:
        raw_body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        s, doc, _ = w.request("POST", path, raw_body)
        assert (s, doc["error"]["kind"]) == (400, "bad_request"), (body, doc)
    s, doc, _ = evidence(w, service, "ab" * 64)  # 64 bytes: the most
    assert s == 200 and doc["claims"]["nonce"] == "ab" * 64, doc
    w.stop()


def test_evidence_for_an_unknown_service_is_404_and_other_methods_405(start, apps, store, platform):
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    s, doc, _ = evidence(w, "cd" * 32, "00")
    assert (s, doc["error"]["kind"]) == (404, "not_found"), doc
    service, _ = deployed(w, apps, ())
    s, doc, r = w.request("GET", f"/v1/services/{service}/evidence", ctype=None)
    assert (s, doc["error"]["kind"]) == (405, "method_not_allowed"), doc
    assert r.getheader("Allow") == "POST"
    w.stop()


def test_a_bad_sealed_body_is_refused(start, apps, store, platform):
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    garbage = base64.b64encode(os.urandom(200)).decode()
    path = f"/v1/services/{service}/invoke"
    # no key for the service yet: nothing asked its evidence
    s, doc, _ = w.request("POST", path, json.dumps({"sealed_input": garbage}).encode())
    assert (s, doc["error"]["kind"]) == (409, "key_missing"), doc
    assert "evidence again" in doc["error"]["message"], doc
    s, got, _ = evidence(w, service, "00")
    assert s == 200, got
    cases = [
        ({"input": "x", "sealed_input": garbage}, 400, "bad_request"),
        ({"sealed_input": "not base64 at all!"}, 400, "bad_request"),
        ({"sealed_input": 5}, 400, "bad_request"),
        ({"sealed_input": garbage}, 409, "key_missing"),  # does not open
        ({"sealed_input": base64.b64encode(b"short").decode()}, 400, "bad_request"),
    ]
    for body, status, kind in cases:
        s, doc, _ = w.request("POST", path, json.dumps(body).encode())
        assert (s, doc["error"]["kind"]) == (status, kind), (body, doc)
    # sealed for this service's key but with another service's aad: does not open
    other, _ = deployed(w, apps, ("a",))
    text, logged, made = marker()
    _, blob = sealed_input(bytes.fromhex(got["claims"]["pubkey"]), other, text)
    s, doc = wire_invoke(w, service, blob)
    assert s == 409, doc
    refused_409(doc, DOES_NOT_OPEN)
    # and (sealed anew) sent to the other service, which has no key yet
    _, blob = sealed_input(bytes.fromhex(got["claims"]["pubkey"]), other, text)
    s, doc = wire_invoke(w, other, blob)
    assert s == 409, doc
    refused_409(doc, NO_KEY)
    # an unknown service is 404 as ever
    s, doc = wire_invoke(w, "cd" * 32, blob)
    assert (s, doc["error"]["kind"]) == (404, "not_found"), doc
    s, doc, opened = wire_sealed(w, service, "still serving")
    assert s == 200 and json.loads(opened["result"])["input"] == "still serving", (doc, opened)
    w.stop()
    assert_nowhere(w, store, text)


@pytest.mark.parametrize("refusal", ["app", "platform", "runtime"])
def test_evidence_not_as_expected_is_refused_and_nothing_is_sent(
        run, start, apps, store, platform, tmp, variant, refusal):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    args = sealed(pub, apps.app)
    if refusal == "app":
        args = sealed(pub, "ab" * 32)
    elif refusal == "platform":
        _, stranger = platform_key(run, tmp, variant, "stranger")
        args = sealed(stranger, apps.app)
    else:
        args += ["--expect-runtime", "ab" * 32]
    text, logged, made = marker()
    r = invoke(run, w, service, text, *args)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("teepy: invoke: refused: "), r
    assert r.err_lines[0].endswith(": nothing was sent"), r
    assert r.stdout == b"", r
    w.stop()
    paths = [l["path"] for l in w.request_lines()]
    assert f"/v1/services/{service}/evidence" in paths, paths
    assert not invoke_lines(w, service), paths
    assert text not in "".join(w.lines)


def test_sealed_usage_errors_send_nothing(run, start, apps, store, platform, tmp):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    cases = [
        ["--sealed", "--trust-platform", pub],
        ["--sealed", "--expect-app", apps.app],
        ["--sealed", "--expect-app", "xyz", "--trust-platform", pub],
        ["--sealed", "--expect-app", apps.app[:-2], "--trust-platform", pub],
        ["--sealed", "--expect-app", apps.app, "--trust-platform", tmp / "nothing.pub"],
        # a TD: its MRTD (48 bytes), or that and its four RTMRs, nothing between
        ["--sealed", "--expect-app", apps.app, "--trust-platform", "tdx:" + "ab" * 32],
        ["--sealed", "--expect-app", apps.app, "--trust-platform",
         "tdx:" + ":".join(["ab" * 48] * 3)],
        ["--sealed", "--expect-app", apps.app, "--trust-platform",
         "tdx:" + ":".join(["ab" * 48] * 6)],
        ["--sealed", "--expect-app", apps.app, "--trust-platform", "snp:" + "zz" * 48],
        ["--expect-app", apps.app],
        ["--trust-platform", pub],
    ]
    for args in cases:
        r = invoke(run, w, service, "x", *args)
        assert r.returncode == EXIT.USAGE, (args, r)
        assert len(r.err_lines) == 1 and r.err_lines[0].startswith("teepy: invoke: "), (args, r)
    w.stop()
    paths = [l["path"] for l in w.request_lines()]
    assert not [p for p in paths if p.startswith(f"/v1/services/{service}")], paths


def test_a_sealed_failure_ends_as_an_unsealed_one_and_only_the_client_sees_why(
        run, start, apps, store, platform):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    text, _, _ = marker()
    shown, _, _ = marker()
    plain = invoke(run, w, service, f"raise {shown}")
    assert plain.returncode == EXIT.SERVICE_FAILED, plain
    r = invoke(run, w, service, f"raise {text}", *sealed(pub, apps.app))
    assert r.returncode == EXIT.SERVICE_FAILED, r
    hidden = text[::-1]  # the exception's text and the log's
    assert f"ValueError: failed {hidden}" in r.err, r
    assert [l.replace(hidden, shown[::-1]) for l in r.err_lines if "SIMULATION" not in l] == \
        plain.err_lines, (r, plain)
    # on the wire: the end's kind outside, its message only sealed
    s, doc, opened = wire_sealed(w, service, f"raise {text}")
    assert s == 422 and doc["error"]["kind"] == "failed", doc
    assert doc["error"]["message"].startswith("sealed: "), doc
    assert set(doc) == {"sealed", "usage", "error"}, doc
    assert opened["error"]["kind"] == "failed" and hidden in opened["log"], opened
    assert hidden not in json.dumps(doc)
    w.stop()
    assert [l["end"] for l in invoke_lines(w, service)] == ["failed"] * 3
    assert_nowhere(w, store, text, hidden)


def sealed_to_its_key(w, service):
    """The service's key now, a fresh marker and its input sealed to that key."""
    s, got, _ = evidence(w, service, "00")
    assert s == 200, got
    key = got["claims"]["pubkey"]
    marks = marker()
    _, blob = sealed_input(bytes.fromhex(key), service, marks[0])
    return key, marks, blob


def test_a_restarted_worker_has_a_new_key_and_the_old_ones_input_is_409(
        run, start, apps, store, platform):
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    old, (text, logged, made), blob = sealed_to_its_key(w, service)
    assert w.stop() == 0

    w = sim_worker(start, store, apps, key)
    s, doc = wire_invoke(w, service, blob)
    assert s == 409, doc
    refused_409(doc, NO_KEY)
    assert "evidence again" in doc["error"]["message"], doc
    r = invoke(run, w, service, text, *sealed(pub, apps.app))
    assert r.returncode == EXIT.OK, r
    assert json.loads(r.stdout)["made"] == made
    s, got, _ = evidence(w, service, "00")
    assert s == 200 and got["claims"]["pubkey"] != old, got
    w.stop()
    assert_nowhere(w, store, text, logged, made)


def test_a_deleted_services_key_goes_with_it(run, start, apps, store, platform):
    """Deleted and deployed again (the same id: the same app and data), a service has
    a new key: an input sealed to the old one is 409, not run."""
    key, pub = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    old, (text, logged, made), blob = sealed_to_its_key(w, service)
    _, kept = sealed_input(bytes.fromhex(old), service, text)  # sent after the delete
    s, doc = wire_invoke(w, service, blob)
    assert s == 200 and "sealed" in doc, doc
    s, doc, _ = w.request("DELETE", f"/v1/services/{service}")
    assert s == 200, doc
    again, _ = deployed(w, apps, ("a",))
    assert again == service
    s, doc = wire_invoke(w, service, kept)
    assert s == 409, doc
    refused_409(doc, NO_KEY)
    s, got, _ = evidence(w, service, "00")
    assert s == 200 and got["claims"]["pubkey"] != old, got
    assert w.stop() == 0
    assert_nowhere(w, store, text, logged, made)


def test_a_worker_without_a_platform_key_says_so(start, apps, store, tmp):
    w = Worker(start, store, apps / "signer.pub", "--mode", "sim",
               env={"TEEPY_PLATFORM_KEY": str(tmp / "none" / "platform.key")})
    service, _ = deployed(w, apps, ())
    s, doc, _ = evidence(w, service, "00")
    assert (s, doc["error"]["kind"]) == (500, "internal"), doc
    assert "platform" in doc["error"]["message"], doc
    s, doc = w.invoke(service, "unsealed still runs")
    assert s == 200, doc
    w.stop()


def test_the_workers_http_process_never_holds_the_plaintext(start, apps, store, platform):
    """Its memory read after sealed invocations (through /proc/PID/mem, as root): the
    service id is there, the input, result and log are not; an unsealed invocation's
    are."""
    if os.geteuid() != 0:
        pytest.skip("reading the worker's memory needs root")
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ())
    text, logged, made = marker()
    for _ in range(3):
        s, doc, opened = wire_sealed(w, service, text)
        assert s == 200 and json.loads(opened["result"])["made"] == made, (doc, opened)
    held = memory(w.proc.pid)
    assert service.encode() in held
    for secret in (text, logged, made):
        assert secret.encode() not in held, secret
    # an unsealed invocation's input, result and log are there: the reading sees them
    plain, plain_logged, plain_made = marker()
    s, doc = w.invoke(service, plain)
    assert s == 200, doc
    held = memory(w.proc.pid)
    assert plain.encode() in held and plain_made.encode() in held
    w.stop()


@pytest.mark.parametrize("mode, said", [
    ("hw", "--mode hw: no configfs-tsm at /sys/kernel/config/tsm/report"),
    ("bogus", "--mode: unknown mode 'bogus'"),
], ids=["hw", "bogus"])
def test_a_mode_the_host_cannot_give_stops_the_start_in_one_line(run, apps, tmp, mode, said):
    if mode == "hw" and os.path.exists("/sys/kernel/config/tsm/report"):
        pytest.skip("this host has configfs-tsm")
    r = run("serve", "--store", tmp / "s", "--trust", apps / "signer.pub", "--mode", mode,
            timeout=30)
    assert r.returncode == EXIT.USAGE and len(r.err_lines) == 1, r
    assert r.err_lines[0].startswith(f"teepy: serve: {said}"), r
    assert not (tmp / "s").exists()


# ---------------------------------------------------------------------------
# a compromised or on-path worker: what the client refuses of a fake one


FAKE_USAGE = {"cpu_ms": 12, "peak_memory_bytes": 12345678, "wall_ms": 34}


class FakeWorker:
    """A worker written here (http.server on 127.0.0.1, a thread a request) that answers
    as the test scripts it: evidence(nonce) for POST /v1/services/ID/evidence, invoke(body)
    for POST /v1/services/ID/invoke, each (status, doc); anything else is 404. Every
    request it gets is kept in `seen` as (method, path, body), in order; a scripted
    answer that raised is in `failures` (answered 500)."""

    def __init__(self, evidence, invoke=None):
        self.seen, self.failures = [], []
        self.evidence, self.invoke = evidence, invoke
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.seen.append((self.command, self.path, body))
                try:
                    status, doc = fake._answer(self.command, self.path, body)
                except Exception as e:  # noqa: BLE001 (the test's own fault: asserted on)
                    fake.failures.append(repr(e))
                    status, doc = 500, {"error": {"kind": "internal", "message": "the fake failed"}}
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, method, path, body):
        m = re.fullmatch(r"/v1/services/([0-9a-f]{64})/(evidence|invoke)", path)
        if method != "POST" or not m:
            return 404, {"error": {"kind": "not_found", "message": f"unknown path {path}"}}
        if m.group(2) == "evidence":
            return self.evidence(json.loads(body)["nonce"])
        if self.invoke is None:
            return 500, {"error": {"kind": "internal", "message": "no invocation scripted"}}
        return self.invoke(json.loads(body))

    @property
    def paths(self):
        return [p for _, p, _ in self.seen]

    def bodies(self, path):
        return [json.loads(b) for _, p, b in self.seen if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake():
    """fake(evidence, invoke=None) -> a FakeWorker, closed at the end of the test."""
    made = []

    def make(evidence, invoke=None):
        f = FakeWorker(evidence, invoke)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def attested(teepy, key, service, app, nonce, signer="00" * 32):
    """Real sim evidence for these claims, made by `teepy attest --mode sim` and signed
    by the platform key (its pubkey a new X25519 key whose private half is gone), as a
    worker's evidence answer for the service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    env.update(TEEPY_NO_CACHE="1", TEEPY_PLATFORM_KEY=str(key))
    r = subprocess.run([str(teepy), "attest", "--mode", "sim", "--app", app, "--signer", signer,
                        "--nonce", nonce, "--json"], capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert doc["simulation"] is True, doc
    assert (doc["claims"]["app"], doc["claims"]["nonce"]) == (app, nonce), doc
    return {"service": service, "claims": doc["claims"],
            "evidence": {"type": "sim",
                         "data": base64.b64encode(bytes.fromhex(doc["evidence"])).decode()}}


def fresh_evidence(teepy, key, service, app):
    """The fake's evidence(nonce): real sim evidence for the nonce the client sent, made
    on the fly, binding `app`."""
    return lambda nonce: (200, attested(teepy, key, service, app, nonce))


def refused_and_nothing_sent(r, f, service, text, *said):
    """exit 11, one line "teepy: invoke: refused: ...: nothing was sent" (naming each
    of `said`), nothing on stdout; the fake got the evidence request alone."""
    assert not f.failures, f.failures
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert len(r.err_lines) == 1, r
    line = r.err_lines[0]
    assert line.startswith("teepy: invoke: refused: ") and line.endswith(": nothing was sent"), r
    for word in said:
        assert word in line, (word, r)
    assert r.stdout == b"", r
    assert f.paths == [f"/v1/services/{service}/evidence"], f.seen
    assert not any(text.encode() in b for _, _, b in f.seen), f.seen


def sent_nonce(f, service):
    """The one nonce the client asked the evidence for: 32 bytes, in hex."""
    asked = f.bodies(f"/v1/services/{service}/evidence")
    assert len(asked) == 1 and set(asked[0]) == {"nonce"}, asked
    nonce = asked[0]["nonce"]
    assert re.fullmatch(r"[0-9a-f]{64}", nonce), nonce
    return nonce


@pytest.mark.parametrize("made_by", ["worker", "attest"])
def test_evidence_replayed_for_another_nonce_is_refused_and_nothing_is_sent(
        run, start, apps, store, platform, fake, teepy, tmp, made_by):
    """An on-path attacker answers the evidence request with genuine evidence for the
    service (the trusted platform key's, the right app) that was made for another
    nonce: a real worker's answer recorded earlier, or `teepy attest`'s."""
    key, pub = platform
    other = os.urandom(32).hex()
    if made_by == "worker":
        w = sim_worker(start, store, apps, key)
        service, _ = deployed(w, apps, ())
        s, recorded, _ = evidence(w, service, other)
        assert s == 200 and recorded["claims"]["nonce"] == other, recorded
        assert w.stop() == 0
    else:
        service = os.urandom(32).hex()
        recorded = attested(teepy, key, service, apps.app, other, signer="ab" * 32)
    # the evidence is good but for its nonce: it verifies against the trusted key
    ev = tmp.write("replayed.bin", base64.b64decode(recorded["evidence"]["data"]))
    ok = run("attest", "verify", ev, "--type", "sim", "--platform-key", pub, "--app", apps.app,
             "--nonce", other)
    assert ok.returncode == EXIT.OK, ok

    f = fake(lambda nonce: (200, recorded),
             lambda body: (200, {"result": "FORGED", "usage": FAKE_USAGE, "log": "",
                                 "log_truncated": False}))
    text, _, _ = marker()
    r = invoke(run, f, service, text, *sealed(pub, apps.app))
    refused_and_nothing_sent(r, f, service, text, "nonce")
    assert sent_nonce(f, service) != other
    assert "FORGED" not in r.err


@pytest.mark.parametrize("lie", ["app", "nonce", "runtime"])
def test_claims_beside_the_evidence_that_differ_from_the_signed_ones_are_not_believed(
        run, platform, fake, teepy, lie):
    """The answer's JSON "claims" say what the client expects (its app, its nonce, the
    --expect-runtime), the signed sim evidence beside them binds something else: the
    client goes by the signed claims, refuses, and sends nothing."""
    key, pub = platform
    service, app, runtime = os.urandom(32).hex(), os.urandom(32).hex(), os.urandom(32).hex()

    def lying(nonce):
        signed = attested(teepy, key, service,
                          os.urandom(32).hex() if lie == "app" else app,
                          os.urandom(32).hex() if lie == "nonce" else nonce)
        assert signed["claims"]["runtime"] != runtime
        said = dict(signed["claims"], app=app, nonce=nonce, runtime=runtime)
        return 200, dict(signed, claims=said)

    f = fake(lying, lambda body: (200, {"result": "FORGED", "usage": FAKE_USAGE, "log": "",
                                        "log_truncated": False}))
    text, _, _ = marker()
    extra = ["--expect-runtime", runtime] if lie == "runtime" else []
    r = invoke(run, f, service, text, *sealed(pub, app), *extra)
    refused_and_nothing_sent(r, f, service, text, {"app": "app", "nonce": "nonce",
                                                  "runtime": "runtime"}[lie])
    sent_nonce(f, service)


def test_a_pubkey_beside_the_evidence_is_not_the_one_sealed_to(run, platform, fake, teepy):
    """The answer's JSON claims name a key the fake holds; the signed evidence binds
    another (teepy attest's): the input is sealed to the signed one, so the fake's key
    does not open it."""
    key, pub = platform
    service, app = os.urandom(32).hex(), os.urandom(32).hex()
    mine = X25519PrivateKey.generate()
    signed = {}

    def swapped(nonce):
        signed.update(attested(teepy, key, service, app, nonce))
        return 200, dict(signed, claims=dict(signed["claims"], pubkey=raw(mine.public_key()).hex()))

    f = fake(swapped, lambda body: (409, {"error": {
        "kind": "key_missing",
        "message": "no key for the sealed input: ask for the evidence again"},
        "usage": FAKE_USAGE}))
    text, _, _ = marker()
    r = invoke(run, f, service, text, *sealed(pub, app))
    assert not f.failures, f.failures
    assert f.paths == [f"/v1/services/{service}/evidence", f"/v1/services/{service}/invoke"], f.seen
    (body,) = f.bodies(f"/v1/services/{service}/invoke")
    assert "input" not in body, body
    blob = base64.b64decode(body["sealed_input"])
    assert text.encode() not in blob
    with pytest.raises(Exception):
        open_sealed(mine, AAD_IN + service.encode(), blob)
    assert r.returncode == EXIT.KEY_MISSING and r.stdout == b"", r


def forged_marks():
    tag = uuid.uuid4().hex
    return f"FORGED-{tag}", f"FORGED-LOG-{tag}"


def sealed_invoke_sent(f, service, text):
    """The fake got the evidence request, then one sealed invocation: sealed_input
    (base64 of the ephemeral key || the sealed reply key and input || the tag), no
    input, the plaintext nowhere."""
    assert not f.failures, f.failures
    assert f.paths == [f"/v1/services/{service}/evidence", f"/v1/services/{service}/invoke"], f.seen
    sent_nonce(f, service)
    (body,) = f.bodies(f"/v1/services/{service}/invoke")
    assert "input" not in body and "sealed_input" in body, body
    blob = base64.b64decode(body["sealed_input"])
    assert len(blob) == 32 + 32 + len(text.encode()) + 16, len(blob)
    assert text.encode() not in blob and not any(text.encode() in b for _, _, b in f.seen)


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_a_plain_result_to_a_sealed_invoke_is_refused_and_not_printed(
        run, platform, fake, teepy, json_out):
    """The evidence is good (made for the client's nonce); the invocation is answered
    200 with a plain result and log, as a worker that saw the input could forge: not
    sealed, so not the service's answer."""
    key, pub = platform
    service, app = os.urandom(32).hex(), os.urandom(32).hex()
    result, log = forged_marks()
    f = fake(fresh_evidence(teepy, key, service, app),
             lambda body: (200, {"result": result, "usage": FAKE_USAGE, "log": log,
                                 "log_truncated": False}))
    text, _, _ = marker()
    r = invoke(run, f, service, text, *sealed(pub, app), *(["--json"] if json_out else []))
    sealed_invoke_sent(f, service, text)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert b"FORGED" not in r.stdout and "FORGED" not in r.err, r
    verified = [l for l in r.err_lines if "SIMULATION" in l]
    assert len(verified) == 1, r
    said = [l for l in r.err_lines if l not in verified]
    assert len(said) == 1 and said[0].startswith("teepy: invoke: "), r
    # it says the answer is not sealed (in whatever words)
    assert re.search(r"not sealed|unsealed|no .?sealed|plaintext|in plain|plain answer", said[0]), r


def test_a_plain_error_to_a_sealed_invoke_shows_its_kind_and_message_not_its_log(
        run, platform, fake, teepy):
    """409 key_missing (what a restarted worker answers), plain, with a usage and a log
    beside it: the end's kind and message are the worker's to say; a log is the
    service's, only ever inside the sealed answer, so it is not printed."""
    key, pub = platform
    service, app = os.urandom(32).hex(), os.urandom(32).hex()
    _, log = forged_marks()
    message = f"no key for the sealed input: ask for the evidence again ({uuid.uuid4().hex})"
    f = fake(fresh_evidence(teepy, key, service, app),
             lambda body: (409, {"error": {"kind": "key_missing", "message": message},
                                 "usage": FAKE_USAGE, "log": log, "log_truncated": False}))
    text, _, _ = marker()
    r = invoke(run, f, service, text, *sealed(pub, app))
    sealed_invoke_sent(f, service, text)
    assert r.returncode == EXIT.KEY_MISSING, r
    assert any(message in l for l in r.err_lines), r
    assert b"FORGED" not in r.stdout and "FORGED" not in r.err, r
    assert r.stdout == b"", r


@pytest.mark.parametrize("status, size", [(200, 200), (422, 200), (200, 8)],
                         ids=["result", "failed", "short"])
def test_a_sealed_answer_that_does_not_open_is_refused(run, platform, fake, teepy, status, size):
    """`sealed` is base64 of random bytes (a result's answer, an end's, and one shorter
    than a sealed message's overhead): it does not open with the call's key."""
    key, pub = platform
    service, app = os.urandom(32).hex(), os.urandom(32).hex()
    answer = {"sealed": base64.b64encode(os.urandom(size)).decode(), "usage": FAKE_USAGE}
    if status == 422:
        answer["error"] = {"kind": "failed", "message": "sealed: the service failed"}
    f = fake(fresh_evidence(teepy, key, service, app), lambda body: (status, answer))
    text, _, _ = marker()
    r = invoke(run, f, service, text, *sealed(pub, app))
    sealed_invoke_sent(f, service, text)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert r.stdout == b"", r
    said = [l for l in r.err_lines if "SIMULATION" not in l]
    assert len(said) == 1 and said[0].startswith("teepy: invoke: "), r


# ---- hw evidence: real TDX quotes and an SEV-SNP report (../shared/testdata) ----
#
# No quote here binds claims of ours (no confidential VM made them), so these runs
# show the refusals of the hw path, each before anything is sent; the checks that
# pass (signatures, chains) are teepy attest verify's, tested in test_attest_verify.

EVIDENCE = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "attestation"


def verified_fields(run, *args):
    r = run("attest", "verify", *map(str, args), "--json")
    assert r.returncode == EXIT.OK, r
    return json.loads(r.stdout)


def hw_answer(service, kind, data, nonce, app, **extra):
    """A worker's evidence answer carrying real hw evidence, with claims of ours
    beside it (which its report data does not bind)."""
    claims = {"mode": "hw", "runtime": "11" * 32, "app": app, "signer": "22" * 32,
              "nonce": nonce, "pubkey": raw(X25519PrivateKey.generate().public_key()).hex()}
    return {"service": service, "claims": claims,
            "evidence": {"type": kind, "data": base64.b64encode(data).decode(), **extra}}


@pytest.mark.parametrize("case", ["report-data", "mrtd", "rtmrs", "rtmrs-match", "debug", "changed",
                                  "no-claims", "snp", "snp-measurement", "snp-no-vcek"])
def test_hw_evidence_is_checked_before_anything_is_sent(run, fake, apps, case):
    tdx, snp = EVIDENCE / "tdx", EVIDENCE / "snp"
    service = hashlib.sha256(case.encode()).hexdigest()
    quote = (tdx / ("tdx_quote_4.dat" if case == "debug" else "tdx_quote_5.dat")).read_bytes()
    body = verified_fields(run, tdx / "tdx_quote_5.dat", "--type", "tdx")["body"]
    assert body["td_attributes_flags"]["debug"] is False
    rtmrs = ":".join(body[f"rtmr{i}"] for i in range(4))
    report = (snp / "test-report.bin").read_bytes()
    vcek = (snp / "test-vcek.der").read_bytes()
    chain = (snp / "milan_ask_ark_asvk.pem").read_text()
    measurement = verified_fields(run, snp / "test-report.bin", "--type", "snp", "--vcek",
                                  snp / "test-vcek.der", "--chain",
                                  snp / "milan_ask_ark_asvk.pem")["measurement"]
    trust = f"tdx:{body['mr_td']}"
    said = {"report-data": "report data does not bind", "mrtd": "measurement",
            "rtmrs": "measurement", "rtmrs-match": "report data does not bind",
            "debug": "debug TD", "changed": "does not verify",
            "no-claims": "no claims", "snp": "report data does not bind",
            "snp-measurement": "measurement", "snp-no-vcek": "vcek and chain"}[case]

    def evidence(nonce):
        if case.startswith("snp"):
            extra = {} if case == "snp-no-vcek" else {
                "vcek": base64.b64encode(vcek).decode(), "chain": chain}
            return 200, hw_answer(service, "snp", report, nonce, apps.app, **extra)
        data = quote
        if case == "changed":  # a byte of MRTD: the quote's signature no longer holds
            data = bytearray(quote)
            data[48 + 136] ^= 1
            data = bytes(data)
        doc = hw_answer(service, "tdx", data, nonce, apps.app)
        if case == "no-claims":
            del doc["claims"]
        return 200, doc

    if case == "mrtd":
        trust = "tdx:" + "ab" * 48
    elif case == "rtmrs":  # its MRTD, but RTMR3 another's
        trust = f"tdx:{body['mr_td']}:{rtmrs[:-2]}{'01' if rtmrs.endswith('00') else '00'}"
        assert trust != f"tdx:{body['mr_td']}:{rtmrs}"
    elif case == "rtmrs-match":  # all five its own: trusted, then its report data
        trust = f"tdx:{body['mr_td']}:{rtmrs}"
    elif case in ("snp", "snp-no-vcek"):
        trust = f"snp:{measurement}"
    elif case == "snp-measurement":
        trust = "snp:" + "cd" * 48
    f = fake(evidence)
    text, _, _ = marker()
    r = invoke(run, f, service, text, "--sealed", "--expect-app", apps.app, "--trust-platform",
               trust)
    refused_and_nothing_sent(r, f, service, text, said)


def test_a_sealed_input_sent_again_is_refused_as_a_replay(start, apps, store, platform):
    """The spawner remembers each sealed input by its ephemeral key: the same bytes
    again are 409 and do not run; sealed anew, the same input runs."""
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    pubkey, (text, logged, made), blob = sealed_to_its_key(w, service)
    s, doc = wire_invoke(w, service, blob)
    assert s == 200 and "sealed" in doc, doc
    for _ in range(2):
        s, doc = wire_invoke(w, service, blob)
        assert s == 409, doc
        refused_409(doc, REPLAY)
    _, again = sealed_input(bytes.fromhex(pubkey), service, text)
    s, doc = wire_invoke(w, service, again)
    assert s == 200 and "sealed" in doc, doc
    assert w.stop() == 0
    ends = [(l["status"], l.get("end")) for l in invoke_lines(w, service)]
    assert ends == [(200, "result"), (409, "key_missing"), (409, "key_missing"),
                    (200, "result")], ends
    assert_nowhere(w, store, text, logged, made)


def test_a_reply_key_no_one_holds_is_refused_before_the_service_runs(start, apps, store,
                                                                   platform):
    """A sealed input whose reply key is of small order (zeros: an answer sealed to it
    would be readable by anyone) is 400 config, and the service never sees it."""
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    s, got, _ = evidence(w, service, "00")
    assert s == 200, got
    text, logged, made = marker()
    eph, ct = seal(bytes.fromhex(got["claims"]["pubkey"]), AAD_IN + service.encode(),
                   bytes(32) + text.encode())
    s, doc = wire_invoke(w, service, eph + ct)
    assert (s, doc["error"]["kind"]) == (400, "config"), doc
    assert "reply key" in doc["error"]["message"] and doc["log"] == "", doc
    assert w.stop() == 0
    assert_nowhere(w, store, text, logged, made)


@pytest.mark.parametrize("as_user", ["user"], indirect=True)
def test_no_other_process_of_the_workers_user_reads_the_spawner(as_user, start, apps, store,
                                                                platform):
    """The spawner, which holds the services' keys, is not dumpable: its /proc files are
    root's, not the worker's uid's (no ptrace, no /proc/PID/mem), while the worker's
    HTTP process's are that uid's."""
    key, _ = platform
    w = sim_worker(start, store, apps, key)
    service, _ = deployed(w, apps, ("a",))
    s, got, _ = evidence(w, service, "00")  # the spawner has made a key by now
    assert s == 200, got
    spawners = [p for p in descendants(w.proc.pid)
                if comm(p) == "teepy-spawner" and Path(f"/proc/{p}/stat").read_text()
                .rsplit(")", 1)[1].split()[1] == str(w.proc.pid)]
    assert len(spawners) == 1, spawners
    assert os.stat(f"/proc/{w.proc.pid}/mem").st_uid == 65534
    assert os.stat(f"/proc/{spawners[0]}/mem").st_uid == 0
    assert w.stop() == 0
