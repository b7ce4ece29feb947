"""Training targets at stride 8: part heatmaps, part affinity fields and the loss mask.

Everything is computed from COCO-17 keypoints ``(x, y, v)`` of the people in one
(cropped, augmented) network input of ``height`` x ``width`` pixels. Coordinates
are pixel indices, the convention of :mod:`posecli.parse`: map cell ``j`` is
centred on input pixel ``X = stride * j + (stride - 1) / 2``, i.e. pixel ``X``
lies at map coordinate ``(X + 0.5) / stride - 0.5`` -- exactly where the parser's
bicubic upsampling (half-pixel centres) puts it.

* Heatmaps (19 channels, COCO-18 model order): a Gaussian of ``sigma`` input
  pixels around every labelled part (``v > 0``), the maximum over people; the
  neck is the midpoint of the shoulders when both are labelled; channel 18
  (background) is ``1 - max`` of the part channels.
* PAFs (38 channels, the model's layout :data:`~posecli.skeleton.PAF_CHANNELS`):
  the unit vector from part A to part B of each limb on every cell whose centre
  lies within ``limb_width`` pixels of the segment A-B, measured across the limb
  and beyond either end (a rectangle of half width ``limb_width`` around the
  segment, as the CMU code's bounding box extended by one cell, so limbs shorter
  than a cell still cover cells), averaged over the people whose limbs cover
  the cell, zero elsewhere.
* Loss mask (h x w): 0 on cells touching an ignored region (crowd annotations and
  people without labelled keypoints), 1 elsewhere.

All of it is vectorised numpy: no Python loop over pixels or people.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..defaults import STRIDE
from ..skeleton import (
    COCO17_FROM_COCO18,
    COCO18_NAMES,
    LIMBS,
    NUM_HEATMAPS,
    NUM_PAFS,
    NUM_PARTS,
    PAF_CHANNELS,
)

#: Gaussian sigma of the part heatmaps, in input pixels (the CMU training value).
SIGMA = 7.0
#: Half width of a limb's PAF band, in input pixels (one map cell each side).
LIMB_WIDTH = 8.0
#: Gaussians are cut to 0 where exp(-d^2 / 2 sigma^2) < 0.01, as the CMU code does.
_GAUSS_CUTOFF = 4.6052

_LEFT_SHOULDER = COCO18_NAMES.index("left_shoulder")
_RIGHT_SHOULDER = COCO18_NAMES.index("right_shoulder")
_NECK = COCO18_NAMES.index("neck")



@dataclass(frozen=True)
class Targets:
    """What the network is trained to output for one input (float32 arrays).

    heatmaps: 19 x h x w; pafs: 38 x h x w; mask: h x w (1 = counts, 0 = ignored).
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    mask: np.ndarray


def cell_centres(cells: int, stride: int = STRIDE) -> np.ndarray:
    """Input-pixel coordinate of each map cell's centre: ``stride * j + (stride - 1) / 2``."""
    return np.arange(cells, dtype=np.float64) * stride + (stride - 1) / 2.0


def coco18_from_coco17(keypoints: np.ndarray) -> np.ndarray:
    """P x 17 x 3 COCO-17 ``(x, y, v)`` -> P x 18 x 3 in the model's COCO-18 order.

    The neck is the midpoint of the shoulders when both are labelled (v > 0), with
    the smaller of their two v; otherwise it is absent (0, 0, 0).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)
    parts = np.zeros((len(keypoints), NUM_PARTS, 3))
    parts[:, COCO17_FROM_COCO18] = keypoints
    left, right = parts[:, _LEFT_SHOULDER], parts[:, _RIGHT_SHOULDER]
    both = (left[:, 2] > 0) & (right[:, 2] > 0)
    parts[both, _NECK, :2] = (left[both, :2] + right[both, :2]) / 2.0
    parts[both, _NECK, 2] = np.minimum(left[both, 2], right[both, 2])
    return parts


def heatmap_targets(parts: np.ndarray, map_height: int, map_width: int,
                    stride: int = STRIDE, sigma: float = SIGMA) -> np.ndarray:
    """19 x h x w part confidence maps from P x 18 x 3 COCO-18 parts (see module doc)."""
    parts = np.asarray(parts, dtype=np.float64).reshape(-1, NUM_PARTS, 3)
    ys, xs = cell_centres(map_height, stride), cell_centres(map_width, stride)
    # 18 x P x 1 coordinates against the cell centres: separable squared distances.
    px = parts[:, :, 0].T[:, :, None]
    py = parts[:, :, 1].T[:, :, None]
    ex = (xs[None, None, :] - px) ** 2 / (2.0 * sigma**2)  # 18 x P x w
    ey = (ys[None, None, :] - py) ** 2 / (2.0 * sigma**2)  # 18 x P x h
    exponent = ey[:, :, :, None] + ex[:, :, None, :]  # 18 x P x h x w
    gauss = np.where(exponent > _GAUSS_CUTOFF, 0.0, np.exp(-np.minimum(exponent, 50.0)))
    labelled = (parts[:, :, 2] > 0).T  # 18 x P
    gauss *= labelled[:, :, None, None]
    heatmaps = np.zeros((NUM_HEATMAPS, map_height, map_width), dtype=np.float32)
    if len(parts):
        heatmaps[:NUM_PARTS] = np.minimum(gauss.max(axis=1), 1.0)
    heatmaps[NUM_PARTS] = np.maximum(1.0 - heatmaps[:NUM_PARTS].max(axis=0), 0.0)
    return heatmaps


def paf_targets(parts: np.ndarray, map_height: int, map_width: int,
                stride: int = STRIDE, limb_width: float = LIMB_WIDTH) -> np.ndarray:
    """38 x h x w part affinity fields from P x 18 x 3 COCO-18 parts (see module doc).

    A cell is on a limb when its centre projects onto the limb's line within
    ``[-limb_width, length + limb_width]`` and lies at most ``limb_width`` from it.

    A limb contributes where both its parts are labelled and at least 1e-6 pixels
    apart. Where several people's limbs of one kind cover a cell, the vectors are
    averaged (sum / count), so the result may be shorter than 1 there.
    """
    parts = np.asarray(parts, dtype=np.float64).reshape(-1, NUM_PARTS, 3)
    pafs = np.zeros((NUM_PAFS, map_height, map_width), dtype=np.float32)
    if not len(parts):
        return pafs
    limbs = np.asarray(LIMBS)
    a, b = parts[:, limbs[:, 0]], parts[:, limbs[:, 1]]  # P x 19 x 3
    delta = b[..., :2] - a[..., :2]
    length = np.linalg.norm(delta, axis=-1)  # P x 19
    valid = (a[..., 2] > 0) & (b[..., 2] > 0) & (length > 1e-6)
    unit = delta / np.maximum(length, 1e-6)[..., None]  # P x 19 x 2
    ys, xs = cell_centres(map_height, stride), cell_centres(map_width, stride)
    dx = xs[None, None, None, :] - a[..., 0, None, None]  # P x 19 x 1 x w
    dy = ys[None, None, :, None] - a[..., 1, None, None]  # P x 19 x h x 1
    ux, uy = unit[..., 0, None, None], unit[..., 1, None, None]
    along = dx * ux + dy * uy  # P x 19 x h x w
    across = np.abs(dx * uy - dy * ux)
    on_limb = ((along >= -limb_width) & (along <= length[..., None, None] + limb_width)
               & (across <= limb_width) & valid[..., None, None])
    count = on_limb.sum(axis=0)  # 19 x h x w
    sum_x = (on_limb * ux).sum(axis=0)
    sum_y = (on_limb * uy).sum(axis=0)
    covered = count > 0
    mean_x = np.where(covered, sum_x / np.maximum(count, 1), 0.0)
    mean_y = np.where(covered, sum_y / np.maximum(count, 1), 0.0)
    channels = np.asarray(PAF_CHANNELS)
    pafs[channels[:, 0]] = mean_x
    pafs[channels[:, 1]] = mean_y
    return pafs


def region_mask(annotations: Iterable[Mapping[str, Any]], height: int, width: int) -> np.ndarray:
    """H x W bool: the union of the annotations' segmentations (polygons or RLE).

    An annotation without a usable segmentation contributes its ``bbox`` rectangle.
    """
    from pycocotools import mask as mask_utils

    region = np.zeros((height, width), dtype=bool)
    for ann in annotations:
        segm = ann.get("segmentation")
        rle = None
        if isinstance(segm, list) and any(len(poly) >= 6 for poly in segm):
            polygons = [list(map(float, p)) for p in segm if len(p) >= 6]
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segm, dict) and "counts" in segm:
            rle = segm
            if isinstance(segm["counts"], list):
                rle = mask_utils.frPyObjects(segm, height, width)
            if tuple(rle.get("size", (height, width))) != (height, width):
                rle = None  # an RLE of another image size cannot be placed: use the bbox
        if rle is not None:
            with warnings.catch_warnings():  # pycocotools' numpy 2 copy= deprecation
                warnings.simplefilter("ignore", DeprecationWarning)
                region |= mask_utils.decode(rle).astype(bool)
        elif ann.get("bbox") and len(ann["bbox"]) == 4:
            x, y, w, h = (float(v) for v in ann["bbox"])
            x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
            x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)
            region[y0:y1, x0:x1] = True
    return region


def is_ignored(ann: Mapping[str, Any]) -> bool:
    """Whether an annotation marks a region the loss must ignore.

    Crowd annotations and people with no labelled keypoints (``num_keypoints == 0``,
    counted from ``keypoints`` when the field is absent) are ignored.
    """
    if ann.get("iscrowd", 0):
        return True
    return num_keypoints(ann) == 0


def num_keypoints(ann: Mapping[str, Any]) -> int:
    """``num_keypoints`` of an annotation, counted from its keypoints when absent."""
    if "num_keypoints" in ann:
        return int(ann["num_keypoints"])
    keypoints = ann.get("keypoints") or []
    return int(np.count_nonzero(np.asarray(keypoints, dtype=np.float64)[2::3] > 0))


def mask_at_stride(ignored: np.ndarray | None, map_height: int, map_width: int,
                   stride: int = STRIDE) -> np.ndarray:
    """h x w float32 loss mask from an input-resolution H x W ignore map.

    A cell is 0 when any of its ``stride`` x ``stride`` input pixels is ignored
    (``ignored`` > 0.5), else 1. None means nothing is ignored.
    """
    if ignored is None:
        return np.ones((map_height, map_width), dtype=np.float32)
    ignored = np.asarray(ignored)[: map_height * stride, : map_width * stride] > 0.5
    if ignored.shape != (map_height * stride, map_width * stride):
        raise ValueError(f"ignore map {ignored.shape} does not cover "
                         f"{map_height} x {map_width} cells of stride {stride}")
    blocks = ignored.reshape(map_height, stride, map_width, stride).any(axis=(1, 3))
    return (~blocks).astype(np.float32)


def build_targets(keypoints: np.ndarray, height: int, width: int,
                  ignored: np.ndarray | None = None, stride: int = STRIDE,
                  sigma: float = SIGMA, limb_width: float = LIMB_WIDTH) -> Targets:
    """All targets of one ``height`` x ``width`` input (multiples of ``stride``).

    keypoints: P x 17 x 3 COCO-17 ``(x, y, v)`` in input pixels of the labelled
    people (P may be 0); ignored: optional H x W map of pixels to leave out of the
    loss (see :func:`region_mask`, :func:`is_ignored`).
    """
    if height % stride or width % stride:
        raise ValueError(f"input {width}x{height} is not a multiple of stride {stride}")
    map_height, map_width = height // stride, width // stride
    parts = coco18_from_coco17(keypoints)
    return Targets(
        heatmaps=heatmap_targets(parts, map_height, map_width, stride, sigma),
        pafs=paf_targets(parts, map_height, map_width, stride, limb_width),
        mask=mask_at_stride(ignored, map_height, map_width, stride),
    )
