"""What a service learns of its host: what is cheap to hide is hidden (the README's
threat model lists what still shows: sysinfo's memory and load, statvfs of a bound
host directory, the kernel release)."""
import json
import os

from hostile_prelude import hostile

UPTIME = """
import time
buf = ctypes.create_string_buffer(128)
libc.sysinfo(buf)
st = os.statvfs("/")
scratch = os.statvfs("/tmp") if os.path.isdir("/tmp") else None
report({"sysinfo_uptime": ctypes.c_long.from_buffer(buf).value,
        "monotonic": time.monotonic(),
        "boottime": time.clock_gettime(time.CLOCK_BOOTTIME),
        "raw_boottime": sc(228, 7, ctypes.byref(ctypes.create_string_buffer(16))),
        "root_inodes": st.f_files,
        "scratch_inodes": scratch.f_files if scratch else None})
"""


def host_uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def test_the_service_does_not_learn_the_hosts_uptime(as_user, run, script):
    """sysinfo's uptime, CLOCK_MONOTONIC and CLOCK_BOOTTIME start near zero in the
    service's own time namespace, whatever the host's uptime."""
    before = host_uptime()
    r = run("run", "--scratch", "8M", hostile(script, UPTIME))
    out = json.loads(r.stdout)
    assert before > 20, "the host has been up for too short a time to tell"
    for name in ("sysinfo_uptime", "monotonic", "boottime"):
        assert out[name] < 15, (name, out, before)


def test_the_tmpfs_inode_counts_are_teepys_not_the_hosts_ram(as_user, run, script):
    """A tmpfs's default inode count is half the host's RAM pages: statvfs of the
    root and of scratch would tell the service how much memory the host has. The
    root's is a fixed number, scratch's follows its size (a page each, 1024 more)."""
    r = run("run", "--scratch", "8M", hostile(script, UPTIME))
    out = json.loads(r.stdout)
    assert out["root_inodes"] == 1048576, out
    assert out["scratch_inodes"] == (8 << 20) // 4096 + 1024, out
