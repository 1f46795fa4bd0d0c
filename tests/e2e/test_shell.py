"""`teepy shell` as a person uses it (docs/cli.md): tmux runs it in a real terminal,
send-keys types, capture-pane reads the screen. As root and as uid 65534."""
import re
import shlex
import shutil
import subprocess
import time

import pytest

from exit_codes import EXIT

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is needed (apt-get install tmux)")

PROMPT = ">>> "


class Shell:
    """teepy shell in a tmux pane of its own tmux server (its socket in a test
    directory). When teepy ends, the pane shows "[exit N]"."""

    def __init__(self, command, env, cwd, socket, args, stderr=None, job_control=False):
        self.socket = str(socket)
        self.env = env
        line = " ".join(shlex.quote(str(a)) for a in [*command, "shell", *args])
        if stderr:
            line += f" 2>{shlex.quote(str(stderr))}"
        if job_control:  # typed at an interactive bash, which can stop and continue it
            self.env = dict(env, PS1="$ ")
            self.tmux("new-session", "-d", "-s", "shell", "-x", "150", "-y", "50", "-c",
                      str(cwd), "bash --norc --noprofile")
            self.type(line)
            return
        self.tmux("new-session", "-d", "-s", "shell", "-x", "150", "-y", "50", "-c", str(cwd),
                  f'{line}; echo "[exit $?]"; sleep 600')

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.socket, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=20).stdout

    def type(self, text):
        """Types text (literally) and Enter."""
        self.tmux("send-keys", "-t", "shell", "-l", text)
        self.keys("Enter")

    def keys(self, *names):
        self.tmux("send-keys", "-t", "shell", *names)

    def screen(self):
        """Everything the pane shows and its history, lines joined where they wrapped."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "shell", "-S", "-2000")

    def wait(self, what, timeout=30):
        """Waits until the screen matches the regular expression what; returns it."""
        end = time.time() + timeout
        while True:
            text = self.screen()
            if re.search(what, text, re.M):
                return text
            if time.time() > end:
                raise AssertionError(f"the screen never showed {what!r}:\n{text}")
            time.sleep(0.1)

    def prompts(self):
        return len(re.findall(r"^>>>", self.screen(), re.M))

    def ask(self, line, timeout=30):
        """Types a line and waits for the next prompt after it; returns what came in
        between (the line's output)."""
        before = self.prompts()
        self.type(line)
        self.wait_prompts(before + 1, timeout)
        text = self.screen()
        after = text.rsplit(line, 1)[1]
        return after.rstrip().rsplit("\n>>>", 1)[0].strip("\n")

    def wait_prompts(self, count, timeout=30):
        end = time.time() + timeout
        while self.prompts() < count or not self.screen().rstrip().endswith(">>>"):
            if time.time() > end:
                raise AssertionError(f"no prompt #{count}:\n{self.screen()}")
            time.sleep(0.1)

    def exit_code(self, timeout=30):
        return int(re.search(r"^\[exit (\d+)\]$", self.wait(r"^\[exit \d+\]$", timeout),
                             re.M).group(1))

    def close(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], env=self.env,
                       capture_output=True, timeout=20)


@pytest.fixture
def shell(teepy_command, run_cwd, tmp):
    """shell(*args) -> Shell: `teepy shell ARGS` started in a terminal, at its first prompt."""
    command, env = teepy_command
    started = []

    def start(*args, stderr=None, job_control=False):
        s = Shell(command, env, run_cwd, tmp.make_sibling("tmux") / "socket", args, stderr,
                  job_control)
        started.append(s)
        s.wait(r"^>>> ?$")
        return s

    yield start
    for s in started:
        s.close()


def test_lines_are_python_as_at_python3s_prompt(as_user, shell, tmp):
    data = tmp.write("d.bin", b"data bytes")
    s = shell("--input", "hello", "--data", data)
    assert s.ask("1+1") == "2"
    assert "Ctrl-D leaves" in s.screen()
    before = s.prompts()
    s.type("def twice(x):")
    s.type("    return 2 * x")
    s.type("")
    s.wait_prompts(before + 1)
    assert s.ask("twice(21)") == "42"
    assert s.ask("import teex; teex.get_input(), teex.get_data(0)") == "('hello', b'data bytes')"
    assert s.ask("_[0].upper()") == "'HELLO'"
    # history: Up recalls the last line, Up again the one before
    before = s.prompts()
    s.keys("Up", "Up", "Enter")
    s.wait_prompts(before + 1)
    assert s.screen().count("('hello', b'data bytes')") == 2
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_ctrl_c_interrupts_the_statement_not_the_sandbox(as_user, shell):
    s = shell()
    s.ask("kept = 'from before'")
    before = s.prompts()
    s.type("while True: pass")
    s.type("")
    time.sleep(1)  # the loop runs
    assert s.prompts() == before  # no new ">>> " (a "... " line, then nothing)
    s.keys("C-c")
    s.wait_prompts(before + 1)
    text = s.screen().rstrip()
    assert re.search(r'File "<stdin>", line 1, in <module>\nKeyboardInterrupt\n>>>$', text), text
    assert s.ask("kept") == "'from before'"  # the same interpreter goes on
    # at the prompt, Ctrl-C discards the line being typed, as python3 does
    before = s.prompts()
    s.tmux("send-keys", "-t", "shell", "-l", "discarded")
    s.wait(r"^>>> discarded *$")
    s.keys("C-c")
    s.wait_prompts(before + 1)
    text = s.screen().rstrip()
    assert re.search(r"^>>> discarded *\nKeyboardInterrupt\n>>>$", text, re.M), text
    assert s.ask("6 * 7") == "42"
    assert "NameError" not in s.screen()
    s.type("exit()")
    assert s.exit_code() == EXIT.OK


def test_the_sandbox_holds_inside_the_shell(as_user, shell):
    s = shell()
    out = s.ask("open('/etc/shadow')")
    assert re.search(r"(FileNotFoundError|PermissionError): .*'/etc/shadow'$", out), out
    out = s.ask("import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)")
    assert out.endswith("PermissionError: [Errno 1] Operation not permitted"), out
    out = s.ask("import os; os.fork()")
    assert out.endswith("PermissionError: [Errno 1] Operation not permitted"), out
    out = s.ask("open('/tmp/written', 'w')")
    assert "Error" in out and "'/tmp/written'" in out, out
    # the service's bytes reach the terminal escaped: no colour, no cursor moves
    assert s.ask(r"print('\x1b[31mred\x1b[2J')") == r"\x1b[31mred\x1b[2J"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_the_end_of_a_session_says_how_it_ended(as_user, shell):
    s = shell()
    s.ask("import teex; teex.TEEX_return('the result')")
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK
    assert "teepy: the service's result (10 bytes):\nthe result\n" in s.screen()
    s = shell()
    s.type("raise SystemExit(3)")
    assert s.exit_code() == EXIT.SERVICE_FAILED
    assert "teepy: the service exited with status 3" in s.screen()


def test_a_prompt_too_long_ends_the_shell_as_a_rule(as_user, shell):
    s = shell()
    # a PROMPT frame (type 22) of more than the 1 KiB a prompt may be
    s.type("import os, struct; os.write(3, struct.pack('=IIQ', 22, 0, 5000) + b'x' * 5000)")
    assert s.exit_code() == EXIT.RULE
    assert "malformed frames to its control channel" in s.screen()


def test_a_prompt_outside_a_shell_breaks_the_channel(as_user, run, script):
    s = script(
        """
        import os, struct
        os.write(3, struct.pack("=IIQ", 22, 0, 4) + b">>> ")
        os.read(3, 16)
        """
    )
    r = run("run", s)
    assert r.returncode == EXIT.RULE, r
    assert "malformed frames" in r.err


def test_without_a_terminal_it_says_so_in_one_line(as_user, run, tmp):
    r = run("shell", "--input", "x")
    assert r.returncode == EXIT.USAGE, r
    assert r.err_lines == ["teepy: shell: stdin and stdout must be a terminal (to run a script "
                           "without one, use teepy run)"], r
    r = run("shell", tmp / "app.tpy")
    assert r.returncode == EXIT.USAGE and len(r.err_lines) == 1, r
    assert "a bundle's shell is not supported yet" in r.err, r
    r = run("shell", "--input-file", "-")
    assert r.returncode == EXIT.USAGE and "stdin is the shell's terminal" in r.err, r


def test_print_config_says_what_a_shell_has(shell):
    s = shell("--print-config")
    text = s.screen()
    for line in ("  script        none: an interactive console",
                 "  timeout       off (wall clock, enforced by teepy)",
                 "  relay         all of the service's stdout and stderr",
                 "  output        shown after the session"):
        assert line in text, text
    assert "script directory" not in text
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_a_threads_output_comes_while_the_person_types(as_user, shell):
    s = shell()
    s.ask("import threading, time")
    s.ask("t = threading.Thread(target=lambda: [time.sleep(0.5), print('from the thread')]); "
          "t.start()")
    s.tmux("send-keys", "-t", "shell", "-l", "typed = 'meanwhile'")
    # shown before Enter, and the prompt with what was typed drawn again below it
    text = s.wait(r"^from the thread\n>>> typed = 'meanwhile'")
    assert len(re.findall(r"^from the thread$", text, re.M)) == 1, text
    s.keys("Enter")
    assert s.ask("typed") == "'meanwhile'"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_the_session_is_on_the_terminal_when_stderr_is_not(shell, tmp):
    """The console's output is shown on stdout, the terminal the shell checked; teepy's
    own lines stay on stderr."""
    log = tmp / "stderr.log"
    s = shell("--print-config", stderr=log)
    assert s.ask("1+1") == "2"
    assert "Ctrl-D leaves" in s.screen() and "configuration" not in s.screen()
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK
    assert "teepy: configuration" in log.read_text()


def test_ctrl_z_gives_the_terminal_back_and_fg_takes_it_again(as_user, shell):
    s = shell(job_control=True)
    s.tmux("send-keys", "-t", "shell", "-l", "kept = 6 * 7")  # typed, not entered yet
    s.keys("C-z")
    s.wait(r"Stopped")
    s.type("echo back at bash")  # the terminal is bash's: it echoes, it runs
    s.wait(r"^back at bash$")
    s.type("fg")
    s.wait(r"^>>> kept = 6 \* 7 *$")  # the line typed so far, drawn again
    s.keys("Enter")
    assert s.ask("kept") == "42"
    s.keys("C-d")
    s.type('echo "[exit $?]"')
    assert s.exit_code() == EXIT.OK
