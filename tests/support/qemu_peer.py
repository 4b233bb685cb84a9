"""QEMU as a peer: ask QEMU what *it* would give a ``-cpu host`` guest on this host.

kvmprobe computes the effective CPUID features of a KVM guest from
``KVM_GET_SUPPORTED_CPUID`` plus documented quirks.  QEMU applies its own fix-ups to the
same ioctl result (``kvm_arch_get_supported_cpuid()`` and friends, see
``tests/peers/qemu_policy.md``).  This module starts QEMU with KVM and no guest,
asks ``query-cpu-model-expansion`` for the ``host`` model over QMP and returns the
property dictionary, so tests can cross-check kvmprobe's answers against QEMU's.

Stdlib only, so it runs wherever the tests run.  Command line, chosen after reading
QEMU's source and comparing runs (details in ``qemu_policy.md``)::

    qemu-system-x86_64 -machine none -accel kvm,kernel-irqchip=on|split|off \\
        -nodefaults -no-user-config -display none -S -qmp stdio

``-machine none`` is enough: QEMU creates (or does not create) the in-kernel irqchip in
the KVM accelerator's init, before any machine code runs and long before QMP answers,
and the expansion reads only that global state.  No vCPU is created, so nothing can
fail on a host whose KVM refuses some MSR value at vCPU reset.

Regenerate the recorded answers (``recorded/qemu-host-<irqchip>.json``) with::

    PYTHONPATH=tests python -m support.qemu_peer record
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import json
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "IRQCHIP_MODES",
    "RECORDED_DIR",
    "Expansion",
    "QemuError",
    "QemuTimeout",
    "QemuUnavailable",
    "build_argv",
    "capture_expansion",
    "find_qemu",
    "host_cpu_expansion",
    "load_recorded",
    "qemu_version",
    "record",
]

#: kvmprobe's irqchip mode name -> QEMU's ``kernel-irqchip`` accelerator property.
IRQCHIP_MODES: dict[str, str] = {"kernel": "on", "split": "split", "userspace": "off"}

#: Where the answers captured on a real host are kept.
RECORDED_DIR = Path(__file__).resolve().parent.parent / "peers" / "recorded"

#: Schema tag of the recorded files.
RECORD_SCHEMA = "kvmprobe.qemu-peer/1"

#: Environment variable naming the QEMU binary to use (overrides the PATH search).
QEMU_ENV = "KVMPROBE_QEMU"

#: The KVM device QEMU will open; checked before QEMU is started (tests may point it
#: elsewhere).
KVM_DEVICE = "/dev/kvm"

_QEMU_NAMES = ("qemu-system-x86_64", "qemu-kvm")
_QEMU_EXTRA_PATHS = ("/usr/libexec/qemu-kvm",)  # RHEL/Fedora install it here
_VERSION_RE = re.compile(r"version\s+(\d+)\.(\d+)(?:\.(\d+))?")
# Fragments of QEMU's stderr that mean "KVM cannot be used here" rather than a bug in
# how we called QEMU.
_KVM_UNAVAILABLE_RE = re.compile(
    r"kvm|irqchip|accelerator|/dev/kvm|permission denied|operation not permitted",
    re.IGNORECASE,
)
_GRACE_SECONDS = 2.0


class QemuError(RuntimeError):
    """QEMU ran but did not give an answer (QMP error, early exit, protocol trouble)."""


class QemuUnavailable(QemuError):
    """QEMU or KVM cannot be used on this machine; ``reason`` says why (tests skip)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QemuTimeout(QemuError):
    """QEMU did not answer in time.  Not a subclass of QemuUnavailable: a hang is a bug."""


@dataclass(frozen=True)
class Expansion:
    """One answer of ``query-cpu-model-expansion`` with everything needed to reproduce it."""

    irqchip: str
    props: dict[str, Any]
    model: str
    expansion_type: str
    qemu: str
    version: tuple[int, int, int]
    package: str
    argv: list[str]
    seconds: float
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON document stored in ``recorded/`` (stable key order, no host paths)."""
        argv = [Path(self.argv[0]).name, *self.argv[1:]]
        return {
            "schema": RECORD_SCHEMA,
            "irqchip": self.irqchip,
            "qemu": {
                "binary": Path(self.qemu).name,
                "version": list(self.version),
                "package": self.package,
            },
            "argv": argv,
            "qmp": _expansion_command(self.model, self.expansion_type),
            "host": _host_facts(),
            "recorded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(self.seconds, 3),
            "stderr": self.stderr,
            "model": {"name": self.model, "props": dict(sorted(self.props.items()))},
        }


# --------------------------------------------------------------------------- discovery


def find_qemu() -> str | None:
    """Path of an x86-64 system QEMU, or None.

    ``$KVMPROBE_QEMU`` wins when set (an empty or non-executable value means "none").
    Otherwise ``qemu-system-x86_64`` / ``qemu-kvm`` on PATH, then ``/usr/libexec/qemu-kvm``.
    """
    forced = os.environ.get(QEMU_ENV)
    if forced is not None:
        path = shutil.which(forced) if forced else None
        return path
    for name in _QEMU_NAMES:
        path = shutil.which(name)
        if path:
            return path
    for candidate in _QEMU_EXTRA_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def qemu_version(qemu: str) -> tuple[int, int, int]:
    """``(major, minor, micro)`` from ``qemu --version``; QemuUnavailable if it won't run."""
    try:
        proc = subprocess.run(
            [qemu, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise QemuUnavailable(f"cannot run {qemu} --version: {exc}") from exc
    match = _VERSION_RE.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        text = (proc.stdout + proc.stderr).strip()[:200]
        raise QemuUnavailable(f"{qemu} --version gave no version (exit {proc.returncode}): {text}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def build_argv(
    qemu: str,
    irqchip: str = "kernel",
    *,
    machine: str = "none",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The QEMU command line used for an expansion (raises ValueError for a bad irqchip)."""
    mode = _irqchip_property(irqchip)
    return [
        qemu,
        "-machine",
        machine,
        "-accel",
        f"kvm,kernel-irqchip={mode}",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        *extra_args,
        "-qmp",
        "stdio",
    ]


# --------------------------------------------------------------------------- the run


def host_cpu_expansion(
    irqchip: str = "kernel",
    *,
    qemu: str | None = None,
    timeout: float = 60.0,
    machine: str = "none",
    model: str = "host",
    expansion_type: str = "full",
    extra_args: Sequence[str] = (),
) -> dict[str, object]:
    """QEMU's ``query-cpu-model-expansion`` of ``model`` (``host``) with KVM and ``irqchip``.

    ``irqchip`` is kvmprobe's mode name: ``kernel``, ``split`` or ``userspace``.
    Returns the ``props`` dict (QEMU property name -> value; aliases such as
    ``kvm_pv_unhalt`` next to ``kvm-pv-unhalt`` included, exactly as QEMU lists them).
    QEMU is always terminated and reaped before this returns or raises.

    Raises ValueError (bad irqchip), QemuUnavailable (no QEMU, no usable KVM, or KVM
    lacks the requested irqchip mode), QemuTimeout, QemuError.
    """
    return capture_expansion(
        irqchip,
        qemu=qemu,
        timeout=timeout,
        machine=machine,
        model=model,
        expansion_type=expansion_type,
        extra_args=extra_args,
    ).props


def capture_expansion(
    irqchip: str = "kernel",
    *,
    qemu: str | None = None,
    timeout: float = 60.0,
    machine: str = "none",
    model: str = "host",
    expansion_type: str = "full",
    extra_args: Sequence[str] = (),
) -> Expansion:
    """Like host_cpu_expansion() but returns the whole Expansion (version, argv, timing)."""
    _irqchip_property(irqchip)  # ValueError first, before anything is looked up
    if expansion_type not in ("full", "static"):
        raise ValueError(f"expansion_type must be 'full' or 'static', not {expansion_type!r}")
    if qemu is None:
        qemu = find_qemu()
        if qemu is None:
            raise QemuUnavailable(
                "qemu-system-x86_64 not found (install it, e.g. apt-get install "
                f"qemu-system-x86, or set ${QEMU_ENV})"
            )
    _check_kvm_device()
    version = qemu_version(qemu)
    argv = build_argv(qemu, irqchip, machine=machine, extra_args=extra_args)
    started = time.monotonic()
    with _QmpSession(argv, deadline=started + timeout) as session:
        package = session.greet()
        session.command("qmp_capabilities")
        answer = session.command(**_expansion_command(model, expansion_type))
        session.quit()
    seconds = time.monotonic() - started
    props = answer.get("model", {}).get("props") if isinstance(answer, dict) else None
    if not isinstance(props, dict):
        raise QemuError(f"query-cpu-model-expansion gave no props: {answer!r:.300}")
    return Expansion(
        irqchip=irqchip,
        props=props,
        model=model,
        expansion_type=expansion_type,
        qemu=qemu,
        version=version,
        package=package,
        argv=argv,
        seconds=seconds,
        stderr=session.stderr_text,
    )


def load_recorded(irqchip: str, directory: Path | None = None) -> dict[str, Any]:
    """The recorded document for ``irqchip`` (its ``["model"]["props"]`` are the props)."""
    _irqchip_property(irqchip)
    path = (directory or RECORDED_DIR) / f"qemu-host-{irqchip}.json"
    with path.open(encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    if doc.get("schema") != RECORD_SCHEMA:
        raise ValueError(f"{path}: schema {doc.get('schema')!r}, expected {RECORD_SCHEMA!r}")
    return doc


def record(directory: Path | None = None, *, qemu: str | None = None) -> list[Path]:
    """Capture all three irqchip modes and write ``qemu-host-<irqchip>.json`` files."""
    out_dir = directory or RECORDED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for irqchip in IRQCHIP_MODES:
        expansion = capture_expansion(irqchip, qemu=qemu)
        path = out_dir / f"qemu-host-{irqchip}.json"
        path.write_text(json.dumps(expansion.to_record(), indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------- internals


def _irqchip_property(irqchip: str) -> str:
    try:
        return IRQCHIP_MODES[irqchip]
    except (KeyError, TypeError):
        raise ValueError(
            f"irqchip must be one of {', '.join(IRQCHIP_MODES)}; got {irqchip!r}"
        ) from None


def _expansion_command(model: str, expansion_type: str) -> dict[str, Any]:
    return {
        "execute": "query-cpu-model-expansion",
        "arguments": {"type": expansion_type, "model": {"name": model}},
    }


def _check_kvm_device() -> None:
    device = KVM_DEVICE
    if not os.path.exists(device):
        raise QemuUnavailable(f"{device} does not exist (KVM module not loaded, or no KVM here)")
    if not os.access(device, os.R_OK | os.W_OK):
        raise QemuUnavailable(f"no read/write access to {device} (join the kvm group?)")


def _host_facts() -> dict[str, str]:
    facts = {"kernel": platform.release(), "machine": platform.machine()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "model name", "cpu family", "model") and key not in facts:
                facts[key] = value.strip()
            if key == "flags":
                break
    return facts


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn: make QEMU die if we die (QEMU ignores EOF on a stdio QMP monitor)."""
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent is already gone
        os._exit(1)


class _QmpSession:
    """A QEMU child with QMP on stdin/stdout; always killed and reaped on exit."""

    def __init__(self, argv: list[str], *, deadline: float) -> None:
        self._argv = argv
        self._deadline = deadline
        self._buffer = b""
        # A file, not a pipe: a full pipe could block QEMU.  Closed in close().
        self._stderr_file = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc: subprocess.Popen[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._next_id = 0
        self.stderr_text = ""

    def __enter__(self) -> _QmpSession:
        parent = os.getpid()
        try:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr_file,
                close_fds=True,
                preexec_fn=lambda: _die_with_parent(parent),
            )
        except OSError as exc:
            self._stderr_file.close()
            raise QemuUnavailable(f"cannot start {self._argv[0]}: {exc}") from exc
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- protocol

    def greet(self) -> str:
        """Read the QMP greeting; returns QEMU's package string (may be empty)."""
        greeting = self._read_message()
        if "QMP" not in greeting:
            raise QemuError(f"unexpected QMP greeting: {greeting!r:.300}")
        version = greeting["QMP"].get("version", {})
        return str(version.get("package", "")).strip()

    def command(self, execute: str, arguments: dict[str, Any] | None = None) -> Any:
        self._next_id += 1
        ident = f"kvmprobe-{self._next_id}"
        message: dict[str, Any] = {"execute": execute, "id": ident}
        if arguments is not None:
            message["arguments"] = arguments
        self._send(message)
        while True:
            reply = self._read_message()
            if "event" in reply:
                continue
            if reply.get("id") != ident:
                continue
            if "error" in reply:
                error = reply["error"]
                raise QemuError(f"QMP {execute} failed: {error.get('class')}: {error.get('desc')}")
            return reply.get("return")

    def quit(self) -> None:
        """Ask QEMU to exit and wait a little for it (close() still enforces it)."""
        with contextlib.suppress(QemuError, OSError):
            self._send({"execute": "quit"})
        assert self._proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=max(0.0, min(_GRACE_SECONDS, self._remaining())))

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            self._raise_exited(f"QEMU closed its QMP input ({exc})")

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _read_message(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        assert self._selector is not None
        while b"\n" not in self._buffer:
            remaining = self._remaining()
            if remaining <= 0:
                raise QemuTimeout(f"no QMP answer from QEMU in time: {' '.join(self._argv)}")
            if not self._selector.select(timeout=remaining):
                continue
            try:
                chunk = os.read(self._proc.stdout.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self._raise_exited("QEMU exited before answering")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QemuError(f"QEMU wrote something that is not QMP: {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise QemuError(f"QEMU wrote a QMP message that is not an object: {message!r:.200}")
        return message

    def _raise_exited(self, what: str) -> NoReturn:
        assert self._proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=max(0.1, min(_GRACE_SECONDS, self._remaining())))
        self.stderr_text = self._read_stderr()
        detail = self.stderr_text.strip() or "(nothing on stderr)"
        message = f"{what} (exit status {self._proc.returncode}): {detail}"
        if _KVM_UNAVAILABLE_RE.search(self.stderr_text):
            raise QemuUnavailable(message)
        raise QemuError(message)

    def _read_stderr(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr_file.seek(0)
            return self._stderr_file.read().decode(errors="replace")
        return self.stderr_text

    def close(self) -> None:
        """Terminate (TERM, then KILL) and reap QEMU; idempotent."""
        proc = self._proc
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
                try:
                    proc.wait(timeout=_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(OSError):
                        proc.kill()
                    proc.wait()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if not self._stderr_file.closed:
            self.stderr_text = self._read_stderr()
            self._stderr_file.close()


# --------------------------------------------------------------------------- CLI


def _main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args[:1] == ["record"]:
        out = Path(args[1]) if len(args) > 1 else None
        try:
            for path in record(out):
                print(path)
        except QemuUnavailable as exc:
            print(f"qemu peer: unavailable: {exc.reason}", file=sys.stderr)
            return 3
        return 0
    if args[:1] == ["expand"] and len(args) <= 2:
        irqchip = args[1] if len(args) > 1 else "kernel"
        try:
            expansion = capture_expansion(irqchip)
        except QemuUnavailable as exc:
            print(f"qemu peer: unavailable: {exc.reason}", file=sys.stderr)
            return 3
        print(json.dumps(expansion.to_record(), indent=1))
        return 0
    print("usage: qemu.py record [DIR] | expand [kernel|split|userspace]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
