"""COCO's object keypoint similarity (OKS), vectorised over every pair of people.

Shared by ``compare`` (matching an expected file's people with an actual file's)
and the tracker (matching live tracks with a frame's people). For a reference
person *e* and a candidate *a*::

    OKS = mean over keypoints k labelled in e (v > 0) of
          exp(-d_k^2 / (2 * area_e * (2 * sigma_k)^2))

with ``sigma_k`` from :data:`~posecli.skeleton.COCO17_SIGMAS` (COCO-17 order),
``d_k`` the distance in pixels and ``area_e`` the reference person's area in
square pixels; a keypoint labelled in *e* and missing in *a* counts 0.
"""

from __future__ import annotations

import numpy as np

from .skeleton import COCO17_NAMES, COCO17_SIGMAS

NUM_KEYPOINTS = len(COCO17_NAMES)  # 17
_VARIANCES = (2.0 * COCO17_SIGMAS) ** 2  # COCO's per-keypoint constant, (2 sigma)^2
_EPS = float(np.spacing(1))  # COCO adds this to the area


def oks_matrix(expected: np.ndarray, areas: np.ndarray, actual: np.ndarray,
               shared_only: bool = False, min_shared: int = 1) -> np.ndarray:
    """E x A object keypoint similarity of E reference and A candidate people.

    ``expected``: E x 17 x 3 and ``actual``: A x 17 x 3 (x, y, v) keypoints in
    COCO-17 order, pixels; ``areas``: the E reference people's areas (square
    pixels). Only keypoints with v > 0 in the reference person count; one missing
    (v = 0) in the candidate scores 0. A reference person with no keypoint at all
    has OKS 1 with a candidate that has none either, else 0.

    ``shared_only``: the mean runs over the keypoints found in both people
    instead (neither one's missing keypoints count against the pair, for people
    seen in part), and pairs sharing fewer than ``min_shared`` keypoints get 0.
    """
    expected = np.asarray(expected, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    actual = np.asarray(actual, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if len(expected) == 0 or len(actual) == 0:
        return np.zeros((len(expected), len(actual)))
    squared = ((expected[:, None, :, :2] - actual[None, :, :, :2]) ** 2).sum(-1)  # E x A x 17
    scale = 2.0 * _VARIANCES[None, None, :] * (areas[:, None, None] + _EPS)
    similarity = np.exp(-squared / scale)
    in_expected = expected[:, None, :, 2] > 0  # E x 1 x 17
    in_actual = actual[None, :, :, 2] > 0  # 1 x A x 17
    similarity = np.where(in_expected & in_actual, similarity, 0.0)
    if shared_only:
        shared = (in_expected & in_actual).sum(-1)  # E x A
        oks = similarity.sum(-1) / np.maximum(shared, 1)
        return np.where(shared >= max(min_shared, 1), oks, 0.0)
    counts = in_expected.sum(-1)  # E x 1
    oks = similarity.sum(-1) / np.maximum(counts, 1)
    empty_pair = (counts == 0) & ~in_actual.any(-1)  # E x A
    return np.where(counts > 0, oks, np.where(empty_pair, 1.0, 0.0))
