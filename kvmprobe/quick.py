"""Plain command lines, run without click.

Most runs in a fleet or a CI job are a command and a few flags: ``kvmprobe cpuid --json``,
``kvmprobe caps``, ``kvmprobe doctor --json``. Such a command line needs no parsing, only a
lookup, and importing click and building the command costs a fifth of a ``caps --json`` run.
:func:`run` carries out a plain command line directly: a command that takes no required
argument, followed only by flags it declares that take no value (``--json``, ``--all``,
``--no-color``...), each at most once. Anything else (an option with a value, an argument,
``--help``, a flag given twice, a typo, shell completion) is left to click, which parses it and
reports usage errors in kvmprobe's format.

The table below is what click's command tree says: tests/test_quick.py checks it against the
tree (same flags, same parameters, same order, nothing missing) and runs every command line it
accepts both ways, comparing the output byte for byte.
"""

from __future__ import annotations

import os

#: command ("" for kvmprobe alone) -> every flag that takes no value, in the order the command
#: declares its parameters, and the parameter it sets to true
FLAGS: dict[str, dict[str, str]] = {
    "": {"--debug": "debug", "--no-color": "no_color"},
    "caps": {"--debug": "debug", "--no-color": "no_color", "--all": "include_zero",
             "--json": "as_json"},
    "record": {"--debug": "debug", "--no-color": "no_color", "--force": "force"},
    "cpuid": {"--debug": "debug", "--no-color": "no_color", "--host": "show_host",
              "--all": "show_all", "--raw": "raw", "--json": "as_json"},
    "doctor": {"--debug": "debug", "--no-color": "no_color", "--json": "as_json"},
    "msr": {"--debug": "debug", "--no-color": "no_color", "--json": "as_json"},
    "hyperv": {"--debug": "debug", "--no-color": "no_color", "--json": "as_json"},
    "metrics": {"--debug": "debug", "--no-color": "no_color"},
    "nfd": {"--debug": "debug", "--no-color": "no_color"},
    "fact": {"--debug": "debug", "--no-color": "no_color"},
    "schema": {"--debug": "debug", "--no-color": "no_color", "--list": "list_all"},
}  # fmt: skip

#: set by a shell asking click for completions: never a command line to run
COMPLETION_VARIABLE = "_KVMPROBE_COMPLETE"

#: flags that shape the Invocation rather than being the body's parameters
_INVOCATION_FLAGS = ("debug", "no_color")


def plain(argv: list[str]) -> tuple[str, dict[str, str]] | None:
    """The command and the flags (parameter -> flag as written, in declaration order) of a
    plain command line; None for one click must parse."""
    command = argv[0] if argv and not argv[0].startswith("-") else ""
    flags = FLAGS.get(command)
    if flags is None or COMPLETION_VARIABLE in os.environ:
        return None
    words = argv[1:] if command else argv
    if len(set(words)) != len(words) or not all(w in flags for w in words):
        return None
    return command, {p: f for f, p in flags.items() if f in words}


def run(argv: list[str]) -> int | None:
    """Carry out a plain command line and return its exit status (a command that ends with
    another status raises SystemExit); None, having done nothing, when it is not plain."""
    found = plain(argv)
    if found is None:
        return None
    command, given = found
    from kvmprobe.commands import body
    from kvmprobe.commands.common import Invocation, report_error, say
    from kvmprobe.errors import ExitStatus, KvmprobeError

    inv = Invocation(given, no_color="no_color" in given, debug="debug" in given)
    params = {p: True for p in given if p not in _INVOCATION_FLAGS}
    try:
        body(command)(inv, **params)
    except KvmprobeError as e:
        if inv.debug:
            raise
        return report_error(e)
    except KeyboardInterrupt:
        if inv.debug:
            raise
        say("kvmprobe: interrupted")
        return int(ExitStatus.INTERRUPTED)
    return 0
