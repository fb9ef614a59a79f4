"""Translate from Python (a notebook, a script): :func:`load_translator` and its results.

    from seq2seq import load_translator, plot_attention

    tr = load_translator("runs/toy/checkpoints/best.pt", device="auto", precision="fp32")
    (r,) = tr.translate(["d a h c f b e g"], beam_size=5)
    r.text, r.score, r.src_tokens, r.trg_tokens
    r.attention                                     # (T, S) numpy array, rows sum to 1
    plot_attention(r.attention, r.src_tokens, r.trg_tokens)   # a Figure, shown inline in Jupyter

:meth:`CheckpointTranslator.translate` returns one :class:`Result` per sentence, in order. With
``n_best > 1`` each result is still the best translation (its ``text``, ``score``, tokens and
attention), and ``result.n_best`` lists all ``n_best`` candidates, best first (the first is
the result's own), each with its own text, score, tokens and attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seq2seq.checkpoint import load_model
from seq2seq.checks import check_decode
from seq2seq.config import Precision, TrainRunConfig
from seq2seq.errors import ConfigError
from seq2seq.model import Seq2Seq
from seq2seq.quantize import check_int8_device, quantize_int8
from seq2seq.runtime import autocast, prepare_device, resolve_device, resolve_precision
from seq2seq.search import Hypothesis
from seq2seq.shortlist import Shortlist
from seq2seq.tokenizer import Tokenizers
from seq2seq.translate import DecodeOptions, Translation, Translator, auto_parallel_batches

EOS_PIECE = "</s>"


@dataclass(frozen=True)
class Candidate:
    """One output of the search for a sentence.

    ``attention`` is ``(T, S)``: one row per output token (``trg_tokens``, ``</s>`` included),
    one column per source token (``src_tokens``), each row a distribution summing to 1 (for a
    Transformer decoder: the last layer, averaged over heads). ``attention_layers`` is
    ``(layers, heads, T, S)``. ``score`` is the log-probability (length-normalised by beam
    search, see ``length_penalty``).
    """

    text: str
    score: float
    trg_tokens: list[str]
    attention: np.ndarray = field(repr=False)
    attention_layers: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Result:
    """The translation of one sentence: the best candidate's fields, and all of ``n_best``.

    An empty (or blank) sentence has an empty translation, no tokens and a ``(0, 0)`` attention.
    """

    source: str
    src_tokens: list[str]
    n_best: list[Candidate]

    @property
    def text(self) -> str:
        return self.n_best[0].text

    @property
    def score(self) -> float:
        return self.n_best[0].score

    @property
    def trg_tokens(self) -> list[str]:
        return self.n_best[0].trg_tokens

    @property
    def attention(self) -> np.ndarray:
        """``(T, S)`` = ``(len(trg_tokens), len(src_tokens))``; rows sum to 1."""
        return self.n_best[0].attention

    @property
    def attention_layers(self) -> np.ndarray:
        """``(layers, heads, T, S)``."""
        return self.n_best[0].attention_layers

    def __repr__(self) -> str:
        return f"Result(text={self.text!r}, score={self.score:.4f}, attention {self.attention.shape})"


class CheckpointTranslator:
    """A trained model with its sentencepiece models, ready to translate lists of sentences."""

    def __init__(
        self,
        model: Seq2Seq,
        tokenizers: Tokenizers,
        config: TrainRunConfig,
        device: torch.device,
        precision: str,
        shortlist: Shortlist | None = None,
    ) -> None:
        self.model = model
        self.tokenizers = tokenizers
        self.config = config  # the training run's config, as stored in the checkpoint
        self.device = device
        self.precision = precision
        self.shortlist = shortlist

    def translate(
        self,
        sentences: str | Sequence[str],
        beam_size: int = 5,
        n_best: int = 1,
        length_penalty: float = 1.0,
        min_length: int = 1,
        batch_size: int = 64,
        parallel_batches: int | None = 1,
    ) -> list[Result]:
        """Translate ``sentences`` (a list, or one string); one :class:`Result` per sentence, in order.

        ``beam_size=1`` is greedy search; ``n_best`` (at most ``beam_size``) candidates are kept
        in ``result.n_best``; ``length_penalty`` is GNMT's α (0: raw log-probability);
        ``min_length`` is the shortest output in tokens before ``</s>``. ``parallel_batches``: on a
        CPU, that many batches searched at the same time, the threads shared out among them
        (PyTorch's thread count, the whole process's, is lowered meanwhile; ``None``: one batch
        per thread), as ``seq2seq-translate`` does by default.
        """
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("sentences must be strings (a list of them, or one)")
        options = DecodeOptions(
            beam_size=beam_size,
            n_best=n_best,
            length_penalty=length_penalty,
            min_length=min_length,
            batch_size=batch_size,
            return_attention=True,
            precision=self.precision,
            shortlist=self.shortlist,
            parallel_batches=auto_parallel_batches(parallel_batches, self.device),
        )
        check_decode(options)
        translations = Translator(self.model, self.tokenizers, options, self.device).translate(texts)
        return [self._result(t) for t in translations]

    def _result(self, translation: Translation) -> Result:
        if not translation.hypotheses:  # an empty sentence
            empty = Candidate("", 0.0, [], np.zeros((0, 0), np.float32), np.zeros((1, 1, 0, 0), np.float32))
            return Result(translation.source, [], [empty])
        candidates = [self._candidate(h) for h in translation.hypotheses]
        return Result(translation.source, list(translation.src_tokens), candidates)

    def _candidate(self, hyp: Hypothesis) -> Candidate:
        layers = hyp.attention.float().permute(1, 2, 0, 3).cpu().numpy()  # (L, H, T, S)
        return Candidate(
            text=self.tokenizers.trg.decode(hyp.tokens),
            score=float(hyp.score),
            trg_tokens=self.tokenizers.trg.pieces(hyp.tokens) + [EOS_PIECE],
            attention=layers[-1].mean(axis=0),
            attention_layers=layers,
        )

    def __repr__(self) -> str:
        m = self.config.model
        return (
            f"CheckpointTranslator({m.encoder} encoder, {m.decoder} decoder, {m.attention} attention, "
            f"{self.config.data.src_lang}->{self.config.data.trg_lang}, {self.device}, {self.precision})"
        )


def load_translator(
    checkpoint: str | Path,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    shortlist: str | Path | None = None,
) -> CheckpointTranslator:
    """Load a checkpoint (it holds the model, its config and its sentencepiece models) for translation.

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    ``precision``: ``fp32``, ``bf16``, ``fp16`` (CUDA only), ``int8`` (dynamic int8 quantisation,
    CPU only) or ``auto`` (bf16 where the hardware computes it natively). ``shortlist``: a file
    from ``seq2seq-export format=shortlist`` (see :mod:`seq2seq.shortlist`). Bad arguments and
    unreadable, damaged or crafted checkpoints and shortlists raise a one-line
    :class:`~seq2seq.errors.Seq2SeqError` within seconds: a checkpoint is checked (structure,
    sentencepiece models, config sizes against its weights) before a model is built or memory is
    taken on ``device``.
    """
    choices = [p.value for p in Precision]
    if str(precision) not in choices:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(choices)}")
    torch_device = _device(device, precision)
    resolved, _ = resolve_precision(str(precision), torch_device)
    autocast(torch_device, resolved)  # fp16 without CUDA fails here, not at the first sentence
    if resolved == "int8":
        check_int8_device(torch_device)
    model, tokenizers, config, _ = load_model(checkpoint, torch_device)
    if resolved == "int8":
        model = quantize_int8(model, torch_device)
    listed = None if shortlist is None else Shortlist.load(shortlist, tokenizers)
    return CheckpointTranslator(model, tokenizers, config, torch_device, resolved, listed)


def _device(device: str | torch.device, precision: str = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return prepare_device(device)
    if device in ("auto", "cpu", "cuda"):
        return resolve_device(device, precision)
    if str(device).startswith("cuda:"):
        try:
            index = int(str(device).split(":", 1)[1])
        except ValueError:
            index = -1
        if 0 <= index < torch.cuda.device_count():
            return prepare_device(torch.device("cuda", index))
        raise ConfigError(f"device={device!r}: there are {torch.cuda.device_count()} CUDA devices")
    raise ConfigError(f"device={device!r}: expected auto, cpu, cuda or cuda:N")
