"""The chunked summed cross-entropy equals PyTorch's in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seq2seq.config.special_ids import PAD
from seq2seq.training import loss as loss_module
from seq2seq.training.loss import summed_token_loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_summed_loss_equals_pytorch_cross_entropy(monkeypatch, dtype, smoothing):
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 3 * 37)  # 3 rows a chunk: 7 chunks, the last short
    torch.manual_seed(0)
    logits = (3 * torch.randn(4, 5, 37)).to(dtype).requires_grad_()
    targets = torch.randint(1, 37, (4, 5))
    targets[0, 3:] = PAD
    targets[2, 1:] = PAD
    ours = summed_token_loss(logits, targets, smoothing)
    (grad,) = torch.autograd.grad(2.5 * ours, logits)
    reference_logits = logits.detach().float().requires_grad_()
    reference = F.cross_entropy(
        reference_logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, label_smoothing=smoothing, reduction="sum"
    )
    (reference_grad,) = torch.autograd.grad(2.5 * reference, reference_logits)
    assert ours.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-4)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 4e-3}
    torch.testing.assert_close(grad.float(), reference_grad, **tolerance)
    assert grad[0, 3:].abs().sum() == 0 and grad[2, 1:].abs().sum() == 0  # padding gets no gradient


def test_summed_loss_of_all_padding_is_zero_and_works_without_grad():
    logits = torch.randn(2, 3, 11)
    with torch.no_grad():
        assert summed_token_loss(logits, torch.full((2, 3), PAD)).item() == 0.0
        value = summed_token_loss(logits, torch.ones(2, 3, dtype=torch.long), 0.1)
    ones = torch.ones(6, dtype=torch.long)
    expected = F.cross_entropy(logits.flatten(0, 1), ones, label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(value, expected)
