"""The suite's own safety net: the host check notices what an escape would leave."""
import os
import time
import uuid


def test_host_check_notices_file_made_during_a_run(host_check):
    before = host_check.snapshot()
    path = f"/tmp/teepy-pwned-selftest-{uuid.uuid4().hex}"
    start = time.time()
    try:
        with open(path, "w") as f:
            f.write("as if a sandboxed service had escaped")
        host_check.note_run(start, time.time())
        diff = host_check.differences(before)
        assert any(os.path.basename(path) in d for d in diff), diff
    finally:
        os.unlink(path)
    assert not any(os.path.basename(path) in d for d in host_check.differences(before))


def test_host_check_ignores_fixture_directories(host_check, tmp):
    before = host_check.snapshot()
    start = time.time()
    d = tmp.make_sibling("selftest")
    host_check.note_run(start, time.time())
    assert not any(d.name in x for x in host_check.differences(before))
