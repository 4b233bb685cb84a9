"""Fleet integration: ``kvmprobe metrics`` (Prometheus), ``nfd`` (node-feature-discovery
labels) and ``fact`` (an Ansible local fact)."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, get_snapshot, unknown_feature, warn
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.vocab import Irqchip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.msr import BitRef
    from kvmprobe.snapshot import Snapshot


def _fleet_snapshot(inv: Invocation, from_file: str | None, device: str) -> Snapshot:
    """The snapshot a fleet output describes: a recorded file, or the live host examined as
    'doctor' does, which is never an error for a device that cannot be used: a fleet wants
    "KVM is not usable here" as a fact, not as a failed job."""
    if from_file:
        return get_snapshot(inv, from_file, device)
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import examine

    snap = examine(device, effective_tables)  # as doctor: the same checks live and recorded
    if snap.errors:
        from kvmprobe.render.text import failed_steps_line

        warn(failed_steps_line(snap.errors))
    return snap


def _write_state_file(output: str | None, text: str) -> None:
    """A file that a timer rewrites: stdout, or FILE replaced atomically (only a regular file
    is ever replaced; a reader sees the old file or the new one, never a part)."""
    if not output or output == "-":
        emit(text)
        return
    from kvmprobe.render.output import write_new_file

    write_new_file(output, text, force=True)


def _feature_names(feature_list: str | None) -> tuple[dict[str, str], tuple[BitRef, ...]] | None:
    """The CPUID features and the feature-MSR bits (mds-no) --features names."""
    if feature_list is None:
        return None
    from kvmprobe.analysis.fleet_facts import resolve_features, resolve_msr_bits

    words = [w.strip() for w in feature_list.split(",") if w.strip()]
    if not words:
        raise KvmprobeError(
            "--features names no feature",
            "give comma-separated names, e.g. avx2,x2apic",
            ExitStatus.USAGE,
        )
    names, bad = resolve_features(words)
    bits = resolve_msr_bits(words)
    bad = [w for w in bad if not resolve_msr_bits([w])]
    if bad:
        raise unknown_feature(bad[0])
    return names, bits


def metrics(
    inv: Invocation,
    output: str | None = None,
    irqchips: tuple[str, ...] = (),
    feature_list: str | None = None,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """This host in Prometheus' text format, for node_exporter's textfile collector.

    Whether KVM is usable, the guest's and the host's x86-64 levels, every CPUID feature a
    guest can be given (0/1 per feature and irqchip set-up; an unknown answer has no 0/1
    sample but a kvmprobe_feature_unknown one), the feature-MSR bits KVM reports set
    (mds-no: 1 only when a vCPU takes it), watched capability values, the doctor's
    checks and verdict, failed probe steps and the kvmprobe versions. Exits 0 when the file
    is written, also when KVM is not usable here (kvmprobe_kvm_usable is then 0).
    """
    from kvmprobe.analysis.fleet_facts import host_facts

    names = _feature_names(feature_list)
    if output and output != "-" and not output.endswith(".prom"):
        warn(f"{output} does not end in .prom: node_exporter's textfile collector skips it")
    snap = _fleet_snapshot(inv, from_file, device)
    bits = names[1] if names is not None else ()
    facts = host_facts(snap, [Irqchip(m) for m in irqchips] or [Irqchip.KERNEL], msr_bits=bits)
    from kvmprobe.render.metrics import exposition

    if names is None:
        _write_state_file(output, exposition(facts))
    else:
        _write_state_file(output, exposition(facts, set(names[0]), names[1]))


def nfd(
    inv: Invocation,
    output: str | None = None,
    irqchip: str = Irqchip.KERNEL.value,
    namespace: str | None = None,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """A node-feature-discovery feature file: this host's guest features as node labels.

    NFD's local source reads it from its features.d directory and labels the node, so VMs
    (KubeVirt) can be scheduled with node selectors on what KVM can really give: the guest's
    x86-64 level, each CPUID feature and feature-MSR bit (mds-no) a guest can be given
    (absent when it cannot or when the answer is unknown), whether KVM is usable. Exits 0
    when the file is written, also when KVM is not usable here (kvm-usable=false).
    """
    from kvmprobe.analysis.fleet_facts import host_facts
    from kvmprobe.render import nfd as rn

    ns = namespace if namespace is not None else rn.DEFAULT_NAMESPACE
    problem = rn.namespace_problem(ns)
    if problem:
        raise KvmprobeError(
            f"--namespace {ns!r}: {problem}",
            f"use a domain you own (e.g. kvmprobe.example.com) or {rn.DEFAULT_NAMESPACE}",
            ExitStatus.USAGE,
        )
    snap = _fleet_snapshot(inv, from_file, device)
    facts = host_facts(snap, [Irqchip(irqchip)])
    labels = rn.nfd_labels(facts, facts.setups[0], ns)
    if labels.skipped:
        warn(f"left out features whose names cannot be labels: {', '.join(labels.skipped)}")
    text = labels.text(rn.header_lines(facts))
    too_big = rn.check_size(text)
    if too_big:
        raise KvmprobeError(f"the feature file would be {too_big}", "use a shorter --namespace")
    _write_state_file(output, text)


def fact(
    inv: Invocation,
    irqchip: str = Irqchip.KERNEL.value,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """This host as one small JSON document: an Ansible facts.d fact (ansible_local.kvmprobe).

    Whether KVM is usable, the API version, the doctor's verdict, the guest's and the host's
    x86-64 levels, the CPUID features a guest can be given and those whose answer is unknown,
    the feature-MSR bits KVM reports set with their answers, failed probe steps. Prints JSON
    and exits 0 also when KVM is not usable here, so the fact is always there; see
    contrib/ansible in the source tree for the facts.d executable.
    """
    from kvmprobe.analysis.fleet_facts import host_facts
    from kvmprobe.render import json as rj
    from kvmprobe.render.ansible_fact import fact_document

    snap = _fleet_snapshot(inv, from_file, device)
    facts = host_facts(snap, [Irqchip(irqchip)])
    emit(rj.dumps(fact_document(snap, facts, facts.setups[0])))
