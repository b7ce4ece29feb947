"""Identities across frames: people matched to live tracks by OKS, optimally.

A track remembers where each of its keypoints was last seen (for as long as
the lost-track buffer), so a person seen only in part, or partly hidden for a
while, is still compared with all of it. Each frame, every live track is
compared with every person of the frame by COCO's object keypoint similarity
over the keypoints both have (:func:`posecli.oks.oks_matrix` with
``shared_only``: COCO sigmas, the scale the area of the track's box), after
moving the remembered keypoints by the track's velocity when motion prediction
is on. The pairing that maximises the total OKS (scipy's
``linear_sum_assignment``) is kept where a pair reaches ``min_oks``; a person
left over starts a new track, numbered from 1 in order of first appearance. A
track that no person continues is *lost*, and ended once ``buffer_seconds`` of
presentation time have passed since the first frame that missed it. Frames
must come in presentation order, one at a time, so the ids never depend on how
frames were batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..oks import NUM_KEYPOINTS, oks_matrix
from ..skeleton import coco18_to_coco17
from .params import TrackParams

#: Weight of the newest velocity measurement in a track's running estimate.
VELOCITY_WEIGHT = 0.5
#: Keypoints a person and a track must share to be compared at all.
MIN_SHARED = 2
#: The OKS scale (square root of the area) of a track is at least this fraction of the
#: frame height: a person seen in part (a head above someone else's shoulder) has a
#: tiny box, and COCO's sigmas on it would be tighter than the parse's own noise.
MIN_SCALE = 0.3


@dataclass
class _Track:
    """A live track: where each COCO-17 keypoint was last seen (``xy``, pixels) and when
    (``seen_at``, seconds, NaN never), when the track was last seen and first missed,
    and its velocity (pixels per second, x and y)."""

    track_id: int
    xy: np.ndarray
    seen_at: np.ndarray
    seen: float
    lost_since: float | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    observations: int = 0


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

    def update(self, keypoints: np.ndarray, time: float,
               frame_height: float = 0.0) -> tuple[list[int], list[int]]:
        """Track one frame's people.

        ``keypoints``: P x 18 x 3 (x, y, score), COCO-18 order, pixels (a missing
        part has score 0); ``time``: the frame's presentation time in seconds, not
        before the previous frame's; ``frame_height``: pixels (0: unknown), which
        sets the least OKS scale (MIN_SCALE). Returns the P people's track ids, and
        the ids of the tracks that ended at this frame.
        """
        ended = self._end_lost(time)
        people = coco18_to_coco17(np.asarray(keypoints, dtype=np.float64).reshape(-1, 18, 3))
        people = people.copy()
        people[..., 2] = people[..., 2] > 0
        pairs = self._match(people, time, (MIN_SCALE * frame_height) ** 2)
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
                track = _Track(self._next_id, np.zeros((NUM_KEYPOINTS, 2)),
                               np.full(NUM_KEYPOINTS, np.nan), time)
                self._continue(track, person, time)
                self._tracks.append(track)
                self._next_id += 1
        return ids, ended

    def _end_lost(self, time: float) -> list[int]:
        buffer = self.params.buffer_seconds
        ended = [track.track_id for track in self._tracks
                 if track.lost_since is not None and time - track.lost_since > buffer]
        if ended:
            self._tracks = [track for track in self._tracks if track.track_id not in ended]
        return ended

    def _reference(self, track: _Track, time: float) -> np.ndarray:
        """The track's remembered keypoints (17 x 3 (x, y, found)) as expected at ``time``:
        those seen within the buffer before its last sighting, moved by its velocity."""
        fresh = track.seen_at >= track.seen - self.params.buffer_seconds  # NaN: False
        reference = np.zeros((NUM_KEYPOINTS, 3))
        reference[fresh, :2] = track.xy[fresh]
        if self.params.motion:
            elapsed = np.maximum(time - track.seen_at[fresh], 0.0)
            reference[fresh, :2] += elapsed[:, None] * track.velocity
        reference[fresh, 2] = 1.0
        return reference

    def _match(self, people: np.ndarray, time: float,
               min_area: float) -> list[tuple[int, int]]:
        """(track index, person index) pairs of the optimal OKS assignment."""
        if not self._tracks or not len(people):
            return []
        references = np.stack([self._reference(track, time) for track in self._tracks])
        areas = np.array([max(box_area(reference), min_area) for reference in references])
        oks = oks_matrix(references, areas, people, shared_only=True, min_shared=MIN_SHARED)
        eligible = (oks >= self.params.min_oks) & (oks > 0)
        if not eligible.any():
            return []
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.where(eligible, oks, 0.0), maximize=True)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if eligible[r, c]]

    def _continue(self, track: _Track, person: np.ndarray, time: float) -> None:
        """Extend ``track`` with ``person`` (17 x 3 (x, y, found)) seen at ``time``."""
        found = person[:, 2] > 0
        elapsed = time - track.seen
        last = found & (track.seen_at == track.seen)  # also in the track's last sighting
        if track.observations and elapsed > 0 and last.any():
            measured = (person[last, :2] - track.xy[last]).mean(0) / elapsed
            weight = 1.0 if track.observations == 1 else VELOCITY_WEIGHT
            track.velocity = weight * measured + (1.0 - weight) * track.velocity
        track.xy[found] = person[found, :2]
        track.seen_at[found] = time
        track.seen = time
        track.lost_since = None
        track.observations += 1
