"""Tests of the QEMU peer harness (tests/support/qemu_peer.py), not of kvmprobe itself.

Three kinds of test:

* argument checks and a fake QEMU (a small Python script speaking just enough QMP):
  they run everywhere and pin down the error classes and that QEMU is always reaped;
* the recorded answers in tests/peers/recorded/: shape and the irqchip differences;
* live runs of the real qemu-system-x86_64 with KVM (marker ``qemu``): skipped with the
  reason when QEMU or a usable /dev/kvm is missing.  ``KVMPROBE_REQUIRE_QEMU=1`` turns
  every such skip into a failure; ``KVMPROBE_REQUIRE_LIVE=1`` does so when QEMU is
  installed but KVM is not usable.

The policy the assertions rely on is written up, with QEMU source locations, in
tests/peers/qemu_policy.md.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from support import qemu_peer as peer

MODES = ("kernel", "split", "userspace")

# Properties whose value QEMU derives from the irqchip mode (qemu_policy.md, "irqchip").
IRQCHIP_DEPENDENT = {
    "x2apic",
    "kvm-pv-unhalt",
    "kvm_pv_unhalt",
    "kvm-msi-ext-dest-id",
    "kvm_msi_ext_dest_id",
    "tsc-deadline",
    "tsc_deadline",
}

WELL_KNOWN_BOOL_PROPS = (
    "tsc-deadline",
    "x2apic",
    "kvm-pv-unhalt",
    "kvm-msi-ext-dest-id",
    "kvm-hint-dedicated",
    "monitor",
    "hypervisor",
    "arat",
    "invtsc",
    "pmu",
    "migratable",
    "host-phys-bits",
    "kvmclock",
    "svm",
    "vmx",
    "topoext",
)

KVM_CHECK_EXTENSION = 0xAE03
KVM_GET_SUPPORTED_CPUID = 0xC008AE05  # _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
KVM_CAP_TSC_DEADLINE_TIMER = 72


# --------------------------------------------------------------------------- helpers


def _unavailable(reason: str, *, kvm_problem: bool) -> NoReturn:
    """Skip, or fail when the environment says QEMU/KVM must be there."""
    if os.environ.get("KVMPROBE_REQUIRE_QEMU") == "1" or (
        kvm_problem and os.environ.get("KVMPROBE_REQUIRE_LIVE") == "1"
    ):
        pytest.fail(f"QEMU peer required but unavailable: {reason}")
    pytest.skip(f"QEMU peer unavailable: {reason}")


def _children() -> set[int]:
    """PIDs whose parent is this process (zombies included: they are not reaped yet)."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." -- comm may contain spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer exists at all (a zombie still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _dead(pid: int) -> bool:
    """True once ``pid`` has exited (gone, or a zombie waiting for whoever reaps orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _wait_dead(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _dead(pid):
            return True
        time.sleep(0.02)
    return _dead(pid)


def _kvm_fd() -> int | None:
    try:
        return os.open(peer.KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None


def _kgsc_register(function: int, index: int, register: int) -> int | None:
    """One register (0=EAX..3=EDX) of KVM_GET_SUPPORTED_CPUID, or None without KVM."""
    fd = _kvm_fd()
    if fd is None:
        return None
    try:
        nent = 64
        while True:
            buf = bytearray(8 + 40 * nent)
            struct.pack_into("II", buf, 0, nent, 0)
            try:
                fcntl.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf, True)
            except OSError as exc:
                if exc.errno == errno.E2BIG and nent < 4096:
                    nent *= 2
                    continue
                raise
            for i in range(struct.unpack_from("I", buf, 0)[0]):
                fn, idx, _flags, *regs = struct.unpack_from("7I", buf, 8 + 40 * i)
                if (fn, idx) == (function, index):
                    return int(regs[register])
            return 0
    finally:
        os.close(fd)


def _check_extension(cap: int) -> int | None:
    fd = _kvm_fd()
    if fd is None:
        return None
    try:
        return int(fcntl.ioctl(fd, KVM_CHECK_EXTENSION, cap))
    finally:
        os.close(fd)


# A stand-in for qemu-system-x86_64: enough of --version and QMP to drive the harness.
FAKE_QEMU = textwrap.dedent(
    """\
    import json, os, signal, sys, time

    mode = os.environ.get("FAKE_QEMU_MODE", "ok")
    if sys.argv[1:] == ["--version"]:
        print("QEMU emulator version 9.8.7 (fake)")
        sys.exit(0)
    pidfile = os.environ.get("FAKE_QEMU_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as fh:
            fh.write(str(os.getpid()))
    if mode == "no-kvm":
        sys.stderr.write("Could not access KVM kernel module: No such file or directory\\n")
        sys.stderr.write("qemu-system-x86_64: failed to initialize kvm: No such file\\n")
        sys.exit(1)
    if mode == "hang":  # says nothing and ignores SIGTERM: only SIGKILL ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        sys.exit(0)

    def send(message):
        sys.stdout.write(json.dumps(message) + "\\n")
        sys.stdout.flush()

    send({"QMP": {"version": {"qemu": {"major": 9, "minor": 8, "micro": 7},
                              "package": "fake"}, "capabilities": []}})
    if mode == "garbage":
        sys.stdout.write("this is not QMP\\n")
        sys.stdout.flush()
        time.sleep(30)
        sys.exit(0)
    accel = sys.argv[sys.argv.index("-accel") + 1]
    for line in sys.stdin:
        request = json.loads(line)
        execute, ident = request["execute"], request.get("id")
        send({"event": "FAKE_EVENT", "data": {}})  # events must be skipped
        if execute == "query-cpu-model-expansion":
            if mode == "qmp-error":
                send({"error": {"class": "GenericError", "desc": "no such model"}, "id": ident})
                continue
            props = {"accel": accel, "x2apic": not accel.endswith("=off"), "argv": sys.argv[1:]}
            send({"return": {"model": {"name": "host", "props": props}}, "id": ident})
        else:
            send({"return": {}, "id": ident})
        if execute == "quit":
            break
    """
)


@pytest.fixture
def fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Path of an executable fake QEMU; KVM_DEVICE points at a plain file it can 'open'."""
    script = tmp_path / "fake-qemu"
    script.write_text(f"#!{sys.executable}\n{FAKE_QEMU}", encoding="utf-8")
    script.chmod(0o755)
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    monkeypatch.setattr(peer, "KVM_DEVICE", str(device))
    monkeypatch.setenv("FAKE_QEMU_PIDFILE", str(tmp_path / "pid"))
    yield script


def _fake_pid(fake_qemu: Path) -> int:
    return int((fake_qemu.parent / "pid").read_text())


# --------------------------------------------------------------------------- no QEMU needed


@pytest.mark.parametrize("bad", ["", "on", "off", "KERNEL", "full", "none", None, 1])
def test_invalid_irqchip_raises_value_error(bad: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup() -> str:
        raise AssertionError("the irqchip must be checked before QEMU is looked for")

    monkeypatch.setattr(peer, "find_qemu", no_lookup)
    with pytest.raises(ValueError, match="irqchip"):
        peer.host_cpu_expansion(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="irqchip"):
        peer.build_argv("qemu-system-x86_64", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "value"), [("kernel", "on"), ("split", "split"), ("userspace", "off")]
)
def test_argv_maps_irqchip_to_kernel_irqchip(mode: str, value: str) -> None:
    argv = peer.build_argv("/x/qemu-system-x86_64", mode)
    assert argv[0] == "/x/qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == f"kvm,kernel-irqchip={value}"
    assert argv[argv.index("-machine") + 1] == "none"
    assert argv[-2:] == ["-qmp", "stdio"]
    assert {"-nodefaults", "-no-user-config", "-S"} <= set(argv)


def test_no_qemu_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(peer.QEMU_ENV, "")
    assert peer.find_qemu() is None
    with pytest.raises(peer.QemuUnavailable, match="not found") as info:
        peer.host_cpu_expansion("kernel")
    assert "qemu-system-x86" in info.value.reason


def test_env_override_names_the_binary(fake_qemu: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(peer.QEMU_ENV, str(fake_qemu))
    assert peer.find_qemu() == str(fake_qemu)
    monkeypatch.setenv(peer.QEMU_ENV, str(fake_qemu.parent / "missing"))
    assert peer.find_qemu() is None


def test_missing_kvm_device_is_unavailable(
    fake_qemu: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peer, "KVM_DEVICE", str(tmp_path / "no-such-kvm"))
    with pytest.raises(peer.QemuUnavailable, match="does not exist"):
        peer.host_cpu_expansion("kernel", qemu=str(fake_qemu))
    assert not (tmp_path / "pid").exists(), "QEMU must not even be started"


def test_fake_qemu_round_trip(fake_qemu: Path) -> None:
    before = _children()
    expansion = peer.capture_expansion("userspace", qemu=str(fake_qemu), timeout=20)
    assert expansion.version == (9, 8, 7)
    assert expansion.package == "fake"
    assert expansion.props["accel"] == "kvm,kernel-irqchip=off"
    assert expansion.props["x2apic"] is False
    assert expansion.argv[1:] == peer.build_argv("q", "userspace")[1:]
    assert _children() == before
    assert _gone(_fake_pid(fake_qemu))


def test_fake_qemu_without_kvm_is_unavailable(
    fake_qemu: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_QEMU_MODE", "no-kvm")
    before = _children()
    with pytest.raises(peer.QemuUnavailable, match="failed to initialize kvm"):
        peer.host_cpu_expansion("kernel", qemu=str(fake_qemu), timeout=20)
    assert _children() == before


@pytest.mark.parametrize(
    ("mode", "match"), [("qmp-error", "no such model"), ("garbage", "not QMP")]
)
def test_fake_qemu_errors_are_not_skips(
    fake_qemu: Path, monkeypatch: pytest.MonkeyPatch, mode: str, match: str
) -> None:
    monkeypatch.setenv("FAKE_QEMU_MODE", mode)
    before = _children()
    with pytest.raises(peer.QemuError, match=match) as info:
        peer.host_cpu_expansion("split", qemu=str(fake_qemu), timeout=20)
    assert not isinstance(info.value, peer.QemuUnavailable)
    assert _children() == before
    assert _gone(_fake_pid(fake_qemu))


def test_hung_qemu_is_killed_and_reaped(fake_qemu: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_QEMU_MODE", "hang")
    monkeypatch.setattr(peer, "_GRACE_SECONDS", 0.3)
    before = _children()
    started = time.monotonic()
    with pytest.raises(peer.QemuTimeout):
        peer.host_cpu_expansion("kernel", qemu=str(fake_qemu), timeout=0.5)
    # timeout + SIGTERM grace (ignored by the fake) + SIGKILL, with room for a slow CI.
    assert time.monotonic() - started < 0.5 + 2 * peer._GRACE_SECONDS + 3
    assert _children() == before
    assert _gone(_fake_pid(fake_qemu))


def test_qemu_dies_with_its_parent(fake_qemu: Path, tmp_path: Path) -> None:
    """If the process driving QEMU is SIGKILLed, QEMU must not linger (PR_SET_PDEATHSIG)."""
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from support import qemu_peer as q; "
            "q.KVM_DEVICE = sys.argv[2]; q.host_cpu_expansion(qemu=sys.argv[3], timeout=60)",
            str(Path(peer.__file__).resolve().parent.parent),
            peer.KVM_DEVICE,
            str(fake_qemu),
        ],
        env={**os.environ, "FAKE_QEMU_MODE": "hang"},
    )
    try:
        pidfile = tmp_path / "pid"
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        qemu_pid = _fake_pid(fake_qemu)
        assert not _gone(qemu_pid)
    finally:
        driver.kill()
        driver.wait()
    assert _wait_dead(qemu_pid, 10), f"fake QEMU {qemu_pid} outlived its parent"


# --------------------------------------------------------------------------- recorded answers


def _recorded() -> dict[str, dict[str, object]]:
    return {mode: peer.load_recorded(mode) for mode in MODES}


def test_recorded_files_have_the_documented_shape() -> None:
    for mode, doc in _recorded().items():
        assert doc["irqchip"] == mode
        qemu = doc["qemu"]
        assert isinstance(qemu, dict) and len(qemu["version"]) == 3
        assert doc["argv"] == ["qemu-system-x86_64", *peer.build_argv("q", mode)[1:]]
        assert doc["qmp"] == {
            "execute": "query-cpu-model-expansion",
            "arguments": {"type": "full", "model": {"name": "host"}},
        }
        model = doc["model"]
        assert isinstance(model, dict) and model["name"] == "host"
        props = model["props"]
        assert isinstance(props, dict)
        for name in WELL_KNOWN_BOOL_PROPS:
            assert isinstance(props[name], bool), (mode, name)


def test_recorded_irqchip_differences() -> None:
    props = {mode: doc["model"]["props"] for mode, doc in _recorded().items()}  # type: ignore[index]
    differing = {
        name
        for name in props["kernel"]
        if len({json.dumps(props[mode].get(name)) for mode in MODES}) > 1
    }
    assert differing <= IRQCHIP_DEPENDENT
    assert props["userspace"]["x2apic"] is False
    assert props["userspace"]["kvm-pv-unhalt"] is False
    assert [props[m]["kvm-msi-ext-dest-id"] for m in MODES] == [False, True, False]


# --------------------------------------------------------------------------- live QEMU + KVM


@pytest.fixture(scope="module")
def live() -> dict[str, peer.Expansion]:
    """One real expansion per irqchip mode (about 0.05 s each here)."""
    qemu = peer.find_qemu()
    if qemu is None:
        _unavailable(
            "qemu-system-x86_64 not found (apt-get install qemu-system-x86)", kvm_problem=False
        )
    try:
        return {mode: peer.capture_expansion(mode, qemu=qemu) for mode in MODES}
    except peer.QemuUnavailable as exc:
        _unavailable(exc.reason, kvm_problem=True)


@pytest.mark.qemu
@pytest.mark.live
def test_live_expansion_has_well_known_properties(live: dict[str, peer.Expansion]) -> None:
    for mode, expansion in live.items():
        props = expansion.props
        for name in WELL_KNOWN_BOOL_PROPS:
            assert isinstance(props.get(name), bool), (mode, name, props.get(name))
        # kvm_arch_get_supported_cpuid() ORs HYPERVISOR into 1.ECX and ARAT into 6.EAX.
        assert props["hypervisor"] is True
        assert props["arat"] is True
        # "host" is a subclass of "max": migratable=on and host-phys-bits=on by default.
        assert props["migratable"] is True
        assert props["host-phys-bits"] is True
        assert props["pmu"] is True
        # FEAT_KVM_HINTS has no_autoenable_flags = ~0: never on without asking.
        assert props["kvm-hint-dedicated"] is False
        # invtsc is in unmigratable_flags, so migratable=on drops it.
        assert props["invtsc"] is False
        # TOPOEXT is in no_autoenable_flags although QEMU calls it "supported".
        assert props["topoext"] is False
        for name in ("vendor", "model-id"):
            assert isinstance(props[name], str) and props[name], name
        for name in ("family", "model", "stepping", "level", "xlevel"):
            assert isinstance(props[name], int), name
        assert expansion.version >= (4, 0, 0)


@pytest.mark.qemu
@pytest.mark.live
def test_live_userspace_irqchip_removes_x2apic_and_pv_unhalt(
    live: dict[str, peer.Expansion],
) -> None:
    # target/i386/kvm/kvm.c, kvm_arch_get_supported_cpuid(): 1.ECX loses X2APIC and
    # 0x40000001.EAX loses KVM_FEATURE_PV_UNHALT when !kvm_irqchip_in_kernel(); split
    # counts as "in kernel" (the LAPIC is in KVM).  KVM itself always reports both.
    assert live["userspace"].props["x2apic"] is False
    assert live["userspace"].props["kvm-pv-unhalt"] is False
    for mode in ("kernel", "split"):
        assert live[mode].props["x2apic"] is True, mode
        assert live[mode].props["kvm-pv-unhalt"] is True, mode


@pytest.mark.qemu
@pytest.mark.live
def test_live_msi_ext_dest_id_only_with_split_irqchip(live: dict[str, peer.Expansion]) -> None:
    # Same function: KVM_FEATURE_MSI_EXT_DEST_ID is ORed in iff kvm_irqchip_is_split().
    assert [live[m].props["kvm-msi-ext-dest-id"] for m in MODES] == [False, True, False]


@pytest.mark.qemu
@pytest.mark.live
def test_live_tsc_deadline_follows_kgsc_and_irqchip(live: dict[str, peer.Expansion]) -> None:
    # QEMU only ever ORs TSC_DEADLINE in (in-kernel irqchip + KVM_CAP_TSC_DEADLINE_TIMER);
    # it never clears it.  From Linux 6.14 KVM_GET_SUPPORTED_CPUID reports the bit itself,
    # so QEMU then offers tsc-deadline even with a userspace irqchip.
    ecx = _kgsc_register(1, 0, 2)
    cap = _check_extension(KVM_CAP_TSC_DEADLINE_TIMER)
    if ecx is None or cap is None:
        _unavailable(f"cannot open {peer.KVM_DEVICE} from the test", kvm_problem=True)
    in_kgsc = bool(ecx & (1 << 24))
    assert live["userspace"].props["tsc-deadline"] is in_kgsc
    for mode in ("kernel", "split"):
        assert live[mode].props["tsc-deadline"] is (in_kgsc or bool(cap)), mode


@pytest.mark.qemu
@pytest.mark.live
def test_live_only_irqchip_dependent_props_differ(live: dict[str, peer.Expansion]) -> None:
    differing = {
        name
        for name in live["kernel"].props
        if len({json.dumps(live[mode].props.get(name)) for mode in MODES}) > 1
    }
    assert differing <= IRQCHIP_DEPENDENT
    assert {"x2apic", "kvm-msi-ext-dest-id"} <= differing


@pytest.mark.qemu
@pytest.mark.live
def test_live_matches_recording_on_the_recording_host(live: dict[str, peer.Expansion]) -> None:
    """Drift check: on the host and QEMU the files were recorded with, answers are equal."""
    for mode, expansion in live.items():
        doc = peer.load_recorded(mode)
        recorded_host = doc["host"]
        here = peer._host_facts()
        if (
            list(expansion.version) != doc["qemu"]["version"]  # type: ignore[index]
            or expansion.package != doc["qemu"]["package"]  # type: ignore[index]
            or recorded_host != here
        ):
            pytest.skip(f"recorded on another host or QEMU ({recorded_host}, {doc['qemu']})")
        assert expansion.props == doc["model"]["props"], mode  # type: ignore[index]


@pytest.mark.qemu
@pytest.mark.live
def test_live_qemu_is_always_reaped(live: dict[str, peer.Expansion]) -> None:
    before = _children()
    peer.host_cpu_expansion("split")
    assert _children() == before
    # Error paths: QEMU refuses the machine; QMP refuses the model; the deadline passes.
    with pytest.raises(peer.QemuError, match="machine"):
        peer.host_cpu_expansion("kernel", machine="no-such-machine")
    with pytest.raises(peer.QemuError, match="no-such-cpu"):
        peer.host_cpu_expansion("kernel", model="no-such-cpu")
    with pytest.raises(peer.QemuTimeout):
        peer.host_cpu_expansion("userspace", timeout=0.001)
    assert _children() == before


@pytest.mark.qemu
def test_live_qemu_version_is_parsed() -> None:
    qemu = peer.find_qemu()
    if qemu is None:
        _unavailable("qemu-system-x86_64 not found", kvm_problem=False)
    major, minor, micro = peer.qemu_version(qemu)
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True)
    assert f"{major}.{minor}" in out.stdout
    assert micro >= 0
