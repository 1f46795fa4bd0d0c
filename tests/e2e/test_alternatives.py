"""The facts an unsealed run keeps about /etc/alternatives (where each link leads) in
the cache directory: taken once, used by later runs while the directories they
depend on are unchanged, taken afresh when those change or the file is damaged,
never read through a link, never kept with --no-cache, removed by cache clear."""
import os
import shutil
import tempfile

import pytest

from exit_codes import EXIT

NOBODY = 65534
LIBS = "/usr/lib/x86_64-linux-gnu/"
# prints which of the links named in argv the service sees
SVC = "import os, sys, teex\nteex.TEEX_return(' '.join(" \
      "str(os.path.islink('/etc/alternatives/' + n)) for n in sys.argv[1:]))\n"


@pytest.fixture
def cache(variant):
    """A cache directory on a tmpfs, mode 0700, of the uid running teepy."""
    d = tempfile.mkdtemp(prefix="teepy-alt-cache-", dir="/dev/shm")
    os.chmod(d, 0o700)
    if variant == "user" and os.geteuid() == 0:
        os.chown(d, NOBODY, NOBODY)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def facts_path(cache):
    return os.path.join(cache, "alternatives")


def read_facts(cache):
    with open(facts_path(cache)) as f:
        return f.read()


def library_links(text):
    """Names of the links the facts say end among the libraries."""
    names = []
    for line in text.splitlines():
        if line.startswith("l "):
            name, end = line[2:].split("\t")
            if end.startswith(LIBS):
                names.append(name)
    return names


def write_as_owner(cache, text):
    path = facts_path(cache)
    st = os.stat(cache)
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", 0o600)
    if os.geteuid() == 0:
        os.chown(path + ".new", st.st_uid, st.st_gid)
    os.rename(path + ".new", path)


@pytest.fixture
def see(run, script, cache):
    """see(*names, env=None) -> whether the service sees each link /etc/alternatives/NAME."""
    svc = script(SVC)

    def _see(*names, env=None):
        full = {"TEEPY_NO_CACHE": "0", "TEEPY_CACHE_DIR": cache}
        full.update(env or {})
        r = run("run", svc, "--allow-site-packages", "--", *names, env=full)
        assert r.returncode == EXIT.OK, r
        assert not r.err_lines, r
        return [w == "True" for w in r.stdout.decode().split()]

    return _see


def a_library_link(see, cache):
    see()
    names = library_links(read_facts(cache))
    if not names:
        pytest.skip("no /etc/alternatives link leads among the libraries on this host")
    return names[0]


def test_the_facts_are_kept_and_used(as_user, see, cache):
    name = a_library_link(see, cache)
    st = os.stat(facts_path(cache))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.stat(cache).st_uid
    assert read_facts(cache).startswith("teepy-alternatives-v2\n")
    assert see(name) == [True]
    # a fact changed while the directories stay as they were: a later run believes it
    # (the link is left out), which shows it decides from the facts
    text = read_facts(cache)
    write_as_owner(cache, "".join(l for l in text.splitlines(True)
                                  if not l.startswith("l %s\t" % name)))
    assert see(name) == [False]


def test_a_changed_directory_takes_the_facts_afresh(as_user, see, cache):
    name = a_library_link(see, cache)
    text = read_facts(cache)
    # the link's fact gone and /etc/alternatives' times no longer what they were
    lines = [l for l in text.splitlines(True) if not l.startswith("l %s\t" % name)]
    first = lines[1].split(" ")
    assert first[0] == "d" and lines[1].endswith(" /etc/alternatives\n"), lines[1]
    first[4] = str(int(first[4]) - 1)
    lines[1] = " ".join(first)
    write_as_owner(cache, "".join(lines))
    assert see(name) == [True]
    assert read_facts(cache) == text


@pytest.mark.parametrize("damage", [b"", b"teepy-alternatives-v2\n", b"\0\1\2garbage\n",
                                    b"teepy-alternatives-v2\nl x\n",
                                    b"teepy-alternatives-v2\nd 1 2 3 4 5 6 7 /etc/alt",
                                    b"teepy-alternatives-v2\nd one 2 3 4 5 6 7 /etc/alternatives\n",
                                    b"teepy-alternatives-v2\nd 0 1 2 3 4 5 6 /etc/alternatives\nl\n",
                                    b"teepy-alternatives-v1\nd 1 1 2 3 4 5 6 /etc/alternatives\n"],
                         ids=["empty", "no directories", "binary", "bad link", "cut short",
                              "bad number", "one-byte link line", "an older teepy's"])
def test_a_damaged_file_is_taken_afresh(as_user, see, cache, damage):
    name = a_library_link(see, cache)
    text = read_facts(cache)
    write_as_owner(cache, damage.decode("latin-1"))
    assert see(name) == [True]
    assert read_facts(cache) == text


def test_a_link_in_its_place_is_not_followed(as_user, see, cache, tmp):
    name = a_library_link(see, cache)
    text = read_facts(cache)
    decoy = tmp.write("decoy", "teepy-alternatives-v2\n")
    os.unlink(facts_path(cache))
    os.symlink(str(decoy), facts_path(cache))
    assert see(name) == [True]
    assert not os.path.islink(facts_path(cache))
    assert read_facts(cache) == text
    assert decoy.read_text() == "teepy-alternatives-v2\n"


def test_without_the_cache_nothing_is_kept(as_user, see, cache):
    assert see(env={"TEEPY_NO_CACHE": "1"}) == []
    os.chmod(cache, 0o755)  # fails the checks: silently taken afresh, nothing kept
    assert see() == []
    assert os.listdir(cache) == []


def test_cache_clear_removes_the_facts(as_user, see, cache, run):
    see()
    assert os.path.exists(facts_path(cache))
    r = run("cache", "clear", env={"TEEPY_CACHE_DIR": cache})
    assert r.returncode == EXIT.OK, r
    assert os.listdir(cache) == []
