"""What kvmprobe says when a command is used wrongly or cannot reach the device: the
permission hint for each kind of node, options that change nothing, click's usage errors in
kvmprobe's format, and a JSON document of another kind given where a snapshot belongs."""

from __future__ import annotations

import errno
import json
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, RECORDED_HOSTS

from kvmprobe.access_facts import NodeMode
from kvmprobe.cli import main
from kvmprobe.errors import device_error

FIX = str(FIXTURES / RECORDED_HOSTS[0].name)
FIX_B = str(FIXTURES / RECORDED_HOSTS[1].name)
KVMPROBE = [sys.executable, "-m", "kvmprobe"]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def kvmprobe(*args: str) -> subprocess.CompletedProcess[str]:
    """As a user runs it: through the console entry, where usage errors are formatted."""
    return subprocess.run([*KVMPROBE, *args], capture_output=True, text=True, timeout=60)


# -- permission hints --------------------------------------------------------------------------


def _denied(mode: int, group: str) -> str:
    node = NodeMode(stat.S_IFCHR | mode, "root", group)
    e = device_error("/dev/kvm", PermissionError(errno.EACCES, "Permission denied"), node=node)
    assert e.status == 4 and f"({stat.filemode(stat.S_IFCHR | mode)} root:{group})" in e.message
    return e.hint


def test_group_read_write_for_root_s_group_suggests_a_kvm_group() -> None:
    hint = _denied(0o660, "root")
    assert hint.startswith("the node's group is root")
    assert "dedicated 'kvm' group" in hint and "chgrp kvm /dev/kvm" in hint
    assert "usermod -aG kvm $USER" in hint and "-aG root" not in hint
    assert "gives no group read-write" not in hint


@pytest.mark.parametrize(
    ("mode", "group", "needle"),
    [
        (0o660, "kvm", "add your user to the group 'kvm'"),
        (0o660, "disk", "sudo usermod -aG disk $USER"),
        (0o600, "root", "the node gives no group read-write access"),
        (0o600, "kvm", "the node gives no group read-write access"),
        (0o666, "root", "the mode allows everyone"),
        (0o666, "kvm", "the mode allows everyone"),  # joining kvm would change nothing
    ],
)
def test_other_permission_cases_keep_their_hints(mode: int, group: str, needle: str) -> None:
    hint = _denied(mode, group)
    assert needle in hint and "the node's group is root" not in hint


# -- options that change nothing are named ----------------------------------------------------


@pytest.mark.parametrize("extra", [["--raw"], ["--host"], ["--all"], ["--raw", "--host", "--all"]])
@pytest.mark.parametrize("flt", [[], ["x2apic"], ["mds-no"]], ids=["all", "x2apic", "msr-bit"])
def test_cpuid_json_ignores_raw_host_all_and_says_so(extra: list[str], flt: list[str]) -> None:
    """--json writes the same document with and without --raw, --host and --all (it always
    has the raw entries, the host's CPUID and every feature): each is named on stderr."""
    plain = run("cpuid", "--json", *flt, "--from", FIX)
    r = run("cpuid", "--json", *extra, *flt, "--from", FIX)
    assert r.exit_code == plain.exit_code == 0
    assert r.stdout == plain.stdout
    for option in extra:
        assert f"kvmprobe: warning: {option} has no effect with --json" in r.stderr
    assert r.stderr.count("has no effect") == len(extra)


@pytest.mark.parametrize("extra", [["--host"], ["--all"], ["--host", "--all"]])
def test_cpuid_raw_ignores_host_and_all_and_says_so(extra: list[str]) -> None:
    for flt in ([], ["0x7.0.ebx"]):
        plain = run("cpuid", "--raw", *flt, "--from", FIX)
        r = run("cpuid", "--raw", *extra, *flt, "--from", FIX)
        assert r.stdout == plain.stdout and r.exit_code == 0
        for option in extra:
            assert f"kvmprobe: warning: {option} has no effect with --raw" in r.stderr
        assert r.stderr.count("has no effect") == len(extra)


def test_cpuid_options_that_count_are_not_named() -> None:
    for args in (["--host"], ["--all"], ["--raw"], ["--json"], ["--json", "x2apic"]):
        r = run("cpuid", *args, "--from", FIX)
        assert r.exit_code == 0 and "has no effect" not in r.stderr, args
    assert run("cpuid", "--host", "--from", FIX).stdout != run("cpuid", "--from", FIX).stdout


def test_explain_names_unused_options_once() -> None:
    r = run("cpuid", "--json", "--raw", "--explain", "x2apic", "--from", FIX)
    assert r.stderr.count("--raw has no effect") == 1 and "with --explain" in r.stderr


def test_msr_bit_filter_names_the_options_it_ignores() -> None:
    plain = run("cpuid", "mds-no", "--from", FIX)
    for option in ("--raw", "--host", "--all"):
        r = run("cpuid", option, "mds-no", "--from", FIX)
        assert r.stdout == plain.stdout
        assert r.stderr == (
            f"kvmprobe: warning: {option} has no effect when FEATURE-FILTER names feature-MSR "
            "bits only\n"
        )
    both = run("cpuid", "--raw", "--all", "mds-no", "--from", FIX)
    assert both.stderr.count("--all has no effect") == 1  # named once (with --raw)


def test_diff_of_two_files_names_an_unused_device() -> None:
    plain = run("diff", FIX, FIX_B)
    r = run("diff", FIX, FIX_B, "--device", "/dev/kvm")
    assert r.stdout == plain.stdout and r.exit_code == plain.exit_code
    assert r.stderr == plain.stderr + (
        "kvmprobe: warning: --device has no effect when B is given (both sides are snapshots)\n"
    )
    assert "has no effect" not in plain.stderr


# -- usage errors through the console entry ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["cpuid", "--from"], "option '--from' requires an argument",
         "see 'kvmprobe cpuid --help'"),
        (["cpuid", "--irqchip"], "option '--irqchip' requires an argument",
         "see 'kvmprobe cpuid --help'"),
        (["export", "--from"], "option '--from' requires an argument",
         "see 'kvmprobe export --help'"),
        (["cpuid", "--bogus"], "no such option '--bogus'",
         "did you mean --host? see 'kvmprobe cpuid --help'"),
        (["cpuid", "--jsn"], "no such option '--jsn'",
         "did you mean --json? see 'kvmprobe cpuid --help'"),
        (["caps", "--irqchip", "x"], "no such option '--irqchip'",
         "did you mean --arch? see 'kvmprobe caps --help'"),
        (["caps", "--zzzzzz"], "no such option '--zzzzzz'", "see 'kvmprobe caps --help'"),
        (["cpuid", "--irqchip", "nowhere"],
         "invalid value for '--irqchip': 'nowhere' is not one of 'kernel', 'split', 'userspace'",
         "see 'kvmprobe cpuid --help'"),
        (["export"], "missing argument 'FORMAT'; choose from: cpuid2, qemu, firecracker, libvirt",
         "see 'kvmprobe export --help'"),
        (["diff"], "missing argument 'A'", "see 'kvmprobe diff --help'"),
        (["caps", "a", "b"], "got unexpected extra argument (b)", "see 'kvmprobe caps --help'"),
        (["nosuch"], "no such command 'nosuch'", "see 'kvmprobe --help'"),
        (["--bogus"], "no such option '--bogus'", "see 'kvmprobe --help'"),
    ],
)  # fmt: skip
def test_usage_errors_read_like_kvmprobe_s_own(args: list[str], error: str, hint: str) -> None:
    """click's messages in kvmprobe's form (lower-case start, no closing period, one line),
    click's guess at a mistyped option in the hint, and the hint names the help of the
    command the mistake was made in."""
    r = kvmprobe(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"kvmprobe: error: {error}", f"hint: {hint}"]


# -- a JSON document of another kind where a snapshot belongs ----------------------------------


def test_another_kvmprobe_document_is_named_as_such(tmp_path) -> None:
    doc = tmp_path / "cpuid.json"
    doc.write_text(run("cpuid", "--json", "--from", FIX).stdout)
    for args, hint in [
        (["cpuid", "--from", str(doc)], "--from takes a file written by 'kvmprobe record'"),
        (["caps", "--from", str(doc)], "--from takes a file written by 'kvmprobe record'"),
        (["diff", str(doc), FIX], "'kvmprobe diff' takes files written by 'kvmprobe record'"),
    ]:
        r = run(*args)
        assert r.exit_code == 1 and r.stdout == ""
        assert r.stderr.splitlines() == [
            f"kvmprobe: error: {doc} is a kvmprobe.cpuid/1 document, not a snapshot",
            f"hint: {hint}",
        ]
    r = run("baseline", str(doc), FIX)
    assert f"{doc} is a kvmprobe.cpuid/1 document, not a snapshot" in r.stderr
    assert "'kvmprobe baseline' takes files written by 'kvmprobe record'" in r.stderr


def test_a_newer_snapshot_asks_for_an_upgrade_the_way_kvmprobe_was_installed(tmp_path) -> None:
    newer = tmp_path / "newer.json"
    with open(FIX, encoding="utf-8") as f:
        snap = json.load(f)
    newer.write_text(json.dumps({**snap, "schema": "kvmprobe.snapshot/99"}))
    r = run("cpuid", "--from", str(newer))
    assert r.exit_code == 1
    error, hint = r.stderr.splitlines()
    assert "snapshot format version 99 is newer than this kvmprobe reads" in error
    assert hint.startswith("hint: upgrade kvmprobe (this is ")
    assert "the way it was installed" in hint and "pip" not in hint
