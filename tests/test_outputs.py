"""Where results go: closed, full and early-closed standard output, the file write path, and
the last-resort handler. Every case ends with the documented status and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmprobe import entry
from kvmprobe.errors import KvmprobeError
from kvmprobe.render import output

FIXTURE = Path(__file__).parent / "fixtures" / "amd-epyc-pvm-6.18.json"
KVMPROBE = [sys.executable, "-m", "kvmprobe"]


def _sh(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)


def _q(args: list[str]) -> str:
    return " ".join(f"'{a}'" for a in args)


# -- standard output -------------------------------------------------------------------------

COMMANDS = [
    ["cpuid", "--from", str(FIXTURE)],
    ["cpuid", "--json", "--from", str(FIXTURE)],
    ["caps", "--from", str(FIXTURE)],
    ["caps", "--json", "--from", str(FIXTURE)],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_closed_stdout_is_an_error_not_silence(args: list[str]) -> None:
    r = _sh(f"{_q(KVMPROBE + args)} >&-")
    assert r.returncode == 1, r.stderr
    assert "standard output is closed" in r.stderr and "hint:" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_full_stdout_is_one_line_and_status_1(args: list[str]) -> None:
    r = _sh(f"{_q(KVMPROBE + args)} > /dev/full")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("kvmprobe: error: cannot write to standard output")
    assert lines[1].startswith("hint:") and len(lines) == 2


@pytest.mark.parametrize(
    ("args", "status", "out"),
    [
        # a warning before the document: the document still comes, with status 0
        (["caps", "--json", "--arch", "x86", "--from", str(FIXTURE)], 0, '"schema"'),
        (["cpuid", "--json", "--raw", "--from", str(FIXTURE)], 0, '"schema"'),
        # an error: its own status, not 1 (a plain command line and one click parses)
        (["caps", "--device", "/nonexistent/kvm"], 3, ""),
        (["cpuid", "--require", "avx512f,x86-64-v4", "--from", str(FIXTURE)], 5, "Requirements"),
    ],
    ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else str(a),
)
def test_closed_stderr_changes_nothing_but_the_messages(
    args: list[str], status: int, out: str
) -> None:
    """With standard error closed (``2>&-``) the messages have nowhere to go; the output and
    the exit status are what they are with it open."""
    r = _sh(f"{_q(KVMPROBE + args)} 2>&-")
    assert r.returncode == status
    assert out in r.stdout


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_reader_closing_early_ends_quietly_with_141(args: list[str]) -> None:
    """Every command: the same quiet end (status 141, as a tool killed by SIGPIPE). The
    reader closes its end at once, so even a short output meets a closed pipe."""
    r = _sh(f"{_q(KVMPROBE + args)} | {{ exec 0<&-; sleep 1; }}; exit ${{PIPESTATUS[0]}}")
    assert r.returncode == entry.EXIT_BROKEN_PIPE
    assert r.stderr == ""


@pytest.mark.parametrize(
    "args", ["cpuid --irqchip nowhere", "export", "export nosuch", "caps --no-such-option"]
)
def test_usage_errors_use_the_kvmprobe_format(args: str) -> None:
    """One line saying what is wrong, one hint, exit 2: click's own messages too (a missing
    Choice argument lists its values over several lines there)."""
    r = _sh(f"{_q(KVMPROBE)} {args}")
    assert r.returncode == 2
    error, hint = r.stderr.splitlines()
    assert error.startswith("kvmprobe: error: ") and "\t" not in error
    assert hint.startswith("hint: ") and "see 'kvmprobe " in hint


def test_interrupt_during_start_up_never_shows_a_traceback() -> None:
    """From kvmprobe's first line on, an interrupt ends with "kvmprobe: interrupted" and 130,
    or the run had already finished (0); never a traceback from kvmprobe's code, never "killed
    by SIGINT". The interpreter's own start-up (before kvmprobe.entry.run is entered: about
    30 ms here, more on a loaded machine) is out of any program's reach: an interrupt there is
    Python's, and is counted apart."""
    ours = 0
    for delay in (0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2):
        p = subprocess.Popen(
            [*KVMPROBE, "cpuid", "--from", str(FIXTURE)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        if "Traceback" in err and "in run" not in err and "kvmprobe/entry.py" not in err:
            continue  # interrupted before kvmprobe's entry point was running
        ours += 1
        assert "Traceback" not in err, err
        assert p.returncode in (0, 130), (p.returncode, err)
        if p.returncode == 130:
            assert err.strip() == "kvmprobe: interrupted"
    assert ours >= 3  # on a loaded machine the interpreter's own start takes longer


@pytest.mark.parametrize(
    "exc,needle",
    [
        (MemoryError(), "out of memory"),
        (ImportError("no module named x"), "internal error: ImportError"),
        (RuntimeError("boom"), "internal error: RuntimeError"),
    ],
)
@pytest.mark.parametrize(
    "module,name,argv",
    [
        ("kvmprobe.quick", "run", ["caps"]),  # a plain command line
        ("kvmprobe.cli", "main", ["caps", "--from", "x.json"]),  # one click parses
    ],
)
def test_last_resort_handler(
    monkeypatch, capsys, exc: BaseException, needle: str, module: str, name: str, argv: list[str]
) -> None:
    import importlib

    def boom(*a: object, **k: object) -> None:
        raise exc

    monkeypatch.setattr(importlib.import_module(module), name, boom)
    with pytest.raises(SystemExit) as e:
        entry.run(argv)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert needle in err and "hint:" in err and "Traceback" not in err
    with pytest.raises(type(exc)):
        entry.run([*argv, "--debug"])


# -- files -------------------------------------------------------------------------------------


def test_force_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.json"
    target.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    nodes = [fifo, link]
    if os.geteuid() == 0:
        full_copy = tmp_path / "full"
        os.mknod(full_copy, 0o666 | 0o020000, os.makedev(1, 7))  # a copy of /dev/full
        nodes.append(full_copy)
    for node in nodes:
        before = os.lstat(node)
        with pytest.raises(KvmprobeError) as e:
            output.write_new_file(str(node), "{}", force=True)
        assert "only ever replaces regular files" in e.value.message
        after = os.lstat(node)
        assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    assert target.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [n.name for n in nodes] + ["target.json"]
    )


def test_no_hard_links_needed(tmp_path: Path, monkeypatch) -> None:
    """A file system without hard links (link() -> EPERM) is still written to."""

    def no_links(*a: object, **k: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "out.json"
    output.write_new_file(str(path), "data")
    assert path.read_text() == "data"
    with pytest.raises(KvmprobeError, match="already exists"):
        output.write_new_file(str(path), "other")
    output.write_new_file(str(path), "other", force=True)
    assert path.read_text() == "other"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_rename_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(KvmprobeError):
        output.write_new_file(str(tmp_path / "out.json"), "data")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_after_the_file_is_in_place_is_ignored(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(output, "protect_completed_writes", True)
    previous = signal.getsignal(signal.SIGINT)
    try:
        output.write_new_file(str(tmp_path / "out.json"), "data")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# -- counts the kernel supplies ------------------------------------------------------------------


def test_a_bogus_msr_count_is_bounded(no_fd_leak, monkeypatch) -> None:
    """KVM_GET_MSR_INDEX_LIST answering E2BIG with an absurd nmsrs must not grow the buffer
    without limit: the step fails (recorded with its errno), the probe goes on."""
    import errno as errno_mod

    from support.fakekvm import FakeKvm

    from kvmprobe.kvm import abi
    from kvmprobe.kvm.probe import probe
    from kvmprobe.limits import MAX_BUFFER
    from kvmprobe.snapshot import load

    snap, _ = load(str(FIXTURE))
    fake = FakeKvm(snap)
    sizes: list[int] = []

    def lying(fd: int, request: int, arg=0, mutate: bool = True) -> int:
        if request == abi.KVM_GET_MSR_INDEX_LIST:
            sizes.append(int(arg.nmsrs))
            arg.nmsrs = 0xFFFF_FFFF
            raise OSError(errno_mod.E2BIG, "Argument list too long")
        return fake(fd, request, arg, mutate)

    monkeypatch.setattr(abi, "KVM_RDEV", (1, 3))  # /dev/null passes the look-before-open check
    got = probe("/dev/null", ioctl=lying)
    assert max(sizes) <= MAX_BUFFER
    assert got.msr_index_list is None
    failed = [e for e in got.errors if e.step == "KVM_GET_MSR_INDEX_LIST"]
    assert failed and failed[0].errno == errno_mod.E2BIG
