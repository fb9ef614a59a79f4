"""Issue 12: ``precision=int8`` (dynamic int8 quantisation) decodes every model type, alignments included."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from seq2seq.checkpoint.store import load_model
from seq2seq.cli.translate import build_translator, run_translate
from seq2seq.config.schema import TranslateConfig
from seq2seq.data.corpus import load_split
from seq2seq.decode.int8 import QUANTIZED_LAYERS, check_int8_device, quantize_int8
from seq2seq.decode.search import beam_search, greedy_search, max_output_lengths
from seq2seq.inspect.metrics import corpus_bleu
from seq2seq.training.trainer import Trainer
from seq2seq.utils.errors import ConfigError
from tests.conftest import attention_shape, padded_batch, tiny_model, toy_train_config, write_lines


def test_int8_decoding_of_the_toy_model_gives_the_fp32_outputs(toy_checkpoint):
    """Where fp32 solves the toy task, int8 gives the same output, but for a near-tie or two of
    the briefly trained model, where rounding may pick the other token (one trained model's
    "d a a l h l g l" became "d a a l h l g" in int8: "l" and "</s>" tied); BLEU is compared overall."""
    _, _, cfg, _ = load_model(toy_checkpoint)
    test = load_split(cfg.data, "test")
    sources, refs = list(test["src"]), list(test["trg"])
    outputs = {}
    for precision in ("fp32", "int8"):
        settings = TranslateConfig(checkpoint=str(toy_checkpoint), precision=precision, device="cpu", beam_size=1)
        outputs[precision] = [t.text for t in build_translator(settings).translate(sources)]
    fp32, int8 = outputs["fp32"], outputs["int8"]
    solved = [i for i, (out, ref) in enumerate(zip(fp32, refs)) if out == ref]
    assert len(solved) > len(refs) / 2
    assert sum(int8[i] == fp32[i] for i in solved) >= 0.98 * len(solved)
    assert sum(a == b for a, b in zip(int8, fp32)) >= 0.9 * len(refs)
    assert corpus_bleu(int8, refs) == pytest.approx(corpus_bleu(fp32, refs), abs=1.0)


def test_int8_translate_writes_alignments(toy_checkpoint, tmp_path):
    """Toy test sentences (the task reverses them) and an empty line: int8 writes a line and an
    alignment record for each, and agrees with fp32 wherever fp32 solves the sentence."""
    _, _, cfg, _ = load_model(toy_checkpoint)
    first, second = list(load_split(cfg.data, "test")["src"])[:2]
    source = write_lines(tmp_path / "in.txt", [first, "", second])
    out, align = tmp_path / "out.txt", tmp_path / "align.jsonl"
    settings = dict(checkpoint=str(toy_checkpoint), input=str(source), device="cpu", alignments=str(align))
    run_translate(TranslateConfig(**settings, output=str(out), precision="int8"))
    records = [json.loads(line) for line in align.read_text().splitlines()]
    run_translate(TranslateConfig(**settings, output=str(tmp_path / "fp32.txt"), precision="fp32"))
    int8, fp32 = out.read_text().split("\n"), (tmp_path / "fp32.txt").read_text().split("\n")
    assert len(int8) == len(fp32) == 4 and int8[1] == "" and int8[3] == ""  # 3 lines, each ended
    solved = [i for i, src in ((0, first), (2, second)) if fp32[i].split() == src.split()[::-1]]
    assert solved and all(int8[i] == fp32[i] for i in solved)
    assert len(records) == 3 and records[0]["attention"] and records[2]["attention"]


@pytest.mark.parametrize(
    "encoder, attention, decoder",
    [("rnn", "bahdanau", "rnn"), ("transformer", "dot", "rnn"), ("transformer", "dot", "transformer")],
)
@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_int8_quantises_every_model_type_and_keeps_attention(encoder, attention, decoder, rnn_type):
    model = tiny_model(encoder, attention, decoder, rnn_type=rnn_type, seed=3)
    quantized = quantize_int8(model)
    kinds = {type(m) for m in quantized.modules()}
    assert not kinds & QUANTIZED_LAYERS, "a float Linear/GRU/LSTM layer is left"
    src, lengths = padded_batch([6, 3, 5], seed=1)
    limits = max_output_lengths(lengths, 1.5, 2)
    for search in (
        lambda m: greedy_search(m, src, lengths, limits, return_attention=True),
        lambda m: beam_search(m, src, lengths, limits, beam_size=3, n_best=2, return_attention=True),
    ):
        for hyps, length in zip(search(quantized), lengths.tolist()):
            for hyp in hyps:
                assert hyp.attention.shape == (len(hyp.tokens) + 1, *attention_shape(model), length)
                torch.testing.assert_close(hyp.attention.sum(-1), torch.ones(hyp.attention.shape[:-1]))


def test_int8_leaves_the_float_model_alone():
    model = tiny_model("rnn", "dot", "rnn")
    quantize_int8(model)
    assert any(isinstance(m, nn.GRU) for m in model.modules())


def test_int8_is_for_cpu_translation_only(tmp_path):
    with pytest.raises(ConfigError, match="precision=int8 .* runs on the CPU only, not cuda"):
        check_int8_device(torch.device("cuda"))
    with pytest.raises(ConfigError, match="train.precision=int8 is for translation only"):
        Trainer.build(toy_train_config(precision="int8"), tmp_path)
