"""Fleet integration (issue 14): the facts behind `kvmprobe fact`, `metrics` and `nfd`, and the
three outputs, on recorded and synthetic hosts. The real peers (ansible-core, promtool,
node_exporter) read these outputs in tests/test_fleet_peers.py."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, RECORDED_HOSTS
from support import hosts
from support.prom import one, samples

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import UNKNOWN, YES, answer_from_status, no
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.fleet_facts import (
    FeatureFact,
    SetupFacts,
    cpuinfo_answers,
    decided_level,
    host_facts,
)
from kvmprobe.analysis.levels import psabi_level, requirements
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.knowledge.fleet import FLEET_CAPS, NFD_MAX_FILE_BYTES
from kvmprobe.render import nfd as rn
from kvmprobe.render.ansible_fact import fact_body
from kvmprobe.render.metrics import exposition
from kvmprobe.snapshot import ProbeError, Snapshot, Steps, load
from kvmprobe.vocab import (
    CheckStatus,
    DoctorOutcome,
    FeatureStatus,
    Irqchip,
    LevelSource,
    NotOfferedReason,
    PsabiLevel,
)

FIX = str(FIXTURES / RECORDED_HOSTS[0].name)
PACKAGE = Path(__file__).resolve().parent.parent / "kvmprobe"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def pvm() -> Snapshot:
    snap, warnings = load(FIX)
    assert warnings == []
    return snap


# ---- facts ---------------------------------------------------------------------------------


def test_recorded_hosts_facts(recorded: Snapshot) -> None:
    """The recorded AMD hosts: KVM usable, API 12, a v1 guest on a v4 CPU (read from its
    CPUID); the guest level is psabi_level over the effective answers."""
    h = host_facts(recorded, list(Irqchip))
    assert (h.usable, h.api_version, h.probed) == (True, 12, True)
    assert (h.host_level, h.host_level_source) == (PsabiLevel.V4, LevelSource.CPUID)
    for s in h.setups:
        a = analyse(recorded, Options(irqchip=s.irqchip))
        answers = {
            r.feature.name: answer_from_status(r.verdict.status, r.verdict.effective)
            for r in a.features
        }
        assert s.level is psabi_level(answers).highest is PsabiLevel.V1
        assert set(s.effective) == {r.feature.name for r in a.features if r.verdict.effective}
        # a format-1 snapshot has no vCPU verification: whether a vCPU takes the advertised
        # ARCH_CAPABILITIES (and so the CPUID bit) is unknown there
        unverified = ("arch_capabilities",) if recorded.verification is None else ()
        assert s.unknown == unverified
        assert len(s.features) == len(a.features)
    # usable, or usable-but-a-VMM-would-stop (the recorded Zen 4 host refuses the
    # ARCH_CAPABILITIES bits it advertises: QEMU -cpu host cannot start there)
    assert h.doctor.verdict.outcome in (DoctorOutcome.USABLE, DoctorOutcome.NOT_READY)
    assert h.usable
    assert [c.cap.name for c in h.caps] == [c.name for c in FLEET_CAPS]
    assert all(c.value is not None for c in h.caps)


@pytest.mark.parametrize(
    ("model", "level"),
    [(hosts.HASWELL, PsabiLevel.V3), (hosts.SKYLAKE_SERVER, PsabiLevel.V4),
     (hosts.EPYC_MILAN, PsabiLevel.V3), (hosts.GRANITE_RAPIDS, PsabiLevel.V4)],
    ids=lambda v: getattr(v, "name", str(v)),
)  # fmt: skip
def test_synthetic_hosts_guest_and_host_levels(model: hosts.HostModel, level: PsabiLevel) -> None:
    h = host_facts(hosts.host_snapshot(model))
    assert h.setups[0].level is level
    assert h.host_level is level and h.host_level_source is LevelSource.CPUID


def test_host_level_from_cpuinfo_when_host_cpuid_is_missing(pvm: Snapshot) -> None:
    """Without the host's CPUID (not root), the /proc/cpuinfo flags give the host level, and
    the facts say so; on the recorded host both give x86-64-v4."""
    assert psabi_level(cpuinfo_answers(pvm.host.cpuinfo_flags)).highest is PsabiLevel.V4
    blind = replace(pvm, host=replace(pvm.host, cpuid=None, cpuid_error="EACCES"))
    h = host_facts(blind)
    assert (h.host_level, h.host_level_source) == (PsabiLevel.V4, LevelSource.CPUINFO)
    none = replace(blind, host=replace(blind.host, cpuinfo_flags=()))
    assert (host_facts(none).host_level, host_facts(none).host_level_source) == (None, None)


@pytest.mark.parametrize(
    ("drop", "level"),
    [((), PsabiLevel.V4), (("avx512f",), PsabiLevel.V3), (("avx",), PsabiLevel.V2),
     (("xsave",), PsabiLevel.V2), (("popcnt",), PsabiLevel.V1), (("sse2",), PsabiLevel.BELOW_V1)],
)  # fmt: skip
def test_cpuinfo_flags_stand_for_their_xsave_state(
    pvm: Snapshot, drop: tuple[str, ...], level: PsabiLevel
) -> None:
    """avx stands for the AVX state, avx512f for the three AVX-512 states, xsave for SSE state:
    Linux shows those flags only with their state enabled."""
    flags = [f for f in pvm.host.cpuinfo_flags if f not in drop]
    assert psabi_level(cpuinfo_answers(flags)).highest is level


def test_a_level_is_decided_only_by_a_no() -> None:
    every = {r.feature: YES for r in requirements()}
    assert decided_level(psabi_level(every)) is PsabiLevel.V4
    v2_unknown = dict(every, popcnt=UNKNOWN)
    assert psabi_level(v2_unknown).highest is PsabiLevel.V1
    assert decided_level(psabi_level(v2_unknown)) is None  # popcnt could lift it to v4
    v2_no = dict(v2_unknown, sse4_2=no(NotOfferedReason.UNSUPPORTED))
    assert decided_level(psabi_level(v2_no)) is PsabiLevel.V1  # sse4_2 keeps it at v1


def test_no_cpuid_answer_means_nothing_is_known_about_the_guest(pvm: Snapshot) -> None:
    """KVM_GET_SUPPORTED_CPUID failed: no feature and no level, never answers made up."""
    snap = replace(pvm, supported_cpuid=None, errors=(ProbeError(Steps.SUPPORTED_CPUID, 5, "x"),))
    s = host_facts(snap).setups[0]
    assert (s.cpuid_known, s.level, s.features) == (False, None, ())


def test_failed_emulated_cpuid_makes_answers_unknown(pvm: Snapshot) -> None:
    snap = replace(pvm, emulated_cpuid=None, errors=(ProbeError(Steps.EMULATED_CPUID, 5, "EIO"),))
    s = host_facts(snap).setups[0]
    assert s.unknown and s.level is None
    assert all(f.effective is None for f in s.features if f.name in s.unknown)


# ---- metrics -------------------------------------------------------------------------------


def test_metrics_from_a_recorded_host(pvm: Snapshot) -> None:
    h = host_facts(pvm, [Irqchip.KERNEL, Irqchip.SPLIT])
    text = exposition(h)
    s = samples(text)
    assert all(name.startswith("kvmprobe_") for name in s)
    assert one(text, "kvmprobe_kvm_usable") == 1
    assert one(text, "kvmprobe_api_version") == 12
    assert one(text, "kvmprobe_guest_x86_64_level", irqchip="kernel") == 1
    assert one(text, "kvmprobe_guest_x86_64_level", irqchip="split") == 1
    assert one(text, "kvmprobe_host_x86_64_level", source="cpuid") == 4
    assert one(text, "kvmprobe_feature_effective", irqchip="kernel", feature="x2apic") == 1
    assert one(text, "kvmprobe_feature_effective", irqchip="kernel", feature="avx2") == 0
    assert one(text, "kvmprobe_capability_value", capability="KVM_CAP_X2APIC_API", scope="vm") == 11
    assert one(text, "kvmprobe_snapshot_timestamp_seconds") == 1795567547  # 2026-11-25T00:45:47Z
    info = s["kvmprobe_snapshot_info"][0][0]
    assert info == {
        "kvmprobe_version": pvm.kvmprobe_version,
        "kernel_release": "6.18.44-fc-v657",
        "source": "snapshot",
        "device": "/dev/kvm",
    }
    assert s["kvmprobe_build_info"][0][0]["version"]
    for mode in ("kernel", "split"):
        series = [v for lab, v in s["kvmprobe_feature_effective"] if lab["irqchip"] == mode]
        setup = h.setup(Irqchip(mode))
        # every feature has a series; arch_capabilities is unknown (no vCPU verification in
        # this format-1 snapshot), so it is a kvmprobe_feature_unknown series instead
        assert len(setup.features) == 648 and setup.unknown == ("arch_capabilities",)
        assert len(series) == 647
        assert sum(series) == len(setup.effective)
        assert one(text, "kvmprobe_features", irqchip=mode, state="effective") == sum(series)
    assert {lab["feature"] for lab, _ in s["kvmprobe_feature_unknown"]} == {"arch_capabilities"}
    assert "kvmprobe_capability_unknown" not in s
    # one status per check, one verdict
    checks: dict[str, float] = {}
    for lab, v in s["kvmprobe_doctor_check"]:
        assert lab["status"] in {c.value for c in CheckStatus}
        checks[lab["check"]] = checks.get(lab["check"], 0) + v
    assert set(checks.values()) == {1} and len(checks) == len(h.doctor.checks)
    assert sum(v for _, v in s["kvmprobe_doctor_outcome"]) == 1
    assert one(text, "kvmprobe_doctor_outcome", outcome="ok") == 1
    # series per host and set-up: what a fleet of 10,000 hosts stores (README "Scale"); the
    # eight advertised feature-MSR bits of this host add 11 samples and 6 comment lines
    assert len(exposition(host_facts(pvm)).splitlines()) < 830


def test_unknown_is_never_0_or_1(pvm: Snapshot) -> None:
    """An unknown feature has no kvmprobe_feature_effective sample, a kvmprobe_feature_unknown
    one; an unknown guest level has no sample; a capability that failed likewise."""
    cap = next(c for c in FLEET_CAPS if c.name == "KVM_CAP_NR_VCPUS")
    snap = replace(
        pvm,
        emulated_cpuid=None,
        errors=(
            ProbeError(Steps.EMULATED_CPUID, 5, "EIO"),
            ProbeError(Steps.cap(9, cap.scope), 5, "EIO"),
        ),
    )
    h = host_facts(snap)
    text = exposition(h)
    unknown = h.setups[0].unknown
    assert unknown
    eff = {lab["feature"] for lab, _ in samples(text)["kvmprobe_feature_effective"]}
    unk = {lab["feature"]: v for lab, v in samples(text)["kvmprobe_feature_unknown"]}
    assert set(unk) == set(unknown) and set(unk.values()) == {1}
    assert not eff & set(unknown)
    assert len(eff) + len(unk) == len(h.setups[0].features)
    assert one(text, "kvmprobe_guest_x86_64_level", irqchip="kernel") is None
    assert one(text, "kvmprobe_features", irqchip="kernel", state="unknown") == len(unknown)
    assert one(text, "kvmprobe_capability_value", capability=cap.name, scope="system") is None
    assert one(text, "kvmprobe_capability_unknown", capability=cap.name, scope="system") == 1
    assert one(text, "kvmprobe_probe_errors") == 2
    assert one(text, "kvmprobe_probe_step_failed", step=Steps.EMULATED_CPUID, errno="EIO") == 1


def test_metrics_when_kvm_cannot_be_used() -> None:
    """No device: KVM unusable is a fact (0), the command still succeeds; nothing about the
    guest is exposed, the host's own level still is."""
    r = run("metrics", "--device", "/nonexistent/kvm")
    assert r.exit_code == 0
    text = r.stdout
    assert one(text, "kvmprobe_kvm_usable") == 0
    assert one(text, "kvmprobe_doctor_outcome", outcome="unavailable") == 1
    s = samples(text)
    for name in (
        "kvmprobe_api_version",
        "kvmprobe_guest_x86_64_level",
        "kvmprobe_feature_effective",
        "kvmprobe_features",
        "kvmprobe_capability_value",
    ):
        assert name not in s, name  # fmt: skip


def test_metrics_feature_selection_and_irqchips() -> None:
    r = run("metrics", "--from", FIX, "--features", "avx2, x2apic,tsc-deadline",
            "--irqchip", "kernel", "--irqchip", "userspace")  # fmt: skip
    assert r.exit_code == 0
    feats = {(lab["irqchip"], lab["feature"]) for lab, _ in samples(r.stdout)[
        "kvmprobe_feature_effective"]}  # fmt: skip
    names = {"avx2", "x2apic", "tsc_deadline_timer"}
    assert feats == {(m, n) for m in ("kernel", "userspace") for n in names}
    # the level and the counts still describe every feature
    assert one(r.stdout, "kvmprobe_guest_x86_64_level", irqchip="userspace") == 1
    assert one(r.stdout, "kvmprobe_features", irqchip="kernel", state="effective") == 102
    bad = run("metrics", "--from", FIX, "--features", "avx2,nonsense")
    assert bad.exit_code == 2 and "unknown CPUID feature 'nonsense'" in bad.stderr
    assert run("metrics", "--irqchip", "bogus").exit_code == 2
    assert run("metrics", "--from", FIX, "--features", " , ").exit_code == 2


def test_metrics_file_is_written_atomically(tmp_path: Path) -> None:
    out = tmp_path / "kvmprobe.prom"
    out.write_text("old\n")
    r = run("metrics", "--from", FIX, "-o", str(out))
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    assert out.read_text() == run("metrics", "--from", FIX).stdout  # a regular file: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvmprobe.prom"]
    assert os.stat(out).st_mode & 0o777 == 0o644


def test_metrics_never_replace_anything_but_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link.prom"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.prom"
    os.mkfifo(fifo)
    (tmp_path / "dir.prom").mkdir()
    for path in (link, fifo, tmp_path / "dir.prom"):
        r = run("metrics", "--from", FIX, "-o", str(path))
        assert r.exit_code == 1, path
        assert r.stderr.startswith("kvmprobe: error: ") and "hint: " in r.stderr
    assert target.read_text() == "keep\n" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.prom", "fifo.prom", "link.prom",
                                                          "target"]  # fmt: skip


def test_interrupted_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "kvmprobe.prom"
    out.write_text("old\n")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    r = CliRunner().invoke(main, ["metrics", "--from", FIX, "-o", str(out)])
    assert r.exit_code == 130
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kvmprobe.prom"]


def test_metrics_warn_when_node_exporter_would_skip_the_file(tmp_path: Path) -> None:
    r = run("metrics", "--from", FIX, "-o", str(tmp_path / "kvmprobe.txt"))
    assert r.exit_code == 0
    assert "does not end in .prom" in r.stderr


# ---- node-feature-discovery ---------------------------------------------------------------

# Kubernetes' label syntax, written out independently of render/nfd.py's checks.
K8S_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
K8S_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def parse_feature_file(text: str) -> dict[str, str]:
    """What NFD's local source reads from a feature file (its documented input format): lines
    trimmed, empty and '#' lines skipped ('# +' lines are directives: none expected here),
    '<key>[=<value>]' split at the first '=', the value 'true' when there is none."""
    assert len(text.encode()) <= NFD_MAX_FILE_BYTES
    labels: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            assert not line.startswith("# +"), f"unexpected NFD directive: {line}"
            continue
        key, eq, value = line.partition("=")
        assert key not in labels, f"{key} twice"
        labels[key] = value if eq else "true"
    return labels


def assert_valid_label(key: str, value: str) -> None:
    ns, slash, name = key.partition("/")
    assert slash, key
    assert len(ns) <= 253 and DNS1123_SUBDOMAIN.match(ns), key
    assert ns.endswith(".feature.node.kubernetes.io") or not (
        ns == "kubernetes.io" or ns.endswith(".kubernetes.io")
    ), key
    assert len(name) <= 63 and K8S_NAME.match(name), key
    assert len(value) <= 63 and K8S_VALUE.match(value), (key, value)


def test_nfd_file_from_a_recorded_host(pvm: Snapshot) -> None:
    r = run("nfd", "--from", FIX)
    assert r.exit_code == 0
    labels = parse_feature_file(r.stdout)
    for k, v in labels.items():
        assert_valid_label(k, v)
    ns = "kvmprobe.feature.node.kubernetes.io"
    assert labels[f"{ns}/kvm-usable"] == "true"
    assert labels[f"{ns}/api-version"] == "12"
    assert labels[f"{ns}/irqchip"] == "kernel"
    assert labels[f"{ns}/guest-x86-64-level"] == "1"
    assert labels[f"{ns}/guest-x86-64-v1"] == "true"
    assert f"{ns}/guest-x86-64-v2" not in labels
    assert labels[f"{ns}/host-x86-64-level"] == "4"
    s = host_facts(pvm).setups[0]
    cpuid_labels = {k.split("/guest-cpuid.", 1)[1]: v for k, v in labels.items()
                    if "/guest-cpuid." in k}  # fmt: skip
    assert set(cpuid_labels) == set(s.effective) and set(cpuid_labels.values()) == {"true"}
    assert "avx2" not in cpuid_labels  # not given: no label, never "false"
    # arch_capabilities is unknown (no vCPU verification in format 1): counted, no label
    assert labels[f"{ns}/unknown-features"] == "1" and f"{ns}/probe-errors" not in labels


def test_every_feature_name_makes_a_valid_label() -> None:
    """Even a host giving every feature of the table stays within the label rules and NFD's
    64 KiB, under the default namespace or a short one of the operator's; a namespace so long
    that the file would pass 64 KiB is refused rather than written for nfd-worker to ignore."""
    feats = tuple(FeatureFact(f.name, f.qemu_name, FeatureStatus.SUPPORTED, True)
                  for f in cp.features())  # fmt: skip
    setup = SetupFacts(Irqchip.KERNEL, True, PsabiLevel.V4, feats)
    base = host_facts(hosts.host_snapshot(hosts.GRANITE_RAPIDS))
    facts = replace(base, setups=(setup,))
    for ns in (rn.DEFAULT_NAMESPACE, "kvmprobe.example.com"):
        f = rn.nfd_labels(facts, setup, ns)
        assert f.skipped == ()
        text = f.text(rn.header_lines(facts))
        assert rn.check_size(text) is None
        labels = parse_feature_file(text)
        assert sum("/guest-cpuid." in k for k in labels) == len(feats)
        for k, v in labels.items():
            assert_valid_label(k, v)
        assert [k.split("/")[1] for k in labels if "/guest-x86-64-" in k] == [
            "guest-x86-64-level", "guest-x86-64-v1", "guest-x86-64-v2", "guest-x86-64-v3",
            "guest-x86-64-v4"]  # fmt: skip
    long_ns = "kvmprobe." + ".".join(["abcdefghij"] * 8) + ".example.com"
    assert rn.namespace_problem(long_ns) is None
    text = rn.nfd_labels(facts, setup, long_ns).text()
    assert rn.check_size(text) == f"{len(text)} bytes, more than the 65536 nfd-worker reads"


def test_unknown_and_unusable_hosts_get_no_feature_labels(pvm: Snapshot) -> None:
    snap = replace(pvm, emulated_cpuid=None, errors=(ProbeError(Steps.EMULATED_CPUID, 5, "EIO"),))
    h = host_facts(snap)
    labels = parse_feature_file(rn.nfd_labels(h, h.setups[0]).text())
    ns = rn.DEFAULT_NAMESPACE
    unknown = set(h.setups[0].unknown)
    assert not {k.split("/guest-cpuid.")[1] for k in labels if "/guest-cpuid." in k} & unknown
    assert labels[f"{ns}/unknown-features"] == str(len(unknown))
    assert labels[f"{ns}/probe-errors"] == "1"
    assert f"{ns}/guest-x86-64-level" not in labels  # undecided
    r = run("nfd", "--device", "/nonexistent/kvm")
    assert r.exit_code == 0
    labels = parse_feature_file(r.stdout)
    assert labels[f"{ns}/kvm-usable"] == "false"
    assert not [k for k in labels if "guest-" in k or "api-version" in k]


@pytest.mark.parametrize(
    ("ns", "ok"),
    [("kvmprobe.feature.node.kubernetes.io", True), ("feature.node.kubernetes.io", True),
     ("profile.node.kubernetes.io", True), ("kvmprobe.example.com", True), ("example.io", True),
     ("kubernetes.io", False), ("node.kubernetes.io", False), ("kvmprobe.kubernetes.io", False),
     ("Example.com", False), ("-a.example.com", False), ("a..b", False), ("", False),
     ("a" * 64 + ".com", False), (".".join(["a" * 63] * 4), False), ("a_b.com", False)],
)  # fmt: skip
def test_nfd_namespace_rules(ns: str, ok: bool) -> None:
    assert (rn.namespace_problem(ns) is None) is ok
    r = run("nfd", "--from", FIX, "--namespace", ns)
    assert r.exit_code == (0 if ok else 2), r.stderr
    if ok:
        assert all(k.startswith(ns + "/") for k in parse_feature_file(r.stdout))


def test_label_checks_follow_kubernetes() -> None:
    assert rn.label_problem("example.com/" + "a" * 63, "v") is None
    assert rn.label_problem("example.com/" + "a" * 64, "v")
    assert rn.label_problem("example.com/a", "v" * 63) is None
    assert rn.label_problem("example.com/a", "v" * 64)
    assert rn.label_problem("example.com/a", "") is None
    for bad in ("has space", "-lead", "trail-", "a=b", "line\nbreak"):
        assert rn.label_problem("example.com/a", bad), bad
    for bad in ("a", "example.com/", "example.com/_a", "example.com/a/b"):
        assert rn.label_problem(bad, "v"), bad


def test_nfd_file_written_atomically_for_nfd_worker(tmp_path: Path, monkeypatch) -> None:
    """nfd-worker skips dot files: the temporary file is one, in the same directory, renamed
    into place over the old file."""
    out = tmp_path / "kvmprobe"
    out.write_text("old\n")
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def watched(src: str, dst: str) -> None:
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watched)
    assert run("nfd", "--from", FIX, "-o", str(out)).exit_code == 0
    assert len(renames) == 1
    src, dst = renames[0]
    assert Path(src).parent == tmp_path and Path(src).name.startswith(".")
    assert dst == str(out)
    assert parse_feature_file(out.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["kvmprobe"]


def test_nfd_file_too_large_is_refused(pvm: Snapshot, monkeypatch) -> None:
    monkeypatch.setattr(rn, "NFD_MAX_FILE_BYTES", 100)
    r = run("nfd", "--from", FIX)
    assert r.exit_code == 1 and "more than the 100 nfd-worker reads" in r.stderr


# ---- the Ansible fact ----------------------------------------------------------------------


def test_fact_document(pvm: Snapshot) -> None:
    r = run("fact", "--from", FIX)
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.fact/1"
    assert doc["source"]["file"] == FIX and doc["probe_errors"] == []
    h = host_facts(pvm)
    assert doc == {"schema": doc["schema"], "source": doc["source"], "probe_errors": [],
                   **fact_body(h, h.setups[0])}  # fmt: skip
    assert (doc["usable"], doc["api_version"], doc["irqchip"]) == (True, 12, "kernel")
    assert (doc["guest_level"], doc["guest_level_rank"]) == ("x86-64-v1", 1)
    assert (doc["host_level"], doc["host_level_source"]) == ("x86-64-v4", "cpuid")
    assert doc["features"] == sorted(h.setups[0].effective) and "x2apic" in doc["features"]
    assert doc["counts"] == {"effective": 102, "not_effective": 545, "unknown": 1}
    assert doc["doctor"]["outcome"] == "ok" and doc["doctor"]["failed"] == []


def test_fact_when_kvm_cannot_be_used() -> None:
    r = run("fact", "--device", "/nonexistent/kvm")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["usable"] is False and doc["api_version"] is None
    assert doc["cpuid_known"] is False and doc["guest_level"] is None
    assert doc["features"] == [] and doc["doctor"]["outcome"] == "unavailable"
    assert "device.exists" in doc["doctor"]["failed"]


def test_fact_executable_without_kvmprobe(tmp_path: Path) -> None:
    """The facts.d executable says "not installed" in JSON rather than failing."""
    fact = Path(__file__).resolve().parent.parent / "contrib/ansible/facts.d/kvmprobe.fact"
    assert os.access(fact, os.X_OK)
    env = {"PATH": str(tmp_path), "KVMPROBE": str(tmp_path / "missing")}
    r = subprocess.run(["/bin/sh", str(fact)], env=env, capture_output=True, text=True,
                       timeout=30, check=False)  # fmt: skip
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"schema": "kvmprobe.fact/1", "installed": False}


# ---- the house ----------------------------------------------------------------------------


def test_help_of_the_fleet_commands() -> None:
    for cmd in ("metrics", "nfd", "fact"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "--from" in r.output


def test_only_the_metrics_renderer_imports_prometheus_client() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        uses = any(n.split(".")[0] == "prometheus_client" for n in names)
        assert uses == (path == PACKAGE / "render" / "metrics.py"), path


@pytest.mark.parametrize(
    "args",
    [["caps", "--json"], ["cpuid", "--json"], ["fact"], ["doctor", "--json"]],
    ids=lambda a: " ".join(a),
)
def test_json_paths_never_import_rich_or_prometheus_client(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from kvmprobe.cli import main\n"
        "try:\n"
        f"    main({[*args, '--from', FIX]!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'prometheus_client'})\n"
        "sys.stderr.write('LOADED=' + ','.join(bad) + '\\n')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert "LOADED=\n" in r.stderr, r.stderr
    assert json.loads(r.stdout)["schema"].startswith("kvmprobe.")
