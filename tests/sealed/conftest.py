"""Fixtures for sealed-bundle tests: a scratch directory and a signing key."""
import os
import shutil
import tempfile

import pytest

from exit_codes import EXIT
from sealed_support import teepy

@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="teepy-sealed-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def keys(work):
    key = os.path.join(work, "signer.key")
    r = teepy("keygen", "-o", key)
    assert r.returncode == EXIT.OK, r.stderr
    return key, os.path.join(work, "signer.pub")


