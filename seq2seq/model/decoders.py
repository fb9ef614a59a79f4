"""Decoders: one ``step()`` shared by teacher forcing, greedy and beam search.

Every decoder has::

    state = decoder.init_state(encoder_out)                    # N = B hypotheses
    logits, state, attention = decoder.step(prev_tokens, state, encoder_out)
    logits, attention = decoder(trg_in, encoder_out)          # teacher forcing

with ``prev_tokens (N,)``, ``logits (N, V)`` and ``attention (N, layers, heads, S)``. During beam
search ``N = B * k``: the ``k`` hypotheses of source sentence ``b`` are rows ``b*k .. b*k+k-1``.
States are typed dataclasses with ``reorder(index, sources)``.

:class:`RNNDecoder` is the attentional RNN decoder of Luong et al. (2015), section 3.1, with
input feeding (section 3.3) and a Bahdanau or dot-product score (see :mod:`seq2seq.model.attention`)::

    h_t  = RNN([E y_{t-1}; h~_{t-1}], h_{t-1})
    c_t  = sum_s a_ts m_s,   a_t = softmax_s(score(h_t, m_s))
    h~_t = tanh(W_c [h_t; c_t])                (the attentional vector, fed to the next step)
    p(y_t | y_<t, x) = softmax(W_o h~_t)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seq2seq.model.attention import Attention, MultiHeadAttention
from seq2seq.model.dropout import Dropout
from seq2seq.model.embeddings import PositionalEncoding, to_autocast_dtype
from seq2seq.model.encoders import EncoderOutput, feed_forward


class Decoder(nn.Module):
    """Base class: teacher forcing runs :meth:`step` over the target (override for parallel decoders)."""

    embed: nn.Embedding

    def init_state(self, encoder_out: EncoderOutput):  # -> a state dataclass
        raise NotImplementedError

    def step(
        self, prev_tokens: Tensor, state, encoder_out: EncoderOutput, output: nn.Module | None = None
    ) -> tuple[Tensor, object, Tensor]:
        """One step; ``output`` replaces the output layer (e.g. a vocabulary shortlist's rows)."""
        raise NotImplementedError

    def forward(
        self, trg_in: Tensor, encoder_out: EncoderOutput, need_attention: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """``trg_in (B, T)`` -> ``logits (B, T, V)``, ``attention (B, T, layers, heads, S)``."""
        state = self.init_state(encoder_out)
        logits, attention = [], []
        for t in range(trg_in.size(1)):
            step_logits, state, step_attention = self.step(trg_in[:, t], state, encoder_out)
            logits.append(step_logits)
            attention.append(step_attention)
        return torch.stack(logits, dim=1), torch.stack(attention, dim=1)


@dataclass
class RNNDecoderState:
    hidden: Tensor  # (L, N, H)
    cell: Tensor | None  # (L, N, H), LSTM only
    feed: Tensor  # (N, H) attentional vector of the previous step (input feeding)
    keys: Tensor  # (B, S, Dk) precomputed attention keys, one row per source sentence

    def reorder(self, index: Tensor, sources: Tensor | None = None) -> RNNDecoderState:
        """Keep hypothesis rows ``index (N',)``; with ``sources (B',)``, keep those source rows too."""
        return RNNDecoderState(
            self.hidden.index_select(1, index),
            None if self.cell is None else self.cell.index_select(1, index),
            self.feed.index_select(0, index),
            self.keys if sources is None else self.keys.index_select(0, sources),
        )


class RNNDecoder(Decoder):
    def __init__(
        self,
        embed: nn.Embedding,
        attention: Attention,
        encoder_size: int,
        hidden_size: int,
        num_layers: int = 1,
        rnn_type: str = "gru",
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
        init_hidden: str = "bridge",
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.embed = embed
        self.attention = attention
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = rnn_type == "lstm"
        cell = nn.LSTMCell if self.lstm else nn.GRUCell
        input_size = embed.embedding_dim + hidden_size
        self.cells = nn.ModuleList(cell(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers))
        self.bridge = nn.Linear(encoder_size, num_layers * hidden_size) if init_hidden == "bridge" else None
        self.combine = nn.Linear(hidden_size + encoder_size, hidden_size)
        self.output = nn.Linear(hidden_size, embed.num_embeddings, bias=False)
        if tie_embeddings:
            if embed.embedding_dim != hidden_size:
                raise ValueError(
                    f"tied embeddings need emb_dim == hidden_size, got {embed.embedding_dim} and {hidden_size}"
                )
            self.output.weight = embed.weight
        self.dropout = Dropout(dropout)
        self.emb_dropout = Dropout(emb_dropout)

    def init_state(self, encoder_out: EncoderOutput) -> RNNDecoderState:
        summary = encoder_out.summary  # (B, Henc)
        b = summary.size(0)
        if self.bridge is not None:
            hidden = torch.tanh(self.bridge(summary)).view(b, self.num_layers, self.hidden_size)
            hidden = hidden.transpose(0, 1).contiguous()  # (L, B, H)
        else:
            hidden = summary.new_zeros(self.num_layers, b, self.hidden_size)
        return RNNDecoderState(
            hidden=hidden,
            cell=torch.zeros_like(hidden) if self.lstm else None,
            feed=summary.new_zeros(b, self.hidden_size),
            keys=self.attention.prepare_keys(encoder_out.states),
        )

    def step(
        self,
        prev_tokens: Tensor,
        state: RNNDecoderState,
        encoder_out: EncoderOutput,
        output: nn.Module | None = None,
    ) -> tuple[Tensor, RNNDecoderState, Tensor]:
        """``prev_tokens (N,)`` -> ``logits (N, V)`` (``V``: ``output``'s size when given), new
        state, ``attention (N, 1, 1, S)``."""
        embedded = self.emb_dropout(self.embed(prev_tokens))  # (N, E)
        feed, state, weights = self.advance(embedded, state, encoder_out.states, encoder_out.mask)
        return (self.output if output is None else output)(feed), state, weights

    def advance(
        self, embedded: Tensor, state: RNNDecoderState, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, RNNDecoderState, Tensor]:
        """The recurrence of one step: ``embedded (N, E)`` of the previous tokens, encoder
        ``values (B, S, Henc)`` and ``mask (B, S)`` -> attentional vector ``feed (N, H)``, new
        state, ``attention (N, 1, 1, S)``. Shared by :meth:`step` and teacher forcing."""
        n = embedded.size(0)
        b = state.keys.size(0)
        x = torch.cat([embedded, state.feed], dim=-1)  # (N, E + H)
        hiddens, cells = [], []
        for i, rnn in enumerate(self.cells):
            if self.lstm:
                h, c = rnn(x, (state.hidden[i], state.cell[i]))
                cells.append(c)
            else:
                h = rnn(x, state.hidden[i])
            hiddens.append(h)
            x = self.dropout(h)
        # The k = N / B hypotheses of a sentence are k queries against its keys.
        query = h.view(b, n // b, -1)  # (B, k, H)
        context, weights = self.attention(query, state.keys, values, mask)
        context = context.reshape(n, -1)  # (N, Henc)
        feed = self.dropout(torch.tanh(self.combine(torch.cat([h, context], dim=-1))))  # (N, H)
        new_state = RNNDecoderState(torch.stack(hiddens), torch.stack(cells) if self.lstm else None, feed, state.keys)
        return feed, new_state, weights.reshape(n, 1, 1, -1)

    def forward(
        self, trg_in: Tensor, encoder_out: EncoderOutput, need_attention: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing, ``trg_in (B, T)`` -> ``logits (B, T, V)``, ``attention (B, T, 1, 1, S)``.

        The same recurrence as :meth:`step`, but the embedding and the output layer run once over
        all ``T`` positions (one large product and one gradient instead of ``T`` small ones), and
        under autocast the embeddings and encoder states are cast once instead of once per step.
        """
        state = self.init_state(encoder_out)
        embedded = to_autocast_dtype(self.emb_dropout(self.embed(trg_in)))  # (B, T, E)
        values = to_autocast_dtype(encoder_out.states)
        feeds, attention = [], []
        for step_embedded in embedded.unbind(1):  # unbind: one gradient stack, not T zero-filled copies
            feed, state, weights = self.advance(step_embedded, state, values, encoder_out.mask)
            feeds.append(feed)
            attention.append(weights)
        return self.output(torch.stack(feeds, dim=1)), torch.stack(attention, dim=1)


@dataclass
class TransformerDecoderState:
    """Key/value caches: self-attention per hypothesis, cross-attention per source sentence."""

    self_keys: list[Tensor]  # per layer (N, heads, t, d) keys of the t tokens decoded so far
    self_values: list[Tensor]
    cross_keys: list[Tensor]  # per layer (B, heads, S, d) projected encoder states
    cross_values: list[Tensor]
    position: int  # t, the position of the next token

    def reorder(self, index: Tensor, sources: Tensor | None = None) -> TransformerDecoderState:
        """Keep hypothesis rows ``index (N',)``; with ``sources (B',)``, keep those source rows too."""

        def pick(xs: list[Tensor], rows: Tensor | None) -> list[Tensor]:
            return xs if rows is None else [x.index_select(0, rows) for x in xs]

        return TransformerDecoderState(
            pick(self.self_keys, index),
            pick(self.self_values, index),
            pick(self.cross_keys, sources),
            pick(self.cross_values, sources),
            self.position,
        )


class TransformerDecoderLayer(nn.Module):
    """Pre-norm: masked self-attention, cross-attention over the encoder, feed-forward."""

    def __init__(self, size: int, heads: int, ff_size: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(size)
        self.self_attn = MultiHeadAttention(size, heads, attention_dropout)
        self.norm2 = nn.LayerNorm(size)
        self.cross_attn = MultiHeadAttention(size, heads, attention_dropout)
        self.norm3 = nn.LayerNorm(size)
        self.feed_forward = feed_forward(size, ff_size, dropout)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        cross_kv: tuple[Tensor, Tensor],
        cross_mask: Tensor,
        self_mask: Tensor | None = None,
        cache: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        """One layer over ``x (R, T, D)``.

        ``cross_kv`` are the projected encoder states ``(B, heads, S, d)``; when ``R = B * k``
        (beam search) the ``k`` rows of a sentence are grouped as ``k`` queries against them.
        ``cache`` holds the keys/values of earlier positions (incremental decoding). Returns the
        new ``x``, this layer's self-attention keys/values (cache included) and the
        cross-attention weights ``(B, heads, k*T, S)`` when asked for.
        """
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        attended, _ = self.self_attn.attend(h, k, v, self_mask)
        x = x + self.dropout(attended)
        b = cross_kv[0].size(0)
        h = self.norm2(x).reshape(b, -1, x.size(-1))  # (B, k*T, D)
        attended, weights = self.cross_attn.attend(h, *cross_kv, cross_mask, need_weights)
        x = x + self.dropout(attended.view_as(x))
        x = x + self.dropout(self.feed_forward(self.norm3(x)))
        return x, (k, v), weights


class TransformerDecoder(Decoder):
    """Transformer decoder (Vaswani et al., 2017, section 3.1) with pre-norm and incremental decoding.

    Teacher forcing runs all positions at once under a causal mask; ``step`` decodes one position
    per call, attending over a cache of the previous positions' keys and values, so a beam step
    costs one position, not the whole prefix. Encoder keys/values are projected once per source.
    """

    def __init__(
        self,
        embed: nn.Embedding,
        encoder_size: int,
        size: int,
        num_layers: int,
        heads: int,
        ff_size: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        emb_dropout: float = 0.1,
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.embed = embed
        self.input = nn.Linear(embed.embedding_dim, size) if embed.embedding_dim != size else nn.Identity()
        self.memory = nn.Linear(encoder_size, size) if encoder_size != size else nn.Identity()
        self.scale = math.sqrt(size)
        self.positions = PositionalEncoding(size)
        self.emb_dropout = Dropout(emb_dropout)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(size, heads, ff_size, dropout, attention_dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(size)
        self.output = nn.Linear(size, embed.num_embeddings, bias=False)
        if tie_embeddings:
            if embed.embedding_dim != size:
                raise ValueError(f"tied embeddings need emb_dim == model size, got {embed.embedding_dim} and {size}")
            self.output.weight = embed.weight

    def _inputs(self, tokens: Tensor, start: int) -> Tensor:
        """``tokens (R, T)`` -> scaled embeddings plus the encodings of positions ``start..start+T-1``,
        in the autocast dtype under autocast (the residual stream, as the encoder's)."""
        return to_autocast_dtype(self.emb_dropout(self.positions(self.input(self.embed(tokens)) * self.scale, start)))

    def _cross(self, encoder_out: EncoderOutput) -> list[tuple[Tensor, Tensor]]:
        memory = self.memory(encoder_out.states)
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def init_state(self, encoder_out: EncoderOutput) -> TransformerDecoderState:
        cross = self._cross(encoder_out)
        b, heads, _, d = cross[0][0].shape
        empty = cross[0][0].new_zeros(b, heads, 0, d)
        n = len(self.layers)
        return TransformerDecoderState(
            [empty] * n, [empty] * n, [k for k, _ in cross], [v for _, v in cross], position=0
        )

    def step(
        self,
        prev_tokens: Tensor,
        state: TransformerDecoderState,
        encoder_out: EncoderOutput,
        output: nn.Module | None = None,
    ) -> tuple[Tensor, TransformerDecoderState, Tensor]:
        """``prev_tokens (N,)`` -> ``logits (N, V)`` (``V``: ``output``'s size when given), new
        state, ``attention (N, layers, heads, S)``."""
        n = prev_tokens.size(0)
        x = self._inputs(prev_tokens.unsqueeze(1), state.position)  # (N, 1, D)
        cross_mask = encoder_out.mask[:, None, None, :]  # (B, 1, 1, S)
        keys, values, weights = [], [], []
        for i, layer in enumerate(self.layers):
            cross = (state.cross_keys[i], state.cross_values[i])
            cache = (state.self_keys[i], state.self_values[i])
            x, (k, v), w = layer(x, cross, cross_mask, cache=cache, need_weights=True)
            keys.append(k)
            values.append(v)
            weights.append(w.transpose(1, 2).reshape(n, w.size(1), -1))  # (B, H, k, S) -> (N, H, S)
        logits = (self.output if output is None else output)(self.norm(x)).squeeze(1)
        new_state = TransformerDecoderState(keys, values, state.cross_keys, state.cross_values, state.position + 1)
        return logits, new_state, torch.stack(weights, dim=1)

    def forward(
        self, trg_in: Tensor, encoder_out: EncoderOutput, need_attention: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing, all positions at once under a causal mask.

        Returns ``logits (B, T, V)`` and ``attention (B, T, layers, heads, S)`` (None unless asked).
        """
        t = trg_in.size(1)
        x = self._inputs(trg_in, 0)
        causal = torch.ones(t, t, dtype=torch.bool, device=trg_in.device).tril()[None, None]  # (1, 1, T, T)
        cross_mask = encoder_out.mask[:, None, None, :]
        weights = []
        for layer, cross in zip(self.layers, self._cross(encoder_out)):
            x, _, w = layer(x, cross, cross_mask, self_mask=causal, need_weights=need_attention)
            weights.append(w)
        logits = self.output(self.norm(x))
        if not need_attention:
            return logits, None
        return logits, torch.stack(weights, dim=1).permute(0, 3, 1, 2, 4)  # (B, L, H, T, S) -> (B, T, L, H, S)
