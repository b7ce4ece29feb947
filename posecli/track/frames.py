"""Tracking per-frame results: track ids (and smoothed keypoints) for each frame's people.

:class:`FrameTracker` takes :class:`~posecli.formats.FrameResult` values in
presentation order, one at a time, and returns them with every person's
``track_id`` set, and with ``keypoints`` smoothed along the track when smoothing
is on (``raw_keypoints`` then keeps the parse's). A person that already carries
``raw_keypoints`` (a smoothed file read back) is tracked and smoothed from those.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..formats import FrameResult
from .one_euro import KeypointSmoother
from .params import FALLBACK_FPS, TrackParams
from .tracker import Tracker


def frame_time(frame: FrameResult) -> float:
    """A frame's clock in seconds: its timestamp, or ``frame_index / FALLBACK_FPS`` when
    the timestamp is unknown (NaN)."""
    if math.isfinite(frame.timestamp):
        return float(frame.timestamp)
    return frame.frame_index / FALLBACK_FPS


class FrameTracker:
    """Track ids (and One Euro smoothing) for consecutive frames.

    ``keep_ids``: use the ids the people already carry instead of tracking
    (for smoothing a file whose ids were set elsewhere); a person without one is
    an InputError.
    """

    def __init__(self, params: TrackParams | None = None, keep_ids: bool = False) -> None:
        self.params = params or TrackParams()
        self.keep_ids = keep_ids
        self.tracker = Tracker(self.params)
        self.smoother = KeypointSmoother(self.params.smooth) if self.params.smooth else None
        self._time = -math.inf

    def __call__(self, frame: FrameResult) -> FrameResult:
        """``frame`` with its people's track ids (and smoothed keypoints) set."""
        time = self._time = max(frame_time(frame), self._time)  # never backwards
        raw = [p.keypoints if p.raw_keypoints is None else p.raw_keypoints for p in frame.people]
        if self.keep_ids:
            ids, ended = self._given_ids(frame), []
        else:
            stacked = np.stack(raw) if raw else np.zeros((0, 18, 3))
            ids, ended = self.tracker.update(stacked, time, frame.height)
        people = []
        for person, keypoints, track_id in zip(frame.people, raw, ids):
            if self.smoother is None:
                people.append(replace(person, keypoints=keypoints, track_id=track_id,
                                      raw_keypoints=None))
            else:
                smoothed = self.smoother.smooth(track_id, keypoints, time, frame.height)
                people.append(replace(person, keypoints=smoothed, track_id=track_id,
                                      raw_keypoints=keypoints))
        if self.smoother is not None:
            self.smoother.forget(ended)
        return replace(frame, people=people)

    def _given_ids(self, frame: FrameResult) -> list[int]:
        ids = [person.track_id for person in frame.people]
        if any(track_id is None for track_id in ids):
            raise InputError(f"frame {frame.frame_index} has a person without a track id "
                             "(drop --keep-ids to track them)")
        if len(set(ids)) != len(ids):
            raise InputError(f"frame {frame.frame_index} has two people with the same track id")
        return ids  # type: ignore[return-value]


def track_frames(frames: list[FrameResult], params: TrackParams | None = None,
                 keep_ids: bool = False) -> list[FrameResult]:
    """Every frame of ``frames`` (in presentation order) through one FrameTracker."""
    tracker = FrameTracker(params, keep_ids)
    return [tracker(frame) for frame in frames]

