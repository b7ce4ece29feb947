"""The sizes of the CPM/PAF body network (no torch: the CLI reads defaults from it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import WeightsError


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network. The defaults are exactly the CMU COCO model."""

    stages: int = 6
    #: Output channels of VGG-19 blocks 1..4 (convs per block: 2, 2, 4, 2).
    vgg_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    #: conv4_3_CPM and conv4_4_CPM widths; the second is the feature width F.
    cpm_widths: tuple[int, int] = (256, 128)
    stage1_width: int = 128
    stage1_hidden: int = 512
    refine_width: int = 128
    refine_kernel: int = 7

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError("a model needs at least one stage")
        if self.refine_kernel % 2 != 1:
            raise ValueError("refine_kernel must be odd")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise WeightsError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"bad model config: {exc}") from None
