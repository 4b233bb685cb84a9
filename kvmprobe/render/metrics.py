"""``kvmprobe metrics``: one host's facts in Prometheus' text exposition format, for
node_exporter's textfile collector.

The exposition is prometheus-client's (``generate_latest`` over a registry holding one
collector), so escaping, HELP and TYPE lines are the library's. This module is imported only
by the metrics command: the JSON path never loads prometheus_client. The file itself is
written by ``render.output.write_new_file`` (not prometheus-client's ``write_to_textfile``,
which renames its temporary file over whatever is at the path, symbolic links and FIFOs
included, and leaves the temporary file behind when interrupted).

Series (names follow Prometheus' conventions: ``kvmprobe_`` prefix, base units, ``_info``
for facts carried in labels; every gauge, no timestamps, as the textfile collector wants):

=========================================  ====================================================
kvmprobe_build_info{version}               the kvmprobe that wrote the file
kvmprobe_snapshot_info{kvmprobe_version,   the snapshot read: the kvmprobe that recorded it,
  kernel_release, source, device}          the kernel, live or snapshot file, the device
kvmprobe_snapshot_timestamp_seconds        when the snapshot was recorded
kvmprobe_kvm_usable                        1: the API answers and a VM can be created
kvmprobe_api_version                       KVM_GET_API_VERSION (no sample: unknown)
kvmprobe_guest_x86_64_level{irqchip}       0 below x86-64-v1, 1..4 (no sample: unknown)
kvmprobe_host_x86_64_level{source}         the host CPU's own level; source cpuid|cpuinfo
kvmprobe_feature_effective{irqchip,        1: a guest can be given the feature, 0: it cannot;
  feature}                                 no sample when unknown
kvmprobe_feature_unknown{irqchip,feature}  1 for each feature whose answer is unknown
kvmprobe_features{irqchip,state}           how many features are effective, not_effective,
                                           unknown
kvmprobe_msr_bit_effective{msr,bit}        1: a guest is given the feature-MSR bit (KVM reports
                                           it set and a vCPU takes it), 0: it is not; no
                                           sample when unknown; bit is QEMU's name (mds-no)
                                           where there is one
kvmprobe_msr_bit_unknown{msr,bit}          1 for each feature-MSR bit whose answer is unknown
kvmprobe_msr_bit_answers{state}            how many feature-MSR bits KVM reports set are
                                           effective, not_effective, unknown (no samples when
                                           KVM's feature-MSR list is unknown)
kvmprobe_capability_value{capability,      the KVM_CHECK_EXTENSION answer (no sample:
  scope}                                   unknown)
kvmprobe_capability_unknown{capability,    1 for each watched capability whose answer is
  scope}                                   unknown
kvmprobe_doctor_check{check,status}        1 for the status each doctor check ended with,
                                           0 for the other statuses
kvmprobe_doctor_outcome{outcome}           1 for the doctor's verdict, 0 for the others
kvmprobe_probe_errors                      how many probe steps failed
kvmprobe_probe_step_failed{step,errno}     1 for each failed probe step
=========================================  ====================================================

Unknown is never exposed as 0 or 1 of the series it is unknown for: it has no sample there,
and a ``*_unknown`` series says so.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Collection, Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from kvmprobe import __version__
from kvmprobe.analysis.fleet_facts import HostFacts, MsrBitFact
from kvmprobe.analysis.msr import BitRef
from kvmprobe.vocab import CheckStatus, DoctorOutcome


def _timestamp(recorded_at: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(recorded_at, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _errno(name: str | None) -> str:
    return name or ""


class HostCollector(Collector):
    """Yields every kvmprobe series for one host's facts."""

    def __init__(
        self,
        facts: HostFacts,
        only: Collection[str] | None = None,
        only_bits: Collection[BitRef] | None = None,
    ) -> None:
        self.facts = facts
        self.setups = facts.setups
        #: the features that get a series of their own (None: all); counts cover every one
        self.only = only
        #: the feature-MSR bits that get a series of their own (None: all advertised ones)
        self.only_bits = only_bits

    def collect(self) -> Iterator[Metric]:
        h = self.facts
        yield InfoMetricFamily(
            "kvmprobe_build", "The kvmprobe that wrote these metrics.", {"version": __version__}
        )
        yield InfoMetricFamily(
            "kvmprobe_snapshot",
            "The snapshot these metrics describe: the kvmprobe version that recorded it, the "
            "host's kernel, live probe or snapshot file, the KVM device.",
            {
                "kvmprobe_version": h.recorded_by,
                "kernel_release": h.kernel_release,
                "source": "live" if h.source == "live" else "snapshot",
                "device": h.device,
            },
        )
        ts = _timestamp(h.recorded_at)
        g = GaugeMetricFamily(
            "kvmprobe_snapshot_timestamp_seconds",
            "When the snapshot was recorded, in seconds since the epoch.",
        )
        if ts is not None:
            g.add_metric([], ts)
        yield g
        yield GaugeMetricFamily(
            "kvmprobe_kvm_usable",
            "1 when KVM answers the expected API version and a VM can be created, else 0.",
            value=int(h.usable),
        )
        g = GaugeMetricFamily(
            "kvmprobe_api_version", "KVM_GET_API_VERSION (no sample when it is unknown)."
        )
        if h.api_version is not None:
            g.add_metric([], h.api_version)
        yield g
        yield from self._levels()
        yield from self._features()
        yield from self._msr_bits()
        yield from self._caps()
        yield from self._doctor()
        yield GaugeMetricFamily(
            "kvmprobe_probe_errors",
            "How many probe steps failed (what depends on them is unknown).",
            value=len(h.errors),
        )
        g = GaugeMetricFamily(
            "kvmprobe_probe_step_failed",
            "1 for each probe step that failed, with its errno name (empty when none).",
            labels=["step", "errno"],
        )
        seen: set[tuple[str, str]] = set()
        for e in h.errors:
            key = (e.step, _errno(e.errno_name))
            if key not in seen:
                seen.add(key)
                g.add_metric(list(key), 1)
        yield g

    def _levels(self) -> Iterator[Metric]:
        h = self.facts
        g = GaugeMetricFamily(
            "kvmprobe_guest_x86_64_level",
            "The x86-64 psABI level a guest can be given in this irqchip set-up: 0 below "
            "x86-64-v1, 1 to 4 for x86-64-v1 to -v4 (no sample when it is unknown).",
            labels=["irqchip"],
        )
        for s in self.setups:
            if s.level is not None:
                g.add_metric([s.irqchip.value], s.level.rank)
        yield g
        g = GaugeMetricFamily(
            "kvmprobe_host_x86_64_level",
            "The host CPU's own x86-64 psABI level (0 below x86-64-v1), read from its CPUID "
            "or, when that cannot be read, its /proc/cpuinfo flags (label source).",
            labels=["source"],
        )
        if h.host_level is not None and h.host_level_source is not None:
            g.add_metric([h.host_level_source.value], h.host_level.rank)
        yield g

    def _features(self) -> Iterator[Metric]:
        eff = GaugeMetricFamily(
            "kvmprobe_feature_effective",
            "1 when a guest in this irqchip set-up can be given the CPUID feature, 0 when it "
            "cannot (no sample when unknown: see kvmprobe_feature_unknown).",
            labels=["irqchip", "feature"],
        )
        unk = GaugeMetricFamily(
            "kvmprobe_feature_unknown",
            "1 for each CPUID feature whose answer is unknown (a probe step it depends on failed).",
            labels=["irqchip", "feature"],
        )
        counts = GaugeMetricFamily(
            "kvmprobe_features",
            "How many named CPUID features a guest in this irqchip set-up can be given "
            "(effective), cannot be given (not_effective), or are unknown.",
            labels=["irqchip", "state"],
        )
        for s in self.setups:
            mode = s.irqchip.value
            for f in s.features:
                if self.only is not None and f.name not in self.only:
                    continue
                if f.effective is None:
                    unk.add_metric([mode, f.name], 1)
                else:
                    eff.add_metric([mode, f.name], int(f.effective))
            if s.cpuid_known:
                counts.add_metric([mode, "effective"], len(s.effective))
                counts.add_metric([mode, "not_effective"], len(s.not_effective))
                counts.add_metric([mode, "unknown"], len(s.unknown))
        yield eff
        yield unk
        yield counts

    def _bit_shown(self, b: MsrBitFact) -> bool:
        if self.only_bits is None:
            return not b.asked
        return any(b.msr in r.msrs and b.bit == r.bit.lo for r in self.only_bits)

    def _msr_bits(self) -> Iterator[Metric]:
        eff = GaugeMetricFamily(
            "kvmprobe_msr_bit_effective",
            "1 when a guest is given the feature-MSR bit (KVM reports it set and a vCPU takes "
            "it), 0 when it is not (no sample when unknown: see kvmprobe_msr_bit_unknown).",
            labels=["msr", "bit"],
        )
        unk = GaugeMetricFamily(
            "kvmprobe_msr_bit_unknown",
            "1 for each feature-MSR bit whose answer is unknown (no vCPU verification, or a "
            "probe step it depends on failed).",
            labels=["msr", "bit"],
        )
        counts = GaugeMetricFamily(
            "kvmprobe_msr_bit_answers",
            "How many of the feature-MSR bits KVM reports set a guest is given (effective), "
            "is not given (not_effective), or are unknown.",
            labels=["state"],
        )
        h = self.facts
        for b in h.msr_bits:
            if not self._bit_shown(b):
                continue
            if b.effective is None:
                unk.add_metric([b.msr_name, b.name], 1)
            else:
                eff.add_metric([b.msr_name, b.name], int(b.effective))
        if h.msr_known:
            bits = h.msr_advertised
            counts.add_metric(["effective"], sum(b.effective is True for b in bits))
            counts.add_metric(["not_effective"], sum(b.effective is False for b in bits))
            counts.add_metric(["unknown"], sum(b.effective is None for b in bits))
        yield eff
        yield unk
        yield counts

    def _caps(self) -> Iterator[Metric]:
        val = GaugeMetricFamily(
            "kvmprobe_capability_value",
            "The KVM_CHECK_EXTENSION answer of a capability fleets watch, on the fd the VMM "
            "asks (scope); no sample when unknown.",
            labels=["capability", "scope"],
        )
        unk = GaugeMetricFamily(
            "kvmprobe_capability_unknown",
            "1 for each watched capability whose answer is unknown.",
            labels=["capability", "scope"],
        )
        for c in self.facts.caps:
            labels = [c.cap.name, c.cap.scope.value]
            if c.value is None:
                unk.add_metric(labels, 1)
            else:
                val.add_metric(labels, c.value)
        yield val
        yield unk

    def _doctor(self) -> Iterator[Metric]:
        report = self.facts.doctor
        g = GaugeMetricFamily(
            "kvmprobe_doctor_check",
            "1 for the status each 'kvmprobe doctor' check ended with, 0 for the others.",
            labels=["check", "status"],
        )
        for c in report.checks:
            for status in CheckStatus:
                g.add_metric([c.id, status.value], int(c.status is status))
        yield g
        g = GaugeMetricFamily(
            "kvmprobe_doctor_outcome",
            "1 for the verdict of 'kvmprobe doctor' (ok, unavailable, permission, not-ready), "
            "0 for the others.",
            labels=["outcome"],
        )
        for outcome in DoctorOutcome:
            g.add_metric([outcome.value], int(report.verdict.outcome is outcome))
        yield g


def exposition(
    facts: HostFacts,
    only: Collection[str] | None = None,
    only_bits: Collection[BitRef] | None = None,
) -> str:
    """The text exposition of one host's facts; ``only``: the feature names that get
    per-feature series (None: every named feature); ``only_bits``: likewise the feature-MSR
    bits (None: every bit KVM reports set)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostCollector(facts, only, only_bits))
    return generate_latest(registry).decode("utf-8")
