"""Writing files without ever leaving half a file or overwriting one unasked."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

from kvmprobe.errors import ExitStatus, KvmprobeError


def write_new_file(path: str, text: str, *, force: bool = False) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, flushed,
    then linked into place (no-clobber) or renamed over the old file with ``force``."""
    if os.path.isdir(path):
        raise KvmprobeError(f"{path} is a directory", "give a file name, e.g. -o host.json")
    if not force and os.path.lexists(path):
        raise KvmprobeError(
            f"{path} already exists", "choose another name, or add --force to overwrite it"
        )
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kvmprobe-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with EEXIST if someone created it meanwhile
            os.unlink(tmp)
        tmp = None
    except OSError as e:
        raise _write_error(path, directory, e) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _write_error(path: str, directory: str, e: OSError) -> KvmprobeError:
    if e.errno == errno.EEXIST:
        return KvmprobeError(
            f"{path} already exists", "choose another name, or add --force to overwrite it"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KvmprobeError(
            f"cannot write {path}: {e.strerror}",
            f"choose a directory you can write to ({directory} is not writable)",
            ExitStatus.PERMISSION,
        )
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
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
