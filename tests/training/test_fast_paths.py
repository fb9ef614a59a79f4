"""Every speed path is correct (their speed is measured by scripts/benchmark.py, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seq2seq.data.batching import TokenBatchSampler
from seq2seq.data.tokenizer import PAD
from seq2seq.training.trainer import Trainer, train
from seq2seq.utils.devices import keep_freed_memory
from seq2seq.utils.errors import ConfigError
from tests.conftest import padded_batch, tiny_model, toy_train_config


def test_bucketed_batches_cover_every_pair_once_per_epoch_in_many_epochs():
    rng = np.random.default_rng(0)
    src = rng.integers(1, 60, 3000)
    trg = np.maximum(1, src + rng.integers(-5, 6, 3000))
    sampler = TokenBatchSampler(src, trg, 4096, seed=3)
    for epoch in range(5):
        rows = np.concatenate(sampler.batches(epoch))
        assert len(rows) == 3000 and len(np.unique(rows)) == 3000


def test_bf16_trains_the_toy_task(tmp_path):
    metrics = train(
        toy_train_config(precision="bf16", max_steps=250, valid_every=250, lr=2e-3, test_enabled=False), tmp_path
    )
    assert metrics["bleu"] > 80, metrics


def test_transformer_keeps_its_residual_stream_in_bf16_under_autocast():
    """No fp32 copies between layers: states and logits in bf16, fp32 weights still get gradients."""
    model = tiny_model("transformer", "dot", "transformer")
    src, lengths = padded_batch([5, 3])
    trg = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        encoded = model.encoder(model.src_embed(src), src != PAD, lengths)
        logits, _ = model(src, lengths, trg)
    assert encoded.states.dtype == logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_fp16_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device; on a CPU use bf16"):
        Trainer.build(toy_train_config(precision="fp16"), tmp_path)


def _loss(model, src, lengths, trg):
    logits = model(src, lengths, trg[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), trg[:, 1:].flatten(), ignore_index=PAD)


@pytest.mark.parametrize(
    "encoder, attention, decoder", [("rnn", "bahdanau", "rnn"), ("transformer", "dot", "transformer")]
)
def test_compiled_and_eager_steps_give_the_same_loss(encoder, attention, decoder):
    model = tiny_model(encoder, attention, decoder, seed=4)
    src, lengths = padded_batch([6, 4, 5], seed=2)
    trg = torch.randint(4, 23, (3, 6), generator=torch.Generator().manual_seed(9))
    eager = _loss(model, src, lengths, trg)
    enc = model.encode(src, lengths)
    eager_step = model.decoder.step(trg[:, 0], model.decoder.init_state(enc), enc)
    model.decoder.step = torch.compile(model.decoder.step, dynamic=True)
    compiled = _loss(model, src, lengths, trg)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    enc = model.encode(src, lengths)
    compiled_step = model.decoder.step(trg[:, 0], model.decoder.init_state(enc), enc)
    torch.testing.assert_close(compiled_step[0], eager_step[0], atol=1e-5, rtol=1e-5)


def test_accumulated_batches_equal_one_big_batch(tmp_path):
    """Two accumulated micro-batches give the same update as their union in one batch."""
    cfg = toy_train_config(test_enabled=False, precision="fp32")  # exact sums: no bf16 rounding
    cfg.model.dropout = cfg.model.emb_dropout = 0.0
    a = Trainer.build(cfg, tmp_path / "a")
    b = Trainer.build(cfg, tmp_path / "b", data=a.data)
    b.model.load_state_dict(a.model.state_dict())
    corpus = a.data.train
    rows1, rows2 = np.arange(0, 20), np.arange(20, 45)
    a.train_step([corpus.batch(rows1), corpus.batch(rows2)])
    b.train_step([corpus.batch(np.concatenate([rows1, rows2]))])
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=2e-6, rtol=1e-5, msg=name)


def test_accumulate_counts_steps_and_data_position(tmp_path):
    trainer = Trainer.build(toy_train_config(accumulate=3, max_steps=10, valid_every=10, test_enabled=False), tmp_path)
    trainer.fit()
    assert len(trainer.batches.sampler.batches(0)) > 30  # the 10 updates stay within the first epoch
    assert trainer.progress.step == 10
    assert (trainer.progress.epoch, trainer.progress.batch_in_epoch) == (0, 30)  # 3 batches per update


_FAULTS_OF_A_STEP_LOOP = """
import json, resource, torch
from seq2seq.utils.devices import keep_freed_memory
kept = keep_freed_memory()
def step():  # two 64 MB tensors made and freed, like logits and their gradient
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 << 20)
    y = x * 2
    del x
    y.sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults = [step() for _ in range(20)]
print(json.dumps({"kept": kept, "steady": sum(faults[6:])}))
"""


def _faults_of_a_step_loop(**env: str) -> dict:
    """Page faults of the last 14 of 20 steps in a fresh process (as a training run starts)."""
    clean = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS_OF_A_STEP_LOOP], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    """After keep_freed_memory(), large tensors freed and made again map no new pages; without it
    (the user's own malloc setting turns it off) glibc unmaps them and faults in every page again."""
    kept, default = _faults_of_a_step_loop(), _faults_of_a_step_loop(MALLOC_ARENA_MAX="8")
    assert kept["kept"] and not default["kept"]
    assert default["steady"] > 14 * 16_000  # 16,384 pages of 4 KiB per 64 MB tensor, mapped anew
    assert kept["steady"] < default["steady"] / 5  # at most a growth or two of the heap


def test_freed_memory_setting_leaves_the_users_malloc_settings_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert not keep_freed_memory()
