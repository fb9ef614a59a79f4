"""Console entry points (``seq2seq-train``, ...): thin Hydra wrappers over plain functions.

Configuration mistakes (unknown key, unknown group option, invalid value) and user errors
(:class:`~seq2seq.utils.errors.Seq2SeqError`) end the program with one line on stderr and a non-zero
exit status instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from seq2seq.config.compose import config_dir, describe_config_error, typed_config
from seq2seq.config.schema import (
    ExportConfig,
    ScoreConfig,
    ServeConfig,
    TrainRunConfig,
    TranslateConfig,
    register_configs,
)
from seq2seq.utils.errors import DataError, Seq2SeqError

log = logging.getLogger("seq2seq")


def _log_to_files(message: str) -> None:
    """Record a fatal error in the run's log file(s) (``train.log``), not on the console twice;
    never in the log of a training that another process is running in the same directory."""
    from seq2seq.training.run_lock import held_elsewhere

    if HydraConfig.initialized() and held_elsewhere(run_dir()):
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.LogRecord("seq2seq", logging.ERROR, "", 0, message, None, None))


def hydra_entry(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], None]:
    """Wrap ``task(cfg)`` as a console entry point composed from ``configs/{config_name}.yaml``."""

    @hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")
    def run(cfg: DictConfig) -> Any:
        # Exit here, not by raising: Hydra would print its own extra report first.
        return report_errors(lambda: task(cfg), log_files=True)

    def entry() -> None:
        headless_plots()
        register_configs()
        # Let exceptions reach us instead of Hydra's multi-line report.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        report_errors(run)

    return entry


def headless_plots() -> None:
    """Entry points draw figures into files and TensorBoard, never windows: matplotlib's Agg
    backend; and ``datasets`` shows no progress bars (our log says what is being prepared).

    Set here, not at import, so that ``import seq2seq`` in a notebook keeps its inline backend
    and its ``datasets`` settings.
    """
    import datasets
    import matplotlib

    matplotlib.use("Agg")
    datasets.disable_progress_bars()


def report_errors(fn: Callable[[], Any], log_files: bool = False) -> Any:
    """Run ``fn``; a user error, config error or Ctrl-C ends the program with one line on stderr
    (also written to the run's log file with ``log_files``). The one error reporter of every
    entry point."""
    try:
        return fn()
    except Seq2SeqError as err:
        if log_files:
            _log_to_files(f"{err.prefix}: {err}")
        print(f"{err.prefix}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: {describe_config_error(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _train(cfg: DictConfig) -> dict[str, float]:
    from seq2seq.training.trainer import train

    return train(typed_config(cfg, TrainRunConfig), run_dir(), on_locked=lambda: save_hydra_record(cfg))


def save_hydra_record(cfg: DictConfig) -> None:
    """Write the run's ``.hydra/`` record (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``), as
    Hydra would, but only once this process holds the run directory's lock (configs/train.yaml
    sets ``hydra.output_subdir: null`` so that Hydra does not write it before)."""
    from omegaconf import OmegaConf

    from seq2seq.utils.files import atomic_write_text

    hydra_cfg = HydraConfig.get()
    record = {
        "config.yaml": cfg,
        "hydra.yaml": OmegaConf.create({"hydra": OmegaConf.to_container(hydra_cfg, resolve=False)}),
        "overrides.yaml": hydra_cfg.overrides.task,
    }
    directory = run_dir() / ".hydra"
    directory.mkdir(exist_ok=True)
    for name, node in record.items():
        atomic_write_text(directory / name, OmegaConf.to_yaml(node))


SWEEP_FUNCTIONS = ("range(", "choice(", "interval(", "glob(", "sort(", "shuffle(")


def is_sweep(override: str) -> bool:
    """Whether a ``key=value`` override sweeps several values (``a,b`` or ``range(...)``)."""
    value = override.split("=", 1)[1] if "=" in override else ""
    if value.startswith(SWEEP_FUNCTIONS):
        return True
    depth, quote = 0, ""
    for char in value:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def sweep_argv(argv: list[str]) -> list[str]:
    """For ``-m``, name each run's directory by its swept settings only (others are excluded)."""
    if not ({"-m", "--multirun"} & set(argv)):
        return argv
    overrides = [a for a in argv if "=" in a and not a.startswith(("-", "hydra.", "hydra/"))]
    fixed = sorted({a.split("=", 1)[0].lstrip("+~") for a in overrides if not is_sweep(a)})
    if not fixed:
        return argv
    return [*argv, f"hydra.job.config.override_dirname.exclude_keys=[{','.join(fixed)}]"]


def _train_entry() -> None:
    """``seq2seq-train``; under torchrun all ranks first agree on one run directory, and each
    rank ends with :func:`seq2seq.training.distributed.leave` (its exit status kept)."""
    from seq2seq.training.distributed import launched_by_torchrun, leave, prepare_torchrun, shutdown

    sys.argv = sys.argv[:1] + sweep_argv(sys.argv[1:])
    report_errors(prepare_torchrun)
    try:
        _hydra_train()
    except SystemExit as stop:  # report_errors' one-line errors and exit statuses
        shutdown(wait_for_all=False)
        if not launched_by_torchrun():
            raise
        leave(exit_status(stop))
    except BaseException:
        shutdown(wait_for_all=False)
        raise
    shutdown()
    if launched_by_torchrun():
        leave(0)


def exit_status(stop: SystemExit) -> int:
    """The status Python would exit with for ``stop`` (a message is printed, status 1)."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def _translate(cfg: DictConfig) -> None:
    from seq2seq.cli.translate import run_translate

    run_translate(typed_config(cfg, TranslateConfig))


def _export(cfg: DictConfig) -> None:
    from seq2seq.deploy.export import run_export

    run_export(typed_config(cfg, ExportConfig))


def _serve(cfg: DictConfig) -> None:
    from seq2seq.cli.serve import run_server

    run_server(typed_config(cfg, ServeConfig))


def _score(cfg: DictConfig) -> None:
    from seq2seq.inspect.metrics import run_score

    print(run_score(typed_config(cfg, ScoreConfig)))


def average_main(argv: list[str] | None = None) -> None:
    """``scripts/average.py``: average checkpoint files, or a run's best ones, into one file."""
    import argparse

    from seq2seq.checkpoint.store import average_checkpoints, best_checkpoints, latest_checkpoint, save_checkpoint

    parser = argparse.ArgumentParser(description=average_main.__doc__)
    parser.add_argument("inputs", nargs="+", help="checkpoint files, or one run directory with --best")
    parser.add_argument("--best", type=int, help="average the N best checkpoints kept in the run directory")
    parser.add_argument("--output", "-o", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)

    def average() -> list:
        if args.best:  # the ranking is read from the run's latest.pt: not to be overwritten either
            _check_average_output(args.output, [latest_checkpoint(args.inputs[0])])
        paths = best_checkpoints(args.inputs[0], args.best) if args.best else args.inputs
        _check_average_output(args.output, paths)
        save_checkpoint(args.output, average_checkpoints(paths))
        return paths

    paths = report_errors(average)
    print(f"averaged {len(paths)} checkpoints into {args.output}: {', '.join(map(str, paths))}")


def _check_average_output(output: str, inputs: list) -> None:
    """``--output`` must not be one of the checkpoints read (a hard link such as ``best.pt`` included)."""
    from seq2seq.utils.files import check_distinct_outputs

    for path in inputs:
        check_distinct_outputs({"--output": output}, {"checkpoint": path})


BENCHMARK_USAGE = """usage: seq2seq-benchmark {train,translate,latency,serve,profile,scale} [key=value ...]

Speed benchmarks, printed as a table and one JSON line (tokens_per_sec, sentences_per_sec, bleu,
peak_rss_mb; train adds flops_per_token, peak_flops, mfu, padding_fraction). Keys are those of
seq2seq-train plus bench.* (seq2seq/config/schema.py BenchConfig).

  train      train the configured model: bench.warmup untimed steps, then bench.repeats timed
             stretches of bench.steps steps; then decode the test split greedily and with beam 5
             seq2seq-benchmark train experiment=rnn_bahdanau_small data.root=DIR bench.steps=40
  translate  decode the test split with a trained checkpoint, every engine (torch, ctranslate2)
             and precision side by side (bench.engines, bench.precisions); one JSON line each
             seq2seq-benchmark translate checkpoint=RUN/checkpoints/best.pt data.root=DIR
  latency    load a checkpoint as seq2seq-translate does (timed), then translate test sentences
             one at a time (bench.latency_sentences, beam bench.latency_beam): median/p90 ms
             seq2seq-benchmark latency checkpoint=RUN/checkpoints/best.pt data.root=DIR
  serve      start seq2seq-serve (127.0.0.1, a free port) and load it with bench.serve_concurrency
             clients sending one test sentence per request: sent/s, p50/p90/p99 ms per level,
             beside the same engine translating those sentences offline (ratio, same outputs)
             seq2seq-benchmark serve checkpoint=RUN/checkpoints/best.pt data.root=DIR
  profile    train bench.warmup untimed steps, then profile bench.profile_steps (8): each operator's
             share of the time, and the matrix products' FLOP/s against the peak measured here
             seq2seq-benchmark profile experiment=transformer_small data.root=DIR
  scale      prepare synthetic corpora of bench.scale_sizes pairs, cold and from the cache
             seq2seq-benchmark scale data.spm_max_sentences=100000 data.num_proc=2
"""


def benchmark_main(argv: list[str] | None = None) -> None:
    """``seq2seq-benchmark train|translate|latency|serve|profile|scale key=value ...`` with one-line errors."""
    from seq2seq.bench.modes import main

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(BENCHMARK_USAGE, end="", file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    headless_plots()
    logging.basicConfig(level=logging.WARNING, format="[%(name)s][%(levelname)s] - %(message)s")
    report_errors(lambda: main(args))


def aer_main(argv: list[str] | None = None) -> None:
    """``scripts/aer.py HYP GOLD``: alignment error rate, precision and recall of Pharaoh links."""
    import argparse

    from seq2seq.inspect.alignments import alignment_error_rate, parse_alignment
    from seq2seq.inspect.metrics import read_lines

    parser = argparse.ArgumentParser(description=aer_main.__doc__)
    parser.add_argument("hyp", help="hypothesis alignments, Pharaoh format, one line per sentence")
    parser.add_argument("gold", help="gold alignments: i-j sure, i?j possible")
    parser.add_argument("--reverse", action="store_true", help="gold links are j-i (target first)")
    args = parser.parse_args(argv)

    def read() -> tuple[list, list, list]:
        hyp_lines, gold_lines = read_lines(args.hyp), read_lines(args.gold)
        if len(hyp_lines) != len(gold_lines):
            raise DataError(f"{args.hyp} has {len(hyp_lines)} lines but {args.gold} has {len(gold_lines)}")
        hyps, sure, possible = [], [], []
        for n, (h, g) in enumerate(zip(hyp_lines, gold_lines), start=1):
            try:
                a, _ = parse_alignment(h, f"{args.hyp}:{n}")
                s, p = parse_alignment(g, f"{args.gold}:{n}")
            except ValueError as err:
                raise DataError(str(err)) from None
            if args.reverse:
                s, p = {(j, i) for i, j in s}, {(j, i) for i, j in p}
            hyps.append(a)
            sure.append(s)
            possible.append(p)
        return hyps, sure, possible

    hyps, sure, possible = report_errors(read)
    r = alignment_error_rate(hyps, sure, possible)
    print(
        f"AER = {100 * r['aer']:.2f}  precision = {100 * r['precision']:.2f}  recall = {100 * r['recall']:.2f}  "
        f"({r['links']} links, {r['sure']} sure, {len(hyps)} sentences)"
    )


_hydra_train = hydra_entry("train", _train)
train_main = _train_entry
translate_main = hydra_entry("translate", _translate)
score_main = hydra_entry("score", _score)
export_main = hydra_entry("export", _export)
serve_main = hydra_entry("serve", _serve)
