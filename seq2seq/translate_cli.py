"""``seq2seq-translate``: files, standard input or an interactive prompt, in input order.

Input is read, translated and written ``chunk_lines`` lines at a time, so a long file or pipe
streams. Every input line gives exactly one output line (an empty line gives an empty line);
with ``n_best > 1`` each input line gives ``n_best`` lines in Moses n-best format
``ID ||| translation ||| score`` (``ID`` counts input lines from 0, as
Moses does). Files are written atomically.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from seq2seq.alignment import (
    format_pharaoh,
    heatmap_figure,
    heatmap_grid_figure,
    save_heatmap,
    terminal_heatmap,
    translation_links,
    write_alignment,
)
from seq2seq.checkpoint import load_model
from seq2seq.config import AlignFormat, TranslateConfig
from seq2seq.errors import ConfigError, DataError
from seq2seq.files import GZIP_ERRORS, atomic_open, corrupt_gzip, open_input
from seq2seq.runtime import autocast, resolve_device, set_threads
from seq2seq.translate import DecodeOptions, Translation, Translator

log = logging.getLogger(__name__)


def build_translator(cfg: TranslateConfig) -> Translator:
    _check(cfg)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    autocast(device, str(cfg.precision))  # fails early for fp16 without CUDA
    model, tokenizers, _, payload = load_model(cfg.checkpoint, device)
    step = payload.get("progress", {}).get("step", "?")
    log.info("loaded %s (step %s) on %s", cfg.checkpoint, step, device)
    options = DecodeOptions(
        beam_size=cfg.beam_size,
        n_best=cfg.n_best,
        length_penalty=cfg.length_penalty,
        max_output_ratio=cfg.max_output_ratio,
        max_output_extra=cfg.max_output_extra,
        batch_size=cfg.batch_size,
        return_attention=bool(cfg.alignments or cfg.heatmaps or cfg.tensorboard or cfg.show_attention or _pharaoh(cfg)),
        precision=str(cfg.precision),
    )
    return Translator(model, tokenizers, options, device)


def _pharaoh(cfg: TranslateConfig) -> bool:
    return cfg.align_format == AlignFormat.pharaoh


def _check(cfg: TranslateConfig) -> None:
    if cfg.beam_size < 1:
        raise ConfigError(f"beam_size must be >= 1, got {cfg.beam_size}")
    if not 1 <= cfg.n_best <= cfg.beam_size:
        raise ConfigError(f"n_best={cfg.n_best} must be between 1 and beam_size={cfg.beam_size}")
    if cfg.batch_size < 1 or cfg.chunk_lines < 1:
        raise ConfigError("batch_size and chunk_lines must be >= 1")
    if _pharaoh(cfg) and cfg.n_best > 1 and not cfg.alignments:
        raise ConfigError("align_format=pharaoh with n_best > 1 needs alignments=FILE")
    if cfg.input and not Path(cfg.input).is_file():
        raise DataError(f"input={cfg.input}: file not found")


def run_translate(cfg: TranslateConfig) -> None:
    translator = build_translator(cfg)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    if cfg.interactive:
        _interactive(translator, cfg)
        return
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(_open_input(cfg.input))
        out = stack.enter_context(atomic_open(cfg.output, "w", encoding="utf-8")) if cfg.output else sys.stdout
        align = stack.enter_context(atomic_open(cfg.alignments, "w", encoding="utf-8")) if cfg.alignments else None
        pictures = _Pictures(cfg)
        stack.callback(pictures.close)
        line = 0
        for chunk in _chunks(source, cfg.chunk_lines, cfg.input or "<stdin>"):
            for translation in translator.translate(chunk):
                line += 1
                _emit(cfg, out, align, line, translation)
                pictures.add(line, translation)
            out.flush()
    log.info("translated %d lines", line)


def _open_input(path: str | None) -> contextlib.AbstractContextManager[IO[str]]:
    """The input, read as UTF-8 and split on ``\\n`` only (as files are read for training).

    ``.gz`` files are decompressed on the fly, like training data.
    """
    if path is None:
        if hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(encoding="utf-8", newline="\n")
        return contextlib.nullcontext(sys.stdin)
    return open_input(path, "rt", encoding="utf-8", newline="\n")


def _chunks(source: IO[str], size: int, name: str) -> Iterator[list[str]]:
    """Lines (without the newline) in lists of ``size``; bad UTF-8 names the line."""
    lines = iter(source)
    number = 0
    while True:
        chunk = []
        try:
            for text in itertools.islice(lines, size):
                number += 1
                chunk.append(text.rstrip("\r\n"))
        except UnicodeDecodeError as err:
            raise DataError(f"{name}:{number + 1}: undecodable bytes (expected UTF-8): {err.reason}") from None
        except GZIP_ERRORS as err:
            raise corrupt_gzip(name, err) from None
        if not chunk:
            return
        yield chunk


def _emit(cfg: TranslateConfig, out: IO[str], align: IO[str] | None, line: int, translation: Translation) -> None:
    """Write one translation, its alignment and (if asked) its terminal heatmap."""
    links = format_pharaoh(translation_links(translation)) if _pharaoh(cfg) else None
    if links is not None and align is None:
        out.write(f"{translation.text} ||| {links}\n")
    else:
        _write_output(out, line, translation, cfg.n_best)
    if align is not None:
        if links is not None:
            align.write(links + "\n")
        else:
            write_alignment(align, line, translation)
    if cfg.show_attention and translation.attention is not None:
        view = sys.stdout if cfg.interactive else sys.stderr
        view.write(terminal_heatmap(translation) + "\n")


def _write_output(out: IO[str], line: int, translation: Translation, n_best: int) -> None:
    if n_best == 1:
        out.write(translation.text + "\n")
        return
    alternatives = translation.n_best or [("", 0.0)]
    for text, score in alternatives:
        out.write(f"{line - 1} ||| {text} ||| {score:.4f}\n")  # Moses numbers sentences from 0


class _Pictures:
    """Heatmaps of the first ``max_heatmaps`` non-empty lines, as PNG files and/or in TensorBoard."""

    def __init__(self, cfg: TranslateConfig) -> None:
        self.directory = Path(cfg.heatmaps) if cfg.heatmaps else None
        self.writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(cfg.tensorboard)
        self.left = cfg.max_heatmaps
        self.rows = ["| line | source | output |", "|---|---|---|"]

    def add(self, line: int, translation: Translation) -> None:
        if self.left <= 0 or translation.attention is None or not translation.source.strip():
            return
        self.left -= 1
        if self.directory is not None:
            save_heatmap(self.directory, line, translation)
        if self.writer is not None:
            self.writer.add_figure(f"translate/line_{line:05d}", heatmap_figure(line, translation), 0, close=True)
            if translation.attention.shape[1] * translation.attention.shape[2] > 1:
                grid = heatmap_grid_figure(line, translation)
                self.writer.add_figure(f"translate_layers/line_{line:05d}", grid, 0, close=True)
            self.rows.append(f"| {line} | {translation.source} | {translation.text} |")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.add_text("translate/translations", "\n".join(self.rows), 0)
            self.writer.close()


def _interactive(translator: Translator, cfg: TranslateConfig) -> None:
    """Read a sentence at a prompt (on stderr), print its translation (on stdout); Ctrl-D ends."""
    print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
    line = 0
    while True:
        sys.stderr.write("> ")
        sys.stderr.flush()
        text = sys.stdin.readline()
        if not text:
            sys.stderr.write("\n")
            return
        line += 1
        (translation,) = translator.translate([text.rstrip("\r\n")])
        _emit(cfg, sys.stdout, None, line, translation)
        sys.stdout.flush()
