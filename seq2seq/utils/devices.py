"""Process set-up shared by training and translation: device, threads, seeds."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from seq2seq.utils.errors import ConfigError


def resolve_device(device: str, precision: str | None = None) -> torch.device:
    """``auto`` is CUDA when available, else CPU (the CPU for ``precision=int8``, which runs there
    only); asking for an absent CUDA device is an error.

    The device goes through :func:`prepare_device`.
    """
    device = str(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available (use device=auto or cpu)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and str(precision) != "int8" else "cpu"
    return prepare_device(torch.device(device))


def prepare_device(device: torch.device) -> torch.device:
    """``device``, ready to run our models: on CUDA, SDPA uses the flash / memory-efficient
    kernels, never cuDNN's.

    cuDNN's attention builds an execution plan for every new input shape, and our batches and
    decoding steps change shape all the time: on an H100 (torch 2.11), bf16 and fp16 beam search
    ran 6-10x slower than fp32 (which cuDNN's attention does not serve), and bf16 training steps
    were slow until most shapes had been seen.
    """
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
    return device


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously; a CPU has nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_threads(threads: int | None) -> None:
    """Intra-op CPU threads (default: PyTorch's choice, one per physical core)."""
    if threads:
        torch.set_num_threads(threads)


def set_up_process(threads: int | None) -> None:
    """An entry point's decisions for its whole process (training, translating, serving,
    benchmarking): PyTorch's intra-op threads (:func:`set_threads`) and an allocator that keeps
    freed memory (:func:`keep_freed_memory`). The commands and a whole training
    (:func:`seq2seq.train`) call it; a translator built from Python never changes them."""
    set_threads(threads)
    keep_freed_memory()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocation instead of returning it.

    A training step allocates and frees the same large tensors every time (the logits alone are
    tokens x vocabulary floats, ~130 MB for a 4,096-token batch and an 8k vocabulary), and so does
    every beam-search step (batch x beam x vocabulary scores, ~10 MB for 64 sentences). glibc
    serves large blocks by ``mmap`` and unmaps them on ``free`` (above a threshold that moves up to
    32 MB), and returns the top of its heap above twice that, so every step pays page faults to
    map and zero them again (``copy_``/``mm`` into fresh memory ran at ~1 GB/s in a profile). With
    ``mmap`` off and trimming only above 2 GB, freed blocks are reused. Skipped when the user set
    malloc's own environment variables, and on other C libraries (returns False).
    """
    if sys.platform != "linux" or any(k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_bf16_features() -> list[str]:
    """The CPU's native bf16 instruction sets among AVX-512 BF16 and AMX BF16 (empty: none)."""
    wanted = ("avx512_bf16", "amx_bf16")
    get = getattr(torch.cpu, "get_capabilities", None)  # PyTorch >= 2.8
    if get is not None:
        with contextlib.suppress(Exception):
            caps = get()
            return [name for name in wanted if caps.get(name)]
    with contextlib.suppress(OSError):
        flags = set(Path("/proc/cpuinfo").read_text().split())
        return [name for name in wanted if name in flags]
    return []


def cuda_bf16_native(device: torch.device) -> bool:
    """True for CUDA devices that compute bf16 in hardware (compute capability 8.0 and newer)."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """``(fp32|bf16|fp16, reason)``: ``auto`` is bf16 where ``device`` computes it natively, else fp32.

    ``auto`` never picks fp16 (it needs loss scaling and overflows where bf16 does not).
    """
    precision = str(precision)
    if precision != "auto":
        return precision, "as configured"
    if device.type == "cuda":
        if cuda_bf16_native(device):
            return "bf16", f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no native bf16 (compute capability < 8.0)"
    if device.type == "cpu":
        features = cpu_bf16_features()
        if features:
            return "bf16", f"the CPU has {' and '.join(f.upper() for f in features)}"
        return "fp32", "the CPU has neither AVX-512 BF16 nor AMX (bf16 would be emulated, slower than fp32)"
    return "fp32", f"no native bf16 probe for device type {device.type}"


def autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context for ``precision`` (``fp32``: no autocast; ``auto``: see
    :func:`resolve_precision`).

    ``bf16`` works on CPUs (fast where they have AVX-512 BF16 or AMX) and on CUDA; ``fp16`` needs
    CUDA (and a gradient scaler when training).
    """
    precision, _ = resolve_precision(precision, device)
    if precision in ("fp32", "int8"):  # int8: a quantised model (seq2seq.decode.int8) computing in fp32 otherwise
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def describe_machine(device: torch.device) -> str:
    """``torch 2.x, N threads, M CPUs, <CPU or GPU name>``: the hardware a number was measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {name}"


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``module`` in eval mode (no dropout) for the ``with`` block; its train/eval mode comes back
    afterwards, also when the block raises."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
