"""Output volumes (teepy run --output-volume DIR --volume-key KEY; teepy volume ls |
cat): what a service leaves in its /out when it ends normally is sealed into DIR as
the volume's next version, replacing the last one whole; after a failed run DIR is
as it was. The index (docs/protected-files.md, "Output volumes: the index") binds
every file's name, id and size under a version counter: a changed, replayed,
removed or swapped file is refused by whoever opens the volume with its key, and
nothing of the plaintext is on disk."""
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import uuid

import pytest

from exit_codes import EXIT
from protected_files import CHUNK, HEADER, TAG, chunk_offset, holding, recent_files, sealed_size
from supervision import wait_until_ready
from volumes import NOBODY, Place, ls, mode, one_line, own, snapshot

# the protected-file format (docs/protected-files.md)
PURPOSE_VOLUME = 3
# the volume index
INDEX = "index.tpv"
INDEX_HEADER = 56
MAC_SIZE = 32
TPF = re.compile(r"[0-9a-f]{64}\.tpf")


# A service that says it runs, then copies the tree tmp/<input> into /out, and returns
# what /out held when it started and how many files it copied.
COPY = '''
import json, os, sys, teex
print("SERVICE RAN", file=sys.stderr, flush=True)
before = sorted(os.listdir("/out"))
here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, teex.TEEX_getinput())
copied = 0
for root, dirs, files in os.walk(src):
    for d in dirs:
        rel = os.path.relpath(os.path.join(root, d), src)
        os.makedirs(os.path.join("/out", rel), exist_ok=True)
    for n in files:
        rel = os.path.relpath(os.path.join(root, n), src)
        with open(os.path.join(root, n), "rb") as f, open(os.path.join("/out", rel), "wb") as g:
            g.write(f.read())
        copied += 1
teex.TEEX_return(json.dumps({"before": before, "copied": copied}))
'''


def lay_out(tmp, tag, files):
    """Writes files ({name: bytes}) under tmp/tag for COPY to copy."""
    for name, data in files.items():
        tmp.write(f"{tag}/{name}", data)
    (tmp / tag).mkdir(exist_ok=True)
    return tag


def publish(run, svc, place, tag, *extra, key=None):
    """A run of svc with the volume: the Result."""
    return run("run", svc, "--input", tag, "--output-volume", place.dir,
               "--volume-key", key or place.key, *extra)


def published_line(r, place, version, count):
    lines = [l for l in r.err_lines if l.startswith("teepy: output volume")]
    assert len(lines) == 1, r
    pattern = (rf"teepy: output volume {re.escape(str(place.dir))}: version {version}, "
               rf"{count} files?, \S.*")
    assert re.fullmatch(pattern, lines[0]), (lines[0], pattern)


def refused_before_the_service(run, svc, place, tag, *extra, key=None):
    """A run with the volume that is refused (exit 9, one line: returned) before the
    service starts, and leaves DIR and what is beside it as they are."""
    before, siblings = snapshot(place.dir), place.siblings()
    r = publish(run, svc, place, tag, *extra, key=key)
    assert (r.returncode, r.stdout) == (EXIT.DATA_REFUSED, b""), r
    assert "SERVICE RAN" not in r.err, r
    line = one_line(r)
    assert snapshot(place.dir) == before and place.siblings() == siblings
    return line


def ls_json(run, place, key=None):
    r = run("volume", "ls", place.dir, "--volume-key", key or place.key, "--json")
    assert r.returncode == EXIT.OK, r
    return json.loads(r.stdout)


def cat(run, place, name, *extra, key=None):
    r = run("volume", "cat", place.dir, name, "--volume-key", key or place.key, *extra)
    assert r.returncode == EXIT.OK, r
    return r.stdout


def expected_listing(files):
    """What ls lists for files ({name: bytes}): in the index's order, by name's bytes."""
    return sorted(((n, len(d)) for n, d in files.items()), key=lambda e: e[0].encode())


# ---------------------------------------------------------------- the index, read here

def key_bytes(key_path):
    lines = open(key_path).read().split("\n")
    assert lines[0] == "-----BEGIN TEEPY SYMMETRIC KEY-----", lines
    return bytes.fromhex(lines[1])


def hkdf(ikm, salt, info, size):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < size:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:size]


def parse_index(data):
    """(version, volume id, [(name bytes, id, size)], MAC, where the MAC starts)."""
    assert data[:8] == b"teepy-vi", data[:16]
    fmt, reserved, count, version = struct.unpack_from("<HHIQ", data, 8)
    assert (fmt, reserved) == (1, 0), data[:16]
    volume_id = data[24:56]
    entries, off = [], INDEX_HEADER
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, off)
        name = data[off + 2:off + 2 + length]
        off += 2 + length
        fid, (size,) = data[off:off + 32], struct.unpack_from("<Q", data, off + 32)
        off += 40
        entries.append((name, fid, size))
    assert off + MAC_SIZE == len(data), (off, len(data))
    return version, volume_id, entries, data[off:], off


def index_mac(key, volume_id, body):
    mac_key = hkdf(key, b"teepy-pf v1", b"volume index" + volume_id, 32)
    return hmac.new(mac_key, body, hashlib.sha256).digest()


def header_of(path):
    """(purpose, chunk shift, plaintext size, id) of a protected file."""
    with open(path, "rb") as f:
        head = f.read(HEADER)
    assert head[:8] == b"teepy-pf" and head[8:10] == b"\x01\x00", head[:16]
    return head[10], head[11], struct.unpack_from("<Q", head, 16)[0], head[24:56]


def tpf_files(d):
    return sorted(n for n in os.listdir(d) if n != INDEX)


def file_of(place, name):
    """The .tpf file holding a volume's file `name`, found by its id (volume ls --json)."""
    ids = {f["name"]: f["id"] for f in ls_json(place.run, place)["files"]}
    for n in tpf_files(place.dir):
        if header_of(place.dir / n)[3].hex() == ids[name]:
            return place.dir / n
    raise AssertionError(f"no .tpf file holds {name}")


# ---------------------------------------------------------------- round trips

V1 = {
    "empty": b"",
    "one.txt": b"x",
    "a65535.bin": os.urandom(CHUNK - 1),
    "b65536.bin": os.urandom(CHUNK),
    "c65537.bin": os.urandom(CHUNK + 1),
    "sub/b.txt": b"in a subdirectory\n",
    "sub/deeper/all-bytes.bin": bytes(range(256)) * 4 + b"\0\r\n\xff",
}


def test_a_service_s_files_round_trip_and_the_next_run_replaces_them(as_user, run, tmp, place):
    """Files of 0, 1, 65535, 65536 and 65537 bytes, in subdirectories, of any bytes:
    a run seals them as version 1 (the service found /out empty); ls lists them with
    their sizes, cat gives back their bytes. A second run is version 2 of the same
    volume and holds what /out held then, only: a file it did not write again is
    gone, from the listing and from DIR."""
    svc = tmp.script(COPY)
    r = publish(run, svc, place, lay_out(tmp, "v1", V1))
    assert r.returncode == EXIT.OK, r
    assert r.json() == {"before": [], "copied": len(V1)}
    published_line(r, place, 1, len(V1))

    assert mode(place.dir) == 0o700
    names = os.listdir(place.dir)
    assert INDEX in names and len(names) == len(V1) + 1, names
    assert all(TPF.fullmatch(n) for n in tpf_files(place.dir)), names
    assert sorted(os.path.getsize(place.dir / n) for n in tpf_files(place.dir)) == \
        sorted(sealed_size(len(d)) for d in V1.values())
    assert place.siblings() == ["out"]

    assert ls(run, place) == (1, expected_listing(V1))
    for name, data in V1.items():
        assert cat(run, place, name) == data, name

    v2 = {"one.txt": b"rewritten", "new/file.txt": b"only in version 2\n"}
    r = publish(run, svc, place, lay_out(tmp, "v2", v2))
    assert r.returncode == EXIT.OK, r
    assert r.json() == {"before": [], "copied": 2}  # nothing of version 1 in /out
    published_line(r, place, 2, 2)
    assert ls(run, place) == (2, expected_listing(v2))
    assert cat(run, place, "one.txt") == b"rewritten"
    assert cat(run, place, "new/file.txt") == b"only in version 2\n"
    assert len(tpf_files(place.dir)) == 2 and len(os.listdir(place.dir)) == 3
    assert mode(place.dir) == 0o700
    assert place.siblings() == ["out"]
    gone = run("volume", "cat", place.dir, "c65537.bin", "--volume-key", place.key)
    assert (gone.returncode, gone.stdout) == (EXIT.USAGE, b""), gone
    assert "c65537.bin" in one_line(gone)


def test_ls_json_names_each_file_by_its_id_and_the_volume_keeps_its_id(run, tmp, place):
    svc = tmp.script(COPY)
    files = {"a.txt": b"aaa", "b/c.bin": os.urandom(1000)}
    assert publish(run, svc, place, lay_out(tmp, "v1", files)).returncode == EXIT.OK
    first = ls_json(run, place)
    assert set(first) == {"version", "volume_id", "files"}, first
    assert first["version"] == 1 and re.fullmatch(r"[0-9a-f]{64}", first["volume_id"]), first
    assert sorted((f["name"], f["size"]) for f in first["files"]) == sorted(
        (n, len(d)) for n, d in files.items())
    ids = [f["id"] for f in first["files"]]
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids) and len(set(ids)) == 2, first
    # the ids are those in the protected files' headers
    assert sorted(header_of(place.dir / n)[3].hex() for n in tpf_files(place.dir)) == sorted(ids)

    assert publish(run, svc, place, "v1").returncode == EXIT.OK
    second = ls_json(run, place)
    assert second["version"] == 2 and second["volume_id"] == first["volume_id"], second
    # the same contents sealed again get new ids (never one id for two sealings)
    assert not set(f["id"] for f in second["files"]) & set(ids), second

    other = place.other("other")
    assert publish(run, svc, other, "v1").returncode == EXIT.OK
    assert ls_json(run, other)["volume_id"] != first["volume_id"]


def test_the_index_and_files_are_as_the_format_says(run, tmp, place):
    """index.tpv parsed and its MAC checked here as docs/protected-files.md writes
    them: the names in clear, sorted by their bytes, each with the id and size of
    one .tpf file of purpose 3 (volume) in 64 KiB chunks; nothing of the contents
    in clear anywhere in DIR."""
    files = {"z.txt": b"last by name " * 10, "A.txt": b"first by name",
             "m/n.bin": os.urandom(CHUNK * 2 + 5), "empty": b""}
    assert publish(run, tmp.script(COPY), place, lay_out(tmp, "v1", files)).returncode == EXIT.OK
    data = open(place.dir / INDEX, "rb").read()
    version, volume_id, entries, mac, body_end = parse_index(data)
    assert version == 1
    assert mac == index_mac(key_bytes(place.key), volume_id, data[:body_end])
    assert [e[0] for e in entries] == sorted(n.encode() for n in files)
    info = ls_json(run, place)
    assert info["volume_id"] == volume_id.hex()
    assert sorted((f["name"].encode(), bytes.fromhex(f["id"]), f["size"]) for f in info["files"]) \
        == sorted(entries)
    headers = {header_of(place.dir / n)[3]: header_of(place.dir / n) for n in tpf_files(place.dir)}
    for name, fid, size in entries:
        assert headers[fid] == (PURPOSE_VOLUME, 16, size, fid), name
        assert size == len(files[name.decode()])
    assert len(headers) == len(files)
    everything = b"".join(open(place.dir / n, "rb").read() for n in os.listdir(place.dir))
    for content in files.values():
        if len(content) >= 12:
            assert content[:12] not in everything


def test_a_service_that_returns_nothing_still_publishes(as_user, run, tmp, place):
    """Exit 0 without TEEX_return is NO_RESULT (3): the service ended normally, so
    its files are the volume's next version."""
    svc = tmp.script('open("/out/r.txt", "w").write("no result, but a file")\n')
    r = run("run", svc, "--output-volume", place.dir, "--volume-key", place.key)
    assert (r.returncode, r.stdout) == (EXIT.NO_RESULT, b""), r
    published_line(r, place, 1, 1)
    assert ls(run, place) == (1, [("r.txt", 21)])
    assert cat(run, place, "r.txt") == b"no result, but a file"


def test_an_empty_directory_becomes_version_1_and_empty_directories_are_not_kept(
        as_user, run, tmp, place):
    place.dir.mkdir(mode=0o700)
    own(place.dir, place.variant)
    svc = tmp.script('import os, teex\nos.makedirs("/out/a/b/c")\nos.mkdir("/out/d")\n'
                     'open("/out/a/kept.txt", "w").write("k")\nteex.TEEX_return("ok")\n')
    r = run("run", svc, "--output-volume", place.dir, "--volume-key", place.key)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    published_line(r, place, 1, 1)
    assert ls(run, place) == (1, [("a/kept.txt", 1)])


def test_an_empty_out_is_a_version_without_files(run, tmp, place):
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v1", {"x": b"x"})).returncode == EXIT.OK
    r = publish(run, svc, place, lay_out(tmp, "none", {}))
    assert r.returncode == EXIT.OK, r
    published_line(r, place, 2, 0)
    assert ls(run, place) == (2, [])
    assert os.listdir(place.dir) == [INDEX]


def test_names_with_spaces_and_utf8_are_kept_as_they_are(run, tmp, place):
    """Any name of printable bytes, also those of teepy's own files (the service's
    names live in the index only)."""
    files = {"with space.txt": b"s", "naïve café/日本.txt": "ünïcödé".encode(),
             "index.tpv": b"not the index", "0" * 64 + ".tpf": b"not a sealed file",
             'q"uote\\back': b"q"}
    assert publish(run, tmp.script(COPY), place, lay_out(tmp, "v1", files)).returncode == EXIT.OK
    assert ls(run, place) == (1, expected_listing(files))
    for name, data in files.items():
        assert cat(run, place, name) == data, name
    assert sorted(f["name"] for f in ls_json(run, place)["files"]) == sorted(files)
    assert len(tpf_files(place.dir)) == len(files)


def test_a_name_that_is_no_utf8_is_kept_and_shown_in_hex_by_json(run, tmp, place):
    raw = os.fsdecode(b"\xff\xfe-latin1-\xe9.bin")
    files = {raw: b"bytes of a name that is no UTF-8", "plain.txt": b"p"}
    assert publish(run, tmp.script(COPY), place, lay_out(tmp, "v1", files)).returncode == EXIT.OK
    assert cat(run, place, raw) == files[raw]
    entries = ls_json(run, place)["files"]
    names = sorted(bytes.fromhex(f["name_hex"]) if "name_hex" in f else f["name"].encode()
                   for f in entries)
    assert names == sorted(os.fsencode(n) for n in files), entries
    version, listed = ls(run, place)
    assert version == 1 and len(listed) == 2 and ("plain.txt", 1) in listed, listed


def test_a_name_that_starts_with_a_dash_can_be_read_after_double_dash(run, tmp, place):
    """The service chooses the names: one that looks like an option is published, and
    `--` ends the options of cat as it does those of run."""
    files = {"-dash": b"d", "--volume-key": b"v"}
    assert publish(run, tmp.script(COPY), place, lay_out(tmp, "v1", files)).returncode == EXIT.OK
    assert ls(run, place) == (1, expected_listing(files))
    for name, data in files.items():
        r = run("volume", "cat", place.dir, "--volume-key", place.key, "--", name)
        assert (r.returncode, r.stdout) == (EXIT.OK, data), (name, r)


@pytest.mark.slow
def test_a_100_mb_file_round_trips(as_user, run, tmp, place):
    size = 100 * 1000 * 1000
    # a random block whose length is no multiple of the chunk size, repeated: no two
    # chunks alike, so a chunk out of place would show
    block = os.urandom(1_000_003)
    expected = hashlib.sha256()
    left = size
    while left:
        piece = block[:left]
        expected.update(piece)
        left -= len(piece)
    tmp.write("block.bin", block)
    svc = tmp.script(f'''
import os, teex
block, left = teex.get_input_bytes(), {size}
fd = os.open("/out/big.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
while left:
    left -= os.write(fd, block[:left])
os.close(fd)
teex.TEEX_return("written")
''')
    r = run("run", svc, "--input-file", tmp / "block.bin", "--memory", "1G", "--output-max", "512M",
            "--output-volume", place.dir, "--volume-key", place.key, timeout=300)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"written"), r
    published_line(r, place, 1, 1)
    assert ls(run, place) == (1, [("big.bin", size)])
    (tpf,) = tpf_files(place.dir)
    assert os.path.getsize(place.dir / tpf) == sealed_size(size) == HEADER + TAG * 1526 + size
    r = run("volume", "cat", place.dir, "big.bin", "--volume-key", place.key, timeout=300)
    assert r.returncode == EXIT.OK, r
    assert len(r.stdout) == size and hashlib.sha256(r.stdout).digest() == expected.digest()


# ---------------------------------------------------------------- failed runs publish nothing

FAILING = '''
import os, signal, sys, time, ctypes, teex
print("SERVICE RAN", file=sys.stderr, flush=True)
os.makedirs("/out/sub", exist_ok=True)
for n in ("one.txt", "new.txt", "sub/x.bin"):
    with open("/out/" + n, "wb") as f:
        f.write(b"written by a run that fails " * 1000)
HOW = teex.TEEX_getinput()
if HOW == "exception":
    raise RuntimeError("the service fails after writing /out")
if HOW == "exit-status":
    sys.exit(4)
if HOW == "returned-then-raised":
    teex.TEEX_return("a result before the failure")
    raise RuntimeError("and then it fails")
if HOW == "crash":
    ctypes.string_at(0)
if HOW == "timeout":
    time.sleep(60)
if HOW == "memory":
    hold = [b"\\x01" * (16 << 20) for i in range(64)]
if HOW == "cpu":
    while True:
        pass
teex.TEEX_return("not reached")
'''

FAILURES = {
    # how: (extra flags, exit code, stdout)
    "exception": ((), "SERVICE_FAILED", b""),
    "exit-status": ((), "SERVICE_FAILED", b""),
    "returned-then-raised": ((), "SERVICE_FAILED", b"a result before the failure"),
    "crash": ((), "SERVICE_FAILED", b""),
    "timeout": (("--timeout", "1"), "TIMEOUT", b""),
    "memory": (("--memory", "256M", "--output-max", "64M"), "MEMORY", b""),
    "cpu": (("--cpu-time", "1"), "CPU", b""),
}


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
@pytest.mark.parametrize("how", FAILURES)
def test_a_failed_run_publishes_nothing(as_user, run, tmp, place, how, existing):
    """Whatever ends the service other than normally, DIR stays byte for byte what
    it was (or is not made at all), and no hidden work directory is left beside it."""
    if existing:
        svc = tmp.script(COPY, name="copy.py")
        assert publish(run, svc, place, lay_out(tmp, "v1", {"one.txt": b"version 1"})).returncode \
            == EXIT.OK
    before, siblings = snapshot(place.dir), place.siblings()
    extra, code, stdout = FAILURES[how]
    r = publish(run, tmp.script(FAILING), place, how, *extra)
    assert r.returncode == getattr(EXIT, code), r
    assert r.stdout == stdout, r
    assert "SERVICE RAN" in r.err, r
    assert not [l for l in r.err_lines if l.startswith("teepy: output volume")], r
    assert snapshot(place.dir) == before
    assert place.siblings() == siblings == (["out"] if existing else [])
    if existing:
        assert ls(run, place) == (1, [("one.txt", 9)])
        assert cat(run, place, "one.txt") == b"version 1"


def test_an_interrupted_run_publishes_nothing(as_user, start, run, tmp, place):
    svc = tmp.script(COPY, name="copy.py")
    r = publish(run, svc, place, lay_out(tmp, "v1", {"one.txt": b"version 1"}))
    assert r.returncode == EXIT.OK, r
    before = snapshot(place.dir)
    waiting = tmp.script('import sys, time\nopen("/out/one.txt", "w").write("interrupted")\n'
                         'print("ready", file=sys.stderr, flush=True)\ntime.sleep(60)\n',
                         name="waiting.py")
    proc = start("run", waiting, "--output-volume", place.dir, "--volume-key", place.key)
    wait_until_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == EXIT.INTERRUPTED
    assert snapshot(place.dir) == before
    assert place.siblings() == ["out"]


# ---------------------------------------------------------------- versions and rollback

def test_expect_version_refuses_a_replayed_older_volume_before_the_service(as_user, run, tmp,
                                                                           place):
    """A copy of version 1 put back after version 2 is authentic, only old: ls shows
    it as version 1, and --expect-version 2 (of ls and of a run) refuses it; the
    service does not run; --expect-version 1 takes it."""
    svc = tmp.script(COPY)
    r = publish(run, svc, place, lay_out(tmp, "v1", {"f.txt": b"version one"}))
    assert r.returncode == EXIT.OK, r
    saved = place.root / "saved"
    place.copy(place.dir, saved)
    v2 = lay_out(tmp, "v2", {"f.txt": b"version two"})
    r = publish(run, svc, place, v2, "--expect-version", "1")
    assert r.returncode == EXIT.OK, r
    published_line(r, place, 2, 1)
    assert ls(run, place, "--expect-version", "2") == (2, [("f.txt", 11)])

    shutil.rmtree(place.dir)
    place.copy(saved, place.dir)
    line = refused_before_the_service(run, svc, place, "v2", "--expect-version", "2")
    assert "version 1" in line, line
    assert place.siblings() == ["out", "saved"]

    r = run("volume", "ls", place.dir, "--volume-key", place.key, "--expect-version", "2")
    assert (r.returncode, r.stdout) == (EXIT.DATA_REFUSED, b""), r
    one_line(r)
    r = run("volume", "cat", place.dir, "f.txt", "--volume-key", place.key, "--expect-version", "2")
    assert (r.returncode, r.stdout) == (EXIT.DATA_REFUSED, b""), r
    one_line(r)

    assert ls(run, place) == (1, [("f.txt", 11)])
    assert ls(run, place, "--expect-version", "1") == (1, [("f.txt", 11)])
    assert cat(run, place, "f.txt", "--expect-version", "1") == b"version one"
    r = publish(run, svc, place, "v2", "--expect-version", "1")
    assert r.returncode == EXIT.OK, r
    published_line(r, place, 2, 1)


def test_expect_version_refuses_a_newer_volume_too(run, tmp, place):
    svc = tmp.script(COPY)
    tag = lay_out(tmp, "v", {"f": b"f"})
    for _ in range(2):
        assert publish(run, svc, place, tag).returncode == EXIT.OK
    refused_before_the_service(run, svc, place, tag, "--expect-version", "1")


@pytest.mark.parametrize("state", ["missing", "emptied"])
def test_expect_version_refuses_a_volume_that_was_removed(run, tmp, place, state):
    """A volume deleted (or emptied) by whoever holds the disk is no version at all:
    --expect-version 1 refuses to start it again from version 1."""
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v", {"f": b"f"})).returncode == EXIT.OK
    if state == "missing":
        shutil.rmtree(place.dir)
    else:
        for n in os.listdir(place.dir):
            os.unlink(place.dir / n)
    refused_before_the_service(run, svc, place, "v", "--expect-version", "1")


def test_expect_version_0_is_a_new_volume(run, tmp, place):
    svc = tmp.script(COPY)
    tag = lay_out(tmp, "v", {"f": b"f"})
    r = publish(run, svc, place, tag, "--expect-version", "0")
    assert r.returncode == EXIT.OK, r
    published_line(r, place, 1, 1)
    refused_before_the_service(run, svc, place, tag, "--expect-version", "0")


# A service that writes who.txt, says it runs, and takes a moment before it returns:
# two of them started together overlap.
SLOW_WRITER = """
import sys, time, teex
open("/out/who.txt", "w").write(teex.TEEX_getinput())
print("ready", file=sys.stderr, flush=True)
time.sleep(1)
teex.TEEX_return("done " + teex.TEEX_getinput())
"""


def test_two_runs_at_once_never_publish_one_version_twice(as_user, run, start, tmp, place):
    """Both start from version 1: one publishes version 2, the other then finds the
    volume changed and publishes nothing (exit 9), or comes after it as version 3;
    never do both say version 2 with one's files lost."""
    svc = tmp.script(SLOW_WRITER)
    assert run("run", svc, "--input", "first", "--output-volume", place.dir,
               "--volume-key", place.key).returncode == EXIT.OK
    procs = {who: start("run", svc, "--input", who, "--output-volume", place.dir,
                        "--volume-key", place.key) for who in ("A", "B")}
    published = {}
    for who, proc in procs.items():
        _out, err = proc.communicate(timeout=120)
        lines = [l for l in err.decode().splitlines() if l.startswith("teepy:")
                 and "no cgroup for the limits" not in l]
        assert proc.returncode in (EXIT.OK, EXIT.DATA_REFUSED), (who, proc.returncode, err)
        if proc.returncode == EXIT.OK:
            (line,) = [l for l in lines if l.startswith("teepy: output volume")]
            published[who] = int(re.search(r": version (\d+), ", line).group(1))
        else:
            assert len(lines) == 1 and "output volume" not in lines[0], (who, err)
    assert published, "neither run published"
    assert len(set(published.values())) == len(published), published
    last = max(published, key=published.get)
    assert sorted(published.values()) in ([2], [2, 3]), published
    assert ls(run, place) == (published[last], [("who.txt", 1)])
    assert cat(run, place, "who.txt") == last.encode()
    assert place.siblings() == ["out"]


def test_a_symbolic_link_as_the_volume_is_refused(run, tmp, place):
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v", {"f": b"f"})).returncode == EXIT.OK
    link = place.other("link", place.key)
    os.symlink("out", link.dir)
    before = snapshot(place.dir)
    r = publish(run, svc, link, "v")
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert str(link.dir) in one_line(r) and "SERVICE RAN" not in r.err
    assert os.readlink(link.dir) == "out" and snapshot(place.dir) == before


@pytest.mark.parametrize("as_user", ["user"], indirect=True)
def test_a_volume_whose_directory_the_user_cannot_write_is_refused_first(as_user, run, tmp, place):
    """uid 65534 cannot write beside a volume in a directory of root's: refused
    before the service runs, not after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory uid 65534 cannot write")
    svc = tmp.script(COPY)
    for target in (tmp.make_sibling("roots") / "out", tmp.make_sibling("roots-empty")):
        r = run("run", svc, "--input", "v", "--output-volume", target, "--volume-key", place.key)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
        assert str(target) in one_line(r) and "SERVICE RAN" not in r.err
        assert not os.path.lexists(target) or os.listdir(target) == []


def as_root(teepy, run_cwd, *args):
    """teepy run by root in a test whose `run` is uid 65534's, in the run fixture's
    environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    return subprocess.run([str(teepy), *map(str, args)], capture_output=True, cwd=run_cwd,
                          env=dict(env, TEEPY_NO_CACHE="1"), timeout=60)


def needs_root_and_setpriv():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root, and setpriv to act as uid 65534")


# Holds flock(argv[2]) on directory argv[1] as long as it lives, says whether it could
# open directory argv[3] too, then that it is ready.
HOLD_LOCK = """
import fcntl, os, sys, time
fcntl.flock(os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY), getattr(fcntl, sys.argv[2]))
try:
    os.open(sys.argv[3], os.O_RDONLY | os.O_DIRECTORY)
    print("opened the volume too", file=sys.stderr, flush=True)
except PermissionError:
    pass
print("ready", file=sys.stderr, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["LOCK_SH", "LOCK_EX"])
def test_another_user_s_lock_on_the_directory_above_cannot_stall_a_publish(run, tmp, place, how):
    """uid 65534 holds a lock on the directory that holds root's volume, and cannot
    open DIR itself (0700): a publish (and a reader) of root's goes on at once. It
    fails (the 20 s guard) where a publish locks DIR's parent, and waits 30 s for it."""
    needs_root_and_setpriv()
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v1", {"f": b"1"})).returncode == EXIT.OK
    holder = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                               "--clear-groups", "/usr/bin/python3", "-c", HOLD_LOCK,
                               place.root, how, place.dir],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert b"opened the volume too" not in wait_until_ready(holder)
        r = run("run", svc, "--input", lay_out(tmp, "v2", {"f": b"2"}), *place.flags, timeout=20)
        assert r.returncode == EXIT.OK, r
        published_line(r, place, 2, 1)
        assert ls(run, place) == (2, [("f", 1)])
    finally:
        holder.kill()
        holder.wait()
        holder.stderr.close()


@pytest.mark.parametrize("holding", ["empty", "volume"])
def test_a_mount_point_is_refused_before_the_service(run, tmp, place, holding):
    """A tmpfs mounted at DIR (empty, or holding a volume) cannot be exchanged with
    its sibling: refused before the service runs, the mount left as it was."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    svc = tmp.script(RETURN_OK)
    if holding == "volume":
        other = place.other("other", place.key)
        assert run("run", svc, *other.flags).returncode == EXIT.OK
    place.dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "teepy-test-volume",
                    place.dir], check=True)
    try:
        if holding == "volume":
            for n in os.listdir(other.dir):
                shutil.copy2(other.dir / n, place.dir / n)
        before, siblings = snapshot(place.dir), place.siblings()
        r = run("run", svc, *place.flags)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
        assert "mount point" in one_line(r) and "SERVICE RAN" not in r.err, r
        assert snapshot(place.dir) == before and place.siblings() == siblings
        assert os.path.ismount(place.dir)
    finally:
        subprocess.run(["umount", place.dir], check=True)


@pytest.mark.parametrize("as_user", ["user"], indirect=True)
def test_root_publishing_a_user_s_volume_keeps_it_the_user_s(as_user, run, tmp, place, teepy,
                                                             run_cwd):
    """uid 65534 makes a volume in a directory of its own; root publishes the next
    version: DIR and every file in it are still 65534's, so the user can read the
    volume and publish into it again. It fails where root's sibling (the new DIR)
    or a file in it stays root's: the user can no longer open DIR."""
    needs_root_and_setpriv()
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v1", {"f": b"user's"})).returncode == EXIT.OK
    tag = lay_out(tmp, "v2", {"f": b"root's", "d/g": b"g"})
    r = as_root(teepy, run_cwd, "run", svc, "--input", tag, *place.flags)
    assert r.returncode == EXIT.OK, r.stderr
    for root, dirs, files in os.walk(place.dir):
        for p in [root] + [os.path.join(root, n) for n in dirs + files]:
            st = os.lstat(p)
            assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), p
    assert mode(place.dir) == 0o700 and place.siblings() == ["out"]
    assert ls(run, place) == (2, [("d/g", 1), ("f", 6)])
    assert cat(run, place, "f") == b"root's"
    r = publish(run, svc, place, lay_out(tmp, "v3", {"f": b"user's again"}))
    assert r.returncode == EXIT.OK, r
    published_line(r, place, 3, 1)


# Writes MANY files into /out, each holding the input: a publish then holds the
# volume's lock while it removes as many files of the old version.
MANY = 2000
MANY_FILES = f"""
import teex
for i in range({MANY}):
    open("/out/%04d" % i, "w").write(teex.TEEX_getinput())
teex.TEEX_return("ok")
"""


def test_readers_never_see_a_false_tamper_while_runs_publish(as_user, run, tmp, place):
    """Six publishes, two at a time, while `volume cat` (and now and then `ls`) reads
    the volume again and again: every read gives a whole version (exit 0), never a
    file missing or no index (exit 9, exit 2); the versions read never go back. The
    moment that shows a reader that does not check what it locked is narrow: the
    next test makes it."""
    svc = tmp.script(MANY_FILES)
    flags = ["--output-max", "16M", *place.flags]
    assert run("run", svc, "--input", "v0", *flags).returncode == EXIT.OK
    tags = {f"{lane}{i}": lane for lane in "ab" for i in range(3)}
    runs = []

    def lane(name):
        for tag in (t for t, l in tags.items() if l == name):
            runs.append(run("run", svc, "--input", tag, *flags, timeout=120))

    lanes = [threading.Thread(target=lane, args=(name,)) for name in "ab"]
    for t in lanes:
        t.start()
    reads, versions = 0, []
    try:
        while any(t.is_alive() for t in lanes) or reads < 100:
            assert cat(run, place, "0007").decode() in {"v0", *tags}
            if reads % 10 == 0:
                version, files = ls(run, place)
                assert len(files) == MANY, (version, len(files))
                versions.append(version)
            reads += 1
            assert reads < 2000, "the publishes never ended"
    finally:
        for t in lanes:
            t.join(timeout=180)
    assert versions == sorted(versions), versions
    assert len(runs) == 6, runs
    assert all(r.returncode in (EXIT.OK, EXIT.DATA_REFUSED) for r in runs), runs
    assert ls(run, place)[0] == 1 + sum(r.returncode == EXIT.OK for r in runs)


def until(what, check):
    """Waits for check() (a hang guard of 30 s)."""
    for _ in range(3000):
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"never {what}")


def flock_waiters(path):
    """The pids waiting for a flock of path (/proc/locks)."""
    st = os.stat(path)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        rows = [line.split() for line in f]
    return {int(r[5]) for r in rows if r[1:3] == ["->", "FLOCK"] and r[6] == where}


def stopped(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.parametrize("command, says", [(["cat", "f"], b"version 2"),
                                           (["ls"], b"version 2\n9 f\n")],
                         ids=["cat", "ls"])
def test_a_reader_that_waited_for_a_publish_reads_the_version_it_published(
        as_user, run, start, tmp, place, command, says):
    """A reader opens DIR as a publish holds its lock: the publish exchanges DIR and
    removes the old version, and the reader then locks a removed directory. Made
    here: the test holds DIR's lock while the reader waits for it, stops the reader,
    lets go, and a real publish comes first. Let go on, the reader must read DIR
    again: version 2, exit 0; one that reads the directory it locked finds no
    index there (exit 2) or no file (exit 9)."""
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v1", {"f": b"version 1"})).returncode == EXIT.OK
    fd = os.open(place.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        reader = start("volume", command[0], place.dir, *command[1:], "--volume-key", place.key)
        until("did the reader wait for the lock", lambda: reader.pid in flock_waiters(place.dir))
        os.kill(reader.pid, signal.SIGSTOP)
        until("did the reader stop", lambda: stopped(reader.pid))
    finally:
        os.close(fd)
    try:
        r = publish(run, svc, place, lay_out(tmp, "v2", {"f": b"version 2"}))
        assert r.returncode == EXIT.OK, r
    finally:
        os.kill(reader.pid, signal.SIGCONT)
    out, err = reader.communicate(timeout=60)
    assert (reader.returncode, out) == (EXIT.OK, says), (reader.returncode, out, err)


SIBLING = ".out.teepy-0badc0de"  # the name a run on DIR out gives its sibling


def a_publish_beside(run, tmp, place):
    """A run that publishes into place (version 1): it looks for dead runs' siblings
    first."""
    svc = tmp.script(COPY)
    assert publish(run, svc, place, lay_out(tmp, "v", {"f": b"f"})).returncode == EXIT.OK
    assert ls(run, place) == (1, [("f", 1)])


def test_a_sibling_made_a_moment_ago_is_left_alone(as_user, run, tmp, place):
    """A sibling nobody holds, made just now, may be another run's between its mkdir
    and its flock: a run on the same DIR leaves it, and what it holds. It fails
    where a run removes a sibling nobody holds whatever its age."""
    sibling = place.root / SIBLING
    sibling.mkdir(mode=0o700)
    (sibling / INDEX).write_bytes(b"another run's index")
    own(sibling, place.variant)
    a_publish_beside(run, tmp, place)
    assert place.siblings() == [SIBLING, "out"]
    assert (sibling / INDEX).read_bytes() == b"another run's index"
    assert os.listdir(sibling) == [INDEX]


def file_system_with_an_old_sibling(tmp, variant):
    """An ext4 image whose root holds SIBLING, with an index.tpv, both the variant
    user's and changed (ctime) in 2020: debugfs sets what no system call sets back."""
    image, index = tmp / "fs.img", tmp.write("index.tpv", b"a dead run's index")
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    owner = NOBODY if variant == "user" else 0
    commands = f"mkdir {SIBLING}\ncd {SIBLING}\nwrite {index} {INDEX}\ncd /\n"
    for path in (SIBLING, f"{SIBLING}/{INDEX}"):
        for field, value in (("uid", owner), ("gid", owner), ("ctime", "20200101000000")):
            commands += f"sif {path} {field} {value}\n"
    subprocess.run(["debugfs", "-w", "-f", "-", image], input=commands.encode(), check=True,
                   capture_output=True)
    return image


@pytest.mark.parametrize("held", [True, False], ids=["held", "dead"])
def test_an_old_sibling_is_removed_unless_a_live_process_holds_it(as_user, run, tmp, held):
    """A sibling changed long ago (on an ext4 image, where its ctime can be set back)
    is a dead run's, and the next run on DIR removes it; unless a process holds it
    locked (flock LOCK_EX, as every run holds its own): then it is a live run's, and
    it and what it holds are left alone. Fails where a run removes a sibling it
    cannot lock, or never removes an old one nobody holds."""
    if os.geteuid() != 0 or not (shutil.which("mkfs.ext4") and shutil.which("debugfs")):
        pytest.skip("needs root, mkfs.ext4 and debugfs to mount a file system of old files")
    image = file_system_with_an_old_sibling(tmp, as_user)
    root = tmp.make_sibling("fs")
    mounted = subprocess.run(["mount", "-o", "loop", image, root], capture_output=True)
    if mounted.returncode != 0:  # a kernel without loop devices (check-kernel's guest)
        pytest.skip(f"cannot mount a loop image here: {mounted.stderr.decode().strip()}")
    try:
        os.chown(root, *(2 * [NOBODY if as_user == "user" else 0]))
        place = Place(root, run, as_user)
        sibling = root / SIBLING
        assert os.stat(sibling).st_ctime < time.time() - 3600
        fd = os.open(sibling, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if held:
                fcntl.flock(fd, fcntl.LOCK_EX)  # an open descriptor alone holds nothing
            a_publish_beside(run, tmp, place)
        finally:
            os.close(fd)
        if held:
            assert place.siblings() == [SIBLING, "lost+found", "out"]
            assert (sibling / INDEX).read_bytes() == b"a dead run's index"
        else:
            assert place.siblings() == ["lost+found", "out"]
    finally:
        subprocess.run(["umount", root], check=True)


WRITES_OUT = ('import teex\nopen("/out/x.txt", "wb").write(bytes(range(256)))\n'
              'teex.TEEX_return("written")\n')


def test_a_service_that_writes_out_is_built_and_its_bundle_publishes(as_user, run, tmp, place):
    """build's sample run gives the service a /out of its own (published nowhere): a
    service that writes there builds (where the sample run has no /out, the write
    raises and the build fails), and its bundle run with a volume publishes the
    file. --output-volume is a run's flag: build refuses it before any sample run."""
    app = place.root / "app"
    app.mkdir()
    (app / "svc.py").write_text(WRITES_OUT)
    own(app, place.variant)
    assert run("keygen", "-o", place.root / "signer.key").returncode == EXIT.OK
    bundle = place.root / "svc.tpy"
    build = ["build", app / "svc.py", "-o", bundle, "--key", place.root / "signer.key"]
    r = run(*build, "--output-volume", place.dir, "--volume-key", place.key, timeout=180)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "--output-volume" in one_line(r)
    assert not os.path.lexists(bundle) and not os.path.lexists(place.dir)
    r = run(*build, timeout=180)
    assert r.returncode == EXIT.OK, r
    r = run("run", bundle, "--trust", place.root / "signer.pub", *place.flags)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"written"), r
    published_line(r, place, 1, 1)
    assert cat(run, place, "x.txt") == bytes(range(256))


# ---------------------------------------------------------------- a changed volume is refused

TWO = 2 * CHUNK + 100  # three chunks, the last short


@pytest.fixture
def volume(run, tmp, place):
    """Version 1 of a volume: a.bin and b.bin (three chunks each, equal sizes) and
    c.txt; returns {name: content}."""
    files = {"a.bin": os.urandom(TWO), "b.bin": os.urandom(TWO), "c.txt": b"small file\n"}
    r = publish(run, tmp.script(COPY, name="copy.py"), place, lay_out(tmp, "v1", files))
    assert r.returncode == EXIT.OK, r
    return files


def flip_at(path, offset):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x01
    open(path, "wb").write(bytes(data))


def index_offsets(place):
    """Offsets of the index's fields: {field: offset}."""
    data = open(place.dir / INDEX, "rb").read()
    _, _, entries, _, body_end = parse_index(data)
    first_name = INDEX_HEADER + 2
    first_id = first_name + len(entries[0][0])
    return {"count": 12, "version": 16, "volume-id": 24 + 7, "name-length": INDEX_HEADER,
            "name": first_name, "file-id": first_id + 3, "file-size": first_id + 32,
            "mac": body_end + 31}


def assert_refused(run, place, names, code=EXIT.DATA_REFUSED, key=None):
    """ls, and cat of each of names, refused with one line and nothing on stdout."""
    key = key or place.key
    r = run("volume", "ls", place.dir, "--volume-key", key)
    assert (r.returncode, r.stdout) == (code, b""), r
    one_line(r)
    for name in names:
        r = run("volume", "cat", place.dir, name, "--volume-key", key)
        assert (r.returncode, r.stdout) == (code, b""), (name, r)
        one_line(r)


def assert_run_refused(run, tmp, place, key=None):
    """A run with the volume stops before the service, and leaves DIR as it is."""
    svc = tmp.script(COPY, name="copy.py")
    refused_before_the_service(run, svc, place, lay_out(tmp, "v2", {"new.txt": b"n"}), key=key)


@pytest.mark.parametrize("field", ["count", "version", "volume-id", "name-length", "name",
                                   "file-id", "file-size", "mac"])
def test_a_changed_index_byte_is_refused(run, tmp, place, volume, field):
    flip_at(place.dir / INDEX, index_offsets(place)[field])
    assert_refused(run, place, volume)
    assert_run_refused(run, tmp, place)


def test_another_key_is_refused(run, tmp, place, volume):
    other = place.keygen("other.key")
    assert_refused(run, place, volume, key=other)
    assert_run_refused(run, tmp, place, key=other)


def test_the_index_of_another_volume_is_refused(run, tmp, place, volume):
    """The index of another volume under another key does not authenticate; one under
    the same key does, and then names files DIR does not hold."""
    svc = tmp.script(COPY, name="copy.py")
    for name, key in (("other-key", None), ("same-key", place.key)):
        other = place.other(name, key)
        r = publish(run, svc, other, lay_out(tmp, "v1b", {"c.txt": b"other volume\n"}))
        assert r.returncode == EXIT.OK, r
        os.chmod(place.dir / INDEX, 0o600)
        shutil.copy(other.dir / INDEX, place.dir / INDEX)
        own(place.dir, place.variant)
        assert_refused(run, place, ["c.txt"])
        if name == "other-key":
            assert_run_refused(run, tmp, place)


def test_a_removed_file_is_refused(run, tmp, place, volume):
    os.unlink(file_of(place, "a.bin"))
    assert_refused(run, place, ["a.bin"])


def test_two_files_renamed_onto_each_other_are_refused(run, tmp, place, volume):
    a, b = file_of(place, "a.bin"), file_of(place, "b.bin")
    os.rename(a, place.dir / "swap")
    os.rename(b, a)
    os.rename(place.dir / "swap", b)
    assert_refused(run, place, ["a.bin", "b.bin"])


def test_a_file_of_another_volume_under_the_same_key_is_refused(run, tmp, place, volume):
    """The same name, size and key, sealed in another volume: its id is not the index's."""
    other = place.other("other", place.key)
    svc = tmp.script(COPY, name="copy.py")
    assert publish(run, svc, other, lay_out(tmp, "v1b", {"a.bin": os.urandom(TWO)})).returncode \
        == EXIT.OK
    shutil.copy(file_of(other, "a.bin"), file_of(place, "a.bin"))
    assert_refused(run, place, ["a.bin"])


def cat_refused(run, place, name, content, bad_chunk):
    """cat refuses with one line, and writes nothing of a file that does not
    authenticate whole (`teepy volume --help`), least of all the bad chunk's bytes."""
    r = run("volume", "cat", place.dir, name, "--volume-key", place.key)
    assert r.returncode == EXIT.DATA_REFUSED, r
    one_line(r)
    assert content[bad_chunk * CHUNK:][:CHUNK] not in r.stdout or bad_chunk * CHUNK >= len(content)
    assert r.stdout == b"", \
        f"cat wrote {len(r.stdout)} bytes of a file whose chunk {bad_chunk} does not authenticate"


def tpf_change(change):
    def apply(place, volume):
        path = file_of(place, "a.bin")
        changed = bytes(change(bytearray(open(path, "rb").read()), place))
        os.chmod(path, 0o600)
        open(path, "wb").write(changed)
    return apply


def _flip(offset):
    def change(data, _place):
        data[offset] ^= 0x01
        return data
    return change


def _chunk_from_b(data, place):
    theirs = open(file_of(place, "b.bin"), "rb").read()
    a, b = chunk_offset(1), chunk_offset(2)
    return data[:a] + theirs[a:b] + data[b:]


def _swap_0_1(data, _place):
    a, b, c = chunk_offset(0), chunk_offset(1), chunk_offset(2)
    return data[:a] + data[b:c] + data[a:b] + data[c:]


# what is done to a.bin's .tpf file, and the first chunk that cannot be trusted
TPF_TAMPER = {
    "chunk-0-ciphertext": (_flip(chunk_offset(0) + 10), 0),
    "chunk-1-ciphertext": (_flip(chunk_offset(1) + 1000), 1),
    "last-chunk-tag": (_flip(chunk_offset(2) + 100 + 5), 2),
    "truncated-at-a-chunk-boundary": (lambda d, _p: d[:chunk_offset(2)], 2),
    "truncated-mid-chunk": (lambda d, _p: d[:chunk_offset(1) + 777], 1),
    "one-byte-appended": (lambda d, _p: d + b"\0", 2),
    "chunk-1-from-another-file": (_chunk_from_b, 1),
    "chunks-0-and-1-swapped": (_swap_0_1, 0),
}


@pytest.mark.parametrize("case", TPF_TAMPER)
def test_a_changed_file_is_refused_by_cat(run, place, volume, case):
    change, bad = TPF_TAMPER[case]
    tpf_change(change)(place, volume)
    cat_refused(run, place, "a.bin", volume["a.bin"], bad)
    # the other files are untouched and still open
    assert cat(run, place, "b.bin") == volume["b.bin"]


def test_a_changed_header_is_refused_by_ls(run, place, volume):
    """ls checks every file's header against the index: a file whose id (or size)
    field was changed is refused."""
    for offset in (24 + 3, 16):  # the id, the plaintext size
        path = file_of(place, "c.txt")
        saved = open(path, "rb").read()
        flip_at(path, offset)
        assert_refused(run, place, ["c.txt"])
        open(path, "wb").write(saved)
    assert ls(run, place)[0] == 1


# ---------------------------------------------------------------- confidentiality

CONFIDENTIAL = '''
import hashlib, os, teex
CODE_MARK = "{code}"
try:
    data = teex.TEEX_getdata(0)
except IndexError:  # build's sample run has no data
    data = b""
out_mark = "teepy-out-mark-" + hashlib.sha256(CODE_MARK.encode()).hexdigest()[:24]
if os.path.isdir("/out"):  # build's sample run has no volume
    os.makedirs("/out/deep")
    with open("/out/report.txt", "w") as f:
        f.write("code " + CODE_MARK + "\\n" + "out " + out_mark + "\\n")
    with open("/out/deep/data.bin", "wb") as f:
        f.write(data * 3 + out_mark.encode())
teex.TEEX_return("{result}")
'''


def test_nothing_of_the_code_the_data_or_the_output_is_on_disk(as_user, run, tmp, place, run_cwd):
    """An encrypted bundle whose code holds marker A reads a sealed item holding B and
    writes A, B and C (which only the service computes) into /out, returning a result
    that holds none: after the run none is in the bundle, the item, DIR, teepy's
    output, or any file changed under /tmp, /var/tmp, /dev/shm or the working
    directory since the test began, but for the developer's own app directory; cat
    with the key gives them back."""
    since = time.time() - 1
    code = f"teepy-code-mark-{uuid.uuid4().hex}"
    data_mark = f"teepy-data-mark-{uuid.uuid4().hex}".encode()
    out_mark = ("teepy-out-mark-" + hashlib.sha256(code.encode()).hexdigest()[:24]).encode()
    marks = [code.encode(), data_mark, out_mark]
    result = f"done-{uuid.uuid4().hex[:8]}"
    app = place.root / "app"
    app.mkdir()
    (app / "svc.py").write_text(CONFIDENTIAL.format(code=code, result=result))
    own(app, place.variant)
    outputs = []

    def teepy(*args, code=EXIT.OK):
        r = run(*args, timeout=180)
        assert r.returncode == code, r
        outputs.append(r)
        return r

    teepy("keygen", "-o", place.root / "signer.key")
    bundle_key = place.keygen("bundle.key")
    bundle = place.root / "svc.tpy"
    teepy("build", app / "svc.py", "-o", bundle, "--key", place.root / "signer.key", "--encrypt",
          "--bundle-key", bundle_key)
    plain = place.root / "item.bin"
    plain.write_bytes(b"data head " + data_mark + b" data tail")
    own(plain, place.variant)
    item, data_key = place.root / "item.tpd", place.keygen("data.key")
    teepy("data", "seal", plain, "-o", item, "--data-key", data_key)
    os.unlink(plain)

    r = teepy("run", bundle, "--trust", place.root / "signer.pub", "--bundle-key", bundle_key,
              "--data", item, "--data-key", data_key,
              "--output-volume", place.dir, "--volume-key", place.key)
    assert r.stdout == result.encode()
    teepy("volume", "ls", place.dir, "--volume-key", place.key)
    teepy("volume", "ls", place.dir, "--volume-key", place.key, "--json")

    # the service wrote them: cat gives them back
    report = cat(run, place, "report.txt")
    assert code.encode() in report and out_mark in report
    item_plain = b"data head " + data_mark + b" data tail"
    assert cat(run, place, "deep/data.bin") == item_plain * 3 + out_mark

    for o in outputs:
        assert not [m for m in marks if m in o.stdout + o.stderr], o
    for path in [bundle, item] + [place.dir / n for n in os.listdir(place.dir)]:
        assert not [m for m in marks if m in open(path, "rb").read()], path
    tops = ["/tmp", "/var/tmp", "/dev/shm", str(run_cwd)]
    files = [p for top in tops for p in recent_files(top, since)]
    held = {p: h for p, h in holding(files, marks).items()
            if not p.startswith(str(app) + os.sep)}
    assert held == {}, held


# ---------------------------------------------------------------- usage errors

RETURN_OK = "import sys, teex\nprint('SERVICE RAN', file=sys.stderr)\nteex.TEEX_return('ok')\n"


def test_a_volume_without_its_key_is_key_missing(as_user, run, tmp, place):
    r = run("run", tmp.script(RETURN_OK), "--output-volume", place.dir)
    assert (r.returncode, r.stdout) == (EXIT.KEY_MISSING, b""), r
    assert "--volume-key" in one_line(r) and "SERVICE RAN" not in r.err
    assert not os.path.lexists(place.dir)
    assert publish(run, tmp.script(COPY, name="copy.py"), place,
                   lay_out(tmp, "v1", {"f": b"f"})).returncode == EXIT.OK
    for args in (["ls", place.dir], ["cat", place.dir, "f"]):
        r = run("volume", *args)
        assert (r.returncode, r.stdout) == (EXIT.KEY_MISSING, b""), r
        assert "--volume-key" in one_line(r)


@pytest.mark.parametrize("flag, value", [("--volume-key", None), ("--output-max", "1M"),
                                         ("--expect-version", "1")])
def test_volume_flags_without_output_volume_are_usage_errors(run, tmp, place, flag, value):
    r = run("run", tmp.script(RETURN_OK), flag, value or place.key)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    line = one_line(r)
    assert flag in line and "--output-volume" in line, line
    assert "SERVICE RAN" not in r.err


def test_a_directory_that_is_no_volume_is_refused_and_left_alone(as_user, run, tmp, place):
    svc = tmp.script(RETURN_OK)
    place.dir.mkdir()
    (place.dir / "precious.txt").write_text("not a volume")
    own(place.dir, place.variant)
    plain_file = place.root / "plain"
    plain_file.write_text("a file")
    own(plain_file, place.variant)
    before = snapshot(place.root)
    for target in (place.dir, plain_file):
        r = run("run", svc, "--output-volume", target, "--volume-key", place.key)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), (target, r)
        assert str(target) in one_line(r) and "SERVICE RAN" not in r.err
        for args in (["ls", target], ["cat", target, "precious.txt"]):
            r = run("volume", *args, "--volume-key", place.key)
            assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), (args, r)
            one_line(r)
    assert snapshot(place.root) == before


@pytest.mark.parametrize("target", [".", "..", "/"])
def test_a_directory_that_is_no_volume_s_own_is_refused(run, tmp, place, target):
    """The working directory (empty, as here), its parent and / are never replaced."""
    r = run("run", tmp.script(RETURN_OK), "--output-volume", target, "--volume-key", place.key)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "--output-volume" in one_line(r) and "SERVICE RAN" not in r.err


def test_a_relative_path_and_a_trailing_slash_name_the_same_volume(run, tmp, place, run_cwd):
    svc = tmp.script(COPY)
    relative = os.path.relpath(place.dir, run_cwd)
    assert relative.startswith("../")
    tag = lay_out(tmp, "v", {"f": b"f"})
    r = run("run", svc, "--input", tag, "--output-volume", relative, "--volume-key", place.key)
    assert r.returncode == EXIT.OK, r
    r = run("run", svc, "--input", tag, "--output-volume", f"{place.dir}/",
            "--volume-key", place.key)
    assert r.returncode == EXIT.OK, r
    assert ls(run, place) == (2, [("f", 1)])
    assert place.siblings() == ["out"]


def test_ls_of_a_missing_directory_is_a_usage_error(run, place):
    r = run("volume", "ls", place.dir, "--volume-key", place.key)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert str(place.dir) in one_line(r)
    assert not os.path.lexists(place.dir)


@pytest.mark.parametrize("memory, scratch, output_max, ok", [
    ("100M", None, "1G", False),
    ("64M", None, "64M", False),
    ("128M", "64M", "64M", False),
    ("128M", None, "97M", False),
    ("128M", None, "96M", True),   # leaves the 32 MiB exactly
    ("128M", "32M", "64M", True),
])
def test_output_max_must_leave_the_interpreter_its_memory(run, tmp, place, memory, scratch,
                                                          output_max, ok):
    args = ["--memory", memory, "--output-max", output_max]
    args += ["--scratch", scratch] if scratch else []
    r = run("run", tmp.script(RETURN_OK), *args, "--output-volume", place.dir,
            "--volume-key", place.key)
    if ok:
        assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    else:
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
        assert "--output-max" in one_line(r) and "SERVICE RAN" not in r.err
        assert not os.path.lexists(place.dir)


@pytest.mark.parametrize("flag, value", [("--output-max", "lots"), ("--output-max", "1Q"),
                                         ("--expect-version", "one"), ("--expect-version", "1.5")])
def test_bad_values_are_usage_errors(run, tmp, place, flag, value):
    r = run("run", tmp.script(RETURN_OK), flag, value, "--output-volume", place.dir,
            "--volume-key", place.key)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert flag in one_line(r)
    assert not os.path.lexists(place.dir)


def test_volume_key_files_are_checked(as_user, run, tmp, place):
    """A key others may read, a file that is no key, a missing file: one line each,
    exit 2, whether for a run or for ls."""
    loose = place.keygen("loose.key")
    os.chmod(loose, 0o640)
    not_a_key = place.root / "not-a-key.key"
    not_a_key.write_text("not a key\n")
    not_a_key.chmod(0o600)
    own(not_a_key, place.variant)
    cases = [(loose, "chmod 600"), (not_a_key, "not a teepy symmetric key"),
             (place.root / "missing.key", "missing.key")]
    for key, says in cases:
        r = run("run", tmp.script(RETURN_OK), "--output-volume", place.dir, "--volume-key", key)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), (key, r)
        assert says in one_line(r), (key, r)
        assert not os.path.lexists(place.dir)
        r = run("volume", "ls", place.dir, "--volume-key", key)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), (key, r)
        one_line(r)


def test_volume_command_usage_errors(run, tmp, place, volume):
    cases = [
        (["volume"], None),
        (["volume", "frobnicate", place.dir], "unknown action"),
        (["volume", "ls"], None),
        (["volume", "cat", place.dir, "--volume-key", place.key], None),
        (["volume", "cat", place.dir, "no-such-file", "--volume-key", place.key], "no-such-file"),
        (["volume", "ls", place.dir, "--volume-key", place.key, "--frobnicate"], "--frobnicate"),
    ]
    for args, says in cases:
        r = run(*args)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), (args, r)
        line = one_line(r)
        assert says is None or says in line, (args, line)


def test_cat_to_a_full_device_is_a_usage_error(start, place, volume):
    with open("/dev/full", "wb") as full:
        proc = start("volume", "cat", place.dir, "a.bin", "--volume-key", place.key, stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT.USAGE, err
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teepy:"), err


@pytest.mark.parametrize("command", [["run"], ["volume"], ["volume", "ls"], ["volume", "cat"]],
                         ids=" ".join)
def test_help_texts(run, command):
    r = run(*command, "--help")
    assert (r.returncode, r.stderr) == (EXIT.OK, b""), r
    text = r.stdout.decode()
    assert text.startswith("usage: teepy " + command[0]), text
    wanted = {"run": ["--output-volume", "--volume-key", "--output-max", "--expect-version"],
              "volume": ["ls", "cat", "--volume-key"],
              "volume ls": ["--volume-key", "--expect-version", "--json"],
              "volume cat": ["--volume-key", "--expect-version"]}[" ".join(command)]
    missing = [w for w in wanted
               if not re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text)]
    assert not missing, f"teepy {' '.join(command)} --help does not mention {missing}"


def test_the_top_level_help_names_the_volume_command(run):
    r = run("--help")
    assert r.returncode == EXIT.OK, r
    assert re.search(r"(?<![\w-])volume(?![\w-])", r.stdout.decode()), r
