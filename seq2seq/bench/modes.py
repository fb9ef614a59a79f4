"""Speed benchmarks, run as a whole process, printed as a table plus one JSON line.

    python scripts/benchmark.py train experiment=rnn_bahdanau_small data.root=DIR bench.steps=100
    python scripts/benchmark.py translate checkpoint=PATH data.root=DIR

``train`` builds the configured model on the real corpus, trains ``bench.warmup`` untimed steps,
then ``bench.repeats`` timed stretches of ``bench.steps`` steps (the median and the spread are
reported, in non-padding target tokens per second), then decodes the test split greedily and with
beam 5. It ends with a JSON line holding ``tokens_per_sec``, ``sentences_per_sec``, ``bleu``,
``peak_rss_mb`` and the limit: ``flops_per_token`` (see :mod:`seq2seq.bench.flops`), ``peak_flops``
(a ``bench.peak_size``-square matrix product in the training precision, timed in this process:
the best of a round before the timed stretches and one after each, ``peak_spread`` their
min/median/max), ``mfu`` (achieved / peak; null with ``mfu_note`` where bf16 is emulated; above
100 % it stops with an error) and ``padding_fraction`` of the timed batches.

``translate`` decodes the test split with a trained checkpoint, every engine and precision side by
side (:mod:`seq2seq.bench.translate`), and prints one JSON line per engine x precision x beam.

``serve`` loads ``seq2seq-serve`` with 1, 8 and 32 concurrent single-sentence clients beside the
same engine translating offline (:mod:`seq2seq.bench.serve`): one JSON line per concurrency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.bench.latency import bench_latency, latency_table
from seq2seq.bench.profile import bench_profile, profile_table
from seq2seq.bench.serve import bench_serve, serve_json_lines, serve_report
from seq2seq.bench.train import bench_train, memory_stats, peak_rss_mb, test_corpus
from seq2seq.bench.translate import Setup, bench_engines, engines_table, test_data
from seq2seq.checkpoint.store import load_model
from seq2seq.config.compose import compose_config
from seq2seq.config.schema import BenchmarkConfig
from seq2seq.data.batching import TokenBatchSampler
from seq2seq.model.seq2seq import count_parameters
from seq2seq.utils.devices import describe_machine, resolve_device, set_up_process
from seq2seq.utils.errors import ConfigError


def compose_benchmark(overrides: list[str]) -> BenchmarkConfig:
    return compose_config("benchmark", overrides, BenchmarkConfig)


def bench_translate(cfg: BenchmarkConfig, data_overrides: list[str]) -> dict[str, Any]:
    """Decoding speed and BLEU of a trained checkpoint on the test split.

    The test data is the checkpoint's own data config with the ``data.*`` overrides applied.
    """
    if not cfg.checkpoint:
        raise ConfigError("benchmark translate needs checkpoint=PATH")
    device = resolve_device(cfg.train.device)
    model, tokenizers, trained, _ = load_model(cfg.checkpoint, device)
    data = test_data(trained, data_overrides)
    corpus, refs = test_corpus(data, tokenizers)
    setup = Setup(cfg.checkpoint, model, tokenizers, trained, corpus, refs, device)
    result = {"mode": "translate", "checkpoint": cfg.checkpoint, "parameters": count_parameters(model)}
    result.update(sentences=len(corpus), **bench_engines(setup, cfg))
    result.update(memory_stats(device))
    return result


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
    from seq2seq.training.run_data import prepare_data

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
    return [sys.executable, "-c", "from seq2seq.cli.commands import benchmark_main; benchmark_main()", *args]


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
    modes = ("train", "translate", "latency", "serve", "profile", "scale", "prepare")
    if not argv or argv[0] not in modes:
        raise ConfigError("usage: benchmark.py train|translate|latency|serve|profile|scale [key=value ...]")
    cfg = compose_benchmark(argv[1:])
    set_up_process(cfg.train.threads)  # as the commands it measures do
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
    if argv[0] == "serve":
        result = bench_serve(cfg, [a for a in argv[1:] if a.startswith("data.")])
        machine = describe_machine(resolve_device(cfg.train.device))
        print(serve_report(result, machine))
        for line in serve_json_lines(result, machine):
            print(json.dumps(line))
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
