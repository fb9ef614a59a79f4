"""Parallel corpora as Hugging Face ``datasets``: local files, the hub, or the toy reversal task.

Every loader returns a :class:`datasets.Dataset` with two string columns, ``src`` and ``trg``.
Local files are read line by line through ``Dataset.from_generator`` (Arrow, memory-mapped,
cached), so each bad line can be reported by file and line number:

* plain text: ``{root}/{split}.{lang}`` or ``{split}.{lang}.gz``, one sentence a line;
* TSV: ``{root}/{split}.tsv`` (``.gz``), ``source<TAB>target`` a line;
* JSONL: ``{root}/{split}.jsonl`` (``.gz``), ``{"de": ..., "en": ...}`` or
  ``{"translation": {"de": ..., "en": ...}}`` a line.

Pairs with an empty side are skipped and counted; undecodable bytes, malformed lines and files
of different lengths are errors that name the file and line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc

from seq2seq.config.schema import DataConfig, FileFormat, TaskName
from seq2seq.data import hub
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.utils.errors import ConfigError, DataError, MissingSplitError
from seq2seq.utils.files import GZIP_ERRORS, corrupt_gzip, open_input

log = logging.getLogger(__name__)

LANGUAGES_MULTI30K = ("en", "de", "fr", "cs")
FEATURES = datasets.Features(
    {"src": datasets.Value("string"), "trg": datasets.Value("string"), "line": datasets.Value("int64")}
)

# A UTF-8 byte order mark at the start of a file is not part of the first sentence.
BOM = "\ufeff"


def split_stem(cfg: DataConfig, split: str) -> str:
    """File stem of a split (``train``/``valid``/``test``) under ``data.root``."""
    return {"train": cfg.train_split, "valid": cfg.valid_split, "test": cfg.test_split}[split]


def load_split(cfg: DataConfig, split: str) -> datasets.Dataset:
    """The raw ``src``/``trg`` text pairs of ``split`` (``train``, ``valid`` or ``test``)."""
    if cfg.src_lang == cfg.trg_lang:
        raise ConfigError(f"data.src_lang and data.trg_lang are both '{cfg.src_lang}'")
    if cfg.name == TaskName.toy_reverse:
        return toy_reverse_split(cfg, split)
    if cfg.name == TaskName.multi30k and (
        cfg.src_lang not in LANGUAGES_MULTI30K or cfg.trg_lang not in LANGUAGES_MULTI30K
    ):
        raise ConfigError(
            f"multi30k has languages {', '.join(LANGUAGES_MULTI30K)}; "
            f"got data.src_lang={cfg.src_lang} data.trg_lang={cfg.trg_lang}"
        )
    if cfg.name == TaskName.hub:
        if cfg.root:
            raise ConfigError(f"data=hub reads data.hub_name, not data.root={cfg.root} (local files: data=custom)")
        if not cfg.hub_name:
            raise ConfigError("data=hub needs data.hub_name=NAME (a hub dataset or a local dataset directory)")
    if cfg.root:
        return load_local(cfg, split)
    if cfg.hub_name:
        return load_hub(cfg, split)
    raise ConfigError(f"data={cfg.name} needs data.root=DIR (local files) or data.hub_name=NAME")


# --------------------------------------------------------------------------------------------
# Local files


def find_files(cfg: DataConfig, split: str) -> tuple[FileFormat, list[Path]]:
    """The format and file(s) holding ``split`` under ``cfg.root``."""
    root = Path(cfg.root or ".")
    if not root.is_dir():
        raise DataError(f"data.root={root}: no such directory")
    stem = split_stem(cfg, split)

    def existing(name: str) -> Path | None:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    formats = [cfg.format] if cfg.format != FileFormat.auto else [FileFormat.text, FileFormat.tsv, FileFormat.jsonl]
    for fmt in formats:
        if fmt == FileFormat.text:
            src, trg = existing(f"{stem}.{cfg.src_lang}"), existing(f"{stem}.{cfg.trg_lang}")
            if src and trg:
                return fmt, [src, trg]
            if src or trg:
                missing = f"{stem}.{cfg.trg_lang if src else cfg.src_lang}"
                raise DataError(f"{root / missing}[.gz]: file not found (its pair {(src or trg)} exists)")
        else:
            found = existing(f"{stem}.{str(fmt)}")
            if found:
                return fmt, [found]
    wanted = {
        FileFormat.text: f"{stem}.{cfg.src_lang} + {stem}.{cfg.trg_lang}",
        FileFormat.tsv: f"{stem}.tsv",
        FileFormat.jsonl: f"{stem}.jsonl",
    }
    names = " or ".join(wanted[f] for f in formats)
    raise MissingSplitError(f"{root}: no {split} files found (looked for {names}, optionally .gz)")


def local_generator(cfg: DataConfig, split: str) -> tuple[Any, dict[str, Any], list[Path]]:
    """The pair generator of ``split``'s local files, its keyword arguments, and the files."""
    fmt, paths = find_files(cfg, split)
    generators = {FileFormat.text: _text_pairs, FileFormat.tsv: _tsv_pairs, FileFormat.jsonl: _jsonl_pairs}
    # Separate keys, not a list: ``datasets`` would treat a list as shards.
    kwargs: dict[str, Any] = {f"path{i}": str(p) for i, p in enumerate(paths)}
    kwargs.update(src_lang=cfg.src_lang, trg_lang=cfg.trg_lang)
    return generators[fmt], kwargs, paths


def surface_data_error(exc: BaseException) -> None:
    """Re-raise the :class:`DataError` that ``datasets`` wrapped into ``exc``, if there is one."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, DataError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        raise cause from None


def load_local(cfg: DataConfig, split: str) -> datasets.Dataset:
    generator, kwargs, paths = local_generator(cfg, split)
    # The fingerprint names the files' content (size and mtime), so an edited corpus is reread.
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    key = json.dumps([generator.__name__, cfg.src_lang, cfg.trg_lang, stamp])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    where = " + ".join(str(p) for p in paths)
    try:
        ds = datasets.Dataset.from_generator(
            generator,
            features=FEATURES,
            gen_kwargs=kwargs,
            cache_dir=cfg.cache_dir,
            fingerprint=fingerprint,
        )
    except Exception as exc:  # datasets wraps generator errors; surface ours unchanged
        if isinstance(exc, ValueError) and "corresponds to no data" in str(exc):
            raise DataError(f"{where}: the {split} corpus is empty") from None
        surface_data_error(exc)
        raise
    return non_empty_pairs(ds, where, split, "corpus")


def non_empty_pairs(ds: datasets.Dataset, where: str, split: str, noun: str) -> datasets.Dataset:
    """``ds`` without pairs that have an empty side (:func:`drop_empty`), logged; a one-line error
    naming ``where`` when it holds no pair, or none with both sides non-empty (``noun``: what
    ``where`` is, a "corpus" of files or a hub "split")."""
    if len(ds) == 0:
        raise DataError(f"{where}: the {split} {noun} is empty")
    ds = drop_empty(ds, where, split)
    if len(ds) == 0:
        raise DataError(f"{where}: the {split} {noun} has no pair with both sides non-empty")
    log.info("%s: %d pairs from %s", split, len(ds), where)
    return ds


def drop_empty(ds: datasets.Dataset, where: str, split: str = "train") -> datasets.Dataset:
    """Drop pairs with an empty side, logging how many and the first line numbers.

    The test split keeps them: ``test.hyp`` must have one line per line of the reference file
    (an empty source translates to an empty line), so they are only counted.
    """
    table = ds.with_format("arrow")
    is_empty = pc.or_(pc.equal(pc.utf8_length(table["src"]), 0), pc.equal(pc.utf8_length(table["trg"]), 0))
    empty = np.flatnonzero(is_empty.to_numpy(zero_copy_only=False))
    if len(empty) == 0:
        return ds
    lines = ds.select(empty[:5])["line"]
    log.warning(
        "%s: %s %d pairs with an empty side (line %s%s)",
        where,
        "kept (empty source: empty output)" if split == "test" else "skipped",
        len(empty),
        ", ".join(map(str, lines)),
        ", ..." if len(empty) > 5 else "",
    )
    if split == "test":
        return ds
    return ds.select(np.flatnonzero(~is_empty.to_numpy(zero_copy_only=False)))


def _open_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for each line, splitting on ``\\n`` only; bad UTF-8 is an error."""
    try:
        with open_input(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}:{number}: undecodable bytes at byte {err.start} (expected UTF-8)"
                    ) from None
                if number == 1:
                    text = text.removeprefix(BOM)  # Windows editors start UTF-8 files with one
                yield number, text.rstrip("\r\n")
    except GZIP_ERRORS as err:
        raise corrupt_gzip(path, err) from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def _count_rest(lines: Iterator[tuple[int, str]], seen: int) -> int:
    for number, _ in lines:
        seen = number
    return seen


def _pair(src: str, trg: str, line: int) -> dict[str, Any]:
    return {"src": src.strip(), "trg": trg.strip(), "line": line}


def _text_pairs(path0: str, path1: str, src_lang: str, trg_lang: str) -> Iterator[dict[str, Any]]:
    src_path, trg_path = path0, path1
    src_lines, trg_lines = _open_lines(src_path), _open_lines(trg_path)
    n_src = n_trg = 0
    while True:
        src, trg = next(src_lines, None), next(trg_lines, None)
        if src is None or trg is None:
            if src is not None or trg is not None:
                n_src = _count_rest(src_lines, src[0] if src else n_src)
                n_trg = _count_rest(trg_lines, trg[0] if trg else n_trg)
                raise DataError(f"{src_path} has {n_src} lines but {trg_path} has {n_trg}: parallel files must align")
            break
        n_src, n_trg = src[0], trg[0]
        yield _pair(src[1], trg[1], src[0])


def _tsv_pairs(path0: str, src_lang: str, trg_lang: str) -> Iterator[dict[str, Any]]:
    path = path0
    for number, line in _open_lines(path):
        if not line.strip():
            yield _pair("", "", number)
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 2 tab-separated fields, found {len(fields)}")
        yield _pair(fields[0], fields[1], number)


def _jsonl_pairs(path0: str, src_lang: str, trg_lang: str) -> Iterator[dict[str, Any]]:
    path = path0
    for number, line in _open_lines(path):
        if not line.strip():
            yield _pair("", "", number)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON ({err.msg})") from None
        pair = record.get("translation", record) if isinstance(record, dict) else None
        if not isinstance(pair, dict) or not all(isinstance(pair.get(lang), str) for lang in (src_lang, trg_lang)):
            raise DataError(f"{path}:{number}: expected string fields '{src_lang}' and '{trg_lang}'")
        yield _pair(pair[src_lang], pair[trg_lang], number)


# --------------------------------------------------------------------------------------------
# Hugging Face hub


def load_hub(cfg: DataConfig, split: str) -> datasets.Dataset:
    """``split`` of the Hugging Face dataset ``cfg.hub_name`` (a hub name or a local dataset directory).

    Rows hold a ``translation`` column of ``{lang: text}`` dicts (the WMT datasets) or one text
    column per language (``bentrevett/multi30k``); see :mod:`seq2seq.data.hub`.
    """
    ds = hub.load_pairs(cfg, split, FEATURES)
    config = f" ({cfg.hub_config})" if cfg.hub_config else ""
    where = f"{cfg.hub_name}{config}[{hub.hub_split_name(cfg, split)}]"
    return non_empty_pairs(ds, where, split, "split")


# --------------------------------------------------------------------------------------------
# Toy task


def toy_reverse_split(cfg: DataConfig, split: str) -> datasets.Dataset:
    """Random sequences over a small alphabet; the target is the source reversed.

    Source ``"c a f"`` translates to ``"f a c"``: a model that attends correctly shows an
    anti-diagonal alignment. Each split is generated from its own seed.
    """
    sizes = {"train": cfg.toy_train_size, "valid": cfg.toy_valid_size, "test": cfg.toy_test_size}
    offsets = {"train": 0, "valid": 1, "test": 2}
    if cfg.toy_symbols < 2 or cfg.toy_symbols > 26 * 26:
        raise ConfigError(f"data.toy_symbols={cfg.toy_symbols}: must be between 2 and 676")
    if not 1 <= cfg.toy_min_len <= cfg.toy_max_len:
        raise ConfigError("data.toy_min_len must be >= 1 and <= data.toy_max_len")
    symbols = [_toy_symbol(i) for i in range(cfg.toy_symbols)]
    rng = random.Random(cfg.toy_seed * 3 + offsets[split])
    src, trg = [], []
    for _ in range(sizes[split]):
        seq = [rng.choice(symbols) for _ in range(rng.randint(cfg.toy_min_len, cfg.toy_max_len))]
        src.append(" ".join(seq))
        trg.append(" ".join(reversed(seq)))
    lines = list(range(1, len(src) + 1))
    return datasets.Dataset.from_dict({"src": src, "trg": trg, "line": lines}, features=FEATURES)


def _toy_symbol(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


# --------------------------------------------------------------------------------------------
# Tokenization


def encode_split(ds: datasets.Dataset, tokenizers: Tokenizers, num_proc: int = 1) -> datasets.Dataset:
    """Add ``src_ids``/``trg_ids`` columns (subword ids; source ends with EOS, target has none).

    Runs through ``datasets.map`` (batched, ``num_proc`` workers); on disk-backed datasets the
    result is cached under a fingerprint of the input and the tokenizers, so the next run with the
    same corpus and sentencepiece models reuses it instead of tokenizing again.
    """
    digest = hashlib.sha256()
    digest.update(ds._fingerprint.encode())
    for proto in tokenizers.to_state().values():
        digest.update(hashlib.sha256(proto).digest())
    return ds.map(
        _encode_batch,
        fn_kwargs={"tokenizers": tokenizers},
        batched=True,
        batch_size=2000,
        num_proc=num_proc if num_proc > 1 and len(ds) >= 10_000 else None,
        features=ENCODED_FEATURES,
        new_fingerprint=digest.hexdigest()[:32],
        desc="tokenizing",
    )


ENCODED_FEATURES = datasets.Features(
    {
        **FEATURES,
        "src_ids": datasets.Sequence(datasets.Value("int32")),
        "trg_ids": datasets.Sequence(datasets.Value("int32")),
    }
)


def _encode_batch(batch: dict[str, list[Any]], tokenizers: Tokenizers) -> dict[str, list[Any]]:
    src = tokenizers.encode_source_batch(batch["src"])
    return {**batch, "src_ids": src, "trg_ids": tokenizers.trg.encode_batch(batch["trg"])}
