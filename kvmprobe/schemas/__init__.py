"""JSON Schemas (draft 2020-12) of every document kvmprobe writes, shipped as package data.

Each document's ``"schema"`` field (``"kvmprobe.cpuid/1"``) names its schema; the schema's
``$id`` is that name behind ``ID_PREFIX`` (``urn:kvmprobe:schema:kvmprobe.cpuid/1``). The
files are read, never interpreted: kvmprobe needs no validation library at run time.

Adding a schema is one file plus one line: put ``<kind>-<major>.schema.json`` beside this
module and add ``"kvmprobe.<kind>/<major>"`` to ``SCHEMAS``. The tests then check its ``$id``,
validate it as a draft 2020-12 schema and validate every document of that kind they produce.
"""

from __future__ import annotations

import json
from importlib import resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: every schema kvmprobe ships, newest major of a kind first
SCHEMAS: tuple[str, ...] = (
    "kvmprobe.snapshot/2",
    "kvmprobe.snapshot/1",
    "kvmprobe.caps/1",
    "kvmprobe.cpuid/1",
    "kvmprobe.doctor/1",
    "kvmprobe.msr/1",
    "kvmprobe.hyperv/1",
    "kvmprobe.fact/1",
    "kvmprobe.export-cpuid2/1",
    "kvmprobe.export-qemu/1",
    "kvmprobe.export-libvirt/1",
    "kvmprobe.diff/1",
    "kvmprobe.baseline/1",
)

#: a schema's ``$id`` is this prefix followed by the document's ``schema`` value
ID_PREFIX = "urn:kvmprobe:schema:"
_PREFIX = "kvmprobe."


def schema_id(name: str) -> str:
    """The ``$id`` of the schema for documents whose ``schema`` field is ``name``."""
    return ID_PREFIX + name


def _split(name: str) -> tuple[str, int]:
    kind, _, major = name.removeprefix(_PREFIX).partition("/")
    return kind, int(major)


def file_name(name: str) -> str:
    """``kvmprobe.cpuid/1`` -> ``cpuid-1.schema.json``."""
    kind, major = _split(name)
    return f"{kind}-{major}.schema.json"


def kinds() -> list[str]:
    """The document kinds with a schema (cpuid, snapshot, ...), in registry order."""
    out: list[str] = []
    for name in SCHEMAS:
        kind = _split(name)[0]
        if kind not in out:
            out.append(kind)
    return out


def resolve(text: str) -> str | None:
    """The schema name a user means: ``cpuid``, ``kvmprobe.cpuid``, ``cpuid/1`` or
    ``kvmprobe.cpuid/1``; without a major, the newest. None when kvmprobe ships no such one."""
    wanted = text.strip().lower().removeprefix(_PREFIX)
    kind, slash, major = wanted.partition("/")
    for name in SCHEMAS:
        k, m = _split(name)
        if k == kind and (not slash or major == str(m)):
            return name
    return None


def text(name: str) -> str:
    """The schema file's text, exactly as shipped."""
    if name not in SCHEMAS:
        raise KeyError(name)
    return resources.files(__name__).joinpath(file_name(name)).read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The schema as a JSON object."""
    doc: dict[str, Any] = json.loads(text(name))
    return doc
