"""The data of a training run: tokenizers, the training batches and the dev split.

:func:`prepare_data` loads the corpus, trains (or reuses) sentencepiece, tokenizes and
length-filters the training pairs. The training batches come from one interface whatever the
source: ``batches(epoch, skip)`` yields this rank's batches of ``epoch`` after the first ``skip``
(already trained on), from :class:`CorpusBatches` (an in-memory corpus, bucketed by
:class:`~seq2seq.data.batching.TokenBatchSampler`), from
:class:`~seq2seq.data.subword_sampling.SampledCorpusBatches` (the same, resegmented every epoch for
``data.subword_alpha``) or from :class:`~seq2seq.data.streaming.StreamingBatches` (a stream read on
the fly).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from seq2seq.checkpoint.store import restore_tokenizer_files
from seq2seq.config.schema import DataConfig, TrainRunConfig
from seq2seq.data.batching import Batch, TokenBatchSampler, TokenizedCorpus
from seq2seq.data.corpus import encode_split, load_split
from seq2seq.data.streaming import StreamingBatches, sample_for_tokenizer
from seq2seq.data.subword_sampling import SampledCorpusBatches
from seq2seq.data.tokenizer import Tokenizers, prepare_tokenizers
from seq2seq.training import distributed as D
from seq2seq.utils.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class SplitData:
    """One tokenized split with its raw text (for BLEU and for showing examples)."""

    corpus: TokenizedCorpus
    src_text: list[str]
    trg_text: list[str]

    @classmethod
    def load(cls, cfg: TrainRunConfig, split: str, tokenizers: Tokenizers) -> SplitData:
        raw = load_split(cfg.data, split)
        encoded = encode_split(raw, tokenizers, cfg.data.num_proc)
        return cls(TokenizedCorpus(encoded), list(raw["src"]), list(raw["trg"]))


@dataclass
class RunData:
    tokenizers: Tokenizers
    train: TokenizedCorpus | None  # None when streaming
    train_keep: np.ndarray | None  # (N,) bool: pairs within data.max_len
    valid: SplitData
    # The training pairs' text, kept for data.subword_alpha > 0 (resegmented every epoch).
    train_text: tuple[list[str], list[str]] | None = None


class TrainBatches(Protocol):
    """What the trainer reads training batches from (:class:`CorpusBatches`,
    :class:`~seq2seq.data.subword_sampling.SampledCorpusBatches`, :class:`StreamingBatches`)."""

    ctx: D.DistContext

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Batch]: ...


class CorpusBatches:
    """This rank's token batches of an in-memory corpus, epoch by epoch (see :mod:`seq2seq.data.batching`)."""

    def __init__(self, corpus: TokenizedCorpus, sampler: TokenBatchSampler, ctx: D.DistContext) -> None:
        self.corpus = corpus
        self.sampler = sampler
        self.ctx = ctx

    def rows(self, epoch: int) -> list[np.ndarray]:
        """The row indices of this rank's batches of ``epoch``, in training order."""
        return D.shard(self.sampler.batches(epoch), self.ctx)

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        for rows in self.rows(epoch)[skip:]:
            yield self.corpus.batch(rows)


def train_batches(cfg: TrainRunConfig, data: RunData, ctx: D.DistContext) -> TrainBatches:
    """The training batches of the run: from the corpus in memory (resegmented every epoch with
    ``data.subword_alpha``), or streamed when it is not."""
    t = cfg.train
    if data.train is None:
        if cfg.data.subword_alpha:
            _log_subword_sampling(cfg.data)
        return StreamingBatches(cfg.data, data.tokenizers, t.batch_tokens, t.seed, ctx)
    if cfg.data.subword_alpha and data.train_text is not None:
        _log_subword_sampling(cfg.data)
        options = dict(
            alpha=cfg.data.subword_alpha,
            nbest=cfg.data.subword_nbest,
            max_len=cfg.data.max_len,
            batch_tokens=t.batch_tokens,
            seed=t.seed,
        )
        tokenizers = (data.tokenizers.src, data.tokenizers.trg)
        return SampledCorpusBatches(data.train_text, tokenizers, data.train_keep, options, ctx)
    sampler = TokenBatchSampler(
        data.train.src_lengths, data.train.trg_lengths, t.batch_tokens, seed=t.seed, keep=data.train_keep
    )
    return CorpusBatches(data.train, sampler, ctx)


def _log_subword_sampling(d: DataConfig) -> None:
    """Say in the log that the training pairs are resegmented, where they are."""
    log.info(
        "subword regularization: training pairs resegmented every epoch (data.subword_alpha=%g, "
        "data.subword_nbest=%d, %s)",
        d.subword_alpha,
        d.subword_nbest,
        "BPE-dropout" if str(d.spm_type) == "bpe" else "unigram sampling",
    )


def update_groups(
    source: TrainBatches, cfg: TrainRunConfig, epoch: int, start: int, device: torch.device
) -> Iterator[list[Batch]]:
    """This rank's micro-batches of ``epoch`` after the first ``start``, ``train.accumulate`` at a time."""
    batches = source.batches(epoch, skip=start)
    ctx = source.ctx
    for n in itertools.count():
        group = list(itertools.islice(batches, cfg.train.accumulate))
        # Ranks get unequal shares of a stream: the epoch ends for all when one runs out.
        # A corpus in memory gives every rank as many batches (distributed.shard).
        if isinstance(source, StreamingBatches):
            ended = D.all_reduce_sum([float(bool(group))], ctx, device)[0] < ctx.world
        else:
            ended = not group
        if ended:
            if n == 0 and start == 0:  # agreed by all ranks
                raise _no_batches(cfg, epoch, ctx)
            return
        yield group


def _no_batches(cfg: TrainRunConfig, epoch: int, ctx: D.DistContext) -> ConfigError:
    """An epoch without a single batch would train nothing, forever with train.max_epochs=null."""
    too_long = f"empty or longer than data.max_len={cfg.data.max_len}"
    if not ctx.enabled:
        return ConfigError(f"epoch {epoch} has no training batch: every pair is {too_long}")
    return ConfigError(
        f"epoch {epoch} has no training batch for each of the {ctx.world} ranks: the pairs are "
        f"{too_long}, or there are fewer batches of train.batch_tokens={cfg.train.batch_tokens} than ranks"
    )


def prepare_data(cfg: TrainRunConfig, run_dir: Path, ctx: D.DistContext | None = None) -> RunData:
    """Load the corpus, train (or reuse) sentencepiece, tokenize, and length-filter the training pairs.

    Under torchrun rank 0 goes first and fills the caches (sentencepiece model, tokenized
    datasets); the other ranks then read them.
    """
    ctx = ctx or D.DistContext()
    if not ctx.is_main:
        D.barrier(ctx)
    else:
        restore_tokenizer_files(cfg, run_dir)
    text = None
    if cfg.data.streaming:
        tokenizers = prepare_tokenizers(cfg.data, sample_for_tokenizer(cfg.data), run_dir, seed=cfg.train.seed)
        train, keep = None, None
    else:
        raw_train = load_split(cfg.data, "train")
        tokenizers = prepare_tokenizers(cfg.data, raw_train, run_dir, seed=cfg.train.seed)
        train = TokenizedCorpus(encode_split(raw_train, tokenizers, cfg.data.num_proc))
        keep = _within_max_len(train, cfg.data.max_len)
        if cfg.data.subword_alpha:
            text = (list(raw_train["src"]), list(raw_train["trg"]))
    valid = SplitData.load(cfg, "valid", tokenizers)
    if ctx.enabled and ctx.is_main:
        D.barrier(ctx)
    return RunData(tokenizers, train, keep, valid, text)


def _within_max_len(train: TokenizedCorpus, max_len: int) -> np.ndarray:
    """``(N,)`` bool, True for the pairs whose both sides fit in ``max_len`` subword tokens."""
    keep = (train.src_lengths <= max_len) & (train.trg_lengths <= max_len)
    dropped = int((~keep).sum())
    if dropped:
        log.warning(
            "train: dropped %d of %d pairs longer than data.max_len=%d subword tokens", dropped, len(keep), max_len
        )
    if not keep.any():
        raise ConfigError(f"no training pair is within data.max_len={max_len} tokens")
    return keep
