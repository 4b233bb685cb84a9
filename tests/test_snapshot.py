"""Snapshot format: round trips, replay through the device layer, and untrusted input."""

from __future__ import annotations

import json
import os

import pytest
from conftest import FIXTURES, RECORDED_HOSTS
from support.fakekvm import FakeKvm

from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import SCHEMA, from_json, load

DEVICE_FIELDS = (
    "api_version",
    "vcpu_mmap_size",
    "cap_limit",
    "caps",
    "supported_cpuid",
    "emulated_cpuid",
    "supported_hv_cpuid",
    "msr_index_list",
    "msr_feature_index_list",
    "feature_msrs",
    "device_attrs",
    "mce_cap_supported",
    "creation",
)


def test_recorded_hosts_exist() -> None:
    assert RECORDED_HOSTS, "at least one real-host recording must be committed"


def test_round_trip(recorded) -> None:
    again, warnings = from_json(json.loads(recorded.dumps()))
    assert warnings == []
    assert again.to_json() == recorded.to_json()


def test_replay_through_device_layer(recorded) -> None:
    """Probing a fake device that answers like the recorded one reproduces the recording."""
    fake = FakeKvm(recorded)
    replay = probe("/dev/null", ioctl=fake)
    for name in DEVICE_FIELDS:
        assert getattr(replay, name) == getattr(recorded, name), name
    assert replay.errors == ()
    assert "GET_SUPPORTED_CPUID" in fake.calls


def test_replay_closes_every_fd(recorded) -> None:
    fake = FakeKvm(recorded)
    probe("/dev/null", ioctl=fake)
    assert fake.opened, "the probe creates VMs and a vCPU"
    for fd in fake.opened:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_failing_ioctl_is_recorded_not_fatal(recorded) -> None:
    import errno

    fake = FakeKvm(
        recorded, fail={"GET_SUPPORTED_CPUID": errno.EFAULT, "CREATE_VCPU": errno.EMFILE}
    )
    snap = probe("/dev/null", ioctl=fake)
    steps = {e.step: e.errno for e in snap.errors}
    assert steps["KVM_GET_SUPPORTED_CPUID"] == errno.EFAULT
    assert steps["KVM_CREATE_VCPU"] == errno.EMFILE
    assert snap.supported_cpuid is None
    assert snap.creation["vcpu"] == "EMFILE"
    assert snap.caps["system"] == recorded.caps["system"]  # the rest still came through
    for fd in fake.opened:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_vm_creation_failure_leaves_vm_scopes_unknown(recorded) -> None:
    import errno

    snap = probe("/dev/null", ioctl=FakeKvm(recorded, fail={"CREATE_VM": errno.EBUSY}))
    assert snap.creation["vm"] == "EBUSY"
    assert snap.caps["vm"] is None and snap.caps["vm_split_irqchip"] is None


def _write(tmp_path, doc) -> str:
    p = tmp_path / "snap.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


def _fixture_doc() -> dict:
    return json.loads((FIXTURES / RECORDED_HOSTS[0].name).read_text())


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d.update(schema="kvmprobe.snapshot/99"), "newer"),
        (lambda d: d.update(schema="something/1"), "not a kvmprobe snapshot"),
        (lambda d: d.pop("schema"), "not a kvmprobe snapshot"),
        (lambda d: d.update(api_version="twelve"), "api_version"),
        (lambda d: d.update(api_version=-1), "out of range"),
        (lambda d: d["supported_cpuid"][0].update(eax=2**40), "out of range"),
        (lambda d: d["supported_cpuid"].append(dict(d["supported_cpuid"][0])), "duplicate"),
        (lambda d: d["caps"].update(bogus={}), "unknown scope"),
        (lambda d: d["caps"]["system"].update({"9999": 1}), "cap_limit"),
        (lambda d: d["caps"]["system"].update({"x": 1}), "not a number"),
        (lambda d: d.update(supported_cpuid={"a": 1}), "expected a list"),
        (lambda d: d.update(host=[]), "expected an object"),
        (lambda d: d.update(cap_limit=10**30), "out of range"),
    ],
)
def test_bad_snapshots_are_clear_errors(tmp_path, mutate, needle) -> None:
    doc = _fixture_doc()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(KvmprobeError) as e:
        load(path)
    assert path in e.value.message
    assert needle in e.value.message
    assert e.value.hint


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "empty file"),
        ("{", "not valid JSON"),
        ("[]", "expected an object"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_not_json(tmp_path, text, needle) -> None:
    with pytest.raises(KvmprobeError) as e:
        load(_write(tmp_path, text))
    assert needle in e.value.message


def test_unknown_fields_warn(tmp_path) -> None:
    doc = _fixture_doc()
    doc["from_the_future"] = 1
    snap, warnings = load(_write(tmp_path, doc))
    assert warnings == ["ignoring unknown field 'from_the_future'"]
    assert snap.api_version == 12


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(KvmprobeError, match="no such snapshot file"):
        load(str(tmp_path / "nope.json"))
    with pytest.raises(KvmprobeError, match="is a directory"):
        load(str(tmp_path))


def test_binary_file(tmp_path) -> None:
    p = tmp_path / "bin"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(KvmprobeError, match="not a text file"):
        load(str(p))


def test_schema_constant() -> None:
    assert SCHEMA == "kvmprobe.snapshot/2"  # 2: 64-bit values as hex strings, verification
    assert ExitStatus.ERROR == 1
