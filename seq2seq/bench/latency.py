"""``benchmark.py latency``: what an interactive user waits for.

The model is loaded exactly as ``seq2seq-translate interactive=true`` loads it (timed: the
load time), then ``bench.latency_sentences`` test sentences are translated one at a time, each a
call of the same translator with one line (tokenize, search, detokenize), after 5 untimed
ones. Reported per engine x precision: load seconds and the median and 90th percentile of the
per-sentence milliseconds at ``bench.latency_beam``; with ``bench.shortlist=FILE``, each also
with that vocabulary shortlist.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from seq2seq.bench.translate import engine_label, engine_runs, test_data
from seq2seq.checkpoint.store import load_model
from seq2seq.config.schema import BenchmarkConfig, DecodeConfig
from seq2seq.data.corpus import load_split
from seq2seq.decode.loading import build_translator
from seq2seq.utils.devices import resolve_device
from seq2seq.utils.errors import ConfigError

WARMUP = 5


def bench_latency(cfg: BenchmarkConfig, data_overrides: list[str]) -> dict[str, Any]:
    """Load time and per-sentence latency of every engine and precision of ``bench.engines``."""
    if not cfg.checkpoint:
        raise ConfigError("benchmark latency needs checkpoint=PATH")
    device = resolve_device(cfg.train.device)
    _, _, trained, _ = load_model(cfg.checkpoint, device)
    data = test_data(trained, data_overrides)
    sentences = [s for s in load_split(data, "test")["src"] if s.strip()][: cfg.bench.latency_sentences + WARMUP]
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="seq2seq-latency-") as tmp:
        for engine, precision, model in engine_runs(cfg, cfg.checkpoint, trained, device, tmp, skipped):
            for shortlist in [None, cfg.bench.shortlist] if cfg.bench.shortlist else [None]:
                rows.append(_measure(cfg, engine, precision, model, sentences, shortlist))
    return {
        "mode": "latency",
        "checkpoint": cfg.checkpoint,
        "beam_size": cfg.bench.latency_beam,
        "rows": rows,
        "skipped": skipped,
    }


def _measure(
    cfg: BenchmarkConfig, engine: str, precision: str, checkpoint: str, sentences: list[str], shortlist: str | None
) -> dict:
    start = time.perf_counter()
    translator = build_translator(
        checkpoint,
        DecodeConfig(beam_size=cfg.bench.latency_beam),
        engine=engine,
        device=cfg.train.device,
        precision=precision,
        shortlist=shortlist,
        threads=cfg.train.threads,
    )
    load = time.perf_counter() - start
    times = []
    for i, sentence in enumerate(sentences):
        start = time.perf_counter()
        translator.translate([sentence])
        if i >= WARMUP:
            times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {
        "engine": engine,
        "shortlist": shortlist is not None,
        "precision": precision,
        "beam_size": cfg.bench.latency_beam,
        "load_seconds": round(load, 3),
        "latency_ms_median": round(statistics.median(times), 2),
        "latency_ms_p90": round(times[int(0.9 * (len(times) - 1))], 2),
        "sentences": len(times),
    }


def latency_table(result: dict[str, Any]) -> str:
    lines = [
        f"| engine | precision | load s | median ms (beam {result['beam_size']}) | p90 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {engine_label(r)} | {r['precision']} | {r['load_seconds']:.2f} | "
            f"{r['latency_ms_median']:.1f} | {r['latency_ms_p90']:.1f} |"
        )
    return "\n".join(lines)
