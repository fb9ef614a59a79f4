"""Files we write are ours, files we are given are not: atomic replace only for regular files."""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seq2seq.cli.commands import translate_main
from seq2seq.cli.translate import run_translate
from seq2seq.config.schema import TranslateConfig
from seq2seq.utils.errors import OutputError
from seq2seq.utils.files import atomic_open, atomic_write_text, check_output
from tests.conftest import run_main, write_lines


def read_fifo_while(proc: subprocess.Popen, fifo: Path, timeout: float = 120) -> bytes:
    """Everything written into ``fifo`` while ``proc`` runs (the reader end is opened first)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536) if ready else b""
            data += chunk
            if proc.poll() is not None and not chunk:
                return data + os.read(fd, 65536)
    finally:
        os.close(fd)
    raise AssertionError("the writer did not finish")


def test_symlink_is_written_through(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "sub" / "made.txt")
    atomic_write_text(link, "x\n")
    assert link.is_symlink() and (tmp_path / "sub" / "made.txt").read_text() == "x\n"


def test_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = "from seq2seq.utils.files import atomic_write_text; import sys; atomic_write_text(sys.argv[1], 'through\\n')"
    proc = subprocess.Popen([sys.executable, "-c", code, str(fifo)], stderr=subprocess.PIPE, text=True)
    data = read_fifo_while(proc, fifo)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert data == b"through\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not a regular file


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_character_device_is_written_through_not_replaced(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    link = tmp_path / "stdout"
    link.symlink_to(null)
    for path in (null, link):
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write("discarded\n")
    assert stat.S_ISCHR(null.stat().st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "stdout"]


def test_dev_stdout_is_written_through(tmp_path):
    """``/dev/stdout`` names what the shell opened: written through, here into a pipe."""
    code = "from seq2seq.utils.files import atomic_write_text; atomic_write_text('/dev/stdout', 'to the pipe\\n')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "to the pipe\n", result.stderr


@pytest.mark.parametrize("where", ["directory", "under-a-file"])
def test_unwritable_destinations_are_one_line_errors(tmp_path, where):
    (tmp_path / "file").write_text("keep\n")
    path = tmp_path if where == "directory" else tmp_path / "file" / "out.txt"
    message = "is a directory" if where == "directory" else "cannot write there"
    with pytest.raises(OutputError, match=message) as err:
        check_output(path, "output")
    assert "\n" not in str(err.value) and str(err.value).startswith(f"output={path}: ")
    with pytest.raises(OutputError, match=message), atomic_open(path) as handle:
        handle.write("never\n")
    assert (tmp_path / "file").read_text() == "keep\n"


def test_translate_checks_the_output_before_any_work(tmp_path):
    """output=DIR fails before the checkpoint is even read (here it does not exist)."""
    cfg = TranslateConfig(checkpoint=str(tmp_path / "missing.pt"), output=str(tmp_path))
    with pytest.raises(OutputError, match=rf"^output={tmp_path}: is a directory"):
        run_translate(cfg)
    cfg = TranslateConfig(checkpoint=str(tmp_path / "missing.pt"), alignments=str(tmp_path))
    with pytest.raises(OutputError, match=rf"^alignments={tmp_path}: is a directory"):
        run_translate(cfg)


def read_fifo_in_background(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    """A thread that opens ``fifo`` for reading (so a writer's open does not block) and reads it to the end."""
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, received


def test_translate_into_a_fifo_a_symlink_and_a_directory(quick_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.txt", ["a b c", "", "f e d"])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = [f"checkpoint={quick_checkpoint}", f"input={source}", "beam_size=1"]
    reader, received = read_fifo_in_background(fifo)
    result = run_main(translate_main, *args, f"output={fifo}")
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    (data,) = received
    assert data.decode().count("\n") == 3
    assert stat.S_ISFIFO(fifo.stat().st_mode)

    target = tmp_path / "real.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    result = run_main(translate_main, *args, f"output={link}")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and target.read_text() == data.decode()

    result = run_main(translate_main, *args, f"output={tmp_path}")
    assert result.returncode == 1 and result.stderr == f"error: output={tmp_path}: is a directory; give a file name\n"
