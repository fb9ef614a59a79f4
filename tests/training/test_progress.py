"""The progress bar knows its total (so it shows an ETA) for step, epoch and time limits."""

from __future__ import annotations

import math

from seq2seq.training.progress import expected_steps
from seq2seq.training.trainer import Trainer
from tests.conftest import toy_train_config


def test_expected_steps_takes_the_first_limit_to_be_reached():
    base = dict(max_steps=None, max_epochs=None, steps_per_epoch=None, max_minutes=None, elapsed=0.0, steps_done=0)
    assert expected_steps(0, **base) is None
    assert expected_steps(0, **{**base, "max_steps": 500}) == 500
    assert expected_steps(0, **{**base, "max_epochs": 3, "steps_per_epoch": 40}) == 120
    assert expected_steps(0, **{**base, "max_epochs": 3}) is None  # a stream: epoch length unknown
    # 10 steps in 30 s of a 2-minute budget: 90 s left at 1/3 step/s -> 30 more steps
    timed = {**base, "max_minutes": 2.0, "elapsed": 30.0, "steps_done": 10}
    assert expected_steps(10, **timed) == 40
    assert expected_steps(10, **{**timed, "max_steps": 25}) == 25
    assert expected_steps(10, **{**timed, "elapsed": 500.0}) == 10  # over time: never below the step reached


def test_epoch_limit_gives_the_bar_a_total(tmp_path):
    trainer = Trainer.build(toy_train_config(max_steps=None, max_epochs=3, accumulate=2), tmp_path)
    bar = trainer.report.start(trainer.progress.step, show=True)
    batches = len(trainer.batches.rows(0))
    assert bar.total == 3 * math.ceil(batches / 2)
    bar.close()
