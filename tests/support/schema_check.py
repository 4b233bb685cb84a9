"""Checking kvmprobe's JSON documents against the JSON Schemas it ships (tests only: the
``jsonschema`` package is in the test extra, never a run-time dependency).

``check(doc)`` validates one document against the schema its ``"schema"`` field names, and
also insists that every field the document carries is described in that schema (schemas
allow fields they do not list, so that a newer kvmprobe's documents still validate; our own
documents must not rely on that). ``watch_documents`` (an autouse fixture in conftest.py)
runs ``check`` on every document the code under test serialises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from kvmprobe import schemas


class SchemaViolation(AssertionError):
    pass


@cache
def validator(name: str) -> Draft202012Validator:
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks its schema ("path: message"), or that it names no schema."""
    name = doc.get("schema")
    if not isinstance(name, str) or not name.startswith("kvmprobe."):
        return [f"no kvmprobe schema field: {name!r}"]
    if name not in schemas.SCHEMAS:
        return [
            f"no schema for {name}: add kvmprobe/schemas/{schemas.file_name(name)} and a line "
            "to kvmprobe.schemas.SCHEMAS"
        ]
    v = validator(name)
    out = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}"
        for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    out += [
        f"{path}: field not described in {schemas.file_name(name)}"
        for path in undocumented(doc, v.schema)
    ]
    return out


_seen: set[str] = set()


def check(doc: dict[str, Any]) -> None:
    """Raise SchemaViolation listing every problem (documents seen before are skipped)."""
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    if key in _seen:
        return
    problems = errors(doc)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SchemaViolation(f"{doc.get('schema')} document breaks its schema:\n  {shown}{more}")
    _seen.add(key)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), f"only local references are used: {ref}"
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    schema = _resolve(schema, root)
    yield schema
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, ()):
            yield from _branches(sub, root)


def undocumented(doc: Any, root: dict[str, Any]) -> list[str]:
    """JSON paths of object members that no ``properties`` of the matching schema names.

    Objects whose schema is a map (``additionalProperties`` given as a schema) have data for
    keys, not fields, and are walked by value."""
    out: list[str] = []

    def walk(value: Any, schema: dict[str, Any], path: str) -> None:
        branches = list(_branches(schema, root))
        if isinstance(value, dict):
            props: dict[str, Any] = {}
            maps = []
            for br in branches:
                props.update(br.get("properties", {}))
                extra = br.get("additionalProperties")
                if isinstance(extra, dict):
                    maps.append(extra)
            for k, v in value.items():
                here = f"{path}/{k}"
                if k in props:
                    walk(v, props[k], here)
                elif maps:
                    for m in maps:
                        walk(v, m, here)
                else:
                    out.append(here)
        elif isinstance(value, list):
            for br in branches:
                if "items" in br:
                    for n, item in enumerate(value):
                        walk(item, br["items"], f"{path}/{n}")

    walk(doc, root, "")
    return sorted(set(out))


#: violations seen by ``watch`` (also raised where they happen; kept in case the code under
#: test swallowed the exception, e.g. CliRunner without catch_exceptions=False)
violations: list[str] = []


def watch() -> Iterator[None]:
    """Check every document serialised through kvmprobe.render.json.dumps (all JSON output)
    and Snapshot.dumps (record) while the test session runs."""
    import pytest

    from kvmprobe.render import json as rj
    from kvmprobe.snapshot import Snapshot

    real_dumps = rj.dumps
    real_snapshot_dumps = Snapshot.dumps

    def checked(doc: dict[str, Any]) -> None:
        try:
            check(doc)
        except SchemaViolation as e:
            violations.append(str(e))
            raise

    def dumps(doc: dict[str, Any], terminal: bool | None = None) -> str:
        if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("kvmprobe."):
            checked(doc)
        return real_dumps(doc, terminal)

    def snapshot_dumps(self: Snapshot) -> str:
        text = real_snapshot_dumps(self)
        checked(json.loads(text))
        return text

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rj, "dumps", dumps)
        mp.setattr(Snapshot, "dumps", snapshot_dumps)
        yield
    assert not violations, "documents broke their schemas:\n" + "\n".join(violations)
