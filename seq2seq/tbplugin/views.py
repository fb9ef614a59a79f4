"""A logged record (:mod:`.metadata`) as the JSON the page draws: piece and word matrices.

Every matrix view is ``{"rows": labels, "cols": labels, "weights": [layer][head][row][col]}``,
rows attending (output words, or source words for the encoder), columns attended. Word views
merge pieces with :func:`seq2seq.inspect.word_merging.word_matrix`: a source word sums its pieces' weights,
an output word averages its pieces' rows; the source ``</s>`` stays as a last column so rows
still sum to 1.

Records come from files we did not write ourselves, so :func:`parse_record` checks everything
the page relies on and raises :class:`MalformedRecord` with a few words saying what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seq2seq.inspect.record_format import CROSS, ENCODER, META, WEIGHT_DTYPE
from seq2seq.inspect.word_merging import EOS_PIECE, word_matrix, words

DIGITS = 4
TEXT_FIELDS = ("label", "kind", "source", "reference", "output")
NUMBER_FIELDS = ("bleu", "score")


class MalformedRecord(ValueError):
    """A logged record the tab cannot draw; the message says why in a few words."""


@dataclass(frozen=True)
class Record:
    """One logged record, checked: its meta fields and its weights as float64."""

    meta: dict[str, Any]
    cross: np.ndarray  # (L, H, T, S): T output pieces, S source pieces
    encoder: np.ndarray | None  # (L, H, S, S), None without encoder self-attention


def decode_meta(blob: bytes) -> dict[str, Any]:
    """The meta blob as a dict (:class:`MalformedRecord` if it is not a UTF-8 JSON object)."""
    try:
        meta = json.loads(blob.decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedRecord(f"meta is not UTF-8 JSON ({type(err).__name__})") from None
    if not isinstance(meta, dict):
        raise MalformedRecord(f"meta is a JSON {type(meta).__name__}, not an object")
    return meta


def _pieces(meta: dict[str, Any], key: str) -> list[str]:
    pieces = meta.get(key)
    if not isinstance(pieces, list) or not pieces or not all(isinstance(p, str) for p in pieces):
        raise MalformedRecord(f"{key} is not a non-empty list of strings")
    return pieces


def _check_fields(meta: dict[str, Any]) -> None:
    for key in TEXT_FIELDS:
        if not isinstance(meta.get(key), str | None):
            raise MalformedRecord(f"{key} is a {type(meta[key]).__name__}, not a string")
    for key in NUMBER_FIELDS:
        value = meta.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value)):
            raise MalformedRecord(f"{key} is {value!r}, not a finite number")


def decode_weights(blob: bytes, shape: Any, expected: tuple[int, int], name: str) -> np.ndarray:
    """float16 bytes -> float64 array of ``shape`` ``[L, H, rows, cols]``; ``(rows, cols)`` must be
    ``expected`` (the pieces' counts), the bytes must fill the shape, every weight must be finite."""
    if not isinstance(shape, list) or len(shape) != 4 or not all(type(n) is int and n > 0 for n in shape):
        raise MalformedRecord(f"{name}_shape is {shape!r}, not 4 positive integers")
    if tuple(shape[2:]) != expected:
        raise MalformedRecord(f"{name}_shape {shape} does not match {expected[0]} x {expected[1]} pieces")
    size = math.prod(shape) * np.dtype(WEIGHT_DTYPE).itemsize
    if len(blob) != size:
        raise MalformedRecord(f"{name} attention has {len(blob)} bytes, {name}_shape {shape} needs {size}")
    weights = np.frombuffer(blob, dtype=WEIGHT_DTYPE).astype(np.float64).reshape(shape)
    if not np.isfinite(weights).all():
        raise MalformedRecord(f"{name} attention has non-finite weights")
    return weights


def parse_record(blobs: Sequence[bytes]) -> Record:
    """``[meta, cross, encoder?]`` blobs -> a :class:`Record` the page can draw, or :class:`MalformedRecord`."""
    if len(blobs) < 2:
        raise MalformedRecord(f"{len(blobs)} blob(s), a record has meta and cross attention")
    meta = decode_meta(blobs[META])
    _check_fields(meta)
    src, trg = _pieces(meta, "src_pieces"), _pieces(meta, "trg_pieces")
    cross = decode_weights(blobs[CROSS], meta.get("cross_shape"), (len(trg), len(src)), "cross")
    encoder = None
    if meta.get("encoder_shape") is not None:
        blob = blobs[ENCODER] if len(blobs) > ENCODER else b""
        encoder = decode_weights(blob, meta["encoder_shape"], (len(src), len(src)), "encoder")
    return Record(meta, cross, encoder)


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
        "label": meta.get("label") or example,
        "kind": meta.get("kind"),
        "source": meta.get("source"),
        "reference": meta.get("reference"),
        "steps": steps,
    }


def attention_response(run: str, example: str, step: int, steps: list[int], record: Record) -> dict[str, Any]:
    """The body of ``/attention``: the record's text fields, its steps and every matrix view."""
    fields = (*TEXT_FIELDS, *NUMBER_FIELDS)
    return {
        "run": run,
        "example": example,
        "step": step,
        "steps": steps,
        **{key: record.meta.get(key) for key in fields},
        "views": attention_views(record.meta, record.cross, record.encoder),
    }
