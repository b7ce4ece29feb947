"""Ideal network outputs (stride-8 heatmaps and PAFs) rendered from known skeletons.

Test helper (also used by ``benchmarks/bench_parse.py``): give it people as
``P x 18 x 2`` arrays of original-frame pixel coordinates (NaN for a missing
part) and the frame's :class:`~posecli.preprocess.Geometry`, get back what a
perfect CMU network would output, so that the parser should recover exactly
those people.

Where a map cell lands in the original frame. The parser upsamples maps
bicubically with half-pixel centres twice: x stride to the padded input (padded
pixel ``p`` reads cell ``(p + 0.5) / stride - 0.5``), crop the padding (resized
pixel = padded pixel), then resize to the original frame (original pixel ``X``
reads resized pixel ``(X + 0.5) * R / N - 0.5``, R the resized and N the original
size). Composed::

    cell = (X + 0.5) * R / (N * stride) - 0.5
    X    = (cell + 0.5) * N * stride / R - 0.5

Heatmaps: a Gaussian of value 1 and ``sigma`` cells centred on each part's cell
position (max over people); channel 18 is 1 - max over parts. PAFs: within
``band`` cells of each limb segment (a capsule around it), the unit vector from
part A to part B (in the original frame's axes) in the limb's (x, y) channels of
``PAF_CHANNELS``, averaged where the same limb of several people overlaps.

Accuracy. Away from the edges the parse puts each peak on the nearest pixel for
maps of up to ~15 px per cell (e.g. 576 px high at 368); bicubic interpolation of
a 1-cell Gaussian is off by up to ~0.1 cell, so 2 px at 1080 px high at 368.
Near an edge of the frame that is also an edge of the map (left, top, and
right/bottom where there is no padding), the resizes replicate the border cell,
so no map whatsoever puts a peak 1 px .. ~1 cell inside the edge: such parts
come out on the edge pixel (exact for 0, 1 px off for 1, and so on).
"""

from __future__ import annotations

import numpy as np
import torch

from posecli.preprocess import Geometry
from posecli.skeleton import LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS, PAF_CHANNELS

#: A standing person facing the camera, in units of their height (x from the body
#: axis, y from the top of the head), COCO-18 order. The person's right side is
#: on the image's left.
TEMPLATE = np.array([
    [0.000, 0.080],  # nose
    [0.000, 0.180],  # neck
    [-0.110, 0.190],  # right shoulder
    [-0.140, 0.350],  # right elbow
    [-0.150, 0.500],  # right wrist
    [0.110, 0.190],  # left shoulder
    [0.140, 0.350],  # left elbow
    [0.150, 0.500],  # left wrist
    [-0.060, 0.520],  # right hip
    [-0.070, 0.740],  # right knee
    [-0.070, 0.960],  # right ankle
    [0.060, 0.520],  # left hip
    [0.070, 0.740],  # left knee
    [0.070, 0.960],  # left ankle
    [-0.030, 0.055],  # right eye
    [0.030, 0.055],  # left eye
    [-0.065, 0.070],  # right ear
    [0.065, 0.070],  # left ear
])
TEMPLATE_HALF_WIDTH = 0.15  # |x| of the widest part (the wrists)


def cell_from_pixel(xy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(..., 2) original-frame pixel coordinates (x, y) -> map cell coordinates."""
    xy = np.asarray(xy, dtype=np.float64)
    scale = np.array([geometry.resized_width / (geometry.width * geometry.stride),
                      geometry.resized_height / (geometry.height * geometry.stride)])
    return (xy + 0.5) * scale - 0.5


def pixel_from_cell(cell: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Inverse of :func:`cell_from_pixel`."""
    cell = np.asarray(cell, dtype=np.float64)
    scale = np.array([geometry.resized_width / (geometry.width * geometry.stride),
                      geometry.resized_height / (geometry.height * geometry.stride)])
    return (cell + 0.5) / scale - 0.5


def render_maps(people: np.ndarray, geometry: Geometry, sigma: float = 1.0,
                band: float = 1.0,
                paf_channels: tuple[tuple[int, int], ...] = PAF_CHANNELS,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal (heatmaps 1 x 19 x h x w, pafs 1 x 38 x h x w) float32 for ``people``.

    people: P x 18 x 2 original-frame pixel coordinates, NaN for missing parts.
    ``sigma`` (heatmap Gaussian) and ``band`` (PAF half width) are in map cells;
    ``paf_channels`` says where each limb's field goes (tests swap entries).
    """
    people = np.asarray(people, dtype=np.float64).reshape(-1, NUM_PARTS, 2)
    h, w = geometry.map_height, geometry.map_width
    cells = cell_from_pixel(people, geometry)  # P x 18 x 2
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)

    # Heatmaps: P x 18 x h x w Gaussians (NaN parts give NaN, ignored by nanmax).
    dx = gx - cells[..., 0, None, None]
    dy = gy - cells[..., 1, None, None]
    gauss = np.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))
    gauss = np.where(np.isnan(gauss), 0.0, gauss)
    heatmaps = np.zeros((NUM_HEATMAPS, h, w))
    if len(people):
        heatmaps[:NUM_PARTS] = gauss.max(axis=0)
    heatmaps[NUM_PARTS] = np.clip(1.0 - heatmaps[:NUM_PARTS].max(axis=0), 0.0, 1.0)

    pafs = np.zeros((NUM_PAFS, h, w))
    for limb, (part_a, part_b) in enumerate(LIMBS):
        present = ~np.isnan(people[:, [part_a, part_b]]).any(axis=(1, 2))
        if not present.any():
            continue
        a, b = cells[present, part_a], cells[present, part_b]  # Q x 2 cells
        direction = people[present, part_b] - people[present, part_a]  # frame axes
        unit = direction / np.maximum(np.linalg.norm(direction, axis=1), 1e-9)[:, None]
        seg = b - a
        seg_len2 = np.maximum((seg * seg).sum(axis=1), 1e-12)
        # Distance from every cell to each segment: Q x h x w.
        px, py = gx - a[:, 0, None, None], gy - a[:, 1, None, None]
        t = np.clip((px * seg[:, 0, None, None] + py * seg[:, 1, None, None])
                    / seg_len2[:, None, None], 0.0, 1.0)
        ex = px - t * seg[:, 0, None, None]
        ey = py - t * seg[:, 1, None, None]
        inside = (ex * ex + ey * ey) <= band * band
        count = inside.sum(axis=0)
        vx = (inside * unit[:, 0, None, None]).sum(axis=0)
        vy = (inside * unit[:, 1, None, None]).sum(axis=0)
        chan_x, chan_y = paf_channels[limb]
        pafs[chan_x] = vx / np.maximum(count, 1)
        pafs[chan_y] = vy / np.maximum(count, 1)

    return (torch.from_numpy(heatmaps[None]).float(), torch.from_numpy(pafs[None]).float())


def make_person(center_x: float, top: float, height: float, missing: tuple[int, ...] = (),
                template: np.ndarray = TEMPLATE) -> np.ndarray:
    """An 18 x 2 skeleton from ``template``: body axis at ``center_x``, head top at
    ``top``, ``height`` pixels tall; parts in ``missing`` are NaN."""
    person = template * height + np.array([center_x, top])
    person[list(missing)] = np.nan
    return person


def crowd(count: int, geometry: Geometry, rng: np.random.Generator,
          min_height: float = 0.45, max_height: float = 0.9, margin_cells: float = 1.5,
          snap: bool = True, rows: int = 1) -> np.ndarray:
    """``count`` standing people side by side at random heights, in ``rows`` rows.

    Heights are fractions of a row's height, shrunk if needed so everyone fits in
    their slot of the row (people never overlap). Every keypoint stays
    ``margin_cells`` map cells away from the frame's edges, where peaks cannot
    land (see the module docstring). With ``snap`` keypoints are rounded to whole
    pixels (peaks are pixel positions).
    """
    cell = pixel_from_cell(np.ones(2), geometry) - pixel_from_cell(np.zeros(2), geometry)
    margin_x, margin_y = margin_cells * cell
    usable_w = geometry.width - 2 * margin_x
    band = (geometry.height - 2 * margin_y) / rows
    per_row = -(-count // rows)
    slot = usable_w / per_row
    fit = 0.8 * slot / (2 * TEMPLATE_HALF_WIDTH)  # height that fills 80 % of a slot
    heights = np.minimum(rng.uniform(min_height, max_height, count) * band, fit)
    row, column = np.divmod(np.arange(count), per_row)
    centers = margin_x + (column + 0.5 + rng.uniform(-0.05, 0.05, count)) * slot
    tops = margin_y + row * band + rng.uniform(0.0, 1.0, count) * (band - heights)
    people = np.array([make_person(c, t, h) for c, t, h in zip(centers, tops, heights)])
    return np.round(people) if snap else people
