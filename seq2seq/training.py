"""Training: teacher forcing with label-smoothed cross-entropy, periodic validation, TensorBoard.

``train(cfg, run_dir)`` is the whole run; ``scripts/train.py`` is a thin Hydra wrapper over it.
The run directory receives ``checkpoints/{latest,best}.pt``, ``tensorboard/``, the
sentencepiece model(s) and (from Hydra) ``train.log`` and ``.hydra/``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from seq2seq.batching import TokenBatchSampler, TokenizedCorpus
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.config import Metric, TrainRunConfig, to_container
from seq2seq.data import encode_split, load_split
from seq2seq.errors import ConfigError, MissingSplitError
from seq2seq.files import atomic_write_text
from seq2seq.metrics import corpus_bleu, score_corpus
from seq2seq.model import Seq2Seq, build_model, count_parameters
from seq2seq.optim import LRSchedule, build_optimizer, set_lr
from seq2seq.plotting import plot_attention
from seq2seq.runtime import resolve_device, seed_everything, set_threads
from seq2seq.tokenizer import PAD, Tokenizers, prepare_tokenizers
from seq2seq.translate import DecodeOptions, decode_corpus

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    """One tokenized split with its raw text (for BLEU and for showing examples)."""

    corpus: TokenizedCorpus
    src_text: list[str]
    trg_text: list[str]

    @classmethod
    def load(cls, cfg: TrainRunConfig, split: str, tokenizers: Tokenizers) -> SplitData:
        raw = load_split(cfg.data, split)
        encoded = encode_split(raw, tokenizers, cfg.data.num_proc)
        return cls(TokenizedCorpus(encoded), list(raw["src"]), list(raw["trg"]))


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
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained on
    tokens: int = 0  # non-padding target tokens trained on
    best_score: float | None = None
    best_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Owns the model, optimizer, schedule, data order, TensorBoard writer and checkpoints."""

    def __init__(self, cfg: TrainRunConfig, run_dir: Path, data: RunData | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = resolve_device(cfg.train.device)
        set_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.data = data or prepare_data(cfg, self.run_dir)
        tok = self.data.tokenizers
        self.model: Seq2Seq = build_model(cfg.model, len(tok.src), len(tok.trg)).to(self.device)
        self.optimizer = build_optimizer(cfg.train, self.model)
        self.schedule = LRSchedule(cfg.train)
        self.progress = Progress()
        self.sampler = TokenBatchSampler(
            self.data.train.src_lengths,
            self.data.train.trg_lengths,
            cfg.train.batch_tokens,
            seed=cfg.train.seed,
            keep=self.data.train_keep,
        )
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.examples = np.arange(min(cfg.valid.attention_examples, len(self.data.valid.corpus)))
        log.info(
            "model: %s encoder, %s decoder, %s attention, %.2fM parameters, device %s",
            cfg.model.encoder,
            cfg.model.decoder,
            cfg.model.attention,
            count_parameters(self.model) / 1e6,
            self.device,
        )

    def fit(self) -> dict[str, float]:
        """Train until ``train.max_steps`` / ``train.max_epochs``; validate at the end too."""
        cfg = self.cfg.train
        if not (cfg.max_steps or cfg.max_epochs or cfg.max_minutes):
            raise ConfigError("set train.max_steps, train.max_epochs or train.max_minutes (all are empty)")
        if cfg.valid_every < 1:
            raise ConfigError(f"train.valid_every must be >= 1, got {cfg.valid_every}")
        window = _Window()
        self.started = time.perf_counter()
        bar = tqdm(total=cfg.max_steps, initial=self.progress.step, disable=not cfg.progress or None, unit="step")
        last = None
        while not self._done():
            batches = self.sampler.batches(self.progress.epoch)
            while self.progress.batch_in_epoch < len(batches) and not self._done():
                rows = batches[self.progress.batch_in_epoch]
                loss, tokens = self.train_step(self.data.train.batch(rows))
                self.progress.batch_in_epoch += 1
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
        if self.cfg.test.enabled:
            self.evaluate_test()
        self.writer.close()
        return last

    def _done(self) -> bool:
        cfg = self.cfg.train
        return bool(
            (cfg.max_steps and self.progress.step >= cfg.max_steps)
            or (cfg.max_epochs and self.progress.epoch >= cfg.max_epochs)
            or (cfg.max_minutes and time.perf_counter() - self.started >= 60 * cfg.max_minutes)
        )

    def train_step(self, batch) -> tuple[float, int]:
        """One optimizer update on ``batch``; returns (summed smoothed loss, target tokens)."""
        self.model.train()
        batch = batch.to(self.device)
        logits = self.model(batch.src, batch.src_lengths, batch.trg_in)
        tokens = batch.n_trg_tokens
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(),
            batch.trg_out.flatten(),
            ignore_index=PAD,
            label_smoothing=self.cfg.train.label_smoothing,
            reduction="sum",
        )
        (loss / tokens).backward()
        if self.cfg.train.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad_norm)
        self.progress.step += 1
        set_lr(self.optimizer, self.schedule.lr(self.progress.step))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.tokens += tokens
        return float(loss.detach()), tokens

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
    # Validation

    @torch.no_grad()
    def dev_loss(self) -> float:
        """Per-token negative log-likelihood on the dev set (no label smoothing)."""
        self.model.eval()
        corpus = self.data.valid.corpus
        sampler = TokenBatchSampler(corpus.src_lengths, corpus.trg_lengths, self.cfg.train.batch_tokens, shuffle=False)
        total, tokens = 0.0, 0
        for rows in sampler.batches():
            batch = corpus.batch(rows).to(self.device)
            logits = self.model(batch.src, batch.src_lengths, batch.trg_in)
            nll = F.cross_entropy(
                logits.flatten(0, 1).float(), batch.trg_out.flatten(), ignore_index=PAD, reduction="sum"
            )
            total += float(nll)
            tokens += batch.n_trg_tokens
        return total / max(tokens, 1)

    def validate(self) -> dict[str, float]:
        """Dev loss, perplexity and greedy BLEU; TensorBoard scalars, heatmaps, text; checkpoints."""
        start = time.perf_counter()
        step = self.progress.step
        loss = self.dev_loss()
        valid = self.data.valid
        rows = np.arange(len(valid.corpus))
        if self.cfg.valid.max_sentences:
            rows = rows[: self.cfg.valid.max_sentences]
        options = self.decode_options()
        hyps = decode_corpus(self.model, valid.corpus, options, self.device, rows)
        outputs = [self.data.tokenizers.trg.decode(h[0].tokens) for h in hyps]
        bleu = corpus_bleu(outputs, [valid.trg_text[i] for i in rows], self.cfg.valid.bleu_tokenize)
        metrics = {"step": step, "loss": loss, "ppl": math.exp(min(loss, 50.0)), "bleu": bleu}
        for name in ("loss", "ppl", "bleu"):
            self.writer.add_scalar(f"valid/{name}", metrics[name], step)
        self._write_examples(outputs)
        improved = self._update_best(metrics)
        self.progress.history.append(metrics)
        self.save_checkpoints(metrics, improved)
        self.writer.flush()
        log.info(
            "validation at step %d: loss %.4f | ppl %.2f | BLEU %.2f | best %.2f at step %d | %.1fs",
            step,
            loss,
            metrics["ppl"],
            bleu,
            self.progress.best_score,
            self.progress.best_step,
            time.perf_counter() - start,
        )
        return metrics

    def decode_options(self, **overrides: Any) -> DecodeOptions:
        v = self.cfg.valid
        base = DecodeOptions(
            batch_size=v.batch_size, max_output_ratio=v.max_output_ratio, max_output_extra=v.max_output_extra
        )
        return DecodeOptions(**{**asdict(base), **overrides})

    def _update_best(self, metrics: dict[str, float]) -> bool:
        """Track the best dev score by ``train.best_metric`` (BLEU: higher is better; loss: lower)."""
        higher = self.cfg.train.best_metric == Metric.bleu
        score = metrics["bleu"] if higher else metrics["loss"]
        best = self.progress.best_score
        improved = best is None or (score > best if higher else score < best)
        if improved:
            self.progress.best_score, self.progress.best_step = score, self.progress.step
        self.schedule.on_validation(score, higher)
        return improved

    def _write_examples(self, outputs: list[str]) -> None:
        """Attention heatmaps and translations of the fixed dev examples, into TensorBoard."""
        if len(self.examples) == 0:
            return
        valid, tok = self.data.valid, self.data.tokenizers
        hyps = decode_corpus(
            self.model, valid.corpus, self.decode_options(return_attention=True), self.device, self.examples
        )
        step = self.progress.step
        rows = ["| | source | reference | output |", "|---|---|---|---|"]
        for n, (i, hyp) in enumerate(zip(self.examples.tolist(), hyps)):
            best = hyp[0]
            src_tokens = tok.src.pieces(valid.corpus.src[i].tolist()) + ["</s>"]
            trg_tokens = tok.trg.pieces(best.tokens) + ["</s>"]
            weights = best.attention[:, -1].mean(dim=1).numpy()  # last layer, heads averaged: (T, S)
            fig = plot_attention(weights, src_tokens, trg_tokens, title=f"dev {i}, step {step}")
            self.writer.add_figure(f"attention/example_{n}", fig, step, close=True)
            rows.append(f"| {i} | {valid.src_text[i]} | {valid.trg_text[i]} | {tok.trg.decode(best.tokens)} |")
        self.writer.add_text("valid/translations", "\n".join(rows), step)

    def evaluate_test(self) -> dict[str, Any] | None:
        """Translate the test split with the best checkpoint and the configured beam.

        Writes ``test.hyp`` (one detokenized line per test pair) and ``test.scores.json``
        (BLEU, chrF, TER with sacreBLEU signatures). A corpus without a test split is skipped.
        """
        try:
            test = SplitData.load(self.cfg, "test", self.data.tokenizers)
        except MissingSplitError as err:
            log.warning("no test evaluation: %s", err)
            return None
        best = load_checkpoint(self.checkpoint_dir / "best.pt", self.device)
        self.model.load_state_dict(best["model"])
        t = self.cfg.test
        options = self.decode_options(beam_size=t.beam_size, length_penalty=t.length_penalty, batch_size=t.batch_size)
        start = time.perf_counter()
        hyps = decode_corpus(self.model, test.corpus, options, self.device)
        seconds = time.perf_counter() - start
        outputs = [self.data.tokenizers.trg.decode(h[0].tokens) for h in hyps]
        atomic_write_text(self.run_dir / "test.hyp", "".join(line + "\n" for line in outputs))
        scores = score_corpus(outputs, [test.trg_text], self.cfg.valid.bleu_tokenize)
        report = {
            "checkpoint": str(self.checkpoint_dir / "best.pt"),
            "step": best["progress"]["step"],
            "beam_size": t.beam_size,
            "sentences": len(outputs),
            "sentences_per_sec": round(len(outputs) / max(seconds, 1e-9), 2),
            **scores,
        }
        atomic_write_text(self.run_dir / "test.scores.json", json.dumps(report, indent=1, ensure_ascii=False))
        self.writer.add_scalar("test/bleu", scores["bleu"]["score"], self.progress.step)
        log.info(
            "test (best checkpoint, step %s, beam %d): %s | chrF %.2f | TER %.2f | %.0f sent/s",
            report["step"],
            t.beam_size,
            scores["bleu"]["verbose"],
            scores["chrf"]["score"],
            scores["ter"]["score"],
            report["sentences_per_sec"],
        )
        return report

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state(self, metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "config": to_container(self.cfg),
            "tokenizers": self.data.tokenizers.to_state(),
            "vocab": {"src": len(self.data.tokenizers.src), "trg": len(self.data.tokenizers.trg)},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "progress": asdict(self.progress),
            "metrics": metrics,
        }

    def save_checkpoints(self, metrics: dict[str, float], improved: bool) -> None:
        state = self.state(metrics)
        save_checkpoint(self.checkpoint_dir / "latest.pt", state)
        if improved:
            save_checkpoint(self.checkpoint_dir / "best.pt", state)


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
