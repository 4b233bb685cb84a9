"""The Snapshot: every raw answer the live probe collects, as the kernel gave it.

A snapshot never stores conclusions, only raw values plus metadata, so a newer kvmprobe can
re-analyse an old file. The on-disk form is JSON with ``"schema": "kvmprobe.snapshot/1"``;
its fields are documented in docs/snapshot-format.md. Loading treats the file as untrusted
input and rejects anything of the wrong shape with a KvmprobeError that names the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from kvmprobe import __version__
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import CAP_LIMIT, MAX_ENTRIES
from kvmprobe.limits import MAX_SNAPSHOT_BYTES as MAX_FILE_BYTES

SCHEMA_PREFIX = "kvmprobe.snapshot/"
SCHEMA_MAJOR = 1
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_MAJOR}"

SCOPES = ("system", "vm", "vm_split_irqchip")
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class CpuidEntry:
    """One struct kvm_cpuid_entry2 (padding dropped: the kernel requires it to be zero)."""

    function: int
    index: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int

    def reg(self, name: str) -> int:
        return int(getattr(self, name))

    def to_json(self) -> dict[str, int]:
        return {
            "function": self.function,
            "index": self.index,
            "flags": self.flags,
            "eax": self.eax,
            "ebx": self.ebx,
            "ecx": self.ecx,
            "edx": self.edx,
        }


@dataclass(frozen=True)
class ProbeError:
    """An ioctl or read that failed while probing; recorded, never fatal."""

    step: str
    errno: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "errno": self.errno, "message": self.message}


@dataclass(frozen=True)
class ModuleInfo:
    """A loaded (or built-in) KVM module and its parameters as read from /sys/module."""

    name: str
    builtin: bool
    params: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"builtin": self.builtin, "params": dict(sorted(self.params.items()))}


@dataclass(frozen=True)
class HostInfo:
    kernel_release: str = ""
    kernel_version: str = ""
    machine: str = ""
    cpu_vendor: str = ""
    cpu_model_name: str = ""
    online_cpus: int = 0
    cpuinfo_flags: tuple[str, ...] = ()
    cpuid_source: str | None = None  # "/dev/cpu/N/cpuid" when host CPUID was read
    cpuid_error: str | None = None  # why host CPUID could not be read
    cpuid: tuple[CpuidEntry, ...] | None = None
    modules: dict[str, ModuleInfo] = field(default_factory=dict)
    device_major_minor: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel_release": self.kernel_release,
            "kernel_version": self.kernel_version,
            "machine": self.machine,
            "cpu_vendor": self.cpu_vendor,
            "cpu_model_name": self.cpu_model_name,
            "online_cpus": self.online_cpus,
            "cpuinfo_flags": list(self.cpuinfo_flags),
            "cpuid_source": self.cpuid_source,
            "cpuid_error": self.cpuid_error,
            "cpuid": _entries_json(self.cpuid),
            "modules": {k: v.to_json() for k, v in sorted(self.modules.items())},
            "device_major_minor": list(self.device_major_minor)
            if self.device_major_minor
            else None,
        }


@dataclass(frozen=True)
class Snapshot:
    """Everything one probe of a KVM device learnt. ``source`` is 'live' or the file loaded."""

    device: str
    api_version: int | None
    vcpu_mmap_size: int | None = None
    cap_limit: int = CAP_LIMIT
    # scope -> {cap number: non-zero value}; None when the scope could not be probed.
    # Numbers below cap_limit that are absent answered 0.
    caps: dict[str, dict[int, int] | None] = field(default_factory=dict)
    supported_cpuid: tuple[CpuidEntry, ...] | None = None
    emulated_cpuid: tuple[CpuidEntry, ...] | None = None
    supported_hv_cpuid: tuple[CpuidEntry, ...] | None = None
    msr_index_list: tuple[int, ...] | None = None
    msr_feature_index_list: tuple[int, ...] | None = None
    feature_msrs: dict[int, int] = field(default_factory=dict)
    # "GROUP/ATTR" (numbers, e.g. "0/0" = KVM_X86_GRP_SYSTEM/KVM_X86_XCOMP_GUEST_SUPP) -> value
    device_attrs: dict[str, int] = field(default_factory=dict)
    mce_cap_supported: int | None = None
    # arch_prctl answers: supp, guest_perm_before, guest_perm_after (XCR0-style masks)
    xcomp: dict[str, int] = field(default_factory=dict)
    # what could be created: {"vm": "ok" | errno name, "vcpu": ..., "split_irqchip": ...}
    creation: dict[str, str] = field(default_factory=dict)
    host: HostInfo = field(default_factory=HostInfo)
    errors: tuple[ProbeError, ...] = ()
    recorded_at: str = ""
    kvmprobe_version: str = __version__
    source: str = "live"

    # -- convenience accessors used by the analysis ------------------------------------------
    def cap(self, number: int, scope: str = "system") -> int | None:
        """Value of a capability in a scope; 0 when not listed, None when the scope is unknown."""
        values = self.caps.get(scope)
        if values is None:
            return None
        return values.get(number, 0)

    def attr(self, group: int, attr: int) -> int | None:
        return self.device_attrs.get(f"{group}/{attr}")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kvmprobe_version": self.kvmprobe_version,
            "recorded_at": self.recorded_at,
            "device": self.device,
            "api_version": self.api_version,
            "vcpu_mmap_size": self.vcpu_mmap_size,
            "cap_limit": self.cap_limit,
            "caps": {
                scope: None if values is None else {str(k): v for k, v in sorted(values.items())}
                for scope, values in self.caps.items()
            },
            "supported_cpuid": _entries_json(self.supported_cpuid),
            "emulated_cpuid": _entries_json(self.emulated_cpuid),
            "supported_hv_cpuid": _entries_json(self.supported_hv_cpuid),
            "msr_index_list": _list_or_none(self.msr_index_list),
            "msr_feature_index_list": _list_or_none(self.msr_feature_index_list),
            "feature_msrs": {f"{k:#x}": v for k, v in sorted(self.feature_msrs.items())},
            "device_attrs": dict(sorted(self.device_attrs.items())),
            "mce_cap_supported": self.mce_cap_supported,
            "xcomp": dict(sorted(self.xcomp.items())),
            "creation": dict(sorted(self.creation.items())),
            "host": self.host.to_json(),
            "errors": [e.to_json() for e in self.errors],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1) + "\n"


def _entries_json(entries: tuple[CpuidEntry, ...] | None) -> list[dict[str, int]] | None:
    return None if entries is None else [e.to_json() for e in entries]


def _list_or_none(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


# --------------------------------------------------------------------------------------------
# Loading: untrusted input.


class _Bad(Exception):
    """A shape problem at a JSON path; turned into a KvmprobeError naming the file."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")


def _int(v: Any, where: str, lo: int = 0, hi: int = U64_MAX) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(where, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _Bad(where, f"{v} is out of range {lo}..{hi}")
    return v


def _opt_int(v: Any, where: str, lo: int = 0, hi: int = U64_MAX) -> int | None:
    return None if v is None else _int(v, where, lo, hi)


def _str(v: Any, where: str, limit: int = 4096) -> str:
    if not isinstance(v, str):
        raise _Bad(where, f"expected a string, got {type(v).__name__}")
    if len(v) > limit:
        raise _Bad(where, f"string of {len(v)} characters is too long")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(where, "string holds an unpaired UTF-16 surrogate (not valid text)") from None
    return v


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Bad(f"key {k!r}", "appears twice in one object")
        out[k] = v
    return out


def _opt_str(v: Any, where: str) -> str | None:
    return None if v is None else _str(v, where)


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _Bad(where, f"expected an object, got {type(v).__name__}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _Bad(where, f"expected a list, got {type(v).__name__}")
    if len(v) > MAX_ENTRIES:
        raise _Bad(where, f"{len(v)} items is more than any kernel returns ({MAX_ENTRIES} max)")
    return v


def _hexkey(k: str, where: str) -> int:
    try:
        value = int(k, 0)
    except ValueError:
        raise _Bad(where, f"key {k!r} is not a number") from None
    return _int(value, f"{where}[{k}]", 0, U32_MAX)


def _entries(v: Any, where: str) -> tuple[CpuidEntry, ...] | None:
    if v is None:
        return None
    out: list[CpuidEntry] = []
    seen: set[tuple[int, int]] = set()
    for i, raw in enumerate(_list(v, where)):
        w = f"{where}[{i}]"
        o = _obj(raw, w)
        fields = {
            name: _int(o.get(name), f"{w}.{name}", 0, U32_MAX)
            for name in ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
        }
        key = (fields["function"], fields["index"])
        if key in seen:
            raise _Bad(w, f"duplicate entry for leaf {key[0]:#x} subleaf {key[1]:#x}")
        seen.add(key)
        out.append(CpuidEntry(**fields))
    return tuple(out)


def _int_list(v: Any, where: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    return tuple(_int(x, f"{where}[{i}]", 0, U32_MAX) for i, x in enumerate(_list(v, where)))


def _caps(v: Any, where: str, limit: int) -> dict[str, dict[int, int] | None]:
    out: dict[str, dict[int, int] | None] = {}
    for scope, values in _obj(v, where).items():
        w = f"{where}.{scope}"
        if scope not in SCOPES:
            raise _Bad(w, f"unknown scope (expected one of {', '.join(SCOPES)})")
        if values is None:
            out[scope] = None
            continue
        d: dict[int, int] = {}
        for k, val in _obj(values, w).items():
            num = _hexkey(k, w)
            if num >= limit:
                raise _Bad(f"{w}[{k}]", f"cap number beyond cap_limit {limit}")
            d[num] = _int(val, f"{w}[{k}]", 0, 2**63 - 1)
        out[scope] = d
    return out


def _host(v: Any, where: str) -> HostInfo:
    o = _obj(v, where)
    modules: dict[str, ModuleInfo] = {}
    for name, m in _obj(o.get("modules", {}), f"{where}.modules").items():
        mw = f"{where}.modules.{name}"
        mo = _obj(m, mw)
        params = {
            _str(k, f"{mw}.params"): _str(val, f"{mw}.params.{k}")
            for k, val in _obj(mo.get("params", {}), f"{mw}.params").items()
        }
        builtin = mo.get("builtin", False)
        if not isinstance(builtin, bool):
            raise _Bad(f"{mw}.builtin", "expected true or false")
        modules[name] = ModuleInfo(name=name, builtin=builtin, params=params)
    mm = o.get("device_major_minor")
    major_minor = None
    if mm is not None:
        lst = _list(mm, f"{where}.device_major_minor")
        if len(lst) != 2:
            raise _Bad(f"{where}.device_major_minor", "expected [major, minor]")
        major_minor = (
            _int(lst[0], f"{where}.device_major_minor[0]", 0, U32_MAX),
            _int(lst[1], f"{where}.device_major_minor[1]", 0, U32_MAX),
        )
    flags = tuple(
        _str(f, f"{where}.cpuinfo_flags[{i}]", 64)
        for i, f in enumerate(_list(o.get("cpuinfo_flags", []), f"{where}.cpuinfo_flags"))
    )
    return HostInfo(
        kernel_release=_str(o.get("kernel_release", ""), f"{where}.kernel_release"),
        kernel_version=_str(o.get("kernel_version", ""), f"{where}.kernel_version"),
        machine=_str(o.get("machine", ""), f"{where}.machine"),
        cpu_vendor=_str(o.get("cpu_vendor", ""), f"{where}.cpu_vendor"),
        cpu_model_name=_str(o.get("cpu_model_name", ""), f"{where}.cpu_model_name"),
        online_cpus=_int(o.get("online_cpus", 0), f"{where}.online_cpus", 0, 1 << 20),
        cpuinfo_flags=flags,
        cpuid_source=_opt_str(o.get("cpuid_source"), f"{where}.cpuid_source"),
        cpuid_error=_opt_str(o.get("cpuid_error"), f"{where}.cpuid_error"),
        cpuid=_entries(o.get("cpuid"), f"{where}.cpuid"),
        modules=modules,
        device_major_minor=major_minor,
    )


def from_json(doc: Any) -> tuple[Snapshot, list[str]]:
    """Build a Snapshot from parsed JSON. Returns it with warnings (unknown extra keys)."""
    o = _obj(doc, "top level")
    schema = o.get("schema")
    shown = repr(schema) if len(repr(schema)) <= 60 else repr(schema)[:57] + "..."
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise _Bad("schema", f"not a kvmprobe snapshot (schema {shown})")
    try:
        major = int(schema[len(SCHEMA_PREFIX) :])
    except ValueError:
        raise _Bad("schema", f"unreadable schema version {shown}") from None
    if major > SCHEMA_MAJOR:
        raise _Bad(
            "schema",
            f"format version {major} is newer than this kvmprobe understands ({SCHEMA_MAJOR})",
        )
    if major < 1:
        raise _Bad("schema", f"unknown format version {major}")
    known = {
        "schema",
        "kvmprobe_version",
        "recorded_at",
        "device",
        "api_version",
        "vcpu_mmap_size",
        "cap_limit",
        "caps",
        "supported_cpuid",
        "emulated_cpuid",
        "supported_hv_cpuid",
        "msr_index_list",
        "msr_feature_index_list",
        "feature_msrs",
        "device_attrs",
        "mce_cap_supported",
        "xcomp",
        "creation",
        "host",
        "errors",
    }
    warnings = [f"ignoring unknown field {k!r}" for k in sorted(set(o) - known)]
    limit = _int(o.get("cap_limit", CAP_LIMIT), "cap_limit", 1, 1 << 16)
    errors = []
    for i, e in enumerate(_list(o.get("errors", []), "errors")):
        eo = _obj(e, f"errors[{i}]")
        errors.append(
            ProbeError(
                step=_str(eo.get("step", ""), f"errors[{i}].step"),
                errno=_opt_int(eo.get("errno"), f"errors[{i}].errno", 0, 4096),
                message=_str(eo.get("message", ""), f"errors[{i}].message"),
            )
        )
    snap = Snapshot(
        device=_str(o.get("device", ""), "device"),
        api_version=_opt_int(o.get("api_version"), "api_version", 0, U32_MAX),
        vcpu_mmap_size=_opt_int(o.get("vcpu_mmap_size"), "vcpu_mmap_size", 0, U32_MAX),
        cap_limit=limit,
        caps=_caps(o.get("caps", {}), "caps", limit),
        supported_cpuid=_entries(o.get("supported_cpuid"), "supported_cpuid"),
        emulated_cpuid=_entries(o.get("emulated_cpuid"), "emulated_cpuid"),
        supported_hv_cpuid=_entries(o.get("supported_hv_cpuid"), "supported_hv_cpuid"),
        msr_index_list=_int_list(o.get("msr_index_list"), "msr_index_list"),
        msr_feature_index_list=_int_list(o.get("msr_feature_index_list"), "msr_feature_index_list"),
        feature_msrs={
            _hexkey(k, "feature_msrs"): _int(v, f"feature_msrs[{k}]")
            for k, v in _obj(o.get("feature_msrs", {}), "feature_msrs").items()
        },
        device_attrs={
            _str(k, "device_attrs", 64): _int(v, f"device_attrs[{k}]")
            for k, v in _obj(o.get("device_attrs", {}), "device_attrs").items()
        },
        mce_cap_supported=_opt_int(o.get("mce_cap_supported"), "mce_cap_supported"),
        xcomp={
            _str(k, "xcomp", 64): _int(v, f"xcomp[{k}]")
            for k, v in _obj(o.get("xcomp", {}), "xcomp").items()
        },
        creation={
            _str(k, "creation", 64): _str(v, f"creation[{k}]", 64)
            for k, v in _obj(o.get("creation", {}), "creation").items()
        },
        host=_host(o.get("host", {}), "host"),
        errors=tuple(errors),
        recorded_at=_str(o.get("recorded_at", ""), "recorded_at"),
        kvmprobe_version=_str(o.get("kvmprobe_version", ""), "kvmprobe_version"),
    )
    return snap, warnings


def load(path: str) -> tuple[Snapshot, list[str]]:
    """Read a snapshot file. Every problem becomes a KvmprobeError naming the file."""
    hint = "record a new one with 'kvmprobe record -o FILE' on the host in question"
    try:
        size = os.path.getsize(path) if path != "-" else 0
        if size > MAX_FILE_BYTES:
            raise KvmprobeError(
                f"{path}: {size} bytes is far larger than any snapshot", hint, ExitStatus.ERROR
            )
        if path == "-":
            import sys

            text = sys.stdin.read(MAX_FILE_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KvmprobeError(
            f"{path}: no such snapshot file", "check the path given to --from"
        ) from None
    except IsADirectoryError:
        raise KvmprobeError(
            f"{path} is a directory, not a snapshot file", "check the path given to --from"
        ) from None
    except PermissionError:
        raise KvmprobeError(
            f"{path}: permission denied", "make the file readable", ExitStatus.PERMISSION
        ) from None
    except UnicodeDecodeError:
        raise KvmprobeError(f"{path}: not a text file (not UTF-8)", hint) from None
    except OSError as e:
        raise KvmprobeError(f"{path}: cannot read: {e.strerror}", hint) from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _Bad as e:
        raise KvmprobeError(f"{path}: invalid snapshot: {e}", hint) from None
    except RecursionError:
        raise KvmprobeError(f"{path}: JSON nested too deeply", hint) from None
    except ValueError as e:
        what = "empty file" if not text.strip() else f"not valid JSON ({e})"
        raise KvmprobeError(f"{path}: {what}", hint) from None
    try:
        snap, warnings = from_json(doc)
    except _Bad as e:
        raise KvmprobeError(f"{path}: invalid snapshot: {e}", hint) from None
    except RecursionError:
        raise KvmprobeError(f"{path}: JSON nested too deeply", hint) from None
    return _with_source(snap, path), warnings


def _with_source(snap: Snapshot, source: str) -> Snapshot:
    from dataclasses import replace

    return replace(snap, source=source)
