"""pytest plugin of check-kernel (tests/kernel/guest.py loads it): writes each test's
start, outcome categories and end to $TEEPY_KERNEL_PROGRESS, one tab-separated
record a line, so the driver knows which test was running when the harness died
and what the whole suite counted; a restarted pytest deselects the tests the file
says are done.

Records: start NODEID | report NODEID CATEGORY WHEN | end NODEID |
collected N | deselected N (run 1 only: what -k/-m left out) | killed NODEID WHY
(written by the driver). CATEGORY is pytest's own (pytest_report_teststatus), as
its summary line counts it.
"""
import os

import pytest

PATH = os.environ.get("TEEPY_KERNEL_PROGRESS")
FIRST = os.environ.get("TEEPY_KERNEL_RUN", "1") == "1"
_config = None
_own_deselection = False


def _write(*fields):
    if PATH:
        with open(PATH, "a") as f:
            f.write("\t".join(str(x).replace("\t", " ").replace("\n", " ") for x in fields) + "\n")


def _done():
    done = set()
    try:
        with open(PATH) as f:
            for line in f:
                rec = line.rstrip("\n").split("\t")
                if rec[0] in ("end", "killed"):
                    done.add(rec[1])
    except (FileNotFoundError, TypeError):
        pass
    return done


def pytest_configure(config):
    global _config
    _config = config


def pytest_deselected(items):
    if FIRST and not _own_deselection:
        _write("deselected", len(items))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    global _own_deselection
    if FIRST:
        _write("collected", len(items))
        return
    done = _done()
    keep = [i for i in items if i.nodeid not in done]
    gone = [i for i in items if i.nodeid in done]
    if gone:
        items[:] = keep
        _own_deselection = True
        config.hook.pytest_deselected(items=gone)
        _own_deselection = False


def pytest_collectreport(report):
    if report.failed:
        _write("report", report.nodeid or "<collection>", "error", "collect")


def pytest_runtest_logstart(nodeid, location):
    _write("start", nodeid)


def pytest_runtest_logreport(report):
    category = _config.hook.pytest_report_teststatus(report=report, config=_config)[0]
    if category:
        _write("report", report.nodeid, category, report.when)


def pytest_runtest_logfinish(nodeid, location):
    _write("end", nodeid)
