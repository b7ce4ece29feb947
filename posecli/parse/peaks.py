"""Part candidates: local maxima of the upsampled, smoothed heatmaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..skeleton import NUM_PARTS
from .resample import Banded, map_values
from .tiles import SmoothingTiles, smoothed_maxima


@dataclass(frozen=True)
class Peaks:
    """The part candidates of one frame, ordered by part, then row, then column.

    ``part``: K int64 part indices (COCO-18); ``xy``: K x 2 float64 pixel
    coordinates in the original frame (integers: pixel indices); ``score``: K
    float64 values of the unsmoothed upsampled heatmap at the peak.
    """

    part: np.ndarray
    xy: np.ndarray
    score: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Candidates per part (NUM_PARTS,)."""
        return np.bincount(self.part, minlength=NUM_PARTS)


def find_peaks(heatmaps: torch.Tensor, tiles: SmoothingTiles, rows: Banded, cols: Banded,
               threshold: float, max_per_part: int) -> Peaks:
    """Peaks of one frame's part heatmaps.

    heatmaps: (18, h, w) network output at stride 8. ``tiles`` upsample and smooth
    them (see :mod:`.tiles`); ``rows`` (H x h) and ``cols`` (W x w) upsample them
    without smoothing, for the peaks' scores. A part with more than
    ``max_per_part`` peaks keeps the ``max_per_part`` of highest smoothed value (the
    quantity that makes them peaks; ties: the first in row-major order).
    """
    index, smoothed = smoothed_maxima(heatmaps, tiles, threshold)
    keep = strongest(index[:, 0], smoothed, max_per_part)
    part, y, x = index[keep].unbind(1)
    score = map_values(heatmaps, rows, cols, part, y, x)
    xy = torch.stack([x, y], dim=1)
    return Peaks(part.cpu().numpy(), xy.cpu().numpy().astype(np.float64),
                 score.double().cpu().numpy())


def strongest(part: torch.Tensor, score: torch.Tensor, limit: int) -> torch.Tensor:
    """K bools: the ``limit`` highest-scoring of each part's peaks.

    part, score: K peaks sorted by part (then row-major). Ties go to the earlier
    peak.
    """
    counts = torch.bincount(part, minlength=NUM_PARTS)
    keep = torch.ones_like(part, dtype=torch.bool)
    if part.numel() == 0 or int(counts.max()) <= limit:
        return keep
    # Stable sorts: by descending score, then by part (ties keep row-major order).
    by_score = torch.sort(score, descending=True, stable=True).indices
    order = by_score[torch.sort(part[by_score], stable=True).indices]
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(part.numel(), device=part.device) - first[part[order]]
    keep[order[rank >= limit]] = False
    return keep
