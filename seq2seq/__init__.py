"""seq2seq: attention-based neural machine translation you can train, run, score and inspect.

From Python (a notebook, a script)::

    from seq2seq import load_translator, plot_attention

    tr = load_translator("runs/toy/checkpoints/best.pt")
    (r,) = tr.translate(["d a h c f b e g"])
    plot_attention(r.attention, r.src_tokens, r.trg_tokens)

See :mod:`seq2seq.api`. The two names are imported on first use, so importing any part of the
package stays light and sets nothing global (no matplotlib backend, no library options).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load_translator", "plot_attention", "__version__"]

_PUBLIC = {"load_translator": "seq2seq.api", "plot_attention": "seq2seq.inspect.plotting"}

if TYPE_CHECKING:
    from seq2seq.api import load_translator
    from seq2seq.inspect.plotting import plot_attention


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'seq2seq' has no attribute {name!r}")
