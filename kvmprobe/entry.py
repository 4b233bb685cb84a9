"""The console-script entry point: the last line of defence around every command.

It imports nothing heavy before its handlers are in place, so an interrupt during start-up,
a closed or full standard output, or an unexpected exception all end the same documented way:
one line on stderr (none for a reader that went away), the fixed exit status, and a traceback
only with --debug.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: a reader closed the pipe early (``kvmprobe cpuid | head``): quiet, like other Unix tools
#: killed by SIGPIPE (128 + 13)
EXIT_BROKEN_PIPE = 141
_EXIT_ERROR = 1
_EXIT_INTERRUPTED = 130


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr is closed too: the exit status must speak alone


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _exit_now(status: int) -> None:
    """Exit at once with ``status``. After an interrupt, a normal exit lets the interpreter
    kill itself with SIGINT (it remembers the KeyboardInterrupt), which would replace the
    documented status 130 with "killed by a signal"."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _plain(message: str) -> str:
    """Click's sentence in kvmprobe's style: one line, lower-case start, no closing period
    ("No such option '--x'." -> "no such option '--x'"; "Missing argument 'FORMAT'. Choose
    from: ..." -> "missing argument 'FORMAT'; choose from: ...")."""
    import re

    # one line: click lays some messages out over several (a Choice's list of values)
    text = " ".join(message.split())
    text = re.sub(r"\. ([A-Z])(?=[a-z])", lambda m: "; " + m.group(1).lower(), text)
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return text.removesuffix(".")


def _usage_error(e: Exception) -> None:
    """A usage error in kvmprobe's format: what is wrong, then where to look (the help of the
    command it was given to, and click's guess at a mistyped option)."""
    import click

    assert isinstance(e, click.ClickException)
    guesses = getattr(e, "possibilities", None) if isinstance(e, click.NoSuchOption) else None
    message = e.message if guesses else e.format_message()  # the guess goes to the hint
    _say(f"kvmprobe: error: {_plain(message)}")
    ctx = getattr(e, "ctx", None)
    hint = f"see '{ctx.command_path if ctx is not None else 'kvmprobe'} --help'"
    if guesses:
        hint = f"did you mean {' or '.join(guesses)}? {hint}"
    _say(f"hint: {hint}")


def run(argv: list[str] | None = None) -> None:
    """Run kvmprobe and exit with its status."""
    if argv is not None:
        _run(argv)
        return
    # the console script: a short-lived process of its own
    import gc

    # Start-up creates tens of thousands of long-lived objects (classes, tables); with the
    # default threshold the young generation is collected about 80 times on the way, finding
    # nothing to free. Collected rarer, cyclic garbage still goes (about 3% of the
    # instructions of a 'cpuid' run saved).
    gc.set_threshold(100_000)
    try:
        _run(sys.argv[1:])
    except SystemExit as e:
        _end_process(e)
        raise


def _end_process(e: SystemExit) -> None:
    """End the console script's process at once with the status it is exiting with.

    Every way out of ``_run`` has written and flushed its output already, so what is left of
    a normal exit is the interpreter tearing down every module and object one by one (about
    7% of the instructions of a 'cpuid' run). That is skipped when nothing depends on it: no
    worker processes or other threads, no module that registers exit handlers, and standard
    output and error flushed cleanly here. Otherwise (and for ``sys.exit("text")``) the
    interpreter ends the process as usual."""
    code = e.code
    if code is not None and not isinstance(code, int):
        return
    if any(m in sys.modules for m in ("multiprocessing", "concurrent.futures", "logging")):
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return  # the interpreter's own exit reports it, as it always has
    os._exit(code or 0)


def _run(args: list[str]) -> None:
    debug = "--debug" in args
    try:
        from kvmprobe import quick
        from kvmprobe.render import output

        output.protect_completed_writes = True
        status = quick.run(args)  # a plain command line needs no parser
        if status is not None:
            _flush_stdout()
        else:
            status = _run_click(args, debug)
    except SystemExit:  # click's ctx.exit() and our own exits
        try:
            _flush_stdout()
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except OSError as oe:
            _say(f"kvmprobe: error: cannot write to standard output: {oe.strerror or oe}")
            _say("hint: write to a file or a pipe that is open and has room")
            sys.exit(_EXIT_ERROR)
        _done()
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        _say("kvmprobe: interrupted")
        _exit_now(_EXIT_INTERRUPTED)
    except BrokenPipeError:
        if debug:
            raise
        _silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as e:
        if debug:
            raise
        if e.errno in (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG):
            _silence_stdout()
            _say(f"kvmprobe: error: cannot write to standard output: {e.strerror or e}")
            _say("hint: write to a file or a pipe that is open and has room")
        else:
            _say(f"kvmprobe: internal error: {type(e).__name__}: {e}")
            _say("hint: rerun with --debug for the traceback and report it")
        sys.exit(_EXIT_ERROR)
    except MemoryError:
        if debug:
            raise
        _say("kvmprobe: error: out of memory")
        _say("hint: raise the memory limit (ulimit -v) or free memory, then try again")
        sys.exit(_EXIT_ERROR)
    except Exception as e:  # the last resort: never a bare traceback without --debug
        if debug:
            raise
        _say(f"kvmprobe: internal error: {type(e).__name__}: {e}")
        _say("hint: rerun with --debug for the traceback and report it")
        sys.exit(_EXIT_ERROR)
    if status == _EXIT_INTERRUPTED:
        _exit_now(_EXIT_INTERRUPTED)  # the command said "interrupted" itself
    _done()
    sys.exit(status if isinstance(status, int) else 0)


def _run_click(args: list[str], debug: bool) -> int | None:
    """A command line click parses (the others: kvmprobe.quick); its status."""
    import click

    from kvmprobe.cli import ReaderGone, main

    try:
        status = main(args=args, prog_name="kvmprobe", standalone_mode=False)
        _flush_stdout()
    except ReaderGone:
        raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe") from None
    except click.exceptions.Abort:  # click's word for an interrupt while parsing
        raise KeyboardInterrupt from None
    except click.ClickException as e:
        if debug:
            raise
        _usage_error(e)
        sys.exit(e.exit_code)
    return status if isinstance(status, int) else None


def _done() -> None:
    """All output is out: an interrupt from now on cannot change the result, so it must not
    turn a finished run into "killed by SIGINT" while the interpreter shuts down."""
    # The C module the interpreter loaded at start-up does it; the signal module on top of
    # it would first build its enums (about half a millisecond of a short run).
    signal: Any = sys.modules.get("_signal")
    if signal is None:
        from importlib import import_module

        signal = import_module("signal")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
