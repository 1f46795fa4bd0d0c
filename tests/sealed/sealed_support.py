"""Helpers for sealed-bundle tests: run teepy, write an app, build and inspect bundles."""
import os
import shutil
import subprocess
import tempfile

from exit_codes import EXIT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEEPY = os.environ.get("TEEPY_BIN", os.path.join(ROOT, "build", "teepy"))


def teepy(*args, input=None, timeout=120, env=None):
    """Runs the built teepy; returns CompletedProcess with bytes stdout/stderr."""
    full_env = dict(os.environ)
    full_env.pop("TEEPY_TRUSTED_SIGNERS", None)
    if env:
        full_env.update(env)
    return subprocess.run([TEEPY, *map(str, args)], input=input, capture_output=True,
                          timeout=timeout, env=full_env)


def write_app(work, files):
    app = os.path.join(work, "app")
    os.makedirs(app, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(app, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return app


def build(work, keys, script, *extra, name="svc.tpy"):
    out = os.path.join(work, name)
    r = teepy("build", script, "-o", out, "--key", keys[0], *extra)
    assert r.returncode == EXIT.OK, r.stderr.decode()
    return out


def inspect_json(bundle):
    import json
    r = teepy("inspect", bundle, "--json")
    assert r.returncode == EXIT.OK, r.stderr.decode()
    return json.loads(r.stdout)
