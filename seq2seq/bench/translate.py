"""``benchmark.py translate``: every engine and precision side by side, in one process.

Each engine × precision decodes the test split with each beam size of ``bench.beams``: one
untimed warm-up on 64 sentences, then ``bench.decode_repeats`` timed passes (median reported).
Beside the speed: BLEU of the outputs, the fraction of sentences translated exactly as PyTorch
fp32 translates them with the same beam (``same_as_torch_fp32``), and model FLOPs utilisation, the decoding FLOPs
(:meth:`seq2seq.bench.flops.FlopModel.decoding_flops` of each sentence's source and output lengths)
per second as a fraction of this process's measured matrix-multiply peak in that precision: the
best of rounds taken before each precision's first row, after every row and at the end (their
spread is printed with it; see :class:`seq2seq.bench.flops.PeakMeter`). Where bf16 is emulated its
rows have no MFU (``mfu`` null, ``mfu_note`` why); an MFU above 100 % stops the benchmark.
With ``bench.shortlist=FILE`` every engine also decodes over each batch's vocabulary shortlist
(rows "torch + shortlist", "ctranslate2 + shortlist"; their FLOPs count the shortlisted output
rows only).

Engines: ``torch`` (fp32 and bf16 autocast; int8 = dynamic quantisation, CPU only; fp16 on
CUDA) and ``ctranslate2`` (the checkpoint exported to a temporary directory, when ctranslate2
is installed and the model is exportable; fp32 and int8 compute types on a CPU).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from seq2seq.bench.flops import FlopModel, PeakMeter, flop_model, peak_size
from seq2seq.config.schema import BenchmarkConfig, DataConfig, TrainRunConfig
from seq2seq.data.batching import TokenizedCorpus, sentence_batches
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.int8 import quantize_int8
from seq2seq.decode.search import Hypothesis
from seq2seq.decode.shortlist import Shortlist
from seq2seq.decode.translator import DecodeOptions, auto_parallel_batches, decode_corpus
from seq2seq.inspect.metrics import corpus_bleu
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.devices import synchronize
from seq2seq.utils.errors import ConfigError

ENGINES = ("torch", "ctranslate2")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
Decode = Callable[[DecodeOptions, np.ndarray | None], list[list[Hypothesis]]]


@dataclass
class Setup:
    """What every engine decodes: the test corpus, its references, and the checkpoint."""

    checkpoint: str
    model: Seq2Seq
    tokenizers: Tokenizers
    trained: TrainRunConfig
    corpus: TokenizedCorpus
    refs: list[str]
    device: torch.device


def test_data(trained: TrainRunConfig, data_overrides: list[str]) -> DataConfig:
    """The checkpoint's own data config with the ``data.*`` command-line overrides applied."""
    overrides = OmegaConf.from_dotlist(data_overrides).get("data", {})
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(trained.data), overrides))  # type: ignore[return-value]


def default_precisions(engine: str, device: torch.device) -> list[str]:
    """The precisions ``engine`` has on ``device``."""
    if engine == "torch":
        return ["fp32", "bf16", "int8"] if device.type == "cpu" else ["fp32", "bf16", "fp16"]
    from seq2seq.decode.ctranslate2 import COMPUTE_TYPES, import_ctranslate2

    supported = set(import_ctranslate2().get_supported_compute_types(device.type))
    return [p for p in ("fp32", "bf16", "fp16", "int8") if COMPUTE_TYPES[p] in supported]


def _check(cfg: BenchmarkConfig) -> None:
    bad = [e for e in cfg.bench.engines if e not in ENGINES]
    bad += [p for p in cfg.bench.precisions or [] if p not in PRECISIONS]
    if bad:
        raise ConfigError(
            f"bench.engines/bench.precisions: unknown {', '.join(bad)} "
            f"(engines: {', '.join(ENGINES)}; precisions: {', '.join(PRECISIONS)})"
        )


def ct2_skip_reason(trained: TrainRunConfig) -> str | None:
    """Why the CTranslate2 engine cannot run a model trained with ``trained`` here (None: it can)."""
    from seq2seq.deploy.export import unsupported

    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return 'ctranslate2 is not installed (pip install -e ".[ctranslate2]")'
    reasons = unsupported(trained.model)
    return f"the model cannot be exported ({', '.join(reasons)})" if reasons else None


def _decoders(
    setup: Setup, engine: str, precision: str, model: str, threads: int | None, parallel: int | None
) -> Callable[..., Decode]:
    """``decoder(shortlist=...)`` of one engine and precision, for the rows with and without the
    shortlist (an int8 model is quantised once for both); ``model`` as :func:`engine_runs` gives it."""
    if engine == "ctranslate2":
        return partial(_ct2_decoder, setup, precision, model, threads)
    quantized = quantize_int8(setup.model, setup.device) if precision == "int8" else setup.model
    return partial(_torch_decoder, setup, quantized, parallel=parallel)


def _torch_decoder(setup: Setup, model: Seq2Seq, shortlist: Shortlist | None, parallel: int) -> Decode:
    """PyTorch decoding of the test corpus with ``model`` (the checkpoint's, or its int8 copy)."""

    def decode(options: DecodeOptions, rows: np.ndarray | None) -> list[list[Hypothesis]]:
        settings = replace(options, shortlist=shortlist, parallel_batches=parallel)
        return decode_corpus(model, setup.corpus, settings, setup.device, rows)

    return decode


def _ct2_decoder(
    setup: Setup, precision: str, directory: str, threads: int | None, shortlist: Shortlist | None
) -> Decode:
    from seq2seq.decode.ctranslate2 import CT2Translator

    sources = [[int(i) for i in setup.corpus.src[row]] for row in range(len(setup.corpus))]
    translators: dict[tuple, CT2Translator] = {}

    def decode(options: DecodeOptions, rows: np.ndarray | None) -> list[list[Hypothesis]]:
        key = (options.beam_size, options.batch_size)
        if key not in translators:  # loaded once per setting, outside the timed passes
            settings = replace(options, precision=precision, shortlist=shortlist)
            translators[key] = CT2Translator(directory, settings, setup.device, threads)
        picked = sources if rows is None else [sources[int(r)] for r in rows]
        return translators[key].translate_ids(picked)

    return decode


def engine_runs(
    cfg: BenchmarkConfig, checkpoint: str, trained: TrainRunConfig, device: torch.device, tmp: str, skipped: dict
) -> Iterator[tuple[str, str, str]]:
    """``(engine, precision, model)`` for each engine x precision of ``cfg.bench`` that this device
    and checkpoint allow; ``model`` is the checkpoint, or its CTranslate2 export (written once, into
    ``tmp``). Whatever cannot run is noted in ``skipped`` with the reason."""
    for engine in cfg.bench.engines:
        reason = ct2_skip_reason(trained) if engine == "ctranslate2" else None
        if reason:
            skipped[engine] = reason
            continue
        model = checkpoint
        if engine == "ctranslate2":
            from seq2seq.deploy.export import export_ctranslate2

            model = f"{tmp}/model"
            export_ctranslate2(checkpoint, model)
        available = default_precisions(engine, device)
        for precision in cfg.bench.precisions or available:
            if precision not in available:
                skipped[f"{engine} {precision}"] = f"not available on {device.type}"
                continue
            yield engine, precision, model


def bench_engines(setup: Setup, cfg: BenchmarkConfig, meter: PeakMeter | None = None) -> dict[str, Any]:
    """Rows of engine x precision x beam figures, the peaks they are measured against, and skips.

    ``meter`` measures the peaks (default: a :class:`PeakMeter` of ``bench.peak_size`` products):
    a round before a precision's first row, after each row, and one of each precision at the end.
    """
    _check(cfg)
    flops = flop_model(setup.model)
    rows: list[dict[str, Any]] = []
    meter = meter or PeakMeter(setup.device, peak_size(setup.device, cfg.bench.peak_size))
    skipped: dict[str, str] = {}
    baseline: dict[int, list[str]] = {}  # beam size -> PyTorch fp32 outputs
    shortlist = Shortlist.load(cfg.bench.shortlist, setup.tokenizers) if cfg.bench.shortlist else None
    # (shortlist, FLOP model per sentence, mean shortlist size): the same for every engine
    variants = [
        (vocab, *_shortlisted_flops(setup, flops, vocab, cfg.bench.decode_batch_size))
        for vocab in ([None, shortlist] if shortlist else [None])
    ]
    with tempfile.TemporaryDirectory(prefix="seq2seq-ct2-") as tmp:
        for engine, precision, model in engine_runs(cfg, setup.checkpoint, setup.trained, setup.device, tmp, skipped):
            if precision not in meter.rounds:
                meter.sample(precision)
            parallel = auto_parallel_batches(cfg.bench.parallel_batches, setup.device) if engine == "torch" else None
            decoder = _decoders(setup, engine, precision, model, cfg.train.threads, parallel)
            for vocab, counts, size_u in variants:
                decode = decoder(shortlist=vocab)
                for beam in cfg.bench.beams:
                    row = _bench_one(setup, cfg, decode, precision, beam, counts)
                    meter.sample(precision)  # between the rows: the machine as busy as it is now
                    row["shortlist_size"] = size_u
                    outputs = row.pop("outputs")
                    row["same_as_torch_fp32"] = _agreement(outputs, engine, precision, vocab, beam, baseline)
                    rows.append({"engine": engine, "shortlist": vocab is not None, "parallel_batches": parallel, **row})
    meter.sample_all()
    for row in rows:
        _add_mfu(row, meter)
    return {
        "rows": rows,
        "peak_flops": {p.precision: None if p.best is None else round(p.best) for p in meter.peaks()},
        "peak_spread": {p.precision: p.spread() for p in meter.peaks()},
        "peak_notes": {p.precision: p.describe() for p in meter.peaks()},
        "peak_size": meter.size,
        "skipped": skipped,
    }


def _add_mfu(row: dict[str, Any], meter: PeakMeter) -> None:
    """``row["mfu"]`` against the best round of its precision (None and ``mfu_note`` where emulated)."""
    peak = meter.peak(row["precision"])
    what = f"{engine_label(row)} {row['precision']} beam {row['beam_size']}"
    mfu = peak.fraction(row["achieved_flops"], what)
    row["mfu"] = None if mfu is None else round(mfu, 5)
    if peak.emulated is not None:
        row["mfu_note"] = peak.emulated


def _shortlisted_flops(
    setup: Setup, flops: FlopModel, shortlist: Shortlist | None, batch_size: int
) -> tuple[list[FlopModel], float | None]:
    """Per test sentence, the FLOP model it is decoded with: with a shortlist, the output layer
    has the ``U`` rows of its batch's shortlist instead of ``V`` (same batches as the decode).
    Also the mean ``U`` over sentences (None without a shortlist)."""
    if shortlist is None:
        return [flops] * len(setup.corpus), None
    output = setup.model.decoder.output
    per_sentence, sizes = [flops] * len(setup.corpus), np.zeros(len(setup.corpus))
    for positions in sentence_batches(setup.corpus.src_lengths, batch_size):
        rows = len(shortlist.for_batch(setup.corpus.batch(positions).src))
        fewer = replace(flops, target_params=flops.target_params - output.in_features * (output.out_features - rows))
        for i in positions.tolist():
            per_sentence[i] = fewer
        sizes[positions] = rows
    return per_sentence, round(float(sizes.mean()), 1)


def _bench_one(
    setup: Setup, cfg: BenchmarkConfig, decode: Decode, precision: str, beam: int, flops: list[FlopModel]
) -> dict[str, Any]:
    batch_size = cfg.bench.decode_batch_size  # precision int8: the engine's quantised model, no autocast
    options = DecodeOptions.of(cfg.test.decode, beam_size=beam, batch_size=batch_size, precision=precision)
    n = len(setup.corpus)
    decode(options, np.arange(min(64, n)))  # warm-up
    seconds, hyps = [], []
    for _ in range(cfg.bench.decode_repeats):
        synchronize(setup.device)
        start = time.perf_counter()
        hyps = decode(options, None)
        synchronize(setup.device)
        seconds.append(time.perf_counter() - start)
    outputs = [setup.tokenizers.trg.decode(h[0].tokens) for h in hyps]
    src_lengths = setup.corpus.src_lengths
    total = sum(f.decoding_flops(int(s), len(h[0].tokens) + 1, beam) for f, s, h in zip(flops, src_lengths, hyps))
    speeds = [n / s for s in seconds]
    return {
        "precision": precision,
        "beam_size": beam,
        "sentences_per_sec": round(statistics.median(speeds), 1),
        "sentences_per_sec_spread": [round(min(speeds), 1), round(max(speeds), 1)],
        "bleu": round(corpus_bleu(outputs, setup.refs), 2),
        "outputs": outputs,  # popped by bench_engines
        "gflop_per_sentence": round(total / n / 1e9, 4),
        "achieved_flops": round(total / statistics.median(seconds)),
    }


def _agreement(
    outputs: list[str], engine: str, precision: str, shortlist: Shortlist | None, beam: int, baseline: dict
) -> float | None:
    """The fraction of sentences translated exactly as PyTorch fp32 did with the same beam over the
    whole vocabulary (None: not measured in this run); that row itself records the baseline."""
    if shortlist is None and (engine, precision) == ("torch", "fp32"):
        baseline[beam] = outputs
    reference = baseline.get(beam)
    if reference is None:
        return None
    return round(sum(a == b for a, b in zip(outputs, reference)) / max(len(outputs), 1), 4)


def engines_table(result: dict[str, Any]) -> str:
    """Engines x precisions as rows; per beam size the speed, BLEU, the share of outputs equal to
    PyTorch fp32's, and MFU as columns."""
    beams = sorted({r["beam_size"] for r in result["rows"]})
    names = {b: "greedy" if b == 1 else f"beam {b}" for b in beams}
    head = "| engine | precision | " + " | ".join(f"{names[b]}: sent/s | BLEU | = fp32 | MFU" for b in beams) + " |"
    lines = [head, "|---|---|" + "---:|---:|---:|---:|" * len(beams)]
    rows = {(engine_label(r), r["precision"], r["beam_size"]): r for r in result["rows"]}
    for engine, precision in dict.fromkeys(key[:2] for key in rows):
        cells = [_cells(rows.get((engine, precision, b))) for b in beams]
        lines.append(f"| {engine} | {precision} | " + " | ".join(cells) + " |")
    measured = [note for p, note in result["peak_notes"].items() if result["peak_flops"][p] is not None]
    lines.append(f"\nmatrix-multiply peak ({result['peak_size']}² product): {'; '.join(measured)}")
    emulated = {r["precision"]: r["mfu_note"] for r in result["rows"] if r.get("mfu_note")}
    lines += [f"no MFU for {p}: {note}" for p, note in emulated.items()]
    lines += [f"skipped {k}: {v}" for k, v in result["skipped"].items()]
    return "\n".join(lines)


def engine_label(row: dict[str, Any]) -> str:
    """A table row's engine, "+ shortlist" where it decoded with one."""
    return f"{row['engine']} + shortlist" if row.get("shortlist") else row["engine"]


def _cells(row: dict[str, Any] | None) -> str:
    if row is None:
        return "– | – | – | –"
    same = "–" if row["same_as_torch_fp32"] is None else f"{100 * row['same_as_torch_fp32']:.1f} %"
    mfu = "n/a (emulated)" if row["mfu"] is None else f"{100 * row['mfu']:.2f} %"
    return f"{row['sentences_per_sec']} | {row['bleu']} | {same} | {mfu}"
