"""analysis.caps: capability lookup and value decoding on synthetic and real-host values."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmprobe.analysis.caps import (
    KINDS,
    PROBE_LIMIT,
    CapInfo,
    DecodedValue,
    cap_by_name,
    cap_info,
    decode,
    known_caps,
    matches,
    short_flag,
)
from kvmprobe.render.json import decoded_json
from kvmprobe.tables.caps_data import GROUPS

X2APIC_API = 129
DISABLE_QUIRKS2 = 213
X86_DISABLE_EXITS = 143
VM_TYPES = 235
EXIT_HYPERCALL = 201
ADJUST_CLOCK = 39
SET_GUEST_DEBUG2 = 195
XSAVE2 = 208
X86_USER_SPACE_MSR = 188
SYNC_REGS = 74


# -- lookup ------------------------------------------------------------------------------------


def test_known_cap_info() -> None:
    info = cap_info(X2APIC_API)
    assert info == CapInfo(
        number=129,
        name="KVM_CAP_X2APIC_API",
        known=True,
        arch="x86",
        description=info.description,
        kind="bitmask",
        unit=None,
    )
    assert info.group == "KVM_X2APIC"
    assert "x2APIC" in info.description


@pytest.mark.parametrize("number", [300, 5, 17, 250, PROBE_LIMIT - 1, 10_000])
def test_unknown_numbers_get_placeholders(number: int) -> None:
    info = cap_info(number)
    assert info.name == f"KVM_CAP_{number}"
    assert not info.known
    assert info.arch == "unknown"
    assert info.kind == "unknown"
    assert info.description == ""
    assert info.unit is None
    assert decode(number, 7).text == "7"
    assert decode(number, 0).text == "0"
    assert decoded_json(decode(number, 7)) == []


def test_known_caps_sorted_and_complete() -> None:
    caps = known_caps()
    assert len(caps) == 244
    assert [c.number for c in caps] == sorted(c.number for c in caps)
    assert all(c.known for c in caps)
    assert all(c.kind in KINDS for c in caps)
    assert all(c.unit is None or c.kind in {"count", "size", "scalar"} for c in caps)


@pytest.mark.parametrize(
    "text",
    ["KVM_CAP_X2APIC_API", "x2apic_api", "kvm_cap_x2apic_api", "X2APIC-API", " X2APIC_API "],
)
def test_cap_by_name_variants(text: str) -> None:
    info = cap_by_name(text)
    assert info is not None
    assert info.number == X2APIC_API


def test_cap_by_name_misses_and_placeholders() -> None:
    assert cap_by_name("X2APIC") is None  # exact, not a substring
    assert cap_by_name("nonsense") is None
    assert cap_by_name("") is None
    placeholder = cap_by_name("KVM_CAP_300")
    assert placeholder is not None and placeholder.number == 300 and not placeholder.known
    assert cap_by_name("KVM_CAP_129") is None  # 129 has a real name


@pytest.mark.parametrize(
    ("needle", "number", "expected"),
    [
        ("x2apic", X2APIC_API, True),
        ("X2APIC_API", X2APIC_API, True),
        ("KVM_CAP_X2APIC", X2APIC_API, True),
        ("kvm_cap_x2apic_api", X2APIC_API, True),
        ("cap_x2", X2APIC_API, True),
        ("129", X2APIC_API, True),
        ("0x81", X2APIC_API, True),
        ("12", X2APIC_API, False),  # numbers match numbers, not digits in names
        ("2", 2, True),
        ("2", 33, False),  # KVM_CAP_PIT2
        ("split-irqchip", 121, True),
        ("", 0, True),
        ("300", 300, True),
        ("KVM_CAP_30", 300, True),
        ("hyperv", X2APIC_API, False),
    ],
)
def test_matches(needle: str, number: int, expected: bool) -> None:
    assert matches(cap_info(number), needle) is expected


@pytest.mark.parametrize(
    ("name", "group", "short"),
    [
        ("KVM_X86_DISABLE_EXITS_HLT", "KVM_X86_DISABLE_EXITS", "HLT"),
        ("KVM_X86_DEFAULT_VM", "KVM_X86_VM_TYPE", "DEFAULT_VM"),
        ("KVM_HC_MAP_GPA_RANGE", "KVM_HC", "MAP_GPA_RANGE"),
        ("KVM_X2APIC_API_USE_32BIT_IDS", "KVM_X2APIC", "USE_32BIT_IDS"),
        ("KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST", "KVM_X2APIC", "ENABLE_SUPPRESS_EOI_BROADCAST"),
        ("KVM_DIRTY_LOG_INITIALLY_SET", "KVM_DIRTY_LOG_MANUAL", "INITIALLY_SET"),
        ("GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG", "MMAP"),
        ("SOMETHING_ELSE", "NO_SUCH_GROUP", "SOMETHING_ELSE"),
    ],
)
def test_short_flag(name: str, group: str, short: str) -> None:
    assert short_flag(name, group) == short


# -- values this host family returns -------------------------------------------------------------


def test_x2apic_api_system_and_vm_values() -> None:
    system = decode(X2APIC_API, 15)
    assert system.names == (
        "KVM_X2APIC_API_USE_32BIT_IDS",
        "KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK",
        "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST",
        "KVM_X2APIC_DISABLE_SUPPRESS_EOI_BROADCAST",
    )
    assert system.remainder == 0
    vm = decode(X2APIC_API, 11)
    assert len(vm.names) == 3
    assert "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST" not in vm.names
    assert vm.text == "USE_32BIT_IDS | DISABLE_BROADCAST_QUIRK | DISABLE_SUPPRESS_EOI_BROADCAST"


def test_disable_quirks2() -> None:
    d = decode(DISABLE_QUIRKS2, 0x5FF)
    assert len(d.names) == 10
    assert d.names[0] == "KVM_X86_QUIRK_LINT0_REENABLED"
    assert d.names[-1] == "KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM"
    assert "KVM_X86_QUIRK_IGNORE_GUEST_PAT" not in d.names
    assert d.remainder == 0


def test_disable_exits() -> None:
    d = decode(X86_DISABLE_EXITS, 14)
    assert d == DecodedValue(
        14,
        (
            "KVM_X86_DISABLE_EXITS_HLT",
            "KVM_X86_DISABLE_EXITS_PAUSE",
            "KVM_X86_DISABLE_EXITS_CSTATE",
        ),
        0,
        "HLT | PAUSE | CSTATE",
    )
    assert d.kind == "bitmask"


def test_vm_types_is_a_bitmap_of_values() -> None:
    d = decode(VM_TYPES, 1)
    assert d.names == ("KVM_X86_DEFAULT_VM",)
    assert d.text == "DEFAULT_VM"
    sev = decode(VM_TYPES, 0b11101)  # default, SEV, SEV-ES, SNP
    assert sev.names == (
        "KVM_X86_DEFAULT_VM",
        "KVM_X86_SEV_VM",
        "KVM_X86_SEV_ES_VM",
        "KVM_X86_SNP_VM",
    )


def test_exit_hypercall() -> None:
    d = decode(EXIT_HYPERCALL, 0x1000)
    assert d.names == ("KVM_HC_MAP_GPA_RANGE",)
    assert d.remainder == 0
    assert decoded_json(d) == ["KVM_HC_MAP_GPA_RANGE"]


def test_adjust_clock() -> None:
    d = decode(ADJUST_CLOCK, 14)
    assert d.names == ("KVM_CLOCK_TSC_STABLE", "KVM_CLOCK_REALTIME", "KVM_CLOCK_HOST_TSC")
    legacy = decode(ADJUST_CLOCK, 1)  # old kernels answered 1, before the flags existed
    assert legacy.names == ()
    assert legacy.remainder == 1


def test_set_guest_debug2() -> None:
    d = decode(SET_GUEST_DEBUG2, 0x1F0003)
    assert len(d.names) == 7
    assert d.names[0] == "KVM_GUESTDBG_ENABLE"
    assert d.names[-1] == "KVM_GUESTDBG_BLOCKIRQ"
    assert d.remainder == 0


def test_sync_regs_never_names_the_valid_mask() -> None:
    d = decode(SYNC_REGS, 7)
    assert d.names == ("KVM_SYNC_X86_REGS", "KVM_SYNC_X86_SREGS", "KVM_SYNC_X86_EVENTS")
    assert "KVM_SYNC_X86_VALID_FIELDS" not in d.names


def test_xsave2_is_a_size() -> None:
    d = decode(XSAVE2, 4096)
    assert d.text == "4096 bytes"
    assert d.names == ()
    assert d.remainder == 0
    assert decoded_json(d) == ["4096 bytes"]
    assert cap_info(XSAVE2).kind == "size"
    assert cap_info(XSAVE2).unit == "bytes"


@pytest.mark.parametrize(
    ("number", "value", "text", "kind"),
    [
        (9, 2, "2 vCPUs (recommended)", "count"),
        (66, 1024, "1024 vCPUs", "count"),
        (10, 32764, "32764 memslots", "count"),
        (25, 4096, "4096 routes", "count"),
        (31, 32, "32 banks", "count"),
        (192, 0x100000, "1048576 bytes", "size"),
        (15, 2, "2 (page offset)", "scalar"),
        (237, 1, "1 ns", "scalar"),
    ],
)
def test_numeric_caps(number: int, value: int, text: str, kind: str) -> None:
    d = decode(number, value)
    assert d.text == text
    assert cap_info(number).kind == kind
    assert decoded_json(d) == [text]


def test_user_space_msr_is_a_boolean() -> None:
    info = cap_info(X86_USER_SPACE_MSR)
    assert info.kind == "boolean"
    d = decode(X86_USER_SPACE_MSR, 1)
    assert d.text == "yes"
    assert d.names == ()
    assert decoded_json(d) == []


# -- edge cases ----------------------------------------------------------------------------------


def test_unknown_bits_are_kept() -> None:
    d = decode(X86_DISABLE_EXITS, 14 | 0x40)
    assert d.remainder == 0x40
    assert d.text == "HLT | PAUSE | CSTATE | +0x40 unknown"
    assert decoded_json(d)[-1] == "0x40"
    only_unknown = decode(X86_DISABLE_EXITS, 0x40)
    assert only_unknown.names == ()
    assert only_unknown.text == "+0x40 unknown"
    assert decoded_json(only_unknown) == ["0x40"]
    huge = decode(DISABLE_QUIRKS2, 1 << 70 | 1)
    assert huge.remainder == 1 << 70
    assert huge.names == ("KVM_X86_QUIRK_LINT0_REENABLED",)


def test_unknown_values_in_a_values_bitmap_are_kept() -> None:
    d = decode(VM_TYPES, 1 | 1 << 9)
    assert d.names == ("KVM_X86_DEFAULT_VM",)
    assert d.remainder == 0x200


@pytest.mark.parametrize(
    ("number", "text"),
    [(X86_DISABLE_EXITS, "0"), (VM_TYPES, "0"), (1, "no"), (XSAVE2, "0"), (300, "0")],
)
def test_zero(number: int, text: str) -> None:
    d = decode(number, 0)
    assert d.names == ()
    assert d.remainder == 0
    assert d.text == text
    assert decoded_json(d) == []


def test_boolean_answers_above_one_keep_the_number() -> None:
    d = decode(X86_USER_SPACE_MSR, 3)
    assert "3" in d.text
    assert d.value == 3
    assert decode(1, 1).text == "yes"


@pytest.mark.parametrize("number", [X2APIC_API, XSAVE2, 1, 300])
def test_negative_values_do_not_crash(number: int) -> None:
    d = decode(number, -22)
    assert d.value == -22
    assert d.text == "-22"
    assert d.names == ()
    assert decoded_json(d) == []


def test_decoded_json_for_hand_built_values() -> None:
    assert decoded_json(DecodedValue(4096, (), 0, "4096 bytes")) == ["4096 bytes"]
    assert decoded_json(DecodedValue(1, (), 0, "yes")) == []
    assert decoded_json(DecodedValue(6, ("A", "B"), 0x40, "A | B | +0x40 unknown")) == [
        "A",
        "B",
        "0x40",
    ]


def test_pure_module_imports_no_ui_libraries() -> None:
    code = (
        "import sys, kvmprobe.analysis.caps; "
        "bad = sorted(m for m in ('rich', 'click', 'ioctl_opt', 'fcntl') if m in sys.modules); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- property ------------------------------------------------------------------------------------


@given(
    number=st.integers(min_value=0, max_value=PROBE_LIMIT - 1),
    value=st.one_of(
        st.integers(min_value=0, max_value=2**64 - 1),
        st.integers(min_value=0, max_value=2**16),
    ),
)
def test_decoding_loses_nothing(number: int, value: int) -> None:
    info = cap_info(number)
    d = decode(number, value)
    assert d.value == value
    assert d.text
    out = decoded_json(d)
    assert all(isinstance(item, str) for item in out)
    if info.kind in {"bitmask", "values"}:
        assert info.group is not None
        positions = dict(GROUPS[info.group])
        rebuilt = 0
        for name in d.names:
            rebuilt |= 1 << positions[name]
        assert rebuilt & d.remainder == 0
        assert rebuilt | d.remainder == value
        assert [positions[n] for n in d.names] == sorted(positions[n] for n in d.names)
        if d.remainder:
            assert int(out[-1], 16) == d.remainder
    else:
        assert d.names == ()
        assert d.remainder == 0
