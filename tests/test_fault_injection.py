"""Fault injection on the live device: strace makes one KVM ioctl fail at a time, and every
command must still end the documented way: no traceback, a documented exit status, and the
failed step visible in the output (in ``probe_errors`` / the snapshot's ``errors``, or a
one-line error with a hint). A run that exits 0 with no trace of the failure is a silent loss.

Positions: every KVM ioctl but KVM_CHECK_EXTENSION, which is asked 512 times per fd scope; of
those, every capability kvmprobe's analysis or doctor reads, the first and last of each scope,
and a fixed sample. KVMPROBE_FAULT_SWEEP=full injects at every KVM ioctl position instead
(about 1,600 per command: minutes, not for every CI run). EIO everywhere, and a sample of other
errnos. Needs strace and /dev/kvm: skipped with the reason otherwise; KVMPROBE_REQUIRE_STRACE=1
(set by CI) makes a missing strace a failure.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmprobe.knowledge.vmm_requirements import VMMS
from kvmprobe.tables import caps_data

KVMIO_TYPE = 0xAE
CHECK_EXTENSION = 0xAE03
FULL = os.environ.get("KVMPROBE_FAULT_SWEEP") == "full"
SAMPLE_PER_SCOPE = 6
OTHER_ERRNOS = ("ENOMEM", "EFAULT", "EINVAL", "ENOTTY", "EPERM", "E2BIG", "EBADF")

#: command -> exit statuses it may end with under a failing ioctl (README "Exit status")
COMMANDS: dict[str, tuple[tuple[str, ...], frozenset[int]]] = {
    "record": (("record",), frozenset({0, 1, 3})),
    "cpuid --json": (("cpuid", "--json"), frozenset({0, 1, 3})),
    "caps --json": (("caps", "--json"), frozenset({0, 3})),
    "doctor --json": (("doctor", "--json"), frozenset({0, 3, 4, 5})),
}

_LINE = re.compile(r"ioctl\((\w+), (0x[0-9a-f]+), (0x[0-9a-f]+|\d+)")


@dataclass(frozen=True)
class Call:
    position: int  # 1-based among all ioctl calls of the process (strace's when=N)
    fd: str
    request: int
    arg: int

    @property
    def kvm(self) -> bool:
        return (self.request >> 8) & 0xFF == KVMIO_TYPE


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        if os.environ.get("KVMPROBE_REQUIRE_STRACE") == "1":
            pytest.fail("KVMPROBE_REQUIRE_STRACE=1 but strace is not installed")
        pytest.skip("strace not installed (apt-get install strace)")
    return path


def _argv(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "kvmprobe", *args, "--device", "/dev/kvm"]


def _calls(strace: str, args: tuple[str, ...]) -> list[Call]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trace"
        subprocess.run(
            [strace, "-qq", "-e", "trace=ioctl", "-e", "raw=ioctl", "-o", str(log), *_argv(args)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        lines = log.read_text().splitlines()
    out = []
    for n, line in enumerate(x for x in lines if x.startswith("ioctl(")):
        m = _LINE.match(line)
        if m:
            out.append(Call(n + 1, m.group(1), int(m.group(2), 16), int(m.group(3), 0)))
    return out


def _read_caps() -> set[int]:
    """Capabilities the analysis, quirks or doctor read (a failure there must show)."""
    names = {req.cap for vmm in VMMS for req in vmm.requirements}
    names |= {
        "KVM_CAP_TSC_DEADLINE_TIMER", "KVM_CAP_X86_DISABLE_EXITS", "KVM_CAP_EXIT_HYPERCALL",
        "KVM_CAP_DISABLE_QUIRKS2", "KVM_CAP_PMU_CAPABILITY", "KVM_CAP_EXT_EMUL_CPUID",
        "KVM_CAP_SYS_HYPERV_CPUID", "KVM_CAP_GET_MSR_FEATURES", "KVM_CAP_SYS_ATTRIBUTES",
        "KVM_CAP_MCE", "KVM_CAP_CHECK_EXTENSION_VM", "KVM_CAP_SPLIT_IRQCHIP",
    }  # fmt: skip
    return {int(getattr(caps_data, n)) for n in names if hasattr(caps_data, n)}


def positions(calls: list[Call]) -> list[int]:
    kvm = [c for c in calls if c.kvm]
    if FULL:
        return [c.position for c in kvm]
    chosen = [c.position for c in kvm if c.request != CHECK_EXTENSION]
    read = _read_caps()
    rng = random.Random(0x6B766D)
    by_fd: dict[str, list[Call]] = {}
    for c in kvm:
        if c.request == CHECK_EXTENSION:
            by_fd.setdefault(c.fd, []).append(c)
    system_fd = kvm[0].fd  # KVM_GET_API_VERSION is asked on /dev/kvm first
    for fd, calls_on_fd in by_fd.items():
        ends = [calls_on_fd[0], calls_on_fd[-1]]
        wanted = [c for c in calls_on_fd if c.arg in read and fd == system_fd]
        sample = rng.sample(calls_on_fd, min(SAMPLE_PER_SCOPE, len(calls_on_fd)))
        chosen += [c.position for c in ends + wanted + sample]
    return sorted(set(chosen))


@dataclass(frozen=True)
class Outcome:
    position: int
    errno: str
    status: int
    traceback: bool
    visible: bool
    detail: str


def _signals(name: str, stdout: str) -> object:
    """What a reader learns about failures from a command's output (compared with a run
    without injection: a fault must change it)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if name == "record":
        return (doc.get("errors"), doc.get("verification"))
    if name == "doctor --json":
        checks = [(c["id"], c["status"], c["evidence"]) for c in doc.get("checks", [])]
        return (doc.get("probe_errors"), checks)
    return (doc.get("probe_errors"), doc.get("verification"))


def _visible(name: str, status: int, stdout: str, stderr: str, baseline: object) -> bool:
    lines = stderr.strip().splitlines()
    if status != 0 and not stdout.strip():
        return any(x.startswith("kvmprobe: error: ") for x in lines) and any(
            x.startswith("hint: ") for x in lines
        )
    signals = _signals(name, stdout)
    return signals is not None and signals != baseline


def run_plain(name: str) -> object:
    args, _ = COMMANDS[name]
    r = subprocess.run(_argv(args), capture_output=True, text=True, timeout=120, check=False)
    return _signals(name, r.stdout)


def inject(strace: str, name: str, position: int, errno_name: str, baseline: object) -> Outcome:
    args, _ = COMMANDS[name]
    spec = f"inject=ioctl:error={errno_name}:when={position}"
    r = subprocess.run(
        [strace, "-qq", "-o", "/dev/null", "-e", "trace=ioctl", "-e", spec, *_argv(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Outcome(
        position,
        errno_name,
        r.returncode,
        "Traceback" in r.stderr,
        _visible(name, r.returncode, r.stdout, r.stderr, baseline),
        r.stderr.strip()[-300:],
    )


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_injected_fault_ends_the_documented_way(live_device: str, name: str) -> None:
    strace = _strace()
    calls = _calls(strace, COMMANDS[name][0])
    assert sum(c.kvm for c in calls) > 100, "the probe issues its KVM ioctls"
    chosen = positions(calls)
    jobs = [(p, "EIO") for p in chosen]
    rng = random.Random(len(chosen))
    jobs += [(p, rng.choice(OTHER_ERRNOS)) for p in rng.sample(chosen, min(10, len(chosen)))]
    baseline = run_plain(name)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        outcomes = list(pool.map(lambda j: inject(strace, name, *j, baseline), jobs))
    allowed = COMMANDS[name][1]
    tracebacks = [o for o in outcomes if o.traceback]
    wrong = [o for o in outcomes if o.status not in allowed]
    silent = [o for o in outcomes if not o.visible]
    counts = Counter(o.status for o in outcomes)
    print(
        f"\n{name}: {len(outcomes)} runs at {len(chosen)} positions "
        f"({'full sweep' if FULL else 'sampled'}); exit statuses {dict(sorted(counts.items()))}; "
        f"tracebacks {len(tracebacks)}, wrong statuses {len(wrong)}, silent losses {len(silent)}"
    )
    assert not tracebacks, tracebacks[:3]
    assert not wrong, wrong[:3]
    assert not silent, silent[:3]
