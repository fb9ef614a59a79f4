import datasets
import numpy as np
import pytest

from seq2seq.data.batching import TokenBatchSampler, TokenizedCorpus, sentence_batches
from seq2seq.data.tokenizer import BOS, EOS, PAD


def random_lengths(n=500, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(1, 40, n)
    return src, np.maximum(1, src + rng.integers(-3, 4, n))  # lengths of translations correlate


def test_every_pair_exactly_once_per_epoch():
    src, trg = random_lengths()
    sampler = TokenBatchSampler(src, trg, batch_tokens=300, seed=1)
    for epoch in range(3):
        rows = np.concatenate(sampler.batches(epoch))
        assert sorted(rows.tolist()) == list(range(len(src)))


def test_batches_respect_the_token_budget_and_group_lengths():
    src, trg = random_lengths()
    sampler = TokenBatchSampler(src, trg, batch_tokens=300, seed=1)
    batches = sampler.batches(0)
    padded = real = 0
    for rows in batches:
        width = max(src[rows].max(), trg[rows].max() + 1)
        assert len(rows) * width <= 300
        padded += len(rows) * width
        real += np.maximum(src[rows], trg[rows] + 1).sum()
    assert real / padded > 0.95  # length-sorted batches carry little padding


def test_order_is_a_function_of_seed_and_epoch():
    src, trg = random_lengths()
    a = TokenBatchSampler(src, trg, 300, seed=1)
    b = TokenBatchSampler(src, trg, 300, seed=1)
    same = lambda x, y: len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y))  # noqa: E731
    assert same(a.batches(2), b.batches(2))
    assert not same(a.batches(0), a.batches(1))
    assert not same(a.batches(0), TokenBatchSampler(src, trg, 300, seed=2).batches(0))


def test_keep_filters_rows():
    src, trg = random_lengths(100)
    keep = src < 20
    rows = np.concatenate(TokenBatchSampler(src, trg, 200, keep=keep).batches(0))
    assert sorted(rows.tolist()) == np.flatnonzero(keep).tolist()


def test_an_overlong_pair_gets_its_own_batch():
    sampler = TokenBatchSampler(np.array([3, 50, 4]), np.array([3, 2, 4]), batch_tokens=20, shuffle=False)
    assert [r.tolist() for r in sampler.batches()] == [[0, 2], [1]]


def encoded_corpus(chunks: int = 1) -> TokenizedCorpus:
    pairs = {"src_ids": [[5, 6, EOS], [7, EOS], [8, 9, 10, EOS]], "trg_ids": [[11], [12, 13], [14, 15, 16]]}
    features = datasets.Features({k: datasets.Sequence(datasets.Value("int32")) for k in ("src_ids", "trg_ids")})
    parts = [datasets.Dataset.from_dict(pairs, features=features) for _ in range(chunks)]
    return TokenizedCorpus(datasets.concatenate_datasets(parts))


@pytest.mark.parametrize("chunks", [1, 3])
def test_collate_pads_and_shifts_target(chunks):
    corpus = encoded_corpus(chunks)
    assert len(corpus) == 3 * chunks
    batch = corpus.batch(np.array([2, 0, 1]) + 3 * (chunks - 1))
    assert batch.src.tolist() == [[8, 9, 10, EOS], [5, 6, EOS, PAD], [7, EOS, PAD, PAD]]
    assert batch.src_lengths.tolist() == [4, 3, 2]
    assert batch.trg_in.tolist() == [[BOS, 14, 15, 16], [BOS, 11, PAD, PAD], [BOS, 12, 13, PAD]]
    assert batch.trg_out.tolist() == [[14, 15, 16, EOS], [11, EOS, PAD, PAD], [12, 13, EOS, PAD]]
    assert batch.n_trg_tokens == 4 + 2 + 3
    assert batch.src_mask.sum().item() == 9


def test_sentence_batches_sorted_longest_first():
    batches = sentence_batches(np.array([3, 9, 1, 5, 7]), 2)
    assert [b.tolist() for b in batches] == [[1, 4], [3, 0], [2]]
