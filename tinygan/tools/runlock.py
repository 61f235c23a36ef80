"""One writer per output directory: an exclusive ``fcntl.flock`` on ``<dir>/.tinygan.lock``.

A run (rundir.RunDirectory) or a classifier training (examples/train_classifier.py) takes the
lock before it writes anything and holds it until the process ends; the OS releases it when
the process dies, however it dies, so a stale lock file never blocks anyone. A second process
asking for the same directory is refused at once with ConfigError naming the holder's PID
(written into the lock file). Within one process the lock is taken once per directory and
shared (a Trainer then its resume in one script are one writer).

A run that fails before it writes anything leaves nothing behind: when the process exits, a
directory it locked that holds only the lock file (and an empty ``samples/``) loses them, and
is removed too if this process created it (so a failed run never leaves an --out that looks
like a run with no checkpoint).
"""

import atexit
import os
import time
from pathlib import Path

from ..errors import ConfigError

LOCK_NAME = ".tinygan.lock"
_held = {}                        # realpath of the directory -> lock file descriptor (kept open)
_created = set()                  # realpaths of the directories this process created


def lock_directory(directory):
    """Create ``directory`` (and parents) and lock it for this process; ConfigError if another
    process holds it or it cannot be created. Returns the lock file's path."""
    import fcntl
    directory = Path(directory)
    try:
        new = [d for d in (directory, *directory.parents) if not os.path.lexists(d)]
        directory.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(directory)
        _created.update(os.path.realpath(d) for d in new)
        if key in _held:
            return Path(key) / LOCK_NAME
        path = Path(key) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write to output directory {directory}: "
                          f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        holder = _holder(path)
        raise ConfigError(f"output directory {directory} is in use by another run "
                          f"({holder}): wait for it to end, or choose another output "
                          "directory") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd
    return path


def _holder(path, wait=2.0):
    """'PID n' from the lock file (the holder writes it right after locking: wait a moment)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return f"PID {text}"
        if time.monotonic() > deadline:
            return "PID unknown"
        time.sleep(0.05)


def unlock_directory(directory):
    """Release this process's lock on ``directory`` (nothing if it holds none); a directory
    left holding nothing but the lock is cleared (see the module's docstring)."""
    key = os.path.realpath(directory)
    fd = _held.pop(key, None)
    if fd is not None:
        _clear_if_unused(key)                    # while still holding the lock
        os.close(fd)


def _clear_if_unused(key):
    try:
        names = set(os.listdir(key))
        if names - {LOCK_NAME, "samples"}:
            return
        if "samples" in names:
            os.rmdir(os.path.join(key, "samples"))       # fails (kept) unless empty
        os.unlink(os.path.join(key, LOCK_NAME))
        for d in [key, *map(str, Path(key).parents)]:   # the directories this process made
            if d not in _created:
                break
            os.rmdir(d)
    except OSError:
        pass


@atexit.register
def _release_all():
    for key in list(_held):
        unlock_directory(key)
