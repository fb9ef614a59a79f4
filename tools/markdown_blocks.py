"""Filling a marked block of a Markdown file (the README's results and speed tables)."""

from __future__ import annotations

import os
from pathlib import Path

from seq2seq.utils.errors import ConfigError
from seq2seq.utils.files import atomic_write_text


def fill_marked_block(path: str | os.PathLike[str], name: str, content: str) -> None:
    """Replace what lies between ``<!-- name:start -->`` and ``<!-- name:end -->`` in the text
    file ``path`` (a README) with ``content``, atomically; a clear error if the markers are missing."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = Path(path).read_text(encoding="utf-8")
    if start not in text or end not in text.split(start, 1)[1]:
        raise ConfigError(f"{path}: no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    atomic_write_text(path, f"{head}{start}\n{content.strip()}\n{end}{rest.split(end, 1)[1]}")
