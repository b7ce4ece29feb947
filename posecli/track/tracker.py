"""Identities across frames: people matched to live tracks by OKS, optimally.

Each frame, every live track is compared with every person of the frame by
COCO's object keypoint similarity (:func:`posecli.oks.oks_matrix`: COCO sigmas,
the track's keypoints as the reference, the scale its box area), after moving
the track by its recent velocity when motion prediction is on. The pairing that
maximises the total OKS (scipy's ``linear_sum_assignment``) is kept where a pair
reaches ``min_oks``; a person left over starts a new track, numbered from 1 in
order of first appearance. A track that no person continues is *lost*, and
ended once ``buffer_seconds`` of presentation time have passed since the first
frame that missed it. Frames must come in presentation order, one at a time, so
the ids never depend on how frames were batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..oks import oks_matrix
from ..skeleton import coco18_to_coco17
from .params import TrackParams

#: Weight of the newest velocity measurement in a track's running estimate.
VELOCITY_WEIGHT = 0.5


@dataclass
class _Track:
    """A live track: its last observed keypoints (COCO-17 (x, y, found)), their box
    area (square pixels), when it was last seen and first missed (seconds), and
    its velocity (pixels per second, x and y)."""

    track_id: int
    keypoints: np.ndarray
    area: float
    seen: float
    lost_since: float | None
    velocity: np.ndarray
    observations: int = 1


def box_area(keypoints: np.ndarray) -> float:
    """The OKS scale of a person, 17 x 3 (x, y, found): the area of its keypoints' box in
    square pixels, at least a quarter of its longer side squared (a person seen edge-on
    or with few keypoints has a thin box) and at least 1."""
    found = keypoints[:, 2] > 0
    if not found.any():
        return 1.0
    width, height = np.ptp(keypoints[found, :2], axis=0)
    return float(max(width * height, max(width, height) ** 2 / 4.0, 1.0))


class Tracker:
    """Gives the people of consecutive frames their track ids (see the module docstring)."""

    def __init__(self, params: TrackParams | None = None) -> None:
        self.params = params or TrackParams()
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def live_ids(self) -> list[int]:
        """Ids of the tracks still live (seen, or lost for less than the buffer)."""
        return [track.track_id for track in self._tracks]

    def update(self, keypoints: np.ndarray, time: float) -> tuple[list[int], list[int]]:
        """Track one frame's people.

        ``keypoints``: P x 18 x 3 (x, y, score), COCO-18 order, pixels (a missing
        part has score 0); ``time``: the frame's presentation time in seconds, not
        before the previous frame's. Returns the P people's track ids, and the ids
        of the tracks that ended at this frame.
        """
        ended = self._end_lost(time)
        people = coco18_to_coco17(np.asarray(keypoints, dtype=np.float64).reshape(-1, 18, 3))
        people = people.copy()
        people[..., 2] = people[..., 2] > 0
        pairs = self._match(people, time)
        ids = [0] * len(people)
        matched_tracks = set()
        for t, p in pairs:
            track = self._tracks[t]
            self._continue(track, people[p], time)
            ids[p] = track.track_id
            matched_tracks.add(t)
        for t, track in enumerate(self._tracks):
            if t not in matched_tracks and track.lost_since is None:
                track.lost_since = time
        for p, person in enumerate(people):
            if not ids[p]:
                ids[p] = self._next_id
                self._tracks.append(_Track(self._next_id, person, box_area(person), time,
                                           None, np.zeros(2)))
                self._next_id += 1
        return ids, ended

    def _end_lost(self, time: float) -> list[int]:
        buffer = self.params.buffer_seconds
        ended = [track.track_id for track in self._tracks
                 if track.lost_since is not None and time - track.lost_since > buffer]
        if ended:
            self._tracks = [track for track in self._tracks if track.track_id not in ended]
        return ended

    def _match(self, people: np.ndarray, time: float) -> list[tuple[int, int]]:
        """(track index, person index) pairs of the optimal OKS assignment."""
        if not self._tracks or not len(people):
            return []
        references = np.stack([track.keypoints for track in self._tracks])
        if self.params.motion:
            elapsed = np.array([max(time - track.seen, 0.0) for track in self._tracks])
            velocity = np.stack([track.velocity for track in self._tracks])
            references = references.copy()
            references[..., :2] += (velocity * elapsed[:, None])[:, None, :]
        areas = np.array([track.area for track in self._tracks])
        oks = oks_matrix(references, areas, people)
        eligible = (oks >= self.params.min_oks) & (oks > 0)
        if not eligible.any():
            return []
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.where(eligible, oks, 0.0), maximize=True)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if eligible[r, c]]

    def _continue(self, track: _Track, person: np.ndarray, time: float) -> None:
        """Extend ``track`` with ``person`` (17 x 3 (x, y, found)) seen at ``time``."""
        elapsed = time - track.seen
        both = (track.keypoints[:, 2] > 0) & (person[:, 2] > 0)
        if elapsed > 0 and both.any():
            measured = (person[both, :2] - track.keypoints[both, :2]).mean(0) / elapsed
            weight = 1.0 if track.observations == 1 else VELOCITY_WEIGHT
            track.velocity = weight * measured + (1.0 - weight) * track.velocity
        track.keypoints = person
        track.area = box_area(person)
        track.seen = time
        track.lost_since = None
        track.observations += 1
