"""The engine the suites run services on: Debian's CPython, or Debian's PyPy when
TEEPY_TEST_ENGINE=pypy3 (make check-pypy), which the fixtures hand teepy as its
TEEPY_ENGINE setting. Where a service names the interpreter's own files (its
executable, its stdlib), it names this engine's: the other's are not in its root."""
import os
import subprocess
import sysconfig

NAME = os.environ.get("TEEPY_TEST_ENGINE") or "cpython"
PYPY = NAME == "pypy3"

if PYPY:
    EXE = os.path.realpath("/usr/bin/pypy3")
    STDLIB = subprocess.run(["/usr/bin/pypy3", "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
else:
    EXE = os.path.realpath("/usr/bin/python3")
    STDLIB = sysconfig.get_path("stdlib")
