"""Vocabulary shortlists: decode over the target tokens a batch's sources make plausible.

The output layer, its softmax and the beam's top-k read every one of the ``V`` target tokens at
every step; for a small model that is most of a decoding step. A lexical shortlist (Jean et
al., 2015; Marian's ``--shortlist``, CTranslate2's vocabulary map) keeps, per batch, only

* the ``frequent`` most frequent target tokens of the training data,
* for each token of the batch's sources, the ``per_source`` target tokens most often found in
  the training targets whose source holds it (ranked by ``p(t | s) = c(s, t) / c(s)``, counted
  once per sentence pair; ties go to the more frequent target token),
* the special ids ``<pad> <unk> <s> </s>`` (0-3),

and the search runs over those ``U`` tokens (sorted ids, so the specials are columns 0-3 and
``</s>`` keeps its column). Probabilities are normalised over the shortlist: an approximation,
which ``seq2seq-benchmark translate`` measures (BLEU, and the share of outputs equal to
full-vocabulary decoding).

A shortlist is built from the checkpoint's training data (``seq2seq-export format=shortlist``)
and stored with a digest of the sentencepiece models, so it is never used with another vocabulary.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.config.special_ids import EOS
from seq2seq.utils.errors import ConfigError
from seq2seq.utils.files import atomic_save, check_readable

if TYPE_CHECKING:  # the search imports this module; it need not load sentencepiece
    from seq2seq.data.tokenizer import Tokenizers

SPECIALS = EOS + 1  # ids 0..EOS are in every shortlist
FORMAT_VERSION = 1
PAIRS_PER_MERGE = 20_000  # sentence pairs counted between merges of the co-occurrence table


@dataclass
class Shortlist:
    """Candidate target ids per source id, plus the always-allowed frequent ones."""

    candidates: Tensor  # (V_src, per_source) long, -1 where a source token has fewer candidates
    frequent: Tensor  # (F,) long
    trg_vocab_size: int
    digest: str  # of the tokenizers it was built with (see :func:`tokenizer_digest`)
    source: str = "the shortlist"  # where it was loaded from, for messages
    _tables: dict = field(default_factory=dict, repr=False, compare=False)  # device -> (candidates, always)

    def for_batch(self, src: Tensor) -> Tensor:
        """The sorted target ids ``(U,)`` allowed for the sources ``src (B, S)`` (padding is harmless)."""
        if src.device not in self._tables:  # copied to a GPU once, not once per batch
            always = torch.cat([torch.arange(SPECIALS), self.frequent])
            self._tables[src.device] = (self.candidates.to(src.device), always.to(src.device))
        table, always = self._tables[src.device]
        candidates = table[src.reshape(-1)].reshape(-1)
        return torch.unique(torch.cat([always, candidates[candidates >= 0]]))  # sorted

    def check_tokenizers(self, tokenizers: Tokenizers) -> None:
        """A one-line error when this shortlist was built for other sentencepiece models, or its
        table does not cover their vocabularies (a crafted file can copy a genuine digest)."""
        if self.digest != tokenizer_digest(tokenizers) or self.trg_vocab_size != len(tokenizers.trg):
            raise ConfigError(
                f"shortlist={self.source} was built for other sentencepiece models than the checkpoint's; "
                "build one for it with seq2seq-export format=shortlist"
            )
        if len(self.candidates) != len(tokenizers.src):
            raise ConfigError(
                f"shortlist={self.source} is damaged: its candidate table has {len(self.candidates)} rows but the "
                f"source vocabulary has {len(tokenizers.src)} ids"
            )

    def save(self, path: str | Path, meta: dict | None = None) -> None:
        """Write atomically (``torch.save`` of plain tensors and numbers)."""
        payload = {
            "format": FORMAT_VERSION,
            "candidates": self.candidates.to(torch.int32),
            "frequent": self.frequent.to(torch.int32),
            "trg_vocab_size": self.trg_vocab_size,
            "digest": self.digest,
            "meta": dict(meta or {}),
        }
        atomic_save(path, lambda handle: torch.save(payload, handle))

    @classmethod
    def load(cls, path: str | Path, tokenizers: Tokenizers | None = None) -> Shortlist:
        """Read a file written by :meth:`save`; a one-line error for anything else, and (with
        ``tokenizers``) for a shortlist built for other sentencepiece models."""
        shortlist = cls._read(path)
        if tokenizers is not None:
            shortlist.check_tokenizers(tokenizers)
        return shortlist

    @classmethod
    def _read(cls, path: str | Path) -> Shortlist:
        check_readable(path, "shortlist")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {payload.get('format')!r}")
            candidates, frequent = payload["candidates"], payload["frequent"]
            trg_vocab_size, digest = payload["trg_vocab_size"], payload["digest"]
        except Exception as err:  # a pickle of anything, a truncated file, another format
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
            raise ConfigError(
                f"shortlist={path} is not a shortlist written by seq2seq-export format=shortlist ({reason})"
            ) from None
        problem = _table_problem(candidates, frequent, trg_vocab_size, digest)
        if problem:
            raise ConfigError(f"shortlist={path} is damaged: {problem}")
        return cls(candidates.long(), frequent.long(), trg_vocab_size, digest, str(path))


def _table_problem(candidates: object, frequent: object, trg_vocab_size: object, digest: object) -> str | None:
    """What is wrong with a shortlist's stored values (None: sound). The row count is checked
    against the source vocabulary in :meth:`Shortlist.check_tokenizers`."""
    if type(trg_vocab_size) is not int or trg_vocab_size < 1:
        return f"trg_vocab_size must be a positive integer, got {trg_vocab_size!r:.40}"
    if not isinstance(digest, str):
        return f"digest must be a string, got a {type(digest).__name__}"
    # -1 pads the row of a source id with fewer candidates; frequent ids are real ids.
    for name, table, dims, low in (("candidates", candidates, 2, -1), ("frequent", frequent, 1, 0)):
        problem = _ids_problem(name, table, dims, low, trg_vocab_size)
        if problem:
            return problem
    return None


def _ids_problem(name: str, table: object, dims: int, low: int, size: int) -> str | None:
    """``table`` must be a ``dims``-D integer tensor of ids in ``[low, size)``."""
    if not isinstance(table, Tensor) or table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
        return f"{name} must be an integer tensor, got {getattr(table, 'dtype', type(table).__name__)}"
    if table.dim() != dims:
        return f"{name} must have {dims} dimensions, got shape {tuple(table.shape)}"
    if not table.numel():
        return None
    smallest, largest = int(table.min()), int(table.max())
    if smallest < low or largest >= size:
        bad = smallest if smallest < low else largest
        return f"{name} holds id {bad}, outside {low}..{size - 1} (the target vocabulary)"
    return None


def tokenizer_digest(tokenizers: Tokenizers) -> str:
    """sha256 of the sentencepiece model(s), in a fixed order."""
    digest = hashlib.sha256()
    for name, proto in sorted(tokenizers.to_state().items()):
        digest.update(name.encode())
        digest.update(hashlib.sha256(proto).digest())
    return digest.hexdigest()


def build_shortlist(
    src_ids: Iterable[Sequence[int]],
    trg_ids: Iterable[Sequence[int]],
    src_vocab_size: int,
    trg_vocab_size: int,
    per_source: int = 100,
    frequent: int = 100,
    digest: str = "",
) -> Shortlist:
    """Count sentence-level co-occurrences of source and target ids and keep, per source id, the
    ``per_source`` targets of highest ``p(t | s)``; plus the ``frequent`` commonest targets."""
    if per_source < 0 or frequent < 0:
        raise ConfigError(f"shortlist sizes must be >= 0, got per_source={per_source} frequent={frequent}")
    src_count = np.zeros(src_vocab_size, dtype=np.int64)
    trg_count = np.zeros(trg_vocab_size, dtype=np.int64)
    keys, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)  # co-occurring (s, t) pairs so far
    pairs: list[np.ndarray] = []
    for n, (src, trg) in enumerate(zip(src_ids, trg_ids), 1):
        s, t = np.unique(np.asarray(src, dtype=np.int64)), np.unique(np.asarray(trg, dtype=np.int64))
        s, t = s[s >= SPECIALS], t[t >= SPECIALS]
        src_count[s] += 1
        trg_count[t] += 1
        pairs.append((s[:, None] * trg_vocab_size + t[None, :]).ravel())
        if n % PAIRS_PER_MERGE == 0:  # memory: the distinct pairs, not every sentence's pairs
            keys, counts = _merge(keys, counts, pairs)
            pairs = []
    keys, counts = _merge(keys, counts, pairs)
    s, t = keys // trg_vocab_size, keys % trg_vocab_size
    score = counts / np.maximum(src_count[s], 1)
    order = np.lexsort((-trg_count[t], -score, s))  # by source, then p(t|s), then frequency
    s, t = s[order], t[order]
    rank = np.arange(len(s)) - np.searchsorted(s, s)  # position within its source's run
    keep = rank < per_source
    candidates = np.full((src_vocab_size, per_source), -1, dtype=np.int64)
    candidates[s[keep], rank[keep]] = t[keep]
    common = np.argsort(-trg_count, kind="stable")[:frequent]
    common = common[trg_count[common] > 0]
    return Shortlist(torch.from_numpy(candidates), torch.from_numpy(common), trg_vocab_size, digest)


def _merge(keys: np.ndarray, counts: np.ndarray, pairs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct pair keys and their counts: ``keys``/``counts`` plus one count per key in ``pairs``."""
    if not pairs:
        return keys, counts
    new, new_counts = np.unique(np.concatenate(pairs), return_counts=True)
    merged, inverse = np.unique(np.concatenate([keys, new]), return_inverse=True)
    return merged, np.bincount(inverse, weights=np.concatenate([counts, new_counts])).astype(np.int64)


class RestrictedOutput(nn.Module):
    """The rows ``vocab (U,)`` of an output layer: ``(N, H) -> (N, U)`` logits.

    Works for ``nn.Linear`` and dynamically quantised int8 linears (``precision=int8``); made once
    per batch (a copy of ``U`` rows), then used at every step of its search.
    """

    def __init__(self, layer: nn.Module, vocab: Tensor) -> None:
        super().__init__()
        self.quantized = None
        if isinstance(layer, nn.Linear):
            self.weight = layer.weight.detach().index_select(0, vocab)
            self.bias = None if layer.bias is None else layer.bias.detach().index_select(0, vocab)
        elif isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = _unpacked(layer)
            rows = torch.ao.nn.quantized.dynamic.Linear(
                layer.in_features, len(vocab), bias_=bias is not None, dtype=torch.qint8
            )
            rows.set_weight_bias(
                weight.index_select(0, vocab.cpu()), None if bias is None else bias.index_select(0, vocab.cpu())
            )
            self.quantized = rows
        else:
            raise ConfigError(f"shortlist: cannot restrict an output layer of type {type(layer).__name__}")

    def forward(self, x: Tensor) -> Tensor:
        if self.quantized is not None:
            return self.quantized(x)
        return F.linear(x, self.weight, self.bias)


# Unpacked int8 weights and biases of quantised output layers, by layer: unpacking 8,000 x 256
# takes ~4 ms, once per batch without this (a twentieth of an RNN batch's search).
_UNPACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unpacked(layer: torch.ao.nn.quantized.dynamic.Linear) -> tuple[Tensor, Tensor | None]:
    """``(weight (V, H) qint8, bias (V,) or None)`` of ``layer``, unpacked on first use."""
    cached = _UNPACKED.get(layer)
    if cached is None:
        cached = _UNPACKED[layer] = (layer.weight(), layer.bias())
    return cached
