"""Keypoint orders, limbs and the PAF channel table of the CMU COCO body model.

The network predicts parts in OpenPose's COCO-18 order (with a neck); posecli's
output uses the COCO-17 order of the COCO keypoint task. All indices here are
zero-based.
"""

from __future__ import annotations

import numpy as np

#: The model's part order (heatmap channels 0..17; channel 18 is background).
COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_PARTS = len(COCO18_NAMES)  # 18
NUM_HEATMAPS = NUM_PARTS + 1  # 19: parts + background

#: The COCO keypoint task's order, used in every output file.
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: For each COCO-17 keypoint, its COCO-18 part index (the neck has no COCO-17 slot).
COCO17_FROM_COCO18: np.ndarray = np.array(
    [COCO18_NAMES.index(name) for name in COCO17_NAMES], dtype=np.int64
)

#: The 19 limbs (part A, part B) in the order the parser assembles people.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    (2, 16), (5, 17),
)
NUM_LIMBS = len(LIMBS)  # 19
NUM_PAFS = 2 * NUM_LIMBS  # 38

#: For each limb of LIMBS, its (x, y) channels in the network's 38 PAF outputs.
#: The CMU model does not store PAFs in limb order: this table is its layout.
PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25),
    (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11),
    (28, 29), (30, 31), (34, 35), (32, 33), (36, 37),
    (18, 19), (26, 27),
)

#: The first limbs, which may start a new person; the last two (ear to shoulder)
#: only add parts to people already found.
NUM_SEEDING_LIMBS = 17

def _mirror(names: tuple[str, ...]) -> np.ndarray:
    """For each part name, the index of its left/right mirror (itself when central)."""
    return np.array(
        [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right"))
         for n in names],
        dtype=np.int64,
    )


#: Left/right mirror of COCO-18 parts (for horizontal flips).
COCO18_FLIP: np.ndarray = _mirror(COCO18_NAMES)
#: Left/right mirror of COCO-17 keypoints (for horizontal flips).
COCO17_FLIP: np.ndarray = _mirror(COCO17_NAMES)

#: COCO's skeleton (1-based COCO-17 indices), as in the COCO annotation files.
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13),
    (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3),
    (2, 4), (3, 5), (4, 6), (5, 7),
)

#: COCO's per-keypoint OKS sigmas, in COCO-17 order.
COCO17_SIGMAS: np.ndarray = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
     1.07, 1.07, .87, .87, .89, .89], dtype=np.float64) / 10.0

#: OpenPose's drawing colours for the 18 parts (BGR as OpenPose lists them,
#: stored here as RGB), also used for the limb that ends at that part.
PART_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
    (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
    (255, 0, 255), (255, 0, 170), (255, 0, 85),
)


def coco18_to_coco17(keypoints18: np.ndarray) -> np.ndarray:
    """Reorder (..., 18, K) COCO-18 keypoints to (..., 17, K) COCO-17 (drops the neck)."""
    return keypoints18[..., COCO17_FROM_COCO18, :]
