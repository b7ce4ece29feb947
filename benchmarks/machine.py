"""What a benchmark ran on (for its table's title), and device sync for timing."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """CPU, cores, torch and numpy versions, torch threads, and the device (GPU name)."""
    text = (f"CPU: {cpu_model()} ({os.cpu_count()} logical cores) | torch {torch.__version__}"
            f" | {torch.get_num_threads()} torch threads | numpy {np.__version__}"
            f" | device {device}")
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
