"""Issue 12: the FLOP count of tiny models equals a hand count; the peak and padding helpers."""

from __future__ import annotations

import pytest
import torch

from seq2seq.bench.flops import flop_model, matmul_peak, padding_fraction
from tests.conftest import tiny_model

D, FF, V = 16, 32, 23  # tiny_model_config: width 16, feed-forward 32, 2 + 2 layers; vocabulary 23


def gru(inputs: int, hidden: int) -> int:
    """Weights and biases of one GRU direction/cell: 3 gates of (W_i, W_h, b_i, b_h)."""
    return 3 * hidden * (inputs + hidden) + 6 * hidden


def test_transformer_flops_equal_a_hand_count():
    fm = flop_model(tiny_model("transformer", "dot", "transformer", vocab=V))
    norm = 2 * D  # gain and bias
    attention = (D * D + D) + (2 * D * D + 2 * D) + (D * D + D)  # query, key_value, out
    key_value = 2 * D * D + 2 * D  # cross-attention keys/values run on source tokens
    ffn = (D * FF + FF) + (FF * D + D)
    encoder_layer = 2 * norm + attention + ffn
    decoder_layer = 3 * norm + attention + (attention - key_value) + ffn
    assert fm.source_params == 2 * encoder_layer + norm + 2 * key_value
    assert fm.target_params == 2 * decoder_layer + norm + V * D  # tied output layer: V x D
    assert fm.sentence_params == 0
    assert fm.cross_pair == fm.decoder_pair == fm.encoder_pair == 2 * 12 * D  # 2 layers, 12 d per pair
    # Two sentence pairs, (S, T) = (5, 3) and (2, 4).
    expected = (
        6 * (fm.source_params * 7 + fm.target_params * 7)
        + fm.cross_pair * (5 * 3 + 2 * 4)
        + fm.encoder_pair * (25 + 4)
        + fm.decoder_pair * (9 + 16)
    )
    assert fm.training_flops([5, 2], [3, 4]) == expected


def test_rnn_bahdanau_flops_equal_a_hand_count():
    fm = flop_model(tiny_model("rnn", "bahdanau", "rnn", vocab=V))
    attention_dim, encoder_size = 12, 2 * D  # bidirectional encoder
    encoder = 2 * gru(D, D) + 2 * gru(2 * D, D)  # 2 bidirectional layers
    assert fm.source_params == encoder + encoder_size * attention_dim  # + Bahdanau's U k
    cells = gru(D + D, D) + gru(D, D)  # input feeding: [embedding; previous attentional vector]
    combine = (D + encoder_size) * D + D
    assert fm.target_params == D * attention_dim + cells + combine + V * D  # W q, cells, W_c, tied output
    assert fm.sentence_params == encoder_size * 2 * D + 2 * D  # the bridge, once per sentence
    assert fm.cross_pair == 6 * (attention_dim + encoder_size)  # v^T tanh(.) and the context, fwd + bwd
    assert fm.encoder_pair == fm.decoder_pair == 0
    assert fm.training_flops([4], [6]) == 6 * (fm.source_params * 4 + fm.target_params * 6 + fm.sentence_params) + (
        fm.cross_pair * 24
    )


def test_decoding_flops_are_a_third_of_training_flops_for_one_forward_pass():
    fm = flop_model(tiny_model("rnn", "dot", "rnn", vocab=V))
    # Greedy decoding of one sentence: the forward pass of training on the same lengths.
    assert fm.decoding_flops(5, 7, beam_size=1) * 3 == pytest.approx(fm.training_flops([5], [7]))
    # k hypotheses cost k times the per-output part; the encoder runs once.
    encoder_only = fm.decoding_flops(5, 0)
    assert fm.decoding_flops(5, 7, 4) - encoder_only == pytest.approx(4 * (fm.decoding_flops(5, 7) - encoder_only))


def test_peak_and_padding_helpers():
    for precision in ("fp32", "bf16", "int8"):
        assert matmul_peak(torch.device("cpu"), precision, size=64, repeats=2) > 0
    assert padding_fraction(30, 40) == 0.25
    assert padding_fraction(0, 0) == 0.0
