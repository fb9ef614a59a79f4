"""What a training run carries across checkpoints: progress counters, RNG states, the checkpoint
payload (:func:`training_payload`, :func:`restore_training`) and what may change on resume."""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from seq2seq.checkpoint.store import CheckpointManager, load_weights
from seq2seq.config.schema import TrainRunConfig
from seq2seq.config.serialization import flatten, to_container, upgrade_train_config
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.training.distributed import DistContext
from seq2seq.training.optim import load_optimizer_state
from seq2seq.utils.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # this rank's batches of ``epoch`` already consumed
    tokens: int = 0  # non-padding target tokens trained on (all ranks)
    best_score: float | None = None
    best_step: int = 0
    bad_validations: int = 0  # in a row, for early stopping
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient, in total
    history: list[dict[str, float]] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (and CUDA) random states, as plain values and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    # A checkpoint loaded onto a GPU (map_location) holds these tensors there.
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# Keys that may change when a run is resumed, silently.
RESUME_FREE = {
    "train.max_steps",
    "train.max_epochs",
    "train.max_minutes",
    "train.valid_every",
    "train.log_every",
    "train.patience",
    "train.resume",
    "train.device",
    "train.threads",
    "train.progress",
    "train.keep_best",
    "train.average_best",
    "train.max_bad_steps",
    "data.root",
    "data.cache_dir",
    "data.num_proc",
}
# Training keys that cannot change on resume (model.* and data.* keys cannot either), and why.
RESUME_REFUSED = {
    "train.batch_tokens": "the saved data position counts batches of the old size: pairs would be skipped or repeated",
    "train.seed": "the epochs are shuffled by the seed, so the saved data position would skip or repeat pairs",
    "train.best_metric": "the saved best scores and checkpoint ranking are in the old metric",
}
# Keys that the saved optimizer state would bring back: the trainer re-applies the config's values.
RESUME_OPTIMIZER = {"train.optimizer", "train.betas", "train.weight_decay"}


def resume_policy(key: str) -> str:
    """What resuming does with a changed ``key``: ``free``, ``refuse``, ``optimizer`` or ``apply``.

    ``optimizer``: applied to the restored optimizer; ``apply``: in effect from the next step
    (the schedule, loss, clipping and validation settings are read from the config).
    """
    if key in RESUME_FREE:
        return "free"
    if key in RESUME_REFUSED or key.startswith(("model.", "data.")):
        return "refuse"
    return "optimizer" if key in RESUME_OPTIMIZER else "apply"


def check_resumable(old: dict[str, Any], new: dict[str, Any], source: str) -> None:
    """Refuse to resume with another model, data or batching set-up; note the settings that change.

    A key the checkpoint lacks (added in a later version) counts as having its default value then;
    a key only the checkpoint has (since removed) is ignored.
    """
    changes = [c for c in resume_changes(old, new) if resume_policy(c[0]) != "free"]
    fatal = [c for c in changes if c[0].startswith(("model.", "data."))]
    if fatal:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in fatal[:3])
        raise ConfigError(
            f"{source} was trained with a different model/data config ({listed}); use a new run directory"
        )
    for key, a, b in changes:
        if key in RESUME_REFUSED:
            raise ConfigError(
                f"{source}: cannot resume with {key} changed ({a!r} -> {b!r}): {RESUME_REFUSED[key]}; keep the "
                "old value or use a new run directory"
            )
    for key, a, b in changes:
        where = "the restored optimizer" if resume_policy(key) == "optimizer" else "training from this step"
        log.warning("resuming with a changed setting %s: %r -> %r (applied to %s)", key, a, b, where)


def resume_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for each key of ``new`` whose value differs; keys ``old`` lacks take their default."""
    defaults = flatten(to_container(TrainRunConfig()))
    before, after = flatten(old), flatten(new)
    return [
        (k, before.get(k, defaults.get(k)), v) for k, v in sorted(after.items()) if before.get(k, defaults.get(k)) != v
    ]


def training_payload(
    cfg: TrainRunConfig,
    tokenizers: Tokenizers,
    parts: dict[str, Any],
    progress: Progress,
    checkpoints: CheckpointManager,
    score: float | None,
    world: int,
    rngs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A checkpoint's contents: the config and tokenizers (to rebuild the model), then every
    state needed to continue training exactly. ``parts`` are the model, optimizer, scheduler and
    scaler by name (anything with ``state_dict()``); ``rngs`` has one state per rank."""
    step = progress.step
    return {
        "config": to_container(cfg),
        "tokenizers": tokenizers.to_state(),
        "vocab": {"src": len(tokenizers.src), "trg": len(tokenizers.trg)},
        **{name: part.state_dict() for name, part in parts.items()},
        "progress": asdict(progress),
        "checkpoints": checkpoints.state_dict(step, score),
        "world": world,
        "rng": rngs,
    }


def restore_training(
    payload: dict[str, Any],
    source: str,
    cfg: TrainRunConfig,
    tokenizers: Tokenizers,
    parts: dict[str, Any],
    checkpoints: CheckpointManager,
    ctx: DistContext,
) -> Progress:
    """Load a :func:`training_payload` from ``source`` into ``parts`` and ``checkpoints``; returns
    the saved progress. Refuses a payload whose config or tokenizers this run cannot continue."""
    check_resumable(upgrade_train_config(payload["config"]), to_container(cfg), source)
    if payload["tokenizers"] != tokenizers.to_state():
        raise ConfigError(f"{source}: its sentencepiece model differs from this run's; cannot resume")
    load_weights(parts["model"], payload["model"], source)
    load_optimizer_state(parts["optimizer"], payload["optimizer"])
    parts["scheduler"].load_state_dict(payload["scheduler"])
    if payload.get("scaler"):
        parts["scaler"].load_state_dict(payload["scaler"])
    progress = Progress(**payload["progress"])
    checkpoints.load_state_dict(payload["checkpoints"])
    rngs = payload["rng"] if isinstance(payload["rng"], list) else [payload["rng"]]
    saved_world = payload.get("world", 1)
    if saved_world == ctx.world:
        set_rng_state(rngs[ctx.rank])
    else:
        log.warning("resuming on %d ranks a run saved on %d: epoch %d restarts", ctx.world, saved_world, progress.epoch)
        progress.batch_in_epoch = 0
    return progress
