"""Encoder/decoder/model invariants, parametrised over {rnn, transformer} x {bahdanau, dot}."""

import pytest
import torch
import torch.nn.functional as F

from seq2seq.data.tokenizer import BOS, PAD
from seq2seq.model.seq2seq import build_model
from seq2seq.utils.errors import ConfigError
from tests.conftest import attention_shape, padded_batch, tiny_model, tiny_model_config

V = 23


def test_shapes(architecture):
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([5, 3, 2])
    trg = torch.randint(4, V, (3, 4))
    logits, attention = model(src, lengths, trg, return_attention=True)
    assert logits.shape == (3, 4, V)
    assert attention.shape == (3, 4, *attention_shape(model), 5)
    enc = model.encode(src, lengths)
    assert enc.states.shape[:2] == (3, 5)
    assert enc.summary.shape[0] == 3


def test_attention_sums_to_one_and_ignores_padding(architecture):
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([5, 3, 2])
    _, attention = model(src, lengths, torch.randint(4, V, (3, 4)), return_attention=True)
    layers, heads = attention_shape(model)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4, layers, heads))  # every head, every layer
    padding = ~(src != PAD)[:, None, None, None, :].expand_as(attention)
    assert (attention.masked_select(padding) == 0).all()


def test_padding_does_not_change_outputs(architecture):
    """A sentence decoded alone equals the same sentence inside a padded batch."""
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([6, 3, 4])
    trg = torch.randint(4, V, (3, 5))
    batched = model(src, lengths, trg)
    for i in range(3):
        n = int(lengths[i])
        alone = model(src[i : i + 1, :n], lengths[i : i + 1], trg[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-4)


def test_teacher_forcing_equals_step_by_step(architecture):
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([5, 4])
    trg = torch.cat([torch.full((2, 1), BOS), torch.randint(4, V, (2, 5))], dim=1)
    logits, attention = model(src, lengths, trg, return_attention=True)
    enc = model.encode(src, lengths)
    state = model.decoder.init_state(enc)
    for t in range(trg.size(1)):
        step_logits, state, step_attention = model.decoder.step(trg[:, t], state, enc)
        torch.testing.assert_close(step_logits, logits[:, t])
        torch.testing.assert_close(step_attention, attention[:, t])


def test_grouped_hypotheses_equal_expanded_sources(architecture):
    """k hypotheses per sentence against shared keys == each hypothesis with its own copy."""
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([5, 3])
    k = 3
    enc = model.encode(src, lengths)
    state = model.decoder.init_state(enc)
    grouped = state.reorder(torch.arange(2).repeat_interleave(k))  # N = 2k rows, keys stay (2, S)
    prev = torch.randint(4, V, (2 * k,))
    logits_g, _, att_g = model.decoder.step(prev, grouped, enc)
    rep = torch.arange(2).repeat_interleave(k)
    enc_rep = enc.select(rep)
    state_rep = model.decoder.init_state(enc_rep)
    logits_r, _, att_r = model.decoder.step(prev, state_rep, enc_rep)
    torch.testing.assert_close(logits_g, logits_r, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(att_g, att_r, atol=1e-6, rtol=1e-5)


def test_every_parameter_gets_a_finite_gradient(architecture):
    model = tiny_model(*architecture, vocab=V).train()
    src, lengths = padded_batch([5, 3, 4])
    trg = torch.randint(4, V, (3, 4))
    logits = model(src, lengths, trg)
    F.cross_entropy(logits.flatten(0, 1), torch.randint(4, V, (12,))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if name != "src_embed.weight" and "decoder.embed" not in name:
            assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_overfits_a_small_batch(architecture):
    model = tiny_model(*architecture, vocab=V, seed=1).train()
    src, lengths = padded_batch([6, 5, 4, 6], seed=3)
    target = torch.randint(4, V, (4, 5), generator=torch.Generator().manual_seed(4))
    trg_in = torch.cat([torch.full((4, 1), BOS), target[:, :-1]], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(120):  # every architecture fits the batch in under 70 steps
        loss = F.cross_entropy(model(src, lengths, trg_in).flatten(0, 1), target.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.1
    assert (model(src, lengths, trg_in).argmax(-1) == target).all()


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_variants(rnn_type, bidirectional):
    model = tiny_model("rnn", "bahdanau", vocab=V, rnn_type=rnn_type, bidirectional=bidirectional)
    src, lengths = padded_batch([4, 2])
    logits = model(src, lengths, torch.randint(4, V, (2, 3)))
    assert logits.shape == (2, 3, V)
    assert model.encoder.output_size == 16 * (2 if bidirectional else 1)


def test_tied_and_shared_embeddings():
    model = tiny_model("transformer", "dot", vocab=V, tie_embeddings=True, share_embeddings=True)
    assert model.decoder.output.weight is model.decoder.embed.weight
    assert model.src_embed is model.decoder.embed


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(tie_embeddings=True, emb_dim=8), "tie_embeddings"),
        (dict(heads=3), "not divisible"),
        (dict(dropout=1.5), "model.dropout"),
    ],
)
def test_invalid_model_configs_are_clear_errors(overrides, message):
    encoder = "transformer" if "heads" in overrides else "rnn"
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_model_config(encoder, "dot", **overrides), V, V)


def test_dot_attention_with_mismatched_sizes_names_the_fix():
    with pytest.raises(ConfigError, match="attention_general=true"):
        build_model(tiny_model_config("rnn", "dot", attention_general=False), V, V)


def test_share_embeddings_needs_joint_vocab():
    with pytest.raises(ConfigError, match="joint_vocab"):
        build_model(tiny_model_config("rnn", "dot", share_embeddings=True), V, V + 1)


def test_encode_takes_the_batch_mask(architecture):
    """The mask a caller passes (``Batch.src_mask``) is the one used; without it, ``src != PAD``."""
    model = tiny_model(*architecture)
    src, lengths = padded_batch([5, 3, 4])
    with torch.no_grad():
        derived = model.encode(src, lengths).states
        given = model.encode(src, lengths, src_mask=src != PAD).states
        torch.testing.assert_close(given, derived)
        if architecture[0] == "transformer":  # self-attention reads the mask (an RNN reads the lengths)
            narrower = (src != PAD) & (torch.arange(src.size(1)) != 0)  # hide each row's first token
            assert not torch.allclose(model.encode(src, lengths, src_mask=narrower).states[0, 1:], derived[0, 1:])
        logits = model(src, lengths, src[:, :2], src_mask=src != PAD)
        torch.testing.assert_close(logits, model(src, lengths, src[:, :2]))
