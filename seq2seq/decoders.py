"""Decoders: one ``step()`` shared by teacher forcing, greedy and beam search.

Every decoder has::

    state = decoder.init_state(encoder_out)                    # N = B hypotheses
    logits, state, attention = decoder.step(prev_tokens, state, encoder_out)
    logits, attention = decoder(trg_in, encoder_out)          # teacher forcing

with ``prev_tokens (N,)``, ``logits (N, V)`` and ``attention (N, layers, heads, S)``. During beam
search ``N = B * k``: the ``k`` hypotheses of source sentence ``b`` are rows ``b*k .. b*k+k-1``.
States are typed dataclasses with ``reorder(index, sources)``.

:class:`RNNDecoder` is the attentional RNN decoder of Luong et al. (2015), section 3.1, with
input feeding (section 3.3) and a Bahdanau or dot-product score (see :mod:`seq2seq.attention`)::

    h_t  = RNN([E y_{t-1}; h~_{t-1}], h_{t-1})
    c_t  = sum_s a_ts m_s,   a_t = softmax_s(score(h_t, m_s))
    h~_t = tanh(W_c [h_t; c_t])                (the attentional vector, fed to the next step)
    p(y_t | y_<t, x) = softmax(W_o h~_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seq2seq.attention import Attention
from seq2seq.encoders import EncoderOutput


class Decoder(nn.Module):
    """Base class: teacher forcing runs :meth:`step` over the target (override for parallel decoders)."""

    embed: nn.Embedding

    def init_state(self, encoder_out: EncoderOutput):  # -> a state dataclass
        raise NotImplementedError

    def step(self, prev_tokens: Tensor, state, encoder_out: EncoderOutput) -> tuple[Tensor, object, Tensor]:
        raise NotImplementedError

    def forward(self, trg_in: Tensor, encoder_out: EncoderOutput) -> tuple[Tensor, Tensor]:
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
        self.dropout = nn.Dropout(dropout)
        self.emb_dropout = nn.Dropout(emb_dropout)

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
        self, prev_tokens: Tensor, state: RNNDecoderState, encoder_out: EncoderOutput
    ) -> tuple[Tensor, RNNDecoderState, Tensor]:
        """``prev_tokens (N,)`` -> ``logits (N, V)``, new state, ``attention (N, 1, 1, S)``."""
        n = prev_tokens.size(0)
        b = state.keys.size(0)
        x = torch.cat([self.emb_dropout(self.embed(prev_tokens)), state.feed], dim=-1)  # (N, E + H)
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
        context, weights = self.attention(query, state.keys, encoder_out.states, encoder_out.mask)
        context = context.reshape(n, -1)  # (N, Henc)
        feed = self.dropout(torch.tanh(self.combine(torch.cat([h, context], dim=-1))))  # (N, H)
        new_state = RNNDecoderState(torch.stack(hiddens), torch.stack(cells) if self.lstm else None, feed, state.keys)
        return self.output(feed), new_state, weights.reshape(n, 1, 1, -1)
