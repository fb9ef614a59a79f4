"""The training and dev loss: cross-entropy summed over the real (non-padding) target tokens."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from seq2seq.vocab import PAD


def summed_token_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Sum over tokens of the (label-smoothed) negative log-likelihood; ``PAD`` targets count zero.

    ``logits (B, T, V)`` in any precision (the loss is computed in fp32), ``targets (B, T)``.
    Returns a scalar; divide by the number of target tokens for the per-token mean.
    """
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        targets.flatten(),
        ignore_index=PAD,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
