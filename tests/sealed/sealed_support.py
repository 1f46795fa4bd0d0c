"""Helpers for sealed-bundle tests: run teepy, write an app, build and inspect bundles."""
import os
import shutil
import subprocess
import tempfile

from exit_codes import EXIT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEEPY = os.environ.get("TEEPY_BIN", os.path.join(ROOT, "build", "teepy"))


def teepy(*args, input=None, timeout=120, env=None):
    """Runs the built teepy; returns CompletedProcess with bytes stdout/stderr."""
    full_env = dict(os.environ)
    full_env.pop("TEEPY_TRUSTED_SIGNERS", None)
    # no cache of verified roots unless a test asks for one (test_cache.py): runs
    # stay independent, and root's /run/teepy on the host is left alone
    # (TEEPY_TEST_CACHE=DIR: every run with the cache DIR, a mode-0700 directory on a
    # tmpfs, to see the suite through cached roots; tests that change a host file
    # after a run of the same manifest then see the cached copy)
    if os.environ.get("TEEPY_TEST_CACHE"):
        full_env["TEEPY_CACHE_DIR"] = os.environ["TEEPY_TEST_CACHE"]
    else:
        full_env["TEEPY_NO_CACHE"] = "1"
    if env:
        full_env.update(env)
    return subprocess.run([TEEPY, *map(str, args)], input=input, capture_output=True,
                          timeout=timeout, env=full_env)


def copy_teepy(d):
    """Copies teepy and what it needs beside it (the _teepy extension, teepy-reaper)
    into directory d; returns the copy's path."""
    shutil.copy(TEEPY, d)
    for name in os.listdir(os.path.dirname(TEEPY)):
        if (name.startswith("_teepy") and name.endswith(".so")) or name == "teepy-reaper":
            shutil.copy(os.path.join(os.path.dirname(TEEPY), name), d)
    return os.path.join(d, "teepy")


def teepy_copy_for_nobody():
    """A fresh directory anyone may write (mode 0777, under /tmp) holding a copy of
    teepy and its runtime files, all 0755: what uid 65534 runs from. The caller
    removes it."""
    d = tempfile.mkdtemp(prefix="teepy-sealed-user-")
    os.chmod(d, 0o777)
    copy_teepy(d)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o755)
    return d


def write_app(work, files):
    app = os.path.join(work, "app")
    os.makedirs(app, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(app, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return app


def build(work, keys, script, *extra, name="svc.tpy"):
    out = os.path.join(work, name)
    r = teepy("build", script, "-o", out, "--key", keys[0], *extra)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    return out


def flip(path, offset):
    """One bit of the file at path changed, in place, at offset."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def inspect_json(bundle):
    import json
    r = teepy("inspect", bundle, "--json")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    return json.loads(r.stdout)


# ---- bundles written by hand: a manifest of a test's making, signed like teepy's ----
#
# Ed25519 as RFC 8032 section 6 gives it (slow, plain Python, no dependency): only
# for signing the few manifests a test writes, never for checking anything.

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s, point):
    result = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _base():
    y = 4 * pow(5, _P - 2, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _compress(point):
    zinv = pow(point[2], _P - 2, _P)
    x, y = point[0] * zinv % _P, point[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _sha512_int(*parts):
    import hashlib
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def ed25519_sign(seed, message):
    """(public key, signature) of message under the 32-byte private seed."""
    import hashlib
    h = hashlib.sha512(seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    public = _compress(_mul(a, _base()))
    r = _sha512_int(h[32:], message) % _Q
    big_r = _compress(_mul(r, _base()))
    s = (r + _sha512_int(big_r, public, message) * a) % _Q
    return public, big_r + int.to_bytes(s, 32, "little")


def private_seed(key_path):
    """The 32-byte seed of a teepy keygen key (PKCS#8 PEM, RFC 8410)."""
    import base64
    lines = open(key_path).read().split("\n")
    der = base64.b64decode("".join(l for l in lines if l and not l.startswith("-----")))
    assert der[:16] == bytes.fromhex("302e020100300506032b657004220420") and len(der) == 48
    return der[16:]


def bundle_manifest(bundle):
    """The manifest of a bundle, parsed."""
    import json
    import struct
    data = open(bundle, "rb").read()
    size = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[24:24 + size])


def canonical(manifest):
    """The canonical bytes of a manifest: sorted keys, no spaces, UTF-8."""
    import json
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def resign(bundle, key_path, manifest, out):
    """Writes out: bundle with manifest (a dict) in place of its own, signed with
    key_path as teepy build signs; the blobs are kept as they are."""
    import struct
    data = open(bundle, "rb").read()
    old_size = struct.unpack_from("<I", data, 12)[0]
    blobs = data[24 + old_size + 96:]
    text = canonical(manifest)
    public, signature = ed25519_sign(private_seed(key_path), b"teepy-bundle-v1\0" + text)
    with open(out, "wb") as f:
        f.write(b"TEEPYBDL" + struct.pack("<IIQ", 1, len(text), len(blobs)))
        f.write(text + public + signature + blobs)
    return out


def as_format_1(manifest):
    """manifest (format 2, every new key at its default) as format 1 wrote it."""
    import copy
    old = copy.deepcopy(manifest)
    for key in ("encryption", "engine", "product_id", "security_version", "trees"):
        del old[key]
    del old["policy"]["network"]
    old["format"] = 1
    return old
