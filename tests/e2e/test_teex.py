"""The teex module and the data flow of `teepy run`, as docs/cli.md defines them."""
import hashlib
import json
import os

from exit_codes import EXIT


ECHO_INPUT = """
import teex
teex.TEEX_return(teex.TEEX_getinput())
"""

ECHO_INPUT_BYTES = """
import teex
teex.TEEX_return(teex.get_input_bytes())
"""


# ---------------------------------------------------------------- input


def test_input_flag_reaches_getinput(as_user, run, script):
    s = script(ECHO_INPUT)
    r = run("run", s, "--input", "hello, sandbox")
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == b"hello, sandbox"


def test_options_may_follow_or_precede_the_script(run, script):
    s = script(ECHO_INPUT)
    before = run("run", "--input", "early", s)
    after = run("run", s, "--input", "late")
    assert (before.returncode, before.stdout) == (EXIT.OK, b"early"), before.err
    assert (after.returncode, after.stdout) == (EXIT.OK, b"late"), after.err


def test_input_file_is_read_exactly(as_user, run, tmp, script):
    data = "grüße 😀\n".encode() + b"\xff\xfe tail"
    f = tmp.write("input.bin", data)
    s = script(
        """
        import json, teex
        s = teex.TEEX_getinput()
        b = teex.get_input_bytes()
        teex.TEEX_return(json.dumps({"str": s.encode("utf-8", "surrogateescape").hex(),
                                     "type": type(s).__name__, "bytes": b.hex(),
                                     "btype": type(b).__name__}))
        """
    )
    out = run("run", s, "--input-file", f).json()
    assert out["type"] == "str" and out["btype"] == "bytes"
    assert bytes.fromhex(out["bytes"]) == data
    # undecodable bytes come through as surrogate escapes, so nothing is lost
    assert bytes.fromhex(out["str"]) == data


def test_returned_str_gives_back_the_bytes_of_surrogate_escapes(run, tmp, script):
    """get_input turns undecodable bytes into surrogate escapes; TEEX_return turns
    them back, so echoing the input returns its bytes exactly (docs/cli.md)."""
    data = b"ok \xff\xfe\x80 \xc3\xa9"
    f = tmp.write("input.bin", data)
    echo = run("run", script(ECHO_INPUT), "--input-file", f)
    assert (echo.returncode, echo.stdout) == (EXIT.OK, data), echo
    lone = run("run", script("import teex\nteex.TEEX_return('a\\udcffb')\n", name="lone.py"))
    assert (lone.returncode, lone.stdout) == (EXIT.OK, b"a\xffb"), lone
    # any other lone surrogate has no bytes to go back to
    other = run("run", script("import teex\nteex.TEEX_return('\\ud800')\n", name="other.py"))
    assert other.returncode == EXIT.SERVICE_FAILED and "UnicodeEncodeError" in other.err, other


def test_input_file_dash_reads_stdin(as_user, run, script):
    s = script(ECHO_INPUT_BYTES)
    payload = b"from stdin \x00\x01\xff" * 1000
    r = run("run", s, "--input-file", "-", stdin=payload)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == payload


def test_empty_input_is_empty_string(as_user, run, script):
    s = script(
        """
        import json, teex
        v = teex.TEEX_getinput()
        teex.TEEX_return(json.dumps({"value": v, "type": type(v).__name__,
                                     "bytes": teex.get_input_bytes().hex()}))
        """
    )
    assert run("run", s).json() == {"value": "", "type": "str", "bytes": ""}
    assert run("run", s, "--input", "").json() == {"value": "", "type": "str", "bytes": ""}


# ---------------------------------------------------------------- result


def test_return_first_call_wins(as_user, run, script):
    s = script(
        """
        import sys, teex
        first = teex.TEEX_return("first result")
        second = teex.TEEX_return("second result")
        third = teex.set_result(b"third result")
        print(f"first={first!r} second={second!r} third={third!r}", file=sys.stderr)
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == b"first result"
    assert "first=True second=False third=False" in r.err


def test_aliases_behave_like_teex_names(as_user, run, tmp, script):
    d0 = tmp.write("d0.bin", b"item zero")
    d1 = tmp.write("d1.bin", b"item one")
    s = script(
        """
        import json, teex
        out = {
            "get_input": teex.get_input(),
            "TEEX_getinput": teex.TEEX_getinput(),
            "get_data0": teex.get_data(0).decode(),
            "TEEX_getdata1": teex.TEEX_getdata(1).decode(),
            "get_data1": teex.get_data(1).decode(),
            "data_count": teex.data_count(),
        }
        out["set_result"] = teex.set_result(json.dumps(out))
        import sys
        print("TEEX_return after set_result:", teex.TEEX_return("late"), file=sys.stderr)
        """
    )
    r = run("run", s, "--input", "alias-input", "--data", d0, "--task-data", d1)
    out = r.json()
    assert out == {
        "get_input": "alias-input",
        "TEEX_getinput": "alias-input",
        "get_data0": "item zero",
        "TEEX_getdata1": "item one",
        "get_data1": "item one",
        "data_count": 2,
    }
    assert "TEEX_return after set_result: False" in r.err


def test_return_rejects_non_str_with_type_error_naming_the_type(as_user, run, script):
    s = script(
        """
        import json, teex
        errors = {}
        for name, value in (("int", 42), ("none", None), ("list", ["a"]), ("float", 1.5)):
            try:
                teex.TEEX_return(value)
                errors[name] = None
            except TypeError as e:
                errors[name] = str(e)
        try:
            teex.set_result(7)
            errors["alias"] = None
        except TypeError as e:
            errors["alias"] = str(e)
        # failed calls do not count: this one is still the first
        errors["after"] = teex.TEEX_return(json.dumps(errors))
        """
    )
    out = run("run", s).json()
    assert out["int"] is not None and "int" in out["int"]
    assert out["none"] is not None and "NoneType" in out["none"]
    assert out["list"] is not None and "list" in out["list"]
    assert out["float"] is not None and "float" in out["float"]
    assert out["alias"] is not None and "int" in out["alias"]


def test_bytes_result_written_exactly(as_user, run, script):
    s = script(
        """
        import teex
        teex.TEEX_return(bytes(range(256)) + b"\\x00\\xff\\xfe\\x80 no newline")
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == bytes(range(256)) + b"\x00\xff\xfe\x80 no newline"


def test_str_result_written_as_utf8(as_user, run, script):
    text = "héllo wörld ✓ 😀 日本"
    s = script(f"import teex\nteex.TEEX_return({text!r})\n")
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == text.encode("utf-8")


def test_no_newline_added_to_result(run, script):
    s = script("import teex\nteex.TEEX_return('abc')\n")
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == b"abc"
    s2 = script("import teex\nteex.TEEX_return('')\n", name="empty.py")
    r2 = run("run", s2)
    assert r2.returncode == EXIT.OK, r2.err
    assert r2.stdout == b""


def test_large_result_written_exactly(run, script):
    s = script(
        """
        import teex
        teex.TEEX_return(bytes(i * 7 % 251 for i in range(3 * 1024 * 1024)))
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == bytes(i * 7 % 251 for i in range(3 * 1024 * 1024))


def test_result_to_output_file(as_user, run, tmp, script):
    outdir = tmp / "out"
    outdir.mkdir()
    outdir.chmod(0o777)  # uid 65534 writes the output file (teepy itself, not the service)
    target = outdir / "result.bin"
    s = script("import teex\nteex.TEEX_return(b'to a file \\x00\\xff')\n")
    r = run("run", s, "--output", target)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == b""
    assert target.read_bytes() == b"to a file \x00\xff"


def test_output_dash_is_stdout(as_user, run, run_cwd, script):
    s = script("import teex\nteex.TEEX_return('to stdout')\n")
    r = run("run", s, "--output", "-")
    assert (r.returncode, r.stdout) == (EXIT.OK, b"to stdout"), r
    assert os.listdir(run_cwd) == [], "a file named '-' was written"


# ---------------------------------------------------------------- data


def test_service_then_task_data_in_order(as_user, run, tmp, script):
    service = [tmp.write(f"svc{i}.txt", f"service item {i}") for i in range(3)]
    task = [tmp.write(f"task{i}.txt", f"task item {i}") for i in range(4)]
    s = script(
        """
        import json, teex
        n = teex.data_count()
        teex.TEEX_return(json.dumps({"count": n,
                                     "items": [teex.TEEX_getdata(i).decode() for i in range(n)],
                                     "fourth": teex.TEEX_getdata(4).decode()}))
        """
    )
    args = ["run", s]
    # interleave the flags: the order within each kind is what counts
    args += ["--task-data", task[0], "--data", service[0], "--task-data", task[1]]
    args += ["--data", service[1], "--task-data", task[2], "--data", service[2], "--task-data", task[3]]
    out = run(*args).json()
    assert out["count"] == 7
    assert out["items"] == [f"service item {i}" for i in range(3)] + [f"task item {i}" for i in range(4)]
    assert out["fourth"] == "task item 1"  # index 4 = the second task item


def test_data_index_out_of_range_names_the_count(as_user, run, tmp, script):
    files = [tmp.write(f"d{i}", b"x") for i in range(7)]
    s = script(
        """
        import json, teex
        out = {}
        for idx in (7, 100, -1, -8):
            try:
                teex.TEEX_getdata(idx)
                out[str(idx)] = None
            except IndexError as e:
                out[str(idx)] = str(e)
        try:
            teex.get_data(-1)
            out["alias"] = None
        except IndexError as e:
            out["alias"] = str(e)
        try:
            teex.TEEX_getdata("0")
            out["str"] = None
        except TypeError as e:
            out["str"] = "TypeError"
        teex.TEEX_return(json.dumps(out))
        """
    )
    args = ["run", s]
    for i, f in enumerate(files):
        args += ["--data" if i < 3 else "--task-data", f]
    out = run(*args).json()
    for key in ("7", "100", "-1", "-8", "alias"):
        assert out[key] is not None, f"get_data({key}) did not raise IndexError"
        assert "7" in out[key], f"IndexError for {key} does not name the count: {out[key]!r}"
    assert out["str"] == "TypeError"


def test_no_data_gives_count_zero_and_index_error(run, script):
    s = script(
        """
        import json, teex
        try:
            teex.TEEX_getdata(0)
            err = None
        except IndexError as e:
            err = str(e)
        teex.TEEX_return(json.dumps({"count": teex.data_count(), "err": err}))
        """
    )
    out = run("run", s).json()
    assert out["count"] == 0
    assert out["err"] is not None and "0" in out["err"]


def test_binary_data_round_trips(as_user, run, tmp, script):
    every_byte = bytes(range(256)) * 4
    big = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)  # 5 MiB
    assert len(big) == 5 * 1024 * 1024
    f1 = tmp.write("every_byte.bin", every_byte)
    f2 = tmp.write("big.bin", big)
    f3 = tmp.write("empty.bin", b"")
    s = script(
        """
        import hashlib, json, teex
        items = [teex.TEEX_getdata(i) for i in range(teex.data_count())]
        teex.TEEX_return(json.dumps({
            "types": [type(x).__name__ for x in items],
            "sizes": [len(x) for x in items],
            "sha": [hashlib.sha256(x).hexdigest() for x in items],
            "first": items[0].hex(),
        }))
        """
    )
    out = run("run", s, "--data", f1, "--task-data", f2, "--task-data", f3).json()
    assert out["types"] == ["bytes", "bytes", "bytes"]
    assert out["sizes"] == [len(every_byte), len(big), 0]
    assert out["sha"] == [hashlib.sha256(x).hexdigest() for x in (every_byte, big, b"")]
    assert bytes.fromhex(out["first"]) == every_byte


def test_get_data_from_many_threads_is_correct(run, tmp, script):
    blobs = [bytes([i]) * (100_000 + i * 4099) for i in range(5)]
    files = [tmp.write(f"blob{i}", b) for i, b in enumerate(blobs)]
    s = script(
        """
        import hashlib, json, threading, teex
        n = teex.data_count()
        results = []
        lock = threading.Lock()
        def worker(k):
            mine = []
            for j in range(40):
                i = (k + j) % n
                mine.append((i, hashlib.sha256(teex.TEEX_getdata(i)).hexdigest()))
            with lock:
                results.extend(mine)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        teex.TEEX_return(json.dumps(results))
        """
    )
    args = ["run", s]
    for f in files:
        args += ["--data", f]
    out = run(*args).json()
    assert len(out) == 8 * 40
    expected = [hashlib.sha256(b).hexdigest() for b in blobs]
    wrong = [(i, h) for i, h in out if h != expected[i]]
    assert not wrong, f"{len(wrong)} concurrent get_data calls returned wrong bytes"


# ---------------------------------------------------------------- output streams


def test_service_prints_go_to_stderr_not_stdout(as_user, run, script):
    s = script(
        """
        import os, sys, teex
        print("marker-printed-to-stdout")
        sys.stdout.flush()
        os.write(1, b"marker-raw-fd1\\n")
        print("marker-printed-to-stderr", file=sys.stderr)
        teex.TEEX_return("the result")
        print("marker-after-result")
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.OK, r.err
    assert r.stdout == b"the result"
    err = r.err
    for marker in ("marker-printed-to-stdout", "marker-raw-fd1", "marker-printed-to-stderr", "marker-after-result"):
        assert marker in err


# ---------------------------------------------------------------- the module itself


def test_teex_py_beside_script_cannot_shadow_module(as_user, run, tmp, script):
    tmp.write(
        "teex.py",
        "FAKE = True\n"
        "def TEEX_getinput():\n    return 'fake input'\n"
        "def TEEX_return(s):\n    print('FAKE RETURN', s)\n    return True\n",
    )
    s = script(
        """
        import json, sys, teex
        teex.TEEX_return(json.dumps({
            "fake": hasattr(teex, "FAKE"),
            "input": teex.TEEX_getinput(),
            "file": getattr(teex, "__file__", None),
            "same": sys.modules["teex"] is teex,
        }))
        """
    )
    r = run("run", s, "--input", "real input")
    out = r.json()
    assert out["fake"] is False
    assert out["input"] == "real input"
    assert not (out["file"] or "").endswith("teex.py")
    assert "FAKE RETURN" not in r.err


def test_argv_after_double_dash(as_user, run, script):
    s = script(
        """
        import json, sys, teex
        teex.TEEX_return(json.dumps({"argv": sys.argv, "input": teex.TEEX_getinput()}))
        """
    )
    out = run("run", s, "--", "a", "b c", "--input", "not-a-flag").json()
    assert out["argv"][1:] == ["a", "b c", "--input", "not-a-flag"]
    assert out["argv"][0].endswith("svc.py")
    assert out["input"] == ""


def test_argv_without_arguments_is_script_only(run, script):
    s = script("import json, sys, teex\nteex.TEEX_return(json.dumps(sys.argv))\n")
    out = run("run", s).json()
    assert len(out) == 1 and out[0].endswith("svc.py")


def test_host_environment_not_visible(as_user, run, script):
    s = script(
        """
        import json, os, teex
        teex.TEEX_return(json.dumps(dict(os.environ)))
        """
    )
    secret = "s3cr3t-value-7f1c"
    r = run("run", s, "--env", "GREETING=hi there", "--env", "EMPTY=", "--env", "EQ=a=b",
            env={"FOO_SECRET": secret, "HOME": "/home/host-home-marker"})
    env = r.json()
    assert "FOO_SECRET" not in env
    assert secret not in json.dumps(env)
    assert "host-home-marker" not in json.dumps(env)
    assert env.get("GREETING") == "hi there"
    assert env.get("EMPTY") == ""
    assert env.get("EQ") == "a=b"


def test_isolated_mode_ignores_host_python_variables(as_user, run, tmp, script):
    evil = tmp.make_sibling("evil")
    evil.write("evilmod.py", "VALUE = 'imported from PYTHONPATH'\n")
    startup = evil.write("startup.py", "import builtins\nbuiltins.STARTUP_RAN = True\n")
    s = script(
        """
        import builtins, json, os, sys, teex
        try:
            import evilmod
            imported = True
        except ImportError:
            imported = False
        teex.TEEX_return(json.dumps({
            "imported": imported,
            "startup": hasattr(builtins, "STARTUP_RAN"),
            "path": sys.path,
            "isolated": sys.flags.isolated,
            "ignore_env": sys.flags.ignore_environment,
            "env": sorted(k for k in os.environ if k.startswith("PYTHON")),
        }))
        """
    )
    r = run("run", s, env={"PYTHONPATH": str(evil), "PYTHONSTARTUP": str(startup),
                           "PYTHONINSPECT": "1", "PYTHONHOME": "/nonexistent"})
    out = r.json()
    assert out["imported"] is False
    assert out["startup"] is False
    assert str(evil) not in out["path"]
    assert out["isolated"] == 1 and out["ignore_env"] == 1
    assert out["env"] == []


# ---------------------------------------------------------------- threads


def test_threads_work(as_user, run, script):
    s = script(
        """
        import json, threading, teex
        from concurrent.futures import ThreadPoolExecutor
        results = [None] * 8
        def work(i):
            results[i] = sum(k * k for k in range(i * 1000, (i + 1) * 1000))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        with ThreadPoolExecutor(max_workers=4) as ex:
            mapped = list(ex.map(lambda x: x * 3, range(100)))
        teex.TEEX_return(json.dumps({"threads": results, "mapped": mapped,
                                     "alive": threading.active_count()}))
        """
    )
    out = run("run", s).json()
    assert out["threads"] == [sum(k * k for k in range(i * 1000, (i + 1) * 1000)) for i in range(8)]
    assert out["mapped"] == [x * 3 for x in range(100)]
    assert out["alive"] == 1
