"""Reading plain or gzipped inputs, and atomic writes.

Writes to a regular file go to a temporary name in the same directory, are fsynced and renamed,
so a crash (or ``kill -9``) at any moment leaves either the old file or the new one, never a
half-written file under the final name. Files we are given are not ours to replace: a symlink is
resolved and its target written atomically (the link stays), and a device, FIFO or socket (and
any name under ``/dev`` or ``/proc``, such as ``/dev/stdout``) is written through. A directory, a
name under a non-directory or a location we may not write is a one-line :class:`OutputError`,
and so is a full disk ("no space left on device").
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from seq2seq.utils.errors import DataError, OutputError, Seq2SeqError

# What reading a damaged .gz file raises: a bad header, a cut-off stream, corrupt deflate data.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
# Write errors that mean the disk (or the user's quota) is full.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Names the kernel makes up (``/dev/stdout``, ``/proc/self/fd/1``): never replaced, written through.
KERNEL_DIRS = ("/dev/", "/proc/")


def open_input(path: str | os.PathLike[str], mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for reading; a name ending in ``.gz`` is decompressed on the fly."""
    opener = gzip.open if str(path).endswith(".gz") else open
    return opener(path, mode, **kwargs)


def check_readable(path: str | os.PathLike[str], what: str | None = None) -> None:
    """A one-line :class:`DataError` unless ``path`` can be opened for reading.

    Any readable path is fine: regular files, ``/dev/stdin``, named pipes and ``<(command)``
    process substitutions (``/dev/fd/N``); a missing path or a directory is refused.
    """
    path = Path(path)
    name = f"{what}={path}" if what else str(path)
    if not path.exists():
        raise DataError(f"{name}: file not found")
    if path.is_dir():
        raise DataError(f"{name}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{name}: not readable (permission denied)")


def corrupt_gzip(path: str | os.PathLike[str], err: Exception) -> DataError:
    """The one-line error for one of :data:`GZIP_ERRORS` raised while reading ``path``."""
    return DataError(f"{path}: corrupt or truncated gzip file ({err})")


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, own_name: bool = False, **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing; a regular file is replaced atomically on clean exit.

    For a regular file (or a new one), the handle is a temporary file next to the real target
    (symlinks resolved) that is fsynced and renamed over it when the ``with`` block ends; on an
    error it is deleted and the old file stays. Devices, FIFOs and kernel names are opened and
    written directly. The temporary is always a new ``mkstemp`` (``O_EXCL``) name, so nothing
    planted in the directory is followed. ``own_name=True`` is for a name this toolkit chose in
    a directory it was given (``heatmaps=DIR/line_00001.png``): whatever is at that name (a
    symlink included) is replaced, never followed or written through. A failure to write is a
    one-line :class:`OutputError`.
    """
    path = Path(path)
    real = _own_target(path) if own_name else output_target(path, str(path))
    tmp: str | None = None
    with _write_errors(path, ours=True):
        if real is None:
            handle = open(path, mode, **kwargs)  # noqa: SIM115 (closed below)
        else:
            handle, tmp = _open_temporary(real, mode, kwargs)
    try:
        with _write_errors(path, ours=False):
            yield handle
        with _write_errors(path, ours=True):
            handle.flush()
            if tmp is not None:
                os.fsync(handle.fileno())
            handle.close()
            if tmp is not None:
                os.replace(tmp, real)  # type: ignore[arg-type]
    except BaseException:
        with contextlib.suppress(OSError):
            handle.close()
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    if real is not None:
        _fsync_dir(real.parent)


def _own_target(path: Path) -> Path:
    """``path`` made absolute with its directory resolved but its own name kept (not followed)."""
    parent = Path(os.path.realpath(path.parent))
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: cannot write there ({parent} is not a directory)")
    return parent / path.name


def _open_temporary(real: Path, mode: str, kwargs: dict[str, Any]) -> tuple[IO[Any], str]:
    """A new temporary file next to ``real``, with the mode a plain ``open()`` of ``real`` would give."""
    real.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        os.chmod(tmp, _file_mode(real))  # mkstemp makes 0600
        return os.fdopen(fd, mode, **kwargs), tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        os.unlink(tmp)
        raise


def check_output(path: str | os.PathLike[str], name: str) -> None:
    """Fail at start-up, before any work, if the file ``name=path`` could not be written."""
    output_target(Path(path), f"{name}={path}")


def check_output_dir(path: str | os.PathLike[str], name: str) -> None:
    """Fail at start-up, before any work, if ``name=path`` cannot be (or become) a directory we write in."""
    path = Path(path)
    label = f"{name}={path}"
    info = _stat_output(path, label)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{label}: is a file, not a directory; give a directory for the {name}")
    existing = _existing_directory(path if info is not None else path.parent, label)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: cannot write there (no permission to create files in {existing})")


def check_distinct_outputs(
    outputs: dict[str, str | os.PathLike[str] | None],
    inputs: dict[str, str | os.PathLike[str] | None] | None = None,
) -> None:
    """Refuse, in one line, two outputs that are the same file, or an output that is an input.

    ``outputs`` and ``inputs`` map option names (``output``, ``checkpoint``) to paths; None is
    skipped. Paths are compared resolved (symlinks followed) and, where both exist, with
    :func:`os.path.samefile` (hard links). An output inside an input directory (a CTranslate2
    export) is refused too. Devices, FIFOs and kernel names (``/dev/stdout``) are written
    through, never replaced, so they may be shared.
    """
    named = [(name, Path(path)) for name, path in outputs.items() if path]
    named = [(name, path) for name, path in named if not _written_through(path)]
    for i, (name, path) in enumerate(named):
        for other, other_path in named[:i]:
            if same_file(path, other_path):
                raise OutputError(f"{name}={path} and {other}={other_path} are the same file; give each its own path")
        for other, source in (inputs or {}).items():
            if source and (same_file(path, Path(source)) or _inside(path, Path(source))):
                what = "is" if same_file(path, Path(source)) else "lies inside"
                raise OutputError(f"{name}={path} {what} {other}={source}: writing it would destroy the {other}")


def _written_through(path: Path) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode) or _is_kernel_name(path)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or hard links to one file."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return False


def _inside(path: Path, directory: Path) -> bool:
    """True if ``path`` (resolved) lies under the existing directory ``directory``."""
    if not directory.is_dir():
        return False
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(directory))


def output_target(path: Path, label: str) -> Path | None:
    """Where to write ``path`` atomically (the real file, symlinks resolved), or None to write through.

    Raises a one-line :class:`OutputError` (starting with ``label``) if ``path`` is a directory,
    lies under a non-directory, or may not be written.
    """
    info = _stat_output(path, label)  # follows symlinks
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{label}: is a directory; give a file name")
    if info is not None and (not stat.S_ISREG(info.st_mode) or _is_kernel_name(path)):
        if not os.access(path, os.W_OK):
            raise OutputError(f"{label}: cannot write there (permission denied)")
        return None  # a device, FIFO or socket, or what /dev/stdout points to: not ours to replace
    real = Path(os.path.realpath(path))
    if info is not None and not (real.exists() and os.path.samefile(real, path)):
        return None  # a name the kernel resolves (e.g. a deleted file held open): write through
    if info is not None and not os.access(real, os.W_OK):
        raise OutputError(f"{label}: cannot write there (permission denied)")
    parent = _existing_directory(real.parent, label)
    if not os.access(parent, os.W_OK | os.X_OK):
        if info is not None:
            return None  # a writable file in a read-only directory: written in place, not atomically
        raise OutputError(f"{label}: cannot write there (no permission to create files in {parent})")
    return real


def _stat_output(path: Path, label: str) -> os.stat_result | None:
    """``os.stat(path)`` (None: nothing there yet); a path that cannot be reached is one line."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:  # a parent that is a file, a symlink loop, no search permission
        raise OutputError(f"{label}: cannot write there ({err.strerror})") from None


def _existing_directory(path: Path, label: str) -> Path:
    """``path`` or its nearest existing ancestor, which must be a directory (files are made in it)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir():
        raise OutputError(f"{label}: cannot write there ({path} is not a directory)")
    return path


def _is_kernel_name(path: Path) -> bool:
    return os.path.abspath(path).startswith(KERNEL_DIRS)


def os_errno(err: BaseException) -> int | None:
    """The errno of ``err`` or of the first :class:`OSError` it was raised from or during.

    ``torch.save`` reports a full disk as a ``RuntimeError`` raised while handling the
    ``OSError``, so the chain is searched.
    """
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def _write_errors(path: Path, ours: bool) -> Iterator[None]:
    """Turn a failure to write ``path`` into one line: a full disk always, any OSError if ``ours``.

    ``ours`` is False around the caller's own code, whose other OSErrors may concern other files.
    """
    try:
        yield
    except Seq2SeqError:
        raise
    except Exception as err:
        code = os_errno(err)
        if code in NO_SPACE:
            raise OutputError(f"{path}: no space left on device (the file was not written)") from None
        if ours and isinstance(err, OSError):
            raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
        raise


def remove_stale_temporaries(directory: str | os.PathLike[str], names: str) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files a killed writer left in ``directory``, for NAME matching ``names``.

    Only safe while no other process writes there (hold the run's lock). Returns the files removed.
    """
    pattern = re.compile(rf"\.(?:{names})\.[^/]+\.tmp")
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in Path(directory).iterdir():
            if pattern.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


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
