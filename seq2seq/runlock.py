"""One process owns a run directory: an exclusive lock on ``RUN/.lock`` for the whole training.

Two trainings started on the same directory (the same ``hydra.run.dir``, or Hydra's default
name when both start in the same second) would write into the same ``checkpoints/``, prune
each other's files and "resume" each other's runs. The lock is a ``flock`` on ``RUN/.lock``,
which also holds the owner's PID and host for the error message. The kernel releases it when the
process exits in any way (``kill -9`` included), so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from seq2seq.errors import Seq2SeqError

LOCK_NAME = ".lock"


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
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise RunInUseError(f"{path}: cannot create the run's lock file ({err.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(
                f"{run_dir} is in use by another training ({_holder(path)}); wait for it to end or "
                "choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race with a new owner)


def _holder(path: Path) -> str:
    """``PID 123 on host``, as the owner wrote it (it may not have written it yet)."""
    with contextlib.suppress(OSError, ValueError):
        pid, _, host = path.read_text().strip().partition(" ")
        if pid:
            return f"PID {int(pid)}" + (f" on {host}" if host and host != socket.gethostname() else "")
    return "PID unknown"
