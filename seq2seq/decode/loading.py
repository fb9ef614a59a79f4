"""The one front door for translation: a translator for a checkpoint or a CTranslate2 export.

:func:`build_translator` resolves the device and the precision, loads the model (a checkpoint
with PyTorch, or a ``seq2seq-export`` directory with CTranslate2), quantises it for ``int8``,
loads and checks a vocabulary shortlist, and returns an engine with one interface: raw
sentences in, :class:`~seq2seq.decode.translator.Translation` objects out. ``seq2seq-translate``,
the Python API (:func:`seq2seq.load_translator`) and the benchmarks all build translators here;
the search settings are a :class:`~seq2seq.config.schema.DecodeConfig` (its defaults, defined
once, unless the caller passes its own).
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import torch

from seq2seq.checkpoint.store import load_model
from seq2seq.config.schema import MAX_INPUT_TOKENS, DecodeConfig, Engine, Precision
from seq2seq.config.values import check_decode
from seq2seq.decode.ctranslate2 import CT2Translator, is_export_directory
from seq2seq.decode.int8 import check_int8_device, quantize_int8
from seq2seq.decode.shortlist import Shortlist
from seq2seq.decode.translator import DecodeOptions, Translator, auto_parallel_batches
from seq2seq.utils.devices import autocast, prepare_device, resolve_device, resolve_precision
from seq2seq.utils.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = tuple(engine.value for engine in Engine)
PRECISIONS = tuple(precision.value for precision in Precision)


def build_translator(
    checkpoint: str | Path,
    decode: DecodeConfig | None = None,
    *,
    engine: str = "torch",
    device: str | torch.device = "auto",
    precision: str = "auto",
    shortlist: str | Path | None = None,
    max_input_tokens: int | None = MAX_INPUT_TOKENS,
    parallel_batches: int | None = None,
    threads: int | None = None,
    return_attention: bool = False,
) -> Translator | CT2Translator:
    """A translator for ``checkpoint`` (a ``.pt`` file, or an export directory with ``engine=ctranslate2``).

    ``decode``: the search settings (default: :class:`DecodeConfig`'s). ``device``: ``auto``,
    ``cpu``, ``cuda``, ``cuda:N`` or a :class:`torch.device`. ``precision``: ``auto`` (bf16 where
    the hardware computes it natively), ``fp32``, ``bf16``, ``fp16`` (CUDA), ``int8`` (CPU).
    ``max_input_tokens``: a longer source is cut (None: no cap). ``parallel_batches``: CPU
    batches searched at once (None: one per thread). ``threads``: CTranslate2's worker threads
    (PyTorch's thread count is the process's: set by the entry point). Every problem with the
    arguments or the files is a one-line :class:`~seq2seq.utils.errors.Seq2SeqError`, raised
    before a model is built.
    """
    options = _options(decode, precision, max_input_tokens, return_attention)
    if str(engine) not in ENGINES:
        raise ConfigError(f"engine={engine!r}: expected one of {', '.join(ENGINES)}")
    torch_device = _device(device, str(precision))
    resolved, why = resolve_precision(str(precision), torch_device)
    options.shortlist = Shortlist.load(shortlist) if shortlist else None
    if str(engine) == "ctranslate2":
        options.precision = str(precision)  # CTranslate2 decides "auto" itself
        return _ct2(checkpoint, options, torch_device, threads)
    options.precision = resolved
    autocast(torch_device, resolved)  # fp16 without CUDA fails here, not at the first sentence
    if resolved == "int8":
        check_int8_device(torch_device)
    if is_export_directory(checkpoint):
        raise ConfigError(f"{checkpoint} is a CTranslate2 export: add engine=ctranslate2 to translate with it")
    model, tokenizers, config, payload = load_model(checkpoint, torch_device)
    if resolved == "int8":
        model = quantize_int8(model, torch_device)
    metadata = {"step": (payload.get("progress") or {}).get("step"), "metrics": payload.get("metrics") or {}}
    step = "?" if metadata["step"] is None else metadata["step"]
    log.info("loaded %s (step %s) on %s, precision %s (%s)", checkpoint, step, torch_device, resolved, why)
    options.parallel_batches = auto_parallel_batches(parallel_batches, torch_device)
    if options.shortlist is not None:
        options.shortlist.check_tokenizers(tokenizers)
        _log_shortlist(shortlist)
    return Translator(model, tokenizers, options, torch_device, config, metadata)


def _options(
    decode: DecodeConfig | None, precision: str, max_input_tokens: int | None, return_attention: bool
) -> DecodeOptions:
    """The search settings (checked: one line naming the key) plus this translator's runtime fields."""
    decode = decode if decode is not None else DecodeConfig()
    check_decode(decode)
    if str(precision) not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if max_input_tokens is not None and max_input_tokens < 2:
        raise ConfigError(f"max_input_tokens must be >= 2 (a token and </s>) or null, got {max_input_tokens}")
    search = {f.name: getattr(decode, f.name) for f in fields(DecodeConfig)}
    return DecodeOptions(**search, max_input_tokens=max_input_tokens, return_attention=return_attention)


def _ct2(checkpoint: str | Path, options: DecodeOptions, device: torch.device, threads: int | None) -> CT2Translator:
    """The CTranslate2 engine over the export directory ``checkpoint`` (``auto`` decided by it)."""
    translator = CT2Translator(checkpoint, options, device, threads)
    step = translator.metadata.get("step") or "?"
    log.info(
        "loaded %s (CTranslate2 export of step %s) on %s, precision %s (compute type %s)",
        *(checkpoint, step, device, translator.precision, translator.compute_type),
    )
    if options.shortlist is not None:
        _log_shortlist(options.shortlist.source)
    return translator


def _log_shortlist(path: str | Path | None) -> None:
    log.info("vocabulary shortlist %s: each batch decodes over its sources' candidate target ids", path)


def _device(device: str | torch.device, precision: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a :class:`torch.device`, checked and prepared."""
    if isinstance(device, torch.device):
        return prepare_device(device)
    if device in ("auto", "cpu", "cuda"):
        return resolve_device(device, precision)
    if str(device).startswith("cuda:"):
        try:
            index = int(str(device).split(":", 1)[1])
        except ValueError:
            index = -1
        if 0 <= index < torch.cuda.device_count():
            return prepare_device(torch.device("cuda", index))
        raise ConfigError(f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices")
    raise ConfigError(f"device={device!r}: expected auto, cpu, cuda or cuda:N")
