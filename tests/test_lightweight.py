"""Lightweight OpenPose: its checkpoint's key layout, its output order, loading and running it.

The published checkpoint cannot be downloaded here; these tests build random
weights in its exact layout: ``state_dict`` with three refinement stages and
batch-norm counters, beside optimizer and scheduler state, as its train.py saves.
The layout facts below (tensor counts, parameter counts, the digest of every
key and shape) were measured on its reference implementation
(``models/with_mobilenet.py``), which posecli does not include.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from conftest import assert_thread_count_does_not_matter
from test_cli import assert_one_line_error, run_cli

from posecli.errors import WeightsError
from posecli.families import LIGHTWEIGHT
from posecli.lightweight.network import (
    LightweightConfig,
    LightweightNet,
    heatmap_order,
    paf_order,
    trained_part_names,
)
from posecli.pipeline import Estimator, load_model
from posecli.skeleton import COCO18_NAMES, LIMBS, PAF_CHANNELS
from posecli.weights import load_weights
from posecli.weights.sniff import sniff_format

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # shared 2-core machines

#: Measured on the reference PoseEstimationWithMobileNet(num_refinement_stages=3) and (=1):
#: number of state-dict tensors, learned parameters, SHA-256 of "key:shape\n" lines.
REFERENCE_3_STAGES = (426, 7_308_964,
                      "1edcb3b5a1c5c54ef581470427b7e5d2e23f69fe387752f6f0eb39a124441431")
REFERENCE_1_STAGE = (250, 4_091_698,
                     "541a0b16fc62d2a04f9ce0379efa833328c882f16f16b81795ee4347d690ee50")


def layout(state: dict[str, torch.Tensor]) -> tuple[int, str]:
    lines = "".join(f"{k}:{'x'.join(map(str, v.shape))}\n" for k, v in state.items())
    return len(state), hashlib.sha256(lines.encode()).hexdigest()


def random_state(stages: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights and batch-norm statistics in the checkpoint's layout (a fresh copy)."""
    return {k: v.clone() for k, v in _random_state(stages, seed).items()}


@functools.cache
def _random_state(stages: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in LightweightNet(LightweightConfig(stages)).state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(370_000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif value.dim() == 1:
            state[key] = torch.randn(value.shape, generator=generator) * 0.1
        else:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=generator) * (2 / fan_in) ** 0.5
    return state


def checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """What its train.py saves: the network beside optimizer and scheduler state."""
    bias = torch.nn.Parameter(torch.zeros(128))
    optimizer = torch.optim.Adam([bias], lr=4e-5)
    bias.sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [100, 200, 260], gamma=0.333)
    return {"state_dict": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "iter": 370_000, "current_epoch": 291}


def save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A random checkpoint in the published layout (legacy torch format, like 2018's)."""
    path = tmp_path_factory.mktemp("lightweight") / "checkpoint_iter_370000.pth"
    return save(checkpoint(random_state()), path, legacy=True)


# --------------------------------------------------------------------------- layout


def test_key_layout_is_the_reference_networks() -> None:
    three = LightweightNet(LightweightConfig(3))
    assert layout(three.state_dict()) == (REFERENCE_3_STAGES[0], REFERENCE_3_STAGES[2])
    assert sum(p.numel() for p in three.parameters()) == REFERENCE_3_STAGES[1]
    one = LightweightNet()
    assert layout(one.state_dict()) == (REFERENCE_1_STAGE[0], REFERENCE_1_STAGE[2])
    assert sum(p.numel() for p in one.parameters()) == REFERENCE_1_STAGE[1]  # "4.1 M"
    shapes = {k: tuple(v.shape) for k, v in one.state_dict().items()}
    assert shapes["model.0.0.weight"] == (32, 3, 3, 3)
    assert shapes["model.7.0.weight"] == (512, 1, 3, 3)  # the dilated depthwise conv
    assert shapes["cpm.align.0.weight"] == (128, 512, 1, 1)
    assert shapes["cpm.trunk.2.2.weight"] == (128, 128, 1, 1)
    assert shapes["initial_stage.heatmaps.1.0.weight"] == (19, 512, 1, 1)
    assert shapes["refinement_stages.0.trunk.0.initial.0.weight"] == (128, 185, 1, 1)
    assert shapes["refinement_stages.0.pafs.1.0.weight"] == (38, 128, 1, 1)


def test_flops_at_368() -> None:
    """About 9 G multiply-adds at 368 x 368 (the paper's "9 GFLOPs")."""
    assert LightweightNet().flops(368, 368) == pytest.approx(2 * 8.88e9, rel=1e-3)


def test_channel_tables_from_its_training_code() -> None:
    assert trained_part_names() == COCO18_NAMES
    assert heatmap_order().tolist() == list(range(19))
    assert paf_order().tolist() == list(range(38))  # its limbs land on the CMU channels
    # The derivation itself: a network listing the limbs in LIMBS order would need a reorder.
    reordered = paf_order(LIMBS)
    for k, (x, y) in enumerate(PAF_CHANNELS):
        assert (reordered[x], reordered[y]) == (2 * k, 2 * k + 1)
    with pytest.raises(ValueError, match="direction"):
        paf_order(tuple((b, a) for a, b in LIMBS))


def test_predict_returns_the_first_refinement_stage_in_posecli_order() -> None:
    """Each head's last conv outputs only its bias: the maps say which head and channel."""
    state = random_state()
    for prefix, offset in (("initial_stage", 1000), ("refinement_stages.0", 0),
                           ("refinement_stages.1", 2000), ("refinement_stages.2", 3000)):
        for head, channels, base in (("heatmaps", 19, 0), ("pafs", 38, 100)):
            state[f"{prefix}.{head}.1.0.weight"].zero_()
            state[f"{prefix}.{head}.1.0.bias"].copy_(offset + base + torch.arange(channels))
    network = LightweightNet(LightweightConfig(3))
    network.load_state_dict(state)
    with torch.no_grad():
        outputs = network.eval()(torch.randn(1, 3, 64, 48))
    assert [float(h[0, 0, 0, 0]) for h, _ in outputs] == [1000, 0, 2000, 3000]
    one = LightweightNet()
    one.load_state_dict({k: v for k, v in state.items()
                         if not k.startswith(("refinement_stages.1", "refinement_stages.2"))})
    heatmaps, pafs = one.eval().predict(torch.randn(2, 3, 64, 48))
    assert heatmaps.shape == (2, 19, 8, 6) and pafs.shape == (2, 38, 8, 6)
    assert torch.equal(heatmaps, torch.arange(19.0)[None, :, None, None].expand_as(heatmaps))
    expected_pafs = 100 + torch.from_numpy(paf_order()).float()
    assert torch.equal(pafs, expected_pafs[None, :, None, None].expand_as(pafs))


def test_cpu_outputs_do_not_depend_on_the_thread_count() -> None:
    torch.manual_seed(0)
    assert_thread_count_does_not_matter(LightweightNet(), torch.randn(2, 3, 64, 96))


# --------------------------------------------------------------------------- loading


def test_published_checkpoint_loads(published) -> None:
    loaded = load_weights(published)
    assert loaded.format == "lightweight" and loaded.family is LIGHTWEIGHT
    assert loaded.config == LightweightConfig(refinement_stages=1)
    assert loaded.metadata == {"refinement_stages_in_file": 3, "step": 370_000}
    assert loaded.num_parameters() == REFERENCE_1_STAGE[1]
    assert not any("num_batches_tracked" in k or k.startswith("refinement_stages.1")
                   for k in loaded.state_dict)
    assert sniff_format(published) == "lightweight"  # what `weights list` says, without torch


@pytest.mark.parametrize("variant", ["zip", "bare state dict", "module prefix"])
def test_other_saves_of_the_same_network(tmp_path, variant) -> None:
    state = random_state(stages=1)
    obj = {"zip": checkpoint(state), "bare state dict": state,
           "module prefix": {f"module.{k}": v for k, v in state.items()}}[variant]
    path = save(obj, tmp_path / "w.pth")
    loaded = load_weights(path)
    assert loaded.format == "lightweight" and sniff_format(path) == "lightweight"
    assert loaded.metadata["refinement_stages_in_file"] == 1


def test_built_network_matches_the_file(published) -> None:
    state = torch.load(published, weights_only=True)["state_dict"]
    reference = LightweightNet()
    reference.load_state_dict({k: v for k, v in state.items()
                               if not k.startswith(("refinement_stages.1", "refinement_stages.2"))})
    model = load_model(published, device="cpu", precision="fp32")  # the reference is fp32
    assert isinstance(model.network, LightweightNet) and not model.network.training
    images = torch.randn(1, 3, 64, 80)
    for a, b in zip(model.network.predict(images), reference.eval().predict(images)):
        assert torch.equal(a, b)


def _error(tmp_path: Path, state: dict) -> str:
    path = save(checkpoint(state), tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_and_wrong_shaped_tensors_are_named(tmp_path) -> None:
    state = random_state()
    del state["cpm.align.0.bias"]
    state["refinement_stages.0.pafs.1.0.weight"] = torch.zeros(19, 128, 1, 1)
    message = _error(tmp_path, state)
    assert message == (
        f"weights file {tmp_path / 'bad.pth'} does not fit the Lightweight OpenPose model: "
        "missing cpm.align.0.bias; wrong shape refinement_stages.0.pafs.1.0.weight "
        "(19x128x1x1, expected 38x128x1x1)")


def test_unexpected_tensor_and_missing_first_refinement_stage(tmp_path) -> None:
    state = random_state()
    state["cpm.extra.weight"] = torch.zeros(3)
    assert "unexpected cpm.extra.weight" in _error(tmp_path, state)
    state = {k: v for k, v in random_state().items()
             if not k.startswith("refinement_stages.0.")}
    message = _error(tmp_path, state)
    assert "missing refinement_stages.0.trunk.0.initial.0.weight" in message
    assert "(+" in message  # summarised, still one line


def test_non_finite_weights(tmp_path) -> None:
    state = random_state()
    state["model.3.4.running_var"][0] = float("nan")
    assert "NaN or infinite values in model.3.4.running_var" in _error(tmp_path, state)


# --------------------------------------------------------------------------- running it


def test_estimator_defaults_follow_the_family(published) -> None:
    model = load_model(published, device="cpu")
    estimator = Estimator(model)
    assert estimator.net_height == 368 and estimator.decoder == "lightweight"
    options = estimator.options()
    assert options["decoder"] == "lightweight" and options["parse"]["min_parts"] == 3
    assert Estimator(model, 64, decoder="posecli").options()["parse"]["min_parts"] == 4
    assert model.describe()["family"] == "lightweight"
    people = Estimator(model, 32)(np.zeros((2, 24, 32, 3), np.uint8))
    assert len(people) == 2


def test_video_with_the_lightweight_checkpoint(published, small_video, tmp_path, capsys) -> None:
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", published, "--net-height", 64,
                            "--out", out], capsys)
    assert code == 0, err
    info = orjson.loads(out.read_bytes())["info"]
    assert info["model"]["format"] == "lightweight" and info["model"]["family"] == "lightweight"
    assert info["model"]["metadata"] == {"step": 370_000}
    assert info["options"]["decoder"] == "lightweight" and info["options"]["net_height"] == 64


def test_bad_lightweight_checkpoint_on_the_command_line(tmp_path, small_video, capsys) -> None:
    state = random_state()
    del state["initial_stage.pafs.1.0.bias"]
    path = save(checkpoint(state), tmp_path / "checkpoint_iter_370000.pth")
    code, _, err = run_cli(["video", small_video, "--weights", path, "--out",
                            tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, "does not fit the Lightweight OpenPose model",
                          "missing initial_stage.pafs.1.0.bias")
    assert not (tmp_path / "o.json").exists()


def test_legacy_file_bytes_start_with_a_pickle(published) -> None:
    assert published.read_bytes()[:2] == b"\x80\x02"
    assert isinstance(torch.load(io.BytesIO(published.read_bytes()), weights_only=True), dict)
