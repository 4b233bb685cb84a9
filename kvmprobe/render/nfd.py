"""``kvmprobe nfd``: a node-feature-discovery feature file (NFD's local source, features.d).

The format is NFD's (knowledge.fleet cites it): one ``<namespace>/<name>=<value>`` per line,
``#`` comment lines (never starting ``# +``, NFD's directive prefix), at most 64 KiB. Every
label is checked against Kubernetes' label syntax before it is written.

Labels (``NS`` is the namespace, by default ``kvmprobe.feature.node.kubernetes.io``: a
subdomain of NFD's own feature namespace, which nfd-master always publishes, in every
version and whatever ``-deny-label-ns`` says):

==================================  ===========================================================
NS/kvm-usable=true|false            KVM answers the expected API version and a VM can be made
NS/api-version=12                   KVM_GET_API_VERSION (absent when unknown)
NS/irqchip=kernel                   the VMM set-up the guest labels describe
NS/guest-x86-64-level=3             the guest's x86-64 psABI level, 0..4 (node affinity Gt/Lt);
                                    absent when unknown
NS/guest-x86-64-v1 ... -vN=true     one label for each level the guest reaches (nodeSelector)
NS/host-x86-64-level=4              the host CPU's own level, 0..4
NS/guest-cpuid.<feature>=true       each CPUID feature a guest can be given
NS/guest-msr.<bit>=true             each feature-MSR bit a guest is given (KVM reports it set
                                    and a vCPU takes it), by QEMU's name where there is one
                                    (guest-msr.mds-no)
NS/unknown-features=N               how many features are unknown (only when N > 0)
NS/unknown-msr-bits=N               how many feature-MSR bits KVM reports set are unknown
                                    (only when N > 0)
NS/probe-errors=N                   how many probe steps failed (only when N > 0)
==================================  ===========================================================

A feature or MSR bit a guest cannot be given, or whose answer is unknown, has no label: a node
selector on ``guest-cpuid.<feature>: "true"`` (or ``guest-msr.<bit>``) only matches nodes where
KVM is known to give it.
"""

from __future__ import annotations

import re

from kvmprobe.analysis.fleet_facts import HostFacts, SetupFacts
from kvmprobe.frozen import frozen
from kvmprobe.knowledge.fleet import (
    DNS_LABEL_MAX,
    LABEL_NAME_MAX,
    LABEL_PREFIX_MAX,
    LABEL_VALUE_MAX,
    NFD_ALWAYS_ALLOWED,
    NFD_DENIED,
    NFD_DIRECTIVE_PREFIX,
    NFD_MAX_FILE_BYTES,
)
from kvmprobe.vocab import PsabiLevel

DEFAULT_NAMESPACE = "kvmprobe.feature.node.kubernetes.io"

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid label name (the part after the slash), or None."""
    if not name:
        return "the name is empty"
    if len(name) > LABEL_NAME_MAX:
        return f"the name has {len(name)} characters (at most {LABEL_NAME_MAX})"
    if not _NAME.fullmatch(name):
        return (
            "a name has letters, digits, '-', '_' and '.', and starts and ends with a letter "
            "or digit"
        )
    return None


def value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if len(value) > LABEL_VALUE_MAX:
        return f"the value has {len(value)} characters (at most {LABEL_VALUE_MAX})"
    if value and not _NAME.fullmatch(value):
        return (
            "a value has letters, digits, '-', '_' and '.', and starts and ends with a letter "
            "or digit"
        )
    return None


def _under(ns: str, domain: str) -> bool:
    return ns == domain or ns.endswith("." + domain)


def namespace_problem(ns: str) -> str | None:
    """Why ``ns`` cannot be the namespace of NFD labels, or None: it must be a DNS subdomain
    (lower-case labels of letters, digits and '-', joined by dots, at most 253 characters)
    that nfd-master does not refuse (kubernetes.io and its subdomains, except NFD's own
    feature and profile namespaces)."""
    if not ns:
        return "NFD needs a namespace on every label"
    if len(ns) > LABEL_PREFIX_MAX:
        return f"the namespace has {len(ns)} characters (at most {LABEL_PREFIX_MAX})"
    for part in ns.split("."):
        if len(part) > DNS_LABEL_MAX or not _DNS_LABEL.fullmatch(part):
            return (
                "a namespace is a DNS subdomain: lower-case letters, digits and '-' in dot-"
                "separated parts of 1 to 63 characters, each starting and ending with a "
                "letter or digit"
            )
    denied = any(_under(ns, d) for d in NFD_DENIED)
    allowed = any(_under(ns, a) for a in NFD_ALWAYS_ALLOWED)
    if denied and not allowed:
        return f"nfd-master never publishes labels under {ns} (kubernetes.io is reserved)"
    return None


def label_problem(key: str, value: str) -> str | None:
    """Why ``key=value`` is not a label NFD publishes, or None."""
    ns, slash, name = key.partition("/")
    if not slash:
        return "the key has no namespace"
    return namespace_problem(ns) or name_problem(name) or value_problem(value)


@frozen
class NfdFile:
    labels: tuple[tuple[str, str], ...]
    #: feature names that could not be labels (invalid name or too long), left out
    skipped: tuple[str, ...]

    def text(self, header: tuple[str, ...] = ()) -> str:
        lines = [f"# {h}" for h in header]
        lines += [f"{k}={v}" for k, v in self.labels]
        return "\n".join(lines) + "\n"


def _bool(v: bool) -> str:
    return "true" if v else "false"


def nfd_labels(facts: HostFacts, setup: SetupFacts, namespace: str = DEFAULT_NAMESPACE) -> NfdFile:
    """The labels for one host in one set-up. Raises ValueError for a bad namespace."""
    problem = namespace_problem(namespace)
    if problem:
        raise ValueError(problem)
    out: list[tuple[str, str]] = []
    skipped: list[str] = []

    def add(name: str, value: str) -> bool:
        if name_problem(name) or value_problem(value):
            return False
        out.append((f"{namespace}/{name}", value))
        return True

    add("kvm-usable", _bool(facts.usable))
    if facts.api_version is not None:
        add("api-version", str(facts.api_version))
    add("irqchip", setup.irqchip.value)
    if setup.level is not None:
        add("guest-x86-64-level", str(setup.level.rank))
        for level in PsabiLevel.levels():
            if setup.level.rank >= level.rank:
                add(f"guest-{level.value}", "true")
    if facts.host_level is not None:
        add("host-x86-64-level", str(facts.host_level.rank))
    for f in setup.features:
        if f.effective is True and not add(f"guest-cpuid.{f.name}", "true"):
            skipped.append(f.name)
    for b in facts.msr_advertised:
        if b.effective is True and not add(f"guest-msr.{b.name}", "true"):
            skipped.append(b.name)
    if setup.unknown:
        add("unknown-features", str(len(setup.unknown)))
    msr_unknown = sum(b.effective is None for b in facts.msr_advertised)
    if msr_unknown:
        add("unknown-msr-bits", str(msr_unknown))
    if facts.errors:
        add("probe-errors", str(len(facts.errors)))
    return NfdFile(tuple(out), tuple(skipped))


def check_size(text: str) -> str | None:
    """Why nfd-worker would ignore a file with this text (too large), or None."""
    size = len(text.encode("utf-8"))
    if size > NFD_MAX_FILE_BYTES:
        return f"{size} bytes, more than the {NFD_MAX_FILE_BYTES} nfd-worker reads"
    return None


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def header_lines(facts: HostFacts) -> tuple[str, ...]:
    """Comment lines naming where the labels came from: one line each, never an NFD
    directive."""
    lines = (
        "node-feature-discovery labels written by kvmprobe (kvmprobe nfd)",
        _printable(
            f"source: {facts.source}; recorded {facts.recorded_at or 'at an unknown time'}; "
            f"kernel {facts.kernel_release or 'unknown'}"
        ),
    )
    return tuple(line for line in lines if not f"# {line}".startswith(NFD_DIRECTIVE_PREFIX))
