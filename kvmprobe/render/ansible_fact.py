"""``kvmprobe fact``: one host in one small JSON document (``kvmprobe.fact/1``), the shape an
Ansible ``facts.d`` executable prints (contrib/ansible/facts.d/kvmprobe.fact), so that
``ansible_local.kvmprobe`` holds it.

Stdlib only: like every JSON path, this never imports rich or prometheus_client.

Body (beside ``schema``, ``source`` and ``probe_errors``, which every kvmprobe document has):

* ``usable`` (bool), ``api_version`` (int or null);
* ``doctor``: ``outcome`` (ok, unavailable, permission, not-ready), ``message``, and the ids
  of the checks that ended ``FAIL`` and ``WARN``;
* ``irqchip``: the VMM set-up the guest facts describe;
* ``guest_level`` (``x86-64-v1``..``x86-64-v4``, ``below-x86-64-v1``, or null when unknown)
  and ``guest_level_rank`` (0..4 or null), for comparisons in Jinja;
* ``host_level``, ``host_level_rank`` and ``host_level_source`` (``cpuid`` or ``cpuinfo``);
* ``cpuid_known`` (bool): KVM_GET_SUPPORTED_CPUID answered (when false, every list is empty
  and the guest level null: nothing about the guest is known);
* ``features``: the names of every CPUID feature a guest can be given, sorted;
  ``unknown_features``: the names whose answer is unknown; ``counts``: how many features are
  effective, not effective and unknown;
* ``msr_known`` (bool): KVM_GET_MSR_FEATURE_INDEX_LIST answered (when false the MSR lists are
  empty: which bits KVM reports is unknown); ``msr_bits``: every named single bit of a
  plain-bits feature MSR KVM reports set (ARCH_CAPABILITIES...), each with ``name`` (QEMU's
  spelling where there is one), ``qemu``, ``kernel``, ``msr``, ``msr_name``, ``bit``,
  ``effective`` (true only when a vCPU took it, false when refused, null when unknown) and
  ``reason``; ``msr_features`` and ``unknown_msr_features``: the names of those a guest is
  given and of those whose answer is unknown, sorted.
"""

from __future__ import annotations

from kvmprobe.analysis.fleet_facts import HostFacts, MsrBitFact, SetupFacts
from kvmprobe.render import json as rj
from kvmprobe.snapshot import Snapshot
from kvmprobe.vocab import CheckStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def fact_body(facts: HostFacts, setup: SetupFacts) -> dict[str, Any]:
    report = facts.doctor
    return {
        "usable": facts.usable,
        "api_version": facts.api_version,
        "doctor": {
            "outcome": report.verdict.outcome.value,
            "message": report.verdict.message,
            "failed": [c.id for c in report.checks if c.status is CheckStatus.FAIL],
            "warned": [c.id for c in report.checks if c.status is CheckStatus.WARN],
        },
        "irqchip": setup.irqchip.value,
        "cpuid_known": setup.cpuid_known,
        "guest_level": setup.level.value if setup.level is not None else None,
        "guest_level_rank": setup.level.rank if setup.level is not None else None,
        "host_level": facts.host_level.value if facts.host_level is not None else None,
        "host_level_rank": facts.host_level.rank if facts.host_level is not None else None,
        "host_level_source": (
            facts.host_level_source.value if facts.host_level_source is not None else None
        ),
        "features": sorted(setup.effective),
        "unknown_features": sorted(setup.unknown),
        "counts": {
            "effective": len(setup.effective),
            "not_effective": len(setup.not_effective),
            "unknown": len(setup.unknown),
        },
        "msr_known": facts.msr_known,
        "msr_features": sorted({b.name for b in facts.msr_advertised if b.effective is True}),
        "unknown_msr_features": sorted(
            {b.name for b in facts.msr_advertised if b.effective is None}
        ),
        "msr_bits": [_msr_bit(b) for b in facts.msr_advertised],
    }


def _msr_bit(b: MsrBitFact) -> dict[str, Any]:
    return {
        "name": b.name,
        "qemu": b.qemu,
        "kernel": b.kernel,
        "msr": b.msr,
        "msr_name": b.msr_name,
        "bit": b.bit,
        "effective": b.effective,
        "reason": b.why,
    }


def fact_document(snap: Snapshot, facts: HostFacts, setup: SetupFacts) -> dict[str, Any]:
    return rj.document("fact", snap, fact_body(facts, setup))
