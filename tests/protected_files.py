"""The protected-file format as the tests read it (docs/protected-files.md: sealed
data items, encrypted bundle files, output volumes), and the search for plaintext
that must never be left on disk."""
import os
import stat

HEADER = 72
CHUNK = 65536
TAG = 16


def chunks_of(size):
    return 1 if size == 0 else -(-size // CHUNK)


def sealed_size(size):
    return HEADER + TAG * chunks_of(size) + size


def chunk_offset(i):
    """Where chunk i (ciphertext, then its tag) starts in a protected file."""
    return HEADER + i * (CHUNK + TAG)


# ---------------------------------------------------------------- plaintext on disk


def recent_files(top, since):
    """Regular files under top changed at or after since."""
    found = []
    for root, _dirs, files in os.walk(top, onerror=lambda e: None):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and max(st.st_mtime, st.st_ctime) >= since:
                found.append(path)
    return found


def holding(paths, marks):
    """{path: [markers (bytes) it holds]} for the paths holding any in their first
    256 MiB."""
    held = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read(256 << 20)
        except OSError:
            continue
        hits = [m for m in marks if m in data]
        if hits:
            held[path] = hits
    return held
