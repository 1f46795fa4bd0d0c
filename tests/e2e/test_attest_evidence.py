"""Producing evidence (docs/cas.md "Producing evidence", docs/cli.md): `teepy platform
init|show`, the platform key of sim mode, as root (at a path the test gives: the
host's /var/lib/teepy is never touched) and as uid 65534 (its default place under a
HOME or XDG_DATA_HOME the test owns); `teepy attest` making sim evidence and `teepy
attest verify --type sim` checking it, a changed byte, another platform key,
another nonce or a debug run's evidence (without --insecure-tolerate-debug) refused; and `--mode hw` against a directory laid out like
configfs-tsm holding a RECORDED TDX quote (trustee's tdx_quote_4.dat) or SEV-SNP
report (test-report.bin, with a certificate table built from its recorded VCEK and
AMD's Milan ASK and ARK), not a kernel: no machine here is a confidential VM."""
import hashlib
import json
import os
import stat

import pytest

from exit_codes import EXIT
from recorded_tsm import (GUID, QUOTE_4, SNP_REPORT, SNP_VCEK, SNP_VLEK, SNP_VLEK_REPORT,
                          cert_table, der_of, make_recorded_snp, make_recorded_tsm,
                          milan_ask_ark, milan_asvk, pem_blocks)
from volumes import one_line, own

NONCE = "00112233445566778899aabbccddeeff"
APP = "aa" * 32
SIGNER = "bb" * 32


def fields(r):
    """{label: value} of the lines `teepy attest` or `platform` prints."""
    out = {}
    for line in r.stdout.decode().splitlines():
        label, _, value = line.partition(" ")
        out[label] = value.strip()
    return out


@pytest.fixture
def keys(tmp, variant, as_user):
    """(env, key path) of a platform key place this variant's user owns: root gives a
    path (TEEPY_PLATFORM_KEY); the user its default under a HOME of its own."""
    home = tmp.make_sibling("home")
    own(home, variant)
    if variant == "root":
        return {"TEEPY_PLATFORM_KEY": str(home / "platform.key")}, home / "platform.key"
    env = {"HOME": str(home), "XDG_DATA_HOME": None}
    return env, home / ".local" / "share" / "teepy" / "platform.key"


def init(run, env):
    r = run("platform", "init", env=env)
    assert r.returncode == EXIT.OK, r
    return r


def test_platform_init_makes_a_key_only_its_owner_reads(run, keys):
    env, key = keys
    r = init(run, env)
    f = fields(r)
    assert f["key"].startswith(f"{key} (private, 0600")
    assert f["pub"] == str(key.with_suffix(".pub"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    raw = bytes.fromhex(f["public"])
    assert f["fingerprint"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert "SIMULATION" in one_line(r)
    # show: the same key, the same lines
    r = run("platform", "show", env=env)
    assert r.returncode == EXIT.OK, r
    assert fields(r) == f
    # never overwritten without --force; with it, a new key
    r = run("platform", "init", env=env)
    assert r.returncode == EXIT.USAGE, r
    assert f"{key} already exists" in one_line(r) and "--force" in one_line(r)
    r = run("platform", "init", "--force", env=env)
    assert r.returncode == EXIT.OK, r
    assert fields(r)["fingerprint"] != f["fingerprint"]


def test_a_users_key_follows_xdg_data_home(run, tmp, variant, as_user):
    if variant == "root":
        pytest.skip("root's key is the host's, /var/lib/teepy")
    home = tmp.make_sibling("home")
    own(home, variant)
    r = init(run, {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")})
    assert fields(r)["key"].startswith(f"{home}/data/teepy/platform.key ")
    assert stat.S_IMODE((home / "data" / "teepy").stat().st_mode) == 0o700


def test_platform_show_without_a_key_is_exit_10(run, keys):
    env, key = keys
    r = run("platform", "show", env=env)
    assert r.returncode == EXIT.KEY_MISSING, r
    assert f"no platform key at {key}" in one_line(r) and "teepy platform init" in one_line(r)


def test_sim_evidence_round_trip(run, tmp, keys, variant):
    env, key = keys
    init(run, env)
    out = tmp.make_sibling("out")
    own(out, variant)
    ev = out / "ev.bin"
    r = run("attest", "--mode", "sim", "--nonce", NONCE, "--app", APP, "--signer", SIGNER,
            "-o", ev, env=env)
    assert r.returncode == EXIT.OK, r
    made = fields(r)
    assert made["mode"].startswith("sim (SIMULATION")
    assert (made["nonce"], made["app"], made["signer"]) == (NONCE, APP, SIGNER)
    assert ev.read_bytes().startswith(b"teepy sim evidence: SIMULATION, not hardware\n")
    r = run("attest", "verify", ev, "--type", "sim", "--platform-key", key.with_suffix(".pub"),
            "--nonce", NONCE, "--app", APP, "--signer", SIGNER, "--json", env=env)
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["verified"] is True and got["simulation"] is True
    assert [c["name"] for c in got["checks"]] == ["report_data", "platform_key", "signature",
                                                 "claims", "debug"]
    assert got["claims"]["nonce"] == NONCE and got["claims"]["runtime"] == made["runtime"]
    assert got["claims"]["pubkey"] == made["pubkey"].split()[0]
    assert got["report_data"] == made["report_data"]
    r = run("attest", "verify", ev, "--type", "sim", "--platform-key", key.with_suffix(".pub"))
    assert r.returncode == EXIT.OK, r
    assert r.stdout.decode().endswith(
        "verified: yes (SIMULATION: signed by a trusted platform key, not by hardware)\n")
    # the evidence in hex on stdout, and as JSON, is the same format
    r = run("attest", "--nonce", NONCE, "--json", env={**env, "TEEPY_TSM_DIR": "/nonexistent"})
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["mode"] == "sim" and got["simulation"] is True
    assert bytes.fromhex(got["evidence"]).startswith(b"teepy sim evidence: SIMULATION")


# (offset, what): the label, the version, the runtime, the nonce size, the nonce,
# the report data, the platform key, the signature; 47 label bytes + 2 version bytes
LABEL = 45
FLIPS = [(3, "label"), (LABEL + 1, "version"), (LABEL + 2, "runtime"),
         (LABEL + 2 + 128, "nonce size"), (LABEL + 2 + 129 + 5, "nonce"),
         (LABEL + 2 + 129 + 16 + 7, "report data"), (LABEL + 2 + 129 + 16 + 64 + 1, "platform key"),
         (-1, "signature")]


@pytest.mark.parametrize("offset,what", FLIPS)
def test_a_flipped_byte_is_refused(run, tmp, keys, offset, what):
    env, key = keys
    init(run, env)
    r = run("attest", "--mode", "sim", "--nonce", NONCE, "--json", env=env)
    assert r.returncode == EXIT.OK, r
    data = bytearray.fromhex(json.loads(r.stdout)["evidence"])
    data[offset] ^= 0x01
    ev = tmp.write("ev.bin", bytes(data))
    r = run("attest", "verify", ev, "--type", "sim", "--platform-key", key.with_suffix(".pub"))
    assert r.returncode == EXIT.ATTESTATION_DENIED, (what, r)
    assert one_line(r).startswith(f"teepy: attest verify: {ev}: refused: "), what


def test_another_platform_key_or_nonce_is_refused(run, tmp, keys, variant):
    env, key = keys
    init(run, env)
    other = tmp.make_sibling("other")
    own(other, variant)
    r = run("platform", "init", "--key", other / "o.key")
    assert r.returncode == EXIT.OK, r
    ev = other / "ev.bin"
    r = run("attest", "--mode", "sim", "--nonce", NONCE, "-o", ev, env=env)
    assert r.returncode == EXIT.OK, r
    r = run("attest", "verify", ev, "--type", "sim", "--platform-key", other / "o.pub")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "refused: platform_key failed: signed by a platform key not given" in one_line(r)
    r = run("attest", "verify", ev, "--type", "sim", "--platform-key", other / "o.pub",
            "--platform-key", key.with_suffix(".pub"), "--nonce", NONCE[:-2] + "00")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "refused: claims failed: the nonce is not the one expected" in one_line(r)
    assert r.stdout.decode().endswith("verified: NO\n")


def as_a_debug_runs(evidence, key):
    """Sim evidence of version 1 made again as `teepy shell APP.tpy --cas` makes a
    debug run's (docs/cas.md, "Debug runs"): version 2, the flags byte 0x01, report
    data that binds the seventh field "debug", signed by the same platform key."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from cas_mock import SIM_LABEL, report_data
    body = evidence[len(SIM_LABEL) + 2:]
    runtime, app, signer, pubkey = (body[32 * i:32 * (i + 1)] for i in range(4))
    n = body[128]
    nonce, platform = body[129:129 + n], body[129 + n + 64:129 + n + 96]
    signed = (SIM_LABEL + b"\x00\x02\x01" + body[:129 + n]
              + report_data(b"sim", runtime, app, signer, nonce, pubkey, debug=True) + platform)
    return signed + load_pem_private_key(key.read_bytes(), None).sign(signed)


def test_a_debug_runs_evidence_is_refused_unless_debug_is_tolerated(run, tmp, keys):
    """A debug run's evidence verifies as evidence, but whoever ran it could read and
    change what ran: refused as a CAS refuses it unless the policy tolerates "debug",
    in one line, exit 11; accepted with --insecure-tolerate-debug, and said so."""
    env, key = keys
    init(run, env)
    r = run("attest", "--mode", "sim", "--nonce", NONCE, "--json", env=env)
    assert r.returncode == EXIT.OK, r
    ev = tmp.write("debug.bin", as_a_debug_runs(bytes.fromhex(json.loads(r.stdout)["evidence"]),
                                                key))
    verify = ("attest", "verify", ev, "--type", "sim", "--platform-key", key.with_suffix(".pub"),
              "--nonce", NONCE)
    r = run(*verify, "--json")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert one_line(r) == (f"teepy: attest verify: {ev}: refused: debug failed: a debug run "
                           "(teepy shell): whoever ran it could read and change what ran "
                           "(--insecure-tolerate-debug accepts it)")
    got = json.loads(r.stdout)
    assert got["verified"] is False and got["version"] == 2 and got["claims"]["debug"] is True
    assert {c["name"]: c["ok"] for c in got["checks"]} == {
        "report_data": True, "platform_key": True, "signature": True, "claims": True,
        "debug": False}
    r = run(*verify, "--insecure-tolerate-debug")
    assert r.returncode == EXIT.OK, r
    assert one_line(r) == (f"teepy: warning: attest verify: {ev}: a debug run (teepy shell), "
                           "accepted (--insecure-tolerate-debug)")
    assert r.stdout.decode().endswith("verified: yes (SIMULATION: signed by a trusted platform "
                                      "key, not by hardware; DEBUG, tolerated)\n")


def test_a_platform_key_others_may_read_is_refused(run, keys):
    env, key = keys
    init(run, env)
    key.chmod(0o644)
    r = run("attest", "--mode", "sim", env=env)
    assert r.returncode == EXIT.USAGE, r
    assert "others may read the platform key (mode 644)" in one_line(r)


def test_sim_without_a_platform_key_is_exit_10(run, keys):
    env, key = keys
    r = run("attest", "--mode", "sim", env=env)
    assert r.returncode == EXIT.KEY_MISSING, r
    assert f"no platform key at {key}" in one_line(r) and "teepy platform init" in one_line(r)


@pytest.fixture
def recorded_tsm(tmp, variant):
    """A directory laid out like configfs-tsm (/sys/kernel/config/tsm/report) holding
    one entry with a RECORDED TDX quote in its outblob: NOT a kernel. teepy uses the
    entry named by TEEPY_TSM_ENTRY (the test seam) instead of making its own."""
    d = tmp.make_sibling("tsm")
    make_recorded_tsm(d)
    own(d, variant)
    return d


@pytest.mark.parametrize("how", [["--mode", "hw"], []])
def test_hw_against_a_recorded_configfs_tsm_entry(run, tmp, variant, as_user, recorded_tsm, how):
    env = {"TEEPY_TSM_DIR": str(recorded_tsm), "TEEPY_TSM_ENTRY": "recorded"}
    out = tmp.make_sibling("out")
    own(out, variant)
    quote = out / "quote.dat"
    r = run("attest", *how, "--nonce", NONCE, "-o", quote, env=env)
    assert r.returncode == EXIT.OK, r
    f = fields(r)
    assert f["mode"].startswith("hw ") and f["provider"] == "tdx_guest"
    # what teepy wrote to inblob is the report data it printed
    assert (recorded_tsm / "recorded" / "inblob").read_bytes().hex() == f["report_data"]
    assert quote.read_bytes() == QUOTE_4.read_bytes()
    # the recorded quote binds other report data: teepy says so
    assert "recorded" in r.err and "binds none of these claims" in r.err
    # (trustee's quote is a debug TD's, which verify refuses unless told to tolerate)
    r = run("attest", "verify", quote, "--type", "tdx", "--insecure-tolerate-debug")
    assert r.returncode == EXIT.OK, r


def test_hw_is_also_chosen_by_teepy_mode(run, recorded_tsm):
    env = {"TEEPY_TSM_DIR": str(recorded_tsm), "TEEPY_TSM_ENTRY": "recorded", "TEEPY_MODE": "hw"}
    r = run("attest", "--json", env=env)
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["mode"] == "hw" and got["simulation"] is False and got["provider"] == "tdx_guest"


@pytest.mark.parametrize("env", [{}, {"TEEPY_MODE": "hw"}])
def test_hw_without_configfs_tsm_is_one_line(run, env):
    args = ["--mode", "hw"] if not env else []
    r = run("attest", *args, env={"TEEPY_TSM_DIR": "/nonexistent/tsm", **env})
    assert r.returncode == EXIT.USAGE, r
    assert "--mode hw: no configfs-tsm at /nonexistent/tsm" in one_line(r)
    assert r.stdout == b""


@pytest.mark.parametrize("args,says", [
    (["verify", "ev.bin", "--type", "sim"], "--platform-key PUB"),
    (["verify", "q.dat", "--type", "tdx", "--platform-key", "p.pub"], "--platform-key is for --type sim"),
    (["verify", "q.dat", "--type", "tdx", "--nonce", "00"], "--nonce is for --type sim"),
    (["verify", "ev.bin", "--type", "sim", "--mode", "sim"], "--mode is for making evidence"),
    (["--type", "sim"], "--type is for verify"),
    (["--mode", "tee"], "unknown mode 'tee'"),
    (["--nonce", "abc"], "--nonce: not 1 to 64 bytes in hex"),
    (["--app", "00"], "--app: not 32 bytes in hex"),
    (["frob"], "unknown action 'frob'"),
])
def test_usage_errors_are_one_line_exit_2(run, args, says):
    r = run("attest", *args, env={"TEEPY_TSM_DIR": "/nonexistent"})
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r), one_line(r)


@pytest.mark.parametrize("args,says", [
    ([], "missing init or show"),
    (["frob"], "unknown action 'frob'"),
    (["show", "--force"], "--force is for init"),
])
def test_platform_usage_errors(run, args, says):
    r = run("platform", *args)
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r)


@pytest.fixture
def recorded_snp(tmp):
    if not SNP_REPORT.is_file():
        pytest.skip(f"no recorded SEV-SNP report at {SNP_REPORT}")

    def lay_out(auxblob=b"default", report=SNP_REPORT):
        d = tmp.make_sibling("tsm")
        return make_recorded_snp(d, auxblob, report)
    return lay_out


def test_attest_shows_and_writes_the_hosts_snp_certificates(run, tmp, recorded_snp):
    """-o FILE writes the report, its VCEK (FILE.vcek, DER) and AMD's chain
    (FILE.chain, PEM) from the host's table, which `teepy attest verify` takes as they
    are; --json gives them inline, as the CAS takes them."""
    import base64
    env = recorded_snp()
    out = tmp.make_sibling("out")
    r = run("attest", "--mode", "hw", "-o", out / "report.bin", env=env)
    assert r.returncode == EXIT.OK, r
    f = fields(r)
    assert f["provider"] == "sev_guest"
    assert f["host_certs"] == "VCEK 1360 bytes, ASK 1677 bytes, ARK 1639 bytes"
    assert f["vcek"] == (f"the host's VCEK (auxblob), written to {out}/report.bin.vcek (DER, "
                         "1360 bytes)")
    assert f["chain"] == (f"the host's ASK and ARK (auxblob), written to {out}/report.bin.chain "
                          "(PEM, 2 certificates)")
    assert (out / "report.bin").read_bytes() == SNP_REPORT.read_bytes()
    assert (out / "report.bin.vcek").read_bytes() == SNP_VCEK.read_bytes()
    ask, ark = milan_ask_ark()
    chain = (out / "report.bin.chain").read_text()
    assert [der_of(b) for b in pem_blocks(chain)] == [ask, ark]
    v = run("attest", "verify", out / "report.bin", "--type", "snp", "--vcek",
            out / "report.bin.vcek", "--chain", out / "report.bin.chain")
    assert v.returncode == EXIT.OK, v
    assert "verified: yes" in v.stdout.decode()
    j = run("attest", "--mode", "hw", "--json", env=env)
    assert j.returncode == EXIT.OK, j
    certs = json.loads(j.stdout)["certificates"]
    assert base64.b64decode(certs["vcek"]) == SNP_VCEK.read_bytes()
    assert certs["chain"] == chain
    assert certs["vcek_from"] == "the host's VCEK (auxblob)"


@pytest.mark.parametrize("auxblob, says", [
    (None, "configfs-tsm gave no auxblob with the report"),
    (b"\x07" * 30, "the host's certificate table (configfs-tsm's auxblob, 30 bytes) is "
                   "malformed: cut short: no entry of zeros ends the table in its 30 bytes"),
])
def test_attest_without_the_hosts_snp_certificates_warns_and_shows_the_report(
        run, recorded_snp, auxblob, says):
    """teepy attest is a debugging aid: the report is shown, and one line says what a
    CAS would lack (teepy run --cas stops there instead: test_cas_client.py)."""
    r = run("attest", "--mode", "hw", "--json", env=recorded_snp(auxblob))
    assert r.returncode == EXIT.OK, r
    lacks = [line for line in r.err_lines if "the SEV-SNP report lacks" in line]
    assert lacks == [f"teepy: warning: attest: the SEV-SNP report lacks its VCEK and AMD's "
                     f"chain (ASK and ARK), without which a CAS cannot verify it: {says} (the "
                     "host provides them: snphost import, given to its VMM; or give "
                     "--snp-vcek FILE --snp-chain FILE)"], r
    got = json.loads(r.stdout)
    assert got["provider"] == "sev_guest" and got["size"] == 1184
    assert got["certificates"]["vcek"] is None and got["certificates"]["chain"] is None
    assert got["certificates"]["host_certs"] == f"none: {says}"


def test_attest_takes_the_snp_certificate_of_the_key_the_report_names(run, tmp, recorded_snp):
    """A host whose table holds a VCEK and a VLEK (and under the ASK's GUID the ASVK,
    as snphost import writes it): a report signed by the VLEK goes with the VLEK,
    which verifies it (its certificate expired in 2025: the time check is off)."""
    _, ark = milan_ask_ark()
    table = cert_table([(GUID["vcek"], SNP_VCEK.read_bytes()),
                        (GUID["vlek"], SNP_VLEK.read_bytes()),
                        (GUID["ask"], milan_asvk()), (GUID["ark"], ark)])
    out = tmp.make_sibling("out")
    r = run("attest", "--mode", "hw", "-o", out / "r.bin",
            env=recorded_snp(table, SNP_VLEK_REPORT))
    assert r.returncode == EXIT.OK, r
    f = fields(r)
    assert f["host_certs"] == "VCEK 1360 bytes, VLEK 1319 bytes, ASK 1683 bytes, ARK 1639 bytes"
    assert f["vcek"].startswith("the host's VLEK (auxblob), written to ")
    assert (out / "r.bin.vcek").read_bytes() == SNP_VLEK.read_bytes()
    v = run("attest", "verify", out / "r.bin", "--type", "snp", "--vcek", out / "r.bin.vcek",
            "--chain", out / "r.bin.chain", "--insecure-no-time-check")
    assert v.returncode == EXIT.OK, v
