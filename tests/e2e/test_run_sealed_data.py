"""`teepy run --data ITEM.tpd --data-key KEY`: sealed data items (teepy data seal)
reach TEEX_getdata as their plaintext, checked first; without their key, or changed,
the run stops before any service code (docs/cli.md, "Sealed data items")."""
import hashlib
import os
import subprocess
import time

import pytest

from exit_codes import EXIT

NOBODY = 65534

# every item's length and SHA-256, in order
DIGESTS = """
import hashlib, json, teex
out, i = [], 0
while True:
    try:
        d = teex.TEEX_getdata(i)
    except IndexError:
        break
    out.append([len(d), hashlib.sha256(d).hexdigest()])
    i += 1
teex.TEEX_return(json.dumps(out))
"""

MARKER = b"TEEPY-SEALED-DATA-MARKER-7f3a"


def teepy_direct(teepy, *args):
    return subprocess.run([str(teepy), *map(str, args)], capture_output=True, timeout=60)


@pytest.fixture
def seal(teepy, tmp, variant):
    """seal(name, content, key=None) -> (item path, key path): a sealed item in tmp,
    its key readable by whoever runs teepy in this test (uid 65534 for 'user')."""

    def _seal(name, content, key=None):
        plain = tmp.write(name, content)
        args = ["data", "seal", plain, "-o", f"{plain}.tpd"]
        if key:
            args += ["--data-key", key]
        r = teepy_direct(teepy, *args)
        assert r.returncode == EXIT.OK, r.stderr.decode()
        key = key or f"{plain}.tpd.key"
        if variant == "user" and os.geteuid() == 0:
            os.chown(key, NOBODY, NOBODY)
        os.remove(plain)  # only the sealed item is left
        return f"{plain}.tpd", key

    return _seal


def new_key(teepy, tmp, variant, name="shared.key"):
    path = os.path.join(str(tmp), name)
    r = teepy_direct(teepy, "keygen", "--symmetric", "-o", path)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    if variant == "user" and os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    return path


def digest(content):
    return [len(content), hashlib.sha256(content).hexdigest()]


def test_sealed_items_reach_getdata_as_their_plaintext(as_user, run, script, seal, tmp):
    """A sealed --data item of four chunks, a sealed empty one, and a plain
    --task-data file: the service reads each one's plaintext, in order."""
    big = bytes(range(256)) * 1000 + MARKER  # 256,000 bytes and a marker
    a, a_key = seal("a.bin", big)
    empty, empty_key = seal("empty.bin", b"")
    plain = tmp.write("plain.txt", b"not sealed\n")
    r = run("run", script(DIGESTS), "--data", a, "--data", f"{empty}:{empty_key}",
            "--task-data", plain, "--data-key", a_key)
    assert r.returncode == EXIT.OK, r.err
    assert r.json() == [digest(big), digest(b""), digest(b"not sealed\n")]


def test_one_data_key_serves_every_sealed_item_and_several_go_in_order(
        as_user, teepy, run, script, seal, tmp, variant):
    shared = new_key(teepy, tmp, variant)
    one, _ = seal("one.txt", b"first", key=shared)
    two, _ = seal("two.txt", b"second", key=shared)
    three, three_key = seal("three.txt", b"third")
    r = run("run", script(DIGESTS), "--data", one, "--task-data", two, "--data-key", shared)
    assert r.returncode == EXIT.OK, r.err
    assert r.json() == [digest(b"first"), digest(b"second")]
    # one key each, in the order of the items (task data after service data)
    r = run("run", script(DIGESTS), "--task-data", three, "--data", one,
            "--data-key", shared, "--data-key", three_key)
    assert r.returncode == EXIT.OK, r.err
    assert r.json() == [digest(b"first"), digest(b"third")]
    # in the wrong order, the first item is refused with its key named as the suspect
    r = run("run", script(DIGESTS), "--task-data", three, "--data", one,
            "--data-key", three_key, "--data-key", shared)
    assert r.returncode == EXIT.DATA_REFUSED, r.err
    assert "--data " + one in r.err and "another key" in r.err


def test_a_sealed_item_without_its_key_stops_the_run_before_the_service(
        as_user, run, script, seal):
    """The service would return at once (stdout): nothing comes, only one line."""
    item, _ = seal("d.txt", b"secret")
    s = script("import teex\nteex.TEEX_return('the service ran')\n")
    r = run("run", s, "--data", item)
    assert r.returncode == EXIT.KEY_MISSING, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "--data-key KEY" in lines[0] and item in lines[0], r.err
    assert r.stdout == b""


@pytest.mark.parametrize("offset, expect", [
    (20, "another key"),          # the plaintext size in the header
    (40, "another key"),          # the id
    (60, "another key"),          # the key check
    (72 + 5, "does not authenticate"),   # a ciphertext byte of chunk 0
    (-3, "does not authenticate"),       # a byte of the last chunk's tag
])
def test_a_changed_item_is_refused_with_one_line(as_user, run, script, seal, offset, expect):
    item, key = seal("d.bin", b"x" * 70000)  # two chunks
    data = bytearray(open(item, "rb").read())
    data[offset] ^= 0x01
    open(item, "wb").write(bytes(data))
    r = run("run", script(DIGESTS), "--data", item, "--data-key", key)
    assert r.returncode == EXIT.DATA_REFUSED, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and expect in lines[0], r.err
    assert r.stdout == b""


def test_a_truncated_item_and_an_item_under_another_key_are_refused(
        as_user, teepy, run, script, seal, tmp, variant):
    item, key = seal("d.bin", b"y" * 70000)
    other = new_key(teepy, tmp, variant, "other.key")
    r = run("run", script(DIGESTS), "--data", item, "--data-key", other)
    assert r.returncode == EXIT.DATA_REFUSED and "another key" in r.err, r.err
    data = open(item, "rb").read()
    open(item, "wb").write(data[:72 + 65536 + 16])  # at the chunk boundary
    r = run("run", script(DIGESTS), "--data", item, "--data-key", key)
    assert r.returncode == EXIT.DATA_REFUSED and "truncated" in r.err, r.err


def test_key_usage_errors_are_one_line_each(as_user, run, script, seal, tmp, variant):
    item, key = seal("d.txt", b"z")
    plain = tmp.write("plain.txt", b"p")
    not_a_key = tmp.write("not-a-key.txt", b"p", mode=0o600)
    if variant == "user" and os.geteuid() == 0:
        os.chown(not_a_key, NOBODY, NOBODY)
    s = script(DIGESTS)
    cases = [
        (["--data", plain, "--data-key", key], "no --data or --task-data item is sealed"),
        (["--data", item, "--data", item, "--data", item, "--data-key", key,
          "--data-key", key], "2 given, for 3 sealed items"),
        (["--data", item, "--data-key", os.path.join(str(tmp), "missing.key")], "No such file"),
        (["--data", item, "--data-key", not_a_key], "not a teepy symmetric key"),
    ]
    for args, expect in cases:
        r = run("run", s, *args)
        lines = r.err.strip().splitlines()
        assert r.returncode == EXIT.USAGE, (args, r.err)
        assert len(lines) == 1 and expect in lines[0], (args, r.err)


def test_a_key_others_may_read_is_refused(run, script, seal):
    item, key = seal("d.txt", b"k")
    os.chmod(key, 0o644)
    r = run("run", script(DIGESTS), "--data", item, "--data-key", key)
    assert r.returncode == EXIT.USAGE and "chmod 600" in r.err, r.err


def test_the_plaintext_of_a_sealed_item_never_reaches_a_file(as_user, run, script, seal, tmp,
                                                             run_cwd):
    """The service reads the item and returns only its length: the marker is
    nowhere on disk afterwards, not in the sealed item, not in /tmp, the working
    directory or the test's directory, nor in teepy's output."""
    started = time.time() - 1
    item, key = seal("m.bin", b"head " + MARKER + b" tail")
    s = script("import teex\nteex.TEEX_return(str(len(teex.TEEX_getdata(0))))\n")
    r = run("run", s, "--data", item, "--data-key", key)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == str(len(b"head " + MARKER + b" tail")).encode()
    assert MARKER not in r.stdout + r.stderr
    found = []
    for top in {"/tmp", str(run_cwd), str(tmp)}:
        for root, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                    if not os.path.isfile(path) or st.st_mtime < started or st.st_size > 1 << 24:
                        continue
                    if MARKER in open(path, "rb").read():
                        found.append(path)
                except OSError:
                    continue
    assert found == [], found


def test_a_plain_file_in_place_of_a_sealed_item_is_refused(as_user, teepy, run, script, seal,
                                                         tmp, variant):
    """Items named as sealed (*.tpd, or with a key of their own) must be sealed: a
    plain file, or one whose magic was changed, put in place of one is refused, even
    among other items under the same key, and never reaches the service."""
    shared = new_key(teepy, tmp, variant)
    a, _ = seal("a.txt", b"genuine a", key=shared)
    b, _ = seal("b.txt", b"genuine b", key=shared)
    s = script(DIGESTS)
    with open(b, "wb") as f:
        f.write(b"attacker data\n")
    r = run("run", s, "--data", a, "--data", b, "--data-key", shared)
    assert r.returncode == EXIT.DATA_REFUSED, r.err
    assert "not a teepy protected file" in r.err and b in r.err and r.stdout == b""
    c, c_key = seal("c.txt", b"genuine c")
    data = bytearray(open(c, "rb").read())
    data[0] ^= 0x01  # "teepy-pf" no more
    open(c, "wb").write(bytes(data))
    for args in (["--data", c, "--data-key", c_key], ["--data", f"{c}:{c_key}"]):
        r = run("run", s, *args)
        assert r.returncode == EXIT.DATA_REFUSED, (args, r.err)
        assert "not a teepy protected file" in r.err and r.stdout == b"", (args, r.err)
