"""Frames to network input: resize to the net height, normalise, pad to stride 8.

The CMU weights expect BGR input with value = pixel / 256 - 0.5, resized so the
network input height is the net height (aspect ratio kept, width rounded to the
nearest pixel) and padded on the right and bottom to a multiple of the stride.
Padding is 0 after normalisation (pixel value 128), as in the reference code.
Other model families say what they expect in their
:class:`~posecli.families.InputSpec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .defaults import STRIDE
from .errors import UsageError
from .families import CMU, InputSpec


@dataclass(frozen=True)
class Geometry:
    """How one frame maps onto the network input and its output maps (pixels).

    ``height`` x ``width`` is the original (displayed) frame; ``resized_*`` the
    frame scaled to the net height; ``padded_*`` the network input, multiples of
    ``stride``. Network output maps are ``padded_height / stride`` x
    ``padded_width / stride`` cells.
    """

    height: int
    width: int
    resized_height: int
    resized_width: int
    padded_height: int
    padded_width: int
    stride: int = STRIDE

    @property
    def map_height(self) -> int:
        return self.padded_height // self.stride

    @property
    def map_width(self) -> int:
        return self.padded_width // self.stride


def plan_geometry(height: int, width: int, net_height: int, stride: int = STRIDE) -> Geometry:
    """The geometry for a ``height`` x ``width`` frame at ``net_height`` (pixels)."""
    if height < 1 or width < 1:
        raise UsageError(f"frame size {width}x{height} is empty")
    check_net_height(net_height, stride)
    scale = net_height / height
    resized_width = max(1, round(width * scale))
    pad_h = -net_height % stride
    pad_w = -resized_width % stride
    return Geometry(height, width, net_height, resized_width,
                    net_height + pad_h, resized_width + pad_w, stride)


def check_net_height(net_height: int, stride: int = STRIDE) -> None:
    """Reject net heights the network cannot use (too small for three poolings)."""
    if net_height < 2 * stride or net_height > 4096:
        raise UsageError(f"bad --net-height {net_height}: expected {2 * stride}..4096 pixels")


def preprocess(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray], geometry: Geometry,
               device: torch.device | str = "cpu", spec: InputSpec = CMU.input) -> torch.Tensor:
    """N frames of H x W x 3 uint8 RGB -> N x 3 x padded_h x padded_w float32 network input.

    ``frames``: an N x H x W x 3 array or tensor, or a sequence of N H x W x 3 arrays
    (each is converted straight into the float batch: no uint8 copy of the batch).
    Resizing is bicubic without antialiasing (OpenCV INTER_CUBIC semantics, as the
    reference implementation), on ``device``. ``spec`` is the network's input
    (the loaded model's ``family.input``): channel order, value = (pixel - mean)
    * scale, and the value of the padding; the default is the CMU model's.
    """
    x = _float_batch(frames, device)
    if spec.channel_order == "BGR":
        x = x[:, [2, 1, 0]]
    if (x.shape[2], x.shape[3]) != (geometry.resized_height, geometry.resized_width):
        x = F.interpolate(x, size=(geometry.resized_height, geometry.resized_width),
                          mode="bicubic", align_corners=False).clamp_(0.0, 255.0)
    x = (x - spec.mean) * spec.scale  # CMU: (pixel - 128) / 256 = pixel / 256 - 0.5
    pad_h = geometry.padded_height - geometry.resized_height
    pad_w = geometry.padded_width - geometry.resized_width
    return F.pad(x, (0, pad_w, 0, pad_h), value=spec.pad_value).contiguous()


def _float_batch(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray],
                 device: torch.device | str) -> torch.Tensor:
    """N x 3 x H x W float32 pixel values (0..255) on ``device``."""
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected N x H x W x 3 frames, got {tuple(x.shape)}")
        return x.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    shapes = {np.shape(frame) for frame in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise ValueError(f"expected frames of one H x W x 3 size, got {sorted(shapes)}")
    height, width, _ = next(iter(shapes))
    x = torch.empty(len(frames), 3, height, width, device=device)
    for k, frame in enumerate(frames):
        x[k] = torch.from_numpy(frame).to(device, non_blocking=True).permute(2, 0, 1)
    return x
