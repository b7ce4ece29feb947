"""The Lightweight OpenPose network (Osokin 2018), laid out like its published checkpoint.

*Real-time 2D Multi-Person Pose Estimation on CPU: Lightweight OpenPose*
(arXiv:1811.12004): a MobileNet-v1 trunk (stride 8, the last block dilated), a
CPM head, an initial stage and refinement stages, each predicting 19 heatmaps
and 38 PAFs. Module names follow its checkpoint's state dict, so
``checkpoint["state_dict"]`` loads as it is:

``model.0``
    3x3 stride-2 conv, batch norm, ReLU (``.0`` conv, ``.1`` BN);
``model.1`` .. ``model.11``
    depthwise-separable blocks (``.0`` depthwise conv, ``.1`` BN, ``.3`` pointwise
    conv, ``.4`` BN);
``cpm``
    ``align`` (1x1 conv to 128), ``trunk.0..2`` (depthwise-separable, ELU, no BN:
    ``.0`` and ``.2``), ``conv`` (3x3) applied to ``align + trunk``;
``initial_stage``
    ``trunk.0..2`` (3x3 convs), ``heatmaps`` and ``pafs`` (1x1 to 512, 1x1 out);
``refinement_stages.K``
    five residual blocks ``trunk.0..4`` (``initial`` 1x1 conv; ``trunk.0`` 3x3
    conv + BN, ``trunk.1`` dilated 3x3 conv + BN; output ``initial + trunk``) on
    the features concatenated with the previous stage's heatmaps and PAFs, then
    ``heatmaps`` and ``pafs`` (1x1, 1x1 out).

The published checkpoint holds three refinement stages; its authors' 40% AP is
for the network that keeps the first (the others are discarded), which is what
:class:`LightweightNet` builds by default. Its heatmaps use OpenPose's COCO-18
part order and its PAFs the CMU channel layout (both checked below against its
training code's tables), so :meth:`LightweightNet.predict` returns maps that
posecli's parse reads like the CMU model's.

Input: N x 3 x H x W float, BGR, value = (pixel - 128) / 256, H and W multiples of 8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..model import PointwiseConv
from ..precision import network_input
from ..skeleton import COCO17_NAMES, COCO18_NAMES, LIMBS, NUM_HEATMAPS, NUM_PAFS, PAF_CHANNELS

#: Output channels, stride and dilation of the MobileNet-v1 trunk's blocks
#: ``model.1`` .. ``model.11`` (``model.0`` is the 32-channel stride-2 conv).
_TRUNK_BLOCKS = (
    (64, 1, 1), (128, 2, 1), (128, 1, 1), (256, 2, 1), (256, 1, 1), (512, 1, 1),
    (512, 1, 2), (512, 1, 1), (512, 1, 1), (512, 1, 1), (512, 1, 1),
)
FEATURES = 128  # CPM output and refinement width
REFINEMENT_BLOCKS = 5

#: Its part channels, as its training data orders COCO keypoints: 1-based COCO-17
#: indices, with the neck (the shoulders' midpoint) inserted as channel 1.
_TRAINED_PART_ORDER_COCO17 = (1, 7, 9, 11, 6, 8, 10, 13, 15, 17, 12, 14, 16, 3, 2, 5, 4)
#: Its PAF channels: limb k (COCO-18 part pairs, from part A to part B) is channels
#: 2k (x) and 2k + 1 (y), in the order its training data lists limbs.
_TRAINED_LIMB_ORDER = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)


def trained_part_names() -> tuple[str, ...]:
    """Its 18 part channels' names, from its training data's keypoint order."""
    names = [COCO17_NAMES[index - 1] for index in _TRAINED_PART_ORDER_COCO17]
    return (names[0], "neck", *names[1:])


def heatmap_order(part_names: tuple[str, ...] = ()) -> np.ndarray:
    """For each of posecli's 19 heatmap channels, the network channel that holds it."""
    names = part_names or trained_part_names()
    return np.array([names.index(name) for name in COCO18_NAMES] + [len(COCO18_NAMES)])


def paf_order(limb_order: tuple[tuple[int, int], ...] = _TRAINED_LIMB_ORDER) -> np.ndarray:
    """For each of posecli's 38 PAF channels (:data:`~posecli.skeleton.PAF_CHANNELS`), the
    network channel that holds it. Every limb must appear in the same direction."""
    order = np.zeros(NUM_PAFS, dtype=np.int64)
    for limb, (x, y) in zip(LIMBS, PAF_CHANNELS):
        if limb not in limb_order:
            raise ValueError(f"limb {limb} is not among the network's PAFs in this direction")
        k = limb_order.index(limb)
        order[x], order[y] = 2 * k, 2 * k + 1
    return order


@dataclass(frozen=True)
class LightweightConfig:
    """How much of the published network runs: ``refinement_stages`` after the initial one."""

    refinement_stages: int = 1

    def __post_init__(self) -> None:
        if self.refinement_stages < 0:
            raise ValueError("refinement_stages must be >= 0")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def describe(self) -> str:
        """One line for ``posecli weights verify``."""
        return (f"Lightweight OpenPose: MobileNet-v1 trunk, CPM {FEATURES}, initial stage + "
                f"{self.refinement_stages} refinement stage(s)")


def _conv(cin: int, cout: int, kernel: int, *, stride: int = 1, dilation: int = 1,
          groups: int = 1, bias: bool = True) -> nn.Conv2d:
    if kernel == 1 and stride == 1 and groups == 1:  # the same bytes on any thread count
        return PointwiseConv(cin, cout, 1, bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel // 2),
                     dilation=dilation, groups=groups, bias=bias)


def _chain(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


def _separable(cin: int, cout: int, stride: int, dilation: int, norm: bool) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, both without bias: with batch norm and ReLU
    (trunk), or with ELU and no norm (CPM)."""
    depthwise = _conv(cin, cin, 3, stride=stride, dilation=dilation, groups=cin, bias=False)
    pointwise = _conv(cin, cout, 1, bias=False)
    if norm:
        return _chain(depthwise, nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                      pointwise, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
    return _chain(depthwise, nn.ELU(inplace=True), pointwise, nn.ELU(inplace=True))


def _relu_conv(cin: int, cout: int, kernel: int, *, dilation: int = 1,
               norm: bool = False) -> nn.Sequential:
    layers = [_conv(cin, cout, kernel, dilation=dilation)]
    layers += [nn.BatchNorm2d(cout)] if norm else []
    return _chain(*layers, nn.ReLU(inplace=True))


def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """1x1 conv + ReLU, then the 1x1 output conv (no activation)."""
    return _chain(_relu_conv(cin, hidden, 1), _chain(_conv(hidden, cout, 1)))


class _Cpm(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.align = _relu_conv(cin, FEATURES, 1)
        self.trunk = _chain(*(_separable(FEATURES, FEATURES, 1, 1, norm=False)
                              for _ in range(3)))
        self.conv = _relu_conv(FEATURES, FEATURES, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aligned = self.align(x)
        return self.conv(aligned + self.trunk(aligned))


class _InitialStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = _chain(*(_relu_conv(FEATURES, FEATURES, 3) for _ in range(3)))
        self.heatmaps = _head(FEATURES, 512, NUM_HEATMAPS)
        self.pafs = _head(FEATURES, 512, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.initial = _relu_conv(cin, FEATURES, 1)
        self.trunk = _chain(_relu_conv(FEATURES, FEATURES, 3, norm=True),
                            _relu_conv(FEATURES, FEATURES, 3, dilation=2, norm=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        return x + self.trunk(x)


class _RefinementStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        cin = FEATURES + NUM_HEATMAPS + NUM_PAFS
        self.trunk = _chain(*(_ResidualBlock(cin if i == 0 else FEATURES)
                              for i in range(REFINEMENT_BLOCKS)))
        self.heatmaps = _head(FEATURES, FEATURES, NUM_HEATMAPS)
        self.pafs = _head(FEATURES, FEATURES, NUM_PAFS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.heatmaps(x), self.pafs(x)


class LightweightNet(nn.Module):
    """Lightweight OpenPose with ``config.refinement_stages`` refinement stages."""

    def __init__(self, config: LightweightConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LightweightConfig()
        blocks: list[nn.Module] = [_chain(_conv(3, 32, 3, stride=2, bias=False),
                                          nn.BatchNorm2d(32), nn.ReLU(inplace=True))]
        cin = 32
        for cout, stride, dilation in _TRUNK_BLOCKS:
            blocks.append(_separable(cin, cout, stride, dilation, norm=True))
            cin = cout
        self.model = _chain(*blocks)
        self.cpm = _Cpm(cin)
        self.initial_stage = _InitialStage()
        self.refinement_stages = nn.ModuleList(
            _RefinementStage() for _ in range(config.refinement_stages))
        heat, paf = heatmap_order(), paf_order()
        # Channel reorders into posecli's layout; None where the network's is already it.
        self._heat_order = None if (heat == np.arange(NUM_HEATMAPS)).all() else heat.tolist()
        self._paf_order = None if (paf == np.arange(NUM_PAFS)).all() else paf.tolist()

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every stage's (heatmaps N x 19 x h x w, pafs N x 38 x h x w) in the network's own
        channel order, h = H / 8 (note: heatmaps first, unlike PoseNet.forward)."""
        features = self.cpm(self.model(images))
        outputs = [self.initial_stage(features)]
        for stage in self.refinement_stages:
            heatmaps, pafs = outputs[-1]
            outputs.append(stage(torch.cat([features, heatmaps, pafs], dim=1)))
        return outputs

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stage: (heatmaps N x 19 x h x w, pafs N x 38 x h x w) in posecli's
        COCO-18 part order and CMU PAF channel order; float32, computed in the weights'
        type (see :mod:`posecli.precision`)."""
        first = next(self.parameters())
        heatmaps, pafs = self.forward(network_input(images, first))[-1]
        if self._heat_order is not None:
            heatmaps = heatmaps[:, self._heat_order]
        if self._paf_order is not None:
            pafs = pafs[:, self._paf_order]
        return heatmaps.float(), pafs.float()

    def flops(self, height: int, width: int) -> int:
        """Floating-point operations (2 per multiply-add) of the convolutions of one forward
        pass at a ``height`` x ``width`` input (pixels, multiples of 8)."""
        total = 0

        def count(conv: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            nonlocal total
            cout, cin_per_group, kh, kw = conv.weight.shape
            total += 2 * output.shape[-2] * output.shape[-1] * cout * cin_per_group * kh * kw

        with torch.device("meta"):  # shapes only: nothing is computed or allocated
            shadow = LightweightNet(self.config)
        hooks = [m.register_forward_hook(count) for m in shadow.modules()
                 if isinstance(m, nn.Conv2d)]
        try:
            shadow(torch.zeros(1, 3, height, width, device="meta"))
        finally:
            for hook in hooks:
                hook.remove()
        return total
