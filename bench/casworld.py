"""The CAS's benchmark world, shared by bench/cas and bench/cas-ab: a platform key,
an owner, `teepy cas` on 127.0.0.1 and a policy tolerating sim evidence, in a
temporary directory; and runs of the load generator (build/bench/teepy-cas-load)
against it, with the CPU each side spent. Imported by /usr/bin/python3 scripts that
set sys.dont_write_bytecode first.
"""
import base64
import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import threading
import time

from benchlib import BenchError, ROOT

LOAD = os.path.join(ROOT, "build", "bench", "teepy-cas-load")
WARMUP = 20  # releases a connection before it is measured


def clean_env(tmp):
    """The environment of every teepy command here: none of the caller's TEEPY_
    settings, the platform key the run's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    env["TEEPY_PLATFORM_KEY"] = os.path.join(tmp, "platform.key")
    return env


def teepy(cmd, env, what):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise BenchError("%s failed: %s exited %d: %s" % (what, " ".join(cmd), p.returncode,
                                                          p.stderr.strip()[-1000:]))
    return p.stdout


class Cas:
    """`teepy cas` on 127.0.0.1, any free port, until stop()."""

    def __init__(self, teepy_bin, db, env):
        self.proc = subprocess.Popen([teepy_bin, "cas", "--listen", "127.0.0.1:0", "--db", db],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        said = []
        for line in self.proc.stderr:
            said.append(line)
            m = re.search(r"listening on (https://\S+), key fingerprint (sha256//\S+)", line)
            if m:
                self.url, self.fingerprint = m.group(1), m.group(2)
                break
        else:
            self.proc.wait()
            raise BenchError("teepy cas did not start: %s" % "".join(said).strip())
        # what it says later is drained, so that it never blocks on a full pipe
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        # teepy cas executes teepy-cas: the pid is the server's own
        self.pid = self.proc.pid

    def cpu_s(self):
        """User and system CPU seconds the server has spent so far."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class World:
    """The keys, the CAS and the policy the generator asks of."""

    def __init__(self, teepy_bin, tmp, history=0):
        self.tmp, self.env = tmp, clean_env(tmp)
        teepy([teepy_bin, "platform", "init"], self.env, "teepy platform init")
        shown = teepy([teepy_bin, "platform", "show"], self.env, "teepy platform show")
        platform_pub = next(line.split()[1] for line in shown.splitlines()
                            if line.startswith("public"))
        self.app = "aa" * 32
        # this teepy's runtime measurement, as `teepy attest` claims it
        got = json.loads(teepy([teepy_bin, "attest", "--mode", "sim", "--nonce", "00" * 32,
                                "--app", self.app, "--json"], self.env, "teepy attest"))
        self.runtime = got["claims"]["runtime"]
        owner = os.path.join(tmp, "owner.key")
        teepy([teepy_bin, "keygen", "-o", owner], self.env, "teepy keygen")
        self.key_value = base64.b64encode(os.urandom(32)).decode()
        policy = {
            "name": "bench",
            "services": {"main": {"app": [self.app], "runtime": [self.runtime],
                                  "tolerate": ["sim"], "platform_keys": [platform_pub],
                                  "secrets": ["app_key", "API_TOKEN"]}},
            "secrets": {"app_key": {"kind": "bundle_key", "value": self.key_value},
                        "API_TOKEN": {"kind": "env", "value": "bench-token"}},
        }
        path = os.path.join(tmp, "policy.json")
        with open(path, "w") as f:
            json.dump(policy, f)
        self.cas = Cas(teepy_bin, os.path.join(tmp, "cas.db"), self.env)
        if history:
            self.add_history(os.path.join(tmp, "cas.db"), history)
        try:
            teepy([teepy_bin, "policy", "create", "--cas", self.cas.url, "--cas-fingerprint",
                   self.cas.fingerprint, "--owner", owner, path], self.env,
                  "teepy policy create")
        except BenchError:
            self.cas.stop()
            raise

    @staticmethod
    def add_history(db, count):
        """count used challenges that expired an hour ago, as a CAS keeps them for a
        day (1000 releases a second leave 86.4 million): written into the running
        server's database (WAL: SQLite's own locking keeps the two apart)."""
        now = int(time.time())
        c = sqlite3.connect(db, timeout=30)
        with c:
            c.executemany("INSERT INTO nonces (nonce, expires, used) VALUES (?, ?, 1)",
                          ((os.urandom(32).hex(), now - 3600) for _ in range(count)))
        c.close()

    def load_cmd(self, load_bin, connections, duration, warmup):
        return [load_bin, "--url", self.cas.url, "--fingerprint", self.cas.fingerprint,
                "--config-id", "bench/main", "--platform-key", self.env["TEEPY_PLATFORM_KEY"],
                "--runtime", self.runtime, "--app", self.app,
                "--expect", "app_key=" + self.key_value, "--connections", str(connections),
                "--duration", "%g" % duration, "--warmup", str(warmup), "--json"]

    def load(self, load_bin, connections, duration, warmup):
        """One run of the generator: its figures, with the CPU the server and the
        generator spent on each release it made (warm-up ones included)."""
        cmd = self.load_cmd(load_bin, connections, duration, warmup)
        server_before = self.cas.cpu_s()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=self.env, timeout=duration + 120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_s = self.cas.cpu_s() - server_before
        if p.returncode != 0:
            raise BenchError("teepy-cas-load failed (exit %d): %s\n  command: %s"
                             % (p.returncode, p.stderr.strip()[-2000:], " ".join(cmd)))
        fig = json.loads(p.stdout)
        made = fig["releases"] + connections * (1 + warmup)
        fig["server_cpu_ms"] = server_s * 1e3 / made
        fig["load_cpu_ms"] = (after.ru_utime + after.ru_stime - children.ru_utime
                              - children.ru_stime) * 1e3 / made
        return fig
