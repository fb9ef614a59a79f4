"""Model FLOPs and the machine's matrix-multiply peak, for model FLOPs utilisation (MFU).

Training a weight matrix costs 6 FLOPs per weight and token it is applied to: 2 (one
multiply-add) forward, 4 backward (Kaplan et al., 2020, section 2.1; nanoGPT's ``estimate_mfu``).
A seq2seq model applies its weights to different tokens, so they are counted by where they run:

* per source token: the encoder, and the decoder's projections of encoder states (Bahdanau's
  ``U k``, the "general" ``W k``, a Transformer decoder's cross-attention keys/values);
* per target token: the rest of the decoder, the output layer included (a tied output layer is a
  matrix multiply even though its weights are the embedding table; embedding look-ups are not);
* per sentence: the RNN decoder's bridge from the encoder summary to its first state.

Attention adds, per (query, key) pair and layer, ``2 d_score + 2 d_value`` FLOPs forward (the
score and the weighted sum of values; ``d_score`` is the model width for scaled dot-product
attention and the attention size for Bahdanau's ``v^T tanh(.)``), times 3 with the backward
pass: ``12 d`` per pair and layer for a Transformer, as in nanoGPT. Self-attention counts all
``T`` positions per query, as nanoGPT does (the causal mask is not discounted).

For a set of sentence pairs with source lengths ``S_i`` and target lengths ``T_i`` (``</s>``
included), one training step costs::

    6 (P_src sum S_i + P_trg sum T_i + P_sent B) + A_cross sum S_i T_i + A_enc sum S_i^2 + A_dec sum T_i^2

and "FLOPs per target token" is that divided by ``sum T_i`` (the encoder's share is thereby
scaled by the source/target token ratio of the batches).

MFU divides achieved FLOP/s by the machine's peak, measured in this process: a square matrix
product, timed in rounds spread over the benchmark (:class:`PeakMeter`); the best round counts,
since a round can catch the machine busy (and read low) but cannot read high, and the rounds'
spread is reported with it. An MFU above 100 % means the peak or the FLOP count is wrong: it
raises :class:`ImplausibleMfu` instead of being printed. Where bf16 is emulated (no native bf16:
what ``precision=auto`` checks, :func:`seq2seq.utils.devices.resolve_precision`) its "peak" says
nothing about the model's kernels, so no bf16 peak is measured and bf16 MFU is None.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from seq2seq.decode.int8 import dynamic_int8
from seq2seq.model.attention import BahdanauAttention, DotProductAttention
from seq2seq.model.decoders import RNNDecoder, TransformerDecoder
from seq2seq.model.encoders import TransformerEncoder
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.devices import resolve_precision, synchronize
from seq2seq.utils.errors import Seq2SeqError

ROUND_REPEATS = 3  # products timed per round of a PeakMeter (the fastest counts)


@dataclass(frozen=True)
class FlopModel:
    """Parameter counts by where they run, and attention FLOPs per (query, key) pair (fwd + bwd)."""

    source_params: int  # weights applied to every source token
    target_params: int  # weights applied to every target token
    sentence_params: int  # weights applied once per sentence
    cross_pair: int  # FLOPs per (target, source) pair, all decoder layers, forward + backward
    encoder_pair: int  # FLOPs per (source, source) pair (Transformer encoder self-attention)
    decoder_pair: int  # FLOPs per (target, target) pair (Transformer decoder self-attention)

    def training_flops(self, src_lengths: Iterable[int], trg_lengths: Iterable[int]) -> float:
        """FLOPs of one forward and backward pass over sentence pairs of these true lengths."""
        s = torch.as_tensor(list(src_lengths), dtype=torch.float64)
        t = torch.as_tensor(list(trg_lengths), dtype=torch.float64)
        weights = 6 * (self.source_params * s.sum() + self.target_params * t.sum() + self.sentence_params * len(s))
        pairs = self.cross_pair * (s * t).sum() + self.encoder_pair * (s * s).sum() + self.decoder_pair * (t * t).sum()
        return float(weights + pairs)

    def decoding_flops(self, src_length: int, output_length: int, beam_size: int = 1) -> float:
        """Approximate forward FLOPs of decoding one sentence: ``beam_size`` hypotheses of ``output_length``.

        Incremental decoding: the encoder and key projections run once, the decoder once per step
        and hypothesis, and step ``t`` attends over ``t`` earlier target positions.
        """
        s, t, k = src_length, output_length, beam_size
        weights = 2 * (self.source_params * s + self.sentence_params + k * self.target_params * t)
        pairs = self.cross_pair * k * s * t + self.encoder_pair * s * s + self.decoder_pair * k * t * (t + 1) / 2
        return float(weights + pairs / 3)  # pair costs are stored forward + backward


def _numel(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def _ids(*modules: nn.Module | None) -> set[int]:
    return {id(p) for m in modules if m is not None for p in m.parameters()}


def flop_model(model: Seq2Seq) -> FlopModel:
    """Count ``model``'s weights by where they run and its attention cost per token pair."""
    decoder = model.decoder
    source_side: set[int] = set()
    sentence_side: set[int] = set()
    pair_side: set[int] = set()
    cross = encoder_pair = decoder_pair = 0
    if isinstance(decoder, TransformerDecoder):
        source_side = _ids(decoder.memory, *(layer.cross_attn.key_value for layer in decoder.layers))
        width = decoder.layers[0].cross_attn.query.out_features
        cross = decoder_pair = 12 * width * len(decoder.layers)
    elif isinstance(decoder, RNNDecoder):
        attention = decoder.attention
        key_layer = getattr(attention, "key_layer", None)
        source_side, sentence_side = _ids(key_layer), _ids(decoder.bridge)
        value_size = decoder.combine.in_features - decoder.hidden_size
        if isinstance(attention, BahdanauAttention):
            pair_side = _ids(attention.energy_layer)
            score_size = attention.energy_layer.in_features
        elif isinstance(attention, DotProductAttention):
            score_size = decoder.hidden_size
        else:
            raise TypeError(f"no FLOP count for {type(attention).__name__}")
        cross = 6 * (score_size + value_size)
    else:
        raise TypeError(f"no FLOP count for {type(decoder).__name__}")
    if isinstance(model.encoder, TransformerEncoder):
        layer = model.encoder.layers[0].self_attn
        encoder_pair = 12 * layer.query.out_features * len(model.encoder.layers)
    own = {id(p): p for p in decoder.parameters() if p is not decoder.embed.weight}
    target = [p for i, p in own.items() if i not in source_side | sentence_side | pair_side]
    tied = decoder.output.weight.numel() if decoder.output.weight is decoder.embed.weight else 0
    return FlopModel(
        source_params=_numel(model.encoder.parameters()) + _numel(own[i] for i in source_side),
        target_params=_numel(target) + tied,
        sentence_params=_numel(own[i] for i in sentence_side),
        cross_pair=cross,
        encoder_pair=encoder_pair,
        decoder_pair=decoder_pair,
    )


# ------------------------------------------------------------------------------------------------
# The machine's peak


def peak_size(device: torch.device, size: int | None = None) -> int:
    """The side of the square product :func:`matmul_peak` times: ``size``, else 2,048 on a CPU and
    8,192 on a GPU (a 2,048-square product is too small to keep an H100 busy)."""
    return size if size is not None else (8192 if device.type == "cuda" else 2048)


def matmul_peak(device: torch.device, precision: str = "fp32", size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` ``size x size`` matrix products in ``precision``.

    ``fp32``, ``bf16`` and ``fp16`` multiply tensors of that dtype; ``int8`` times PyTorch's
    dynamically quantised linear layer (int8 weights, activations quantised on the fly: the
    kernel ``precision=int8`` decoding uses). A product costs ``2 size^3`` FLOPs.
    """
    a = torch.randn(size, size, device=device)
    if precision == "int8":
        layer = dynamic_int8(nn.Sequential(nn.Linear(size, size, bias=False)))  # children are swapped

        def product() -> torch.Tensor:
            return layer(a)

    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        x, y = a.to(dtype), torch.randn(size, size, device=device, dtype=dtype)

        def product() -> torch.Tensor:
            return x @ y

    with torch.no_grad():
        product()  # warm-up
        times = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            product()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times)


class ImplausibleMfu(Seq2SeqError):
    """A utilisation above 100 % of the measured peak: the peak or the FLOP count is wrong."""


def emulated_reason(device: torch.device, precision: str) -> str | None:
    """Why ``precision`` is emulated on ``device`` (bf16 where ``precision=auto`` would not pick it:
    no AVX-512 BF16 or AMX on a CPU, compute capability < 8.0 on CUDA); None when it is native."""
    if precision != "bf16":
        return None
    resolved, why = resolve_precision("auto", device)
    return None if resolved == "bf16" else why


@dataclass(frozen=True)
class Peak:
    """One precision's matrix-multiply peak: FLOP/s of each round measured, or why none was."""

    precision: str
    rounds: tuple[float, ...] = ()
    emulated: str | None = None  # why no peak is measured (see emulated_reason)

    @property
    def best(self) -> float | None:
        """The fastest round (None: emulated, or no round measured)."""
        return max(self.rounds) if self.rounds and self.emulated is None else None

    def spread(self) -> dict[str, float] | None:
        """``{"min", "median", "max", "rounds"}`` of the rounds in FLOP/s (None without a best)."""
        if self.best is None:
            return None
        r = self.rounds
        return {"min": round(min(r)), "median": round(statistics.median(r)), "max": round(max(r)), "rounds": len(r)}

    def describe(self) -> str:
        """``fp32 180.8 GFLOP/s (best of 4 rounds: 83.9-180.8, median 179.9)``, or why there is none."""
        if self.emulated is not None:
            return f"{self.precision} not measured: {self.emulated}"
        if self.best is None:
            return f"{self.precision} not measured"
        g = [v / 1e9 for v in self.rounds]
        if len(g) == 1:
            return f"{self.precision} {g[0]:.1f} GFLOP/s (1 round)"
        spread = f"{min(g):.1f}–{max(g):.1f}, median {statistics.median(g):.1f}"
        return f"{self.precision} {self.best / 1e9:.1f} GFLOP/s (best of {len(g)} rounds: {spread})"

    def fraction(self, achieved: float, what: str) -> float | None:
        """``achieved`` FLOP/s as a fraction of the best round (None where there is none); above 1
        raises :class:`ImplausibleMfu` naming ``what`` was measured."""
        if self.best is None:
            return None
        value = achieved / self.best
        if value > 1.0:
            raise ImplausibleMfu(
                f"{what}: MFU {100 * value:.1f} % is above 100 % of the peak ({self.describe()}): "
                "the measured peak or the FLOP count is wrong, so no MFU is reported"
            )
        return value


@dataclass
class PeakMeter:
    """Matrix-multiply peaks of ``device`` in rounds spread over a benchmark run (call :meth:`sample`
    before, between and after the timed work); emulated precisions are noted, not measured."""

    device: torch.device
    size: int  # side of the square product (peak_size)
    measure: Callable[[torch.device, str, int], float] | None = None  # one round; None: matmul_peak
    rounds: dict[str, list[float]] = field(default_factory=dict)
    emulated: dict[str, str] = field(default_factory=dict)

    def sample(self, precision: str) -> None:
        """One more round of ``precision`` (nothing where it is emulated)."""
        if precision not in self.rounds and precision not in self.emulated:
            why = emulated_reason(self.device, precision)
            if why is not None:
                self.emulated[precision] = why
                return
        if precision in self.emulated:
            return
        measure = self.measure or (lambda device, p, size: matmul_peak(device, p, size, ROUND_REPEATS))
        self.rounds.setdefault(precision, []).append(measure(self.device, precision, self.size))

    def sample_all(self) -> None:
        """One more round of every precision measured so far."""
        for precision in list(self.rounds):
            self.sample(precision)

    def peak(self, precision: str) -> Peak:
        return Peak(precision, tuple(self.rounds.get(precision, ())), self.emulated.get(precision))

    def peaks(self) -> list[Peak]:
        """Every precision sampled: the measured ones, then the emulated ones."""
        return [self.peak(p) for p in dict.fromkeys([*self.rounds, *self.emulated])]


def padding_fraction(real_tokens: int, padded_positions: int) -> float:
    """The share of a batch's positions that are padding: ``1 - real / (rows x padded length)``."""
    return 1.0 - real_tokens / padded_positions if padded_positions else 0.0
