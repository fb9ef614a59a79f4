"""A logged record (:mod:`.metadata`) as the JSON the page draws: piece and word matrices.

Every matrix view is ``{"rows": labels, "cols": labels, "weights": [layer][head][row][col]}``,
rows attending (output words, or source words for the encoder), columns attended. Word views
merge pieces with :func:`seq2seq.words.word_matrix`: a source word sums its pieces' weights,
an output word averages its pieces' rows; the source ``</s>`` stays as a last column so rows
still sum to 1.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from seq2seq.tbplugin.metadata import WEIGHT_DTYPE
from seq2seq.words import EOS_PIECE, word_matrix, words

DIGITS = 4


def decode_meta(blob: bytes) -> dict[str, Any]:
    return json.loads(blob.decode("utf-8"))


def decode_weights(blob: bytes, shape: list[int] | None) -> np.ndarray | None:
    """float16 bytes -> float64 array of ``shape`` (None when the record has none)."""
    if not shape or not blob:
        return None
    return np.frombuffer(blob, dtype=WEIGHT_DTYPE).astype(np.float64).reshape(shape)


def _view(rows: list[str], cols: list[str], weights: np.ndarray) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "weights": np.round(weights, DIGITS).tolist()}


def attention_views(meta: dict[str, Any], cross: np.ndarray, encoder: np.ndarray | None) -> dict[str, Any]:
    """``{"pieces": {"cross", "encoder"}, "words": {"cross", "encoder"}}``; encoder views may be None."""
    src, trg = meta["src_pieces"], meta["trg_pieces"]
    src_words = words(src) + [EOS_PIECE]
    pieces = {"cross": _view(trg, src, cross), "encoder": None}
    merged = {"cross": _view(words(trg), src_words, word_matrix(cross, src, trg, keep_eos=True)), "encoder": None}
    if encoder is not None:
        pieces["encoder"] = _view(src, src, encoder)
        merged["encoder"] = _view(words(src), src_words, word_matrix(encoder, src, src, keep_eos=True))
    return {"pieces": pieces, "words": merged}


def example_summary(example: str, meta: dict[str, Any], steps: list[int]) -> dict[str, Any]:
    """One entry of ``/examples``: what stays fixed across steps, and the logged steps."""
    return {
        "id": example,
        "label": meta.get("label", example),
        "kind": meta.get("kind"),
        "source": meta.get("source"),
        "reference": meta.get("reference"),
        "steps": steps,
    }


def attention_response(
    run: str, example: str, step: int, steps: list[int], meta: dict[str, Any], cross: bytes, encoder: bytes
) -> dict[str, Any]:
    """The body of ``/attention``: the record's text fields, its steps and every matrix view."""
    fields = ("label", "kind", "source", "reference", "output", "bleu", "score")
    cross_weights = decode_weights(cross, meta.get("cross_shape"))
    if cross_weights is None:
        raise ValueError("record without cross attention")
    encoder_weights = decode_weights(encoder, meta.get("encoder_shape"))
    return {
        "run": run,
        "example": example,
        "step": step,
        "steps": steps,
        **{key: meta.get(key) for key in fields},
        "views": attention_views(meta, cross_weights, encoder_weights),
    }
