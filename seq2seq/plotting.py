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


def plot_attention_grid(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    trg_tokens: Sequence[str],
    title: str | None = None,
) -> Figure:
    """Every layer and head: ``weights (layers, heads, T, S)`` as a layers x heads grid of heatmaps.

    Rows are layers (first at the top), columns heads; tokens label the outer axes only.
    """
    weights = np.asarray(weights, dtype=np.float32)[:, :, : len(trg_tokens), : len(src_tokens)]
    layers, heads = weights.shape[:2]
    cell = 0.16
    width = max(4.0, heads * (0.6 + cell * len(src_tokens)) + 1.2)
    height = max(3.0, layers * (0.6 + cell * len(trg_tokens)) + 1.0)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(layers, heads, squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer, head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            ax.set_xticks(range(len(src_tokens)) if layer == layers - 1 else [])
            ax.set_yticks(range(len(trg_tokens)) if head == 0 else [])
            if layer == layers - 1:
                ax.set_xticklabels(src_tokens, rotation=90, fontsize=6)
            if head == 0:
                ax.set_yticklabels(trg_tokens, fontsize=6)
                ax.set_ylabel(f"layer {layer + 1}", fontsize=8)
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
