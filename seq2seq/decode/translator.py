"""Translating tokenized corpora and raw sentences with a trained model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from seq2seq.config.schema import DecodeConfig, TrainRunConfig
from seq2seq.config.special_ids import EOS, PAD
from seq2seq.data.batching import TokenizedCorpus, sentence_batches
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.search import Hypothesis, beam_search, greedy_search, max_output_lengths
from seq2seq.decode.shortlist import Shortlist
from seq2seq.decode.translation import Translation, empty_translation, make_translation
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.devices import autocast, eval_mode
from seq2seq.utils.errors import ConfigError

R = TypeVar("R")


@dataclass
class DecodeOptions(DecodeConfig):
    """A :class:`DecodeConfig` (the search settings, with its defaults) and how this process runs
    it; :meth:`of` builds one from a config's ``decode`` section."""

    return_attention: bool = False
    # Longest source (subword tokens, </s> included) a raw sentence is cut to; None: no limit.
    max_input_tokens: int | None = None
    precision: str = "fp32"  # bf16/fp16: decode under autocast
    shortlist: Shortlist | None = None  # decode over each batch's shortlisted target ids only
    # Batches searched at the same time, each on one CPU thread (see map_batches); 1: one at a time.
    parallel_batches: int = 1

    @classmethod
    def of(cls, decode: DecodeConfig, **runtime: Any) -> DecodeOptions:
        """``decode``'s search settings (any DecodeConfig, e.g. ``cfg.test.decode`` or a
        TranslateConfig) with the runtime fields in ``runtime``."""
        search = {f.name: getattr(decode, f.name) for f in fields(DecodeConfig)}
        return cls(**{**search, **runtime})


def search(model: Seq2Seq, src: Tensor, src_lengths: Tensor, options: DecodeOptions) -> list[list[Hypothesis]]:
    """Greedy search for ``beam_size=1``, else beam search; ``src (B, S)`` on the model's device."""
    limits = max_output_lengths(src_lengths, options.max_output_ratio, options.max_output_extra)
    vocab = None if options.shortlist is None else options.shortlist.for_batch(src)
    with autocast(src.device, options.precision)():
        if options.beam_size <= 1:
            return greedy_search(model, src, src_lengths, limits, options.return_attention, options.min_length, vocab)
        return beam_search(
            model,
            src,
            src_lengths,
            limits,
            options.beam_size,
            options.n_best,
            options.length_penalty,
            options.return_attention,
            options.min_length,
            vocab,
        )


@torch.no_grad()
def decode_corpus(
    model: Seq2Seq,
    corpus: TokenizedCorpus,
    options: DecodeOptions,
    device: torch.device | str = "cpu",
    rows: Sequence[int] | np.ndarray | None = None,
) -> list[list[Hypothesis]]:
    """Translate ``rows`` of ``corpus`` (default: all) in length-sorted batches; results in ``rows`` order."""
    rows = np.arange(len(corpus)) if rows is None else np.asarray(rows, dtype=np.int64)
    results: list[list[Hypothesis] | None] = [None] * len(rows)

    def run(positions: np.ndarray) -> list[list[Hypothesis]]:
        batch = corpus.batch(rows[positions]).to(device)
        return search(model, batch.src, batch.src_lengths, options)

    batches = sentence_batches(corpus.src_lengths[rows], options.batch_size)
    with eval_mode(model):
        for positions, hyps in zip(batches, map_batches(run, batches, options.parallel_batches)):
            for position, nbest in zip(positions.tolist(), hyps):
                results[position] = nbest
    return results  # type: ignore[return-value]


def map_batches(run: Callable[[np.ndarray], R], batches: list[np.ndarray], parallel: int = 1) -> list[R]:
    """``run`` over ``batches``, results in order; ``parallel > 1``: that many at a time, one
    Python thread each, with PyTorch's intra-op threads shared out by :func:`searching_threads`.
    The searches release the GIL inside PyTorch's kernels; autocast and ``no_grad`` are per
    thread, and :func:`search` sets both.
    """
    workers = min(parallel, len(batches))
    if workers <= 1:
        return [run(b) for b in batches]
    with searching_threads(workers), ThreadPoolExecutor(workers, thread_name_prefix="seq2seq-decode") as pool:
        futures = [pool.submit(run, b) for b in batches]
        try:
            return [f.result() for f in futures]
        except BaseException:  # an error, or Ctrl-C: the batches not started are dropped
            for future in futures:
                future.cancel()
            raise


@contextlib.contextmanager
def searching_threads(workers: int) -> Iterator[None]:
    """PyTorch's intra-op threads shared out among ``workers`` Python threads that search on a CPU
    at once (1 each when there are as many as threads; more when there are fewer), restored on exit.

    On a small CPU a decoding step is many small operations, which one intra-op thread runs
    nearly as fast as two. So the cores work on different batches instead of splitting every
    small product. With one worker nothing changes.
    """
    if workers <= 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def auto_parallel_batches(value: int | None, device: torch.device) -> int:
    """``parallel_batches``: ``value`` if given, else one batch per intra-op thread on a CPU, 1 on a GPU."""
    if value is not None:
        if value < 1:
            raise ConfigError(f"parallel_batches must be >= 1 or null, got {value}")
        return value
    return torch.get_num_threads() if device.type == "cpu" else 1


class Translator:
    """Raw sentences in, :class:`Translation` objects out, in input order."""

    def __init__(
        self,
        model: Seq2Seq,
        tokenizers: Tokenizers,
        options: DecodeOptions,
        device: torch.device | str = "cpu",
        config: TrainRunConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizers = tokenizers
        self.options = options
        self.device = torch.device(device)
        self.config = config  # the training run's config (from the checkpoint), when known
        # What the checkpoint says of itself ("step", dev "metrics"), as an export's metadata does.
        self.metadata = metadata or {}

    @torch.no_grad()
    def translate(self, sentences: Sequence[str]) -> list[Translation]:
        """Translate ``sentences``; an empty (or blank) sentence gives an empty translation."""
        with eval_mode(self.model):
            return self._translate(sentences)

    def _translate(self, sentences: Sequence[str]) -> list[Translation]:
        results = [empty_translation(s, self.options.return_attention) for s in sentences]
        ids = self.tokenizers.encode_sources(sentences)
        cut = self._truncate(ids)
        order = np.array(list(ids), dtype=np.int64)
        lengths = np.array([len(ids[i]) for i in order], dtype=np.int64)

        def run(positions: np.ndarray) -> list[list[Hypothesis]]:
            rows = order[positions]
            src = torch.full((len(rows), int(lengths[positions].max())), PAD, dtype=torch.long)
            for r, i in enumerate(rows.tolist()):
                src[r, : len(ids[i])] = torch.tensor(ids[i])
            src_lengths = torch.from_numpy(lengths[positions].copy())
            return search(self.model, src.to(self.device), src_lengths.to(self.device), self.options)

        batches = sentence_batches(lengths, self.options.batch_size)
        for positions, hyps in zip(batches, map_batches(run, batches, self.options.parallel_batches)):
            for i, nbest in zip(order[positions].tolist(), hyps):
                results[i] = self._result(sentences[i], ids[i], nbest)
                results[i].truncated = cut.get(i, 0)
        return results

    def _truncate(self, ids: dict[int, list[int]]) -> dict[int, int]:
        return truncate_sources(ids, self.options.max_input_tokens)

    def _result(self, source: str, src_ids: list[int], nbest: list[Hypothesis]) -> Translation:
        return make_translation(self.tokenizers, source, src_ids, nbest)


def truncate_sources(ids: dict[int, list[int]], limit: int | None) -> dict[int, int]:
    """Cut every source in ``ids`` to ``limit`` tokens (keeping </s>), in place; the tokens cut, by row."""
    if not limit:
        return {}
    cut = {i: len(seq) - limit for i, seq in ids.items() if len(seq) > limit}
    for i in cut:
        ids[i] = ids[i][: limit - 1] + [EOS]
    return cut
