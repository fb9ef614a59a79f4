"""seq2seq: attention-based neural machine translation you can train, run, score and inspect.

From Python (a notebook, a script)::

    from seq2seq import train, load_translator, plot_attention

    run = train(["data=toy_reverse"], run_dir="runs/toy")
    tr = load_translator(run.best_checkpoint)
    (r,) = tr.translate(["d a h c f b e g"])
    plot_attention(r.attention, r.src_tokens, r.trg_tokens)

See :mod:`seq2seq.api`. The names are imported on first use, so importing any part of the
package stays light and sets nothing global (no matplotlib backend, no library options).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["train", "load_translator", "plot_attention", "__version__"]

_PUBLIC = {"train": "seq2seq.api", "load_translator": "seq2seq.api", "plot_attention": "seq2seq.inspect.plotting"}

if TYPE_CHECKING:
    from seq2seq.api import load_translator, train
    from seq2seq.inspect.plotting import plot_attention


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
