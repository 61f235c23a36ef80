"""Atomic file writes: the one home of the temp-file, fsync, ``os.replace`` pattern.

A file written with :func:`atomic_write` is either the old one or the complete new one,
whatever moment the process dies at: the bytes go to a temp file beside it, are flushed and
fsynced, and the temp file is renamed over the target (``os.replace`` is atomic on POSIX and
Windows). The checkpoint store (checkpoint.py) uses the same steps for its two-file protocol.
"""

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_path(filename, directory=False):
    """fsync a file, or a directory (so a rename in it survives power loss; some filesystems
    cannot fsync a directory, and that is not an error)."""
    fd = os.open(filename, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def atomic_write(path, write, suffix=".tmp"):
    """Create path's directory, call ``write(binary file)`` on a temp file beside it, fsync,
    ``os.replace`` into place; the temp file is removed on any failure (``write`` may raise to
    refuse, e.g. a checksum mismatch). Returns Path(path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; the files are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
