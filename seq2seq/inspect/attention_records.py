"""Writing attention records for the TensorBoard "attention" tab (layout: :mod:`.metadata`).

The trainer logs one record per fixed dev example at every validation (tag
``seq2seq_attention/example_N``, the training step as step, so steps strictly increase);
``seq2seq-translate tensorboard=DIR`` logs one per translated line (``seq2seq_attention/line_NNNNN``).
Records go through the run's own ``SummaryWriter``, next to the PNG heatmaps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.summary_pb2 import DATA_CLASS_BLOB_SEQUENCE, Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from torch import Tensor

from seq2seq.config.special_ids import BOS, EOS, PAD
from seq2seq.inspect.record_format import FORMAT_VERSION, PLUGIN_NAME, TAG_PREFIX, WEIGHT_DTYPE
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.devices import eval_mode

if TYPE_CHECKING:
    from seq2seq.data.tokenizer import Tokenizer
    from seq2seq.decode.translation import Translation
    from seq2seq.decode.translator import Translator

SPECIAL_PIECES = {PAD: "<pad>", BOS: "<s>"}  # ids Tokenizer.pieces drops; an untrained model may write them


@dataclass
class AttentionRecord:
    """One translated sentence with its attention, as the tab shows it."""

    label: str  # "dev 3", "line 12"
    kind: str  # "dev" or "translate"
    source: str
    output: str
    src_pieces: list[str]  # ending in "</s>"
    trg_pieces: list[str]  # ending in "</s>"
    cross: np.ndarray  # (L, H, T, S): the decoder's attention over the source
    encoder: np.ndarray | None = None  # (L, H, S, S): the encoder's self-attention
    reference: str | None = None
    bleu: float | None = None
    score: float | None = None

    def meta(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "label": self.label,
            "kind": self.kind,
            "source": self.source,
            "reference": self.reference,
            "output": self.output,
            "bleu": None if self.bleu is None else round(self.bleu, 2),
            "score": None if self.score is None else round(self.score, 4),
            "src_pieces": list(self.src_pieces),
            "trg_pieces": list(self.trg_pieces),
            "cross_shape": list(self.cross.shape),
            "encoder_shape": None if self.encoder is None else list(self.encoder.shape),
        }

    def blobs(self) -> list[bytes]:
        """``[meta JSON, cross float16, encoder float16 or b""]`` (see :mod:`.metadata`)."""
        meta = json.dumps(self.meta(), ensure_ascii=False).encode("utf-8")
        encoder = b"" if self.encoder is None else _half(self.encoder)
        return [meta, _half(self.cross), encoder]


def _half(weights: np.ndarray) -> bytes:
    return np.ascontiguousarray(weights, dtype=WEIGHT_DTYPE).tobytes()


def record_summary(example: str, record: AttentionRecord) -> Summary:
    """A ``Summary`` holding ``record`` as a blob sequence under ``seq2seq_attention/<example>``."""
    blobs = record.blobs()
    tensor = TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=len(blobs))]),
        string_val=blobs,
    )
    metadata = SummaryMetadata(
        display_name=record.label,
        summary_description=f"attention of {record.label}",
        plugin_data=SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps({"version": FORMAT_VERSION}).encode()
        ),
        data_class=DATA_CLASS_BLOB_SEQUENCE,
    )
    return Summary(value=[Summary.Value(tag=TAG_PREFIX + example, metadata=metadata, tensor=tensor)])


def write_record(writer: Any, example: str, record: AttentionRecord, step: int) -> None:
    """Append ``record`` to a ``torch.utils.tensorboard.SummaryWriter``'s event file at ``step``."""
    file_writer = writer._get_file_writer()  # the SummaryWriter has no public add_summary
    if file_writer is not None:  # None: a stand-in writer on a rank that does not log
        file_writer.add_summary(record_summary(example, record), step)


def output_pieces(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """One piece per output id, then ``</s>``: a label for every row of the attention."""
    return [SPECIAL_PIECES.get(int(i)) or (tokenizer.pieces([i]) or ["</s>"])[0] for i in ids] + ["</s>"]


def cross_attention(attention: Tensor) -> np.ndarray:
    """A hypothesis' attention ``(T, L, H, S)`` as ``(L, H, T, S)`` float32."""
    return attention.float().permute(1, 2, 0, 3).cpu().numpy()


@torch.no_grad()
def encoder_self_attention(model: Seq2Seq, src: Tensor, src_lengths: Tensor) -> np.ndarray | None:
    """``(L, H, S, S)`` self-attention of the one sentence in ``src (1, S)``; None for RNN encoders."""
    with eval_mode(model):
        encoder_out = model.encode(src, src_lengths, need_weights=True)
    if not encoder_out.self_attention:
        return None
    return torch.stack(encoder_out.self_attention, dim=1)[0].float().cpu().numpy()


def log_translation(
    writer: Any, line: int, translation: Translation, translator: Translator | None = None, step: int = 0
) -> None:
    """The record of one translated input ``line`` (greedy or beam search), tagged ``line_NNNNN``.

    With ``translator`` the record also holds the encoder's self-attention (Transformer encoders).
    """
    if translation.attention_layers is None or not translation.trg_tokens:
        return
    encoder, trg_pieces = None, translation.trg_tokens
    if isinstance(getattr(translator, "model", None), Seq2Seq):  # a PyTorch model (not an exported one)
        kept = len(translation.src_tokens) - 1  # the source as translated: cut to max_input_tokens
        ids = translator.tokenizers.src.encode(translation.source.strip())[:kept] + [EOS]
        src = torch.tensor([ids], device=translator.device)
        encoder = encoder_self_attention(translator.model, src, torch.tensor([len(ids)], device=translator.device))
        if getattr(translation, "hypotheses", None):
            trg_pieces = output_pieces(translator.tokenizers.trg, translation.hypotheses[0].tokens)
    record = AttentionRecord(
        label=f"line {line}",
        kind="translate",
        source=translation.source,
        output=translation.text,
        score=translation.score,
        src_pieces=translation.src_tokens,
        trg_pieces=trg_pieces,
        cross=translation.attention_layers,  # (L, H, T, S) float32
        encoder=encoder,
    )
    write_record(writer, f"line_{line:05d}", record, step)
