"""The CMU CPM/PAF body network (Cao et al., CVPR 2017), configurable in size.

Layer names are the Caffe layer names of the published model, so a state dict of
this module uses exactly the keys of the widely used ``body_pose_model.pth``
conversion (``conv1_1.weight`` .. ``Mconv7_stage6_L2.bias``).

Input: N x 3 x H x W float, BGR, value = pixel / 256 - 0.5, H and W multiples
of 8. Output of :meth:`PoseNet.forward`: a list with one ``(pafs, heatmaps)``
pair per stage, pafs N x 38 x H/8 x W/8 and heatmaps N x 19 x H/8 x W/8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .defaults import STRIDE
from .model_config import ModelConfig
from .precision import network_input
from .skeleton import NUM_HEATMAPS, NUM_PAFS

#: VGG-19 layers up to conv4_2: (name, block index) or "pool".
_VGG_LAYOUT: tuple[tuple[str, int] | str, ...] = (
    ("conv1_1", 0), ("conv1_2", 0), "pool",
    ("conv2_1", 1), ("conv2_2", 1), "pool",
    ("conv3_1", 2), ("conv3_2", 2), ("conv3_3", 2), ("conv3_4", 2), "pool",
    ("conv4_1", 3), ("conv4_2", 3),
)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return PointwiseConv(cin, cout, 1) if k == 1 else nn.Conv2d(cin, cout, k, padding=k // 2)


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution whose CPU result does not depend on the number of threads
    (stride 1, no dilation: ``PointwiseConv(cin, cout, 1, bias=...)``).

    On one CPU thread PyTorch computes 1x1 convolutions of fewer than 16 images
    with its own GEMM, and otherwise with oneDNN, whose sums round differently,
    so a one-thread worker (a Ray actor holding one CPU) would write other bytes
    than a many-thread process. A dilation, which changes nothing for a 1x1
    kernel, makes PyTorch always choose oneDNN (the many-thread result).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        return F.conv2d(x, self.weight, self.bias, dilation=2)


class PoseNet(nn.Module):
    """Two-branch multi-stage CPM: branch L1 predicts PAFs, branch L2 heatmaps."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        # The trunk in execution order: conv layer names (each followed by a ReLU), "pool".
        self._trunk: list[str] = []
        cin = 3
        for item in _VGG_LAYOUT:
            if item == "pool":
                self._trunk.append("pool")
                continue
            name, block = item
            self.add_module(name, _conv(cin, config.vgg_widths[block], 3))
            self._trunk.append(name)
            cin = config.vgg_widths[block]
        for name, width in zip(("conv4_3_CPM", "conv4_4_CPM"), config.cpm_widths):
            self.add_module(name, _conv(cin, width, 3))
            self._trunk.append(name)
            cin = width
        features = cin
        # Per stage and branch: the ordered conv names (last one has no ReLU).
        self._branches: list[tuple[list[str], list[str]]] = []
        outputs = {1: NUM_PAFS, 2: NUM_HEATMAPS}
        for stage in range(1, config.stages + 1):
            pair = []
            for branch in (1, 2):
                names = []
                if stage == 1:
                    cin, w = features, config.stage1_width
                    specs = [(w, 3)] * 3 + [(config.stage1_hidden, 1), (outputs[branch], 1)]
                    for i, (cout, k) in enumerate(specs, start=1):
                        names.append(f"conv5_{i}_CPM_L{branch}")
                        self.add_module(names[-1], _conv(cin, cout, k))
                        cin = cout
                else:
                    cin, w = features + NUM_PAFS + NUM_HEATMAPS, config.refine_width
                    specs = [(w, config.refine_kernel)] * 5 + [(w, 1), (outputs[branch], 1)]
                    for i, (cout, k) in enumerate(specs, start=1):
                        names.append(f"Mconv{i}_stage{stage}_L{branch}")
                        self.add_module(names[-1], _conv(cin, cout, k))
                        cin = cout
                pair.append(names)
            self._branches.append((pair[0], pair[1]))
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU(inplace=True)

    def _run_branch(self, x: torch.Tensor, names: list[str]) -> torch.Tensor:
        for i, name in enumerate(names):
            x = getattr(self, name)(x)
            if i < len(names) - 1:
                x = self.relu(x)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W normalised BGR -> N x F x H/8 x W/8 features."""
        x = images
        for name in self._trunk:
            x = self.pool(x) if name == "pool" else self.relu(getattr(self, name)(x))
        return x

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every stage's (pafs N x 38 x h x w, heatmaps N x 19 x h x w)."""
        feats = self.features(images)
        outputs = []
        x = feats
        for paf_names, heat_names in self._branches:
            pafs = self._run_branch(x, paf_names)
            heatmaps = self._run_branch(x, heat_names)
            outputs.append((pafs, heatmaps))
            x = torch.cat([pafs, heatmaps, feats], dim=1)
        return outputs

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stage only: (heatmaps N x 19 x h x w, pafs N x 38 x h x w), float32,
        computed in the weights' type (see :mod:`posecli.precision`)."""
        pafs, heatmaps = self.forward(network_input(images, self.conv1_1.weight))[-1]
        return heatmaps.float(), pafs.float()


    def flops(self, height: int, width: int) -> int:
        """Floating-point operations (2 per multiply-add) of one forward pass.

        ``height`` x ``width`` is the padded network input in pixels (multiples
        of 8). The CMU model at 368 x 496 costs about 366 GFLOP.
        """
        total = 0
        for name, conv in self.named_children():
            if isinstance(conv, nn.Conv2d):
                scale = {"conv1": 1, "conv2": 2, "conv3": 4}.get(name[:5], STRIDE)
                cout, cin, kh, kw = conv.weight.shape
                total += 2 * cout * cin * kh * kw * (height // scale) * (width // scale)
        return total


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
