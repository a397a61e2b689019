"""The one exception type that means "the user gave us something wrong", and the one line for a full disk.

The CLI turns a ``UserError`` into a one-line message and exit status 2;
anything else is a bug and keeps its traceback. A full, over-quota or read-only
disk is no bug either: ``disk_error_message`` is its one line (what, where, how
much room is left, what to do), also when it happened inside a Beam worker
(``beam.find_disk_error`` finds it there).
"""

from __future__ import annotations

import errno
import os
import shutil

# errno -> what the user is told; the CLI reports these in one line, whatever stage hit them
DISK_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system"}


class UserError(Exception):
    """A bad argument, a missing or unreadable input: reported in one line."""


def disk_error_message(exc: OSError, out: str | None = None) -> str | None:
    """The one line for a full, over-quota or read-only disk (``None`` for any other ``OSError``).

    ``out`` names the place when the error does not (a write to an open stream carries no file name).
    """
    if exc.errno not in DISK_ERRNOS:
        return None
    path = exc.filename if isinstance(exc.filename, str) else out or "the output"
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot write {path}: choose a writable --out"
    return (f"{DISK_ERRNOS[exc.errno]} writing {path} ({free_bytes(path)} bytes free): free space and rerun; "
            "completed work is kept")


def free_bytes(path: str) -> str:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), or ``unknown``."""
    folder = os.path.abspath(path) if "://" not in path else ""
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
    try:
        return str(shutil.disk_usage(folder).free) if folder else "unknown"
    except OSError:
        return "unknown"
