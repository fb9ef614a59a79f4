"""Translating tokenized corpora and raw sentences with a trained model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seq2seq.batching import TokenizedCorpus, sentence_batches
from seq2seq.model import Seq2Seq
from seq2seq.search import Hypothesis, greedy_search, max_output_lengths


@dataclass
class DecodeOptions:
    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 1.0
    max_output_ratio: float = 1.5
    max_output_extra: int = 10
    batch_size: int = 128
    return_attention: bool = False


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
    was_training = model.training
    model.eval()
    for positions in sentence_batches(corpus.src_lengths[rows], options.batch_size):
        batch = corpus.batch(rows[positions]).to(device)
        limits = max_output_lengths(batch.src_lengths, options.max_output_ratio, options.max_output_extra)
        hyps = greedy_search(model, batch.src, batch.src_lengths, limits, options.return_attention)
        for position, hyp in zip(positions.tolist(), hyps):
            results[position] = hyp
    model.train(was_training)
    return results  # type: ignore[return-value]
