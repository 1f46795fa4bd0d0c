"""The CAS's client (docs/cas.md "The runtime side" and "Policy commands"):
`teepy policy create|update|get|delete|list` and `teepy run --cas URL
--cas-fingerprint FP --config-id POLICY/SERVICE`, against a CAS stand-in written from
the contract (tests/cas_mock.py: a real TLS 1.3 server, self-signed, its key
pinned): usage errors, nothing listening, another key than the pinned one, the
CAS's refusals in one line, every owner signature checked, and an encrypted bundle
with a sealed data item and an env secret that gets its keys only by attestation, as
root and as uid 65534; a denial is exit 11 with the CAS's reason. The same against
the real server, `teepy cas`, when this build has it."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import textwrap
import time
from pathlib import Path

import pytest

from cas_mock import MockCas, make_cert
from exit_codes import EXIT
from recorded_tsm import (GUID, QUOTE_4, SNP_CHAIN, SNP_REPORT, SNP_VCEK, cert_table, der_of,
                          make_recorded_snp, make_recorded_tsm, milan_ask_ark, pem_blocks,
                          recorded_auxblob, snp_measurement)
from volumes import one_line, own

NOBODY = 65534

SERVICE = """
import json, os, teex
try:
    data = teex.TEEX_getdata(0).decode()
except IndexError:
    data = None
from helper import greeting
if os.path.isdir("/out"):
    with open("/out/note.txt", "w") as f:
        f.write("written inside, sealed outside")
teex.TEEX_return(json.dumps({"input": teex.TEEX_getinput(), "data": data,
                             "token": os.environ.get("API_TOKEN"),
                             "greeting": greeting()}))
"""
HELPER = """
def greeting():
    return "hello from an encrypted module"
"""


class RealCas:
    """`teepy cas --listen 127.0.0.1:0` on a new database, as root; what it printed
    gives its URL and its key's fingerprint. It keeps no log of requests for a test
    to read (seen is None)."""

    seen = None

    def __init__(self, teepy, d):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
        self.teepy, self.db, self.env = teepy, os.path.join(d, "cas.db"), env
        self.proc = subprocess.Popen([str(teepy), "cas", "--listen", "127.0.0.1:0", "--db",
                                      self.db], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, env=env)
        said = []
        for line in self.proc.stderr:  # first the keys it made, then where it listens
            said.append(line.decode())
            m = re.search(r"listening on (https://\S+), key fingerprint (sha256//\S+)", said[-1])
            if m or len(said) > 8:
                break
        if not m:
            self.proc.kill()
            raise AssertionError(f"teepy cas did not start: {said!r}")
        self.url, self.fingerprint = m.group(1), m.group(2)
        # what it says later is drained, so that it never blocks on a full pipe
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def close(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0

    def audit(self):
        """The rows of its audit log (`teepy cas audit --json`), oldest first: what
        it was asked, where a test cannot see the requests themselves."""
        r = subprocess.run([str(self.teepy), "cas", "audit", "--db", self.db, "--json"],
                           capture_output=True, timeout=30, env=self.env)
        assert r.returncode == 0, r
        return json.loads(r.stdout)


def _has_cas(teepy):
    return subprocess.run([str(teepy), "cas", "--help"], capture_output=True).returncode == 0


@pytest.fixture(params=["stand-in", "teepy-cas"])
def cas(request, tmp, teepy):
    """The CAS each test talks to: the stand-in written from the contract
    (tests/cas_mock.py), and the real server, `teepy cas`."""
    d = tmp.make_sibling("cas")
    if request.param == "stand-in":
        c = MockCas(str(d))
    else:
        if not _has_cas(teepy):
            pytest.skip("the CAS server (teepy cas) is not in this build")
        c = RealCas(teepy, str(d))
    yield c
    c.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def teepy_direct(teepy, *args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    full["TEEPY_NO_CACHE"] = "1"
    full.update(env or {})
    return subprocess.run([str(teepy), *map(str, args)], capture_output=True, timeout=120,
                          env=full)


def cas_args(cas):
    return ["--cas", cas.url, "--cas-fingerprint", cas.fingerprint]


@pytest.fixture
def owner(teepy, tmp):
    key = tmp / "owner.key"
    r = teepy_direct(teepy, "keygen", "-o", key)
    assert r.returncode == EXIT.OK, r.stderr
    return key


def owner_hex(teepy, key):
    """The owner's raw public key in hex, as the CAS keeps it."""
    from cryptography.hazmat.primitives import serialization
    with open(str(key).replace(".key", ".pub"), "rb") as f:
        pub = serialization.load_pem_public_key(f.read())
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def policy_doc(name="mysvc", app=None, runtime=None, platform=None, secrets=None, service_secrets=None):
    return {
        "name": name,
        "services": {"main": {
            "app": [app or "aa" * 32],
            "runtime": [runtime or "bb" * 32],
            "tolerate": ["sim"],
            "platform_keys": [platform or "cc" * 32],
            "secrets": service_secrets if service_secrets is not None else list((secrets or {}).keys()),
        }},
        "secrets": secrets or {},
    }


# ---- usage errors: nothing is sent ----

FP = "sha256//LSBV0fVbhLi3AkvK0Ty1YEO0X1vACeg0/ygdmP+ZrtM="


@pytest.mark.parametrize("args, says", [
    (["policy"], "policy: missing create, update, get, delete or list"),
    (["policy", "frobnicate"], "policy: unknown action 'frobnicate'"),
    (["policy", "list", "--cas-fingerprint", FP, "--owner", "o.key"], "policy list: missing --cas URL"),
    (["policy", "list", "--cas", "https://h:1", "--owner", "o.key"],
     "policy list: missing --cas-fingerprint FP"),
    (["policy", "get", "--cas", "https://h:1", "--cas-fingerprint", FP, "--owner", "o.key"],
     "policy get: missing NAME"),
    (["policy", "get", "Bad/../x", "--cas", "https://h:1", "--cas-fingerprint", FP, "--owner", "o"],
     "is not a policy name"),
    (["policy", "list", "--cas", "http://h:1", "--cas-fingerprint", FP, "--owner", "o.key"],
     "is not an https:// URL"),
    (["policy", "list", "--cas", "https://h:1", "--cas-fingerprint", "abc", "--owner", "o.key"],
     "'abc' is not a key fingerprint"),
    (["policy", "get", "x", "--predecessor", "a" * 64, "--cas", "https://h:1",
      "--cas-fingerprint", FP, "--owner", "o"], "--predecessor is for update and delete"),
    (["run", "x.tpy", "--cas", "https://h:1", "--cas-fingerprint", FP],
     "--cas: give --config-id POLICY/SERVICE too"),
    (["run", "x.tpy", "--config-id", "mysvc/main"], "--config-id: applies to --cas URL"),
    (["run", "x.tpy", "--cas", "https://h:1", "--cas-fingerprint", FP, "--config-id", "a/b",
      "--bundle-key", "k"], "--bundle-key: with --cas the keys come from the CAS"),
    (["run", "x.tpy", "--cas", "https://h:1", "--cas-fingerprint", FP, "--config-id", "a/b",
      "--data-key", "k"], "--data-key: with --cas the keys come from the CAS"),
    (["run", "x.tpy", "--cas", "https://h:1", "--cas-fingerprint", FP, "--config-id", "A/b"],
     "is not POLICY/SERVICE"),
    (["run", "x.tpy", "--snp-vcek", "v.der"], "--snp-vcek: applies to --cas URL (the "
     "certificates go with the evidence sent to the CAS): give it too"),
    (["run", "x.tpy", "--snp-chain", "c.pem"], "--snp-chain: applies to --cas URL"),
    (["run", "x.tpy", "--cas", "https://h:1", "--cas-fingerprint", FP, "--config-id", "a/b",
      "--snp-vcek", "a", "--snp-vcek", "b"], "--snp-vcek: given more than once"),
    (["build", "x.py", "-o", "x.tpy", "--key", "k", "--cas", "https://h:1",
      "--cas-fingerprint", FP, "--config-id", "a/b"], "a build's sample run gets no keys"),
])
def test_usage_errors_are_one_line(run, args, says):
    r = run(*args)
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r), r


def test_cas_for_an_unsealed_script_is_a_usage_error(run, script):
    s = script("import teex\nteex.TEEX_return('x')\n")
    r = run("run", s, "--cas", "https://127.0.0.1:1", "--cas-fingerprint", FP,
            "--config-id", "mysvc/main")
    assert r.returncode == EXIT.USAGE, r
    assert "is not a bundle; only a sealed bundle" in one_line(r)
    # from the deployment's settings it is left alone: the script runs
    r = run("run", s, env={"TEEPY_CAS_ADDR": "https://127.0.0.1:1", "TEEPY_CAS_FINGERPRINT": FP,
                           "TEEPY_CONFIG_ID": "mysvc/main"})
    assert r.returncode == EXIT.OK and r.stdout == b"x", r


def test_help_names_every_action_and_flag(run):
    r = run("policy", "--help")
    assert r.returncode == EXIT.OK
    for word in ("create FILE.json", "update NAME FILE.json", "get NAME", "delete NAME", "list",
                 "--cas URL", "--cas-fingerprint FP", "--owner KEY", "--predecessor HASH"):
        assert word in r.stdout.decode(), word
    r = run("run", "--help")
    for word in ("--cas URL", "--cas-fingerprint FP", "--config-id POLICY/SERVICE",
                 "TEEPY_CAS_ADDR", "TEEPY_CAS_FINGERPRINT", "TEEPY_CONFIG_ID"):
        assert word in r.stdout.decode(), word


# ---- the connection ----

def test_nothing_listening_is_one_line(run, owner, tmp):
    url = f"https://127.0.0.1:{free_port()}"
    r = run("policy", "list", "--cas", url, "--cas-fingerprint", FP, "--owner", owner)
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert line.startswith(f"teepy: policy list: cannot reach the CAS at {url}"), line


def test_another_key_than_the_pinned_one_is_refused_before_anything_is_sent(run, owner, cas, tmp):
    _, _, other = make_cert(str(tmp), "other")
    r = run("policy", "list", "--cas", cas.url, "--cas-fingerprint", other, "--owner", owner)
    assert r.returncode == EXIT.USAGE, r
    assert "the CAS's key is not the pinned one" in one_line(r), r
    # nothing reached it: the stand-in saw no request, the real server logged none
    assert cas.seen == [] if cas.seen is not None else cas.audit() == []
    # the right pin: the same request goes through
    r = run("policy", "list", *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    if cas.seen is not None:
        assert len(cas.seen) == 1
    else:
        assert [(a["op"], a["outcome"]) for a in cas.audit()] == [("list", "accepted")]


def test_a_cas_that_never_completes_the_handshake_names_the_connect_timeout(run, owner):
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # connections are taken into the backlog, never answered
    try:
        url = f"https://127.0.0.1:{hole.getsockname()[1]}"
        r = run("policy", "list", "--cas", url, "--cas-fingerprint", FP, "--owner", owner,
                timeout=60)
        assert one_line(r) == f"teepy: policy list: the CAS at {url} could not be connected " \
            "to within 10 s", r
    finally:
        hole.close()


def test_the_peers_error_kind_is_shown_without_control_characters(run, owner, tmp):
    cas = MockCas(str(tmp.make_sibling("cas")))
    try:
        cas.error_kind = "not_found\x1b]0;owned\x07\x1b[2J"
        r = run("policy", "get", "nothing", *cas_args(cas), "--owner", owner)
        line = one_line(r)
        assert "\x1b" not in line and "\x07" not in line, line
        assert line.endswith("(HTTP 404 not_found??0?owned???2J)"), line
    finally:
        cas.close()


def test_an_answer_that_is_not_json_is_one_line(run, owner, tmp):
    cas = MockCas(str(tmp.make_sibling("cas")))
    try:
        cas.garbage = True
        r = run("policy", "list", *cas_args(cas), "--owner", owner)
        assert r.returncode == EXIT.USAGE, r
        assert one_line(r) == "teepy: policy list: the CAS's answer is not a JSON object"
    finally:
        cas.close()


def test_settings_give_the_cas_and_its_pin(run, owner, cas):
    r = run("policy", "list", "--owner", owner,
            env={"TEEPY_CAS_ADDR": cas.url, "TEEPY_CAS_FINGERPRINT": cas.fingerprint})
    assert r.returncode == EXIT.OK, r


# ---- policy commands, each signature checked by the stand-in ----

def test_policy_create_get_update_list_delete(run, teepy, owner, cas, tmp):
    doc = policy_doc(secrets={"API_TOKEN": {"kind": "env", "value": "tok"}})
    f = tmp.write("mysvc.json", json.dumps(doc, indent=2).encode())
    r = run("policy", "create", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    first = r.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", first), r
    if cas.seen is not None:
        method, path, body = cas.seen[-1]
        assert (method, path) == ("POST", "/v1/policies")
        assert body["owner"] == owner_hex(teepy, owner) and body["policy"] == doc

    r = run("policy", "get", "mysvc", *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["hash"] == first and got["name"] == "mysvc"
    assert got["owner"] == owner_hex(teepy, owner)
    assert "value" not in got["policy"]["secrets"]["API_TOKEN"]

    doc["services"]["main"]["app"].append("dd" * 32)
    f.write_text(json.dumps(doc))
    r = run("policy", "update", "mysvc", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    second = r.stdout.decode().strip()
    assert second != first
    # the predecessor was asked for with a get, then named
    if cas.seen is not None:
        assert [p for _, p, _ in cas.seen[-2:]] == ["/v1/policies/mysvc/get",
                                                     "/v1/policies/mysvc"]
        assert cas.seen[-1][2]["predecessor"] == first

    # a stale predecessor given: the CAS's refusal in its own words
    r = run("policy", "update", "mysvc", f, "--predecessor", first, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.USAGE, r
    line = one_line(r)
    assert line.startswith("teepy: policy update: the CAS refused: stale predecessor"), line
    assert line.endswith("(HTTP 409 conflict)"), line

    r = run("policy", "list", *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    assert r.stdout.decode() == f"{second} mysvc\n"

    r = run("policy", "delete", "mysvc", *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r
    r = run("policy", "get", "mysvc", *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.USAGE, r
    assert one_line(r) == "teepy: policy get: the CAS refused: no policy mysvc (HTTP 404 not_found)"


def test_gets_in_the_same_second_are_each_answered_once(run, owner, cas, tmp):
    """A get is signed over the time and a random nonce: equal gets in one second sign
    different bytes, so the CAS's replay cache refuses none of them and none is asked
    twice (docs/cas-api.md, "Policies")."""
    f = tmp.write("p.json", json.dumps(policy_doc()).encode())
    assert run("policy", "create", f, *cas_args(cas), "--owner", owner).returncode == EXIT.OK
    for _ in range(3):
        r = run("policy", "get", "mysvc", *cas_args(cas), "--owner", owner)
        assert r.returncode == EXIT.OK, r
        assert r.err_lines == [], r
    if cas.seen is None:
        gets = [a for a in cas.audit() if a["op"] == "get"]
        assert [a["outcome"] for a in gets] == ["accepted"] * 3, gets
    else:
        gets = [b for _, p, b in cas.seen if p == "/v1/policies/mysvc/get"]
        assert len(gets) == 3 and len({b["nonce"] for b in gets}) == 3, gets


def test_create_of_a_name_taken_says_the_cas_refused(run, owner, cas, tmp):
    f = tmp.write("p.json", json.dumps(policy_doc()).encode())
    assert run("policy", "create", f, *cas_args(cas), "--owner", owner).returncode == EXIT.OK
    r = run("policy", "create", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.USAGE
    assert one_line(r) == "teepy: policy create: the CAS refused: policy mysvc exists (HTTP 409 conflict)"


def test_a_policy_file_that_is_not_json_is_one_line(run, owner, cas, tmp):
    f = tmp.write("p.json", b"{not json")
    r = run("policy", "create", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.USAGE
    assert one_line(r).startswith(f"teepy: policy create: {f}:")
    assert cas.seen == [] if cas.seen is not None else cas.audit() == []


# ---- a run's keys by attestation ----

@pytest.fixture
def deployment(teepy, tmp, cas, owner, variant, run):
    """An encrypted bundle, a sealed data item, a platform key of the variant's user,
    and the policy that names them: what `teepy run --cas` needs. Returns a dict."""
    app = tmp / "app"
    app.mkdir()
    (app / "svc.py").write_text(textwrap.dedent(SERVICE))
    (app / "helper.py").write_text(textwrap.dedent(HELPER))
    os.chmod(app, 0o755)
    signer = tmp / "signer.key"
    assert teepy_direct(teepy, "keygen", "-o", signer).returncode == EXIT.OK
    bundle = tmp / "svc.tpy"
    b = teepy_direct(teepy, "build", app / "svc.py", "-o", bundle, "--key", signer, "--encrypt",
                     "--input", "sample")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    bundle_key = open(f"{bundle}.key").read().split("\n")[1]
    tmp.write("train.txt", b"training data, sealed")
    s = teepy_direct(teepy, "data", "seal", tmp / "train.txt", "-o", tmp / "train.tpd")
    assert s.returncode == EXIT.OK, s.stderr.decode()
    data_key = open(tmp / "train.tpd.key").read().split("\n")[1]
    volume_key_file = tmp / "volume.key"
    assert teepy_direct(teepy, "keygen", "--symmetric", "-o", volume_key_file).returncode == 0
    volume_key = open(volume_key_file).read().split("\n")[1]
    os.remove(tmp / "train.txt")
    info = teepy_direct(teepy, "data", "info", tmp / "train.tpd").stdout.decode()
    data_id = re.search(r"^id\s+([0-9a-f]{64})$", info, re.M).group(1)
    ins = json.loads(teepy_direct(teepy, "inspect", bundle, "--json").stdout)

    home = tmp.make_sibling("home")
    own(home, variant)
    env = {"TEEPY_PLATFORM_KEY": str(home / "platform.key")} if variant == "root" else \
        {"HOME": str(home), "XDG_DATA_HOME": None}
    p = run("platform", "init", env=env)
    assert p.returncode == EXIT.OK, p
    platform = re.search(r"^public\s+([0-9a-f]{64})$", p.stdout.decode(), re.M).group(1)

    def b64(hex_key):
        import base64
        return base64.b64encode(bytes.fromhex(hex_key)).decode()

    secrets = {
        "app_key": {"kind": "bundle_key", "value": b64(bundle_key)},
        "train": {"kind": "data_key", "value": b64(data_key), "data_id": data_id},
        "out": {"kind": "volume_key", "value": b64(volume_key)},
        "API_TOKEN": {"kind": "env", "value": "s3cret token"},
        "model": {"kind": "blob", "value": "AAAA"},
    }
    doc = policy_doc(app=ins["app"], runtime=ins["runtime"], platform=platform, secrets=secrets)
    if SNP_REPORT.is_file():  # the recorded SEV-SNP report's platform is accepted too
        doc["services"]["main"]["hw"] = {"snp": [{"measurement": snp_measurement()}]}
    f = tmp.write("mysvc.json", json.dumps(doc).encode())
    r = teepy_direct(teepy, "policy", "create", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    # nothing else holds the keys: the run gets them from the CAS or not at all
    os.remove(f"{bundle}.key")
    os.remove(tmp / "train.tpd.key")
    return {"bundle": bundle, "trust": tmp / "signer.pub", "data": tmp / "train.tpd",
            "volume_key": volume_key_file,
            "env": env, "doc": doc, "file": f, "app": ins["app"]}


def test_an_encrypted_bundle_gets_its_keys_only_by_attestation(as_user, run, cas, deployment):
    d = deployment
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--input", "x", env=d["env"], timeout=120)
    assert r.returncode == EXIT.OK, r
    assert r.json() == {"input": "x", "data": "training data, sealed", "token": "s3cret token",
                        "greeting": "hello from an encrypted module"}
    if cas.seen is not None:
        assert [p for _, p, _ in cas.seen[-2:]] == ["/v1/challenge", "/v1/attest"]
    assert r.err_lines == [], r  # nothing said of the keys
    # --print-config names what the run took from the CAS and the blob it did not use
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--input", "x", "--print-config", env=d["env"], timeout=120)
    assert r.returncode == EXIT.OK, r
    assert re.search(r"keys +by attestation: https://127\.0\.0\.1:\d+ \(key sha256//\S+\), "
                     r"config id mysvc/main, sim evidence; blob secrets not used by a run: model",
                     r.err), r.err
    # no key, no run: without --cas the bundle stops at its missing key
    r = run("run", d["bundle"], "--trust", d["trust"], "--input", "x", env=d["env"])
    assert r.returncode == EXIT.KEY_MISSING, r


def test_settings_give_the_cas_and_config_id_to_a_bundle(run, cas, deployment):
    d = deployment
    env = dict(d["env"], TEEPY_CAS_ADDR=cas.url, TEEPY_CAS_FINGERPRINT=cas.fingerprint,
               TEEPY_CONFIG_ID="mysvc/main")
    r = run("run", d["bundle"], "--trust", d["trust"], "--data", d["data"], "--input", "y",
            env=env, timeout=120)
    assert r.returncode == EXIT.OK, r
    assert r.json()["token"] == "s3cret token"


def test_a_denial_is_exit_11_with_the_cas_reason(run, teepy, cas, owner, deployment):
    d = deployment
    doc = d["doc"]
    doc["services"]["main"]["app"] = ["ee" * 32]  # another app
    f = d["file"]
    f.write_text(json.dumps(doc))
    r = teepy_direct(teepy, "policy", "update", "mysvc", f, *cas_args(cas), "--owner", owner)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--input", "x", env=d["env"])
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert one_line(r) == (f"teepy: run: the CAS denied mysvc/main: app {d['app'][:16]}… is not "
                           "in policy mysvc/main (HTTP 403 denied)")
    assert r.stdout == b""


def test_an_env_secret_the_run_also_sets_is_refused(run, cas, deployment):
    d = deployment
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--env", "API_TOKEN=mine", env=d["env"])
    assert r.returncode == EXIT.USAGE, r
    assert "--env API_TOKEN: the CAS gives API_TOKEN for mysvc/main" in one_line(r)


def test_a_sealed_item_the_cas_has_no_key_for_says_its_id(run, teepy, cas, deployment, tmp):
    d = deployment
    tmp.write("other.txt", b"other")
    assert teepy_direct(teepy, "data", "seal", tmp / "other.txt", "-o", tmp / "other.tpd").returncode == 0
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", tmp / "other.tpd", env=d["env"])
    assert r.returncode == EXIT.KEY_MISSING, r
    assert "the CAS gave mysvc/main no key for item" in one_line(r)



def test_hw_evidence_from_configfs_tsm_is_sent_as_tdx(run, cas, deployment, tmp):
    """--mode hw against a directory laid out like configfs-tsm holding a RECORDED
    TDX quote (not a kernel: no machine here is a confidential VM): the run sends it as
    tdx evidence, which binds none of its claims, and the CAS denies it."""
    if not QUOTE_4.is_file():
        pytest.skip(f"no recorded quote at {QUOTE_4}")
    d = deployment
    env = dict(d["env"], **make_recorded_tsm(tmp.make_sibling("tsm") / "report"))
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--mode", "hw", env=env)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert r.err_lines[-1].startswith("teepy: run: the CAS denied mysvc/main: "), r
    if cas.seen is not None:
        assert cas.seen[-1][2]["evidence"]["type"] == "tdx"
        assert cas.seen[-1][2]["claims"]["mode"] == "hw"
        # a TDX quote carries its PCK chain: nothing goes beside it
        assert set(cas.seen[-1][2]["evidence"]) == {"type", "data"}
    assert r.stdout == b""


# ---- SEV-SNP: the report goes with its VCEK and AMD's chain ----

def pem(der):
    import base64
    b64 = base64.b64encode(der).decode()
    return ("-----BEGIN CERTIFICATE-----\n" +
            "".join(b64[i:i + 64] + "\n" for i in range(0, len(b64), 64)) +
            "-----END CERTIFICATE-----\n")


def snp_run(run, cas, d, env, *extra):
    return run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id",
               "mysvc/main", "--data", d["data"], "--mode", "hw", *extra, env=env)


def error_lines(r):
    """teepy's lines that are not warnings (the recorded entry's own two are)."""
    return [line for line in r.err_lines if not line.startswith("teepy: warning:")]


@pytest.fixture
def snp(deployment, cas, tmp):
    """The deployment, and a way to lay out a RECORDED SEV-SNP report (trustee's
    test-report.bin: not made by any kernel here) with an auxblob of its own."""
    if not (SNP_REPORT.is_file() and SNP_VCEK.is_file() and SNP_CHAIN.is_file()):
        pytest.skip(f"no recorded SEV-SNP report and certificates beside {SNP_REPORT}")

    def lay_out(auxblob=b"default"):
        d = tmp.make_sibling("tsm") / "report"
        return dict(deployment["env"], **make_recorded_snp(d, auxblob))
    return deployment, lay_out


def test_snp_evidence_goes_with_the_hosts_vcek_and_chain(run, teepy, cas, snp, tmp):
    """--mode hw against a RECORDED SEV-SNP report and the certificate table a host
    gives with it (configfs-tsm's auxblob, built from the recorded VCEK and AMD's Milan
    ASK and ARK): the run sends the report with that VCEK (base64 DER) and chain (PEM,
    ASK then ARK), as docs/cas-api.md says.

    The recorded report cannot bind this run's nonce and key, so every CAS denies it;
    what this shows is that the certificates sent verify the report. The real CAS
    (src/cas/service.c) checks the evidence (signature, chain, the platform's
    measurement, which the policy accepts) before the report data, so its denial for
    the report data means the rest passed. The stand-in lets the test read the
    request: the exact bytes sent go through `teepy attest verify` (src/attest's
    verifier, the one teepy cas runs) at today's time and pass every check."""
    d, lay_out = snp
    r = snp_run(run, cas, d, lay_out())
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert len(error_lines(r)) == 1, r
    assert error_lines(r)[0].startswith("teepy: run: the CAS denied mysvc/main: "), r
    assert r.stdout == b""
    if cas.seen is None:
        assert error_lines(r)[0].endswith("report data does not match the claims "
                                          "(HTTP 403 denied)"), r
        row = cas.audit()[-1]
        assert (row["op"], row["outcome"], row["reason"]) == (
            "attest", "denied", "report data does not match the claims")
        return
    import base64
    ev = cas.seen[-1][2]["evidence"]
    assert ev["type"] == "snp" and cas.seen[-1][2]["claims"]["mode"] == "hw"
    assert base64.b64decode(ev["data"]) == SNP_REPORT.read_bytes()
    assert base64.b64decode(ev["vcek"]) == SNP_VCEK.read_bytes()
    ask, ark = milan_ask_ark()
    assert ev["chain"] == pem(ask) + pem(ark)
    out = tmp.make_sibling("sent")
    (out / "report.bin").write_bytes(base64.b64decode(ev["data"]))
    (out / "vcek.der").write_bytes(base64.b64decode(ev["vcek"]))
    (out / "chain.pem").write_text(ev["chain"])
    v = teepy_direct(teepy, "attest", "verify", out / "report.bin", "--type", "snp", "--vcek",
                     out / "vcek.der", "--chain", out / "chain.pem", "--json")
    assert v.returncode == EXIT.OK, v.stderr.decode()
    got = json.loads(v.stdout)
    assert got["verified"] is True and got["time_checked"] is True and got["product"] == "Milan"
    assert [c["name"] for c in got["checks"] if c["ok"]] == ["cert_chain", "cert_report",
                                                             "report_signature", "debug"]


@pytest.mark.parametrize("auxblob, why, give", [
    (None, "configfs-tsm gave no auxblob with the report", "--snp-vcek FILE --snp-chain FILE"),
    (b"", "the host gave none (configfs-tsm's auxblob is empty)",
     "--snp-vcek FILE --snp-chain FILE"),
    (bytes(24), "the host's certificate table is empty", "--snp-vcek FILE --snp-chain FILE"),
    ("vcek only", "the host's certificate table holds only VCEK 1360 bytes", "--snp-chain FILE"),
], ids=["no-auxblob", "empty", "empty-table", "vcek-only"])
def test_snp_without_the_hosts_certificates_stops_before_sending(run, cas, snp, auxblob, why,
                                                                 give):
    d, lay_out = snp
    if auxblob == "vcek only":
        auxblob = cert_table([(GUID["vcek"], SNP_VCEK.read_bytes())])
    before = len(cas.seen) if cas.seen is not None else len(cas.audit())
    r = snp_run(run, cas, d, lay_out(auxblob))
    assert r.returncode == EXIT.KEY_MISSING, r
    assert len(error_lines(r)) == 1, r
    line = error_lines(r)[0]
    assert line.startswith("teepy: run: --cas: the SEV-SNP report needs "), line
    assert f"for the CAS to verify it, and {why}: the host must provide them" in line, line
    assert line.endswith(f"or give {give} (from AMD's KDS)"), line
    # the challenge was asked (the report binds its nonce); nothing was sent
    if cas.seen is not None:
        assert [p for _, p, _ in cas.seen[before:]] == ["/v1/challenge"]
    else:
        assert len(cas.audit()) == before
    assert r.stdout == b""


def _cut():
    return recorded_auxblob()[:2000]


def _not_a_certificate():
    ask, ark = milan_ask_ark()
    return cert_table([(GUID["vcek"], b"not a certificate"), (GUID["ask"], ask),
                       (GUID["ark"], ark)])


@pytest.mark.parametrize("make, says", [
    (_cut, "the host's certificate table (configfs-tsm's auxblob, 2000 bytes) is malformed: "
           "entry 1 (ASK): bytes 1456 to 3133 are past the end (2000 bytes: cut short?)"),
    (lambda: b"\xff" * 300, "is malformed: entry 1 (GUID ffffffff-ffff-ffff-ffff-ffffffffffff): "
                            "the GUID of entry 0 again"),
    (lambda: b"\x01" * 23, "is malformed: cut short: no entry of zeros ends the table in its "
                          "23 bytes"),
    (_not_a_certificate, "the host's VCEK (17 bytes at offset 96) is not a DER certificate"),
], ids=["cut", "garbage", "tiny", "not-a-certificate"])
def test_a_malformed_snp_certificate_table_is_one_line(run, cas, snp, make, says):
    d, lay_out = snp
    r = snp_run(run, cas, d, lay_out(make()))
    assert r.returncode == EXIT.KEY_MISSING, r
    assert len(error_lines(r)) == 1, r
    assert says in error_lines(r)[0], error_lines(r)[0]
    assert "or give --snp-vcek FILE --snp-chain FILE" in error_lines(r)[0]
    assert r.stdout == b""


@pytest.mark.parametrize("how", ["flags", "settings"])
def test_snp_certificates_given_go_instead_of_the_hosts(run, cas, snp, tmp, how):
    """A host that gives none: the VCEK from AMD's KDS (here the recorded one, as PEM,
    which is sent as DER) and KDS's cert_chain (the recorded Milan one: ASK, ARK and
    ASVK)."""
    d, lay_out = snp
    given = tmp.make_sibling("given")
    (given / "vcek.pem").write_text(pem(SNP_VCEK.read_bytes()))
    env = lay_out(b"")
    extra = []
    if how == "flags":
        extra = ["--snp-vcek", given / "vcek.pem", "--snp-chain", SNP_CHAIN]
    else:
        env = dict(env, TEEPY_SNP_VCEK=str(given / "vcek.pem"), TEEPY_SNP_CHAIN=str(SNP_CHAIN))
    r = snp_run(run, cas, d, env, *extra)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert len(error_lines(r)) == 1, r
    if cas.seen is not None:
        import base64
        ev = cas.seen[-1][2]["evidence"]
        assert base64.b64decode(ev["vcek"]) == SNP_VCEK.read_bytes()
        # the chain's certificates, each written again (nothing else of the file goes)
        assert [der_of(b) for b in pem_blocks(ev["chain"])] == [
            der_of(b) for b in pem_blocks(SNP_CHAIN.read_text())]
    else:
        assert error_lines(r)[0].endswith("report data does not match the claims "
                                          "(HTTP 403 denied)"), r


@pytest.mark.parametrize("flag, content, says", [
    ("--snp-vcek", b"garbage", "not one certificate, DER or PEM"),
    ("--snp-chain", b"garbage", "no PEM certificate in it"),
    ("--snp-vcek", None, "No such file or directory"),
])
def test_snp_certificate_files_that_are_none_are_a_usage_error(run, cas, snp, tmp, flag,
                                                               content, says):
    d, lay_out = snp
    f = tmp.make_sibling("given") / "file"
    if content is not None:
        f.write_bytes(content)
    r = snp_run(run, cas, d, lay_out(), flag, f)
    assert r.returncode == EXIT.USAGE, r
    assert len(error_lines(r)) == 1, r
    assert error_lines(r)[0].startswith(f"teepy: run: --cas: {flag} {f}: {says}"), r


def test_the_volume_key_from_the_cas_seals_the_output_volume(as_user, run, teepy, cas, deployment,
                                                              tmp, variant):
    d = deployment
    out = tmp.make_sibling("vol")
    own(out, variant)
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--output-volume", out / "v", env=d["env"], timeout=120)
    assert r.returncode == EXIT.OK, r
    # sealed under the key the policy holds (here also in a file, for the test to read)
    ls = teepy_direct(teepy, "volume", "cat", out / "v", "note.txt", "--volume-key", d["volume_key"])
    assert ls.returncode == EXIT.OK, ls.stderr.decode()
    assert ls.stdout == b"written inside, sealed outside"


def test_a_bundle_replaced_after_its_attestation_does_not_run(run, teepy, tmp, deployment, cas):
    """The keys were released for the bundle measured; another bundle of the same
    signer put in its place while the CAS answers is refused before anything runs."""
    if cas.seen is None:
        pytest.skip("the stand-in lets the test act between the measurement and the run")
    d = deployment
    other = tmp / "other"
    other.mkdir()
    (other / "svc.py").write_text("import teex\nteex.TEEX_return('another app')\n")
    os.chmod(other, 0o755)
    b = teepy_direct(teepy, "build", other / "svc.py", "-o", tmp / "other.tpy", "--key",
                     tmp / "signer.key", "--input", "x")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    cas.on_attest = lambda: os.replace(tmp / "other.tpy", d["bundle"])
    r = run("run", d["bundle"], "--trust", d["trust"], *cas_args(cas), "--config-id", "mysvc/main",
            "--data", d["data"], "--input", "x", env=d["env"])
    assert r.returncode == EXIT.BUNDLE, r
    # (the other bundle is not encrypted: a warning that the bundle key is not used)
    assert r.err_lines[-1] == (f"teepy: {d['bundle']}: refused: the bundle changed after it was "
                               "attested; its keys are not used for another"), r
    assert r.stdout == b""


def test_a_manifest_this_teepy_cannot_parse_is_refused_before_the_cas_is_asked(run, teepy, tmp,
                                                                               cas):
    """A signed bundle whose manifest is of a newer format: refused as the runner
    refuses it, before a challenge is asked for or evidence of any runtime is sent."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sealed"))
    from sealed_support import bundle_manifest, resign
    app = tmp / "app"
    app.mkdir()
    (app / "svc.py").write_text("import teex\nteex.TEEX_return('ran')\n")
    os.chmod(app, 0o755)
    assert teepy_direct(teepy, "keygen", "-o", tmp / "signer.key").returncode == EXIT.OK
    b = teepy_direct(teepy, "build", app / "svc.py", "-o", tmp / "svc.tpy", "--key",
                     tmp / "signer.key", "--input", "x")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    m = bundle_manifest(tmp / "svc.tpy")
    m["format"] = 4
    newer = resign(tmp / "svc.tpy", tmp / "signer.key", m, tmp / "newer.tpy")
    r = run("run", newer, "--trust", tmp / "signer.pub", *cas_args(cas), "--config-id",
            "mysvc/main", "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r
    assert one_line(r) == (f"teepy: {newer}: manifest: format 4 is not supported (this teepy "
                           "reads formats 1 to 3; a newer teepy built it)")
    # nothing reached it: the stand-in saw no request, the real server logged none
    assert cas.seen == [] if cas.seen is not None else cas.audit() == []


def _signed_app(teepy, tmp, key="signer"):
    app = tmp / "app"
    app.mkdir(exist_ok=True)
    (app / "svc.py").write_text("import teex\nteex.TEEX_return('ran')\n")
    os.chmod(app, 0o755)
    for name in ("signer", "other"):
        if not (tmp / f"{name}.key").exists():
            assert teepy_direct(teepy, "keygen", "-o", tmp / f"{name}.key").returncode == EXIT.OK
    b = teepy_direct(teepy, "build", app / "svc.py", "-o", tmp / f"{key}.tpy", "--key",
                     tmp / f"{key}.key", "--input", "x")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    return tmp / f"{key}.tpy"


def _forged(bundle, out):
    """bundle with its signature's first byte (after the key) flipped."""
    data = bytearray(bundle.read_bytes())
    manifest_size = struct.unpack_from("<I", data, 12)[0]
    data[24 + manifest_size + 32] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def _nothing_reached(cas):
    # the stand-in saw no request, the real server logged none
    return cas.seen == [] if cas.seen is not None else cas.audit() == []


def test_a_bundle_whose_signature_fails_is_refused_before_the_cas_is_asked(run, teepy, tmp, cas):
    """A bundle whose signature was changed after signing: refused as the runner
    refuses it, before any evidence claims its signer signed it."""
    forged = _forged(_signed_app(teepy, tmp), tmp / "forged.tpy")
    r = run("run", forged, "--trust", tmp / "signer.pub", *cas_args(cas), "--config-id",
            "mysvc/main", "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r
    assert one_line(r) == (f"teepy: {forged}: the signature does not verify: the manifest or "
                           "the signature was changed after signing")
    assert _nothing_reached(cas)


def test_a_signer_the_run_does_not_trust_is_refused_before_the_cas_is_asked(run, teepy, tmp,
                                                                            cas):
    """--trust names another signer, or none is given: the run's own refusal (the
    same line and exit code as without --cas), and no round trip to the CAS for a
    bundle the run would not start."""
    other = _signed_app(teepy, tmp, key="other")
    r = run("run", other, "--trust", tmp / "signer.pub", *cas_args(cas), "--config-id",
            "mysvc/main", "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r
    assert "which is none of the trusted signers (use --trust KEY)" in one_line(r), r
    plain = run("run", other, "--trust", tmp / "signer.pub", "--input", "x")
    assert (plain.returncode, one_line(plain)) == (r.returncode, one_line(r))
    # a forged signature and no --trust at all: what a run without --cas says first
    forged = _forged(other, tmp / "forged.tpy")
    r = run("run", forged, *cas_args(cas), "--config-id", "mysvc/main", "--input", "x")
    plain = run("run", forged, "--input", "x")
    assert r.returncode == EXIT.USAGE, r
    assert "no trusted signer given" in one_line(r), r
    assert (plain.returncode, one_line(plain)) == (r.returncode, one_line(r))
    assert _nothing_reached(cas)
