"""Shared fixtures: recorded hosts, the live-device gate, synthetic snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent

FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
RECORDED_HOSTS = sorted(FIXTURES.glob("*.json"))
REQUIRE_LIVE = os.environ.get("KVMPROBE_REQUIRE_LIVE") == "1"


def _live_reason() -> str | None:
    """Why the live device cannot be used here, or None when it can."""
    from kvmprobe.errors import KvmprobeError
    from kvmprobe.kvm.device import KvmDevice

    try:
        with KvmDevice("/dev/kvm"):
            return None
    except KvmprobeError as e:
        return e.message


@pytest.fixture(scope="session")
def live_device() -> str:
    """/dev/kvm when it opens; otherwise skip with the reason (fail if KVMPROBE_REQUIRE_LIVE=1)."""
    reason = _live_reason()
    if reason:
        if REQUIRE_LIVE:
            pytest.fail(f"KVMPROBE_REQUIRE_LIVE=1 but /dev/kvm cannot be used: {reason}")
        pytest.skip(f"/dev/kvm cannot be used here: {reason}")
    return "/dev/kvm"


@pytest.fixture(params=[p.name for p in RECORDED_HOSTS])
def recorded(request: pytest.FixtureRequest):
    """Each recorded real host, loaded through the same loader as --from."""
    from kvmprobe.snapshot import load

    snap, warnings = load(str(FIXTURES / request.param))
    assert warnings == []
    return snap


@pytest.fixture
def no_fd_leak():
    """Fails the test if it leaves a file descriptor open."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) == before


@pytest.fixture(scope="session", autouse=True)
def schema_checked_documents():
    """Every JSON document the code under test writes is validated against the schema it
    names (kvmprobe/schemas), and must describe every field it carries there."""
    from support.schema_check import watch

    yield from watch()
