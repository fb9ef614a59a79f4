"""Alignments of translations: JSONL records and heatmap images (PNG files or TensorBoard).

A JSONL record per input line::

    {"line": 1, "source": "...", "output": "...", "score": -1.23,
     "src_tokens": ["▁Ein", "▁Hund", ..., "</s>"], "trg_tokens": ["▁A", "▁dog", ..., "</s>"],
     "attention": [[...], ...]}

``attention`` has one row per output token (``</s>`` included), each summing to 1 over the
source tokens: the decoder's attention for an RNN decoder (the last layer's, averaged over heads,
for a Transformer decoder). Heatmaps come from :func:`seq2seq.plotting.plot_attention`, the
same function TensorBoard images use during training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from seq2seq.plotting import plot_attention
from seq2seq.translate import Translation


def alignment_record(line: int, translation: Translation) -> dict[str, Any]:
    alignment = translation.alignment
    return {
        "line": line,
        "source": translation.source,
        "output": translation.text,
        "score": round(translation.score, 6),
        "src_tokens": translation.src_tokens,
        "trg_tokens": translation.trg_tokens,
        "attention": [] if alignment is None else [[round(w, 6) for w in row] for row in alignment.tolist()],
    }


def write_alignment(handle: IO[str], line: int, translation: Translation) -> None:
    handle.write(json.dumps(alignment_record(line, translation), ensure_ascii=False) + "\n")


def heatmap_figure(line: int, translation: Translation):
    """The heatmap of one translation, titled with its line number."""
    return plot_attention(
        translation.alignment.numpy(), translation.src_tokens, translation.trg_tokens, title=f"line {line}"
    )


def save_heatmap(directory: Path, line: int, translation: Translation) -> Path:
    """Write ``directory/line_{line}.png``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"line_{line:05d}.png"
    tmp = path.with_name(f".{path.name}.tmp")
    heatmap_figure(line, translation).savefig(tmp, format="png", dpi=100)
    tmp.replace(path)
    return path
