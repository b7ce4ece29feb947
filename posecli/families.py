"""Model families: what a loaded network expects as input and which decoding suits its maps
(no torch).

Every network posecli runs predicts the CMU output layout (19 heatmaps in OpenPose's
COCO-18 order + background, 38 PAF channels in the CMU model's channel order, at
stride 8), so one parse serves them all. What differs between families travels
with the loaded model: the :class:`InputSpec` the preprocessing follows and the
decoding that runs by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from .defaults import DEFAULT_NET_HEIGHT, STRIDE

#: The decodings of network maps into people: posecli's parse (the CMU reference
#: parse, :mod:`posecli.parse`) and the Lightweight OpenPose decoding
#: (:mod:`posecli.lightweight.decode`).
DECODERS = ("posecli", "lightweight")


@dataclass(frozen=True)
class InputSpec:
    """How frames become network input: value = (pixel - ``mean``) * ``scale`` in
    ``channel_order`` ("BGR" or "RGB"), padding of value ``pad_value`` (after
    normalisation) to a multiple of ``stride``; ``net_height`` (pixels) is the
    default network input height."""

    channel_order: str = "BGR"
    mean: float = 128.0
    scale: float = 1 / 256
    pad_value: float = 0.0
    stride: int = STRIDE
    net_height: int = DEFAULT_NET_HEIGHT

    def __post_init__(self) -> None:
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"channel order must be BGR or RGB, not {self.channel_order!r}")


@dataclass(frozen=True)
class ModelFamily:
    """A family of networks: ``name`` as recorded in outputs, its input, its default decoding."""

    name: str
    title: str
    input: InputSpec
    decoder: str


#: The CMU model and its conversions, and posecli's own models: BGR, pixel / 256 - 0.5,
#: padding 0 (a grey pixel), net height 368 (the CMU model's training size).
CMU = ModelFamily("cmu", "CMU CPM/PAF (Cao et al. 2017)", InputSpec(), "posecli")

#: Lightweight OpenPose, as its published code feeds it (val.py, demo.py): images as
#: OpenCV reads them (BGR), (pixel - 128) / 256, padding 0 after normalisation, stride
#: 8: the same input as the CMU model's. Net height 368: its 40% AP was measured at
#: 368 (val.py); its webcam demo runs at 256 for speed (--net-height 256).
LIGHTWEIGHT = ModelFamily(
    "lightweight", "Lightweight OpenPose (Osokin 2018)",
    InputSpec(channel_order="BGR", mean=128.0, scale=1 / 256, pad_value=0.0, stride=STRIDE,
              net_height=368),
    "lightweight")

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (CMU, LIGHTWEIGHT)}
