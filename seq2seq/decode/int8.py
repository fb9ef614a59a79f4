"""``precision=int8``: dynamic int8 quantisation of a trained model for CPU decoding.

Linear layers and recurrent layers/cells get int8 weights (per-tensor scale); activations are
quantised on the fly per batch, and the products accumulate in int32 (PyTorch's
``torch.ao.quantization.quantize_dynamic``, fbgemm/x86 kernels). Embedding tables, layer norms
and attention scores stay fp32, so attention weights (alignments) are still returned. It works
for every model type: RNN and Transformer encoders and decoders, Bahdanau and dot attention.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from seq2seq.model.seq2seq import Seq2Seq
from seq2seq.utils.errors import ConfigError

# The layer types quantised: every matrix multiply with weights in our models.
QUANTIZED_LAYERS: set[type[nn.Module]] = {nn.Linear, nn.GRU, nn.LSTM, nn.GRUCell, nn.LSTMCell}


def check_int8_device(device: torch.device) -> None:
    """int8 kernels exist on the CPU only: a one-line error for any other device."""
    if device.type != "cpu":
        raise ConfigError(
            f"precision=int8 (dynamic int8 quantisation) runs on the CPU only, not {device.type}; "
            "add device=cpu, or use precision=fp32/bf16/fp16"
        )


def quantize_int8(model: Seq2Seq, device: torch.device | str = "cpu") -> Seq2Seq:
    """A copy of ``model`` (on the CPU) with int8 Linear/GRU/LSTM layers, in eval mode."""
    check_int8_device(torch.device(device))
    return dynamic_int8(model.cpu().eval())


def dynamic_int8(module: nn.Module) -> nn.Module:
    """``quantize_dynamic`` of ``module``'s :data:`QUANTIZED_LAYERS` (a copy, in eval mode)."""
    with warnings.catch_warnings():
        # PyTorch announces torch.ao.quantization's move to torchao; it still works here.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated", category=Warning)
        quantized = torch.ao.quantization.quantize_dynamic(module, QUANTIZED_LAYERS, dtype=torch.qint8)
    return quantized.eval()
