"""Directories laid out like configfs-tsm (/sys/kernel/config/tsm/report) holding one
entry with RECORDED evidence from ../shared/testdata/attestation (trustee's real
quotes, reports and certificates): NOT a kernel; no machine here is a confidential
VM. teepy uses the entry named by TEEPY_TSM_ENTRY (the test seam) instead of making
its own. An SEV-SNP entry's auxblob, the host's certificate table, is built here from
the recorded VCEK and AMD's Milan ASK and ARK, as a host lays it out (GHCB
specification's certificate table: GUID, offset, length; an entry of zeros; the
certificates, DER)."""
import re
import struct
import uuid
from pathlib import Path

EVIDENCE = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "attestation"
QUOTE_4 = EVIDENCE / "tdx" / "tdx_quote_4.dat"
SNP_REPORT = EVIDENCE / "snp" / "test-report.bin"
SNP_VCEK = EVIDENCE / "snp" / "test-vcek.der"
SNP_VLEK_REPORT = EVIDENCE / "snp" / "test-vlek-report.bin"  # signed by a VLEK
SNP_VLEK = EVIDENCE / "snp" / "test-vlek.der"
SNP_CHAIN = EVIDENCE / "snp" / "milan_ask_ark_asvk.pem"  # ASK, ARK, ASVK (trustee's order)

def snp_measurement():
    """The recorded SEV-SNP report's MEASUREMENT (48 bytes at 0x90, AMD's SNP ABI,
    "ATTESTATION_REPORT"), in hex: what a policy's hw.snp entry pins."""
    return SNP_REPORT.read_bytes()[0x90:0xC0].hex()


# AMD's GUIDs (GHCB specification; AMD's sev-guest, virtee/sev and go-sev-guest agree)
GUID = {"vcek": "63da758d-e664-4564-adc5-f4b93be8accd",
        "vlek": "a8074bc2-a25a-483e-aae6-39c045a0b8a1",
        "ask": "4ab7b379-bbac-4fe4-a02f-05aef327c782",
        "ark": "c0b406a4-a803-4952-9743-3fb6014cd0ae"}


def pem_blocks(text):
    """The PEM certificate blocks of text, in order."""
    return re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", text,
                      re.S)


def der_of(pem):
    import base64
    body = "".join(pem.strip().splitlines()[1:-1])
    return base64.b64decode(body)


def milan_ask_ark():
    """(ASK, ARK) of the recorded Milan chain, DER."""
    blocks = pem_blocks(SNP_CHAIN.read_text())
    return der_of(blocks[0]), der_of(blocks[1])


def milan_asvk():
    """The ASVK of the recorded Milan chain (a VLEK's issuer), DER."""
    return der_of(pem_blocks(SNP_CHAIN.read_text())[2])


def cert_table(entries):
    """A host's certificate table of [(GUID text or 16 bytes, DER)], in order."""
    header = (len(entries) + 1) * 24
    rows, data = b"", b""
    for guid, der in entries:
        raw = uuid.UUID(guid).bytes if isinstance(guid, str) else guid
        rows += raw + struct.pack("<II", header + len(data), len(der))
        data += der
    return rows + bytes(24) + data


def recorded_auxblob():
    """The table a host gives with test-report.bin: its VCEK, the ASK and the ARK."""
    ask, ark = milan_ask_ark()
    return cert_table([(GUID["vcek"], SNP_VCEK.read_bytes()), (GUID["ask"], ask),
                       (GUID["ark"], ark)])


def make_recorded_tsm(d):
    """Lays out directory d (made) with the entry "recorded", a TDX quote; returns the
    env that points teepy at it."""
    entry = d / "recorded"
    entry.mkdir(parents=True)
    (entry / "inblob").write_bytes(b"")
    (entry / "outblob").write_bytes(QUOTE_4.read_bytes())
    (entry / "provider").write_text("tdx_guest\n")
    (entry / "generation").write_text("1\n")
    return {"TEEPY_TSM_DIR": str(d), "TEEPY_TSM_ENTRY": "recorded"}


def make_recorded_snp(d, auxblob=b"default", report=SNP_REPORT):
    """The same with a recorded SEV-SNP report (test-report.bin unless given), and
    auxblob (bytes; the default: recorded_auxblob(); None: no auxblob file)."""
    entry = d / "recorded"
    entry.mkdir(parents=True)
    (entry / "inblob").write_bytes(b"")
    (entry / "outblob").write_bytes(report.read_bytes())
    if auxblob is not None:
        (entry / "auxblob").write_bytes(recorded_auxblob() if auxblob == b"default" else auxblob)
    (entry / "provider").write_text("sev_guest\n")
    (entry / "generation").write_text("1\n")
    return {"TEEPY_TSM_DIR": str(d), "TEEPY_TSM_ENTRY": "recorded"}
