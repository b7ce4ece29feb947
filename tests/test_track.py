"""posecli.track: OKS tracking with a lost-track buffer in seconds, One Euro smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_compare import BODY, person

from posecli.errors import InputError, UsageError
from posecli.formats import FrameResult
from posecli.track import (
    FALLBACK_FPS,
    FrameTracker,
    KeypointSmoother,
    OneEuroFilter,
    SmoothParams,
    Tracker,
    TrackParams,
    frame_time,
    track_frames,
)


def frame(index: int, time: float, people: list) -> FrameResult:
    return FrameResult(index, time, 640, 480, f"clip.mp4#{index}", people)


def ids_of(frames: list[FrameResult]) -> list[list[int]]:
    return [[p.track_id for p in f.people] for f in frames]


def test_ids_follow_people_in_order_of_first_appearance():
    # Two people walking toward each other at different heights; a third appears later.
    frames = []
    for k in range(12):
        people = [person(400 - 20 * k, 150), person(100 + 20 * k, 230)]
        if k >= 5:
            people.insert(0, person(550, 60))
        frames.append(frame(k, k / 10, people))
    tracked = track_frames(frames)
    assert ids_of(tracked)[:5] == [[1, 2]] * 5
    assert ids_of(tracked)[5:] == [[3, 1, 2]] * 7
    # Tracking changes nothing but the ids.
    for before, after in zip(frames, tracked):
        for a, b in zip(before.people, after.people):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            assert b.raw_keypoints is None


def test_assignment_is_optimal_not_greedy():
    # Tracks at x = 0 and x = 10 (plus an offset); people at x = -6 and x = 4. Greedy
    # would pair the closest (track 1 with the person at 4) and leave the other
    # person too far from track 2; the optimal pairing keeps both.
    tracker = Tracker(TrackParams(motion=False, min_oks=0.5))
    first = np.stack([person(300, 200).keypoints, person(310, 200).keypoints])
    assert tracker.update(first, 0.0) == ([1, 2], [])
    second = np.stack([person(294, 200).keypoints, person(304, 200).keypoints])
    assert tracker.update(second, 0.1) == ([1, 2], [])


def test_a_person_too_far_from_every_track_starts_a_new_one():
    frames = [frame(0, 0.0, [person(100, 100)]), frame(1, 0.1, [person(500, 300)])]
    assert ids_of(track_frames(frames)) == [[1], [2]]


@pytest.mark.parametrize("fps", [10, 30])
def test_the_lost_track_buffer_is_in_seconds(fps):
    def run(gap_seconds: float) -> set[int]:
        """One second with the person, ``gap_seconds`` without, one second with."""
        times = np.arange(round((2 + gap_seconds) * fps)) / fps
        frames = [frame(k, t, [person(300, 200)] if t < 1 or t >= 1 + gap_seconds else [])
                  for k, t in enumerate(times)]
        return {i for ids in ids_of(track_frames(frames, TrackParams(buffer_seconds=1.0)))
                for i in ids}

    assert run(0.5) == {1}  # back within the buffer
    assert run(1.5) == {1, 2}  # gone for longer: a new track


def test_a_frame_step_longer_than_the_buffer_keeps_a_person_seen_in_every_frame():
    # --frames ::50 at 25 fps: two seconds between frames, buffer 1 s.
    frames = [frame(50 * k, 2.0 * k, [person(300 + 5 * k, 200)]) for k in range(5)]
    assert ids_of(track_frames(frames, TrackParams(buffer_seconds=1.0))) == [[1]] * 5


def test_unknown_timestamps_fall_back_to_the_frame_index():
    assert frame_time(frame(45, math.nan, [])) == pytest.approx(45 / FALLBACK_FPS)
    assert frame_time(frame(45, 2.5, [])) == 2.5
    # Seen at frame 0, missed at frame 1, back at frame 2 s or 0.5 s later (by index).
    for later, ids in ((2.0, [[1], [], [2]]), (0.5, [[1], [], [1]])):
        frames = [frame(0, math.nan, [person(300, 200)]), frame(1, math.nan, []),
                  frame(round(later * FALLBACK_FPS), math.nan, [person(300, 200)])]
        assert ids_of(track_frames(frames)) == ids


def test_motion_prediction_keeps_crossing_people_apart():
    # Two equal people crossing fast at the same height: without prediction the
    # tracks swap where the people pass each other.
    def crossing(motion: bool) -> list[list[int]]:
        frames = [frame(k, k / 10, [person(200 + 15 * k, 200), person(520 - 15 * k, 203)])
                  for k in range(22)]
        return ids_of(track_frames(frames, TrackParams(motion=motion)))

    assert crossing(True) == [[1, 2]] * 22
    assert crossing(False) != [[1, 2]] * 22


HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
LEGS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
ALL = tuple(BODY)


def test_a_track_remembers_keypoints_it_saw_earlier():
    # Fully seen, then only the legs (the rest hidden), then only the head: the head is
    # compared with where the track last saw a head.
    frames = [frame(0, 0.0, [person(300, 200)]),
              frame(1, 0.04, [person(301, 200, drop=tuple(n for n in ALL if n not in LEGS))]),
              frame(2, 0.08, [person(302, 200, drop=tuple(n for n in ALL if n not in HEAD))])]
    assert ids_of(track_frames(frames)) == [[1], [1], [1]]


def test_a_person_seen_only_in_part_keeps_its_track():
    # Only a head (a 24 x 10 px box) moving 4 px a frame in a 480 px high frame: COCO's
    # sigmas on its own box would lose it at once; the scale floor keeps it.
    only_head = tuple(n for n in ALL if n not in HEAD)
    frames = [frame(k, k / 25, [person(300 + 4 * k, 200, drop=only_head)]) for k in range(10)]
    assert ids_of(track_frames(frames)) == [[1]] * 10


def test_shared_only_oks_ignores_keypoints_missing_on_either_side():
    from posecli.oks import oks_matrix
    from posecli.skeleton import coco18_to_coco17

    full = coco18_to_coco17(person(300, 200).keypoints)[None]
    head = coco18_to_coco17(person(300, 200, drop=tuple(n for n in ALL
                                                           if n not in HEAD)).keypoints)[None]
    assert oks_matrix(full, [5000.0], head)[0, 0] == pytest.approx(5 / 17)  # COCO's
    assert oks_matrix(full, [5000.0], head, shared_only=True)[0, 0] == pytest.approx(1.0)
    assert oks_matrix(head, [5000.0], full, shared_only=True)[0, 0] == pytest.approx(1.0)
    assert oks_matrix(full, [5000.0], head, shared_only=True, min_shared=6)[0, 0] == 0.0


def test_tracker_reports_ended_tracks():
    tracker = Tracker(TrackParams(buffer_seconds=0.5))
    one = person(300, 200).keypoints[None]
    assert tracker.update(one, 0.0) == ([1], [])
    assert tracker.update(np.zeros((0, 18, 3)), 0.1) == ([], [])
    assert tracker.live_ids == [1]
    assert tracker.update(np.zeros((0, 18, 3)), 0.7) == ([], [1])
    assert tracker.live_ids == []


def test_bad_parameters_are_usage_errors():
    for kwargs in ({"buffer_seconds": -1.0}, {"buffer_seconds": math.inf}, {"min_oks": 1.5}):
        with pytest.raises(UsageError):
            TrackParams(**kwargs)
    for kwargs in ({"min_cutoff": 0.0}, {"beta": -1.0}, {"d_cutoff": math.nan}):
        with pytest.raises(UsageError):
            SmoothParams(**kwargs)


# --------------------------------------------------------------------------- One Euro


def test_one_euro_follows_the_paper_step_by_step():
    params = SmoothParams(min_cutoff=1.5, beta=0.1, d_cutoff=1.0)
    signal = [(0.0, 10.0), (0.1, 12.0), (0.25, 11.0), (0.3, 20.0)]

    def alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    expected, x_hat, dx_hat, last = [], None, 0.0, None
    for t, x in signal:
        if x_hat is None:
            x_hat = x
        else:
            dt = t - last
            dx_hat = alpha(1.0, dt) * (x - x_hat) / dt + (1 - alpha(1.0, dt)) * dx_hat
            a = alpha(1.5 + 0.1 * abs(dx_hat), dt)
            x_hat = a * x + (1 - a) * x_hat
        last = t
        expected.append(x_hat)
    one_euro = OneEuroFilter(params, (1,))
    got = [float(one_euro(np.array([x]), np.array([True]), t)[0]) for t, x in signal]
    assert got == pytest.approx(expected, rel=1e-12)


def test_one_euro_steadies_a_still_point_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    times = np.arange(200) / 30
    params = SmoothParams(min_cutoff=1.0, beta=0.02)
    for speed, lag_allowed in ((0.0, 1.0), (300.0, 8.0)):  # pixels per second
        truth = 100 + speed * times
        noisy = truth + rng.normal(0, 3, len(times))
        one_euro = OneEuroFilter(params, (1,))
        out = np.array([one_euro(np.array([x]), np.array([True]), t)[0]
                        for t, x in zip(times, noisy)])
        assert abs(np.mean(out[30:] - truth[30:])) < lag_allowed
        if speed == 0:  # at rest the jitter goes
            assert np.abs(np.diff(out, 2)).mean() < 0.2 * np.abs(np.diff(noisy, 2)).mean()


def test_smoothing_keeps_missing_keypoints_missing_and_the_raw_ones():
    params = TrackParams(smooth=SmoothParams())
    frames = [frame(0, 0.0, [person(300, 200)]),
              frame(1, 0.1, [person(303, 201, drop=("left_wrist",))]),
              frame(2, 0.2, [person(306, 199)])]
    tracked = track_frames(frames, params)
    wrist = 7  # COCO-18 left_wrist
    middle = tracked[1].people[0]
    assert (middle.keypoints[wrist] == 0).all()
    np.testing.assert_array_equal(middle.raw_keypoints, frames[1].people[0].keypoints)
    np.testing.assert_array_equal(middle.keypoints[:, 2], frames[1].people[0].keypoints[:, 2])
    assert middle.keypoints[0, 0] != frames[1].people[0].keypoints[0, 0]  # smoothed
    # Tracking a smoothed result again starts from its raw keypoints.
    again = track_frames(tracked, params)
    for a, b in zip(tracked, again):
        np.testing.assert_array_equal(a.people[0].keypoints, b.people[0].keypoints)
    unsmoothed = track_frames(tracked, TrackParams())
    np.testing.assert_array_equal(unsmoothed[1].people[0].keypoints,
                                  frames[1].people[0].keypoints)
    assert unsmoothed[1].people[0].raw_keypoints is None


def test_smoother_keeps_one_state_per_track():
    smoother = KeypointSmoother(SmoothParams())
    a, b = person(100, 100).keypoints, person(400, 300).keypoints
    smoother.smooth(1, a, 0.0)
    smoother.smooth(2, b, 0.0)
    out = smoother.smooth(1, a + [5, 0, 0], 0.1)
    assert (out[:, 0] > a[:, 0]).all() and (out[:, 0] < a[:, 0] + 5).all()
    smoother.forget([1])
    np.testing.assert_array_equal(smoother.smooth(1, a + [5, 0, 0], 0.2), a + [5, 0, 0])


def test_keep_ids_smooths_along_the_given_ids():
    people = [[person(100, 100), person(400, 100)], [person(402, 100), person(101, 100)]]
    frames = []
    for k, row in enumerate(people):
        frames.append(frame(k, k / 10, [
            type(p)(p.keypoints, p.score, p.total_score, p.num_parts, track_id=i)
            for p, i in zip(row, ([7, 9], [9, 7])[k])]))
    tracked = FrameTracker(TrackParams(smooth=SmoothParams()), keep_ids=True)
    out = [tracked(f) for f in frames]
    assert ids_of(out) == [[7, 9], [9, 7]]
    with pytest.raises(InputError, match="without a track id"):
        FrameTracker(keep_ids=True)(frame(0, 0.0, [person(1, 1)]))
