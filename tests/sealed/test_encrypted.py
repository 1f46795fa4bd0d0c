"""Encrypted bundles (teepy build --encrypt, teepy run --bundle-key): the app's own
files travel as protected files (docs/protected-files.md, purpose 2) and are
decrypted into the sealed root only with the bundle key; a missing key, another key
and every kind of change to an encrypted blob are refused before the service runs;
a rebuild under the same key is byte for byte the same bundle; nothing of the
plaintext shows outside the developer's own directory and the result the service
returns."""
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
import tempfile
import time

import pytest

from exit_codes import EXIT
from protected_files import holding, recent_files
from sealed_support import TEEPY, bundle_manifest, build, flip, inspect_json, resign, teepy

NOBODY = 65534
PF_HEADER = 72  # a protected file's header (docs/protected-files.md)
PF_TAG = 16
CHUNK = 65536
BIG = 100_000  # two chunks, the second short

SVC = '''import teex
import helper
CODE_MARK = "{code}"
with open('/app/data/table.txt') as f:
    table = f.read().strip()
a = open('/app/data/a.txt').read()
b = open('/app/data/b.txt').read()
sizes = [len(open('/app/data/' + n, 'rb').read()) for n in ('empty.txt', 'full.bin')]
big = open('/app/data/big.bin', 'rb').read()
teex.TEEX_return('|'.join([helper.greet(teex.TEEX_getinput()), helper.MODULE_MARK, table,
                           CODE_MARK, a, b, repr(sizes), str(len(big)), str(sum(big))]))
'''
HELPER = '''MODULE_MARK = "{module}"


def greet(name):
    return "hello, " + name
'''
# equal sizes, other contents: their protected forms have equal sizes too
A_TXT, B_TXT = "alpha content 1\n", "bravo content 2\n"


def make_app(d):
    """An app under d/app (mode o+rX) whose service imports an encrypted helper
    module and reads encrypted data files (of 0 bytes, one whole chunk, two chunks
    and a few bytes); returns (svc.py, markers, expected result
    for the input "sealed")."""
    marks = {k: f"teepy-{k}-mark-{secrets.token_hex(12)}" for k in ("code", "module", "data")}
    big = secrets.token_bytes(BIG)
    files = {"svc.py": SVC.format(code=marks["code"]),
             "helper.py": HELPER.format(module=marks["module"]),
             "data/table.txt": marks["data"] + "\n",
             "data/a.txt": A_TXT, "data/b.txt": B_TXT, "data/big.bin": big,
             "data/empty.txt": b"", "data/full.bin": secrets.token_bytes(CHUNK)}
    app = os.path.join(d, "app")
    for name, content in files.items():
        path = os.path.join(app, name)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        os.chmod(path, 0o644)
    for root, dirs, _ in os.walk(app):
        os.chmod(root, 0o755)
    expected = "|".join(["hello, sealed", marks["module"], marks["data"], marks["code"],
                         A_TXT, B_TXT, repr([0, CHUNK]), str(BIG), str(sum(big))]).encode()
    return os.path.join(app, "svc.py"), marks, expected


def errors(r):
    """teepy's own lines, without the one warning a run without cgroups starts with."""
    return [l for l in r.stderr.decode(errors="replace").splitlines()
            if l.startswith("teepy:") and "no cgroup for the limits" not in l]


def warnings(r):
    return [l for l in errors(r) if l.startswith("teepy: warning:")]


def run_bundle(bundle, keys, *args, **kw):
    return teepy("run", bundle, "--trust", keys[1], *args, **kw)


def key_secret(key_path):
    """The hex line of a teepy symmetric key file."""
    lines = open(key_path).read().split("\n")
    assert lines[0] == "-----BEGIN TEEPY SYMMETRIC KEY-----", lines
    assert re.fullmatch(r"[0-9a-f]{64}", lines[1]), lines
    return lines[1]


def blobs(bundle):
    """{path: (offset, size)} of every bundled file's blob: back to back in the
    manifest's path order, from 120 + M (docs/bundle-format.md)."""
    data = open(bundle, "rb").read()
    msize, bsize = struct.unpack_from("<IQ", data, 12)
    files = bundle_manifest(bundle)["files"]
    offset, where = 120 + msize, {}
    for path in sorted(files, key=lambda p: p.encode()):
        if files[path]["bundled"]:
            where[path] = (offset, files[path]["size"])
            offset += files[path]["size"]
    assert offset == len(data) == 120 + msize + bsize
    return where


def blob_bytes(bundle, path):
    offset, size = blobs(bundle)[path]
    return open(bundle, "rb").read()[offset:offset + size]


def inspect_rows(text):
    """{path: (flags, id or None)} from teepy inspect's file table."""
    rows, last = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (B|BE|S|SE)\s+[0-7]{4}\s+\d+\s+\d+\s+[0-9a-f]{64}\s+(/\S+)$", line)
        if m:
            last = m.group(2)
            rows[last] = (m.group(1), None)
            continue
        m = re.match(r"^\s+id\s+([0-9a-f]{64})\b", line)
        if m and last:
            rows[last] = (rows[last][0], m.group(1))
    return rows


@pytest.fixture(scope="module")
def encrypted():
    """One encrypted bundle (a new key beside it) for the tests that only read or
    copy it: (dir, bundle, key, signer keys, markers, expected result)."""
    d = tempfile.mkdtemp(prefix="teepy-sealed-enc-")
    os.chmod(d, 0o755)
    signer = os.path.join(d, "signer.key")
    assert teepy("keygen", "-o", signer).returncode == EXIT.OK
    keys = (signer, os.path.join(d, "signer.pub"))
    script, marks, expected = make_app(d)
    bundle = os.path.join(d, "svc.tpy")
    r = teepy("build", script, "-o", bundle, "--key", signer, "--encrypt", "--input", "sample")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    yield d, bundle, bundle + ".key", keys, marks, expected
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tampered(encrypted, work):
    """A copy of the encrypted bundle to change, and what a run of it needs."""
    d, bundle, key, keys, _, _ = encrypted
    copy = os.path.join(work, "tampered.tpy")
    shutil.copy(bundle, copy)
    return copy, key, keys


APP_FILES = ["/app/data/a.txt", "/app/data/b.txt", "/app/data/big.bin", "/app/data/empty.txt",
             "/app/data/full.bin", "/app/data/table.txt", "/app/helper.py", "/app/svc.py"]


# ---- the round trip ----

def test_an_encrypted_bundle_runs_with_its_key(as_user, run, tmp):
    """keygen, build --encrypt and run, all as root and all as uid 65534: the service
    imports its encrypted helper module and reads its encrypted data files (empty,
    one chunk, two chunks), and returns what the plaintext gives."""
    if run.variant == "user" and os.geteuid() == 0:
        os.chown(tmp, NOBODY, NOBODY)  # where that user writes its keys and the bundle
    script, _, expected = make_app(str(tmp))
    signer, bundle = tmp / "signer.key", tmp / "svc.tpy"
    k = run("keygen", "-o", signer)
    assert k.returncode == EXIT.OK, k
    b = run("build", script, "-o", bundle, "--key", signer, "--encrypt", "--input", "sample",
            timeout=120)
    assert b.returncode == EXIT.OK, b
    key = f"{bundle}.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    info = inspect_json(str(bundle))
    assert [f["path"] for f in info["files"] if f["encrypted"]] == APP_FILES
    r = run("run", bundle, "--trust", tmp / "signer.pub", "--bundle-key", key, "--input", "sealed",
            timeout=120)
    assert r.returncode == EXIT.OK, r
    assert r.stdout == expected


# ---- refusals at run ----

def test_a_run_without_the_bundle_key_stops_in_one_line_naming_it(encrypted):
    _, bundle, _, keys, _, _ = encrypted
    key_id = bundle_manifest(bundle)["encryption"]["key_id"]
    r = run_bundle(bundle, keys, "--input", "x")
    assert r.returncode == EXIT.KEY_MISSING == 10, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1, lines
    assert "--bundle-key" in lines[0] and key_id in lines[0], lines
    assert r.stdout == b""


def test_a_run_with_another_key_is_refused(encrypted, work):
    _, bundle, _, keys, _, _ = encrypted
    other = os.path.join(work, "other.key")
    assert teepy("keygen", "--symmetric", "-o", other).returncode == EXIT.OK
    key_id = bundle_manifest(bundle)["encryption"]["key_id"]
    r = run_bundle(bundle, keys, "--bundle-key", other, "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1, lines
    assert "is not the key its files were encrypted with" in lines[0] and key_id in lines[0]
    assert key_secret(other) not in r.stderr.decode()
    assert r.stdout == b""


# where a byte of an encrypted blob is changed: (file, offset in its blob or from its
# end, the chunk named)
CIPHERTEXT = {
    "first ciphertext byte": ("/app/svc.py", PF_HEADER, "chunk 0 of 1"),
    "last tag byte": ("/app/helper.py", -1, "chunk 0 of 1"),
    "second chunk of a two-chunk file": ("/app/data/big.bin", PF_HEADER + CHUNK + PF_TAG + 5,
                                         "chunk 1 of 2"),
}


@pytest.mark.parametrize("where", list(CIPHERTEXT))
def test_a_changed_ciphertext_byte_does_not_authenticate(tampered, where):
    bundle, key, keys = tampered
    path, at, chunk = CIPHERTEXT[where]
    offset, size = blobs(bundle)[path]
    flip(bundle, offset + (at if at >= 0 else size + at))
    r = run_bundle(bundle, keys, "--bundle-key", key, "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1, lines
    assert f"file {path}: its encrypted content is refused: {chunk} does not authenticate" \
        in lines[0], lines
    assert r.stdout == b""


# a byte of a blob's protected-file header changed: (offset, what teepy says)
HEADER = {
    "magic": (0, "not a teepy protected file"),
    "version": (8, "protected-file version 0, this teepy reads version 1"),
    "purpose": (10, "an output volume's file, not an encrypted bundle file"),
    "chunk shift": (11, "sealed with another key, or its header was changed"),
    "reserved": (12, "a protected file's header with fields no teepy writes"),
    "plaintext size": (16, "sealed with another key, or its header was changed"),
    "file id": (40, "sealed with another key, or its header was changed"),
    "key check": (71, "sealed with another key, or its header was changed"),
}


@pytest.mark.parametrize("field", list(HEADER))
def test_a_changed_protected_header_byte_is_refused(tampered, field):
    bundle, key, keys = tampered
    at, says = HEADER[field]
    offset, _ = blobs(bundle)["/app/helper.py"]
    flip(bundle, offset + at)
    r = run_bundle(bundle, keys, "--bundle-key", key, "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1, lines
    assert f"file /app/helper.py: its encrypted content is refused: {says}" in lines[0], lines
    assert r.stdout == b""


def test_two_equal_size_encrypted_blobs_swapped_are_refused(tampered):
    """Each blob is a whole, valid protected file under the bundle key: only the id
    the signed manifest records for each path tells them apart."""
    bundle, key, keys = tampered
    (oa, sa), (ob, sb) = blobs(bundle)["/app/data/a.txt"], blobs(bundle)["/app/data/b.txt"]
    assert sa == sb
    data = bytearray(open(bundle, "rb").read())
    a, b = bytes(data[oa:oa + sa]), bytes(data[ob:ob + sb])
    assert a != b
    data[oa:oa + sa], data[ob:ob + sb] = b, a
    open(bundle, "wb").write(bytes(data))
    r = run_bundle(bundle, keys, "--bundle-key", key, "--input", "x")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1, lines
    assert re.search(r"file /app/data/[ab]\.txt: its encrypted content is refused: another "
                     r"file sealed under the same key", lines[0]), lines
    assert r.stdout == b""


def test_a_bundle_file_taken_out_is_no_sealed_data_item(encrypted, work):
    """The purpose is part of every protected file: an encrypted bundle file copied
    out and given as data, even with its own key, is refused as what it is."""
    d, bundle, key, keys, _, _ = encrypted
    offset, size = blobs(bundle)["/app/data/table.txt"]
    item = os.path.join(work, "table.tpd")
    with open(item, "wb") as f:
        f.write(open(bundle, "rb").read()[offset:offset + size])
    r = teepy("data", "info", item)
    assert r.returncode == EXIT.DATA_REFUSED, r.stderr.decode()
    assert "not a sealed data item" in r.stderr.decode() and r.stdout == b""
    svc = os.path.join(work, "app", "svc.py")
    os.makedirs(os.path.dirname(svc), exist_ok=True)
    with open(svc, "w") as f:
        f.write("import teex\nteex.TEEX_return(teex.TEEX_getdata(0))\n")
    os.chmod(os.path.dirname(svc), 0o755)
    os.chmod(svc, 0o644)
    r = teepy("run", svc, "--data", item, "--data-key", key)
    assert r.returncode == EXIT.DATA_REFUSED, r.stderr.decode()
    assert "an encrypted bundle file, not a sealed data item" in r.stderr.decode()
    assert r.stdout == b""


def test_a_bundle_key_for_a_plain_script_is_a_usage_error(encrypted, work):
    _, _, key, _, _, _ = encrypted
    script = os.path.join(work, "plain.py")
    with open(script, "w") as f:
        f.write("import teex\nteex.TEEX_return('ran')\n")
    os.chmod(script, 0o644)
    r = teepy("run", script, "--bundle-key", key)
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1 and "--bundle-key" in lines[0] and "not a bundle" in lines[0], lines
    assert r.stdout == b""


def test_the_cache_is_off_and_print_config_counts_the_encrypted_files(encrypted, work, keys):
    """With a cache directory that a plain bundle's run fills, an encrypted bundle's
    run leaves it empty and says why."""
    _, bundle, key, ekeys, _, expected = encrypted
    cache = tempfile.mkdtemp(prefix="teepy-sealed-cache-", dir="/dev/shm")
    try:
        os.chmod(cache, 0o700)
        env = {"TEEPY_NO_CACHE": "0", "TEEPY_CACHE_DIR": cache}
        r = run_bundle(bundle, ekeys, "--bundle-key", key, "--print-config", "--input", "sealed",
                       env=env)
        assert r.returncode == EXIT.OK, r.stderr.decode()
        assert r.stdout == expected
        err = r.stderr.decode()
        m = bundle_manifest(bundle)
        total, key_id = len(m["files"]), re.escape(m["encryption"]["key_id"])
        assert re.search(r"^  cache\s+off: the bundle has encrypted files", err, re.M), err
        assert re.search(rf"^  verify\s+{total} files: {total - 8} hashed .*, 8 encrypted "
                         rf"\(AES-256-GCM, key id {key_id}\)", err, re.M), err
        assert os.listdir(cache) == []
        # the same cache takes a plain bundle's root
        app = os.path.join(work, "plain")
        os.makedirs(app)
        with open(os.path.join(app, "svc.py"), "w") as f:
            f.write("import teex\nteex.TEEX_return('plain')\n")
        plain = build(work, keys, os.path.join(app, "svc.py"), name="plain.tpy")
        p = run_bundle(plain, keys, "--print-config", env=env)
        assert p.returncode == EXIT.OK and p.stdout == b"plain", p.stderr.decode()
        assert os.listdir(cache) != []
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ---- build ----

def test_a_rebuild_under_the_same_key_is_the_same_bundle(work, keys):
    """Same files, same key: identical bytes, so the same `app` measurement; another
    key gives other blobs, other ids and another measurement."""
    script, _, _ = make_app(work)
    first = build(work, keys, script, "--encrypt", "--input", "sample", name="first.tpy")
    again = build(work, keys, script, "--encrypt", "--bundle-key", first + ".key",
                  "--input", "sample", name="again.tpy")
    assert not os.path.exists(again + ".key")
    assert open(first, "rb").read() == open(again, "rb").read()
    assert inspect_json(first)["app"] == inspect_json(again)["app"]
    other_key = os.path.join(work, "other.key")
    assert teepy("keygen", "--symmetric", "-o", other_key).returncode == EXIT.OK
    other = build(work, keys, script, "--encrypt", "--bundle-key", other_key,
                  "--input", "sample", name="other.tpy")
    assert inspect_json(other)["app"] != inspect_json(first)["app"]
    ids = lambda b: {p: f.get("id") for p, f in bundle_manifest(b)["files"].items()}  # noqa: E731
    assert set(ids(other).values()).isdisjoint(v for v in ids(first).values() if v)
    assert blob_bytes(other, "/app/svc.py") != blob_bytes(first, "/app/svc.py")


def test_encrypt_path_encrypts_only_the_files_it_matches(work, keys):
    """GLOBs are matched against the path under the app's directory with * crossing
    /; a GLOB that matches nothing is named in one warning; the bundle runs, the
    plain files verified by hash and the others decrypted."""
    script, _, expected = make_app(work)
    bundle = build(work, keys, script, "--encrypt-path", "*.txt", "--encrypt-path", "nothing/*",
                   "--input", "sample")
    r = teepy("build", script, "-o", os.path.join(work, "again.tpy"), "--key", keys[0],
              "--encrypt-path", "*.txt", "--encrypt-path", "nothing/*", "--bundle-key",
              bundle + ".key", "--input", "sample")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    lines = warnings(r)
    assert len(lines) == 1 and "--encrypt-path nothing/* matches none of the app's files" \
        in lines[0], lines
    text = teepy("inspect", bundle)
    assert text.returncode == EXIT.OK, text.stderr.decode()
    rows = inspect_rows(text.stdout.decode())
    app_rows = {p: flags for p, (flags, _) in rows.items() if p.startswith("/app/")}
    assert app_rows == {"/app/data/a.txt": "BE", "/app/data/b.txt": "BE",
                        "/app/data/big.bin": "B", "/app/data/empty.txt": "BE",
                        "/app/data/full.bin": "B", "/app/data/table.txt": "BE",
                        "/app/helper.py": "B", "/app/svc.py": "B"}, text.stdout.decode()
    assert all(rows[p][1] for p, f in app_rows.items() if f == "BE")
    assert not any(rows[p][1] for p, f in app_rows.items() if f == "B")
    r = run_bundle(bundle, keys, "--bundle-key", bundle + ".key", "--input", "sealed")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    assert r.stdout == expected
    # one more GLOB, one more file: the module only
    only = build(work, keys, script, "--encrypt-path", "help*", "--bundle-key", bundle + ".key",
                 "--input", "sample", name="only.tpy")
    assert [f["path"] for f in inspect_json(only)["files"] if f["encrypted"]] == ["/app/helper.py"]


def test_build_writes_a_new_key_beside_the_bundle_and_never_overwrites_it(work, keys):
    script, _, _ = make_app(work)
    bundle = os.path.join(work, "svc.tpy")
    r = teepy("build", script, "-o", bundle, "--key", keys[0], "--encrypt", "--input", "sample")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    key = bundle + ".key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    secret = key_secret(key)
    said = [l for l in errors(r) if key in l]
    assert len(said) == 1 and "new key" in said[0], errors(r)
    key_id = bundle_manifest(bundle)["encryption"]["key_id"]
    assert key_id in said[0]
    before = open(bundle, "rb").read()

    again = teepy("build", script, "-o", bundle, "--key", keys[0], "--encrypt",
                  "--input", "sample")
    assert again.returncode == EXIT.USAGE, again.stderr.decode()
    lines = [l for l in errors(again) if not l.startswith("teepy: warning:")]
    assert any(key in l and "--bundle-key" in l for l in lines), lines
    assert key_secret(key) == secret
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert open(bundle, "rb").read() == before


def resigned_with(encrypted, work, change):
    """The encrypted bundle with its manifest changed by change(m) and signed again
    by its own signer, as a signer (or whoever holds the signing key) could."""
    d, bundle, key, keys, _, _ = encrypted
    m = bundle_manifest(bundle)
    change(m)
    return resign(bundle, keys[0], m, os.path.join(work, "resigned.tpy")), key, keys


def set_chunk_size(m):
    m["encryption"]["chunk_size"] = 4096


def swap_ids(m):
    a, b = m["files"]["/app/data/a.txt"], m["files"]["/app/data/b.txt"]
    a["id"], b["id"] = b["id"], a["id"]


def shrink(m):
    m["files"]["/app/data/big.bin"]["size"] -= PF_TAG


@pytest.mark.parametrize("change, says", [
    (set_chunk_size, "sealed in chunks of 65536 bytes, the manifest says 4096"),
    (swap_ids, "its id is not the manifest's"),
    (shrink, "the blob area is"),
])
def test_a_signed_manifest_that_disagrees_with_a_blob_is_refused(encrypted, work, change, says):
    """What the manifest says of an encrypted file, its chunk size, id and size, is
    checked against the blob's own protected header, not taken on trust."""
    bundle, key, keys = resigned_with(encrypted, work, change)
    r = run_bundle(bundle, keys, "--bundle-key", key, "--input", "sealed")
    assert r.returncode == EXIT.BUNDLE, r.stderr.decode()
    assert says in r.stderr.decode() and r.stdout == b""


def test_a_new_key_is_removed_when_the_bundle_cannot_be_written(work, keys):
    script, _, _ = make_app(work)
    bundle = os.path.join(work, "adir.tpy")
    os.mkdir(bundle)  # a directory where the bundle should go
    r = teepy("build", script, "-o", bundle, "--key", keys[0], "--encrypt", "--input", "sample")
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert "cannot write" in r.stderr.decode() and "new key" not in r.stderr.decode()
    assert not os.path.exists(bundle + ".key")


def test_encrypt_path_that_matches_nothing_is_a_usage_error(work, keys):
    script, _, _ = make_app(work)
    bundle = os.path.join(work, "svc.tpy")
    r = teepy("build", script, "-o", bundle, "--key", keys[0], "--encrypt-path", "zzz*",
              "--input", "sample")
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    assert "none of the app's bundled files matches" in r.stderr.decode()
    assert not os.path.exists(bundle) and not os.path.exists(bundle + ".key")


def test_a_bundle_key_without_encrypt_is_a_usage_error(work, keys):
    script, _, _ = make_app(work)
    key = os.path.join(work, "bundle.key")
    assert teepy("keygen", "--symmetric", "-o", key).returncode == EXIT.OK
    bundle = os.path.join(work, "svc.tpy")
    r = teepy("build", script, "-o", bundle, "--key", keys[0], "--bundle-key", key)
    assert r.returncode == EXIT.USAGE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1 and "--bundle-key" in lines[0] and "--encrypt" in lines[0], lines
    assert not os.path.exists(bundle) and not os.path.exists(bundle + ".key")


# ---- what the bundle shows without its key ----

def test_inspect_without_the_key_shows_the_key_id_and_each_file_s_id(encrypted, work):
    d, bundle, key, _, _, _ = encrypted
    alone = os.path.join(work, "alone")  # no key anywhere near it
    os.makedirs(alone)
    shutil.copy(bundle, alone)
    copy = os.path.join(alone, os.path.basename(bundle))
    m = bundle_manifest(bundle)
    key_id = m["encryption"]["key_id"]
    assert m["encryption"] == {"algorithm": "aes-256-gcm", "chunk_size": CHUNK,
                               "key_id": key_id}
    assert re.fullmatch(r"local:[0-9a-f]{32}", key_id)
    text = teepy("inspect", copy)
    assert text.returncode == EXIT.OK, text.stderr.decode()
    out = text.stdout.decode()
    assert re.search(rf"^encryption .*key id {key_id}$", out, re.M), out
    rows = inspect_rows(out)
    for path, f in m["files"].items():
        if f.get("encrypted"):
            assert rows[path] == ("BE", f["id"]), (path, rows.get(path))
        else:
            assert rows[path][1] is None and "E" not in rows[path][0], (path, rows.get(path))
    info = json.loads(teepy("inspect", copy, "--json").stdout)
    assert info["encryption"]["key_id"] == key_id
    by_path = {f["path"]: f for f in info["files"]}
    assert sorted(p for p, f in by_path.items() if f["encrypted"]) == APP_FILES
    for path in APP_FILES:
        assert by_path[path]["id"] == m["files"][path]["id"]
        assert re.fullmatch(r"[0-9a-f]{64}", by_path[path]["id"])
    assert len({by_path[p]["id"] for p in APP_FILES}) == len(APP_FILES)
    assert not any("id" in f for f in info["files"] if not f["encrypted"])
    assert key_secret(key) not in out + json.dumps(info)


def test_the_manifest_records_the_protected_form_never_the_plaintext_hash(encrypted):
    """Each encrypted file's size and sha256 are those of its blob, a protected file
    of purpose 'bundle' in 64 KiB chunks under the manifest's id; the plaintext's
    SHA-256 is nowhere in the bundle, raw or in hex."""
    d, bundle, key, _, _, _ = encrypted
    data = open(bundle, "rb").read()
    m = bundle_manifest(bundle)
    app = os.path.join(d, "app")
    for path in APP_FILES:
        f = m["files"][path]
        plain = open(os.path.join(app, path[len("/app/"):]), "rb").read()
        blob = blob_bytes(bundle, path)
        chunks = max(1, -(-len(plain) // CHUNK))
        assert f["encrypted"] is True and f["size"] == len(blob) \
            == PF_HEADER + PF_TAG * chunks + len(plain)
        assert f["sha256"] == hashlib.sha256(blob).hexdigest()
        magic, version, purpose, shift, reserved, size = struct.unpack_from("<8sHBBIQ", blob)
        assert (magic, version, purpose, shift, reserved, size) == \
            (b"teepy-pf", 1, 2, 16, 0, len(plain)), path
        assert blob[24:56].hex() == f["id"]
        digest = hashlib.sha256(plain)
        assert digest.digest() not in data and digest.hexdigest().encode() not in data, path
        assert not plain or plain not in blob, path


# ---- confidentiality ----

def test_the_plaintext_shows_only_in_the_result_the_service_returns(work, keys):
    """Markers in the code, a module and a data file: after build, inspect, a run
    (with --print-config) and a refused run, none is in the bundle, the key-less
    inspect, teepy's stderr, or any file changed since the test began under /tmp,
    /var/tmp, /dev/shm and the directory of the teepy binary, but for the app's own
    directory, the plaintext its developer holds. The result holds them: the service
    chose to return them."""
    since = time.time() - 1
    script, marks, expected = make_app(work)
    marks = list(marks.values())
    app = os.path.dirname(script)
    bundle = os.path.join(work, "svc.tpy")
    b = teepy("build", script, "-o", bundle, "--key", keys[0], "--encrypt", "--input", "sample")
    assert b.returncode == EXIT.OK, b.stderr.decode()
    shown = [teepy("inspect", bundle), teepy("inspect", bundle, "--json")]
    assert all(s.returncode == EXIT.OK for s in shown)
    r = run_bundle(bundle, keys, "--bundle-key", bundle + ".key", "--print-config",
                   "--input", "sealed")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    refused = run_bundle(bundle, keys, "--input", "sealed")
    assert refused.returncode == EXIT.KEY_MISSING

    # the result is where they are
    assert r.stdout == expected and all(m.encode() in r.stdout for m in marks)
    data = open(bundle, "rb").read()
    assert not [m for m in marks if m.encode() in data]
    for out in [b, refused] + shown:
        assert not [m for m in marks if m.encode() in out.stdout + out.stderr], out.args
    assert not [m for m in marks if m.encode() in r.stderr]
    # files: the search finds the developer's own copies, and nothing else
    tops = ["/tmp", "/var/tmp", "/dev/shm", os.path.dirname(os.path.abspath(TEEPY))]
    files = [p for top in tops for p in recent_files(top, since)]
    everywhere = holding(files, [m.encode() for m in marks])
    assert {p for p in everywhere if p.startswith(app + os.sep)} == \
        {os.path.join(app, n) for n in ("svc.py", "helper.py", "data/table.txt")}
    assert {p: h for p, h in everywhere.items() if not p.startswith(app + os.sep)} == {}
