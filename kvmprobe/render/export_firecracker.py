"""``kvmprobe export firecracker``: a Firecracker custom CPU template (Firecracker's own JSON
format, not a kvmprobe document: no ``source`` block, nothing Firecracker does not define).
Stdlib only."""

from __future__ import annotations

import json
from typing import Any

from kvmprobe.analysis.export import FirecrackerLeaf


def firecracker_doc(leaves: tuple[FirecrackerLeaf, ...]) -> dict[str, Any]:
    return {
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


def firecracker_json(leaves: tuple[FirecrackerLeaf, ...]) -> str:
    return json.dumps(firecracker_doc(leaves), indent=2) + "\n"
