"""Attention heatmaps as matplotlib figures (pure: no global pyplot state, no I/O).

The trainer writes them to TensorBoard, ``translate heatmaps=DIR`` to PNG files; both call
:func:`plot_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def plot_attention(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    trg_tokens: Sequence[str],
    title: str | None = None,
) -> Figure:
    """Heatmap of ``weights (T, S)``: generated tokens as rows, source tokens as columns.

    The matrix is trimmed to ``len(trg_tokens) x len(src_tokens)`` (true lengths, no padding).
    """
    weights = np.asarray(weights, dtype=np.float32)[: len(trg_tokens), : len(src_tokens)]
    cell = 0.32
    width = max(4.0, 1.6 + cell * len(src_tokens))
    height = max(3.0, 1.4 + cell * len(trg_tokens))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(src_tokens)))
    ax.set_xticklabels(src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(trg_tokens)))
    ax.set_yticklabels(trg_tokens, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of a figure."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
