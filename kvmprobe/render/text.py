"""Making untrusted text safe for a terminal (no rich here: the JSON path may import it).

Strings from the system or a snapshot file (device names, kernel release, module parameters,
CPUID vendor bytes, error messages) are data. Before a text report prints them, control
characters, unpaired surrogates and bidirectional overrides become visible escapes, so a file
cannot move the cursor, change colours, retitle the terminal or reorder what is shown.

Also here: ``folded``, comment text of the export files folded at word boundaries (a QEMU
or libvirt definition is read in an editor as often as it is pasted)."""

from __future__ import annotations

from collections.abc import Sequence

from kvmprobe.words import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.snapshot import ProbeError

_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A)) | {0x200E, 0x200F}


def safe(text: str) -> str:
    """Printable text: control characters, unpaired surrogates and bidi overrides escaped."""
    if text.isprintable() and not any(ord(ch) in _BIDI for ch in text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF or code in _BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


#: the width export comments are folded to (the line length of kvmprobe's own source)
COMMENT_WIDTH = 100


def folded(text: str, first: str, rest: str, width: int = COMMENT_WIDTH) -> list[str]:
    """``text`` as lines of at most ``width`` characters: the first behind ``first``, the
    others behind ``rest``. Breaks only at spaces; a word longer than a line stays whole
    (a feature name or a path must survive being copied)."""
    import textwrap  # here: only the exports fold text

    return textwrap.wrap(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def failed_steps_line(errors: Sequence[ProbeError], most: int = 4) -> str:
    """One line naming the probe steps that failed (at most ``most``, then a count)."""
    named = [f"{safe(e.step)} ({e.errno_name or 'failed'})" for e in errors[:most]]
    more = f" and {len(errors) - most} more" if len(errors) > most else ""
    return (
        f"{count(len(errors), 'probe step')} failed: {', '.join(named)}{more}; "
        "answers that depend on them are shown as unknown"
    )
