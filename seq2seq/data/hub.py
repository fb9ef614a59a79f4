"""Parallel corpora through Hugging Face ``datasets``: a hub dataset or a local dataset directory.

``data.hub_name`` is either a hub name (``wmt14``, ``bentrevett/multi30k``), loaded with
``datasets.load_dataset(hub_name, hub_config)``, or a local directory: ``save_to_disk`` output
(read with ``load_from_disk``) or data files ``datasets`` reads (``train.jsonl``,
``validation.csv``, ``test.parquet``, ...). Rows hold either a ``translation`` column of
``{lang: text}`` dicts (the WMT and IWSLT datasets) or one text column per language.

Without network access ``datasets`` retries the hub for about 25 seconds before it gives up.
Before a hub name is loaded, a quick probe (a TCP connection to the hub, or to the HTTPS proxy,
within :data:`PROBE_SECONDS`) decides: when the hub cannot be reached, the load runs in
``datasets``' offline mode, which reads the local cache at once or fails at once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import datasets
import huggingface_hub

from seq2seq.config.schema import DataConfig
from seq2seq.utils.errors import DataError, MissingSplitError

log = logging.getLogger(__name__)

PROBE_SECONDS = 3.0
OFFLINE_HINT = "Without network access, point data.root at local files (see data/README.md)"


def hub_split_name(cfg: DataConfig, split: str) -> str:
    """The dataset's name for ``split`` (``train``, ``valid`` or ``test``)."""
    return {"train": cfg.hub_train_split, "valid": cfg.hub_valid_split, "test": cfg.hub_test_split}[split]


def load_pairs(cfg: DataConfig, split: str, features: datasets.Features) -> datasets.Dataset:
    """``split`` of ``cfg.hub_name`` as ``features`` (``src``, ``trg``, ``line``: rows counted from 1)."""
    name = cfg.hub_name or ""
    path = Path(name).expanduser()
    hub_split = hub_split_name(cfg, split)
    if path.is_dir() and _is_saved_dataset(path):
        # Keep the conversion's cache out of the user's directory (files we are given are not ours).
        ds = _load_saved(path, hub_split, lone=cfg.hub_train_split)
        return to_pairs(ds, cfg.src_lang, cfg.trg_lang, name, features, _cache_file(ds, cfg))
    return to_pairs(load_raw(cfg, hub_split), cfg.src_lang, cfg.trg_lang, name, features)


def load_raw(cfg: DataConfig, hub_split: str) -> datasets.Dataset:
    """The rows of ``hub_split`` of a hub dataset or a directory of data files (cached by ``datasets``)."""
    name = cfg.hub_name or ""
    path = Path(name).expanduser()
    if path.is_file():
        raise DataError(
            f"data.hub_name={name} is a file: give the directory that holds it "
            "(train/validation/test files, or save_to_disk output)"
        )
    with _hub_access(local=path.is_dir()) as offline_reason:
        try:
            return datasets.load_dataset(name, cfg.hub_config, split=hub_split, cache_dir=cfg.cache_dir)
        except ValueError as err:
            if "Unknown split" in str(err) or "Bad split" in str(err):
                raise MissingSplitError(f"{name}: no split '{hub_split}' ({_first_line(err)})") from None
            raise _load_error(name, cfg.hub_config, hub_split, err, offline_reason) from None
        except Exception as err:  # datasets raises many types: network, missing config, bad files
            raise _load_error(name, cfg.hub_config, hub_split, err, offline_reason) from None


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _load_saved(path: Path, hub_split: str, lone: str) -> datasets.Dataset:
    """A split of ``save_to_disk`` output: a ``DatasetDict``'s split, or a lone ``Dataset`` as split ``lone``."""
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise DataError(f"{path}: cannot read the saved dataset ({type(err).__name__}: {_first_line(err)})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if hub_split not in loaded:
            raise MissingSplitError(f"{path}: no split '{hub_split}' (it has {', '.join(loaded)})")
        return loaded[hub_split]
    if hub_split == lone:
        return loaded
    raise MissingSplitError(f"{path}: a single saved dataset has no split '{hub_split}' (save a DatasetDict)")


def _load_error(name: str, config: str | None, hub_split: str, err: Exception, offline: str | None) -> DataError:
    what = f"{name}" + (f" (config {config})" if config else "")
    reason = f"{type(err).__name__}: {_first_line(err)}"
    if offline:
        reason = f"{offline} and it is not in the datasets cache ({reason})"
    return DataError(f"cannot load hub dataset {what}, split {hub_split}: {reason}. {OFFLINE_HINT}")


def _cache_file(ds: datasets.Dataset, cfg: DataConfig) -> str:
    """Where the pairs converted from a saved dataset are cached: under data.cache_dir or datasets' cache."""
    root = Path(cfg.cache_dir or datasets.config.HF_DATASETS_CACHE) / "seq2seq_pairs"
    root.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{ds._fingerprint}|{cfg.src_lang}|{cfg.trg_lang}".encode()).hexdigest()[:32]
    return str(root / f"{key}.arrow")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# Rows to pairs


def to_pairs(
    ds: datasets.Dataset,
    src: str,
    trg: str,
    name: str,
    features: datasets.Features,
    cache_file: str | None = None,
) -> datasets.Dataset:
    """``src``/``trg``/``line`` columns from a ``translation`` column or one column per language."""
    columns = ds.column_names
    if "translation" in columns:
        languages = _translation_languages(ds)
        missing = [lang for lang in (src, trg) if languages is not None and lang not in languages]
        if missing:
            raise DataError(f"{name}: its translations have languages {', '.join(languages)}, not {missing[0]}")

        def convert(batch: dict[str, list[Any]], idx: list[int]) -> dict[str, list[Any]]:
            pairs = batch["translation"]
            return _columns([p[src] for p in pairs], [p[trg] for p in pairs], idx)

    elif src in columns and trg in columns:

        def convert(batch: dict[str, list[Any]], idx: list[int]) -> dict[str, list[Any]]:
            return _columns(batch[src], batch[trg], idx)

    else:
        raise DataError(
            f"{name}: has columns {', '.join(columns)}; expected a 'translation' column or columns "
            f"'{src}' and '{trg}' (data.src_lang, data.trg_lang)"
        )
    return ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=columns,
        features=features,
        cache_file_name=cache_file,
        desc="reading pairs",
    )


def _translation_languages(ds: datasets.Dataset) -> list[str] | None:
    feature = ds.features["translation"]
    if isinstance(feature, datasets.Translation):
        return list(feature.languages)
    if isinstance(feature, dict):
        return list(feature)
    return None


def _columns(src: list[Any], trg: list[Any], idx: list[int]) -> dict[str, list[Any]]:
    text = [("" if s is None else str(s)).strip() for s in src]
    target = [("" if t is None else str(t)).strip() for t in trg]
    return {"src": text, "trg": target, "line": [i + 1 for i in idx]}


# --------------------------------------------------------------------------------------------
# Offline: fail fast


@contextlib.contextmanager
def _hub_access(local: bool) -> Iterator[str | None]:
    """Load in ``datasets``' offline mode when the hub cannot be reached; yields why it is offline.

    A local directory needs no network: it loads in offline mode without a probe.
    """
    if datasets.config.HF_HUB_OFFLINE:
        yield None if local else "offline mode is on (HF_HUB_OFFLINE)"
        return
    if not local and hub_reachable():
        yield None
        return
    if not local:
        log.warning("the Hugging Face hub is not reachable: only the local datasets cache can be used")
    with _setting(datasets.config, "HF_HUB_OFFLINE", True), _setting(huggingface_hub.constants, "HF_HUB_OFFLINE", True):
        yield None if local else "the hub is not reachable"


@contextlib.contextmanager
def _setting(module: Any, name: str, value: Any) -> Iterator[None]:
    """Set a module-level setting for the duration of the block."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def hub_reachable() -> bool:
    """Whether a TCP connection to the hub (or the HTTPS proxy) opens within :data:`PROBE_SECONDS`."""
    host, port = _probe_address()
    return _can_connect(host, port)


def _probe_address() -> tuple[str, int]:
    proxy = next(
        (os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(k)), None
    )
    url = urlparse(proxy if proxy else huggingface_hub.constants.ENDPOINT)
    if proxy and not url.hostname:  # "host:port" without a scheme
        url = urlparse(f"http://{proxy}")
    default = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default


@functools.lru_cache(maxsize=8)
def _can_connect(host: str, port: int) -> bool:
    """Name lookup and connection in a daemon thread, so a hanging resolver cannot stall us."""
    answer: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=PROBE_SECONDS):
            answer.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS)
    return bool(answer)
