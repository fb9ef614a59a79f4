"""``data=hub``: Hugging Face datasets from a local directory (offline), and failing fast without network."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest

from seq2seq.cli.commands import train_main
from seq2seq.config.schema import DataConfig
from seq2seq.data import hub
from seq2seq.data.corpus import load_split
from seq2seq.utils.errors import ConfigError, DataError, MissingSplitError
from tests.conftest import run_main


def pairs(n: int, offset: int = 0) -> list[dict[str, str]]:
    return [{"de": f"der hund {i} läuft", "en": f"the dog {i} runs"} for i in range(offset, offset + n)]


def saved_dataset(path: Path, train: int = 300) -> Path:
    """``save_to_disk`` output with a ``translation`` column, like the WMT datasets."""
    splits = {"train": pairs(train), "validation": pairs(20, 1000), "test": pairs(20, 2000)}
    dd = datasets.DatasetDict({k: datasets.Dataset.from_dict({"translation": v}) for k, v in splits.items()})
    dd.save_to_disk(str(path))
    return path


def hub_cfg(name: Path | str, **kw) -> DataConfig:
    return DataConfig(name="hub", hub_name=str(name), src_lang="de", trg_lang="en", **kw)


def test_saved_dataset_with_a_translation_column(tmp_path):
    path = saved_dataset(tmp_path / "wmt_like")
    before = sorted(p.name for p in path.rglob("*"))
    train = load_split(hub_cfg(path, cache_dir=str(tmp_path / "cache")), "train")
    assert len(train) == 300 and train[0] == {"src": "der hund 0 läuft", "trg": "the dog 0 runs", "line": 1}
    assert load_split(hub_cfg(path), "test")[0]["src"] == "der hund 2000 läuft"
    assert sorted(p.name for p in path.rglob("*")) == before  # nothing written into the user's directory


def test_directory_of_files_with_one_column_per_language(tmp_path):
    for split, n in (("train", 30), ("validation", 5)):
        rows = [{**p, "id": i} for i, p in enumerate(pairs(n))]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = hub_cfg(tmp_path)
    assert load_split(cfg, "valid")["trg"][:2] == ["the dog 0 runs", "the dog 1 runs"]
    with pytest.raises(MissingSplitError, match="no split 'test'"):
        load_split(cfg, "test")


def test_wrong_languages_splits_and_settings_are_one_line_errors(tmp_path):
    path = saved_dataset(tmp_path / "d", train=5)
    with pytest.raises(DataError, match="its translations have languages de, en, not fr"):
        load_split(DataConfig(name="hub", hub_name=str(path), src_lang="fr", trg_lang="en"), "train")
    with pytest.raises(MissingSplitError, match="no split 'dev' \\(it has train, validation, test\\)"):
        load_split(hub_cfg(path, hub_valid_split="dev"), "valid")
    with pytest.raises(ConfigError, match="data=hub reads data.hub_name, not data.root"):
        load_split(hub_cfg(path, root=str(tmp_path)), "train")
    with pytest.raises(DataError, match="is a file"):
        load_split(hub_cfg(path / "dataset_dict.json"), "train")


def test_unreachable_hub_fails_within_seconds_with_the_hint(monkeypatch):
    """No network and no data.root: the probe fails, datasets runs offline and gives up at once."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # as without HF_HUB_OFFLINE=1
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    start = time.perf_counter()
    with pytest.raises(DataError, match="the hub is not reachable and it is not in the datasets cache.*data.root"):
        load_split(DataConfig(name="multi30k", hub_name="bentrevett/multi30k-not-cached"), "valid")
    assert time.perf_counter() - start < 10
    assert datasets.config.HF_HUB_OFFLINE is False  # offline mode was only for that load


def test_probe_gives_up_within_its_timeout(monkeypatch):
    monkeypatch.setattr(hub, "PROBE_SECONDS", 0.5)
    start = time.perf_counter()
    assert hub._can_connect("192.0.2.1", 443) is False  # TEST-NET-1: never answers
    assert time.perf_counter() - start < 2


def test_train_from_a_local_hub_directory(tmp_path):
    path = saved_dataset(tmp_path / "corpus")
    run = tmp_path / "run"
    args = [
        "data=hub",
        f"data.hub_name={path}",
        "data.src_lang=de",
        "data.trg_lang=en",
        "data.vocab_size=40",
        "model.emb_dim=16",
        "model.hidden_size=16",
        "model.attention_dim=16",
        "train.max_steps=4",
        "train.max_epochs=null",
        "train.valid_every=4",
        "train.progress=false",
        "test.decode.beam_size=1",
        f"hydra.run.dir={run}",
    ]
    done = run_main(train_main, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "test.hyp").is_file()
    assert len((run / "test.hyp").read_text().splitlines()) == 20
