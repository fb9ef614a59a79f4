"""``seq2seq-benchmark train``: training throughput and MFU of the configured model, then decoding.

It builds the configured model on the real corpus, trains ``bench.warmup`` untimed steps, then
``bench.repeats`` timed stretches of ``bench.steps`` steps (see :mod:`seq2seq.bench.modes` for the
JSON line it ends with). :func:`warmed_up_trainer` is shared with the profile mode.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from seq2seq.bench.flops import PeakMeter, flop_model, padding_fraction, peak_size
from seq2seq.config.schema import BenchmarkConfig, DataConfig
from seq2seq.config.special_ids import PAD
from seq2seq.data.batching import Batch, TokenizedCorpus
from seq2seq.data.corpus import encode_split, load_split
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.translator import DecodeOptions, decode_corpus
from seq2seq.inspect.metrics import corpus_bleu
from seq2seq.model.seq2seq import Seq2Seq, count_parameters
from seq2seq.training.trainer import Trainer
from seq2seq.utils.devices import synchronize


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@contextlib.contextmanager
def warmed_up_trainer(cfg: BenchmarkConfig, steps: int) -> Iterator[tuple[Trainer, Iterator[Batch]]]:
    """A trainer of ``cfg`` in a temporary run directory after ``bench.warmup`` untimed updates,
    room left for ``steps`` more, and its batch stream (see :func:`batch_stream`)."""
    cfg.train.progress = False
    cfg.train.max_steps = cfg.bench.warmup + steps
    cfg.train.max_epochs = None
    with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as run_dir:
        trainer = Trainer.build(cfg, Path(run_dir))
        batches = batch_stream(trainer)
        for _ in range(cfg.bench.warmup):
            trainer.train_step([next(batches) for _ in range(cfg.train.accumulate)])
        synchronize(trainer.device)
        yield trainer, batches


def bench_train(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Training throughput, epoch time, memory; then decoding speed and BLEU of the result."""
    b, k = cfg.bench, cfg.train.accumulate
    with warmed_up_trainer(cfg, b.repeats * b.steps) as (trainer, batches):
        meter = PeakMeter(trainer.device, peak_size(trainer.device, b.peak_size))
        meter.sample(trainer.precision)  # peak rounds before, between and after the timed stretches
        speeds, timed = [], []
        for _ in range(b.repeats):
            tokens, start = 0, time.perf_counter()
            for _ in range(b.steps):
                group = [next(batches) for _ in range(k)]
                timed.extend(group)
                tokens += trainer.train_step(group)[1]
            synchronize(trainer.device)
            speeds.append(tokens / (time.perf_counter() - start))
            meter.sample(trainer.precision)
        epoch_tokens = int((trainer.data.train.trg_lengths[trainer.data.train_keep] + 1).sum())
        result: dict[str, Any] = {
            "mode": "train",
            "parameters": count_parameters(trainer.model),
            "tokens_per_sec": round(statistics.median(speeds), 1),
            "tokens_per_sec_spread": _spread([round(s, 1) for s in speeds]),
            "epoch_seconds": round(epoch_tokens / statistics.median(speeds), 1),
            "steps": b.steps,
            "repeats": b.repeats,
        }
        speed = statistics.median(speeds)
        result.update(training_limit(trainer.model, timed, speed, meter, trainer.precision))
        if b.decode:
            test = test_corpus(cfg.data, trainer.data.tokenizers)
            result.update(_bench_decode(trainer.model, trainer.data.tokenizers, test, cfg, trainer.device))
    result.update(memory_stats(trainer.device))
    return result


def training_limit(
    model: Seq2Seq, batches: list[Batch], tokens_per_sec: float, meter: PeakMeter, precision: str
) -> dict[str, Any]:
    """FLOPs per target token of ``batches``, the FLOP/s they ran at, the matmul peak, MFU, padding.

    ``tokens_per_sec`` counts real target tokens; the peak is the best of ``meter``'s rounds of
    ``precision`` (``peak_spread``: all of them), timed in this process (see :mod:`seq2seq.bench.flops`).
    """
    src = torch.cat([b.src_lengths for b in batches])
    trg = torch.cat([b.trg_out.ne(PAD).sum(1) for b in batches])
    per_token = flop_model(model).training_flops(src.tolist(), trg.tolist()) / int(trg.sum())
    positions = sum(b.src.numel() + b.trg_out.numel() for b in batches)
    achieved = per_token * tokens_per_sec
    peak = meter.peak(precision)
    mfu = peak.fraction(achieved, f"training in {precision}")
    result = {
        "flops_per_token": round(per_token),
        "achieved_flops": round(achieved),
        "peak_flops": None if peak.best is None else round(peak.best),
        "peak_spread": peak.spread(),
        "peak_precision": precision,
        "peak_size": meter.size,
        "mfu": None if mfu is None else round(mfu, 4),
        "padding_fraction": round(padding_fraction(int(src.sum() + trg.sum()), positions), 4),
    }
    if peak.emulated is not None:
        result["mfu_note"] = peak.emulated
    return result


def batch_stream(trainer: Trainer) -> Iterator[Batch]:
    """Training batches in the trainer's real (bucketed, shuffled) order, epoch after epoch."""
    epoch = 0
    while True:
        for group in trainer.update_groups(epoch, 0):
            yield from group
        epoch += 1


def test_corpus(data: DataConfig, tokenizers: Tokenizers) -> tuple[TokenizedCorpus, list[str]]:
    raw = load_split(data, "test")
    return TokenizedCorpus(encode_split(raw, tokenizers)), list(raw["trg"])


def _bench_decode(
    model: Seq2Seq, tokenizers: Tokenizers, test: tuple[TokenizedCorpus, list[str]], cfg: BenchmarkConfig, device
) -> dict[str, Any]:
    corpus, refs = test
    out: dict[str, Any] = {"sentences": len(corpus)}
    for beam in cfg.bench.beams:
        options = DecodeOptions.of(
            cfg.test.decode, beam_size=beam, batch_size=cfg.bench.decode_batch_size, precision=str(cfg.train.precision)
        )
        decode_corpus(model, corpus, options, device, rows=range(min(64, len(corpus))))  # warm-up
        speeds, hyps = [], None
        for _ in range(cfg.bench.decode_repeats):
            synchronize(device)
            start = time.perf_counter()
            hyps = decode_corpus(model, corpus, options, device)
            synchronize(device)
            speeds.append(len(corpus) / (time.perf_counter() - start))
        outputs = [tokenizers.trg.decode(h[0].tokens) for h in hyps]
        name = "greedy" if beam == 1 else f"beam{beam}"
        out[f"sentences_per_sec_{name}"] = round(statistics.median(speeds), 1)
        out[f"sentences_per_sec_{name}_spread"] = _spread([round(s, 1) for s in speeds])
        out[f"bleu_{name}"] = round(corpus_bleu(outputs, refs), 2)
    main = "beam5" if 5 in cfg.bench.beams else ("greedy" if cfg.bench.beams == [1] else f"beam{cfg.bench.beams[-1]}")
    out["sentences_per_sec"] = out[f"sentences_per_sec_{main}"]
    out["bleu"] = out[f"bleu_{main}"]
    return out


def memory_stats(device: torch.device) -> dict[str, float]:
    memory = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if device.type == "cuda":
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory
