"""Tests for the parse's shortcuts: the tiled peak search (posecli.parse.tiles), the
PAF pre-check (posecli.parse.affinity) and the per-part peak cap.

Each shortcut is compared with the plain computation it replaces: the smoothed maps
computed whole (float64) and searched pixel by pixel; every candidate pair scored
exactly. Inputs whose decisions lie within float noise of flipping are passed over,
as in test_parse.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from render_maps import crowd, render_maps
from test_parse import random_fields

from posecli.parse import ParseParams, parse_batch
from posecli.parse import affinity as affinity_module
from posecli.parse.limbs import enumerate_pairs
from posecli.parse.parse import parse_operators, without_negligible
from posecli.parse.peaks import find_peaks, strongest
from posecli.parse.resample import map_operators
from posecli.parse.tiles import (
    TILE_COLS,
    TILE_ROWS,
    _candidate_tiles,
    smoothed_maxima,
    smoothing_tiles,
)
from posecli.preprocess import plan_geometry
from posecli.skeleton import NUM_PARTS

CPU = torch.device("cpu")


def frame_peaks(heatmaps: torch.Tensor, geometry, cap: int = 127, threshold: float = 0.1):
    """find_peaks of (18, h, w) heatmaps with the frame size's operators."""
    operators = parse_operators(geometry, 3.0, CPU)
    return find_peaks(without_negligible(heatmaps), operators.smoothing,
                      operators.affinity.banded_rows, operators.affinity.cols, threshold, cap)

#: Frame sizes (height, width, net height): landscape and portrait 1080p, odd sizes,
#: maps upscaled and downscaled, frames narrower than one tile.
GEOMETRIES = [(576, 768, 368), (1080, 1920, 368), (1920, 1080, 368), (97, 131, 184),
              (150, 200, 64), (40, 23, 64)]


def dense_maxima(smoothed: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of (P, H, W) float64 maps searched pixel by pixel, as the reference (>= 4
    neighbours, 0 outside, > threshold): (K, 3) int64 (part, y, x), and every pixel's
    decision margin (how far its value is from tying a neighbour or the threshold)."""
    padded = np.pad(smoothed, ((0, 0), (1, 1), (1, 1)))
    centre = padded[:, 1:-1, 1:-1]
    slack = np.min([centre - padded[:, :-2, 1:-1], centre - padded[:, 2:, 1:-1],
                    centre - padded[:, 1:-1, :-2], centre - padded[:, 1:-1, 2:]], axis=0)
    is_peak = (slack >= 0) & (centre > threshold)
    return np.argwhere(is_peak), np.minimum(np.abs(slack), np.abs(centre - threshold))


def assert_same_peaks(found: np.ndarray, expected: np.ndarray, margin: np.ndarray) -> None:
    """``found`` == ``expected`` (K x 3 (part, y, x)) but for pixels whose decision is
    within float32 noise (margin < 1e-5): either answer is right there."""
    found_set, expected_set = set(map(tuple, found)), set(map(tuple, expected))
    differ = np.array(sorted(found_set ^ expected_set), dtype=np.int64).reshape(-1, 3)
    assert (margin[tuple(differ.T)] < 1e-5).all(), differ[margin[tuple(differ.T)] >= 1e-5]
    assert len(differ) <= len(expected) // 100
    assert found.tolist() == sorted(found.tolist())  # ordered by part, row, column


def smooth(maps: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """(P, h, w) maps -> (P, H, W) float64 ``ga @ m @ gb.T``."""
    ga, gb = torch.from_numpy(ga).double(), torch.from_numpy(gb).double()
    return (ga @ torch.from_numpy(maps).double() @ gb.T).numpy()


@pytest.mark.parametrize("height, width, net_height", GEOMETRIES)
def test_tiled_search_finds_exactly_the_peaks_of_the_whole_smoothed_maps(
        height, width, net_height):
    geometry = plan_geometry(height, width, net_height)
    _, _, ga, gb = map_operators(geometry, 3.0)
    tiles = smoothing_tiles(ga, gb)
    parts = NUM_PARTS if height * width < 10**6 else 3  # 1080p: memory of the full maps
    maps = random_fields(geometry, np.random.default_rng(height))[0][:parts]
    smoothed = smooth(maps, ga, gb)
    for threshold in (0.0, 0.1, 0.4):
        expected, margin = dense_maxima(smoothed, threshold)
        assert len(expected) >= 5
        found, value = smoothed_maxima(torch.from_numpy(maps), tiles, threshold)
        assert_same_peaks(found.numpy(), expected, margin)
        np.testing.assert_allclose(value.numpy(), smoothed[tuple(found.numpy().T)], atol=1e-6)


@pytest.mark.parametrize("height, width, net_height", GEOMETRIES)
def test_strict_search_finds_exactly_lightweights_peaks(height, width, net_height):
    """The strict form (Lightweight OpenPose's peaks: > the four neighbours, >= the
    threshold), on maps upsampled without smoothing, against the whole maps."""
    geometry = plan_geometry(height, width, net_height)
    a, b, _, _ = map_operators(geometry, 0.0)
    tiles = smoothing_tiles(a, b)
    parts = NUM_PARTS if height * width < 10**6 else 3
    maps = random_fields(geometry, np.random.default_rng(height + 1))[0][:parts]
    full = smooth(maps, a, b)
    padded = np.pad(full, ((0, 0), (1, 1), (1, 1)))
    centre = padded[:, 1:-1, 1:-1]
    slack = np.min([centre - padded[:, :-2, 1:-1], centre - padded[:, 2:, 1:-1],
                    centre - padded[:, 1:-1, :-2], centre - padded[:, 1:-1, 2:]], axis=0)
    for threshold in (0.1, 0.4):
        expected = np.argwhere((slack > 0) & (centre >= threshold))
        margin = np.minimum(np.abs(slack), np.abs(centre - threshold))
        assert len(expected) >= 5
        found, value = smoothed_maxima(torch.from_numpy(maps), tiles, threshold, strict=True)
        assert_same_peaks(found.numpy(), expected, margin)
        np.testing.assert_allclose(value.numpy(), full[tuple(found.numpy().T)], atol=1e-6)


def test_strict_search_gives_no_plateau_and_includes_the_threshold():
    maps = torch.zeros(1, 5, 6)
    maps[0, 2, 2:4] = 0.5  # a plateau of two pixels: neither is a peak
    maps[0, 0, 5] = 0.1  # exactly the threshold, in a corner: a peak
    identity = smoothing_tiles(np.eye(5), np.eye(6))
    assert smoothed_maxima(maps, identity, 0.1, strict=True)[0].tolist() == [[0, 0, 5]]
    assert smoothed_maxima(maps, identity, 0.1)[0].tolist() == [[0, 2, 2], [0, 2, 3]]


@pytest.mark.parametrize("height, width, net_height", GEOMETRIES[:3])
def test_tile_bounds_hold_and_prune_most_tiles(height, width, net_height):
    """Every tile's bound is >= the largest smoothed value in the tile (the tiles
    passed over cannot hold a peak); on a frame of 3 people most are passed over."""
    geometry = plan_geometry(height, width, net_height)
    _, _, ga, gb = map_operators(geometry, 3.0)
    tiles = smoothing_tiles(ga, gb)
    people = crowd(3, geometry, np.random.default_rng(0))
    maps = render_maps(people, geometry)[0][0, :3].numpy()  # 3 parts: memory at 1080p
    maps = maps + 0.02 * np.random.default_rng(1).standard_normal(maps.shape).astype(
        np.float32)  # some negative values
    smoothed = torch.from_numpy(smooth(maps, ga, gb))
    n_rows, n_cols = -(-height // TILE_ROWS), -(-width // TILE_COLS)
    padded = F.pad(smoothed, (0, n_cols * TILE_COLS - width, 0, n_rows * TILE_ROWS - height),
                   value=-np.inf)
    tile_max = padded.view(3, n_rows, TILE_ROWS, n_cols, TILE_COLS).amax(dim=(2, 4))
    rows_t = torch.zeros(n_rows * TILE_ROWS + 2, 3, geometry.map_width)
    rows_t[1:height + 1] = torch.einsum("Hh,phw->Hpw", torch.from_numpy(ga),
                                        torch.from_numpy(maps))
    for threshold in (0.0, 0.05, 0.1, 0.3, 0.6):
        col_tile, part, row_tile = _candidate_tiles(rows_t, tiles, threshold)
        searched = torch.zeros(3, n_rows, n_cols, dtype=torch.bool)
        searched[part, row_tile, col_tile] = True
        assert not (tile_max[~searched] > threshold).any()
        if threshold >= 0.1:
            assert searched.float().mean() < 0.15


def test_plateaus_give_every_pixel_and_the_outside_counts_as_zero():
    maps = torch.zeros(2, 5, 6)
    maps[0, 2, 2:4] = 0.5  # a plateau of two pixels: both are peaks
    maps[0, 0, 5] = 0.3  # a corner: the outside counts as 0
    maps[0, 4, 0] = 0.1  # not above the threshold
    maps[1] = 0.2  # flat everywhere: every pixel
    # Identity operators: the "smoothed" maps are the maps themselves.
    peaks = smoothed_maxima(maps, smoothing_tiles(np.eye(5), np.eye(6)), 0.1)[0].tolist()
    assert peaks[:3] == [[0, 0, 5], [0, 2, 2], [0, 2, 3]]
    assert len(peaks) == 3 + 30


def test_a_peak_on_a_tile_edge_is_compared_with_the_next_tile():
    # Identity operators over 2 x 2 tiles: peaks on every tile edge and corner, and
    # non-peaks that only the neighbouring tile shows.
    height, width = 2 * TILE_ROWS, 2 * TILE_COLS
    maps = torch.zeros(1, height, width)
    edges = [(TILE_ROWS - 1, 5), (TILE_ROWS, 9), (3, TILE_COLS - 1), (4, TILE_COLS),
             (TILE_ROWS - 1, TILE_COLS - 1), (TILE_ROWS, TILE_COLS + 3)]
    for y, x in edges:
        maps[0, y, x] = 0.5
    maps[0, TILE_ROWS - 1, 20] = 0.5  # loses to the pixel below, in the next tile
    maps[0, TILE_ROWS, 20] = 0.6
    maps[0, 11, TILE_COLS - 1] = 0.5  # loses to the pixel on its right, in the next tile
    maps[0, 11, TILE_COLS] = 0.7
    found = smoothed_maxima(maps, smoothing_tiles(np.eye(height), np.eye(width)), 0.1)[0]
    expected = sorted([[0, y, x] for y, x in edges] + [[0, TILE_ROWS, 20], [0, 11, TILE_COLS]])
    assert found.tolist() == expected


# ------------------------------------------------------------------ PAF pre-check


@pytest.mark.parametrize("kind", ["crowd", "random"])
@pytest.mark.parametrize("height, width", [(576, 768), (1080, 1920)])
def test_pair_precheck_rejects_only_pairs_the_exact_scoring_rejects(
        kind, height, width, monkeypatch):
    geometry = plan_geometry(height, width, 368)
    params = ParseParams()
    rng = np.random.default_rng(height)
    if kind == "crowd":
        heatmaps, pafs = render_maps(crowd(12, geometry, rng, rows=2), geometry)
        heatmaps, pafs = heatmaps[0, :NUM_PARTS], pafs[0]
    else:
        heatmaps, pafs = (torch.from_numpy(m) for m in random_fields(geometry, rng))
        heatmaps = heatmaps[:NUM_PARTS]
    operators = parse_operators(geometry, 3.0, CPU)
    peaks = frame_peaks(heatmaps, geometry)
    pairs = enumerate_pairs(peaks)
    pafs = without_negligible(pafs)
    monkeypatch.setattr(affinity_module, "GATHER_COST", 0)  # one way of reading the PAFs
    score, ok = affinity_module.score_pairs(pairs, peaks, pafs, operators.affinity,
                                            height, params)
    scored = np.isfinite(score)
    monkeypatch.setattr(affinity_module, "_may_pass", lambda samples, *_: torch.ones(
        samples.x.shape[0], dtype=torch.bool))
    every_score, every_ok = affinity_module.score_pairs(pairs, peaks, pafs,
                                                        operators.affinity, height, params)
    assert ok.sum() >= 20
    np.testing.assert_array_equal(ok, every_ok)
    np.testing.assert_array_equal(score[scored], every_score[scored])
    if kind == "crowd":  # most pairs join different people: rejected unread
        assert scored.mean() < 0.25


@pytest.mark.parametrize("cost", [0, 10**12])
def test_both_ways_of_reading_the_pafs_give_the_upsampled_values(cost, monkeypatch):
    """Cell by cell (GATHER_COST 0) or from the PAFs upsampled along rows (huge)."""
    geometry = plan_geometry(97, 131, 184)
    a, b, _, _ = map_operators(geometry, 3.0)
    operators = affinity_module.affinity_operators(a, b)
    pafs = random_fields(geometry, np.random.default_rng(4))[1]
    upsampled = smooth(pafs, a, b)
    rng = np.random.default_rng(5)
    y, x = rng.integers(0, 97, (50, 10)), rng.integers(0, 131, (50, 10))
    channel = rng.integers(0, 38, 50)
    monkeypatch.setattr(affinity_module, "GATHER_COST", cost)
    read = affinity_module.field_reader(torch.from_numpy(pafs), operators, 500)
    values = read(torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(channel))
    np.testing.assert_allclose(values.numpy(), upsampled[channel[:, None], y, x], atol=2e-6)


def test_paf_bounds_hold():
    geometry = plan_geometry(97, 131, 184)
    a, b, _, _ = map_operators(geometry, 3.0)
    operators = affinity_module.affinity_operators(a, b)
    pafs = random_fields(geometry, np.random.default_rng(3))[1]
    upsampled = np.abs(smooth(pafs, a, b))
    bounds = affinity_module._bounds(torch.from_numpy(pafs), operators).numpy()
    tile = affinity_module.BOUND_TILE
    rows, cols = np.arange(geometry.height) // tile, np.arange(geometry.width) // tile
    per_pixel = bounds[rows[:, None], :, cols[None, :]].transpose(2, 0, 1)  # c x H x W
    assert (upsampled <= per_pixel * (1 + 1e-6)).all()


# ------------------------------------------------------------------ peak cap


def test_strongest_keeps_the_highest_scores_first_ties_in_order():
    part = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    score = torch.tensor([0.3, 0.9, 0.3, 0.5, 0.2, 0.1, 0.4])
    assert strongest(part, score, 2).tolist() == [False, True, False, True,
                                                  True, True, True]
    assert strongest(part, score, 3).tolist() == [True, True, False, True,
                                                  True, True, True]
    assert strongest(part, score, 4).all()
    assert strongest(part[:0], score[:0], 1).tolist() == []


def strongest_of(heatmaps: torch.Tensor, geometry, cap: int) -> np.ndarray:
    """(K, 3) (part, y, x) of the ``cap`` peaks of highest smoothed value of each part
    (ties: the first in row-major order), in row-major order within parts."""
    operators = parse_operators(geometry, 3.0, CPU)
    index, value = smoothed_maxima(without_negligible(heatmaps), operators.smoothing, 0.1)
    index, value = index.numpy(), value.numpy()
    kept = np.zeros(len(index), dtype=bool)
    for part in range(NUM_PARTS):
        mine = np.flatnonzero(index[:, 0] == part)
        kept[mine[np.argsort(-value[mine], kind="stable")[:cap]]] = True
    return index[kept]


def xy_of(peaks) -> np.ndarray:
    return np.column_stack([peaks.part, peaks.xy[:, 1], peaks.xy[:, 0]]).astype(np.int64)


def test_a_frame_of_noise_keeps_at_most_127_peaks_per_part():
    """Noise maps have hundreds of peaks per part; the cap keeps the parse to
    127^2 candidate pairs per limb (OpenPose's POSE_MAX_PEOPLE)."""
    geometry = plan_geometry(576, 768, 368)
    rng = np.random.default_rng(0)
    shape = (1, 19, geometry.map_height, geometry.map_width)
    heatmaps = torch.from_numpy(rng.uniform(0, 1, shape).astype(np.float32))
    pafs = torch.from_numpy(rng.uniform(-1, 1, (1, 38, *shape[2:])).astype(np.float32))
    uncapped = frame_peaks(heatmaps[0, :NUM_PARTS], geometry, cap=10**9)
    capped = frame_peaks(heatmaps[0, :NUM_PARTS], geometry)
    assert uncapped.counts.min() > 300
    assert (capped.counts == 127).all()
    np.testing.assert_array_equal(xy_of(capped),
                                  strongest_of(heatmaps[0, :NUM_PARTS], geometry, 127))
    assert len(enumerate_pairs(capped).limb) == 19 * 127 ** 2
    assert isinstance(parse_batch(heatmaps, pafs, geometry)[0], list)  # and it parses


def test_the_cap_keeps_the_strongest_peaks_in_their_order():
    geometry = plan_geometry(576, 768, 368)
    people = crowd(6, geometry, np.random.default_rng(2))
    heatmaps = render_maps(people, geometry)[0][0, :NUM_PARTS]
    every = frame_peaks(heatmaps, geometry)
    assert every.counts.max() == 6
    three = frame_peaks(heatmaps, geometry, cap=3)
    assert (three.counts == 3).all()
    np.testing.assert_array_equal(xy_of(three), strongest_of(heatmaps, geometry, 3))
    kept = np.isin(xy_of(every).view("i8,i8,i8"), xy_of(three).view("i8,i8,i8"))[:, 0]
    np.testing.assert_array_equal(three.score, every.score[kept])  # same scores
