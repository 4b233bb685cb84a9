"""Shell completion through click's own machinery: the scripts for bash, zsh and fish, the
env-var protocol, the values (feature, capability and schema names, --require lists), that
completing never touches the device, and the scripts run in the real shells when installed
(KVMPROBE_REQUIRE_SHELLS=1 turns a missing shell into a failure)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete, ShellComplete, ZshComplete, get_completion_class
from click.testing import CliRunner

from kvmprobe import completion
from kvmprobe.cli import main

SHELLS = ("bash", "zsh", "fish")
REQUIRE_SHELLS = os.environ.get("KVMPROBE_REQUIRE_SHELLS") == "1"
VAR = "_KVMPROBE_COMPLETE"


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRE_SHELLS:
            pytest.fail(f"KVMPROBE_REQUIRE_SHELLS=1 but {name} is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def values(words: list[str], incomplete: str, shell: type[ShellComplete] = BashComplete) -> list:
    """What completing ``kvmprobe WORDS INCOMPLETE`` offers, through click's API in process."""
    comp = shell(main, {}, "kvmprobe", VAR)
    return [item.value for item in comp.get_completions(words, incomplete)]


def protocol(shell: str, line: str) -> list[str]:
    """The env-var protocol the shell scripts speak, in process: the raw reply lines."""
    words = line.split(" ")
    if shell == "fish":
        env = {VAR: "fish_complete", "COMP_WORDS": line, "COMP_CWORD": words[-1]}
    else:
        env = {VAR: f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    r = CliRunner().invoke(main, [], env=env, prog_name="kvmprobe")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    return r.stdout.splitlines()


# -- the scripts ------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_script_is_produced(shell: str) -> None:
    if shell == "bash":
        _shell("bash")  # click asks bash for its version before writing the bash script
    r = CliRunner().invoke(main, [], env={VAR: f"{shell}_source"}, prog_name="kvmprobe")
    assert r.exit_code == 0, r.output
    assert f"{VAR}={shell}_complete" in r.stdout
    assert "_kvmprobe_completion" in r.stdout
    assert "kvmprobe: error" not in r.output


def test_fish_script_keeps_commas_in_values() -> None:
    """Click's fish script would cut "x2apic,tsc_deadline_timer" at the comma."""
    cls = get_completion_class("fish")
    assert cls is not None and cls.__module__ == "kvmprobe.completion"
    assert 'string split -m 1 "," $completion' in cls.source_template
    assert 'string split "," $completion' not in cls.source_template


# -- the values -------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_explain_tsc_offers_tsc_deadline_timer(shell: str) -> None:
    cls = get_completion_class(shell)
    assert cls is not None
    offered = values(["cpuid", "--explain"], "tsc", cls)
    assert "tsc_deadline_timer" in offered and "tsc-deadline" in offered
    assert all(v.lower().startswith("tsc") for v in offered)
    lines = protocol(shell, "kvmprobe cpuid --explain tsc")
    if shell == "bash":
        assert "plain,tsc_deadline_timer" in lines
    elif shell == "zsh":  # type, value, description, one per line
        i = lines.index("tsc_deadline_timer")
        assert lines[i - 1] == "plain" and "0x1.0.ecx[24]" in lines[i + 1]
    else:
        assert any(line.startswith("plain,tsc_deadline_timer\t0x1.0.ecx[24]") for line in lines)


def test_feature_filter_and_spellings() -> None:
    assert "tsc-deadline" in values(["cpuid"], "tsc-d")
    assert values(["cpuid"], "X86_FEATURE_TSC_D") == ["X86_FEATURE_TSC_DEADLINE_TIMER"]
    assert "KVM_FEATURE_PV_UNHALT" in values(["cpuid", "--explain"], "kvm_feature_pv")
    # kernel names only once asked for: a plain prefix gets Linux and QEMU names
    assert not any(v.startswith("X86_") for v in values(["cpuid"], ""))
    assert values(["cpuid", "--explain"], "no-such-feature") == []
    # after --explain's value, options again
    assert "--json" in values(["cpuid", "--explain", "x2apic"], "--")


def test_every_completed_feature_name_is_accepted() -> None:
    from kvmprobe.analysis.cpuid import lookup

    offered = values(["cpuid", "--explain"], "") + values(["cpuid"], "x86_feature_")
    assert len(offered) > 600
    assert [v for v in offered if lookup(v) is None] == []


def test_capability_names() -> None:
    assert values(["caps"], "x2") == ["x2apic_api"]
    assert values(["caps"], "X2") == ["X2APIC_API"]
    assert values(["caps"], "kvm_cap_x2") == ["kvm_cap_x2apic_api"]
    assert values(["caps"], "KVM_CAP_X2") == ["KVM_CAP_X2APIC_API"]
    from kvmprobe.analysis.caps import cap_by_name, known_caps

    offered = values(["caps"], "")
    assert len(offered) == len(known_caps())
    assert all(cap_by_name(v) is not None for v in offered)


def test_schema_kinds() -> None:
    assert values(["schema"], "sn") == ["snapshot"]
    assert values(["schema"], "kvmprobe.sn") == ["kvmprobe.snapshot/2", "kvmprobe.snapshot/1"]


def test_subcommands() -> None:
    offered = values([], "")
    for name in ("caps", "cpuid", "doctor", "record", "msr", "hyperv", "schema"):
        assert name in offered


def _require_values(incomplete: str) -> list[str]:
    param = click.Option(["--require"])
    ctx = click.Context(click.Command("x"))
    return [i.value for i in completion.require_list(ctx, param, incomplete)]


def test_require_list_completes_the_last_item() -> None:
    assert "x2apic,tsc_deadline_timer" in _require_values("x2apic,tsc")
    assert _require_values("x86-64-v") == ["x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4"]
    assert "avx2,x86-64-v3" in _require_values("avx2,x86-64-v")
    # an item already given is not offered again
    assert "x2apic,x2apic" not in _require_values("x2apic,x2a")
    assert "tsc_deadline_timer" in _require_values("")


# -- never the device -------------------------------------------------------------------------


def test_completion_never_touches_the_device_nor_imports_rich() -> None:
    code = textwrap.dedent(
        """
        import builtins, os, sys
        opened = []
        real_open, real_os_open = builtins.open, os.open
        def watch_open(path, *a, **k):
            opened.append(str(path))
            return real_open(path, *a, **k)
        def watch_os_open(path, *a, **k):
            opened.append(str(path))
            return real_os_open(path, *a, **k)
        builtins.open, os.open = watch_open, watch_os_open
        os.environ.update(_KVMPROBE_COMPLETE="bash_complete", COMP_CWORD="3",
                          COMP_WORDS="kvmprobe cpuid --explain tsc")
        from kvmprobe.entry import run
        try:
            run([])
        except SystemExit as e:
            assert not e.code, e.code
        loaded = sorted(m for m in sys.modules
                        if m.startswith(("rich", "kvmprobe.kvm", "jsonschema")))
        print("LOADED", loaded, file=sys.stderr)
        print("DEV", [p for p in opened if p.startswith("/dev")], file=sys.stderr)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "plain,tsc_deadline_timer" in r.stdout.splitlines()
    assert "LOADED []" in r.stderr, r.stderr
    assert "DEV []" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "words", [[], ["caps"], ["cpuid", "--from", "x.json"], ["doctor"], ["record", "-o"]]
)
def test_completing_runs_no_command(words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Completing after a command name never runs it: no probe, no summary, no messages."""
    import kvmprobe.commands.summary
    import kvmprobe.kvm.probe

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("completion ran a command")

    for name in ("probe", "record", "examine"):
        monkeypatch.setattr(kvmprobe.kvm.probe, name, refuse)
    monkeypatch.setattr(kvmprobe.commands.summary, "summary", refuse)
    line = " ".join(["kvmprobe", *words, ""])
    for shell in SHELLS:
        lines = protocol(shell, line)
        assert not any("kvmprobe:" in x for x in lines)


# -- the real shells --------------------------------------------------------------------------


@pytest.fixture
def on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a ``kvmprobe`` that runs this checkout's kvmprobe."""
    exe = tmp_path / "bin" / "kvmprobe"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kvmprobe "$@"\n')
    exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("_KVMPROBE")}
    env["PATH"] = f"{exe.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)  # no user start-up files
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def _run(argv: list[str], env: dict[str, str]) -> list[str]:
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_bash_runs_the_script(on_path: dict[str, str]) -> None:
    script = textwrap.dedent(
        """
        source <(_KVMPROBE_COMPLETE=bash_source kvmprobe)
        COMP_WORDS=(kvmprobe cpuid --explain tsc); COMP_CWORD=3
        _kvmprobe_completion kvmprobe
        printf '%s\\n' "${COMPREPLY[@]}"
        """
    )
    out = _run([_shell("bash"), "--norc", "--noprofile", "-c", script], on_path)
    assert "tsc_deadline_timer" in out and "tsc-deadline" in out


def test_zsh_runs_the_script(on_path: dict[str, str]) -> None:
    # compadd and _describe only work inside a real completion widget: stand-ins print what
    # the script hands them
    script = textwrap.dedent(
        """
        compdef() { : }
        _describe() { print -l -- "${(@P)3}" }
        compadd() { print -l -- "${(@P)${@[-1]}}" }
        eval "$(_KVMPROBE_COMPLETE=zsh_source kvmprobe)"
        words=(kvmprobe cpuid --explain tsc); CURRENT=4
        _kvmprobe_completion
        """
    )
    out = _run([_shell("zsh"), "-f", "-c", script], on_path)
    assert any(x.startswith("tsc_deadline_timer:0x1.0.ecx[24]") for x in out), out


def test_fish_runs_the_script(on_path: dict[str, str]) -> None:
    script = (
        "env _KVMPROBE_COMPLETE=fish_source kvmprobe | source; "
        "complete -C 'kvmprobe cpuid --explain tsc'"
    )
    out = _run([_shell("fish"), "--no-config", "-c", script], on_path)
    assert any(x.startswith("tsc_deadline_timer\t0x1.0.ecx[24]") for x in out), out


def test_fish_completes_a_require_list(tmp_path: Path, on_path: dict[str, str]) -> None:
    """A --require list keeps its earlier items through fish (the comma fix): a stand-in
    program named kvmprobe with a --require option wired to completion.require_list."""
    (tmp_path / "standin.py").write_text(
        textwrap.dedent(
            """
            import click
            from kvmprobe.completion import require_list

            @click.command()
            @click.option("--require", shell_complete=require_list)
            def cli(require):
                pass

            cli(prog_name="kvmprobe")
            """
        )
    )
    (tmp_path / "bin" / "kvmprobe").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "standin.py"}" "$@"\n'
    )
    script = (
        "env _KVMPROBE_COMPLETE=fish_source kvmprobe | source; "
        "complete -C 'kvmprobe --require x2apic,tsc_dead'"
    )
    out = _run([_shell("fish"), "--no-config", "-c", script], on_path)
    assert any(x.startswith("x2apic,tsc_deadline_timer") for x in out), out


def test_zsh_class_is_clicks() -> None:
    assert get_completion_class("zsh") is ZshComplete
