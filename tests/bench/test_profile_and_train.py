"""``benchmark.py profile`` and ``train``: where a step's time goes, and speed against the limit."""

import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from seq2seq.bench.flops import Peak
from seq2seq.bench.modes import main
from seq2seq.bench.profile import TOP, _operators, matmul_flops, summarise
from tests.conftest import TOY_CLI


def test_matmul_flops_are_two_m_k_n_per_product():
    assert matmul_flops("aten::mm", [[8, 4], [4, 3]]) == 2 * 8 * 4 * 3
    assert matmul_flops("aten::addmm", [[3], [8, 4], [4, 3], [], []]) == 2 * 8 * 4 * 3
    assert matmul_flops("aten::addmm", [[], [8, 4], [4, 3], [], []]) == 2 * 8 * 4 * 3  # scalar bias
    assert matmul_flops("aten::bmm", [[5, 8, 4], [5, 4, 3]]) == 5 * 2 * 8 * 4 * 3
    assert matmul_flops("aten::baddbmm", [[5, 8, 3], [5, 8, 4], [5, 4, 3], [], []]) == 5 * 2 * 8 * 4 * 3
    assert matmul_flops("aten::softmax", [[8, 4], [], []]) == 0


def test_a_profiled_linear_layer_counts_its_forward_and_both_backward_products():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        layer(x).sum().backward()
    ops = {name: (calls, flops) for name, _, calls, flops in _operators(prof.events(), cuda=False)}
    # forward x W^T + b (addmm), backward dx = g W and dW = g^T x (two mm): 2 * 8 * 4 * 3 each
    assert ops["aten::addmm"] == (1, 192.0)
    assert ops["aten::mm"] == (2, 384.0)
    assert sum(flops for _, flops in ops.values()) == 3 * 192


def test_summary_shares_and_the_time_outside_operators():
    ops = [("aten::mm", 0.5, 10, 1e9), ("aten::softmax", 0.2, 5, 0.0)]
    ops += [(f"op{i}", 0.01, 1, 0.0) for i in range(TOP)]
    result = summarise(ops, wall=1.0, peak=Peak("fp32", (4e9,)))
    assert result["matmul_share"] == 0.5
    assert result["matmul_flops"] == 2e9 and result["matmul_efficiency"] == 0.5
    assert result["outside_operators_share"] == pytest.approx(1.0 - 0.7 - TOP * 0.01)
    rows = result["operators"]
    assert [r["op"] for r in rows[:2]] == ["aten::mm", "aten::softmax"]
    assert len(rows) == TOP + 1 and rows[-1]["op"] == "2 other operators"
    assert sum(r["seconds"] for r in rows) == pytest.approx(0.7 + TOP * 0.01)


def test_profile_mode_prints_a_table_and_a_json_line(capsys):
    result = main(["profile", *TOY_CLI, "bench.profile_steps=2", "bench.warmup=1", "train.precision=fp32"])
    assert result["mode"] == "profile" and result["steps"] == 2 and result["precision"] == "fp32"
    assert 0 < result["matmul_share"] < 1 and result["matmul_flops"] > 0 and result["peak_flops"] > 0
    assert 0 <= result["outside_operators_share"] < 1
    shares = sum(r["share"] for r in result["operators"])
    assert shares + result["outside_operators_share"] == pytest.approx(1, abs=0.01)
    out = capsys.readouterr().out
    assert "matrix products:" in out and "| aten::mm |" in out
    assert json.loads(out.strip().splitlines()[-1])["mode"] == "profile"


def test_train_mode_reports_speed_and_the_limit(capsys):
    argv = ["train", *TOY_CLI, "bench.steps=2", "bench.warmup=1", "bench.repeats=2", "bench.beams=[1]"]
    result = main([*argv, "bench.decode_repeats=1", "train.precision=fp32"])
    assert result["tokens_per_sec"] > 0 and result["steps"] == 2 and result["repeats"] == 2
    spread = result["tokens_per_sec_spread"]
    assert spread["min"] <= result["tokens_per_sec"] <= spread["max"]
    assert result["flops_per_token"] > 0 and result["peak_precision"] == "fp32" and result["peak_size"] == 2048
    assert result["achieved_flops"] == pytest.approx(result["flops_per_token"] * result["tokens_per_sec"], rel=1e-3)
    assert result["mfu"] == pytest.approx(result["achieved_flops"] / result["peak_flops"], abs=1e-4)
    assert 0 <= result["padding_fraction"] < 1
    assert result["sentences_per_sec"] > 0 and 0 <= result["bleu"] <= 100 and result["peak_rss_mb"] > 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = ("tokens_per_sec", "sentences_per_sec", "bleu", "flops_per_token", "peak_flops", "mfu", "padding_fraction")
    assert all(key in line for key in keys)
