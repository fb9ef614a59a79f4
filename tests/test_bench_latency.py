"""``benchmark.py latency``: the model loads as seq2seq-translate loads it, then one sentence at a time."""

import json

from seq2seq.benchmark import main


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
