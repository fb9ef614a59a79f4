"""What resuming does with each kind of changed setting, and with a deleted sentencepiece model."""

from __future__ import annotations

import logging

import pytest
import torch

from seq2seq.checkpoint.store import load_checkpoint
from seq2seq.training.run_state import check_resumable, resume_policy
from seq2seq.training.trainer import Trainer, train
from seq2seq.utils.errors import ConfigError
from tests.conftest import small_toy_config


@pytest.fixture
def run(tmp_path):
    """A run directory after 4 steps (one checkpoint)."""
    train(small_toy_config(max_steps=4, valid_every=4), tmp_path)
    return tmp_path


def resumed(run, **train_overrides) -> Trainer:
    return Trainer.build(small_toy_config(max_steps=8, valid_every=4, **train_overrides), run)


def test_each_key_has_a_policy():
    assert resume_policy("train.max_steps") == "free"
    assert resume_policy("model.hidden_size") == "refuse"
    assert resume_policy("train.batch_tokens") == resume_policy("train.seed") == "refuse"
    assert resume_policy("train.weight_decay") == resume_policy("train.betas") == "optimizer"
    assert resume_policy("train.lr") == resume_policy("train.label_smoothing") == "apply"


@pytest.mark.parametrize("key, value", [("batch_tokens", 256), ("seed", 7), ("best_metric", "loss")])
def test_settings_that_recut_the_epochs_are_refused(run, key, value):
    """They used to warn only, and the saved position then pointed into a differently cut epoch."""
    with pytest.raises(ConfigError, match=rf"^{run}/checkpoints/latest.pt: cannot resume with train\.{key} changed"):
        resumed(run, **{key: value})


def test_optimizer_settings_are_applied_to_the_restored_optimizer(run, caplog):
    """load_state_dict alone brought back the saved betas and weight decay (and Adam for AdamW)."""
    with caplog.at_level(logging.WARNING):
        trainer = resumed(run, weight_decay=0.01, betas=(0.8, 0.9), optimizer="adamw")
    group = trainer.optimizer.param_groups[0]
    assert group["weight_decay"] == 0.01 and tuple(group["betas"]) == (0.8, 0.9)
    assert group["decoupled_weight_decay"] is True  # AdamW, as configured
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")["optimizer"]["state"]
    restored = trainer.optimizer.state_dict()["state"]
    assert all(torch.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)  # the moments are kept
    assert "train.weight_decay: 0.0 -> 0.01 (applied to the restored optimizer)" in caplog.text


def test_other_settings_apply_from_the_next_step_with_a_note(run, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = resumed(run, lr=5e-4)
    assert trainer.schedule.cfg.lr == 5e-4
    assert "train.lr: 0.001 -> 0.0005 (applied to training from this step)" in caplog.text


def test_a_key_added_in_a_later_version_does_not_block_resuming(run):
    """An old checkpoint lacks the key: it counts as the default (the old code's behaviour)."""
    path = run / "checkpoints" / "latest.pt"
    payload = load_checkpoint(path)
    del payload["config"]["model"]["share_embeddings"]  # as if written before the key existed
    payload["config"]["train"]["retired_option"] = 3  # a key since removed
    torch.save(payload, path)
    trainer = resumed(run)
    assert trainer.progress.step == 4
    new = {"model": {"share_embeddings": True}}
    with pytest.raises(ConfigError, match=r"model\.share_embeddings: False -> True"):
        check_resumable({"model": {}}, new, "old.pt")  # a non-default value still counts as a change


def test_deleted_sentencepiece_model_is_restored_from_the_checkpoint(run, caplog):
    """It used to be trained again, although the exact model is inside latest.pt."""
    spm = run / "spm.model"
    original = spm.read_bytes()
    spm.unlink()
    with caplog.at_level(logging.INFO):
        trainer = resumed(run)
    assert spm.read_bytes() == original
    assert f"restored {spm} from {run / 'checkpoints' / 'latest.pt'}" in caplog.text
    assert "trained sentencepiece" not in caplog.text
    assert trainer.progress.step == 4
