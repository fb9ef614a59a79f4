"""Issue 14, item 5: input= and seq2seq-score take any readable path (pipes, /dev/stdin), not only files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from seq2seq.cli.commands import translate_main
from seq2seq.inspect.metrics import score_files
from seq2seq.utils.errors import DataError
from seq2seq.utils.files import check_readable
from tests.conftest import REPO, run_main


def _feed(fifo, text: str) -> threading.Thread:
    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write(text)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_score_reads_a_named_pipe(tmp_path):
    fifo = tmp_path / "hyp.fifo"
    os.mkfifo(fifo)
    ref = tmp_path / "ref.txt"
    ref.write_text("a b c d\ne f g h\n")
    writer = _feed(fifo, "a b c d\ne f g h\n")
    result = score_files(str(fifo), [str(ref)])
    writer.join(5)
    assert result["bleu"]["score"] == pytest.approx(100.0)


def test_translate_reads_dev_stdin_and_a_pipe(quick_checkpoint, tmp_path):
    script = REPO / "scripts" / "translate.py"
    args = [sys.executable, str(script), f"checkpoint={quick_checkpoint}", "input=/dev/stdin", "beam_size=1"]
    result = subprocess.run(args, input="a b c\n\nd e\n", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split("\n")) == 4 and result.stdout.split("\n")[1] == ""  # 3 lines, blank kept
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = _feed(fifo, "a b c\nd e\n")
    piped = run_main(translate_main, f"checkpoint={quick_checkpoint}", f"input={fifo}", "beam_size=1")  # in process
    writer.join(5)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.split("\n")[0] == result.stdout.split("\n")[0]


@pytest.mark.parametrize("kind, message", [("missing", "file not found"), ("directory", "is a directory")])
def test_missing_paths_and_directories_are_still_refused(tmp_path, kind, message):
    path = tmp_path / "nothing" if kind == "missing" else tmp_path
    with pytest.raises(DataError, match=f"^input={path}: {message}"):
        check_readable(path, "input")
    with pytest.raises(DataError, match=message):
        score_files(str(path), [str(path)])
