"""``seq2seq-export``: a checkpoint as a CTranslate2 model directory (Klein et al., 2020).

The model is described with CTranslate2's Python model specification (``ctranslate2.specs``), so
nothing but our own weights and settings go into it. Our Transformer maps onto
``TransformerSpec`` one to one:

* pre-norm layers (``x + f(LN(x))``) with a final layer norm after each stack (ε = 1e-5);
* token embeddings scaled by ``sqrt(d)``, plus the sinusoidal table of
  :class:`~seq2seq.model.embeddings.PositionalEncoding` (interleaved sin/cos, which is not CTranslate2's
  built-in concatenated layout, so the table itself is exported as the position encodings);
* self-attention ``[query; key_value]`` fused into one ``(3d, d)`` projection, cross-attention
  ``query`` and ``key_value`` (keys first, as in CTranslate2), ReLU feed-forward;
* the (tied) output layer without bias; alignments: the last layer's cross-attention averaged
  over heads, like :attr:`seq2seq.decode.translator.Translation.attention`.

The directory also holds the sentencepiece model(s) and ``seq2seq.json`` (the training config
and file names), so ``seq2seq-translate engine=ctranslate2 checkpoint=DIR`` needs nothing else.
The model is stored in fp32; ``precision=int8`` quantises it when it is loaded.

``format=shortlist`` writes a vocabulary shortlist instead (:mod:`seq2seq.decode.shortlist`, for
``seq2seq-translate shortlist=FILE``), counted on the checkpoint's training data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from seq2seq.checkpoint.store import load_model
from seq2seq.config.schema import DataConfig, ExportConfig, ModelConfig, TaskName, TrainRunConfig
from seq2seq.config.serialization import to_container
from seq2seq.config.special_ids import BOS, EOS, UNK
from seq2seq.data.corpus import encode_split, find_files, load_split
from seq2seq.data.tokenizer import Tokenizer, Tokenizers
from seq2seq.decode.ctranslate2 import FORMAT_VERSION, METADATA
from seq2seq.decode.shortlist import build_shortlist, tokenizer_digest
from seq2seq.model.embeddings import PositionalEncoding
from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.errors import ExportError
from seq2seq.utils.files import check_distinct_outputs

# Rows of the exported position table: the longest source or output CTranslate2 may see.
MAX_POSITIONS = 2048
LAYER_NORM_EPS = 1e-5
# Every file an export directory holds (force=true replaces only directories of these).
EXPORT_FILES = {
    METADATA,
    "model.bin",
    "config.json",
    "shared_vocabulary.json",
    "source_vocabulary.json",
    "target_vocabulary.json",
    "spm.model",
    "spm.src.model",
    "spm.trg.model",
}


def unsupported(cfg: ModelConfig) -> list[str]:
    """The settings of ``cfg`` a CTranslate2 ``TransformerSpec`` cannot express (empty: exportable)."""
    reasons = []
    if str(cfg.encoder) != "transformer":
        reasons.append(f"model.encoder={cfg.encoder}")
    if str(cfg.decoder) != "transformer":
        reasons.append(f"model.decoder={cfg.decoder}")
        if str(cfg.attention) != "dot":
            reasons.append(f"model.attention={cfg.attention}")
    if cfg.emb_dim != cfg.hidden_size:
        reasons.append(f"model.emb_dim={cfg.emb_dim} != model.hidden_size={cfg.hidden_size} (input projections)")
    return reasons


def check_exportable(cfg: ModelConfig, source: str = "the model") -> None:
    """A one-line :class:`ExportError` naming what is unsupported, if anything is."""
    reasons = unsupported(cfg)
    if reasons:
        raise ExportError(
            f"cannot export {source} to CTranslate2: unsupported {', '.join(reasons)} "
            "(the export needs a Transformer encoder and decoder with emb_dim == hidden_size)"
        )


def _np(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _linear(spec: Any, *layers: nn.Linear) -> None:
    """Set a ``LinearSpec`` to ``layers`` stacked along their outputs (fused projections)."""
    spec.weight = np.concatenate([_np(layer.weight) for layer in layers])
    if all(layer.bias is not None for layer in layers):
        spec.bias = np.concatenate([_np(layer.bias) for layer in layers])


def _norm(spec: Any, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _np(norm.weight), _np(norm.bias)


def _inputs(spec: Any, embedding: nn.Embedding, positions: Tensor) -> None:
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = _np(embedding.weight)
    spec.scale_embeddings = True  # x sqrt(d), d = embedding size = model size
    spec.position_encodings.encodings = _np(positions)


def _ffn(spec: Any, norm: nn.LayerNorm, feed_forward: nn.Sequential) -> None:
    _norm(spec.layer_norm, norm)
    _linear(spec.linear_0, feed_forward[0])
    _linear(spec.linear_1, feed_forward[3])


def transformer_spec(model: Seq2Seq, tokenizers: Tokenizers) -> Any:
    """CTranslate2's ``TransformerSpec`` of ``model``, weights and vocabularies set (not yet validated)."""
    from ctranslate2.specs import common_spec, transformer_spec

    encoder, decoder = model.encoder, model.decoder
    heads = encoder.layers[0].self_attn.heads
    spec = transformer_spec.TransformerSpec.from_config(
        (len(encoder.layers), len(decoder.layers)),
        heads,
        pre_norm=True,
        activation=common_spec.Activation.RELU,
        alignment_layer=-1,
        alignment_heads=0,  # 0: all heads, averaged
    )
    positions = PositionalEncoding(encoder.output_size, MAX_POSITIONS).table
    _inputs(spec.encoder, model.src_embed, positions)
    _norm(spec.encoder.layer_norm, encoder.norm)
    for layer_spec, layer in zip(spec.encoder.layer, encoder.layers):
        _norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.query, layer.self_attn.key_value)
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.out)
        _ffn(layer_spec.ffn, layer.norm2, layer.feed_forward)
    _inputs(spec.decoder, decoder.embed, positions)
    _norm(spec.decoder.layer_norm, decoder.norm)
    _linear(spec.decoder.projection, decoder.output)
    for layer_spec, layer in zip(spec.decoder.layer, decoder.layers):
        _norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.query, layer.self_attn.key_value)
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.out)
        _norm(layer_spec.attention.layer_norm, layer.norm2)
        _linear(layer_spec.attention.linear[0], layer.cross_attn.query)
        _linear(layer_spec.attention.linear[1], layer.cross_attn.key_value)
        _linear(layer_spec.attention.linear[2], layer.cross_attn.out)
        _ffn(layer_spec.ffn, layer.norm3, layer.feed_forward)
    _vocabularies(spec, tokenizers)
    return spec


def _vocabularies(spec: Any, tokenizers: Tokenizers) -> None:
    """Register the sentencepiece pieces (id order) and name our special tokens."""

    def pieces(tokenizer: Tokenizer) -> list[str]:
        return [tokenizer.sp.id_to_piece(i) for i in range(len(tokenizer))]

    spec.register_source_vocabulary(pieces(tokenizers.src))
    spec.register_target_vocabulary(pieces(tokenizers.trg))
    sp = tokenizers.trg.sp
    spec.config.unk_token = sp.id_to_piece(UNK)
    spec.config.bos_token = spec.config.decoder_start_token = sp.id_to_piece(BOS)
    spec.config.eos_token = sp.id_to_piece(EOS)
    spec.config.layer_norm_epsilon = LAYER_NORM_EPS


def export_ctranslate2(checkpoint: str | Path, output: str | Path, force: bool = False) -> Path:
    """Write the CTranslate2 model of ``checkpoint`` to the directory ``output``; returns it."""
    output = Path(output)
    check_distinct_outputs({"output": output}, {"checkpoint": checkpoint})
    _check_output(output, force)
    model, tokenizers, cfg, payload = load_model(checkpoint, "cpu")
    check_exportable(cfg.model, str(checkpoint))
    spec = _build_spec(model, tokenizers)
    parent = output.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: the export follows the umask like any output
        spec.save(str(tmp))
        step = payload.get("progress", {}).get("step")
        _write_extras(tmp, tokenizers, cfg, str(checkpoint), step if type(step) is int else None)
        if output.exists():  # force=true and an earlier export (checked above)
            shutil.rmtree(output)
        os.replace(tmp, output)
    except OSError as err:
        raise ExportError(f"{output}: cannot write the export: {err.strerror or err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _build_spec(model: Seq2Seq, tokenizers: Tokenizers) -> Any:
    spec = transformer_spec(model, tokenizers)
    try:
        spec.validate()
    except ValueError as err:
        raise ExportError(f"CTranslate2 rejected the model specification: {err}") from None
    spec.optimize(quantization=None)
    return spec


def _check_output(output: Path, force: bool) -> None:
    """``output`` must be new, empty, or (with force) an earlier export holding only export files."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"output={output} is a file; give a directory to create")
    if output.is_dir() and any(output.iterdir()):
        names = {p.name for p in output.iterdir()}
        if not force:
            raise ExportError(f"output={output} exists and is not empty (add force=true to replace an earlier export)")
        if METADATA not in names or not names <= EXPORT_FILES:
            raise ExportError(f"output={output} holds files seq2seq-export did not write; refusing to replace it")


def _write_extras(directory: Path, tokenizers: Tokenizers, cfg: TrainRunConfig, source: str, step: Any) -> None:
    """The sentencepiece model(s) and ``seq2seq.json`` beside CTranslate2's files."""
    names = {"src": "spm.model"} if tokenizers.joint else {"src": "spm.src.model", "trg": "spm.trg.model"}
    for side, name in names.items():
        (directory / name).write_bytes(getattr(tokenizers, side).proto)
    metadata = {
        "format": FORMAT_VERSION,
        "engine": "ctranslate2",
        "checkpoint": source,
        "step": step,
        "tokenizers": names,
        "max_positions": MAX_POSITIONS,
        "config": to_container(cfg),
    }
    (directory / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def run_export(cfg: ExportConfig) -> Path:
    """``seq2seq-export``: check the format, export, say where."""
    if str(cfg.format) == "shortlist":
        return export_shortlist(cfg)
    if str(cfg.format) != "ctranslate2":
        raise ExportError(f"format={cfg.format}: only ctranslate2 and shortlist are supported")
    _require_ctranslate2()
    path = export_ctranslate2(cfg.checkpoint, cfg.output, cfg.force)
    print(f"exported {cfg.checkpoint} to {path} (CTranslate2; translate with engine=ctranslate2 checkpoint={path})")
    return path


def export_shortlist(cfg: ExportConfig) -> Path:
    """A vocabulary shortlist (:mod:`seq2seq.decode.shortlist`) built from the training split the
    checkpoint was trained on (its data config; ``data_root`` where the files are now)."""
    output = Path(cfg.output)
    check_distinct_outputs({"output": output}, {"checkpoint": cfg.checkpoint})
    if output.is_dir():
        raise ExportError(f"output={output} is a directory; format=shortlist writes one file")
    if output.exists() and not cfg.force:
        raise ExportError(f"output={output} exists (add force=true to replace it)")
    _, tokenizers, trained, _ = load_model(cfg.checkpoint, "cpu")
    data = replace(trained.data, subword_alpha=0.0)  # the deterministic segmentation
    if cfg.data_root:
        data = replace(data, root=cfg.data_root)
    for path in _corpus_files(data):
        check_distinct_outputs({"output": output}, {"corpus": path})
    train = encode_split(load_split(data, "train"), tokenizers, data.num_proc)
    shortlist = build_shortlist(
        _column(train, "src_ids"),
        _column(train, "trg_ids"),
        len(tokenizers.src),
        len(tokenizers.trg),
        cfg.per_source,
        cfg.frequent,
        tokenizer_digest(tokenizers),
    )
    meta = {"checkpoint": str(cfg.checkpoint), "pairs": len(train), "per_source": cfg.per_source}
    shortlist.save(output, {**meta, "frequent": cfg.frequent})
    print(
        f"wrote a shortlist of {cfg.checkpoint} to {output} ({len(train)} training pairs, {cfg.per_source} "
        f"target ids per source id, {cfg.frequent} frequent ones; translate with shortlist={output})"
    )
    return output


def _corpus_files(data: DataConfig) -> list[Path]:
    """The local training files ``data`` names (none for the toy task and hub datasets)."""
    if not data.root or str(data.name) in (str(TaskName.toy_reverse), str(TaskName.hub)):
        return []
    return find_files(data, "train")[1]


def _column(dataset: Any, name: str) -> Iterator[list[int]]:
    """The rows of one column, read 10,000 at a time (a big corpus is not all in memory at once)."""
    for batch in dataset.select_columns([name]).iter(batch_size=10_000):
        yield from batch[name]


def _require_ctranslate2() -> None:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        raise ExportError('ctranslate2 is not installed: pip install -e ".[ctranslate2]"') from None
