"""The JSON contracts: every schema kvmprobe ships is a valid draft 2020-12 schema whose $id
pairs with the documents' "schema" value; every document kvmprobe writes (golden outputs, the
CLI on recorded, synthetic and failing hosts, a live probe) validates and describes every
field it carries; older snapshot formats still load; ``kvmprobe schema`` prints the files.
"""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, GOLDEN, RECORDED_HOSTS
from jsonschema import Draft202012Validator
from support import hosts, synth_msr
from support.schema_check import check, errors, undocumented, validator

from kvmprobe import schemas
from kvmprobe.cli import main
from kvmprobe.snapshot import SCHEMA, SCHEMA_MAJOR, SCHEMA_PREFIX, ProbeError, load

PACKAGE_DIR = Path(schemas.__file__).parent
#: golden JSON in another program's format (tests/test_export_firecracker.py validates those)
FOREIGN_GOLDEN = {"export-firecracker.json"}
GOLDEN_JSON = sorted(p for p in GOLDEN.glob("*/*.json") if p.name not in FOREIGN_GOLDEN)
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout


def json_doc(*args: str) -> dict[str, Any]:
    status, out = run(*args)
    assert status in (0, 3, 4, 5), out  # doctor's verdict is its status
    doc: dict[str, Any] = json.loads(out)
    return doc


# -- the schemas themselves --------------------------------------------------------------------


def test_registry_and_files_agree() -> None:
    files = sorted(p.name for p in PACKAGE_DIR.glob("*.schema.json"))
    assert files == sorted(schemas.file_name(n) for n in schemas.SCHEMAS)
    assert len(set(schemas.SCHEMAS)) == len(schemas.SCHEMAS)


@pytest.mark.parametrize("name", schemas.SCHEMAS)
def test_schema_is_valid_and_its_id_pairs_with_the_document(name: str) -> None:
    s = schemas.load(name)
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == DRAFT
    assert s["$id"] == f"urn:kvmprobe:schema:{name}" == schemas.schema_id(name)
    assert s["properties"]["schema"]["const"] == name
    assert s["type"] == "object" and "schema" in s["required"]
    if name.startswith(SCHEMA_PREFIX):
        assert "errors" in s["required"]
    else:
        assert {"source", "probe_errors"} <= set(s["required"])
    assert s.get("title") and s.get("description")
    # the file is what 'kvmprobe schema' prints, byte for byte
    assert schemas.text(name) == (PACKAGE_DIR / schemas.file_name(name)).read_text()


def _subschemas(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema inside a schema, with its JSON pointer, walking the keywords that hold
    schemas (so a document field named "properties" is not mistaken for the keyword)."""
    out = [(path, node)]
    for key in ("properties", "$defs"):
        for k, sub in node.get(key, {}).items():
            out += _subschemas(sub, f"{path}/{key}/{k}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(node.get(key), dict):
            out += _subschemas(node[key], f"{path}/{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key, ())):
            out += _subschemas(sub, f"{path}/{key}/{i}")
    return out


@pytest.mark.parametrize("name", schemas.SCHEMAS)
def test_every_field_is_described_with_its_encoding(name: str) -> None:
    s = schemas.load(name)
    for path, node in _subschemas(s):
        for key, prop in node.get("properties", {}).items():
            target = prop
            if "$ref" in prop and "description" not in prop:
                target = s["$defs"][prop["$ref"].removeprefix("#/$defs/")]
            assert target.get("description"), f"{name} {path}/properties/{key}: no description"
        if "pattern" in node and node["pattern"].startswith("^0x"):
            assert "hex" in node.get("description", ""), f"{name} {path}: hex, not said"
        types = node.get("type")
        nullable = (isinstance(types, list) and "null" in types) or any(
            alt.get("type") == "null" for alt in node.get("anyOf", ())
        )
        if nullable and path.split("/")[-2:-1] == ["properties"]:
            assert "null" in node["description"], f"{name} {path}: null, not said when"


def test_shared_definitions_are_identical() -> None:
    """$defs are copied into each schema (each file stands alone); copies must not drift."""
    seen: dict[str, tuple[str, Any]] = {}
    for name in schemas.SCHEMAS:
        for key, d in schemas.load(name).get("$defs", {}).items():
            if key in seen:
                assert d == seen[key][1], f"$defs/{key} differs between {seen[key][0]} and {name}"
            else:
                seen[key] = (name, d)


def _vocabulary(where: str) -> list[Any]:
    module, _, attr = where.rpartition(".")
    value = getattr(importlib.import_module(module), attr)
    if isinstance(value, type) and issubclass(value, Enum):
        return [m.value for m in value]
    if isinstance(value, dict):  # the generated capability table: number -> (name, arch)
        return sorted({arch for _name, arch in value.values()})
    return list(value)


@pytest.mark.parametrize("name", schemas.SCHEMAS)
def test_enums_follow_kvmprobes_vocabularies(name: str) -> None:
    """An enum that names its source in $comment lists exactly that vocabulary (the caps
    table's architectures: at least those, plus 'unknown')."""
    found = 0
    for path, node in _subschemas(schemas.load(name)):
        where = node.get("$comment", "")
        if not where.startswith("kvmprobe."):
            continue
        found += 1
        enum = node["enum"]
        vocab = _vocabulary(where)
        if where.endswith("caps_data.CAPS"):
            assert set(vocab) | {"unknown"} <= set(enum), f"{name} {path}"
        else:
            assert enum == vocab, f"{name} {path}: {enum} != {where} {vocab}"
    assert found


# -- documents: golden, recorded, synthetic, failing, live --------------------------------------


def test_there_are_golden_documents_of_every_kind_but_snapshot() -> None:
    kinds = {json.loads(p.read_text())["schema"] for p in GOLDEN_JSON}
    assert kinds == {n for n in schemas.SCHEMAS if not n.startswith(SCHEMA_PREFIX)}


@pytest.mark.parametrize("path", GOLDEN_JSON, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_json_validates(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert errors(doc) == []


@pytest.mark.parametrize("path", RECORDED_HOSTS, ids=lambda p: p.name)
def test_recorded_snapshots_validate_and_load(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert errors(doc) == []
    snap, warnings = load(str(path))
    assert warnings == []
    # and what kvmprobe writes back is the newest format, valid too
    again = json.loads(snap.dumps())
    assert again["schema"] == SCHEMA
    assert errors(again) == []


def test_an_example_of_every_older_snapshot_format_is_committed() -> None:
    """The compatibility rule: older snapshot majors still load. Each one has a committed
    recorded example that validates against its own schema and loads (test above)."""
    committed = {json.loads(p.read_text())["schema"] for p in RECORDED_HOSTS}
    for major in range(1, SCHEMA_MAJOR + 1):
        name = f"{SCHEMA_PREFIX}{major}"
        assert name in schemas.SCHEMAS, f"no schema for {name}"
        assert name in committed, f"no committed example of {name} in tests/fixtures"


def test_snapshot_formats_differ_where_they_should() -> None:
    """Format 1 wrote 64-bit values as numbers, format 2 as hex strings: each fails the other."""
    v1 = json.loads((FIXTURES / "amd-epyc-pvm-6.18.json").read_text())
    v2 = json.loads((FIXTURES / "amd-epyc-zen4-pvm-6.18.json").read_text())
    assert v1["schema"].endswith("/1") and v2["schema"].endswith("/2")
    as_v2 = {**v1, "schema": v2["schema"], "access": None, "verification": None}
    as_v1 = {**v2, "schema": v1["schema"]}
    assert any("feature_msrs" in e for e in errors(as_v2))
    assert any("feature_msrs" in e for e in errors(as_v1))


COMMANDS: list[list[str]] = [
    ["caps", "--json"],
    ["caps", "--json", "--all"],
    ["caps", "x2apic", "--json"],
    ["cpuid", "--json"],
    ["cpuid", "--json", "--irqchip", "split", "--disable-exits", "hlt,pause"],
    ["cpuid", "--json", "--irqchip", "userspace"],
    ["cpuid", "tsc", "--json"],
    ["cpuid", "--json", "--explain", "tsc-deadline", "--irqchip", "userspace"],
    ["doctor", "--json"],
    ["msr", "--json"],
    ["msr", "mds-no", "--json"],
    ["hyperv", "--json"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("host", RECORDED_HOSTS, ids=lambda p: p.name)
def test_cli_documents_of_recorded_hosts_validate(host: Path, args: list[str]) -> None:
    doc = json_doc(*args, "--from", str(host))
    assert doc["schema"] == schemas.resolve(args[0])
    check(doc)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


SYNTHETIC = {
    **{m.name: (lambda m=m: hosts.host_snapshot(m)) for m in hosts.MODELS},
    "intel-nested-vmx": synth_msr.intel_nested_vmx,
    "hyperv": synth_msr.hyperv_host,
    "hyperv-failed": lambda: synth_msr.no_hyperv_host(
        error=ProbeError("KVM_GET_SUPPORTED_HV_CPUID", 5, "Input/output error")
    ),
}


@pytest.mark.parametrize("host", sorted(SYNTHETIC))
def test_cli_documents_of_synthetic_hosts_validate(host: str, tmp_path: Path) -> None:
    snap = SYNTHETIC[host]()
    path = _write(tmp_path, f"{host}.json", snap.dumps())
    check(json.loads(Path(path).read_text()))
    for args in COMMANDS:
        if "mds-no" in args or (args[0] == "cpuid" and snap.supported_cpuid is None):
            continue
        check(json_doc(*args, "--from", path))


def failing_host() -> dict[str, Any]:
    """The recorded format-2 host as if many probe steps had failed: what they would have
    given is null or absent, and each failure is in errors."""
    doc = json.loads((FIXTURES / "amd-epyc-zen4-pvm-6.18.json").read_text())
    doc = copy.deepcopy(doc)

    def failed(step: str, errno: int | None = 5, message: str = "Input/output error") -> None:
        doc["errors"].append({"step": step, "errno": errno, "message": message})

    doc["caps"]["vm_split_irqchip"] = None
    failed("KVM_CREATE_VM (split irqchip)", 16, "Device or resource busy")
    failed("KVM_CHECK_EXTENSION(129) on vm")
    doc["emulated_cpuid"] = None
    failed("KVM_GET_EMULATED_CPUID")
    doc["msr_index_list"] = None
    failed("KVM_GET_MSR_INDEX_LIST")
    del doc["feature_msrs"]["0x10a"]
    failed("KVM_GET_MSRS(0x10a)")
    doc["host"]["cpuid"] = None
    doc["host"]["cpuid_source"] = None
    doc["host"]["cpuid_error"] = "no /dev/cpu/0/cpuid"
    doc["host"]["cpuinfo_flags"] = []  # and no /proc/cpuinfo flags to fall back on
    failed("host CPUID", None, "no /dev/cpu/0/cpuid")
    doc["mce_cap_supported"] = None
    failed("KVM_X86_GET_MCE_CAP_SUPPORTED", 25, "Inappropriate ioctl for device")
    doc["verification"] = None
    failed("vCPU verification", 22, "Invalid argument")
    return doc


def test_cli_documents_of_a_failing_host_validate(tmp_path: Path) -> None:
    doc = failing_host()
    assert errors(doc) == []
    path = _write(tmp_path, "failing.json", json.dumps(doc))
    for args in COMMANDS:
        out = json_doc(*args, "--from", path)
        check(out)
        assert len(out["probe_errors"]) >= 7
    # the unknowns are there as nulls, so the schemas' null branches were exercised
    cpuid = json_doc("cpuid", "--json", "--all", "--from", path)
    assert {f["emulated"] for f in cpuid["features"]} == {None}
    assert {f["host"] for f in cpuid["features"]} == {None}
    caps = json_doc("caps", "--json", "--from", path)
    assert {c["vm_split_irqchip"] for c in caps["caps"]} == {None}
    assert any(c["unknown"] for c in caps["caps"])
    msr = json_doc("msr", "--json", "--from", path)
    assert msr["msr_index_list"] is None and msr["unread"]


@pytest.mark.live
def test_live_documents_validate(live_device: str) -> None:
    status, out = run("record", "--device", live_device)
    assert status == 0
    record = json.loads(out)
    assert record["schema"] == SCHEMA
    check(record)
    for args in COMMANDS:
        check(json_doc(*args, "--device", live_device))


# -- what the schemas catch ----------------------------------------------------------------------


def _golden(host: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / host / name).read_text())
    return doc


ZEN4 = "amd-epyc-zen4-pvm-6.18"


def test_a_renamed_field_fails() -> None:
    doc = _golden(ZEN4, "cpuid-kernel.json")
    doc["features"][0]["usable"] = doc["features"][0].pop("effective")
    found = errors(doc)
    assert any("'effective' is a required property" in e for e in found)
    assert any(e.startswith("/features/0/usable: field not described") for e in found)


def test_a_retyped_field_fails() -> None:
    doc = _golden(ZEN4, "cpuid-kernel.json")
    doc["features"][3]["effective"] = "yes"
    assert errors(doc) == ["features/3/effective: 'yes' is not of type 'boolean', 'null'"]
    doc = _golden(ZEN4, "msr.json")
    doc["feature_msrs"][1]["value"] = 4611686018628714601  # above 2^53: must be hex
    assert any(e.startswith("feature_msrs/1/value:") for e in errors(doc))


def test_an_unknown_vocabulary_value_fails() -> None:
    doc = _golden(ZEN4, "doctor.json")
    doc["checks"][0]["status"] = "OK"
    assert any(e.startswith("checks/0/status:") for e in errors(doc))


def test_a_wrong_schema_value_fails() -> None:
    doc = _golden(ZEN4, "caps.json")
    assert validator("kvmprobe.caps/1").is_valid(doc)
    doc["schema"] = "kvmprobe.cpuid/1"
    assert not validator("kvmprobe.caps/1").is_valid(doc)
    doc["schema"] = "kvmprobe.caps/7"
    assert errors(doc)[0].startswith("no schema for kvmprobe.caps/7")


def test_an_added_field_validates_but_is_flagged_as_undescribed() -> None:
    """Consumers' validation survives fields a newer kvmprobe adds; our own tests insist the
    schema describes them."""
    doc = _golden(ZEN4, "hyperv.json")
    doc["new_block"] = {"x": 1}
    doc["source"]["host_name"] = "h"
    assert validator("kvmprobe.hyperv/1").is_valid(doc)
    assert undocumented(doc, schemas.load("kvmprobe.hyperv/1")) == [
        "/new_block",
        "/source/host_name",
    ]


def test_probe_errors_are_pinned() -> None:
    doc = _golden(ZEN4, "caps.json")
    doc["probe_errors"] = [{"step": "KVM_GET_SUPPORTED_CPUID", "errno": 5, "message": "EIO"}]
    assert any("'errno_name' is a required property" in e for e in errors(doc))
    doc["probe_errors"][0]["errno_name"] = "EIO"
    assert errors(doc) == []


# -- kvmprobe schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("cpuid", "kvmprobe.cpuid/1"),
        ("kvmprobe.cpuid/1", "kvmprobe.cpuid/1"),
        ("caps/1", "kvmprobe.caps/1"),
        ("kvmprobe.doctor", "kvmprobe.doctor/1"),
        ("snapshot", SCHEMA),
        ("kvmprobe.snapshot/1", "kvmprobe.snapshot/1"),
        ("MSR", "kvmprobe.msr/1"),
        ("hyperv", "kvmprobe.hyperv/1"),
    ],
)
def test_schema_command_prints_the_file(kind: str, name: str) -> None:
    status, out = run("schema", kind)
    assert status == 0
    assert out == schemas.text(name)
    assert json.loads(out)["$id"] == schemas.schema_id(name)


def test_schema_command_takes_a_documents_schema_value() -> None:
    """kvmprobe schema "$(jq -r .schema doc.json)" is the schema to validate doc.json with."""
    for path in [*GOLDEN_JSON, *RECORDED_HOSTS]:
        doc = json.loads(path.read_text())
        status, out = run("schema", doc["schema"])
        assert status == 0 and Draft202012Validator(json.loads(out)).is_valid(doc)


def test_schema_list() -> None:
    status, out = run("schema", "--list")
    assert status == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == list(schemas.SCHEMAS)
    assert "kvmprobe cpuid --json" in out
    # the titles form one column, however long a name (kvmprobe.export-libvirt/1)
    lines = out.splitlines()
    starts = {line.index("kvmprobe ", len(n)) for n, line in zip(names, lines, strict=True)}
    assert len(starts) == 1 and all("  kvmprobe " in line for line in lines)


def test_readme_shows_the_schemas_kvmprobe_ships() -> None:
    """The README's `schema --list` example is the command's own output, and its KIND list
    names every kind (neither can go stale when a schema is added)."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("$ kvmprobe schema --list\n") :].split("\n$ ", 2)[0]
    status, out = run("schema", "--list")
    assert status == 0
    assert block.split("\n", 1)[1].rstrip("\n") == out.rstrip("\n")
    sentence = readme[readme.index("`kvmprobe schema KIND` prints it") :]
    sentence = sentence[: sentence.index("the newest")]
    assert set(re.findall(r"`([a-z0-9-]+)`", sentence)) == set(schemas.kinds())


@pytest.mark.parametrize("args", [["schema"], ["schema", "bogus"], ["schema", "cpuid/9"]])
def test_schema_usage_errors(args: list[str]) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.startswith("kvmprobe: error: ")
    assert "hint: choose from snapshot, caps, cpuid" in r.stderr


def test_json_path_imports_neither_rich_nor_jsonschema() -> None:
    fix = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")
    code = textwrap.dedent(
        f"""
        import sys
        from kvmprobe.cli import main
        for args in (["caps", "--json"], ["cpuid", "--json"], ["doctor", "--json"]):
            try:
                main([*args, "--from", {fix!r}], standalone_mode=False)
            except SystemExit:
                pass
        main(["schema", "cpuid"], standalone_mode=False)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "jsonschema"))
        print("IMPORTED", bad, file=sys.stderr)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    assert "IMPORTED []" in r.stderr, r.stderr


def test_watch_catches_a_broken_document() -> None:
    """The session-wide check (conftest) is live: a document breaking its schema that goes
    through kvmprobe.render.json.dumps is refused where it is written."""
    from support import schema_check

    from kvmprobe.render import json as rj

    doc = _golden(ZEN4, "doctor.json")
    doc["verdict"]["exit_status"] = 1
    with pytest.raises(schema_check.SchemaViolation, match="verdict/exit_status"):
        rj.dumps(doc)
    schema_check.violations.pop()  # this one was on purpose
