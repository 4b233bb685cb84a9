"""Short cuts taken for start-up time give the answers of the long way."""

from __future__ import annotations

from kvmprobe.analysis import cpuid as cp


def test_a_linux_name_is_found_as_itself_by_the_index_of_every_spelling() -> None:
    # cp.lookup() answers a feature's own Linux name without building the index of every
    # spelling; that is only right while the index gives the same feature for the name.
    for f in cp.features():
        if f.name:
            assert cp._norm(f.name) == f.name, f.name
            assert cp._names()[f.name] is f, f.name
            assert cp.lookup(f.name) is f


def test_lookup_still_takes_every_other_spelling() -> None:
    by_qemu = cp.lookup("tsc-deadline")
    assert by_qemu is not None and by_qemu.name == "tsc_deadline_timer"
    assert cp.lookup(" AVX2 ") is cp.lookup("avx2")
    assert cp.lookup("X86_FEATURE_X2APIC") is cp.lookup("x2apic")
    assert cp.lookup("0x1.0.ecx[21]") is cp.lookup("x2apic")
    assert cp.lookup("no-such-feature") is None
