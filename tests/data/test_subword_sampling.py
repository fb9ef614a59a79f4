"""data.subword_alpha: training pairs resegmented every epoch (Kudo, 2018), reproducibly."""

import math
from pathlib import Path

import pytest

from seq2seq.config.schema import DataConfig
from seq2seq.config.special_ids import EOS
from seq2seq.config.values import check_train_config, check_values
from seq2seq.data.streaming import StreamingBatches
from seq2seq.data.subword_sampling import SampledCorpusBatches, sample_pairs, sample_segmentations
from seq2seq.data.tokenizer import Tokenizer, Tokenizers, train_sentencepiece
from seq2seq.training.distributed import DistContext
from seq2seq.utils.errors import ConfigError
from tests.conftest import toy_train_config, write_lines

SOURCES = [
    "der schnelle braune fuchs springt über den faulen hund",
    "ein hund läuft im park",
    "zwei hunde spielen mit einem ball",
    "eine frau liest ein buch im garten",
] * 10
TARGETS = [
    "the quick brown fox jumps over the lazy dog",
    "a dog runs in the park",
    "two dogs play with a ball",
    "a woman reads a book in the garden",
] * 10
SAMPLING = dict(alpha=0.3, nbest=-1, max_len=100)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_sentencepiece(SOURCES + TARGETS, vocab_size=80, seed=1)


def test_samples_are_reproducible_varied_and_lossless(tokenizer):
    first = sample_segmentations(tokenizer, TARGETS, 0.3, -1, seed=1)
    assert sample_segmentations(tokenizer, TARGETS, 0.3, -1, seed=1) == first
    assert sample_segmentations(tokenizer, TARGETS, 0.3, -1, seed=2) != first
    best = [tokenizer.encode(t) for t in TARGETS]
    assert sum(s != b for s, b in zip(first, best)) > len(TARGETS) // 2
    assert [tokenizer.decode(ids) for ids in first] == TARGETS  # another segmentation of the same text


def test_sampled_pairs_end_sources_with_eos_and_keep_best_where_too_long(tokenizer):
    pair = (tokenizer, tokenizer)
    srcs, trgs = sample_pairs(pair, (SOURCES, TARGETS), SAMPLING, (1, 2))
    assert all(s[-1] == EOS and EOS not in t for s, t in zip(srcs, trgs))
    tight = max(len(tokenizer.encode(t)) for t in SOURCES + TARGETS) + 1
    srcs, trgs = sample_pairs(pair, (SOURCES, TARGETS), {**SAMPLING, "max_len": tight}, (1, 2))
    assert max(map(len, srcs + trgs)) <= tight
    fell_back = [i for i in range(len(SOURCES)) if trgs[i] == tokenizer.encode(TARGETS[i])]
    assert fell_back  # with alpha 0.3 some samples are longer than the best segmentation + 1


def sampled_batches(tokenizer: Tokenizer, keep=None) -> SampledCorpusBatches:
    options = dict(SAMPLING, batch_tokens=64, seed=3)
    return SampledCorpusBatches((SOURCES, TARGETS), (tokenizer, tokenizer), keep, options, DistContext())


def test_every_epoch_is_resegmented_and_a_pure_function_of_seed_and_epoch(tokenizer):
    source = sampled_batches(tokenizer)
    epochs = [[(b.src.tolist(), b.trg_out.tolist(), b.indices.tolist()) for b in source.batches(e)] for e in (0, 1)]
    assert epochs[0] != epochs[1]
    for batches in epochs:
        assert sorted(i for _, _, rows in batches for i in rows) == list(range(len(SOURCES)))
    fresh = sampled_batches(tokenizer)
    again = [(b.src.tolist(), b.trg_out.tolist(), b.indices.tolist()) for b in fresh.batches(1, skip=2)]
    assert again == epochs[1][2:]  # a resumed epoch sees the same segmentations and batches
    assert sampled_batches(tokenizer).segment(0) != sampled_batches(tokenizer).segment(1)


def test_only_kept_rows_are_batched(tokenizer):
    import numpy as np

    keep = np.arange(len(SOURCES)) % 4 != 1
    rows = sorted(int(i) for batch in sampled_batches(tokenizer, keep).rows(0) for i in batch)
    assert rows == np.flatnonzero(keep).tolist()


def write_corpus(root: Path) -> Path:
    root.mkdir()
    for split in ("train", "val"):
        write_lines(root / f"{split}.de", SOURCES)
        write_lines(root / f"{split}.en", TARGETS)
    return root


def test_training_resegments_the_corpus(tmp_path, caplog):
    from seq2seq.training.trainer import Trainer

    cfg = toy_train_config(max_steps=4, valid_every=4, test_enabled=False)
    cfg.data = DataConfig(name="custom", root=str(write_corpus(tmp_path / "corpus")), vocab_size=80)
    cfg.data.subword_alpha = 0.3
    cfg.valid.max_sentences = 4  # an untrained model decodes to the length limit
    with caplog.at_level("INFO", logger="seq2seq.training.run_data"):
        trainer = Trainer.build(cfg, tmp_path / "run")
    assert "subword regularization" in caplog.text and "data.subword_alpha=0.3" in caplog.text
    assert isinstance(trainer.batches, SampledCorpusBatches)
    assert trainer.batches.segment(0) != trainer.batches.segment(1)
    metrics = trainer.fit()
    assert metrics["step"] == 4 and math.isfinite(metrics["loss"])  # a real run on sampled segmentations


def test_streaming_samples_reproducibly(tmp_path, tokenizer):
    cfg = DataConfig(name="custom", root=str(write_corpus(tmp_path / "corpus")), streaming=True, stream_buffer=16)
    tokenizers = Tokenizers(tokenizer, tokenizer)

    def epoch(alpha: float) -> list:
        cfg.subword_alpha = alpha
        return [b.trg_out.tolist() for b in StreamingBatches(cfg, tokenizers, 64, seed=3).batches(0)]

    sampled = epoch(0.3)
    assert sampled == epoch(0.3)
    assert sampled != epoch(0.0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(subword_alpha=-0.1), "data.subword_alpha must be >= 0"),
        (dict(subword_alpha=0.3, subword_nbest=1), "data.subword_nbest must be -1"),
        (dict(subword_alpha=1.0, spm_type="bpe"), "BPE-dropout probability"),
    ],
)
def test_sampling_settings_that_would_not_sample_are_start_up_errors(overrides, message):
    cfg = toy_train_config()
    for key, value in overrides.items():
        setattr(cfg.data, key, value)
    with pytest.raises(ConfigError, match=message):
        check_values(cfg)
        check_train_config(cfg)
