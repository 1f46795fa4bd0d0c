"""An invocation's process reused (docs/zygote.md, item 3): the worker's spawner hands
warm job after warm job to one forked process, which supervises the zygote's child,
opens the data items into memfds and a sealed input with the service's key, answers,
then wipes and closes what the job held and waits for the next. Read from outside,
as root, through /proc: its descriptors do not grow from one job to the next, a sealed
call's input, result and log are not in its memory once the job is done (and the same
reading finds them while the job runs), and one killed with SIGKILL in the middle of a
job fails that request with a JSON error while the worker, and the service's warm
starts, go on, and the spawner ends its child and removes the child's cgroups."""
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from test_sealed_invoke import (  # noqa: F401 (platform: a fixture)
    evidence, memory, opened_answer, platform, sealed_input, sim_worker, wire_invoke)
from test_worker import (  # noqa: F401 (store: a fixture)
    READ_DATA, Worker, _direct, _key_b64, comm, deployed, descendants, store)
from test_zygote import invoke_lines

SERVICE = """
import hashlib, json, time, teex
text = teex.TEEX_getinput()
""" + READ_DATA + """\
print("logged " + text[::-1], flush=True)
if text.startswith("big "):
    # big MARKER: the marker reversed near the start of a 40 KiB result and of each
    # of 40 lines of log, each written on its own (past the 32 bytes that a freed
    # heap block's links overwrite)
    m = text.split()[1][::-1]
    for _ in range(40):
        print(("big-log " + "l" * 32 + m + " ").ljust(1023, "l"), flush=True)
    teex.TEEX_return(("big-result " + "r" * 32 + m + " ").ljust(40 << 10, "r"))
    raise SystemExit(0)
if text.startswith("sleep "):
    time.sleep(float(text.split()[1]))
made = hashlib.sha256(text.encode()).hexdigest()
# the result as long as the input, its hash last: a longer input's result is not
# overwritten where a shorter one's is put after it
teex.TEEX_return(json.dumps({"data": data, "pad": "q" * len(text), "made": made}))
"""

DATA = {"a": b"REUSE-SERVICE-DATA-2c8e", "b": b"REUSE-TASK-DATA-b07d"}

SYS_RECVMSG = 47  # x86_64: where an invocation's process waits for its next job

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reading the spawner's "
                                "processes through /proc (not dumpable) needs root")


@pytest.fixture(scope="module")
def kit(teepy):
    """The service's bundle (svc.tpy) and two sealed data items (a.tpd as service data,
    b.tpd as task data), made once for the module, laid out as `deployed` takes."""
    d = Path(tempfile.mkdtemp(prefix="teepy-test-reuse-", dir="/tmp"))
    d.chmod(0o755)
    (d / "app").mkdir()
    (d / "app" / "svc.py").write_text(textwrap.dedent(SERVICE))
    _direct(teepy, "keygen", "-o", d / "signer.key")
    _direct(teepy, "build", d / "app" / "svc.py", "-o", d / "svc.tpy", "--key", d / "signer.key",
            "--input", "sample", "--memory", "256M", "--cpu-time", "3s")
    for name, content in DATA.items():
        (d / f"{name}.txt").write_bytes(content)
        _direct(teepy, "data", "seal", d / f"{name}.txt", "-o", d / f"{name}.tpd")
        os.remove(d / f"{name}.txt")
    for p in d.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def marker():
    """A fresh marker, and its reversal: what the service's log holds of an input that
    holds the marker."""
    m = f"REUSE-SECRET-{uuid.uuid4().hex}"
    return m, m[::-1]


def made(text):
    """What the service's result holds of its input (and nothing else of it)."""
    return hashlib.sha256(text.encode()).hexdigest()


def mappings(pid):
    """The process's writable private mappings (heap, stacks, anonymous), as memory()
    reads them but one by one: [(name, bytes)], the name "" for an anonymous one."""
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5].startswith("/")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                found.append((fields[5] if len(fields) > 5 else "", mem.read(end - start)))
            except (OSError, ValueError, OverflowError):
                continue
    return found


def children(pid):
    """The pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def invocation_processes(w):
    """The worker's invocation processes: the spawner's children that are forks of it
    (comm teepy-spawner), not its zygotes' keepers (teepy-zygote)."""
    spawners = [p for p in children(w.proc.pid) if comm(p) == "teepy-spawner"]
    assert len(spawners) == 1, spawners
    return [p for p in children(spawners[0]) if comm(p) == "teepy-spawner"]


def waiting(pid):
    """Whether the process is blocked waiting for a job (in recvmsg on its socket);
    None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/syscall").read_text().split()[0]) == SYS_RECVMSG
    except (OSError, ValueError, IndexError):
        return None


def fds(pid):
    """{fd: what it is} of the process."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def switches(pid):
    """Its context switches so far: a process waiting on its socket makes none."""
    status = Path(f"/proc/{pid}/status").read_text()
    return sum(int(l.split()[1]) for l in status.splitlines() if "ctxt_switches:" in l)


def all_waiting(w, timeout=10):
    """Polls until every invocation process waits for a job (each has answered and then
    freed its job): their pids."""
    deadline = time.time() + timeout
    while True:
        pids = invocation_processes(w)
        states = {p: waiting(p) for p in pids}
        if pids and all(s is not False for s in states.values()):
            return [p for p, s in states.items() if s]
        if time.time() > deadline:
            raise AssertionError(f"invocation processes still busy: {states!r}")
        time.sleep(0.02)


def busy(w, timeout=10):
    """Polls until one invocation process is not waiting for a job (it has one): its
    pid."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in invocation_processes(w):
            if waiting(p) is False:
                return p
        time.sleep(0.01)
    raise AssertionError("no invocation process took the job")


def ok(w, service, text, task=(), keys=None):
    s, r = w.invoke(service, text, task, keys)
    assert s == 200, (text, r)
    return json.loads(r["result"])


def starts(w, service, count):
    """The "start" field of the service's first `count` invocation lines."""
    lines = invoke_lines(w, service, count)
    assert len(lines) == count, lines
    return [l.get("start") for l in lines]


# ---------------------------------------------------------------------------


def test_descriptors_do_not_accumulate_in_a_reused_invocation_process(start, kit, store):
    """After 5 warm invocations with a service and a task data item (two memfds a job),
    each invocation process waiting for a job holds no memfd and some descriptors; after
    30 more, which one of them served (its context switches grew), each one still there
    holds no more than before."""
    w = Worker(start, store, kit / "signer.pub")
    service, _ = deployed(w, kit, ("a",))
    s, b = w.upload("data", kit / "b.tpd")
    assert s in (200, 201), b
    task, keys = [b["data"]], {b["data"]: _key_b64(kit / "b.tpd.key")}
    want = [DATA["a"].decode(), DATA["b"].decode()]
    for i in range(5):
        assert ok(w, service, f"warm {i}", task, keys)["data"] == want
    before = {p: (fds(p), switches(p)) for p in all_waiting(w)}
    for i in range(30):
        assert ok(w, service, f"again {i}", task, keys)["data"] == want
    after = {p: (fds(p), switches(p)) for p in all_waiting(w)}
    assert w.stop() == 0
    assert starts(w, service, 35)[1:] == ["warm"] * 34
    same = sorted(set(before) & set(after))
    served = [p for p in same if after[p][1] > before[p][1]]
    assert served, (before, after)  # a process was reused, not replaced
    grew = {p: (len(before[p][0]), len(after[p][0])) for p in same
            if len(after[p][0]) > len(before[p][0])}
    assert not grew, (grew, after)
    for p, (open_fds, _) in {**before, **after}.items():
        assert not [t for t in open_fds.values() if t.startswith("/memfd:")], (p, open_fds)


def sealed_then_plain(w, service):
    """A slow sealed call (sleep 2 s), its invocation process's memory read while it
    runs; then a sealed call with a long input, its marker in the middle, and one with
    a short input; then a plain call; then every invocation process's memory read, all
    of them waiting for a job. The long call's plaintext lies in pages of its own, its
    result and log are longer than the later calls', which reuse what they were held
    in, and its marker lies past the bytes a freed heap block's list pointers
    overwrite; the short call's plaintext lies in the small secrets' arena, where a
    plain call of a service without data items takes no slot. Returns (whether the
    slow input was found while it ran, the pid that ran it, the pids after,
    {"input"|"result"|"log": the three calls' markers}, {pid: mappings(pid)} after)."""
    s, got, _ = evidence(w, service, os.urandom(32).hex())
    assert s == 200, got
    pubkey = bytes.fromhex(got["claims"]["pubkey"])

    def sealed_call(text):
        reply, blob = sealed_input(pubkey, service, text)
        s, doc = wire_invoke(w, service, blob)
        assert s == 200 and "sealed" in doc, doc
        opened = opened_answer(reply, blob, doc)
        assert json.loads(opened["result"])["made"] == made(text), opened
        assert marker_of(text)[::-1] in opened["log"], opened

    def marker_of(text):
        return next(word for word in text.split() if word.startswith("REUSE-SECRET-"))

    slow, long, short = marker(), marker(), marker()
    texts = [f"sleep 2 {slow[0]}", f"long {'p' * 300} {long[0]} {'p' * 300}",
             f"short {short[0]}"]
    t = threading.Thread(target=sealed_call, args=(texts[0],), daemon=True)
    t.start()
    pid = busy(w)
    deadline, seen = time.time() + 10, False
    while not seen and t.is_alive() and time.time() < deadline:
        seen = slow[0].encode() in memory(pid)
    t.join(timeout=30)
    assert not t.is_alive()
    sealed_call(texts[1])
    sealed_call(texts[2])
    ok(w, service, "plain after the sealed ones")
    pids = all_waiting(w)
    held = {p: mappings(p) for p in pids}
    secrets = {"input": [slow[0], long[0], short[0]], "log": [slow[1], long[1], short[1]],
               "result": [made(t) for t in texts]}
    return seen, pid, pids, secrets, held


def found_in(held, secrets, where):
    """(pid, mapping name, kind, secret) of each secret found in a mapping where(name)
    says to look in."""
    return [(p, name, kind, secret) for p, maps in held.items() for name, mem in maps
            if where(name) for kind, values in secrets.items() for secret in values
            if secret.encode() in mem]


def test_a_sealed_calls_input_is_not_left_and_its_answer_is_wiped_from_the_heap(
        start, kit, store, platform):
    """The slow sealed call's input is found in its invocation process's memory while it
    runs (the reading reaches where the plaintext is held); once the sealed calls and
    the plain one after them have ended, the same process waits for its next job and
    no invocation process holds a sealed call's input anywhere, nor its result or log
    outside its stack (for that: the test below)."""
    key, _ = platform
    w = sim_worker(start, store, kit, key)
    service, _ = deployed(w, kit, ())  # no data: no other secrets after the last sealed call
    ok(w, service, "warm up")
    seen, pid, pids, secrets, held = sealed_then_plain(w, service)
    assert w.stop() == 0
    assert starts(w, service, 5)[1:] == ["warm"] * 4
    assert seen, "the slow sealed call's input was not found in its process while it ran"
    assert pid in pids  # the process that held the slow call's input served on
    assert not found_in(held, {"input": secrets["input"]}, lambda name: True)
    assert not found_in(held, secrets, lambda name: name != "[stack]")


def test_a_sealed_calls_result_and_log_are_not_left_on_the_reused_invocation_process_stack(
        start, kit, store, platform):
    """As above, the stack read too: once the sealed calls and the plain one after them
    have ended, no invocation process's stack holds their results or logs (the 64 KiB
    buffers that relayed the output and took the result from the channel held them
    until the process wiped its stack after the sealed job)."""
    key, _ = platform
    w = sim_worker(start, store, kit, key)
    service, _ = deployed(w, kit, ())
    ok(w, service, "warm up")
    _, _, _, secrets, held = sealed_then_plain(w, service)
    assert w.stop() == 0
    assert not found_in(held, secrets, lambda name: name == "[stack]")


def test_a_sealed_calls_long_result_and_log_leave_no_copy_in_the_reused_process(
        start, kit, store, platform):
    """A sealed call whose result (40 KiB) and log (40 lines of 1 KiB, relayed one after
    another) hold a marker near their start, ten such calls: the buffers they are taken
    into, which a short answer never grows, are wiped before they are freed or replaced
    by larger ones, so once the calls are done no invocation process holds a marker
    anywhere (its heap, its stack, any writable mapping). Whether a buffer moved, and so
    left a copy, depends on the heap: with the buffers grown by realloc (before
    3eb9501) this failed in 3 of 8 runs, never with them wiped (12 runs)."""
    key, _ = platform
    w = sim_worker(start, store, kit, key)
    try:
        service, _ = deployed(w, kit, ())
        ok(w, service, "warm up")
        s, got, _ = evidence(w, service, os.urandom(32).hex())
        assert s == 200, got
        pubkey, reversed_ms = bytes.fromhex(got["claims"]["pubkey"]), []
        # a few: where a buffer starts, and so whether it can grow where it is or
        # moves (leaving a copy), depends on what the jobs before left
        for i in range(10):
            m, reversed_m = marker()
            reply, blob = sealed_input(pubkey, service, f"big {m}")
            s, doc = wire_invoke(w, service, blob)
            assert s == 200 and "sealed" in doc, doc
            opened = opened_answer(reply, blob, doc)
            assert opened["result"].startswith("big-result " + "r" * 32 + reversed_m)
            assert opened["log"].count(reversed_m) == 41, len(opened["log"])  # and "logged"
            reversed_ms.append(reversed_m)
        held = {p: mappings(p) for p in all_waiting(w)}
        assert held
        assert not found_in(held, {"big": reversed_ms}, lambda name: True)
    finally:
        w.stop()


def teepy_cgroups(owners):
    """The teepy cgroups on the host named after one of `owners` (pids), deepest first."""
    found = []
    for top in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpuacct",
                "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        for root, dirs, _ in os.walk(top):
            found += [os.path.join(root, n) for n in dirs
                      if re.match(r"teepy-(\d+)-", n) and int(n.split("-")[1]) in owners]
    return sorted(set(found), key=lambda p: -p.count("/"))


def kill_mid_job(w, service, before=None):
    """A service sleeping 2 s invoked, its invocation process killed with SIGKILL while
    it runs: (the answer, seconds to it, the killed pid, the worker's pids then); the
    teepy cgroups there right before the kill in before["cgroups"]."""
    answers = {}
    t = threading.Thread(target=lambda: answers.update(slow=w.invoke(service, "sleep 2")),
                         daemon=True)
    began = time.time()
    t.start()
    pid = busy(w)
    owners = {w.proc.pid, *descendants(w.proc.pid)}
    if before is not None:
        before["cgroups"] = teepy_cgroups(owners)
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=10)
    assert not t.is_alive(), "the request hung"
    return answers["slow"], time.time() - began, pid, owners


def test_an_invocation_process_killed_mid_job_fails_that_request_and_warm_starts_go_on(
        start, kit, store):
    """SIGKILL to the invocation process of a service sleeping 2 s: that request ends at
    once with a JSON error (500 internal: its process ended without an outcome), the
    worker serves on, the process is reaped, and the next invocations of the service
    succeed, warm."""
    w = Worker(start, store, kit / "signer.pub")
    owners = set()
    try:
        service, _ = deployed(w, kit, ("a",))
        for i in range(2):
            ok(w, service, f"warm up {i}")
        (s, doc), took, pid, owners = kill_mid_job(w, service)
        assert (s, doc["error"]["kind"]) == (500, "internal"), doc
        assert doc["error"]["message"] == "the invocation's process ended without an outcome", doc
        assert took < 2, "the request waited for the service, not for its process"
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
            time.sleep(0.02)
        assert not os.path.exists(f"/proc/{pid}"), "the killed process was not reaped"
        for i in range(3):
            assert ok(w, service, f"after {i}")["made"] == made(f"after {i}")
        assert w.proc.poll() is None
        assert pid not in invocation_processes(w)
        assert w.stop() == 0
        got = starts(w, service, 6)
        assert got[1] == "warm" and got[3:] == ["warm"] * 3, got
    finally:
        if w.proc.poll() is None:
            w.stop()


def test_an_invocation_process_killed_mid_job_leaves_no_child_and_no_cgroup_behind(
        start, kit, store):
    """The spawner, which reaps the killed process, ends the zygote's child it served
    and removes its cgroups: within a second of the kill, long before the child's 2 s
    sleep would have ended, no cgroup of the worker's processes is left but those of
    the zygote itself and its ready children (a cgroup cannot be removed while a
    process is in it: the child is gone too)."""
    w = Worker(start, store, kit / "signer.pub")
    try:
        service, _ = deployed(w, kit, ("a",))
        ok(w, service, "warm up")
        ok(w, service, "warm up again")
        (s, _), took, _, owners = kill_mid_job(w, service, before := {})
        assert s == 500 and took < 2
        # the killed child's cgroups (one name in each hierarchy) are among those there
        # at the kill; the pool's refill makes new ones meanwhile
        names = {os.path.basename(p) for p in before["cgroups"]}
        deadline = time.time() + 1
        while time.time() < deadline:
            now = {os.path.basename(p) for p in teepy_cgroups(owners)}
            if names - now:
                break
            time.sleep(0.02)
        assert names - now, "the killed job's child and its cgroups were left"
        ok(w, service, "after")
        assert w.stop() == 0
        assert not teepy_cgroups(owners)
    finally:
        if w.proc.poll() is None:
            w.stop()
