"""Speed benchmarks, run as a whole process, printed as a table plus one JSON line.

    python scripts/benchmark.py train experiment=rnn_bahdanau_small data.root=DIR bench.steps=100
    python scripts/benchmark.py translate checkpoint=PATH data.root=DIR

``train`` builds the configured model on the real corpus, trains ``bench.warmup`` untimed steps,
then ``bench.repeats`` timed stretches of ``bench.steps`` steps (the median and the spread are
reported, in non-padding target tokens per second), then decodes the test split greedily and with
beam 5. It ends with a JSON line holding ``tokens_per_sec``, ``sentences_per_sec``, ``bleu``,
``peak_rss_mb`` and the limit: ``flops_per_token`` (see :mod:`seq2seq.flops`), ``peak_flops``
(a ``bench.peak_size``-square matrix product in the training precision, timed in this process:
the best of a round before the timed stretches and one after each, ``peak_spread`` their
min/median/max), ``mfu`` (achieved / peak; null with ``mfu_note`` where bf16 is emulated; above
100 % it stops with an error) and ``padding_fraction`` of the timed batches.

``translate`` decodes the test split with a trained checkpoint, every engine and precision side by
side (:mod:`seq2seq.bench_decode`), and prints one JSON line per engine x precision x beam.
"""

from __future__ import annotations

import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq.batching import Batch, TokenBatchSampler, TokenizedCorpus
from seq2seq.bench_decode import Setup, bench_engines, engines_table, test_data
from seq2seq.bench_latency import bench_latency, latency_table
from seq2seq.bench_profile import bench_profile, profile_table
from seq2seq.checkpoint import load_model
from seq2seq.compose import config_dir, typed_config
from seq2seq.config import BenchmarkConfig, DataConfig, register_configs
from seq2seq.data import encode_split, load_split
from seq2seq.errors import ConfigError
from seq2seq.flops import PeakMeter, flop_model, padding_fraction, peak_size
from seq2seq.metrics import corpus_bleu
from seq2seq.model import Seq2Seq, count_parameters
from seq2seq.runtime import describe_machine, resolve_device, set_threads, synchronize
from seq2seq.tokenizer import PAD, Tokenizers
from seq2seq.training import Trainer
from seq2seq.translate import DecodeOptions, decode_corpus


def compose_benchmark(overrides: list[str]) -> BenchmarkConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="benchmark", overrides=overrides)
    return typed_config(cfg, BenchmarkConfig)


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
        trainer = Trainer(cfg, Path(run_dir))
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
            test = _test_corpus(cfg.data, trainer.data.tokenizers)
            result.update(_bench_decode(trainer.model, trainer.data.tokenizers, test, cfg, trainer.device))
    result.update(_memory(trainer.device))
    return result


def training_limit(
    model: Seq2Seq, batches: list[Batch], tokens_per_sec: float, meter: PeakMeter, precision: str
) -> dict[str, Any]:
    """FLOPs per target token of ``batches``, the FLOP/s they ran at, the matmul peak, MFU, padding.

    ``tokens_per_sec`` counts real target tokens; the peak is the best of ``meter``'s rounds of
    ``precision`` (``peak_spread``: all of them), timed in this process (see :mod:`seq2seq.flops`).
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


def bench_translate(cfg: BenchmarkConfig, data_overrides: list[str]) -> dict[str, Any]:
    """Decoding speed and BLEU of a trained checkpoint on the test split.

    The test data is the checkpoint's own data config with the ``data.*`` overrides applied.
    """
    if not cfg.checkpoint:
        raise ConfigError("benchmark translate needs checkpoint=PATH")
    device = resolve_device(cfg.train.device)
    model, tokenizers, trained, _ = load_model(cfg.checkpoint, device)
    data = test_data(trained, data_overrides)
    corpus, refs = _test_corpus(data, tokenizers)
    setup = Setup(cfg.checkpoint, model, tokenizers, trained, corpus, refs, device)
    result = {"mode": "translate", "checkpoint": cfg.checkpoint, "parameters": count_parameters(model)}
    result.update(sentences=len(corpus), **bench_engines(setup, cfg))
    result.update(_memory(device))
    return result


def _test_corpus(data: DataConfig, tokenizers: Tokenizers) -> tuple[TokenizedCorpus, list[str]]:
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


def _memory(device: torch.device) -> dict[str, float]:
    memory = {"peak_rss_mb": round(peak_rss_mb(), 1)}
    if device.type == "cuda":
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory


def scale_table(result: dict[str, Any]) -> str:
    lines = [
        "| pairs | cold: seconds | cold: peak RSS MB | cached: seconds | cached: peak RSS MB | batches |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in result["sizes"].items():
        lines.append(
            f"| {int(n):,} | {r['cold_seconds']} | {r['cold_peak_rss_mb']} | {r['cached_seconds']} | "
            f"{r['cached_peak_rss_mb']} | {r['batches']} |"
        )
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    """The figures as an aligned two-column table."""
    rows = [(key, _readable(key, value)) for key, value in result.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)


def _readable(key: str, value: Any) -> str:
    """FLOP figures in M/G units and MFU as a percentage (the JSON line keeps plain numbers); a
    spread as its median, min and max (and the number of rounds of a peak)."""
    if isinstance(value, dict):
        rounds = f", {value['rounds']} rounds" if "rounds" in value else ""
        show = partial(_readable, "peak_flops" if key == "peak_spread" else key)
        return f"{show(value['median'])} (min {show(value['min'])}, max {show(value['max'])}{rounds})"
    if value is None and key in ("mfu", "peak_flops", "peak_spread"):
        return "n/a (see mfu_note)"
    if key == "flops_per_token":
        return f"{value / 1e6:.2f} MFLOP"
    if key in ("achieved_flops", "peak_flops"):
        return f"{value / 1e9:.2f} GFLOP/s"
    if key in ("mfu", "padding_fraction"):
        return f"{100 * value:.1f} %"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Scale: preprocessing a large corpus


def write_synthetic_corpus(root: Path, pairs: int, seed: int = 0) -> None:
    """``{train,val}.src/.trg``: Zipfian random "sentences" and a word-by-word "translation"."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = 30_000
    src_words = np.array([f"w{i}" for i in range(vocab)])
    trg_words = np.array([f"t{(i * 7919) % vocab}" for i in range(vocab)])
    for split, n in (("train", pairs), ("val", 500)):
        with open(root / f"{split}.src", "w") as src, open(root / f"{split}.trg", "w") as trg:
            for start in range(0, n, 100_000):
                m = min(100_000, n - start)
                lengths = rng.integers(4, 30, m)
                ids = np.minimum(rng.zipf(1.3, int(lengths.sum())) - 1, vocab - 1)
                for sentence in np.split(ids, np.cumsum(lengths)[:-1]):
                    src.write(" ".join(src_words[sentence]) + "\n")
                    trg.write(" ".join(trg_words[sentence[::-1]]) + "\n")


def bench_prepare(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Time and memory of everything before the first training step (run in a fresh process)."""
    from seq2seq.rundata import prepare_data

    start = time.perf_counter()
    run_dir = Path(cfg.bench.scale_dir or tempfile.mkdtemp())
    data = prepare_data(cfg, run_dir)
    sampler = TokenBatchSampler(
        data.train.src_lengths, data.train.trg_lengths, cfg.train.batch_tokens, seed=0, keep=data.train_keep
    )
    batches = sampler.batches(0)
    data.train.batch(batches[0])
    return {
        "pairs": len(data.train),
        "batches": len(batches),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def benchmark_command(*args: str) -> list[str]:
    """The command line of ``seq2seq-benchmark ARGS`` in a new process of this Python."""
    return [sys.executable, "-c", "from seq2seq.cli import benchmark_main; benchmark_main()", *args]


def bench_scale(cfg: BenchmarkConfig, overrides: list[str]) -> dict[str, Any]:
    """Preprocessing time and peak memory for growing synthetic corpora, cold and cached."""
    base = Path(cfg.bench.scale_dir or tempfile.mkdtemp(prefix="seq2seq-scale-"))
    rows = {}
    for n in cfg.bench.scale_sizes:
        root = base / f"corpus_{n}"
        if not (root / "train.src").exists():
            write_synthetic_corpus(root, n)
        args = [
            "data=custom",
            f"data.root={root}",
            "data.src_lang=src",
            "data.trg_lang=trg",
            "data.valid_split=val",
            f"data.cache_dir={base / 'cache'}",
            f"bench.scale_dir={base / f'run_{n}'}",
            *overrides,
        ]
        runs = []
        for _ in ("cold", "cached"):
            done = subprocess.run(benchmark_command("prepare", *args), capture_output=True, text=True)
            if done.returncode != 0:
                raise ConfigError(f"prepare failed for {n} pairs: {done.stderr.strip().splitlines()[-1:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        rows[str(n)] = {
            "cold_seconds": runs[0]["seconds"],
            "cold_peak_rss_mb": runs[0]["peak_rss_mb"],
            "cached_seconds": runs[1]["seconds"],
            "cached_peak_rss_mb": runs[1]["peak_rss_mb"],
            "batches": runs[0]["batches"],
        }
    return {"mode": "scale", "directory": str(base), "sizes": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    modes = ("train", "translate", "latency", "profile", "scale", "prepare")
    if not argv or argv[0] not in modes:
        raise ConfigError("usage: benchmark.py train|translate|latency|profile|scale [key=value ...]")
    cfg = compose_benchmark(argv[1:])
    set_threads(cfg.train.threads)
    if argv[0] == "prepare":
        result = bench_prepare(cfg)
        print(json.dumps(result))
        return result
    if argv[0] == "scale":
        result = bench_scale(cfg, [a for a in argv[1:] if not a.startswith("bench.scale")])
        print(scale_table(result))
        print(json.dumps(result))
        return result
    if argv[0] == "latency":
        result = bench_latency(cfg, [a for a in argv[1:] if a.startswith("data.")])
        print(f"{describe_machine(resolve_device(cfg.train.device))}\n{result['checkpoint']}\n")
        print(latency_table(result))
        for row in result["rows"]:
            print(json.dumps({"mode": "latency", "checkpoint": result["checkpoint"], **row}))
        return result
    if argv[0] == "profile":
        result = bench_profile(cfg)
        print(f"{describe_machine(resolve_device(cfg.train.device))}\n{profile_table(result)}")
        print(json.dumps(result))
        return result
    if argv[0] == "translate":
        result = bench_translate(cfg, [a for a in argv[1:] if a.startswith("data.")])
        _print_translate(result, describe_machine(resolve_device(cfg.train.device)))
        return result
    result = bench_train(cfg)
    device = resolve_device(cfg.train.device)
    result = {"machine": describe_machine(device), "precision": str(cfg.train.precision), **result}
    result = {"experiment": " ".join(a for a in argv[1:] if not a.startswith("data.root")), **result}
    print(table(result))
    print(json.dumps(result))
    return result


def _print_translate(result: dict[str, Any], machine: str) -> None:
    """The side-by-side table, then one JSON line per engine x precision x beam."""
    print(f"{machine}\n{result['checkpoint']}: {result['sentences']} test sentences\n")
    print(engines_table(result))
    common = {"mode": "translate", "machine": machine, "checkpoint": result["checkpoint"]}
    for row in result["rows"]:
        p = row["precision"]
        peaks = {"peak_flops": result["peak_flops"][p], "peak_spread": result["peak_spread"][p]}
        print(json.dumps({**common, **row, **peaks, "peak_rss_mb": result["peak_rss_mb"]}))
