"""Orchestration: network outputs of a batch -> people per frame."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..person import Person
from ..preprocess import Geometry
from ..skeleton import NUM_HEATMAPS, NUM_PAFS, NUM_PARTS
from .affinity import AffinityOperators, affinity_operators, score_pairs
from .assemble import COUNT, TOTAL, assemble
from .limbs import enumerate_pairs, greedy_match
from .params import ParseParams
from .peaks import find_peaks
from .resample import map_operators
from .tiles import SmoothingTiles, smoothing_tiles

#: Map values smaller than this in magnitude are taken as 0. Below ~1e-38 float32 is
#: denormal, which makes CPU arithmetic ten times slower (maps rendered with exp()
#: have many). A smoothed or upsampled value moves by less than 1e-19: only a decision
#: between values that small (never above the default thresholds) could change.
NEGLIGIBLE = 1e-20


def parse_batch(heatmaps: torch.Tensor, pafs: torch.Tensor,
                geometry: Geometry | list[Geometry],
                params: ParseParams | None = None) -> list[list[Person]]:
    """People in each frame of a batch.

    heatmaps: N x 19 x h x w and pafs: N x 38 x h x w, the network's raw last-stage
    outputs at stride 8 (h = padded_height / 8), on any device; geometry: one
    :class:`Geometry` for all frames or one per frame. Returns N lists of people,
    coordinates in original-frame pixels.
    """
    params = params or ParseParams()
    n = heatmaps.shape[0]
    geometries = geometry if isinstance(geometry, list) else [geometry] * n
    if heatmaps.ndim != 4 or heatmaps.shape[1] != NUM_HEATMAPS:
        raise ValueError(f"heatmaps must be N x {NUM_HEATMAPS} x h x w, "
                         f"got {tuple(heatmaps.shape)}")
    if pafs.shape[:1] + pafs.shape[2:] != heatmaps.shape[:1] + heatmaps.shape[2:] \
            or pafs.shape[1] != NUM_PAFS:
        raise ValueError(f"pafs must be N x {NUM_PAFS} x h x w like the heatmaps, "
                         f"got {tuple(pafs.shape)}")
    if len(geometries) != n:
        raise ValueError(f"{len(geometries)} geometries for {n} frames")
    return [parse_frame(heatmaps[k], pafs[k], geometries[k],
                        parse_operators(geometries[k], params.smoothing_sigma,
                                        heatmaps.device), params)
            for k in range(n)]


@dataclass(frozen=True)
class ParseOperators:
    """One frame size's resampling operators (see :mod:`.resample`), on one device.

    ``smoothing``: GA and GB cut into tiles for the peak search; ``affinity``: A and B
    as the PAF scoring uses them (and their bands, which also give the peaks' scores).
    """

    smoothing: SmoothingTiles
    affinity: AffinityOperators


@lru_cache(maxsize=32)
def parse_operators(geometry: Geometry, sigma: float, device: torch.device) -> ParseOperators:
    """The :class:`ParseOperators` of a frame size, built once and cached."""
    a, b, ga, gb = map_operators(geometry, sigma)
    return ParseOperators(smoothing_tiles(ga, gb, device), affinity_operators(a, b, device))


def parse_frame(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                operators: ParseOperators, params: ParseParams) -> list[Person]:
    """People of one frame: heatmaps 19 x h x w, pafs 38 x h x w (see parse_batch);
    ``operators``: ``parse_operators(geometry, params.smoothing_sigma, device)``."""
    if (heatmaps.shape[1], heatmaps.shape[2]) != (geometry.map_height, geometry.map_width):
        raise ValueError(f"maps are {heatmaps.shape[1]}x{heatmaps.shape[2]} cells, geometry "
                         f"expects {geometry.map_height}x{geometry.map_width}")
    heatmaps, pafs = without_negligible(heatmaps[:NUM_PARTS]), without_negligible(pafs)
    peaks = find_peaks(heatmaps, operators.smoothing, operators.affinity.banded_rows,
                       operators.affinity.cols, params.peak_threshold, params.max_peaks_per_part)
    pairs = enumerate_pairs(peaks)
    score, ok = score_pairs(pairs, peaks, pafs, operators.affinity, geometry.height, params)
    connections = greedy_match(pairs, score, ok)
    rows_of_people = assemble(connections, peaks.score, params)
    return [person_from_row(row, peaks.xy, peaks.score) for row in rows_of_people]


def without_negligible(maps: torch.Tensor) -> torch.Tensor:
    """float32 ``maps`` with values below :data:`NEGLIGIBLE` in magnitude set to 0."""
    maps = maps.float()
    return maps.masked_fill(maps.abs() < NEGLIGIBLE, 0.0).contiguous()


def person_from_row(row: np.ndarray, xy: np.ndarray, peak_scores: np.ndarray) -> Person:
    """A Person from an assembled row (parts' global peak indices, TOTAL, COUNT) and the
    frame's peaks (K x 2 pixel coordinates, K scores)."""
    slots = row[:NUM_PARTS].astype(np.int64)
    found = slots >= 0
    keypoints = np.zeros((NUM_PARTS, 3))
    keypoints[found, :2] = xy[slots[found]]
    keypoints[found, 2] = peak_scores[slots[found]]
    count = int(row[COUNT])
    return Person(keypoints, float(row[TOTAL] / count), float(row[TOTAL]), count)
