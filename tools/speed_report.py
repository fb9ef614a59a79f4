"""Today's speed numbers in one go: run every benchmark, keep what it printed, fill the Speed page.

    python tools/speed_report.py --data-root DIR \\
        --checkpoint multi30k_rnn=RUN1/checkpoints/best.pt \\
        --checkpoint multi30k_transformer=RUN2/checkpoints/best.pt \\
        --override multi30k_transformer:test.decode.length_penalty=1.4

Each benchmark runs as its own ``seq2seq-benchmark`` process, one after another, and its output
is kept in ``--out`` (default docs/experiments/speed_now, with the journal's other evidence):
``EXPERIMENT.PRECISION.txt`` (``train``, fp32 and bf16, for each of ``--experiments``),
``decode.LABEL.txt`` (``translate``, greedy and beam 5, every engine and precision, with and
without a vocabulary shortlist exported from the checkpoint), ``latency.LABEL.txt`` and
``profile.transformer_small.PRECISION.txt``. The tables are then rendered from the JSON lines
of those files (never typed by hand) and written between the ``<!-- speed-train:start -->`` /
``speed-decode`` / ``speed-latency`` markers of ``--readme`` (default docs/speed.md, the Speed
page; ``--readme ""`` only prints them); ``--collect`` only renders from files already there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python tools/NAME.py``: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.utils.errors import ConfigError, Seq2SeqError
from seq2seq.utils.files import atomic_write_text
from tools.markdown_blocks import fill_marked_block

EXPERIMENTS = {
    "rnn_bahdanau_small": "bi-GRU + Bahdanau GRU decoder",
    "transformer_dot_small": "Transformer encoder + dot-attention GRU decoder",
    "transformer_small": "3+3 Transformer, d 256, 4 heads",
}
PRECISIONS = ("fp32", "bf16")
ENGINES = {"torch": "PyTorch", "ctranslate2": "CTranslate2"}
TRAIN_ARGS = ["bench.steps=40", "bench.decode=false"]  # 10 warm-up steps, then 3 x 40 timed
PROFILE_ARGS = ["bench.profile_steps=8"]
DECODE_ARGS = ["bench.beams=[1,5]", "bench.decode_repeats=2"]
EXPORT = [sys.executable, "-c", "from seq2seq.cli.commands import export_main; export_main()"]


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a benchmark printed (its last lines), in order."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such benchmark output (run without --collect to write it)")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    if not lines:
        raise ConfigError(f"{path}: no JSON line of a benchmark in it")
    return lines


def train_table(out: Path, experiments: list[str]) -> str:
    """Tokens/s and MFU of each experiment in fp32 and bf16, the peaks and the padding below."""
    rows = [
        "| `experiment=` | parameters | MFLOP per token | fp32 tokens/s | fp32 MFU | bf16 tokens/s | bf16 MFU "
        "| epoch fp32 / bf16 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    peaks: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    padding = set()
    for name in experiments:
        r = {p: json_lines(out / f"{name}.{p}.txt")[-1] for p in PRECISIONS}
        for p in PRECISIONS:
            if r[p].get("peak_flops") is not None:  # None where bf16 is emulated: no peak measured
                peaks[p].append(r[p]["peak_flops"] / 1e9)
            padding.add(f"{100 * r[p]['padding_fraction']:.1f} %")
        label = f"`{name}` ({EXPERIMENTS[name]})" if name in EXPERIMENTS else f"`{name}`"
        fp, bf = r["fp32"], r["bf16"]
        rows.append(
            f"| {label} | {fp['parameters'] / 1e6:.1f}M | {fp['flops_per_token'] / 1e6:.1f} "
            f"| {fp['tokens_per_sec']:,.0f} | {_percent(fp['mfu'])} | {bf['tokens_per_sec']:,.0f} "
            f"| {_percent(bf['mfu'])} | {fp['epoch_seconds']:.0f} s / {bf['epoch_seconds']:.0f} s |"
        )
    ranges = ", ".join(f"{p} {min(v):.0f}–{max(v):.0f} GFLOP/s" if v else f"{p} not measured" for p, v in peaks.items())
    rows += ["", f"Matrix-multiply peaks measured in these processes: {ranges}; padding {' / '.join(sorted(padding))}."]
    return "\n".join(rows)


def _percent(fraction: float | None) -> str:
    """An MFU as a percentage; ``n/a`` where none was measured (bf16 emulated on this CPU)."""
    return "n/a" if fraction is None else f"{100 * fraction:.1f} %"


def decode_table(out: Path, labels: list[str]) -> str:
    """Greedy and beam-5 sentences/s of every engine, precision and shortlist, per checkpoint."""
    rows = [
        "| model | engine | precision | greedy sent/s | beam 5 sent/s | beam 5 BLEU | vs PyTorch fp32 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for label in labels:
        lines = [x for x in json_lines(out / f"decode.{label}.txt") if x.get("mode") == "translate"]
        runs: dict[tuple[str, bool, str], dict[int, dict[str, Any]]] = {}
        for x in lines:
            runs.setdefault((x["engine"], bool(x["shortlist"]), x["precision"]), {})[x["beam_size"]] = x
        if any(5 not in beams for beams in runs.values()) or 5 not in runs.get(("torch", False, "fp32"), {}):
            raise ConfigError(f"{out / f'decode.{label}.txt'}: needs beam 5 of every engine, PyTorch fp32 among them")
        base = runs[("torch", False, "fp32")][5]["sentences_per_sec"]
        fastest = max(r[5]["sentences_per_sec"] for r in runs.values())
        for i, ((engine, shortlist, precision), beams) in enumerate(runs.items()):
            beam = beams[5]
            speed, ratio = f"{beam['sentences_per_sec']:,.0f}", f"{beam['sentences_per_sec'] / base:.2f}×"
            if beam["sentences_per_sec"] == fastest:
                speed, ratio = f"**{speed}**", f"**{ratio}**"
            greedy = f"{beams[1]['sentences_per_sec']:,.0f}" if 1 in beams else "—"
            name = ENGINES.get(engine, engine) + (" + shortlist" if shortlist else "")
            rows.append(
                f"| {f'`{label}`' if i == 0 else ''} | {name} | {precision} | {greedy} | {speed} "
                f"| {beam['bleu']:.2f} | {ratio} |"
            )
    return "\n".join(rows)


def latency_table(out: Path, labels: list[str]) -> str:
    """Median (90th percentile) ms per sentence, one at a time, and the load time."""
    columns = [(e, p) for e in ENGINES for p in ("fp32", "bf16", "int8")]
    found = {
        label: {
            (x["engine"], x["precision"]): x for x in json_lines(out / f"latency.{label}.txt") if not x["shortlist"]
        }
        for label in labels
    }
    columns = [c for c in columns if any(c in rows for rows in found.values())]
    rows = [
        "| model | " + " | ".join(f"{ENGINES[e]} {p}" for e, p in columns) + " | load |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for label, cells in found.items():
        times = [
            f"{x['latency_ms_median']:.1f} ms ({x['latency_ms_p90']:.1f})" if (x := cells.get(c)) else "—"
            for c in columns
        ]
        loads = [x["load_seconds"] for x in cells.values()]
        rows.append(f"| `{label}` | " + " | ".join(times) + f" | {min(loads):.2f}–{max(loads):.2f} s |")
    return "\n".join(rows)


def jobs(args: argparse.Namespace, shortlists: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """``(output file name, seq2seq-benchmark arguments)`` of every benchmark of the report."""
    data = f"data.root={args.data_root}"
    out = [
        (f"{e}.{p}.txt", ["train", f"experiment={e}", data, *TRAIN_ARGS, f"train.precision={p}"])
        for e in args.experiments
        for p in PRECISIONS
    ]
    out += [
        (
            f"profile.transformer_small.{p}.txt",
            ["profile", "experiment=transformer_small", data, *PROFILE_ARGS, f"train.precision={p}"],
        )
        for p in PRECISIONS
    ]
    for label, checkpoint in args.checkpoints.items():
        extra = args.overrides.get(label, [])
        decode = ["translate", f"checkpoint={checkpoint}", data, *DECODE_ARGS, f"bench.shortlist={shortlists[label]}"]
        out += [
            (f"decode.{label}.txt", decode + extra),
            (f"latency.{label}.txt", ["latency", f"checkpoint={checkpoint}", data, *extra]),
        ]
    return out


def run_benchmarks(args: argparse.Namespace, out: Path) -> None:
    """Export a shortlist per checkpoint, then run every benchmark, each output kept in ``out``."""
    from seq2seq.bench.modes import benchmark_command

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seq2seq-speed-") as tmp:
        shortlists = {label: Path(tmp) / f"{label}.shortlist.pt" for label in args.checkpoints}
        for label, checkpoint in args.checkpoints.items():
            export = [f"checkpoint={checkpoint}", "format=shortlist", f"output={shortlists[label]}"]
            _run([*EXPORT, *export, f"data_root={args.data_root}"], None)
        for name, job in jobs(args, shortlists):
            _run(benchmark_command(*job), out / name)


def _run(command: list[str], output: Path | None) -> None:
    """Run ``command`` (``python -c CALL ARGS``); keep its standard output in ``output``, or stop."""
    shown = " ".join(command[3:])
    print(f"$ {shown}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"{shown}: failed with exit code {done.returncode}: {last}")
    if output is not None:
        atomic_write_text(output, done.stdout)


def render(out: Path, experiments: list[str], labels: list[str]) -> dict[str, str]:
    """The README blocks (``speed-train``, ``speed-decode``, ``speed-latency``) from ``out``'s files."""
    return {
        "speed-train": train_table(out, experiments),
        "speed-decode": decode_table(out, labels),
        "speed-latency": latency_table(out, labels),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="speed_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("MULTI30K_ROOT"), help="Multi30k files")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--override", action="append", default=[], metavar="LABEL:KEY=VALUE")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--out", default="docs/experiments/speed_now")
    parser.add_argument(
        "--readme", default="docs/speed.md", help='fill this Markdown file\'s speed-* blocks ("" only prints them)'
    )
    parser.add_argument("--collect", action="store_true", help="only render from --out's files")
    args = parser.parse_args(argv)
    args.checkpoints = dict(_pair(s, "=", "--checkpoint LABEL=PATH") for s in args.checkpoint)
    args.overrides = {}
    for label, override in (_pair(s, ":", "--override LABEL:KEY=VALUE") for s in args.override):
        args.overrides.setdefault(label, []).append(override)
    return args


def _pair(text: str, sep: str, form: str) -> tuple[str, str]:
    label, _, value = text.partition(sep)
    if not label or not value:
        raise ConfigError(f"{text!r}: expected {form}")
    return label, value


def main(argv: list[str] | None = None) -> None:
    """``tools/speed_report.py``: see the module docstring."""
    try:
        args = parse_args(argv)
        out = Path(args.out)
        if args.readme and not Path(args.readme).is_file():
            raise ConfigError(f'--readme {args.readme}: no such file (give the page with the speed-* markers, or "")')
        if not args.collect:
            if not args.data_root or not args.checkpoints:
                raise ConfigError("give --data-root DIR (or set MULTI30K_ROOT) and --checkpoint LABEL=PATH")
            run_benchmarks(args, out)
        labels = list(args.checkpoints) or sorted(
            p.name[len("decode.") : -len(".txt")] for p in out.glob("decode.*.txt")
        )
        blocks = render(out, args.experiments, labels)
        for name, block in blocks.items():
            print(f"<!-- {name} -->\n{block}\n")
            if args.readme:
                fill_marked_block(args.readme, name, block)
    except Seq2SeqError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
