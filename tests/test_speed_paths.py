"""Short cuts taken for start-up time give the answers of the long way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


# -- the --json paths import none of the costly standard modules (issue #10's targets) ----------

#: what `import dataclasses` brings (inspect: ast, dis, tokenize; copy), typing and datetime:
#: together about as much as a bare interpreter's start-up, for nothing a --json command needs
FORBIDDEN = ("dataclasses", "inspect", "typing", "datetime", "copy", "ast", "dis", "tokenize")
RECORDED = Path(__file__).resolve().parent / "fixtures" / "amd-epyc-pvm-6.18.json"

# The two commands' work minus the CLI (the command bodies do the same), as a child process
# runs it: a watch on the import system first, then the recorded host, answered through
# FakeKvm (the live path: kvm.probe, the device layer and the host facts run as on a real
# host) or loaded as `--from FILE` loads it. The child reports, for each forbidden module, the
# chain of frames that imported it first.
CHILD = r"""
import io, json, os, sys

FORBIDDEN = frozenset(sys.argv[1].split(","))
importers = {}


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in FORBIDDEN and name not in sys.modules and name not in importers:
            chain, frame = [], sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "?")
                if not module.startswith(("importlib", "_frozen_importlib", "__main__")):
                    chain.append(f"{module}:{frame.f_lineno}")
                frame = frame.f_back
            importers[name] = " <- ".join(chain[:8]) or "?"
        return None


at_start = sorted(FORBIDDEN & set(sys.modules))
sys.meta_path.insert(0, Watch())

from support.fakekvm import FakeKvm
from kvmprobe.snapshot import load

command, source, recorded = sys.argv[2], sys.argv[3], sys.argv[4]
if source == "from":
    snap, _ = load(recorded)
else:
    from kvmprobe.kvm.probe import probe

    snap = probe(os.devnull, ioctl=FakeKvm(load(recorded)[0]), full=command == "cpuid")

from kvmprobe.render import json as rj
from kvmprobe.render.output import emit

if command == "caps":
    from kvmprobe.analysis.caps import cap_rows

    rows = cap_rows(snap, None, False)
    doc = rj.document("caps", snap, rj.caps_body(rows, False))
else:
    from kvmprobe.analysis import cpuid_query as cq
    from kvmprobe.analysis import effective
    from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary
    from kvmprobe.analysis.quirks import Options
    from kvmprobe.vocab import Irqchip

    a = effective.analyse(snap, Options(irqchip=Irqchip("kernel"), disable_exits=frozenset()))
    body = rj.cpuid_body(a, list(cq.select(a, None).features))
    body["psabi"] = rj.psabi_json(psabi_summary(a))
    body["consistency"] = rj.consistency_json(cpuid_consistency(snap))
    doc = rj.document("cpuid", snap, body)
out, sys.stdout = sys.stdout, io.StringIO()
emit(rj.dumps(doc))
written, sys.stdout = sys.stdout.getvalue(), out
print(json.dumps({"at_start": at_start, "importers": importers, "written": written}))
"""


def _child_path() -> str:
    """The parent's import path for a child started without site (-S: no .pth file or
    sitecustomize imports anything before the watch is set), kvmprobe's own tree first."""
    import kvmprobe

    root = str(Path(kvmprobe.__file__).resolve().parent.parent)
    here = str(Path(__file__).resolve().parent)
    return os.pathsep.join([root, here, *(p for p in sys.path if p and os.path.isdir(p))])


def _watched(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter without site (nothing imported before the watch),
    given the forbidden modules and ``args``; it must succeed."""
    r = subprocess.run(
        [sys.executable, "-S", "-c", code, ",".join(FORBIDDEN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": _child_path()},
    )
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("source", ["live", "from"])
@pytest.mark.parametrize("command", ["caps", "cpuid"])
def test_the_json_paths_never_import_the_costly_standard_modules(command: str, source: str) -> None:
    r = _watched(CHILD, command, source, str(RECORDED))
    got = json.loads(r.stdout)
    assert got["at_start"] == [], "the interpreter imported these before the path ran"
    doc = json.loads(got["written"])  # the path ran to the end and wrote its document
    assert doc["schema"] == f"kvmprobe.{command}/1"
    assert doc["caps" if command == "caps" else "features"]
    assert got["importers"] == {}, "\n".join(
        f"{module} imported by {chain}" for module, chain in got["importers"].items()
    )


def test_the_watch_names_the_importer() -> None:
    # the watch itself: a module that imports dataclasses is named as its importer
    code = CHILD.split("at_start = ")[0] + textwrap.dedent(
        """
        sys.meta_path.insert(0, Watch())
        import kvmprobe.frozen as fz
        fz._dataclass_fields  # nothing imported yet
        from kvmprobe.frozen import frozen

        @frozen
        class C:
            x: int

        C.__dataclass_fields__
        print(json.dumps(importers))
        """
    )
    r = _watched(code)
    importers = json.loads(r.stdout)
    assert importers["dataclasses"].startswith("kvmprobe.frozen:"), importers
    assert "inspect" in importers and "typing" not in importers


# -- JSON text: json's C encoder made once gives what JSONEncoder.encode gives ------------------

ODD_VALUES = [
    {"a": [1, -2.5, 1e300, None, True, False], "b": {}, "c": [], "d": 2**64, "e": -(2**70)},
    ['\u00e9\n\t"\\ \x00 \u2028 \U0001f600', "", {"nested": {"deep": [[[]]]}}],
    "a plain string",
    0,
    None,
]


def _reference_dumps(doc: object) -> str:
    """The layered text as the standard encoder makes it, value by value."""
    from kvmprobe.render import json as rj

    enc = json.JSONEncoder(separators=(", ", ": ")).encode
    return rj._layered(doc, 0, enc) + "\n"


def test_the_one_line_encoder_answers_as_the_standard_one() -> None:
    from kvmprobe.render import json as rj

    fast = rj._one_line_encoder()
    assert fast.__name__ == "encode" and fast.__qualname__.startswith("_one_line_encoder")
    std = json.JSONEncoder(separators=(", ", ": ")).encode
    for value in ODD_VALUES:
        assert fast(value) == std(value)
    with pytest.raises(TypeError):
        fast({"x": object()})  # what json cannot encode is refused, as by json
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        fast(cycle)  # a value that holds itself is refused, as by json


def test_without_a_c_encoder_the_standard_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from kvmprobe.render import json as rj

    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    enc = rj._one_line_encoder()
    assert getattr(enc, "__self__", None).__class__ is json.JSONEncoder
    assert rj.dumps({"a": ODD_VALUES}, terminal=False) == _reference_dumps({"a": ODD_VALUES})


def test_the_json_documents_are_the_standard_encoders_text() -> None:
    from kvmprobe.analysis import cpuid_query as cq
    from kvmprobe.analysis import effective
    from kvmprobe.analysis.caps import cap_rows
    from kvmprobe.render import json as rj
    from kvmprobe.snapshot import load

    snap, _ = load(str(RECORDED))
    a = effective.analyse(snap)
    docs = [
        rj.document("cpuid", snap, rj.cpuid_body(a, list(cq.select(a, None).features))),
        rj.document("caps", snap, rj.caps_body(cap_rows(snap, None, True), True)),
        {"top": ODD_VALUES, "list": ODD_VALUES, "empty": {}},
    ]
    for doc in docs:
        assert rj.dumps(doc, terminal=False) == _reference_dumps(doc)


# -- cpuid asks KVM_CHECK_EXTENSION for the named capabilities only ---------------------------


def test_a_capability_not_asked_is_unknown_not_zero() -> None:
    from conftest import RECORDED_HOSTS

    from kvmprobe.frozen import replace
    from kvmprobe.snapshot import load

    snap, _ = load(str(RECORDED_HOSTS[0]))
    short = replace(snap, cap_limit=10)
    assert snap.cap(20) == 0 and short.cap(20) is None
    assert short.cap(9, "vm") == snap.cap(9, "vm")


@pytest.mark.parametrize("host", [0, 1])
def test_cpuid_answers_the_same_from_the_named_capabilities(host: int) -> None:
    """What the cpuid command's probe leaves out (capabilities no table names) changes no
    answer: the whole JSON document of a recorded host given capabilities a future kernel
    might add above NAMED_CAP_LIMIT is the same as with its capabilities cut there."""
    from conftest import RECORDED_HOSTS

    from kvmprobe.analysis.effective import analyse
    from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary
    from kvmprobe.frozen import replace
    from kvmprobe.kvm.probe import NAMED_CAP_LIMIT
    from kvmprobe.render import json as rj
    from kvmprobe.snapshot import load

    def document(snap: object) -> str:
        a = analyse(snap)  # type: ignore[arg-type]
        body = rj.cpuid_body(a, list(a.features))
        body["psabi"] = rj.psabi_json(psabi_summary(a))
        body["consistency"] = rj.consistency_json(cpuid_consistency(snap))  # type: ignore[arg-type]
        return rj.dumps(rj.document("cpuid", snap, body), terminal=False)  # type: ignore[arg-type]

    recorded, _ = load(str(RECORDED_HOSTS[host]))
    future = {NAMED_CAP_LIMIT: 1, NAMED_CAP_LIMIT + 50: 7, 511: 1}
    snap = replace(
        recorded,
        caps={s: None if v is None else {**v, **future} for s, v in recorded.caps.items()},
    )
    assert snap.cap(511) == 1
    cut = {
        scope: None if values is None else {n: v for n, v in values.items() if n < NAMED_CAP_LIMIT}
        for scope, values in snap.caps.items()
    }
    short = replace(snap, cap_limit=NAMED_CAP_LIMIT, caps=cut)
    assert document(short) == document(snap)


def test_the_cpuid_probe_asks_for_the_named_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import RECORDED_HOSTS
    from support.fakekvm import FakeKvm

    from kvmprobe.commands.common import Invocation, get_snapshot
    from kvmprobe.kvm import probe as device
    from kvmprobe.kvm.probe import NAMED_CAP_LIMIT
    from kvmprobe.limits import CAP_LIMIT
    from kvmprobe.snapshot import load

    snap, _ = load(str(RECORDED_HOSTS[0]))
    fakes: list[FakeKvm] = []
    real = device.probe

    def probe(path: str, **kw: object) -> object:
        fakes.append(FakeKvm(snap))
        return real("/dev/null", ioctl=fakes[-1], **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(device, "probe", probe)
    inv = Invocation({}, no_color=True, debug=False)
    named = get_snapshot(inv, None, "/dev/kvm", named_caps=True)
    every = get_snapshot(inv, None, "/dev/kvm")
    asked = [f.calls.count("CHECK_EXTENSION") for f in fakes]
    assert (named.cap_limit, every.cap_limit) == (NAMED_CAP_LIMIT, CAP_LIMIT)
    assert asked[0] < asked[1] and asked[1] - asked[0] == 3 * (CAP_LIMIT - NAMED_CAP_LIMIT)
