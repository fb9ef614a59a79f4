"""Reading plain or gzipped inputs, and atomic writes.

Writes go to a temporary name in the same directory, are fsynced and renamed, so a crash (or
``kill -9``) at any moment leaves either the old file or the new one, never a half-written file
under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from seq2seq.errors import DataError

# What reading a damaged .gz file raises: a bad header, a cut-off stream, corrupt deflate data.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def open_input(path: str | os.PathLike[str], mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for reading; a name ending in ``.gz`` is decompressed on the fly."""
    opener = gzip.open if str(path).endswith(".gz") else open
    return opener(path, mode, **kwargs)


def corrupt_gzip(path: str | os.PathLike[str], err: Exception) -> DataError:
    """The one-line error for one of :data:`GZIP_ERRORS` raised while reading ``path``."""
    return DataError(f"{path}: corrupt or truncated gzip file ({err})")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on clean exit, fsync it and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_save(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Atomically write a binary file through ``write(handle)`` (e.g. ``torch.save``)."""
    with atomic_open(path, "wb") as handle:
        write(handle)


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else the umask's default for a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
