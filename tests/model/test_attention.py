import pytest
import torch

from seq2seq.model.attention import BahdanauAttention, DotProductAttention, MultiHeadAttention, masked_softmax

B, T, S = 3, 4, 6


def make_inputs(query_size=8, key_size=8):
    torch.manual_seed(0)
    query = torch.randn(B, T, query_size)
    states = torch.randn(B, S, key_size)
    lengths = torch.tensor([6, 4, 1])
    mask = torch.arange(S)[None, :] < lengths[:, None]
    return query, states, mask


ATTENTIONS = {
    "bahdanau": lambda: BahdanauAttention(8, 10, 7),
    "dot": lambda: DotProductAttention(8, 8, scale=True),
    "dot-unscaled": lambda: DotProductAttention(8, 8, scale=False),
    "general": lambda: DotProductAttention(8, 10, scale=True, general=True),
}


@pytest.mark.parametrize("name", ATTENTIONS)
def test_weights_sum_to_one_and_zero_on_padding(name):
    attention = ATTENTIONS[name]()
    key_size = 10 if name in ("bahdanau", "general") else 8
    query, states, mask = make_inputs(key_size=key_size)
    context, weights = attention(query, attention.prepare_keys(states), states, mask)
    assert context.shape == (B, T, key_size)
    assert weights.shape == (B, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))
    assert (weights.masked_select(~mask[:, None, :].expand(B, T, S)) == 0).all()
    assert (weights[2, :, 0] == 1).all()  # a single real token takes all the weight


@pytest.mark.parametrize("name", ATTENTIONS)
def test_padding_content_does_not_change_context(name):
    attention = ATTENTIONS[name]()
    key_size = 10 if name in ("bahdanau", "general") else 8
    query, states, mask = make_inputs(key_size=key_size)
    noisy = states.clone()
    noisy[~mask] = 1e3 * torch.randn(int((~mask).sum()), key_size)
    c1, w1 = attention(query, attention.prepare_keys(states), states, mask)
    c2, w2 = attention(query, attention.prepare_keys(noisy), noisy, mask)
    torch.testing.assert_close(c1, c2)
    torch.testing.assert_close(w1, w2)


def test_context_is_weighted_sum_of_values():
    attention = DotProductAttention(8, 8)
    query, states, mask = make_inputs()
    context, weights = attention(query, states, states, mask)
    torch.testing.assert_close(context, torch.einsum("bts,bsd->btd", weights, states))


def test_bahdanau_matches_equation():
    attention = BahdanauAttention(8, 10, 7)
    query, states, mask = make_inputs(key_size=10)
    _, weights = attention(query, attention.prepare_keys(states), states, mask)
    w, u, v = attention.query_layer.weight, attention.key_layer.weight, attention.energy_layer.weight
    b, t = 0, 1
    scores = torch.stack([(v @ torch.tanh(w @ query[b, t] + u @ states[b, s])).squeeze() for s in range(S)])
    torch.testing.assert_close(weights[b, t], scores.softmax(0))


def test_dot_scaling():
    query, states, mask = make_inputs()
    scaled = DotProductAttention(8, 8, scale=True).score(query, states)
    plain = DotProductAttention(8, 8, scale=False).score(query, states)
    torch.testing.assert_close(scaled * 8**0.5, plain)


def test_dot_without_general_needs_equal_sizes():
    with pytest.raises(ValueError, match="equal query and key sizes"):
        DotProductAttention(8, 10, general=False)


def test_several_queries_per_source_equal_one_query_each():
    """k beam hypotheses as k queries against shared keys == k copies of the keys."""
    attention = BahdanauAttention(8, 10, 7)
    query, states, mask = make_inputs(key_size=10)
    keys = attention.prepare_keys(states)
    grouped, grouped_w = attention(query, keys, states, mask)  # (B, T, ...)
    flat_q = query.reshape(B * T, 1, 8)
    rep = lambda x: x.repeat_interleave(T, 0)  # noqa: E731
    single, single_w = attention(flat_q, rep(keys), rep(states), rep(mask))
    torch.testing.assert_close(grouped.reshape(B * T, 1, -1), single)
    torch.testing.assert_close(grouped_w.reshape(B * T, 1, -1), single_w)


def test_masked_softmax_broadcasts_over_heads():
    scores = torch.randn(2, 3, 4, 5)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4))
    assert (weights[1, ..., 2:] == 0).all()


@pytest.mark.parametrize("need_weights", [False, True])
def test_multi_head_attention_masks_padding(need_weights):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out, weights = mha(x, x, mask[:, None, None, :], need_weights=need_weights)
    assert out.shape == (2, 5, 16)
    noisy = x.clone()
    noisy[1, 3:] = 100.0
    out2, _ = mha(noisy, noisy, mask[:, None, None, :], need_weights=need_weights)
    torch.testing.assert_close(out[1, :3], out2[1, :3])
    if need_weights:
        assert weights.shape == (2, 4, 5, 5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
        assert (weights[1, :, :, 3:] == 0).all()


def test_multi_head_fused_and_explicit_paths_agree():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]
    fused, _ = mha(x, x, mask, need_weights=False)
    explicit, _ = mha(x, x, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
