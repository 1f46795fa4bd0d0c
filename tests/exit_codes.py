"""teepy's exit codes by name, as the binary under test lists them
(`teepy help exit-codes`, from src/cli/exit_codes.c): EXIT.BUNDLE == 8.

The table is read on first use, so importing this module needs no binary; the
binary is TEEPY_BIN, else build/teepy (as in conftest.py and sealed_support.py).
"""
import enum
import os
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def binary():
    return Path(os.environ.get("TEEPY_BIN") or _REPO / "build" / "teepy")


def read_table():
    """[(code, name, meaning)] in the binary's order (by code)."""
    out = subprocess.run([str(binary()), "help", "exit-codes"], capture_output=True,
                         check=True, timeout=30).stdout.decode()
    rows = []
    for line in out.splitlines():
        code, name, meaning = line.split(" ", 2)
        rows.append((int(code), name, meaning))
    return rows


class _Exit:
    """EXIT.NAME is the IntEnum member of that exit code (equal to its number)."""

    _codes = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if _Exit._codes is None:
            _Exit._codes = enum.IntEnum("EXIT", [(n, c) for c, n, _ in read_table()])
        return getattr(_Exit._codes, name)


EXIT = _Exit()


def landlock_abi():
    """The Landlock ABI the binary under test uses: the kernel's, or less in a build
    capped with -Dlandlock_abi_max (`teepy --version` says which)."""
    import re
    out = subprocess.run([str(binary()), "--version"], capture_output=True, check=True,
                         timeout=30).stdout.decode()
    m = re.search(r"Landlock ABI (\d+)", out)
    return int(m.group(1)) if m else 0
