"""Speed of two versions of this repository, side by side in one run.

The machine's speed drifts by tens of percent from hour to hour, so a speed-up is only a
speed-up when both versions ran in the same hour: this script extracts ``--base`` (a git ref,
default HEAD) into a temporary directory, then runs ``scripts/benchmark.py MODE`` of the base
and of the working tree alternately (each a whole process), once per ``--config`` and
``--rounds`` times, and prints one table with both speeds (median over the rounds), the ratio
and both MFUs (training) or BLEUs (decoding); ``--out FILE`` also keeps every JSON line.

    python tools/side_by_side.py --base main --data-root $MULTI30K_ROOT \\
        --config "experiment=transformer_small train.precision=fp32" \\
        --config "experiment=rnn_bahdanau_small train.precision=bf16"
    python tools/side_by_side.py --mode translate --base main --data-root $MULTI30K_ROOT \\
        --config "checkpoint=RUN/checkpoints/best.pt bench.engines=[torch] bench.precisions=[fp32,int8]"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BENCH = {
    "train": ["bench.decode=false", "bench.steps=20", "bench.repeats=3", "bench.warmup=5"],
    "translate": ["bench.decode_repeats=3"],
}


def extract(ref: str, target: Path) -> None:
    """The tree of git ``ref`` of this repository, written into ``target``."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)


def bench(tree: Path, config: str, args: argparse.Namespace) -> list[dict]:
    """One whole ``benchmark.py MODE`` process of the sources in ``tree``; its JSON lines."""
    overrides = [*shlex.split(config), f"data.root={args.data_root}", *args.bench]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(tree / "scripts" / "benchmark.py"), args.mode, *overrides],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"error: benchmark of {tree} failed ({config}):\n{done.stderr[-2000:]}")
    return lines


def _key(line: dict) -> str:
    """What one JSON line measured: the training config, or engine / precision / beam."""
    if line["mode"] == "train":
        return ""
    shortlist = " + shortlist" if line.get("shortlist") else ""
    return f"{line['engine']}{shortlist} {line['precision']} beam {line['beam_size']}"


def _median(lines: list[dict], field: str) -> float | None:
    """The median of ``field`` over ``lines``; None if a line has none (MFU of emulated bf16)."""
    values = [line[field] for line in lines]
    return None if any(v is None for v in values) else statistics.median(values)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def table(rows: list[dict], mode: str) -> str:
    """``rows``: ``{"config", "base": [lines], "new": [lines]}`` (all rounds) -> a markdown table."""
    if mode == "train":
        unit, speed, label, field, show = "tok/s", "tokens_per_sec", "MFU", "mfu", _percent
    else:
        unit, speed, label, field, show = "sent/s", "sentences_per_sec", "BLEU", "bleu", lambda v: f"{v:.1f}"
    out = [
        f"| config | base {unit} | new {unit} | new / base | base {label} | new {label} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for key in dict.fromkeys(_key(line) for line in r["new"]):
            b = [line for line in r["base"] if _key(line) == key]
            n = [line for line in r["new"] if _key(line) == key]
            if not b:
                continue
            base, new = _median(b, speed), _median(n, speed)
            name = f"`{r['config']}`" + (f" {key}" if key else "")
            out.append(
                f"| {name} | {base:,.0f} | {new:,.0f} | {new / base:.2f}x | "
                f"{show(_median(b, field))} | {show(_median(n, field))} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(DEFAULT_BENCH), default="train", help="benchmark.py's mode")
    parser.add_argument("--base", default="HEAD", help="git ref of the version to compare against")
    parser.add_argument("--config", action="append", required=True, help="benchmark overrides of one row")
    parser.add_argument("--data-root", default=os.environ.get("MULTI30K_ROOT"), help="Multi30k files")
    parser.add_argument("--bench", nargs="*", help="overrides of every benchmark (default: per mode, see above)")
    parser.add_argument("--rounds", type=int, default=1, help="base/new alternations per config")
    parser.add_argument("--out", help="also write every benchmark's JSON line here (JSON list)")
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("--data-root (or MULTI30K_ROOT) is required")
    args.bench = DEFAULT_BENCH[args.mode] if args.bench is None else args.bench
    rows = []
    with tempfile.TemporaryDirectory(prefix="seq2seq-base-") as tmp:
        extract(args.base, Path(tmp) / "tree")
        for config in args.config:
            row: dict = {"config": config, "base": [], "new": []}
            for _ in range(args.rounds):
                for side, tree in (("base", Path(tmp) / "tree"), ("new", ROOT)):
                    row[side] += bench(tree, config, args)
                    print(f"{side:4} {config}: done", file=sys.stderr)
            rows.append(row)
    machine = rows[0]["new"][0]["machine"]
    print(f"base: {args.base}; new: the working tree of {ROOT}; machine: {machine}; {args.rounds} round(s)\n")
    print(table(rows, args.mode))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
