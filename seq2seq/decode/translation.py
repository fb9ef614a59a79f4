"""The one result type of translation: :class:`Translation`, for every engine, the CLI and the API.

Every way of translating (PyTorch or CTranslate2, ``seq2seq-translate``, :func:`seq2seq.load_translator`)
returns one :class:`Translation` per sentence, with one attention layout:

* ``attention_layers``: ``(layers, heads, T, S)``, a float32 NumPy array: every decoder layer
  and head, one row per output token (``trg_tokens``, ``</s>`` included), one column per source
  token (``src_tokens``, ``</s>`` included); each row sums to 1. None unless attention was asked for.
* ``attention``: its ``(T, S)`` summary, the last layer averaged over heads (the RNN decoder has
  one layer and one head), what alignments, heatmaps and hard word links are made from.

``n_best`` lists the candidates, best first: the translation itself, then the others, each a
:class:`Translation` of its own. An empty (or blank) sentence gives an empty text, no tokens
and, with attention, a ``(0, 0)`` matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.search import Hypothesis

EOS_PIECE = "</s>"


@dataclass(eq=False)
class Translation:
    """One translated sentence: the best output, its attention and the other candidates."""

    source: str
    text: str
    score: float  # log-probability (length-normalised by beam search)
    src_tokens: list[str] = field(default_factory=list)  # subword pieces + "</s>"
    trg_tokens: list[str] = field(default_factory=list)  # subword pieces + "</s>"
    attention_layers: np.ndarray | None = field(default=None, repr=False)  # (layers, heads, T, S)
    alternatives: list[Translation] = field(default_factory=list, repr=False)  # the 2nd, 3rd ... candidates
    hypotheses: list[Hypothesis] = field(default_factory=list, repr=False)  # the search's n-best, best first
    truncated: int = 0  # source tokens cut off by max_input_tokens

    @property
    def attention(self) -> np.ndarray | None:
        """``(T, S)``: the last layer's attention averaged over heads; rows sum to 1 (None: not asked for)."""
        return None if self.attention_layers is None else self.attention_layers[-1].mean(axis=0)

    @property
    def n_best(self) -> list[Translation]:
        """The candidates, best first: this translation, then :attr:`alternatives`."""
        return [self, *self.alternatives]

    def __repr__(self) -> str:
        shape = "" if self.attention is None else f", attention {self.attention.shape}"
        return f"Translation(text={self.text!r}, score={self.score:.4f}{shape})"


def empty_translation(source: str, with_attention: bool) -> Translation:
    """The translation of an empty (or blank) sentence: no text, no tokens, a ``(0, 0)`` attention."""
    layers = np.zeros((1, 1, 0, 0), np.float32) if with_attention else None
    return Translation(source, "", 0.0, attention_layers=layers)


def make_translation(tokenizers: Tokenizers, source: str, src_ids: list[int], nbest: list[Hypothesis]) -> Translation:
    """The :class:`Translation` of ``source`` (ids ``src_ids``, ``</s>`` included) from its n-best list."""
    src_tokens = tokenizers.src.pieces(src_ids) + [EOS_PIECE]
    candidates = [_candidate(tokenizers, source, src_tokens, hyp) for hyp in nbest]
    best = candidates[0]
    best.alternatives, best.hypotheses = candidates[1:], list(nbest)
    return best


def _candidate(tokenizers: Tokenizers, source: str, src_tokens: list[str], hyp: Hypothesis) -> Translation:
    layers = None
    if hyp.attention is not None:  # (T, L, H, S) as the search built it, step by step
        layers = hyp.attention.float().permute(1, 2, 0, 3).cpu().numpy()
    return Translation(
        source=source,
        text=tokenizers.trg.decode(hyp.tokens),
        score=float(hyp.score),
        src_tokens=src_tokens,
        trg_tokens=tokenizers.trg.pieces(hyp.tokens) + [EOS_PIECE],
        attention_layers=layers,
        hypotheses=[hyp],
    )
