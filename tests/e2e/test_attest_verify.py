"""teepy attest verify FILE --type tdx|snp (docs/cli.md, docs/cas.md "Evidence"):
real TDX quotes and SEV-SNP reports from confidential-containers/trustee
(../shared/testdata/attestation) verified through the binary, their fields as
JSON, evidence changed by one byte refused with exit 11 and one line naming the
check, a debug TD's quote refused unless --insecure-tolerate-debug, and usage errors. These runs check certificate times at the time they run:
every certificate used here without --insecure-no-time-check is valid to 2030 or
later; the VLEK, expired on 2025-12-10, shows the flag (the unit tests fix a time
instead, tests/unit/test_attest.c)."""
import json
import struct
from pathlib import Path

import pytest

from exit_codes import EXIT
from volumes import one_line

EVIDENCE = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "attestation"
TDX = EVIDENCE / "tdx"
SNP = EVIDENCE / "snp"
MILAN = SNP / "milan_ask_ark_asvk.pem"
TDX_CHECKS = ["pck_chain", "qe_report_signature", "qe_report_data", "quote_signature"]
SNP_CHECKS = ["cert_chain", "cert_report", "report_signature"]
# trustee's tdx_quote_4.dat is a debug TD's (TD attributes bit 0); 5 and 6 are not
DEBUG_TD = TDX / "tdx_quote_4.dat"


@pytest.fixture(scope="module", autouse=True)
def evidence():
    assert EVIDENCE.is_dir(), f"the test evidence is beside the repository: {EVIDENCE}"


def verify_tdx(run, quote, *extra):
    return run("attest", "verify", quote, "--type", "tdx", *extra)


def verify_snp(run, report, cert, chain=MILAN, *extra):
    return run("attest", "verify", report, "--type", "snp", "--vcek", cert, "--chain", chain,
               *extra)


def checks(r):
    """{name: ok} of the human output's check lines."""
    out = r.stdout.decode()
    found = {}
    for line in out.split("\nchecks:\n", 1)[1].splitlines():
        if line.startswith("  "):
            status, name = line.split()[:2]
            found[name] = status == "ok"
    return found


@pytest.mark.parametrize("n", [5, 6])
def test_tdx_quote_verifies_and_prints_its_measurements(run, n):
    r = verify_tdx(run, TDX / f"tdx_quote_{n}.dat")
    assert r.returncode == EXIT.OK, r
    assert r.err == ""
    out = "\n" + r.stdout.decode()
    for field in ["body.mr_td", "body.rtmr0", "body.rtmr3", "body.report_data",
                  "body.td_attributes_flags.debug", "header.version", "qe_report.mr_signer"]:
        assert f"\n{field} " in out, field
    assert checks(r) == {name: True for name in TDX_CHECKS + ["debug"]}
    assert out.endswith("verified: yes (signatures and chain; TCB status not checked)\n")


def test_a_debug_tds_quote_is_refused_unless_debug_is_tolerated(run):
    """As a CAS refuses a debug TD unless the policy tolerates "debug": its host can
    read and change what runs in it. Every other check passes."""
    r = verify_tdx(run, DEBUG_TD)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert one_line(r) == (f"teepy: attest verify: {DEBUG_TD}: refused: debug failed: a debug TD "
                           "(the TD attributes' DEBUG bit): whoever ran it could read and change "
                           "what ran (--insecure-tolerate-debug accepts it)")
    assert checks(r) == {**{name: True for name in TDX_CHECKS}, "debug": False}
    assert r.stdout.decode().endswith("verified: NO\n")
    r = verify_tdx(run, DEBUG_TD, "--insecure-tolerate-debug")
    assert r.returncode == EXIT.OK, r
    assert one_line(r) == (f"teepy: warning: attest verify: {DEBUG_TD}: a debug TD (the TD "
                           "attributes' DEBUG bit), accepted (--insecure-tolerate-debug)")
    assert checks(r) == {name: True for name in TDX_CHECKS + ["debug"]}
    assert r.stdout.decode().endswith(
        "verified: yes (signatures and chain; TCB status not checked; DEBUG, tolerated)\n")
    # evidence that is no debug one passes with the flag as without it
    r = verify_tdx(run, TDX / "tdx_quote_5.dat", "--insecure-tolerate-debug")
    assert (r.returncode, r.err) == (EXIT.OK, ""), r
    assert r.stdout.decode().endswith(
        "verified: yes (signatures and chain; TCB status not checked)\n")


def test_tdx_json_fields_are_trustees(run):
    expected = json.loads((TDX / "parse_tdx_claims_expected.json").read_text())["quote"]["body"]
    r = verify_tdx(run, DEBUG_TD, "--json", "--insecure-tolerate-debug")
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["type"] == "tdx" and got["verified"] is True and got["time_checked"] is True
    assert [c["name"] for c in got["checks"]] == TDX_CHECKS + ["debug"]
    assert all(c["ok"] for c in got["checks"])
    body = got["body"]
    for mine, trustees in [("mr_td", "mr_td"), ("rtmr0", "rtmr_0"), ("rtmr1", "rtmr_1"),
                           ("rtmr2", "rtmr_2"), ("rtmr3", "rtmr_3"), ("mr_seam", "mr_seam"),
                           ("report_data", "report_data"), ("tee_tcb_svn", "tcb_svn")]:
        assert body[mine] == expected[trustees], mine
    # trustee shows the attribute words as their bytes, teepy as the number
    assert bytes.fromhex(body["td_attributes"])[::-1].hex() == expected["td_attributes"]
    assert body["td_attributes_flags"]["debug"] is True
    assert got["header"]["version"] == 4 and body["type"] == "td_report_1.0"


def test_tdx_quote_5_is_a_td_report_1_5(run):
    r = verify_tdx(run, TDX / "tdx_quote_5.dat", "--json")
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["header"]["version"] == 5
    assert got["body"]["type"] == "td_report_1.5" and "mr_servicetd" in got["body"]


def test_snp_vcek_report_verifies_up_to_the_milan_ark(run):
    r = verify_snp(run, SNP / "test-report.bin", SNP / "test-vcek.der", MILAN, "--json")
    assert r.returncode == EXIT.OK, r
    got = json.loads(r.stdout)
    assert got["verified"] is True and got["product"] == "Milan"
    assert [c["name"] for c in got["checks"]] == SNP_CHECKS + ["debug"]
    assert got["measurement"] == ("a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98"
                                  "f1ef827c23500644e0e692e6be917f9050d3d38c")
    assert got["policy_flags"]["debug"] is False
    assert got["reported_tcb"]["microcode"] == 115
    assert got["signer"]["signing_key"] == "vcek"


def test_expired_vlek_is_refused_unless_time_checks_are_off(run):
    r = verify_snp(run, SNP / "test-vlek-report.bin", SNP / "test-vlek.der")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "cert_chain failed: certificate has expired at SEV-VLEK" in one_line(r)
    r = verify_snp(run, SNP / "test-vlek-report.bin", SNP / "test-vlek.der", MILAN,
                   "--insecure-no-time-check")
    assert r.returncode == EXIT.OK, r
    assert "--insecure-no-time-check" in one_line(r) and "warning" in one_line(r)
    assert r.stdout.decode().endswith(
        "verified: yes (signatures and chain; TCB status not checked; "
        "certificate times not checked)\n")


def test_invalid_vcek_is_refused(run):
    r = verify_snp(run, SNP / "test-report.bin", SNP / "test-vcek-invalid-new.der")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "refused: cert_chain failed: certificate signature failure at SEV-VCEK" in one_line(r)
    assert checks(r) == {**{name: False for name in SNP_CHECKS}, "debug": True}
    assert r.stdout.decode().endswith("verified: NO\n")


# (file, offset of the byte changed, the check that refuses it); v4: header 48
# bytes, TD report 584, the signature data's length, its signature and key
TAMPERED = [
    ("tdx/tdx_quote_4.dat", 30, "quote_signature"),  # header: user data
    ("tdx/tdx_quote_4.dat", 48 + 136 + 7, "quote_signature"),  # TD report: MRTD
    ("tdx/tdx_quote_4.dat", 636 + 3, "quote_signature"),  # the quote's signature
    ("tdx/tdx_quote_4.dat", 770 + 64, "qe_report_signature"),  # QE report: MRENCLAVE
    ("tdx/tdx_quote_4.dat", 1220 + 3, "qe_report_data"),  # QE authentication data
    ("snp/test-report.bin", 0x90 + 1, "report_signature"),  # MEASUREMENT
    ("snp/test-report.bin", 0x2a0 + 2, "report_signature"),  # the signature's r
]


@pytest.mark.parametrize("name,offset,check", TAMPERED)
def test_a_changed_byte_is_refused_naming_the_check(run, tmp, name, offset, check):
    data = bytearray((EVIDENCE / name).read_bytes())
    data[offset] ^= 0x01
    changed = tmp.write("evidence.bin", bytes(data))
    if name.startswith("tdx"):
        r = verify_tdx(run, changed)
    else:
        r = verify_snp(run, changed, SNP / "test-vcek.der")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert one_line(r).startswith(f"teepy: attest verify: {changed}: refused: {check} failed: ")
    assert checks(r)[check] is False
    assert sum(1 for ok in checks(r).values() if not ok) >= 1


def test_malformed_evidence_is_one_line_exit_11(run, tmp):
    quote = (TDX / "tdx_quote_4.dat").read_bytes()
    cut = tmp.write("cut.dat", quote[:1000])
    r = verify_tdx(run, cut)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "cut short" in one_line(r) and r.stdout == b""
    v3 = tmp.write("v3.dat", struct.pack("<H", 3) + quote[2:])
    r = verify_tdx(run, v3)
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "a quote of version 3" in one_line(r)
    # the wrong --type: said what the file is
    r = verify_tdx(run, SNP / "test-report.bin")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "not a TDX quote" in one_line(r) and "--type snp" in one_line(r)
    r = verify_snp(run, TDX / "tdx_quote_4.dat", SNP / "test-vcek.der")
    assert r.returncode == EXIT.ATTESTATION_DENIED, r
    assert "not an SEV-SNP report" in one_line(r) and "--type tdx" in one_line(r)


@pytest.mark.parametrize("args,says", [
    (["frob"], "unknown action 'frob'"),
    (["verify"], "missing FILE"),
    (["verify", "QUOTE"], "--type tdx, snp or sim"),
    (["verify", "QUOTE", "--type", "sgx"], "'sgx' is no evidence type"),
    (["verify", "QUOTE", "--type", "tdx", "--vcek", "x.der"], "--vcek is for --type snp"),
    (["verify", "REPORT", "--type", "snp", "--chain", "c.pem"], "--vcek DER"),
    (["verify", "REPORT", "--type", "snp", "--vcek", "v.der"], "--chain PEM"),
    (["verify", "/nonexistent/quote.dat", "--type", "tdx"], "No such file"),
    (["verify", "QUOTE", "--type", "tdx", "--bogus"], "--bogus"),
    (["verify", "a", "b", "--type", "tdx"], "unexpected argument 'b'"),
    (["--insecure-tolerate-debug"], "--insecure-tolerate-debug is for verify"),
])
def test_usage_errors_are_one_line_exit_2(run, args, says):
    r = run("attest", *args)
    assert r.returncode == EXIT.USAGE, r
    assert says in one_line(r), one_line(r)


def test_unreadable_certificate_is_a_usage_error(run):
    r = verify_snp(run, SNP / "test-report.bin", "/nonexistent/vcek.der")
    assert r.returncode == EXIT.USAGE, r
    assert "--vcek /nonexistent/vcek.der: No such file" in one_line(r)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_names_verify_and_every_flag(run, flag):
    r = run("attest", flag)
    assert r.returncode == EXIT.OK, r
    out = r.stdout.decode()
    assert out.startswith("usage: teepy attest ") and "\n       teepy attest verify " in out
    for f in ["--type", "--vcek", "--chain", "--insecure-no-time-check", "--insecure-tolerate-debug",
              "--json", "docs/cas.md"]:
        assert f in out, f
