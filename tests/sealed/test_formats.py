"""Manifest formats: teepy build writes format 2; a format 1 bundle (teepy 0.1's)
still runs; what format 2 can say but this teepy cannot do yet (another engine) is
refused at run in one line, exit 8. A server's bundle (network "listen") runs only
with a socket, and a bundle without that policy takes none."""
import json
import os
import struct

import pytest

from sealed_support import (as_format_1, build, bundle_manifest, canonical, inspect_json,
                            resign, teepy, write_app)

SVC = '''import teex
import helper
teex.TEEX_return(helper.greet(teex.TEEX_getinput()))
'''
HELPER = '''def greet(name):
    return "hello, " + name
'''
EXIT_BUNDLE = 8
EXIT_USAGE = 2


@pytest.fixture
def hello(work, keys):
    app = write_app(work, {"svc.py": SVC, "helper.py": HELPER})
    return build(work, keys, os.path.join(app, "svc.py"), "--input", "sample")


def run_bundle(bundle, keys, *args):
    return teepy("run", bundle, "--trust", keys[1], *args)


def errors(r):
    return [l for l in r.stderr.decode().splitlines() if l.startswith("teepy:")]


def raw_manifest(bundle):
    data = open(bundle, "rb").read()
    return data[24:24 + struct.unpack_from("<I", data, 12)[0]]


def test_build_writes_format_2_with_todays_defaults(hello):
    m = bundle_manifest(hello)
    assert m["format"] == 2
    assert m["encryption"] is None and m["trees"] == []
    assert m["product_id"] == 0 and m["security_version"] == 0
    assert m["policy"]["network"] == "none"
    assert m["engine"]["name"] == "cpython"
    import sysconfig
    assert m["engine"]["version"] == sysconfig.get_python_version()  # "3.11"
    assert all(f["encrypted"] is False and "id" not in f for f in m["files"].values())
    # this helper writes manifests exactly as teepy does
    assert canonical(m) == raw_manifest(hello)


def test_inspect_shows_the_format_2_keys(hello):
    info = inspect_json(hello)
    assert info["format"] == 2
    assert info["supported"] is True and info["unsupported"] is None
    assert info["engine"]["name"] == "cpython" and info["network"] == "none"
    assert info["product_id"] == 0 and info["security_version"] == 0
    assert info["trees"] == [] and info["encryption"] is None
    assert all(f["encrypted"] is False for f in info["files"])
    text = teepy("inspect", hello).stdout.decode()
    for line in ("format     2", "engine     cpython ", "product    id 0, security version 0",
                 "network none", "encryption none", "supported  yes"):
        assert line in text, text


def test_a_format_1_bundle_still_runs(work, keys, hello):
    """teepy 0.1 wrote format 1, which has none of format 2's keys: such a bundle
    runs as it always did, and inspect shows the defaults it gets."""
    old = resign(hello, keys[0], as_format_1(bundle_manifest(hello)),
                 os.path.join(work, "v1.tpy"))
    assert b'"format":1' in raw_manifest(old) and b"engine" not in raw_manifest(old)
    r = run_bundle(old, keys, "--input", "old")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hello, old"
    info = inspect_json(old)
    assert info["format"] == 1 and info["supported"] is True
    assert info["engine"]["name"] == "cpython" and info["network"] == "none"
    assert info["trees"] == [] and info["encryption"] is None
    assert "(engine, ids, network, trees and encryption: defaults)" in \
        teepy("inspect", old).stdout.decode()


def test_a_format_1_manifest_with_a_format_2_key_is_refused(work, keys, hello):
    old = as_format_1(bundle_manifest(hello))
    old["product_id"] = 0
    bad = resign(hello, keys[0], old, os.path.join(work, "bad.tpy"))
    r = run_bundle(bad, keys, "--input", "x")
    assert r.returncode == EXIT_BUNDLE
    assert errors(r) == [f'teepy: {bad}: manifest: unknown key "product_id" in the manifest']


def test_a_newer_format_is_refused_in_one_line(work, keys, hello):
    m = bundle_manifest(hello)
    m["format"] = 4
    newer = resign(hello, keys[0], m, os.path.join(work, "v4.tpy"))
    r = run_bundle(newer, keys, "--input", "x")
    assert r.returncode == EXIT_BUNDLE
    assert errors(r) == [f"teepy: {newer}: manifest: format 4 is not supported (this teepy "
                         "reads formats 1 to 3; a newer teepy built it)"]


def test_format_3_is_format_2_and_the_site_key(work, keys, hello):
    """A format 2 manifest relabelled 3 lacks "site"; with it (empty), it runs."""
    m = bundle_manifest(hello)
    m["format"] = 3
    bad = resign(hello, keys[0], m, os.path.join(work, "v3.tpy"))
    r = run_bundle(bad, keys, "--input", "x")
    assert r.returncode == EXIT_BUNDLE
    assert errors(r) == [f"teepy: {bad}: manifest: the manifest lacks \"site\""]
    m["site"] = []
    ok = resign(hello, keys[0], m, os.path.join(work, "v3ok.tpy"))
    r = run_bundle(ok, keys, "--input", "x")
    assert r.returncode == 0, r.stderr


def encrypted(m):
    m["encryption"] = {"algorithm": "aes-256-gcm", "chunk_size": 65536, "key_id": "svc/key"}
    m["files"]["/app/helper.py"]["encrypted"] = True
    m["files"]["/app/helper.py"]["id"] = "00" * 32


def encryption_section_only(m):
    m["encryption"] = {"algorithm": "aes-256-gcm", "chunk_size": 4096, "key_id": "k"}


def listen(m):
    m["policy"]["network"] = "listen"


def pypy(m):
    m["engine"] = {"name": "pypy", "version": "3.10"}


def other_cpython(m):
    m["engine"]["version"] = "3.99"


NOT_YET = {
    "another pypy": (pypy, "engine pypy 3.10 is not supported by this teepy, which runs pypy 3.9 "),
    "another cpython": (other_cpython, "engine cpython 3.99 is not supported by this teepy, "
                                       "which runs cpython "),
}


@pytest.mark.parametrize("what", sorted(NOT_YET))
def test_what_is_not_built_yet_is_refused_at_run(work, keys, hello, what):
    change, says = NOT_YET[what]
    m = bundle_manifest(hello)
    change(m)
    later = resign(hello, keys[0], m, os.path.join(work, "later.tpy"))
    r = run_bundle(later, keys, "--input", "x")
    assert r.returncode == EXIT_BUNDLE, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1 and lines[0].startswith(f"teepy: {later}: {says}"), lines
    assert r.stdout == b""
    # inspect shows such a bundle all the same, saying what this teepy lacks
    info = inspect_json(later)
    assert info["supported"] is False and info["unsupported"].startswith(says)


def test_a_servers_bundle_runs_only_with_a_socket(work, keys, hello):
    m = bundle_manifest(hello)
    listen(m)
    server = resign(hello, keys[0], m, os.path.join(work, "server.tpy"))
    r = run_bundle(server, keys, "--input", "x")
    assert r.returncode == EXIT_USAGE, r.stderr.decode()
    assert errors(r) == [f'teepy: {server} serves on a socket (policy network "listen"): give it '
                         "one (teepy run --listen ADDR:PORT or --listen-fd N)"]
    assert r.stdout == b""
    # given one, it runs (this one returns at once: a server's end without a stop)
    r = run_bundle(server, keys, "--input", "x", "--listen", "127.0.0.1:0")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hello, x"
    assert inspect_json(server)["supported"] is True
    # a bundle without the policy takes no socket
    r = run_bundle(hello, keys, "--input", "x", "--listen", "127.0.0.1:0")
    assert r.returncode == EXIT_USAGE, r.stderr.decode()
    assert errors(r)[-1] == (f'teepy: {hello} has no network (policy network "none"): it takes '
                             "no listening socket")
    assert r.stdout == b""


@pytest.mark.parametrize("change", [encrypted, encryption_section_only])
def test_an_encrypted_manifest_asks_for_its_key_before_anything_runs(work, keys, hello, change):
    """Encryption is supported: a bundle that says so runs only with its key, and
    without one stops in one line that names --bundle-key (exit 10)."""
    m = bundle_manifest(hello)
    change(m)
    sealed = resign(hello, keys[0], m, os.path.join(work, "enc.tpy"))
    r = run_bundle(sealed, keys, "--input", "x")
    assert r.returncode == 10, r.stderr.decode()
    lines = errors(r)
    assert len(lines) == 1 and "--bundle-key KEY" in lines[0] and m["encryption"]["key_id"] \
        in lines[0], lines
    assert r.stdout == b""
    assert inspect_json(sealed)["supported"] is True


def test_inspect_shows_trees_ids_and_encryption(work, keys, hello):
    m = bundle_manifest(hello)
    encrypted(m)
    m["product_id"], m["security_version"] = 42, 7
    m["trees"] = [{"kind": "libraries", "path": "/lib"}, {"kind": "libraries", "path": "/lib64"},
                  {"kind": "prefix", "path": "/usr"}]
    shown = resign(hello, keys[0], m, os.path.join(work, "shown.tpy"))
    info = inspect_json(shown)
    assert info["product_id"] == 42 and info["security_version"] == 7
    assert info["trees"] == m["trees"]
    assert info["encryption"] == m["encryption"]
    helper = [f for f in info["files"] if f["path"] == "/app/helper.py"][0]
    assert helper["encrypted"] is True and helper["id"] == "00" * 32
    text = teepy("inspect", shown)
    assert text.returncode == 0
    out = text.stdout.decode()
    assert "product    id 42, security version 7" in out
    assert "trees      libraries /lib\n           libraries /lib64\n           prefix    /usr\n" \
        in out
    assert "encryption aes-256-gcm, chunks of 64 KiB, key id svc/key" in out
    assert " BE  0644 " in out and ("id    " + "00" * 32) in out
