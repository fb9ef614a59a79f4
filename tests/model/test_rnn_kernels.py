"""The training-time recurrence (seq2seq.model.rnn_kernels.run_rnn) is the packed nn.GRU/LSTM, value and gradient."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.model.encoders import RNNEncoder
from seq2seq.model.rnn_kernels import run_rnn


def packed_reference(rnn: nn.GRU | nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    output, hidden = rnn(packed)
    output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.size(1))
    return output, hidden[0] if isinstance(hidden, tuple) else hidden


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
def test_run_rnn_equals_the_packed_module_in_value_and_gradient(cell, bidirectional, layers):
    torch.manual_seed(0)
    rnn = cell(6, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional)
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 6, requires_grad=True)
    mask = torch.arange(7) < lengths.unsqueeze(1)

    ours, ours_h = run_rnn(rnn, x, mask)
    theirs, theirs_h = packed_reference(rnn, x, lengths)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_h, theirs_h, rtol=1e-5, atol=1e-6)
    assert ours[~mask].abs().max() == 0  # padding positions are zero, as pad_packed_sequence leaves them

    weights = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weights).sum() + ours_h.sum(), [x, *rnn.parameters()])
    reference = torch.autograd.grad((theirs * weights).sum() + theirs_h.sum(), [x, *rnn.parameters()])
    for g, r in zip(grads, reference, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
    assert grads[0][~mask].abs().max() == 0  # padding inputs do not influence anything


def test_the_encoder_trains_with_run_rnn_and_evaluates_with_the_packed_module():
    torch.manual_seed(0)
    encoder = RNNEncoder(6, 5, num_layers=2, rnn_type="gru", bidirectional=True, dropout=0.0)
    lengths = torch.tensor([4, 2, 3])
    emb = torch.randn(3, 4, 6)
    mask = torch.arange(4) < lengths.unsqueeze(1)
    training = encoder.train()(emb, mask, lengths)
    evaluating = encoder.eval()(emb, mask, lengths)
    torch.testing.assert_close(training.states, evaluating.states, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(training.summary, evaluating.summary, rtol=1e-5, atol=1e-6)


def test_under_bf16_autocast_the_state_is_kept_in_the_input_dtype_and_close_to_fp32():
    torch.manual_seed(0)
    rnn = nn.GRU(8, 8, batch_first=True, bidirectional=True)
    x = torch.randn(3, 12, 8)
    mask = torch.arange(12) < torch.tensor([[12], [6], [9]])
    exact, _ = run_rnn(rnn, x, mask)
    with torch.autocast("cpu", torch.bfloat16):
        low, hidden = run_rnn(rnn, x, mask)
    assert hidden.dtype == torch.float32
    assert (low.float() - exact).abs().max() < 0.05
