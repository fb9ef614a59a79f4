"""Multi-process training with PyTorch's own tools: ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=N scripts/train.py ...`` starts N processes that find each other
through the ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment torchrun sets (several nodes:
torchrun's usual ``--nnodes``/``--rdzv_*`` flags). Each rank trains on its own share of every
epoch's batches; DDP averages the gradients; rank 0 alone writes logs, TensorBoard and
checkpoints. ``gloo`` is used on CPUs, ``nccl`` on GPUs.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from seq2seq.data.sharding import DistContext, shard  # noqa: F401 (re-exported)
from seq2seq.utils.errors import ConfigError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), known before joining the group."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def init_distributed(use_cuda: bool) -> DistContext:
    """Join the process group torchrun prepared (once per process); a single process gets rank 0 of 1."""
    if not launched_by_torchrun():
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda and local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"torchrun started local rank {local_rank}, but this machine has {torch.cuda.device_count()} CUDA "
            f"device(s), one per process: use --nproc_per_node={torch.cuda.device_count()}, or train.device=cpu"
        )
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def all_reduce_sum(values: Sequence[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Element-wise sum over ranks (one small collective)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def parameters_agree(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> bool:
    """True when every rank holds exactly the same parameters (compared by checksums)."""
    if not ctx.enabled:
        return True
    with torch.no_grad():
        local = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(device)
    gathered = [torch.zeros_like(local) for _ in range(ctx.world)]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def shutdown(wait_for_all: bool = True) -> None:
    """Leave the process group.

    After a clean run, first wait until every rank is done: a rank that tears down its gloo
    connections while a peer is still talking to it aborts the peer (``terminate called without
    an active exception``). After an error, leave at once (the others may never arrive); a peer
    that failed and left makes the barrier fail, which is then nothing to wait for.
    """
    if dist.is_initialized():
        if wait_for_all:
            with contextlib.suppress(RuntimeError):
                dist.barrier()
        dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End a torchrun worker now, without the interpreter's shutdown; logs and output flushed first.

    Gloo's worker threads outlive ``destroy_process_group`` (the group stays referenced) and may
    still drop the last reference to a tensor of a finished collective. If that happens while the
    interpreter shuts down, the thread cannot take the GIL, is unwound through a ``noexcept``
    frame, and the rank aborts (``terminate called without an active exception``, exit -6) after
    a run that had saved everything: seen in about one of ten test-suite runs.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def torchrun_argv(argv: list[str]) -> list[str]:
    """Hydra overrides that make all torchrun ranks share rank 0's run directory.

    Rank 0 picks the default ``outputs/DATE/TIME`` name and broadcasts it (the ranks could start
    in different seconds); ranks > 0 keep no Hydra outputs of their own and log warnings only.
    """
    if not launched_by_torchrun():
        return argv
    ctx = init_distributed(use_cuda=torch.cuda.is_available() and "train.device=cpu" not in argv)
    extra = []
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        stamp = broadcast(datetime.datetime.now().strftime("outputs/%Y-%m-%d/%H-%M-%S"), ctx)
        extra.append(f"hydra.run.dir={stamp}")
    if not ctx.is_main:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=stderr", "hydra.job_logging.root.level=WARNING"]
    return argv + extra


def prepare_torchrun() -> None:
    """Rewrite ``sys.argv`` for :func:`torchrun_argv` before Hydra parses it."""
    sys.argv = sys.argv[:1] + torchrun_argv(sys.argv[1:])
