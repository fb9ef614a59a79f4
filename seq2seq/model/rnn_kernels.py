"""The training-time recurrence of a (bidirectional, multi-layer) ``nn.GRU`` / ``nn.LSTM``.

:func:`run_rnn` computes what ``rnn(pack_padded_sequence(x, lengths))`` computes, with the
module's own weights, but in a form that is cheaper to differentiate on a CPU: the input
projection of every time step is one matrix product per layer and direction, the steps are
taken with ``unbind`` (whose gradient is one ``stack``), and padding is handled by holding the
state where ``mask`` is False instead of shrinking the batch. PyTorch's packed implementation
slices the input once per step, and each slice's gradient is a zero-filled copy of the whole
``(B, S, 3H)`` projection: memory traffic quadratic in the sentence length.

Gate equations as documented for ``torch.nn.GRU`` and ``torch.nn.LSTM`` (same weight layout):

    GRU:  r, z = sigmoid(W_ir x + b_ir + W_hr h + b_hr), sigmoid(...);
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h
    LSTM: i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_i x + b_i + W_h h + b_h);
          c' = f * c + i * g;  h' = o * tanh(c')
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def run_rnn(rnn: nn.GRU | nn.LSTM, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``x (B, S, E)`` (batch first), ``mask (B, S)`` (True on real tokens, padding at the end)
    -> ``output (B, S, dirs*H)`` (zero on padding) and the last layer-by-direction states
    ``h_n (layers*dirs, B, H)`` (each sentence's state after its own last token), as the packed
    ``rnn`` returns them. Dropout between layers as ``rnn.dropout`` says, in training."""
    directions = 2 if rnn.bidirectional else 1
    keep = mask.unsqueeze(-1).unbind(1)  # S x (B, 1)
    finals = []
    layer_input = x
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0:
            layer_input = F.dropout(layer_input, rnn.dropout, rnn.training)
        outputs = []
        for direction in range(directions):
            weights = _weights(rnn, layer, direction)
            output, final = _one_direction(rnn, layer_input, keep, weights, reverse=direction == 1)
            outputs.append(output)
            finals.append(final)
        layer_input = torch.cat(outputs, dim=-1) if directions > 1 else outputs[0]
    return layer_input * mask.unsqueeze(-1).to(layer_input.dtype), torch.stack(finals)


def _weights(rnn: nn.GRU | nn.LSTM, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """``(W_ih, W_hh, b_ih, b_hh)`` of one layer and direction (biases None without ``bias``)."""
    suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
    w_ih, w_hh, b_ih, b_hh = (
        getattr(rnn, name + suffix, None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    return w_ih, w_hh, b_ih, b_hh


def _one_direction(
    rnn: nn.GRU | nn.LSTM,
    x: Tensor,
    keep: tuple[Tensor, ...],
    weights: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    """One layer in one direction: ``x (B, S, In)`` -> ``(B, S, H)`` and the final ``(B, H)``."""
    w_ih, w_hh, b_ih, b_hh = weights
    projected = F.linear(x, w_ih, b_ih).unbind(1)  # S x (B, gates*H)
    h = x.new_zeros(x.size(0), rnn.hidden_size)  # in x's dtype, as nn.GRU keeps its state under autocast
    c = h if isinstance(rnn, nn.LSTM) else None
    outputs: list[Tensor] = [h] * len(projected)
    order = range(len(projected) - 1, -1, -1) if reverse else range(len(projected))
    for t in order:
        recurrent = F.linear(h, w_hh, b_hh)
        if c is None:
            new_h = _gru_cell(projected[t], recurrent, h)
        else:
            new_h, new_c = _lstm_cell(projected[t], recurrent, c)
            c = torch.where(keep[t], new_c, c)
        h = torch.where(keep[t], new_h, h)
        outputs[t] = h
    return torch.stack(outputs, dim=1), h


def _gru_cell(projected: Tensor, recurrent: Tensor, h: Tensor) -> Tensor:
    """One GRU step from the input and hidden projections, each ``(B, 3H)``; returns ``(B, H)``."""
    in_r, in_z, in_n = projected.chunk(3, dim=-1)
    hid_r, hid_z, hid_n = recurrent.chunk(3, dim=-1)
    r = torch.sigmoid(in_r + hid_r)
    z = torch.sigmoid(in_z + hid_z)
    n = torch.tanh(in_n + r * hid_n)
    return n + z * (h - n)


def _lstm_cell(projected: Tensor, recurrent: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from the input and hidden projections, each ``(B, 4H)``; returns ``(h, c)``."""
    i, f, g, o = (projected + recurrent).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
