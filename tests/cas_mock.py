"""A stand-in CAS for the client's tests, written from docs/cas-api.md alone (not
from teepy's C): TLS 1.3 with a self-signed ECDSA P-256 certificate made by
`openssl req -x509`, the policy requests with their owner signatures checked
(Ed25519 over "teepy-cas-v1\\0" OP "\\0" REST), the challenge and the attestation of
sim evidence (layout, report data, platform key, app) with the secrets sealed to the
runtime's X25519 key as tp_seal seals (X25519, HKDF-SHA-256, AES-256-GCM, the nonce
as associated data). Python's `cryptography` (python3-cryptography) does the
cryptography. It stands for the real server (`teepy cas`) until that is built in."""
import base64
import hashlib
import json
import os
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509 import load_pem_x509_certificate

SIM_LABEL = b"teepy sim evidence: SIMULATION, not hardware\n"


def make_cert(d, name="cas"):
    """(cert, key, fingerprint) of a new self-signed P-256 certificate in d; the
    fingerprint as libcurl's pin takes it."""
    key, cert = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={name}"], check=True, capture_output=True)
    with open(cert, "rb") as f:
        spki = load_pem_x509_certificate(f.read()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert, key, "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_data(mode, runtime, app, signer, nonce, pubkey, debug=False):
    out = b"teepy report data v1"
    for x in (mode, runtime, app, signer, nonce, pubkey) + ((b"debug",) if debug else ()):
        out += struct.pack(">I", len(x)) + x
    return hashlib.sha512(out).digest()


def seal(recipient, aad, plain):
    """tp_seal: ephemeral public key, and ciphertext || tag."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient))
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=eph_pub + recipient,
               info=b"teepy seal v1").derive(shared)
    return eph_pub, AESGCM(okm[:32]).encrypt(okm[32:], plain, aad)


class Denied(Exception):
    pass


class MockCas:
    """The state of one CAS: policies by name (with their owner), nonces issued, and
    every request seen (path, body), for the tests to look at."""

    def __init__(self, d):
        self.cert, self.key, self.fingerprint = make_cert(d)
        self.policies = {}
        self.nonces = {}
        self.seen = []
        self.seen_times = set()
        self.garbage = False  # answer 200 with bytes that are not JSON
        self.error_kind = None  # every error answer's kind, when set
        self.on_attest = None  # called before an attestation is answered
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.cert, self.key)
        handler = type("Handler", (_Handler,), {"cas": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # ---- policies ----

    @staticmethod
    def verify(owner_hex, sig_hex, op, *rest):
        msg = b"teepy-cas-v1\0" + op.encode() + b"\0" + b"\0".join(rest)
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(owner_hex)).verify(
                bytes.fromhex(sig_hex), msg)
        except Exception:
            raise Denied(f"{op}: the owner's signature does not verify")

    def fresh(self, body):
        t = body["time"]
        if abs(time.time() - t) > 300:
            raise Denied("stale time")
        if (t, body["signature"]) in self.seen_times:
            raise Denied("replayed request")
        self.seen_times.add((t, body["signature"]))

    def policy_hash(self, doc):
        """A fresh hash for each write of a policy, as the real CAS's salted HMAC."""
        return hashlib.sha256(os.urandom(16) + canonical(doc)).hexdigest()

    def handle(self, method, path, body):
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/policies":
            doc = body["policy"]
            self.verify(body["owner"], body["signature"], "create", canonical(doc))
            if doc["name"] in self.policies:
                return 409, {"error": {"kind": "conflict", "message": f"policy {doc['name']} exists"}}
            h = self.policy_hash(doc)
            self.policies[doc["name"]] = (doc, body["owner"], h)
            return 201, {"name": doc["name"], "hash": h}
        if path == "/v1/policies/list":
            self.fresh(body)
            self.verify(body["owner"], body["signature"], "list", body["owner"].encode(),
                        str(body["time"]).encode(), body["nonce"].encode())
            return 200, {"policies": [{"name": n, "hash": h}
                                      for n, (d, o, h) in sorted(self.policies.items())
                                      if o == body["owner"]]}
        if len(parts) >= 3 and parts[:2] == ["v1", "policies"]:
            name = parts[2]
            if name not in self.policies:
                return 404, {"error": {"kind": "not_found", "message": f"no policy {name}"}}
            doc, owner, current = self.policies[name]
            if method == "PUT" and len(parts) == 3:
                self.verify(owner, body["signature"], "update", body["predecessor"].encode(),
                            canonical(body["policy"]))
                if body["predecessor"] != current:
                    return 409, {"error": {"kind": "conflict", "message": "stale predecessor"}}
                h = self.policy_hash(body["policy"])
                self.policies[name] = (body["policy"], owner, h)
                return 200, {"name": name, "hash": h}
            if parts[3:] == ["get"]:
                self.fresh(body)
                self.verify(owner, body["signature"], "get", name.encode(),
                            str(body["time"]).encode(), body["nonce"].encode())
                red = json.loads(json.dumps(doc))
                for s in red.get("secrets", {}).values():
                    s["sha256"] = hashlib.sha256(s.pop("value").encode()).hexdigest()
                return 200, {"name": name, "hash": current, "owner": owner,
                             "policy": red}
            if parts[3:] == ["delete"]:
                self.verify(owner, body["signature"], "delete", name.encode(),
                            body["predecessor"].encode())
                if body["predecessor"] != current:
                    return 409, {"error": {"kind": "conflict", "message": "stale predecessor"}}
                del self.policies[name]
                return 200, {"name": name}
        if path == "/v1/challenge":
            nonce = os.urandom(32)
            self.nonces[nonce.hex()] = time.time()
            return 200, {"nonce": nonce.hex(), "expires_in": 60}
        if path == "/v1/attest":
            if self.on_attest:
                self.on_attest()
            return self.attest(body)
        return 404, {"error": {"kind": "not_found", "message": f"no {method} {path}"}}

    # ---- attestation ----

    def attest(self, body):
        nonce_hex = body["nonce"]
        if self.nonces.pop(nonce_hex, None) is None:
            raise Denied("nonce unknown or already used")
        nonce = bytes.fromhex(nonce_hex)
        policy_name, service_name = body["config_id"].split("/")
        if policy_name not in self.policies:
            raise Denied(f"no policy {policy_name}")
        doc = self.policies[policy_name][0]
        svc = doc["services"][service_name]
        c = body["claims"]
        runtime, app, signer, pubkey = (bytes.fromhex(c[k]) for k in
                                        ("runtime", "app", "signer", "pubkey"))
        ev = body["evidence"]
        if ev["type"] != "sim" or "sim" not in svc.get("tolerate", []):
            raise Denied(f"{ev['type']} evidence is not tolerated by {body['config_id']}")
        e = base64.b64decode(ev["data"], validate=True)
        if not e.startswith(SIM_LABEL):
            raise Denied("evidence: not sim evidence")
        debug = c.get("debug", False) is True
        at = len(SIM_LABEL) + 2
        if e[at - 2:at] == b"\x00\x02":  # a debug run's: its flags byte, 0x01
            at += 1
        fields = [e[at + 32 * i: at + 32 * (i + 1)] for i in range(4)]
        at += 128
        n = e[at]
        ev_nonce, rd = e[at + 1: at + 1 + n], e[at + 1 + n: at + 65 + n]
        platform, sig = e[at + 65 + n: at + 97 + n], e[at + 97 + n:]
        if fields != [runtime, app, signer, pubkey] or ev_nonce != nonce:
            raise Denied("evidence: claims are not the request's")
        if rd != report_data(b"sim", runtime, app, signer, nonce, pubkey, debug):
            raise Denied("report data does not match the claims")
        if debug and "debug" not in svc.get("tolerate", []):
            raise Denied(f"a debug run (teepy shell) is not tolerated by {body['config_id']}")
        if platform.hex() not in svc.get("platform_keys", []):
            raise Denied("evidence: platform key not listed")
        try:
            Ed25519PublicKey.from_public_bytes(platform).verify(sig, e[:-64])
        except Exception:
            raise Denied("evidence: signature does not verify")
        manifest = base64.b64decode(body["manifest"], validate=True)
        if hashlib.sha256(b"teepy-app-v1\0" + manifest).digest() != app:
            raise Denied("the manifest is not the app's")
        if c["runtime"] not in svc["runtime"]:
            raise Denied(f"runtime {c['runtime'][:16]}… is not in policy {body['config_id']}")
        if c["app"] not in svc.get("app", []):
            raise Denied(f"app {c['app'][:16]}… is not in policy {body['config_id']}")
        secrets = {}
        for name in svc.get("secrets", []):
            s = dict(doc["secrets"][name])
            secrets[name] = s
        eph, ct = seal(pubkey, nonce, json.dumps({"secrets": secrets}).encode())
        return 200, {"sealed": {"ephemeral": eph.hex(), "ciphertext": base64.b64encode(ct).decode()}}


class _Handler(BaseHTTPRequestHandler):
    cas = None

    def log_message(self, *args):
        pass

    def _serve(self):
        size = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(size)
        if self.headers.get("Content-Type") != "application/json":
            status, answer = 415, {"error": {"kind": "unsupported", "message": "not JSON"}}
        else:
            try:
                body = json.loads(raw)
                with self.cas.lock:
                    self.cas.seen.append((self.command, self.path, body))
                    status, answer = self.cas.handle(self.command, self.path, body)
            except Denied as e:
                status, answer = 403, {"error": {"kind": "denied", "message": str(e)}}
            except (KeyError, ValueError, TypeError) as e:
                status, answer = 400, {"error": {"kind": "bad_request", "message": f"bad request: {e!r}"}}
        if self.cas.error_kind is not None and "error" in answer:
            answer["error"]["kind"] = self.cas.error_kind
        data = b"<html>not json" if self.cas.garbage else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_PUT = _serve
