# Runs CPython regression-test modules (test.<name>) inside teepy (or natively) and
# returns every test's outcome as JSON, as regrtest would run them in one process:
# no resources enabled (-u none), a fresh temporary working directory, the
# module's load_tests / test_main honoured.
# Input: {"modules": [names], "import_only": false}; import_only imports each module
# and runs nothing (the sample run `teepy build` traces). Result: {"modules": {name: {"status": ..., "reason": ...,
# "tests": {id: [outcome, reason, detail]}}}}.
# Natively (no teex module): unittest_service.py INPUT_JSON RESULT_FILE.
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import unittest

try:
    import teex
except ImportError:
    teex = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # native -I leaves it out
import policy_audit  # noqa: E402
from test import support
from test.support import os_helper


def text(err):
    """(reason line, cut traceback) of an exc_info triple."""
    lines = traceback.format_exception(*err)
    last = lines[-1].strip() if lines else ""
    # the frames' file names and every exception of the chain, not the source lines
    kept = [l.strip().splitlines()[0] for l in lines]
    return last[:300], "\n".join(kept)[-6000:]


# A test still running after this long is ended with TestTimeout, so that one test
# waiting forever (on a server thread the policy stopped, say) costs the module
# only that test. The same on both sides; regrtest uses a watchdog for the same.
TEST_TIMEOUT = 30


class TestTimeout(Exception):
    pass


def _timeout(signum, frame):
    raise TestTimeout(f"the test did not finish in {TEST_TIMEOUT} s")


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.tests = {}

    def startTest(self, test):
        super().startTest(test)
        policy_audit.reset()
        signal.signal(signal.SIGALRM, _timeout)  # a test may have replaced it
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def _put(self, test, outcome, reason="", detail=""):
        prev = self.tests.get(test.id())
        if prev is None or prev[0] in ("passed", "xfailed", "skipped"):
            bad = outcome in ("failed", "error", "skipped")
            self.tests[test.id()] = [outcome, reason, detail,
                                     policy_audit.taken() if bad else []]

    def addSuccess(self, test):
        self._put(test, "passed")

    def addFailure(self, test, err):
        self._put(test, "failed", *text(err))

    def addError(self, test, err):
        self._put(test, "error", *text(err))

    def addSkip(self, test, reason):
        self._put(test, "skipped", str(reason)[:300])

    def addExpectedFailure(self, test, err):
        self._put(test, "xfailed")

    def addUnexpectedSuccess(self, test):
        self._put(test, "xpassed")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            outcome = "failed" if issubclass(err[0], test.failureException) else "error"
            self._put(test, outcome, *text(err))


def run_module(name):
    result = Result()
    suite_runs = []

    def run_suite(suite):
        # the legacy test_main() path: support.run_unittest hands us its suite
        suite_runs.append(1)
        suite.run(result)

    support._run_suite = run_suite
    entry = {"status": "ran", "reason": "", "tests": result.tests}
    start = time.monotonic()
    policy_audit.reset()
    try:
        with os_helper.temp_cwd(name=None, quiet=True):
            module = importlib.import_module("test." + name)
            # what importing tried: a module that probes for a shell or a
            # compiler when it is imported decides its skips there
            entry["probe"] = policy_audit.taken()
            if hasattr(module, "test_main"):
                module.test_main()
            else:
                tests = unittest.defaultTestLoader.loadTestsFromModule(module)
                for err in getattr(unittest.defaultTestLoader, "errors", []):
                    entry["reason"] = err.strip().splitlines()[-1][:300]
                unittest.defaultTestLoader.errors = []
                tests.run(result)
    except unittest.SkipTest as e:
        entry.update(status="skipped", reason=str(e)[:300])
    except BaseException:
        reason, detail = text(sys.exc_info())
        entry.update(status="error", reason=reason, detail=detail, attempts=policy_audit.taken())
    entry["seconds"] = round(time.monotonic() - start, 3)
    return entry


def main():
    request = json.loads(teex.TEEX_getinput() if teex else sys.argv[1])
    policy_audit.install()
    support.use_resources = []  # regrtest's default: no optional resource
    support.verbose = 0
    results = {}
    for name in request["modules"]:
        if request.get("import_only"):
            try:
                importlib.import_module("test." + name)
            except BaseException:
                pass  # what it failed on fails the same way in the real run
            continue
        results[name] = run_module(name)
    payload = json.dumps({"modules": results})
    if teex:
        teex.TEEX_return(payload)
    else:
        with open(sys.argv[2], "w") as f:
            f.write(payload)


main()
