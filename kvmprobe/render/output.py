"""Where output goes: standard output, or a file written atomically that never replaces
anything but a regular file, and never one unasked."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys

from kvmprobe.errors import ExitStatus, KvmprobeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

_NOT_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

#: Set by the console-script entry point: in a real kvmprobe process, an interrupt after a file
#: is in place is ignored (the work is done). Library callers and tests keep their handlers.
protect_completed_writes = False


def standard_output() -> TextIO:
    """sys.stdout, or a KvmprobeError when this process was started with it closed."""
    out = sys.stdout
    if out is None:
        raise KvmprobeError(
            "standard output is closed: there is nowhere to write the result",
            "run with standard output open, or write to a file where the command offers -o",
        )
    return out


def emit(text: str) -> None:
    """Write a whole document to standard output and flush it, so that a full disk or a closed
    descriptor is an error now rather than a lost write at exit."""
    out = standard_output()
    try:
        out.flush()
        try:
            fd = out.fileno()
        except (OSError, ValueError, AttributeError):  # not a real file (e.g. a test capture)
            out.write(text)
            out.flush()
            return
        # Write to the descriptor until all is out: a text stream may report a partial write
        # to a closed pipe as success and drop the rest.
        view = memoryview(text.encode(out.encoding or "utf-8", "replace"))
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise
    except OSError as e:
        raise KvmprobeError(
            f"cannot write to standard output: {e.strerror or e}",
            "write to a file or a pipe that is open and has room",
        ) from None


def _refuse_non_regular(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _write_error(path, os.path.dirname(os.path.abspath(path)), e) from None
    if stat.S_ISDIR(st.st_mode):
        raise KvmprobeError(f"{path} is a directory", "give a file name, e.g. -o host.json")
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise KvmprobeError(
            f"{path} is {kind}; kvmprobe only ever replaces regular files",
            "choose a new file name, or remove it yourself first",
        )


def _ignore_interrupts_from_now() -> None:
    """Once the file is in place the command has done its work: an interrupt arriving now
    must not make it report failure (130) for a file that was written."""
    import signal  # here: only a command that writes a file needs it
    import threading

    if protect_completed_writes and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_new_file(path: str, text: str, *, force: bool = False) -> None:
    """Write ``text`` to ``path`` atomically.

    The text goes to a temporary file in the same directory, flushed to disk, then renamed
    into place. Without ``force`` the name is first reserved with an exclusive create, so an
    existing file (or one created meanwhile) is never replaced; with ``force`` only a regular
    file is replaced. No hard links are needed (some file systems have none), and the temporary
    file never outlives the call.
    """
    _refuse_non_regular(path)
    if not force and os.path.lexists(path):
        raise KvmprobeError(
            f"{path} already exists", "choose another name, or add --force to overwrite it"
        )
    directory = os.path.dirname(os.path.abspath(path))
    tmp: str | None = None
    reserved = False
    try:
        import tempfile  # here, not at the top: every command imports this module to emit

        fd, tmp = tempfile.mkstemp(prefix=".kvmprobe-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if not force:
            # Reserve the name: fails with EEXIST if anything has taken it meanwhile.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            reserved = True
        else:
            _refuse_non_regular(path)
        os.replace(tmp, path)
        tmp = None
        reserved = False
        _ignore_interrupts_from_now()
    except OSError as e:
        raise _write_error(path, directory, e) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if reserved:
            with contextlib.suppress(OSError):
                if os.path.getsize(path) == 0:
                    os.unlink(path)


def _write_error(path: str, directory: str, e: OSError) -> KvmprobeError:
    if e.errno == errno.EEXIST:
        return KvmprobeError(
            f"{path} already exists", "choose another name, or add --force to overwrite it"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KvmprobeError(
            f"cannot write {path}: {e.strerror}",
            f"choose a directory you can write to ({directory} is not writable: {e.strerror})",
            ExitStatus.PERMISSION,
        )
    if e.errno in _NOT_SPACE:
        return KvmprobeError(
            f"cannot write {path}: {e.strerror}; nothing was written",
            "free some space or write elsewhere",
        )
    if e.errno == errno.ENOENT:
        return KvmprobeError(
            f"cannot write {path}: directory {directory} does not exist",
            "create the directory first",
        )
    return KvmprobeError(f"cannot write {path}: {e.strerror or e}", "try another path")
