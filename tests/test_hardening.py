"""Hardening: every error the device can produce, forced; snapshot files as untrusted input
(property-based); no file-descriptor leaks, whatever fails.

Unprivileged cases really run as 'nobody' in a subprocess (we are root in CI) on device nodes
made here with mknod; the interpreter and the three libraries kvmprobe needs are made
readable to that user first. Where that is impossible the errno is simulated at the fd layer.
What tests/test_cli_caps.py and tests/test_snapshot.py already cover is not repeated."""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, RECORDED_HOSTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fakekvm import FakeKvm

from kvmprobe.analysis.doctor import diagnose
from kvmprobe.cli import main
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.kvm import abi
from kvmprobe.kvm.device import KvmDevice
from kvmprobe.kvm.probe import probe
from kvmprobe.snapshot import load

FIX_PATH = FIXTURES / RECORDED_HOSTS[0].name
FIX_TEXT = FIX_PATH.read_text()
FIX_DOC = json.loads(FIX_TEXT)
SNAP, _ = load(str(FIX_PATH))
REPO = Path(__file__).resolve().parents[1]
BOUNDED = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def run_doctor(device: str, from_file: str | None = None, as_json: bool = True) -> int:
    """``kvmprobe doctor`` in-process (JSON, or text without colour), its output passed on to
    this process's stdout/stderr; returns the exit status."""
    args = ["doctor", "--device", device, "--json" if as_json else "--no-color"]
    args += ["--from", from_file] if from_file else []
    r = CliRunner().invoke(main, args, env={"NO_COLOR": None}, catch_exceptions=False)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.exit_code


@pytest.fixture
def no_fd_leak():
    """Fails the test if it leaves a file descriptor open."""
    before = open_fds()
    yield
    assert open_fds() == before


# ============================================================================================
# 1. Device error paths, as an unprivileged user
# ============================================================================================


def _copy_libs(site: Path) -> None:
    for name in ("click", "ioctl_opt"):
        src = Path(importlib.import_module(name).__file__).parent
        shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__"))


@pytest.fixture(scope="session")
def as_nobody():
    """A function running ``python -c CODE`` as nobody with kvmprobe importable."""
    if os.geteuid() != 0:
        pytest.skip("switching to 'nobody' needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    base = Path(tempfile.mkdtemp(prefix="kvmprobe-nobody-"))
    try:
        base.chmod(0o755)
        site = base / "site"
        site.mkdir(mode=0o755)
        _copy_libs(site)
        for root, dirs, files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{REPO}:{site}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
            "COLUMNS": "100",
            "LANG": "C.UTF-8",
        }
        python = _python_for_nobody(env)

        def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [python, "-c", code, *args], user="nobody", group="nogroup" if _has_nogroup()
                else None, extra_groups=[], env=env, cwd="/", capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip

        yield run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _has_nogroup() -> bool:
    import grp

    try:
        grp.getgrnam("nogroup")
        return True
    except KeyError:
        return False


def _python_for_nobody(env: dict[str, str]) -> str:
    """An interpreter 'nobody' can execute (ours may live under /root), 3.11 or newer."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, shutil.which(f"python{wanted}"), shutil.which("python3"),
                  f"/usr/bin/python{wanted}", "/usr/bin/python3"]  # fmt: skip
    check = "import sys, kvmprobe, click, ioctl_opt; assert sys.version_info >= (3, 11)"
    for python in filter(None, candidates):
        try:
            r = subprocess.run([python, "-c", check], user="nobody", env=env, cwd="/",
                               capture_output=True, timeout=60)  # fmt: skip
        except OSError:
            continue
        if r.returncode == 0:
            return python
    pytest.skip("no Python interpreter that 'nobody' can run with kvmprobe importable")


@pytest.fixture
def node_dir():
    """A directory everybody may enter, for device nodes made with mknod."""
    path = Path(tempfile.mkdtemp(prefix="kvmprobe-nodes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def kvm_node(directory: Path, mode: int, gid: int = 0, name: str = "kvm") -> str:
    path = directory / name
    os.mknod(path, mode | stat.S_IFCHR, os.makedev(10, 232))
    os.chown(path, 0, gid)
    os.chmod(path, mode)
    return str(path)


CAPS_CLI = "import sys; from kvmprobe.cli import main; main(['caps', '--device', sys.argv[1]])"
DOCTOR_JSON = (
    "import sys; from kvmprobe.cli import main; main(['doctor', '--json', '--device', sys.argv[1]])"
)
DOCTOR_TEXT = (
    "import sys; from kvmprobe.cli import main\n"
    "main(['doctor', '--no-color', '--device', sys.argv[1]])"
)


def _one_line_error(r: subprocess.CompletedProcess[str], status: int) -> list[str]:
    assert r.returncode == status, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("kvmprobe: error: ") and lines[1].startswith("hint: ")
    assert "Traceback" not in r.stderr
    return lines


def test_nobody_owner_only_node(as_nobody, node_dir) -> None:
    node = kvm_node(node_dir, 0o600)
    lines = _one_line_error(as_nobody(CAPS_CLI, node), 4)
    assert f"permission denied opening {node}" in lines[0] and "crw-------" in lines[0]
    r = as_nobody(DOCTOR_JSON, node)
    assert r.returncode == 4, r.stderr
    doc = json.loads(r.stdout)
    checks = {c["id"]: c for c in doc["checks"]}
    access = checks["device.access"]
    assert access["status"] == "FAIL" and "EACCES" in access["evidence"]
    assert "nobody" in access["evidence"] and "crw------- root:root" in access["evidence"]
    assert "chmod 660" in access["hint"]
    assert doc["verdict"]["first_failure"] == "device.access"
    assert checks["api.version"]["status"] == "SKIP"
    # the kernel checks still ran from what /sys and /proc show
    assert checks["kernel.modules"]["status"] in ("PASS", "WARN", "FAIL")
    text = as_nobody(DOCTOR_TEXT, node)
    assert text.returncode == 4 and " FAIL  read-write access" in text.stdout
    assert "fix: " in text.stdout and "verdict: PERMISSION" in text.stdout


def test_nobody_not_in_group(as_nobody, node_dir) -> None:
    node = kvm_node(node_dir, 0o660, gid=4242)
    assert _one_line_error(as_nobody(CAPS_CLI, node), 4)
    r = as_nobody(DOCTOR_JSON, node)
    access = {c["id"]: c for c in json.loads(r.stdout)["checks"]}["device.access"]
    assert r.returncode == 4 and "not in group 4242" in access["evidence"]
    assert "usermod -aG 4242 nobody" in access["hint"]


def test_nobody_and_a_node_whose_group_is_root(as_nobody, node_dir) -> None:
    """crw-rw---- root:root opened by nobody: group read-write is there, but for root's
    group; both the command's hint and doctor's say so and suggest a dedicated kvm group."""
    node = kvm_node(node_dir, 0o660, gid=0)
    lines = _one_line_error(as_nobody(CAPS_CLI, node), 4)
    assert "crw-rw---- root:root" in lines[0]
    assert lines[1].startswith("hint: the node's group is root")
    assert f"chgrp kvm {node}" in lines[1] and "usermod -aG kvm $USER" in lines[1]
    assert "mode 0660" not in lines[1] and "-aG root" not in lines[1]
    r = as_nobody(DOCTOR_JSON, node)
    access = {c["id"]: c for c in json.loads(r.stdout)["checks"]}["device.access"]
    assert r.returncode == 4 and access["hint"].startswith("the node's group is root")
    assert "usermod -aG kvm nobody" in access["hint"] and "-aG root" not in access["hint"]


def test_nobody_cannot_reach_the_directory(as_nobody, node_dir) -> None:
    hidden = node_dir / "hidden"
    hidden.mkdir(mode=0o700)
    node = kvm_node(hidden, 0o666)
    assert _one_line_error(as_nobody(CAPS_CLI, node), 4)
    r = as_nobody(DOCTOR_JSON, node)
    exists = {c["id"]: c for c in json.loads(r.stdout)["checks"]}["device.exists"]
    assert r.returncode == 4 and exists["status"] == "FAIL" and "EACCES" in exists["evidence"]


def test_nobody_on_dev_kvm(as_nobody) -> None:
    try:
        mode = os.stat("/dev/kvm").st_mode
    except FileNotFoundError:
        pytest.skip("no /dev/kvm here")
    if mode & 0o006 == 0o006:
        pytest.skip("/dev/kvm is open to everyone here")
    _one_line_error(as_nobody(CAPS_CLI, "/dev/kvm"), 4)
    assert as_nobody(DOCTOR_JSON, "/dev/kvm").returncode == 4


def test_nobody_world_writable_node_works(as_nobody, node_dir, live_device) -> None:
    node = kvm_node(node_dir, 0o666)
    r = as_nobody(DOCTOR_JSON, node)
    assert r.returncode in (0, 5), r.stderr
    checks = {c["id"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["device.access"]["status"] == "PASS"
    assert checks["api.version"]["status"] == "PASS"


def test_nobody_missing_device(as_nobody, node_dir) -> None:
    lines = _one_line_error(as_nobody(CAPS_CLI, str(node_dir / "kvm")), 3)
    assert "does not exist" in lines[0]
    assert as_nobody(DOCTOR_JSON, str(node_dir / "kvm")).returncode == 3


# -- the same errors simulated at the fd layer ------------------------------------------------


@pytest.mark.parametrize(
    "code,status,needle",
    [(errno.EACCES, 4, "permission denied"), (errno.EPERM, 4, "permission denied"),
     (errno.EROFS, 4, "read-only"), (errno.ENXIO, 3, "no driver"), (errno.ENODEV, 3, "no driver"),
     (errno.ENOENT, 3, "does not exist"), (errno.EISDIR, 1, "directory"),
     (errno.EMFILE, 1, "cannot open"), (errno.EBUSY, 1, "cannot open"),
     (errno.ELOOP, 1, "cannot open")],
)  # fmt: skip
def test_open_errors_simulated(monkeypatch, no_fd_leak, code: int, status: int, needle: str):
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null passes the look-before-open check
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if path == "/dev/null":
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(KvmprobeError) as e:
        KvmDevice("/dev/null")
    assert e.value.status == status and needle in e.value.message and e.value.hint
    with pytest.raises(KvmprobeError):
        probe("/dev/null", ioctl=FakeKvm(SNAP))
    r = CliRunner().invoke(main, ["caps", "--device", "/dev/null"])
    assert r.exit_code == status and "Traceback" not in r.output


@pytest.mark.parametrize(
    "code,status,check",
    [(errno.EROFS, 4, "device.access"), (errno.EPERM, 4, "device.access"),
     (errno.ENXIO, 3, "device.access"), (errno.ENODEV, 3, "device.access")],
)  # fmt: skip
def test_doctor_open_errors_simulated(
    monkeypatch, capsys, node_dir, code: int, status: int, check: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    node = kvm_node(node_dir, 0o600)
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if path == node and flags & os.O_RDWR:
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    assert run_doctor(node) == status
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"]["first_failure"] == check
    access = {c["id"]: c for c in doc["checks"]}["device.access"]
    assert access["status"] == "FAIL" and errno.errorcode[code] in access["evidence"]


@pytest.mark.parametrize(
    "code,status", [(errno.ENOTTY, 1), (errno.EINVAL, 1), (errno.EIO, 3), (errno.EACCES, 4)]
)
def test_api_version_ioctl_fails(no_fd_leak, code: int, status: int) -> None:
    """ENOTTY/EINVAL: not KVM at all (1). Any other failure of the first ioctl on a device that
    opened is KVM not answering (3, as doctor says), named as that ioctl, not as an open."""
    with pytest.raises(KvmprobeError) as e:
        probe("/dev/null", ioctl=FakeKvm(SNAP, fail={"GET_API_VERSION": code}))
    assert e.value.status == status and "/dev/null" in e.value.message
    if code == errno.EIO:
        assert "KVM_GET_API_VERSION" in e.value.message and "cannot open" not in e.value.message


def test_not_kvm_paths_through_probe(tmp_path, no_fd_leak) -> None:
    """probe() itself (not only the CLI) on each wrong kind of path."""
    f = tmp_path / "file"
    f.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {str(tmp_path / "none"): 3, str(tmp_path): 1, "/dev/null": 1, str(f): 1,
             str(fifo): 1, str(f / "below-a-file"): 1}  # fmt: skip
    for path, status in cases.items():
        with pytest.raises(KvmprobeError) as e:
            probe(path)
        assert e.value.status == status, (path, e.value.message)
        assert e.value.hint


# -- an ioctl failing mid-probe ----------------------------------------------------------------

MID_PROBE = [
    # (fail, errno, exit status doctor gives, check that explains it)
    ("CREATE_VM", errno.EBUSY, 3, "api.create_vm"),
    ("CREATE_VCPU", errno.EMFILE, 3, "api.create_vcpu"),
    ("ENABLE_CAP", errno.EINVAL, 5, "vmm.cloud-hypervisor"),
    ("GET_VCPU_MMAP_SIZE", errno.EIO, 3, "api.vcpu_mmap_size"),
    # could not ask is not missing: a warning, never "Firecracker would refuse to start"
    (f"CHECK_EXTENSION:{abi.KVM_CAP_IRQCHIP}", errno.EIO, 0, None),
    ("CHECK_EXTENSION:129", errno.EIO, 0, None),
    ("GET_SUPPORTED_CPUID", errno.EFAULT, 0, None),
    ("GET_EMULATED_CPUID", errno.EIO, 0, None),
    ("GET_MSR_INDEX_LIST", errno.EIO, 0, None),
    ("GET_MSR_FEATURE_INDEX_LIST", errno.EIO, 0, None),
    ("GET_MSRS", errno.EIO, 0, None),
    ("GET_DEVICE_ATTR", errno.EIO, 0, None),
    ("X86_GET_MCE_CAP_SUPPORTED", errno.EIO, 0, None),
]


@pytest.mark.parametrize("fail,code,status,first", MID_PROBE, ids=[m[0] for m in MID_PROBE])
def test_ioctl_fails_mid_probe(no_fd_leak, fail: str, code: int, status: int, first) -> None:
    fake = FakeKvm(SNAP, fail={fail: code})
    snap = probe("/dev/null", ioctl=fake)
    assert snap.errors, "the failure is recorded"
    assert any(e.errno == code for e in snap.errors)
    for fd in fake.opened:  # every VM and vCPU fd the fake handed out was closed
        with pytest.raises(OSError):
            os.fstat(fd)
    report = diagnose(snap)
    assert report.verdict.exit_status == status
    assert report.verdict.first_failure == first
    steps = {c.id: c for c in report.checks}["api.probe_errors"]
    assert steps.status == ("PASS" if first and first.startswith(("api.", "vmm.cloud")) else "WARN")


def test_check_extension_vm_failing_is_recorded(no_fd_leak) -> None:
    """Was a bare OSError out of probe() (found here, fixed in kvm/device.py)."""
    fail = {f"CHECK_EXTENSION:{abi.KVM_CAP_CHECK_EXTENSION_VM}": errno.EIO}
    snap = probe("/dev/null", ioctl=FakeKvm(SNAP, fail=fail))
    assert snap.errors


def test_check_extension_vm_failing_does_not_leak_or_crash_doctor(monkeypatch, capsys) -> None:
    from kvmprobe.kvm import probe as device

    fail = {f"CHECK_EXTENSION:{abi.KVM_CAP_CHECK_EXTENSION_VM}": errno.EIO}
    real = device.probe
    before = open_fds()
    snap = real("/dev/null", ioctl=FakeKvm(SNAP, fail=fail))  # recorded, not raised
    step = f"KVM_CHECK_EXTENSION({abi.KVM_CAP_CHECK_EXTENSION_VM}) on system"
    assert any(e.step == step and e.errno == errno.EIO for e in snap.errors)
    assert snap.caps["vm"] is None and snap.creation["vm"] == "ok"
    assert open_fds() == before
    monkeypatch.setattr(device, "probe", lambda p, **k: real(p, ioctl=FakeKvm(SNAP, fail=fail)))
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null stands in for KVM
    status = run_doctor("/dev/null")
    doc = json.loads(capsys.readouterr().out)
    assert status == doc["verdict"]["exit_status"] == 0  # VMMs ask the /dev/kvm fd
    steps = {c["id"]: c for c in doc["checks"]}["api.probe_errors"]
    assert steps["status"] == "WARN" and step in steps["evidence"]
    assert open_fds() == before


class Interrupting:
    """Answers like FakeKvm, but raises KeyboardInterrupt on the n-th ioctl."""

    def __init__(self, n: int) -> None:
        self.fake = FakeKvm(SNAP)
        self.n = n

    def __call__(self, *args: Any) -> int:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt
        return self.fake(*args)


@pytest.mark.parametrize("n", [1, 2, 300, 520, 700, 1100, 1540, 1545, 1560])
def test_interrupt_anywhere_leaks_nothing(no_fd_leak, n: int) -> None:
    ioctl = Interrupting(n)
    with contextlib.suppress(KeyboardInterrupt):
        probe("/dev/null", ioctl=ioctl)
    for fd in ioctl.fake.opened:
        with pytest.raises(OSError):
            os.fstat(fd)


# ============================================================================================
# 2. Snapshot files are untrusted input
# ============================================================================================


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("untrusted") / "snapshot.json"


def _write(path: Path, content: str | bytes) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return str(path)


def _render_everything(snap) -> None:
    """What the commands do with an accepted snapshot must not raise either."""
    from kvmprobe.analysis.caps import cap_rows
    from kvmprobe.render import json as rj
    from kvmprobe.render.caps_report import caps_lines
    from kvmprobe.render.doctor_report import doctor_text
    from kvmprobe.render.term import Term

    rows = cap_rows(snap, None, True)
    json.dumps(rj.document("caps", snap, rj.caps_body(rows, True)))
    report = diagnose(snap)
    assert report.verdict.exit_status in (0, 3, 4, 5)
    json.loads(rj.dumps(rj.doctor_document(snap, report)))
    for term in (Term(width=100, color=True), Term(width=60)):
        text = doctor_text(snap, report, term)
        text += term.render(caps_lines(snap, rows, term, include_zero=True, arch="all"))
        text.encode("utf-8")  # nothing unencodable reaches the terminal


def assert_loads_or_clean_error(path: str) -> None:
    """load() returns a snapshot (maybe with warnings) or raises KvmprobeError naming the
    file with a hint; never any other exception."""
    try:
        snap, warnings = load(path)
    except KvmprobeError as e:
        assert path in e.message
        assert e.hint
        assert "\n" not in e.message
        assert e.status in (ExitStatus.ERROR, ExitStatus.PERMISSION)
        return
    assert all(isinstance(w, str) for w in warnings)
    _render_everything(snap)


def assert_cli_clean(path: str) -> None:
    """`kvmprobe caps --from F`: exit 0, or exit 1 with one error line and one hint line."""
    r = CliRunner().invoke(main, ["caps", "--from", path, "--no-color"])
    if r.exit_code == 0:
        return
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 1, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("kvmprobe: error: ") and path in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in r.output


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document, the document itself first."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):  # the first few entries stand for the rest
            out += _paths(v, (*prefix, i))
    return out


FIX_PATHS = _paths(FIX_DOC)
# Any text at all, "[" (rich markup), control characters and unpaired surrogates included:
# the loader refuses what is not valid text, and renderers must print the rest safely.
ANY_TEXT = st.text(max_size=20)
ABSURD_INTS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([-1, -(2**31), -(2**63), 2**32, 2**64, 2**64 - 1, 10**30, -(10**30)]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), ABSURD_INTS, st.floats(allow_nan=True, allow_infinity=True),
    ANY_TEXT,
)  # fmt: skip
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple) -> Any:
    if not path:
        return doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return doc


@st.composite
def mutated_documents(draw, base: str = FIX_TEXT, under: tuple = ()) -> str:
    """``base`` with one to three random edits to values at or below the path ``under``."""
    doc = json.loads(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p[: len(under)] == under]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "extra", "duplicate"]))
        target = doc
        try:
            for key in path:
                target = target[key]
        except (KeyError, IndexError, TypeError):
            continue
        if action == "replace":
            doc = _set(doc, path, draw(JSON_VALUES))
        elif action == "delete" and path:
            doc = _delete(doc, path)
        elif action == "extra" and isinstance(target, dict):
            target[draw(ANY_TEXT)] = draw(JSON_VALUES)
        elif action == "duplicate" and isinstance(target, list) and target:
            target.append(json.loads(json.dumps(target[0])))
    return json.dumps(doc, allow_nan=True)


@BOUNDED
@given(text=mutated_documents())
def test_mutated_snapshots(scratch: Path, text: str) -> None:
    path = _write(scratch, text)
    assert_loads_or_clean_error(path)
    assert_cli_clean(path)


# A recording that holds device-access facts (the first fixture predates them).
ACCESS_FIX_TEXT = next(
    text for text in (p.read_text() for p in RECORDED_HOSTS) if '"access": {' in text
)


def assert_doctor_clean(path: str) -> None:
    """`kvmprobe doctor --from F`: a verdict (exit 0, 3, 4 or 5), or exit 1 with one error
    line and one hint line; nothing raw reaches the terminal."""
    r = CliRunner().invoke(main, ["doctor", "--from", path, "--no-color"])
    assert isinstance(r.exception, SystemExit | None), repr(r.exception)
    if r.exit_code == 1:
        lines = r.stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith("kvmprobe: error: "), r.stderr
        return
    assert r.exit_code in (0, 3, 4, 5), r.output
    assert "\x1b" not in r.stdout
    assert any(line.startswith("verdict: ") for line in r.stdout.splitlines()), r.stdout


@BOUNDED
@given(text=mutated_documents(ACCESS_FIX_TEXT, ("access",)))
def test_mutated_access_facts(scratch: Path, text: str) -> None:
    path = _write(scratch, text)
    assert_loads_or_clean_error(path)
    assert_doctor_clean(path)


@BOUNDED
@given(path=st.sampled_from(FIX_PATHS[1:]), value=ABSURD_INTS)
def test_absurd_numbers_anywhere(scratch: Path, path: tuple, value: int) -> None:
    doc = json.loads(FIX_TEXT)
    path_str = _write(scratch, json.dumps(_set(doc, path, value)))
    assert_loads_or_clean_error(path_str)


@BOUNDED
@given(cut=st.integers(min_value=0, max_value=len(FIX_TEXT)))
def test_truncated_files(scratch: Path, cut: int) -> None:
    path = _write(scratch, FIX_TEXT[:cut])
    assert_loads_or_clean_error(path)
    assert_cli_clean(path)


@BOUNDED
@given(data=st.binary(max_size=300))
def test_random_bytes(scratch: Path, data: bytes) -> None:
    path = _write(scratch, data)
    assert_loads_or_clean_error(path)
    assert_cli_clean(path)


@BOUNDED
@given(doc=JSON_VALUES)
def test_json_of_the_wrong_shape(scratch: Path, doc: Any) -> None:
    path = _write(scratch, json.dumps(doc))
    assert_loads_or_clean_error(path)
    assert_cli_clean(path)


@BOUNDED
@given(
    schema=st.one_of(
        st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: f"kvmprobe.snapshot/{n}"),
        ANY_TEXT.map(lambda s: f"kvmprobe.snapshot/{s}"),
        st.sampled_from(["kvmprobe.snapshot/3", "kvmprobe.snapshot/1.1", "kvmprobe.snapshot/",
                         "kvmprobe.snapshot/" + "9" * 5000, "kvmprobe.caps/1",
                         "KVMPROBE.SNAPSHOT/1"]),
        JSON_VALUES,
    )
)  # fmt: skip
def test_unknown_schema_versions(scratch: Path, schema: Any) -> None:
    doc = json.loads(FIX_TEXT)
    doc["schema"] = schema
    path = _write(scratch, json.dumps(doc))
    assert_loads_or_clean_error(path)
    assert_cli_clean(path)
    if isinstance(schema, str) and schema.startswith("kvmprobe.snapshot/"):
        tail = schema.removeprefix("kvmprobe.snapshot/")
        if tail.strip().isdecimal() and len(tail) < 100 and int(tail) not in (1, 2):
            with pytest.raises(KvmprobeError):
                load(path)


@BOUNDED
@given(extra=st.dictionaries(ANY_TEXT, JSON_VALUES, min_size=1, max_size=4))
def test_unknown_extra_fields_warn(scratch: Path, extra: dict) -> None:
    doc = json.loads(FIX_TEXT)
    known = set(json.loads(SNAP.dumps()))  # fields the fixture predates ("access") included
    new = {k: v for k, v in extra.items() if k not in doc and k not in known}
    doc.update(new)
    snap, warnings = load(_write(scratch, json.dumps(doc)))
    assert len(warnings) == len(new)
    assert snap.caps == SNAP.caps


def test_full_alphabet_strings_through_doctor(scratch: Path, capsys) -> None:
    """Strings the terminal must never see raw, in every text field doctor shows."""
    # (unpaired surrogates are refused by the loader: test_caps_text_survives_lone_surrogate)
    nasty = "[/]\x1b[2J\u202e\x00" + "x" * 50
    doc = json.loads(FIX_TEXT)
    doc["device"] = nasty
    doc["host"]["kernel_release"] = nasty
    doc["host"]["modules"][nasty[:10]] = {"builtin": True, "params": {"nested": nasty}}
    doc["host"]["modules"]["kvm"]["params"]["enable_pmu"] = nasty
    doc["errors"] = [{"step": nasty, "errno": 5, "message": nasty}]
    doc["creation"]["vm"] = nasty[:64]
    path = _write(scratch, json.dumps(doc))
    status = run_doctor("/dev/kvm", path, as_json=False)
    out = capsys.readouterr().out
    assert status == 3  # the odd 'creation' answer is a failed KVM_CREATE_VM
    assert "\x1b" not in out and "\x00" not in out
    assert "\\x1b" in out


# -- deterministic absurd cases ----------------------------------------------------------------

ENTRY = '{"function":0,"index":0,"flags":0,"eax":0,"ebx":0,"ecx":0,"edx":0}'


@pytest.mark.parametrize(
    "name,make,needle",
    [
        ("a million CPUID entries",
         lambda: FIX_TEXT.replace('"supported_cpuid": [', '"supported_cpuid": [' + (ENTRY + ",")
                                  * 1_000_000, 1), "more than any kernel|larger than any snapshot"),
        ("100001 CPUID entries",
         lambda: _doc_with(supported_cpuid=[json.loads(ENTRY)] * 100_001),
         "more than any kernel|far larger than any snapshot"),
        ("a million MSR indices",
         lambda: _doc_with(msr_index_list=[0] * 1_000_000), "more than any kernel"),
        ("10^30 API version", lambda: _doc_with(api_version=10**30), "out of range"),
        ("10^30 cap value",
         lambda: _doc_with(caps={"system": {"1": 10**30}}), "out of range"),
        ("negative register",
         lambda: _doc_with(supported_cpuid=[{**json.loads(ENTRY), "eax": -1}]), "out of range"),
        ("negative cap number", lambda: _doc_with(caps={"system": {"-1": 1}}), "out of range"),
        ("a 5000-digit number", lambda: FIX_TEXT.replace('"api_version": 12',
                                                          '"api_version": ' + "9" * 5000),
         "not valid JSON"),
        ("a 5 MB device name", lambda: _doc_with(device="x" * 5_000_000),
         "too long|far larger than any snapshot"),
        ("float API version", lambda: _doc_with(api_version=12.0), "expected an integer"),
        ("NaN", lambda: _doc_with(vcpu_mmap_size=float("nan")), "expected an integer"),
        ("boolean cap", lambda: _doc_with(caps={"system": {"1": True}}), "expected an integer"),
        ("duplicate CPUID entry",
         lambda: _doc_with(supported_cpuid=[json.loads(ENTRY)] * 2), "duplicate"),
        ("duplicate host CPUID entry",
         lambda: _doc_with(host={**FIX_DOC["host"], "cpuid": [json.loads(ENTRY)] * 2}),
         "duplicate"),
        ("errno out of range",
         lambda: _doc_with(errors=[{"step": "x", "errno": 10**30, "message": ""}]),
         "out of range"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)  # fmt: skip
def test_absurd_files(tmp_path, name: str, make, needle: str) -> None:
    path = _write(tmp_path / "absurd.json", make())
    with pytest.raises(KvmprobeError) as e:
        load(path)
    assert path in e.value.message and re.search(needle, e.value.message), e.value.message
    assert_cli_clean(path)


def _doc_with(**fields: Any) -> str:
    doc = json.loads(FIX_TEXT)
    doc.update(fields)
    return json.dumps(doc, allow_nan=True)


def test_same_cap_twice_in_different_spellings_is_safe(tmp_path) -> None:
    """{"1": 5, "0x1": 7}: one cap number, two answers. Accepting one is safe (the kernel can
    only have given one); it must not crash anything."""
    path = _write(tmp_path / "s.json", _doc_with(caps={"system": {"1": 5, "0x1": 7}}))
    assert_loads_or_clean_error(path)


def test_duplicate_json_keys_are_reported(tmp_path) -> None:
    text = FIX_TEXT.replace('"api_version": 12', '"api_version": 11, "api_version": 12', 1)
    try:
        _snap, warnings = load(_write(tmp_path / "dup.json", text))
    except KvmprobeError:
        return
    assert warnings


def test_caps_text_survives_markup_in_device(tmp_path) -> None:
    path = _write(tmp_path / "m.json", _doc_with(device="[/]"))
    r = CliRunner().invoke(main, ["caps", "--from", path, "--no-color"])
    assert r.exception is None, repr(r.exception)
    assert r.exit_code == 0


def test_caps_text_survives_lone_surrogate(tmp_path) -> None:
    path = _write(tmp_path / "u.json", _doc_with(device="\ud800"))
    r = CliRunner().invoke(main, ["caps", "--from", path, "--no-color"])
    assert r.exit_code == 1, repr(r.exception)
    assert "unpaired UTF-16 surrogate" in r.stderr and "hint:" in r.stderr


# ============================================================================================
# 3. No file-descriptor leaks
# ============================================================================================


def test_many_fake_probes_leak_nothing(tmp_path, monkeypatch, capsys) -> None:
    from kvmprobe.kvm import probe as device

    probe("/dev/null", ioctl=FakeKvm(SNAP))  # warm-up: lazy imports, caches
    before = open_fds()
    for i in range(40):
        fail = {} if i % 2 else {MID_PROBE[i % len(MID_PROBE)][0]: errno.EIO}
        probe("/dev/null", ioctl=FakeKvm(SNAP, fail=fail))
    for path in ("/dev/null", str(tmp_path), str(tmp_path / "none")):
        for _ in range(10):
            with pytest.raises(KvmprobeError):
                probe(path)
    for _ in range(10):
        with pytest.raises(KvmprobeError):
            probe("/dev/null", ioctl=FakeKvm(SNAP, fail={"GET_API_VERSION": errno.EIO}))
    real = device.probe
    monkeypatch.setattr(device, "probe", lambda p, **k: real(p, ioctl=FakeKvm(SNAP)))
    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null stands in for KVM
    for _ in range(5):
        assert run_doctor("/dev/null") == 0
        assert run_doctor(str(tmp_path / "none")) == 3
    capsys.readouterr()
    assert open_fds() == before


def _interrupt_after(n: int, ioctl: Any) -> Any:
    calls = {"left": n}

    def interrupt(fd: int, request: int, *args: Any) -> int:
        calls["left"] -= 1
        if calls["left"] == 0:
            raise KeyboardInterrupt
        return ioctl(fd, request, *args)

    return interrupt


@pytest.mark.live
def test_many_live_probes_leak_nothing(live_device, capsys) -> None:
    import fcntl

    probe(live_device)  # warm-up
    before = open_fds()
    for _ in range(15):
        snap = probe(live_device)
        assert snap.api_version == 12
    for _ in range(15):
        probe(live_device, full=False)

    def vcpu_fails(fd: int, request: int, *args: Any) -> int:
        if request == abi.KVM_CREATE_VCPU:
            raise OSError(errno.EMFILE, "Too many open files")
        return fcntl.ioctl(fd, request, *args)

    for _ in range(5):
        snap = probe(live_device, ioctl=vcpu_fails)
        assert snap.creation["vcpu"] == "EMFILE"
    for n in (5, 200, 700):
        with pytest.raises(KeyboardInterrupt):
            probe(live_device, ioctl=_interrupt_after(n, fcntl.ioctl))
    for _ in range(5):
        assert run_doctor(live_device) in (0, 5)
    capsys.readouterr()
    assert open_fds() == before
