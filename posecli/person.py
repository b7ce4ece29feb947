"""One person in one frame: the per-person result every stage after the parse passes on.

Light (numpy only): the tracker, the output readers and writers and ``compare``
use it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Person:
    """One person in one frame.

    ``keypoints``: 18 x 3 float64 (x, y, score) in COCO-18 order, x and y in
    pixels of the original frame; a missing part is (0, 0, 0). ``score``: total
    score divided by ``num_parts`` (the quantity the ``min_mean_score`` filter
    uses); ``total_score``: sum of part and limb scores.

    Set by the tracking stage (:mod:`posecli.track`), None before it or without it:
    ``track_id``: the person's identity across frames (an integer >= 1, numbered
    in order of first appearance); ``raw_keypoints``: when the keypoints were
    smoothed over time, the parse's own 18 x 3 keypoints (``keypoints`` then holds
    the smoothed ones, with the same scores and the same missing parts).
    """

    keypoints: np.ndarray
    score: float
    total_score: float
    num_parts: int
    track_id: int | None = None
    raw_keypoints: np.ndarray | None = None
