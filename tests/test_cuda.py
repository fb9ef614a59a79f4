"""Device choices made for CUDA (run here without a GPU, with the CUDA probes mocked), and the CUDA
paths themselves: training in fp32/bf16/fp16, resuming, translating (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from seq2seq.bench.flops import peak_size
from seq2seq.training.distributed import init_distributed
from seq2seq.utils.devices import resolve_device
from seq2seq.utils.errors import ConfigError

from .conftest import toy_train_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def fake_cuda(monkeypatch):
    """``torch.cuda.is_available()`` says yes; the cuDNN attention switch is restored afterwards."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    enabled = torch.backends.cuda.cudnn_sdp_enabled()
    yield
    torch.backends.cuda.enable_cudnn_sdp(enabled)


def test_auto_is_cuda_except_for_int8_which_runs_on_the_cpu(fake_cuda):
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("auto", "bf16").type == "cuda"
    assert resolve_device("auto", "int8").type == "cpu"
    assert resolve_device("cpu", "bf16").type == "cpu"


def test_cuda_turns_off_cudnn_attention_and_the_cpu_leaves_it(fake_cuda):
    torch.backends.cuda.enable_cudnn_sdp(True)
    resolve_device("cpu")
    assert torch.backends.cuda.cudnn_sdp_enabled()
    resolve_device("cuda")
    assert not torch.backends.cuda.cudnn_sdp_enabled()


def test_a_gpu_named_by_index_or_as_a_device_also_turns_off_cudnn_attention(fake_cuda):
    from seq2seq.decode.loading import _device

    for device in ("cuda:0", torch.device("cuda", 0)):
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert _device(device) == torch.device("cuda", 0)
        assert not torch.backends.cuda.cudnn_sdp_enabled()


def test_more_torchrun_ranks_than_gpus_is_a_one_line_error(fake_cuda, monkeypatch):
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=r"local rank 1, but this machine has 1 CUDA device\(s\).*nproc_per_node=1"):
        init_distributed(use_cuda=True)


def test_the_peak_product_is_bigger_on_a_gpu():
    assert peak_size(torch.device("cpu")) == 2048
    assert peak_size(torch.device("cuda")) == 8192
    assert peak_size(torch.device("cuda"), 4096) == 4096


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_resume_and_translate_on_cuda(tmp_path, precision):
    """A checkpoint loaded onto the GPU restores the random states too (NumPy's used to fail)."""
    from seq2seq.api import load_translator
    from seq2seq.training.trainer import Trainer, train

    overrides = dict(device="cuda", precision=precision, valid_every=100)
    metrics = train(toy_train_config(test_enabled=False, max_steps=100, **overrides), tmp_path)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    resumed = Trainer.build(toy_train_config(test_enabled=False, max_steps=150, **overrides), tmp_path)
    assert resumed.progress.step == 100 and next(resumed.model.parameters()).is_cuda
    resumed.fit()
    tr = load_translator(tmp_path / "checkpoints" / "latest.pt", device="cuda", precision=precision)
    (result,) = tr.translate(["a b c d"], beam_size=3)
    assert result.attention.shape == (len(result.trg_tokens), len(result.src_tokens))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_shortlist_searches_on_cuda_as_on_the_cpu(device, precision):
    """A shortlist of the whole vocabulary changes nothing; a short one keeps the outputs within
    it (on the CPU here, to check the test itself, and on CUDA where there is a GPU)."""
    from seq2seq.decode.search import beam_search, max_output_lengths
    from seq2seq.decode.shortlist import Shortlist
    from seq2seq.decode.translator import DecodeOptions
    from seq2seq.decode.translator import search as translate_search

    from .conftest import padded_batch, tiny_model

    model = tiny_model(encoder="transformer", attention="dot", decoder="transformer", seed=2).to(device)
    src, lengths = (x.to(device) for x in padded_batch([7, 5, 6]))
    limits = max_output_lengths(lengths, 1.5, 4)
    full = torch.arange(model.decoder.output.out_features, device=device)
    listed = beam_search(model, src, lengths, limits, 3, vocab=full)
    assert [h[0].tokens for h in listed] == [h[0].tokens for h in beam_search(model, src, lengths, limits, 3)]
    shortlist = Shortlist(torch.full((23, 1), -1, dtype=torch.long), torch.tensor([5, 8, 13]), 23, "")
    options = DecodeOptions(beam_size=3, precision=precision, shortlist=shortlist)
    outputs = [hyps[0].tokens for hyps in translate_search(model, src, lengths, options)]
    assert all(set(tokens) <= {0, 1, 2, 5, 8, 13} for tokens in outputs) and any(outputs)
