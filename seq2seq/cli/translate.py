"""``seq2seq-translate``: files, standard input or an interactive prompt, in input order.

Input is read, translated and written ``chunk_lines`` lines at a time, so a long file or pipe
streams. Every input line gives exactly one output line (an empty line gives an empty line);
with ``n_best > 1`` each input line gives ``n_best`` lines in Moses n-best format
``ID ||| translation ||| score`` (``ID`` counts input lines from 0, as
Moses does; an empty line gives ``n_best`` empty entries). Input is UTF-8 whatever the locale
(a byte order mark is dropped), and a source longer than ``max_input_tokens`` is cut, with a
warning naming the lines. Regular output files are written atomically; FIFOs, devices and
``/dev/stdout`` are written through, and an unwritable output fails before any work.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from seq2seq.config.schema import AlignFormat, TranslateConfig
from seq2seq.config.values import check_decode
from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.loading import build_translator as load
from seq2seq.decode.translation import Translation
from seq2seq.decode.translator import Translator
from seq2seq.inspect.alignments import (
    format_pharaoh,
    has_several_heads,
    heatmap_figure,
    heatmap_grid_figure,
    save_heatmap,
    terminal_heatmap,
    translation_links,
    write_alignment,
)
from seq2seq.inspect.attention_records import log_translation
from seq2seq.utils.devices import set_up_process
from seq2seq.utils.errors import ConfigError, DataError
from seq2seq.utils.files import (
    GZIP_ERRORS,
    atomic_open,
    check_distinct_outputs,
    check_output,
    check_output_dir,
    check_readable,
    corrupt_gzip,
    open_input,
)

log = logging.getLogger(__name__)


def build_translator(cfg: TranslateConfig) -> Translator | CT2Translator:
    """``seq2seq-translate``'s translator: its settings checked, then the one front door
    (:func:`seq2seq.decode.loading.build_translator`) with its keys."""
    _check(cfg)
    set_up_process(cfg.threads)  # threads and allocator: an entry point's decisions
    return load(
        cfg.checkpoint,
        cfg,  # a TranslateConfig is a DecodeConfig: its search keys
        engine=str(cfg.engine),
        device=str(cfg.device),
        precision=str(cfg.precision),
        shortlist=cfg.shortlist,
        max_input_tokens=cfg.max_input_tokens,
        parallel_batches=cfg.parallel_batches,
        threads=cfg.threads,
        return_attention=bool(cfg.alignments or cfg.heatmaps or cfg.tensorboard or cfg.show_attention or _pharaoh(cfg)),
    )


def _pharaoh(cfg: TranslateConfig) -> bool:
    return cfg.align_format == AlignFormat.pharaoh


def _check(cfg: TranslateConfig) -> None:
    _check_interactive(cfg)
    check_decode(cfg)
    if cfg.chunk_lines < 1:
        raise ConfigError(f"chunk_lines must be >= 1, got {cfg.chunk_lines}")
    if _pharaoh(cfg) and cfg.n_best > 1 and not cfg.alignments:
        raise ConfigError("align_format=pharaoh with n_best > 1 needs alignments=FILE")
    if cfg.input:
        check_readable(cfg.input, "input")
    # Before any work, not after translating everything; no output may overwrite an input.
    outputs = {name: getattr(cfg, name) for name in ("output", "alignments", "heatmaps", "tensorboard")}
    check_distinct_outputs(outputs, {"checkpoint": cfg.checkpoint, "shortlist": cfg.shortlist})
    for name in ("output", "alignments"):
        if getattr(cfg, name):
            check_output(getattr(cfg, name), name)
    for name in ("heatmaps", "tensorboard"):
        if getattr(cfg, name):
            check_output_dir(getattr(cfg, name), name)


def _check_interactive(cfg: TranslateConfig) -> None:
    """``interactive=true`` reads the prompt and prints to the terminal: file options would do nothing."""
    if not cfg.interactive:
        return
    files = ("input", "output", "alignments", "heatmaps", "tensorboard")
    ignored = [f"{k}={getattr(cfg, k)}" for k in files if getattr(cfg, k)]
    if ignored:
        raise ConfigError(
            f"interactive=true reads the prompt and prints to the terminal; it cannot use {', '.join(ignored)} "
            "(drop interactive=true to translate files)"
        )


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
        pictures = _Pictures(cfg, translator if isinstance(translator, Translator) else None)
        stack.callback(pictures.close)
        line = 0
        truncated, first_truncated = 0, []
        for chunk in _chunks(source, cfg.chunk_lines, cfg.input or "<stdin>"):
            for translation in translator.translate(chunk):
                line += 1
                _emit(cfg, out, align, line, translation)
                pictures.add(line, translation)
                if translation.truncated:
                    truncated += 1
                    first_truncated += [line] if len(first_truncated) < 5 else []
            out.flush()
    log.info("translated %d lines", line)
    if truncated:
        shown = ", ".join(map(str, first_truncated)) + (", ..." if truncated > 5 else "")
        log.warning(
            "truncated %d input lines to max_input_tokens=%d subword tokens (line %s)",
            truncated,
            cfg.max_input_tokens,
            shown,
        )


def _open_input(path: str | None) -> contextlib.AbstractContextManager[Iterable[bytes]]:
    """The input as bytes lines, split on ``\\n`` only (as files are read for training).

    Each line is decoded on its own (:func:`decode_line`), so bad UTF-8 is reported at its own
    line, whatever the locale. ``.gz`` files are decompressed on the fly, like training data.
    """
    if path is not None:
        return open_input(path, "rb")
    return contextlib.nullcontext(_stdin_lines())


def _stdin_lines() -> Iterator[bytes]:
    """Standard input's lines as bytes, each as soon as it is complete (for the prompt too)."""
    stdin = getattr(sys.stdin, "buffer", None)
    if stdin is not None:
        yield from iter(stdin.readline, b"")
    else:  # a text stream without bytes underneath (e.g. replaced in tests)
        for line in iter(sys.stdin.readline, ""):
            yield line.encode("utf-8", "surrogateescape")


def decode_line(raw: bytes, name: str, number: int) -> str:
    """Input line ``number`` as text, without its line end (nor, on line 1, a byte order mark)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{name}:{number}: undecodable bytes at byte {err.start} (expected UTF-8)") from None
    if number == 1:
        text = text.removeprefix("\ufeff")
    return text.rstrip("\r\n")


def _chunks(source: Iterable[bytes], size: int, name: str) -> Iterator[list[str]]:
    """Lines (without the newline) in lists of ``size``; bad UTF-8 names its line."""
    lines = iter(source)
    number = 0
    while True:
        chunk = []
        try:
            for raw in itertools.islice(lines, size):
                number += 1
                chunk.append(decode_line(raw, name, number))
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
    if cfg.show_attention and translation.attention is not None and translation.trg_tokens:
        view = sys.stdout if cfg.interactive else sys.stderr
        view.write(terminal_heatmap(translation) + "\n")


def _write_output(out: IO[str], line: int, translation: Translation, n_best: int) -> None:
    if n_best == 1:
        out.write(translation.text + "\n")
        return
    candidates = translation.n_best if translation.hypotheses else [translation] * n_best  # K lines for ""
    for candidate in candidates:
        out.write(f"{line - 1} ||| {candidate.text} ||| {candidate.score:.4f}\n")  # Moses counts from 0


class _Pictures:
    """Heatmaps of the first ``max_heatmaps`` non-empty lines, as PNG files and/or in TensorBoard."""

    def __init__(self, cfg: TranslateConfig, translator: Translator | None = None) -> None:
        self.directory = Path(cfg.heatmaps) if cfg.heatmaps else None
        self.translator = translator  # for the encoder self-attention of the attention tab
        self.writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(cfg.tensorboard)
        self.left = cfg.max_heatmaps
        self.rows = ["| line | source | output |", "|---|---|---|"]

    def add(self, line: int, translation: Translation) -> None:
        """Draw line ``line``'s pictures; a picture that fails is a warning, never a lost translation."""
        if self.left <= 0 or translation.attention is None or not translation.source.strip():
            return
        self.left -= 1
        try:
            self._draw(line, translation)
        except Exception as err:  # noqa: BLE001 (the translations matter more than a picture)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            log.warning("line %d: attention heatmap not written (%s); the translation is", line, reason)

    def _draw(self, line: int, translation: Translation) -> None:
        if self.directory is not None:
            save_heatmap(self.directory, line, translation)
        if self.writer is not None:
            self.writer.add_figure(f"translate/line_{line:05d}", heatmap_figure(line, translation), 0, close=True)
            if has_several_heads(translation):
                grid = heatmap_grid_figure(line, translation)
                self.writer.add_figure(f"translate_layers/line_{line:05d}", grid, 0, close=True)
            self.rows.append(f"| {line} | {translation.source} | {translation.text} |")
            log_translation(self.writer, line, translation, self.translator)  # the attention tab

    def close(self) -> None:
        if self.writer is not None:
            self.writer.add_text("translate/translations", "\n".join(self.rows), 0)
            self.writer.close()


def _interactive(translator: Translator | CT2Translator, cfg: TranslateConfig) -> None:
    """Read a sentence at a prompt (on stderr), print its translation (on stdout); Ctrl-D ends."""
    print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
    lines = _stdin_lines()  # bytes, decoded as UTF-8 whatever the locale
    line = 0
    while True:
        sys.stderr.write("> ")
        sys.stderr.flush()
        raw = next(lines, b"")
        if not raw:
            sys.stderr.write("\n")
            return
        line += 1
        try:
            text = decode_line(raw, "<stdin>", line)
        except DataError as err:  # say so and keep the prompt
            print(f"error: {err}", file=sys.stderr)
            continue
        (translation,) = translator.translate([text])
        if translation.truncated:
            log.warning("input cut to max_input_tokens=%d subword tokens", cfg.max_input_tokens)
        _emit(cfg, sys.stdout, None, line, translation)
        sys.stdout.flush()
