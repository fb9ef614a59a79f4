"""Train and translate from Python (a notebook, a script): :func:`train`, :func:`load_translator`.

    from seq2seq import train, load_translator

    result = train(["data=toy_reverse", "train.max_steps=600"], run_dir="runs/toy")
    result.best_checkpoint, result.steps, result.dev_bleu

    from seq2seq import load_translator, plot_attention

    tr = load_translator("runs/toy/checkpoints/best.pt", device="auto", precision="fp32")
    (r,) = tr.translate(["d a h c f b e g"], beam_size=5)
    r.text, r.score, r.src_tokens, r.trg_tokens
    r.attention                                     # (T, S) numpy array, rows sum to 1
    plot_attention(r.attention, r.src_tokens, r.trg_tokens)   # a Figure, shown inline in Jupyter

:meth:`CheckpointTranslator.translate` returns one :class:`~seq2seq.decode.translation.Translation`
per sentence, in order: the one result type of every engine and of ``seq2seq-translate``, with
one attention layout (``attention_layers`` ``(layers, heads, T, S)``, ``attention`` its ``(T, S)``
summary). With ``n_best > 1`` each result is still the best translation, and ``result.n_best``
lists all ``n_best`` candidates, best first (the first is the result itself), each with its
own text, score, tokens and attention.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from seq2seq.checkpoint.store import load_checkpoint
from seq2seq.config.compose import compose_config
from seq2seq.config.schema import MAX_INPUT_TOKENS, DecodeConfig, TrainRunConfig
from seq2seq.config.values import check_decode
from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.loading import build_translator
from seq2seq.decode.translation import Translation
from seq2seq.decode.translator import Translator, auto_parallel_batches
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.training.trainer import train as train_run
from seq2seq.utils.errors import ConfigError

DEFAULTS = DecodeConfig()  # the search defaults, as seq2seq-translate's


class CheckpointTranslator:
    """A trained model (a checkpoint with PyTorch, or an export with CTranslate2) ready to
    translate lists of sentences; built by :func:`load_translator`."""

    def __init__(self, engine: Translator | CT2Translator, config: TrainRunConfig) -> None:
        self.engine = engine  # raw sentences in, Translation objects out (seq2seq.decode)
        self.tokenizers = engine.tokenizers
        self.config = config  # the training run's config, as stored in the checkpoint
        self.device = engine.device
        self.precision = engine.precision if isinstance(engine, CT2Translator) else engine.options.precision
        self.shortlist = engine.options.shortlist

    @property
    def model(self) -> Seq2Seq | None:
        """The PyTorch model (None for a CTranslate2 export)."""
        return getattr(self.engine, "model", None)

    def translate(
        self,
        sentences: str | Sequence[str],
        beam_size: int = DEFAULTS.beam_size,
        n_best: int = DEFAULTS.n_best,
        length_penalty: float = DEFAULTS.length_penalty,
        min_length: int = DEFAULTS.min_length,
        batch_size: int = DEFAULTS.batch_size,
        parallel_batches: int | None = 1,
    ) -> list[Translation]:
        """Translate ``sentences`` (a list, or one string); one :class:`~seq2seq.decode.translation.Translation`
        per sentence, in order (the type every engine and the command line use).

        The search defaults are :class:`~seq2seq.config.schema.DecodeConfig`'s, as for
        ``seq2seq-translate``. ``beam_size=1`` is greedy search; ``n_best`` (at most
        ``beam_size``) candidates are kept in ``result.n_best``; ``length_penalty`` is GNMT's α
        (0: raw log-probability); ``min_length`` is the shortest output in tokens before
        ``</s>``. ``parallel_batches``: on a CPU, that many batches searched at the same time,
        the threads shared out among them (``None``: one batch per thread, as
        ``seq2seq-translate`` does). The default here is 1, one batch at a time: a notebook's
        results do not depend on how the threads were shared out.
        """
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("sentences must be strings (a list of them, or one)")
        search = dict(
            beam_size=beam_size,
            n_best=n_best,
            length_penalty=length_penalty,
            min_length=min_length,
            batch_size=batch_size,
        )
        options = replace(self.engine.options, **search, return_attention=True)
        check_decode(options)
        if isinstance(self.engine, Translator):
            options.parallel_batches = auto_parallel_batches(parallel_batches, self.device)
        self.engine.options = options
        return self.engine.translate(texts)

    def __repr__(self) -> str:
        m = self.config.model
        engine = "CTranslate2, " if isinstance(self.engine, CT2Translator) else ""
        return (
            f"CheckpointTranslator({engine}{m.encoder} encoder, {m.decoder} decoder, {m.attention} attention, "
            f"{self.config.data.src_lang}->{self.config.data.trg_lang}, {self.device}, {self.precision})"
        )


def load_translator(
    checkpoint: str | Path,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    shortlist: str | Path | None = None,
    engine: str = "torch",
    max_input_tokens: int | None = MAX_INPUT_TOKENS,
) -> CheckpointTranslator:
    """Load a checkpoint (it holds the model, its config and its sentencepiece models) for translation.

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    ``precision``: ``fp32``, ``bf16``, ``fp16`` (CUDA only), ``int8`` (dynamic int8 quantisation,
    CPU only) or ``auto`` (bf16 where the hardware computes it natively). The default is fp32,
    where ``seq2seq-translate`` picks ``auto``: a notebook gets the same numbers on every machine.
    ``shortlist``: a file from ``seq2seq-export format=shortlist`` (see
    :mod:`seq2seq.decode.shortlist`). ``engine="ctranslate2"``: ``checkpoint`` is a directory
    written by ``seq2seq-export format=ctranslate2``. ``max_input_tokens``: a longer source is cut
    to this many subword tokens (``</s>`` included; None: no cap), as ``seq2seq-translate`` does.
    Bad arguments and unreadable, damaged or crafted checkpoints and shortlists raise a one-line
    :class:`~seq2seq.utils.errors.Seq2SeqError` within seconds: a checkpoint is checked
    (structure, sentencepiece models, config sizes against its weights) before a model is built
    or memory is taken on ``device``.
    """
    translator = build_translator(
        checkpoint,
        engine=engine,
        device=device,
        precision=precision,
        shortlist=shortlist,
        max_input_tokens=max_input_tokens,
        parallel_batches=1,
        return_attention=True,
    )
    return CheckpointTranslator(translator, translator.config)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` leaves: where the run is, its best checkpoint and how far it went."""

    run_dir: Path
    best_checkpoint: Path  # checkpoints/best.pt: load_translator(result.best_checkpoint)
    latest_checkpoint: Path  # checkpoints/latest.pt: train(..., run_dir=result.run_dir) continues from it
    steps: int  # updates made (in all, a resumed run's earlier ones included)
    dev_bleu: float | None  # dev BLEU of the best checkpoint (None: ranked by dev loss, no BLEU)
    metrics: dict[str, float]  # the last validation: loss, ppl, bleu, step


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> TrainResult:
    """Train a model as ``seq2seq-train OVERRIDES hydra.run.dir=RUN_DIR`` does, in this process.

    ``overrides``: the command line's ``key=value`` and ``group=option`` strings (``["data=toy_reverse",
    "model=transformer", "train.max_steps=600"]``); ``run_dir``: the run directory (default:
    ``outputs/DATE/TIME``, as the command picks). A directory that already holds a run is
    resumed from its newest checkpoint, as on the command line. Bad settings raise a one-line
    :class:`~seq2seq.utils.errors.ConfigError` before any work.
    """
    if isinstance(overrides, str):
        raise ConfigError("overrides must be a list of key=value strings, e.g. ['data=toy_reverse']")
    hydra_keys = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    if hydra_keys:
        raise ConfigError(f"{hydra_keys[0]}: Hydra's own settings do not apply here; give the directory as run_dir=")
    cfg = compose_config("train", overrides, TrainRunConfig)
    run_dir = Path(run_dir) if run_dir is not None else Path("outputs") / time.strftime("%Y-%m-%d/%H-%M-%S")
    metrics = train_run(cfg, run_dir)
    checkpoints = run_dir / "checkpoints"
    bleu = (load_checkpoint(checkpoints / "best.pt").get("metrics") or {}).get("bleu")
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=checkpoints / "best.pt",
        latest_checkpoint=checkpoints / "latest.pt",
        steps=int(metrics["step"]),  # the last validation is at the last step
        dev_bleu=None if bleu is None else float(bleu),
        metrics=dict(metrics),
    )
