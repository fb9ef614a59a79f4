"""Attention: additive (Bahdanau), dot-product (Luong) and multi-head scaled dot-product.

All attentions share one interface::

    keys = attention.prepare_keys(encoder_states)       # once per source, kept by the caller
    context, weights = attention(query, keys, values, mask)

with ``query (B, T, Dq)``, ``keys (B, S, Dk)``, ``values (B, S, Dv)``, ``mask (B, S)`` bool (True
on real tokens), ``context (B, T, Dv)`` and ``weights (B, T, S)``. Several queries per source row
(``T > 1``) serve teacher forcing and beam search alike: the ``k`` hypotheses of one sentence
are ``k`` queries against the same keys, so keys are never copied per beam. Weights are always
returned, never stored on the module; padding gets exactly zero weight.

* Bahdanau et al. (2015), "Neural Machine Translation by Jointly Learning to Align and
  Translate", eq. 6: ``score(q, k) = v^T tanh(W q + U k)``.
* Luong et al. (2015), "Effective Approaches to Attention-based NMT", eq. 8:
  ``score(q, k) = q^T k`` (dot) or ``q^T W k`` (general), here optionally divided by
  ``sqrt(d)`` (Vaswani et al., 2017, eq. 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.model.dropout import dropout as drop


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis of ``scores (B, ..., S)`` with ``mask (B, S)`` False -> 0."""
    shape = (mask.size(0),) + (1,) * (scores.dim() - 2) + (mask.size(-1),)
    return scores.masked_fill(~mask.view(shape), float("-inf")).softmax(dim=-1)


class Attention(nn.Module):
    """Base class: ``prepare_keys`` once per source, then ``forward`` per (batch of) queries."""

    def prepare_keys(self, encoder_states: Tensor) -> Tensor:
        """``(B, S, Denc) -> (B, S, Dk)``: the part of the score that depends on keys only."""
        return encoder_states

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """``(B, T, Dq), (B, S, Dk) -> (B, T, S)`` unnormalised scores."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``context (B, T, Dv)`` and ``weights (B, T, S)`` (rows sum to 1, 0 on padding)."""
        weights = masked_softmax(self.score(query, keys), mask)
        return torch.bmm(weights, values), weights


class BahdanauAttention(Attention):
    """Additive attention, ``v^T tanh(W q + U k)``; ``U k`` is precomputed by ``prepare_keys``.

    Computed as ``2 v^T sigmoid(2 W q + 2 U k)``, which is ``v^T tanh(W q + U k) + sum(v)``
    (``tanh(z) = 2 sigmoid(2z) - 1``): the constant ``sum(v)`` is the same for every source
    position, so the softmax over positions, the weights and the context are unchanged. On a CPU
    PyTorch's ``sigmoid`` is 3-10x faster than its ``tanh`` (which was a fifth of an RNN beam
    search step), and the factors 2 cost nothing over the ``(B, T, S, A)`` tensor: ``2 U k`` is
    stored by ``prepare_keys`` and ``2 W q`` is per query.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)  # U
        self.query_layer = nn.Linear(query_size, hidden_size, bias=False)  # W
        self.energy_layer = nn.Linear(hidden_size, 1, bias=False)  # v

    def prepare_keys(self, encoder_states: Tensor) -> Tensor:
        """``(B, S, Denc) -> 2 U k (B, S, A)``."""
        return self.key_layer(encoder_states) * 2

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """``v^T tanh(W q + U k) + sum(v)``, ``(B, T, Dq), (B, S, A) -> (B, T, S)``."""
        q = self.query_layer(query) * 2  # (B, T, A)
        gate = torch.sigmoid_(q.unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, A)
        return self.energy_layer(gate).squeeze(-1) * 2


class DotProductAttention(Attention):
    """Multiplicative attention ``q^T k`` or, with ``general``, ``q^T W k`` (``W k`` precomputed).

    Without ``general`` the query and key sizes must match. ``scale`` divides by ``sqrt(Dq)``.
    """

    def __init__(self, query_size: int, key_size: int, scale: bool = True, general: bool = False) -> None:
        super().__init__()
        if not general and query_size != key_size:
            raise ValueError(
                "dot attention without a weight matrix needs equal query and key sizes, "
                f"got {query_size} and {key_size}"
            )
        self.key_layer = nn.Linear(key_size, query_size, bias=False) if general else None
        self.scale = 1.0 / math.sqrt(query_size) if scale else 1.0

    def prepare_keys(self, encoder_states: Tensor) -> Tensor:
        return self.key_layer(encoder_states) if self.key_layer is not None else encoder_states

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query * self.scale, keys.transpose(1, 2))


def scaled_dot_product(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float = 0.0, need_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    """``softmax(q k^T / sqrt(d)) v`` over heads: ``q (B, H, T, d)``, ``k, v (B, H, S, d)``.

    ``mask`` is bool, True where attention is allowed, broadcastable to ``(B, H, T, S)``.
    Returns ``(out (B, H, T, d), weights (B, H, T, S) or None)``. Without weights it uses
    PyTorch's fused ``scaled_dot_product_attention`` (on CPU only without dropout: with
    dropout that falls back to per-element ``bernoulli_``, 2.5x slower than our mask).
    """
    if not need_weights and (dropout == 0.0 or q.device.type != "cpu"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    attended = drop(weights, dropout) if dropout > 0 else weights
    return torch.matmul(attended, v), (weights if need_weights else None)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017, eq. 1 and section 3.2.2)."""

    def __init__(self, size: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if size % heads:
            raise ValueError(f"model size {size} is not divisible by {heads} heads")
        self.heads = heads
        self.head_size = size // heads
        self.query = nn.Linear(size, size)
        self.key_value = nn.Linear(size, 2 * size)
        self.out = nn.Linear(size, size)
        self.dropout = dropout

    def split_heads(self, x: Tensor) -> Tensor:
        """``(B, T, D) -> (B, H, T, D/H)``."""
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_size).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``memory (B, S, D)``, each ``(B, H, S, D/H)``."""
        k, v = self.key_value(memory).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def attend(
        self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Queries from ``x (B, T, D)`` against projected ``k, v (B, H, S, D/H)``.

        Returns ``(out (B, T, D), weights (B, H, T, S) or None)``.
        """
        q = self.split_heads(self.query(x))
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product(q, k, v, mask, p, need_weights)
        b, _, t, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, t, -1)), weights

    def forward(
        self, x: Tensor, memory: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        k, v = self.project_kv(memory)
        return self.attend(x, k, v, mask, need_weights)
