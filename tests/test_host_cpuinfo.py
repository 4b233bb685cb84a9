"""The host's CPU identity from /proc/cpuinfo: only the first CPU's block is read (the kernel
composes the file one CPU at a time, and big hosts have hundreds)."""

from __future__ import annotations

from pathlib import Path

from kvmprobe.kvm import host


def _block(cpu: int, flags: str) -> str:
    return (
        f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU {cpu}\n"
        f"flags\t\t: {flags}\n"
    )


def test_only_the_first_block_is_used(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(_block(n, f"fpu vme flag{n}") for n in range(64)))
    block = host._first_cpu_block(str(path))
    assert "Example CPU 0" in block and "processor\t: 1" not in block


def test_a_first_block_longer_than_one_read_is_whole(tmp_path: Path) -> None:
    many = " ".join(f"f{n}" for n in range(6000))  # about 40 kB: several reads
    path = tmp_path / "cpuinfo"
    path.write_text(_block(0, many) + "\n" + _block(1, "other"))
    block = host._first_cpu_block(str(path))
    assert block.endswith("f5999") and "other" not in block


def test_a_file_without_a_blank_line_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(_block(0, "fpu"))
    assert host._first_cpu_block(str(path)).rstrip().endswith("fpu")


def test_live_identity_matches_the_whole_file() -> None:
    whole = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    vendor, model, flags = host._cpuinfo()
    first = whole.split("\n\n", 1)[0]
    assert f": {vendor}" in first and f": {model}" in first
    assert set(flags) == set(
        next(
            line.split(":", 1)[1].split() for line in first.splitlines() if line.startswith("flags")
        )
    )
