"""Building a training run: the parts a :class:`~seq2seq.training.trainer.Trainer` drives.

:func:`build_run` checks the config, finds the device (joining torchrun's process group where
torchrun started the process), seeds, prepares the data, builds the model, optimizer, precision,
schedule and batch order, and resumes from the run's newest checkpoint that loads. It changes no
process-wide setting: the thread count and the allocator are set by :func:`configure_process`
(``seq2seq-train``, :func:`seq2seq.train`) and by the other entry points (the benchmarks among
them) through :func:`seq2seq.utils.devices.set_up_process`, never by a constructor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seq2seq.checkpoint.store import CheckpointManager
from seq2seq.config.schema import Metric, TrainRunConfig
from seq2seq.config.values import check_train_config, check_values
from seq2seq.data.sharding import DistContext
from seq2seq.model.seq2seq import Seq2Seq, build_model
from seq2seq.training import distributed as D
from seq2seq.training.optim import LRSchedule, build_optimizer
from seq2seq.training.run_data import RunData, prepare_data, train_batches
from seq2seq.training.run_state import Progress, restore_training
from seq2seq.utils.devices import (
    describe_machine,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_up_process,
)
from seq2seq.utils.errors import ConfigError
from seq2seq.utils.files import remove_stale_temporaries

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything a training run is made of, built by :func:`build_run`."""

    cfg: TrainRunConfig
    run_dir: Path
    device: torch.device
    dist: DistContext
    data: RunData
    model: Seq2Seq
    optimizer: torch.optim.Optimizer
    precision: str  # fp32, bf16 or fp16 (train.precision resolved on this device)
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    schedule: LRSchedule
    batches: Any  # the training batches' order (see run_data.train_batches)
    checkpoints: CheckpointManager
    progress: Progress  # where training stands (after a resume: where the checkpoint left it)

    def parts(self) -> dict[str, Any]:
        """The stateful parts a checkpoint saves and a resume restores, by name."""
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.schedule, "scaler": self.scaler}


def configure_process(cfg: TrainRunConfig) -> None:
    """A training process's own settings: PyTorch's intra-op threads (``train.threads``) and an
    allocator that keeps freed memory (see :func:`seq2seq.utils.devices.keep_freed_memory`)."""
    set_up_process(cfg.train.threads)


def build_run(cfg: TrainRunConfig, run_dir: str | Path, data: RunData | None = None) -> Run:
    """The parts of a training of ``cfg`` in ``run_dir`` (``data``: already prepared, e.g. shared by
    two runs in a test), resumed from the run's newest checkpoint if it has one."""
    check_train_config(cfg)
    check_values(cfg)
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    dist = D.init_distributed(device.type == "cuda")
    device = torch.device("cuda", dist.local_rank) if device.type == "cuda" else device
    seed_everything(cfg.train.seed)
    data = data or prepare_data(cfg, run_dir, dist)
    model = build_model(cfg.model, len(data.tokenizers.src), len(data.tokenizers.trg)).to(device)
    seed_everything(cfg.train.seed + dist.rank)  # same initial weights, own dropout masks
    optimizer = build_optimizer(cfg.train, model)
    precision, why = resolve_precision(cfg.train.precision, device)
    log.info("precision %s (train.precision=%s: %s)", precision, cfg.train.precision, why)
    log.info("hardware: %s", describe_machine(device))
    if cfg.train.compile:
        model.decoder.step = torch.compile(model.decoder.step, dynamic=True)
    higher_is_better = cfg.train.best_metric == Metric.bleu
    run = Run(
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        dist=dist,
        data=data,
        model=model,
        optimizer=optimizer,
        precision=precision,
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        schedule=LRSchedule(cfg.train),
        batches=train_batches(cfg, data, dist),
        checkpoints=CheckpointManager(run_dir / "checkpoints", cfg.train.keep_best, higher_is_better),
        progress=Progress(),
    )
    resume_if_asked(run)
    return run


def resume_if_asked(run: Run) -> None:
    """Continue from the newest checkpoint that loads (``latest.pt``, else a ``step_N.pt``)."""
    latest = run.checkpoints.latest_path
    resume = run.cfg.train.resume
    found = run.checkpoints.resume_candidates()
    if not found:
        if resume:
            raise ConfigError(f"train.resume=true but {latest} does not exist: nothing to resume")
        return
    if resume is False:
        raise ConfigError(
            f"{run.run_dir} already holds a training run ({found[0]}); continue it with train.resume=true "
            "or choose another hydra.run.dir"
        )
    latest, payload = run.checkpoints.load_newest(run.device, repair=run.dist.is_main)
    run.progress = restore_training(
        payload, str(latest), run.cfg, run.data.tokenizers, run.parts(), run.checkpoints, run.dist
    )
    p = run.progress
    log.info("resumed from %s: step %d, epoch %d, batch %d of the epoch", latest, p.step, p.epoch, p.batch_in_epoch)


def remove_run_temporaries(run_dir: str | Path) -> None:
    """Delete the temporary files a killed run left in ``run_dir`` and its ``checkpoints/``.

    Only the names this toolkit writes (``.step_N.pt.*.tmp``, ``.latest.pt.*.tmp``,
    ``.test.hyp.*.tmp``, ...) are touched. Call it only while holding the run's lock.
    """
    run_dir = Path(run_dir)
    removed = remove_stale_temporaries(run_dir / "checkpoints", r"step_\d+\.pt|latest\.pt|best\.pt|averaged\.pt")
    removed += remove_stale_temporaries(run_dir, r"test(?:\.[^/]+)?\.(?:hyp|scores\.json)|spm(?:\.[^/]+)?\.model")
    if removed:
        log.warning("removed %d temporary files left by an interrupted run (e.g. %s)", len(removed), removed[0])
