"""kvmprobe export qemu: a -cpu argument QEMU accepts with enforce."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from support.comments import unfolded_qemu
from test_export_cpuid2 import refused_arch_caps

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.export import QEMU_NAMES_FROM, QemuCpu, qemu_host, qemu_model
from kvmprobe.analysis.guest_cpuid import GuestCpu, guest_cpu_from_analysis
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import Snapshot, load
from kvmprobe.tables import qemu_models_data as qm
from kvmprobe.vocab import Irqchip

FIX = str(FIXTURES / "amd-epyc-pvm-6.18.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def fixture() -> Snapshot:
    return load(FIX)[0]


def test_names_come_from_the_source_the_table_cites() -> None:
    from kvmprobe.tables import cpuid_data

    assert QEMU_NAMES_FROM in Path(cpuid_data.__file__).read_text()


def test_host_base_removes_what_the_guest_must_not_have() -> None:
    g = guest_cpu_from_analysis(analyse(refused_arch_caps(fixture())))
    q = qemu_host(g)
    assert q.base == "host" and q.value.startswith("host,") and q.value.endswith(",enforce")
    assert "arch-capabilities" in q.minus
    # erms/fsrm are effective (added by a quirk) but KVM does not offer them
    assert {"erms", "fsrm"} <= set(q.not_addable)
    offered = cp.CpuidView(g.offered)
    for name in q.minus:
        f = cp.lookup(name)
        assert f is not None and offered.has_loc(f.loc) and not g.has(f.loc)
    # nothing effective is removed, nothing KVM offers and the guest lacks is kept silently
    for f in cp.features():
        if offered.has_loc(f.loc) and not g.has(f.loc):
            assert f.qemu_name in q.minus or f"-{f.name}" in q.unnamed


def test_userspace_irqchip_removes_the_lapic_features() -> None:
    g = guest_cpu_from_analysis(analyse(fixture(), Options(irqchip=Irqchip.USERSPACE)))
    q = qemu_host(g)
    assert {"x2apic", "tsc-deadline"} <= set(q.minus)
    kernel = qemu_host(guest_cpu_from_analysis(analyse(fixture())))
    assert "x2apic" not in kernel.minus


def test_cli_text() -> None:
    r = run("export", "qemu", "--from", FIX, "--qemu-base", "host")
    assert r.exit_code == 0, r.stderr
    folded_lines = r.stdout.splitlines()
    assert all(line.startswith("#") for line in folded_lines[:-1])
    assert all(len(line) <= 100 or " " not in line[4:] for line in folded_lines[:-1])
    lines = unfolded_qemu(r.stdout).splitlines()
    assert lines[-1].startswith("-cpu host") and lines[-1].endswith(",enforce")
    assert all(line.startswith("# ") for line in lines[:-1])
    assert any(QEMU_NAMES_FROM in line for line in lines)
    assert any(qm.QEMU_VERSION in line for line in lines[:-1]), "the assumed QEMU is named"
    assert any("erms" in line for line in lines[:-1]), "not-addable features are named"
    r = run("export", "qemu", "--from", FIX, "--cpuid-r")
    assert r.exit_code == 2 and "--cpuid-r applies to the cpuid2 format only" in r.stderr


def _qemu_or_skip() -> str:
    from support.qemu_peer import QemuUnavailable, _check_kvm_device, find_qemu

    qemu = find_qemu()
    why = None if qemu else "no qemu-system-x86_64"
    if qemu:
        try:
            _check_kvm_device()
        except QemuUnavailable as e:
            why = str(e)
    if why or qemu is None:
        if os.environ.get("KVMPROBE_REQUIRE_QEMU") == "1":
            pytest.fail(f"KVMPROBE_REQUIRE_QEMU=1 but QEMU cannot be used: {why}")
        pytest.skip(f"the QEMU consumer test needs QEMU with KVM: {why}")
    return qemu


def start_qemu(
    qemu: str, cpu: str, irqchip: str = "kernel", qmp_more: str = ""
) -> subprocess.CompletedProcess[str]:
    from support.qemu_peer import IRQCHIP_MODES

    qmp = '{"execute":"qmp_capabilities"}\n' + qmp_more + '{"execute":"quit"}\n'
    accel = f"kvm,kernel-irqchip={IRQCHIP_MODES[irqchip]}"
    argv = [qemu, "-accel", accel, "-machine", "pc", "-S", "-nodefaults", "-display", "none"]
    return subprocess.run(
        [*argv, "-qmp", "stdio", "-cpu", cpu],
        input=qmp, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def migrate_once(qemu: str, cpu: str) -> str:
    """Start QEMU with ``cpu`` (paused) and migrate it to a pipe that discards the stream:
    "completed", or why not (QEMU's error, or the last migration status). Each QMP command
    waits for its answer, and quit waits for the migration to end (quitting during one can
    make QEMU 7.2 abort)."""
    argv = [qemu, "-accel", "kvm", "-machine", "pc", "-S", "-nodefaults", "-display", "none"]
    p = subprocess.Popen(
        [*argv, "-qmp", "stdio", "-cpu", cpu],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdin is not None and p.stdout is not None

    def ask(command: dict[str, object]) -> dict[str, object]:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(json.dumps(command) + "\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                raise AssertionError(f"QEMU ended: {p.stderr.read() if p.stderr else ''}")
            answer = json.loads(line)
            if "return" in answer or "error" in answer:
                return dict(answer)

    try:
        p.stdout.readline()  # the greeting
        ask({"execute": "qmp_capabilities"})
        started = ask({"execute": "migrate", "arguments": {"uri": "exec:cat > /dev/null"}})
        if "error" in started:
            return str(started["error"])
        status = "active"
        for _ in range(300):
            reply = ask({"execute": "query-migrate"})
            status = str(dict(reply.get("return") or {}).get("status", "?"))
            if status not in ("setup", "active", "device", "pre-switchover"):
                break
            time.sleep(0.05)
        return status
    finally:
        if p.poll() is None:
            ask({"execute": "quit"})
        try:
            p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def test_qemu_starts_with_the_live_export() -> None:
    qemu = _qemu_or_skip()
    r = run("export", "qemu", "--qemu-base", "host")
    assert r.exit_code == 0, r.stderr
    cpu = r.stdout.splitlines()[-1].removeprefix("-cpu ")
    assert cpu.endswith(",enforce")
    p = start_qemu(qemu, cpu)
    assert p.returncode == 0, f"-cpu {cpu}: {p.stderr[-2000:]}"
    assert '"host-qmp-quit"' in p.stdout


@pytest.mark.parametrize("irqchip", ["kernel", "split", "userspace"])
def test_qemu_starts_with_the_live_model_export(irqchip: str) -> None:
    """The named-model export (the default) starts QEMU on this host with enforce, in the
    irqchip mode it was made for."""
    qemu = _qemu_or_skip()
    _installed_is_the_table_version(qemu)
    r = run("export", "qemu", "--irqchip", irqchip)
    assert r.exit_code == 0, r.stderr
    cpu = r.stdout.splitlines()[-1].removeprefix("-cpu ")
    assert cpu.split(",")[0] in qm.MODELS and cpu.endswith(",enforce")
    p = start_qemu(qemu, cpu, irqchip)
    assert p.returncode == 0, f"-cpu {cpu}: {p.stderr[-2000:]}"
    assert '"host-qmp-quit"' in p.stdout


def test_qemu_starts_with_the_baseline_of_live_and_fixtures(tmp_path: Path) -> None:
    """The baseline of this host and both recorded hosts starts QEMU here with enforce."""
    qemu = _qemu_or_skip()
    _installed_is_the_table_version(qemu)
    live = tmp_path / "live.json"
    assert run("record", "-o", str(live)).exit_code == 0
    files = [str(live), FIX, str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")]
    r = run("export", "qemu", *(a for f in files for a in ("--from", f)))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("# kvmprobe export qemu: the baseline of 3 snapshots")
    cpu = r.stdout.splitlines()[-1].removeprefix("-cpu ")
    p = start_qemu(qemu, cpu)
    assert p.returncode == 0, f"-cpu {cpu}: {p.stderr[-2000:]}"
    # a baseline is for moving guests: QEMU must migrate it (invtsc would block that)
    status = migrate_once(qemu, cpu)
    assert status == "completed", f"-cpu {cpu}: migration {status}"
    assert "+invtsc" not in cpu
    # the baseline never adds what this host's own guest lacks
    live_g = guest_cpu_from_analysis(analyse(load(str(live))[0]))
    for token in cpu.split(",")[1:-1]:
        f = cp.lookup(token[1:])
        assert f is not None, token
        if token.startswith("+"):
            assert live_g.has(f.loc), token


@pytest.mark.parametrize("irqchip", ["kernel", "split", "userspace"])
@pytest.mark.parametrize("base", ["model", "host"])
def test_qemu_starts_with_the_opt_in_export(irqchip: str, base: str) -> None:
    """--with-opt-in asks for what QEMU itself counts as supported (kvm-hint-dedicated,
    kvm-msi-ext-dest-id with split) rather than calling it refused, and QEMU starts."""
    qemu = _qemu_or_skip()
    _installed_is_the_table_version(qemu)
    r = run("export", "qemu", "--with-opt-in", "--qemu-base", base, "--irqchip", irqchip)
    assert r.exit_code == 0, r.stderr
    cpu = r.stdout.splitlines()[-1].removeprefix("-cpu ")
    g = guest_cpu_from_analysis(
        analyse(probe(), Options(irqchip=Irqchip(irqchip))), with_opt_in=True
    )
    if g.has(cp.lookup("kvm_hints_realtime").loc):  # type: ignore[union-attr]
        assert "+kvm-hint-dedicated" in cpu.split(",")
    refused = next((ln for ln in r.stdout.splitlines() if "enforce would refuse" in ln), "")
    assert "kvm-hint-dedicated" not in refused
    p = start_qemu(qemu, cpu, irqchip)
    assert p.returncode == 0, f"-cpu {cpu}: {p.stderr[-2000:]}"


def _installed_is_the_table_version(qemu: str) -> None:
    from support.qemu_peer import qemu_version

    want = tuple(int(x) for x in re.findall(r"version (\d+)\.(\d+)\.(\d+)", qm.QEMU_VERSION)[0])
    if qemu_version(qemu) != want:
        pytest.skip(f"the model table is {qm.QEMU_VERSION}; installed QEMU differs")


def test_the_live_export_is_needed() -> None:
    """Where a vCPU refuses KVM's ARCH_CAPABILITIES, plain -cpu host does not start: the
    removal in the export is what makes the difference (skipped where host starts anyway)."""
    qemu = _qemu_or_skip()
    from kvmprobe.kvm.probe import probe

    g = guest_cpu_from_analysis(analyse(probe("/dev/kvm")))
    if not g.refused_msrs:
        pytest.skip("a vCPU here accepts every MSR value KVM advertises")
    assert "arch-capabilities" in qemu_host(g).minus
    assert start_qemu(qemu, "host,enforce").returncode != 0


def test_live_guest_keeps_its_vendor() -> None:
    _qemu_or_skip()
    from kvmprobe.kvm.probe import probe

    snap = probe("/dev/kvm")
    g = guest_cpu_from_analysis(analyse(dataclasses.replace(snap)))
    assert g.vendor == cp.vendor_string(cp.CpuidView(snap.supported_cpuid), 0)


# -- the named model (the default base) ---------------------------------------------------------


def _guest(model: object) -> GuestCpu:
    from support import hosts

    return guest_cpu_from_analysis(analyse(hosts.host_snapshot(model)))  # type: ignore[arg-type]


def _locs(name: str) -> set[cp.Loc]:
    return {f.loc for f in cp.features() if f.qemu_name == name}


def _model_fits(g: GuestCpu, name: str) -> tuple[list[str], list[str]]:
    """(additions, removals) a model needs for this guest, computed from the table directly."""
    m = qm.MODELS[name]
    add, remove = m.modes.get(g.irqchip, (frozenset(), frozenset()))
    feats = (m.features | add) - remove
    offered = cp.CpuidView(g.offered)
    minus = [n for n in feats if _locs(n) and not _locs(n) & g.runtime
             and not all(g.has(x) for x in _locs(n))]  # fmt: skip
    names = {f.qemu_name for f in cp.features() if f.qemu_name in qm.FEATURE_NAMES}
    plus = [n for n in names if n and n not in feats and not _locs(n) & g.runtime
            and all(g.has(x) and offered.has_loc(x) for x in _locs(n))]  # fmt: skip
    return plus, minus


@pytest.mark.parametrize(
    "host, model",
    [("EPYC_MILAN", "EPYC-Milan-v1"), ("SKYLAKE_SERVER", "Skylake-Server-v1"),
     ("HASWELL", "Haswell-v2")],
)  # fmt: skip
def test_model_is_the_closest_subset_of_the_vendor(host: str, model: str) -> None:
    from support import hosts

    g = _guest(getattr(hosts, host))
    q = qemu_model(g)
    assert q.base == model and q.value.startswith(model + ",") and q.value.endswith(",enforce")
    assert q.qemu_version == qm.QEMU_VERSION
    # nothing the model has is missing from the guest except what QEMU's KVM defaults add
    # (the synthetic hosts have no KVM paravirtual leaf) and what the guest must not have
    best_plus, best_minus = _model_fits(g, model)
    assert sorted(q.plus) == sorted(best_plus) and sorted(q.minus) == sorted(best_minus)
    # no other versioned model of the vendor with no more removals needs fewer additions
    for name, m in qm.MODELS.items():
        if m.vendor != g.vendor or not re.search(r"-v\d+$", name):
            continue
        plus, minus = _model_fits(g, name)
        assert (len(minus), len(plus)) >= (len(q.minus), len(q.plus)), name


def test_model_additions_are_offered_and_known_to_the_version() -> None:
    for g in (guest_cpu_from_analysis(analyse(fixture())), _guest_granite()):
        q = qemu_model(g)
        offered = cp.CpuidView(g.offered)
        base = qm.MODELS[q.base]
        assert base.vendor == g.vendor
        for n in q.plus:
            assert n in qm.FEATURE_NAMES and n not in base.features
            assert all(g.has(x) and offered.has_loc(x) for x in _locs(n)), n
        for n in q.minus:
            assert n in base.features and not all(g.has(x) for x in _locs(n)), n
        for token in q.not_in_version:
            assert token[1:] not in qm.FEATURE_NAMES and token[1:] not in q.value


def _guest_granite() -> GuestCpu:
    from support import hosts

    return _guest(hosts.GRANITE_RAPIDS)


def test_names_the_version_lacks_are_a_comment_not_a_property() -> None:
    """QEMU 7.2 has no kvm-asyncpf-vmexit: asking for it would stop QEMU."""
    g = guest_cpu_from_analysis(analyse(fixture()))
    assert g.has(cp.feature_loc("KVM_FEATURE_ASYNC_PF_VMEXIT"))
    q = qemu_model(g)
    assert "+kvm-asyncpf-vmexit" in q.not_in_version and "asyncpf-vmexit" not in q.value
    text = run("export", "qemu", "--from", FIX).stdout
    comment = next(x for x in unfolded_qemu(text).splitlines() if "no property for" in x)
    assert comment.startswith("# ") and "+kvm-asyncpf-vmexit" in comment


def test_no_subset_model_falls_back_to_fewest_removals() -> None:
    """The recorded hosts lack SSE3 (pni), which every AMD model of QEMU 7.2 has."""
    g = guest_cpu_from_analysis(analyse(fixture()))
    q = qemu_model(g)
    assert q.minus == ("pni",) and "fewest removals" in q.choice
    r = run("export", "qemu", "--from", FIX)
    out = unfolded_qemu(r.stdout)
    assert f"# base: {q.base}, " in out and q.qemu_version in out


def test_irqchip_mode_defaults_of_the_model_are_followed() -> None:
    """QEMU's KVM defaults turn x2apic off for a named model without an in-kernel LAPIC, and
    kvm-msi-ext-dest-id on with a split irqchip: the export starts from the model as that
    mode gives it."""

    def q(mode: Irqchip) -> QemuCpu:
        return qemu_model(guest_cpu_from_analysis(analyse(fixture(), Options(irqchip=mode))))

    user, split, kernel = q(Irqchip.USERSPACE), q(Irqchip.SPLIT), q(Irqchip.KERNEL)
    assert "x2apic" not in user.minus + user.plus
    # kvmprobe does not count the VMM's MSI extension promise as effective (KVM's table
    # lacks it here), so it is removed from the split-mode model, and only there
    assert not g_has(Irqchip.SPLIT, "KVM_FEATURE_MSI_EXT_DEST_ID")
    assert "kvm-msi-ext-dest-id" in split.minus
    assert "kvm-msi-ext-dest-id" not in kernel.minus + kernel.plus


def g_has(mode: Irqchip, macro: str) -> bool:
    g = guest_cpu_from_analysis(analyse(fixture(), Options(irqchip=mode)))
    return g.has(cp.feature_loc(macro))


def test_model_table_is_current_and_provenanced() -> None:
    gen = Path(__file__).resolve().parent.parent / "scripts" / "gen_qemu_models.py"
    p = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert qm.QEMU_VERSION.startswith("QEMU emulator version 7.2.")
    assert any("query-cpu-model-expansion" in c for c in qm.PROVENANCE)
    assert "EPYC-Milan-v1" in qm.MODELS and qm.MODELS["EPYC-Milan"].alias_of == "EPYC-Milan-v1"
    assert qm.MODELS["Skylake-Server-v1"].vendor == "GenuineIntel"
    assert "kvm-asyncpf-vmexit" not in qm.FEATURE_NAMES and "kvm-asyncpf-int" in qm.FEATURE_NAMES


def test_model_table_matches_the_installed_qemu(tmp_path: Path) -> None:
    """Re-asking the installed QEMU gives the committed facts (where it is the same version)."""
    qemu = _qemu_or_skip()
    _installed_is_the_table_version(qemu)
    gen = Path(__file__).resolve().parent.parent / "scripts" / "gen_qemu_models.py"
    data, out = tmp_path / "m.json", tmp_path / "m.py"
    p = subprocess.run(
        [sys.executable, str(gen), "--record", qemu, "--input", str(data), "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    committed = json.loads((gen.parent / "data" / "qemu_models.json").read_text())
    fresh = json.loads(data.read_text())
    assert fresh["models"] == committed["models"]
    assert fresh["feature_names"] == committed["feature_names"]


# -- bad input ------------------------------------------------------------------------------


def test_baseline_of_two_vendors_is_refused(tmp_path: Path) -> None:
    from support import hosts

    intel = tmp_path / "intel.json"
    intel.write_text(json.dumps(hosts.host_snapshot(hosts.HASWELL).to_json()))
    r = run("export", "qemu", "--from", FIX, "--from", str(intel))
    assert r.exit_code == 5, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(
        "kvmprobe: error: the snapshots have no common CPUID vendor"
    )
    assert lines[1].startswith("hint: ")


def test_baseline_usage_errors() -> None:
    r = run("export", "qemu", "--from", FIX, "--from", FIX, "--qemu-base", "host")
    assert r.exit_code == 2 and r.stderr.startswith("kvmprobe: error: --qemu-base host cannot")
    assert r.stderr.splitlines()[1].startswith("hint: ")
    r = run("export", "firecracker", "--from", FIX, "--json")
    assert r.exit_code == 2 and r.stderr.startswith("kvmprobe: error: --json applies to")


def test_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    out = tmp_path / "cpu.txt"
    out.write_text("mine\n")
    r = run("export", "qemu", "--from", FIX, "-o", str(out))
    assert r.exit_code == 1 and out.read_text() == "mine\n"
    assert r.stderr.splitlines() == [
        f"kvmprobe: error: {out} already exists",
        "hint: choose another name, or add --force to overwrite it",
    ]
    assert run("export", "qemu", "--from", FIX, "-o", str(out), "--force").exit_code == 0
    assert out.read_text().splitlines()[-1].startswith("-cpu ")


def test_unknown_format_is_one_line_and_a_hint() -> None:
    """Through the console entry (as a user runs it), not click's test runner."""
    r = subprocess.run(
        [sys.executable, "-m", "kvmprobe", "export", "vmware", "--from", FIX],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("kvmprobe: error: invalid value for 'FORMAT'")
    assert lines[1] == "hint: see 'kvmprobe export --help'"
