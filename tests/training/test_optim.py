"""The optimizer: fused Adam where torch has the kernel, the same updates as the unfused one."""

import copy

import pytest
import torch

from seq2seq.config.schema import Optimizer, TrainConfig
from seq2seq.training.optim import build_optimizer, load_optimizer_state


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(5, 6, generator=generator)
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("kind", [Optimizer.adam, Optimizer.adamw])
def test_fused_updates_equal_the_unfused_ones(kind):
    cfg = TrainConfig(optimizer=kind, lr=1e-2, weight_decay=0.01)
    fused_model, plain_model = _model(), _model()
    fused = build_optimizer(cfg, fused_model)
    assert fused.param_groups[0]["fused"] is True  # torch >= 2.4 has the CPU kernel
    plain = type(fused)(plain_model.parameters(), lr=1e-2, betas=tuple(cfg.betas), weight_decay=0.01)
    _train(fused_model, fused, 20)
    _train(plain_model, plain, 20)
    for a, b, start in zip(fused_model.parameters(), plain_model.parameters(), _model().parameters()):
        assert (a - start).abs().max() > 1e-2  # trained
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_unfused_state_resumes_in_the_fused_optimizer():
    cfg = TrainConfig(lr=1e-2)
    model = _model()
    plain = torch.optim.Adam(model.parameters(), lr=1e-2, betas=tuple(cfg.betas))
    _train(model, plain, 5)
    resumed_model = copy.deepcopy(model)
    fused = build_optimizer(cfg, resumed_model)
    load_optimizer_state(fused, copy.deepcopy(plain.state_dict()))
    assert fused.param_groups[0]["fused"] is True  # the config's setting, not the saved one
    step = fused.state[next(resumed_model.parameters())]["step"]
    assert step.dtype == torch.float32 and float(step) == 5.0
    _train(model, plain, 5, seed=2)
    _train(resumed_model, fused, 5, seed=2)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
