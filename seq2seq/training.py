"""Training: teacher forcing with label-smoothed cross-entropy, periodic validation, TensorBoard.

``train(cfg, run_dir)`` is the whole run; ``scripts/train.py`` is a thin Hydra wrapper over it.
The run directory receives ``checkpoints/`` (``step_N.pt`` files, ``latest.pt``, ``best.pt``),
``tensorboard/``, the sentencepiece model(s), ``test.hyp``/``test.scores.json`` and (from
Hydra) ``train.log`` and ``.hydra/``.

Resuming restores everything a checkpoint holds (weights, optimizer, schedule, step, data
position, RNG states, best scores), so an interrupted run continues exactly as if it had not
stopped. Ctrl-C or SIGTERM saves a checkpoint after the current step and exits.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from seq2seq.batching import Batch, TokenBatchSampler, TokenizedCorpus
from seq2seq.checkpoint import CheckpointManager, average_checkpoints, load_checkpoint, load_weights, save_checkpoint
from seq2seq.config import Metric, TrainRunConfig, differences, to_container
from seq2seq.data import encode_split, load_split
from seq2seq.errors import ConfigError, MissingSplitError, Seq2SeqError
from seq2seq.evaluation import SplitData, evaluate_dev, evaluate_test, write_examples
from seq2seq.files import atomic_write_text
from seq2seq.model import Seq2Seq, build_model, count_parameters
from seq2seq.optim import LRSchedule, build_optimizer, set_lr
from seq2seq.runtime import autocast, resolve_device, seed_everything, set_threads
from seq2seq.tokenizer import PAD, Tokenizers, prepare_tokenizers

log = logging.getLogger(__name__)


class TrainingError(Seq2SeqError):
    """Training cannot go on (e.g. the loss keeps being NaN)."""


class Interrupted(Seq2SeqError):
    """Stopped by Ctrl-C or SIGTERM after saving a checkpoint."""

    exit_code = 130
    prefix = "stopped"


@dataclass
class RunData:
    tokenizers: Tokenizers
    train: TokenizedCorpus
    train_keep: np.ndarray  # (N,) bool: pairs within data.max_len
    valid: SplitData


def prepare_data(cfg: TrainRunConfig, run_dir: Path) -> RunData:
    """Load the corpus, train (or reuse) sentencepiece, tokenize, and length-filter the training pairs."""
    raw_train = load_split(cfg.data, "train")
    tokenizers = prepare_tokenizers(cfg.data, raw_train, run_dir, seed=cfg.train.seed)
    train = TokenizedCorpus(encode_split(raw_train, tokenizers, cfg.data.num_proc))
    keep = (train.src_lengths <= cfg.data.max_len) & (train.trg_lengths <= cfg.data.max_len)
    dropped = int((~keep).sum())
    if dropped:
        log.warning(
            "train: dropped %d of %d pairs longer than data.max_len=%d subword tokens",
            dropped,
            len(keep),
            cfg.data.max_len,
        )
    if not keep.any():
        raise ConfigError(f"no training pair is within data.max_len={cfg.data.max_len} tokens")
    valid = SplitData.load(cfg, "valid", tokenizers)
    return RunData(tokenizers, train, keep, valid)


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed
    tokens: int = 0  # non-padding target tokens trained on
    best_score: float | None = None
    best_step: int = 0
    bad_validations: int = 0  # in a row, for early stopping
    skipped_steps: int = 0  # batches skipped for a non-finite loss or gradient, in total
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Owns the model, optimizer, schedule, data order, TensorBoard writer and checkpoints."""

    def __init__(self, cfg: TrainRunConfig, run_dir: Path, data: RunData | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = resolve_device(cfg.train.device)
        set_threads(cfg.train.threads)
        _check_train_config(cfg)
        seed_everything(cfg.train.seed)
        self.data = data or prepare_data(cfg, self.run_dir)
        tok = self.data.tokenizers
        self.model: Seq2Seq = build_model(cfg.model, len(tok.src), len(tok.trg)).to(self.device)
        self.optimizer = build_optimizer(cfg.train, self.model)
        self.autocast = autocast(self.device, str(cfg.train.precision))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=str(cfg.train.precision) == "fp16")
        if cfg.train.compile:
            self.model.decoder.step = torch.compile(self.model.decoder.step, dynamic=True)
        self.schedule = LRSchedule(cfg.train)
        self.progress = Progress()
        self.sampler = TokenBatchSampler(
            self.data.train.src_lengths,
            self.data.train.trg_lengths,
            cfg.train.batch_tokens,
            seed=cfg.train.seed,
            keep=self.data.train_keep,
        )
        self.higher_is_better = cfg.train.best_metric == Metric.bleu
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", cfg.train.keep_best, self.higher_is_better)
        self._resume_if_asked()
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.progress.step + 1)
        self._stop_signal: str | None = None
        self._bad_in_a_row = 0
        log.info(
            "model: %s encoder, %s decoder, %s attention, %.2fM parameters, device %s",
            cfg.model.encoder,
            cfg.model.decoder,
            cfg.model.attention,
            count_parameters(self.model) / 1e6,
            self.device,
        )

    # ----------------------------------------------------------------------------------------
    # The loop

    def fit(self) -> dict[str, float]:
        """Train until a step/epoch/time limit or early stopping; validate and test at the end."""
        cfg = self.cfg.train
        window = _Window()
        self.started = time.perf_counter()
        bar = tqdm(total=cfg.max_steps, initial=self.progress.step, disable=not cfg.progress or None, unit="step")
        last = self.progress.history[-1] if self.progress.history else None
        with _StopSignals(self):
            while not self._done():
                batches = self.sampler.batches(self.progress.epoch)
                while self.progress.batch_in_epoch < len(batches) and not self._done():
                    start = self.progress.batch_in_epoch
                    group = batches[start : start + cfg.accumulate]
                    loss, tokens = self.train_step([self.data.train.batch(rows) for rows in group])
                    self.progress.batch_in_epoch += len(group)
                    if self._stop_signal:
                        self._save_and_exit(bar)
                    if tokens == 0:
                        continue
                    window.add(loss, tokens)
                    self._log_step(window, bar)
                    if self.progress.step % cfg.valid_every == 0:
                        last = self.validate()
                if self.progress.batch_in_epoch >= len(batches):
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
        bar.close()
        if last is None or last["step"] != self.progress.step:
            last = self.validate()
        if cfg.average_best and cfg.keep_best > 1:
            self.average_best()
        if self.cfg.test.enabled:
            self.evaluate_test()
        self.writer.close()
        return last

    def _done(self) -> bool:
        cfg = self.cfg.train
        p = self.progress
        if cfg.patience and p.bad_validations >= cfg.patience:
            return True
        return bool(
            (cfg.max_steps and p.step >= cfg.max_steps)
            or (cfg.max_epochs and p.epoch >= cfg.max_epochs)
            or (cfg.max_minutes and time.perf_counter() - self.started >= 60 * cfg.max_minutes)
        )

    def train_step(self, batches: list[Batch]) -> tuple[float, int]:
        """One optimizer update from the micro-batches ``batches`` (``train.accumulate`` of them).

        The summed loss of all micro-batches is divided by their total number of target tokens,
        so K accumulated batches give the gradient of one K-times larger batch. Returns (summed
        smoothed loss, target tokens). A non-finite loss or gradient skips the update (tokens 0);
        after ``train.max_bad_steps`` such updates in a row, training stops without saving.
        """
        self.model.train()
        tokens = sum(b.n_trg_tokens for b in batches)
        total = 0.0
        for batch in batches:
            batch = batch.to(self.device)
            with self.autocast():
                logits = self.model(batch.src, batch.src_lengths, batch.trg_in)
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                batch.trg_out.flatten(),
                ignore_index=PAD,
                label_smoothing=self.cfg.train.label_smoothing,
                reduction="sum",
            )
            if not torch.isfinite(loss):
                return self._skip(float(loss.detach()), float("nan"))
            self.scaler.scale(loss / tokens).backward()
            total += float(loss.detach())
        self.scaler.unscale_(self.optimizer)
        limit = self.cfg.train.clip_grad_norm if self.cfg.train.clip_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), limit)
        if not torch.isfinite(grad_norm):
            if self.scaler.is_enabled():  # fp16 overflow: the scaler lowers its scale and skips
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                return total, 0
            return self._skip(total, float(grad_norm))
        self._bad_in_a_row = 0
        self.progress.step += 1
        set_lr(self.optimizer, self.schedule.lr(self.progress.step))
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
            raise TrainingError(
                f"loss or gradients were NaN/inf for {self._bad_in_a_row} batches in a row after step "
                f"{self.progress.step}; stopped without saving ({saved}); try a lower train.lr"
            )
        return float("nan"), 0

    def _log_step(self, window: _Window, bar: tqdm) -> None:
        step = self.progress.step
        lr = self.optimizer.param_groups[0]["lr"]
        bar.update(1)
        if step % self.cfg.train.log_every and step != 1:
            return
        loss, speed = window.flush()
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/tokens_per_sec", speed, step)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{speed:.0f}", lr=f"{lr:.2e}", epoch=self.progress.epoch)
        log.info("step %d | epoch %d | loss %.4f | %.0f tok/s | lr %.2e", step, self.progress.epoch, loss, speed, lr)

    # ----------------------------------------------------------------------------------------
    # Validation, test, averaging

    def validate(self) -> dict[str, float]:
        """Dev loss, perplexity and greedy BLEU; TensorBoard scalars, heatmaps, text; checkpoints."""
        start = time.perf_counter()
        step = self.progress.step
        metrics, _ = evaluate_dev(self.model, self.cfg, self.data.valid, self.data.tokenizers, self.device)
        metrics = {"step": step, **metrics}
        for name in ("loss", "ppl", "bleu"):
            self.writer.add_scalar(f"valid/{name}", metrics[name], step)
        write_examples(self.writer, self.model, self.cfg, self.data.valid, self.data.tokenizers, self.device, step)
        score = self._score(metrics)
        improved = self.checkpoints.is_improvement(score)
        p = self.progress
        if improved:
            p.best_score, p.best_step, p.bad_validations = score, step, 0
        else:
            p.bad_validations += 1
        if self.schedule.on_validation(score, self.higher_is_better):
            factor = self.cfg.train.plateau_factor
            log.info("dev %s stopped improving: learning rate scaled by %g", self.cfg.train.best_metric, factor)
        p.history.append(metrics)
        self.checkpoints.save(self.state(metrics, score), step, score)
        self.writer.flush()
        log.info(
            "validation at step %d: loss %.4f | ppl %.2f | BLEU %.2f | best %s %.2f at step %d | %.1fs",
            step,
            metrics["loss"],
            metrics["ppl"],
            metrics["bleu"],
            self.cfg.train.best_metric,
            p.best_score,
            p.best_step,
            time.perf_counter() - start,
        )
        if self.cfg.train.patience and p.bad_validations >= self.cfg.train.patience:
            log.info("early stopping: no improvement in %d validations", p.bad_validations)
        return metrics

    def _score(self, metrics: dict[str, float]) -> float:
        return metrics["bleu"] if self.higher_is_better else metrics["loss"]

    def average_best(self) -> dict[str, float] | None:
        """Average the ``keep_best`` best checkpoints; keep the average (as best.pt) if not worse on dev."""
        steps = [step for _, step in self.checkpoints.ranking]
        if len(steps) < 2:
            return None
        payload = average_checkpoints([self.checkpoints.path(s) for s in steps])
        best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(payload["model"])
        metrics, _ = evaluate_dev(self.model, self.cfg, self.data.valid, self.data.tokenizers, self.device)
        score, best = self._score(metrics), self.checkpoints.ranking[0][0]
        kept = score >= best if self.higher_is_better else score <= best
        log.info(
            "average of steps %s: dev BLEU %.2f, loss %.4f (%s %.4f vs best %.4f): %s",
            steps,
            metrics["bleu"],
            metrics["loss"],
            self.cfg.train.best_metric,
            score,
            best,
            "kept as best.pt" if kept else "discarded",
        )
        if kept:
            payload["metrics"] = {"step": self.progress.step, **metrics}
            path = self.checkpoints.directory / "averaged.pt"
            save_checkpoint(path, payload)
            self.checkpoints.promote(path)
        self.model.load_state_dict(best_state)
        return metrics if kept else None

    def evaluate_test(self) -> dict[str, Any] | None:
        """Translate the test split with best.pt and ``test.beam_size``; write test.hyp and test.scores.json."""
        try:
            test = SplitData.load(self.cfg, "test", self.data.tokenizers)
        except MissingSplitError as err:
            log.warning("no test evaluation: %s", err)
            return None
        best = load_checkpoint(self.checkpoints.best_path, self.device)
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(best["model"])
        report, outputs = evaluate_test(self.model, self.cfg, test, self.data.tokenizers, self.device)
        self.model.load_state_dict(current)
        report = {"checkpoint": str(self.checkpoints.best_path), "step": best["metrics"]["step"], **report}
        atomic_write_text(self.run_dir / "test.hyp", "".join(line + "\n" for line in outputs))
        atomic_write_text(self.run_dir / "test.scores.json", json.dumps(report, indent=1, ensure_ascii=False))
        self.writer.add_scalar("test/bleu", report["bleu"]["score"], self.progress.step)
        log.info(
            "test (best.pt from step %s, beam %d): %s | chrF %.2f | TER %.2f | %.0f sentences/s",
            report["step"],
            report["beam_size"],
            report["bleu"]["verbose"],
            report["chrf"]["score"],
            report["ter"]["score"],
            report["sentences_per_sec"],
        )
        return report

    # ----------------------------------------------------------------------------------------
    # Checkpoints and resuming

    def state(self, metrics: dict[str, float], score: float | None) -> dict[str, Any]:
        """Everything needed to rebuild the model and to continue training exactly."""
        step = self.progress.step
        return {
            "config": to_container(self.cfg),
            "tokenizers": self.data.tokenizers.to_state(),
            "vocab": {"src": len(self.data.tokenizers.src), "trg": len(self.data.tokenizers.trg)},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": asdict(self.progress),
            "checkpoints": self.checkpoints.state_dict(step, score),
            "rng": rng_state(),
            "metrics": metrics,
        }

    def _resume_if_asked(self) -> None:
        latest = self.checkpoints.latest_path
        resume = self.cfg.train.resume
        if not latest.exists():
            if resume:
                raise ConfigError(f"train.resume=true but {latest} does not exist: nothing to resume")
            return
        if resume is False:
            raise ConfigError(
                f"{self.run_dir} already holds a training run ({latest}); continue it with train.resume=true "
                "or choose another hydra.run.dir"
            )
        payload = load_checkpoint(latest, self.device)
        check_resumable(payload["config"], to_container(self.cfg), str(latest))
        if payload["tokenizers"] != self.data.tokenizers.to_state():
            raise ConfigError(f"{latest}: its sentencepiece model differs from this run's; cannot resume")
        load_weights(self.model, payload["model"], str(latest))
        self.optimizer.load_state_dict(payload["optimizer"])
        self.schedule.load_state_dict(payload["scheduler"])
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        self.progress = Progress(**payload["progress"])
        self.checkpoints.load_state_dict(payload["checkpoints"])
        set_rng_state(payload["rng"])
        log.info(
            "resumed from %s: step %d, epoch %d, batch %d of the epoch",
            latest,
            self.progress.step,
            self.progress.epoch,
            self.progress.batch_in_epoch,
        )

    def request_stop(self, signal_name: str) -> None:
        self._stop_signal = signal_name

    def _save_and_exit(self, bar: tqdm) -> None:
        bar.close()
        metrics = self.progress.history[-1] if self.progress.history else {}
        self.checkpoints.save(self.state(metrics, None), self.progress.step, None)
        self.writer.close()
        raise Interrupted(
            f"{self._stop_signal} at step {self.progress.step}: saved {self.checkpoints.latest_path}; "
            "run the same command again (train.resume=true) to continue"
        )


# Keys that may change when a run is resumed; other train.* changes are allowed with a warning.
RESUME_FREE = {
    "train.max_steps",
    "train.max_epochs",
    "train.max_minutes",
    "train.valid_every",
    "train.log_every",
    "train.patience",
    "train.resume",
    "train.device",
    "train.threads",
    "train.progress",
    "train.keep_best",
    "train.average_best",
    "train.max_bad_steps",
    "data.root",
    "data.cache_dir",
    "data.num_proc",
}


def check_resumable(old: dict[str, Any], new: dict[str, Any], source: str) -> None:
    """Refuse to resume with another model or data set-up; warn about other changed settings."""
    changes = [c for c in differences(old, new) if c[0] not in RESUME_FREE]
    fatal = [c for c in changes if c[0].startswith(("model.", "data."))]
    if fatal:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in fatal[:3])
        raise ConfigError(
            f"{source} was trained with a different model/data config ({listed}); use a new run directory"
        )
    for key, a, b in changes:
        log.warning("resuming with a changed setting %s: %r -> %r", key, a, b)


def _check_train_config(cfg: TrainRunConfig) -> None:
    t = cfg.train
    if not (t.max_steps or t.max_epochs or t.max_minutes):
        raise ConfigError("set train.max_steps, train.max_epochs or train.max_minutes (all are empty)")
    for name in ("valid_every", "batch_tokens", "keep_best", "max_bad_steps", "log_every", "accumulate"):
        if getattr(t, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    if t.patience is not None and t.patience < 1:
        raise ConfigError(f"train.patience must be >= 1 (or null to disable), got {t.patience}")


class _StopSignals:
    """While training, Ctrl-C/SIGTERM ask the trainer to save and stop after the current step.

    A second Ctrl-C interrupts at once.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.trainer._stop_signal and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("%s received: saving a checkpoint after this step (Ctrl-C again to stop at once)", name)
        self.trainer.request_stop(name)

    def __enter__(self) -> _StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (and CUDA) random states, as plain values and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class _Window:
    """Loss and throughput since the last log line."""

    def __init__(self) -> None:
        self.loss, self.tokens, self.start = 0.0, 0, time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self.loss += loss
        self.tokens += tokens

    def flush(self) -> tuple[float, float]:
        now = time.perf_counter()
        result = (self.loss / max(self.tokens, 1), self.tokens / max(now - self.start, 1e-9))
        self.loss, self.tokens, self.start = 0.0, 0, now
        return result


def train(cfg: TrainRunConfig, run_dir: str | Path) -> dict[str, float]:
    """Run a whole training as configured; returns the final validation metrics."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, run_dir).fit()
