"""One DecodeConfig for valid/test/translate: defaults, the library options built from it, its
checks, and checkpoints written before the search settings moved into ``*.decode``."""

from __future__ import annotations

import copy
from dataclasses import fields

import pytest

from seq2seq.checkpoint.store import checkpoint_config
from seq2seq.config.schema import DecodeConfig, TrainRunConfig, TranslateConfig
from seq2seq.config.serialization import to_container, upgrade_train_config
from seq2seq.config.values import check_values
from seq2seq.decode.translator import DecodeOptions
from seq2seq.utils.errors import ConfigError


def test_defaults_per_use():
    cfg = TrainRunConfig()
    assert (cfg.valid.decode.beam_size, cfg.valid.decode.batch_size) == (1, 128)  # dev BLEU: greedy
    assert (cfg.test.decode.beam_size, cfg.test.decode.min_length) == (5, 1)
    assert DecodeOptions().beam_size == DecodeConfig().beam_size == 5  # the search defaults are defined once


def test_options_take_every_search_field_and_keep_runtime_ones():
    translate = TranslateConfig(checkpoint="x.pt", beam_size=4, n_best=2, length_penalty=0.6, min_length=0)
    translate.max_output_extra, translate.batch_size = 3, 7
    options = DecodeOptions.of(translate, precision="bf16", return_attention=True)
    for f in fields(DecodeConfig):
        assert getattr(options, f.name) == getattr(translate, f.name), f.name
    assert (options.precision, options.return_attention, options.max_input_tokens) == ("bf16", True, None)
    assert DecodeOptions.of(translate, beam_size=1).beam_size == 1  # a runtime override wins


def old_layout() -> dict:
    """A stored config as versions before DecodeConfig wrote it."""
    data = to_container(TrainRunConfig())
    del data["valid"]["decode"], data["test"]["decode"]
    data["valid"].update(batch_size=99, max_output_ratio=2.0, max_output_extra=3)
    data["test"].update(beam_size=7, length_penalty=1.4, min_length=0, batch_size=16)
    return data


def test_old_stored_configs_are_upgraded():
    data = old_layout()
    before = copy.deepcopy(data)
    cfg = checkpoint_config({"config": data})
    assert data == before  # the payload itself is not changed
    v, t = cfg.valid.decode, cfg.test.decode
    assert (v.batch_size, v.max_output_ratio, v.max_output_extra, v.beam_size) == (99, 2.0, 3, 1)
    assert (t.beam_size, t.length_penalty, t.min_length, t.batch_size) == (7, 1.4, 0, 16)
    assert (t.max_output_ratio, t.max_output_extra) == (2.0, 3)  # test decoding used valid's length cap


def test_upgrade_leaves_new_layouts_alone():
    data = to_container(TrainRunConfig())
    data["test"]["decode"]["beam_size"] = 3
    assert upgrade_train_config(data) == data


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("test", "n_best", 3, "test.decode.n_best=3 must be between 1 and test.decode.beam_size=2"),
        ("valid", "beam_size", 0, "valid.decode.beam_size must be >= 1, got 0"),
        ("test", "min_length", -1, "test.decode.min_length must be >= 0, got -1"),
        ("valid", "max_output_ratio", 0.0, "valid.decode.max_output_ratio must be > 0, got 0.0"),
    ],
)
def test_decode_values_are_checked_with_their_keys(section, key, value, message):
    cfg = TrainRunConfig()
    cfg.test.decode.beam_size = 2
    setattr(getattr(cfg, section).decode, key, value)
    with pytest.raises(ConfigError) as err:
        check_values(cfg)
    assert str(err.value) == message
