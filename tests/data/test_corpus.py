import gzip
import json
import logging

import pytest

from seq2seq.config.schema import DataConfig
from seq2seq.data.corpus import load_split
from seq2seq.utils.errors import ConfigError, DataError
from tests.conftest import write_lines

PAIRS = [("ein hund", "a dog"), ("zwei katzen", "two cats"), ("drei vögel", "three birds")]


def local_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="custom", root=str(root), src_lang="de", trg_lang="en", valid_split="val", **kw)


def write_text_pair(root, split="train", pairs=PAIRS, gz=False):
    for lang, side in (("de", 0), ("en", 1)):
        lines = "".join(p[side] + "\n" for p in pairs).encode()
        path = root / f"{split}.{lang}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(lines) if gz else lines)


@pytest.mark.parametrize("gz", [False, True])
def test_plain_text_pairs(tmp_path, gz):
    write_text_pair(tmp_path, gz=gz)
    ds = load_split(local_cfg(tmp_path), "train")
    assert list(zip(ds["src"], ds["trg"])) == PAIRS
    assert list(ds["line"]) == [1, 2, 3]


def test_tsv_and_jsonl(tmp_path):
    write_lines(tmp_path / "train.tsv", [f"{s}\t{t}" for s, t in PAIRS])
    ds = load_split(local_cfg(tmp_path), "train")
    assert list(zip(ds["src"], ds["trg"])) == PAIRS
    jsonl = tmp_path / "j"
    jsonl.mkdir()
    records = [{"de": s, "en": t} for s, t in PAIRS[:2]] + [{"translation": {"de": PAIRS[2][0], "en": PAIRS[2][1]}}]
    write_lines(jsonl / "train.jsonl", [json.dumps(r, ensure_ascii=False) for r in records])
    ds = load_split(local_cfg(jsonl), "train")
    assert list(zip(ds["src"], ds["trg"])) == PAIRS


def test_only_newline_splits_lines(tmp_path):
    """Unicode line separators inside a sentence must not split it (str.splitlines would)."""
    pairs = [("a\u2028b", "x"), ("c", "y")]
    write_text_pair(tmp_path, pairs=pairs)
    ds = load_split(local_cfg(tmp_path), "train")
    assert list(ds["src"]) == ["a\u2028b", "c"]


def test_valid_and_test_split_names(tmp_path):
    write_text_pair(tmp_path, "val")
    write_text_pair(tmp_path, "test_2016_flickr", PAIRS[:2])
    cfg = local_cfg(tmp_path, test_split="test_2016_flickr")
    assert len(load_split(cfg, "valid")) == 3
    assert len(load_split(cfg, "test")) == 2


def test_edited_file_is_reread(tmp_path):
    write_text_pair(tmp_path)
    assert len(load_split(local_cfg(tmp_path), "train")) == 3
    write_text_pair(tmp_path, pairs=PAIRS[:2])
    assert len(load_split(local_cfg(tmp_path), "train")) == 2


def test_empty_lines_are_skipped_and_counted(tmp_path, caplog):
    write_text_pair(tmp_path, pairs=[("a", "x"), ("", "y"), ("c", "   "), ("d", "w")])
    with caplog.at_level(logging.WARNING):
        ds = load_split(local_cfg(tmp_path), "train")
    assert list(ds["src"]) == ["a", "d"]
    assert "skipped 2 pairs with an empty side (line 2, 3)" in caplog.text


def test_mismatched_line_counts_name_both_files(tmp_path):
    write_lines(tmp_path / "train.de", ["a", "b", "c"])
    write_lines(tmp_path / "train.en", ["x", "y"])
    with pytest.raises(DataError, match=r"train\.de has 3 lines but .*train\.en has 2"):
        load_split(local_cfg(tmp_path), "train")


def test_undecodable_bytes_name_file_and_line(tmp_path):
    write_lines(tmp_path / "train.en", ["x", "y", "z"])
    (tmp_path / "train.de").write_bytes(b"ok\nfine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"train\.de:3: undecodable bytes"):
        load_split(local_cfg(tmp_path), "train")


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="no train files found"):
        load_split(local_cfg(tmp_path), "train")
    write_lines(tmp_path / "train.de", ["a"])
    with pytest.raises(DataError, match=r"train\.en\[\.gz\]: file not found"):
        load_split(local_cfg(tmp_path), "train")
    with pytest.raises(DataError, match="no such directory"):
        load_split(local_cfg(tmp_path / "nope"), "train")


def test_empty_corpus(tmp_path):
    (tmp_path / "train.de").write_text("")
    (tmp_path / "train.en").write_text("")
    with pytest.raises(DataError, match="corpus is empty"):
        load_split(local_cfg(tmp_path), "train")


def test_malformed_tsv_and_jsonl_lines(tmp_path):
    write_lines(tmp_path / "train.tsv", ["a\tx", "only one field"])
    with pytest.raises(DataError, match=r"train\.tsv:2: expected 2 tab-separated fields, found 1"):
        load_split(local_cfg(tmp_path), "train")
    (tmp_path / "train.tsv").unlink()
    write_lines(tmp_path / "train.jsonl", ['{"de": "a", "en": "x"}', "{not json"])
    with pytest.raises(DataError, match=r"train\.jsonl:2: invalid JSON"):
        load_split(local_cfg(tmp_path), "train")
    write_lines(tmp_path / "train.jsonl", ['{"de": "a", "fr": "x"}'])
    with pytest.raises(DataError, match=r"train\.jsonl:1: expected string fields 'de' and 'en'"):
        load_split(local_cfg(tmp_path), "train")


def test_toy_reverse_is_deterministic_and_reversed():
    cfg = DataConfig(name="toy_reverse", toy_train_size=50, toy_valid_size=10)
    a, b = load_split(cfg, "train"), load_split(cfg, "train")
    assert list(a["src"]) == list(b["src"])
    for src, trg in zip(a["src"], a["trg"]):
        assert trg.split() == src.split()[::-1]
        assert cfg.toy_min_len <= len(src.split()) <= cfg.toy_max_len
    assert list(load_split(cfg, "valid")["src"]) != list(a["src"])[:10]


def test_language_checks():
    with pytest.raises(ConfigError, match="multi30k has languages en, de, fr, cs"):
        load_split(DataConfig(name="multi30k", root=".", src_lang="ja"), "train")
    with pytest.raises(ConfigError, match="both 'de'"):
        load_split(DataConfig(name="multi30k", root=".", src_lang="de", trg_lang="de"), "train")


def test_hub_without_network_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = DataConfig(name="multi30k", hub_name="bentrevett/multi30k", cache_dir=None)
    with pytest.raises(DataError, match="cannot load hub dataset bentrevett/multi30k"):
        load_split(cfg, "valid")


def test_damaged_gzip_is_one_clear_error(tmp_path):
    write_text_pair(tmp_path, gz=True)
    path = tmp_path / "train.de.gz"
    data = bytearray(path.read_bytes())
    data[12:20] = bytes(b ^ 0xFF for b in data[12:20])  # a valid header, corrupt deflate data
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train\.de\.gz: corrupt or truncated gzip file"):
        load_split(local_cfg(tmp_path), "train")
    path.write_bytes(gzip.compress(b"ein hund\nzwei katzen\ndrei vogel\n")[:-12])  # cut off
    with pytest.raises(DataError, match=r"train\.de\.gz: corrupt or truncated gzip file"):
        load_split(local_cfg(tmp_path), "train")
