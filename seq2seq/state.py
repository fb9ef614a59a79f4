"""What a training run carries across checkpoints: progress counters, RNG states, resume checks."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seq2seq.config import TrainRunConfig, flatten, to_container
from seq2seq.errors import ConfigError

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
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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
