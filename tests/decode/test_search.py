"""Greedy and beam search: exact results on a scripted stub decoder, and invariants on real models."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from seq2seq.data.tokenizer import BOS, EOS
from seq2seq.decode.search import beam_search, greedy_search, length_penalty
from tests.conftest import attention_shape, padded_batch, tiny_model

A, B_ = 4, 5  # the stub's two words
V = 6


@dataclass
class StubEncoderOutput:
    sentence: torch.Tensor  # (B,) which script each source row follows
    mask: torch.Tensor

    def select(self, index):
        return StubEncoderOutput(self.sentence[index], self.mask[index])


@dataclass
class StubState:
    sentence: torch.Tensor  # (N,)
    prefix: torch.Tensor  # (N, t)

    def reorder(self, index, sources=None):
        return StubState(self.sentence[index], self.prefix[index])


class StubDecoder:
    """Next-token probabilities scripted per (sentence, prefix); unscripted prefixes end."""

    def __init__(self, scripts):
        self.scripts = scripts

    def init_state(self, enc):
        return StubState(enc.sentence, torch.zeros(len(enc.sentence), 0, dtype=torch.long))

    def step(self, prev, state, enc):
        if state.prefix.size(1) > 0 or not (prev == BOS).all():
            prefix = torch.cat([state.prefix, prev.unsqueeze(1)], dim=1)
        else:
            prefix = state.prefix
        probs = torch.full((len(prev), V), 1e-9)
        for row, (sentence, words) in enumerate(zip(state.sentence.tolist(), prefix.tolist())):
            script = self.scripts[sentence].get(tuple(words), {EOS: 1.0})
            for token, p in script.items():
                probs[row, token] = p
        attention = torch.ones(len(prev), 1, 1, enc.mask.size(1)) / enc.mask.size(1)
        return probs.log(), StubState(state.sentence, prefix), attention


class StubModel:
    def __init__(self, scripts):
        self.decoder = StubDecoder(scripts)

    def encode(self, src, src_lengths):
        return StubEncoderOutput(src[:, 0].clone(), torch.ones_like(src, dtype=torch.bool))


# Sentence 0: greedy takes "a a" (0.6 * 0.4 = 0.24); beam search finds "b" (0.4 * 0.9 = 0.36).
SCRIPT_0 = {
    (): {A: 0.6, B_: 0.4},
    (A,): {A: 0.4, B_: 0.3, EOS: 0.3},
    (B_,): {EOS: 0.9, A: 0.05, B_: 0.05},
}
# Sentence 1: a single path "b b a".
SCRIPT_1 = {(): {B_: 1.0}, (B_,): {B_: 1.0}, (B_, B_): {A: 1.0}}
# Sentence 2: never ends by itself.
SCRIPT_2 = {(): {A: 1.0}, **{(A,) * n: {A: 0.99, EOS: 0.01} for n in range(1, 50)}}
STUB = StubModel({0: SCRIPT_0, 1: SCRIPT_1, 2: SCRIPT_2})


def stub_src(*sentences):
    return torch.tensor([[s, EOS] for s in sentences]), torch.tensor([2] * len(sentences))


def limits(n, value=20):
    return torch.full((n,), value)


def test_greedy_on_stub():
    src, lengths = stub_src(0, 1)
    out = greedy_search(STUB, src, lengths, limits(2))
    assert [h[0].tokens for h in out] == [[A, A], [B_, B_, A]]
    assert out[0][0].score == pytest.approx(math.log(0.24), abs=1e-5)


def test_beam_finds_the_better_hypothesis_and_orders_the_n_best():
    src, lengths = stub_src(0)
    (hyps,) = beam_search(STUB, src, lengths, limits(1), beam_size=2, n_best=2, alpha=0.0)
    assert [h.tokens for h in hyps] == [[B_], [A, A]]
    assert [h.score for h in hyps] == pytest.approx([math.log(0.36), math.log(0.24)], abs=1e-5)


def test_length_penalty_changes_the_winner():
    src, lengths = stub_src(0)
    (hyps,) = beam_search(STUB, src, lengths, limits(1), beam_size=2, n_best=2, alpha=5.0)
    assert [h.tokens for h in hyps] == [[A, A], [B_]]
    assert hyps[0].score == pytest.approx(math.log(0.24) / length_penalty(3, 5.0), abs=1e-5)
    assert hyps[1].score == pytest.approx(math.log(0.36) / length_penalty(2, 5.0), abs=1e-5)


def test_length_cap_forces_the_end():
    src, lengths = stub_src(2)
    (greedy,) = greedy_search(STUB, src, lengths, limits(1, 7))
    (beam1,) = beam_search(STUB, src, lengths, limits(1, 7), beam_size=1, alpha=0.0)
    assert greedy[0].tokens == beam1[0].tokens == [A] * 6  # 6 words + the forced </s> = 7
    # The forced </s> still costs log p(</s>) = log 0.01, so the wider beam prefers stopping early.
    (beam,) = beam_search(STUB, src, lengths, limits(1, 7), beam_size=3, n_best=3, alpha=0.0)
    assert beam[0].tokens == [A] and beam[0].score == pytest.approx(math.log(0.01), abs=1e-5)
    assert all(len(h.tokens) <= 6 for h in beam)


def test_batched_beam_equals_one_by_one_and_done_sentences_leave():
    src, lengths = stub_src(2, 0, 1, 0)
    caps = torch.tensor([9, 20, 20, 20])
    together = beam_search(STUB, src, lengths, caps, beam_size=3, n_best=2, alpha=1.0)
    for i in range(4):
        alone = beam_search(STUB, src[i : i + 1], lengths[i : i + 1], caps[i : i + 1], beam_size=3, n_best=2)
        assert [h.tokens for h in together[i]] == [h.tokens for h in alone[0]]
        assert [h.score for h in together[i]] == pytest.approx([h.score for h in alone[0]])


def test_n_best_cannot_exceed_beam():
    """Checked once, where settings enter (config.values.check_decode), not again in the search."""
    from seq2seq.config.schema import DecodeConfig
    from seq2seq.config.values import check_decode
    from seq2seq.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="n_best=3 must be between 1 and beam_size=2"):
        check_decode(DecodeConfig(beam_size=2, n_best=3))


def test_attention_history_follows_the_chosen_beam(architecture):
    model = tiny_model(*architecture)
    src, lengths = padded_batch([6, 4, 3])
    caps = torch.tensor([8, 8, 8])
    results = beam_search(model, src, lengths, caps, beam_size=3, n_best=3, return_attention=True)
    layers, heads = attention_shape(model)
    for i, hyps in enumerate(results):
        for h in hyps:
            assert h.attention.shape == (len(h.tokens) + 1, layers, heads, int(lengths[i]))
            torch.testing.assert_close(h.attention.sum(-1), torch.ones(len(h.tokens) + 1, layers, heads))
    # Teacher-forcing the chosen output reproduces its attention rows and score exactly.
    h = results[0][0]
    trg = torch.tensor([[BOS, *h.tokens]])
    with torch.no_grad():
        logits, attention = model(src[:1, :6], lengths[:1], trg, return_attention=True)
    torch.testing.assert_close(attention[0], h.attention, atol=1e-5, rtol=1e-4)
    log_probs = torch.log_softmax(logits[0], -1)
    raw = sum(log_probs[t, tok] for t, tok in enumerate([*h.tokens, EOS]))
    assert h.score == pytest.approx(float(raw) / length_penalty(len(h.tokens) + 1, 1.0), abs=1e-4)


def test_beam_one_equals_greedy_on_real_models(architecture):
    model = tiny_model(*architecture, seed=3)
    src, lengths = padded_batch([7, 5, 5, 3, 2], seed=5)
    caps = torch.tensor([12, 9, 9, 6, 4])
    greedy = greedy_search(model, src, lengths, caps, return_attention=True)
    beam = beam_search(model, src, lengths, caps, beam_size=1, alpha=0.0, return_attention=True)
    for g, b in zip(greedy, beam):
        assert g[0].tokens == b[0].tokens
        assert g[0].score == pytest.approx(b[0].score, abs=1e-4)
        torch.testing.assert_close(g[0].attention, b[0].attention)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batched_decoding_equals_one_by_one_on_real_models(architecture, beam_size):
    model = tiny_model(*architecture, seed=2)
    src, lengths = padded_batch([7, 3, 6, 2], seed=7)
    caps = torch.tensor([10, 5, 9, 4])
    search = (lambda *a: greedy_search(*a)) if beam_size == 1 else (lambda *a: beam_search(*a, beam_size, 2))
    together = search(model, src, lengths, caps)
    for i in range(4):
        n = int(lengths[i])
        alone = search(model, src[i : i + 1, :n], lengths[i : i + 1], caps[i : i + 1])
        assert [h.tokens for h in together[i]] == [h.tokens for h in alone[0]]
        assert [h.score for h in together[i]] == pytest.approx([h.score for h in alone[0]], abs=1e-4)


# Sentence 3: ending at once is the most probable choice at every length.
SCRIPT_3 = {(): {EOS: 0.7, A: 0.2, B_: 0.1}, (A,): {EOS: 0.6, A: 0.4}, (A, A): {EOS: 1.0}, (B_,): {EOS: 1.0}}
STUB_EARLY_END = StubModel({3: SCRIPT_3})


@pytest.mark.parametrize(
    "min_length, tokens, probability",
    [(0, [], 0.7), (1, [A], 0.2 * 0.6), (2, [A, A], 0.2 * 0.4), (3, [A, A], None)],
)
def test_min_length_blocks_eos_exactly_until_the_minimum(min_length, tokens, probability):
    src, lengths = stub_src(3)
    (greedy,) = greedy_search(STUB_EARLY_END, src, lengths, limits(1), min_length=min_length)
    (beam1,) = beam_search(STUB_EARLY_END, src, lengths, limits(1), beam_size=1, alpha=0.0, min_length=min_length)
    (beam,) = beam_search(STUB_EARLY_END, src, lengths, limits(1), beam_size=3, alpha=0.0, min_length=min_length)
    for hyp in (greedy[0], beam1[0], beam[0]):
        assert hyp.tokens[: len(tokens)] == tokens and len(hyp.tokens) >= min_length
    if probability is not None:  # with 3, the third token is a tie among unscripted ones
        assert greedy[0].tokens == beam1[0].tokens == beam[0].tokens == tokens
        assert beam[0].score == pytest.approx(math.log(probability), abs=1e-4)


def test_min_length_n_best_has_no_short_hypothesis():
    src, lengths = stub_src(3)
    (hyps,) = beam_search(STUB_EARLY_END, src, lengths, limits(1), beam_size=3, n_best=3, alpha=0.0, min_length=1)
    assert [h.tokens for h in hyps] == [[A], [B_], [A, A]]


def test_length_cap_wins_over_min_length():
    src, lengths = stub_src(3)
    (greedy,) = greedy_search(STUB_EARLY_END, src, lengths, limits(1, 1), min_length=2)
    (beam,) = beam_search(STUB_EARLY_END, src, lengths, limits(1, 1), beam_size=2, min_length=2)
    assert greedy[0].tokens == beam[0].tokens == []
    assert greedy[0].score == pytest.approx(math.log(0.7), abs=1e-5)
