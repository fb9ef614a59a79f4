"""Process set-up shared by training and translation: device, threads, seeds."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import numpy as np
import torch

from seq2seq.config import Device
from seq2seq.errors import ConfigError


def resolve_device(device: Device | str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for an absent CUDA device is an error."""
    device = str(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available (use device=auto or cpu)")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_threads(threads: int | None) -> None:
    """Intra-op CPU threads (default: PyTorch's choice, one per physical core)."""
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context for ``precision`` (``fp32``: no autocast).

    ``bf16`` works on CPUs (fast where they have AVX-512 BF16 or AMX) and on CUDA; ``fp16`` needs
    CUDA (and a gradient scaler when training).
    """
    precision = str(precision)
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)
