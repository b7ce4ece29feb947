"""Training targets: heatmaps, PAFs and loss masks at stride 8."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecli.evaluate import flip_channels
from posecli.parse import ParseParams, parse_batch
from posecli.parse.resample import map_operators
from posecli.preprocess import Geometry
from posecli.skeleton import (
    COCO17_FLIP,
    COCO17_FROM_COCO18,
    COCO17_NAMES,
    COCO18_NAMES,
    LIMBS,
    NUM_PARTS,
    PAF_CHANNELS,
    coco18_to_coco17,
)
from posecli.train.targets import (
    build_targets,
    cell_centres,
    coco18_from_coco17,
    is_ignored,
    mask_at_stride,
    region_mask,
)

PART = {name: i for i, name in enumerate(COCO18_NAMES)}
KP17 = {name: i for i, name in enumerate(COCO17_NAMES)}


def limb_index(a: str, b: str) -> int:
    return LIMBS.index((PART[a], PART[b]))


def one_person(**parts: tuple[float, float, int]) -> np.ndarray:
    keypoints = np.zeros((1, 17, 3))
    for name, value in parts.items():
        keypoints[0, KP17[name]] = value
    return keypoints


def standing(cx: float, cy: float, h: float) -> np.ndarray:
    """A full COCO-17 person (17 x 3) of height ``h`` around (cx, cy)."""
    pose = np.array([
        (0.0, -0.42), (0.03, -0.45), (-0.03, -0.45), (0.06, -0.43), (-0.06, -0.43),
        (0.12, -0.30), (-0.12, -0.30), (0.18, -0.12), (-0.18, -0.12), (0.20, 0.03),
        (-0.20, 0.03), (0.08, 0.02), (-0.08, 0.02), (0.09, 0.24), (-0.09, 0.24),
        (0.10, 0.46), (-0.10, 0.46)])
    keypoints = np.full((17, 3), 2.0)
    keypoints[:, :2] = np.array([cx, cy]) + pose * h
    return keypoints


def stride8_geometry(height: int, width: int) -> Geometry:
    return Geometry(height, width, height, width, height, width, 8)


def test_cell_centres_match_the_parser_convention():
    # Pixel X sits at map coordinate (X + 0.5) / 8 - 0.5: cell j is centred on 8j + 3.5.
    centres = cell_centres(5)
    assert np.allclose((centres + 0.5) / 8 - 0.5, np.arange(5))


def test_heatmap_peaks_at_the_keypoints():
    rng = np.random.default_rng(0)
    height, width = 128, 96
    # Away from the border, where bicubic upsampling with replicated edges overshoots.
    xy = rng.uniform([12, 12], [width - 13, height - 13], size=(17, 2))
    keypoints = np.concatenate([xy, np.full((17, 1), 2.0)], 1)[None]
    targets = build_targets(keypoints, height, width)
    assert targets.heatmaps.shape == (19, 16, 12) and targets.heatmaps.dtype == np.float32
    rows, cols, _, _ = map_operators(stride8_geometry(height, width), 0.0)
    for k17, (x, y) in enumerate(xy):
        channel = targets.heatmaps[COCO17_FROM_COCO18[k17]]
        cell = np.unravel_index(channel.argmax(), channel.shape)
        assert cell == (round((y + 0.5) / 8 - 0.5), round((x + 0.5) / 8 - 0.5)), k17
        # Upsampled like the parser does, the peak is at the keypoint's pixel.
        upsampled = rows @ channel @ cols.T
        py, px = np.unravel_index(upsampled.argmax(), upsampled.shape)
        assert abs(px - x) <= 1.0 and abs(py - y) <= 1.0, (k17, px, py, x, y)
    # Gaussian of sigma 7 px: value at a cell centre is exp(-d^2 / 98).
    x, y = xy[0]
    j, i = 5, 7
    d2 = (cell_centres(12)[j] - x) ** 2 + (cell_centres(16)[i] - y) ** 2
    expected = np.exp(-d2 / 98) if d2 / 98 <= 4.6052 else 0.0
    assert targets.heatmaps[PART["nose"], i, j] == pytest.approx(expected, abs=1e-6)
    parts_max = targets.heatmaps[:NUM_PARTS].max(0)
    assert np.allclose(targets.heatmaps[NUM_PARTS], 1 - parts_max)


def test_heatmaps_take_the_max_over_people_and_skip_absent_parts():
    a = one_person(nose=(20.0, 20.0, 2), left_wrist=(30, 30, 0), right_wrist=(50, 50, 1))
    b = one_person(nose=(22.0, 21.0, 2))
    both = build_targets(np.concatenate([a, b]), 64, 64).heatmaps
    alone = [build_targets(p, 64, 64).heatmaps for p in (a, b)]
    assert np.allclose(both[PART["nose"]], np.maximum(alone[0][PART["nose"]],
                                                      alone[1][PART["nose"]]))
    assert both.max() <= 1.0
    assert not both[PART["left_wrist"]].any()  # v = 0: absent
    assert both[PART["right_wrist"]].max() > 0.9  # v = 1: occluded but labelled
    empty = build_targets(np.zeros((0, 17, 3)), 64, 64)
    assert not empty.heatmaps[:NUM_PARTS].any() and (empty.heatmaps[NUM_PARTS] == 1).all()
    assert not empty.pafs.any() and (empty.mask == 1).all()


def test_neck_is_the_midpoint_of_labelled_shoulders():
    person = one_person(left_shoulder=(60.0, 40.0, 2), right_shoulder=(28.0, 24.0, 1))
    parts = coco18_from_coco17(person)
    assert parts[0, PART["neck"]].tolist() == [44.0, 32.0, 1.0]
    assert np.array_equal(coco18_to_coco17(parts), person)
    heat = build_targets(person, 64, 96).heatmaps[PART["neck"]]
    assert np.unravel_index(heat.argmax(), heat.shape) == (round(32.5 / 8 - 0.5),
                                                           round(44.5 / 8 - 0.5))
    person[0, KP17["right_shoulder"], 2] = 0
    assert not build_targets(person, 64, 96).heatmaps[PART["neck"]].any()


def test_paf_is_a_unit_vector_along_the_limb_and_zero_elsewhere():
    # Right shoulder -> right elbow, diagonal, plus the neck -> right shoulder limb
    # would need the left shoulder: absent, so only one limb is present.
    a, b = np.array([19.5, 27.5]), np.array([91.5, 75.5])
    person = one_person(right_shoulder=(*a, 2), right_elbow=(*b, 2))
    pafs = build_targets(person, 104, 120, limb_width=8.0).pafs
    k = limb_index("right_shoulder", "right_elbow")
    cx, cy = PAF_CHANNELS[k]
    others = [c for c in range(38) if c not in (cx, cy)]
    assert not pafs[others].any()
    ys, xs = np.meshgrid(cell_centres(13), cell_centres(15), indexing="ij")
    unit = (b - a) / np.linalg.norm(b - a)
    along = (xs - a[0]) * unit[0] + (ys - a[1]) * unit[1]
    across = np.abs((xs - a[0]) * unit[1] - (ys - a[1]) * unit[0])
    inside = (along >= -8.0) & (along <= np.linalg.norm(b - a) + 8.0) & (across <= 8.0)
    assert inside.sum() > 10
    assert np.allclose(pafs[cx][inside], unit[0]) and np.allclose(pafs[cy][inside], unit[1])
    assert np.allclose(np.hypot(pafs[cx], pafs[cy])[inside], 1.0)
    assert not pafs[cx][~inside].any() and not pafs[cy][~inside].any()
    assert not pafs[:, across > 8.0].any() and not pafs[:, along < -8.0].any()
    assert not pafs[:, along > np.linalg.norm(b - a) + 8.0].any()
    # A limb shorter than a cell still covers the cells around it.
    short = one_person(right_eye=(40.2, 30.1, 2), right_ear=(43.0, 31.0, 2))
    k = limb_index("right_eye", "right_ear")
    assert np.hypot(*build_targets(short, 64, 64).pafs[list(PAF_CHANNELS[k])]).max() > 0.99


def test_paf_is_averaged_where_limbs_overlap():
    k = limb_index("left_hip", "left_knee")
    cx, cy = PAF_CHANNELS[k]
    horizontal = one_person(left_hip=(3.5, 35.5, 2), left_knee=(59.5, 35.5, 2))
    vertical = one_person(left_hip=(35.5, 3.5, 2), left_knee=(35.5, 59.5, 2))
    pafs = build_targets(np.concatenate([horizontal, vertical]), 64, 64).pafs
    i = j = 4  # the cell centred on (35.5, 35.5), on both limbs
    assert pafs[cx, i, j] == pytest.approx(0.5) and pafs[cy, i, j] == pytest.approx(0.5)
    # Where only one limb passes the vector stays a unit vector.
    assert pafs[cx, 4, 0] == pytest.approx(1.0) and pafs[cy, 4, 0] == 0.0
    assert pafs[cx, 0, 4] == 0.0 and pafs[cy, 0, 4] == pytest.approx(1.0)
    # Two people with the same limb on the same cells: the average of equal vectors.
    twice = build_targets(np.concatenate([horizontal, horizontal]), 64, 64).pafs
    assert np.allclose(twice, build_targets(horizontal, 64, 64).pafs)


def test_flipped_input_gives_mirrored_targets():
    rng = np.random.default_rng(1)
    height, width = 96, 128
    people = np.stack([standing(40.3, 50.2, 70), standing(90.7, 45.9, 60)])
    people[0, 3, 2] = 0
    people[:, :, :2] += rng.uniform(-2, 2, size=(2, 17, 2))
    mirrored = people.copy()
    mirrored[..., 0] = width - 1 - mirrored[..., 0]  # pixel-index mirror
    mirrored = mirrored[:, COCO17_FLIP]  # the mirrored person's left is the old right
    original = build_targets(people, height, width)
    flipped = build_targets(mirrored, height, width)
    heat_order, paf_order, paf_sign = flip_channels()
    assert np.allclose(flipped.heatmaps[:, :, ::-1][heat_order], original.heatmaps, atol=1e-6)
    unflipped = flipped.pafs[:, :, ::-1][paf_order] * paf_sign[:, None, None]
    assert np.allclose(unflipped, original.pafs, atol=1e-6)
    assert original.pafs.any() and original.heatmaps[:NUM_PARTS].any()


def test_targets_parse_back_to_the_keypoints():
    """Targets used as network output: the parser recovers every person (+-2 px)."""
    height, width = 128, 160
    people = np.stack([standing(50.2, 62.4, 100), standing(112.6, 66.1, 90)])
    targets = build_targets(people, height, width)
    found = parse_batch(torch.from_numpy(targets.heatmaps)[None],
                        torch.from_numpy(targets.pafs)[None],
                        stride8_geometry(height, width), ParseParams())[0]
    assert len(found) == 2
    found = sorted(found, key=lambda p: p.keypoints[1, 0])
    for person, truth in zip(found, people):
        keypoints = coco18_to_coco17(person.keypoints)
        assert (keypoints[:, 2] > 0).all()
        assert np.abs(keypoints[:, :2] - truth[:, :2]).max() <= 2.0


def test_region_mask_polygons_rle_and_boxes():
    polygon = {"segmentation": [[2, 2, 10, 2, 10, 6, 2, 6]], "bbox": [0, 0, 1, 1]}
    rle = {"segmentation": {"counts": [5 * 20 + 3, 4, 600 - 107], "size": [20, 30]}}
    box = {"segmentation": [], "bbox": [20.0, 10.0, 5.0, 4.0]}
    region = region_mask([polygon], 20, 30)
    assert region[3, 5] and region[5, 9] and not region[8, 5] and not region[0, 0]
    region = region_mask([rle], 20, 30)  # column-major RLE: column 5, rows 3..6
    assert np.array_equal(np.argwhere(region), [[3, 5], [4, 5], [5, 5], [6, 5]])
    region = region_mask([box], 20, 30)
    assert region.sum() == 20 and region[10:14, 20:25].all()


def test_ignored_annotations_and_mask_at_stride():
    assert is_ignored({"iscrowd": 1, "num_keypoints": 5})
    assert is_ignored({"iscrowd": 0, "num_keypoints": 0})
    assert is_ignored({"iscrowd": 0, "keypoints": [0] * 51})
    assert not is_ignored({"iscrowd": 0, "keypoints": [1, 2, 2] + [0] * 48})
    ignored = np.zeros((32, 48))
    ignored[9, 17] = 1  # one pixel of cell (1, 2)
    ignored[24:32, 40:48] = 1  # all of cell (3, 5)
    mask = mask_at_stride(ignored, 4, 6)
    expected = np.ones((4, 6), dtype=np.float32)
    expected[1, 2] = expected[3, 5] = 0
    assert np.array_equal(mask, expected)
    person = one_person(nose=(20.0, 20.0, 2))
    targets = build_targets(person, 32, 48, ignored=ignored)
    assert np.array_equal(targets.mask, expected)
    assert np.array_equal(mask_at_stride(None, 4, 6), np.ones((4, 6)))


def test_bad_sizes():
    with pytest.raises(ValueError, match="multiple of stride"):
        build_targets(np.zeros((0, 17, 3)), 30, 32)
