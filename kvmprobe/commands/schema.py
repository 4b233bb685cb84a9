"""``kvmprobe schema``: the JSON Schema of a document kvmprobe writes."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.render.output import emit


def schema(inv: Invocation, kind: str | None = None, list_all: bool = False) -> None:
    """Print the JSON Schema (draft 2020-12) of a document kvmprobe writes.

    KIND is a document kind as --list names it (cpuid, doctor, export-qemu, snapshot, ...)
    or the document's own "schema" value (kvmprobe.snapshot/1); without a major version, the
    newest. The schema's $id is urn:kvmprobe:schema: followed by that value.
    """
    from kvmprobe import schemas

    if list_all:
        width = max(len(n) for n in schemas.SCHEMAS) + 2  # every title in one column
        titles = (f"{n:<{width}}{schemas.load(n).get('title', '')}\n" for n in schemas.SCHEMAS)
        emit("".join(titles))
        return
    name = schemas.resolve(kind) if kind else None
    if name is None:
        raise KvmprobeError(
            f"no schema for {kind!r}" if kind else "which schema? (give a KIND or --list)",
            f"choose from {', '.join(schemas.kinds())}, or a schema name such as "
            "kvmprobe.snapshot/1; 'kvmprobe schema --list' lists them",
            ExitStatus.USAGE,
        )
    emit(schemas.text(name))
