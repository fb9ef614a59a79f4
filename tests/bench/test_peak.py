"""Issue 35, item 13: MFU figures that can be trusted.

The peak is the best of rounds spread over the run (a round that caught the machine busy does not
count), an MFU above 100 % stops the benchmark with one line, and where bf16 is emulated its rows
have no MFU.
"""

from __future__ import annotations

import json

import pytest
import torch

import seq2seq.bench.flops
import seq2seq.utils.devices
from seq2seq.bench.flops import ImplausibleMfu, Peak, PeakMeter, emulated_reason
from seq2seq.bench.modes import main
from seq2seq.cli.commands import benchmark_main
from tests.conftest import TOY_CLI

CPU = torch.device("cpu")
NO_BF16 = "the CPU has neither AVX-512 BF16 nor AMX (bf16 would be emulated, slower than fp32)"


def test_the_best_round_counts_and_the_spread_is_kept():
    rounds = iter([83.9e9, 180.8e9, 179.9e9])  # the first round caught the machine busy
    meter = PeakMeter(CPU, 2048, measure=lambda device, precision, size: next(rounds))
    for _ in range(3):
        meter.sample("fp32")
    peak = meter.peak("fp32")
    assert peak.best == 180.8e9
    assert peak.spread() == {"min": 83.9e9, "median": 179.9e9, "max": 180.8e9, "rounds": 3}
    assert peak.describe() == "fp32 180.8 GFLOP/s (best of 3 rounds: 83.9–180.8, median 179.9)"
    assert peak.fraction(120.7e9, "torch fp32 beam 5") == pytest.approx(0.6676, abs=1e-4)  # not 143.9 %


def test_an_mfu_above_100_percent_raises():
    peak = Peak("fp32", (83.9e9,))
    with pytest.raises(ImplausibleMfu) as caught:
        peak.fraction(120.7e9, "ctranslate2 fp32 beam 5")
    assert str(caught.value) == (
        "ctranslate2 fp32 beam 5: MFU 143.9 % is above 100 % of the peak (fp32 83.9 GFLOP/s (1 round)): "
        "the measured peak or the FLOP count is wrong, so no MFU is reported"
    )
    assert peak.fraction(83.9e9, "at the peak") == 1.0


def test_an_mfu_above_100_percent_stops_the_benchmark_in_one_line(toy_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(seq2seq.bench.flops, "matmul_peak", lambda device, precision, size, repeats: 1e3)  # 1 kFLOP/s
    argv = ["translate", f"checkpoint={toy_checkpoint}", "bench.beams=[1]", "bench.decode_repeats=1"]
    with pytest.raises(SystemExit) as stop:
        benchmark_main([*argv, "bench.engines=[torch]", "bench.precisions=[fp32]"])
    assert stop.value.code == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: torch fp32 beam 1: MFU ") and "is above 100 % of the peak" in err
    assert len(err.strip().splitlines()) == 1
    assert '"mfu"' not in out and "| torch | fp32 |" not in out  # no figure printed


def test_emulated_bf16_is_not_measured(monkeypatch):
    monkeypatch.setattr(seq2seq.utils.devices, "cpu_bf16_features", lambda: [])
    assert emulated_reason(CPU, "bf16") == NO_BF16
    assert emulated_reason(CPU, "fp32") is None
    meter = PeakMeter(CPU, 64, measure=lambda *args: pytest.fail("an emulated peak was timed"))
    meter.sample("bf16")
    assert meter.peak("bf16").best is None and meter.peak("bf16").fraction(1e12, "bf16") is None
    assert meter.peak("bf16").describe() == f"bf16 not measured: {NO_BF16}"
    monkeypatch.setattr(seq2seq.utils.devices, "cpu_bf16_features", lambda: ["amx_bf16"])
    assert emulated_reason(CPU, "bf16") is None


def test_emulated_bf16_rows_show_no_mfu(toy_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(seq2seq.utils.devices, "cpu_bf16_features", lambda: [])
    timed = []
    real = seq2seq.bench.flops.matmul_peak
    monkeypatch.setattr(seq2seq.bench.flops, "matmul_peak", lambda *args: timed.append(args[1]) or real(*args))
    argv = ["translate", f"checkpoint={toy_checkpoint}", "bench.beams=[1]", "bench.decode_repeats=1"]
    result = main([*argv, "bench.engines=[torch]", "bench.precisions=[fp32,bf16]", "bench.peak_size=256"])
    rows = {r["precision"]: r for r in result["rows"]}
    assert rows["bf16"]["mfu"] is None and rows["bf16"]["mfu_note"] == NO_BF16
    assert rows["bf16"]["sentences_per_sec"] > 0 and rows["bf16"]["bleu"] >= 0
    assert 0 < rows["fp32"]["mfu"] <= 1 and "mfu_note" not in rows["fp32"]
    assert timed == ["fp32"] * 3  # before the row, after it, at the end; never bf16
    assert result["peak_flops"]["bf16"] is None and result["peak_spread"]["fp32"]["rounds"] == 3
    out = capsys.readouterr().out
    assert f"\nno MFU for bf16: {NO_BF16}\n" in out
    assert out.split("| torch | bf16 |")[1].split("\n")[0].endswith("| n/a (emulated) |")
    assert "matrix-multiply peak (256² product): fp32 " in out and "GFLOP/s (best of 3 rounds: " in out
    lines = {x["precision"]: x for x in map(json.loads, (y for y in out.splitlines() if y.startswith("{")))}
    assert lines["bf16"]["mfu"] is None and lines["bf16"]["peak_flops"] is None
    assert lines["fp32"]["peak_spread"]["rounds"] == 3 and lines["fp32"]["peak_flops"] > 0


def test_emulated_bf16_training_shows_no_mfu(monkeypatch, capsys):
    monkeypatch.setattr(seq2seq.utils.devices, "cpu_bf16_features", lambda: [])
    argv = ["train", *TOY_CLI, "bench.steps=1", "bench.warmup=1", "bench.repeats=1", "bench.decode=false"]
    result = main([*argv, "train.precision=bf16", "bench.peak_size=128"])
    assert result["tokens_per_sec"] > 0 and result["achieved_flops"] > 0
    assert result["mfu"] is None and result["peak_flops"] is None and result["mfu_note"] == NO_BF16
    out = capsys.readouterr().out
    assert "| mfu " in out and "| n/a (see mfu_note) |" in out and f"| {NO_BF16} |" in out
    assert json.loads(out.strip().splitlines()[-1])["mfu"] is None


def test_training_peak_rounds_are_spread_over_the_timed_stretches(capsys):
    argv = ["train", *TOY_CLI, "bench.steps=1", "bench.warmup=1", "bench.repeats=2", "bench.decode=false"]
    result = main([*argv, "train.precision=fp32", "bench.peak_size=128"])
    spread = result["peak_spread"]
    assert spread["rounds"] == 3 and spread["min"] <= spread["median"] <= spread["max"] == result["peak_flops"]
    assert 0 < result["mfu"] <= 1
    assert "| peak_spread " in capsys.readouterr().out
