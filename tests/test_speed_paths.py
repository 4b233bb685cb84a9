"""Short cuts taken for start-up time give the answers of the long way."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from kvmprobe.analysis import cpuid as cp


def test_a_linux_name_is_found_as_itself_by_the_index_of_every_spelling() -> None:
    # cp.lookup() answers a feature's own Linux name without building the index of every
    # spelling; that is only right while the index gives the same feature for the name.
    for f in cp.features():
        if f.name:
            assert cp._norm(f.name) == f.name, f.name
            assert cp._names()[f.name] is f, f.name
            assert cp.lookup(f.name) is f


def test_lookup_still_takes_every_other_spelling() -> None:
    by_qemu = cp.lookup("tsc-deadline")
    assert by_qemu is not None and by_qemu.name == "tsc_deadline_timer"
    assert cp.lookup(" AVX2 ") is cp.lookup("avx2")
    assert cp.lookup("X86_FEATURE_X2APIC") is cp.lookup("x2apic")
    assert cp.lookup("0x1.0.ecx[21]") is cp.lookup("x2apic")
    assert cp.lookup("no-such-feature") is None


# -- the console script ends its process at once (entry._end_process) -------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", [["schema", "--list"], ["schema", "no-such-kind"], ["nosuch"]])
def test_the_console_script_exits_as_the_interpreter_would(args: list[str]) -> None:
    # run() (the console script: ends the process at once) and run(argv) (a normal exit) give
    # the same output, errors and status
    fast = _python(f"import sys; sys.argv = ['kvmprobe', *{args!r}]\n"
                   "from kvmprobe.entry import run; run()")  # fmt: skip
    slow = _python(f"from kvmprobe.entry import run; run({args!r})")
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.stdout or fast.stderr


@pytest.mark.parametrize(
    "case",
    [
        "raise SystemExit('a message for the interpreter to print')",
        "threading.Thread(target=time.sleep, args=(0.5,)).start(); raise SystemExit(3)",
        "import logging; raise SystemExit(3)",
        "sys.stdout = Unflushable(); raise SystemExit(3)",
    ],
)
def test_the_process_is_left_to_the_interpreter_when_its_exit_still_has_work(case: str) -> None:
    r = _python(
        f"""
        import sys, threading, time
        from kvmprobe.entry import _end_process

        class Unflushable:
            def write(self, text): return len(text)
            def flush(self): raise OSError(28, "No space left on device")

        try:
            {case}
        except SystemExit as e:
            _end_process(e)
            sys.stderr.write("RETURNED\\n")
        """
    )
    assert "RETURNED" in r.stderr, r.stderr


def test_a_finished_process_ends_with_its_status_and_flushed_output() -> None:
    r = _python(
        """
        import sys
        from kvmprobe.entry import _end_process

        sys.stdout.write("all of it")  # still in the buffer: a pipe is block-buffered
        try:
            raise SystemExit(5)
        except SystemExit as e:
            _end_process(e)
        sys.stderr.write("RETURNED\\n")
        """
    )
    assert (r.returncode, r.stdout, r.stderr) == (5, "all of it", "")
