"""Checkpoints: complete, atomically written, safely loaded.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only::

    version, config (resolved, plain dict), tokenizers (sentencepiece bytes), vocab sizes,
    model, optimizer, scheduler, progress (step/epoch/data position), rng, metrics

It is written to a temporary file and renamed, and always read with
``torch.load(weights_only=True)``, so a crafted file cannot run code on load. ``translate``
needs nothing but the checkpoint path.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from seq2seq.config import TrainRunConfig, from_container
from seq2seq.errors import CheckpointError
from seq2seq.files import atomic_save
from seq2seq.model import Seq2Seq, build_model
from seq2seq.tokenizer import Tokenizers

log = logging.getLogger(__name__)

VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format version) to ``path``."""
    payload = {"version": VERSION, **payload}
    atomic_save(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused to load: it holds Python objects beyond tensors and plain values "
            f"(unsafe, or not a seq2seq checkpoint): {reason}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt): {err}") from None
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint (no model/config entries)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer seq2seq (format {payload['version']} > {VERSION})")
    return payload


def checkpoint_config(payload: dict[str, Any]) -> TrainRunConfig:
    return from_container(TrainRunConfig, payload["config"])


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Seq2Seq, Tokenizers, TrainRunConfig, dict[str, Any]]:
    """Rebuild model, tokenizers and config from a checkpoint file alone (model in eval mode)."""
    payload = load_checkpoint(path)
    cfg = checkpoint_config(payload)
    tokenizers = Tokenizers.from_state(payload["tokenizers"])
    model = build_model(cfg.model, len(tokenizers.src), len(tokenizers.trg))
    load_weights(model, payload["model"], str(path))
    model.to(device).eval()
    return model, tokenizers, cfg, payload


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict`` with a one-line error naming what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            k = mismatched[0]
            parts.append(
                f"{len(mismatched)} tensors differ in shape (e.g. {k}: checkpoint {tuple(state[k].shape)}, "
                f"model {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{source}: weights do not fit this model/vocabulary: {'; '.join(parts)}. "
            "Was it trained with a different config or sentencepiece model?"
        )
    model.load_state_dict(state)
