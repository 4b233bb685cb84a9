"""Fleet outputs read by the real programs that consume them (issue 14).

* ansible-core (the test extra): the facts.d executable, installed in a temporary fact_path
  by contrib/ansible/install-fact.yml, gives ``ansible_local.kvmprobe`` through ``ansible
  localhost -m setup`` with the live host's features; contrib/ansible/collect-snapshots.yml
  leaves a valid snapshot of localhost in the destination folder.
* promtool (Debian ``prometheus``): ``check metrics`` on written files, ``check rules`` and
  ``test rules`` on the example alert rules.
* prometheus-node-exporter (Debian): started on 127.0.0.1 with the textfile collector on a
  folder holding the file, it serves the series over HTTP.
* systemd-analyze: the example units verify clean.

Each is skipped with the reason when the program is absent; KVMPROBE_REQUIRE_ANSIBLE=1 and
KVMPROBE_REQUIRE_PROMETHEUS=1 (set by .ci/run where they are installed) turn those skips
into failures. Live-host cases also need /dev/kvm (conftest's live_device).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, RECORDED_HOSTS
from support.prom import normalised, one, samples

from kvmprobe.snapshot import load

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
FIX = str(FIXTURES / RECORDED_HOSTS[0].name)
BIN = Path(sys.executable).parent
TIMEOUT = 120  # seconds any one external command may take


def _tool(name: str, switch: str, *, venv: bool = False) -> str:
    """The path of an external program, or a skip (a failure when ``switch`` is set to 1)."""
    path = str(BIN / name) if venv and (BIN / name).exists() else shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed"
    if os.environ.get(switch) == "1":
        pytest.fail(f"{switch}=1 but {reason}")
    pytest.skip(reason)


def _kvmprobe() -> str:
    path = BIN / "kvmprobe"
    assert path.exists(), f"the kvmprobe console script is not installed beside {sys.executable}"
    return str(path)


def _run(
    argv: list[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=input, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)  # fmt: skip


# ---- Ansible ------------------------------------------------------------------------------


@pytest.fixture
def ansible_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which Ansible keeps everything under tmp_path and finds kvmprobe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        LC_ALL="C.UTF-8",
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_CONFIG=str(tmp_path / "no-ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    return env


def test_ansible_fact_gives_ansible_local_kvmprobe(
    live_device: str, tmp_path: Path, ansible_env: dict[str, str]
) -> None:
    ansible = _tool("ansible", "KVMPROBE_REQUIRE_ANSIBLE", venv=True)
    playbook = _tool("ansible-playbook", "KVMPROBE_REQUIRE_ANSIBLE", venv=True)
    fact_path = tmp_path / "facts.d"
    r = _run([playbook, "-i", "localhost,", "-c", "local",
              "-e", f"kvmprobe_fact_path={fact_path}",
              str(CONTRIB / "ansible" / "install-fact.yml")], env=ansible_env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(fact_path / "kvmprobe.fact", os.X_OK)
    r = _run([ansible, "localhost", "-c", "local", "-m", "ansible.builtin.setup",
              "-a", f"fact_path={fact_path} filter=ansible_local"], env=ansible_env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    head, sep, body = r.stdout.partition(" => ")
    assert sep and head.startswith("localhost | SUCCESS"), r.stdout
    fact = json.loads(body)["ansible_facts"]["ansible_local"]["kvmprobe"]
    # the live host, as kvmprobe itself reports it
    mine = json.loads(_run([_kvmprobe(), "fact", "--device", live_device]).stdout)
    assert fact["schema"] == "kvmprobe.fact/1"
    assert fact["usable"] is True and fact["api_version"] == 12
    assert fact["source"]["kind"] == "live"
    assert fact["features"] == mine["features"] and len(fact["features"]) > 50
    assert "x2apic" in fact["features"]
    assert fact["guest_level"] == mine["guest_level"] and fact["guest_level"] is not None
    assert fact["host_level"] == mine["host_level"]
    assert fact["probe_errors"] == mine["probe_errors"]


def test_ansible_playbook_collects_a_snapshot(
    live_device: str, tmp_path: Path, ansible_env: dict[str, str]
) -> None:
    playbook = _tool("ansible-playbook", "KVMPROBE_REQUIRE_ANSIBLE", venv=True)
    dest = tmp_path / "snapshots"
    r = _run([playbook, "-i", "localhost,", "-c", "local",
              "-e", f"kvmprobe_dest={dest}", "-e", f"kvmprobe_command={_kvmprobe()}",
              str(CONTRIB / "ansible" / "collect-snapshots.yml")], env=ansible_env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failed=0" in r.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["localhost.json"]
    snap, warnings = load(str(dest / "localhost.json"))
    assert warnings == []
    assert snap.api_version == 12 and snap.supported_cpuid
    assert snap.access is not None  # recorded by 'kvmprobe record', device facts included
    # the file works like any snapshot: the fleet commands read it on the controller
    cpuid = _run([_kvmprobe(), "cpuid", "--json", "--from", str(dest / "localhost.json")])
    assert cpuid.returncode == 0, cpuid.stderr
    assert json.loads(cpuid.stdout)["features"]


def test_ansible_playbook_names_a_host_it_cannot_probe(
    tmp_path: Path, ansible_env: dict[str, str]
) -> None:
    """A host whose KVM cannot be probed fails its record task (the recap says so) and
    leaves no file; the private directory is removed anyway."""
    playbook = _tool("ansible-playbook", "KVMPROBE_REQUIRE_ANSIBLE", venv=True)
    dest = tmp_path / "snapshots"
    wrapper = tmp_path / "kvmprobe-nodev"
    wrapper.write_text(f'#!/bin/sh\nexec {_kvmprobe()} "$@" --device /nonexistent/kvm\n')
    wrapper.chmod(0o755)
    r = _run([playbook, "-i", "localhost,", "-c", "local",
              "-e", f"kvmprobe_dest={dest}", "-e", f"kvmprobe_command={wrapper}",
              str(CONTRIB / "ansible" / "collect-snapshots.yml")], env=ansible_env)  # fmt: skip
    assert r.returncode != 0
    assert "failed=1" in r.stdout and "Remove the private directory" in r.stdout
    assert not dest.exists() or not list(dest.iterdir())


# ---- Prometheus ---------------------------------------------------------------------------


def _metrics_file(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "kvmprobe.prom"
    r = _run([_kvmprobe(), "metrics", "-o", str(out), *args])
    assert r.returncode == 0, r.stderr
    return out


def test_promtool_accepts_the_metrics_of_a_recorded_host(tmp_path: Path) -> None:
    promtool = _tool("promtool", "KVMPROBE_REQUIRE_PROMETHEUS")
    out = _metrics_file(tmp_path, "--from", FIX, "--irqchip", "kernel", "--irqchip", "split")
    r = _run([promtool, "check", "metrics"], input=out.read_text())
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout + r.stderr == ""  # not even a lint remark


def test_promtool_accepts_the_metrics_of_the_live_host(live_device: str, tmp_path: Path) -> None:
    promtool = _tool("promtool", "KVMPROBE_REQUIRE_PROMETHEUS")
    out = _metrics_file(tmp_path, "--device", live_device)
    r = _run([promtool, "check", "metrics"], input=out.read_text())
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    assert one(out.read_text(), "kvmprobe_kvm_usable") == 1


def test_promtool_accepts_the_metrics_of_a_host_without_kvm(tmp_path: Path) -> None:
    promtool = _tool("promtool", "KVMPROBE_REQUIRE_PROMETHEUS")
    out = _metrics_file(tmp_path, "--device", "/nonexistent/kvm")
    r = _run([promtool, "check", "metrics"], input=out.read_text())
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_promtool_accepts_the_alert_rules_and_they_flag_hosts_below_the_baseline() -> None:
    promtool = _tool("promtool", "KVMPROBE_REQUIRE_PROMETHEUS")
    rules = CONTRIB / "prometheus" / "kvmprobe-alerts.yml"
    r = _run([promtool, "check", "rules", str(rules)])
    assert r.returncode == 0 and "SUCCESS: 7 rules found" in r.stdout, r.stdout + r.stderr
    # unit tests: the host below the baseline fires, the host at the baseline does not
    test = Path(__file__).parent / "prometheus" / "kvmprobe-alerts.test.yml"
    r = _run([promtool, "test", "rules", str(test)])
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> str:
    """GET a loopback URL directly (never through a proxy from the environment)."""
    assert url.startswith("http://127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return str(resp.read().decode("utf-8"))


@contextlib.contextmanager
def _node_exporter(exe: str, textfile_dir: Path, log: Path) -> Iterator[str]:
    """A node_exporter serving only the textfile collector on 127.0.0.1; yields its metrics
    URL once it answers (at most 15 s) and always kills it afterwards."""
    port = _free_port()
    argv = [exe, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.textfile", f"--collector.textfile.directory={textfile_dir}"]  # fmt: skip
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=err, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"node_exporter exited {proc.returncode}: {log.read_text()}")
            try:
                _scrape(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"node_exporter did not answer: {log.read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_node_exporter_serves_the_series(tmp_path: Path) -> None:
    # Debian's name for it; upstream's binary is node_exporter
    name = "node_exporter" if shutil.which("node_exporter") else "prometheus-node-exporter"
    exe = _tool(name, "KVMPROBE_REQUIRE_PROMETHEUS")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    written = _metrics_file(textfiles, "--from", FIX)
    with _node_exporter(exe, textfiles, tmp_path / "node_exporter.log") as url:
        served = _scrape(url)
    assert one(served, "node_textfile_scrape_error") == 0
    mtimes = samples(served)["node_textfile_mtime_seconds"]
    assert len(mtimes) == 1 and mtimes[0][0]["file"] in (str(written), written.name)
    theirs = samples(served)
    for name, series in samples(written.read_text()).items():
        assert normalised(theirs.get(name, [])) == normalised(series), name
    assert one(served, "kvmprobe_guest_x86_64_level", irqchip="kernel") == 1
    assert one(served, "kvmprobe_feature_effective", irqchip="kernel", feature="x2apic") == 1


# ---- systemd ------------------------------------------------------------------------------


def test_systemd_units_verify_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    for unit in sorted((CONTRIB / "systemd").iterdir()):
        text = unit.read_text().replace("/usr/local/bin/kvmprobe", _kvmprobe())
        (tmp_path / unit.name).write_text(text)
    r = _run([analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())])
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
