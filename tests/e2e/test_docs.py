"""docs/cli.md and the README say what the binary's own tables say: every flag of
every command with its argument and environment variable (`teepy help flags`),
and every exit code with its name and meaning (`teepy help exit-codes`, which
each command's --help prints from); and where the docs list the claims evidence
binds, they name a debug run's too."""
import re
import subprocess
from pathlib import Path

import pytest

from exit_codes import read_table

REPO = Path(__file__).resolve().parents[2]
CLI = (REPO / "docs" / "cli.md").read_text()
README = (REPO / "README.md").read_text()


def teepy_out(teepy, *args):
    r = subprocess.run([str(teepy), *args], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def flags(teepy):
    """{command: [(long, short or None, arg or None, env or None)]} from `teepy help flags`."""
    table = {}
    for line in teepy_out(teepy, "help", "flags").splitlines():
        command, long, short, arg, env = line.split(" ")
        table.setdefault(command, []).append(
            tuple(None if v == "-" else v for v in (long, short, arg, env)))
    return table


def sections(text):
    """{command: its part of docs/cli.md}: from a heading "## `teepy COMMAND ..." to
    the next one of those (the top level, "## `teepy <command> ...", is "teepy")."""
    parts = re.split(r"^(## `teepy [^`]*`)$", text, flags=re.M)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2]):
        word = heading.split()[2].strip("`")
        found["teepy" if word.startswith("<") else word] = body
    return found


def table_rows(text, header):
    """The rows (lists of cells) of every table in text whose header line is HEADER."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.strip() == header:
            inside = True
        elif inside and line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        else:
            inside = False
    return rows


def exit_rows(rows):
    return [(int(code), name.strip("`"), meaning) for code, name, meaning in rows]


def help_exits(text):
    """(code, name, meaning) of the "Exit codes:" part of a --help, meanings unwrapped."""
    rows = []
    for line in text.split("\nExit codes:\n", 1)[1].splitlines():
        m = re.match(r"  (\d+) +(\w+) +(.*)", line)
        if m:
            rows.append([int(m.group(1)), m.group(2), m.group(3)])
        elif line.startswith(" "):
            rows[-1][2] += " " + line.strip()
        else:
            break
    return [tuple(r) for r in rows]


def test_every_command_is_documented_in_its_own_section(teepy):
    documented = sections(CLI)
    missing = sorted(set(flags(teepy)) - set(documented))
    assert not missing, f"docs/cli.md has no section '## `teepy COMMAND ...`' for {missing}"


def test_every_flag_is_documented_with_its_argument_and_variable(teepy):
    documented = sections(CLI)
    missing = []
    for command, rows in flags(teepy).items():
        text = documented.get(command, "")
        for long, short, arg, env in rows:
            shown = [f"`{long} {arg}`" if arg else f"`{long}`"]
            if short:
                shown.append(f"`{short} {arg}`" if arg else f"`{short}`")
            missing += [f"{command}: {s}" for s in shown if s not in text]
            if env and f"`{env}{'' if arg else '=1'}`" not in text:
                missing.append(f"{command}: {long}'s `{env}`")
    assert not missing, f"docs/cli.md does not show {missing}"


def test_documented_flags_are_flags_of_their_command(teepy):
    """The first cell of each row of a section's options table names that command's
    flags, each with the argument its table gives."""
    table = flags(teepy)
    stale = []
    for command, text in sections(CLI).items():
        known = set()
        for long, short, arg, _ in table.get(command, []):
            known |= {f"{name} {arg}" if arg else name for name in (long, short) if name}
        for header in ("| option | meaning |", "| option | meaning | default | environment |"):
            for row in table_rows(text, header):
                stale += [f"{command}: {f}" for f in re.findall(r"`(-[^`]*)`", row[0])
                          if f not in known]
    assert not stale, f"docs/cli.md shows flags the commands do not have: {stale}"


def test_readme_flags_are_run_flags_with_their_variables(teepy):
    run = {long: (arg, env) for long, _, arg, env in flags(teepy)["run"]}
    rows = table_rows(README, "| flag | default | environment |")
    assert rows
    for flag, _default, env in rows:
        long, _, arg = flag.strip("`").partition(" ")
        assert long in run and arg == (run[long][0] or ""), flag
        expected = run[long][1]
        if expected and not run[long][0]:
            expected += "=1"
        assert env.strip("`") == (expected or ""), (flag, env)


def test_exit_code_tables_are_the_binarys(teepy):
    codes = read_table()
    assert [c for c, _, _ in codes] == sorted({c for c, _, _ in codes})
    assert exit_rows(table_rows(sections(CLI)["run"], "| code | name | meaning |")) == codes
    assert exit_rows(table_rows(README, "| code | name | meaning |")) == codes


@pytest.mark.parametrize("command", ["run", "build", "inspect", "keygen", "data", "volume",
                                     "attest", "cas", "serve"])
def test_each_commands_exit_codes_are_its_help(teepy, command):
    """`teepy run --help` lists every exit code; the other commands list the ones they
    use, with their own wording, by the same numbers and names; docs/cli.md shows the
    same lists."""
    codes = {c: n for c, n, _ in read_table()}
    listed = help_exits(teepy_out(teepy, command, "--help"))
    assert all(codes[c] == n for c, n, _ in listed), listed
    if command == "run":
        assert listed == read_table()
    else:
        rows = table_rows(sections(CLI)[command], "| code | name | meaning |")
        assert exit_rows(rows) == listed


def test_where_the_docs_list_the_claims_evidence_binds_they_name_debug_too():
    """A run's evidence binds six claims and a debug run's (teepy shell APP.tpy) a
    seventh, debug (docs/cas.md, "Debug runs"): a paragraph that lists the six says so,
    so that no reader takes six for all there is."""
    six = "{mode, runtime, app, signer, nonce, pubkey}"
    for path in sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]:
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            words = " ".join(paragraph.split())
            if six in words:
                # the claim named as one: `debug` in code, or "and debug" after the list
                # (not any word debug, a --debug flag or a debug TD's DEBUG bit)
                named = re.search(r"`debug`|\(and `?debug`? for|and debug\b", words)
                assert named, f"{path.name}: {words[:160]}"
