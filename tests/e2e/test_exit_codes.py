"""Exit codes and teepy's own messages, as docs/cli.md defines them."""
import os
import re
import signal
import time
from pathlib import Path

import pytest

from exit_codes import EXIT
from supervision import process_gone, service_pid, wait_until_ready

RETURN_OK = "import teex\nteex.TEEX_return('ok')\n"


def one_teepy_line(r):
    """A usage error is exactly one stderr line starting with 'teepy:' (besides the
    warning a run without cgroups starts with)."""
    lines = r.err_lines
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {r.err!r}"
    assert lines[0].startswith("teepy:"), lines[0]
    return lines[0]


# ---------------------------------------------------------------- 0, 1, 3


def test_exit_0_when_result_returned(as_user, run, script):
    r = run("run", script(RETURN_OK))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r.err


def test_exit_0_when_result_returned_then_sys_exit_0(run, script):
    r = run("run", script("import sys, teex\nteex.TEEX_return('ok')\nsys.exit(0)\n"))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r.err


def test_exit_1_on_uncaught_exception_with_traceback(as_user, run, script):
    s = script(
        """
        def inner():
            raise ValueError("boom-marker-1234")
        inner()
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert r.stdout == b""
    assert "Traceback" in r.err
    assert "ValueError" in r.err and "boom-marker-1234" in r.err
    assert "inner" in r.err


def test_exit_1_on_custom_exception_after_result_keeps_result(run, script):
    s = script(
        """
        import teex
        class ServiceBroke(Exception):
            pass
        teex.TEEX_return("partial result")
        raise ServiceBroke("after the result")
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    assert r.stdout == b"partial result"  # a result returned before a failure is still written
    assert "ServiceBroke" in r.err


@pytest.mark.parametrize("code", ["3", "'a message'", "255"])
def test_exit_1_on_nonzero_sys_exit(run, script, code):
    r = run("run", script(f"import sys\nsys.exit({code})\n"))
    assert r.returncode == EXIT.SERVICE_FAILED, r


def test_exit_1_on_nonzero_sys_exit_after_result(run, script):
    r = run("run", script("import sys, teex\nteex.TEEX_return('r')\nsys.exit(9)\n"))
    assert (r.returncode, r.stdout) == (EXIT.SERVICE_FAILED, b"r"), r


def test_exit_3_without_result(as_user, run, script):
    r = run("run", script("x = 1 + 1\nprint('did some work')\n"))
    assert r.returncode == EXIT.NO_RESULT, r
    assert r.stdout == b""
    assert "without returning a result" in r.err


def test_exit_3_on_sys_exit_0_without_result(run, script):
    r = run("run", script("import sys\nsys.exit(0)\n"))
    assert r.returncode == EXIT.NO_RESULT, r
    assert "without returning a result" in r.err


def test_exit_3_when_every_return_was_rejected(run, script):
    s = script(
        """
        import teex
        try:
            teex.TEEX_return(123)
        except TypeError:
            pass
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.NO_RESULT, r
    assert "without returning a result" in r.err


def test_syntax_error_is_one_line_exit_1(as_user, run, script):
    s = script("import teex\n\ndef broken(:\n    pass\n", name="broken_svc.py")
    r = run("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    lines = r.err_lines
    assert len(lines) == 1, f"a syntax error must be one stderr line, got: {r.err!r}"
    line = lines[0]
    assert "SyntaxError" in line
    assert "broken_svc.py" in line
    assert re.search(r"\b3\b", line), f"line number 3 missing: {line!r}"


@pytest.mark.parametrize("source", [b"import teex\nx = 'caf\xe9'\n", b"# -*- coding: bogus -*-\n"],
                         ids=["not-utf8", "unknown-coding"])
def test_undecodable_script_is_one_line_naming_the_file(as_user, run, tmp, source):
    s = tmp.write("latin_svc.py", source)
    r = run("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    line = one_teepy_line(r)
    assert line.startswith(f"teepy: {s}: SyntaxError: "), line
    assert "None" not in line, line


# ---------------------------------------------------------------- 4: the control channel
# The service holds fd 3, the control channel (src/channel/protocol.h): a frame is
# u32 type, u32 arg, u64 size in host byte order, then size bytes. Native code can
# write anything there; the supervisor must end the run, not trust or hang on it.

FRAME = """
import os, struct, sys, teex
def frame(type_, arg, size, payload=b""):
    os.write(3, struct.pack("=IIQ", type_, arg, size) + payload)
"""


@pytest.mark.parametrize("frame", ["frame(99, 0, 0)",                 # no such type
                                   "frame(16, 0, 5, b'extra')",       # GET_INPUT carries nothing
                                   "frame(19, 1, 1 << 40)"],          # a status name of 1 TiB
                         ids=["unknown-type", "get-input-with-payload", "huge-status"])
def test_malformed_frame_ends_service_with_exit_4(as_user, run, script, frame):
    s = script(FRAME + frame + "\nimport time\ntime.sleep(30)\n")
    r = run("run", s, "--timeout", "20s")
    assert r.returncode == EXIT.RULE, r
    assert "malformed frames" in r.err and "killed for a rule" in r.err, r
    assert r.stdout == b""


def test_result_header_larger_than_memory_limit_ends_service_with_exit_4(as_user, run, script):
    s = script(FRAME + "frame(18, 0, 1 << 62)\nimport time\ntime.sleep(30)\n")
    r = run("run", s, "--memory", "256M", "--timeout", "20s")
    assert r.returncode == EXIT.RULE, r
    assert "larger than its memory limit" in r.err and "256" in r.err, r
    assert r.stdout == b""


def test_forged_result_frame_after_the_real_one_changes_nothing(run, script):
    s = script(FRAME + "teex.TEEX_return('real')\nframe(18, 0, 6, b'forged')\n")
    r = run("run", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"real"), r


# ---------------------------------------------------------------- 2: usage errors


def test_missing_script_is_usage_error(as_user, run, tmp):
    r = run("run", tmp / "does_not_exist.py")
    assert r.returncode == EXIT.USAGE, r
    assert "does_not_exist.py" in one_teepy_line(r)


def test_arguments_larger_than_the_boot_payload_are_usage_error(run, script):
    # 10 x 120 kB: each below the kernel's 128 KiB for one argument, together over
    # the 1 MiB boot payload (src/channel/protocol.h)
    r = run("run", script(RETURN_OK), "--", *["a" * 120_000] * 10)
    assert r.returncode == 2, r
    assert "more than 1048576 bytes" in one_teepy_line(r)
    assert r.stdout == b""


def test_no_script_is_usage_error(run):
    r = run("run")
    assert r.returncode == EXIT.USAGE, r
    assert r.err.startswith("teepy:")


@pytest.mark.parametrize("flag", ["--data", "--task-data", "--input-file"])
@pytest.mark.parametrize("kind", ["nonexistent", "directory", "unreadable"])
def test_unreadable_data_or_input_file_is_usage_error(as_user, run, tmp, script, flag, kind):
    s = script(RETURN_OK)
    if kind == "nonexistent":
        path = tmp / "no_such_file.bin"
    elif kind == "directory":
        path = tmp.make_sibling("a-directory")
    else:
        if as_user == "root":
            pytest.skip("root reads a mode-000 file; covered by the nonexistent and directory cases")
        path = tmp.write("secret.bin", b"secret", mode=0o000)
    r = run("run", s, flag, path)
    assert r.returncode == EXIT.USAGE, r
    assert r.stdout == b""
    one_teepy_line(r)


BAD_FLAGS = [
    ("memory-3Q", ["--memory", "3Q"]),
    ("memory-negative", ["--memory", "-1"]),
    ("memory-empty", ["--memory", ""]),
    ("memory-fraction", ["--memory", "1.5G"]),
    ("cpu-abc", ["--cpu-time", "abc"]),
    ("cpu-zero", ["--cpu-time", "0"]),
    ("timeout-negative", ["--timeout", "-5s"]),
    ("timeout-unit", ["--timeout", "5parsecs"]),
    ("threads-abc", ["--threads", "many"]),
    ("scratch-3Q", ["--scratch", "3Q"]),
    ("unknown-flag", ["--frobnicate"]),
    ("missing-value", ["--memory"]),
    ("env-without-equals", ["--env", "NOEQUALS"]),
    ("mode-unknown", ["--mode", "turbo"]),
]


@pytest.mark.parametrize("args", [a for _, a in BAD_FLAGS], ids=[i for i, _ in BAD_FLAGS])
def test_bad_flag_or_value_is_one_line_usage_error(run, script, args):
    s = script(RETURN_OK)
    if args == ["--memory"]:
        r = run("run", s, *args)  # the flag is last: its value is missing
    else:
        r = run("run", *args, s)
    assert r.returncode == EXIT.USAGE, r
    assert r.stdout == b""
    one_teepy_line(r)


@pytest.mark.parametrize("flag", ["--allow", "--pythonpath"])
def test_missing_allowed_path_names_its_flag(run, script, flag):
    r = run("run", script(RETURN_OK), flag, "/nonexistent-teepy-path")
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert line.startswith(f"teepy: {flag} /nonexistent-teepy-path: "), line


def test_input_and_input_file_together_is_usage_error(as_user, run, tmp, script):
    f = tmp.write("in.txt", "file input")
    r = run("run", script(RETURN_OK), "--input", "x", "--input-file", f)
    assert r.returncode == EXIT.USAGE, r
    one_teepy_line(r)


@pytest.mark.parametrize("args", [["--input", "a", "--input", "b"],
                                  ["--input-file", "-", "--input-file", "-"],
                                  ["--output", "-", "--output", "-"]],
                         ids=["input", "input-file", "output"])
def test_repeated_input_or_output_is_usage_error(run, script, args):
    r = run("run", script(RETURN_OK), *args)
    assert r.returncode == EXIT.USAGE, r
    assert args[2] in one_teepy_line(r)


@pytest.mark.parametrize("var,value", [("TEEPY_MEMORY", "3Q"), ("TEEPY_CPU_TIME", "abc"),
                                       ("TEEPY_TIMEOUT", "0"), ("TEEPY_MODE", "turbo")])
def test_bad_environment_setting_is_usage_error(run, script, var, value):
    r = run("run", script(RETURN_OK), env={var: value})
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert var in line


def test_mode_hw_is_refused(as_user, run, script):
    s = script(RETURN_OK)
    r = run("run", "--mode", "hw", s)
    assert r.returncode == EXIT.USAGE, r
    assert r.stdout == b""
    one_teepy_line(r)
    r_env = run("run", s, env={"TEEPY_MODE": "hw"})
    assert r_env.returncode == EXIT.USAGE, r_env
    one_teepy_line(r_env)


@pytest.mark.parametrize("mode", ["sim", "auto"])
def test_mode_sim_and_auto_run(run, script, mode):
    r = run("run", "--mode", mode, script(RETURN_OK))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r


def test_mode_flag_wins_over_environment(run, script):
    r = run("run", "--mode", "sim", script(RETURN_OK), env={"TEEPY_MODE": "hw"})
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r


# ---------------------------------------------------------------- help and configuration

ALL_FLAGS = ["--input", "--input-file", "--data", "--task-data", "--output", "--memory",
             "--cpu-time", "--timeout", "--threads", "--scratch", "--allow", "--pythonpath",
             "--allow-site-packages", "--env", "--trust", "--insecure-any-signer", "--mode",
             "--print-config", "--help"]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0_and_mentions_every_flag(run, flag):
    r = run("run", flag)
    assert r.returncode == EXIT.OK, r
    text = (r.stdout + r.stderr).decode()
    missing = [f for f in ALL_FLAGS if not re.search(re.escape(f) + r"(?![\w-])", text)]
    assert not missing, f"help does not mention {missing}"
    for var in ("TEEPY_MEMORY", "TEEPY_CPU_TIME", "TEEPY_TIMEOUT", "TEEPY_MODE"):
        assert var in text


def test_help_lists_the_teex_api_of_the_reference(run):
    """README: `teepy run --help` prints what docs/cli.md says, the teex table too."""
    cli = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    table = cli.split("## The `teex` module")[1].split("##")[0]
    names = set(re.findall(r"`(\w+)\(", table))
    assert {"TEEX_getinput", "TEEX_return", "TEEX_getdata", "get_input_bytes", "data_count"} <= names
    text = run("run", "--help").stdout.decode()
    missing = sorted(n for n in names if n + "(" not in text)
    assert not missing, f"--help lacks {missing}"


def _mentions(text, flags):
    return [f for f in flags if not re.search(r"(?<![\w-])" + re.escape(f) + r"(?![\w-])", text)]


# what each command's parser accepts (src/main.c, src/cli/build.c, inspect.c, keygen.c)
# and its --help lists; build passes the others to the sample run, whose options its
# help names too
COMMAND_FLAGS = {
    (): ["run", "build", "inspect", "keygen", "-h", "--help", "--version"],
    ("build",): ["-h", "--help", "-o", "--bundle", "--key", "--include", "--include-dir",
                 "--preload", "--allow-processes", "--input", "--input-file", "--data",
                 "--task-data", "--allow-site-packages", "--allow", "--pythonpath", "--env",
                 "--scratch", "--memory", "--cpu-time", "--timeout", "--threads"],
    ("inspect",): ["-h", "--help", "--json"],
    ("keygen",): ["-h", "--help", "-o", "--output", "--pub"],
}


@pytest.mark.parametrize("command", list(COMMAND_FLAGS), ids=lambda c: " ".join(c) or "teepy")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_help_exits_0_and_lists_its_flags(run, command, flag):
    """Each command's --help goes to stdout (exit 0, nothing on stderr) and names
    every flag its parser takes."""
    r = run(*command, flag)
    assert r.returncode == EXIT.OK, r
    assert r.stderr == b"", r
    text = r.stdout.decode()
    assert text.startswith("usage: teepy " + (command[0] if command else "<command>")), text
    missing = _mentions(text, COMMAND_FLAGS[command])
    assert not missing, f"teepy {' '.join(command)} --help does not mention {missing}"


def test_every_command_refuses_an_unknown_flag_in_one_line(run, tmp):
    """An unknown flag is a usage error (exit 2) of one line that names it, for
    every command, before anything else is checked (build with no -o or --key names
    the flag, not what is missing); no bundle or key is written."""
    key = tmp / "k.key"
    assert run("keygen", "-o", key).returncode == EXIT.OK
    svc = tmp.script(RETURN_OK)
    bundle = tmp / "x.tpy"
    cases = {
        "teepy": [],
        "run": ["run", svc],
        "build": ["build", svc, "-o", bundle, "--key", key],
        "build without -o or --key": ["build", svc],
        "inspect": ["inspect"],
        "keygen": ["keygen", "-o", tmp / "other.key"],
    }
    for name, args in cases.items():
        r = run(*args, "--frobnicate")
        assert r.returncode == EXIT.USAGE, (name, r)
        assert r.stdout == b"", (name, r)
        line = one_teepy_line(r)
        assert "'--frobnicate'" in line, (name, line)
        if name.startswith("build"):
            assert line == "teepy: build: unknown option '--frobnicate' (see teepy build --help)"
    assert not bundle.exists() and not (tmp / "other.key").exists()


def _check_config(text):
    low = text.lower()
    assert "namespace" in low
    assert "landlock" in low
    assert "seccomp" in low
    assert "python 3" in low
    memory_lines = [l for l in low.splitlines() if "memory" in l]
    assert memory_lines, "no line about the memory limit"
    assert any(m in l for l in memory_lines for m in ("cgroup", "rlimit")), \
        f"the memory line does not name the mechanism: {memory_lines}"


def test_print_config_describes_protections(as_user, run, script):
    r = run("run", "--print-config", script(RETURN_OK))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    _check_config(r.err)


def test_teepy_version_env_prints_config(run, script):
    r = run("run", script(RETURN_OK), env={"TEEPY_VERSION": "1"})
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    _check_config(r.err)


def test_no_config_printed_by_default(run, script):
    r = run("run", script(RETURN_OK))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    assert "landlock" not in r.err.lower()
    assert "seccomp" not in r.err.lower()


def test_print_config_reflects_memory_flag(run, script):
    r = run("run", "--print-config", "--memory", "300M", script(RETURN_OK))
    assert r.returncode == EXIT.OK, r
    memory_lines = [l for l in r.err.splitlines() if "memory" in l.lower()]
    assert any("300" in l for l in memory_lines), memory_lines


# ---------------------------------------------------------------- 70, 130: teepy's own end

WAIT_FOR_SIGNAL = """
import sys, time
print("ready", file=sys.stderr, flush=True)
time.sleep(60)
"""


def test_exit_70_when_the_result_cannot_be_written(as_user, start, script):
    with open("/dev/full", "wb") as full:
        proc = start("run", script(RETURN_OK), stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT.INTERNAL, err
    assert b"cannot write the result to stdout" in err


def test_exit_130_on_sigterm_stops_the_service(as_user, start, script):
    proc = start("run", script(WAIT_FOR_SIGNAL))
    wait_until_ready(proc)
    service = service_pid(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT.INTERRUPTED, err
    assert b"interrupted by signal 15; the service was stopped" in err
    assert process_gone(service, within=1.0), "the service outlived teepy's SIGTERM"
    # the host check after the test: no cgroup of the run is left behind


def test_service_dies_with_its_supervisor(as_user, start, run, script, host_check):
    proc = start("run", "--timeout", "60", script(WAIT_FOR_SIGNAL))
    wait_until_ready(proc)
    service = service_pid(proc.pid)
    cgroups = {c for c in host_check.snapshot()["cgroups"] if f"/teepy-{proc.pid}-" in c}
    if as_user == "root":
        assert cgroups, "a root run on this host makes cgroups"
    proc.kill()  # SIGKILL: teepy cannot clean up
    proc.wait()
    assert process_gone(service), "the service outlived its supervisor (no wall clock left)"
    # the next run removes the cgroups the dead one left behind
    assert run("run", script(RETURN_OK)).returncode == EXIT.OK
    left = sorted(c for c in cgroups if os.path.exists(c))
    assert not left, f"a dead run's cgroups stayed: {left}"


# ---------------------------------------------------------------- limits too small or too large


@pytest.mark.parametrize("memory", ["1M", "8M", "31M"])
def test_memory_below_what_the_interpreter_needs_is_usage_error(as_user, run, script, memory):
    r = run("run", "--memory", memory, script(RETURN_OK))
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert "less than the 32 MiB the interpreter needs" in line, line


def test_scratch_leaving_too_little_memory_is_usage_error(run, script):
    r = run("run", "--memory", "64M", "--scratch", "48M", script(RETURN_OK))
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert "less the scratch (48 MiB)" in line and "lower --scratch" in line, line


def test_smallest_memory_limit_runs(as_user, run, script):
    r = run("run", "--memory", "32M", script(RETURN_OK))
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r


@pytest.mark.parametrize("flag,value", [("--memory", "99999999T"), ("--scratch", "99999999T"),
                                        ("--timeout", "99999999999999999h")])
def test_value_too_large_says_so(run, script, flag, value):
    r = run("run", flag, value, script(RETURN_OK))
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert f"'{value}' is too" in line and "not a" not in line, line


def test_input_larger_than_the_memory_limit_is_usage_error(as_user, run, script):
    r = run("run", "--memory", "64M", "--input-file", "/dev/zero", script(RETURN_OK))
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert "--input-file /dev/zero: larger than the memory limit (64 MiB)" in line, line


def test_build_names_a_very_long_unknown_flag_without_overflowing(run, tmp):
    """The parser's message fills its whole buffer: build's rewording of the hint
    must not write past it (it did, by 2 bytes), and the line stays one line."""
    svc = tmp.script(RETURN_OK)
    flag = "--" + "x" * 600
    r = run("build", svc, flag)
    assert r.returncode == EXIT.USAGE, r
    line = one_teepy_line(r)
    assert line.startswith("teepy: build: unknown option '--xxxx"), line
    assert r.stdout == b""
