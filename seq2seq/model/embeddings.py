"""Token embeddings and sinusoidal positional encodings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seq2seq.config.special_ids import PAD


def to_autocast_dtype(x: Tensor) -> Tensor:
    """``x`` in the autocast dtype when autocast is on for its device (else unchanged)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return x.to(torch.get_autocast_dtype(device))
    return x


def build_embedding(vocab_size: int, dim: int) -> nn.Embedding:
    """An embedding table initialised ``N(0, 1/dim)`` with a zero, untrained padding row."""
    embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
    nn.init.normal_(embedding.weight, mean=0.0, std=dim**-0.5)
    with torch.no_grad():
        embedding.weight[PAD].zero_()
    return embedding


class PositionalEncoding(nn.Module):
    """Adds ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(...)`` (Vaswani et al.)."""

    def __init__(self, dim: int, max_len: int = 1024) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("table", self._table(max_len), persistent=False)

    def _table(self, length: int) -> Tensor:
        position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
        rate = torch.exp(torch.arange(0, self.dim, 2, dtype=torch.float32) * (-math.log(10000.0) / self.dim))
        table = torch.zeros(length, self.dim)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate[: self.dim // 2])
        return table

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """``x (B, T, D)`` plus the encodings of positions ``start .. start+T-1``."""
        end = start + x.size(1)
        if end > self.table.size(0):
            self.table = self._table(2 * end).to(self.table.device)
        return x + self.table[start:end].to(x.dtype)
