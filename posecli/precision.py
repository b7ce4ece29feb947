"""The network's arithmetic: ``--precision auto|fp32|bf16|fp16``.

bf16 and fp16 cast the network's weights to that type and lay its activations
out channels-last (N x H x W x C in memory), where oneDNN (CPU) and cuDNN (CUDA)
have their fastest convolutions. The networks' ``predict`` takes float32 input
whatever their type and returns float32 maps, so the parse always runs in
float32. bf16 is offered only where the hardware computes it natively: CPUs
with AVX512-BF16 or AMX (on Linux, from /proc/cpuinfo's flags) and CUDA GPUs
that support it; elsewhere it would be emulated, slower than fp32. fp16 only
on CUDA. ``auto`` is bf16 where it is native, else fp32: on the demo model's
held-out synthetic set bf16 scores the same AP as fp32 (README, Performance).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from .errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: /proc/cpuinfo flags of CPUs that compute bf16 dot products natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 convolutions natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and any(
            flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` -> the precision used on ``device``.

    Raises:
        UsageError: an unknown name, bf16 where it is not native, fp16 off CUDA.
    """
    name = name.strip().lower()
    if name not in PRECISIONS:
        raise UsageError(f"bad --precision {name!r}: expected {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise UsageError(f"--precision fp16 needs a CUDA device, not {device.type}: "
                         "use bf16 or fp32")
    if name == "bf16" and not native_bf16(device):
        needs = ("a CPU with AVX512-BF16 or AMX" if device.type == "cpu"
                 else "a GPU with bf16 support")
        raise UsageError(f"--precision bf16: {device.type} has no native bf16 (needs {needs}): "
                         "use fp32")
    return name


def cast_network(network: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Cast ``network`` in place to a resolved precision: bf16 / fp16 weights,
    channels-last; fp32 is left as it is."""
    if precision != "fp32":
        network.to(DTYPES[precision], memory_format=torch.channels_last)
    return network


def network_input(images: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W float network input in the type of a network whose first weight is
    ``weight``: unchanged for float32 weights, else cast and channels-last (what
    :func:`cast_network` made of the network)."""
    if images.dtype == weight.dtype:
        return images
    return images.to(weight.dtype, memory_format=torch.channels_last)


def device_kind(device: torch.device) -> str:
    """``cpu``, or ``cuda (GPU name)``: what ``info.options`` records of the device."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
