"""Unchecked values, byte order marks, and translate input: line numbers, UTF-8, long lines, n-best."""

from __future__ import annotations

import io
import json
import sys
from operator import attrgetter

import pytest

from seq2seq.checkpoint.store import load_model
from seq2seq.cli.commands import train_main, translate_main
from seq2seq.cli.translate import _interactive, decode_line
from seq2seq.config.schema import DataConfig, TranslateConfig
from seq2seq.data.corpus import load_split
from seq2seq.decode.translation import Translation
from seq2seq.decode.translator import DecodeOptions, Translator
from seq2seq.inspect.metrics import read_lines
from seq2seq.training.trainer import Trainer, train
from seq2seq.utils.errors import ConfigError
from tests.conftest import SMALL_TOY_CLI, Finished, run_main, small_toy_config


def translate_cli(*args: str, stdin: bytes = b"") -> Finished:
    return run_main(translate_main, *args, stdin=stdin)


# ------------------------------------------------------------------------------------------------
# Item 10: values checked at start-up, one line each


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("valid.decode", "batch_size", 0, "valid.decode.batch_size must be >= 1, got 0"),
        ("test.decode", "batch_size", 0, "test.decode.batch_size must be >= 1, got 0"),
        ("train", "label_smoothing", 1.0, "train.label_smoothing must be in [0, 1), got 1.0"),
        ("train", "label_smoothing", -0.1, "train.label_smoothing must be in [0, 1), got -0.1"),
        ("data", "spm_max_sentences", 0, "data.spm_max_sentences must be >= 1, got 0"),
        ("data", "vocab_size", 4, "data.vocab_size must be >= 8, got 4"),
        ("train", "plateau_factor", 0.0, "train.plateau_factor must be in (0, 1], got 0.0"),
    ],
)
def test_bad_values_fail_at_start_up(tmp_path, section, key, value, message):
    cfg = small_toy_config()
    setattr(attrgetter(section)(cfg), key, value)
    with pytest.raises(ConfigError) as err:
        Trainer.build(cfg, tmp_path)
    assert str(err.value) == message
    assert not (tmp_path / "spm.model").exists()  # before any data work


def test_vocabulary_too_small_for_the_corpus_is_one_line(tmp_path):
    cfg = small_toy_config(max_steps=1)
    cfg.data.vocab_size = 10  # 12 letters and the word boundary need 17 with the 4 special ids
    with pytest.raises(ConfigError, match=r"^data\.vocab_size=10 is too small for this corpus: sentencepiece needs at"):
        train(cfg, tmp_path)


def test_valid_batch_size_zero_on_the_command_line(tmp_path):
    args = [*SMALL_TOY_CLI, "train.max_steps=10", "valid.decode.batch_size=0", f"hydra.run.dir={tmp_path}"]
    result = run_main(train_main, *args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == "error: valid.decode.batch_size must be >= 1, got 0\n"


# ------------------------------------------------------------------------------------------------
# Item 11: a UTF-8 byte order mark is not text


def test_byte_order_mark_is_dropped_from_text_and_jsonl_corpora(tmp_path):
    text = tmp_path / "text"
    text.mkdir()
    (text / "train.de").write_bytes("\ufeffein hund\nzwei katzen\n".encode())
    (text / "train.en").write_bytes("\ufeffa dog\ntwo cats\n".encode())
    ds = load_split(DataConfig(name="custom", root=str(text)), "train")
    assert ds[0]["src"] == "ein hund" and ds[0]["trg"] == "a dog"

    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    rows = [{"de": "ein hund", "en": "a dog"}, {"de": "zwei katzen", "en": "two cats"}]
    (jsonl / "train.jsonl").write_bytes(("\ufeff" + "".join(json.dumps(r) + "\n" for r in rows)).encode())
    ds = load_split(DataConfig(name="custom", root=str(jsonl)), "train")
    assert ds["src"] == ["ein hund", "zwei katzen"]


def test_byte_order_mark_in_translate_input_and_score_files(tmp_path):
    assert decode_line("\ufeffhallo welt\r\n".encode(), "in.txt", 1) == "hallo welt"
    assert decode_line("\ufeffkept\n".encode(), "in.txt", 2) == "\ufeffkept"  # only at the start of the file
    path = tmp_path / "ref.txt"
    path.write_bytes("\ufeffa dog\ntwo cats\n".encode())
    assert read_lines(path) == ["a dog", "two cats"]


# ------------------------------------------------------------------------------------------------
# Item 9: translate input


def test_undecodable_line_is_named_exactly(quick_checkpoint, tmp_path):
    """Text decoding read 8 KB ahead and named a line hundreds of lines too early."""
    bad = tmp_path / "in.txt"
    bad.write_bytes(b"a b\n" * 2999 + b"caf\xe9\n" + b"c d\n" * 2000)
    result = translate_cli(f"checkpoint={quick_checkpoint}", f"input={bad}", f"output={tmp_path / 'out.txt'}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"error: {bad}:3000: undecodable bytes at byte 3 (expected UTF-8)"


class _Echo:
    """A stand-in translator that upper-cases its input."""

    def translate(self, sentences: list[str]) -> list[Translation]:
        return [Translation(s, s.upper(), 0.0) for s in sentences]


def test_interactive_reads_utf8_whatever_the_locale(monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO("grüße\n".encode()), encoding="latin-1")  # a non-UTF-8 locale
    monkeypatch.setattr(sys, "stdin", stdin)
    _interactive(_Echo(), TranslateConfig(checkpoint="unused", interactive=True))
    assert capsys.readouterr().out == "GRÜSSE\n"


def test_long_input_lines_are_cut_and_reported(quick_checkpoint, tmp_path):
    model, tokenizers, _, _ = load_model(quick_checkpoint)
    translator = Translator(model, tokenizers, DecodeOptions(max_input_tokens=20, max_output_extra=2))
    short, long = translator.translate(["a b", "a b c d " * 100_000])  # the second is 800,000 symbols long
    assert short.truncated == 0 and long.truncated > 0 and len(long.src_tokens) == 20

    source = tmp_path / "in.txt"
    source.write_text("a b\n" + "c d " * 50_000 + "\n" + "e f\n")
    result = translate_cli(f"checkpoint={quick_checkpoint}", f"input={source}", "max_input_tokens=30", "beam_size=1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 3
    assert "truncated 1 input lines to max_input_tokens=30 subword tokens (line 2)" in result.stderr


def test_empty_line_gives_n_best_entries(quick_checkpoint):
    result = translate_cli(f"checkpoint={quick_checkpoint}", "beam_size=3", "n_best=3", stdin=b"a b\n\nc\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ||| ")[0] for line in lines] == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    assert lines[3:6] == ["1 |||  ||| 0.0000"] * 3


def test_max_input_tokens_is_checked(tmp_path):
    result = translate_cli(f"checkpoint={tmp_path / 'x.pt'}", "max_input_tokens=1")
    assert result.returncode == 2
    assert result.stderr == "error: max_input_tokens must be >= 2 (a token and </s>) or null, got 1\n"
