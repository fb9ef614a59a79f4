"""``benchmark.py latency`` and ``translate``: load as seq2seq-translate does; engines side by side."""

import json

from seq2seq.bench.modes import main


def test_latency_reports_load_time_and_per_sentence_milliseconds(toy_checkpoint, capsys):
    argv = [
        "latency",
        f"checkpoint={toy_checkpoint}",
        "bench.latency_sentences=6",
        "bench.engines=[torch]",
        "bench.precisions=[fp32,int8]",
    ]
    result = main(argv)
    rows = {r["precision"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "int8"}
    for row in rows.values():
        assert row["engine"] == "torch" and row["beam_size"] == 5 and row["sentences"] == 6
        assert 0 < row["load_seconds"] < 60
        assert 0 < row["latency_ms_median"] <= row["latency_ms_p90"]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["precision"] for x in lines] == ["fp32", "int8"]
    assert all(x["mode"] == "latency" for x in lines)


def test_latency_mode_also_times_the_shortlist(toy_checkpoint, tmp_path):
    from seq2seq.config.schema import ExportConfig
    from seq2seq.deploy.export import run_export

    shortlist = tmp_path / "toy.shortlist"
    run_export(ExportConfig(checkpoint=str(toy_checkpoint), output=str(shortlist), format="shortlist"))
    argv = ["latency", f"checkpoint={toy_checkpoint}", "bench.latency_sentences=4", "bench.engines=[torch]"]
    result = main([*argv, "bench.precisions=[fp32]", f"bench.shortlist={shortlist}"])
    assert [r["shortlist"] for r in result["rows"]] == [False, True]
    assert all(r["latency_ms_median"] > 0 and r["sentences"] == 4 for r in result["rows"])


def test_translate_mode_puts_engines_side_by_side_with_bleu_and_agreement(toy_checkpoint, capsys):
    argv = [
        "translate",
        f"checkpoint={toy_checkpoint}",
        "bench.beams=[1,2]",
        "bench.decode_repeats=1",
        "bench.engines=[torch]",
        "bench.precisions=[fp32,int8]",
    ]
    result = main(argv)
    rows = {(r["precision"], r["beam_size"]): r for r in result["rows"]}
    assert set(rows) == {("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)}
    for row in rows.values():
        assert row["engine"] == "torch" and row["sentences_per_sec"] > 0 and 0 <= row["bleu"] <= 100
        assert 0 < row["mfu"] < 1 and 0 <= row["same_as_torch_fp32"] <= 1
    assert rows[("fp32", 1)]["same_as_torch_fp32"] == rows[("fp32", 2)]["same_as_torch_fp32"] == 1.0
    assert rows[("int8", 1)]["same_as_torch_fp32"] > 0.5  # int8 mostly keeps the trained toy model's outputs
    out = capsys.readouterr().out
    assert "| torch | int8 |" in out and "greedy: sent/s | BLEU | = fp32 | MFU" in out


def test_translate_mode_adds_shortlisted_rows_with_their_own_flops(toy_checkpoint, tmp_path, capsys):
    from seq2seq.config.schema import ExportConfig
    from seq2seq.deploy.export import run_export

    shortlist = tmp_path / "toy.shortlist"
    run_export(ExportConfig(checkpoint=str(toy_checkpoint), output=str(shortlist), format="shortlist", frequent=0))
    argv = [
        "translate",
        f"checkpoint={toy_checkpoint}",
        "bench.beams=[1]",  # greedy: with k > 1 a shortlist may also change which hypotheses fill the beam
        "bench.decode_repeats=1",
        "bench.engines=[torch]",
        "bench.precisions=[fp32]",
        f"bench.shortlist={shortlist}",
        "bench.parallel_batches=2",
    ]
    rows = {r["shortlist"]: r for r in main(argv)["rows"]}
    full, listed = rows[False], rows[True]
    assert full["shortlist_size"] is None and 4 < listed["shortlist_size"] < 40  # of the toy vocabulary's 64
    # The toy task's outputs are copies of source tokens: the shortlist keeps every greedy choice.
    assert listed["same_as_torch_fp32"] == 1.0 and listed["bleu"] == full["bleu"]
    assert listed["gflop_per_sentence"] <= full["gflop_per_sentence"]
    assert "| torch + shortlist | fp32 |" in capsys.readouterr().out
