"""Shared mechanics of the teepy benchmarks: statistics, timed runs of native and
teepy processes, the environment both sides get, throw-away bundles, the machine
description and result rows (with their text table).

What each benchmark group measures lives in groups.py; the scripts beside this
file (startup, compute, sealed, all) only parse options and print or report.
Imported by /usr/bin/python3 scripts that set sys.dont_write_bytecode first, so
nothing is written into the source tree.
"""
import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"  # Debian's interpreter, the one teepy executes; never a pyenv one


class BenchError(Exception):
    """A run failed (non-zero exit, wrong output): the figures would mean nothing."""


def default_teepy():
    return os.environ.get("TEEPY_BIN") or os.path.join(ROOT, "build", "teepy")


def check_teepy(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise BenchError("teepy binary not found or not executable: %s (make build, or --teepy PATH)" % path)
    return os.path.abspath(path)


def arg_parser(doc):
    """The options every benchmark script takes: --teepy and --quick."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(doc.strip().splitlines()[1:]))
    ap.add_argument("--teepy", default=default_teepy(), help="teepy binary (default $TEEPY_BIN or build/teepy)")
    ap.add_argument("--quick", action="store_true", help="a short pass: few runs, figures only roughly right")
    return ap


def main_wrapper(name, fn):
    """Run a script's main(); a failed run prints its reason and exits 1."""
    try:
        sys.exit(fn())
    except BenchError as e:
        sys.stderr.write("%s: %s\n" % (name, e))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


# --- statistics -------------------------------------------------------------
def percentile(values, p):
    """Linear-interpolated percentile of values, p in [0, 100]."""
    s = sorted(values)
    if not s:
        raise ValueError("percentile of no values")
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Stats:
    """Median, p10, p90 and minimum of a list of samples."""

    def __init__(self, values):
        self.values = list(values)
        self.n = len(self.values)
        self.median = percentile(self.values, 50)
        self.p10 = percentile(self.values, 10)
        self.p90 = percentile(self.values, 90)
        self.min = min(self.values)
        self.max = max(self.values)


# --- processes --------------------------------------------------------------
class Run:
    """One finished process: wall time, exit code and output."""

    def __init__(self, cmd, wall_ms, code, out, err):
        self.cmd, self.wall_ms, self.code, self.out, self.err = cmd, wall_ms, code, out, err


def run(cmd, env, expect=None, label=None):
    """Run cmd to completion with env; wall time from spawn to reaped, in ms.

    Output goes to anonymous files rather than pipes, so nothing has to be read
    while the clock runs. expect: None (exit 0 is enough), a str (stdout,
    stripped, must equal it) or a compiled pattern (must fullmatch it).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter_ns()
        code = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env).wait()
        t1 = time.perf_counter_ns()
        out.seek(0)
        err.seek(0)
        r = Run(cmd, (t1 - t0) / 1e6, code, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"))
    got = r.out.strip()
    ok = r.code == 0 and (expect is None
                          or (isinstance(expect, str) and got == expect)
                          or (hasattr(expect, "fullmatch") and expect.fullmatch(got)))
    if not ok:
        raise BenchError("%s run failed: %s exited %d\n  stdout: %r\n  stderr: %s"
                         % (label or "a", " ".join(cmd), r.code, r.out[:300], r.err[-2000:]))
    return r


def private_cache():
    """A cache directory for teepy, removed at exit: mode 0700 on /dev/shm, and as
    root a tmpfs with huge pages mounted there, as root's /run/teepy is (bound from
    a tmpfs without them, a sealed service starts 20-30 ms later here)."""
    d = tempfile.mkdtemp(prefix="teepy-bench-cache-", dir="/dev/shm")
    os.chmod(d, 0o700)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0700,huge=within_size", "teepy-bench-cache", d]
    ).returncode == 0

    def remove():
        if mounted:
            subprocess.run(["umount", d])
        shutil.rmtree(d, ignore_errors=True)

    atexit.register(remove)
    return d


class Sides:
    """The teepy binary and the environments of the two sides.

    teepy gives the service no host variable, only LC_CTYPE=C.UTF-8 and BLAS/OpenMP
    thread caps; native runs get exactly those, so numpy uses as many BLAS threads
    natively as inside teepy. teepy itself gets the caller's environment minus
    TEEPY_* settings, so a stray TEEPY_MEMORY or TEEPY_TIMING cannot skew a run.
    """

    def __init__(self, teepy):
        self.teepy = check_teepy(teepy)
        self.teepy_env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
        # a cache of teepy's own for the run (TEEPY_CACHE_DIR): the host's /run/teepy
        # or $XDG_RUNTIME_DIR/teepy stays as it was
        self.cache_dir = private_cache()
        self.teepy_env["TEEPY_CACHE_DIR"] = self.cache_dir
        self.config = self.print_config([os.path.join(HERE, "hello.py")])
        m = re.search(r"^  BLAS threads\s+(\d+)", self.config, re.M)
        if not m:
            raise BenchError("teepy run --print-config does not say its BLAS/OpenMP thread cap")
        self.blas_threads = int(m.group(1))
        self.native_env = {"LC_CTYPE": "C.UTF-8"}
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            self.native_env[var] = str(self.blas_threads)

    def native(self, script, *args):
        return [PYTHON, "-I", script, *args]

    def run_cmd(self, target, *options):
        return [self.teepy, "run", target, *options]

    def timing_env(self):
        return dict(self.teepy_env, TEEPY_TIMING="1")

    def env_for(self, cmd):
        return self.native_env if cmd[0] == PYTHON else self.teepy_env

    def print_config(self, args):
        r = run([self.teepy, "run", "--print-config", *args], self.teepy_env, label="teepy --print-config")
        return r.err


def interleave(cases, sides, runs, warmup, progress=None):
    """Time every variant of every case, interleaved, after warm-up runs.

    cases: [(name, {label: cmd}, expect)]. Each round runs each case's variants
    back to back, starting one place further along each round (native, teepy,
    sealed; then teepy, sealed, native; ...), so drift in machine load and the
    cost of going first fall on every side alike. Returns
    {name: {label: [wall ms, ...]}}.
    """
    samples = {name: {label: [] for label in variants} for name, variants, _ in cases}
    for rnd in range(-warmup, runs):
        for name, variants, expect in cases:
            labels = list(variants)
            shift = rnd % len(labels)
            for label in labels[shift:] + labels[:shift]:
                cmd = variants[label]
                r = run(cmd, sides.env_for(cmd), expect, "%s (%s)" % (name, label))
                if rnd >= 0:
                    samples[name][label].append(r.wall_ms)
        if progress and rnd >= 0 and (rnd + 1) % max(1, runs // 4) == 0:
            progress("%d/%d rounds" % (rnd + 1, runs))
    return samples


def log(name):
    """A progress printer on stderr for one script or group."""
    return lambda msg: sys.stderr.write("%s: %s\n" % (name, msg))


# --- bundles ----------------------------------------------------------------
class Bundles:
    """Sealed bundles built with a throw-away key in a temporary directory.

    Scripts are copied into their own app directory first: a bundle carries the
    files its script opened in its own directory, and nothing is written into
    the source tree. Use as a context manager; the directory goes at exit.
    """

    def __init__(self, sides):
        self.sides = sides
        self.dir = tempfile.mkdtemp(prefix="teepy-bench-")
        self.key = os.path.join(self.dir, "bench.key")
        self.pub = os.path.join(self.dir, "bench.pub")
        run([sides.teepy, "keygen", "-o", self.key], sides.teepy_env, label="teepy keygen")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def app(self, name, source=None, text=None):
        """Put one script (a copy of source, or text) into app directory `name`;
        returns its path. A text script is named svc_<name>.py, so it cannot
        shadow a module it imports."""
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, os.path.basename(source) if source else "svc_%s.py" % name)
        if source:
            shutil.copyfile(source, path)
        else:
            with open(path, "w") as f:
                f.write(text)
        return path

    def build(self, script, *options):
        """teepy build script -> <dir>/<app>.tpy; returns the bundle path."""
        out = os.path.join(self.dir, os.path.basename(os.path.dirname(script)) + ".tpy")
        if not os.path.exists(out):
            run([self.sides.teepy, "build", script, "-o", out, "--key", self.key, *options],
                self.sides.teepy_env, label="teepy build")
        return out

    def run_cmd(self, bundle, *options):
        return self.sides.run_cmd(bundle, "--trust", self.pub, *options)

    def files(self, bundle):
        r = run([self.sides.teepy, "inspect", "--json", bundle], self.sides.teepy_env, label="teepy inspect")
        return json.loads(r.out)["files"]


# --- peak RSS ---------------------------------------------------------------
GNU_TIME = "/usr/bin/time"


def native_rss_kib(cmd, env, expect, label):
    """Peak RSS of a native child, in KiB, as its parent's wait4 sees it.

    The parent must be small: Linux counts a process's peak from before its
    execve too (the forked copy of its parent), so wait4 on a child of this
    harness would report at least the harness's own ~18 MiB. GNU time is a small
    parent that forks, execs cmd and prints the child's ru_maxrss, as teepy's
    small supervisor does for the service.
    """
    if not os.access(GNU_TIME, os.X_OK):
        raise BenchError("%s not found: apt-get install time (make bench installs it)" % GNU_TIME)
    r = run([GNU_TIME, "-f", "teepy-bench: maxrss %M", *cmd], env, expect, label)
    m = re.search(r"^teepy-bench: maxrss (\d+)$", r.err, re.M)
    if not m:
        raise BenchError("%s printed no peak RSS for %s" % (GNU_TIME, label))
    return int(m.group(1))


def usage_rss_kib(stderr):
    """Peak RSS of the sandboxed service from TEEPY_TIMING=1's usage line."""
    m = re.search(r"^teepy: usage\s+peak RSS (\d+) KiB", stderr, re.M)
    if not m:
        raise BenchError("no 'teepy: usage  peak RSS' line on stderr (a teepy without it?)")
    return int(m.group(1))


# --- parsing teepy's diagnostics --------------------------------------------
def verified(stderr):
    """(files, bytes, wall ms, threads, CPU ms) from a sealed run's 'teepy: verified N
    files, B bytes, in T ms (K threads, C ms CPU: …)'."""
    m = re.search(r"verified (\d+) files, (\d+) bytes, in ([\d.]+) ms \((\d+) threads, "
                  r"([\d.]+) ms CPU", stderr)
    if not m:
        raise BenchError("no 'teepy: verified' line on stderr of a sealed --print-config run")
    return (int(m.group(1)), int(m.group(2)), float(m.group(3)), int(m.group(4)),
            float(m.group(5)))


# --- the machine ------------------------------------------------------------
def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _cmd_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(sides):
    """[(what, value)] describing the machine, the interpreter and the teepy tested."""
    cpuinfo = _read("/proc/cpuinfo")

    def cpu_field(name):
        m = re.search(r"^%s\s*:\s*(.*)$" % re.escape(name), cpuinfo, re.M)
        return m.group(1).strip() if m else "?"

    lscpu = _cmd_out(["lscpu"])
    hyper = re.search(r"^Hypervisor vendor:\s*(.*)$", lscpu, re.M)
    virt = _cmd_out(["systemd-detect-virt"])
    mem_kib = int(re.search(r"MemTotal:\s*(\d+)", _read("/proc/meminfo")).group(1))
    codename = re.search(r"^VERSION_CODENAME=(\w+)", _read("/etc/os-release"), re.M)
    commit = _cmd_out(["git", "log", "-1", "--format=%h %s (%cd)", "--date=format:%Y-%m-%d %H:%M"])
    dirty = _cmd_out(["git", "status", "--porcelain", "--", "src", "meson.build"])
    with open(sides.teepy, "rb") as f:
        binary = hashlib.sha256(f.read()).hexdigest()
    cfg = {}
    for line in sides.config.splitlines():
        m = re.match(r"^  (\w[\w ]*?)\s{2,}(.*)$", line)
        if m:
            cfg[m.group(1)] = m.group(2)
    protections = "; ".join("%s: %s" % (k, cfg[k]) for k in
                            ("namespaces", "root", "landlock", "seccomp", "memory", "threads", "cpu time")
                            if k in cfg)
    load = _read("/proc/loadavg").split()[:3]
    return [
        ("CPU", "%s (family %s, model %s, %s MHz)" % (cpu_field("model name"), cpu_field("cpu family"),
                                                     cpu_field("model"), cpu_field("cpu MHz").split(".")[0])),
        ("cores (`nproc`)", str(os.cpu_count())),
        ("virtualisation", ", ".join(x for x in ((hyper.group(1) + " guest") if hyper else "",
                                                  ("`systemd-detect-virt`: " + virt) if virt else "") if x)
         or "none detected"),
        ("memory", "%.1f GiB" % (mem_kib / 1048576)),
        ("kernel", os.uname().release),
        ("OS", "Debian %s%s" % (_read("/etc/debian_version").strip(),
                                 " (%s)" % codename.group(1) if codename else "")),
        ("Python", "%s, `%s`" % (_cmd_out([PYTHON, "--version"]), os.path.realpath(PYTHON))),
        ("teepy commit", (commit or "?") + (" + uncommitted changes in src/" if dirty else "")),
        ("teepy binary", "`%s`, sha256 %s…" % (os.path.relpath(sides.teepy, ROOT), binary[:16])),
        ("protections (`--print-config`)", protections),
        ("BLAS/OpenMP threads", "%d on both sides" % sides.blas_threads),
        ("load average at start", " ".join(load)),
    ]


# --- result rows ------------------------------------------------------------
NOT_BUILT = "not built yet"


class Target:
    """A target for a row: teepy/native ratio at most `value` ("ratio"),
    teepy - native at most `value` ("diff"), or teepy at least `value` ("min")."""

    def __init__(self, kind, value, text):
        self.kind, self.value, self.text = kind, value, text

    def met(self, native, teepy):
        if self.kind == "ratio":
            return teepy / native <= self.value
        if self.kind == "diff":
            return teepy - native <= self.value
        return teepy >= self.value


class Row:
    """One line of a group: a native figure, a teepy figure, their ratio and a verdict.

    native / teepy: a Stats, a plain number, or a str saying why there is none
    (NOT_BUILT, "—"). The ratio is always teepy / native. commands: {side:
    command line} that produced the figures. extra: {column: text} for columns
    only some groups have (compute's paired and CPU-time ratios).
    """

    def __init__(self, label, native, teepy, unit, target=None, commands=None, extra=None, short=None):
        self.label, self.native, self.teepy, self.unit = label, native, teepy, unit
        self.target, self.commands, self.extra = target, dict(commands or {}), dict(extra or {})
        self.short = short or label  # the plot's tick label; \n breaks a line

    @staticmethod
    def value(x):
        if isinstance(x, Stats):
            return x.median
        return x if isinstance(x, (int, float)) else None

    @property
    def ratio(self):
        n, t = self.value(self.native), self.value(self.teepy)
        return t / n if n and t is not None else None

    @property
    def verdict(self):
        n, t = self.value(self.native), self.value(self.teepy)
        if self.target is None:
            return "—"
        if t is None or (n is None and self.target.kind != "min"):
            return "—"
        return "PASS" if self.target.met(n, t) else "MISS"


def fmt(x, unit, digits=None):
    """A figure with its unit; Stats get their p10–p90 spread."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    d = digits if digits is not None else (3 if unit == "s" else 1)
    if isinstance(x, Stats):
        if x.n == 1 or x.p10 == x.p90:
            return "%.*f %s" % (d, x.median, unit)
        return "%.*f %s (%.*f–%.*f)" % (d, x.median, unit, d, x.p10, d, x.p90)
    return "%.*f %s" % (d, x, unit)


def table(group):
    """A group's rows as cells: the header, then one list of str a row."""
    extra = [c for r in group.rows for c in r.extra]
    extra = sorted(set(extra), key=extra.index)
    head = ["what", "native", "teepy", "ratio"] + extra + ["target", "result"]
    rows = [[r.label, fmt(r.native, r.unit), fmt(r.teepy, r.unit),
             "%.3f" % r.ratio if r.ratio is not None else "—"]
            + [r.extra.get(c, "—") for c in extra]
            + [r.target.text if r.target else "—", r.verdict] for r in group.rows]
    return head, rows


def print_group(group, out=sys.stdout):
    """A group's rows as a plain-text table."""
    out.write("\n== %s ==\n" % group.title)
    if group.setup:
        out.write(group.setup + "\n")
    head, rows = table(group)
    widths = [max(len(c[i]) for c in rows + [head]) for i in range(len(head))]
    for c in [head] + rows:
        out.write("  ".join(s.ljust(w) for s, w in zip(c, widths)).rstrip() + "\n")
    for line in group.notes:
        out.write("  * " + line + "\n")
    out.flush()


class Group:
    """A benchmark group: title, how it was run, rows, notes and its plot."""

    def __init__(self, key, title, setup="", rows=(), notes=(), plot=None):
        self.key, self.title, self.setup = key, title, setup
        self.rows, self.notes, self.plot = list(rows), list(notes), plot
