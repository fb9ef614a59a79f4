"""Pages this repository's tools write: a marked block of a Markdown file (the README's results
and speed tables), and whole generated pages (the configuration and command references)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
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


def generated_page_main(
    page: Path, render: Callable[[], str], tool: str, doc: str | None, argv: list[str] | None = None
) -> None:
    """The command line of ``tool`` (``tools/NAME.py``; ``doc`` its help), which writes ``page`` from
    ``render()``: write it, or with ``--check`` exit 1, writing nothing, if the page is stale."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale, write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            sys.exit(f"{page} is stale: run python {tool}")
        return
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")
    print(f"wrote {page}")
