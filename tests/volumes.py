"""Output volumes from outside (teepy run --output-volume DIR --volume-key KEY; teepy
volume ls): the place of a volume a test's user owns, what a reader of DIR sees, and
what `volume ls` lists. The `place` fixture (conftest.py) makes a Place."""
import os
import re
import shutil
import stat

from exit_codes import EXIT

NOBODY = 65534


def one_line(r):
    """Exactly one stderr line, teepy's own."""
    lines = r.err_lines
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {r!r}"
    assert lines[0].startswith("teepy:"), r
    return lines[0]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def own(path, variant):
    """Gives path (and everything under it) to whoever runs teepy in this test."""
    if variant != "user" or os.geteuid() != 0:
        return
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), NOBODY, NOBODY, follow_symlinks=False)


def snapshot(d):
    """Everything a reader of directory d sees: its mode, and each entry's relative
    name, type and mode, with a regular file's bytes."""
    if not os.path.lexists(d):
        return None
    out = {".": mode(d)}
    for root, dirs, files in os.walk(d):
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(p, d)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), data)
    return out


class Place:
    """A directory the variant's user owns (root), holding a volume key (key:
    vol.key) and the place of the volume (dir: out, not made yet)."""

    def __init__(self, root, run, variant, name="out", key=None):
        self.root, self.run, self.variant = root, run, variant
        self.key = key or self.keygen("vol.key")
        self.dir = root / name

    @property
    def flags(self):
        """What a run takes to seal its /out into this volume."""
        return ["--output-volume", self.dir, "--volume-key", self.key]

    def other(self, name, key=None):
        """Another volume beside this one: under key, or a new key of its own."""
        return Place(self.root, self.run, self.variant, name, key or self.keygen(name + ".key"))

    def keygen(self, name):
        path = self.root / name
        r = self.run("keygen", "--symmetric", "-o", path)
        assert r.returncode == EXIT.OK, r
        assert mode(path) == 0o600
        return path

    def siblings(self):
        """What the volume's parent holds besides the keys: a stray .out.teepy-*
        directory shows here."""
        return sorted(n for n in os.listdir(self.root) if not n.endswith(".key"))

    def copy(self, src, dst):
        shutil.copytree(src, dst, symlinks=True)
        own(dst, self.variant)


def ls(run, place, *extra, key=None):
    """`volume ls` that must work: (version, [(name, size)] in its order)."""
    r = run("volume", "ls", place.dir, "--volume-key", key or place.key, *extra)
    assert r.returncode == EXIT.OK, r
    lines = r.stdout.decode().splitlines()
    assert lines, r
    m = re.fullmatch(r"version (\d+)", lines[0])
    assert m, r
    files = []
    for line in lines[1:]:
        f = re.fullmatch(r" *(\d+) (.+)", line)
        assert f, (line, r)
        files.append((f.group(2), int(f.group(1))))
    return int(m.group(1)), files
