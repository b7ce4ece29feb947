"""Tracking and smoothing settings, with their defaults (no heavy imports).

Units: seconds of presentation time, hertz, pixels. Tuned on ``posecli synth``
clips with ``benchmarks/bench_tracking.py`` (its README table says how).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError

#: Frames per second assumed for frames whose timestamp is unknown (NaN): their
#: time is then ``frame_index / FALLBACK_FPS``.
FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class SmoothParams:
    """The One Euro filter (Casiez et al., CHI 2012) of every keypoint coordinate.

    Coordinates are filtered in frame heights (x / H, y / H), so the same settings
    behave the same at any resolution. ``min_cutoff``: cutoff frequency in Hz at
    rest (lower: steadier, more lag); ``beta``: how fast the cutoff rises with
    speed, in Hz per (frame height per second) (higher: less lag on fast moves;
    12.5 on a 256-pixel-high frame is 0.049 Hz per pixel/second);
    ``d_cutoff``: cutoff in Hz of the speed estimate (the paper's 1 Hz).
    """

    min_cutoff: float = 2.0
    beta: float = 12.5
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_cutoff) and self.min_cutoff > 0):
            raise UsageError(f"bad --smooth-min-cutoff {self.min_cutoff}: must be above 0 Hz")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise UsageError(f"bad --smooth-beta {self.beta}: must be 0 or more")
        if not (math.isfinite(self.d_cutoff) and self.d_cutoff > 0):
            raise UsageError(f"bad smoothing d_cutoff {self.d_cutoff}: must be above 0 Hz")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrackParams:
    """How people are followed from frame to frame.

    ``buffer_seconds``: a track that no person matched is ended once this much
    presentation time has passed since the first frame that missed it;
    ``min_oks``: the least OKS (COCO sigmas over the keypoints both have, scale
    from the track's box, see :mod:`posecli.track.tracker`) for a person to
    continue a track; ``motion``: predict each track's position with
    its recent velocity before matching; ``smooth``: One Euro smoothing of the
    keypoints along each track (None: raw keypoints).
    """

    buffer_seconds: float = 1.0
    min_oks: float = 0.1
    motion: bool = True
    smooth: SmoothParams | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.buffer_seconds) and self.buffer_seconds >= 0):
            raise UsageError(f"bad --track-buffer {self.buffer_seconds}: must be 0 or more "
                             "seconds")
        if not 0.0 <= self.min_oks <= 1.0:
            raise UsageError(f"bad --track-min-oks {self.min_oks}: must be between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        """The settings for an output's ``info.options.tracking``."""
        return {"buffer_seconds": self.buffer_seconds, "min_oks": self.min_oks,
                "motion": self.motion, "fallback_fps": FALLBACK_FPS,
                "smooth": None if self.smooth is None else self.smooth.to_dict()}


def tracking_options(params: TrackParams | None) -> dict[str, Any]:
    """``{"tracking": ...}`` for an output's ``info.options`` (null: not tracked)."""
    return {"tracking": None if params is None else params.to_dict()}
