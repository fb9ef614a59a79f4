"""Issue 11: the Multi30k recipes compose, precision=auto, several scored test splits."""

from __future__ import annotations

import json
import random

import pytest
import sacrebleu
import torch

from seq2seq.model.seq2seq import build_model, count_parameters
from seq2seq.utils import devices as runtime
from tests.config.test_config import compose_train
from tests.conftest import toy_train_config, write_lines


@pytest.mark.parametrize(
    "experiment, encoder, decoder, attention",
    [("multi30k_transformer", "transformer", "transformer", "dot"), ("multi30k_rnn", "rnn", "rnn", "bahdanau")],
)
def test_recipes_compose_and_build(experiment, encoder, decoder, attention):
    cfg = compose_train([f"experiment={experiment}"])
    assert (cfg.model.encoder, cfg.model.decoder, cfg.model.attention) == (encoder, decoder, attention)
    assert cfg.data.name == "multi30k" and (cfg.data.src_lang, cfg.data.trg_lang) == ("de", "en")
    assert str(cfg.train.precision) == "auto"
    assert cfg.model.bidirectional or encoder == "transformer"
    assert count_parameters(build_model(cfg.model, cfg.data.vocab_size, cfg.data.vocab_size)) > 1_000_000


def test_default_run_validates_often_enough_for_the_plateau_schedule():
    """~117 updates an epoch on Multi30k: the default run must validate often enough for the
    plateau schedule (patience 3) to act several times and for best-checkpoint selection."""
    cfg = compose_train([])
    validations = cfg.train.max_epochs * 117 // cfg.train.valid_every
    assert validations >= 3 * (cfg.train.plateau_patience + 1)
    assert str(cfg.train.precision) == "auto"


@pytest.mark.parametrize(
    "features, expected",
    [(["avx512_bf16"], "bf16"), (["avx512_bf16", "amx_bf16"], "bf16"), (["amx_bf16"], "bf16"), ([], "fp32")],
)
def test_auto_precision_on_cpu(monkeypatch, features, expected):
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: features)
    precision, why = runtime.resolve_precision("auto", torch.device("cpu"))
    assert precision == expected
    assert ("AVX512_BF16" in why or "AMX_BF16" in why) if features else "neither" in why


def test_auto_never_picks_fp16_and_explicit_choices_stay(monkeypatch):
    for features in ([], ["avx512_bf16"]):
        monkeypatch.setattr(runtime, "cpu_bf16_features", lambda f=features: f)
        assert runtime.resolve_precision("auto", torch.device("cpu"))[0] in ("fp32", "bf16")
    for explicit in ("fp32", "bf16", "fp16"):
        assert runtime.resolve_precision(explicit, torch.device("cpu")) == (explicit, "as configured")


def test_auto_precision_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    monkeypatch.setattr(runtime, "cuda_bf16_native", lambda device: True)
    assert runtime.resolve_precision("auto", torch.device("cuda"))[0] == "bf16"
    monkeypatch.setattr(runtime, "cuda_bf16_native", lambda device: False)
    assert runtime.resolve_precision("auto", torch.device("cuda"))[0] == "fp32"


def test_cpu_bf16_probe_reads_this_machine():
    assert set(runtime.cpu_bf16_features()) <= {"avx512_bf16", "amx_bf16"}


def _reversal_corpus(
    root, stem: str, n: int, seed: int, empty_at: int | None = None, lang: tuple[str, str] = ("src", "trg")
) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijkl"
    src = [" ".join(rng.choice(letters) for _ in range(rng.randint(2, 6))) for _ in range(n)]
    trg = [" ".join(reversed(s.split())) for s in src]
    if empty_at is not None:
        src[empty_at] = ""
    write_lines(root / f"{stem}.{lang[0]}", src)
    write_lines(root / f"{stem}.{lang[1]}", trg)
    return trg


def test_every_test_split_is_translated_and_scored_line_for_line(tmp_path):
    from seq2seq.config.schema import DataConfig
    from seq2seq.training.trainer import train

    root = tmp_path / "corpus"
    root.mkdir()
    _reversal_corpus(root, "train", 2000, 1)
    _reversal_corpus(root, "val", 50, 2)
    refs = {
        "test_a": _reversal_corpus(root, "test_a", 40, 3, empty_at=7),
        "test_b": _reversal_corpus(root, "test_b", 30, 4),
    }
    cfg = toy_train_config(max_steps=60, valid_every=60)
    cfg.data = DataConfig(name="custom", root=str(root), src_lang="src", trg_lang="trg", vocab_size=40)
    cfg.test.splits = ["test_a", "test_b", "test_missing"]
    run = tmp_path / "run"
    train(cfg, run)
    for split, ref in refs.items():
        hyp = (run / f"test.{split}.hyp").read_text().split("\n")[:-1]
        assert len(hyp) == len(ref)  # one line per test line, the empty source included
        scores = json.loads((run / f"test.{split}.scores.json").read_text())
        assert scores["split"] == split and scores["sentences"] == len(ref)
        assert scores["bleu"]["signature"].startswith("nrefs:1|case:mixed")
    assert (run / "test.test_a.hyp").read_text().split("\n")[7] == ""  # the empty source
    assert (run / "test.hyp").read_text() == (run / "test.test_a.hyp").read_text()
    assert not (run / "test.test_missing.hyp").exists()


def test_reproduce_tabulates_finished_runs(tmp_path):
    """tools/reproduce.py --collect: scores a finished run from its files into results.{md,json}."""
    from seq2seq.config.schema import DataConfig
    from seq2seq.training.trainer import train
    from tools.reproduce import main, run_dir, summary_table

    root = tmp_path / "corpus"
    root.mkdir()
    for stem, n, seed in (("train", 2000, 1), ("val", 50, 2), ("test_2016_flickr", 40, 3)):
        _reversal_corpus(root, stem, n, seed, lang=("de", "en"))
    cfg = toy_train_config(max_steps=150, valid_every=75)
    cfg.data = DataConfig(name="custom", root=str(root), test_split="test_2016_flickr", vocab_size=40)
    run = run_dir(tmp_path / "runs", "multi30k_rnn", "de-en", 2)
    train(cfg, run)
    (run / "reproduce.json").write_text(json.dumps({"wall_minutes": 0.5, "command": []}))
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Results\n<!-- results:start -->\nold\n<!-- results:end -->\n\nmore\n")
    main(["--collect", "--recipes", "multi30k_rnn", "--seeds", "2", "--out", str(tmp_path / "runs"),
          "--results", str(tmp_path / "docs"), "--data-root", str(root), "--decoding-grid",
          "--readme", str(readme)])  # fmt: skip
    (row,) = json.loads((tmp_path / "docs" / "results.json").read_text())
    scores = json.loads((run / "test.scores.json").read_text())
    assert row["recipe"] == "multi30k_rnn" and row["direction"] == "de-en" and row["seed"] == 2
    assert row["test_bleu"] == round(scores["bleu"]["score"], 2) and row["steps"] == 150
    # Rounded once from sacreBLEU's own score, as `seq2seq-score` prints it (not from the 4-decimal one).
    hyps = (run / "test.hyp").read_text().split("\n")[:-1]
    refs = (root / "test_2016_flickr.en").read_text().split("\n")[:-1]
    assert row["test_bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
    assert row["test_bleu"] > 5 and row["test_bleu_lc"] == row["test_bleu"]  # the toy corpus is lowercase
    assert row["signature_lc"].split("|")[1] == "case:lc" and row["signature"].split("|")[1] == "case:mixed"
    assert row["train_minutes"] == 0.5 and row["params"] > 0 and row["hardware"]
    table = (tmp_path / "docs" / "results.md").read_text()
    assert "| `multi30k_rnn` | de-en | 1 |" in table and row["signature"] in table
    (grid,) = json.loads((tmp_path / "docs" / "experiments" / "decoding_val.json").read_text()).values()
    assert [(r["beam_size"], r["length_penalty"]) for r in grid][:3] == [(1, 1.0), (5, 0.6), (5, 1.0)]
    assert len(grid) == 7 and all(0 <= r["dev_bleu"] <= 100 for r in grid)
    assert "Decoding settings chosen on val" in table
    block = readme.read_text().split("<!-- results:start -->\n")[1].split("\n<!-- results:end -->")[0]
    assert block == summary_table(table) and block.splitlines()[-1].startswith("| `multi30k_rnn` | de-en | 1 |")
    assert readme.read_text().startswith("# Title\n\n## Results\n") and readme.read_text().endswith("\n\nmore\n")


def test_reproduce_runs_the_entry_point_without_the_console_script(monkeypatch, tmp_path):
    """With the package on PYTHONPATH but not installed there is no seq2seq-train: the same entry
    point through this Python (it failed on a GPU machine set up that way)."""
    import argparse

    from tools import reproduce

    args = argparse.Namespace(data_root="D", minutes=3.0, override=["train.device=cuda"])
    monkeypatch.setattr(reproduce.sys, "executable", str(tmp_path / "python"))  # no seq2seq-train beside it
    monkeypatch.setattr(reproduce.shutil, "which", lambda name: None)
    command = reproduce.train_command("multi30k_rnn", "de-en", 1, tmp_path / "run", args)
    assert command[:3] == [str(tmp_path / "python"), "-c", "from seq2seq.cli.commands import train_main; train_main()"]
    assert command[3:7] == ["experiment=multi30k_rnn", "data.src_lang=de", "data.trg_lang=en", "train.seed=1"]
    assert command[-3:] == ["data.root=D", "train.max_minutes=3.0", "train.device=cuda"]
    monkeypatch.setattr(reproduce.shutil, "which", lambda name: "/usr/bin/seq2seq-train")
    assert reproduce.train_command("multi30k_rnn", "de-en", 1, tmp_path, args)[0] == "/usr/bin/seq2seq-train"


def test_reproduce_keep_carries_rows_of_deleted_runs(tmp_path, capsys):
    """--collect --keep: a run whose directory is gone keeps its row of the earlier results.json;
    without --keep it is left out, and a results.json of another shape is a one-line error."""
    from tools.reproduce import RunResult, main

    def row(direction: str, seed: int, bleu: float) -> dict:
        fields = {name: "x" for name in RunResult.__dataclass_fields__}
        numbers = {"steps": 100 * seed, "train_minutes": 44.0, "params": 7_600_000, "dev_bleu": bleu - 1}
        numbers |= {"test_bleu": bleu, "test_bleu_lc": bleu + 0.3, "test_chrf": 60.0, "beam_size": 5}
        numbers |= {"length_penalty": 1.4}
        return fields | numbers | {"recipe": "multi30k_rnn", "direction": direction, "seed": seed}

    docs = tmp_path / "docs"
    docs.mkdir()
    earlier = [row("de-en", 2, 41.0), row("de-en", 1, 40.0), row("en-de", 1, 30.0)]
    (docs / "results.json").write_text(json.dumps(earlier))
    args = ["--collect", "--recipes", "multi30k_rnn", "--out", str(tmp_path / "runs"), "--results", str(docs)]
    main([*args, "--keep", "--seeds", "1", "2", "--directions", "de-en"])
    assert json.loads((docs / "results.json").read_text()) == [earlier[1], earlier[0]]  # the requested ones
    assert (
        "| `multi30k_rnn` | de-en | 2 | 7.6M | 44.00 ± 0.00 | 150 ± 71 | 39.50 ± 0.71 |"
        in (docs / "results.md").read_text()
    )
    with pytest.raises(SystemExit):
        main([*args, "--seeds", "1"])
    assert "no finished run" in capsys.readouterr().err
    (docs / "results.json").write_text(json.dumps([{"recipe": "multi30k_rnn"}]))
    with pytest.raises(SystemExit):
        main([*args, "--keep", "--seeds", "1"])
    err = capsys.readouterr().err.strip()
    assert "results.json: not a results.json written by this script" in err and len(err.splitlines()) == 1
