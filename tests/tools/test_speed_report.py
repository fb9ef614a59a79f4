"""tools/speed_report.py: the Speed page's tables are rendered from the benchmarks' own output."""

import json
from pathlib import Path

import pytest

from seq2seq.utils.errors import ConfigError
from tools.markdown_blocks import fill_marked_block
from tools.speed_report import EXPERIMENTS, jobs, main, parse_args, render

REPO = Path(__file__).resolve().parents[2]


def readme_block(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def test_speed_page_tables_are_the_ones_rendered_from_docs_experiments_speed_now():
    out = REPO / "docs" / "experiments" / "speed_now"
    page = REPO / "docs" / "speed.md"
    labels = sorted(p.name[len("decode.") : -len(".txt")] for p in out.glob("decode.*.txt"))
    text = page.read_text(encoding="utf-8")
    for name, block in render(out, list(EXPERIMENTS), labels).items():
        assert readme_block(text, name) == block


def write_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("a table\n" + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def fake_outputs(out: Path) -> None:
    for precision, speed, peak in (("fp32", 1000.4, 190e9), ("bf16", 1500.0, 400e9)):
        row = {"parameters": 7_578_624, "flops_per_token": 46.4e6, "tokens_per_sec": speed, "mfu": speed / 2000,
               "epoch_seconds": 100.0, "peak_flops": peak, "padding_fraction": 0.044}  # fmt: skip
        write_lines(out / f"transformer_small.{precision}.txt", [row])
    decode = []
    for engine, shortlist, precision, greedy, beam in (
        ("torch", False, "fp32", 300, 100),
        ("torch", True, "int8", 900, 250),
        ("ctranslate2", False, "int8", 800, 300),
    ):
        for size, speed in ((1, greedy), (5, beam)):
            decode.append({"mode": "translate", "engine": engine, "shortlist": shortlist, "precision": precision,
                           "beam_size": size, "sentences_per_sec": speed, "bleu": 40.0 + size / 10})  # fmt: skip
    write_lines(out / "decode.tiny.txt", decode)
    latency = [{"mode": "latency", "engine": "torch", "shortlist": False, "precision": "fp32", "load_seconds": 0.2,
                "latency_ms_median": 50.0, "latency_ms_p90": 80.0}]  # fmt: skip
    write_lines(out / "latency.tiny.txt", latency)


def test_tables_from_benchmark_json_lines(tmp_path):
    fake_outputs(tmp_path)
    blocks = render(tmp_path, ["transformer_small"], ["tiny"])
    train = blocks["speed-train"].splitlines()
    assert train[2] == ("| `transformer_small` (3+3 Transformer, d 256, 4 heads) | 7.6M | 46.4 | 1,000 | 50.0 % "
                        "| 1,500 | 75.0 % | 100 s / 100 s |")  # fmt: skip
    assert "fp32 190–190 GFLOP/s, bf16 400–400 GFLOP/s; padding 4.4 %" in train[-1]
    decode = blocks["speed-decode"].splitlines()[2:]
    assert decode[0] == "| `tiny` | PyTorch | fp32 | 300 | 100 | 40.50 | 1.00× |"
    assert decode[1] == "|  | PyTorch + shortlist | int8 | 900 | 250 | 40.50 | 2.50× |"
    assert decode[2] == "|  | CTranslate2 | int8 | 800 | **300** | 40.50 | **3.00×** |"  # the fastest in bold
    latency = blocks["speed-latency"].splitlines()
    assert latency[0] == "| model | PyTorch fp32 | load |"
    assert latency[2] == "| `tiny` | 50.0 ms (80.0) | 0.20–0.20 s |"


def test_collect_fills_only_the_marked_blocks_of_a_readme(tmp_path, capsys):
    fake_outputs(tmp_path)
    readme = tmp_path / "README.md"
    names = ("speed-train", "speed-decode", "speed-latency")
    blocks = "".join(f"<!-- {n}:start -->\nold\n<!-- {n}:end -->\n\ntext {n}\n" for n in names)
    readme.write_text("# Title\n\n" + blocks, encoding="utf-8")
    main(["--collect", "--out", str(tmp_path), "--experiments", "transformer_small", "--readme", str(readme)])
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n") and "old" not in text and text.endswith("text speed-latency\n")
    assert readme_block(text, "speed-decode").startswith("| model | engine |")
    assert "<!-- speed-train -->" in capsys.readouterr().out


def test_bad_input_gets_one_line_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="expected --checkpoint LABEL=PATH"):
        parse_args(["--checkpoint", "no-label"])
    with pytest.raises(ConfigError, match="no <!-- speed-train:start --> ... <!-- speed-train:end --> block"):
        (tmp_path / "R.md").write_text("nothing\n")
        fill_marked_block(tmp_path / "R.md", "speed-train", "x")
    with pytest.raises(SystemExit):
        main(["--collect", "--out", str(tmp_path), "--experiments", "transformer_small", "--readme", ""])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "transformer_small.fp32.txt: no such benchmark output" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):  # checked before any benchmark runs
        main(["--data-root", "D", "--checkpoint", "rnn=R.pt", "--readme", str(tmp_path / "nowhere.md")])
    assert "nowhere.md: no such file" in capsys.readouterr().err
    fake_outputs(tmp_path)
    (tmp_path / "latency.tiny.txt").write_text("Traceback ...\n")
    with pytest.raises(ConfigError, match="latency.tiny.txt: no JSON line"):
        render(tmp_path, ["transformer_small"], ["tiny"])
    lines = (tmp_path / "decode.tiny.txt").read_text().splitlines()
    (tmp_path / "decode.tiny.txt").write_text("\n".join(x for x in lines if '"fp32"' not in x) + "\n")
    with pytest.raises(ConfigError, match="decode.tiny.txt: needs beam 5 of every engine, PyTorch fp32 among them"):
        render(tmp_path, ["transformer_small"], ["tiny"])


def test_the_benchmarks_it_runs():
    override = "rnn:test.decode.length_penalty=1.4"
    args = parse_args(["--data-root", "D", "--checkpoint", "rnn=R.pt", "--override", override])
    assert args.out == "docs/experiments/speed_now" and args.readme == "docs/speed.md"
    names = {name: job for name, job in jobs(args, {"rnn": Path("S.pt")})}
    expected = [f"{e}.{p}.txt" for e in EXPERIMENTS for p in ("fp32", "bf16")]
    assert list(names)[:6] == expected
    assert names["transformer_small.bf16.txt"][:2] == ["train", "experiment=transformer_small"]
    train = names["transformer_small.bf16.txt"]
    assert "train.precision=bf16" in train and "data.root=D" in train
    assert names["profile.transformer_small.fp32.txt"][0] == "profile"
    decode = names["decode.rnn.txt"]
    assert decode[:2] == ["translate", "checkpoint=R.pt"] and "bench.shortlist=S.pt" in decode
    assert decode[-1] == "test.decode.length_penalty=1.4"
    assert names["latency.rnn.txt"][:2] == ["latency", "checkpoint=R.pt"]
