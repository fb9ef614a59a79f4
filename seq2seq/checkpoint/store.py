"""Checkpoints: complete, atomically written, safely loaded.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only::

    version, config (resolved, plain dict), tokenizers (sentencepiece bytes), vocab sizes,
    model, optimizer, scheduler, progress (step/epoch/data position), rng, metrics

It is written to a temporary file and renamed, and always read with
``torch.load(weights_only=True)``, so a crafted file cannot run code on load. ``translate``
needs nothing but the checkpoint path.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import re
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf.errors import OmegaConfBaseException

from seq2seq.checkpoint.checks import (
    build_checked,
    check_payload,
    describe_mismatch,
    payload_tokenizers,
    weights_error,
)
from seq2seq.config.compose import describe_config_error
from seq2seq.config.schema import TrainRunConfig
from seq2seq.config.serialization import find_interpolation, from_container, upgrade_train_config
from seq2seq.data.tokenizer import Tokenizers, spm_file_names
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.errors import CheckpointError, ConfigError, OutputError
from seq2seq.utils.files import NO_SPACE, atomic_save, atomic_write_bytes, os_errno, same_file

log = logging.getLogger(__name__)

VERSION = 1
# The checkpoint files a CheckpointManager writes and prunes: exactly step_N.pt.
STEP_FILE = re.compile(r"step_(\d+)\.pt")


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
    check_payload(payload, str(path))
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer seq2seq (format {payload['version']} > {VERSION})")
    return payload


def checkpoint_config(payload: dict[str, Any], source: str = "checkpoint") -> TrainRunConfig:
    """The typed config stored in ``payload``. It is data: an interpolation in it is refused, not resolved."""
    if not isinstance(payload.get("config"), dict):
        kind = type(payload.get("config")).__name__
        raise CheckpointError(f"{source}: not a valid checkpoint: its config is a {kind}, not a dict")
    key = find_interpolation(payload["config"])
    if key is not None:
        raise CheckpointError(
            f"{source}: refused: its config value {key} contains '${{' (an OmegaConf interpolation); "
            "checkpoint configs are data and are never resolved"
        )
    try:
        return from_container(TrainRunConfig, upgrade_train_config(payload["config"]))
    except OmegaConfBaseException as err:
        raise CheckpointError(f"{source}: its config is not valid: {describe_config_error(err)}") from None
    except ConfigError as err:
        raise CheckpointError(f"{source}: its config is not valid: {err}") from None


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Seq2Seq, Tokenizers, TrainRunConfig, dict[str, Any]]:
    """Rebuild model, tokenizers and config from a checkpoint file alone (model in eval mode).

    The file is checked (structure, sentencepiece models, config sizes against the weights'
    shapes: :mod:`seq2seq.checkpoint.checks`) before the model is built or moved to ``device``.
    """
    payload = load_checkpoint(path)
    cfg = checkpoint_config(payload, str(path))
    tokenizers = payload_tokenizers(payload, str(path))
    model = build_checked(cfg.model, tokenizers, payload["model"], str(path))
    model.to(device).eval()
    return model, tokenizers, cfg, payload


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict`` with a one-line error naming what does not fit."""
    problem = describe_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    if problem:
        raise CheckpointError(weights_error(source, problem))
    model.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# A run's checkpoint directory


class CheckpointManager:
    """``checkpoints/``: one ``step_N.pt`` file per save; ``latest.pt`` and ``best.pt`` link to them.

    The ``keep_best`` best files by the dev score are kept, plus the latest; others are deleted
    once a newer checkpoint is safely on disk. Links are replaced atomically, so ``best.pt`` and
    ``latest.pt`` always name a complete file.
    """

    def __init__(self, directory: str | Path, keep_best: int = 1, higher_is_better: bool = True) -> None:
        if keep_best < 1:
            raise ValueError(f"keep_best must be >= 1, got {keep_best}")
        self.directory = Path(directory)
        self.keep_best = keep_best
        self.higher_is_better = higher_is_better
        self.ranking: list[tuple[float, int]] = []  # (score, step), best first
        self.latest_step: int | None = None

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step}.pt"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    @property
    def latest_path(self) -> Path:
        return self.directory / "latest.pt"

    def is_improvement(self, score: float) -> bool:
        if not self.ranking:
            return True
        best = self.ranking[0][0]
        return score > best if self.higher_is_better else score < best

    def save(self, payload: dict[str, Any], step: int, score: float | None) -> bool:
        """Write the checkpoint of ``step``; ``score`` None means unranked (e.g. on interrupt).

        ``payload`` should already hold this manager's :meth:`state_dict` as it will be after the
        save (see :meth:`ranked`). Returns True if it is the new best.
        """
        improved = score is not None and self.is_improvement(score)
        try:
            save_checkpoint(self.path(step), payload)
            _link(self.path(step), self.latest_path)
            if improved:
                _link(self.path(step), self.best_path)
        except (OutputError, OSError) as err:
            raise self._save_error(err, step) from None
        self.ranking = self.ranked(step, score)
        self.latest_step = step
        self._prune()
        return improved

    def _save_error(self, err: Exception, step: int) -> CheckpointError:
        """One line for a failed save: the file, "no space left" if so, and what is still on disk."""
        if os_errno(err) in NO_SPACE:
            reason = f"{self.path(step)}: no space left on device"
        elif isinstance(err, OutputError):
            reason = str(err)
        else:
            reason = f"{self.path(step)}: {getattr(err, 'strerror', None) or err}"
        if self.latest_step is None:
            return CheckpointError(f"{reason} while saving the checkpoint of step {step}; no earlier checkpoint")
        previous = self.path(self.latest_step)
        return CheckpointError(f"{reason} while saving the checkpoint of step {step}; {previous} is intact")

    def ranked(self, step: int, score: float | None) -> list[tuple[float, int]]:
        """The ranking after adding ``(score, step)``, best first, cut to ``keep_best``."""
        ranking = [r for r in self.ranking if r[1] != step]
        if score is not None:
            ranking.append((score, step))
        ranking.sort(key=lambda r: (-r[0] if self.higher_is_better else r[0], r[1]))
        return ranking[: self.keep_best]

    def promote(self, path: Path) -> None:
        """Make ``best.pt`` name ``path`` (e.g. an averaged checkpoint)."""
        _link(path, self.best_path)

    def _prune(self) -> None:
        """Delete the ``step_N.pt`` files (exactly those names: only what we wrote) no longer kept."""
        keep = {self.path(step).name for _, step in self.ranking}
        if self.latest_step is not None:
            keep.add(self.path(self.latest_step).name)
        for path in self.directory.glob("step_*.pt"):
            if STEP_FILE.fullmatch(path.name) and path.name not in keep:
                path.unlink(missing_ok=True)

    def state_dict(self, step: int | None = None, score: float | None = None) -> dict[str, Any]:
        """What a checkpoint records of the manager (as of after saving ``step`` with ``score``)."""
        ranking = self.ranked(step, score) if step is not None else self.ranking
        return {"ranking": [list(r) for r in ranking], "latest_step": step if step is not None else self.latest_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ranking = [(float(score), int(step)) for score, step in state["ranking"]]
        self.latest_step = state.get("latest_step")

    def resume_candidates(self) -> list[Path]:
        """``latest.pt``, then the ``step_N.pt`` files newest first, leaving out the file that
        ``latest.pt`` is a hard link to (a damaged ``latest.pt`` damaged it too)."""
        latest = [self.latest_path] if self.latest_path.is_file() else []
        files = self.directory.glob("step_*.pt")
        numbered = [(int(m.group(1)), p) for p in files if (m := STEP_FILE.fullmatch(p.name))]
        steps = [p for _, p in sorted(numbered, reverse=True) if not (latest and same_file(p, latest[0]))]
        return latest + steps

    def load_newest(self, map_location: str | torch.device = "cpu", repair: bool = True) -> tuple[Path, dict[str, Any]]:
        """The newest checkpoint that loads, as ``(path, payload)``: ``latest.pt``, else the newest
        ``step_N.pt`` that does (a warning names each file passed over and why).

        With ``repair``, after a fall-back ``latest.pt`` is made to name the checkpoint resumed
        from (and ``best.pt``, if it was the same damaged file, the best one that checkpoint
        ranks). A one-line :class:`CheckpointError` if none loads.
        """
        failures: list[tuple[Path, CheckpointError]] = []
        for path in self.resume_candidates():
            try:
                payload = load_checkpoint(path, map_location)
            except CheckpointError as err:
                log.warning("%s (looking for an older checkpoint)", err)
                failures.append((path, err))
                continue
            if failures and repair:  # one process repairs (rank 0 under torchrun)
                self._replace_damaged(path, failures[0][0], payload)
                log.warning("resuming from %s, the newest checkpoint that loads (%s did not)", path, failures[0][0])
            return path, payload
        if not failures:
            raise CheckpointError(f"{self.directory}: no checkpoint to resume from")
        raise CheckpointError(
            f"{self.directory}: no checkpoint loads ({len(failures)} tried); the newest: {failures[0][1]}"
        )

    def _replace_damaged(self, good: Path, damaged: Path, payload: dict[str, Any]) -> None:
        """Point ``latest.pt`` at ``good``, and ``best.pt``, if it is the damaged file, at the best
        checkpoint ``good`` ranks (``good`` itself if that file is gone)."""
        if self.best_path.is_file() and same_file(self.best_path, damaged):
            ranking = (payload.get("checkpoints") or {}).get("ranking") or []
            best = self.path(int(ranking[0][1])) if ranking else good
            _link(best if best.is_file() else good, self.best_path)
        if damaged == self.latest_path:
            _link(good, self.latest_path)


def restore_tokenizer_files(cfg: TrainRunConfig, run_dir: str | Path) -> bool:
    """Put back the run's deleted sentencepiece file(s) from the checkpoint to resume from.

    The checkpoint holds the exact model the run was trained with; training a new one would
    change the vocabulary (and the resume would be refused). Returns True if files were restored.
    """
    run_dir = Path(run_dir)
    checkpoints = CheckpointManager(run_dir / "checkpoints")
    paths = [run_dir / name for name in spm_file_names(cfg.data)]
    if cfg.data.spm_model or cfg.train.resume is False or all(p.is_file() for p in paths):
        return False
    if not checkpoints.resume_candidates():
        return False
    latest, payload = checkpoints.load_newest(repair=False)  # the resume itself repairs the links
    state = payload["tokenizers"]
    protos = [state["src"]] if "trg" not in state else [state["src"], state["trg"]]
    if len(protos) != len(paths):
        return False  # joint vs separate changed: the resume check reports it
    for path, proto in zip(paths, protos):
        atomic_write_bytes(path, bytes(proto))
    log.warning("restored %s from %s (the run's own sentencepiece model)", ", ".join(map(str, paths)), latest)
    return True


def _link(target: Path, link: Path) -> None:
    """Atomically make ``link`` name the same file as ``target`` (hard link, else a copy).

    The temporary is created under a fresh random name that must not exist (``link`` fails and
    ``mkstemp`` uses ``O_EXCL`` on an existing name), so a file or symlink planted in the
    directory is never followed or written.
    """
    try:
        tmp = _new_hard_link(target, link.parent, f".{link.name}.")
    except OSError:  # a file system without hard links: an exclusive temporary copy
        fd, name = tempfile.mkstemp(prefix=f".{link.name}.", suffix=".tmp", dir=link.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as out, open(target, "rb") as source:
            shutil.copyfileobj(source, out)
            out.flush()
            os.fsync(out.fileno())
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_hard_link(target: Path, directory: Path, prefix: str) -> Path:
    """A new hard link to ``target`` in ``directory``, named ``PREFIX<random>.tmp``."""
    for _ in range(100):
        tmp = directory / f"{prefix}{secrets.token_hex(8)}.tmp"
        try:
            os.link(target, tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


def average_checkpoints(paths: list[str | Path]) -> dict[str, Any]:
    """The payload of ``paths[0]`` with its model weights replaced by the mean over ``paths``.

    Floating-point tensors are averaged; integer buffers are taken from the first checkpoint.
    All checkpoints must come from the same model (same keys and shapes) and the same
    sentencepiece models (the same ids mean the same pieces).
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    first = load_checkpoint(paths[0])
    total = {k: v.double() if v.is_floating_point() else v.clone() for k, v in first["model"].items()}
    for path in paths[1:]:
        other = load_checkpoint(path)
        if other["tokenizers"] != first["tokenizers"]:
            raise CheckpointError(
                f"{path}: its sentencepiece model differs from that of {paths[0]} (another vocabulary); "
                "only checkpoints of one training run can be averaged"
            )
        state = other["model"]
        if state.keys() != total.keys() or any(state[k].shape != total[k].shape for k in total):
            raise CheckpointError(f"{path}: does not have the same model as {paths[0]}; cannot average")
        for k, v in state.items():
            if v.is_floating_point():
                total[k] += v.double()
    model = {k: (v / len(paths)).to(first["model"][k].dtype) if v.is_floating_point() else v for k, v in total.items()}
    payload = {k: v for k, v in first.items() if k not in ("optimizer", "version")}
    payload["model"] = model
    payload["averaged_from"] = [str(p) for p in paths]
    return payload


def latest_checkpoint(run_dir: str | Path) -> Path:
    """``latest.pt`` of a run directory (or of its ``checkpoints/`` directory itself)."""
    run_dir = Path(run_dir)
    return (run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir) / "latest.pt"


def best_checkpoints(run_dir: str | Path, n: int) -> list[Path]:
    """The ``n`` best checkpoint files of a run, best first, from its ``latest.pt`` ranking."""
    directory = latest_checkpoint(run_dir).parent
    latest = load_checkpoint(directory / "latest.pt")
    ranking = latest.get("checkpoints", {}).get("ranking", [])
    paths = [directory / f"step_{int(step)}.pt" for _, step in ranking[:n]]
    missing = [p for p in paths if not p.is_file()]
    if missing or not paths:
        raise CheckpointError(f"{directory}: the run's best checkpoints are not all kept ({missing or 'none ranked'})")
    if len(paths) < n:
        log.warning("%s keeps only %d ranked checkpoints (asked for %d)", directory, len(paths), n)
    return paths
