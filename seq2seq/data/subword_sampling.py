"""Subword regularization: every epoch sees the training pairs in a new segmentation.

Kudo (2018, "Subword Regularization", ACL) trains on segmentations sampled from the unigram
language model, ``P(x | X) ∝ P(x) ** alpha`` over the ``nbest`` best segmentations ``x`` of
a sentence ``X`` (all of them with ``nbest = -1``, by forward-filtering backward-sampling);
alpha near 0 is close to uniform, large alpha close to the one best segmentation. For BPE models
sentencepiece samples by BPE-dropout (Provilkov et al., 2020): each merge is skipped with
probability alpha. The dev and test sets, and translation, always use the one best segmentation.

Sampling is a pure function of ``(train.seed, epoch)``: sentencepiece's generator is reseeded
before each side of each epoch, so an epoch's batches are the same after a resume. A pair whose
sampled segmentation is longer than ``data.max_len`` keeps its best segmentation that epoch, so the
pairs of every epoch are those of :attr:`RunData.train_keep`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import sentencepiece as spm

from seq2seq.config.special_ids import EOS
from seq2seq.data import sharding as D
from seq2seq.data.batching import Batch, TokenBatchSampler, collate
from seq2seq.data.tokenizer import Tokenizer


def sample_segmentations(
    tokenizer: Tokenizer, texts: Sequence[str], alpha: float, nbest: int, seed: int
) -> list[list[int]]:
    """Sampled subword ids of each of ``texts`` (without BOS/EOS), reproducible from ``seed``.

    sentencepiece encodes a list on a fresh worker thread whose generator starts from the global
    seed, so the seed is set right before the one call.
    """
    spm.set_random_generator_seed(seed)
    return tokenizer.sp.encode(list(texts), enable_sampling=True, alpha=alpha, nbest_size=nbest, num_threads=1)


def sample_pairs(
    tokenizers: tuple[Tokenizer, Tokenizer],
    texts: tuple[Sequence[str], Sequence[str]],
    options: dict,
    seeds: tuple[int, int],
) -> tuple[list[list[int]], list[list[int]]]:
    """Sampled source ids (``</s>`` appended) and target ids of the pairs ``texts``; a pair with a
    side longer than ``options["max_len"]`` gets its best segmentation instead (no pair is lost).
    ``options``: ``alpha``, ``nbest``, ``max_len``; ``seeds``: one per side."""
    alpha, nbest, max_len = options["alpha"], options["nbest"], options["max_len"]
    srcs, trgs = (sample_segmentations(tok, t, alpha, nbest, seed) for tok, t, seed in zip(tokenizers, texts, seeds))
    for i, (src, trg) in enumerate(zip(srcs, trgs)):
        if len(src) + 1 > max_len or len(trg) > max_len:
            srcs[i], trgs[i] = tokenizers[0].encode(texts[0][i]), tokenizers[1].encode(texts[1][i])
        srcs[i].append(EOS)
    return srcs, trgs


def epoch_seed(seed: int, epoch: int, side: int, *more: int) -> int:
    """A sentencepiece seed for one side (0 source, 1 target) of one epoch (``more``: e.g. the
    rank and chunk of a stream)."""
    return int(np.random.default_rng([seed, epoch, side, *more, 0x5EED]).integers(1, 2**31))


class SampledCorpusBatches:
    """This rank's token batches of an in-memory corpus, resegmented every epoch.

    Same interface as :class:`~seq2seq.training.run_data.CorpusBatches` (``rows``, ``batches``, ``ctx``);
    batches are cut by :class:`~seq2seq.data.batching.TokenBatchSampler` from the epoch's lengths.
    """

    def __init__(
        self,
        texts: tuple[Sequence[str], Sequence[str]],
        tokenizers: tuple[Tokenizer, Tokenizer],
        keep: np.ndarray | None,
        options: dict,
        ctx: D.DistContext,
    ) -> None:
        """``options``: ``alpha``, ``nbest``, ``max_len``, ``batch_tokens`` and ``seed``."""
        self.texts = texts
        self.tokenizers = tokenizers
        self.keep = keep
        self.options = options
        self.ctx = ctx
        self._cached: tuple[int, list[list[int]], list[list[int]]] | None = None

    def segment(self, epoch: int) -> tuple[list[list[int]], list[list[int]]]:
        """The source ids (``</s>`` appended) and target ids of every pair in ``epoch``."""
        if self._cached is None or self._cached[0] != epoch:
            seeds = (epoch_seed(self.options["seed"], epoch, 0), epoch_seed(self.options["seed"], epoch, 1))
            self._cached = (epoch, *sample_pairs(self.tokenizers, self.texts, self.options, seeds))
        return self._cached[1], self._cached[2]

    def rows(self, epoch: int) -> list[np.ndarray]:
        """The row indices of this rank's batches of ``epoch``, in training order."""
        srcs, trgs = self.segment(epoch)
        o = self.options
        src_lengths = np.fromiter(map(len, srcs), np.int64, len(srcs))
        trg_lengths = np.fromiter(map(len, trgs), np.int64, len(trgs))
        sampler = TokenBatchSampler(src_lengths, trg_lengths, o["batch_tokens"], seed=o["seed"], keep=self.keep)
        return D.shard(sampler.batches(epoch), self.ctx)

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        srcs, trgs = self.segment(epoch)
        for rows in self.rows(epoch)[skip:]:
            yield collate([srcs[i] for i in rows], [trgs[i] for i in rows], rows)
