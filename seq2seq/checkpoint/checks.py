"""Checks of the model files we are given, before anything is built from them.

A checkpoint (or an export's ``seq2seq.json``) is data that may have been damaged or crafted:
its digest or file name says which model it claims to be, not that it is sound. Before a model
is built, its structure is checked (a dict of the expected types), its sentencepiece bytes are
parsed, and the config's sizes are compared with the weights' shapes: the layer counts first
(from the weight names, so ``enc_layers=10**7`` is refused without building a layer), then every
tensor's shape, on a model built on PyTorch's ``meta`` device (shapes only, no memory), so
``hidden_size=10**6`` is refused without allocating 12 TB. Every problem is one line naming the
file and the entry: a :class:`~seq2seq.utils.errors.CheckpointError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from seq2seq.config.schema import ModelConfig
from seq2seq.data.tokenizer import Tokenizer, Tokenizers
from seq2seq.model.seq2seq import Seq2Seq, build_model
from seq2seq.utils.errors import CheckpointError, ConfigError, DataError

# Entries of a checkpoint that must be dicts when present (``model`` and ``config`` always are).
DICT_ENTRIES = ("config", "model", "tokenizers", "progress", "metrics", "checkpoints", "vocab")
# The layer index in a weight's name: Transformer layers, RNN decoder cells, the encoder RNN's layers.
ENCODER_LAYER = re.compile(r"encoder\.(?:layers\.(\d+)\.|rnn\.weight_ih_l(\d+)$)")
DECODER_LAYER = re.compile(r"decoder\.(?:layers|cells)\.(\d+)\.")


def check_payload(payload: Any, source: str) -> None:
    """A one-line :class:`CheckpointError` unless ``payload`` has a checkpoint's structure."""
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{source}: not a seq2seq checkpoint (no model/config entries)")
    version = payload.get("version", 0)
    if type(version) is not int:
        raise CheckpointError(f"{source}: not a valid checkpoint: its version is a {_kind(version)}, not an integer")
    if "tokenizers" not in payload:
        raise CheckpointError(f"{source}: not a valid checkpoint: no tokenizers entry (its sentencepiece models)")
    for key in DICT_ENTRIES:
        if key in payload and not isinstance(payload[key], dict):
            kind = _kind(payload[key])
            raise CheckpointError(f"{source}: not a valid checkpoint: its {key} entry is a {kind}, not a dict")
    bad = next((k for k, v in payload["model"].items() if not (isinstance(k, str) and torch.is_tensor(v))), None)
    if bad is not None:
        raise CheckpointError(f"{source}: not a valid checkpoint: its model entry {bad!r:.60} is not a named tensor")
    tokenizers = payload["tokenizers"]
    if "src" not in tokenizers or not set(tokenizers) <= {"src", "trg"}:
        raise CheckpointError(f"{source}: not a valid checkpoint: its tokenizers entry needs the keys src (and trg)")
    for side, proto in tokenizers.items():
        if not isinstance(proto, bytes | bytearray):
            raise CheckpointError(
                f"{source}: not a valid checkpoint: tokenizers.{side} is a {_kind(proto)}, not sentencepiece bytes"
            )


def payload_tokenizers(payload: dict[str, Any], source: str) -> Tokenizers:
    """The checkpoint's sentencepiece models, parsed; a one-line error names the bad one."""
    try:
        return Tokenizers.from_state(payload["tokenizers"], f"{source}: tokenizers")
    except DataError as err:
        raise CheckpointError(str(err)) from None


def build_checked(cfg: ModelConfig, tokenizers: Tokenizers, state: dict[str, torch.Tensor], source: str) -> Seq2Seq:
    """The model of ``cfg`` with the weights ``state``, once the sizes are known to fit them."""
    src_vocab, trg_vocab = len(tokenizers.src), len(tokenizers.trg)
    check_layer_counts(cfg, state, source)
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated, nothing initialised
            skeleton = build_model(cfg, src_vocab, trg_vocab)
    except ConfigError as err:
        raise CheckpointError(f"{source}: its config is not valid: {err}") from None
    problem = describe_mismatch({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, state)
    if problem:
        raise CheckpointError(weights_error(source, problem))
    model = build_model(cfg, src_vocab, trg_vocab)  # every size now equals a tensor already in memory
    model.load_state_dict(state)
    return model


def check_layer_counts(cfg: ModelConfig, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.enc_layers``/``dec_layers`` against the layers the weights hold (checked before
    building: a crafted ``enc_layers=10**7`` would take minutes to build)."""
    for name, pattern in (("enc_layers", ENCODER_LAYER), ("dec_layers", DECODER_LAYER)):
        found = {next(g for g in m.groups() if g is not None) for k in state if (m := pattern.match(k))}
        wanted = getattr(cfg, name)
        if type(wanted) is not int or wanted != len(found):
            side = "encoder" if name == "enc_layers" else "decoder"
            raise CheckpointError(
                f"{source}: its config model.{name}={wanted} does not fit its weights, which hold "
                f"{len(found)} {side} layers"
            )


def describe_mismatch(own: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> str | None:
    """What differs between a model's weight shapes ``own`` and the weights ``state`` (None: they fit)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k] != tuple(state[k].shape)]
    parts = []
    if mismatched:
        k = mismatched[0]
        parts.append(
            f"{len(mismatched)} tensors differ in shape (e.g. {k}: checkpoint {tuple(state[k].shape)}, model {own[k]})"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return "; ".join(parts) or None


def weights_error(source: str, problem: str) -> str:
    return (
        f"{source}: weights do not fit this model/vocabulary: {problem}. "
        "Was it trained with a different config or sentencepiece model?"
    )


# --------------------------------------------------------------------------------------------
# seq2seq-export directories


def check_export_metadata(metadata: Any, meta_path: Path, newest: int) -> None:
    """The structure of an export's ``seq2seq.json``: a one-line :class:`CheckpointError` naming the key."""
    if not isinstance(metadata, dict) or "config" not in metadata:
        raise CheckpointError(f"{meta_path}: not a seq2seq-export file this version can read")
    fmt = metadata.get("format", 0)
    if type(fmt) is not int:
        raise CheckpointError(f"{meta_path}: format must be an integer, got a {_kind(fmt)}")
    if fmt > newest:
        raise CheckpointError(f"{meta_path}: written by a newer seq2seq (format {fmt} > {newest})")
    positions = metadata.get("max_positions", 1)
    if type(positions) is not int or positions < 1:
        raise CheckpointError(f"{meta_path}: max_positions must be a positive integer, got {positions!r:.40}")
    files = metadata.get("tokenizers")
    if not isinstance(files, dict) or "src" not in files or not set(files) <= {"src", "trg"}:
        raise CheckpointError(f"{meta_path}: tokenizers must map src (and trg) to sentencepiece file names")
    if not all(isinstance(name, str) for name in files.values()):
        raise CheckpointError(f"{meta_path}: tokenizers must map src (and trg) to file names (strings)")


def export_tokenizers(directory: Path, files: dict[str, str], meta_path: Path) -> Tokenizers:
    """The sentencepiece models an export names, read from inside its directory only."""
    src = Tokenizer.load(export_file(directory, files["src"], meta_path, "tokenizers.src"))
    trg = Tokenizer.load(export_file(directory, files["trg"], meta_path, "tokenizers.trg")) if "trg" in files else src
    return Tokenizers(src, trg)


def export_file(directory: Path, name: str, meta_path: Path, key: str) -> Path:
    """``directory/name``, refused unless it stays inside ``directory`` (no absolute path, no
    ``..``, no symlink leading out)."""
    path = directory / name
    inside = os.path.realpath(path).startswith(os.path.join(os.path.realpath(directory), ""))
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or not inside:
        raise CheckpointError(f"{meta_path}: {key}={name!r:.80} is not a file inside the export directory {directory}")
    return path


def _kind(value: Any) -> str:
    return type(value).__name__
