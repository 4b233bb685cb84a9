"""The generated capability tables, our descriptions, and the generator that writes the tables.

These tests read only the repository (and /usr/include/linux/kvm.h when installed): the
generator's ``--check`` runs, as in CI, on the pinned copy of the KVM ABI facts in
scripts/data/kvm-abi/, so it never skips.
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kvmprobe.knowledge.caps import DESCRIPTIONS, SCALAR_KINDS, UNITS
from kvmprobe.tables import caps_data
from kvmprobe.tables.caps_data import (
    CAP_ENABLE_ARG_GROUP,
    CAP_VALUE_KIND,
    CAPS,
    GROUP_KIND,
    GROUP_MASKS,
    GROUP_PREFIX,
    GROUPS,
)

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_cap_tables.py"
DATA_FILE = REPO / "kvmprobe" / "tables" / "caps_data.py"
ABI_DIR = REPO / "scripts" / "data" / "kvm-abi"  # the pinned copy of the verified facts
INSTALLED_KVM_H = Path("/usr/include/linux/kvm.h")

ARCHES = {"generic", "x86", "s390", "powerpc", "arm64", "riscv", "mips", "loongarch"}
NAMES = {name for name, _arch in CAPS.values()}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cap_tables", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


# -- the cap table ---------------------------------------------------------------------------


def test_244_caps_numbered_0_to_249() -> None:
    assert len(CAPS) == 244
    assert min(CAPS) == 0
    assert max(CAPS) == 249
    assert list(CAPS) == sorted(CAPS)


def test_no_duplicate_names_or_numbers() -> None:
    names = [name for name, _arch in CAPS.values()]
    assert len(set(names)) == len(names)
    assert len(set(CAPS)) == len(CAPS)
    assert all(name.startswith("KVM_CAP_") for name in names)


def test_unused_numbers_are_the_known_gaps() -> None:
    assert set(range(250)) - set(CAPS) == {5, 17, 19, 20, 27, 28}


def test_arches_are_valid() -> None:
    assert {arch for _name, arch in CAPS.values()} <= ARCHES


@pytest.mark.parametrize(
    ("name", "number", "arch"),
    [
        ("KVM_CAP_IRQCHIP", 0, "generic"),
        ("KVM_CAP_TSC_DEADLINE_TIMER", 72, "generic"),
        ("KVM_CAP_SPLIT_IRQCHIP", 121, "generic"),
        ("KVM_CAP_X2APIC_API", 129, "x86"),
        ("KVM_CAP_X86_DISABLE_EXITS", 143, "x86"),
        ("KVM_CAP_X86_USER_SPACE_MSR", 188, "x86"),
        ("KVM_CAP_XSAVE2", 208, "generic"),
        ("KVM_CAP_DISABLE_QUIRKS2", 213, "generic"),
        ("KVM_CAP_VM_TYPES", 235, "generic"),
        ("KVM_CAP_GUEST_MEMFD_FLAGS", 244, "generic"),
        ("KVM_CAP_ARM_SEA_TO_USER", 245, "arm64"),
        ("KVM_CAP_S390_HPAGE_2G", 249, "s390"),
    ],
)
def test_pinned_facts(name: str, number: int, arch: str) -> None:
    assert CAPS[number] == (name, arch)


# -- value kinds and groups --------------------------------------------------------------------


def test_every_value_kind_cap_and_group_exists() -> None:
    for cap, (kind, group) in CAP_VALUE_KIND.items():
        assert cap in NAMES, cap
        assert kind in {"bitmask", "values", "boolean", "scalar"}, cap
        if kind in {"bitmask", "values"}:
            assert group in GROUPS, cap
            assert GROUP_KIND[group] == ("values" if kind == "values" else "bits"), cap
        else:
            assert group is None, cap
    for cap, group in CAP_ENABLE_ARG_GROUP.items():
        assert cap in NAMES
        assert group in GROUPS


@pytest.mark.parametrize(
    ("cap", "kind", "group"),
    [
        ("KVM_CAP_X2APIC_API", "bitmask", "KVM_X2APIC"),
        ("KVM_CAP_X86_DISABLE_EXITS", "bitmask", "KVM_X86_DISABLE_EXITS"),
        ("KVM_CAP_DISABLE_QUIRKS2", "bitmask", "KVM_X86_QUIRK"),
        ("KVM_CAP_VM_TYPES", "values", "KVM_X86_VM_TYPE"),
        ("KVM_CAP_EXIT_HYPERCALL", "values", "KVM_HC"),
        ("KVM_CAP_SYNC_REGS", "bitmask", "KVM_SYNC_X86"),
        ("KVM_CAP_X86_USER_SPACE_MSR", "boolean", None),
        ("KVM_CAP_XSAVE2", "scalar", None),
    ],
)
def test_pinned_value_kinds(cap: str, kind: str, group: str | None) -> None:
    assert CAP_VALUE_KIND[cap] == (kind, group)


def test_groups_are_well_formed() -> None:
    assert set(GROUPS) == set(GROUP_KIND) == set(GROUP_PREFIX)
    assert set(GROUP_MASKS) <= set(GROUPS)
    for group, members in GROUPS.items():
        names = [name for name, _n in members]
        positions = [n for _name, n in members]
        assert members, group
        assert len(set(names)) == len(names), group
        assert len(set(positions)) == len(positions), group  # no aliases today
        assert positions == sorted(positions), group
        assert all(0 <= n < 64 for n in positions), group
        assert all(name.startswith(GROUP_PREFIX[group]) for name in names), group
        assert GROUP_KIND[group] in {"bits", "values"}, group


def test_masks_are_not_flags() -> None:
    flags = {name for members in GROUPS.values() for name, _n in members}
    for masks in GROUP_MASKS.values():
        for name, value in masks:
            assert name not in flags
            assert value & (value - 1), f"{name} is a single bit"
    assert ("KVM_SYNC_X86_VALID_FIELDS", 7) in GROUP_MASKS["KVM_SYNC_X86"]
    assert all("VALID" not in name for name in flags)


def test_x2apic_bits_2_and_3_have_their_upstream_names() -> None:
    assert dict(GROUPS["KVM_X2APIC"]) == {
        "KVM_X2APIC_API_USE_32BIT_IDS": 0,
        "KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK": 1,
        "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST": 2,
        "KVM_X2APIC_DISABLE_SUPPRESS_EOI_BROADCAST": 3,
    }


def test_vm_types_and_hypercalls_are_values() -> None:
    assert GROUP_KIND["KVM_X86_VM_TYPE"] == "values"
    assert GROUP_KIND["KVM_HC"] == "values"
    assert dict(GROUPS["KVM_X86_VM_TYPE"])["KVM_X86_DEFAULT_VM"] == 0
    assert dict(GROUPS["KVM_HC"])["KVM_HC_MAP_GPA_RANGE"] == 12


# -- our descriptions and units ----------------------------------------------------------------


def test_every_generic_and_x86_cap_has_a_description() -> None:
    missing = [
        name
        for name, arch in CAPS.values()
        if arch in {"generic", "x86"} and not DESCRIPTIONS.get(name, "").strip()
    ]
    assert missing == []


def test_descriptions_are_short_single_lines_for_real_caps() -> None:
    assert set(DESCRIPTIONS) <= NAMES
    for name, text in DESCRIPTIONS.items():
        assert "\n" not in text, name
        assert text == text.strip(), name
        assert not text.endswith("."), name
        assert 10 <= len(text) <= 130, name


def test_units_and_scalar_kinds() -> None:
    assert set(UNITS) <= NAMES
    assert set(SCALAR_KINDS) == set(UNITS)
    for name, kind in SCALAR_KINDS.items():
        assert kind in {"count", "size", "scalar"}, name
        assert (kind == "size") == (UNITS[name] == "bytes"), name
    scalar_caps = {cap for cap, (kind, _g) in CAP_VALUE_KIND.items() if kind == "scalar"}
    assert scalar_caps <= set(UNITS)
    assert UNITS["KVM_CAP_XSAVE2"] == "bytes"
    assert UNITS["KVM_CAP_NR_VCPUS"] == "vCPUs (recommended)"
    assert UNITS["KVM_CAP_NR_MEMSLOTS"] == "memslots"
    assert UNITS["KVM_CAP_COALESCED_MMIO"] == "page offset"


# -- provenance and the generator ----------------------------------------------------------------


def test_generated_file_has_its_provenance_header() -> None:
    text = DATA_FILE.read_text(encoding="utf-8")
    assert text.startswith("# Generated by scripts/gen_cap_tables.py -- do not edit by hand.\n")
    head = text.split('"""', 1)[0]
    assert "Linux v7.2" in head
    assert "sha256" in head
    for repo, path, commit in caps_data.SOURCES:
        assert f"{repo} {path} @ {commit}" in head
    assert ("torvalds/linux", "tools/include/uapi/linux/kvm.h") in {
        (repo, path) for repo, path, _commit in caps_data.SOURCES
    }
    assert caps_data.ABI_VERSION == "v7.2"


def test_generated_file_is_plain_data() -> None:
    # the one import: Final, for type checkers only
    header = (
        "from __future__ import annotations\n\nTYPE_CHECKING = False\n"
        "if TYPE_CHECKING:\n    from typing import Final\n"
    )
    text = DATA_FILE.read_text(encoding="utf-8")
    assert text.count(header) == 1
    text = text.replace(header, "", 1)
    assert not re.search(r"^\s*(def|class|import|from)\s", text, re.MULTILINE)
    assert all(len(line) <= 100 for line in text.splitlines())


def test_generator_check_passes_against_the_kvm_abi_facts() -> None:
    """What CI runs: the default inputs are the pinned facts in the repository."""
    assert load_generator_defaults() == (ABI_DIR, DATA_FILE)
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stderr


def load_generator_defaults() -> tuple[Path, Path]:
    gen = _load_generator()
    return gen.DEFAULT_ABI_DIR, gen.DEFAULT_OUTPUT


def _fake_facts(directory: Path) -> Path:
    """A tiny, self-consistent kvm-abi directory (three caps, one group)."""
    source = (
        "test facts from torvalds/linux tools/include/uapi/linux/kvm.h @ commit "
        "0123456789abcdef0123456789abcdef01234567"
    )
    caps = {
        "source": source,
        "kernel_version": "v7.2",
        "highest_cap": 129,
        "count": 3,
        "caps": {"KVM_CAP_IRQCHIP": 0, "KVM_CAP_S390_PSW": 42, "KVM_CAP_X2APIC_API": 129},
        "arch": {"KVM_CAP_S390_PSW": "s390", "KVM_CAP_X2APIC_API": "x86"},
        "unused_numbers": [5],
    }
    x2apic = {
        "KVM_X2APIC_API_USE_32BIT_IDS": 1,
        "KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK": 2,
    }
    consts = {
        "source": source,
        "groups": {
            "KVM_X2APIC": {
                "_header": "arch/x86/include/uapi/asm/kvm.h",
                "KVM_X2APIC_API_USE_32BIT_IDS": {"bit": 0, "value": 1},
                "KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK": {"bit": 1, "value": 2},
                "KVM_X2APIC_VALID_MASK": {"value": 3},
            }
        },
        "constants_flat": {**x2apic, "KVM_X2APIC_VALID_MASK": 3},
        "cap_returns": {
            "KVM_CAP_X2APIC_API": {"kind": "bitmask", "bits": "KVM_X2APIC", "cap": 129}
        },
        "cap_to_bits": {"KVM_CAP_X2APIC_API": list(x2apic)},
    }
    (directory / "kvm_caps.json").write_text(json.dumps(caps), encoding="utf-8")
    (directory / "kvm_x86_consts.json").write_text(json.dumps(consts), encoding="utf-8")
    return directory


def test_generator_is_deterministic_and_checks(tmp_path: Path) -> None:
    facts = _fake_facts(tmp_path)
    out = tmp_path / "out.py"
    run = [sys.executable, str(GENERATOR), "--abi-dir", str(facts), "-o", str(out)]
    assert subprocess.run(run, capture_output=True, check=False).returncode == 0
    first = out.read_bytes()
    assert subprocess.run(run, capture_output=True, check=False).returncode == 0
    assert out.read_bytes() == first
    assert subprocess.run([*run, "--check"], capture_output=True, check=False).returncode == 0
    out.write_bytes(first + b"# edited\n")
    stale = subprocess.run([*run, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert "stale" in stale.stderr

    namespace: dict[str, object] = {}
    exec(compile(first, str(out), "exec"), namespace)
    assert namespace["CAPS"] == {
        0: ("KVM_CAP_IRQCHIP", "generic"),
        42: ("KVM_CAP_S390_PSW", "s390"),
        129: ("KVM_CAP_X2APIC_API", "x86"),
    }
    assert namespace["GROUPS"] == {
        "KVM_X2APIC": (
            ("KVM_X2APIC_API_USE_32BIT_IDS", 0),
            ("KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK", 1),
        )
    }
    assert namespace["GROUP_MASKS"] == {"KVM_X2APIC": (("KVM_X2APIC_VALID_MASK", 3),)}


def test_generated_output_is_ruff_clean(tmp_path: Path) -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    out = tmp_path / "caps_data.py"
    gen = _load_generator()
    out.write_text(gen.render(gen.build(_fake_facts(tmp_path))), encoding="utf-8")
    lint = ["check", "--isolated", "--select", "E,F,W,I,B,UP,SIM,RUF"]
    for args in (lint, ["format", "--check"]):
        result = subprocess.run(
            [ruff, *args, "--line-length", "100", str(out)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [ruff, "format", "--check", "--line-length", "100", str(DATA_FILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generator_rejects_a_kvm_h_that_disagrees(tmp_path: Path) -> None:
    facts = _fake_facts(tmp_path)
    out = tmp_path / "out.py"
    kvm_h = tmp_path / "kvm.h"
    base = [sys.executable, str(GENERATOR), "--abi-dir", str(facts), "-o", str(out)]

    kvm_h.write_text(
        "#define KVM_CAP_IRQCHIP 0\n#define KVM_CAP_S390_PSW 42\n#define KVM_CAP_X2APIC_API 129\n"
    )
    good = subprocess.run([*base, "--kvm-h", str(kvm_h)], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr

    kvm_h.write_text("#define KVM_CAP_IRQCHIP 0\n#define KVM_CAP_X2APIC_API 130\n")
    bad = subprocess.run([*base, "--kvm-h", str(kvm_h)], capture_output=True, text=True)
    assert bad.returncode != 0
    assert "KVM_CAP_X2APIC_API is 130 in kvm.h but 129" in bad.stderr

    kvm_h.write_text("#define KVM_CAP_IRQCHIP 0\n#define KVM_CAP_NEW_THING 7\n")
    extra = subprocess.run([*base, "--kvm-h", str(kvm_h)], capture_output=True, text=True)
    assert extra.returncode != 0
    assert "KVM_CAP_NEW_THING" in extra.stderr


def test_generator_rejects_inconsistent_facts(tmp_path: Path) -> None:
    facts = _fake_facts(tmp_path)
    data = json.loads((facts / "kvm_caps.json").read_text())
    data["caps"]["KVM_CAP_HLT"] = 0  # two names for number 0
    data["count"] = 4
    (facts / "kvm_caps.json").write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--abi-dir", str(facts), "-o", str(tmp_path / "o.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "share a number" in result.stderr
    assert not (tmp_path / "o.py").exists()


# -- the installed UAPI header ------------------------------------------------------------------


def test_installed_kvm_h_agrees_with_the_table() -> None:
    if not INSTALLED_KVM_H.is_file():
        pytest.skip(f"{INSTALLED_KVM_H} is not installed (linux-libc-dev / kernel-headers)")
    text = INSTALLED_KVM_H.read_text(encoding="utf-8", errors="replace")
    defined = {
        name: int(number)
        for name, number in re.findall(r"^\s*#\s*define\s+(KVM_CAP_\w+)\s+(\d+)\b", text, re.M)
    }
    if not defined:
        pytest.skip(f"{INSTALLED_KVM_H} defines no KVM_CAP_* numbers")
    ours = {name: number for number, (name, _arch) in CAPS.items()}
    wrong = {name: (n, ours.get(name)) for name, n in defined.items() if ours.get(name) != n}
    assert wrong == {}


# -- architectures the name map cannot see (scripts/data/cap_arch.tsv) -------------------------

ARCH_TSV = REPO / "scripts" / "data" / "cap_arch.tsv"
_REF = "example/linux Documentation/virt/kvm/api.rst @ 0123456789abcdef0123456789abcdef01234567"


def test_cap_arch_rows_are_in_the_table_with_their_sources() -> None:
    """Every row of cap_arch.tsv files its capability under one architecture, names an
    upstream file by repository, path and commit, and is what the committed table says."""
    text = DATA_FILE.read_text(encoding="utf-8")
    by_name = {name: arch for name, arch in CAPS.values()}
    rows = [
        line.split("\t")
        for line in ARCH_TSV.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert {cap for cap, _arch, _source in rows} >= {
        "KVM_CAP_SW_TLB", "KVM_CAP_PTP_KVM", "KVM_CAP_VM_GPA_BITS"
    }  # fmt: skip
    for cap, arch, source in rows:
        assert by_name[cap] == arch != "generic", cap
        ref = re.match(r"(\S+/\S+) (\S+) @ ([0-9a-f]{40}) ", source)
        assert ref is not None, source
        repo, path, commit = ref.groups()
        assert (repo, path, commit) in caps_data.SOURCES
        assert f"{cap} {arch}: {repo} {path} @" in " ".join(text.split())


def _gen_with_arch_rows(tmp_path: Path, rows: str) -> subprocess.CompletedProcess[str]:
    facts = _fake_facts(tmp_path)
    tsv = tmp_path / "cap_arch.tsv"
    tsv.write_text("# cap\tarch\tsource\n" + rows, encoding="utf-8")
    out = tmp_path / "out.py"
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--abi-dir", str(facts), "--arch-facts", str(tsv),
         "-o", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_generator_files_a_cap_under_its_cap_arch_row(tmp_path: Path) -> None:
    r = _gen_with_arch_rows(tmp_path, f"KVM_CAP_IRQCHIP\tarm64\t{_REF} section 1\n")
    assert r.returncode == 0, r.stderr
    namespace: dict[str, object] = {}
    exec(compile((tmp_path / "out.py").read_text(), "out.py", "exec"), namespace)
    assert namespace["CAPS"] == {
        0: ("KVM_CAP_IRQCHIP", "arm64"),
        42: ("KVM_CAP_S390_PSW", "s390"),
        129: ("KVM_CAP_X2APIC_API", "x86"),
    }
    sources = namespace["SOURCES"]
    assert isinstance(sources, tuple)
    assert ("example/linux", "Documentation/virt/kvm/api.rst", _REF[-40:]) in sources


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        (f"KVM_CAP_NOPE\tarm64\t{_REF}\n", "unknown cap KVM_CAP_NOPE"),
        (f"KVM_CAP_IRQCHIP\tvax\t{_REF}\n", "not one architecture"),
        (f"KVM_CAP_IRQCHIP\tgeneric\t{_REF}\n", "not one architecture"),
        (f"KVM_CAP_S390_PSW\ts390\t{_REF}\n", "placed already"),
        ("KVM_CAP_IRQCHIP\tarm64\tapi.rst says so\n", "names no"),
        ("KVM_CAP_IRQCHIP\tarm64\n", "three tab-separated columns"),
    ],
)
def test_generator_refuses_a_bad_cap_arch_row(tmp_path: Path, row: str, complaint: str) -> None:
    r = _gen_with_arch_rows(tmp_path, row)
    assert r.returncode == 2 and complaint in r.stderr, r.stderr
