"""Alignments of translations: JSONL records, heatmaps, hard word alignments, AER, terminal view.

A JSONL record per input line::

    {"line": 1, "source": "...", "output": "...", "score": -1.23,
     "src_tokens": ["▁Ein", "▁Hund", ..., "</s>"], "trg_tokens": ["▁A", "▁dog", ..., "</s>"],
     "attention": [[...], ...], "attention_layers": [[[[...]]]]}

``attention`` has one row per output token (``</s>`` included), each summing to 1 over the
source tokens: the RNN decoder's attention, or for a Transformer decoder the last layer's
averaged over heads. ``attention_layers[layer][head]`` holds every layer and head.

Hard alignments merge subword pieces back into words (a piece starting with ``▁`` starts a
word) and link each output word to the source word it attends to most, written in the Pharaoh
format ``i-j`` (source word i, output word j, from 0) that alignment tools read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from seq2seq.decode.translation import Translation
from seq2seq.inspect.plotting import plot_attention, plot_attention_grid
from seq2seq.inspect.word_merging import EOS_PIECE, WORD_START, word_ids, word_matrix, words  # noqa: F401 (re-exported)
from seq2seq.utils.files import atomic_open


def _rounded(matrix: Any, digits: int = 5) -> Any:
    return np.round(np.asarray(matrix, dtype=np.float64), digits).tolist()


def alignment_record(line: int, translation: Translation) -> dict[str, Any]:
    record: dict[str, Any] = {
        "line": line,
        "source": translation.source,
        "output": translation.text,
        "score": round(translation.score, 6),
        "src_tokens": translation.src_tokens,
        "trg_tokens": translation.trg_tokens,
        "attention": [],
        "attention_layers": [],
    }
    if translation.attention_layers is not None and translation.trg_tokens:
        record["attention"] = _rounded(translation.attention)
        record["attention_layers"] = _rounded(translation.attention_layers)  # (L, H, T, S)
    return record


def write_alignment(handle: IO[str], line: int, translation: Translation) -> None:
    handle.write(json.dumps(alignment_record(line, translation), ensure_ascii=False) + "\n")


def heatmap_figure(line: int, translation: Translation):
    """The heatmap of one translation (head-averaged last layer), titled with its line number."""
    return plot_attention(translation.attention, translation.src_tokens, translation.trg_tokens, title=f"line {line}")


def heatmap_grid_figure(line: int, translation: Translation):
    """Every layer and head of one translation's attention."""
    weights = translation.attention_layers  # (L, H, T, S)
    return plot_attention_grid(weights, translation.src_tokens, translation.trg_tokens, title=f"line {line}")


def has_several_heads(translation: Translation) -> bool:
    """Whether the attention has more than one layer or head (worth a grid of them)."""
    layers = translation.attention_layers
    return layers is not None and layers.shape[0] * layers.shape[1] > 1


def save_heatmap(directory: Path, line: int, translation: Translation) -> list[Path]:
    """Write ``line_{N}.png`` (and ``line_{N}_layers.png`` for several layers/heads)."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = {f"line_{line:05d}.png": heatmap_figure}
    if has_several_heads(translation):
        figures[f"line_{line:05d}_layers.png"] = heatmap_grid_figure
    paths = []
    for name, make in figures.items():
        path = directory / name
        figure = make(line, translation)
        with atomic_open(path, "wb", own_name=True) as handle:  # never follows a planted name
            figure.savefig(handle, format="png", dpi=100)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------
# Words and hard alignments


def hard_alignment(weights: np.ndarray, src_pieces: Sequence[str], trg_pieces: Sequence[str]) -> list[tuple[int, int]]:
    """``(source word, output word)`` links: each output word to its most attended source word."""
    matrix = word_matrix(weights, src_pieces, trg_pieces)
    if matrix.size == 0:
        return []
    return sorted((int(s), t) for t, s in enumerate(matrix.argmax(axis=1)))


def format_pharaoh(links: Iterable[tuple[int, int]]) -> str:
    return " ".join(f"{s}-{t}" for s, t in sorted(links))


def translation_links(translation: Translation) -> list[tuple[int, int]]:
    if translation.attention is None or not translation.trg_tokens:
        return []
    return hard_alignment(translation.attention, translation.src_tokens, translation.trg_tokens)


def parse_alignment(line: str, where: str = "") -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Sure and possible links of a Pharaoh line: ``i-j`` sure, ``i?j`` or ``i-j-P`` possible.

    Possible links include the sure ones (S is a subset of P).
    """
    sure, possible = set(), set()
    for item in line.split():
        try:
            if "?" in item:
                i, j = item.split("?")
                possible.add((int(i), int(j)))
                continue
            parts = item.split("-")
            link = (int(parts[0]), int(parts[1]))
            kind = parts[2].upper() if len(parts) == 3 else "S"
            if len(parts) > 3 or kind not in ("S", "P"):
                raise ValueError(item)
        except ValueError:
            raise ValueError(f"{where}: not a Pharaoh link: {item!r}") from None
        possible.add(link)
        if kind == "S":
            sure.add(link)
    return sure, possible


def alignment_error_rate(
    hypotheses: Sequence[set[tuple[int, int]]],
    sure: Sequence[set[tuple[int, int]]],
    possible: Sequence[set[tuple[int, int]]],
) -> dict[str, float]:
    """Corpus AER (Och & Ney, 2003): ``1 - (|A&S| + |A&P|) / (|A| + |S|)``, plus precision and recall."""
    a_s = a_p = n_a = n_s = 0
    for a, s, p in zip(hypotheses, sure, possible):
        p = p | s
        a_s += len(a & s)
        a_p += len(a & p)
        n_a += len(a)
        n_s += len(s)
    return {
        "aer": 1.0 - (a_s + a_p) / max(n_a + n_s, 1),
        "precision": a_p / max(n_a, 1),
        "recall": a_s / max(n_s, 1),
        "links": n_a,
        "sure": n_s,
    }


# ------------------------------------------------------------------------------------------------
# Terminal


SHADES = " ·░▒▓█"


def terminal_heatmap(translation: Translation, width: int = 80) -> str:
    """A character heatmap of the word alignment: source words as columns, output words as rows.

    Columns are numbered; a legend below names the source words. Fits in ``width`` columns
    (cells shrink to one character for long sentences; beyond that columns are cut, and said so).
    """
    if translation.attention is None or not translation.trg_tokens:
        return ""
    src_words = words(translation.src_tokens) + [EOS_PIECE]
    trg_words = words(translation.trg_tokens) or [""]
    matrix = word_matrix(translation.attention, translation.src_tokens, translation.trg_tokens, True)
    label = min(12, max(len(w) for w in trg_words))
    room = width - label - 3
    cell = 3 if len(src_words) * 3 <= room else 2 if len(src_words) * 2 <= room else 1
    shown = min(len(src_words), room // cell)
    header = " " * (label + 2) + "".join(f"{i % 100:>{cell}}" if cell > 1 else str(i % 10) for i in range(shown))
    lines = [header.rstrip()]
    for word, row in zip(trg_words, matrix):
        shades = "".join(SHADES[min(int(w * (len(SHADES) - 1) + 0.5), len(SHADES) - 1)] * cell for w in row[:shown])
        lines.append(f"{word[:label]:<{label}} |{shades}|")
    legend = "  ".join(f"{i}:{w}" for i, w in enumerate(src_words[:shown]))
    lines.extend(_wrap(f"source: {legend}", width))
    if shown < len(src_words):
        lines.append(f"({len(src_words) - shown} source columns not shown)")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for part in text.split("  "):
        candidate = f"{current}  {part}" if current else part
        if len(candidate) > width and current:
            lines.append(current)
            current = "        " + part
        else:
            current = candidate
    return lines + [current]
