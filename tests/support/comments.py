"""The export files' comments as one line each again (kvmprobe folds them at 100 columns:
kvmprobe.render.text.folded), so a test can look for a whole sentence."""

from __future__ import annotations


def unfolded_qemu(text: str) -> str:
    """``export qemu`` text with each folded comment joined back into one line."""
    return text.replace("\n#   ", " ")


def unfolded_libvirt(text: str) -> str:
    """``export libvirt`` text with each folded XML comment joined back into one line."""
    return text.replace("\n     ", " ")
