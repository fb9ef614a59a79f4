"""Token-budget batches of length-sorted sentence pairs.

Pairs are sorted by length (ties broken at random each epoch) and cut into batches holding at
most ``batch_tokens`` tokens *including padding*, so every batch costs about the same and
padding stays small; the batch order is shuffled. Everything is a pure function of
``(seed, epoch)``, so the data position of a run is just ``(epoch, batch index)``.

Token ids are read zero-copy from the tokenized Arrow table (memory-mapped for on-disk
datasets): a corpus of millions of pairs is not turned into Python lists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from seq2seq.config.special_ids import BOS, EOS, PAD

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A padded batch. ``trg_in`` is ``<s> y``, ``trg_out`` is ``y </s>`` (None when decoding)."""

    src: Tensor  # (B, S)
    src_lengths: Tensor  # (B,)
    trg_in: Tensor | None  # (B, T)
    trg_out: Tensor | None  # (B, T)
    indices: np.ndarray  # (B,) row of each pair in its corpus

    @property
    def src_mask(self) -> Tensor:
        """``(B, S)`` bool, True on real tokens."""
        return self.src != PAD

    @property
    def n_trg_tokens(self) -> int:
        return int(self.trg_out.ne(PAD).sum()) if self.trg_out is not None else 0

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(move(self.src), move(self.src_lengths), move(self.trg_in), move(self.trg_out), self.indices)


class _Ragged:
    """A column of variable-length int sequences over the chunks of an Arrow list array."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.values: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        for chunk in column.chunks:
            if len(chunk) == 0:
                continue
            offsets = chunk.offsets.to_numpy()
            self.offsets.append(offsets)
            self.values.append(chunk.values.to_numpy(zero_copy_only=False))
        sizes = [len(o) - 1 for o in self.offsets]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.lengths = (
            np.concatenate([np.diff(o) for o in self.offsets]).astype(np.int64)
            if self.offsets
            else np.zeros(0, np.int64)
        )

    def __getitem__(self, i: int) -> np.ndarray:
        c = int(np.searchsorted(self.starts, i, side="right")) - 1
        j = i - self.starts[c]
        offsets = self.offsets[c]
        return self.values[c][offsets[j] : offsets[j + 1]]


class TokenizedCorpus:
    """Token ids of an encoded split (see :func:`seq2seq.data.corpus.encode_split`), by row."""

    def __init__(self, dataset, with_target: bool = True) -> None:
        table = dataset.with_format("arrow")
        self.src = _Ragged(table["src_ids"])
        self.trg = _Ragged(table["trg_ids"]) if with_target else None
        self.src_lengths = self.src.lengths
        self.trg_lengths = self.trg.lengths if self.trg is not None else np.zeros_like(self.src_lengths)

    def __len__(self) -> int:
        return len(self.src_lengths)

    def batch(self, indices: np.ndarray) -> Batch:
        """Pad the pairs at ``indices`` into a :class:`Batch` (CPU tensors)."""
        srcs = [self.src[int(i)] for i in indices]
        trgs = [self.trg[int(i)] for i in indices] if self.trg is not None else None
        return collate(srcs, trgs, np.asarray(indices))


def collate(srcs: list, trgs: list | None, indices: np.ndarray) -> Batch:
    """Pad source id sequences (EOS included) and target id sequences (without BOS/EOS)."""
    src_len = np.array([len(s) for s in srcs], dtype=np.int64)
    src = np.full((len(srcs), max(int(src_len.max()), 1)), PAD, dtype=np.int64)
    for row, ids in enumerate(srcs):
        src[row, : len(ids)] = ids
    trg_in = trg_out = None
    if trgs is not None:
        width = max(len(t) for t in trgs) + 1
        trg_in = np.full((len(trgs), width), PAD, dtype=np.int64)
        trg_out = np.full((len(trgs), width), PAD, dtype=np.int64)
        trg_in[:, 0] = BOS
        for row, ids in enumerate(trgs):
            n = len(ids)
            trg_in[row, 1 : n + 1] = ids
            trg_out[row, :n] = ids
            trg_out[row, n] = EOS
        trg_in, trg_out = torch.from_numpy(trg_in), torch.from_numpy(trg_out)
    return Batch(torch.from_numpy(src), torch.from_numpy(src_len), trg_in, trg_out, indices)


class TokenBatchSampler:
    """Batches of corpus rows holding about ``batch_tokens`` (padded) tokens each.

    ``keep`` selects the usable rows (e.g. length-filtered). The cost of a batch is
    ``n_pairs * max(longest source, longest target + 1)``.
    """

    def __init__(
        self,
        src_lengths: np.ndarray,
        trg_lengths: np.ndarray,
        batch_tokens: int,
        seed: int = 0,
        shuffle: bool = True,
        keep: np.ndarray | None = None,
    ) -> None:
        self.src_lengths = np.asarray(src_lengths)
        self.trg_lengths = np.asarray(trg_lengths)
        self.rows = np.arange(len(self.src_lengths)) if keep is None else np.flatnonzero(keep)
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.shuffle = shuffle

    def __len__(self) -> int:
        return len(self.batches(0))

    def batches(self, epoch: int = 0) -> list[np.ndarray]:
        """All batches of ``epoch``, each an array of corpus rows; every row exactly once."""
        rows = self.rows
        ties = np.random.default_rng([self.seed, epoch]).random(len(rows)) if self.shuffle else np.arange(len(rows))
        spans = token_batches(self.src_lengths[rows], self.trg_lengths[rows], self.batch_tokens, ties)
        batches = [rows[span] for span in spans]
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches


def token_batches(src_lengths: np.ndarray, trg_lengths: np.ndarray, budget: int, ties: np.ndarray) -> list[np.ndarray]:
    """Positions into the ``(N,)`` length arrays, sorted by cost (then source and target length,
    then ``ties``) and cut into batches costing at most ``budget`` padded tokens each (a pair
    longer than the budget gets a batch of its own). Cost: ``max(source, target + 1)`` per pair."""
    cost = np.maximum(src_lengths, trg_lengths + 1)
    order = np.lexsort((ties, trg_lengths, src_lengths, cost))
    return [order[a:b] for a, b in cut_batches(cost[order], budget)]


def cut_batches(sizes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split sorted per-pair sizes into ``[a, b)`` spans with ``(b - a) * max(size) <= budget``."""
    spans, start, longest = [], 0, 0
    for i, size in enumerate(sizes.tolist()):
        longest_if_added = max(longest, size)
        if i > start and (i - start + 1) * longest_if_added > budget:
            spans.append((start, i))
            start, longest_if_added = i, size
        longest = longest_if_added
    if len(sizes) > start:
        spans.append((start, len(sizes)))
    return spans


def sentence_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Rows sorted by length (longest first) in batches of ``batch_size``, for decoding."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
