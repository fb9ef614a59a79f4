"""Following a training run: how far it will go (the progress bar's total, for an ETA), the step
log lines and train/* scalars, and the Ctrl-C/SIGTERM handler that asks it to stop."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from tqdm import tqdm

from seq2seq.config.schema import TrainConfig

log = logging.getLogger(__name__)


def expected_steps(
    step: int,
    *,
    max_steps: int | None,
    max_epochs: int | None,
    steps_per_epoch: int | None,
    max_minutes: float | None,
    elapsed: float,
    steps_done: int,
) -> int | None:
    """The step at which training will stop, as far as it can be told now (None: unknown).

    The smallest of ``max_steps``; ``max_epochs * steps_per_epoch`` (unknown when streaming);
    and for ``max_minutes``, ``step`` plus the steps the current rate (``steps_done`` in
    ``elapsed`` seconds) fits into the minutes left. Early stopping cannot be foreseen.
    """
    limits = []
    if max_steps:
        limits.append(max_steps)
    if max_epochs and steps_per_epoch:
        limits.append(max_epochs * steps_per_epoch)
    if max_minutes and steps_done > 0 and elapsed > 0:
        left = max(60.0 * max_minutes - elapsed, 0.0)
        limits.append(step + round(steps_done / elapsed * left))
    return max(min(limits), step) if limits else None


class StopSignals:
    """While training, Ctrl-C/SIGTERM ask the trainer to save and stop after the current step.

    A second Ctrl-C interrupts at once.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.trainer._stop_signal and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("%s received: saving a checkpoint after this step (Ctrl-C again to stop at once)", name)
        self.trainer.request_stop(name)

    def __enter__(self) -> StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class NullWriter:
    """Stands in for the TensorBoard writer on ranks other than 0."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Window:
    """Loss and throughput since the last log line."""

    def __init__(self) -> None:
        self.loss, self.tokens, self.start = 0.0, 0, time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.tokens += tokens

    def flush(self, world: int = 1) -> tuple[float, float]:
        """(loss per token, tokens per second); ``tokens`` count all ranks, ``loss`` this rank's."""
        now = time.perf_counter()
        result = (self.loss * world / max(self.tokens, 1), self.tokens / max(now - self.start, 1e-9))
        self.loss, self.tokens, self.start = 0.0, 0, now
        return result


class StepReport:
    """The progress bar (steps out of those the limits allow, with an ETA), a log line and the
    ``train/*`` scalars every ``train.log_every`` updates, and the clock of ``train.max_minutes``.

    ``steps_per_epoch`` is None when streaming (epochs then do not bound the total).
    """

    def __init__(self, cfg: TrainConfig, writer: Any, steps_per_epoch: int | None, world: int, step: int) -> None:
        self.cfg, self.writer, self.steps_per_epoch, self.world = cfg, writer, steps_per_epoch, world
        self.window = Window()
        self.started = time.perf_counter()
        self.first_step = step  # steps before this process do not count in its rate
        self.bar = tqdm(disable=True)

    def start(self, step: int, show: bool) -> tqdm:
        """Start the clock and the bar (``show``: visible) at ``step``."""
        self.window, self.started, self.first_step = Window(), time.perf_counter(), step
        self.bar = tqdm(total=self.expected(step), initial=step, disable=not show or None, unit="step")
        return self.bar

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def expected(self, step: int) -> int | None:
        """The step training will stop at, as far as it can be told now (see :func:`expected_steps`)."""
        t = self.cfg
        return expected_steps(
            step,
            max_steps=t.max_steps,
            max_epochs=t.max_epochs,
            steps_per_epoch=self.steps_per_epoch,
            max_minutes=t.max_minutes,
            elapsed=self.elapsed(),
            steps_done=step - self.first_step,
        )

    def update(self, step: int, epoch: int, loss: float, tokens: int, lr: float) -> None:
        """One finished update: ``loss`` summed over its ``tokens`` (all ranks' tokens)."""
        self.window.add(loss, tokens)
        if self.cfg.max_minutes:
            self.bar.total = self.expected(step)
        self.bar.update(1)
        if step % self.cfg.log_every and step != 1:
            return
        loss, speed = self.window.flush(self.world)
        for name, value in (("loss", loss), ("lr", lr), ("tokens_per_sec", speed)):
            self.writer.add_scalar(f"train/{name}", value, step)
        self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{speed:.0f}", lr=f"{lr:.2e}", epoch=epoch)
        log.info("step %d | epoch %d | loss %.4f | %.0f tok/s | lr %.2e", step, epoch, loss, speed, lr)
