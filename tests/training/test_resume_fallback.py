"""A damaged ``latest.pt`` does not end a run: resuming falls back to the newest checkpoint that loads."""

from __future__ import annotations

import logging
import os

import pytest

from seq2seq.checkpoint.store import load_checkpoint
from seq2seq.training.trainer import Trainer, train
from seq2seq.utils.errors import CheckpointError
from tests.conftest import small_toy_config


@pytest.fixture
def run(tmp_path):
    """A run directory after 4 steps, saved at steps 2 and 4: ``latest.pt`` is a hard link to
    ``step_4.pt`` (and so is ``best.pt`` when step 4 scored best)."""
    train(small_toy_config(max_steps=4, valid_every=2, keep_best=2), tmp_path)
    return tmp_path


def truncate(path, size: int = 1000) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def test_a_truncated_latest_resumes_from_the_newest_step_that_loads(run, caplog):
    checkpoints = run / "checkpoints"
    assert os.path.samefile(checkpoints / "latest.pt", checkpoints / "step_4.pt")  # the hard link
    truncate(checkpoints / "latest.pt")  # damages step_4.pt too
    with caplog.at_level(logging.INFO):
        trainer = Trainer.build(small_toy_config(max_steps=6, valid_every=2, keep_best=2), run)
    assert trainer.progress.step == 2
    assert f"{checkpoints / 'latest.pt'}: not a readable checkpoint (truncated or corrupt)" in caplog.text
    assert f"resuming from {checkpoints / 'step_2.pt'}, the newest checkpoint that loads" in caplog.text
    # latest.pt (and best.pt, if it was the damaged file) now name intact checkpoints
    assert os.path.samefile(checkpoints / "latest.pt", checkpoints / "step_2.pt")
    assert load_checkpoint(checkpoints / "best.pt")["progress"]["step"] == 2
    trainer.fit()  # and the run trains on to its end
    assert load_checkpoint(checkpoints / "latest.pt")["progress"]["step"] == 6


def test_when_no_checkpoint_loads_the_error_is_one_line(run):
    for path in (run / "checkpoints").glob("step_*.pt"):
        truncate(path)
    with pytest.raises(CheckpointError) as err:
        Trainer.build(small_toy_config(max_steps=6, valid_every=2, keep_best=2), run)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{run / 'checkpoints'}: no checkpoint loads (2 tried); the newest: ")


def test_a_deleted_sentencepiece_model_is_restored_from_the_checkpoint_that_loads(run, caplog):
    spm = run / "spm.model"
    original = spm.read_bytes()
    spm.unlink()
    truncate(run / "checkpoints" / "latest.pt")
    with caplog.at_level(logging.INFO):
        trainer = Trainer.build(small_toy_config(max_steps=6, valid_every=2, keep_best=2), run)
    assert spm.read_bytes() == original and trainer.progress.step == 2
    assert f"restored {spm} from {run / 'checkpoints' / 'step_2.pt'}" in caplog.text
