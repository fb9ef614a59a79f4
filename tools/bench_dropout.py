"""Time dropout on this CPU: PyTorch's, a bool mask, and seq2seq's uint8 mask, in one process.

    python tools/bench_dropout.py                      # a (256, 16, 1024) tensor, fp32 and bf16
    python tools/bench_dropout.py --shape 64 1024 --repeats 50

Prints one table row per way and dtype: the median milliseconds of drawing the mask, of the
forward product and of the backward product, and their sum. "bool mask" is the previous
implementation (a bool comparison, ``x.mul(mask).mul_(scale)`` both ways); "uint8 mask" times
``seq2seq.model.dropout``'s own mask and autograd function (a uint8 comparison, one ``addcmul`` each way;
its backward, like PyTorch's, through ``torch.autograd.grad``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.model import dropout as ours  # noqa: E402
from seq2seq.utils.devices import keep_freed_memory  # noqa: E402

P = 0.1


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bool_mask(shape: tuple[int, ...]) -> torch.Tensor:
    n = math.prod(shape)
    words = torch.randint(*ours._WORD, ((n + 3) // 4,), dtype=torch.int64)
    return (words.view(torch.int16)[:n] >= round(P * ours._LEVELS) - ours._LEVELS // 2).view(shape)


def rows(shape: tuple[int, ...], dtype: torch.dtype, repeats: int) -> list[tuple[str, float, float, float]]:
    """(way, mask ms, forward ms, backward ms) for each way of dropping out a ``shape`` tensor."""
    x, grad = torch.randn(shape).to(dtype), torch.randn(shape).to(dtype)
    scale = 1.0 / (1.0 - P)
    leaf = x.clone().requires_grad_()
    dropped = F.dropout(leaf, P, training=True)
    out = [
        (
            "PyTorch F.dropout (mask drawn in forward)",
            0.0,
            median_ms(lambda: F.dropout(x, P, training=True), repeats),
            median_ms(lambda: torch.autograd.grad(dropped, leaf, grad, retain_graph=True), repeats),
        )
    ]
    mask = bool_mask(shape)
    out.append(
        (
            "bool mask",
            median_ms(lambda: bool_mask(shape), repeats),
            median_ms(lambda: x.mul(mask).mul_(scale), repeats),
            median_ms(lambda: grad.mul(mask).mul_(scale), repeats),
        )
    )
    mask8 = ours.keep_mask(shape, P)
    dropped8 = ours._MaskScale.apply(leaf, mask8, scale)
    out.append(
        (
            "uint8 mask",
            median_ms(lambda: ours.keep_mask(shape, P), repeats),
            median_ms(lambda: ours._MaskScale.apply(x, mask8, scale), repeats),
            median_ms(lambda: torch.autograd.grad(dropped8, leaf, grad, retain_graph=True), repeats),
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[256, 16, 1024])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    keep_freed_memory()
    shape = tuple(args.shape)
    print(f"dropout p={P} of a {shape} tensor, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("\n| dtype | way | mask ms | forward ms | backward ms | total ms |\n|---|---|---:|---:|---:|---:|")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for way, mask, forward, backward in rows(shape, dtype, args.repeats):
            total = mask + forward + backward
            print(f"| {name} | {way} | {mask:.2f} | {forward:.2f} | {backward:.2f} | {total:.2f} |")


if __name__ == "__main__":
    main()
