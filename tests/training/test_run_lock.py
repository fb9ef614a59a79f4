"""One process owns a run directory: a second training on it stops at once with one line."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seq2seq.training.run_lock import RunInUseError, run_lock
from tests.conftest import SMALL_TOY_CLI, toy_train_cli, toy_train_process

TOY_CLI = [*SMALL_TOY_CLI, "train.log_every=10", "train.progress=false"]


train_process = functools.partial(toy_train_process, TOY_CLI)  # scripts/train.py in a new process
train_cli = functools.partial(toy_train_cli, TOY_CLI)  # the same command, in this process


def wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear in {path}")


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
    with run_lock(tmp_path) as path:
        assert path.read_text().split()[0] == str(os.getpid())
        with pytest.raises(RunInUseError) as err, run_lock(tmp_path):
            pass
        assert str(err.value).startswith(f"{tmp_path} is in use by another training (PID {os.getpid()})")
        assert "\n" not in str(err.value)
    with run_lock(tmp_path):  # released on exit
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ValueError), run_lock(tmp_path):
        raise ValueError("boom")
    with run_lock(tmp_path):
        pass


def test_a_lock_of_a_killed_process_does_not_block(tmp_path):
    code = (
        "import sys, time\nfrom seq2seq.training.run_lock import run_lock\n"
        "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=f"PID {proc.pid}"), run_lock(tmp_path):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with run_lock(tmp_path):  # the kernel released the dead process's lock
        pass


def test_two_trainings_on_one_run_directory(tmp_path):
    """The second stops at once with one line naming the directory and the first's PID, and
    writes nothing there (neither Hydra's record of its settings nor a line in train.log); the
    first goes on undisturbed; after the first is killed, the directory is free again."""
    run = tmp_path / "run"
    run.mkdir()
    first = train_process(run, "train.max_steps=100000", "train.valid_every=20")
    try:
        wait_for(run / "train.log", "validation at step 20", first)
        record = {name: (run / ".hydra" / name).read_text() for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}
        assert "train.valid_every=20" in record["overrides.yaml"]
        log_size = (run / "train.log").stat().st_size
        second = train_cli(run, "train.max_steps=30", "train.valid_every=10")
        assert second.returncode == 1, second.stderr[-2000:]
        assert second.stderr.splitlines() == [
            f"error: {run} is in use by another training (PID {first.pid}); wait for it to end or choose "
            "another hydra.run.dir"
        ]
        assert record == {name: (run / ".hydra" / name).read_text() for name in record}
        assert "in use by another training" not in (run / "train.log").read_text()
        assert (run / "train.log").stat().st_size >= log_size
        assert first.poll() is None  # still training
        wait_for(run / "train.log", "validation at step 40", first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    third = train_cli(run, "train.max_steps=45", "train.valid_every=5")  # resumes the killed run
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resumed from" in (run / "train.log").read_text()


def test_stale_temporaries_of_the_run_are_removed_and_nothing_else(tmp_path):
    from seq2seq.training.run import remove_run_temporaries

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    stale = [
        checkpoints / ".step_400.pt.abc123.tmp",
        checkpoints / ".latest.pt.4242.tmp",
        tmp_path / ".test.hyp.x1.tmp",
    ]
    kept = [
        checkpoints / "step_400.pt",
        checkpoints / "step_5000.backup.pt",
        checkpoints / ".notes.tmp",
        tmp_path / ".mine.tmp",
        tmp_path / "test.hyp",
    ]
    for path in stale + kept:
        path.write_text("x")
    remove_run_temporaries(tmp_path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
