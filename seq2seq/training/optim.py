"""Optimizers and learning-rate schedules.

``lr(step)`` for ``train.scheduler``:

* ``constant``:     ``lr * min(1, step / warmup)``
* ``inverse_sqrt``: ``lr * min(step / warmup, sqrt(warmup / step))`` (Vaswani et al., 2017,
  eq. 3, with the peak at ``train.lr``)
* ``plateau``:      ``lr * min(1, step / warmup) * factor^k``, ``k`` = number of times the dev
  score failed to improve for ``plateau_patience`` validations in a row
* ``linear``:       warm-up as ``constant``, then ``lr * (end - step) / (end - warmup)``, where
  ``end`` is the step at which training is expected to stop (``train.max_steps``,
  ``max_epochs`` or the steps the current rate fits into ``max_minutes``, whichever comes
  first), so the decay ends with the budget (Li et al., 2020, "Budgeted Training: Rethinking
  Deep Neural Network Training Under Resource Constraints"). A resumed run decays again over
  its own new budget.

never below ``train.min_lr`` once warm-up is over.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from seq2seq.config.schema import Optimizer, Scheduler, TrainConfig
from seq2seq.utils.errors import ConfigError


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {cfg.lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = {Optimizer.adam: torch.optim.Adam, Optimizer.adamw: torch.optim.AdamW}[cfg.optimizer]
    settings = dict(lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    try:
        # One fused kernel per parameter tensor (CPU since torch 2.4, CUDA) instead of a dozen
        # elementwise ops each; the same update up to rounding.
        return optimizer(params, **settings, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the kernel
        return optimizer(params, **settings)


class LRSchedule:
    """The learning rate as a function of the step and of the dev scores seen so far."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.decay = 1.0  # plateau multiplier
        self.best: float | None = None
        self.bad = 0

    def lr(self, step: int, end: int | None = None) -> float:
        """The rate for ``step``; ``end`` is the expected last step (``linear`` only; None: unknown)."""
        cfg = self.cfg
        warmup = max(cfg.warmup_steps, 0)
        step = max(step, 1)
        if cfg.scheduler == Scheduler.inverse_sqrt:
            warm = max(warmup, 1)
            factor = min(step / warm, math.sqrt(warm / step))
        else:
            factor = min(1.0, step / warmup) if warmup else 1.0
            factor *= self.decay
        if cfg.scheduler == Scheduler.linear and end is not None and step > warmup:
            factor = max(end - step, 0) / max(end - warmup, 1)
        lr = cfg.lr * factor
        return lr if step < warmup else max(lr, cfg.min_lr)

    def on_validation(self, score: float, higher_is_better: bool) -> bool:
        """Record a dev score; for ``plateau``, decay after ``plateau_patience`` bad ones. True if decayed."""
        improved = self.best is None or (score > self.best if higher_is_better else score < self.best)
        if improved:
            self.best, self.bad = score, 0
            return False
        self.bad += 1
        if self.cfg.scheduler == Scheduler.plateau and self.bad >= self.cfg.plateau_patience:
            self.decay *= self.cfg.plateau_factor
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.best, self.bad = float(state["decay"]), state["best"], int(state["bad"])


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore the saved moments and step counts, but keep the hyperparameters built from the config.

    ``load_state_dict`` alone would bring back the saved betas, weight decay and even Adam vs
    AdamW (``decoupled_weight_decay``), silently overriding a changed config.
    """
    configured = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, settings in zip(optimizer.param_groups, configured):
        group.update(settings)
        if group.get("fused"):  # a state saved unfused keeps its step counts where the kernel cannot read them
            for param in group["params"]:
                step = optimizer.state.get(param, {}).get("step")
                if torch.is_tensor(step):
                    optimizer.state[param]["step"] = step.to(param.device, torch.float32)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
