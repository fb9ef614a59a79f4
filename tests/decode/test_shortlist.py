"""Vocabulary shortlists: building, the per-batch vocabulary, restricted search, export and translate."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from seq2seq.checkpoint.store import load_model
from seq2seq.cli.translate import build_translator
from seq2seq.config.schema import ExportConfig, TranslateConfig
from seq2seq.data.corpus import load_split
from seq2seq.decode import shortlist as shortlist_module
from seq2seq.decode.int8 import quantize_int8
from seq2seq.decode.search import beam_search, greedy_search, max_output_lengths
from seq2seq.decode.shortlist import RestrictedOutput, Shortlist, build_shortlist
from seq2seq.deploy.export import run_export
from seq2seq.utils.errors import ConfigError, ExportError
from tests.conftest import padded_batch, tiny_model

# Two pairs: source 4 always meets target 7; 5 met 7 and 8; 6 met 7 and 9.
SRC, TRG = [[4, 5, 3], [4, 6, 3]], [[7, 8], [7, 9, 9]]


def test_candidates_are_ranked_by_p_target_given_source():
    shortlist = build_shortlist(SRC, TRG, src_vocab_size=10, trg_vocab_size=12, per_source=2, frequent=1)
    assert shortlist.candidates[4].tolist() == [7, 8]  # p(7|4) = 1, then p(8|4) = p(9|4) = 0.5: lower id
    assert shortlist.candidates[5].tolist() == [7, 8]
    assert shortlist.candidates[6].tolist() == [7, 9]
    assert shortlist.candidates[3].tolist() == [-1, -1]  # specials are never counted
    assert shortlist.frequent.tolist() == [7]


def test_counting_in_pieces_gives_the_same_shortlist(monkeypatch):
    """The co-occurrence table is merged every PAIRS_PER_MERGE sentence pairs, so that memory
    follows the distinct pairs of a big corpus; the result does not depend on it."""
    g = torch.Generator().manual_seed(0)
    src = [torch.randint(4, 50, (int(n),), generator=g).tolist() for n in torch.randint(1, 12, (500,), generator=g)]
    trg = [torch.randint(4, 60, (int(n),), generator=g).tolist() for n in torch.randint(1, 12, (500,), generator=g)]
    whole = build_shortlist(src, trg, 50, 60, per_source=7, frequent=5)
    monkeypatch.setattr(shortlist_module, "PAIRS_PER_MERGE", 33)
    pieces = build_shortlist(src, trg, 50, 60, per_source=7, frequent=5)
    assert torch.equal(whole.candidates, pieces.candidates) and torch.equal(whole.frequent, pieces.frequent)
    assert (whole.candidates >= 0).sum() > 200


def test_a_batch_vocabulary_is_sorted_and_holds_the_specials_first():
    shortlist = build_shortlist(SRC, TRG, src_vocab_size=10, trg_vocab_size=12, per_source=2, frequent=1)
    src = torch.tensor([[5, 3, 0], [6, 3, 0]])
    assert shortlist.for_batch(src).tolist() == [0, 1, 2, 3, 7, 8, 9]
    assert shortlist.for_batch(torch.tensor([[3]])).tolist() == [0, 1, 2, 3, 7]


def test_restricted_output_gives_the_full_layers_columns():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 40)
    vocab = torch.tensor([0, 1, 2, 3, 11, 30])
    x = torch.randn(5, 16)
    torch.testing.assert_close(RestrictedOutput(layer, vocab)(x), layer(x)[:, vocab])
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(layer), {torch.nn.Linear})[0]
    torch.testing.assert_close(RestrictedOutput(quantized, vocab)(x), quantized(x)[:, vocab])


@pytest.mark.parametrize("encoder, decoder", [("rnn", "rnn"), ("transformer", "transformer")])
def test_search_over_the_whole_vocabulary_as_a_shortlist_changes_nothing(encoder, decoder):
    model = tiny_model(
        encoder=encoder, attention="dot" if decoder == "transformer" else "bahdanau", decoder=decoder, seed=3
    )
    src, lengths = padded_batch([7, 4, 6])
    limits = max_output_lengths(lengths, 1.5, 4)
    full = torch.arange(model.decoder.output.out_features)
    plain = beam_search(model, src, lengths, limits, beam_size=3, n_best=3, return_attention=True)
    listed = beam_search(model, src, lengths, limits, beam_size=3, n_best=3, return_attention=True, vocab=full)
    for a, b in zip(plain, listed):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
        torch.testing.assert_close(a[0].attention, b[0].attention)
    greedy = greedy_search(model, src, lengths, limits, vocab=full)
    assert [h[0].tokens for h in greedy] == [h[0].tokens for h in greedy_search(model, src, lengths, limits)]


@pytest.mark.parametrize("int8", [False, True])
def test_a_shortlisted_search_writes_only_shortlisted_ids(int8):
    model = tiny_model(encoder="rnn", decoder="rnn", seed=4).eval()
    model = quantize_int8(model) if int8 else model
    src, lengths = padded_batch([6, 5])
    vocab = torch.tensor([0, 1, 2, 3, 5, 8, 13, 21])
    limits = max_output_lengths(lengths, 2.0, 4)
    written = set()
    for hyps in beam_search(model, src, lengths, limits, 4, 4, vocab=vocab, min_length=1) + greedy_search(
        model, src, lengths, limits, vocab=vocab, min_length=1
    ):
        written.update(token for h in hyps for token in h.tokens)
        assert all(len(h.tokens) >= 1 for h in hyps)  # min_length still holds
    # Token ids, not logit columns (4-7): an untrained model may also write <pad>/<unk>/<s>.
    assert written <= {0, 1, 2, 5, 8, 13, 21} and written & {5, 8, 13, 21}


def test_a_shortlist_vocabulary_must_start_with_the_specials():
    model = tiny_model(encoder="rnn", decoder="rnn").eval()
    src, lengths = padded_batch([4])
    with pytest.raises(ValueError, match="special ids"):
        greedy_search(model, src, lengths, max_output_lengths(lengths, 1.5, 4), vocab=torch.tensor([3, 5, 8]))


def test_export_and_translate_with_a_shortlist(toy_checkpoint, tmp_path):
    """The toy task reverses its source, so every output token co-occurs with itself in the
    source: the shortlist keeps every greedy choice and the translations do not change (with
    beam search it may also change which hypotheses fill the beam, for better or worse)."""
    path = tmp_path / "toy.shortlist"
    run_export(ExportConfig(checkpoint=str(toy_checkpoint), output=str(path), format="shortlist", per_source=4))
    loaded = Shortlist.load(path)
    assert loaded.candidates.shape[1] == 4
    _, _, cfg, _ = load_model(toy_checkpoint)
    sources = list(load_split(cfg.data, "test")["src"])[:40]
    outputs = {}
    for shortlist in (None, str(path)):
        settings = TranslateConfig(checkpoint=str(toy_checkpoint), device="cpu", beam_size=1, shortlist=shortlist)
        outputs[shortlist] = [t.text for t in build_translator(settings).translate(sources)]
    assert outputs[str(path)] == outputs[None]
    with pytest.raises(ExportError, match="exists"):
        run_export(ExportConfig(checkpoint=str(toy_checkpoint), output=str(path), format="shortlist"))


def test_a_shortlist_of_other_tokenizers_or_not_a_shortlist_is_refused(toy_checkpoint, tmp_path):
    other = build_shortlist(SRC, TRG, src_vocab_size=10, trg_vocab_size=12, digest="another vocabulary")
    other.save(tmp_path / "other.shortlist")
    (tmp_path / "junk.shortlist").write_bytes(b"not a shortlist")
    for name, message in (("other", "other sentencepiece models"), ("junk", "is not a shortlist")):
        settings = TranslateConfig(
            checkpoint=str(toy_checkpoint), device="cpu", shortlist=str(tmp_path / f"{name}.shortlist")
        )
        with pytest.raises(ConfigError, match=message) as error:
            build_translator(settings)
        assert "\n" not in str(error.value)


def test_ctranslate2_decodes_over_the_same_shortlist(tmp_path):
    """The shortlist becomes CTranslate2's vocabulary map: with a shortlist of what the model
    writes, less its favourite token, both engines avoid that token and agree (greedy)."""
    pytest.importorskip("ctranslate2")
    from seq2seq.decode.ctranslate2 import CT2Translator
    from seq2seq.decode.shortlist import tokenizer_digest
    from seq2seq.decode.translator import DecodeOptions, Translator
    from seq2seq.deploy.export import export_ctranslate2
    from tests.deploy.test_ctranslate2_export import random_checkpoint, sentences

    checkpoint = random_checkpoint(tmp_path / "model.pt", tied=False)
    export = export_ctranslate2(checkpoint, tmp_path / "ct2")
    model, tokenizers, _, _ = load_model(checkpoint)
    inputs = sentences(30, seed=4)
    options = DecodeOptions(beam_size=1, batch_size=8)
    written = Counter(t for x in CT2Translator(export, options).translate(inputs) for t in x.hypotheses[0].tokens)
    favourite = max((t for t in written if t > 3), key=written.get)
    allowed = sorted(t for t in written if t > 3 and t != favourite)
    candidates = torch.full((len(tokenizers.src), 1), -1, dtype=torch.long)
    shortlist = Shortlist(candidates, torch.tensor(allowed), len(tokenizers.trg), tokenizer_digest(tokenizers))
    options.shortlist = shortlist
    ct2 = [t.hypotheses[0].tokens for t in CT2Translator(export, options).translate(inputs)]
    ours = [t.hypotheses[0].tokens for t in Translator(model, tokenizers, options).translate(inputs)]
    assert all(set(tokens) <= set(allowed) | {1, 2} for tokens in ct2)
    assert sum(a == b for a, b in zip(ct2, ours)) >= 0.9 * len(inputs)
