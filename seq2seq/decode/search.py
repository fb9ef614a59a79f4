"""Decoding: greedy search and batched beam search over any decoder's ``step()``.

Both return, per source sentence, a list of :class:`Hypothesis` (best first). A hypothesis's
attention has one row per output token *including* the final ``</s>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from seq2seq.config.special_ids import BOS, EOS
from seq2seq.decode.shortlist import SPECIALS, RestrictedOutput
from seq2seq.model.seq2seq import Seq2Seq


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids, without </s>
    score: float  # log-probability (length-normalised for beam search; see beam_search)
    attention: Tensor | None = None  # (len(tokens) + 1, layers, heads, S_true)


def max_output_lengths(src_lengths: Tensor, ratio: float, extra: int) -> Tensor:
    """Per-sentence cap on output length (``</s>`` included): ``ceil(ratio * |src| + extra)``."""
    return torch.ceil(src_lengths.float() * ratio + extra).long().clamp(min=1)


def block_early_eos(log_probs: Tensor, t: int, min_length: int) -> Tensor:
    """Forbid ``</s>`` at step ``t`` (0-based) while fewer than ``min_length`` tokens were written.

    ``log_probs (..., V)``; returned unchanged from step ``min_length`` on. The length cap is
    applied afterwards and still forces ``</s>`` where it is reached first.
    """
    if t >= min_length:
        return log_probs
    return log_probs.index_fill(-1, torch.tensor([EOS], device=log_probs.device), float("-inf"))


def decoder_step(model: Seq2Seq, vocab: Tensor | None) -> Callable:
    """``model.decoder.step``, over the target ids ``vocab (U,)`` only when given (a shortlist:
    sorted, starting with the special ids, so ``</s>`` keeps its column ``EOS``)."""
    if vocab is None:
        return model.decoder.step
    if vocab.numel() < SPECIALS or not bool((vocab[:SPECIALS] == torch.arange(SPECIALS, device=vocab.device)).all()):
        raise ValueError("a shortlist vocabulary must be sorted ids starting with the special ids 0..3")
    return partial(model.decoder.step, output=RestrictedOutput(model.decoder.output, vocab))


@torch.no_grad()
def greedy_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_lengths: Tensor,
    return_attention: bool = False,
    min_length: int = 0,
    vocab: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """Pick the most probable token at each step; ``src (B, S)``, ``max_lengths (B,)``.

    ``</s>`` is not chosen before ``min_length`` tokens (unless ``max_lengths`` forces it).
    Finished sentences leave the batch, so the cost follows the longest unfinished output.
    With ``vocab (U,)`` (see :func:`decoder_step`) only those target ids are considered.
    """
    step = decoder_step(model, vocab)
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
        logits, state, step_attention = step(prev, state, encoder_out)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        column = block_early_eos(log_probs, t, min_length).argmax(dim=-1)
        column = torch.where(limits[alive] <= t + 1, torch.full_like(column, EOS), column)
        choice = column if vocab is None else vocab[column]
        out[alive, t] = choice
        scores[alive] += log_probs.gather(1, column.unsqueeze(1)).squeeze(1)
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
        attention = _weights(attention[: n + 1, ..., :src_length])
    return Hypothesis(ids[:n], score, attention)


def _weights(attention: Tensor) -> Tensor:
    """Attention rows as float32 on the CPU, renormalised: under bf16 autocast a softmax row sums
    to 1 only within ~0.3 %, and callers rely on rows that sum to 1."""
    attention = attention.float().cpu()
    return attention / attention.sum(-1, keepdim=True).clamp_min(1e-12)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + |Y|) / 6) ** alpha`` (Wu et al., 2016, eq. 14)."""
    return math.pow((5.0 + length) / 6.0, alpha)


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_lengths: Tensor,
    beam_size: int,
    n_best: int = 1,
    alpha: float = 1.0,
    return_attention: bool = False,
    min_length: int = 0,
    vocab: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """Batched beam search: the ``k`` beams of all ``B`` sentences advance as one ``(B*k)`` batch.

    At each step the ``2k`` best extensions of a sentence are ranked; those among the top ``k``
    that end in ``</s>`` are finished (scored ``log p / lp(|Y|)``, see :func:`length_penalty`),
    the best ``k`` others continue. A sentence is done once it has ``k`` finished hypotheses
    (or reaches its length cap, where ``</s>`` is forced); done sentences leave the batch.
    No hypothesis ends before ``min_length`` tokens unless its length cap comes first.
    Returns the ``n_best`` finished hypotheses of each sentence, best first. ``beam_size=1``
    gives exactly the greedy output. With ``vocab (U,)`` (see :func:`decoder_step`) only those
    target ids are considered.
    """
    step = decoder_step(model, vocab)
    k, b, device = beam_size, src.size(0), src.device
    encoder_out = model.encode(src, src_lengths)
    state = model.decoder.init_state(encoder_out).reorder(torch.arange(b, device=device).repeat_interleave(k))
    beams = _Beams(b, k, device, src_lengths.tolist(), alpha, return_attention, vocab)
    limits = max_lengths.to(device)
    for t in range(int(limits.max())):
        logits, state, attention = step(beams.prev, state, encoder_out)
        raw = torch.log_softmax(logits.float(), dim=-1).view(beams.size, k, -1)
        log_probs = block_early_eos(raw, t, min_length)
        at_limit = limits[beams.alive] <= t + 1
        if bool(at_limit.any()):  # force </s>: only it keeps a finite score
            eos_scores = raw[at_limit, :, EOS].clone()
            log_probs[at_limit] = float("-inf")
            log_probs[at_limit, :, EOS] = eos_scores
        hyp_index, keep = beams.advance(log_probs, attention, t, at_limit)
        if keep is not None and keep.numel() == 0:
            break
        state = state.reorder(hyp_index, sources=keep)
        if keep is not None:
            encoder_out = encoder_out.select(keep)
    return beams.results(n_best)


class _Beams:
    """Bookkeeping of :func:`beam_search`: scores, token and attention histories, finished lists."""

    def __init__(
        self,
        b: int,
        k: int,
        device: torch.device,
        src_lengths: list[int],
        alpha: float,
        keep_attention: bool,
        vocab: Tensor | None = None,
    ) -> None:
        self.k, self.alpha, self.src_lengths, self.keep_attention = k, alpha, src_lengths, keep_attention
        self.vocab = vocab  # target id of each logit column (None: the column is the id)
        self.alive = torch.arange(b, device=device)  # original sentence of each active row
        self.scores = torch.full((b, k), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # all beams start identical: expand only the first
        self.tokens = torch.zeros((b, k, 0), dtype=torch.long, device=device)
        self.attention: Tensor | None = None  # (B', k, t, layers, heads, S)
        self.prev = torch.full((b * k,), BOS, dtype=torch.long, device=device)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(b)]

    @property
    def size(self) -> int:
        return self.alive.numel()

    def advance(self, log_probs: Tensor, attention: Tensor, t: int, at_limit: Tensor) -> tuple[Tensor, Tensor | None]:
        """One step: ``log_probs (B', k, V)``, ``attention (B'k, layers, heads, S)``.

        Returns the hypothesis rows to keep (into the old ``B'k`` rows) and, when sentences
        finished, the source rows to keep (None when all stay).
        """
        n, k = self.size, self.k
        width = log_probs.size(-1)  # V, or U with a shortlist
        candidates = (self.scores.unsqueeze(-1) + log_probs).view(n, k * width)
        top_scores, top_ids = candidates.topk(2 * k, dim=-1)  # (B', 2k)
        origin, token = top_ids // width, top_ids % width
        if self.vocab is not None:
            token = self.vocab[token]
        step_attention = attention.view(n, k, *attention.shape[1:]) if self.keep_attention else None
        ends = (token == EOS) & torch.isfinite(top_scores)
        if bool(ends[:, :k].any()):
            self._finish(ends[:, :k], top_scores, origin, step_attention, t)
        # The k best extensions that do not end continue (at least k of the 2k do not end).
        scores, pick = top_scores.masked_fill(token == EOS, float("-inf")).topk(k, dim=-1)
        origin, token = origin.gather(1, pick), token.gather(1, pick)  # (B', k)
        self._extend(origin, token, step_attention)
        full = [len(self.finished[i]) >= k for i in self.alive.tolist()]
        done = at_limit | torch.tensor(full, device=at_limit.device)
        rows = torch.arange(n, device=origin.device)
        if not bool(done.any()):
            self.scores, self.prev = scores, token.view(-1)
            return (rows.unsqueeze(1) * k + origin).view(-1), None
        keep = (~done).nonzero().squeeze(1)
        self.alive, self.scores, self.prev = self.alive[keep], scores[keep], token[keep].view(-1)
        self.tokens = self.tokens[keep]
        if self.attention is not None:
            self.attention = self.attention[keep]
        return (keep.unsqueeze(1) * k + origin[keep]).view(-1), keep

    def _extend(self, origin: Tensor, token: Tensor, step_attention: Tensor | None) -> None:
        """Append ``token (B', k)`` to the histories of the beams they extend."""
        index = origin.unsqueeze(-1)
        self.tokens = torch.cat([self.tokens.gather(1, index.expand_as(self.tokens)), token.unsqueeze(-1)], dim=-1)
        if step_attention is not None:
            step = _gather_beams(step_attention, origin).unsqueeze(2)
            past = _gather_beams(self.attention, origin) if self.attention is not None else None
            self.attention = step if past is None else torch.cat([past, step], dim=2)

    def _finish(self, ends: Tensor, scores: Tensor, origin: Tensor, step_attention: Tensor | None, t: int) -> None:
        """Record hypotheses that end with ``</s>`` at step ``t`` (``ends (B', k)`` over top ranks)."""
        penalty = length_penalty(t + 1, self.alpha)
        at = ends.nonzero()  # (E, 2): row and rank of each ending hypothesis
        rows, ranks = at[:, 0], at[:, 1]
        beams = origin[rows, ranks]
        # one conversion to Python per step, not a few tensor indexings per hypothesis
        histories = self.tokens[rows, beams].tolist()
        ended = zip(rows.tolist(), beams.tolist(), scores[rows, ranks].tolist(), histories)
        for (row, beam, score, tokens), sentence in zip(ended, self.alive[rows].tolist()):
            if len(self.finished[sentence]) >= self.k:
                continue
            attention = None
            if step_attention is not None:
                steps = [step_attention[row, beam].unsqueeze(0)]
                if self.attention is not None:
                    steps.insert(0, self.attention[row, beam])
                attention = _weights(torch.cat(steps)[..., : self.src_lengths[sentence]])
            self.finished[sentence].append(Hypothesis(tokens, score / penalty, attention))

    def results(self, n_best: int) -> list[list[Hypothesis]]:
        return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in self.finished]


def _gather_beams(x: Tensor, origin: Tensor) -> Tensor:
    """``x (B', k, ...)`` reordered along beams by ``origin (B', k)``."""
    index = origin.view(*origin.shape, *([1] * (x.dim() - 2))).expand(*origin.shape, *x.shape[2:])
    return x.gather(1, index)
