"""Training speed of two versions of this repository, side by side in one run.

The machine's speed drifts by tens of percent from hour to hour, so a speed-up is only a
speed-up when both versions ran in the same hour: this script extracts ``--base`` (a git ref,
default HEAD) into a temporary directory, then runs ``scripts/benchmark.py train`` of the base
and of the working tree alternately (each a whole process), once per ``--config``, and prints
one table with both speeds, the ratio and both MFUs; ``--out FILE`` also keeps every JSON line.

    python scripts/side_by_side.py --base main --data-root $MULTI30K_ROOT \\
        --config "experiment=transformer_small train.precision=fp32" \\
        --config "experiment=rnn_bahdanau_small train.precision=bf16"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = "bench.decode=false"


def extract(ref: str, target: Path) -> None:
    """The tree of git ``ref`` of this repository, written into ``target``."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)


def bench(tree: Path, config: str, args: argparse.Namespace) -> dict:
    """One whole ``benchmark.py train`` process of the sources in ``tree``; its JSON line."""
    overrides = [*shlex.split(config), BENCH, f"data.root={args.data_root}", *args.bench]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(tree / "scripts" / "benchmark.py"), "train", *overrides],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"error: benchmark of {tree} failed ({config}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
    out = [
        "| config | base tok/s | new tok/s | new / base | base MFU | new MFU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b, n = r["base"], r["new"]
        out.append(
            f"| `{r['config']}` | {b['tokens_per_sec']:,.0f} | {n['tokens_per_sec']:,.0f} | "
            f"{n['tokens_per_sec'] / b['tokens_per_sec']:.2f}x | {100 * b['mfu']:.1f} % | {100 * n['mfu']:.1f} % |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="git ref of the version to compare against")
    parser.add_argument("--config", action="append", required=True, help="benchmark overrides of one row")
    parser.add_argument("--data-root", default=os.environ.get("MULTI30K_ROOT"), help="Multi30k files")
    parser.add_argument("--bench", nargs="*", default=["bench.steps=20", "bench.repeats=3", "bench.warmup=5"])
    parser.add_argument("--out", help="also write every benchmark's JSON line here (JSON list)")
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("--data-root (or MULTI30K_ROOT) is required")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seq2seq-base-") as tmp:
        extract(args.base, Path(tmp) / "tree")
        for config in args.config:
            row = {"config": config}
            for side, tree in (("base", Path(tmp) / "tree"), ("new", ROOT)):
                row[side] = bench(tree, config, args)
                print(f"{side:4} {config}: {row[side]['tokens_per_sec']:,.0f} tok/s", file=sys.stderr)
            rows.append(row)
    print(f"base: {args.base}; new: the working tree of {ROOT}; machine: {rows[0]['new']['machine']}\n")
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
