"""The encoder-decoder model, built by composition from plain factories."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from seq2seq.config.schema import ModelConfig
from seq2seq.config.special_ids import PAD
from seq2seq.config.values import check_model
from seq2seq.model.attention import Attention, BahdanauAttention, DotProductAttention
from seq2seq.model.decoders import Decoder, RNNDecoder, TransformerDecoder
from seq2seq.model.embeddings import build_embedding
from seq2seq.model.encoders import EncoderOutput, RNNEncoder, TransformerEncoder
from seq2seq.utils.errors import ConfigError


class Seq2Seq(nn.Module):
    """``Seq2Seq(src_embed, encoder, decoder)``; the decoder owns the target embeddings."""

    def __init__(self, src_embed: nn.Embedding, encoder: nn.Module, decoder: Decoder) -> None:
        super().__init__()
        self.src_embed = src_embed
        self.encoder = encoder
        self.decoder = decoder

    def encode(
        self, src: Tensor, src_lengths: Tensor, need_weights: bool = False, src_mask: Tensor | None = None
    ) -> EncoderOutput:
        """``src (B, S)`` ids and ``src_lengths (B,)`` -> :class:`EncoderOutput`; ``src_mask (B, S)``
        is True on real tokens (``Batch.src_mask``; derived from ``src`` when not given)."""
        mask = src_mask if src_mask is not None else src != PAD
        return self.encoder(self.src_embed(src), mask, src_lengths, need_weights)

    def decode(
        self, trg_in: Tensor, encoder_out: EncoderOutput, need_attention: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: ``logits (B, T, V)`` and ``attention (B, T, layers, heads, S)``."""
        return self.decoder(trg_in, encoder_out, need_attention)

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        trg_in: Tensor,
        return_attention: bool = False,
        src_mask: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        encoder_out = self.encode(src, src_lengths, src_mask=src_mask)
        logits, attention = self.decode(trg_in, encoder_out, return_attention)
        return (logits, attention) if return_attention else logits


def _rnn_encoder(cfg: ModelConfig) -> RNNEncoder:
    return RNNEncoder(
        cfg.emb_dim,
        cfg.hidden_size,
        cfg.enc_layers,
        str(cfg.rnn_type),
        cfg.bidirectional,
        cfg.dropout,
        cfg.emb_dropout,
    )


def _transformer_encoder(cfg: ModelConfig) -> TransformerEncoder:
    return TransformerEncoder(
        cfg.emb_dim,
        cfg.hidden_size,
        cfg.enc_layers,
        cfg.heads,
        cfg.ff_size,
        cfg.dropout,
        cfg.attention_dropout,
        cfg.emb_dropout,
    )


def _bahdanau(cfg: ModelConfig, query_size: int, key_size: int) -> Attention:
    return BahdanauAttention(query_size, key_size, cfg.attention_dim)


def _dot(cfg: ModelConfig, query_size: int, key_size: int) -> Attention:
    if not cfg.attention_general and query_size != key_size:
        raise ConfigError(
            f"model.attention=dot without model.attention_general=true needs encoder output size "
            f"({key_size}) == decoder hidden size ({query_size}); set model.attention_general=true"
        )
    return DotProductAttention(query_size, key_size, cfg.attention_scale, cfg.attention_general)


ENCODERS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "rnn": _rnn_encoder,
    "transformer": _transformer_encoder,
}
ATTENTIONS: dict[str, Callable[[ModelConfig, int, int], Attention]] = {
    "bahdanau": _bahdanau,
    "dot": _dot,
}


def _rnn_decoder(cfg: ModelConfig, embed: nn.Embedding, encoder_size: int) -> Decoder:
    attention = ATTENTIONS[cfg.attention](cfg, cfg.hidden_size, encoder_size)
    return RNNDecoder(
        embed,
        attention,
        encoder_size,
        cfg.hidden_size,
        cfg.dec_layers,
        str(cfg.rnn_type),
        cfg.dropout,
        cfg.emb_dropout,
        str(cfg.init_hidden),
        cfg.tie_embeddings,
    )


def _transformer_decoder(cfg: ModelConfig, embed: nn.Embedding, encoder_size: int) -> Decoder:
    return TransformerDecoder(
        embed,
        encoder_size,
        cfg.hidden_size,
        cfg.dec_layers,
        cfg.heads,
        cfg.ff_size,
        cfg.dropout,
        cfg.attention_dropout,
        cfg.emb_dropout,
        cfg.tie_embeddings,
    )


DECODERS: dict[str, Callable[[ModelConfig, nn.Embedding, int], Decoder]] = {
    "rnn": _rnn_decoder,
    "transformer": _transformer_decoder,
}


def build_model(cfg: ModelConfig, src_vocab: int, trg_vocab: int) -> Seq2Seq:
    """Build the model ``cfg`` describes for the given vocabulary sizes."""
    check_model(cfg, src_vocab, trg_vocab)
    src_embed = build_embedding(src_vocab, cfg.emb_dim)
    trg_embed = src_embed if cfg.share_embeddings else build_embedding(trg_vocab, cfg.emb_dim)
    encoder = ENCODERS[cfg.encoder](cfg)
    decoder = DECODERS[cfg.decoder](cfg, trg_embed, encoder.output_size)
    return Seq2Seq(src_embed, encoder, decoder)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
