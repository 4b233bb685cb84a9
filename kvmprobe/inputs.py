"""Reading what the user hands kvmprobe: snapshot files (or ``-`` for standard input).

Only regular files are read (a FIFO or a device given as --from would block or have side
effects), never more than kvmprobe.limits.MAX_SNAPSHOT_BYTES, and every problem is one
KvmprobeError naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import MAX_SNAPSHOT_BYTES

_HINT = "record a new one with 'kvmprobe record -o FILE' on the host in question"


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_text(path: str, limit: int = MAX_SNAPSHOT_BYTES) -> str:
    """The text of the file at ``path`` (``-``: standard input), at most ``limit`` bytes."""
    try:
        if path == "-":
            data = _read_fd(sys.stdin.fileno(), limit)
        else:
            # O_NONBLOCK: a FIFO opens at once (and is then refused) instead of waiting forever
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
            fd = os.open(path, flags)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise KvmprobeError(
                        f"{path} is {_kind(st.st_mode)}, not a snapshot file",
                        "give a snapshot file written by 'kvmprobe record', or - for standard "
                        "input",
                    )
                if st.st_size > limit:
                    raise KvmprobeError(
                        f"{path}: {st.st_size} bytes is far larger than any snapshot "
                        f"(at most {limit})",
                        _HINT,
                    )
                os.set_blocking(fd, True)
                data = _read_fd(fd, limit)
            finally:
                os.close(fd)
    except FileNotFoundError:
        raise KvmprobeError(f"{path}: no such snapshot file", "check the path given") from None
    except PermissionError:
        raise KvmprobeError(
            f"{path}: permission denied", "make the file readable", ExitStatus.PERMISSION
        ) from None
    except OSError as e:
        if e.errno == errno.EISDIR:
            raise KvmprobeError(f"{path} is a directory, not a snapshot file", _HINT) from None
        raise KvmprobeError(f"{path}: cannot read: {e.strerror or e}", _HINT) from None
    if len(data) > limit:
        raise KvmprobeError(f"{path}: more than {limit} bytes, far larger than any snapshot", _HINT)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KvmprobeError(f"{path}: not a text file (not UTF-8)", _HINT) from None
