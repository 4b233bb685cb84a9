"""The compatibility rules of README "Versions and compatibility", held against the schemas:
within a major, a field added later is never required and no object forbids fields it does not
list. ``tests/contracts/required.json`` records, for every object of every schema, the fields
documents of that major have always carried; a schema may add objects and optional fields, but
an object recorded there keeps exactly those required fields (adding one would reject older
documents, dropping one would let readers down). ``KVMPROBE_UPDATE_GOLDEN=1`` records objects
that are new; it never rewrites a recorded one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvmprobe import schemas

RECORD = Path(__file__).parent / "contracts" / "required.json"


def _objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    if "properties" in node:
        yield path or "/", node
        for key, sub in node["properties"].items():
            yield from _objects(sub, f"{path}/{key}")
    if "items" in node:
        yield from _objects(node["items"], f"{path}[]")
    for key in ("anyOf", "oneOf"):
        for i, alt in enumerate(node.get(key, ())):
            yield from _objects(alt, f"{path}|{i}")
    for key, sub in node.get("$defs", {}).items():
        yield from _objects(sub, f"#{key}")


def _current() -> dict[str, dict[str, list[str]]]:
    return {
        name: {p: sorted(o.get("required", ())) for p, o in _objects(schemas.load(name))}
        for name in schemas.SCHEMAS
    }


def test_recorded_objects_keep_their_required_fields() -> None:
    current = _current()
    recorded: dict[str, dict[str, list[str]]] = (
        json.loads(RECORD.read_text()) if RECORD.exists() else {}
    )
    if os.environ.get("KVMPROBE_UPDATE_GOLDEN"):
        merged = {k: dict(v) for k, v in recorded.items()}
        for name, objs in current.items():
            for path, req in objs.items():
                merged.setdefault(name, {}).setdefault(path, req)
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        recorded = merged
    for name, objs in recorded.items():
        assert name in current, f"{name}: a released kind lost its schema"
        for path, req in objs.items():
            assert path in current[name], f"{name} {path}: an object was removed"
            added = set(current[name][path]) - set(req)
            dropped = set(req) - set(current[name][path])
            assert not added, f"{name} {path}: fields added within a major made required: {added}"
            assert not dropped, f"{name} {path}: fields no longer required: {dropped}"
    missing = {n for n in current if n not in recorded}
    assert not missing, f"kinds not recorded yet (KVMPROBE_UPDATE_GOLDEN=1): {missing}"


@pytest.mark.parametrize("name", schemas.SCHEMAS)
def test_no_object_forbids_unlisted_fields(name: str) -> None:
    """A newer kvmprobe of the same major may add fields: an older schema must let them be."""
    for path, obj in _objects(schemas.load(name)):
        assert obj.get("additionalProperties") is not False, f"{name} {path}"
