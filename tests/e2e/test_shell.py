"""`teepy shell` as a person uses it (docs/cli.md): tmux runs it in a real terminal,
send-keys types, capture-pane reads the screen. As root and as uid 65534."""
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from exit_codes import EXIT
from volumes import own

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
    block(s, "def twice(x):", "    return 2 * x")
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


def line_at_prompt(s):
    """What the last line of the screen holds after its prompt."""
    return s.screen().rstrip("\n").rsplit("\n", 1)[-1]


def block(s, *lines):
    """Types the lines of a block, then the empty line that ends it; waits for the prompt."""
    before = s.prompts()
    for line in (*lines, ""):
        s.type(line)
    s.wait_prompts(before + 1)


def tab(s, text, want, timeout=30):
    """Types text (no Enter), then Tab; waits until the prompt's line is want."""
    s.tmux("send-keys", "-t", "shell", "-l", text)
    s.keys("Tab")
    end = time.time() + timeout
    while line_at_prompt(s).rstrip(" ") != want.rstrip(" "):  # blanks: the pane's cells
        if time.time() > end:
            raise AssertionError(f"the line never became {want!r}:\n{s.screen()}")
        time.sleep(0.1)


def interrupt_a_tab(s):
    """slow = S() made; then "slow." and Tab, whose completer hangs, and a Ctrl-C."""
    s.ask("slow = S()")
    s.tmux("send-keys", "-t", "shell", "-l", "slow.")
    s.keys("Tab")
    time.sleep(1)
    s.keys("C-c")
    time.sleep(1)


def test_tab_completes_as_at_python3s_prompt(as_user, shell):
    """Tab completes from the namespace inside, as python3's rlcompleter does: a name, a
    keyword, an attribute of a dotted name (a callable gets its "("), the common part
    of several (a second Tab lists them); with nothing to complete it indents. A host's
    file names are never offered (the host's files mean nothing inside)."""
    s = shell()
    s.ask("zyxw_value = 41")
    tab(s, "zyxw", ">>> zyxw_value")
    assert s.ask(" + 1") == "42"
    s.ask("import os")
    tab(s, "os.path.jo", ">>> os.path.join(")
    assert s.ask("'a', 'b')") == "'a/b'"
    tab(s, "os.getc", ">>> os.getcwd")
    s.keys("Tab")
    s.wait(r"os\.getcwd\(\s+os\.getcwdb\(")
    s.keys("C-u")
    tab(s, "impo", ">>> import ")
    assert s.ask("sys") == ""  # "import " with its space: no NameError
    # the word after a quote and a slash is "hos": no Python name, and no host file
    # name either (libedit's own completion would make it /etc/hosts)
    tab(s, "open('/etc/hos", ">>> open('/etc/hos")
    time.sleep(0.5)  # the Tab's answer has come
    assert s.ask("')").endswith("No such file or directory: '/etc/hos'")
    before = s.prompts()
    s.type("if True:")
    s.keys("Tab")  # the block's line indented by Tab alone
    s.type("indented = 5")
    s.type("")
    s.wait_prompts(before + 1)
    assert "IndentationError" not in s.screen()
    assert s.ask("indented") == "5"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_tab_offers_only_what_the_terminal_shows_as_it_is(as_user, shell):
    """The completions are the service's: one holding an escape sequence, a control
    byte, a newline or a tab is never offered, so Tab cannot write to the terminal
    what the service chose. A completer that hangs (a __dir__ that sleeps) gives way
    to Ctrl-C, as at python3's prompt: the line stays, the session goes on."""
    s = shell()
    block(s, "class H:",
          "    def __dir__(self): return ['ok_name', 'ok_\\x1b]0;TITLE\\x07', "
          "'ok_\\x1b[2J', 'ok_nl\\nx', 'ok_tab\\tx', 'ok_\\x07bell']")
    s.ask("h = H()")
    tab(s, "h.o", ">>> h.ok_name")
    s.keys("C-u")
    # an escape sequence alone: a unique match that would be put on the line, and so
    # written to the terminal (the pane's title), were it offered
    block(s, "class T:", "    def __dir__(self): return ['ok_\\x1b]0;TITLE\\x07']")
    s.ask("t = T()")
    tab(s, "t.o", ">>> t.o")
    s.keys("Tab")
    time.sleep(0.5)
    assert line_at_prompt(s).rstrip() == ">>> t.o"
    assert s.tmux("display-message", "-p", "-t", "shell", "#{pane_title}").strip() != "TITLE"
    s.keys("C-u")
    block(s, "class S:", "    def __dir__(self): import time; time.sleep(120); return ['slow']")
    interrupt_a_tab(s)
    assert line_at_prompt(s).rstrip() == ">>> slow."  # the line stays
    s.keys("C-u")
    assert s.ask("6 * 7", timeout=10) == "42"  # no KeyboardInterrupt left to drop it
    # the completer's code cannot use the channel the console holds: an error, no hang
    block(s, "class U:", "    def __dir__(self): import teex; teex.get_input(); return ['x']")
    s.ask("u = U()")
    tab(s, "u.", ">>> u.")
    time.sleep(1)
    s.keys("C-u")
    assert s.ask("6 * 7", timeout=10) == "42"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_a_second_ctrl_c_ends_a_session_whose_completer_does_not_answer(as_user, shell):
    """A completer that ignores SIGINT (or a console that never answers): the second
    Ctrl-C ends the session, as SIGTERM would."""
    s = shell()
    block(s, "class S:", "    def __dir__(self):",
          "        import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN)",
          "        time.sleep(120); return []")
    interrupt_a_tab(s)
    s.keys("C-c")
    assert s.exit_code(timeout=20) == 130


def test_completions_nobody_asked_for_break_the_channel(as_user, shell):
    """A COMPLETIONS frame written while no Tab asked for one (by a statement, with
    os.write on the control channel) ends the session as a broken rule."""
    s = shell()
    s.type("import os, struct; os.write(3, struct.pack('=IIQ', 23, 0, 4) + b'abc\\n')")
    assert s.exit_code() == EXIT.RULE
    assert "malformed frames" in s.screen()


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
    assert "stdin and stdout must be a terminal" in r.err, r
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


# ---- a bundle's shell: a debug run in its sealed root ----

APP = """
import teex
from helper import greeting
teex.TEEX_return(greeting(teex.TEEX_getinput()))
"""
HELPER = """
def greeting(name):
    return "hello " + name
"""


@pytest.fixture
def bundle(teepy, tmp, variant):
    """A bundle of APP and its helper module, encrypted, built by root (or whoever runs
    the tests), its key given to the variant's user: (bundle, signer.pub, key file)."""
    app = tmp / "app"
    app.mkdir()
    (app / "svc.py").write_text(APP)
    (app / "helper.py").write_text(HELPER)
    app.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}
    for args in (["keygen", "-o", tmp / "signer.key"],
                 ["build", app / "svc.py", "-o", tmp / "svc.tpy", "--key", tmp / "signer.key",
                  "--encrypt", "--input", "sample", "--no-cache"]):
        r = subprocess.run([str(teepy), *map(str, args)], capture_output=True, env=env,
                           timeout=120)
        assert r.returncode == EXIT.OK, r
    own(tmp / "svc.tpy.key", variant)  # its user's alone, as teepy wants of a key
    return tmp / "svc.tpy", tmp / "signer.pub", tmp / "svc.tpy.key"


def test_a_bundles_shell_sees_its_root_and_nothing_else(as_user, shell, bundle, tmp):
    tpy, trust, key = bundle
    tmp.write("secret.txt", "a host file the manifest does not name")
    s = shell(tpy, "--trust", trust, "--bundle-key", key, "--input", "world")
    text = s.screen()
    assert "a DEBUG run in a bundle's sealed root" in text and "Ctrl-D leaves" in text, text
    # the bundle's files, decrypted: its module imports, its sys.path and directory
    assert s.ask("import helper; helper.greeting('you')") == "'hello you'"
    assert s.ask("import os, sys; os.getcwd(), sys.path[0], sys.argv") == \
        "('/app', '/app', [''])"
    assert s.ask("sorted(os.listdir('/app'))") == "['helper.py', 'svc.py']"
    # nothing of the host's that the manifest does not name
    out = s.ask(f"open({str(tmp / 'secret.txt')!r})")
    assert out.endswith(f"FileNotFoundError: [Errno 2] No such file or directory: "
                        f"'{tmp / 'secret.txt'}'"), out
    out = s.ask("import json")  # a stdlib module the sample run never imported
    assert out.endswith("ModuleNotFoundError: No module named 'json'"), out
    assert s.ask("import code").endswith("No module named 'code'")  # the console needs none
    # Tab completes from the root's own modules, with no module of the stdlib's
    tab(s, "helper.gre", ">>> helper.greeting(")
    assert s.ask("'tab')") == "'hello tab'"
    # the console as python3's: blocks, errors without its own frame, teex
    before = s.prompts()
    s.type("for c in 'ab':")
    s.type("    print(c)")
    s.type("")
    s.wait_prompts(before + 1)
    assert s.ask("1/0") == "Traceback (most recent call last):\n" \
        '  File "<stdin>", line 1, in <module>\nZeroDivisionError: division by zero'
    assert s.ask("1 +").endswith("SyntaxError: incomplete input")  # as code.py says
    assert s.ask("import teex; teex.TEEX_return(helper.greeting(teex.TEEX_getinput()))") == "True"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK
    assert "teepy: the service's result (11 bytes):\nhello world\n" in s.screen()


def test_a_bundles_shell_says_it_is_a_debug_run(shell, bundle):
    tpy, trust, key = bundle
    s = shell(tpy, "--trust", trust, "--bundle-key", key, "--print-config")
    text = s.screen()
    assert "  debug         yes: a shell in the bundle's sealed root, not its entry" in text, text
    assert re.search(r"^  bundle +\S+svc\.tpy$", text, re.M), text
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK


def test_a_bundles_shell_is_refused_as_its_run_would_be(run, bundle, tmp, teepy_command,
                                                      run_cwd):
    tpy, trust, key = bundle
    command, env = teepy_command
    assert run("keygen", "-o", tmp / "other.key").returncode == EXIT.OK

    def ended(*args):
        s = Shell(command, env, run_cwd, tmp.make_sibling("tmux") / "socket", args)
        try:
            return s.exit_code(), s.screen()
        finally:
            s.close()

    # no key: the encrypted bundle stops before a prompt, as teepy run does
    code, text = ended(tpy, "--trust", trust)
    assert code == EXIT.KEY_MISSING and ">>>" not in text, text
    code, text = ended(tpy, "--trust", tmp / "other.pub", "--bundle-key", key)
    assert code == EXIT.BUNDLE and ">>>" not in text, text
    # a script is no bundle; nor are arguments after one
    code, text = ended(tmp / "app" / "svc.py")
    assert code == EXIT.USAGE and "is not a bundle: teepy shell runs no script" in text, text
    code, text = ended(tpy, "--trust", trust, "--", "x")
    assert code == EXIT.USAGE and "unexpected argument 'x' after the bundle" in text, text


# ---- a bundle's shell with keys from a CAS: its evidence says debug ----

def test_a_cas_releases_a_shells_keys_only_where_debug_is_tolerated(as_user, teepy, tmp,
                                                                  teepy_command, run_cwd,
                                                                  bundle):
    """The real CAS (teepy cas): a policy that does not tolerate debug denies the shell
    of the bundle its key, and says why in its audit log; one that does releases it."""
    from test_cas_client import RealCas  # noqa: E402 (the CAS the client tests start)
    import base64
    import json

    tpy, trust, key_file = bundle
    command, env = teepy_command
    direct = {k: v for k, v in os.environ.items() if not k.startswith("TEEPY_")}

    def teepy_run(*args, env=direct):
        r = subprocess.run([str(teepy), *map(str, args)], capture_output=True, env=env,
                           timeout=120)
        assert r.returncode == EXIT.OK, r
        return r.stdout.decode()

    home = tmp.make_sibling("home")
    own(home, as_user)
    penv = {"TEEPY_PLATFORM_KEY": str(home / "platform.key")} if as_user == "root" else \
        {"HOME": str(home)}
    p = subprocess.run([*command, "platform", "init"], capture_output=True, timeout=60,
                       env={**{k: v for k, v in env.items() if k != "XDG_DATA_HOME"}, **penv})
    assert p.returncode == EXIT.OK, p
    platform = re.search(r"^public\s+([0-9a-f]{64})$", p.stdout.decode(), re.M).group(1)
    app = json.loads(teepy_run("inspect", tpy, "--json"))["app"]
    bundle_key = open(key_file).read().split("\n")[1]
    os.remove(key_file)  # the shell gets it from the CAS or not at all
    teepy_run("keygen", "-o", tmp / "owner.key")

    def policy(tolerate, runtime):
        return {"name": "mysvc", "services": {"main": {
            "app": [app], "runtime": [runtime], "tolerate": tolerate,
            "platform_keys": [platform], "secrets": ["app_key"]}},
            "secrets": {"app_key": {"kind": "bundle_key", "value": base64.b64encode(
                bytes.fromhex(bundle_key)).decode()}}}

    cas = RealCas(teepy, str(tmp.make_sibling("cas")))
    try:
        at = ["--cas", cas.url, "--cas-fingerprint", cas.fingerprint]
        f = tmp.write("mysvc.json", json.dumps(policy(["sim"], "bb" * 32)))
        teepy_run("policy", "create", f, *at, "--owner", tmp / "owner.key")
        shell_env = {**env, **penv}
        args = (tpy, "--trust", trust, *at, "--config-id", "mysvc/main", "--input", "world")

        # no debug tolerated: denied, exit 11, the CAS's reason; no prompt
        s = Shell(command, shell_env, run_cwd, tmp.make_sibling("tmux") / "socket", args)
        try:
            assert s.exit_code() == EXIT.ATTESTATION_DENIED, s.screen()
            text = s.screen()
        finally:
            s.close()
        assert "teepy: shell: the CAS denied mysvc/main: a debug run (teepy shell) is not " \
            "tolerated by mysvc/main (HTTP 403 denied)" in text, text
        assert ">>>" not in text, text
        runtime = re.search(r"its runtime measurement is ([0-9a-f]{64}) \(teepy-shell's\)",
                            text).group(1)
        last = cas.audit()[-1]
        assert (last["op"], last["subject"], last["outcome"]) == \
            ("attest", "mysvc/main", "denied"), last
        assert last["reason"] == "a debug run (teepy shell) is not tolerated by mysvc/main"

        # debug tolerated (and the shell's runtime listed): the key is released
        f.write_text(json.dumps(policy(["sim", "debug"], runtime)))
        teepy_run("policy", "update", "mysvc", f, *at, "--owner", tmp / "owner.key")
        s = Shell(command, shell_env, run_cwd, tmp.make_sibling("tmux") / "socket", args)
        try:
            s.wait(r"^>>> ?$")
            assert "a DEBUG run in a bundle's sealed root" in s.screen()
            assert s.ask("import helper, teex; helper.greeting(teex.get_input())") == \
                "'hello world'"
            s.keys("C-d")
            assert s.exit_code() == EXIT.OK
        finally:
            s.close()
        last = cas.audit()[-1]
        assert (last["op"], last["outcome"]) == ("attest", "released"), last
        # a run of the same bundle is no debug run: its evidence says nothing of debug,
        # and its runtime (teepy's) is not the shell's, so this policy denies it
        r = subprocess.run([*command, "run", tpy, "--trust", trust, *at, "--config-id",
                            "mysvc/main", "--input", "x"], capture_output=True, timeout=120,
                           env=shell_env, cwd=run_cwd)
        assert r.returncode == EXIT.ATTESTATION_DENIED, r
        assert b"runtime" in r.stderr and b"is not in policy mysvc/main" in r.stderr, r
    finally:
        cas.close()


def test_the_services_prompt_is_shown_escaped(as_user, shell):
    """sys.ps1 is the service's text: its control characters (a title change, a
    screen clear) are shown as text on the host's terminal, never acted on."""
    s = shell()
    s.type("import sys; sys.ps1 = '\\x1b]0;owned\\x07\\x1b[2Jzz> '")
    s.wait(r"zz> *$")
    text = s.screen()
    assert "Ctrl-D leaves" in text  # the screen was not cleared
    assert re.search(r"\\x1b\]0;owned\\x07\\x1b\[2Jzz> *$", text, re.M) or \
        re.search(r"\\e\]0;owned\\a\\e\[2Jzz> *$", text, re.M) or \
        ("owned" in text and "\x1b" not in text), text
    assert s.tmux("display-message", "-p", "-t", "shell", "#{pane_title}").strip() != "owned"
    s.keys("C-d")
    assert s.exit_code() == EXIT.OK
