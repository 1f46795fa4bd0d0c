#!/usr/bin/env python3
"""The layering of src/: a module includes only its own headers and those of the
modules below it (docs/architecture.md). Prints each include that reaches up or
sideways and exits 1. Meson links each module's library only with the ones below,
but static libraries resolve their symbols at the final link, where every module
is present: this check, not the linker, is what refuses a call upward."""
import re
import sys
from pathlib import Path

# each module and the modules it may use (DESIGN.md: common -> crypto -> manifest,
# channel, pfs -> sandbox, trace -> runner -> attest, cas, worker -> cli); pyboot, the C inside the sandbox,
# only the channel and common, and only the runner and cli use its boot text
BELOW = {
    "common": set(),
    "crypto": {"common"},
    "manifest": {"crypto", "common"},
    "channel": {"common"},
    "pfs": {"crypto", "common"},
    "pyboot": {"channel", "common"},
    "sandbox": {"manifest", "channel", "crypto", "common"},
    "trace": {"manifest", "channel", "crypto", "common"},
    "runner": {"sandbox", "trace", "manifest", "channel", "pfs", "crypto", "pyboot", "common"},
    "attest": {"runner", "sandbox", "trace", "manifest", "channel", "pfs", "crypto", "pyboot",
               "common"},
    # the CAS server beside attest: it verifies evidence and reads manifests
    "cas": {"attest", "manifest", "crypto", "common"},
    # the worker beside the CAS: it takes the CAS's base64 and its client's secrets
    "worker": {"cas", "attest", "runner", "sandbox", "trace", "manifest", "channel", "pfs",
               "crypto", "pyboot", "common"},
    "cli": {"worker", "cas", "attest", "runner", "sandbox", "trace", "manifest", "channel", "pfs", "crypto",
            "pyboot", "common"},
}

def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "src"
    bad = []
    for path in sorted(root.rglob("*.[ch]")):
        rel = path.relative_to(root)
        module = rel.parts[0] if len(rel.parts) > 1 else "main"
        if module == "main":
            continue
        allowed = BELOW.get(module)
        if allowed is None:
            bad.append(f"{rel}: module {module} is not in the layering (tools/check_layers.py)")
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"\.\./([a-z_]+)/', line)
            if m and m.group(1) != module and m.group(1) not in allowed:
                bad.append(f"{rel}:{n}: {module} may not include {m.group(1)}/ (it is not below {module})")
    for line in bad:
        print(line)
    print(f"layers: {len(bad)} include{'s' if len(bad) != 1 else ''} out of order")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
