"""Transformer decoder invariants, every layer/head in outputs, hard alignments, AER, terminal view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.cli.commands import aer_main, translate_main
from seq2seq.data.tokenizer import BOS
from seq2seq.decode.translation import Translation
from seq2seq.inspect.alignments import (
    alignment_error_rate,
    format_pharaoh,
    hard_alignment,
    parse_alignment,
    terminal_heatmap,
    word_ids,
    words,
)
from seq2seq.training.trainer import train
from tests.conftest import Finished, padded_batch, run_main, tiny_model, toy_train_config, write_lines

V = 23


# ------------------------------------------------------------------------------------------------
# Decoders


def test_changing_a_future_token_never_changes_earlier_logits(architecture):
    model = tiny_model(*architecture, vocab=V)
    src, lengths = padded_batch([5, 4])
    trg = torch.cat([torch.full((2, 1), BOS), torch.randint(4, V, (2, 6))], dim=1)
    logits = model(src, lengths, trg)
    for t in range(1, trg.size(1)):
        changed = trg.clone()
        changed[:, t:] = torch.randint(4, V, changed[:, t:].shape)
        torch.testing.assert_close(model(src, lengths, changed)[:, :t], logits[:, :t])


@pytest.mark.parametrize("encoder", ["rnn", "transformer"])
def test_transformer_cache_reorder_matches_recomputation(encoder):
    """After reordering beams, the cached prefix must be the reordered hypotheses' own prefix."""
    model = tiny_model(encoder, "dot", "transformer", vocab=V, seed=5)
    src, lengths = padded_batch([6, 4], seed=1)
    k = 3
    enc = model.encode(src, lengths)
    state = model.decoder.init_state(enc).reorder(torch.arange(2).repeat_interleave(k))
    prefixes = torch.randint(4, V, (2 * k, 4), generator=torch.Generator().manual_seed(3))
    prefixes[:, 0] = BOS
    for t in range(3):
        _, state, _ = model.decoder.step(prefixes[:, t], state, enc)
    # New order: sentence 0 takes hypotheses (2, 0, 0), sentence 1 takes (4, 5, 3).
    order = torch.tensor([2, 0, 0, 4, 5, 3])
    state = state.reorder(order)
    logits, _, attention = model.decoder.step(prefixes[order, 3], state, enc)
    full_logits, full_attention = model(
        src.repeat_interleave(k, 0), lengths.repeat_interleave(k), prefixes[order], return_attention=True
    )
    torch.testing.assert_close(logits, full_logits[:, 3], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attention, full_attention[:, 3], atol=1e-6, rtol=1e-5)


def test_transformer_decoder_config_checks():
    from seq2seq.model.seq2seq import build_model
    from seq2seq.utils.errors import ConfigError
    from tests.conftest import tiny_model_config

    with pytest.raises(ConfigError, match="set model.attention=dot"):
        build_model(tiny_model_config("transformer", "bahdanau", "transformer"), V, V)


# ------------------------------------------------------------------------------------------------
# Hard alignments and AER


SRC = ["▁Ein", "▁Hund", "▁läuft", "▁schnell", ".", "</s>"]  # words: Ein Hund läuft schnell.
TRG = ["▁A", "▁dog", "▁run", "s", "▁fast", ".", "</s>"]  # words: A dog runs fast.


def test_words_merge_pieces():
    assert word_ids(SRC) == [0, 1, 2, 3, 3, -1]
    assert words(SRC) == ["Ein", "Hund", "läuft", "schnell."]
    assert words(TRG) == ["A", "dog", "runs", "fast."]


def test_pharaoh_from_a_hand_built_matrix():
    w = np.zeros((len(TRG), len(SRC)))
    w[0, 0] = 1.0  # A -> Ein
    w[1, 1] = 1.0  # dog -> Hund
    w[2, 2], w[3, 1] = 1.0, 1.0  # run -> läuft, s -> Hund: "runs" averages to läuft .5, Hund .5
    w[3, 2] = 0.0
    w[2, 2] = 0.9
    w[2, 5] = 0.1  # some weight on </s>, which is never a link
    w[4, 3] = 0.6
    w[4, 4] = 0.4  # fast -> schnell (pieces of word 3 sum to 1.0)
    w[5, 4] = 1.0  # . -> "." piece of word 3
    w[6, 5] = 1.0  # </s> row is dropped
    links = hard_alignment(w, SRC, TRG)
    # runs: läuft 0.45 vs Hund 0.5 -> Hund; fast. (two pieces) -> schnell.
    assert links == [(0, 0), (1, 1), (1, 2), (3, 3)]
    assert format_pharaoh(links) == "0-0 1-1 1-2 3-3"


def test_parse_and_aer():
    sure, possible = parse_alignment("0-0 1-1 2?2 3-3-P 4-4-S")
    assert sure == {(0, 0), (1, 1), (4, 4)}
    assert possible == {(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)}
    with pytest.raises(ValueError, match="not a Pharaoh link"):
        parse_alignment("0-x", "gold.txt:3")
    hyp = [{(0, 0), (1, 1), (2, 2), (5, 5)}]
    result = alignment_error_rate(hyp, [sure], [possible])
    # |A&S| = 2, |A&P| = 3, |A| = 4, |S| = 3 -> AER = 1 - 5/7
    assert result["aer"] == pytest.approx(1 - 5 / 7)
    assert result["precision"] == pytest.approx(3 / 4) and result["recall"] == pytest.approx(2 / 3)
    perfect = alignment_error_rate([sure], [sure], [possible])
    assert perfect["aer"] == 0.0


def _translation(n_src: int, n_trg: int, layers: int = 1, heads: int = 1) -> Translation:
    src = [f"▁w{i}" for i in range(n_src)] + ["</s>"]
    trg = [f"▁out{i}" for i in range(n_trg)] + ["</s>"]
    attention = torch.rand(layers, heads, len(trg), len(src)).softmax(-1).numpy()  # (L, H, T, S)
    return Translation("x", "y", -1.0, src, trg, attention)


def test_terminal_heatmap_fits_80_columns_for_20_words():
    view = terminal_heatmap(_translation(20, 22))
    lines = view.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if "|" in line]
    assert len(rows) == 22  # one row per output word
    assert all(len(r.split("|")[1]) == 21 * len(r.split("|")[1]) // 21 for r in rows)
    assert "0:w0" in view and "19:w19" in view and "20:</s>" in view


def test_terminal_heatmap_shows_the_alignment():
    t = _translation(3, 3)
    t.attention_layers = np.zeros((1, 1, 4, 4), np.float32)  # (L, H, T, S)
    for i in range(3):
        t.attention_layers[0, 0, i, 2 - i] = 1.0  # anti-diagonal
    t.attention_layers[0, 0, 3, 3] = 1.0
    rows = [line.split("|")[1] for line in terminal_heatmap(t).splitlines() if "|" in line]
    cell = len(rows[0]) // 4
    assert [r.index("█") // cell for r in rows] == [2, 1, 0]
    assert terminal_heatmap(_translation(100, 3)).count("source columns not shown") == 1


# ------------------------------------------------------------------------------------------------
# A trained Transformer decoder end to end


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("transformer_toy")
    cfg = toy_train_config(max_steps=350, valid_every=350, warmup_steps=50, lr=2e-3, test_enabled=False)
    m = cfg.model
    m.encoder = m.decoder = "transformer"
    m.attention, m.attention_general = "dot", False
    m.enc_layers, m.dec_layers, m.heads, m.ff_size, m.hidden_size, m.emb_dim = 2, 2, 2, 128, 64, 64
    metrics = train(cfg, run_dir)
    assert metrics["bleu"] > 70, metrics
    return run_dir


def test_transformer_validation_images(transformer_run):
    acc = EventAccumulator(str(transformer_run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()["images"]
    for prefix in ("attention/", "attention_layers/", "encoder_attention/"):
        assert sum(t.startswith(prefix) for t in tags) == 3, (prefix, tags)


def translate_cli(*args: str, stdin: str = "") -> Finished:
    return run_main(translate_main, *args, stdin=stdin)


def test_jsonl_keeps_every_layer_and_head(transformer_run, tmp_path):
    ckpt = transformer_run / "checkpoints" / "best.pt"
    src = write_lines(tmp_path / "in.txt", ["a b c d", "", "e f"])
    result = translate_cli(f"checkpoint={ckpt}", f"input={src}", f"alignments={tmp_path / 'a.jsonl'}")
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    first = records[0]
    layers = np.array(first["attention_layers"])
    assert layers.shape == (2, 2, len(first["trg_tokens"]), len(first["src_tokens"]))
    np.testing.assert_allclose(layers.sum(-1), 1.0, atol=1e-4)  # every head's rows sum to 1
    np.testing.assert_allclose(np.array(first["attention"]), layers[-1].mean(0), atol=1e-4)
    assert records[1]["attention_layers"] == []


def test_aer_script(tmp_path):
    hyp = write_lines(tmp_path / "hyp.align", ["0-2 1-1 2-0", "", "0-3 1-2 2-1 3-0"])
    gold = write_lines(tmp_path / "gold.align", ["0-2 1-1 2-0", "", "0-3 1-2 2?1 3-1"])
    aer = run_main(aer_main, str(hyp), str(gold))
    assert aer.returncode == 0, aer.stderr
    # A has 7 links; S = 6 sure (3-1 sure, 2?1 possible); A&S = 5, A&P = 6 -> AER = 1 - 11/13
    assert aer.stdout.startswith(f"AER = {100 * (1 - 11 / 13):.2f}")
    bad = write_lines(tmp_path / "bad.align", ["0-2 1-1 2-0", "", "0-x"])
    aer = run_main(aer_main, str(bad), str(gold))
    assert aer.returncode == 1 and aer.stderr.strip() == f"error: {bad}:3: not a Pharaoh link: '0-x'"
