"""``benchmark.py profile``: where the time of a training step goes, and how close to the peak.

The configured model trains ``bench.warmup`` untimed steps, then ``bench.profile_steps`` (8) steps under
PyTorch's profiler. Reported: the wall time, the share of it spent in each operator (its own
time, without the operators it calls), the share outside any operator (Python, the optimizer's
bookkeeping, waiting), and for the matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``) the
FLOP/s they ran at, from their input shapes, against this machine's peak measured in the same
process (:class:`seq2seq.bench.flops.PeakMeter` in the training precision: the best of a round before
and one after the profiled steps; none where bf16 is emulated). If the products run near the peak
but take only part of the step, the rest of the step is what to make cheaper.

On CUDA the operators' device time is reported instead of their CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from seq2seq.bench.flops import Peak, PeakMeter, peak_size
from seq2seq.bench.train import warmed_up_trainer
from seq2seq.config.schema import BenchmarkConfig
from seq2seq.utils.devices import synchronize

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
TOP = 15  # operators listed by name; the rest are summed in one row


def matmul_flops(name: str, shapes: Sequence[Sequence[int]]) -> float:
    """FLOPs of one matrix-product operator from its input shapes (``2 m k n``, times the batch).

    ``mm(a (m, k), b (k, n))``, ``addmm(c, a (m, k), b (k, n))``, ``bmm(a (B, m, k), b (B, k, n))``,
    ``baddbmm(c, a (B, m, k), b (B, k, n))``; 0 for any other operator.
    """
    if name not in MATMULS:
        return 0.0
    a, b = (shapes[1], shapes[2]) if name in ("aten::addmm", "aten::baddbmm") else (shapes[0], shapes[1])
    batch = a[0] if len(a) == 3 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def summarise(ops: list[tuple[str, float, int, float]], wall: float, peak: Peak) -> dict[str, Any]:
    """The report from ``(name, self seconds, calls, FLOPs)`` per operator over ``wall`` seconds;
    ``matmul_efficiency`` is None where ``peak`` has no best (emulated bf16)."""
    ops = sorted(ops, key=lambda op: -op[1])
    inside = sum(op[1] for op in ops)
    mm_seconds = sum(op[1] for op in ops if op[0] in MATMULS)
    mm_flops = sum(op[3] for op in ops)
    rows = [{"op": n, "seconds": round(s, 4), "share": round(s / wall, 4), "calls": c} for n, s, c, _ in ops[:TOP]]
    rest = ops[TOP:]
    if rest:
        seconds = sum(op[1] for op in rest)
        share = round(seconds / wall, 4)
        rows.append({"op": f"{len(rest)} other operators", "seconds": round(seconds, 4), "share": share})
    efficiency = peak.fraction(mm_flops / mm_seconds, "matrix products") if mm_seconds else 0.0
    summary = {
        "wall_seconds": round(wall, 3),
        "matmul_share": round(mm_seconds / wall, 4),
        "matmul_flops": round(mm_flops / mm_seconds) if mm_seconds else 0,
        "peak_flops": None if peak.best is None else round(peak.best),
        "peak_spread": peak.spread(),
        "matmul_efficiency": None if efficiency is None else round(efficiency, 4),
        "outside_operators_share": round(max(0.0, wall - inside) / wall, 4),
        "operators": rows,
    }
    return summary | ({"peak_note": peak.emulated} if peak.emulated else {})


def bench_profile(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Profile ``bench.profile_steps`` training steps after ``bench.warmup``; see the module docstring."""
    b, k = cfg.bench, cfg.train.accumulate
    with warmed_up_trainer(cfg, b.profile_steps) as (trainer, batches):
        groups = [[next(batches) for _ in range(k)] for _ in range(b.profile_steps)]
        device = trainer.device
        precision = str(trainer.precision)
        meter = PeakMeter(device, peak_size(device, b.peak_size))
        meter.sample(precision)
        cuda = device.type == "cuda"
        activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
        synchronize(device)
        with profile(activities=activities, record_shapes=True) as prof:
            start = time.perf_counter()
            for group in groups:
                trainer.train_step(group)
            synchronize(device)
            wall = time.perf_counter() - start
        meter.sample(precision)
    ops = _operators(prof.events(), cuda)
    summary = summarise(ops, wall, meter.peak(precision))
    return {"mode": "profile", "steps": b.profile_steps, "precision": precision, **summary}


def _operators(events: Any, cuda: bool) -> list[tuple[str, float, int, float]]:
    """``(name, self seconds, calls, FLOPs)`` per operator (and autograd function) called on the CPU.

    On CUDA each operator's seconds are those of the kernels it launched (the kernels' own events
    are skipped, so nothing is counted twice).
    """
    totals: dict[str, list[float]] = {}
    for event in events:
        if event.device_type != DeviceType.CPU:
            continue
        seconds = (event.self_device_time_total if cuda else event.self_cpu_time_total) / 1e6
        entry = totals.setdefault(event.name, [0.0, 0, 0.0])
        entry[0] += seconds
        entry[1] += 1
        entry[2] += matmul_flops(event.name, event.input_shapes) if event.input_shapes else 0.0
    return [(name, s, int(c), f) for name, (s, c, f) in totals.items()]


def profile_table(result: dict[str, Any]) -> str:
    """The summary lines, then one row per operator by time."""
    products = f"matrix products: {100 * result['matmul_share']:.1f} % of the time, at "
    products += f"{result['matmul_flops'] / 1e9:.1f} GFLOP/s"
    if result["matmul_efficiency"] is None:
        products += f" (no peak to compare with: {result['peak_note']})"
    else:
        spread = result["peak_spread"]
        products += (
            f" = {100 * result['matmul_efficiency']:.1f} % of the peak measured here ({result['peak_flops'] / 1e9:.1f}"
            f" GFLOP/s, best of {spread['rounds']} rounds, min {spread['min'] / 1e9:.1f})"
        )
    lines = [
        f"{result['steps']} training steps in {result['wall_seconds']:.2f} s ({result['precision']})",
        products,
        f"outside any operator (Python, waiting): {100 * result['outside_operators_share']:.1f} %",
        "",
        "| operator | seconds | share of the time | calls |",
        "|---|---:|---:|---:|",
    ]
    for row in result["operators"]:
        calls = row.get("calls", "")
        lines.append(f"| {row['op']} | {row['seconds']:.3f} | {100 * row['share']:.1f} % | {calls} |")
    return "\n".join(lines)
