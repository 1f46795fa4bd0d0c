# Runs pytest inside teepy (or natively) and returns every test's outcome as JSON.
# The input is a JSON object: {"args": [pytest arguments...]}. The result:
# {"exit": N, "tests": {nodeid: [outcome, reason]}, "collect_errors": {...}}.
# Natively (no teex module): pytest_service.py INPUT_JSON RESULT_FILE.
import json
import os
import sys

try:
    import teex
except ImportError:
    teex = None

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # native -I leaves it out
import policy_audit  # noqa: E402


def short(report):
    """One line that says why a test did not pass (the exception or skip reason)."""
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])[:300]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""


def detail(report):
    """Where the failure came from: the `E` lines and the `file.py:N: Error` lines of
    every exception in the chain (the classifier looks for errno and call names)."""
    if not report.longrepr:
        return ""
    lines = [l for l in str(report.longrepr).splitlines()
             if l.startswith("E ") or (".py:" in l and not l.startswith(" "))]
    return "\n".join(lines)[-6000:]


class Collector:
    def __init__(self):
        self.tests = {}
        self.collect_errors = {}
        self.probes = {}

    def pytest_runtest_logstart(self, nodeid, location):
        policy_audit.reset()
        # should the process be killed (a limit), the harness knows which test it was
        print(f"\ncompat: running {nodeid}", file=sys.stderr, flush=True)

    def pytest_runtest_logreport(self, report):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        if report.when == "call" or (report.when != "call" and outcome != "passed"):
            prev = self.tests.get(report.nodeid)
            # setup/teardown errors count against the test; a passed call keeps
            # a later teardown error visible
            if prev is None or prev[0] in ("passed", "xfailed"):
                kind = outcome if report.when == "call" or outcome == "skipped" else "error"
                bad = kind in ("failed", "error", "skipped")
                self.tests[report.nodeid] = [kind, short(report), detail(report) if bad else "",
                                             policy_audit.taken() if bad else []]

    def pytest_collectreport(self, report):
        # what importing a test module tried (a probe for a compiler, say)
        probe = policy_audit.taken()
        policy_audit.reset()
        if probe and report.nodeid.endswith(".py"):
            self.probes[report.nodeid] = probe
        if report.failed:
            self.collect_errors[report.nodeid] = [short(report), detail(report)]


def main():
    request = json.loads(teex.TEEX_getinput() if teex else sys.argv[1])
    policy_audit.install()
    collector = Collector()
    code = pytest.main(list(request["args"]), plugins=[collector])
    result = json.dumps({"exit": int(code), "tests": collector.tests,
                         "collect_errors": collector.collect_errors, "probes": collector.probes})
    if teex:
        teex.TEEX_return(result)
    else:
        with open(sys.argv[2], "w") as f:
            f.write(result)


main()
