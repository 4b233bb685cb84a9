"""What each command does, without the command line: one module per command (its body: options
-> Snapshot -> analysis -> render, heavy imports inside), and ``common`` for what several share.

A body is a function taking the :class:`~kvmprobe.commands.common.Invocation` (how it was
called: which options were given, colour, --debug) and the command's parameters by name, each
with the default the command line gives it. ``kvmprobe.cli`` declares the options with click
and calls the bodies; ``kvmprobe.quick`` calls them directly for a plain command line (a
command and flags only), without importing click. Nothing here imports click.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: command name -> (module in this package, function): where each command's body is
#: ("" is kvmprobe without a command: the summary)
BODIES: dict[str, tuple[str, str]] = {
    "": ("summary", "summary"),
    "caps": ("caps", "caps"),
    "record": ("record", "record"),
    "cpuid": ("cpuid", "cpuid"),
    "doctor": ("doctor", "doctor"),
    "msr": ("msr", "msr"),
    "hyperv": ("hyperv", "hyperv"),
    "metrics": ("fleet", "metrics"),
    "nfd": ("fleet", "nfd"),
    "fact": ("fleet", "fact"),
    "schema": ("schema", "schema"),
    "export": ("export", "export"),
    "diff": ("diff", "diff"),
    "baseline": ("baseline", "baseline"),
}


def body(command: str) -> Callable[..., Any]:
    """The function that carries out ``command`` (imported now: its module only)."""
    module, function = BODIES[command]
    f: Callable[..., Any] = getattr(import_module(f"{__name__}.{module}"), function)
    return f
