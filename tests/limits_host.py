"""What holds a run's memory limit on this host: a memory cgroup (v2, or v1 on the
hybrid build machines), or, without one, RLIMIT_AS (address space, not memory), as
src/sandbox/limits.c decides. The hostile suite's limits and test_engine's PyPy
under RLIMIT_AS expect one or the other by these."""
import os


def memory_cgroup(variant):
    """Whether this variant's runs get a memory cgroup here: root's do wherever a
    memory controller is mounted; uid 65534's only where the suite starts them in a
    cgroup v2 subtree delegated to that user (make check-kernel's guest sets
    TEEPY_TEST_USER_CGROUP), whose nearest ancestor with memory on then takes the
    run's cgroup. On the hybrid (v1) build machines uid 65534 gets none."""
    if variant == "root":
        return True
    return (os.geteuid() == 0 and bool(os.environ.get("TEEPY_TEST_USER_CGROUP"))
            and host_memory_cgroup_is_v2())


def host_memory_cgroup_is_v2():
    """Whether root's memory limit is a cgroup v2 one on this host, decided as
    src/sandbox/limits.c does: a v2 mount (/sys/fs/cgroup, pure v2 as on a stock
    Debian 12, or /sys/fs/cgroup/unified in the hybrid layout, a v2 mount told by
    cgroup.controllers at its top) whose root offers the memory controller. On a
    hybrid host the memory controller is bound to the v1 hierarchy instead and the
    v2 mount offers none."""
    for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(mount, "cgroup.controllers")) as f:
                if "memory" in f.read().split():
                    return True
        except OSError:
            continue
    return False
