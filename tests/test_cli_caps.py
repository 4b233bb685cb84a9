"""CLI tests for `kvmprobe caps`, `record` and the error paths every command shares."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, RECORDED_HOSTS

from kvmprobe.analysis.caps import known_caps
from kvmprobe.cli import main

FIX = str(FIXTURES / RECORDED_HOSTS[0].name)


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_and_version() -> None:
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("caps", "cpuid", "record"):
        assert cmd in r.output
    assert run("--version").output.startswith("kvmprobe, version ")
    assert run("caps", "--help").exit_code == 0
    assert run("record", "--help").exit_code == 0


def test_usage_error_exit_2() -> None:
    r = run("caps", "--bogus")
    assert r.exit_code == 2


def test_caps_json_from_fixture() -> None:
    r = run("caps", "--json", "--from", FIX)
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.caps/1"
    assert doc["source"]["kind"] == "snapshot" and doc["source"]["file"] == FIX
    caps = {c["name"]: c for c in doc["caps"]}
    x2 = caps["KVM_CAP_X2APIC_API"]
    assert (x2["system"], x2["vm"], x2["vm_split_irqchip"]) == (15, 11, 15)
    assert x2["differs"] is True
    assert "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST" in x2["decoded"]["system"]
    assert "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST" not in x2["decoded"]["vm"]
    for c in doc["caps"]:
        for key in ("number", "name", "known", "system", "vm", "vm_split_irqchip", "decoded"):
            assert key in c
        assert c["system"] or c["vm"] or c["vm_split_irqchip"]  # default: non-zero only


def test_caps_all_includes_zeros_and_every_known_cap() -> None:
    doc = json.loads(run("caps", "--all", "--json", "--from", FIX).stdout)
    names = {c["name"] for c in doc["caps"]}
    assert len(names) >= 244
    assert "KVM_CAP_S390_HPAGE_2G" in names
    zero = [c for c in doc["caps"] if c["system"] == 0]
    assert zero, "--all lists caps answered 0"


def test_caps_unknown_numbers_kept(tmp_path) -> None:
    doc = json.loads(Path(FIX).read_text())
    doc["caps"]["system"]["300"] = 7
    p = tmp_path / "future.json"
    p.write_text(json.dumps(doc))
    out = json.loads(run("caps", "--json", "--from", str(p)).stdout)
    c = {c["number"]: c for c in out["caps"]}[300]
    assert c["name"] == "KVM_CAP_300" and c["known"] is False and c["system"] == 7
    text = run("caps", "--from", str(p), "--no-color").output
    assert "KVM_CAP_300" in text or "300" in text


@pytest.mark.parametrize("needle", ["x2apic", "X2APIC_API", "kvm_cap_x2apic", "129"])
def test_caps_filter(needle: str) -> None:
    doc = json.loads(run("caps", needle, "--json", "--from", FIX).stdout)
    assert [c["name"] for c in doc["caps"]] == ["KVM_CAP_X2APIC_API"]


def test_caps_filter_unknown_is_usage_error() -> None:
    r = run("caps", "nosuchcapability", "--from", FIX)
    assert r.exit_code == 2
    assert r.stderr.startswith("kvmprobe: error: no capability matches")
    assert "hint:" in r.stderr


def test_caps_named_but_zero_shows_the_row() -> None:
    """A capability named by its name of another architecture (s390 on an x86 host) and
    answered 0: the row with its zeros is the answer, not a warning."""
    r = run("caps", "s390_hpage_2g", "--from", FIX, "--no-color")
    assert r.exit_code == 0 and r.stderr == ""
    assert "S390_HPAGE_2G" in r.stdout and "1 not supported" in r.stdout


def _rows(text: str) -> dict[str, list[str]]:
    """Capability rows of a text report: name -> its three value cells."""
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[0].isdecimal():
            rows[cells[1]] = cells[2:5]
    return rows


def test_caps_number_shows_its_row_answered_0() -> None:
    r = run("caps", "44", "--from", FIX, "--no-color", env={"COLUMNS": "120"})
    assert r.exit_code == 0 and r.stderr == ""
    assert _rows(r.stdout) == {"HYPERV": ["0", "0", "0"]}
    assert "0 supported, 1 not supported" in r.stdout
    doc = json.loads(run("caps", "44", "--json", "--from", FIX).stdout)
    assert [(c["number"], c["system"], c["vm"], c["vm_split_irqchip"]) for c in doc["caps"]] == [
        (44, 0, 0, 0)
    ]


def test_caps_name_filter_shows_every_match_answered_0() -> None:
    """`caps hyperv` on a host built without Hyper-V: every HYPERV capability, zeros and all,
    in text and in JSON; the unfiltered listing still leaves zeros out."""
    r = run("caps", "hyperv", "--from", FIX, "--no-color", env={"COLUMNS": "120"})
    assert r.exit_code == 0 and r.stderr == ""
    rows = _rows(r.stdout)
    hyperv = {c.name.removeprefix("KVM_CAP_") for c in known_caps() if "HYPERV" in c.name}
    assert set(rows) == hyperv and len(hyperv) == 15
    assert all(v == ["0", "0", "0"] for v in rows.values())
    doc = json.loads(run("caps", "--json", "hyperv", "--from", FIX).stdout)
    assert {c["name"].removeprefix("KVM_CAP_") for c in doc["caps"]} == hyperv
    assert doc["count"] == 15 and doc["all"] is False
    plain = run("caps", "--from", FIX, "--no-color", env={"COLUMNS": "120"}).stdout
    assert not set(_rows(plain)) & hyperv
    assert all(any(v != "0" for v in cells) for cells in _rows(plain).values())


def test_caps_number_the_tables_do_not_know_is_a_row() -> None:
    r = run("caps", "300", "--from", FIX, "--no-color", env={"COLUMNS": "120"})
    assert r.exit_code == 0
    assert _rows(r.stdout) == {"300": ["0", "0", "0"]} and "not in kvmprobe's tables" in r.stdout
    beyond = run("caps", "100000", "--from", FIX)
    assert beyond.exit_code == 2 and "no capability matches '100000'" in beyond.stderr


def _cut_snapshot(tmp_path: Path, limit: int) -> str:
    """The recorded host as a probe asking capabilities 0..limit-1 only would have saved it."""
    doc = json.loads(Path(FIX).read_text())
    doc["cap_limit"] = limit
    doc["caps"] = {
        scope: None if values is None else {n: v for n, v in values.items() if int(n) < limit}
        for scope, values in doc["caps"].items()
    }
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_caps_a_number_not_asked_is_unknown_not_0(tmp_path) -> None:
    """A snapshot whose probe asked fewer capabilities (an older kvmprobe, a smaller
    cap_limit): those above it were never asked, so --all and a NAME-FILTER show them as
    unknown (n/a, and why in JSON), never as answered 0 -- as Snapshot.cap() says."""
    cut = _cut_snapshot(tmp_path, 100)
    r = run("caps", "150", "--from", cut, "--no-color", env={"COLUMNS": "120"})
    assert r.exit_code == 0
    assert _rows(r.stdout) == {"S390_AIS_MIGRATION": ["n/a", "n/a", "n/a"]}
    assert "not supported" not in r.stdout and "1 not asked" in r.stdout
    doc = json.loads(run("caps", "--all", "--json", "--from", cut).stdout)
    by_number = {c["number"]: c for c in doc["caps"]}
    high = by_number[150]
    assert (high["system"], high["vm"], high["vm_split_irqchip"]) == (None, None, None)
    assert all("0..99" in why for why in high["unknown"].values()) and len(high["unknown"]) == 3
    assert high["decoded"] == {}
    low = by_number[44]  # asked, answered 0
    assert (low["system"], low["unknown"]) == (0, {})


def test_caps_zero_values_are_not_repeated_in_the_meaning() -> None:
    """A count answered 0 shows 0 in its value columns, not once more before its meaning."""
    r = run("caps", "nested_state", "--from", FIX, "--no-color", env={"COLUMNS": "80"})
    assert [line.strip() for line in r.stdout.splitlines()].count("0") == 0


def test_caps_arch_without_all_is_named_as_unused() -> None:
    """--arch chooses whose zeros --all (or a filter) lists; without them it changes nothing
    and says so."""
    plain = run("caps", "--from", FIX, "--no-color")
    r = run("caps", "--arch", "arm64", "--from", FIX, "--no-color")
    assert r.stdout == plain.stdout
    assert r.stderr == (
        "kvmprobe: warning: --arch has no effect without --all or a NAME-FILTER "
        "(only they list zeros)\n"
    )
    j = run("caps", "--json", "--arch", "arm64", "--from", FIX)
    assert j.stdout == run("caps", "--json", "--from", FIX).stdout and "--arch" in j.stderr
    for args in (["--all"], ["ptp"]):
        used = run("caps", *args, "--arch", "arm64", "--from", FIX, "--no-color")
        assert used.exit_code == 0 and used.stderr == "", args
    every = run("caps", "ptp", "--arch", "all", "--from", FIX, "--no-color")
    assert "PTP_KVM" in every.stdout


# arch-specific upstream: api.rst names one other architecture, or only that architecture's
# kvm_vm_ioctl_check_extension() answers them (scripts/data/cap_arch.tsv cites each)
OTHER_ARCH_ONLY = {
    "KVM_CAP_SW_TLB": "powerpc",
    "KVM_CAP_PTP_KVM": "arm64",
    "KVM_CAP_VM_GPA_BITS": "riscv",
    "KVM_CAP_COUNTER_OFFSET": "arm64",
    "KVM_CAP_GUEST_DEBUG_HW_BPS": "arm64",
    "KVM_CAP_GUEST_DEBUG_HW_WPS": "arm64",
    "KVM_CAP_MSI_DEVID": "arm64",
}


@pytest.mark.parametrize("fixture", RECORDED_HOSTS, ids=lambda p: p.name)
def test_caps_all_on_x86_lists_no_other_architecture(fixture: Path) -> None:
    """`caps --all` on an x86 host: every row is a generic or an x86 capability (or one the
    host answered), never one upstream defines for another architecture; they are counted
    in the footer and come back with --arch all."""
    from kvmprobe.analysis.caps import cap_by_name

    r = run("caps", "--all", "--from", str(fixture), "--no-color", env={"COLUMNS": "200"})
    rows = _rows(r.stdout)
    for name, cells in rows.items():
        info = cap_by_name(name)
        assert info is not None, name
        assert info.arch in ("generic", "x86") or any(v != "0" for v in cells), name
    for cap, arch in OTHER_ARCH_ONLY.items():
        info = cap_by_name(cap)
        assert info is not None and info.arch == arch, cap
        assert cap.removeprefix("KVM_CAP_") not in rows
    footer = re.sub(r"\s+", " ", r.stdout)
    others = sum(1 for c in known_caps() if c.arch not in ("generic", "x86"))
    assert f"Not shown: {others} capabilities of other architectures than x86" in footer
    every = _rows(run("caps", "--all", "--arch", "all", "--from", str(fixture), "--no-color",
                      env={"COLUMNS": "200"}).stdout)  # fmt: skip
    assert {c.removeprefix("KVM_CAP_") for c in OTHER_ARCH_ONLY} <= set(every)


def test_no_generic_capability_is_described_as_another_architectures() -> None:
    """Our descriptions say where a capability lives: one filed as generic must not read as
    another architecture's alone (the way SW_TLB's "PowerPC BookE" did)."""
    other = re.compile(r"\b(PowerPC|BookE|arm64|ARM|RISC-V|s390|MIPS|LoongArch)\b")
    for info in known_caps():
        if info.arch == "generic" and other.search(info.description):
            assert "x86" in info.description, (info.name, info.description)


def test_caps_text_no_color() -> None:
    r = run("caps", "--from", FIX, "--no-color")
    assert r.exit_code == 0
    assert "\x1b[" not in r.stdout
    assert "X2APIC_API" in r.stdout and "differ between scopes" in r.stdout
    r2 = run("--no-color", "caps", "--from", FIX)
    assert r2.stdout == r.stdout
    r3 = run("caps", "--from", FIX, env={"NO_COLOR": "1"})
    assert "\x1b[" not in r3.stdout


def test_caps_json_never_imports_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from kvmprobe.cli import main\n"
        "try:\n"
        f"    main(['caps', '--json', '--from', {FIX!r}], standalone_mode=False)\n"
        "finally:\n"
        "    print('RICH' if any(m == 'rich' or m.startswith('rich.') for m in sys.modules)"
        " else 'NORICH', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith("NORICH")


# -- errors ----------------------------------------------------------------------------------


# every command that opens the device (diff: the live side B)
OPENERS = [["caps"], ["cpuid"], ["msr"], ["hyperv"], ["record"], ["export", "qemu"], ["diff", FIX]]


@pytest.mark.parametrize("usual_exists", [True, False], ids=["dev-kvm-exists", "no-dev-kvm"])
@pytest.mark.parametrize("args", OPENERS, ids=lambda a: a[0])
def test_missing_device_path_gets_one_hint_everywhere(
    tmp_path, monkeypatch, args: list[str], usual_exists: bool
) -> None:
    """`--device PATH` that does not exist: a wrong path first of all. When /dev/kvm exists
    the hint says to try it (as doctor does), never to load KVM or pass the device into a
    container; when it does not, it says to check the path and then to load KVM."""
    real_exists = os.path.exists
    monkeypatch.setattr(
        os.path, "exists", lambda p: usual_exists if p == "/dev/kvm" else real_exists(p)
    )
    r = run(*args, "--device", str(tmp_path / "kvm"))
    assert r.exit_code == 3 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == f"kvmprobe: error: {tmp_path / 'kvm'} does not exist"
    assert lines[1].startswith("hint: check the path") and len(lines) == 2
    if usual_exists:
        assert "/dev/kvm, which exists here; try --device /dev/kvm" in lines[1]
        assert "modprobe" not in lines[1] and "container" not in lines[1]
    else:
        assert "which exists" not in lines[1] and "modprobe kvm_intel or kvm_amd" in lines[1]
    assert "Traceback" not in r.output


def test_missing_usual_node_hint_is_about_kvm() -> None:
    """The usual node missing is KVM missing: load the module or pass the device in."""
    from kvmprobe.errors import device_error

    e = device_error("/dev/kvm", FileNotFoundError(2, "No such file or directory"))
    assert (
        e.status == 3
        and e.hint.startswith("load the KVM module")
        and "check the path" not in e.hint
    )
    other = device_error("/x/kvm", FileNotFoundError(2, "No such file"), usual_exists=True)
    assert other.hint.startswith("check the path: KVM's node is normally /dev/kvm, which exists")


def test_devnull_is_not_kvm_exit_1() -> None:
    r = run("caps", "--device", "/dev/null")
    assert r.exit_code == 1
    assert "is not a KVM device" in r.stderr and "1:3, not KVM's 10:232" in r.stderr


def test_other_char_devices_are_never_opened(monkeypatch) -> None:
    """Opening e.g. a watchdog has effects: refuse before open() is ever called."""
    opened = []
    real_open = os.open
    monkeypatch.setattr(
        "kvmprobe.kvm.device.os.open", lambda p, *a: opened.append(p) or real_open(p, *a)
    )
    for cmd in (["caps"], ["record"], ["cpuid"]):
        r = run(*cmd, "--device", "/dev/null")
        assert r.exit_code == 1 and "not opened" in r.stderr
    assert opened == []


def test_enotty_from_a_kvm_numbered_node(tmp_path) -> None:
    """A node with KVM's numbers that does not answer like KVM (simulated at the fd layer)."""
    import errno

    from kvmprobe.errors import KvmprobeError
    from kvmprobe.kvm.device import KvmDevice

    def enotty(fd, req, arg=0, mutate=True):
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    with pytest.raises(KvmprobeError) as e:
        KvmDevice("/dev/null", ioctl=enotty)
    assert "ENOTTY" in e.value.message


def test_regular_file_and_directory(tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = run("caps", "--device", str(f))
    assert r.exit_code == 1 and "regular file" in r.stderr
    r = run("caps", "--device", str(tmp_path))
    assert r.exit_code == 1 and "directory" in r.stderr


def test_fifo_device(tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # opening a FIFO read-write never blocks on Linux
    r = run("caps", "--device", str(fifo))
    assert r.exit_code == 1 and "not a character device" in r.stderr


def test_permission_denied_exit_4(tmp_path, monkeypatch) -> None:
    import errno

    def deny(path, flags, *a):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr("kvmprobe.kvm.device.os.open", deny)
    r = run("caps")
    assert r.exit_code == 4
    assert "permission denied" in r.stderr and "hint:" in r.stderr and "kvm" in r.stderr


def test_debug_shows_traceback(tmp_path) -> None:
    from kvmprobe.errors import KvmprobeError

    with pytest.raises(KvmprobeError):
        CliRunner().invoke(
            main, ["caps", "--debug", "--device", str(tmp_path / "x")], catch_exceptions=False
        )


@pytest.mark.parametrize(
    "content,needle",
    [
        ("", "empty file"),
        ("{}", "not a kvmprobe snapshot"),
        ('{"schema": "kvmprobe.snapshot/7"}', "newer than this kvmprobe"),
    ],
)
def test_bad_from_file(tmp_path, content, needle) -> None:
    p = tmp_path / "s.json"
    p.write_text(content)
    r = run("caps", "--from", str(p))
    assert r.exit_code == 1
    assert needle in r.stderr and str(p) in r.stderr and "hint:" in r.stderr


def test_missing_from_file(tmp_path) -> None:
    r = run("caps", "--from", str(tmp_path / "none.json"))
    assert r.exit_code == 1 and "no such snapshot file" in r.stderr


# -- record ----------------------------------------------------------------------------------


@pytest.fixture
def fake_probe(monkeypatch):
    """record/caps against the recorded host instead of the live device."""
    from support.fakekvm import FakeKvm

    from kvmprobe.kvm import probe as device
    from kvmprobe.snapshot import load

    snap, _ = load(FIX)
    real = device.probe

    def probe(path="/dev/kvm", *, ioctl=None, full=True, verify=True):
        return real("/dev/null", ioctl=FakeKvm(snap), full=full, verify=verify)

    monkeypatch.setattr(device, "probe", probe)
    return snap


def test_record_stdout_and_file(tmp_path, fake_probe) -> None:
    r = run("record")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.snapshot/2"
    out = tmp_path / "host.json"
    r = run("record", "-o", str(out))
    assert r.exit_code == 0 and out.exists()
    assert json.loads(out.read_text())["caps"] == doc["caps"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".kvmprobe-")]


def test_record_refuses_to_overwrite(tmp_path, fake_probe) -> None:
    out = tmp_path / "host.json"
    out.write_text("precious")
    r = run("record", "-o", str(out))
    assert r.exit_code == 1 and "already exists" in r.stderr and "--force" in r.stderr
    assert out.read_text() == "precious"
    r = run("record", "-o", str(out), "--force")
    assert r.exit_code == 0 and json.loads(out.read_text())["schema"]


def test_record_force_without_a_file_is_named(fake_probe, capsys) -> None:
    """--force only matters with -o FILE: without one it is named as having no effect (as
    export does), on a command line click parses and on a plain one run without it."""
    from kvmprobe import quick

    warning = "kvmprobe: warning: --force has no effect without -o FILE\n"
    for args in (["record", "--force"], ["record", "--force", "-o", "-"]):
        r = run(*args)
        assert r.exit_code == 0 and json.loads(r.stdout)["schema"]
        assert r.stderr == warning, args
    assert quick.run(["record", "--force"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["schema"] and err == warning
    assert run("record").stderr == ""


def test_record_unwritable_directory(tmp_path, fake_probe, monkeypatch) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root ignores the mode: simulate the kernel's answer instead
        import errno

        def denied(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr("tempfile.mkstemp", denied)
    try:
        r = run("record", "-o", str(d / "host.json"))
        assert r.exit_code == 4 and "not writable" in r.stderr
        assert not (d / "host.json").exists()
    finally:
        d.chmod(0o755)


def test_record_full_disk(tmp_path, fake_probe, monkeypatch) -> None:
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("kvmprobe.render.output.os.fsync", full)
    out = tmp_path / "host.json"
    r = run("record", "-o", str(out))
    assert r.exit_code == 1 and "No space left" in r.stderr and "nothing was written" in r.stderr
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_record_then_caps_equals_live(tmp_path, fake_probe) -> None:
    out = tmp_path / "host.json"
    run("record", "-o", str(out))
    live = json.loads(run("caps", "--json", "--all").stdout)
    replay = json.loads(run("caps", "--json", "--all", "--from", str(out)).stdout)
    live.pop("source"), replay.pop("source")
    assert live == replay


@pytest.mark.parametrize("cmd", [["caps"], ["cpuid", "--host"], ["cpuid", "--explain", "x2apic"]])
def test_text_reports_escape_terminal_controls(tmp_path, cmd) -> None:
    """A snapshot is untrusted: its strings must not reach the terminal as control codes."""
    doc = json.loads(Path(FIX).read_text())
    doc["device"] = "EVIL\x1b[31mRED\x07\u202e"
    doc["host"]["kernel_release"] = "K\x1b]0;title\x07"
    doc["host"]["cpuid"] = None
    doc["host"]["cpuid_error"] = "E\x1b[2J"
    p = tmp_path / "evil.json"
    p.write_text(json.dumps(doc))
    r = run(*cmd, "--from", str(p), "--no-color")
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    assert "\\x1b" in r.stdout


def test_error_messages_escape_terminal_controls(tmp_path) -> None:
    doc = json.loads(Path(FIX).read_text())
    doc["caps"]["\x1b[2Jscope"] = {}
    p = tmp_path / "evil.json"
    p.write_text(json.dumps(doc))
    r = run("caps", "--from", str(p))
    assert r.exit_code == 1 and "\x1b" not in r.stderr and "\\x1b[2Jscope" in r.stderr
