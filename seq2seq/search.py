"""Decoding: greedy search and batched beam search over any decoder's ``step()``.

Both return, per source sentence, a list of :class:`Hypothesis` (best first). A hypothesis's
attention has one row per output token *including* the final ``</s>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import BOS, EOS


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids, without </s>
    score: float  # log-probability (length-normalised for beam search; see beam_search)
    attention: Tensor | None = None  # (len(tokens) + 1, layers, heads, S_true)


def max_output_lengths(src_lengths: Tensor, ratio: float, extra: int) -> Tensor:
    """Per-sentence cap on output length (``</s>`` included): ``ceil(ratio * |src| + extra)``."""
    return torch.ceil(src_lengths.float() * ratio + extra).long().clamp(min=1)


@torch.no_grad()
def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_lengths: Tensor,
    return_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Pick the most probable token at each step; ``src (B, S)``, ``max_lengths (B,)``.

    Finished sentences leave the batch, so the cost follows the longest unfinished output.
    """
    encoder_out = model.encode(src, src_lengths)
    state = model.decoder.init_state(encoder_out)
    b, device = src.size(0), src.device
    limits = max_lengths.to(device)
    steps = int(limits.max())
    alive = torch.arange(b, device=device)  # original row of each active row
    prev = torch.full((b,), BOS, dtype=torch.long, device=device)
    out = torch.full((b, steps), EOS, dtype=torch.long, device=device)
    scores = torch.zeros(b, device=device)
    attention = None
    for t in range(steps):
        logits, state, step_attention = model.decoder.step(prev, state, encoder_out)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        choice = log_probs.argmax(dim=-1)
        choice = torch.where(limits[alive] <= t + 1, torch.full_like(choice, EOS), choice)
        out[alive, t] = choice
        scores[alive] += log_probs.gather(1, choice.unsqueeze(1)).squeeze(1)
        if return_attention:
            if attention is None:
                attention = step_attention.new_zeros((b, steps) + step_attention.shape[1:])
            attention[alive, t] = step_attention
        done = choice == EOS
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            alive, choice = alive[keep], choice[keep]
            state = state.reorder(keep, sources=keep)
            encoder_out = encoder_out.select(keep)
        prev = choice
    return [
        [_hypothesis(row, float(score), None if attention is None else attention[i], length)]
        for i, (row, score, length) in enumerate(zip(out.tolist(), scores.tolist(), src_lengths.tolist()))
    ]


def _hypothesis(ids: list[int], score: float, attention: Tensor | None, src_length: int) -> Hypothesis:
    """Cut ``ids`` at the first EOS; keep one attention row per output token plus EOS."""
    n = ids.index(EOS) if EOS in ids else len(ids)
    if attention is not None:
        attention = attention[: n + 1, ..., :src_length].float().cpu()
    return Hypothesis(ids[:n], score, attention)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + |Y|) / 6) ** alpha`` (Wu et al., 2016, eq. 14)."""
    return math.pow((5.0 + length) / 6.0, alpha)
