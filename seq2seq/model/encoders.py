"""Encoders: token embeddings ``(B, S, E)`` -> :class:`EncoderOutput`.

* :class:`RNNEncoder`: multi-layer, optionally bidirectional GRU/LSTM over packed sequences
  (Bahdanau et al., 2015, section 3.2); in training on a CPU the same recurrence runs
  as :func:`seq2seq.model.rnn_kernels.run_rnn`, which is cheaper to differentiate.
* :class:`TransformerEncoder`: pre-norm Transformer layers (Vaswani et al., 2017; pre-norm as in
  Xiong et al., 2020) with sinusoidal positions and padding masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq.model.attention import MultiHeadAttention
from seq2seq.model.dropout import Dropout
from seq2seq.model.embeddings import PositionalEncoding, to_autocast_dtype
from seq2seq.model.rnn_kernels import run_rnn


@dataclass
class EncoderOutput:
    """Encoder states of a batch of source sentences."""

    states: Tensor  # (B, S, H) one vector per source token
    mask: Tensor  # (B, S) bool, True on real tokens
    summary: Tensor  # (B, H) one vector per sentence, to initialise an RNN decoder
    self_attention: list[Tensor] | None = None  # per layer (B, heads, S, S), when asked for

    def select(self, index: Tensor) -> EncoderOutput:
        """Keep the sentences at ``index (B',)`` (in that order)."""
        return EncoderOutput(
            self.states.index_select(0, index),
            self.mask.index_select(0, index),
            self.summary.index_select(0, index),
            None if self.self_attention is None else [a.index_select(0, index) for a in self.self_attention],
        )


class RNNEncoder(nn.Module):
    """Bidirectional (or not) multi-layer GRU/LSTM; ``hidden_size`` is per direction."""

    def __init__(
        self,
        emb_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        rnn_type: str = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.emb_dropout = Dropout(emb_dropout)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[rnn_type]
        self.rnn = rnn(
            emb_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions

    def forward(self, emb: Tensor, mask: Tensor, lengths: Tensor, need_weights: bool = False) -> EncoderOutput:
        """``emb (B, S, E)``, ``mask (B, S)``, ``lengths (B,)`` -> states ``(B, S, dirs*H)``."""
        emb = self.emb_dropout(emb)
        if self.training and torch.is_grad_enabled() and emb.device.type == "cpu":
            # The same function of the same weights, cheaper to differentiate on a CPU
            # (seq2seq.model.rnn_kernels); on CUDA, cuDNN's fused packed recurrence is faster.
            states, hidden = run_rnn(self.rnn, emb, mask)
        else:  # PyTorch's packed recurrence (also what int8 quantisation replaces)
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            output, hidden = self.rnn(packed)
            states, _ = pad_packed_sequence(output, batch_first=True, total_length=emb.size(1))
            if isinstance(hidden, tuple):  # LSTM: (h, c)
                hidden = hidden[0]
        # hidden: (layers * dirs, B, H); the summary is the last layer's final state(s).
        last = hidden.view(-1, self.directions, hidden.size(1), hidden.size(2))[-1]  # (dirs, B, H)
        summary = torch.cat(list(last), dim=-1)  # (B, dirs * H)
        return EncoderOutput(self.dropout(states), mask, summary)


def feed_forward(size: int, ff_size: int, dropout: float) -> nn.Sequential:
    """The position-wise feed-forward block ``W2 relu(W1 x)`` of Transformer layers (eq. 2)."""
    return nn.Sequential(nn.Linear(size, ff_size), nn.ReLU(), Dropout(dropout), nn.Linear(ff_size, size))


class TransformerEncoderLayer(nn.Module):
    """``x + SelfAttn(LN(x))`` then ``x + FF(LN(x))``."""

    def __init__(self, size: int, heads: int, ff_size: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(size)
        self.self_attn = MultiHeadAttention(size, heads, attention_dropout)
        self.norm2 = nn.LayerNorm(size)
        self.feed_forward = feed_forward(size, ff_size, dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x (B, S, D)``, ``attn_mask (B, 1, 1, S)`` -> ``(B, S, D)`` and ``(B, heads, S, S)``."""
        h = self.norm1(x)
        attended, weights = self.self_attn(h, h, attn_mask, need_weights)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.norm2(x)))
        return x, weights


class TransformerEncoder(nn.Module):
    def __init__(
        self,
        emb_dim: int,
        size: int,
        num_layers: int,
        heads: int,
        ff_size: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        emb_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.input = nn.Linear(emb_dim, size) if emb_dim != size else nn.Identity()
        self.scale = math.sqrt(size)
        self.positions = PositionalEncoding(size)
        self.emb_dropout = Dropout(emb_dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(size, heads, ff_size, dropout, attention_dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(size)
        self.output_size = size

    def forward(self, emb: Tensor, mask: Tensor, lengths: Tensor, need_weights: bool = False) -> EncoderOutput:
        """``emb (B, S, E)``, ``mask (B, S)`` -> states ``(B, S, D)``; summary = masked mean."""
        # Under autocast the residual stream is kept in its dtype (bf16): layer norms and residual
        # additions then need no fp32 copies, and every product's input is cast once, not per layer.
        x = to_autocast_dtype(self.emb_dropout(self.positions(self.input(emb) * self.scale)))
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, S)
        weights = []
        for layer in self.layers:
            x, w = layer(x, attn_mask, need_weights)
            weights.append(w)
        states = self.norm(x)
        m = mask.unsqueeze(-1).to(states.dtype)
        summary = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return EncoderOutput(states, mask, summary, weights if need_weights else None)
