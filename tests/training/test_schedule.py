"""Learning-rate schedules, above all ``linear``: warm-up, then a decay that ends with the budget."""

import math

import pytest

from seq2seq.config.schema import Scheduler, TrainConfig
from seq2seq.training.optim import LRSchedule
from seq2seq.training.trainer import Trainer
from tests.conftest import toy_train_config


def _schedule(kind: Scheduler, **kw) -> LRSchedule:
    return LRSchedule(TrainConfig(scheduler=kind, lr=1e-3, warmup_steps=100, min_lr=1e-5, **kw))


def test_linear_warms_up_then_decays_to_min_lr_at_the_expected_end():
    s = _schedule(Scheduler.linear)
    assert s.lr(50, end=1100) == pytest.approx(5e-4)
    assert s.lr(100, end=1100) == pytest.approx(1e-3)
    assert s.lr(600, end=1100) == pytest.approx(5e-4)  # half way from warm-up to the end
    assert s.lr(1100, end=1100) == pytest.approx(1e-5)  # floored at min_lr
    assert s.lr(1500, end=1100) == pytest.approx(1e-5)


def test_linear_without_a_known_end_holds_the_peak():
    s = _schedule(Scheduler.linear)
    assert s.lr(500, end=None) == pytest.approx(1e-3)


def test_other_schedules_ignore_the_end():
    inv = _schedule(Scheduler.inverse_sqrt)
    assert inv.lr(400, end=500) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    assert _schedule(Scheduler.constant).lr(400, end=500) == pytest.approx(1e-3)


def test_linear_training_ends_at_min_lr_on_max_steps(tmp_path):
    """In a real (toy) run the rate falls every step after warm-up and reaches the floor exactly
    at train.max_steps."""
    cfg = toy_train_config(scheduler=Scheduler.linear, warmup_steps=5, max_steps=30, min_lr=1e-6)
    trainer = Trainer.build(cfg, tmp_path / "run")
    rates = []
    batches = iter(b for group in trainer.update_groups(0, 0) for b in group)
    for _ in range(30):
        trainer.train_step([next(batches)])
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    assert rates[4] == pytest.approx(cfg.train.lr)
    assert all(a > b for a, b in zip(rates[5:], rates[6:]))
    assert rates[-1] == pytest.approx(1e-6)
