"""A directory laid out like configfs-tsm (/sys/kernel/config/tsm/report) holding one
entry with a RECORDED TDX quote (trustee's tdx_quote_4.dat, beside the repository in
../shared): NOT a kernel; no machine here is a confidential VM. teepy uses the entry
named by TEEPY_TSM_ENTRY (the test seam) instead of making its own."""
from pathlib import Path

EVIDENCE = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "attestation"
QUOTE_4 = EVIDENCE / "tdx" / "tdx_quote_4.dat"


def make_recorded_tsm(d):
    """Lays out directory d (made) with the entry "recorded"; returns the env that
    points teepy at it."""
    entry = d / "recorded"
    entry.mkdir(parents=True)
    (entry / "inblob").write_bytes(b"")
    (entry / "outblob").write_bytes(QUOTE_4.read_bytes())
    (entry / "provider").write_text("tdx_guest\n")
    (entry / "generation").write_text("1\n")
    return {"TEEPY_TSM_DIR": str(d), "TEEPY_TSM_ENTRY": "recorded"}
