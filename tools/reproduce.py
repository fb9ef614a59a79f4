"""Reproduce the results table: train each recipe, evaluate it, and write ``docs/results.{md,json}``.

    python tools/reproduce.py                                    # both recipes, de-en, seeds 1 2 3
    python tools/reproduce.py --recipes multi30k_rnn --seeds 1 --directions de-en en-de
    python tools/reproduce.py --collect                          # only tabulate finished runs
    python tools/reproduce.py --collect --keep                   # ... and keep rows of deleted runs

Each run is one whole ``seq2seq-train experiment=RECIPE`` process in
``OUT/RECIPE/DIRECTION/seedN`` (its data preparation, training, checkpoint averaging and test
decode all count towards its wall-clock time). A run whose ``test.scores.json`` exists is not
trained again, and an interrupted one resumes, so the command can be repeated until it is done.
Scores are recomputed here from the run's ``test.hyp`` and the reference file with sacreBLEU:
cased and lowercased BLEU (13a) and chrF, each with its signature.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as ``python tools/NAME.py``: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.checkpoint.store import load_model
from seq2seq.decode.translator import DecodeOptions, Translator
from seq2seq.inspect.metrics import read_lines, score_corpus
from seq2seq.model.seq2seq import count_parameters
from seq2seq.utils.devices import describe_machine
from seq2seq.utils.errors import ConfigError
from seq2seq.utils.files import atomic_write_text
from tools.markdown_blocks import fill_marked_block

log = logging.getLogger(__name__)

RECIPES = ("multi30k_transformer", "multi30k_rnn")
DIRECTIONS = ("de-en", "en-de")
TEST_SPLIT = "test_2016_flickr"


@dataclass
class RunResult:
    """One row of ``docs/results.json``."""

    recipe: str
    direction: str
    seed: int
    steps: int
    train_minutes: float  # wall-clock of the whole training process
    params: int
    hardware: str
    precision: str
    dev_bleu: float  # greedy, on val, of the checkpoint that was tested
    test_bleu: float  # cased sacreBLEU 13a, beam search
    test_bleu_lc: float
    test_chrf: float
    signature: str
    signature_lc: str
    signature_chrf: str
    beam_size: int
    length_penalty: float
    run_dir: str


def run_dir(out: Path, recipe: str, direction: str, seed: int) -> Path:
    return out / recipe / direction / f"seed{seed}"


def train_command(recipe: str, direction: str, seed: int, directory: Path, args: argparse.Namespace) -> list[str]:
    """The ``seq2seq-train`` command line of one run."""
    src, trg = direction.split("-")
    exe = Path(sys.executable).parent / "seq2seq-train"
    found = str(exe) if exe.exists() else shutil.which("seq2seq-train")
    # Without the console script (the package on PYTHONPATH, not installed): the same entry point.
    base = [found] if found else [sys.executable, "-c", "from seq2seq.cli.commands import train_main; train_main()"]
    command = [
        *base,
        f"experiment={recipe}",
        f"data.src_lang={src}",
        f"data.trg_lang={trg}",
        f"train.seed={seed}",
        "train.progress=false",
        f"hydra.run.dir={directory}",
    ]
    if args.data_root:
        command.append(f"data.root={args.data_root}")
    if args.minutes is not None:
        command.append(f"train.max_minutes={args.minutes}")
    return command + list(args.override)


def train_run(recipe: str, direction: str, seed: int, args: argparse.Namespace) -> Path:
    """Train (or resume) one run unless it already finished; returns its directory."""
    directory = run_dir(Path(args.out).resolve(), recipe, direction, seed)
    if (directory / "test.scores.json").exists():
        log.info("%s: finished earlier, not trained again", directory)
        return directory
    command = train_command(recipe, direction, seed, directory, args)
    directory.mkdir(parents=True, exist_ok=True)
    log.info("training: %s", " ".join(command))
    start = time.time()
    with open(directory / "reproduce.out", "ab") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise ConfigError(f"{' '.join(command)} failed with exit code {code}; see {directory / 'reproduce.out'}")
    wall = {"wall_minutes": round((time.time() - start) / 60, 2), "command": command}
    atomic_write_text(directory / "reproduce.json", json.dumps(wall, indent=1))
    return directory


def wall_minutes(directory: Path) -> float:
    """The run's wall-clock minutes: measured by this script, else from the first and last log lines."""
    measured = directory / "reproduce.json"
    if measured.exists():
        return float(json.loads(measured.read_text())["wall_minutes"])
    stamps = [line[1:24] for line in _log_lines(directory) if line.startswith("[20")]
    if not stamps:
        raise ConfigError(f"{directory}: neither reproduce.json nor train.log tells how long the run took")
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return round((last - first).total_seconds() / 60, 2)


def collect(directory: Path, recipe: str, direction: str, seed: int, data_root: str | None) -> RunResult:
    """Score one finished run from its files."""
    report = json.loads((directory / "test.scores.json").read_text())
    model, _, cfg, payload = load_model(directory / "checkpoints" / "best.pt")
    latest = directory / "checkpoints" / "latest.pt"
    steps = load_model(latest)[3]["progress"]["step"] if latest.exists() else payload["progress"]["step"]
    root = Path(data_root or cfg.data.root or "")
    refs = read_lines(_split_file(root, TEST_SPLIT, cfg.data.trg_lang))
    hyps = read_lines(directory / "test.hyp")
    # Unrounded: the table rounds once to 2 decimals (41.59505 -> 41.60, as sacreBLEU prints it;
    # rounding the 4-decimal 41.595 again gave 41.59).
    cased = score_corpus(hyps, [refs], "13a", digits=None)
    lower = score_corpus(hyps, [refs], "13a", lowercase=True, digits=None)
    machine = report.get("hardware") or _hardware(directory)
    return RunResult(
        recipe=recipe,
        direction=direction,
        seed=seed,
        steps=int(steps),
        train_minutes=wall_minutes(directory),
        params=count_parameters(model),
        hardware=machine,
        precision=_precision(directory),
        dev_bleu=round(float(payload["metrics"]["bleu"]), 2),
        test_bleu=round(cased["bleu"]["score"], 2),
        test_bleu_lc=round(lower["bleu"]["score"], 2),
        test_chrf=round(cased["chrf"]["score"], 2),
        signature=cased["bleu"]["signature"],
        signature_lc=lower["bleu"]["signature"],
        signature_chrf=cased["chrf"]["signature"],
        beam_size=int(report["beam_size"]),
        length_penalty=float(cfg.test.decode.length_penalty),
        run_dir=str(directory),
    )


def _split_file(root: Path, stem: str, lang: str) -> Path:
    for name in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):
        if (root / name).is_file():
            return root / name
    raise ConfigError(f"{root}: no {stem}.{lang}[.gz]; pass --data-root DIR")


def _log_lines(directory: Path) -> list[str]:
    path = directory / "train.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _precision(directory: Path) -> str:
    for line in _log_lines(directory):
        if "] - precision " in line:
            return line.split("] - precision ", 1)[1].split(" ", 1)[0]
    return "fp32"


def _hardware(directory: Path) -> str:
    for line in _log_lines(directory):
        if "] - hardware: " in line:
            return line.split("] - hardware: ", 1)[1]
    return describe_machine(torch.device("cpu"))  # runs from before the log line: this machine


def decoding_grid(directory: Path, data_root: str | None, beams: list[int], penalties: list[float]) -> list[dict]:
    """Dev (val) BLEU of the run's best.pt for every beam size x length penalty: how the recipes'
    ``test.decode.beam_size`` and ``test.decode.length_penalty`` were chosen (on val only)."""
    model, tokenizers, cfg, _ = load_model(directory / "checkpoints" / "best.pt")
    root = Path(data_root or cfg.data.root or "")
    src = read_lines(_split_file(root, cfg.data.valid_split, cfg.data.src_lang))
    refs = read_lines(_split_file(root, cfg.data.valid_split, cfg.data.trg_lang))
    rows = []
    for beam in beams:
        for alpha in penalties if beam > 1 else [1.0]:
            options = DecodeOptions(beam_size=beam, length_penalty=alpha, batch_size=64, precision="auto")
            hyps = [t.text for t in Translator(model, tokenizers, options).translate(src)]
            bleu = score_corpus(hyps, [refs])["bleu"]
            rows.append({"beam_size": beam, "length_penalty": alpha, "dev_bleu": bleu["score"]})
            log.info("%s: beam %d, length penalty %.1f: dev BLEU %.2f", directory, beam, alpha, bleu["score"])
    return rows


def _mean_sd(values: list[float]) -> str:
    """``mean ± sd`` over seeds (2 decimals; whole numbers for counts), or the value of one seed."""
    digits = 0 if all(isinstance(v, int) for v in values) else 2
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def grid_markdown(grid: dict[str, list[dict]]) -> list[str]:
    """The val decoding grid as markdown lines (empty when there is none)."""
    lines = []
    for name, rows in grid.items():
        best = max(rows, key=lambda r: r["dev_bleu"])
        cells = ", ".join(f"beam {r['beam_size']} lp {r['length_penalty']}: {r['dev_bleu']:.2f}" for r in rows)
        lines.append(f"- `{name}` (val BLEU): {cells}; best: beam {best['beam_size']} lp {best['length_penalty']}")
    return (
        ["", "Decoding settings chosen on val (`--decoding-grid`, best.pt of the first seed):", "", *lines]
        if lines
        else []
    )


def results_markdown(results: list[RunResult], command: str, grid: dict[str, list[dict]] | None = None) -> str:
    """``docs/results.md``: one row per recipe and direction (seed mean ± sd), then every run."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.recipe, r.direction), []).append(r)
    lines = [
        "# Results",
        "",
        f"Written by `{command}` from the runs' own files (hypotheses scored here with sacreBLEU).",
        f"Multi30k {TEST_SPLIT}, beam search; BLEU 13a on detokenized output, cased and lowercased.",
        "",
        "| recipe | direction | seeds | parameters | wall-clock min | steps | dev BLEU | "
        "test BLEU | test BLEU (lc) | test chrF |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (recipe, direction), runs in groups.items():
        lines.append(
            f"| `{recipe}` | {direction} | {len(runs)} | {runs[0].params / 1e6:.1f}M | "
            f"{_mean_sd([r.train_minutes for r in runs])} | {_mean_sd([r.steps for r in runs])} | "
            f"{_mean_sd([r.dev_bleu for r in runs])} | {_mean_sd([r.test_bleu for r in runs])} | "
            f"**{_mean_sd([r.test_bleu_lc for r in runs])}** | {_mean_sd([r.test_chrf for r in runs])} |"
        )
    lines += [
        "",
        "Every run:",
        "",
        "| recipe | direction | seed | steps | wall-clock min | precision | dev BLEU | test BLEU | "
        "test BLEU (lc) | test chrF | beam / lp | hardware |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| `{r.recipe}` | {r.direction} | {r.seed} | {r.steps} | {r.train_minutes} | {r.precision} | "
            f"{r.dev_bleu} | {r.test_bleu} | {r.test_bleu_lc} | {r.test_chrf} | {r.beam_size} / "
            f"{r.length_penalty} | {r.hardware} |"
        )
    signatures = sorted({(r.signature, r.signature_lc, r.signature_chrf) for r in results})
    lines += ["", "sacreBLEU signatures (BLEU cased, BLEU lowercased, chrF):", ""]
    lines += [f"- `{a}`, `{b}`, `{c}`" for a, b, c in signatures]
    lines += grid_markdown(grid or {})
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, table: str) -> None:
    """Replace the lines between the README's results markers with ``table`` (results.md's summary)."""
    fill_marked_block(readme, "results", table)


def summary_table(markdown: str) -> str:
    """The first table of results.md (one row per recipe and direction)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| recipe"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--directions", nargs="+", default=["de-en"], choices=DIRECTIONS)
    parser.add_argument("--minutes", type=float, default=None, help="train.max_minutes (default: the recipe's)")
    parser.add_argument("--data-root", default=os.environ.get("MULTI30K_ROOT"), help="Multi30k files (MULTI30K_ROOT)")
    parser.add_argument("--out", default="runs/reproduce", help="parent directory of the run directories")
    parser.add_argument("--results", default="docs", help="where results.md and results.json go")
    parser.add_argument("--collect", action="store_true", help="do not train: tabulate the finished runs")
    parser.add_argument(
        "--decoding-grid",
        action="store_true",
        help="also decode val with beam 1/5/10 x length penalty 0.6/1.0/1.4 (first seed) into --grid-file",
    )
    parser.add_argument(
        "--grid-file",
        help="the val decoding grid's JSON, written by --decoding-grid and read into results.md "
        "(default: RESULTS/experiments/decoding_val.json, beside the journal's other evidence)",
    )
    parser.add_argument("--readme", help="also put the summary table into this README's results block")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the rows of the existing results.json whose run directories are not under --out",
    )
    parser.add_argument("override", nargs="*", help="extra Hydra overrides for every run (key=value)")
    return parser.parse_args(argv)


def val_grid(results: list[RunResult], args: argparse.Namespace, grid_file: Path) -> dict | None:
    """The val decoding grid: decoded now for ``--decoding-grid`` (first seed's runs that are here,
    written to ``grid_file``), else the one ``grid_file`` holds, if any."""
    if args.decoding_grid:
        grid = {
            f"{r.recipe} {r.direction} seed {r.seed}": decoding_grid(
                Path(r.run_dir), args.data_root, [1, 5, 10], [0.6, 1.0, 1.4]
            )
            for r in results
            if r.seed == args.seeds[0] and Path(r.run_dir).exists()
        }
        grid_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(grid_file, json.dumps(grid, indent=1) + "\n")
    return json.loads(grid_file.read_text()) if grid_file.exists() else None


def earlier_results(results_json: Path) -> dict[tuple[str, str, int], RunResult]:
    """The rows of an existing ``results.json`` by (recipe, direction, seed); empty if there is none."""
    if not results_json.exists():
        return {}
    try:
        rows = [RunResult(**row) for row in json.loads(results_json.read_text(encoding="utf-8"))]
    except (json.JSONDecodeError, TypeError) as err:
        raise ConfigError(f"{results_json}: not a results.json written by this script ({err})") from None
    return {(r.recipe, r.direction, r.seed): r for r in rows}


def reproduce(args: argparse.Namespace, command: str) -> list[RunResult]:
    """Train what is missing (unless ``--collect``), then write the results files."""
    out = Path(args.results)
    earlier = earlier_results(out / "results.json") if args.keep else {}
    results = []
    for recipe in args.recipes:
        for direction in args.directions:
            for seed in args.seeds:
                directory = run_dir(Path(args.out).resolve(), recipe, direction, seed)
                if not args.collect:
                    train_run(recipe, direction, seed, args)
                if (directory / "test.scores.json").exists():
                    results.append(collect(directory, recipe, direction, seed, args.data_root))
                    log.info("%s", asdict(results[-1]))
                elif (recipe, direction, seed) in earlier:
                    results.append(earlier[recipe, direction, seed])
                    log.info("%s: not here, kept from the earlier %s", directory, out / "results.json")
                else:
                    state = "not finished" if directory.exists() else "not run"
                    log.warning("%s: %s, left out of the table", directory, state)
    if not results:
        raise ConfigError(f"no finished run under {args.out}: nothing to tabulate")
    grid = val_grid(
        results, args, Path(args.grid_file) if args.grid_file else out / "experiments" / "decoding_val.json"
    )
    atomic_write_text(out / "results.json", json.dumps([asdict(r) for r in results], indent=1) + "\n")
    markdown = results_markdown(results, command, grid)
    atomic_write_text(out / "results.md", markdown)
    if args.readme:
        update_readme(Path(args.readme), summary_table(markdown))
    log.info("wrote %s and %s", out / "results.md", out / "results.json")
    return results


def main(argv: list[str] | None = None) -> None:
    """``tools/reproduce.py``: see the module docstring."""
    from seq2seq.utils.errors import Seq2SeqError

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    command = "python tools/reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        reproduce(args, command.strip())
    except Seq2SeqError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
