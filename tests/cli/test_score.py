"""seq2seq-score agrees with sacreBLEU and fails clearly on mismatched files."""

import json

import pytest
import sacrebleu

from seq2seq.cli.commands import score_main
from tests.conftest import run_main, write_lines

HYP = ["The cat sat on the mat.", "A dog runs in the park .", "", "Two men play football"]
REF1 = ["The cat is sitting on the mat.", "A dog is running in a park.", "Nothing.", "Two men are playing soccer"]
REF2 = ["A cat sat on a mat.", "The dog runs in the park.", "", "Two men play football."]


def score_cli(*args):
    return run_main(score_main, *args)


@pytest.fixture
def files(tmp_path):
    return (
        write_lines(tmp_path / "hyp.txt", HYP),
        write_lines(tmp_path / "ref1.txt", REF1),
        write_lines(tmp_path / "ref2.txt", REF2),
    )


def test_json_matches_sacrebleu(files):
    hyp, ref1, ref2 = files
    result = score_cli(f"hyp={hyp}", f"ref=[{ref1},{ref2}]", "format=json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    refs = [REF1, REF2]
    assert scores["bleu"]["score"] == pytest.approx(sacrebleu.corpus_bleu(HYP, refs).score, abs=1e-4)
    assert scores["chrf"]["score"] == pytest.approx(sacrebleu.corpus_chrf(HYP, refs).score, abs=1e-4)
    assert scores["ter"]["score"] == pytest.approx(sacrebleu.corpus_ter(HYP, refs).score, abs=1e-4)
    assert scores["bleu"]["signature"].startswith("nrefs:2|")


def test_text_report_has_signatures(files):
    hyp, ref1, _ = files
    result = score_cli(f"hyp={hyp}", f"ref={ref1}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["BLEU", "chrF2", "TER"]
    bleu = sacrebleu.corpus_bleu(HYP, [REF1])
    assert lines[0].startswith(f"BLEU = {bleu.score:.2f}")
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp" in lines[0]


def test_mismatched_line_counts(files, tmp_path):
    hyp, _, _ = files
    short = write_lines(tmp_path / "short.txt", REF1[:3])
    result = score_cli(f"hyp={hyp}", f"ref={short}")
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {hyp} has 4 lines but {short} has 3: they must match"


def test_missing_file(tmp_path):
    result = score_cli(f"hyp={tmp_path / 'nope.txt'}", f"ref={tmp_path / 'nope.txt'}")
    assert result.returncode != 0 and result.stderr.strip() == f"error: {tmp_path / 'nope.txt'}: file not found"


def test_gzipped_reference_like_multi30k(files, tmp_path):
    import gzip

    hyp, _, _ = files
    ref = tmp_path / "ref1.txt.gz"
    ref.write_bytes(gzip.compress(("\n".join(REF1) + "\n").encode()))
    result = score_cli(f"hyp={hyp}", f"ref={ref}", "format=json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bleu"]["score"] == pytest.approx(sacrebleu.corpus_bleu(HYP, [REF1]).score)


def test_undecodable_and_corrupt_files_name_the_file_and_line(files, tmp_path):
    hyp, _, _ = files
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf-8\nfine\nfine\n")
    result = score_cli(f"hyp={hyp}", f"ref={bad}")
    assert result.returncode != 0 and result.stderr.strip() == f"error: {bad}:2: undecodable bytes (expected UTF-8)"
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"this is not gzip")
    result = score_cli(f"hyp={hyp}", f"ref={broken}")
    assert result.returncode != 0 and result.stderr.startswith(f"error: {broken}: corrupt or truncated gzip file")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ref=123"], "error: ref=123 must be a file or a list of files: ref=FILE or ref=[FILE1,FILE2]"),
        (["ref=null"], "error: ref=None must be a file or a list of files: ref=FILE or ref=[FILE1,FILE2]"),
        (
            ["tokenize=foo"],
            "error: tokenize=foo is not a sacreBLEU tokenizer; choose one of: none, zh, 13a, intl, char, "
            "ja-mecab, ko-mecab, spm, flores101, flores200, spBLEU-1K",
        ),
    ],
    ids=["ref-int", "ref-null", "tokenize"],
)
def test_bad_settings_fail_in_one_line_before_reading_files(files, args, message):
    hyp, ref1, _ = files
    given = {a.split("=")[0] for a in args}
    defaults = [f"hyp={hyp}"] + ([f"ref={ref1}"] if "ref" not in given else [])
    result = score_cli(*defaults, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]


def test_empty_hypothesis_and_reference_files_say_there_is_nothing_to_score(tmp_path):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("")
    ref.write_text("")
    result = score_cli(f"hyp={hyp}", f"ref={ref}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: hyp={hyp} and ref={ref} have no lines: nothing to score"]


def test_a_bad_bleu_tokenizer_for_validation_stops_training_at_start_up(tmp_path):
    """It used to pass start-up and end the run with a traceback at the first validation."""
    from seq2seq.training.trainer import train
    from seq2seq.utils.errors import ConfigError
    from tests.conftest import small_toy_config

    cfg = small_toy_config(max_steps=2, valid_every=2)
    cfg.valid.bleu_tokenize = "foo"
    with pytest.raises(ConfigError, match=r"^valid.bleu_tokenize=foo is not a sacreBLEU tokenizer; choose one of"):
        train(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "spm.model").exists()
