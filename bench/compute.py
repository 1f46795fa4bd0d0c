# CPU-bound mix for the teepy compute benchmark.
#
# Each kind of work is one function doing a fixed amount of work; the script
# times each with time.perf_counter (interpreter start-up and the numpy import
# are excluded) and reports {kind: seconds, ..., "total": seconds, "cpu": {the
# same in process CPU time, user + system}} as JSON.
# Inside teepy the JSON is returned through teex; run natively (no teex module)
# it is printed.  Every function returns a checksum so the work cannot be
# skipped, and the checksums are compared against fixed values to catch a
# broken run.  The numpy kind needs numpy: inside teepy run with
# --allow-site-packages.
import gc
import json
import re
import sys
import time


# --- recursion -------------------------------------------------------------
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def k_recursion():
    return fib(30) + fib(29) + fib(28)


# --- float loops: mandelbrot + a small n-body ------------------------------
def mandelbrot(w, h, it):
    count = 0
    for y in range(h):
        ci = 2.0 * y / h - 1.0
        for x in range(w):
            cr = 3.0 * x / w - 2.0
            zr = zi = 0.0
            i = 0
            while i < it and zr * zr + zi * zi <= 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                i += 1
            count += i
    return count


def nbody(steps):
    bodies = [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47],
        [4.84, -1.16, -0.10, 0.60, 2.81, -0.02, 0.037],
        [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011],
        [12.89, -15.11, -0.22, 1.08, 0.86, -0.01, 0.0017],
        [15.37, -25.91, 0.17, 0.97, 0.59, -0.03, 0.002],
    ]
    dt = 0.01
    n = len(bodies)
    for _ in range(steps):
        for i in range(n):
            bi = bodies[i]
            for j in range(i + 1, n):
                bj = bodies[j]
                dx = bi[0] - bj[0]
                dy = bi[1] - bj[1]
                dz = bi[2] - bj[2]
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * d2 ** 0.5)
                mi = bi[6] * mag
                mj = bj[6] * mag
                bi[3] -= dx * mj
                bi[4] -= dy * mj
                bi[5] -= dz * mj
                bj[3] += dx * mi
                bj[4] += dy * mi
                bj[5] += dz * mi
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]
    return round(sum(b[0] + b[1] + b[2] for b in bodies), 6)


def k_float():
    return mandelbrot(200, 120, 80) + nbody(25000)


# --- object allocation -----------------------------------------------------
class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Node:
    def __init__(self, value, children=None):
        self.value = value
        self.children = children or []


def k_alloc():
    total = 0
    for r in range(12):
        pts = [Point(i, -i, "p") for i in range(20000)]
        total += sum(p.norm1() for p in pts)
        del pts
        pairs = [(i, i * 2, str(i)) for i in range(20000)]
        pairs.sort(key=lambda t: -t[1])
        total += pairs[0][0]
        del pairs
        root = Node(0, [Node(i, [Node(j) for j in range(10)]) for i in range(500)])
        total += sum(len(c.children) for c in root.children)
        del root
    return total


# --- json round trips ------------------------------------------------------
def k_json():
    doc = {
        "id": 12345,
        "name": "service \u00e9t\u00e9 \"quoted\"",
        "tags": ["alpha", "beta", "gamma", "delta"],
        "items": [
            {"k": i, "v": i * 1.5, "s": "item-%d" % i, "ok": i % 3 == 0, "n": None}
            for i in range(200)
        ],
        "nested": {"a": {"b": {"c": [1, 2, 3, {"d": "e"}]}}},
    }
    total = 0
    for _ in range(120):
        s = json.dumps(doc, sort_keys=True)
        back = json.loads(s)
        total += len(s) + len(back["items"])
        s2 = json.dumps(back, indent=1)
        total += len(json.loads(s2)["tags"])
    return total


# --- regex -----------------------------------------------------------------
def make_text(n):
    words = ["alpha", "beta42", "gamma", "x-ray", "user@example.org", "2024-11-22",
             "3.14159", "foo_bar", "BAZ", "quux", "10.0.0.1", "lorem", "ipsum"]
    return " ".join(words[(i * 7 + i // 3) % len(words)] for i in range(n))


def k_regex():
    text = make_text(20000)
    total = 0
    for r in range(6):
        re.purge()  # include compilation in the measured work
        email = re.compile(r"[\w.]+@[\w.]+\.\w+")
        date = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
        num = re.compile(r"\b\d+(?:\.\d+)?\b")
        word = re.compile(r"\b[a-z]+\d*\b", re.I)
        total += len(email.findall(text))
        total += len(date.findall(text))
        total += len(num.findall(text))
        total += len(word.findall(text))
        total += len(date.sub(r"\3/\2/\1", text))
        total += len(re.sub(r"\s+", "_", text[:50000]))
        total += len(re.split(r"[ .@-]", text[:50000]))
    return total


# --- dict / set work -------------------------------------------------------
def k_dictset():
    total = 0
    for r in range(6):
        d = {}
        for i in range(60000):
            d["k%d" % (i % 9000)] = d.get("k%d" % (i % 9000), 0) + i
        total += len(d) + d["k17"] % 1000
        inv = {v: k for k, v in d.items()}
        total += len(inv)
        a = set(range(0, 60000, 3))
        b = set(range(0, 60000, 5))
        total += len(a & b) + len(a | b) + len(a - b) + len(a ^ b)
        counts = {}
        for w in ("the quick brown fox jumps over the lazy dog " * 800).split():
            counts[w] = counts.get(w, 0) + 1
        total += counts["the"]
        total += sum(1 for i in range(0, 20000, 7) if ("k%d" % i) in d) + len(set(d) & {"k1", "k2", "zz"})
    return total


# --- generators ------------------------------------------------------------
def gen_range(n):
    i = 0
    while i < n:
        yield i
        i += 1


def gen_filter(it):
    for x in it:
        if x % 3:
            yield x


def gen_map(it):
    for x in it:
        yield x * x % 1009


def k_generators():
    total = 0
    for r in range(8):
        total += sum(gen_map(gen_filter(gen_range(120000))))
        total += sum(x for x in range(120000) if x & 1)
        total += max((y for y in (x * 7 % 10007 for x in range(60000))), default=0)
    return total


# --- string methods and formatting -----------------------------------------
def k_strings():
    words = ["alpha", "Beta", "gamma", "DELTA", "epsilon", "zeta", "eta", "theta"]
    table = str.maketrans("aeiou", "AEIOU")
    total = 0
    for r in range(12):
        parts = []
        for i in range(20000):
            w = words[i % 8]
            s = f"{w}-{i:05d}:{i * 3.5:.2f}"
            parts.append(s.upper() if i % 2 else s.lower())
        text = ",".join(parts)
        total += len(text)
        fields = text.split(",")
        total += sum(1 for f in fields if f.startswith("GAMMA") or f.endswith("0"))
        total += len(text.translate(table).replace("-", "").encode("utf-8"))
        total += text.count("eta") + text.find("THETA-19999")
        total += len("".join(reversed(fields[:5000])).casefold().strip())
        total += len(" ".join(f.partition(":")[0].title() for f in fields[:5000]))
    return total


# --- numpy linear algebra (BLAS/LAPACK) -------------------------------------
def k_numpy():
    import numpy as np  # imported before the clock starts, see main()

    rng = np.random.default_rng(20261122)
    n = 300
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    spd = a @ a.T + n * np.eye(n)
    total = 0.0
    for r in range(4):
        total += float(np.trace(a @ b))
        total += float(np.linalg.solve(a, b[:, 0]).sum())
        total += float(np.linalg.inv(spd).trace())
        total += float(np.linalg.svd(a[:200, :200], compute_uv=False).sum())
        total += float(np.linalg.eigvalsh(spd[:200, :200]).sum())
        total += float(np.abs(np.diag(np.linalg.qr(b)[1])).sum())
        total += float(np.linalg.cholesky(spd).trace())
        total += float(np.linalg.slogdet(a)[1])
    return round(total, 6)


KINDS = [
    ("recursion", k_recursion),
    ("float", k_float),
    ("alloc", k_alloc),
    ("json", k_json),
    ("regex", k_regex),
    ("dictset", k_dictset),
    ("generators", k_generators),
    ("strings", k_strings),
    ("numpy", k_numpy),
]


# Checksums of a correct run (CPython 3.11 on x86-64); a mismatch means the
# work was not done as written and the timing would be meaningless.
EXPECTED = {
    "recursion": 1664080,
    "float": 606347.526498,
    "alloc": 4800059988,
    "json": 1561200,
    "regex": 1465110,
    "dictset": 558042,
    "generators": 29122680016,
    "strings": 16707264,
    "numpy": 535742.346602,
}
# BLAS may sum in another order with another thread count: floats are compared
# to this relative tolerance.
FLOAT_TOLERANCE = 1e-7


def main():
    # --no-numpy: the kinds any engine runs (Debian's numpy is CPython's alone:
    # bench/engines runs them on PyPy too)
    kinds = [(n, fn) for n, fn in KINDS if n != "numpy" or "--no-numpy" not in sys.argv[1:]]
    if any(n == "numpy" for n, _ in kinds):
        import numpy  # noqa: F401  (its import is start-up, not numpy work)

    res = {}
    cpu = {}
    checks = {}
    for name, fn in kinds:
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        checks[name] = fn()
        res[name] = round(time.perf_counter() - t0, 6)
        cpu[name] = round(time.process_time() - c0, 6)
    for name, got in checks.items():
        want = EXPECTED[name]
        if abs(got - want) > FLOAT_TOLERANCE * max(1.0, abs(want)) if isinstance(want, float) else got != want:
            raise AssertionError("compute.py: checksum of %s is %r, expected %r" % (name, got, want))
    res["total"] = round(sum(res.values()), 6)
    cpu["total"] = round(sum(cpu.values()), 6)
    res["cpu"] = cpu
    if "--checks" in sys.argv[1:]:
        res["checks"] = checks
    return json.dumps(res)


try:  # inside teepy the result goes back through teex; run natively it is printed
    from teex import TEEX_return as give
except ImportError:
    give = print
give(main())
