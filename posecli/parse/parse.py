"""Orchestration: network outputs of a batch -> people per frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..preprocess import Geometry
from ..skeleton import NUM_HEATMAPS, NUM_PAFS, NUM_PARTS
from .assemble import COUNT, TOTAL, assemble
from .limbs import enumerate_pairs, greedy_match, score_pairs
from .params import ParseParams
from .peaks import find_peaks
from .resample import operators_on


@dataclass(frozen=True)
class Person:
    """One person in one frame.

    ``keypoints``: 18 x 3 float64 (x, y, score) in COCO-18 order, x and y in
    pixels of the original frame; a missing part is (0, 0, 0). ``score``: total
    score divided by ``num_parts`` (the quantity the ``min_mean_score`` filter
    uses); ``total_score``: sum of part and limb scores.
    """

    keypoints: np.ndarray
    score: float
    total_score: float
    num_parts: int


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
    operators = {geometry: operators_on(geometry, params.smoothing_sigma, heatmaps.device)
                 for geometry in set(geometries)}  # once per size, not per frame
    return [parse_frame(heatmaps[k], pafs[k], geometries[k], operators[geometries[k]], params)
            for k in range(n)]


def parse_frame(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                operators: tuple[torch.Tensor, ...], params: ParseParams) -> list[Person]:
    """People of one frame: heatmaps 19 x h x w, pafs 38 x h x w (see parse_batch);
    ``operators``: ``operators_on(geometry, params.smoothing_sigma, device)``."""
    if (heatmaps.shape[1], heatmaps.shape[2]) != (geometry.map_height, geometry.map_width):
        raise ValueError(f"maps are {heatmaps.shape[1]}x{heatmaps.shape[2]} cells, geometry "
                         f"expects {geometry.map_height}x{geometry.map_width}")
    rows, cols, smooth_rows, smooth_cols = operators
    heatmaps = heatmaps[:NUM_PARTS].float()
    peaks = find_peaks(heatmaps, rows, cols, smooth_rows, smooth_cols, params.peak_threshold)
    pairs = enumerate_pairs(peaks)
    score, ok = score_pairs(pairs, peaks, pafs.float(), rows, cols, geometry.height, params)
    connections = greedy_match(pairs, score, ok)
    rows_of_people = assemble(connections, peaks.score, params)
    return [person_from_row(row, peaks.xy, peaks.score) for row in rows_of_people]


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
