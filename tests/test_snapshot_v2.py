"""Snapshot format 2: 64-bit values as hex strings, the vCPU verification facts, required
fields, and the input rules (regular files only, bounded size); format 1 still loads."""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import replace
from pathlib import Path

import pytest

from kvmprobe.errors import KvmprobeError
from kvmprobe.limits import MAX_SNAPSHOT_BYTES
from kvmprobe.snapshot import JSON_SAFE_MAX, SetAttempt, Steps, load, loads

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "amd-epyc-pvm-6.18.json"  # a committed format-1 snapshot


def test_format_1_still_loads() -> None:
    assert json.loads(V1.read_text())["schema"] == "kvmprobe.snapshot/1"
    snap, warnings = load(str(V1))
    assert warnings == []
    assert snap.feature_msrs[0x10A] == 0x400000000C000069


def _walk_numbers(doc: object) -> list[int]:
    if isinstance(doc, bool):
        return []
    if isinstance(doc, int):
        return [doc]
    if isinstance(doc, dict):
        return [n for v in doc.values() for n in _walk_numbers(v)]
    if isinstance(doc, list):
        return [n for v in doc for n in _walk_numbers(v)]
    return []


def test_no_number_above_2_53_in_a_written_snapshot() -> None:
    snap, _ = load(str(V1))
    snap = replace(
        snap,
        caps={**snap.caps, "system": {**(snap.caps["system"] or {}), 1: 2**60}},
        verification=(SetAttempt("KVM_SET_MSRS", "split", 0x10A, 2**62 + 5, False, None, (62,)),),
    )
    text = snap.dumps()
    doc = json.loads(text)
    assert doc["schema"] == "kvmprobe.snapshot/2"
    assert max(_walk_numbers(doc)) <= JSON_SAFE_MAX
    assert doc["feature_msrs"]["0x10a"] == "0x400000000c000069"
    back, warnings = loads(text, "x")
    assert warnings == []
    assert back.feature_msrs == snap.feature_msrs
    assert back.cap(1) == 2**60
    assert back.verification == snap.verification
    assert back.device_attrs == snap.device_attrs and back.xcomp == snap.xcomp


@pytest.mark.parametrize("value", ["0x", "0X10", "10", "0x1g", "-0x1", "0x" + "f" * 17, " 0x1"])
def test_hex_strings_are_strict(value: str) -> None:
    doc = json.loads(V1.read_text())
    doc["feature_msrs"]["0x10a"] = value
    with pytest.raises(KvmprobeError, match="feature_msrs"):
        loads(json.dumps(doc), "x")


@pytest.mark.parametrize(
    "key", ["device", "api_version", "caps", "supported_cpuid", "host", "errors"]
)
def test_required_fields(key: str) -> None:
    doc = json.loads(V1.read_text())
    del doc[key]
    with pytest.raises(KvmprobeError, match=f"{key}: missing"):
        loads(json.dumps(doc), "x")


def test_a_failed_capability_check_is_unknown_not_zero() -> None:
    snap, _ = load(str(V1))
    from kvmprobe.snapshot import ProbeError

    failed = replace(snap, errors=(ProbeError(Steps.cap(0, "system"), 5, "EIO: I/O error"),))
    assert snap.cap(0) is not None
    assert failed.cap(0) is None and failed.cap_failure(0) is not None
    assert failed.cap(0, "vm") == snap.cap(0, "vm")  # only the scope that failed


def test_fifo_and_devices_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(KvmprobeError, match="a FIFO, not a snapshot file"):
        load(str(fifo))
    with pytest.raises(KvmprobeError, match="a device, not a snapshot file"):
        load("/dev/null")
    assert time.monotonic() - started < 5  # it must not wait for a writer


def test_oversized_files_are_refused_before_parsing(tmp_path: Path) -> None:
    """An unknown field full of empty lists, just over the bound: refused by size, cheaply."""
    doc = json.loads(V1.read_text())
    doc["padding"] = [[]] * (MAX_SNAPSHOT_BYTES // 3)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(KvmprobeError, match="far larger than any snapshot"):
        load(str(path))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024


def test_largest_accepted_file_parses(tmp_path: Path) -> None:
    """Just under the bound, the same hostile shape still loads (with a warning)."""
    doc = json.loads(V1.read_text())
    doc["padding"] = [[]] * ((MAX_SNAPSHOT_BYTES - 100_000) // 3)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    _, warnings = load(str(path))
    assert warnings == ["ignoring unknown field 'padding'"]
