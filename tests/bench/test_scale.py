"""``benchmark.py scale``: preprocessing synthetic corpora, each in a fresh process, cold and cached."""

from seq2seq.bench.modes import main


def test_scale_mode_prepares_a_synthetic_corpus_in_child_processes(tmp_path, capsys):
    result = main(["scale", "bench.scale_sizes=[300]", f"bench.scale_dir={tmp_path}", "data.spm_max_sentences=300"])
    row = result["sizes"]["300"]
    assert row["batches"] > 0 and row["cold_seconds"] >= 0 and row["cached_seconds"] >= 0
    assert row["cold_peak_rss_mb"] > 0 and row["cached_peak_rss_mb"] > 0
    lines = (tmp_path / "corpus_300" / "train.src").read_text().splitlines()
    assert len(lines) == 300 and all(lines)
    assert "| 300 |" in capsys.readouterr().out
