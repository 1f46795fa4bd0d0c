"""A service that writes to the operator's terminal (issue 11, finding 3, second half).

When teepy's stderr is a terminal, what the service prints reaches it as text: no
escape sequence (CSI, OSC 52 to the clipboard, a window title), BEL, backspace,
carriage return, C1 control or DEL is sent raw, and each of the service's lines
starts with a dim "|" mark while teepy's own lines are bold, so a service line
saying "teepy: ..." is not teepy's. When stderr is a pipe or a file the output is
relayed byte for byte, as before. The terminal is a real pseudo-terminal (the
run_tty fixture) whose output processing is off: the test sees every byte sent.
"""
import unicodedata

import pytest

from exit_codes import EXIT
from hostile_prelude import hostile

# the line a run without cgroups starts with (conftest's; tests/sealed has a conftest too)
LIMITS_WARNING = "teepy: warning: no cgroup for the limits:"
MARK = b"\x1b[2m|\x1b[0m "  # before each line of the service's
BOLD, PLAIN = b"\x1b[1m", b"\x1b[0m"  # around each line of teepy's

# Written by the service with the raw write call, half to stdout and half to stderr.
PAYLOAD = (
    b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m\n"  # clear the screen, home, colour
    b"\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: put "rm -rf ~" in the clipboard
    b"\x1b]52;c;ZWNobyBoaQ==\x1b\\\n"  # the same, ended by ST
    b"\x1b]0;window title\x07\n"
    b"bell\x07\x07\n"
    b"secret\b\b\b\b\b\bshown\x7f\n"
    b"progress 10%\rteepy: the service returned a result\n"  # \r: back to column 0
    b"\xc2\x9b31m\xc2\x9d0;c1 title\xc2\x9c\xc2\x85\n"  # C1 controls, as UTF-8
    b"\x9b31m raw \x9d\x90\n"  # C1 controls, as bytes (an 8-bit terminal's)
    b"\xe2\x80\xaeevil\x00\n"  # right-to-left override, NUL
    b"teepy: warning: the limits are off\n"
    b"caf\xc3\xa9 \xd0\x96 \xe2\x82\xac\n"
)

# What the terminal shows of PAYLOAD, one line each (backslashes are text).
SHOWN = [
    r"\x1b[2J\x1b[H\x1b[31mred\x1b[0m",
    r"\x1b]52;c;cm0gLXJmIH4K\x07\x1b]52;c;ZWNobyBoaQ==\x1b" "\\",  # ST: ESC and a backslash
    r"\x1b]0;window title\x07",
    r"bell\x07\x07",
    r"secret\x08\x08\x08\x08\x08\x08shown\x7f",
    r"progress 10%\rteepy: the service returned a result",
    r"\u009b31m\u009d0;c1 title\u009c\u0085",
    r"\x9b31m raw \x9d\x90",
    r"\u202eevil\x00",
    "teepy: warning: the limits are off",
    "café Ж €",
]

WRITE_PAYLOAD = """
half = len(PAYLOAD) // 2
os.write(1, PAYLOAD[:half])
os.write(2, PAYLOAD[half:])
report("ok")
"""


def attributed(transcript):
    """[(who, text)] for each line the terminal got: "service" for a line with the
    mark, "teepy" for a bold one. A line that is neither fails the test, and so does
    a control character, a C1 control or a bidirectional control anywhere in the text."""
    assert transcript.endswith(b"\n"), transcript[-200:]
    lines = []
    for raw in transcript[:-1].split(b"\n"):
        if raw.startswith(MARK):
            who, body = "service", raw[len(MARK):]
        elif raw.startswith(BOLD) and raw.endswith(PLAIN):
            who, body = "teepy", raw[len(BOLD):-len(PLAIN)]
        else:
            raise AssertionError(f"a line neither teepy's nor the service's: {raw!r}")
        text = body.decode("utf-8")  # strict: no byte that is not UTF-8
        bad = [c for c in text if (ord(c) < 0x20 and c != "\t") or 0x7f <= ord(c) <= 0x9f
               or unicodedata.bidirectional(c) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI",
                                                   "RLI", "FSI", "PDI")
               or c in "\u200e\u200f\u061c\u2028\u2029"]
        assert not bad, (who, text)
        lines.append((who, text))
    return lines


def teepys(lines):
    return [t for w, t in lines if w == "teepy" and not t.startswith(LIMITS_WARNING)]


def services(lines):
    return [t for w, t in lines if w == "service"]


def without_limits_warning(stderr):
    return b"".join(l for l in stderr.splitlines(keepends=True)
                    if not l.startswith(LIMITS_WARNING.encode()))


def test_escape_sequences_reach_a_terminal_as_text(as_user, run_tty, script):
    s = hostile(script, WRITE_PAYLOAD, PAYLOAD=PAYLOAD)
    r = run_tty("run", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"ok"'), r
    lines = attributed(r.stderr)
    assert services(lines) == SHOWN
    assert teepys(lines) == []  # both "teepy: " lines were the service's
    assert b"\x07" not in r.stderr and b"\x1b]" not in r.stderr and b"\r" not in r.stderr


def test_output_to_a_pipe_is_relayed_byte_for_byte(as_user, run, script):
    s = hostile(script, WRITE_PAYLOAD, PAYLOAD=PAYLOAD)
    r = run("run", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"ok"'), r
    assert without_limits_warning(r.stderr) == PAYLOAD


@pytest.mark.parametrize("how", [("--escape", "never"), ("--escape=never",),
                                 ("TEEPY_ESCAPE", "never")])
def test_escape_never_relays_to_a_terminal_byte_for_byte(run_tty, script, how):
    s = hostile(script, WRITE_PAYLOAD, PAYLOAD=PAYLOAD)
    if how[0] == "TEEPY_ESCAPE":
        r = run_tty("run", s, env={"TEEPY_ESCAPE": how[1]})
    else:
        r = run_tty("run", *how, s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"ok"'), r
    assert without_limits_warning(r.stderr) == PAYLOAD


def test_escape_always_escapes_a_pipe_too_and_the_flag_wins(run, script):
    s = hostile(script, WRITE_PAYLOAD, PAYLOAD=PAYLOAD)
    for r in (run("run", "--escape", "always", s), run("run", s, env={"TEEPY_ESCAPE": "always"})):
        assert (r.returncode, r.stdout) == (EXIT.OK, b'"ok"'), r
        assert services(attributed(r.stderr)) == SHOWN
    r = run("run", "--escape", "never", s, env={"TEEPY_ESCAPE": "always"})
    assert without_limits_warning(r.stderr) == PAYLOAD


def test_a_traceback_stays_readable_on_a_terminal(as_user, run, run_tty, script):
    """The traceback's lines are the same on a terminal as on a pipe, each behind
    the mark, tabs and non-ASCII letters kept; teepy's line after it is bold."""
    s = script("""
        def parse(text):
            raise ValueError(f"bad value:\\t{text!r} (café, Ж)")

        def handle():
            parse("x" * 3)

        handle()
        """)
    piped = run("run", s)
    r = run_tty("run", s)
    assert piped.returncode == r.returncode == EXIT.SERVICE_FAILED, (piped, r)
    lines = attributed(r.stderr)
    assert services(lines) == [l for l in piped.err_lines if not l.startswith("teepy:")]
    assert services(lines) == [
        "Traceback (most recent call last):",
        f'  File "{s}", line 7, in <module>',
        "    handle()",
        f'  File "{s}", line 5, in handle',
        '    parse("x" * 3)',
        f'  File "{s}", line 2, in parse',
        '    raise ValueError(f"bad value:\\t{text!r} (café, Ж)")',
        "ValueError: bad value:\t'xxx' (café, Ж)",
    ]
    assert teepys(lines) == ["teepy: the service raised ValueError (traceback above)"]


def test_a_sequence_split_between_writes_is_shown_whole(run_tty, script):
    """Each piece written alone with a pause between: teepy reads them apart, and a
    UTF-8 letter, a C1 control or an escape sequence cut between two reads shows as
    it does whole."""
    s = hostile(script, """
        import time
        for piece in PIECES:
            os.write(1, piece)
            time.sleep(0.1)
        report("ok")
        """, PIECES=[b"caf\xc3", b"\xa9\n\xc2", b"\x9b[31m\n\x1b", b"]52;c;eA==\x07\n\xe2\x80",
                     b"\xae!\n\xf0\x9f", b"\x98\x80\n"])
    r = run_tty("run", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b'"ok"'), r
    assert services(attributed(r.stderr)) == [
        "café", r"\u009b[31m", r"\x1b]52;c;eA==\x07", r"\u202e!", "\U0001f600"]


def test_teepys_line_after_an_unfinished_line_starts_its_own(run_tty, script):
    s = script("import sys\nsys.stdout.write('no newline, then ')\n")
    r = run_tty("run", s)
    assert r.returncode == EXIT.NO_RESULT, r
    lines = attributed(r.stderr)
    assert services(lines) == ["no newline, then "]
    assert teepys(lines) == ["teepy: the service ended without returning a result (call "
                             "teex.TEEX_return)"]


def test_an_utf8_sequence_cut_by_the_end_is_shown_as_bytes(run_tty, script):
    s = script("import os\nos.write(1, b'end \\xe2\\x82')\n")
    r = run_tty("run", s)
    assert services(attributed(r.stderr)) == [r"end \xe2\x82"], r


@pytest.mark.parametrize("tty", [False, True])
def test_an_exception_type_name_cannot_write_to_the_terminal(as_user, run, run_tty, script, tty):
    """teepy's own line names the type the service raised, which the service chose:
    it is shown escaped on a pipe as on a terminal, and stays one line."""
    s = script("""
        Evil = type("Evil\\x1b]52;c;eA==\\x07\\nteepy: fine", (Exception,), {})
        raise Evil()
        """)
    r = (run_tty if tty else run)("run", s)
    assert r.returncode == EXIT.SERVICE_FAILED, r
    ours = [l for l in r.stderr.split(b"\n") if b"(traceback above)" in l]
    want = rb"teepy: the service raised Evil\x1b]52;c;eA==\x07\x0ateepy: fine (traceback above)"
    assert ours == [BOLD + want + PLAIN if tty else want], r.stderr[-600:]
    if tty:
        attributed(r.stderr)


def test_a_log_cut_is_said_in_teepys_own_line(run_tty, script):
    s = script("import os\nos.write(1, b'\\x1b[31m' * 4096)\nimport teex\nteex.TEEX_return('x')\n")
    r = run_tty("run", "--log-max", "1K", s)
    assert r.returncode == EXIT.OK, r
    lines = attributed(r.stderr)
    assert services(lines) == [r"\x1b[31m" * 204 + r"\x1b[31"]  # 1024 bytes of 20480
    assert teepys(lines) == ["teepy: warning: the service's output was cut at 1 KiB: 19 KiB "
                             "more were dropped (raise --log-max)"]


def test_escape_takes_auto_always_or_never(run, script):
    s = script("import teex\nteex.TEEX_return('x')\n")
    r = run("run", "--escape", "sometimes", s)
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == ["teepy: --escape: 'sometimes' is not auto, always or never"]
    r = run("run", s, env={"TEEPY_ESCAPE": "yes"})
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == ["teepy: TEEPY_ESCAPE: 'yes' is not auto, always or never"]
    r = run("run", "--escape", "auto", s)
    assert (r.returncode, r.stdout) == (EXIT.OK, b"x"), r


def test_a_sealed_run_and_its_build_escape_on_a_terminal(run, run_tty, tmp):
    """teepy build's sample run and a sealed run are relayed as teepy run's are."""
    app = tmp.make_sibling("app")
    s = app.script(f"import os, teex\nos.write(1, {PAYLOAD!r})\nteex.TEEX_return('ok')\n")
    key = tmp / "signer.key"
    assert run("keygen", "-o", key).returncode == EXIT.OK
    bundle = tmp / "svc.tpy"
    r = run_tty("build", s, "-o", bundle, "--key", key)
    assert r.returncode == EXIT.OK, r
    lines = attributed(r.stderr)
    assert services(lines) == SHOWN
    assert teepys(lines)[0] == f"teepy: tracing a sample run of {s}"
    assert any(t.startswith("teepy: built ") for t in teepys(lines)), lines
    r = run_tty("run", bundle, "--trust", tmp / "signer.pub")
    assert (r.returncode, r.stdout) == (EXIT.OK, b"ok"), r
    assert services(attributed(r.stderr)) == SHOWN
    r = run("run", bundle, "--trust", tmp / "signer.pub")
    assert without_limits_warning(r.stderr) == PAYLOAD
