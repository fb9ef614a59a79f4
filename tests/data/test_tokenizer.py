import pickle

import datasets
import pytest

from seq2seq.config.schema import DataConfig
from seq2seq.data.corpus import encode_split, load_split
from seq2seq.data.tokenizer import (
    BOS,
    EOS,
    FEW_TEXTS,
    PAD,
    UNK,
    Tokenizer,
    Tokenizers,
    prepare_tokenizers,
    train_sentencepiece,
)
from seq2seq.utils.errors import DataError

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a dog runs in the park",
    "two dogs play with a ball",
    "der schnelle braune fuchs springt",
    "ein hund läuft im park",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_sentencepiece(SENTENCES, vocab_size=60, seed=1)


def test_special_ids_and_roundtrip(tokenizer):
    sp = tokenizer.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD, UNK, BOS, EOS)
    for sentence in ("a dog runs in the park", "ein hund läuft"):
        ids = tokenizer.encode(sentence)
        assert all(i > EOS for i in ids)
        assert tokenizer.decode(ids) == sentence


def test_decode_stops_at_eos_and_skips_padding(tokenizer):
    ids = tokenizer.encode("a dog")
    assert tokenizer.decode([BOS, *ids, EOS, *tokenizer.encode("park"), PAD]) == "a dog"
    assert tokenizer.pieces([*ids, EOS, 9]) == tokenizer.tokenize("a dog")


def test_small_corpus_gets_smaller_vocabulary(tokenizer):
    assert len(tokenizer) <= 60
    big = train_sentencepiece(SENTENCES, vocab_size=8000, seed=1)
    assert 10 < len(big) < 8000


def test_training_is_deterministic():
    a = train_sentencepiece(SENTENCES, vocab_size=50, seed=3)
    b = train_sentencepiece(SENTENCES, vocab_size=50, seed=3)
    assert a.proto == b.proto


def test_state_roundtrip_and_pickle(tokenizer):
    joint = Tokenizers(tokenizer, tokenizer)
    assert joint.joint and set(joint.to_state()) == {"src"}
    again = Tokenizers.from_state(joint.to_state())
    assert again.joint and again.src.encode("a dog") == tokenizer.encode("a dog")
    assert pickle.loads(pickle.dumps(tokenizer)).encode("park") == tokenizer.encode("park")


def test_empty_training_text_is_an_error():
    with pytest.raises(DataError, match="empty"):
        train_sentencepiece(["", "  "], vocab_size=10)


def _train_split() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"src": SENTENCES[3:5] * 15, "trg": SENTENCES[:3] * 10})


@pytest.mark.parametrize("joint", [True, False])
def test_prepare_caches_in_run_dir_and_reuses(tmp_path, joint):
    cfg = DataConfig(src_lang="de", trg_lang="en", vocab_size=40, joint_vocab=joint)
    toks = prepare_tokenizers(cfg, _train_split(), tmp_path)
    names = ["spm.model"] if joint else ["spm.de.model", "spm.en.model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert toks.joint == joint
    if not joint:  # each side trained on its own language
        assert UNK not in toks.src.encode("läuft") and UNK in toks.trg.encode("läuft")
    # A second call reuses the cached files (even with a different training set).
    other = datasets.Dataset.from_dict({"src": ["x y z"] * 5, "trg": ["u v"] * 5})
    again = prepare_tokenizers(cfg, other, tmp_path)
    assert again.src.proto == toks.src.proto and again.trg.proto == toks.trg.proto


def test_prepare_reuses_given_model(tmp_path, tokenizer):
    tokenizer.save(tmp_path / "given.model")
    cfg = DataConfig(spm_model=str(tmp_path / "given.model"))
    toks = prepare_tokenizers(cfg, _train_split(), tmp_path / "run")
    assert toks.src.proto == tokenizer.proto and toks.joint
    with pytest.raises(DataError, match="data.spm_model"):
        prepare_tokenizers(DataConfig(spm_model=str(tmp_path / "missing")), _train_split(), tmp_path)


def test_encode_split_adds_eos_to_source_only():
    cfg = DataConfig(name="toy_reverse", toy_train_size=20, vocab_size=40)
    raw = load_split(cfg, "train")
    toks = Tokenizers(*[train_sentencepiece(list(raw["src"]), vocab_size=40)] * 2)
    encoded = encode_split(raw, toks)
    for row in encoded:
        assert row["src_ids"][-1] == EOS and EOS not in row["trg_ids"]
        assert toks.src.decode(row["src_ids"]) == row["src"]
        assert toks.trg.decode(row["trg_ids"]) == row["trg"]


def test_encode_batch_gives_the_same_ids_for_few_and_many_texts(tokenizer):
    """Fewer than FEW_TEXTS texts are encoded one by one (no thread pool per call): same ids."""
    texts = [f"{'abc ' * (i % 7)}d e f {i}" for i in range(2 * FEW_TEXTS)]
    assert tokenizer.encode_batch(texts[:3]) == [tokenizer.sp.encode(t) for t in texts[:3]]
    assert tokenizer.encode_batch(texts) == tokenizer.sp.encode(texts)
    assert tokenizer.encode_batch(texts[:3]) == tokenizer.encode_batch(texts)[:3]
    assert tokenizer.encode_batch([]) == []
