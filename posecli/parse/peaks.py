"""Part candidates: local maxima of the upsampled, smoothed heatmaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..skeleton import NUM_PARTS


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


def local_maxima(smoothed: torch.Tensor, threshold: float) -> torch.Tensor:
    """(P, H, W) maps -> (K, 3) int64 indices (part, y, x) of 4-neighbourhood maxima.

    A pixel is a peak when it is >= each of its four neighbours (outside the map
    counts as 0) and > ``threshold``; plateaus yield every pixel, as the reference.
    """
    padded = F.pad(smoothed, (1, 1, 1, 1))
    centre = padded[:, 1:-1, 1:-1]
    is_peak = (
        (centre >= padded[:, 1:-1, :-2]) & (centre >= padded[:, 1:-1, 2:])
        & (centre >= padded[:, :-2, 1:-1]) & (centre >= padded[:, 2:, 1:-1])
        & (centre > threshold)
    )
    return is_peak.nonzero()


def find_peaks(heatmaps: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
               smooth_rows: torch.Tensor, smooth_cols: torch.Tensor,
               threshold: float) -> Peaks:
    """Peaks of one frame's part heatmaps.

    heatmaps: (18, h, w) network output at stride 8; rows (H x h) and cols (W x w)
    upsample to the original frame; smooth_rows / smooth_cols also smooth.
    """
    smoothed = smooth_rows @ heatmaps @ smooth_cols.T  # 18 x H x W
    index = local_maxima(smoothed, threshold)
    part, y, x = index.unbind(1)
    # Unsmoothed upsampled value at each peak: rows[y] . heatmap . cols[x].
    along_x = torch.einsum("khw,kw->kh", heatmaps[part], cols[x])
    score = (along_x * rows[y]).sum(1)
    xy = torch.stack([x, y], dim=1)
    return Peaks(part.cpu().numpy(), xy.cpu().numpy().astype(np.float64),
                 score.double().cpu().numpy())
