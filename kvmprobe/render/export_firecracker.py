"""``kvmprobe export firecracker``: a Firecracker custom CPU template (Firecracker's own JSON
format, not a kvmprobe document: no ``source`` block, nothing Firecracker does not define).
Stdlib only."""

from __future__ import annotations

import json

from kvmprobe.analysis.export import FirecrackerLeaf, FirecrackerMsr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def firecracker_doc(
    leaves: tuple[FirecrackerLeaf, ...], msrs: tuple[FirecrackerMsr, ...] = ()
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cpuid_modifiers": [
            {
                "leaf": f"{x.leaf:#x}",
                "subleaf": f"{x.subleaf:#x}",
                "flags": x.flags,
                "modifiers": [{"register": r, "bitmap": "0b" + b} for r, b in x.bitmaps],
            }
            for x in leaves
        ],
    }
    if msrs:
        doc["msr_modifiers"] = [{"addr": f"{m.addr:#x}", "bitmap": "0b" + m.bitmap} for m in msrs]
    return doc


def firecracker_json(
    leaves: tuple[FirecrackerLeaf, ...], msrs: tuple[FirecrackerMsr, ...] = ()
) -> str:
    return json.dumps(firecracker_doc(leaves, msrs), indent=2) + "\n"
