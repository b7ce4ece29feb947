"""The CMU CPM/PAF network: exact layer shapes, parameter count, outputs, FLOPs."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, assert_thread_count_does_not_matter

from posecli.model import ModelConfig, PoseNet, count_parameters


@pytest.fixture(scope="module")
def cmu() -> PoseNet:
    return PoseNet()


@pytest.mark.parametrize("name, shape", [
    ("conv1_1", (64, 3, 3, 3)), ("conv1_2", (64, 64, 3, 3)), ("conv2_1", (128, 64, 3, 3)),
    ("conv3_1", (256, 128, 3, 3)), ("conv3_4", (256, 256, 3, 3)), ("conv4_1", (512, 256, 3, 3)),
    ("conv4_2", (512, 512, 3, 3)), ("conv4_3_CPM", (256, 512, 3, 3)),
    ("conv4_4_CPM", (128, 256, 3, 3)),
    ("conv5_1_CPM_L1", (128, 128, 3, 3)), ("conv5_3_CPM_L2", (128, 128, 3, 3)),
    ("conv5_4_CPM_L1", (512, 128, 1, 1)), ("conv5_5_CPM_L1", (38, 512, 1, 1)),
    ("conv5_5_CPM_L2", (19, 512, 1, 1)),
    ("Mconv1_stage2_L1", (128, 185, 7, 7)), ("Mconv5_stage4_L2", (128, 128, 7, 7)),
    ("Mconv6_stage5_L1", (128, 128, 1, 1)), ("Mconv7_stage6_L1", (38, 128, 1, 1)),
    ("Mconv7_stage6_L2", (19, 128, 1, 1)),
])
def test_cmu_layer_shapes(cmu, name, shape):
    assert tuple(cmu.state_dict()[f"{name}.weight"].shape) == shape
    assert tuple(cmu.state_dict()[f"{name}.bias"].shape) == (shape[0],)


def test_cmu_parameter_count_and_keys(cmu):
    assert count_parameters(cmu) == 52_311_446
    keys = list(cmu.state_dict())
    assert len(keys) == 184
    assert keys[0] == "conv1_1.weight" and keys[-1] == "Mconv7_stage6_L2.bias"


def test_cmu_flops(cmu):
    assert cmu.flops(368, 496) == pytest.approx(366.43e9, rel=1e-4)
    assert cmu.flops(368, 656) == pytest.approx(484.63e9, rel=1e-4)


def test_forward_returns_every_stage():
    torch.manual_seed(0)
    model = PoseNet(ModelConfig(**{**TINY.to_dict(), "stages": 3})).eval()
    outputs = model(torch.randn(2, 3, 64, 48))
    assert len(outputs) == 3
    for pafs, heatmaps in outputs:
        assert pafs.shape == (2, 38, 8, 6) and heatmaps.shape == (2, 19, 8, 6)
    # No ReLU after a branch's last conv: outputs take negative values.
    assert (outputs[-1][0] < 0).any()
    heatmaps, pafs = model.predict(torch.randn(1, 3, 64, 48))
    assert heatmaps.shape == (1, 19, 8, 6) and pafs.shape == (1, 38, 8, 6)


def test_stage_inputs_concatenate_pafs_heatmaps_features():
    model = PoseNet(TINY)
    assert model.Mconv1_stage2_L1.in_channels == 38 + 19 + TINY.cpm_widths[1]


def test_config_round_trip_and_validation():
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError):
        ModelConfig(stages=0)
    with pytest.raises(ValueError):
        ModelConfig(refine_kernel=4)


def test_cpu_outputs_do_not_depend_on_the_thread_count() -> None:
    torch.manual_seed(0)
    assert_thread_count_does_not_matter(PoseNet(TINY), torch.randn(3, 3, 64, 96))
