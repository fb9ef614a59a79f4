"""Subword pieces back to words, and piece-level attention to word-level attention.

A sentencepiece piece starting with ``▁`` starts a word; ``</s>`` belongs to no word. Merging
attention to words follows the convention of alignment work on subword models: a source word
receives the summed weight of its pieces (so a row still sums to 1), an output word the mean
of its pieces' rows.

Only numpy is imported here, so the TensorBoard plugin can use it without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EOS_PIECE = "</s>"
WORD_START = "\u2581"  # sentencepiece's "▁"


def word_ids(pieces: Sequence[str]) -> list[int]:
    """The word index of each subword piece (``</s>`` excluded: -1)."""
    ids, word = [], -1
    for piece in pieces:
        if piece == EOS_PIECE:
            ids.append(-1)
            continue
        if piece.startswith(WORD_START) or word < 0:
            word += 1
        ids.append(word)
    return ids


def words(pieces: Sequence[str]) -> list[str]:
    """Subword pieces merged back into words (``</s>`` dropped)."""
    out: list[str] = []
    for piece, word in zip(pieces, word_ids(pieces)):
        if word < 0:
            continue
        text = piece.replace(WORD_START, "")
        if word == len(out):
            out.append(text)
        else:
            out[word] += text
    return out


def word_matrix(
    weights: np.ndarray, src_pieces: Sequence[str], trg_pieces: Sequence[str], keep_eos: bool = False
) -> np.ndarray:
    """Piece-level ``weights (..., T, S)`` -> word-level ``(..., Tw, Sw)``.

    A source word gets the summed weight of its pieces; an output word the mean over its pieces.
    With ``keep_eos`` the source ``</s>`` is kept as a last column. Leading dimensions (layers,
    heads) are kept.
    """
    weights = np.asarray(weights, dtype=np.float64)
    src_w, trg_w = np.array(word_ids(src_pieces), dtype=np.int64), np.array(word_ids(trg_pieces), dtype=np.int64)
    n_src, n_trg = int(src_w.max(initial=-1)) + 1, int(trg_w.max(initial=-1)) + 1
    if keep_eos:
        src_w = np.where(src_w < 0, n_src, src_w)
    cols = n_src + (1 if keep_eos else 0)
    gather = np.zeros((len(src_w), cols))  # (S, Sw): sums a word's pieces
    keep = src_w >= 0
    gather[np.flatnonzero(keep), src_w[keep]] = 1.0
    average = np.zeros((n_trg, len(trg_w)))  # (Tw, T): averages a word's pieces
    rows = trg_w >= 0
    average[trg_w[rows], np.flatnonzero(rows)] = 1.0
    average /= np.maximum(average.sum(axis=1, keepdims=True), 1.0)
    return average @ weights[..., : len(trg_w), : len(src_w)] @ gather
