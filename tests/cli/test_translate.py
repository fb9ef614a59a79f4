"""seq2seq-translate: files, stdin, empty lines, n-best, alignments (JSON lines, Pharaoh), heatmaps, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint.store import load_model
from seq2seq.cli.commands import translate_main
from seq2seq.decode.translator import DecodeOptions, Translator
from tests.conftest import Finished, run_main, write_lines

SENTENCES = ["a b c", "", "f e d c", "   ", "k a"]


def reverse(s: str) -> str:
    return " ".join(s.split()[::-1])


def translate_cli(*args: str, stdin: str = "", cwd: Path | None = None) -> Finished:
    return run_main(translate_main, *args, stdin=stdin, cwd=cwd)


@pytest.fixture(scope="module")
def translator(toy_checkpoint) -> Translator:
    model, tokenizers, _, _ = load_model(toy_checkpoint)
    return Translator(model, tokenizers, DecodeOptions(beam_size=3, return_attention=True))


def test_translator_keeps_order_and_empty_lines(translator):
    out = translator.translate(SENTENCES)
    assert [t.text for t in out] == ["c b a", "", "c d e f", "", "a k"]
    assert [t.source for t in out] == SENTENCES


def test_translation_alignment_shapes(translator):
    (t,) = translator.translate(["a b c d"])
    assert t.src_tokens[-1] == "</s>" and t.trg_tokens[-1] == "</s>"
    assert t.attention_layers.shape == (1, 1, len(t.trg_tokens), len(t.src_tokens))  # (L, H, T, S)
    assert t.attention.shape == (len(t.trg_tokens), len(t.src_tokens))
    assert abs(t.attention.sum(-1) - 1).max() < 1e-5


def test_file_to_file_with_alignments_and_heatmaps(toy_checkpoint, tmp_path):
    src = write_lines(tmp_path / "in.txt", SENTENCES)
    result = translate_cli(
        f"checkpoint={toy_checkpoint}",
        f"input={src}",
        f"output={tmp_path / 'out.txt'}",
        "beam_size=4",
        f"alignments={tmp_path / 'align.jsonl'}",
        f"heatmaps={tmp_path / 'maps'}",
        "max_heatmaps=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = (tmp_path / "out.txt").read_text().split("\n")
    assert lines == ["c b a", "", "c d e f", "", "a k", ""]  # 5 lines + final newline
    records = [json.loads(line) for line in (tmp_path / "align.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
    for record, sentence in zip(records, SENTENCES):
        assert set(record) >= {"src_tokens", "trg_tokens", "attention"}
        if not sentence.strip():
            assert record["attention"] == [] and record["output"] == ""
            continue
        assert len(record["attention"]) == len(record["trg_tokens"])
        for row in record["attention"]:
            assert len(row) == len(record["src_tokens"])
            assert sum(row) == pytest.approx(1.0, abs=1e-4)
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["line_00001.png", "line_00003.png"]
    assert not list(tmp_path.glob(".*tmp"))  # outputs were written atomically, no temporaries left
    assert not (tmp_path / "outputs").exists()  # translate creates no Hydra run directory


def test_stdin_to_stdout(toy_checkpoint, tmp_path):
    result = translate_cli(f"checkpoint={toy_checkpoint}", stdin="a b c\n\nd e\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "c b a\n\ne d\n"
    assert "translated 3 lines" in result.stderr  # logs go to stderr, never into the output


def test_n_best_moses_format(toy_checkpoint, tmp_path):
    result = translate_cli(f"checkpoint={toy_checkpoint}", "beam_size=3", "n_best=2", stdin="a b\n", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("0 ||| b a ||| ")
    scores = [float(line.split(" ||| ")[2]) for line in lines]
    assert scores[0] >= scores[1]


def test_interactive_prompt(toy_checkpoint, tmp_path):
    result = translate_cli(f"checkpoint={toy_checkpoint}", "interactive=true", stdin="a b c\nd e\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "c b a\ne d\n"
    assert result.stderr.count("> ") == 3  # a prompt per line, and one that meets end of input


def test_pharaoh_output(toy_checkpoint, tmp_path):
    """The reversal is read off the attention of the trained toy model as word links."""
    result = translate_cli(f"checkpoint={toy_checkpoint}", "align_format=pharaoh", stdin="a b c\n\nd e f g\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["c b a ||| 0-2 1-1 2-0", " ||| ", "g f e d ||| 0-3 1-2 2-1 3-0"]
    out = tmp_path / "hyp.align"
    result = translate_cli(
        f"checkpoint={toy_checkpoint}",
        "align_format=pharaoh",
        f"alignments={out}",
        f"output={tmp_path / 'o.txt'}",
        stdin="a b c\n\nd e f g\n",
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["0-2 1-1 2-0", "", "0-3 1-2 2-1 3-0"]
    assert (tmp_path / "o.txt").read_text() == "c b a\n\ng f e d\n"


def test_interactive_terminal_heatmap(toy_checkpoint):
    result = translate_cli(f"checkpoint={toy_checkpoint}", "interactive=true", "show_attention=true", stdin="a b c\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "c b a"
    assert "source: 0:a  1:b  2:c  3:</s>" in result.stdout
    assert max(len(line) for line in out) <= 80


def test_tensorboard_heatmaps(toy_checkpoint, tmp_path):
    src = write_lines(tmp_path / "in.txt", SENTENCES)
    result = translate_cli(
        f"checkpoint={toy_checkpoint}", f"input={src}", f"tensorboard={tmp_path / 'tb'}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == ["translate/line_00001", "translate/line_00003", "translate/line_00005"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["checkpoint=/no/such.pt"], "error: /no/such.pt: checkpoint not found"),
        (["input=/no/such.txt"], "error: input=/no/such.txt: file not found"),
        (["n_best=9"], "error: n_best=9 must be between 1 and beam_size=5"),
        (["beam=4"], "error: unknown config key 'beam'; valid keys of the config: checkpoint, input"),
        ([], "error: checkpoint is required: add checkpoint=..."),
    ],
)
def test_errors_are_one_line(toy_checkpoint, tmp_path, args, message):
    if not any(a.startswith("checkpoint=") for a in args) and args:
        args = [f"checkpoint={toy_checkpoint}", *args]
    result = translate_cli(*args, stdin="", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr


def test_training_ends_with_a_test_evaluation(toy_checkpoint):
    run_dir = toy_checkpoint.parent.parent
    hyp = (run_dir / "test.hyp").read_text().splitlines()
    assert len(hyp) == 200  # the toy test split, one line per pair
    scores = json.loads((run_dir / "test.scores.json").read_text())
    assert scores["beam_size"] == 3
    assert scores["bleu"]["score"] > 80
    assert scores["bleu"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert {"chrf", "ter"} <= set(scores)


def test_translator_decodes_in_eval_mode_and_restores_the_mode():
    """Translating in the middle of training must not use dropout, nor leave eval mode on."""
    from seq2seq.data.tokenizer import Tokenizers, train_sentencepiece
    from tests.conftest import tiny_model

    tok = train_sentencepiece(["a b c d e f g h"] * 20, vocab_size=23)
    model = tiny_model("rnn", "bahdanau", vocab=len(tok), dropout=0.5, emb_dropout=0.5).train()
    translator = Translator(model, Tokenizers(tok, tok), DecodeOptions(beam_size=2))
    first = [t.text for t in translator.translate(["a b c", "d e"] * 3)]
    assert model.training
    assert [t.text for t in translator.translate(["a b c", "d e"] * 3)] == first  # no dropout noise
    model.eval()
    assert [t.text for t in translator.translate(["a b c", "d e"] * 3)] == first


def test_gzipped_input_file(toy_checkpoint, tmp_path):
    import gzip

    src = tmp_path / "in.txt.gz"
    src.write_bytes(gzip.compress(b"a b c\n\nd e\n"))
    result = translate_cli(f"checkpoint={toy_checkpoint}", f"input={src}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "c b a\n\ne d\n"
    src.write_bytes(b"not gzip at all")
    result = translate_cli(f"checkpoint={toy_checkpoint}", f"input={src}", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {src}: corrupt or truncated gzip file")
