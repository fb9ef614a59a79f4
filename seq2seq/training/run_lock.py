"""One process owns a run directory: an exclusive lock on ``RUN/.lock`` for the whole training.

Two trainings started on the same directory (the same ``hydra.run.dir``, or Hydra's default
name when both start in the same second) would write into the same ``checkpoints/``, prune
each other's files and "resume" each other's runs. The lock is a ``flock`` on ``RUN/.lock``,
which also holds the owner's PID and host for the error message. The kernel releases it when the
process exits in any way (``kill -9`` included), so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from seq2seq.utils.errors import Seq2SeqError

LOCK_NAME = ".lock"
_HELD: set[str] = set()  # the run directories this process holds (resolved)


class RunInUseError(Seq2SeqError):
    """Another process holds the run directory."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock on ``run_dir`` for the ``with`` block; yields the lock file's path.

    Raises :class:`RunInUseError` (naming the directory and the holder's PID) at once if another
    process holds it.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        # O_NOFOLLOW: a symlink planted at RUN/.lock must not make us truncate its target.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RunInUseError(f"{path}: is a symbolic link, not the run's lock file; remove it") from None
        raise RunInUseError(f"{path}: cannot create the run's lock file ({err.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunInUseError(f"{path}: is not a regular file, not the run's lock file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(
                f"{run_dir} is in use by another training ({_holder(path)}); wait for it to end or "
                "choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        _HELD.add(os.path.realpath(run_dir))
        try:
            yield path
        finally:
            _HELD.discard(os.path.realpath(run_dir))
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race with a new owner)


def held_elsewhere(run_dir: str | Path) -> bool:
    """Whether another process holds ``run_dir``'s lock (this process's own lock does not count).

    Asked before writing anything into a run directory outside the lock, e.g. an error line in
    its ``train.log``: the directory of a running training is not ours to write in.
    """
    if os.path.realpath(run_dir) in _HELD:
        return False
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file: no training has used the directory
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock just taken
    return False


def _holder(path: Path) -> str:
    """``PID 123 on host``, as the owner wrote it (it may not have written it yet)."""
    with contextlib.suppress(OSError, ValueError):
        pid, _, host = path.read_text().strip().partition(" ")
        if pid:
            return f"PID {int(pid)}" + (f" on {host}" if host and host != socket.gethostname() else "")
    return "PID unknown"
