"""``benchmark.py serve``: seq2seq-serve in a child process under concurrent clients, beside offline."""

import json

import pytest

from seq2seq.bench import serve
from seq2seq.bench.modes import main
from seq2seq.utils.errors import ConfigError

JSON_KEYS = {
    "mode",
    "concurrency",
    "sentences_per_sec",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "offline_sentences_per_sec",
    "ratio",
    "same_outputs",
}
SMALL = [
    "bench.serve_concurrency=[1,4]",
    "bench.serve_sentences=24",
    "bench.serve_beam=2",
    "bench.serve_precision=fp32",
]


def test_serve_mode_reports_each_concurrency_beside_offline_translation(toy_checkpoint, capsys, monkeypatch):
    timed, seconds = serve._timed, []

    def recorded(translator, sentences):  # the offline calls: before the first level and after each
        seconds.append(timed(translator, sentences))
        return seconds[-1]

    monkeypatch.setattr(serve, "_timed", recorded)
    result = main(["serve", f"checkpoint={toy_checkpoint}", *SMALL])
    assert result["server_exit_code"] == 0  # stopped by SIGTERM, exited cleanly
    assert result["sentences"] == 24 and result["precision"] == result["served_precision"] == "fp32"
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [line["concurrency"] for line in lines] == [1, 4]
    for line in lines:
        assert set(line) >= JSON_KEYS and line["mode"] == "serve" and line["beam_size"] == 2
        assert line["sentences"] == 24 and line["sentences_per_sec"] > 0
        assert 0 < line["p50_ms"] <= line["p90_ms"] <= line["p99_ms"]
        assert line["ratio"] == pytest.approx(line["sentences_per_sec"] / line["offline_sentences_per_sec"], rel=0.01)
        assert line["same_outputs"] is True  # served one sentence at a time or batched, as offline
        assert 1 <= line["mean_batch_sentences"] <= line["concurrency"]
    assert lines[0]["mean_batch_sentences"] == 1  # one client: every batch is its one sentence
    assert len(seconds) == 3  # each level beside the offline calls just before and just after it
    for line, before, after in zip(lines, seconds, seconds[1:]):
        assert line["offline_sentences_per_sec"] == pytest.approx(2 * 24 / (before + after), rel=0.01)
    assert "| clients | sent/s | p50 ms |" in out and "| 4 |" in out


def test_serve_mode_shows_why_the_server_did_not_start(toy_checkpoint):
    argv = ["serve", f"checkpoint={toy_checkpoint}", *SMALL, "bench.serve_args=['max_batch_tokens=0']"]
    with pytest.raises(
        ConfigError, match=r"seq2seq-serve exited with status [1-9]:\n(.|\n)*max_batch_tokens must be >= 1"
    ):
        main(argv)


def test_serve_mode_needs_a_checkpoint():
    with pytest.raises(ConfigError, match="benchmark serve needs checkpoint=PATH"):
        main(["serve"])
