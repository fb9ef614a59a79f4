"""Every config composes and builds; mistakes fail at start-up with one line naming the options."""

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq.cli.commands import train_main
from seq2seq.config.compose import config_dir, typed_config
from seq2seq.config.schema import TrainRunConfig, register_configs
from seq2seq.config.serialization import from_container, to_container
from seq2seq.model.seq2seq import build_model, count_parameters
from tests.conftest import Finished, run_main

CONFIGS = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_train(overrides: list[str]) -> TrainRunConfig:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return typed_config(cfg, TrainRunConfig)


def test_groups_have_the_contract_options():
    assert {"multi30k", "toy_reverse"} <= set(options("data"))
    assert {"rnn", "transformer"} <= set(options("model"))


@pytest.mark.parametrize(
    "data, model, train, attention",
    list(itertools.product(options("data"), options("model"), options("train"), ["bahdanau", "dot"])),
)
def test_every_combination_composes_and_builds(data, model, train, attention):
    overrides = [f"data={data}", f"model={model}", f"train={train}", f"model.attention={attention}"]
    if data == "custom":
        overrides.append("data.root=/somewhere")
    if data == "hub":
        overrides += ["data.hub_name=wmt14", "data.hub_config=de-en", "data.src_lang=de", "data.trg_lang=en"]
    cfg = compose_train(overrides)
    assert cfg.model.encoder == model and cfg.model.attention == attention
    assert cfg.train.max_steps or cfg.train.max_epochs
    net = build_model(cfg.model, 100, 100)
    assert count_parameters(net) > 0


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose_and_build(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert count_parameters(build_model(cfg.model, 8000, 8000)) > 0


def test_defaults():
    cfg = compose_train([])
    assert cfg.data.name == "multi30k" and (cfg.data.src_lang, cfg.data.trg_lang) == ("de", "en")
    assert cfg.data.test_split == "test_2016_flickr"
    assert cfg.model.encoder == "rnn" and cfg.model.attention == "bahdanau"
    assert cfg.valid.attention_examples == 3


def test_toy_data_selects_toy_training_unless_overridden():
    assert compose_train(["data=toy_reverse"]).train.batch_tokens == 1024
    assert compose_train(["data=toy_reverse", "train=default"]).train.batch_tokens == 4096


def test_config_roundtrip_through_a_plain_dict():
    cfg = compose_train(["model=transformer", "model.attention=dot", "train.lr=0.0003"])
    again = from_container(TrainRunConfig, to_container(cfg))
    assert again == cfg


def run_cli(*args: str, cwd: Path | None = None) -> Finished:
    return run_main(train_main, *args, cwd=cwd)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.attention=luong", "Invalid value 'luong', expected one of [bahdanau, dot]"),
        ("model=lstm", "available options for model: rnn, transformer"),
        ("data=wmt", "available options for data: custom, hub, multi30k, toy_reverse"),
        ("train.nope=1", "unknown config key 'train.nope'; valid keys of train: optimizer, lr,"),
        ("+model.extra=1", "unknown config key 'model.extra'"),
        ("test.beam_size=5", "unknown config key 'test.beam_size'; it moved to test.decode.beam_size"),
        ("train.lr=fast", "train.lr: Value 'fast' of type 'str' could not be converted to Float"),
        ("data.root=/does/not/exist", "data.root=/does/not/exist: no such directory"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, override, expected):
    result = run_cli(override, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
