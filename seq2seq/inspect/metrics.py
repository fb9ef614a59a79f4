"""Corpus-level metrics with sacreBLEU (Post, 2018) on detokenized text: BLEU, chrF, TER.

Scores carry sacreBLEU's signature (``nrefs:1|case:mixed|eff:no|tok:13a|...``) so they can be
compared with published numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER

from seq2seq.config.schema import OutputFormat, ScoreConfig
from seq2seq.config.values import check_bleu_tokenize
from seq2seq.utils.errors import ConfigError, DataError
from seq2seq.utils.files import GZIP_ERRORS, check_readable, corrupt_gzip, open_input


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100) of detokenized ``hypotheses`` against one reference each."""
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def sentence_bleu(hypothesis: str, reference: str, tokenize: str = "13a") -> float:
    """Sentence BLEU (0-100, sacreBLEU's exponential smoothing and effective order) of one output."""
    return float(sacrebleu.sentence_bleu(hypothesis, [reference], tokenize=tokenize).score)


def score_corpus(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    tokenize: str = "13a",
    lowercase: bool = False,
    digits: int | None = 4,
) -> dict[str, dict[str, Any]]:
    """BLEU, chrF and TER of ``hypotheses`` against one or more reference streams.

    Returns ``{"bleu": {"score", "signature", "verbose"}, "chrf": {...}, "ter": {...}}``; scores
    rounded to ``digits`` decimals (None: unrounded, for a caller that rounds once itself).
    """
    refs = [list(r) for r in references]
    metrics = {
        "bleu": BLEU(tokenize=tokenize, lowercase=lowercase),
        "chrf": CHRF(lowercase=lowercase),
        "ter": TER(case_sensitive=not lowercase),
    }
    results = {}
    for name, metric in metrics.items():
        score = metric.corpus_score(list(hypotheses), refs)
        results[name] = {
            "score": float(score.score) if digits is None else round(float(score.score), digits),
            "signature": str(metric.get_signature()),
            "verbose": score.format(width=2),
        }
    return results


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (``.gz`` files are decompressed), without line ends."""
    path = Path(path)
    check_readable(path)  # any readable path: a file, /dev/stdin, a named pipe, <(command)
    try:
        with open_input(path) as handle:
            data = handle.read()
    except GZIP_ERRORS as err:
        raise corrupt_gzip(path, err) from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte order mark is not text
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: undecodable bytes (expected UTF-8)") from None
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


def score_files(hyp: str, refs: Sequence[str], tokenize: str = "13a", lowercase: bool = False) -> dict[str, Any]:
    """Score a hypothesis file against reference file(s) with equal line counts."""
    hypotheses = read_lines(hyp)
    references = []
    for ref in refs:
        lines = read_lines(ref)
        if len(lines) != len(hypotheses):
            raise DataError(f"{hyp} has {len(hypotheses)} lines but {ref} has {len(lines)}: they must match")
        references.append(lines)
    if not hypotheses:
        raise DataError(f"hyp={hyp} and ref={','.join(map(str, refs))} have no lines: nothing to score")
    scores = score_corpus(hypotheses, references, tokenize, lowercase)
    return {"hyp": str(hyp), "refs": [str(r) for r in refs], **scores}


def run_score(cfg: ScoreConfig) -> str:
    """``seq2seq-score``: the report as text (one line per metric) or JSON."""
    refs = [cfg.ref] if isinstance(cfg.ref, str) else list(cfg.ref) if isinstance(cfg.ref, Sequence) else []
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ConfigError(f"ref={cfg.ref} must be a file or a list of files: ref=FILE or ref=[FILE1,FILE2]")
    check_bleu_tokenize(cfg.tokenize, "tokenize")
    result = score_files(cfg.hyp, refs, cfg.tokenize, cfg.lowercase)
    if cfg.format == OutputFormat.json:
        return json.dumps(result, indent=1, ensure_ascii=False)
    return "\n".join(f"{result[m]['verbose']}  {result[m]['signature']}" for m in ("bleu", "chrf", "ter"))
