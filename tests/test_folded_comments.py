"""Export comments are folded at word boundaries and lose nothing (render.text.folded)."""

from __future__ import annotations

from kvmprobe.render.text import COMMENT_WIDTH, folded


def test_folding_keeps_every_word_and_the_width() -> None:
    words = [f"feature_{n}" for n in range(80)] + ["/a/very/long/path/" + "x" * 120]
    text = "features: " + " ".join(words)
    lines = folded(text, "# ", "#   ")
    assert lines[0].startswith("# features:") and all(x.startswith("#   ") for x in lines[1:])
    assert " ".join(x[2:].strip() for x in lines).split() == text.split()
    long_word = words[-1]
    for line in lines:
        assert len(line) <= COMMENT_WIDTH or line == f"#   {long_word}", line


def test_short_and_empty_text() -> None:
    assert folded("short", "# ", "#   ") == ["# short"]
    assert folded("", "# ", "#   ") == ["#"]
