"""The CPU dropout mask: right keep rate, unbiased, correct gradient, seeded, identity in eval."""

import subprocess
import sys

import pytest
import torch

from seq2seq.model.attention import scaled_dot_product
from seq2seq.model.dropout import Dropout, dropout, keep_mask
from tests.conftest import REPO


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_rate_matches_one_minus_p_in_every_lane(p):
    torch.manual_seed(0)
    mask = keep_mask((400_000,), p).float()
    assert abs(mask.mean().item() - (1 - p)) < 0.003
    # Four draws come from each 64-bit word: no lane may be biased.
    for lane in range(4):
        assert abs(mask[lane::4].mean().item() - (1 - p)) < 0.006


def test_zeroes_or_scales_each_element_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.randn(200, 300)
    y = dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.8)
    assert abs(dropout(torch.ones(500_000), 0.2).mean().item() - 1.0) < 0.005


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.25)
    y.backward(torch.ones_like(y))
    expected = (y.detach() != 0).float() / 0.75
    assert torch.equal(x.grad, expected)


def test_bf16_input_stays_bf16_and_is_scaled():
    torch.manual_seed(2)
    x = torch.randn(32, 16).bfloat16()
    y = dropout(x, 0.5)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y[y != 0], (x * 2)[y != 0])


def test_seeded_masks_repeat_and_differ_between_calls():
    torch.manual_seed(3)
    a, b = keep_mask((1000,), 0.1), keep_mask((1000,), 0.1)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((1000,), 0.1), a)
    assert not torch.equal(a, b)


def test_module_is_identity_in_eval_mode_and_for_p_zero():
    x = torch.randn(8, 8)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_attention_with_dropout_still_masks_padding():
    torch.manual_seed(4)
    q, k, v = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]]).view(2, 1, 1, 5)
    out, weights = scaled_dot_product(q, k, v, mask, dropout=0.3, need_weights=True)
    assert out.shape == (2, 2, 3, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 3))
    assert (weights[1, :, :, 2:] == 0).all()
    # Changing padded values must not change the output, dropout or not.
    torch.manual_seed(5)
    out_a, _ = scaled_dot_product(q, k, v, mask, dropout=0.3)
    v2 = v.clone()
    v2[1, :, 2:] = 100.0
    torch.manual_seed(5)
    out_b, _ = scaled_dot_product(q, k, v2, mask, dropout=0.3)
    assert torch.allclose(out_a, out_b)


def test_mask_is_zero_or_one_uint8():
    torch.manual_seed(6)
    mask = keep_mask((7, 9), 0.3)
    assert mask.dtype == torch.uint8 and mask.shape == (7, 9)
    assert set(mask.unique().tolist()) <= {0, 1}


def test_dropout_benchmark_prints_every_way_for_both_dtypes():
    script = REPO / "tools" / "bench_dropout.py"
    done = subprocess.run(
        [sys.executable, str(script), "--shape", "8", "16", "--repeats", "1"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| fp32", "| bf16"))]
    assert len(rows) == 6 and all(float(line.split("|")[-2]) >= 0 for line in rows)


def test_mask_and_values_equal_the_bool_mask_of_the_same_draws():
    torch.manual_seed(9)
    mask = keep_mask((300, 7), 0.1)
    torch.manual_seed(9)
    words = torch.randint(-(2**63), 2**63 - 1, ((2100 + 3) // 4,), dtype=torch.int64)
    bool_mask = (words.view(torch.int16)[:2100] >= round(0.1 * 65536) - 32768).view(300, 7)
    assert torch.equal(mask.bool(), bool_mask)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(300, 7).to(dtype)
        torch.manual_seed(9)
        assert torch.equal(dropout(x, 0.1), x.mul(bool_mask).mul_(1 / 0.9))
