"""teepy keygen --symmetric and teepy data seal | open | info, end to end through
the binary (docs/cli.md, the format in docs/protected-files.md): round trips, the
key file, every way a sealed item can be changed, no plaintext on disk, usage errors.
"""
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from pathlib import Path

import pytest

from exit_codes import EXIT
from protected_files import CHUNK, HEADER, TAG, chunk_offset, chunks_of, sealed_size

# the format (docs/protected-files.md, src/pfs/pfs.h; the sizes in protected_files.py)
SIZE_FIELD = 16  # plaintext size, u64 LE, bytes 16..24
ID_FIELD = 24  # item id, bytes 24..56
CHECK_FIELD = 56  # key check, bytes 56..72
VERSION_FIELD = 8  # u16 LE, bytes 8..10

KEY_LINES = re.compile(
    r"\A-----BEGIN TEEPY SYMMETRIC KEY-----\n[0-9a-f]{64}\n-----END TEEPY SYMMETRIC KEY-----\n\Z"
)


def one_line(r):
    """Exactly one stderr line, teepy's own."""
    lines = r.err_lines
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {r.err!r}"
    assert lines[0].startswith("teepy:"), lines[0]
    return lines[0]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def seal(run, src, item=None, key=None):
    """Seals src; returns (item, key, printed id)."""
    args = ["data", "seal", src]
    if item:
        args += ["-o", item]
    if key:
        args += ["--data-key", key]
    r = run(*args)
    assert r.returncode == EXIT.OK, r
    item = Path(item or f"{src}.tpd")
    key = Path(key or f"{item}.key")
    printed = r.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", printed), r
    return item, key, printed


def info(run, item, key=None):
    """`data info` as {field: value}."""
    r = run("data", "info", item, *(["--data-key", key] if key else []))
    assert r.returncode == EXIT.OK, r
    fields = {}
    for line in r.stdout.decode().splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value.strip()
    return fields


def open_stdout(run, item, key):
    r = run("data", "open", item, "--data-key", key)
    assert r.returncode == EXIT.OK, r
    return r.stdout


def keygen(run, path):
    r = run("keygen", "--symmetric", "-o", path)
    assert r.returncode == EXIT.OK, r
    return path


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1])
def test_seal_then_open_gives_back_the_file(run, tmp, size):
    content = os.urandom(size)
    src = tmp.write("in.bin", content)
    item, key, printed = seal(run, src)

    assert os.path.getsize(item) == sealed_size(size)
    assert mode(key) == 0o600
    if size >= 16:  # no run of the plaintext in the item
        assert content[:16] not in item.read_bytes()

    assert open_stdout(run, item, key) == content

    out = tmp / "out.bin"
    r = run("data", "open", item, "--data-key", key, "-o", out)
    assert (r.returncode, r.stdout) == (EXIT.OK, b""), r
    assert out.read_bytes() == content
    assert mode(out) == 0o600

    fields = info(run, item)
    assert fields["id"] == printed
    assert f"({size} bytes)" in fields["size"]
    assert fields["chunks"].startswith(f"{chunks_of(size)} of 64 KiB")
    assert fields["checked"].startswith("no")
    checked = info(run, item, key)
    assert checked["id"] == printed
    assert checked["checked"] == "every chunk authenticates under the key"


def test_a_100_mb_file_round_trips(run, tmp):
    size = 100 * 1000 * 1000
    # a random block whose length is no multiple of the chunk size, repeated: cheap to
    # write, yet no two chunks are alike (a chunk out of place would show)
    block = os.urandom(1_000_003)
    expected = hashlib.sha256()
    src = tmp / "big.bin"
    with open(src, "wb") as f:
        left = size
        while left:
            piece = block[:left]
            f.write(piece)
            expected.update(piece)
            left -= len(piece)
    item, key, printed = seal(run, src, item=tmp / "big.tpd", key=keygen(run, tmp / "data.key"))
    assert os.path.getsize(item) == sealed_size(size) == HEADER + TAG * 1526 + size

    out = open_stdout(run, item, key)
    assert len(out) == size and hashlib.sha256(out).digest() == expected.digest()
    del out

    dest = tmp / "big.out"
    r = run("data", "open", item, "--data-key", key, "-o", dest)
    assert (r.returncode, r.stdout) == (EXIT.OK, b""), r
    assert mode(dest) == 0o600
    got = hashlib.sha256()
    with open(dest, "rb") as f:
        while piece := f.read(1 << 22):
            got.update(piece)
    assert got.digest() == expected.digest()

    fields = info(run, item, key)
    assert fields["id"] == printed
    assert f"({size} bytes)" in fields["size"]
    assert fields["chunks"].startswith("1526 of 64 KiB")


def test_seal_under_a_given_key_writes_no_new_key(run, tmp):
    key = keygen(run, tmp / "data.key")
    src = tmp.write("in.bin", b"under a given key")
    item, _, _ = seal(run, src, item=tmp / "x.tpd", key=key)
    assert not os.path.exists(f"{item}.key")
    assert open_stdout(run, item, key) == b"under a given key"


def test_each_seal_gets_a_new_id(run, tmp):
    key = keygen(run, tmp / "data.key")
    src = tmp.write("in.bin", b"the same bytes")
    _, _, a = seal(run, src, item=tmp / "a.tpd", key=key)
    _, _, b = seal(run, src, item=tmp / "b.tpd", key=key)
    assert a != b
    assert (tmp / "a.tpd").read_bytes() != (tmp / "b.tpd").read_bytes()


# ---------------------------------------------------------------- keygen --symmetric


def test_keygen_symmetric_writes_a_0600_text_key(run, tmp):
    path = keygen(run, tmp / "sym.key")
    assert mode(path) == 0o600
    assert KEY_LINES.match(path.read_text()), path.read_text()
    assert not os.path.exists(tmp / "sym.pub")
    other = keygen(run, tmp / "other.key")
    assert other.read_text() != path.read_text()


def test_keygen_symmetric_never_overwrites(run, tmp):
    path = keygen(run, tmp / "sym.key")
    before = path.read_bytes()
    r = run("keygen", "--symmetric", "-o", path)
    assert r.returncode == EXIT.USAGE, r
    assert "exists" in one_line(r)
    assert path.read_bytes() == before


def test_keygen_symmetric_refuses_pub(run, tmp):
    r = run("keygen", "--symmetric", "-o", tmp / "sym.key", "--pub", tmp / "sym.pub")
    assert r.returncode == EXIT.USAGE, r
    assert "--pub" in one_line(r)
    assert not os.path.exists(tmp / "sym.key") and not os.path.exists(tmp / "sym.pub")


def test_a_key_others_may_read_is_refused(run, tmp):
    key = keygen(run, tmp / "data.key")
    src = tmp.write("in.bin", b"secret")
    item, _, _ = seal(run, src, item=tmp / "in.tpd", key=key)
    key.chmod(0o644)

    r = run("data", "seal", src, "-o", tmp / "again.tpd", "--data-key", key)
    assert r.returncode == EXIT.USAGE, r
    assert "chmod 600" in one_line(r)
    assert not os.path.exists(tmp / "again.tpd")

    r = run("data", "open", item, "--data-key", key)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "chmod 600" in one_line(r)

    r = run("data", "open", item, "--data-key", key, "-o", tmp / "out.bin")
    assert r.returncode == EXIT.USAGE, r
    assert "chmod 600" in one_line(r)
    assert not os.path.exists(tmp / "out.bin")


def test_open_without_a_key_names_data_key(run, tmp):
    item, _, _ = seal(run, tmp.write("in.bin", b"x"))
    r = run("data", "open", item)
    assert (r.returncode, r.stdout) == (EXIT.KEY_MISSING, b""), r
    assert "--data-key" in one_line(r)


# ---------------------------------------------------------------- tampering


THREE_CHUNKS = 2 * CHUNK + 1000


@pytest.fixture
def sealed3(run, tmp):
    """A 3-chunk item sealed under its own key: (item, key, content, id)."""
    content = os.urandom(THREE_CHUNKS)
    key = keygen(run, tmp / "data.key")
    item, _, printed = seal(run, tmp.write("in.bin", content), item=tmp / "in.tpd", key=key)
    assert os.path.getsize(item) == sealed_size(THREE_CHUNKS)
    return item, key, content, printed


def flip(offset):
    def change(data, _tmp, _run, _key):
        data[offset] ^= 0x01
        return data
    return change


def truncate_to(length):
    def change(data, _tmp, _run, _key):
        return data[:length]
    return change


def append_byte(data, _tmp, _run, _key):
    return data + b"\0"


def swap_chunks_0_and_1(data, _tmp, _run, _key):
    a, b, c = chunk_offset(0), chunk_offset(1), chunk_offset(2)
    return data[:a] + data[b:c] + data[a:b] + data[c:]


def chunk_from_another_item(data, tmp, run, key):
    # another item of the same size under the same key: only its id differs
    other, _, _ = seal(run, tmp.write("other.bin", os.urandom(THREE_CHUNKS)), item=tmp / "other.tpd",
                       key=key)
    theirs = other.read_bytes()
    assert theirs[ID_FIELD:CHECK_FIELD] != data[ID_FIELD:CHECK_FIELD]
    a, b = chunk_offset(1), chunk_offset(2)
    return data[:a] + theirs[a:b] + data[b:]


LAST = chunk_offset(2)

# what each change does to the item, and what the refusal's one line must say
TAMPER = {
    "size-field": (flip(SIZE_FIELD), "another key"),
    "size-field-high-byte": (flip(SIZE_FIELD + 3), "another key"),
    "id": (flip(ID_FIELD + 5), "another key"),
    "key-check": (flip(CHECK_FIELD + 7), "another key"),
    "chunk-0-ciphertext": (flip(chunk_offset(0) + 100), "chunk 0 of 3 does not authenticate"),
    "last-chunk-ciphertext": (flip(LAST + 999), "chunk 2 of 3 does not authenticate"),
    "chunk-0-tag": (flip(chunk_offset(0) + CHUNK + 3), "chunk 0 of 3 does not authenticate"),
    "last-chunk-tag": (flip(LAST + 1000 + 15), "chunk 2 of 3 does not authenticate"),
    "truncated-at-chunk-boundary": (truncate_to(LAST), "truncated"),
    "truncated-mid-chunk": (truncate_to(chunk_offset(1) + 500), "truncated"),
    "truncated-to-the-header": (truncate_to(HEADER), "truncated"),
    "one-byte-appended": (append_byte, "bytes added"),
    "chunks-0-and-1-swapped": (swap_chunks_0_and_1, "chunk 0 of 3 does not authenticate"),
    "chunk-from-another-item": (chunk_from_another_item, "chunk 1 of 3 does not authenticate"),
}


def assert_refused(run, tmp, item, key, expect, code=EXIT.DATA_REFUSED):
    """open to stdout and to -o are both refused with one line naming the problem,
    and nothing of the plaintext is written; info --data-key refuses it too."""
    r = run("data", "open", item, "--data-key", key)
    assert r.returncode == code, r
    assert r.stdout == b"", "plaintext written for a refused item"
    assert expect in one_line(r), r

    dest = tmp / "opened.bin"
    r = run("data", "open", item, "--data-key", key, "-o", dest)
    assert r.returncode == code, r
    assert expect in one_line(r), r
    assert not os.path.lexists(dest), "an -o file was left for a refused item"

    r = run("data", "info", item, "--data-key", key)
    assert r.returncode == code, r
    assert expect in one_line(r), r


@pytest.mark.parametrize("case", TAMPER)
def test_a_changed_item_is_refused(run, tmp, sealed3, case):
    item, key, _, _ = sealed3
    change, expect = TAMPER[case]
    data = change(bytearray(item.read_bytes()), tmp, run, key)
    item.write_bytes(bytes(data))
    assert_refused(run, tmp, item, key, expect)


def test_an_item_sealed_with_another_key_is_refused(run, tmp, sealed3):
    item, _, _, _ = sealed3
    other = keygen(run, tmp / "other.key")
    assert_refused(run, tmp, item, other, "another key")


def test_a_file_that_is_no_item_is_refused(run, tmp):
    key = keygen(run, tmp / "data.key")
    for name, data in [("plain.txt", b"just some text, not sealed\n" * 100), ("empty", b""),
                       ("short", b"teepy-pf")]:
        path = tmp.write(name, data)
        assert_refused(run, tmp, path, key, "not a teepy protected file")
        r = run("data", "info", path)
        assert r.returncode == EXIT.DATA_REFUSED, r
        assert "not a teepy protected file" in one_line(r)


def test_a_later_version_is_refused(run, tmp, sealed3):
    item, key, _, _ = sealed3
    data = bytearray(item.read_bytes())
    assert data[:8] == b"teepy-pf" and data[VERSION_FIELD:VERSION_FIELD + 2] == b"\x01\x00"
    data[VERSION_FIELD:VERSION_FIELD + 2] = b"\x02\x00"
    item.write_bytes(bytes(data))
    assert_refused(run, tmp, item, key, "version")
    r = run("data", "info", item)
    assert r.returncode == EXIT.DATA_REFUSED, r
    assert "version" in one_line(r)


def test_items_swapped_by_name_each_open_to_their_own_content(run, tmp):
    # Two items sealed under one --data-key and swapped by renaming both open: the
    # codec authenticates each item as a whole and cannot know which name it was
    # given. What tells them apart is the id, which `data seal` printed and `data
    # info` shows (the platform will name data by it; a run does not check it yet),
    # or a key of each item's own, the default.
    key = keygen(run, tmp / "data.key")
    a_item, _, a_id = seal(run, tmp.write("a.bin", b"content of A"), item=tmp / "a.tpd", key=key)
    b_item, _, b_id = seal(run, tmp.write("b.bin", b"content of B"), item=tmp / "b.tpd", key=key)
    os.rename(a_item, tmp / "swap")
    os.rename(b_item, a_item)
    os.rename(tmp / "swap", b_item)

    assert open_stdout(run, a_item, key) == b"content of B"
    assert open_stdout(run, b_item, key) == b"content of A"
    assert info(run, a_item, key)["id"] == b_id != a_id
    assert info(run, b_item, key)["id"] == a_id != b_id


# ---------------------------------------------------------------- no plaintext on disk


def _holds(path, marker):
    with open(path, "rb") as f:
        tail = b""
        while piece := f.read(1 << 22):
            if marker in tail + piece:
                return True
            tail = piece[-len(marker):]
    return False


def _files_holding(marker, roots, since):
    """Readable regular files under roots, changed since `since`, that hold marker."""
    found = set()
    for root in roots:
        for d, _dirs, files in os.walk(root):
            for n in files:
                p = os.path.join(d, n)
                try:
                    st = os.lstat(p)
                    if stat.S_ISREG(st.st_mode) and max(st.st_mtime, st.st_ctime) >= since \
                            and _holds(p, marker):
                        found.add(os.path.realpath(p))
                except OSError:  # unreadable, or gone meanwhile: another program's
                    continue
    return found


def test_no_plaintext_reaches_the_disk(run, tmp, run_cwd):
    started = time.time() - 1
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()
    # the marker in the first, a middle and the last chunk
    content = marker + os.urandom(CHUNK) + marker + os.urandom(CHUNK) + marker
    src = tmp.write("secret.bin", content)
    item, key, _ = seal(run, src)

    assert marker not in item.read_bytes()
    assert marker not in key.read_bytes()
    assert _files_holding(marker, [tmp, "/tmp"], started) == {str(src)}

    assert open_stdout(run, item, key) == content
    assert os.listdir(run_cwd) == []
    assert _files_holding(marker, [tmp, "/tmp", run_cwd], started) == {str(src)}


# ---------------------------------------------------------------- usage errors


def test_an_unknown_action_is_a_usage_error(run):
    r = run("data", "frobnicate", "x")
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "unknown action" in one_line(r)


def test_no_action_is_a_usage_error(run):
    r = run("data")
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    one_line(r)


@pytest.mark.parametrize("action", ["seal", "open", "info"])
def test_a_missing_file_argument_is_a_usage_error(run, action):
    r = run("data", action)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    one_line(r)


def test_info_takes_no_output(run, tmp):
    item, _, _ = seal(run, tmp.write("in.bin", b"x"))
    r = run("data", "info", item, "-o", tmp / "info.txt")
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "-o" in one_line(r)
    assert not os.path.exists(tmp / "info.txt")


@pytest.mark.parametrize("action", ["seal", "open", "info"])
def test_a_missing_input_file_is_a_usage_error(run, tmp, action):
    key = keygen(run, tmp / "data.key")
    missing = tmp / "no-such-file"
    r = run("data", action, missing, "--data-key", key, *(["-o", tmp / "out"] if action != "info" else []))
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "no-such-file" in one_line(r)
    assert not os.path.exists(tmp / "out")


@pytest.mark.parametrize("action", ["seal", "open", "info"])
def test_a_directory_as_input_is_a_usage_error(run, tmp, action):
    key = keygen(run, tmp / "data.key")
    d = tmp / "adir"
    d.mkdir()
    r = run("data", action, d, "--data-key", key, *(["-o", tmp / "out"] if action != "info" else []))
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    one_line(r)
    assert not os.path.exists(tmp / "out")
    assert os.listdir(d) == []


def test_info_without_a_key_refuses_what_is_no_regular_file_as_a_usage_error(run, tmp):
    d = tmp / "adir"
    d.mkdir()
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    for path in (d, "/dev/null", fifo):  # a FIFO nobody writes must not hang it
        r = run("data", "info", path)
        assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
        assert "not a regular file" in one_line(r)


def test_a_file_that_grows_while_it_is_sealed_is_refused(run, tmp):
    """/proc's files say size 0 and then have content: sealed, they would be cut."""
    r = run("data", "seal", "/proc/self/status", "-o", tmp / "status.tpd")
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "changed while it was sealed" in one_line(r)
    assert not os.path.exists(tmp / "status.tpd")
    assert not os.path.exists(tmp / "status.tpd.key")


def test_seal_never_overwrites_the_item(run, tmp):
    src = tmp.write("in.bin", b"new content")
    existing = tmp.write("in.bin.tpd", b"already here")
    r = run("data", "seal", src)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "exists" in one_line(r)
    assert existing.read_bytes() == b"already here"
    assert not os.path.exists(tmp / "in.bin.tpd.key")

    other = tmp.write("other.tpd", b"also here")
    r = run("data", "seal", src, "-o", other)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "exists" in one_line(r)
    assert other.read_bytes() == b"also here"


def test_seal_never_overwrites_a_key(run, tmp):
    src = tmp.write("in.bin", b"new content")
    key = tmp.write("in.bin.tpd.key", b"an old key file", mode=0o600)
    r = run("data", "seal", src)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "exists" in one_line(r)
    assert key.read_bytes() == b"an old key file"
    assert not os.path.exists(tmp / "in.bin.tpd")


def test_open_never_overwrites_the_output(run, tmp):
    item, key, _ = seal(run, tmp.write("in.bin", b"sealed content"))
    dest = tmp.write("out.bin", b"keep me")
    r = run("data", "open", item, "--data-key", key, "-o", dest)
    assert (r.returncode, r.stdout) == (EXIT.USAGE, b""), r
    assert "exists" in one_line(r)
    assert dest.read_bytes() == b"keep me"


# ---------------------------------------------------------------- an unprivileged user


@pytest.mark.parametrize("as_user", ["user"], indirect=True)  # root: the tests above
def test_seal_and_open_as_an_unprivileged_user(as_user, run, tmp):
    assert run.variant == "user"
    work = tmp / "nobody"
    work.mkdir()
    if os.geteuid() == 0:
        shutil.chown(work, 65534, 65534)
    content = os.urandom(CHUNK + 7)
    src = work / "in.bin"
    src.write_bytes(content)
    src.chmod(0o644)

    item, key, printed = seal(run, src)
    owner = 65534 if os.geteuid() == 0 else os.geteuid()
    assert os.stat(item).st_uid == os.stat(key).st_uid == owner
    assert mode(key) == 0o600
    assert open_stdout(run, item, key) == content
    dest = work / "out.bin"
    r = run("data", "open", item, "--data-key", key, "-o", dest)
    assert (r.returncode, r.stdout) == (EXIT.OK, b""), r
    assert dest.read_bytes() == content and mode(dest) == 0o600
    assert info(run, item, key)["id"] == printed
