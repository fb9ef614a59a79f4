"""Dev and test evaluation: loss/perplexity, BLEU, attention heatmaps and example translations."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seq2seq.checkpoint.store import CheckpointManager, average_checkpoints, load_checkpoint, save_checkpoint
from seq2seq.config.schema import DecodeConfig, Metric, TrainRunConfig
from seq2seq.data.batching import TokenBatchSampler, TokenizedCorpus
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.search import Hypothesis
from seq2seq.decode.translator import DecodeOptions, decode_corpus
from seq2seq.inspect.attention_records import (
    AttentionRecord,
    cross_attention,
    encoder_self_attention,
    output_pieces,
    write_record,
)
from seq2seq.inspect.metrics import corpus_bleu, score_corpus, sentence_bleu
from seq2seq.inspect.plotting import plot_attention, plot_attention_grid
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.training.loss import summed_token_loss
from seq2seq.training.run_data import RunData, SplitData
from seq2seq.utils.devices import autocast, eval_mode
from seq2seq.utils.errors import MissingSplitError
from seq2seq.utils.files import atomic_write_text

log = logging.getLogger(__name__)


@contextlib.contextmanager
def swapped_weights(model: Seq2Seq, state: dict[str, torch.Tensor]) -> Iterator[Seq2Seq]:
    """Load ``state`` into ``model`` for the ``with`` block; the model's own weights come back after,
    also when the block raises."""
    current = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    try:
        yield model
    finally:
        model.load_state_dict(current)


def decode_options(cfg: TrainRunConfig, decode: DecodeConfig, **runtime: Any) -> DecodeOptions:
    """``decode`` (``cfg.valid.decode`` or ``cfg.test.decode``) run in the training precision."""
    return DecodeOptions.of(decode, precision=str(cfg.train.precision), **runtime)


@torch.no_grad()
def dev_loss(
    model: Seq2Seq, corpus: TokenizedCorpus, batch_tokens: int, device: torch.device, precision: str = "fp32"
) -> float:
    """Per-token negative log-likelihood (no label smoothing) over ``corpus``."""
    sampler = TokenBatchSampler(corpus.src_lengths, corpus.trg_lengths, batch_tokens, shuffle=False)
    total, tokens = 0.0, 0
    with eval_mode(model):
        for rows in sampler.batches():
            batch = corpus.batch(rows).to(device)
            with autocast(device, precision)():
                logits = model(batch.src, batch.src_lengths, batch.trg_in, src_mask=batch.src_mask)
            total += float(summed_token_loss(logits, batch.trg_out))
            tokens += batch.n_trg_tokens
    return total / max(tokens, 1)


def evaluate_dev(
    model: Seq2Seq,
    cfg: TrainRunConfig,
    valid: SplitData,
    tokenizers: Tokenizers,
    device: torch.device,
) -> tuple[dict[str, float], list[str]]:
    """Dev loss, perplexity and BLEU (searched with ``valid.decode``: greedy by default); returns the
    metrics and the detokenized outputs."""
    loss = dev_loss(model, valid.corpus, cfg.train.batch_tokens, device, str(cfg.train.precision))
    rows = np.arange(len(valid.corpus))
    if cfg.valid.max_sentences:
        rows = rows[: cfg.valid.max_sentences]
    hyps = decode_corpus(model, valid.corpus, decode_options(cfg, cfg.valid.decode), device, rows)
    outputs = [tokenizers.trg.decode(h[0].tokens) for h in hyps]
    bleu = corpus_bleu(outputs, [valid.trg_text[i] for i in rows], cfg.valid.bleu_tokenize)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "bleu": bleu}, outputs


def write_examples(
    writer, model: Seq2Seq, cfg: TrainRunConfig, valid: SplitData, tokenizers: Tokenizers, device, step: int
) -> None:
    """Attention heatmaps and translations of the first ``valid.attention_examples`` dev pairs."""
    examples = np.arange(min(cfg.valid.attention_examples, len(valid.corpus)))
    if len(examples) == 0:
        return
    options = decode_options(cfg, cfg.valid.decode, return_attention=True)
    hyps = decode_corpus(model, valid.corpus, options, device, examples)
    rows = ["| | source | reference | output |", "|---|---|---|---|"]
    for n, (i, hyp) in enumerate(zip(examples.tolist(), hyps)):
        best = hyp[0]
        src_tokens = tokenizers.src.pieces(valid.corpus.src[i].tolist()) + ["</s>"]
        trg_tokens = tokenizers.trg.pieces(best.tokens) + ["</s>"]
        title = f"dev {i}, step {step}"
        weights = best.attention[:, -1].mean(dim=1).numpy()  # last layer, heads averaged: (T, S)
        writer.add_figure(f"attention/example_{n}", plot_attention(weights, src_tokens, trg_tokens, title), step)
        layers, heads = best.attention.shape[1:3]
        if cfg.valid.attention_layers and layers * heads > 1:
            grid = plot_attention_grid(best.attention.permute(1, 2, 0, 3).numpy(), src_tokens, trg_tokens, title)
            writer.add_figure(f"attention_layers/example_{n}", grid, step)
        if cfg.valid.encoder_attention:
            _write_encoder_attention(writer, model, valid.corpus, i, src_tokens, f"example_{n}", title, device, step)
        rows.append(f"| {i} | {valid.src_text[i]} | {valid.trg_text[i]} | {tokenizers.trg.decode(best.tokens)} |")
    writer.add_text("valid/translations", "\n".join(rows), step)
    log_dev_examples(writer, model, cfg, valid, tokenizers, examples.tolist(), hyps, device, step)  # attention tab


@torch.no_grad()
def _write_encoder_attention(writer, model, corpus, row, src_tokens, tag, title, device, step) -> None:
    """The encoder's self-attention (layers x heads) of one sentence, for encoders that have it."""
    batch = corpus.batch(np.array([row])).to(device)
    with eval_mode(model):
        encoder_out = model.encode(batch.src, batch.src_lengths, need_weights=True, src_mask=batch.src_mask)
    if not encoder_out.self_attention:
        return
    weights = torch.stack(encoder_out.self_attention, dim=1)[0].float().cpu().numpy()  # (L, H, S, S)
    writer.add_figure(f"encoder_attention/{tag}", plot_attention_grid(weights, src_tokens, src_tokens, title), step)


def evaluate_test(
    model: Seq2Seq, cfg: TrainRunConfig, test: SplitData, tokenizers: Tokenizers, device: torch.device
) -> tuple[dict[str, Any], list[str]]:
    """Translate a test split with ``cfg.test``'s beam; BLEU/chrF/TER and the outputs.

    One output per test pair, in order (an empty source gives an empty line), so the outputs
    line up with the reference file.
    """
    options = decode_options(cfg, cfg.test.decode)
    rows = np.flatnonzero([bool(text.strip()) for text in test.src_text])
    start = time.perf_counter()
    hyps = decode_corpus(model, test.corpus, options, device, rows)
    seconds = time.perf_counter() - start
    outputs = [""] * len(test.src_text)
    for i, hyp in zip(rows.tolist(), hyps):
        outputs[i] = tokenizers.trg.decode(hyp[0].tokens)
    report = {
        "beam_size": options.beam_size,
        "sentences": len(outputs),
        "sentences_per_sec": round(len(outputs) / max(seconds, 1e-9), 2),
        **score_corpus(outputs, [test.trg_text], cfg.valid.bleu_tokenize),
    }
    return report, outputs


def average_best(
    model: Seq2Seq, cfg: TrainRunConfig, data: RunData, checkpoints: CheckpointManager, device: torch.device, step: int
) -> dict[str, float] | None:
    """Average the checkpoints ``checkpoints`` ranks best and validate the average; if it is not
    worse on dev by ``train.best_metric``, save it as ``averaged.pt`` and promote it to best.pt.
    Returns its dev metrics, or None when it was discarded (or there was nothing to average)."""
    steps = [s for _, s in checkpoints.ranking]
    if len(steps) < 2:
        return None
    payload = average_checkpoints([checkpoints.path(s) for s in steps])
    with swapped_weights(model, payload["model"]):
        metrics, _ = evaluate_dev(model, cfg, data.valid, data.tokenizers, device)
    higher = cfg.train.best_metric == Metric.bleu
    score, best = metrics["bleu"] if higher else metrics["loss"], checkpoints.ranking[0][0]
    kept = score >= best if higher else score <= best
    log.info(
        "average of steps %s: dev BLEU %.2f, loss %.4f (%s %.4f vs best %.4f): %s",
        steps,
        metrics["bleu"],
        metrics["loss"],
        cfg.train.best_metric,
        score,
        best,
        "kept as best.pt" if kept else "discarded",
    )
    if not kept:
        return None
    payload["metrics"] = {"step": step, **metrics}
    path = checkpoints.directory / "averaged.pt"
    save_checkpoint(path, payload)
    checkpoints.promote(path)
    return metrics


def test_best(
    model: Seq2Seq,
    cfg: TrainRunConfig,
    tokenizers: Tokenizers,
    checkpoints: CheckpointManager,
    device: torch.device,
    writer: Any,
) -> dict[str, dict[str, Any]]:
    """Translate every test split with best.pt and ``test.decode``; returns the reports by split.

    Each split writes ``test.<split>.hyp`` and ``test.<split>.scores.json`` into the run directory
    (the parent of ``checkpoints/``); the first also ``test.hyp`` and ``test.scores.json``. A
    missing split is a warning, not an error. ``model`` keeps its own weights afterwards.
    """
    names = list(cfg.test.splits or [cfg.data.test_split])
    best = load_checkpoint(checkpoints.best_path, device)
    step = best["metrics"]["step"]
    reports: dict[str, dict[str, Any]] = {}
    with swapped_weights(model, best["model"]):
        for name in names:
            split_cfg = cfg
            if cfg.test.splits:  # a split name is a file stem under data.root, or a hub split
                split_cfg = replace(cfg, data=replace(cfg.data, test_split=name, hub_test_split=name))
            try:
                test = SplitData.load(split_cfg, "test", tokenizers)
            except MissingSplitError as err:
                log.warning("no test evaluation of %s: %s", name, err)
                continue
            report, outputs = evaluate_test(model, split_cfg, test, tokenizers, device)
            reports[name] = {"split": name, "checkpoint": str(checkpoints.best_path), "step": step, **report}
            _write_test(checkpoints.directory.parent, name, reports[name], outputs, first=len(reports) == 1)
            writer.add_scalar("test/bleu" if len(reports) == 1 else f"test/bleu/{name}", report["bleu"]["score"], step)
    return reports


def _write_test(run_dir: Path, name: str, report: dict[str, Any], outputs: list[str], first: bool) -> None:
    hyp, scores = "".join(line + "\n" for line in outputs), json.dumps(report, indent=1, ensure_ascii=False)
    for stem in [f"test.{name}", "test"] if first else [f"test.{name}"]:
        atomic_write_text(run_dir / f"{stem}.hyp", hyp)
        atomic_write_text(run_dir / f"{stem}.scores.json", scores)
    log.info(
        "test %s (best.pt from step %s, beam %d): %s | chrF %.2f | TER %.2f | %.0f sentences/s",
        name,
        report["step"],
        report["beam_size"],
        report["bleu"]["verbose"],
        report["chrf"]["score"],
        report["ter"]["score"],
        report["sentences_per_sec"],
    )


def log_dev_examples(
    writer: Any,
    model: Seq2Seq,
    cfg: TrainRunConfig,
    valid: SplitData,
    tokenizers: Tokenizers,
    rows: Sequence[int],
    hyps: Sequence[Sequence[Hypothesis]],
    device: torch.device | str,
    step: int,
) -> None:
    """One record per fixed dev example (``rows``, best hypotheses ``hyps``) at training ``step``."""
    for n, (row, nbest) in enumerate(zip(rows, hyps)):
        best = nbest[0]
        if best.attention is None:
            continue
        encoder = None
        if cfg.valid.encoder_attention:
            batch = valid.corpus.batch(np.array([row])).to(device)
            encoder = encoder_self_attention(model, batch.src, batch.src_lengths)
        output = tokenizers.trg.decode(best.tokens)
        record = AttentionRecord(
            label=f"dev {row}",
            kind="dev",
            source=valid.src_text[row],
            reference=valid.trg_text[row],
            output=output,
            bleu=sentence_bleu(output, valid.trg_text[row], cfg.valid.bleu_tokenize),
            score=best.score,
            src_pieces=tokenizers.src.pieces(valid.corpus.src[row].tolist()) + ["</s>"],
            trg_pieces=output_pieces(tokenizers.trg, best.tokens),
            cross=cross_attention(best.attention),
            encoder=encoder,
        )
        write_record(writer, f"example_{n}", record, step)
