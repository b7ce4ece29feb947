"""preprocess: frames given one by one (as the reader hands them over) or as one array
give the same network input; frames it cannot use are one clear ValueError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecli.families import CMU, InputSpec
from posecli.preprocess import plan_geometry, preprocess


@pytest.mark.parametrize("spec", [CMU.input, InputSpec(channel_order="RGB", mean=0.0,
                                                       scale=1 / 255, pad_value=0.5)])
@pytest.mark.parametrize("height, width, net_height", [(48, 64, 48), (57, 81, 32)])
def test_frames_one_by_one_equal_one_array(spec, height, width, net_height):
    frames = np.random.default_rng(height).integers(0, 256, (3, height, width, 3), np.uint8)
    geometry = plan_geometry(height, width, net_height)
    whole = preprocess(frames, geometry, spec=spec)
    assert whole.shape == (3, 3, geometry.padded_height, geometry.padded_width)
    assert torch.equal(preprocess(list(frames), geometry, spec=spec), whole)
    assert torch.equal(preprocess(torch.from_numpy(frames), geometry, spec=spec), whole)


@pytest.mark.parametrize("frames, message", [
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], "frames of one"),
    ([np.zeros((8, 8), np.uint8)], "frames of one H x W x 3 size"),
    ([np.zeros((8, 8, 4), np.uint8)], "frames of one H x W x 3 size"),
    (np.zeros((2, 8, 8, 4), np.uint8), "expected N x H x W x 3 frames"),
    (np.zeros((8, 8, 3), np.uint8), "expected N x H x W x 3 frames"),
])
def test_frames_it_cannot_use_are_one_value_error(frames, message):
    with pytest.raises(ValueError, match=message):
        preprocess(frames, plan_geometry(8, 8, 16))
