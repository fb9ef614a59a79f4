"""Training: teacher forcing with label-smoothed cross-entropy, periodic validation, TensorBoard.

``train(cfg, run_dir)`` is the whole run; ``scripts/train.py`` is a thin Hydra wrapper over it.
The run directory receives ``checkpoints/`` (``step_N.pt`` files, ``latest.pt``, ``best.pt``),
``tensorboard/``, the sentencepiece model(s), ``test.hyp``/``test.scores.json`` and (from
Hydra) ``train.log`` and ``.hydra/``.

Resuming restores everything a checkpoint holds (weights, optimizer, schedule, step, data
position, RNG states, best scores), so an interrupted run continues exactly as if it had not
stopped. Ctrl-C or SIGTERM saves a checkpoint after the current step and exits. Under torchrun
each rank trains on its share of the batches and rank 0 alone validates and writes files (see
:mod:`seq2seq.training.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from seq2seq.config.schema import TrainRunConfig
from seq2seq.data.batching import Batch
from seq2seq.data.streaming import StreamingBatches
from seq2seq.model.seq2seq import Seq2Seq, count_parameters
from seq2seq.training import distributed as D
from seq2seq.training.loss import summed_token_loss
from seq2seq.training.optim import set_lr
from seq2seq.training.progress import NullWriter, StepReport, StopSignals
from seq2seq.training.resume_command import how_to_continue
from seq2seq.training.run import Run, build_run, configure_process, remove_run_temporaries
from seq2seq.training.run_data import RunData, update_groups
from seq2seq.training.run_lock import run_lock
from seq2seq.training.run_state import Progress, rng_state, training_payload
from seq2seq.training.validation import average_best, evaluate_dev, test_best, write_examples
from seq2seq.utils.devices import (
    autocast,
)
from seq2seq.utils.errors import Seq2SeqError

log = logging.getLogger(__name__)


class TrainingError(Seq2SeqError):
    """Training cannot go on (e.g. the loss keeps being NaN)."""


class Interrupted(Seq2SeqError):
    """Stopped by Ctrl-C or SIGTERM after saving a checkpoint."""

    exit_code = 130
    prefix = "stopped"


class Trainer:
    """The training loop over a built :class:`~seq2seq.training.run.Run` (model, optimizer, schedule,
    data order, checkpoints), with its TensorBoard writer; :meth:`build` builds the run too."""

    def __init__(self, run: Run) -> None:
        cfg = self.cfg = run.cfg
        self.run_dir, self.device, self.dist, self.data = run.run_dir, run.device, run.dist, run.data
        self.model, self.optimizer, self.schedule, self.scaler = run.model, run.optimizer, run.schedule, run.scaler
        self.precision, self.batches = run.precision, run.batches
        self.checkpoints, self.progress = run.checkpoints, run.progress
        self.autocast = autocast(self.device, self.precision)
        self.higher_is_better = run.checkpoints.higher_is_better  # train.best_metric=bleu
        self.train_model = self._wrap(self.model)
        self.writer = (
            SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.progress.step + 1)
            if self.dist.is_main
            else NullWriter()
        )
        self._stop_signal: str | None = None  # set by the signal handler, at any moment
        self._stop_agreed = False  # a stop request seen by all ranks in this update's all-reduce
        self._time_up = False  # train.max_minutes reached (agreed by all ranks)
        self._bad_in_a_row = 0
        self.report = StepReport(cfg.train, self.writer, self._epoch_steps(), self.dist.world, self.progress.step)
        log.info(
            "model: %s encoder, %s decoder, %s attention, %.2fM parameters, device %s%s",
            *(cfg.model.encoder, cfg.model.decoder, cfg.model.attention, count_parameters(self.model) / 1e6),
            *(self.device, f", {self.dist.world} ranks" if self.dist.enabled else ""),
        )

    @classmethod
    def build(cls, cfg: TrainRunConfig, run_dir: str | Path, data: RunData | None = None) -> Trainer:
        """A trainer of ``cfg`` in ``run_dir``: :func:`~seq2seq.training.run.build_run`, then the loop's own parts."""
        return cls(build_run(cfg, run_dir, data))

    def _wrap(self, model: Seq2Seq) -> torch.nn.Module:
        if not self.dist.enabled:
            return model
        ids = [self.dist.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # ----------------------------------------------------------------------------------------
    # The loop

    def fit(self) -> dict[str, float]:
        """Train until a step/epoch/time limit or early stopping; validate and test at the end."""
        cfg = self.cfg.train
        self.report.start(self.progress.step, show=cfg.progress and self.dist.is_main)
        last = self.progress.history[-1] if self.progress.history else None
        with StopSignals(self):
            while not self._done():
                epoch_over = True
                for group in self.update_groups(self.progress.epoch, self.progress.batch_in_epoch):
                    loss, tokens = self.train_step(group)
                    self.progress.batch_in_epoch += len(group)
                    if self._stop_agreed:  # not _stop_signal: a signal after the all-reduce waits a step
                        self._save_and_exit()
                    if tokens:
                        lr = self.optimizer.param_groups[0]["lr"]
                        self.report.update(self.progress.step, self.progress.epoch, loss, tokens, lr)
                        if self.progress.step % cfg.valid_every == 0:
                            last = self.validate()
                    if self._done():
                        epoch_over = False
                        break
                if epoch_over:
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
        self.report.bar.close()
        if last is None or last["step"] != self.progress.step:
            last = self.validate()
        if self.dist.is_main:
            if cfg.average_best and cfg.keep_best > 1:
                self.average_best()
            if self.cfg.test.enabled:
                self.evaluate_test()
        self._check_ranks_agree()
        self.writer.close()
        self._log_time_limit()
        return last

    def update_groups(self, epoch: int, start: int) -> Iterator[list[Batch]]:
        """This rank's micro-batches of ``epoch`` after the first ``start`` (see :func:`update_groups`)."""
        return update_groups(self.batches, self.cfg, epoch, start, self.device)

    def _done(self) -> bool:
        cfg = self.cfg.train
        p = self.progress
        return bool(
            (cfg.patience and p.bad_validations >= cfg.patience)
            or (cfg.max_steps and p.step >= cfg.max_steps)
            or (cfg.max_epochs and p.epoch >= cfg.max_epochs)
            or self._time_up
        )

    def _sync_step(self, local_tokens: int) -> int:
        """Agree across ranks on this update's target tokens, a stop request and the time limit."""
        limit = self.cfg.train.max_minutes
        time_up = bool(limit and self.report.elapsed() >= 60 * limit)
        stop = self._stop_signal is not None
        tokens, stops, time_ups = D.all_reduce_sum([local_tokens, stop, time_up], self.dist, self.device)
        if stops and not self._stop_signal:
            self._stop_signal = "stop request on another rank"
        self._stop_agreed = stops > 0
        self._time_up = time_ups > 0
        return int(tokens)

    def train_step(self, batches: list[Batch]) -> tuple[float, int]:
        """One optimizer update from the micro-batches ``batches`` (``train.accumulate`` of them).

        The summed loss of all micro-batches (of all ranks) is divided by their total number of
        target tokens, so K accumulated batches on N ranks give the gradient of one K*N-times
        larger batch. Returns (this rank's summed smoothed loss, target tokens of all ranks).
        A non-finite gradient skips the update (tokens 0); after ``train.max_bad_steps`` such
        updates in a row, training stops without saving.
        """
        self.model.train()
        tokens = self._sync_step(sum(b.n_trg_tokens for b in batches))
        total = 0.0
        for i, batch in enumerate(batches):
            batch = batch.to(self.device)
            last = i == len(batches) - 1
            sync = self.train_model.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
            with sync:
                with self.autocast():
                    logits = self.train_model(batch.src, batch.src_lengths, batch.trg_in, src_mask=batch.src_mask)
                loss = summed_token_loss(logits, batch.trg_out, self.cfg.train.label_smoothing)
                # Backward even for a NaN loss: every rank must join DDP's gradient all-reduce.
                self.scaler.scale(loss * (self.dist.world / tokens)).backward()
            total += float(loss.detach())
        self.scaler.unscale_(self.optimizer)
        limit = self.cfg.train.clip_grad_norm if self.cfg.train.clip_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), limit)  # same on all ranks
        if not torch.isfinite(grad_norm):
            if self.scaler.is_enabled():  # fp16 overflow: the scaler lowers its scale and skips
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                return total, 0
            return self._skip(total, float(grad_norm))
        self._bad_in_a_row = 0
        self.progress.step += 1
        set_lr(self.optimizer, self.schedule.lr(self.progress.step, self.report.expected(self.progress.step)))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.tokens += tokens
        return total, tokens

    def _skip(self, loss: float, grad_norm: float) -> tuple[float, int]:
        self.optimizer.zero_grad(set_to_none=True)
        self._bad_in_a_row += 1
        self.progress.skipped_steps += 1
        where = f"epoch {self.progress.epoch} batch {self.progress.batch_in_epoch}"
        log.warning(
            "skipped a batch (%s): loss %s, gradient norm %s (%d in a row)", where, loss, grad_norm, self._bad_in_a_row
        )
        if self._bad_in_a_row >= self.cfg.train.max_bad_steps:
            latest = self.checkpoints.latest_path
            saved = f"the last checkpoint is {latest}" if latest.exists() else "no checkpoint was written"
            lower = f"{self.cfg.train.lr / 2:g}"
            again = how_to_continue(self.run_dir, {"train.lr": lower}, fallback=f"try train.lr={lower}")
            raise TrainingError(
                f"loss or gradients were NaN/inf for {self._bad_in_a_row} batches in a row after step "
                f"{self.progress.step}; stopped without saving ({saved}); to go on with a lower learning rate, {again}"
            )
        return float("nan"), 0

    def _epoch_steps(self) -> int | None:
        """Updates per epoch (None when streaming or when epochs do not limit training)."""
        if isinstance(self.batches, StreamingBatches) or not self.cfg.train.max_epochs:
            return None
        batches = len(self.batches.rows(0))
        return -(-batches // self.cfg.train.accumulate)

    # ----------------------------------------------------------------------------------------
    # Validation, test, averaging

    def validate(self) -> dict[str, float]:
        """Dev loss, perplexity and greedy BLEU; TensorBoard scalars, heatmaps, text; checkpoints.

        Rank 0 validates; the other ranks wait and then take its decisions (best score, early
        stopping, learning-rate decay), so all ranks keep training in step.
        """
        rngs = D.gather(rng_state(), self.dist)
        decision = None
        if self.dist.is_main:
            metrics = self._validate_main(rngs)
            decision = {"metrics": metrics, "progress": asdict(self.progress), "schedule": self.schedule.state_dict()}
        decision = D.broadcast(decision, self.dist)
        if not self.dist.is_main:  # the data position is the same on every rank
            self.progress = Progress(**decision["progress"])
            self.schedule.load_state_dict(decision["schedule"])
        return decision["metrics"]

    def _validate_main(self, rngs: list[dict[str, Any]]) -> dict[str, float]:
        start = time.perf_counter()
        step = self.progress.step
        metrics, _ = evaluate_dev(self.model, self.cfg, self.data.valid, self.data.tokenizers, self.device)
        metrics = {"step": step, **metrics}
        for name in ("loss", "ppl", "bleu"):
            self.writer.add_scalar(f"valid/{name}", metrics[name], step)
        write_examples(self.writer, self.model, self.cfg, self.data.valid, self.data.tokenizers, self.device, step)
        score = self._score(metrics)
        p = self.progress
        if self.checkpoints.is_improvement(score):
            p.best_score, p.best_step, p.bad_validations = score, step, 0
        else:
            p.bad_validations += 1
        if self.schedule.on_validation(score, self.higher_is_better):
            factor = self.cfg.train.plateau_factor
            log.info("dev %s stopped improving: learning rate scaled by %g", self.cfg.train.best_metric, factor)
        p.history.append(metrics)
        self.checkpoints.save(self.state(metrics, score, rngs), step, score)
        self.writer.flush()
        log.info(
            "validation at step %d: loss %.4f | ppl %.2f | BLEU %.2f | best %s %.2f at step %d | %.1fs",
            *(step, metrics["loss"], metrics["ppl"], metrics["bleu"]),
            *(self.cfg.train.best_metric, p.best_score, p.best_step, time.perf_counter() - start),
        )
        if self.cfg.train.patience and p.bad_validations >= self.cfg.train.patience:
            log.info("early stopping: no improvement in %d validations", p.bad_validations)
        return metrics

    def _score(self, metrics: dict[str, float]) -> float:
        return metrics["bleu"] if self.higher_is_better else metrics["loss"]

    def average_best(self) -> dict[str, float] | None:
        """Average the ``keep_best`` best checkpoints; keep the average (as best.pt) if not worse on dev."""
        return average_best(self.model, self.cfg, self.data, self.checkpoints, self.device, self.progress.step)

    def evaluate_test(self) -> dict[str, dict[str, Any]]:
        """Translate every test split with best.pt (see :func:`seq2seq.training.validation.test_best`)."""
        return test_best(self.model, self.cfg, self.data.tokenizers, self.checkpoints, self.device, self.writer)

    def _check_ranks_agree(self) -> None:
        if not self.dist.enabled:
            return
        if not D.parameters_agree(self.model, self.dist, self.device):
            raise TrainingError("the ranks ended with different parameters (DDP out of sync)")
        log.info("parameters identical on all %d ranks", self.dist.world)

    # ----------------------------------------------------------------------------------------
    # Checkpoints and resuming

    def state(self, metrics: dict[str, float], score: float | None, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything needed to rebuild the model and to continue training exactly."""
        return training_payload(
            self.cfg, self.data.tokenizers, self._parts(), self.progress, self.checkpoints, score, self.dist.world, rngs
        ) | {"metrics": metrics}

    def _parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.schedule, "scaler": self.scaler}

    def request_stop(self, signal_name: str) -> None:
        self._stop_signal = signal_name

    def _save_and_exit(self) -> None:
        self.report.bar.close()
        rngs = D.gather(rng_state(), self.dist)
        if self.dist.is_main:
            metrics = self.progress.history[-1] if self.progress.history else {}
            self.checkpoints.save(self.state(metrics, None, rngs), self.progress.step, None)
        D.barrier(self.dist)
        self.writer.close()
        saved = self.checkpoints.latest_path
        how = how_to_continue(self.run_dir)
        raise Interrupted(f"{self._stop_signal} at step {self.progress.step}: saved {saved}; to continue, {how}")

    def _log_time_limit(self) -> None:
        """After train.max_minutes, the command that trains on from here (the log's last line)."""
        if not (self._time_up and self.dist.is_main):
            return
        minutes, p = self.cfg.train.max_minutes, self.progress
        log.info(
            "time limit train.max_minutes=%g reached at step %d (epoch %d); to train for another %g minutes, %s",
            *(minutes, p.step, p.epoch, minutes, how_to_continue(self.run_dir)),
        )


def train(cfg: TrainRunConfig, run_dir: str | Path, on_locked: Callable[[], None] | None = None) -> dict[str, float]:
    """Run a whole training as configured (the process set up by
    :func:`~seq2seq.training.run.configure_process` first); returns the final validation metrics.

    The process that writes (rank 0 under torchrun) holds the run directory's lock for the whole
    run, so no second training can use the directory meanwhile, and first removes the temporary
    files a killed run left behind. ``on_locked`` runs once the lock is held, before anything
    else is written (the command line writes Hydra's record of the settings there).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    configure_process(cfg)
    if D.launch_rank() != 0:
        return Trainer.build(cfg, run_dir).fit()
    with run_lock(run_dir):
        if on_locked is not None:
            on_locked()
        remove_run_temporaries(run_dir)
        return Trainer.build(cfg, run_dir).fit()
