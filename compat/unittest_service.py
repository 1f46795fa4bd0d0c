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
# Longer than test.support.SHORT_TIMEOUT (30 s), which tests wait out on purpose
# (test_signal's siginterrupt tests); it fires again while the test goes on.
TEST_TIMEOUT = 45


class TestTimeout(Exception):
    pass


# After this many timeouts in one module, each of its tests gets HUNG_TIMEOUT only.
MODULE_HUNG = 3
HUNG_TIMEOUT = 5


def _timeout(signum, frame):
    raise TestTimeout(f"the test did not finish in {WATCHDOG.seconds} s")


class Watchdog:
    """Interrupts the main thread TEST_TIMEOUT seconds after the last arm() with a
    real-time signal: not SIGALRM and the interval timer, which test_signal and
    others use themselves (taking them over hung test_signal natively)."""
    SIGNAL = signal.SIGRTMIN + 5

    def __init__(self):
        import threading
        self.main = threading.main_thread().ident
        self.deadline = None
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="compat-watchdog").start()

    seconds = TEST_TIMEOUT

    def arm(self, seconds=TEST_TIMEOUT):
        signal.signal(self.SIGNAL, _timeout)  # a test may have replaced it
        with self.cond:
            self.seconds = seconds
            self.deadline = time.monotonic() + seconds
            self.cond.notify()

    def disarm(self):
        with self.cond:
            self.deadline = None
            self.cond.notify()

    def _run(self):
        with self.cond:
            while True:
                if self.deadline is None:
                    self.cond.wait()
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.cond.wait(left)
                    continue
                self.deadline = time.monotonic() + self.seconds  # its cleanup may hang too
                signal.pthread_kill(self.main, self.SIGNAL)


WATCHDOG = None


# After this many tests of one class ended at the timeout, the rest of the class is
# not run: a fixture that waits forever (a server thread the policy stopped, as in
# test_httpservers and test_xmlrpc) would otherwise cost every one of its tests
# the whole timeout, and the module its batch. They are recorded as not run, with
# what the timed-out tests tried as the evidence.
HUNG_CLASS = 2


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.tests = {}
        self.hung = {}  # class -> [timeouts, what those tests tried]
        self.timeouts = 0  # in the module

    def startTest(self, test):
        super().startTest(test)
        policy_audit.reset()
        hung = self.hung.get(type(test))
        if hung and hung[0] >= HUNG_CLASS:
            policy_audit.attempts.update(hung[1])
            reason = (f"not run: {hung[0]} earlier tests of {type(test).__name__} did not "
                      f"finish in time")
            setattr(test, test._testMethodName, unittest.skip(reason)(lambda: None))
            return
        WATCHDOG.arm(self.allowed())

    def stopTest(self, test):
        # armed again, not cleared: a class fixture that hangs before the next test
        # (setUpClass, tearDownClass) ends there as well
        WATCHDOG.arm(self.allowed())
        super().stopTest(test)

    def allowed(self):
        return TEST_TIMEOUT if self.timeouts < MODULE_HUNG else HUNG_TIMEOUT

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
        if issubclass(err[0], TestTimeout):
            self.timeouts += 1
        if issubclass(err[0], TestTimeout) and isinstance(test, unittest.TestCase):
            hung = self.hung.setdefault(type(test), [0, set()])
            hung[0] += 1
            hung[1].update(policy_audit.attempts)
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
    WATCHDOG.arm()  # the module's import and fixtures
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
    finally:
        WATCHDOG.disarm()
    entry["seconds"] = round(time.monotonic() - start, 3)
    return entry


def main():
    global WATCHDOG
    request = json.loads(teex.TEEX_getinput() if teex else sys.argv[1])
    WATCHDOG = Watchdog()
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
