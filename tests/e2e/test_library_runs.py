"""Several invocations in one process (the runner as a library, as a worker will
use it), by an unprivileged user: each run's sandbox leaves the process as it
found it, so the next one can still map its ids and reach its child's root."""
import os
import shutil
import subprocess

import pytest

NOBODY = 65534


def test_an_unprivileged_process_runs_one_invocation_after_another(user_teepy):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root, to run the runner test as uid 65534 with setpriv")
    built = os.path.join(os.path.dirname(os.environ.get("TEEPY_BIN") or ""), "test_runner")
    if not os.path.isfile(built):
        pytest.skip("test_runner is not beside the teepy under test")
    runner = os.path.join(os.path.dirname(str(user_teepy)), "test_runner")
    shutil.copy2(built, runner)
    os.chmod(runner, 0o755)
    try:
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                            "--clear-groups", runner], capture_output=True, text=True,
                           timeout=300, cwd=os.path.dirname(runner))
    finally:
        os.unlink(runner)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
