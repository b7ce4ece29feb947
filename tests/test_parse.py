"""Tests for posecli.parse: people from ideal maps, coordinates, the PAF channel
table, exact equivalence with the reference parser, batching and parameters.

Ideal maps come from ``render_maps`` (what a perfect network would output for
known skeletons). The reference parser is ported below with Python loops, as in
pytorch-openpose ``body.py`` (itself the CMU demo's code), to check that the
vectorised parser returns exactly the same people.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from render_maps import cell_from_pixel, crowd, make_person, pixel_from_cell, render_maps
from scipy.ndimage import gaussian_filter
from scipy.optimize import linear_sum_assignment

from posecli.errors import UsageError
from posecli.parse import ParseParams, Person, parse_batch
from posecli.preprocess import Geometry, plan_geometry
from posecli.skeleton import LIMBS, NUM_PARTS, PAF_CHANNELS

TOLERANCE_PX = 2.0


def parse_people(people: np.ndarray, geometry: Geometry, params: ParseParams | None = None,
                 **render_options) -> list[Person]:
    heatmaps, pafs = render_maps(people, geometry, **render_options)
    return parse_batch(heatmaps, pafs, geometry, params)[0]


def present(person: Person) -> np.ndarray:
    return person.keypoints[:, 2] > 0


def assert_recovers(truth: np.ndarray, found: list[Person], tol: float = TOLERANCE_PX) -> None:
    """``found`` is exactly the people of ``truth`` (P x 18 x 2, NaN = missing).

    People are matched to the truth by mean keypoint distance (optimal
    assignment); then every matched person must hold exactly the truth's parts,
    each within ``tol`` pixels. With as many people as the truth, this means
    nobody was merged, split, lost or invented.
    """
    truth = np.asarray(truth, dtype=np.float64)
    assert len(found) == len(truth), f"found {len(found)} people, expected {len(truth)}"
    cost = np.zeros((len(truth), len(found)))
    for i, expected in enumerate(truth):
        for j, person in enumerate(found):
            d = np.linalg.norm(person.keypoints[:, :2] - expected, axis=1)
            d = np.where(np.isnan(d) | ~present(person), 1e4, d)
            cost[i, j] = d.mean()
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols):
        person, expected = found[j], truth[i]
        want = ~np.isnan(expected[:, 0])
        got = present(person)
        assert np.array_equal(got, want), (
            f"person {i}: parts {np.flatnonzero(got).tolist()}, "
            f"expected {np.flatnonzero(want).tolist()}")
        error = np.abs(person.keypoints[want, :2] - expected[want]).max()
        assert error <= tol, f"person {i}: keypoint off by {error} px"
        assert person.num_parts == want.sum()
        assert person.score == pytest.approx(person.total_score / person.num_parts)


# ---------------------------------------------------------------- renderer


def test_renderer_cell_mapping_round_trips_and_centres_peaks():
    geometry = plan_geometry(576, 768, 368)
    xy = np.array([[0.0, 0.0], [767.0, 575.0], [123.4, 456.7]])
    np.testing.assert_allclose(pixel_from_cell(cell_from_pixel(xy, geometry), geometry), xy,
                               atol=1e-9)
    # Pixel X is read from cell (X + 0.5) * R / (8 N) - 0.5 (two half-pixel resizes).
    np.testing.assert_allclose(cell_from_pixel([[0.0, 0.0]], geometry)[0],
                               [0.5 * 491 / (8 * 768) - 0.5, 0.5 * 368 / (8 * 576) - 0.5])

    person = np.round(make_person(384, 100, 400))
    heatmaps, pafs = render_maps(person[None], geometry)
    assert heatmaps.shape == (1, 19, 46, 62) and pafs.shape == (1, 38, 46, 62)
    peak_cell = np.unravel_index(int(heatmaps[0, 1].argmax()), (46, 62))
    expected = np.round(cell_from_pixel(person[1], geometry))[::-1]
    assert tuple(peak_cell) == tuple(expected.astype(int))
    torch.testing.assert_close(heatmaps[0, 18], 1 - heatmaps[0, :18].max(0).values)
    # Neck -> right hip: the unit vector in its channels around the segment, 0 far away.
    limb = LIMBS.index((1, 8))
    chan_x, chan_y = PAF_CHANNELS[limb]
    middle = np.round(cell_from_pixel((person[1] + person[8]) / 2, geometry)).astype(int)
    direction = (person[8] - person[1]) / np.linalg.norm(person[8] - person[1])
    np.testing.assert_allclose(
        pafs[0, [chan_x, chan_y], middle[1], middle[0]].numpy(), direction, rtol=1e-6)
    assert pafs[0, [chan_x, chan_y], 0, 0].abs().max() == 0


# ------------------------------------------------------- people from ideal maps


def test_one_person():
    geometry = plan_geometry(576, 768, 368)
    truth = np.round(make_person(384, 60, 450))[None]
    found = parse_people(truth, geometry)
    assert_recovers(truth, found)
    assert found[0].num_parts == NUM_PARTS
    assert found[0].keypoints.shape == (NUM_PARTS, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ten_people_side_by_side_at_random_scales(seed):
    geometry = plan_geometry(576, 1536, 368)
    truth = crowd(10, geometry, np.random.default_rng(seed), min_height=0.4, max_height=1.0)
    heights = np.ptp(truth[:, :, 1], axis=1)
    assert heights.max() / heights.min() > 1.3  # really different scales
    assert_recovers(truth, parse_people(truth, geometry))


def test_partial_people_and_dropping_people_with_few_parts():
    geometry = plan_geometry(576, 1024, 368)
    upper_body = make_person(110, 40, 400, missing=(8, 9, 10, 11, 12, 13))
    no_arms = make_person(290, 60, 420, missing=(3, 4, 6, 7))
    no_head = make_person(470, 30, 440, missing=(0, 14, 15, 16, 17))
    # No neck: head and arms are separate until the ear-shoulder limbs merge them.
    no_neck = make_person(650, 50, 400, missing=(1, 8, 9, 10, 11, 12, 13))
    right_leg = make_person(800, 40, 420, missing=(0, 2, 3, 4, 5, 6, 7, 11, 12, 13,
                                                    14, 15, 16, 17))  # neck + 3 = 4 parts
    three_parts = make_person(930, 60, 400, missing=tuple(range(3, 18)))  # nose, neck, r-sh.
    truth = np.round(np.array([upper_body, no_arms, no_head, no_neck, right_leg]))
    rendered = np.concatenate([truth, np.round(three_parts)[None]])
    assert_recovers(truth, parse_people(rendered, geometry))


def _segments_cross(p1, p2, q1, q2) -> bool:
    def side(a, b, c):
        return np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    return side(p1, p2, q1) != side(p1, p2, q2) and side(q1, q2, p1) != side(q1, q2, p2)


def test_people_touching_and_arms_crossing():
    geometry = plan_geometry(576, 768, 368)
    height = 400.0
    # Three people shoulder to shoulder: each one's left wrist on the next one's right wrist.
    row = [make_person(120 + 0.3 * height * k, 80, height) for k in range(3)]
    # Two more, lower, each arm crossing the other's upper arm and reaching into the
    # other's torso.
    left, right = make_person(520, 150, height), make_person(640, 140, height)
    top_l, top_r = left[1, 1], right[1, 1]
    left[6], left[7] = (600, top_l + 0.15 * height), (665, top_l + 0.26 * height)
    right[3], right[4] = (560, top_r + 0.16 * height), (500, top_r + 0.28 * height)
    truth = np.round(np.array([*row, left, right]))
    np.testing.assert_allclose(truth[0, 7], truth[1, 4], atol=1)  # touching hands
    assert _segments_cross(truth[3, 5], truth[3, 6], truth[4, 2], truth[4, 3])  # upper arms
    assert _segments_cross(truth[3, 6], truth[3, 7], truth[4, 8], truth[4, 1])  # into torso
    assert_recovers(truth, parse_people(truth, geometry))


def test_people_at_the_frame_borders():
    height, width = 576, 768
    geometry = plan_geometry(height, width, 368)  # no padding below, padding on the right
    h = 300.0
    # Left edge: right arm on x = 0..2 (cells -0.46..-0.3; keypoints 3..10 px inside
    # an unpadded edge cannot be peaks of the reference pipeline: they come out at 0).
    left = make_person(60, 100, h)
    left[3], left[4], left[16] = (2, 200), (0, 250), (1, 120)
    # Bottom edge: ankles on the last rows.
    bottom = make_person(250, height - 1 - 0.96 * h, h)
    bottom[10, 1], bottom[13, 1] = height - 1, height - 3
    # Top edge: eyes and ears on the first rows.
    top = make_person(420, -0.03 * h, h)
    top[14, 1], top[15, 1], top[16, 1], top[17, 1] = 0, 1, 2, 0
    # Right edge (padded: every column is reachable).
    right = make_person(width - 1 - 0.16 * h, 150, h)
    right[6, 0], right[7, 0], right[17, 0] = width - 2, width - 1, width - 4
    truth = np.round(np.array([left, bottom, top, right]))
    assert truth[..., 0].min() == 0 and truth[..., 0].max() == width - 1
    assert truth[..., 1].min() == 0 and truth[..., 1].max() == height - 1
    assert_recovers(truth, parse_people(truth, geometry))


@pytest.mark.parametrize("height, width, net_height, count", [
    (576, 768, 368, 3),
    (768, 576, 368, 2),
    (341, 203, 184, 2),  # odd size, upscaled maps, padding on the right
    (203, 341, 184, 2),
    (720, 405, 368, 2),  # portrait
    (1080, 1920, 368, 5),  # 23.5 px per map cell
])
def test_coordinates_are_original_frame_pixels(height, width, net_height, count):
    geometry = plan_geometry(height, width, net_height)
    truth = crowd(count, geometry, np.random.default_rng(height + width))
    found = parse_people(truth, geometry)
    assert_recovers(truth, found)
    everything = np.concatenate([p.keypoints[present(p), :2] for p in found])
    assert everything[:, 0].max() > 0.6 * width and everything[:, 1].max() > 0.6 * height


# ------------------------------------------------------------ PAF channel table

#: The reference's tables (pytorch-openpose body.py / CMU demo), 1-based; the PAF
#: channel of an entry of REF_MAP_IDX is entry - 19.
REF_LIMB_SEQ = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10],
                [10, 11], [2, 12], [12, 13], [13, 14], [2, 1], [1, 15], [15, 17],
                [1, 16], [16, 18], [3, 17], [6, 18]]
REF_MAP_IDX = [[31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20],
               [21, 22], [23, 24], [25, 26], [27, 28], [29, 30], [47, 48], [49, 50],
               [53, 54], [51, 52], [55, 56], [37, 38], [45, 46]]


def test_paf_channel_table_spot_checks():
    # Published model: (neck, right shoulder) in channels 12, 13; (neck, right hip) in 0, 1.
    assert PAF_CHANNELS[LIMBS.index((1, 2))] == (12, 13)
    assert PAF_CHANNELS[LIMBS.index((1, 8))] == (0, 1)
    assert PAF_CHANNELS[LIMBS.index((1, 0))] == (28, 29)
    assert PAF_CHANNELS[LIMBS.index((5, 17))] == (26, 27)
    assert LIMBS == tuple((a - 1, b - 1) for a, b in REF_LIMB_SEQ)
    assert PAF_CHANNELS == tuple((x - 19, y - 19) for x, y in REF_MAP_IDX)
    assert sorted(c for pair in PAF_CHANNELS for c in pair) == list(range(38))


def _swap(table: list, first: tuple[int, int], second: tuple[int, int] | None) -> tuple:
    a = LIMBS.index(first)
    if second is None:  # x and y of one limb
        table[a] = table[a][::-1]
    else:
        b = LIMBS.index(second)
        table[a], table[b] = table[b], table[a]
    return tuple(table)


@pytest.mark.parametrize("first, second", [
    ((1, 2), (1, 8)),  # neck-r.shoulder <-> neck-r.hip (channels 12,13 <-> 0,1)
    ((2, 3), (5, 6)),  # right <-> left upper arm
    ((8, 9), (11, 12)),  # right <-> left thigh
    ((3, 4), (9, 10)),  # forearm <-> shin
    ((1, 8), None),  # x <-> y of neck-r.hip
])
def test_maps_with_swapped_paf_channels_lose_parts(first, second):
    geometry = plan_geometry(576, 768, 368)
    truth = np.round(np.array([make_person(250, 60, 420), make_person(520, 90, 400)]))
    assert_recovers(truth, parse_people(truth, geometry))
    swapped = _swap(list(PAF_CHANNELS), first, second)
    found = parse_people(truth, geometry, paf_channels=swapped)
    # The limbs read from the wrong channels find no support: their parts are lost
    # (the fragments they leave have fewer than 4 parts).
    assert len(found) == 2
    assert all(person.num_parts < NUM_PARTS for person in found)


# ------------------------------------------------- equivalence with the reference


def _resize_like_reference(maps: np.ndarray, geometry: Geometry) -> np.ndarray:
    """C x h x w network maps -> H x W x C: cv2.resize(fx=stride, INTER_CUBIC), crop
    the padding, cv2.resize to the frame; torch bicubic has the same semantics."""
    x = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    s = geometry.stride
    x = F.interpolate(x, size=(x.shape[2] * s, x.shape[3] * s), mode="bicubic",
                      align_corners=False)
    x = x[:, :, :geometry.resized_height, :geometry.resized_width]
    x = F.interpolate(x, size=(geometry.height, geometry.width), mode="bicubic",
                      align_corners=False)
    return x[0].permute(1, 2, 0).numpy()


def reference_parse(heatmap_cells: np.ndarray, paf_cells: np.ndarray, geometry: Geometry,
                    trace: dict | None = None) -> list[tuple[np.ndarray, float, int]]:
    """The reference parse, loop for loop as pytorch-openpose ``body.py``.

    Returns people as (18 x 3 keypoints, total score, part count). ``trace``, if
    given, receives the values of every thresholded or compared quantity, to tell
    whether an input is well conditioned (no decision within float noise).
    """
    thre1, thre2 = 0.1, 0.05
    trace = {} if trace is None else trace
    trace.update(smoothed=[], samples=[], scores=[], accepted=[], means=[])
    heatmap_avg = _resize_like_reference(heatmap_cells, geometry)
    paf_avg = _resize_like_reference(paf_cells, geometry)

    all_peaks = []
    peak_counter = 0
    for part in range(18):
        map_ori = heatmap_avg[:, :, part]
        one_heatmap = gaussian_filter(map_ori, sigma=3)
        trace["smoothed"].append(one_heatmap)
        map_left = np.zeros(one_heatmap.shape)
        map_left[1:, :] = one_heatmap[:-1, :]
        map_right = np.zeros(one_heatmap.shape)
        map_right[:-1, :] = one_heatmap[1:, :]
        map_up = np.zeros(one_heatmap.shape)
        map_up[:, 1:] = one_heatmap[:, :-1]
        map_down = np.zeros(one_heatmap.shape)
        map_down[:, :-1] = one_heatmap[:, 1:]
        peaks_binary = np.logical_and.reduce(
            (one_heatmap >= map_left, one_heatmap >= map_right, one_heatmap >= map_up,
             one_heatmap >= map_down, one_heatmap > thre1))
        peaks = list(zip(np.nonzero(peaks_binary)[1], np.nonzero(peaks_binary)[0]))
        peaks_with_score = [x + (map_ori[x[1], x[0]],) for x in peaks]
        peak_id = range(peak_counter, peak_counter + len(peaks))
        all_peaks.append([peaks_with_score[i] + (peak_id[i],) for i in range(len(peak_id))])
        peak_counter += len(peaks)

    connection_all = []
    special_k = []
    mid_num = 10
    for k in range(len(REF_MAP_IDX)):
        score_mid = paf_avg[:, :, [x - 19 for x in REF_MAP_IDX[k]]]
        cand_a = all_peaks[REF_LIMB_SEQ[k][0] - 1]
        cand_b = all_peaks[REF_LIMB_SEQ[k][1] - 1]
        n_a, n_b = len(cand_a), len(cand_b)
        if n_a != 0 and n_b != 0:
            connection_candidate = []
            for i in range(n_a):
                for j in range(n_b):
                    vec = np.subtract(cand_b[j][:2], cand_a[i][:2])
                    norm = math.sqrt(vec[0] * vec[0] + vec[1] * vec[1])
                    norm = max(0.001, norm)
                    vec = np.divide(vec, norm)
                    startend = list(zip(np.linspace(cand_a[i][0], cand_b[j][0], num=mid_num),
                                        np.linspace(cand_a[i][1], cand_b[j][1], num=mid_num)))
                    vec_x = np.array([score_mid[int(round(startend[t][1])),
                                                int(round(startend[t][0])), 0]
                                      for t in range(len(startend))])
                    vec_y = np.array([score_mid[int(round(startend[t][1])),
                                                int(round(startend[t][0])), 1]
                                      for t in range(len(startend))])
                    score_midpts = np.multiply(vec_x, vec[0]) + np.multiply(vec_y, vec[1])
                    score_with_dist_prior = sum(score_midpts) / len(score_midpts) + min(
                        0.5 * geometry.height / norm - 1, 0)
                    trace["samples"].append(score_midpts)
                    trace["scores"].append(score_with_dist_prior)
                    criterion1 = len(np.nonzero(score_midpts > thre2)[0]) > 0.8 * len(
                        score_midpts)
                    criterion2 = score_with_dist_prior > 0
                    if criterion1 and criterion2:
                        connection_candidate.append(
                            [i, j, score_with_dist_prior,
                             score_with_dist_prior + cand_a[i][2] + cand_b[j][2]])
            trace["accepted"].append([c[2] for c in connection_candidate])
            connection_candidate = sorted(connection_candidate, key=lambda x: x[2], reverse=True)
            connection = np.zeros((0, 5))
            for c in range(len(connection_candidate)):
                i, j, s = connection_candidate[c][0:3]
                if i not in connection[:, 3] and j not in connection[:, 4]:
                    connection = np.vstack([connection, [cand_a[i][3], cand_b[j][3], s, i, j]])
                    if len(connection) >= min(n_a, n_b):
                        break
            connection_all.append(connection)
        else:
            special_k.append(k)
            connection_all.append([])

    subset = -1 * np.ones((0, 20))
    candidate = np.array([item for sublist in all_peaks for item in sublist])
    for k in range(len(REF_MAP_IDX)):
        if k not in special_k:
            part_as = connection_all[k][:, 0]
            part_bs = connection_all[k][:, 1]
            index_a, index_b = np.array(REF_LIMB_SEQ[k]) - 1
            for i in range(len(connection_all[k])):
                found = 0
                subset_idx = [-1, -1]
                for j in range(len(subset)):
                    if subset[j][index_a] == part_as[i] or subset[j][index_b] == part_bs[i]:
                        subset_idx[found] = j
                        found += 1
                if found == 1:
                    j = subset_idx[0]
                    if subset[j][index_b] != part_bs[i]:
                        subset[j][index_b] = part_bs[i]
                        subset[j][-1] += 1
                        subset[j][-2] += candidate[part_bs[i].astype(int), 2] \
                            + connection_all[k][i][2]
                elif found == 2:  # if found 2 and disjoint, merge them
                    j1, j2 = subset_idx
                    membership = ((subset[j1] >= 0).astype(int)
                                  + (subset[j2] >= 0).astype(int))[:-2]
                    if len(np.nonzero(membership == 2)[0]) == 0:  # merge
                        trace["merges"] = trace.get("merges", 0) + 1
                        subset[j1][:-2] += (subset[j2][:-2] + 1)
                        subset[j1][-2:] += subset[j2][-2:]
                        subset[j1][-2] += connection_all[k][i][2]
                        subset = np.delete(subset, j2, 0)
                    else:  # as like found == 1
                        trace["overlaps"] = trace.get("overlaps", 0) + 1
                        if subset[j1][index_b] == part_bs[i]:  # counted twice
                            trace["recounts"] = trace.get("recounts", 0) + 1
                        subset[j1][index_b] = part_bs[i]
                        subset[j1][-1] += 1
                        subset[j1][-2] += candidate[part_bs[i].astype(int), 2] \
                            + connection_all[k][i][2]
                elif not found and k < 17:
                    row = -1 * np.ones(20)
                    row[index_a] = part_as[i]
                    row[index_b] = part_bs[i]
                    row[-1] = 2
                    row[-2] = sum(candidate[connection_all[k][i, :2].astype(int), 2]) \
                        + connection_all[k][i][2]
                    subset = np.vstack([subset, row])
    delete_idx = []
    for i in range(len(subset)):
        trace["means"].append(subset[i][-2] / subset[i][-1])
        if subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4:
            delete_idx.append(i)
    trace["deleted"] = len(delete_idx)
    subset = np.delete(subset, delete_idx, axis=0)

    people = []
    for row in subset:
        keypoints = np.zeros((18, 3))
        for part in range(18):
            if row[part] >= 0:
                keypoints[part] = candidate[int(row[part]), :3]
        people.append((keypoints, float(row[-2]), int(row[-1])))
    return people


def decision_margins(trace: dict) -> tuple[float, float]:
    """How close the reference came to deciding otherwise, as (peak decisions, limb
    decisions): the smallest slack of a decision that a tiny change of the maps
    could flip (peak or not, above 0.1 or not; sample support, score sign, order
    of scores, the mean-score filter)."""
    peaks, limbs = [1.0], [1.0]
    for smoothed in trace["smoothed"]:
        padded = np.pad(smoothed.astype(np.float64), 1)
        centre = padded[1:-1, 1:-1]
        slack = np.min([centre - padded[:-2, 1:-1], centre - padded[2:, 1:-1],
                        centre - padded[1:-1, :-2], centre - padded[1:-1, 2:]], axis=0)
        peaks.append(np.abs(slack)[centre > 0.1 - 1e-3].min(initial=1.0))
        peaks.append(np.abs(centre - 0.1)[slack >= -1e-3].min(initial=1.0))
    if trace["samples"]:
        samples, scores = np.array(trace["samples"]), np.array(trace["scores"])
        support = (samples > 0.05).sum(axis=1)
        near = (np.abs(support - 8.5) < 1) & (scores > -1e-3)  # 8 or 9 supporting samples
        limbs.append(np.abs(samples[near] - 0.05).min(initial=1.0))
        limbs.append(np.abs(scores[support > 8]).min(initial=1.0))
    for scores in trace["accepted"]:
        if len(scores) > 1:
            limbs.append(np.diff(np.sort(scores)).min())
    limbs.append(np.abs(np.array(trace["means"]) - 0.4).min(initial=1.0))
    return float(min(peaks)), float(min(limbs))


#: Decisions closer than this are float noise: the parser's smoothed heatmaps differ
#: from the reference's by < 1e-6 and its upsampled PAFs by < 4e-6 (float32 in
#: another order), so inputs with a closer call are not used.
PEAK_MARGIN, LIMB_MARGIN = 3e-6, 1e-5


def random_fields(geometry: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random maps: per part a handful of blobs of random size and height (some
    under the 0.1 threshold) on smooth noise; PAFs smooth random fields with large
    regions of one direction, so that many pairs pass and compete."""
    h, w = geometry.map_height, geometry.map_width
    gy, gx = np.mgrid[0:h, 0:w]
    heatmaps = np.zeros((19, h, w), np.float32)
    for part in range(18):
        count = rng.integers(4, 11)
        x, y = rng.uniform(-0.5, w - 0.5, count), rng.uniform(-0.5, h - 0.5, count)
        sigma, height = rng.uniform(0.6, 1.5, count), rng.uniform(0.05, 0.9, count)
        blobs = height[:, None, None] * np.exp(
            -((gx - x[:, None, None]) ** 2 + (gy - y[:, None, None]) ** 2)
            / (2 * sigma[:, None, None] ** 2))
        noise = gaussian_filter(rng.standard_normal((h, w)), 1.0)
        heatmaps[part] = blobs.max(0) + 0.03 * noise / np.abs(noise).max()
    heatmaps[18] = 1 - heatmaps[:18].max(0)
    pafs = np.zeros((38, h, w), np.float32)
    for channel in range(38):
        field = gaussian_filter(rng.standard_normal((h, w)), 3.0)
        pafs[channel] = field / np.abs(field).max() * 0.5 + rng.uniform(-0.6, 0.6)
    return heatmaps, pafs


def noisy_ideal_maps(geometry: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    truth = crowd(4, geometry, rng, margin_cells=0.0, snap=False)
    heatmaps, pafs = (m[0].numpy() for m in render_maps(truth, geometry))
    heatmaps = heatmaps + rng.normal(0, 0.1, heatmaps.shape).astype(np.float32)
    pafs = pafs + rng.normal(0, 0.15, pafs.shape).astype(np.float32)
    return heatmaps, pafs


def people_maps(geometry: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Ideal maps of 6 people in 2 rows, parts anywhere between pixels."""
    truth = crowd(6, geometry, rng, min_height=0.6, max_height=1.0, snap=False, rows=2)
    heatmaps, pafs = (m[0].numpy() for m in render_maps(truth, geometry))
    return heatmaps, pafs


def _canonical(people: list[tuple[np.ndarray, float, int]]) -> list:
    return sorted(people, key=lambda p: tuple(p[0][:, :2].ravel()))


EQUIVALENCE_CASES = [
    # (maps, frame height, width, net height, seed)
    ("noisy", 96, 128, 184, 0),
    ("noisy", 97, 131, 184, 1),
    ("noisy", 128, 96, 368, 2),
    ("random", 96, 128, 184, 10),
    ("random", 96, 128, 184, 11),
    ("random", 97, 131, 184, 12),
    ("random", 97, 131, 184, 13),
    ("random", 128, 96, 368, 14),
    ("random", 128, 96, 368, 15),
    ("random", 150, 200, 64, 16),  # maps downscaled to the frame
    ("random", 150, 200, 64, 17),
    ("people", 1080, 1920, 368, 20),  # 1080p, landscape and portrait: the tiled peak
    ("people", 1920, 1080, 368, 20),  # search over 2 million pixels a part
]


@functools.cache
def equivalence_input(kind: str, height: int, width: int, net_height: int,
                      seed: int) -> tuple[Geometry, np.ndarray, np.ndarray, list, dict]:
    """(geometry, heatmaps, pafs, reference people, reference trace) of a case.

    Seeds whose maps put a decision of the reference within float noise are passed
    over (both answers are right then): the first well-conditioned one is used.
    """
    geometry = plan_geometry(height, width, net_height)
    make = {"noisy": noisy_ideal_maps, "random": random_fields, "people": people_maps}[kind]
    for attempt in range(10):
        heatmaps, pafs = make(geometry, np.random.default_rng(1000 * seed + attempt))
        trace: dict = {}
        expected = reference_parse(heatmaps, pafs, geometry, trace)
        peak_margin, limb_margin = decision_margins(trace)
        if peak_margin > PEAK_MARGIN and limb_margin > LIMB_MARGIN:
            return geometry, heatmaps, pafs, expected, trace
    raise AssertionError(f"no well-conditioned input for {kind} {height}x{width}")


@pytest.mark.parametrize("case", EQUIVALENCE_CASES)
def test_same_people_as_the_reference_parser(case):
    geometry, heatmaps, pafs, expected, trace = equivalence_input(*case)
    assert len(expected) >= 1  # not a trivial input

    found = parse_batch(torch.from_numpy(heatmaps)[None], torch.from_numpy(pafs)[None],
                        geometry)[0]
    got = _canonical([(p.keypoints, p.total_score, p.num_parts) for p in found])
    expected = _canonical(expected)
    assert len(got) == len(expected)
    for (kp, total, count), (kp_ref, total_ref, count_ref) in zip(got, expected):
        np.testing.assert_array_equal(kp[:, :2], kp_ref[:, :2])
        np.testing.assert_allclose(kp[:, 2], kp_ref[:, 2], atol=1e-4)
        assert count == count_ref
        assert total == pytest.approx(total_ref, abs=1e-4)


def test_equivalence_inputs_exercise_every_assembly_branch():
    """The compared inputs make the reference merge people, take the 'two owners
    that share a part' branch, and there add a part B the first owner already
    holds (counting it again, which the parser must reproduce)."""
    totals: dict[str, int] = {}
    for case in EQUIVALENCE_CASES:
        trace = equivalence_input(*case)[4]
        for key in ("merges", "overlaps", "recounts", "deleted"):
            totals[key] = totals.get(key, 0) + trace.get(key, 0)
    assert totals["merges"] >= 3 and totals["overlaps"] >= 2 and totals["recounts"] >= 1
    assert totals["deleted"] >= 10


# ------------------------------------------------------- batches, shapes, params


def test_batch_with_one_geometry_per_frame():
    # 576x768 and 600x800 frames both give 46 x 62 maps at 368: same maps, frames
    # of different sizes, so the coordinates must scale by 600 / 576.
    small, large = plan_geometry(576, 768, 368), plan_geometry(600, 800, 368)
    assert (small.map_height, small.map_width) == (large.map_height, large.map_width)
    truth = np.round(make_person(384, 60, 450))[None]
    heatmaps, pafs = render_maps(truth, small)
    both = parse_batch(heatmaps.repeat(2, 1, 1, 1), pafs.repeat(2, 1, 1, 1), [small, large])
    assert_recovers(truth, both[0])
    scaled = pixel_from_cell(cell_from_pixel(truth, small), large)
    assert_recovers(scaled, both[1])


def test_batch_of_several_frames():
    geometry = plan_geometry(576, 768, 368)
    frames = [crowd(1, geometry, np.random.default_rng(1)), np.zeros((0, 18, 2)),
              crowd(3, geometry, np.random.default_rng(2))]
    maps = [render_maps(people, geometry) for people in frames]
    heatmaps = torch.cat([m[0] for m in maps])
    pafs = torch.cat([m[1] for m in maps])
    found = parse_batch(heatmaps, pafs, geometry)
    assert len(found) == 3
    for people, frame in zip(frames, found):
        assert_recovers(people, frame)
    assert parse_batch(heatmaps[:0], pafs[:0], geometry) == []


def test_bad_shapes_raise_value_error():
    geometry = plan_geometry(576, 768, 368)
    heatmaps, pafs = render_maps(np.zeros((0, 18, 2)), geometry)
    with pytest.raises(ValueError):
        parse_batch(heatmaps[0], pafs, geometry)  # no batch dimension
    with pytest.raises(ValueError):
        parse_batch(heatmaps[:, :18], pafs, geometry)  # 18 heatmaps
    with pytest.raises(ValueError):
        parse_batch(heatmaps, pafs[:, :36], geometry)  # 36 PAFs
    with pytest.raises(ValueError):
        parse_batch(heatmaps, pafs[:, :, :-1], geometry)  # PAFs of another size
    with pytest.raises(ValueError):
        parse_batch(heatmaps, pafs.repeat(2, 1, 1, 1), geometry)  # another batch size
    with pytest.raises(ValueError):
        parse_batch(heatmaps, pafs, [geometry, geometry])  # two geometries, one frame
    with pytest.raises(ValueError):
        parse_batch(heatmaps, pafs, plan_geometry(576, 900, 368))  # maps too narrow


def test_params_thresholds_matter():
    geometry = plan_geometry(576, 768, 368)
    full = make_person(250, 60, 420)
    five_parts = make_person(550, 80, 400, missing=(0, *range(5, 16), 17))  # neck, r-arm, r-ear
    truth = np.round(np.array([full, five_parts]))
    heatmaps, pafs = render_maps(truth, geometry)

    def parse(**options):
        return parse_batch(heatmaps, pafs, geometry, ParseParams(**options))[0]

    assert_recovers(truth, parse())
    assert_recovers(truth[:1], parse(min_parts=6))
    assert_recovers(truth, parse(min_parts=5))
    peak = max(p.keypoints[:, 2].max() for p in parse())
    assert parse(peak_threshold=peak + 0.01) == []
    assert parse(min_mean_score=100.0) == []
    assert parse(paf_sample_threshold=1.5) == []  # unit-vector fields never exceed 1.5


def test_distance_prior_penalises_limbs_longer_than_a_fraction_of_the_frame_height():
    # Neck, right hip, knee, ankle: three limbs, each 90..150 px long in a 576 px frame.
    geometry = plan_geometry(576, 768, 368)
    leg = np.round(make_person(300, 60, 420, missing=(0, *range(2, 8), *range(11, 18))))
    heatmaps, pafs = render_maps(leg[None], geometry)
    (plain,) = parse_batch(heatmaps, pafs, geometry)[0]  # 0.5 * 576: no limb penalised
    (short,) = parse_batch(heatmaps, pafs, geometry, ParseParams(distance_prior=0.1))[0]
    assert_recovers(leg[None], [short])
    kp = short.keypoints[:, :2]
    lengths = [np.linalg.norm(kp[b] - kp[a]) for a, b in ((1, 8), (8, 9), (9, 10))]
    penalty = sum(1 - 0.1 * 576 / length for length in lengths)
    assert penalty > 1
    assert plain.total_score - short.total_score == pytest.approx(penalty, abs=1e-9)


def test_ear_shoulder_limbs_do_not_start_people():
    # With min_parts=2, two-part people show: nose-neck (limb 13 of 19) starts one,
    # right shoulder-right ear (limb 18, one of the last two) must not.
    geometry = plan_geometry(576, 768, 368)
    head = make_person(200, 60, 420, missing=tuple(range(2, 18)))  # nose, neck
    ear_shoulder = make_person(500, 60, 420, missing=tuple(set(range(18)) - {2, 16}))
    truth = np.round(np.array([head, ear_shoulder]))
    found = parse_people(truth, geometry, ParseParams(min_parts=2))
    assert_recovers(truth[:1], found)


def test_params_are_validated():
    with pytest.raises(UsageError):
        ParseParams(paf_samples=1)
    with pytest.raises(UsageError):
        ParseParams(paf_min_fraction=1.5)
    with pytest.raises(UsageError):
        ParseParams(min_parts=0)
