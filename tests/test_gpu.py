"""On a CUDA device: every precision runs and finds what the CPU finds in fp32.

These skip without CUDA (benchmarks/gpu_check.sh runs them on a GPU machine).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import torch
from test_cli import run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_precisions_find_the_cpu_people(precision, tmp_path, capsys):
    from posecli.compare import Tolerances, compare_files

    clip = SAMPLES / "walkers.mp4"
    cpu, gpu = tmp_path / "cpu.json", tmp_path / f"{precision}.json"
    for device, value, out in (("cpu", "fp32", cpu), ("cuda", precision, gpu)):
        code, _, err = run_cli(["video", clip, "--weights", "demo", "--net-height", 256,
                                "--device", device, "--precision", value, "--quiet",
                                "--out", out], capsys)
        assert code == 0, err
    options = orjson.loads(gpu.read_bytes())["info"]["options"]
    assert options["precision"] == precision
    assert options["device"] == f"cuda ({torch.cuda.get_device_name()})"
    summary = compare_files(cpu, gpu, Tolerances(min_oks=0.0, max_missing=99,
                                                 max_extra=99)).summary
    assert summary.matched >= 0.9 * summary.people_expected, summary


def test_auto_is_bf16_on_a_gpu_with_bf16():
    from posecli.precision import resolve_precision

    expected = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == expected
