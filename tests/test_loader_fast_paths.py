"""The strict loader's fast paths (CPUID entries, capability keys, cpuinfo flags, module
parameters) accept exactly what the checked paths accept and name every problem the same way:
a fleet is read thousands of files at a time, but validation is not weakened."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from kvmprobe.errors import KvmprobeError
from kvmprobe.snapshot import CpuidEntry, load, loads

BASE: dict[str, Any] = json.loads((FIXTURES / "amd-epyc-pvm-6.18.json").read_text())


def _load(doc: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    try:
        load(str(path))
    except KvmprobeError as e:
        assert "\n" not in e.message
        return e.message.split(": invalid snapshot: ", 1)[-1]
    return "ok"


def _entry_doc(**change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    entry = doc["supported_cpuid"][1]
    for k, v in change.items():
        if v is _DROP:
            del entry[k]
        else:
            entry[k] = v
    return doc


_DROP = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eax": True}, "supported_cpuid[1].eax: expected an integer, got bool"),
        ({"eax": -1}, "supported_cpuid[1].eax: -1 is out of range 0..4294967295"),
        ({"edx": 1 << 32}, "supported_cpuid[1].edx: 4294967296 is out of range 0..4294967295"),
        ({"ecx": 1.0}, "supported_cpuid[1].ecx: expected an integer, got float"),
        ({"ebx": "1"}, "supported_cpuid[1].ebx: expected an integer, got str"),
        ({"flags": _DROP}, "supported_cpuid[1].flags: expected an integer, got NoneType"),
        ({"function": 0}, "supported_cpuid[1]: duplicate entry for leaf 0x0 subleaf 0x0"),
    ],
    ids=lambda x: str(x)[:30],
)
def test_bad_entries_are_named(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    assert _load(_entry_doc(**change), tmp_path) == message


def test_entry_that_is_not_an_object(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["host"]["cpuid"][3] = [1, 2, 3]
    assert _load(doc, tmp_path) == "host.cpuid[3]: expected an object, got list"


def test_extra_keys_in_an_entry_are_ignored_as_before() -> None:
    doc = copy.deepcopy(BASE)
    doc["supported_cpuid"][0]["padding"] = 0
    snap, _ = loads(json.dumps(doc), "x")
    assert snap.supported_cpuid is not None and snap.supported_cpuid[0].function == 0


def test_loaded_entries_are_ordinary_objects() -> None:
    snap, _ = load(str(FIXTURES / "amd-epyc-pvm-6.18.json"))
    e = (snap.supported_cpuid or ())[1]
    assert type(e) is CpuidEntry
    assert e == CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx)


@pytest.mark.parametrize(
    ("key", "value", "outcome"),
    [
        ("55", 1, "ok"),
        ("0", 1, "ok"),
        ("0x37", 1, "ok"),  # hex keys take the checked path and are accepted, as before
        ("055", 1, "caps.system: key '055' is not a number"),
        ("600", 1, "caps.system[600]: cap number beyond cap_limit 512"),
        ("1e3", 1, "caps.system: key '1e3' is not a number"),
        ("55", True, "caps.system[55]: expected an integer, got bool"),
        ("55", -2, "caps.system[55]: -2 is out of range 0..9223372036854775807"),
        ("55", "0x1f", "ok"),  # schema 2: 64-bit values may be hex strings
    ],
)
def test_capability_keys_and_values(key: str, value: Any, outcome: str, tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["caps"]["system"][key] = value
    assert _load(doc, tmp_path) == outcome


def test_cpuinfo_flags_and_module_parameters(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["host"]["cpuinfo_flags"] = ["fpu", "x" * 65]
    assert _load(doc, tmp_path) == "host.cpuinfo_flags[1]: string of 65 characters is too long"
    doc["host"]["cpuinfo_flags"] = ["fpu", 3]
    assert _load(doc, tmp_path) == "host.cpuinfo_flags[1]: expected a string, got int"
    doc["host"]["cpuinfo_flags"] = ["fpu", "été"]
    assert _load(doc, tmp_path) == "ok"  # non-ASCII text is fine (the checked path decides)
    doc = copy.deepcopy(BASE)
    doc["host"]["modules"]["kvm"]["params"]["halt_poll_ns"] = 5
    assert _load(doc, tmp_path) == (
        "host.modules['kvm'].params['halt_poll_ns']: expected a string, got int"
    )


def test_keys_from_the_file_never_put_a_newline_in_a_message(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["host"]["modules"] = {"\n": None}
    assert _load(doc, tmp_path) == "host.modules['\\n']: expected an object, got NoneType"
    doc = copy.deepcopy(BASE)
    doc["device_attrs"] = {"a\nb": "x"}
    assert "\n" not in _load(doc, tmp_path)
