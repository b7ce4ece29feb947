"""Lightweight OpenPose's own decoding: peaks, limb scores and assembly as its val.py does.

(Checked once against its own ``extract_keypoints`` and ``group_keypoints`` on the
demo model's maps of 200 held-out synthetic images: the same 990 people, part for
part; those functions are not part of posecli, so that check is not a test here.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_maps import crowd, make_person, render_maps
from test_parse import assert_recovers

from posecli.errors import UsageError
from posecli.families import CMU
from posecli.lightweight.decode import (
    COUNT,
    TOTAL,
    LightweightDecoding,
    _suppress_close,
    assemble,
    decode_batch,
    find_peaks,
    score_pairs,
)
from posecli.parse import parse_batch
from posecli.parse.affinity import affinity_operators
from posecli.parse.limbs import Connections, enumerate_pairs
from posecli.parse.peaks import Peaks
from posecli.parse.tiles import smoothing_tiles
from posecli.pipeline import Estimator, PoseModel
from posecli.preprocess import Geometry, plan_geometry
from posecli.skeleton import LIMBS, NUM_PARTS, PAF_CHANNELS

DECODING = LightweightDecoding()


def full_res(height: int, width: int) -> Geometry:
    """A stride-1 geometry: maps are already the frame (identity resampling)."""
    return Geometry(height, width, height, width, height, width, stride=1)


def full_res_peaks(maps: torch.Tensor) -> Peaks:
    """find_peaks of heatmaps that are the frame already (identity upsampling)."""
    return find_peaks(maps, DECODING, smoothing_tiles(np.eye(maps.shape[1]),
                                                      np.eye(maps.shape[2])))


def spikes(points: list[tuple[int, int, int, float]], size: int = 40) -> torch.Tensor:
    """18 x size x size heatmaps, zero but for (part, x, y, value) pixels."""
    maps = torch.zeros(NUM_PARTS, size, size)
    for part, x, y, value in points:
        maps[part, y, x] = value
    return maps


# --------------------------------------------------------------------------- peaks


def test_close_peaks_are_suppressed_in_x_order() -> None:
    """x = 10, 15, 20: 15 is within 6 px of 10 and dropped; 20 is within 6 px only of the
    dropped 15, so it stays (a chain, not a cluster)."""
    peaks = full_res_peaks(spikes([(0, 20, 5, 0.5), (0, 10, 5, 0.3), (0, 15, 5, 0.9),
                                   (3, 12, 30, 0.4), (3, 12, 36, 0.4)]))
    assert peaks.part.tolist() == [0, 0, 3, 3]
    assert peaks.xy.tolist() == [[10, 5], [20, 5], [12, 30], [12, 36]]  # 6 px apart: both
    assert peaks.score == pytest.approx([0.3, 0.5, 0.4, 0.4])


@pytest.mark.parametrize("seed", range(5))
def test_suppression_equals_the_visit_in_order(seed) -> None:
    """Against the loop val.py runs: visit each part's peaks by x, keep one unless a kept
    one is closer than 6 px (dense clusters, chains, ties in x)."""
    rng = np.random.default_rng(seed)
    part = np.sort(rng.integers(0, 3, 400))
    xy = rng.integers(0, 40, (400, 2)).astype(np.float64)
    order = np.lexsort((xy[:, 1], xy[:, 0], part))
    part, xy = part[order], xy[order]
    expected = np.zeros(len(part), dtype=bool)
    for k in range(len(part)):
        kept = np.nonzero(expected[:k] & (part[:k] == part[k]))[0]
        expected[k] = not (np.linalg.norm(xy[kept] - xy[k], axis=1) < 6).any()
    assert 20 < expected.sum() < 380
    assert _suppress_close(part, xy, 6.0).tolist() == expected.tolist()


def test_peaks_are_strict_maxima_above_the_threshold() -> None:
    maps = spikes([(1, 5, 5, 0.09), (2, 20, 20, 0.1), (4, 30, 30, 0.7), (4, 31, 30, 0.7)])
    peaks = full_res_peaks(maps)
    assert peaks.part.tolist() == [2]  # below 0.1: nothing; a plateau of two: no peak
    assert peaks.xy.tolist() == [[20, 20]]


# --------------------------------------------------------------------------- limbs


def _limb_score(paf_along: np.ndarray) -> tuple[float, bool]:
    """Score of neck (5, 16) -> right shoulder (14, 16): 10 samples at x = 5..14."""
    maps = spikes([(1, 5, 16, 0.9), (2, 14, 16, 0.9)], size=32)
    peaks = full_res_peaks(maps)
    pafs = torch.zeros(38, 32, 32)
    channel_x = PAF_CHANNELS[LIMBS.index((1, 2))][0]
    pafs[channel_x, 16, 5:15] = torch.from_numpy(paf_along).float()
    pairs = enumerate_pairs(peaks)
    eye = np.eye(32, dtype=np.float32)  # maps at full resolution: identity upsampling
    score, ok = score_pairs(pairs, peaks, pafs, affinity_operators(eye, eye), DECODING)
    limb = pairs.limb.tolist().index(LIMBS.index((1, 2)))
    return float(score[limb]), bool(ok[limb])


def test_limb_score_is_the_mean_over_valid_samples() -> None:
    along = np.full(10, 0.5)
    along[4] = -1.0
    assert _limb_score(along) == (pytest.approx(0.5), True)  # posecli's parse: mean 0.35
    along[6] = 0.04  # 8 of 10 valid: not more than 80%
    assert _limb_score(along)[1] is False


# --------------------------------------------------------------------------- assembly


def _connections(*limbs: tuple[tuple[int, int], int, int, float]) -> Connections:
    return Connections(np.array([LIMBS.index(limb) for limb, *_ in limbs]),
                       np.array([a for _, a, _, _ in limbs]),
                       np.array([b for _, _, b, _ in limbs]),
                       np.array([s for *_, s in limbs]))


def test_assembly_extends_never_merges_and_fills_ears_without_score() -> None:
    # Peaks 0 neck, 1 r-shoulder, 2 r-elbow, 3 l-shoulder, 4 l-elbow, 5 l-wrist, 6 r-ear.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    people = assemble(_connections(((1, 2), 0, 1, 0.5), ((2, 3), 1, 2, 0.5),
                                   ((5, 6), 3, 4, 0.5), ((6, 7), 4, 5, 0.5),
                                   ((2, 16), 1, 6, 0.9)), scores, DECODING)
    assert len(people) == 2  # left arm: its own person, never merged through the neck
    first, second = people
    assert first[[1, 2, 3, 16]].tolist() == [0, 1, 2, 6]  # the ear filled ...
    assert first[COUNT] == 3 and first[TOTAL] == pytest.approx(0.9 + 0.8 + 0.5 + 0.7 + 0.5)
    assert second[[5, 6, 7]].tolist() == [3, 4, 5] and second[COUNT] == 3


def test_people_with_few_parts_or_low_scores_are_dropped() -> None:
    scores = np.full(6, 0.1)
    people = assemble(_connections(((1, 2), 0, 1, 0.1), ((2, 3), 1, 2, 0.1),
                                   ((5, 6), 3, 4, 0.9)), scores, DECODING)
    assert len(people) == 0  # 3 parts with mean 0.1 < 0.2; 2 parts < 3
    people = assemble(_connections(((1, 2), 0, 1, 0.5), ((2, 3), 1, 2, 0.5)), scores, DECODING)
    assert len(people) == 1


# --------------------------------------------------------------------------- end to end


def test_ideal_maps_of_a_crowd_are_recovered() -> None:
    geometry = plan_geometry(576, 768, 368)
    truth = crowd(5, geometry, np.random.default_rng(3))
    heatmaps, pafs = render_maps(truth, geometry)
    assert_recovers(truth, decode_batch(heatmaps, pafs, geometry)[0])


def test_a_person_without_a_neck_stays_in_pieces_unlike_posecli_parse() -> None:
    """The grouping difference that matters: posecli's parse merges partial people.

    Without a neck, the arms, the head and each leg start people of their own.
    posecli's parse joins the arms and the head through the ear-to-shoulder limbs
    (and drops the 3-part legs); Lightweight's grouping never merges, keeps the
    3-part pieces, and lets head and arms share their ear and shoulder peaks.
    """
    geometry = plan_geometry(576, 768, 368)
    person = np.round(make_person(384, 100, 400, missing=(1,)))
    heatmaps, pafs = render_maps(person[None], geometry)
    upper_body = person.copy()
    upper_body[8:14] = np.nan
    assert_recovers(upper_body[None], parse_batch(heatmaps, pafs, geometry)[0])
    pieces = decode_batch(heatmaps, pafs, geometry)[0]
    parts = sorted(tuple(np.flatnonzero(p.keypoints[:, 2] > 0)) for p in pieces)
    assert parts == [(0, 2, 5, 14, 15, 16, 17), (2, 3, 4, 16), (5, 6, 7, 17), (8, 9, 10),
                     (11, 12, 13)]
    assert sorted(p.num_parts for p in pieces) == [3, 3, 3, 3, 5]  # filled slots not counted


def test_estimator_decoder_choice(tiny_weights) -> None:
    from posecli.pipeline import load_model

    model = load_model(tiny_weights, device="cpu")
    assert Estimator(model, 64).decoder == "posecli"
    warnings: list[str] = []
    from posecli.parse import ParseParams

    chosen = Estimator(model, 64, ParseParams(min_parts=2), warnings.append,
                       decoder="lightweight")
    assert chosen.options()["decoder"] == "lightweight" and len(warnings) == 1
    assert "do not apply to the Lightweight OpenPose decoding" in warnings[0]
    with pytest.raises(UsageError, match="bad decoder 'fast'"):
        Estimator(model, 64, decoder="fast")
    assert PoseModel(model.network, None, model.device).family is CMU  # a bare network
