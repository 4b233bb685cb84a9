"""The Snapshot: every raw answer the live probe collects, as the kernel gave it, and the
raw facts about reaching the device node (``AccessFacts``) that ``kvmprobe doctor`` judges.

A snapshot never stores conclusions, only raw values plus metadata, so a newer kvmprobe can
re-analyse an old file. The on-disk form is JSON with ``"schema": "kvmprobe.snapshot/1"``;
its fields are documented in docs/snapshot-format.md. Loading treats the file as untrusted
input and rejects anything of the wrong shape with a KvmprobeError that names the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import cached_property

from kvmprobe import __version__
from kvmprobe.errors import KvmprobeError, errno_name
from kvmprobe.frozen import field, frozen, replace
from kvmprobe.limits import CAP_LIMIT, MAX_ENTRIES
from kvmprobe.vocab import AclTag, CgroupVersion, CpuidTable, Irqchip, NodeKind, Scope

TYPE_CHECKING = False
if TYPE_CHECKING:  # re-exported: at run time through __getattr__ below
    from typing import Any, TypeVar

    from kvmprobe.access_facts import AccessFacts as AccessFacts
    from kvmprobe.access_facts import AclEntry as AclEntry
    from kvmprobe.access_facts import CgroupFacts as CgroupFacts
    from kvmprobe.access_facts import ContainerFacts as ContainerFacts
    from kvmprobe.access_facts import MountFacts as MountFacts
    from kvmprobe.access_facts import NodeStat as NodeStat
    from kvmprobe.verification_facts import SetAttempt as SetAttempt

    _E = TypeVar("_E", bound=StrEnum)

SCHEMA_PREFIX = "kvmprobe.snapshot/"
SCHEMA_MAJOR = 2
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_MAJOR}"
#: JSON readers lose precision above this (IEEE double): larger integers travel as hex strings
JSON_SAFE_MAX = 2**53

SCOPES = tuple(str(s) for s in Scope)
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
ERRNO_MAX = 4096
#: the ``step`` of the ProbeError recorded when the probe itself could not run: the node
#: opened for the access check, then opening it for the probe (or KVM_GET_API_VERSION, or an
#: ioctl the device layer does not guard) failed; ``api_version`` is null in that snapshot
PROBE_STEP = "probe"


@frozen
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


@frozen
class ProbeError:
    """An ioctl or read that failed while probing; recorded, never fatal."""

    step: str
    errno: int | None
    message: str

    @property
    def errno_name(self) -> str | None:
        """ENOENT-style name of ``errno``; None when the failure had no errno."""
        return None if self.errno is None else errno_name(self.errno)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "errno": self.errno, "message": self.message}


class Steps:
    """The names probe steps are recorded under, in one place: the probe records a failure
    under these names and the analysis looks the failure up by the same names."""

    SUPPORTED_CPUID = "KVM_GET_SUPPORTED_CPUID"
    EMULATED_CPUID = "KVM_GET_EMULATED_CPUID"
    HV_CPUID = "KVM_GET_SUPPORTED_HV_CPUID"
    MSR_INDEX_LIST = "KVM_GET_MSR_INDEX_LIST"
    MSR_FEATURE_INDEX_LIST = "KVM_GET_MSR_FEATURE_INDEX_LIST"
    MCE_CAP = "KVM_X86_GET_MCE_CAP_SUPPORTED"
    VCPU_MMAP_SIZE = "KVM_GET_VCPU_MMAP_SIZE"
    HOST_CPUID = "host CPUID"
    VERIFY = "vCPU verification"

    @staticmethod
    def cap(number: int, scope: str) -> str:
        return f"KVM_CHECK_EXTENSION({number}) on {scope}"

    @staticmethod
    def feature_msr(index: int) -> str:
        return f"KVM_GET_MSRS({index:#x})"

    @staticmethod
    def attr(group: int, attr: int) -> str:
        return f"KVM_GET_DEVICE_ATTR({group}/{attr})"


def _u64_json(value: int | None) -> int | str | None:
    """Integers JSON readers can hold exactly stay numbers; larger ones become hex strings."""
    if value is None or value <= JSON_SAFE_MAX:
        return value
    return f"{value:#x}"


@frozen
class ModuleInfo:
    """A loaded (or built-in) KVM module and its parameters as read from /sys/module."""

    name: str
    builtin: bool
    params: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"builtin": self.builtin, "params": dict(sorted(self.params.items()))}


@frozen
class HostInfo:
    """What the probe read about the host itself: kernel, CPU, KVM modules, host CPUID."""

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


# --------------------------------------------------------------------------------------------
# Device-access facts (``Snapshot.access``) are in kvmprobe.access_facts, imported where they
# are used; ``from kvmprobe.snapshot import AccessFacts`` still works (module __getattr__).

_ACCESS_TYPES = frozenset(
    ("AccessFacts", "AclEntry", "CgroupFacts", "ContainerFacts", "MountFacts", "NodeStat")
)


if not TYPE_CHECKING:  # to a type checker, a module __getattr__ makes every name exist
    from kvmprobe.lazy import forward

    __getattr__ = forward(
        __name__,
        {
            **dict.fromkeys(_ACCESS_TYPES, "kvmprobe.access_facts"),
            "SetAttempt": "kvmprobe.verification_facts",  # the vCPU verification's facts
        },
    )


@frozen
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
    # device-access facts; None in snapshots recorded before kvmprobe kept them
    access: AccessFacts | None = None
    # what a vCPU accepted of KVM's advertised values; None when not tried (older snapshots,
    # or the probe did not get that far: see errors)
    verification: tuple[SetAttempt, ...] | None = None
    errors: tuple[ProbeError, ...] = ()
    recorded_at: str = ""
    kvmprobe_version: str = __version__
    source: str = "live"

    # -- convenience accessors used by the analysis ------------------------------------------
    @cached_property
    def _failures(self) -> dict[str, ProbeError]:
        return {e.step: e for e in self.errors}

    def failure(self, step: str) -> ProbeError | None:
        """The recorded failure of a probe step (named as in Steps), or None."""
        return self._failures.get(step)

    def cap(self, number: int, scope: str = "system") -> int | None:
        """Value of a capability in a scope; 0 when not listed; None when unknown: the scope
        could not be probed, the number was not asked (at or above ``cap_limit``), or this
        check failed (``cap_failure`` says how)."""
        values = self.caps.get(scope)
        if values is None or number >= self.cap_limit:
            return None
        if self.failure(Steps.cap(number, scope)) is not None:
            return None
        return values.get(number, 0)

    def cap_failure(self, number: int, scope: str = "system") -> ProbeError | None:
        return self.failure(Steps.cap(number, scope))

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
                scope: None
                if values is None
                else {str(k): _u64_json(v) for k, v in sorted(values.items())}
                for scope, values in self.caps.items()
            },
            "supported_cpuid": _entries_json(self.supported_cpuid),
            "emulated_cpuid": _entries_json(self.emulated_cpuid),
            "supported_hv_cpuid": _entries_json(self.supported_hv_cpuid),
            "msr_index_list": _list_or_none(self.msr_index_list),
            "msr_feature_index_list": _list_or_none(self.msr_feature_index_list),
            "feature_msrs": {f"{k:#x}": f"{v:#x}" for k, v in sorted(self.feature_msrs.items())},
            "device_attrs": {k: f"{v:#x}" for k, v in sorted(self.device_attrs.items())},
            "mce_cap_supported": None
            if self.mce_cap_supported is None
            else f"{self.mce_cap_supported:#x}",
            "xcomp": {k: f"{v:#x}" for k, v in sorted(self.xcomp.items())},
            "creation": dict(sorted(self.creation.items())),
            "host": self.host.to_json(),
            "access": None if self.access is None else self.access.to_json(),
            "verification": None
            if self.verification is None
            else [a.to_json() for a in self.verification],
            "errors": [e.to_json() for e in self.errors],
        }

    def dumps(self) -> str:
        import json  # here, not at the top: a text report never reads or writes JSON

        return json.dumps(self.to_json(), indent=1) + "\n"


def _entries_json(entries: tuple[CpuidEntry, ...] | None) -> list[dict[str, int]] | None:
    return None if entries is None else [e.to_json() for e in entries]


def _list_or_none(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


# --------------------------------------------------------------------------------------------
# Loading: untrusted input.


class _Newer(Exception):
    """A snapshot written by a newer kvmprobe: not broken, just beyond this version."""


class _OtherKind(Exception):
    """A JSON document kvmprobe wrote that is not a snapshot (a 'cpuid --json' output...)."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema)
        self.schema = schema


#: the "schema" value of every JSON document kvmprobe writes (kvmprobe.cpuid/1, ...)
_KVMPROBE_DOCUMENT = re.compile(r"kvmprobe\.[a-z0-9][a-z0-9-]{0,40}/[0-9]{1,4}")


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


_HEX = re.compile(r"0x[0-9a-f]{1,16}")


def _u64(v: Any, where: str, hi: int = U64_MAX) -> int:
    """An integer written either as a JSON number or (schema 2, for 64-bit values) as a
    lower-case hex string such as "0x400000000c000069"."""
    if isinstance(v, str):
        if not _HEX.fullmatch(v):
            raise _Bad(where, f"expected a number or a hex string such as 0x1f, got {v[:40]!r}")
        v = int(v, 16)
    return _int(v, where, 0, hi)


def _opt_u64(v: Any, where: str) -> int | None:
    return None if v is None else _u64(v, where)


def _opt_int(v: Any, where: str, lo: int = 0, hi: int = U64_MAX) -> int | None:
    return None if v is None else _int(v, where, lo, hi)


def _str(v: Any, where: str, limit: int = 4096) -> str:
    if not isinstance(v, str):
        raise _Bad(where, f"expected a string, got {type(v).__name__}")
    if len(v) > limit:
        raise _Bad(where, f"string of {len(v)} characters is too long")
    if v.isascii():  # no surrogate can hide in ASCII text
        return v
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(where, "string holds an unpaired UTF-16 surrogate (not valid text)") from None
    return v


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):  # the common case, checked at C speed
        return out
    seen: set[str] = set()
    for k, _v in pairs:
        if k in seen:
            raise _Bad(f"key {k!r}", "appears twice in one object")
        seen.add(k)
    return out  # not reached: a shorter dict means a key came twice


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


_ENTRY_FIELDS = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")


def _entry_checked(raw: Any, w: str) -> tuple[int, ...]:
    o = _obj(raw, w)
    return tuple(_int(o.get(name), f"{w}.{name}", 0, U32_MAX) for name in _ENTRY_FIELDS)


# CpuidEntry is a plain frozen dataclass (no __post_init__, no slots): filling its __dict__
# gives the very object its __init__ would, at a third of the cost of the frozen __init__.
_FAST_ENTRY = not hasattr(CpuidEntry, "__slots__") and not hasattr(CpuidEntry, "__post_init__")


def _new_entry(vals: tuple[int, ...]) -> CpuidEntry:
    if not _FAST_ENTRY:
        return CpuidEntry(*vals)
    e = object.__new__(CpuidEntry)
    d = e.__dict__
    d["function"], d["index"], d["flags"], d["eax"], d["ebx"], d["ecx"], d["edx"] = vals
    return e


def _entries(v: Any, where: str) -> tuple[CpuidEntry, ...] | None:
    """A list of kvm_cpuid_entry2 objects. A fleet of snapshot files is mostly CPUID entries,
    so the common case (a dict with seven integers in 0..U32_MAX: the same rules as
    ``_int(v, w, 0, U32_MAX)`` on each) is checked inline; anything else takes the checked
    path, which names the problem."""
    if v is None:
        return None
    out: list[CpuidEntry] = []
    seen: set[tuple[int, int]] = set()
    new = object.__new__
    for i, raw in enumerate(_list(v, where)):
        vals: tuple[int, ...] | None = None
        if type(raw) is dict:
            try:
                f, ix, fl = raw["function"], raw["index"], raw["flags"]
                a, b, c, d = raw["eax"], raw["ebx"], raw["ecx"], raw["edx"]
            except KeyError:
                pass
            else:
                if (
                    type(f) is int and type(ix) is int and type(fl) is int and type(a) is int
                    and type(b) is int and type(c) is int and type(d) is int
                    and 0 <= f <= U32_MAX and 0 <= ix <= U32_MAX and 0 <= fl <= U32_MAX
                    and 0 <= a <= U32_MAX and 0 <= b <= U32_MAX and 0 <= c <= U32_MAX
                    and 0 <= d <= U32_MAX
                ):  # fmt: skip
                    vals = (f, ix, fl, a, b, c, d)
        if vals is None:
            vals = _entry_checked(raw, f"{where}[{i}]")
        key = (vals[0], vals[1])
        if key in seen:
            w = f"{where}[{i}]"
            raise _Bad(w, f"duplicate entry for leaf {key[0]:#x} subleaf {key[1]:#x}")
        seen.add(key)
        if _FAST_ENTRY:
            e = new(CpuidEntry)
            dd = e.__dict__
            dd["function"], dd["index"], dd["flags"], dd["eax"], dd["ebx"], dd["ecx"], dd["edx"] = (
                vals
            )
            out.append(e)
        else:
            out.append(CpuidEntry(*vals))
    return tuple(out)


def _int_list(v: Any, where: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    return tuple(_int(x, f"{where}[{i}]", 0, U32_MAX) for i, x in enumerate(_list(v, where)))


_CAP_VALUE_MAX = 2**63 - 1
#: the decimal spellings of capability numbers a snapshot writes, read without int()
_CAP_KEYS = {str(n): n for n in range(1024)}


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
            # the common case (a decimal key below the limit, an int value) without a call per
            # item; anything else takes the checked path, which names the problem
            num = _CAP_KEYS.get(k)
            if num is not None and num < limit and type(val) is int and 0 <= val <= _CAP_VALUE_MAX:
                d[num] = val
                continue
            num = _hexkey(k, w)
            if num >= limit:
                raise _Bad(f"{w}[{k}]", f"cap number beyond cap_limit {limit}")
            d[num] = _u64(val, f"{w}[{k}]", _CAP_VALUE_MAX)
        out[scope] = d
    return out


def _host(v: Any, where: str) -> HostInfo:
    o = _obj(v, where)
    modules: dict[str, ModuleInfo] = {}
    for name, m in _obj(o.get("modules", {}), f"{where}.modules").items():
        mw = f"{where}.modules[{name!r}]"  # a key from the file: quoted, never raw
        mo = _obj(m, mw)
        raw_params = _obj(mo.get("params", {}), f"{mw}.params")
        if all(
            type(val) is str and len(k) <= 4096 and len(val) <= 4096 and (k + val).isascii()
            for k, val in raw_params.items()
        ):  # what _str would accept (keys are str in JSON), checked without two calls per item
            params = dict(raw_params)
        else:
            params = {
                _str(k, f"{mw}.params"): _str(val, f"{mw}.params[{k!r}]")
                for k, val in raw_params.items()
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
    raw_flags = _list(o.get("cpuinfo_flags", []), f"{where}.cpuinfo_flags")
    if all(type(f) is str and len(f) <= 64 and f.isascii() for f in raw_flags):
        flags = tuple(raw_flags)  # what _str would accept, checked without a call per flag
    else:
        flags = tuple(_str(f, f"{where}.cpuinfo_flags[{i}]", 64) for i, f in enumerate(raw_flags))
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


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _Bad(where, "expected true or false")
    return v


def _opt_bool(v: Any, where: str) -> bool | None:
    return None if v is None else _bool(v, where)


def _pair(v: Any, where: str) -> tuple[int, int]:
    """A [major, minor] device number pair."""
    lst = _list(v, where)
    if len(lst) != 2:
        raise _Bad(where, "expected [major, minor]")
    return (_int(lst[0], f"{where}[0]", 0, U32_MAX), _int(lst[1], f"{where}[1]", 0, U32_MAX))


def _strs(v: Any, where: str, limit: int = 4096) -> tuple[str, ...]:
    return tuple(_str(x, f"{where}[{i}]", limit) for i, x in enumerate(_list(v, where)))


def _ids(v: Any, where: str) -> tuple[int, ...]:
    return tuple(_int(x, f"{where}[{i}]", 0, U32_MAX) for i, x in enumerate(_list(v, where)))


def _enum(v: Any, where: str, kind: type[_E]) -> _E:
    text = _str(v, where, 64)
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise _Bad(where, f"{text!r} is not one of {allowed}") from None


def _fields(o: dict[str, Any], known: Iterable[str], where: str, warnings: list[str]) -> None:
    """Warn about keys a newer kvmprobe may have added (they are ignored)."""
    for k in sorted(set(o) - set(known)):
        warnings.append(f"ignoring unknown field {where + '.' + k!r}")


def _required(o: dict[str, Any], key: str, where: str) -> Any:
    if key not in o:
        raise _Bad(f"{where}.{key}", "missing")
    return o[key]


_NODE_KEYS = ("kind", "mode", "uid", "gid", "owner", "group", "rdev")
_ACL_KEYS = ("tag", "qualifier", "perms")
_MOUNT_KEYS = ("mount_point", "fs_type", "options", "readonly", "nodev", "error")
_CGROUP_KEYS = ("lines", "version", "devices_file", "devices_list", "devices_error", "error")
_CONTAINER_KEYS = (
    "markers", "pid1_container", "pid1_environ_error", "root_fs_type", "dev_fs_type",
)  # fmt: skip
_ACCESS_KEYS = (
    "path", "exists", "kvm_rdev", "lstat_error", "symlink_target", "node", "euid", "egid",
    "user", "groups", "group_names", "configured_groups", "access_rw", "open_tried",
    "open_errno", "acl", "acl_error", "mount", "sysfs_dev", "sysfs_error", "cgroup",
    "container",
)  # fmt: skip
_ACL_TAG_UNKNOWN = re.compile(r"tag 0x[0-9a-f]{1,4}")


def _node(v: Any, where: str, warnings: list[str]) -> NodeStat | None:
    from kvmprobe.access_facts import NodeStat

    if v is None:
        return None
    o = _obj(v, where)
    _fields(o, _NODE_KEYS, where, warnings)
    rdev = o.get("rdev")
    return NodeStat(
        kind=_enum(_required(o, "kind", where), f"{where}.kind", NodeKind),
        mode=_int(_required(o, "mode", where), f"{where}.mode", 0, 0o7777),
        uid=_int(o.get("uid", 0), f"{where}.uid", 0, U32_MAX),
        gid=_int(o.get("gid", 0), f"{where}.gid", 0, U32_MAX),
        owner=_str(o.get("owner", ""), f"{where}.owner", 256),
        group=_str(o.get("group", ""), f"{where}.group", 256),
        rdev=None if rdev is None else _pair(rdev, f"{where}.rdev"),
    )


def _acl_entry(v: Any, where: str, warnings: list[str]) -> AclEntry:
    from kvmprobe.access_facts import AclEntry

    o = _obj(v, where)
    _fields(o, _ACL_KEYS, where, warnings)
    tag = _str(_required(o, "tag", where), f"{where}.tag", 64)
    if tag not in set(AclTag) and not _ACL_TAG_UNKNOWN.fullmatch(tag):
        raise _Bad(f"{where}.tag", f"{tag!r} is not a POSIX ACL tag")
    return AclEntry(
        tag=tag,
        qualifier=_opt_int(o.get("qualifier"), f"{where}.qualifier", 0, U32_MAX),
        perms=_int(_required(o, "perms", where), f"{where}.perms", 0, 7),
    )


def _mount(v: Any, where: str, warnings: list[str]) -> MountFacts:
    from kvmprobe.access_facts import MountFacts

    o = _obj(v, where)
    _fields(o, _MOUNT_KEYS, where, warnings)
    return MountFacts(
        mount_point=_opt_str(o.get("mount_point"), f"{where}.mount_point"),
        fs_type=_opt_str(o.get("fs_type"), f"{where}.fs_type"),
        options=_strs(o.get("options", []), f"{where}.options"),
        readonly=_opt_bool(o.get("readonly"), f"{where}.readonly"),
        nodev=_opt_bool(o.get("nodev"), f"{where}.nodev"),
        error=_opt_str(o.get("error"), f"{where}.error"),
    )


def _cgroup(v: Any, where: str, warnings: list[str]) -> CgroupFacts:
    from kvmprobe.access_facts import CgroupFacts

    o = _obj(v, where)
    _fields(o, _CGROUP_KEYS, where, warnings)
    devices_list = o.get("devices_list")
    return CgroupFacts(
        lines=_strs(o.get("lines", []), f"{where}.lines"),
        version=_enum(o.get("version", "unknown"), f"{where}.version", CgroupVersion),
        devices_file=_opt_str(o.get("devices_file"), f"{where}.devices_file"),
        devices_list=None if devices_list is None else _strs(devices_list, f"{where}.devices_list"),
        devices_error=_opt_str(o.get("devices_error"), f"{where}.devices_error"),
        error=_opt_str(o.get("error"), f"{where}.error"),
    )


def _container(v: Any, where: str, warnings: list[str]) -> ContainerFacts:
    from kvmprobe.access_facts import ContainerFacts

    o = _obj(v, where)
    _fields(o, _CONTAINER_KEYS, where, warnings)
    return ContainerFacts(
        markers=_strs(o.get("markers", []), f"{where}.markers"),
        pid1_container=_opt_str(o.get("pid1_container"), f"{where}.pid1_container"),
        pid1_environ_error=_opt_str(o.get("pid1_environ_error"), f"{where}.pid1_environ_error"),
        root_fs_type=_opt_str(o.get("root_fs_type"), f"{where}.root_fs_type"),
        dev_fs_type=_opt_str(o.get("dev_fs_type"), f"{where}.dev_fs_type"),
    )


def _access(v: Any, where: str, warnings: list[str]) -> AccessFacts | None:
    """The ``access`` object; None (absent or null) in snapshots recorded before it existed."""
    from kvmprobe.access_facts import AccessFacts

    if v is None:
        return None
    o = _obj(v, where)
    _fields(o, _ACCESS_KEYS, where, warnings)
    names: dict[int, str] = {}
    w = f"{where}.group_names"
    for k, name in _obj(o.get("group_names", {}), w).items():
        shown = repr(k) if len(k) <= 20 else repr(k[:17]) + "..."
        if not (k.isascii() and k.isdigit() and len(k) <= 10):
            raise _Bad(w, f"key {shown} is not a group id")
        names[_int(int(k), f"{w}[{k}]", 0, U32_MAX)] = _str(name, f"{w}[{k}]", 256)
    acl = o.get("acl")
    return AccessFacts(
        path=_str(_required(o, "path", where), f"{where}.path"),
        exists=_bool(_required(o, "exists", where), f"{where}.exists"),
        kvm_rdev=_pair(_required(o, "kvm_rdev", where), f"{where}.kvm_rdev"),
        lstat_error=_opt_str(o.get("lstat_error"), f"{where}.lstat_error"),
        symlink_target=_opt_str(o.get("symlink_target"), f"{where}.symlink_target"),
        node=_node(o.get("node"), f"{where}.node", warnings),
        euid=_int(o.get("euid", 0), f"{where}.euid", 0, U32_MAX),
        egid=_int(o.get("egid", 0), f"{where}.egid", 0, U32_MAX),
        user=_str(o.get("user", ""), f"{where}.user", 256),
        groups=_ids(o.get("groups", []), f"{where}.groups"),
        group_names=names,
        configured_groups=_ids(o.get("configured_groups", []), f"{where}.configured_groups"),
        access_rw=_opt_bool(o.get("access_rw"), f"{where}.access_rw"),
        open_tried=_bool(o.get("open_tried", False), f"{where}.open_tried"),
        open_errno=_opt_int(o.get("open_errno"), f"{where}.open_errno", 0, ERRNO_MAX),
        acl=None
        if acl is None
        else tuple(
            _acl_entry(e, f"{where}.acl[{i}]", warnings)
            for i, e in enumerate(_list(acl, f"{where}.acl"))
        ),
        acl_error=_opt_str(o.get("acl_error"), f"{where}.acl_error"),
        mount=_mount(o.get("mount", {}), f"{where}.mount", warnings),
        sysfs_dev=_opt_str(o.get("sysfs_dev"), f"{where}.sysfs_dev"),
        sysfs_error=_opt_str(o.get("sysfs_error"), f"{where}.sysfs_error"),
        cgroup=_cgroup(o.get("cgroup", {}), f"{where}.cgroup", warnings),
        container=_container(o.get("container", {}), f"{where}.container", warnings),
    )


_REQUIRED = ("device", "api_version", "caps", "supported_cpuid", "host", "errors")
_ATTEMPT_KEYS = ("what", "irqchip", "target", "value", "accepted", "errno", "refused_bits")


def _verification(v: Any, where: str) -> tuple[SetAttempt, ...] | None:
    if v is None:
        return None
    from kvmprobe.verification_facts import SetAttempt

    out: list[SetAttempt] = []
    for i, raw in enumerate(_list(v, where)):
        w = f"{where}[{i}]"
        o = _obj(raw, w)
        for key in _ATTEMPT_KEYS:
            _required(o, key, w)
        accepted = o["accepted"]
        if accepted is not None and not isinstance(accepted, bool):
            raise _Bad(f"{w}.accepted", "expected true, false or null")
        what = _str(o["what"], f"{w}.what", 64)
        # recorded before kvmprobe tried effective tables: every attempt followed the supported one
        table = _enum(o.get("table", CpuidTable.SUPPORTED.value), f"{w}.table", CpuidTable).value
        out.append(
            SetAttempt(
                what=what,
                irqchip=_enum(o["irqchip"], f"{w}.irqchip", Irqchip).value,
                target=_opt_int(o["target"], f"{w}.target", 0, U32_MAX),
                value=_opt_u64(o["value"], f"{w}.value"),
                accepted=accepted,
                errno=_opt_int(o["errno"], f"{w}.errno", 0, ERRNO_MAX),
                refused_bits=tuple(
                    _int(b, f"{w}.refused_bits[{j}]", 0, 63)
                    for j, b in enumerate(_list(o["refused_bits"], f"{w}.refused_bits"))
                ),
                table=table,
            )
        )
    return tuple(out)


def from_json(doc: Any) -> tuple[Snapshot, list[str]]:
    """Build a Snapshot from parsed JSON. Returns it with warnings (unknown extra keys)."""
    o = _obj(doc, "top level")
    schema = o.get("schema")
    shown = repr(schema) if len(repr(schema)) <= 60 else repr(schema)[:57] + "..."
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        if isinstance(schema, str) and _KVMPROBE_DOCUMENT.fullmatch(schema):
            raise _OtherKind(schema)
        what = "no schema field" if schema is None else f"schema {shown}"
        raise _Bad("schema", f"not a kvmprobe snapshot ({what})")
    try:
        major = int(schema[len(SCHEMA_PREFIX) :])
    except ValueError:
        raise _Bad("schema", f"unreadable schema version {shown}") from None
    if major > SCHEMA_MAJOR:
        raise _Newer(
            f"snapshot format version {major} is newer than this kvmprobe reads "
            f"(up to {SCHEMA_MAJOR})"
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
        "access",
        "verification",
        "errors",
    }
    for key in _REQUIRED:
        if key not in o:
            raise _Bad(key, "missing: every snapshot has it (was the file edited or cut short?)")
    warnings = [f"ignoring unknown field {k!r}" for k in sorted(set(o) - known)]
    limit = _int(o.get("cap_limit", CAP_LIMIT), "cap_limit", 1, 1 << 16)
    errors = []
    for i, e in enumerate(_list(o.get("errors", []), "errors")):
        eo = _obj(e, f"errors[{i}]")
        errors.append(
            ProbeError(
                step=_str(eo.get("step", ""), f"errors[{i}].step"),
                errno=_opt_int(eo.get("errno"), f"errors[{i}].errno", 0, ERRNO_MAX),
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
            _hexkey(k, "feature_msrs"): _u64(v, f"feature_msrs[{k}]")
            for k, v in _obj(o.get("feature_msrs", {}), "feature_msrs").items()
        },
        device_attrs={
            _str(k, "device_attrs", 64): _u64(v, f"device_attrs[{k!r}]")
            for k, v in _obj(o.get("device_attrs", {}), "device_attrs").items()
        },
        mce_cap_supported=_opt_u64(o.get("mce_cap_supported"), "mce_cap_supported"),
        xcomp={
            _str(k, "xcomp", 64): _u64(v, f"xcomp[{k!r}]")
            for k, v in _obj(o.get("xcomp", {}), "xcomp").items()
        },
        creation={
            _str(k, "creation", 64): _str(v, f"creation[{k!r}]", 64)
            for k, v in _obj(o.get("creation", {}), "creation").items()
        },
        host=_host(o.get("host", {}), "host"),
        access=_access(o.get("access"), "access", warnings),
        verification=_verification(o.get("verification"), "verification"),
        errors=tuple(errors),
        recorded_at=_str(o.get("recorded_at", ""), "recorded_at"),
        kvmprobe_version=_str(o.get("kvmprobe_version", ""), "kvmprobe_version"),
    )
    return snap, warnings


def loads(text: str, source: str, reader: str = "--from") -> tuple[Snapshot, list[str]]:
    """Parse and check a snapshot's text; ``source`` names it in errors and in the result,
    ``reader`` the option or command it was given to (for the hint when it is another kind
    of kvmprobe document)."""
    import json

    hint = "record a new one with 'kvmprobe record -o FILE' on the host in question"
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _Bad as e:
        raise KvmprobeError(f"{source}: invalid snapshot: {e}", hint) from None
    except RecursionError:
        raise KvmprobeError(f"{source}: JSON nested too deeply", hint) from None
    except ValueError as e:
        what = "empty file" if not text.strip() else f"not valid JSON ({e})"
        raise KvmprobeError(f"{source}: {what}", hint) from None
    try:
        snap, warnings = from_json(doc)
    except _Newer as e:
        raise KvmprobeError(
            f"{source}: {e}",
            f"upgrade kvmprobe (this is {__version__}) the way it was installed: update the "
            "source checkout and install it again, or install the package's newer release",
        ) from None
    except _OtherKind as e:
        takes = (
            f"{reader} takes a file"
            if reader.startswith("-")
            else f"'kvmprobe {reader}' takes files"
        )
        raise KvmprobeError(
            f"{source} is a {e.schema} document, not a snapshot",
            f"{takes} written by 'kvmprobe record'",
        ) from None
    except _Bad as e:
        raise KvmprobeError(f"{source}: invalid snapshot: {e}", hint) from None
    except RecursionError:
        raise KvmprobeError(f"{source}: JSON nested too deeply", hint) from None
    return _with_source(snap, source), warnings


def load(path: str, reader: str = "--from") -> tuple[Snapshot, list[str]]:
    """Read and check a snapshot file (``-``: standard input) given to ``reader`` (an option
    or a command); every problem becomes a KvmprobeError naming the file."""
    from kvmprobe.inputs import read_text

    return loads(read_text(path), path, reader)


def _with_source(snap: Snapshot, source: str) -> Snapshot:
    return replace(snap, source=source)
