"""Attention heatmaps as matplotlib figures (pure: no global pyplot state, no I/O).

The trainer writes them to TensorBoard, ``translate heatmaps=DIR`` to PNG files, and a notebook
shows them inline; all call :func:`plot_attention`. Figures draw with the Agg canvas whatever
matplotlib's backend is, and importing this module leaves the backend alone (the console entry
points choose Agg themselves).

A figure's size is bounded whatever the sentence: at most :data:`MAX_TOKENS` output and source
tokens are drawn (the first ones; a note on the image says how many are left out), and the
figure is at most :data:`MAX_INCHES` on a side, so a 1,024-token translation draws a picture of
the usual size instead of allocating gigabytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_TOKENS = 100  # rows (output tokens) and columns (source tokens) drawn at most
MAX_INCHES = 40.0  # the largest side of a figure, at 100 dpi: 4,000 pixels


class AttentionFigure(Figure):
    """A matplotlib :class:`~matplotlib.figure.Figure` that Jupyter displays inline as a PNG.

    Figures made without pyplot are invisible to the notebook's inline backend; ``_repr_png_``
    lets IPython show one that a cell returns (or ``display(fig)``), once, without pyplot.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        canvas = self.canvas if isinstance(self.canvas, FigureCanvasAgg) else FigureCanvasAgg(self)
        canvas.print_png(buffer)
        return buffer.getvalue()


def _figure(width: float, height: float) -> AttentionFigure:
    fig = AttentionFigure(figsize=(min(width, MAX_INCHES), min(height, MAX_INCHES)), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _capped(src_tokens: Sequence[str], trg_tokens: Sequence[str]) -> tuple[list[str], list[str], str | None]:
    """The tokens drawn (at most :data:`MAX_TOKENS` of each) and a note on what was left out."""
    src, trg = list(src_tokens[:MAX_TOKENS]), list(trg_tokens[:MAX_TOKENS])
    cut = [
        f"first {MAX_TOKENS} of {len(tokens):,} {name} tokens"
        for tokens, name in ((trg_tokens, "output"), (src_tokens, "source"))
        if len(tokens) > MAX_TOKENS
    ]
    return src, trg, ("showing the " + " and ".join(cut) if cut else None)


def _note(fig: Figure, note: str | None) -> None:
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, color="firebrick", ha="left", va="bottom")


def plot_attention(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    trg_tokens: Sequence[str],
    title: str | None = None,
) -> Figure:
    """Heatmap of ``weights (T, S)``: generated tokens as rows, source tokens as columns.

    The matrix is trimmed to ``len(trg_tokens) x len(src_tokens)`` (true lengths, no padding),
    and to the first :data:`MAX_TOKENS` of each, with a note on the image when tokens are cut.
    """
    src_tokens, trg_tokens, note = _capped(src_tokens, trg_tokens)
    weights = np.asarray(weights, dtype=np.float32)[: len(trg_tokens), : len(src_tokens)]
    cell = 0.32
    width = max(4.0, 1.6 + cell * len(src_tokens))
    height = max(3.0, 1.4 + cell * len(trg_tokens))
    fig = _figure(width, height)
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
    _note(fig, note)
    return fig


def plot_attention_grid(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    trg_tokens: Sequence[str],
    title: str | None = None,
) -> Figure:
    """Every layer and head: ``weights (layers, heads, T, S)`` as a layers x heads grid of heatmaps.

    Rows are layers (first at the top), columns heads; tokens label the outer axes only. Each
    panel draws at most :data:`MAX_TOKENS` tokens a side, as :func:`plot_attention` does.
    """
    src_tokens, trg_tokens, note = _capped(src_tokens, trg_tokens)
    weights = np.asarray(weights, dtype=np.float32)[:, :, : len(trg_tokens), : len(src_tokens)]
    layers, heads = weights.shape[:2]
    cell = 0.16
    width = max(4.0, heads * (0.6 + cell * len(src_tokens)) + 1.2)
    height = max(3.0, layers * (0.6 + cell * len(trg_tokens)) + 1.0)
    fig = _figure(width, height)
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
    _note(fig, note)
    return fig
