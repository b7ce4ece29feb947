"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012), vectorised over keypoints.

Each coordinate is low-pass filtered with a cutoff frequency that rises with its
speed: steady at rest (little jitter), responsive when it moves (little lag)::

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))
    speed  = alpha(d_cutoff) * (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) * speed_prev
    cutoff = min_cutoff + beta * |speed|
    x_hat  = alpha(cutoff) * x + (1 - alpha(cutoff)) * x_hat_prev

``dt`` comes from the frames' timestamps (seconds), so variable frame rates and
frame steps are filtered correctly. :class:`KeypointSmoother` keeps one filter
state per track.
"""

from __future__ import annotations

import math

import numpy as np

from .params import SmoothParams

#: The shortest time step used (seconds): frames with equal timestamps.
MIN_DT = 1e-3


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff) * dt))


class OneEuroFilter:
    """One Euro filters of an array of coordinates of fixed ``shape``, each with its own
    history: a coordinate that is absent in a call keeps its state for later."""

    def __init__(self, params: SmoothParams, shape: tuple[int, ...]) -> None:
        self.params = params
        self.value = np.zeros(shape)
        self.speed = np.zeros(shape)
        self.time = np.full(shape, np.nan)  # NaN: never seen

    def __call__(self, x: np.ndarray, present: np.ndarray, time: float) -> np.ndarray:
        """Filter ``x`` (the coordinates, pixels) observed at ``time`` (seconds) where
        ``present`` (bool, same shape); returns the filtered values (absent entries: 0)."""
        p = self.params
        new = present & np.isnan(self.time)
        seen = present & ~new
        dt = np.maximum(time - self.time[seen], MIN_DT)
        speed = (x[seen] - self.value[seen]) / dt
        a_d = _alpha(p.d_cutoff, dt)
        self.speed[seen] = a_d * speed + (1.0 - a_d) * self.speed[seen]
        a = _alpha(p.min_cutoff + p.beta * np.abs(self.speed[seen]), dt)
        self.value[seen] = a * x[seen] + (1.0 - a) * self.value[seen]
        self.value[new] = x[new]
        self.speed[new] = 0.0
        self.time[present] = time
        return np.where(present, self.value, 0.0)


class KeypointSmoother:
    """One Euro smoothing of every keypoint coordinate along each track.

    ``smooth(track_id, keypoints, time, scale)``: keypoints N x 3 (x, y, score),
    pixels; filters x / scale and y / scale (``scale``: the frame height in
    pixels, so that ``beta`` does not depend on the resolution) and returns the
    keypoints with x and y filtered where the score is > 0 (missing keypoints
    stay (0, 0, 0); scores are unchanged).
    """

    def __init__(self, params: SmoothParams) -> None:
        self.params = params
        self._filters: dict[int, OneEuroFilter] = {}

    def smooth(self, track_id: int, keypoints: np.ndarray, time: float,
               scale: float = 1.0) -> np.ndarray:
        found = keypoints[:, 2] > 0
        state = self._filters.get(track_id)
        if state is None:
            state = self._filters[track_id] = OneEuroFilter(self.params, keypoints[:, :2].shape)
        scale = scale if scale > 0 else 1.0
        out = keypoints.copy()
        present = np.repeat(found[:, None], 2, axis=1)
        out[:, :2] = state(keypoints[:, :2] / scale, present, time) * scale
        return out

    def forget(self, track_ids: list[int]) -> None:
        """Drop the state of tracks that have ended."""
        for track_id in track_ids:
            self._filters.pop(track_id, None)
