"""tools/side_by_side.py: the table of two versions' speeds (medians over rounds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "side_by_side.py"
spec = importlib.util.spec_from_file_location("side_by_side", SCRIPT)
side_by_side = importlib.util.module_from_spec(spec)
spec.loader.exec_module(side_by_side)


def _decode(engine: str, precision: str, beam: int, speed: float, bleu: float) -> dict:
    return {"mode": "translate", "engine": engine, "precision": precision, "beam_size": beam} | {
        "sentences_per_sec": speed,
        "bleu": bleu,
    }


def test_translate_rows_pair_engine_precision_and_beam_over_rounds():
    base = [_decode("torch", "fp32", 5, s, 30.0) for s in (100.0, 120.0)] + [_decode("torch", "int8", 5, 200.0, 29.5)]
    new = [_decode("torch", "fp32", 5, s, 30.1) for s in (150.0, 130.0)] + [_decode("torch", "int8", 5, 300.0, 29.6)]
    lines = side_by_side.table([{"config": "checkpoint=C", "base": base, "new": new}], "translate").splitlines()
    assert lines[0].startswith("| config | base sent/s | new sent/s | new / base | base BLEU | new BLEU |")
    assert lines[2] == "| `checkpoint=C` torch fp32 beam 5 | 110 | 140 | 1.27x | 30.0 | 30.1 |"
    assert lines[3] == "| `checkpoint=C` torch int8 beam 5 | 200 | 300 | 1.50x | 29.5 | 29.6 |"


def test_train_rows_report_tokens_and_mfu():
    base = [{"mode": "train", "tokens_per_sec": 1000.0, "mfu": 0.25}]
    new = [{"mode": "train", "tokens_per_sec": 1100.0, "mfu": 0.275}]
    lines = side_by_side.table([{"config": "experiment=x", "base": base, "new": new}], "train").splitlines()
    assert lines[2] == "| `experiment=x` | 1,000 | 1,100 | 1.10x | 25.0 % | 27.5 % |"


def test_shortlisted_rows_are_kept_apart_from_full_vocabulary_rows():
    base = [_decode("torch", "bf16", 5, 200.0, 41.7), _decode("torch", "bf16", 5, 400.0, 41.6) | {"shortlist": "s"}]
    new = [_decode("torch", "bf16", 5, 220.0, 41.7), _decode("torch", "bf16", 5, 500.0, 41.5) | {"shortlist": "s"}]
    lines = side_by_side.table([{"config": "checkpoint=C", "base": base, "new": new}], "translate").splitlines()
    assert lines[2] == "| `checkpoint=C` torch bf16 beam 5 | 200 | 220 | 1.10x | 41.7 | 41.7 |"
    assert lines[3] == "| `checkpoint=C` torch + shortlist bf16 beam 5 | 400 | 500 | 1.25x | 41.6 | 41.5 |"
