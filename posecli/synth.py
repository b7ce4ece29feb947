"""Synthetic people: procedurally drawn, articulated figures with exact COCO labels.

Every figure is a kinematic skeleton posed in 3-D (pelvis, spine, neck, head,
arms and legs with joint-angle limits), turned to face any direction, leaned in
the image plane, scaled and placed, then rasterised with vectorised numpy as
shaded capsules (limbs), a convex rounded polygon (torso) and an ellipse (head,
with hair on the side facing away). A per-figure z-buffer resolves the figure's
own parts; figures are painted back to front, and an id map records which
figure owns every pixel. From these the COCO visibility of each keypoint follows:

* ``v = 2``: the keypoint's pixel shows its own figure, at the keypoint's depth;
* ``v = 1``: labelled but hidden (behind another figure, or behind the figure's
  own torso, limbs or head, like the far shoulder of a figure seen in profile);
* ``v = 0``: outside the image, or not labelled (the nose and eyes of a figure
  seen from behind); ``x = y = 0`` then, as in COCO.

Units: pixels, with pixel centres at integer coordinates (column ``x``, row
``y``); a keypoint is inside the image when ``0 <= x <= W - 1`` and
``0 <= y <= H - 1``. Angles are radians. Left/right are anatomical: a figure's
``left_shoulder`` is on the image's right when the figure faces the camera.

Everything is deterministic given the ``numpy.random.Generator`` passed in, and
``generate_dataset`` derives one generator per image and per clip from its seed,
so the same seed writes byte-identical annotation and image files.

Library use (on-the-fly training data)::

    rng = np.random.default_rng(0)
    scene = render_people(rng, 368, 368, n_people=3)
    scene.image      # (368, 368, 3) uint8 RGB
    scene.keypoints  # (3, 17, 3) float64, COCO-17 order, (x, y, v)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import orjson

from . import __version__
from .errors import PoseCliError, UsageError
from .formats import coco_categories, write_atomic
from .skeleton import COCO17_NAMES
from .stills import encode_png

__all__ = [
    "POSE_KINDS",
    "Body",
    "Figure",
    "Limb",
    "Outfit",
    "Pose",
    "Scene",
    "SynthSummary",
    "encode_png",
    "figure_extent",
    "generate_dataset",
    "keypoint_visibility",
    "render_background",
    "render_figures",
    "render_people",
    "sample_body",
    "sample_figures",
    "sample_outfit",
    "sample_pose",
]

_DEG = math.pi / 180.0
GENERATOR = "posecli synth"
MAX_SIZE = 8192
MAX_PEOPLE = 50

# Light direction for the shading: x right, y down, z toward the camera.
_LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])
_AMBIENT = 0.42


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Body:
    """Body proportions in units of standing height (head top to sole = about 1).

    Lengths are bone lengths; ``r_*`` are capsule radii; ``*_half`` are half
    widths (lateral) and ``chest_depth`` the torso's half depth (front to back).
    """

    head_rx: float = 0.055
    head_ry: float = 0.066
    neck: float = 0.045
    torso: float = 0.29
    shoulder_half: float = 0.115
    shoulder_drop: float = 0.025
    hip_half: float = 0.08
    waist_half: float = 0.1
    chest_depth: float = 0.06
    upper_arm: float = 0.175
    forearm: float = 0.15
    hand: float = 0.06
    thigh: float = 0.245
    shin: float = 0.245
    foot: float = 0.085
    r_neck: float = 0.026
    r_upper_arm: float = 0.034
    r_forearm: float = 0.027
    r_hand: float = 0.026
    r_thigh: float = 0.052
    r_shin: float = 0.038
    r_foot: float = 0.022


@dataclass(frozen=True)
class Limb:
    """One arm or leg, in radians.

    ``flex``: forward swing of the upper bone (arm raised forward, hip flexion;
    negative swings back); ``abd``: sideways raise away from the body; ``twist``:
    outward rotation about the upper bone (turns the bent lower bone outward);
    ``bend``: elbow flexion (forearm forward) or knee flexion (shin backward),
    0 = straight.
    """

    flex: float = 0.0
    abd: float = 0.0
    twist: float = 0.0
    bend: float = 0.0


# Joint limits in degrees: (low, high) per Limb field.
_ARM_LIMITS = {"flex": (-60, 180), "abd": (0, 175), "twist": (-70, 100), "bend": (0, 150)}
_LEG_LIMITS = {"flex": (-35, 125), "abd": (-10, 50), "twist": (-30, 40), "bend": (0, 145)}
_POSE_LIMITS = {"roll": (-35, 35), "lean_forward": (-20, 50), "lean_side": (-25, 25),
                "torso_twist": (-35, 35), "head_yaw": (-70, 70), "head_pitch": (-35, 45)}


@dataclass(frozen=True)
class Pose:
    """A figure's pose, in radians.

    ``yaw``: which way the figure faces, 0 = toward the camera, +pi/2 = toward
    the image's right, pi = away; ``roll``: in-plane lean about the pelvis
    (positive turns clockwise on screen); ``lean_forward`` / ``lean_side``
    (toward the figure's left) / ``torso_twist`` (shoulders turned to the
    figure's left) move the torso on the pelvis; ``head_yaw`` (to the figure's
    left) and ``head_pitch`` (down) move the head on the torso.
    """

    yaw: float = 0.0
    roll: float = 0.0
    lean_forward: float = 0.0
    lean_side: float = 0.0
    torso_twist: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    left_arm: Limb = Limb(abd=10 * _DEG, bend=10 * _DEG)
    right_arm: Limb = Limb(abd=10 * _DEG, bend=10 * _DEG)
    left_leg: Limb = Limb(abd=3 * _DEG)
    right_leg: Limb = Limb(abd=3 * _DEG)

    def clipped(self) -> Pose:
        """The pose with every angle clipped to its joint limits (yaw is free)."""
        values = {name: _clip_deg(getattr(self, name), low, high)
                  for name, (low, high) in _POSE_LIMITS.items()}
        for name, limits in (("left_arm", _ARM_LIMITS), ("right_arm", _ARM_LIMITS),
                             ("left_leg", _LEG_LIMITS), ("right_leg", _LEG_LIMITS)):
            limb = getattr(self, name)
            values[name] = Limb(**{key: _clip_deg(getattr(limb, key), low, high)
                                   for key, (low, high) in limits.items()})
        return replace(self, **values)


@dataclass(frozen=True)
class Outfit:
    """RGB colours (0..255) and cut of a figure's clothes."""

    skin: tuple[float, float, float] = (205.0, 160.0, 130.0)
    hair: tuple[float, float, float] = (45.0, 32.0, 22.0)
    shirt: tuple[float, float, float] = (60.0, 110.0, 190.0)
    trousers: tuple[float, float, float] = (50.0, 55.0, 70.0)
    shoes: tuple[float, float, float] = (30.0, 28.0, 26.0)
    long_sleeves: bool = False
    long_trousers: bool = True
    hair_cover: float = 0.45  # how far the hair comes down: 0 bald .. 1 long


@dataclass(frozen=True)
class Figure:
    """One person to draw: ``height`` is the standing height in pixels; ``x``, ``y``
    the pelvis position in pixels."""

    body: Body
    pose: Pose
    outfit: Outfit
    height: float
    x: float
    y: float


@dataclass(frozen=True)
class Scene:
    """A rendered image and its labels.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints: ``(N, 17, 3)`` float64, one row per figure in the order drawn
            (back to front), COCO-17 keypoint order, ``(x, y, v)`` in pixels with
            ``v`` 0, 1 or 2 (see the module's docstring); ``x = y = 0`` where v = 0.
        areas: ``(N,)`` int64 count of the pixels each figure owns in the image
            (0: the figure is entirely hidden or outside the image).
        bboxes: ``(N, 4)`` float64 ``x, y, w, h`` of those pixels (a pixel's
            extent counts 1), zeros when the area is 0.
        id_map: ``(H, W)`` int32, 0 for background, ``i + 1`` where figure ``i``
            is the front-most.
    """

    image: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray
    bboxes: np.ndarray
    id_map: np.ndarray


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate_dataset`` wrote: counts and paths."""

    out_dir: Path
    annotations: Path
    images: int
    people: int
    videos: tuple[Path, ...] = ()
    video_annotations: tuple[Path, ...] = ()
    video_frames: int = 0
    video_people: int = 0
    video_codec: str | None = None


def _clip_deg(value: float, low: float, high: float) -> float:
    return float(min(max(value, low * _DEG), high * _DEG))


# --------------------------------------------------------------------------- sampling


def sample_body(rng: np.random.Generator) -> Body:
    """Random proportions: build (radii), per-bone jitter, sometimes child-like."""
    base = Body()
    build = rng.uniform(0.8, 1.3)
    child = rng.random() < 0.15
    values: dict[str, float] = {}
    for name in Body.__dataclass_fields__:
        value = getattr(base, name) * rng.uniform(0.92, 1.08)
        if name.startswith("r_") or name in ("hip_half", "waist_half", "chest_depth"):
            value *= build
        if child:
            if name in ("head_rx", "head_ry"):
                value *= 1.3
            elif name in ("upper_arm", "forearm", "thigh", "shin", "torso", "shoulder_half"):
                value *= 0.87
        values[name] = float(value)
    values["shoulder_half"] *= rng.uniform(0.9, 1.12)
    return Body(**values)


def _limb(flex: float = 0.0, abd: float = 0.0, twist: float = 0.0, bend: float = 0.0) -> Limb:
    """A Limb from degrees."""
    return Limb(flex * _DEG, abd * _DEG, twist * _DEG, bend * _DEG)


POSE_KINDS = ("stand", "walk", "run", "arms_up", "wave", "arms_out", "sit", "crouch",
              "random")
_KIND_WEIGHTS = np.array([0.2, 0.2, 0.08, 0.1, 0.1, 0.07, 0.1, 0.06, 0.09])


def sample_pose(rng: np.random.Generator, kind: str | None = None) -> Pose:
    """A random plausible pose of ``kind`` (one of POSE_KINDS; None picks one)."""
    if kind is None:
        kind = POSE_KINDS[int(rng.choice(len(POSE_KINDS), p=_KIND_WEIGHTS))]
    u = rng.uniform

    def hanging_arm() -> Limb:
        return _limb(u(-15, 25), u(4, 22), u(-20, 30), u(5, 45))

    def standing_leg() -> Limb:
        return _limb(u(-6, 10), u(0, 10), u(-5, 20), u(0, 12))

    arms = [hanging_arm(), hanging_arm()]
    legs = [standing_leg(), standing_leg()]
    lean_forward, profile_bias = u(-5, 10), False
    if kind in ("walk", "run"):
        phase = u(0, 2 * math.pi)
        swing = u(14, 30) if kind == "walk" else u(30, 55)
        knee = (0, 45) if kind == "walk" else (20, 110)
        elbow = (10, 45) if kind == "walk" else (65, 105)
        for side, sign in ((0, 1.0), (1, -1.0)):
            legs[side] = _limb(sign * swing * math.sin(phase) + u(-4, 4), u(0, 8), u(-5, 15),
                               u(*knee))
            arms[side] = _limb(-sign * 0.9 * swing * math.sin(phase) + u(-5, 5), u(3, 15),
                               u(-10, 20), u(*elbow))
        lean_forward = u(-3, 8) if kind == "walk" else u(5, 22)
        profile_bias = True
    elif kind == "arms_up":
        for side in (0, 1) if rng.random() < 0.7 else (int(rng.integers(2)),):
            arms[side] = _limb(u(-10, 40), u(120, 172), u(0, 60), u(0, 45))
    elif kind == "wave":
        side = int(rng.integers(2))
        arms[side] = _limb(u(-15, 20), u(70, 115), u(65, 100), u(30, 120))
    elif kind == "arms_out":
        arms = [_limb(u(-20, 40), u(65, 105), u(-20, 40), u(0, 40)) for _ in range(2)]
        legs = [_limb(u(-5, 10), u(5, 25), u(0, 20), u(0, 10)) for _ in range(2)]
    elif kind == "sit":
        legs = [_limb(u(65, 100), u(3, 22), u(-5, 20), u(60, 105)) for _ in range(2)]
        arms = [_limb(u(10, 60), u(5, 25), u(-10, 30), u(30, 95)) for _ in range(2)]
        lean_forward = u(-5, 20)
    elif kind == "crouch":
        legs = [_limb(u(80, 120), u(8, 30), u(0, 25), u(95, 140)) for _ in range(2)]
        arms = [_limb(u(20, 80), u(5, 30), u(-10, 30), u(20, 110)) for _ in range(2)]
        lean_forward = u(15, 40)
    elif kind == "random":
        arms = [_limb(*(u(lo, hi) for lo, hi in _ARM_LIMITS.values())) for _ in range(2)]
        legs = [_limb(u(-30, 90), u(-5, 35), u(-20, 30), u(0, 100)) for _ in range(2)]
        lean_forward = u(-10, 30)
    elif kind != "stand":
        raise ValueError(f"unknown pose kind {kind!r}")
    if profile_bias and rng.random() < 0.65:
        yaw = float(rng.choice([-1.0, 1.0])) * u(60, 120)
    else:
        mode = rng.random()
        if mode < 0.5:
            yaw = u(-30, 30)
        elif mode < 0.6:
            yaw = 180 + u(-30, 30)
        else:
            yaw = u(-180, 180)
    roll = rng.normal(0, 6) if rng.random() < 0.85 else u(-30, 30)
    return Pose(
        yaw=yaw * _DEG, roll=roll * _DEG, lean_forward=lean_forward * _DEG,
        lean_side=u(-8, 8) * _DEG, torso_twist=u(-15, 15) * _DEG,
        head_yaw=u(-40, 40) * _DEG, head_pitch=u(-15, 25) * _DEG,
        left_arm=arms[0], right_arm=arms[1], left_leg=legs[0], right_leg=legs[1],
    ).clipped()


_SKIN_LIGHT = np.array([240.0, 206.0, 178.0])
_SKIN_DARK = np.array([78.0, 50.0, 36.0])
_HAIR = np.array([[22, 16, 12], [55, 38, 24], [105, 70, 40], [190, 160, 100],
                  [150, 150, 150], [125, 55, 25], [35, 30, 30]], dtype=np.float64)
_TROUSERS = np.array([[40, 55, 95], [30, 30, 35], [70, 70, 75], [150, 130, 95],
                      [95, 80, 60], [20, 35, 60]], dtype=np.float64)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (all 0..1) to RGB 0..255."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return 255.0 * (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def _tuple3(colour: np.ndarray) -> tuple[float, float, float]:
    c = np.clip(colour, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Random skin tone, hair, shirt, trousers and shoes."""
    skin = _SKIN_LIGHT + rng.random() * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 6, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
    shirt = _hsv(rng.random(), rng.uniform(0.15, 0.9), rng.uniform(0.25, 0.97))
    if rng.random() < 0.6:
        trousers = _TROUSERS[rng.integers(len(_TROUSERS))] + rng.normal(0, 10, 3)
    else:
        trousers = _hsv(rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.15, 0.8))
    shoes = _hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.05, 0.5))
    return Outfit(skin=_tuple3(skin), hair=_tuple3(hair), shirt=_tuple3(shirt),
                  trousers=_tuple3(trousers), shoes=_tuple3(shoes),
                  long_sleeves=bool(rng.random() < 0.45),
                  long_trousers=bool(rng.random() < 0.75),
                  hair_cover=float(rng.uniform(0.0, 1.0) if rng.random() < 0.93 else -1.0))


def sample_figures(rng: np.random.Generator, width: int, height: int,
                   n_people: int) -> list[Figure]:
    """``n_people`` random figures placed in a ``width`` x ``height`` image, sorted
    back to front (by the bottom of each figure, as on a ground plane).

    Figure heights are log-uniform from 15% to 90% of the image height; figures
    are spread over horizontal slots, and most lie wholly inside the image.
    """
    slots = rng.permutation(n_people)
    figures: list[tuple[float, Figure]] = []
    for i in range(n_people):
        body, pose, outfit = sample_body(rng), sample_pose(rng), sample_outfit(rng)
        size = height * math.exp(rng.uniform(math.log(0.15), math.log(0.9)))
        figure = Figure(body, pose, outfit, size, 0.0, 0.0)
        x0, y0, x1, y1 = figure_extent(figure)
        centre = (slots[i] + rng.uniform(0.2, 0.8)) / n_people * width
        x = _place(rng, centre, x0, x1, width)
        y = _place(rng, rng.uniform(0.3, 0.7) * height, y0, y1, height)
        figures.append((y + y1, replace(figure, x=x, y=y)))
    figures.sort(key=lambda item: item[0])
    return [figure for _, figure in figures]


def _place(rng: np.random.Generator, wanted: float, low: float, high: float,
           size: int) -> float:
    """An anchor near ``wanted`` so that [anchor+low, anchor+high] is inside [0, size]
    (85% of the time, when it fits), else anywhere that keeps the anchor inside."""
    if high - low <= size - 2 and rng.random() < 0.85:
        return float(min(max(wanted, 1.0 - low), size - 2.0 - high))
    if high - low > size - 2 and rng.random() < 0.85:
        # Bigger than the image: keep it centred on the image with a little play.
        middle = (size - 1) / 2 - (low + high) / 2
        return float(middle + rng.uniform(-0.1, 0.1) * size)
    return float(min(max(wanted, 0.1 * size), 0.9 * size))


# --------------------------------------------------------------------------- geometry


def _rot_a(t: float) -> np.ndarray:
    """About the lateral axis: the down vector swings forward, e_v -> (0, cos t, sin t)."""
    c, s = math.cos(t), math.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_b(t: float) -> np.ndarray:
    """About the forward axis: the down vector swings to the left, e_v -> (sin t, cos t, 0)."""
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_v(t: float) -> np.ndarray:
    """About the vertical axis: the forward vector turns to the left, e_b -> (sin t, 0, cos t)."""
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


_DOWN = np.array([0.0, 1.0, 0.0])

# Face points on the unit head sphere, in the head frame (left, down, forward).
_FACE = {
    "nose": np.array([0.0, 0.3, 0.95]),
    "left_eye": np.array([0.38, -0.05, 0.92]),
    "right_eye": np.array([-0.38, -0.05, 0.92]),
    "left_ear": np.array([1.0, 0.05, -0.05]),
    "right_ear": np.array([-1.0, 0.05, -0.05]),
}
_FACE_NAMES = tuple(_FACE)


@dataclass
class _Geometry:
    """A figure in image space: points (x, y, z) in pixels, z away from the camera."""

    points: dict[str, np.ndarray]
    radii: dict[str, float]
    face_normals: dict[str, np.ndarray]
    head_forward: np.ndarray
    head_up: np.ndarray
    head_axes: tuple[float, float]
    torso_hull: np.ndarray
    torso_depth: float
    torso_half_width: float
    side_away: dict[str, float]
    scale: float


def _figure_geometry(figure: Figure) -> _Geometry:
    body, pose = figure.body, figure.pose
    pts: dict[str, np.ndarray] = {}
    dirs: dict[str, np.ndarray] = {}
    # Body frame: a = the figure's left, v = down, b = forward; the pelvis at 0.
    torso_rot = _rot_b(pose.lean_side) @ _rot_a(-pose.lean_forward) @ _rot_v(pose.torso_twist)
    neck = torso_rot @ np.array([0.0, -body.torso, 0.0])
    pts["pelvis"] = np.zeros(3)
    pts["neck"] = neck
    head_rot = torso_rot @ _rot_v(pose.head_yaw) @ _rot_a(-pose.head_pitch)
    neck_top = neck + torso_rot @ np.array([0.0, -body.neck, 0.0])
    head_centre = neck_top + head_rot @ np.array([0.0, -0.85 * body.head_ry, 0.0])
    pts["head"] = head_centre
    pts["neck_top"] = neck_top
    head_scale = np.array([body.head_rx, body.head_ry, body.head_rx])
    for name, direction in _FACE.items():
        unit = direction / np.linalg.norm(direction)
        out = 1.08 if name == "nose" else 1.0
        pts[name] = head_centre + head_rot @ (unit * head_scale * out)
        dirs[name] = head_rot @ unit
    dirs["head_forward"] = head_rot @ np.array([0.0, 0.0, 1.0])
    dirs["head_up"] = head_rot @ np.array([0.0, -1.0, 0.0])
    # The figure's left, at the shoulders and at the hips: which side is turned away.
    dirs["left_shoulder"] = torso_rot @ np.array([1.0, 0.0, 0.0])
    dirs["left_hip"] = np.array([1.0, 0.0, 0.0])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm: Limb = getattr(pose, f"{side}_arm")
        shoulder = neck + torso_rot @ np.array([sign * body.shoulder_half, body.shoulder_drop, 0])
        upper = torso_rot @ _rot_b(sign * arm.abd) @ _rot_a(arm.flex) @ _rot_v(sign * arm.twist)
        elbow = shoulder + upper @ _DOWN * body.upper_arm
        fore = upper @ _rot_a(arm.bend)
        wrist = elbow + fore @ _DOWN * body.forearm
        pts[f"{side}_shoulder"], pts[f"{side}_elbow"], pts[f"{side}_wrist"] = (
            shoulder, elbow, wrist)
        pts[f"{side}_hand"] = wrist + fore @ _DOWN * body.hand
        leg: Limb = getattr(pose, f"{side}_leg")
        hip = np.array([sign * body.hip_half, 0.0, 0.0])
        thigh = _rot_b(sign * leg.abd) @ _rot_a(leg.flex) @ _rot_v(sign * leg.twist)
        knee = hip + thigh @ _DOWN * body.thigh
        shin = thigh @ _rot_a(-leg.bend)
        ankle = knee + shin @ _DOWN * body.shin
        pts[f"{side}_hip"], pts[f"{side}_knee"], pts[f"{side}_ankle"] = hip, knee, ankle
        # The foot: square to the shin, but kept between pointing 45 degrees down and
        # a little up (pushing off or sitting, the ankle flexes).
        ankle_angle = 82 * _DEG
        sole = leg.flex - leg.bend + ankle_angle
        ankle_angle += min(max(sole, 45 * _DEG), 100 * _DEG) - sole
        pts[f"{side}_toe"] = ankle + shin @ _rot_a(ankle_angle) @ _DOWN * body.foot
    # Torso: rings of points round the spine at shoulder, waist and hip level.
    angles = np.arange(8) * (math.pi / 4)
    ring = np.stack([np.cos(angles), np.zeros(8), np.sin(angles)], axis=1)
    torso_points = []
    for level, half_width, depth in (
            (0.0, body.shoulder_half - 0.25 * body.r_upper_arm, body.chest_depth * 0.9),
            (0.45, body.waist_half * 0.92, body.chest_depth),
            (1.0, body.hip_half + 0.45 * body.r_thigh, body.chest_depth * 0.95)):
        centre = (neck + torso_rot @ np.array([0, body.shoulder_drop * 0.8, 0])) * (1 - level)
        if level == 1.0:
            centre = np.array([0.0, 0.35 * body.r_thigh, 0.0])
            rot = np.eye(3)
        else:
            rot = torso_rot
        torso_points.append(centre + (ring * np.array([half_width, 0.0, depth])) @ rot.T)
    torso_3d = np.concatenate(torso_points)

    # To the camera: yaw about the vertical axis, orthographic, then roll in-plane.
    cos_y, sin_y = math.cos(pose.yaw), math.sin(pose.yaw)
    cos_r, sin_r = math.cos(pose.roll), math.sin(pose.roll)
    scale = figure.height

    def to_camera(p: np.ndarray, translate: bool = True) -> np.ndarray:
        a, v, b = p[..., 0], p[..., 1], p[..., 2]
        x = a * cos_y + b * sin_y
        z = a * sin_y - b * cos_y
        out = np.stack([cos_r * x - sin_r * v, sin_r * x + cos_r * v, z], axis=-1)
        if translate:
            out = out * scale + np.array([figure.x, figure.y, 0.0])
        return out

    names = list(pts)
    moved = to_camera(np.concatenate([np.array([pts[n] for n in names]), torso_3d]))
    points = dict(zip(names, moved[:len(names)]))
    hull = _convex_hull(moved[len(names):, :2])
    dir_names = list(dirs)
    turned = dict(zip(dir_names, to_camera(np.array([dirs[n] for n in dir_names]),
                                           translate=False)))
    normals = {name: turned[name] for name in _FACE_NAMES}
    radii = {
        "neck": body.r_neck, "upper_arm": body.r_upper_arm, "forearm": body.r_forearm,
        "hand": body.r_hand, "thigh": body.r_thigh, "shin": body.r_shin, "foot": body.r_foot,
    }
    return _Geometry(
        points=points,
        radii={name: max(r * scale, 1.0) for name, r in radii.items()},
        face_normals=normals,
        side_away={"left_shoulder": turned["left_shoulder"][2],
                   "right_shoulder": -turned["left_shoulder"][2],
                   "left_hip": turned["left_hip"][2], "right_hip": -turned["left_hip"][2]},
        head_forward=turned["head_forward"],
        head_up=turned["head_up"],
        head_axes=(max(body.head_rx * scale, 1.5), max(body.head_ry * scale, 1.8)),
        torso_hull=hull,
        torso_depth=scale * (body.chest_depth * abs(cos_y) + body.waist_half * abs(sin_y)),
        torso_half_width=scale * (body.waist_half * abs(cos_y) + body.chest_depth * abs(sin_y)),
        scale=scale,
    )


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise (in x-right, y-up terms) convex hull of 2-D points."""
    pts = sorted(set(map(tuple, np.round(points, 6).tolist())))
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64)

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def figure_extent(figure: Figure) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` pixel bounds of everything drawn for the figure."""
    geo = _figure_geometry(figure)
    xy = np.array([p[:2] for p in geo.points.values()])
    pad = max(geo.radii["thigh"], geo.head_axes[1])
    low = np.minimum(xy.min(0) - pad, geo.torso_hull.min(0))
    high = np.maximum(xy.max(0) + pad, geo.torso_hull.max(0))
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


# --------------------------------------------------------------------------- raster


class _Canvas:
    """Float RGB image, owner-id map and a z-buffer, painted primitive by primitive."""

    def __init__(self, background: np.ndarray) -> None:
        self.rgb = np.array(background, dtype=np.float32, copy=True)
        self.h, self.w = self.rgb.shape[:2]
        self.ids = np.zeros((self.h, self.w), dtype=np.int32)
        self.zbuf = np.full((self.h, self.w), np.inf, dtype=np.float32)
        self.extents: dict[int, tuple[int, int, int, int]] = {}  # owner -> painted region

    def region(self, x0: float, x1: float, y0: float,
               y1: float) -> tuple[int, int, int, int] | None:
        """Rows/columns [ya, yb) x [xa, xb) covering [x0, x1] x [y0, y1], clipped."""
        xa, xb = max(math.floor(x0), 0), min(math.ceil(x1) + 1, self.w)
        ya, yb = max(math.floor(y0), 0), min(math.ceil(y1) + 1, self.h)
        if xa >= xb or ya >= yb:
            return None
        return ya, yb, xa, xb

    def paint(self, region: tuple[int, int, int, int], alpha: np.ndarray, z: np.ndarray | None,
              colour: np.ndarray, owner: int) -> None:
        """Blend ``colour`` with coverage ``alpha`` where ``z`` is nearer than the z-buffer;
        pixels covered at least half take the owner id and the depth."""
        ya, yb, xa, xb = region
        rgb = self.rgb[ya:yb, xa:xb]
        if z is None:
            rgb += alpha[..., None] * (colour - rgb)
            return
        zbuf = self.zbuf[ya:yb, xa:xb]
        passed = z < zbuf
        a = np.where(passed, alpha, np.float32(0.0))
        rgb += a[..., None] * (colour - rgb)
        solid = passed & (alpha >= 0.5)
        zbuf[solid] = z[solid]
        self.ids[ya:yb, xa:xb][solid] = owner
        old = self.extents.get(owner, region)
        self.extents[owner] = (min(old[0], ya), max(old[1], yb), min(old[2], xa), max(old[3], xb))


def _grid(region: tuple[int, int, int, int], ox: float, oy: float) -> tuple[np.ndarray, np.ndarray]:
    ya, yb, xa, xb = region
    return (np.arange(xa, xb, dtype=np.float32)[None, :] - np.float32(ox),
            np.arange(ya, yb, dtype=np.float32)[:, None] - np.float32(oy))


def _shade(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray, light: np.ndarray) -> np.ndarray:
    lit = nx * np.float32(light[0]) + ny * np.float32(light[1]) + nz * np.float32(light[2])
    return np.float32(_AMBIENT) + np.float32(1.0 - _AMBIENT) * np.clip(lit, 0.0, 1.0)


def _capsule(canvas: _Canvas, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float,
             colour: Sequence[float], owner: int, light: np.ndarray,
             depth: bool = True) -> None:
    """A tapered capsule from p0 (radius r0) to p1 (radius r1), shaded as a cylinder.

    ``p0``/``p1`` are (x, y, z); the surface bulges toward the camera by the radius.
    """
    r_max = max(r0, r1) + 1.0
    region = canvas.region(min(p0[0], p1[0]) - r_max, max(p0[0], p1[0]) + r_max,
                           min(p0[1], p1[1]) - r_max, max(p0[1], p1[1]) + r_max)
    if region is None:
        return
    gx, gy = _grid(region, p0[0], p0[1])
    dx, dy = np.float32(p1[0] - p0[0]), np.float32(p1[1] - p0[1])
    length2 = float(dx * dx + dy * dy)
    if length2 > 1e-9:
        t = np.clip((gx * dx + gy * dy) / np.float32(length2), 0.0, 1.0)
    else:
        t = np.zeros(np.broadcast_shapes(gx.shape, gy.shape), dtype=np.float32)
    ox, oy = gx - t * dx, gy - t * dy
    dist = np.sqrt(ox * ox + oy * oy)
    r = np.float32(r0) + np.float32(r1 - r0) * t
    alpha = np.clip(r - dist + np.float32(0.5), 0.0, 1.0)
    nx, ny = ox / r, oy / r
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    shade = _shade(nx, ny, nz, light)
    col = np.asarray(colour, dtype=np.float32) * shade[..., None]
    z = np.float32(p0[2]) + np.float32(p1[2] - p0[2]) * t - r * nz if depth else None
    canvas.paint(region, alpha, z, col, owner)


def _head(canvas: _Canvas, geo: _Geometry, outfit: Outfit, owner: int,
          light: np.ndarray) -> None:
    """The head: an ellipse shaded as an ellipsoid, hair where the surface faces away
    from the face or up (as far down as ``outfit.hair_cover``)."""
    centre = geo.points["head"]
    rx, ry = geo.head_axes
    up = geo.head_up
    norm = math.hypot(up[0], up[1])
    if norm < 1e-6:
        sin_t, cos_t = 0.0, 1.0
    else:
        sin_t, cos_t = up[0] / norm, -up[1] / norm
    reach = max(rx, ry) + 1.0
    region = canvas.region(centre[0] - reach, centre[0] + reach,
                           centre[1] - reach, centre[1] + reach)
    if region is None:
        return
    gx, gy = _grid(region, centre[0], centre[1])
    qx = (gx * np.float32(cos_t) + gy * np.float32(sin_t)) / np.float32(rx)
    qy = (-gx * np.float32(sin_t) + gy * np.float32(cos_t)) / np.float32(ry)
    q2 = qx * qx + qy * qy
    q = np.sqrt(q2)
    alpha = np.clip((1.0 - q) * np.float32(min(rx, ry)) + np.float32(0.5), 0.0, 1.0)
    nz = np.sqrt(np.clip(1.0 - q2, 0.0, 1.0))
    inside = np.minimum(q, 1.0)
    scale = np.where(q > 1e-6, inside / np.maximum(q, 1e-6), 0.0).astype(np.float32)
    qx, qy = qx * scale, qy * scale
    nx = qx * np.float32(cos_t) - qy * np.float32(sin_t)
    ny = qx * np.float32(sin_t) + qy * np.float32(cos_t)
    shade = _shade(nx, ny, nz, light)
    colour = np.broadcast_to(np.asarray(outfit.skin, dtype=np.float32), nx.shape + (3,))
    if outfit.hair_cover >= 0:
        forward, head_up = geo.head_forward, geo.head_up
        facing = nx * np.float32(forward[0]) + ny * np.float32(forward[1]) - nz * np.float32(
            forward[2])
        upward = nx * np.float32(head_up[0]) + ny * np.float32(head_up[1]) - nz * np.float32(
            head_up[2])
        cover = outfit.hair_cover
        back = (facing < np.float32(-0.05)) & (upward > np.float32(-0.55 - 0.4 * cover))
        hair = back | (upward > np.float32(0.62 - 0.22 * cover))
        colour = np.where(hair[..., None], np.asarray(outfit.hair, dtype=np.float32), colour)
    z = np.float32(centre[2]) - np.float32(rx) * nz
    canvas.paint(region, alpha, z, colour * shade[..., None], owner)


def _torso(canvas: _Canvas, geo: _Geometry, colour: Sequence[float], owner: int,
           light: np.ndarray) -> None:
    """The torso: the rounded convex hull of the chest/waist/hip rings."""
    hull = geo.torso_hull
    round_r = max(0.012 * geo.scale, 0.8)
    region = canvas.region(hull[:, 0].min() - round_r - 1, hull[:, 0].max() + round_r + 1,
                           hull[:, 1].min() - round_r - 1, hull[:, 1].max() + round_r + 1)
    if region is None or len(hull) < 3:
        return
    base = geo.points["pelvis"]
    top = (geo.points["left_shoulder"] + geo.points["right_shoulder"]) / 2
    gx, gy = _grid(region, 0.0, 0.0)
    dist = None
    inside = None
    count = len(hull)
    for i in range(count):
        a, b = hull[i], hull[(i + 1) % count]
        ex, ey = np.float32(b[0] - a[0]), np.float32(b[1] - a[1])
        px, py = gx - np.float32(a[0]), gy - np.float32(a[1])
        length2 = float(ex * ex + ey * ey)
        t = np.clip((px * ex + py * ey) / np.float32(max(length2, 1e-9)), 0.0, 1.0)
        dx, dy = px - t * ex, py - t * ey
        d = dx * dx + dy * dy
        side = (ex * py - ey * px) >= 0
        dist = d if dist is None else np.minimum(dist, d)
        inside = side if inside is None else inside & side
    sdf = np.where(inside, -np.sqrt(dist), np.sqrt(dist)) - np.float32(round_r)
    alpha = np.clip(np.float32(0.5) - sdf, 0.0, 1.0)
    # Shading and depth about the spine axis: an elliptic cylinder.
    sx, sy = np.float32(top[0] - base[0]), np.float32(top[1] - base[1])
    px, py = gx - np.float32(base[0]), gy - np.float32(base[1])
    length2 = float(sx * sx + sy * sy)
    t = np.clip((px * sx + py * sy) / np.float32(max(length2, 1e-9)), 0.0, 1.0)
    ox, oy = px - t * sx, py - t * sy
    rim = np.float32(max(0.5 * geo.torso_half_width, 1.0))
    e = np.sqrt(np.clip(-sdf / rim, 0.0, 1.0))
    off = np.sqrt(ox * ox + oy * oy) + np.float32(1e-6)
    lateral = np.sqrt(np.clip(1.0 - e * e, 0.0, 1.0)) / off
    shade = _shade(ox * lateral, oy * lateral, e, light)
    z = np.float32(base[2]) + np.float32(top[2] - base[2]) * t - np.float32(geo.torso_depth) * e
    # The shirt's hem wins over the tops of the thighs (no saw-tooth where they meet).
    z -= np.float32(_HEM * geo.scale) * np.clip(1.0 - 2.5 * t, 0.0, 1.0)
    col = np.asarray(colour, dtype=np.float32) * shade[..., None]
    canvas.paint(region, alpha, z, col, owner)


def _draw_figure(canvas: _Canvas, figure: Figure, geo: _Geometry, owner: int,
                 light: np.ndarray) -> None:
    """All parts of one figure into the canvas, far parts first, with a fresh z-buffer."""
    canvas.zbuf.fill(np.inf)
    p, r, o = geo.points, geo.radii, figure.outfit
    draws: list[tuple[float, Callable[[], None]]] = []

    def capsule(a: str, b: str, ra: float, rb: float, colour: Sequence[float]) -> None:
        def draw() -> None:
            _capsule(canvas, p[a], p[b], ra, rb, colour, owner, light)
        draws.append(((p[a][2] + p[b][2]) / 2, draw))

    for side in ("left", "right"):
        capsule(f"{side}_shoulder", f"{side}_elbow", r["upper_arm"] * 1.15, r["upper_arm"] * 0.9,
                o.shirt)
        capsule(f"{side}_elbow", f"{side}_wrist", r["forearm"], r["forearm"] * 0.8,
                o.shirt if o.long_sleeves else o.skin)
        capsule(f"{side}_wrist", f"{side}_hand", r["hand"] * 0.85, r["hand"], o.skin)
        capsule(f"{side}_hip", f"{side}_knee", r["thigh"], r["thigh"] * 0.78, o.trousers)
        capsule(f"{side}_knee", f"{side}_ankle", r["shin"], r["shin"] * 0.75,
                o.trousers if o.long_trousers else o.skin)
        capsule(f"{side}_ankle", f"{side}_toe", r["foot"], r["foot"], o.shoes)
    capsule("neck", "neck_top", r["neck"], r["neck"], o.skin)
    draws.append((float(p["pelvis"][2] + p["neck"][2]) / 2,
                  lambda: _torso(canvas, geo, o.shirt, owner, light)))
    draws.append((float(p["head"][2]), lambda: _head(canvas, geo, o, owner, light)))
    rx = geo.head_axes[0]
    if rx >= 3.0:  # a nose bump: a profile shows it
        nose = p["nose"] - np.array([0.0, 0.0, 0.05 * rx])
        nose_r = 0.2 * rx

        def draw_nose() -> None:
            _capsule(canvas, nose, nose, nose_r, nose_r, o.skin, owner, light)
        draws.append((float(nose[2]), draw_nose))
    if rx >= 5.0:  # eyes, when the head is big enough to show them
        eye_r = max(0.13 * rx, 0.8)
        for name in ("left_eye", "right_eye"):
            eye = p[name] - np.array([0.0, 0.0, 0.15 * rx])

            def draw_eye(eye: np.ndarray = eye) -> None:
                _capsule(canvas, eye, eye, eye_r, eye_r, (25.0, 20.0, 20.0), owner, light)
            draws.append((float(eye[2]), draw_eye))
    draws.sort(key=lambda item: -item[0])
    for _, draw in draws:
        draw()


# The shirt's hem is drawn this much (in heights) nearer than the thighs it overlaps.
_HEM = 0.04
# A shoulder or hip is hidden behind the torso when its side turns this far away
# (the z component of the figure's lateral direction on that side).
_SIDE_AWAY = 0.75
# Self-occlusion tolerance per COCO-17 keypoint: the radius of the part it sits in.
_JOINT_PART = {"shoulder": "upper_arm", "elbow": "upper_arm", "wrist": "forearm",
               "hip": "thigh", "knee": "thigh", "ankle": "shin"}


def _self_visible(canvas: _Canvas, geo: _Geometry, owner: int) -> tuple[np.ndarray, np.ndarray]:
    """For each COCO-17 keypoint, right after drawing its figure: whether it is labelled,
    and whether its own figure shows it (nothing of the figure in front of it)."""
    xyz = np.array([geo.points[name] for name in COCO17_NAMES])
    labelled = np.ones(len(COCO17_NAMES), dtype=bool)
    hidden = np.zeros(len(COCO17_NAMES), dtype=bool)
    tol = np.zeros(len(COCO17_NAMES))
    rx = geo.head_axes[0]
    nose_away = geo.face_normals["nose"][2]
    for k, name in enumerate(COCO17_NAMES):
        if name in _FACE:
            normal_away = geo.face_normals[name][2]
            if normal_away > (0.4 if name == "nose" else 0.12):
                hidden[k] = True
                # Seen from behind: the nose and eyes are not labelled (as in COCO).
                if name in ("nose", "left_eye", "right_eye") and nose_away > 0.45:
                    labelled[k] = False
            tol[k] = 0.45 * rx + 1.0
        else:
            joint = name.split("_", 1)[1]
            tol[k] = geo.radii[_JOINT_PART[joint]] + 0.03 * geo.scale + 1.0
            if joint in ("shoulder", "hip"):
                # Joints of the torso: its own bulk never hides them, but the far side
                # of a figure turned well away (past ~50 degrees from edge-on) is hidden.
                tol[k] += geo.torso_depth + _HEM * geo.scale
                hidden[k] = geo.side_away[name] > _SIDE_AWAY
    col, row, inside = _pixels(xyz[:, :2], canvas.w, canvas.h)
    own = np.zeros(len(xyz), dtype=bool)
    own[inside] = canvas.ids[row[inside], col[inside]] == owner
    front = np.zeros(len(xyz), dtype=bool)
    front[inside] = canvas.zbuf[row[inside], col[inside]] >= xyz[inside, 2] - tol[inside]
    hidden |= ~(own & front)
    return labelled, hidden


def _pixels(xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pixel (column, row) of each point, and whether the point is inside."""
    x, y = xy[:, 0], xy[:, 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    col = np.clip(np.rint(x), 0, width - 1).astype(np.int64)
    row = np.clip(np.rint(y), 0, height - 1).astype(np.int64)
    return col, row, inside


def keypoint_visibility(xy: np.ndarray, figure_id: int, id_map: np.ndarray, *,
                        labelled: np.ndarray | None = None,
                        self_hidden: np.ndarray | None = None) -> np.ndarray:
    """COCO visibility flags of one figure's keypoints from the final id map.

    Args:
        xy: ``(K, 2)`` keypoint positions in pixels (pixel centres at integers).
        figure_id: the figure's id in ``id_map``.
        id_map: ``(H, W)`` integer map of which figure shows at each pixel.
        labelled: ``(K,)`` bool, False for keypoints that get no label (default all).
        self_hidden: ``(K,)`` bool, True where the figure's own parts hide the
            keypoint (default none).

    Returns:
        ``(K,)`` int64: 0 outside the image or unlabelled, 2 where the keypoint's
        nearest pixel shows ``figure_id`` and the figure does not hide it, else 1.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    height, width = id_map.shape
    col, row, inside = _pixels(xy, width, height)
    if labelled is not None:
        inside &= np.asarray(labelled, dtype=bool)
    shown = id_map[row, col] == figure_id
    if self_hidden is not None:
        shown &= ~np.asarray(self_hidden, dtype=bool)
    return np.where(inside, np.where(shown, 2, 1), 0).astype(np.int64)


def render_figures(background: np.ndarray, figures: Sequence[Figure], *,
                   light: Sequence[float] | None = None, noise: float = 0.0,
                   rng: np.random.Generator | None = None) -> Scene:
    """Draw ``figures`` in the given order (back to front) over ``background``.

    Args:
        background: ``(H, W, 3)`` RGB, uint8 or float 0..255.
        figures: what to draw; figure ``i`` gets id ``i + 1`` in ``Scene.id_map``.
        light: light direction (x right, y down, z toward the camera); default
            from the upper left.
        noise: standard deviation of uniform pixel noise added at the end
            (needs ``rng``).
    """
    canvas = _Canvas(background)
    light_dir = _LIGHT if light is None else np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    states = []
    for index, figure in enumerate(figures):
        geo = _figure_geometry(figure)
        _draw_figure(canvas, figure, geo, index + 1, light_dir)
        states.append((geo, *_self_visible(canvas, geo, index + 1)))
    keypoints = np.zeros((len(figures), len(COCO17_NAMES), 3))
    areas = np.zeros(len(figures), dtype=np.int64)
    bboxes = np.zeros((len(figures), 4))
    for index, (geo, labelled, hidden) in enumerate(states):
        xy = np.array([geo.points[name][:2] for name in COCO17_NAMES])
        v = keypoint_visibility(xy, index + 1, canvas.ids, labelled=labelled, self_hidden=hidden)
        keypoints[index, :, :2] = np.where(v[:, None] > 0, xy, 0.0)
        keypoints[index, :, 2] = v
        if index + 1 not in canvas.extents:
            continue
        ya, yb, xa, xb = canvas.extents[index + 1]
        rows, cols = np.nonzero(canvas.ids[ya:yb, xa:xb] == index + 1)
        if len(rows):
            areas[index] = len(rows)
            bboxes[index] = (xa + cols.min(), ya + rows.min(), cols.max() - cols.min() + 1,
                             rows.max() - rows.min() + 1)
    rgb = canvas.rgb
    if noise > 0:
        if rng is None:
            raise ValueError("noise needs an rng")
        # Uniform noise of standard deviation ``noise`` (cheaper than Gaussian).
        k = max(round(noise * math.sqrt(3.0)), 1)
        rgb = rgb + rng.integers(-k, k + 1, rgb.shape, dtype=np.int16).astype(np.float32)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return Scene(image=image, keypoints=keypoints, areas=areas, bboxes=bboxes, id_map=canvas.ids)


# --------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int,
                  amplitude: float) -> np.ndarray:
    """Bilinearly upsampled random grid: (H, W, 3) float32 value noise."""
    gh = max(2, round(cells * height / max(width, height)) + 1)
    gw = max(2, round(cells * width / max(width, height)) + 1)
    grid = rng.normal(0.0, amplitude, (gh, gw, 3)).astype(np.float32)
    return _upsample(grid, width, height)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.95)).astype(np.float32)


def render_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random backdrop: ``(H, W, 3)`` float32 RGB 0..255.

    A linear gradient between two colours, low-frequency colour noise, then 2 to
    14 clutter shapes (rectangles, ellipses, stripe panels, poles and lines).
    Drawn at half resolution and upsampled (a slightly soft, out-of-focus look).
    """
    small_w, small_h = max((width + 1) // 2, 16), max((height + 1) // 2, 16)
    return _upsample(_backdrop(rng, small_w, small_h), width, height)


def _upsample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of an (h, w, 3) float32 image to (height, width, 3), corners aligned.

    Separable, one axis at a time (no BLAS: its threads only contend on small images).
    """
    low, frac = _interp_weights(height, image.shape[0])
    frac = frac[:, None, None]
    tall = image[low] * (1 - frac) + image[low + 1] * frac
    low, frac = _interp_weights(width, image.shape[1])
    frac = frac[None, :, None]
    return tall[:, low] * (1 - frac) + tall[:, low + 1] * frac


def _interp_weights(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Left knot index and weight of the right knot for ``size`` samples over ``cells`` knots."""
    pos = np.linspace(0, cells - 1, size, dtype=np.float32)
    low = np.minimum(pos.astype(np.int64), cells - 2)
    return low, pos - low.astype(np.float32)


def _backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    gx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    gy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    angle = rng.uniform(0, 2 * math.pi)
    t = np.clip(0.5 + 0.5 * (gx * np.float32(math.cos(angle)) + gy * np.float32(math.sin(angle))),
                0, 1)[..., None]
    c0, c1 = _random_colour(rng), _random_colour(rng)
    image = c0 + t * (c1 - c0)
    image = image + _smooth_noise(rng, width, height, int(rng.integers(2, 10)),
                                  rng.uniform(4, 25))
    canvas = _Canvas(np.clip(image, 0, 255))
    size = max(width, height)
    for _ in range(int(rng.integers(2, 15))):
        kind = rng.choice(["rect", "ellipse", "stripes", "line", "rect"])
        colour = _random_colour(rng)
        cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        if kind == "line":
            length = rng.uniform(0.1, 1.2) * size
            a = rng.uniform(0, math.pi) if rng.random() < 0.6 else math.pi / 2
            half = np.array([math.cos(a), math.sin(a), 0.0]) * length / 2
            centre = np.array([cx, cy, 0.0])
            r = rng.uniform(0.5, 0.03 * size + 1)
            _capsule(canvas, centre - half, centre + half, r, r, colour, 0, _LIGHT, depth=False)
            continue
        hw, hh = rng.uniform(0.03, 0.35) * size, rng.uniform(0.03, 0.35) * size
        a = rng.uniform(0, math.pi) if rng.random() < 0.35 else 0.0
        reach_x = math.hypot(hw, hh) + 1 if a else hw + 1
        reach_y = math.hypot(hw, hh) + 1 if a else hh + 1
        region = canvas.region(cx - reach_x, cx + reach_x, cy - reach_y, cy + reach_y)
        if region is None:
            continue
        px, py = _grid(region, cx, cy)
        u = px * np.float32(math.cos(a)) + py * np.float32(math.sin(a))
        v = -px * np.float32(math.sin(a)) + py * np.float32(math.cos(a))
        if kind == "ellipse":
            q = np.sqrt((u / np.float32(hw)) ** 2 + (v / np.float32(hh)) ** 2)
            alpha = np.clip((1 - q) * np.float32(min(hw, hh)) + 0.5, 0, 1)
        else:
            sdf = np.maximum(np.abs(u) - np.float32(hw), np.abs(v) - np.float32(hh))
            alpha = np.clip(np.float32(0.5) - sdf, 0, 1)
        if kind == "stripes":
            period = rng.uniform(3, 0.1 * size + 4)
            wave = np.sin(u * np.float32(2 * math.pi / period))
            alpha = alpha * np.clip(wave * np.float32(period / 4) + 0.5, 0, 1)
        alpha = alpha * np.float32(rng.uniform(0.5, 1.0))
        shade = np.float32(1.0) + np.float32(rng.uniform(-0.25, 0.25)) * v / np.float32(hh)
        col = colour * shade[..., None]
        canvas.paint(region, alpha.astype(np.float32), None, col, 0)
    return canvas.rgb


def render_people(rng: np.random.Generator, width: int, height: int, n_people: int) -> Scene:
    """One random scene: a background and ``n_people`` random figures (see ``Scene``)."""
    background = render_background(rng, width, height)
    figures = sample_figures(rng, width, height, n_people)
    light = _random_light(rng)
    return render_figures(background, figures, light=light, noise=rng.uniform(0.0, 5.0), rng=rng)


def _random_light(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-math.pi, 0.0)  # from above, left or right
    return np.array([0.6 * math.cos(angle), 0.6 * math.sin(angle), rng.uniform(0.5, 0.9)])


# --------------------------------------------------------------------------- output


def _annotations(scene: Scene, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """COCO annotations of a scene's figures that show at least one pixel."""
    annotations = []
    for keypoints, area, bbox in zip(scene.keypoints, scene.areas, scene.bboxes):
        num = int((keypoints[:, 2] > 0).sum())
        if area == 0 or num == 0:
            continue
        annotations.append({
            "id": first_id + len(annotations),
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(value), 2) if i % 3 != 2 else int(value)
                          for i, value in enumerate(keypoints.ravel())],
            "num_keypoints": num,
            "bbox": [float(value) for value in bbox],
            "area": float(area),
            "iscrowd": 0,
        })
    return annotations


def _dumps(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document) + b"\n"


def _check_args(images: int, seed: int, width: int, height: int, min_people: int,
                max_people: int, videos: int, video_frames: int, fps: float) -> None:
    def whole(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UsageError(f"bad {name} {value!r}: expected a whole number")
        return int(value)

    if whole("images", images) < 0:
        raise UsageError(f"bad images count {images}: must be 0 or more")
    if whole("seed", seed) < 0:
        raise UsageError(f"bad seed {seed}: must be 0 or more")
    for name, value in (("width", width), ("height", height)):
        if not 32 <= whole(name, value) <= MAX_SIZE:
            raise UsageError(f"bad {name} {value}: must be between 32 and {MAX_SIZE} pixels")
    if not 0 <= whole("min_people", min_people) <= MAX_PEOPLE:
        raise UsageError(f"bad min people {min_people}: must be between 0 and {MAX_PEOPLE}")
    if not 0 <= whole("max_people", max_people) <= MAX_PEOPLE:
        raise UsageError(f"bad max people {max_people}: must be between 0 and {MAX_PEOPLE}")
    if min_people > max_people:
        raise UsageError(f"min people {min_people} is more than max people {max_people}")
    if whole("videos", videos) < 0:
        raise UsageError(f"bad videos count {videos}: must be 0 or more")
    if whole("video_frames", video_frames) < 1:
        raise UsageError(f"bad video frames {video_frames}: must be 1 or more")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
        raise UsageError(f"bad fps {fps}: must be a number above 0 and at most 1000")


def generate_dataset(
    out_dir: Path,
    *,
    images: int = 200,
    seed: int = 0,
    width: int = 368,
    height: int = 368,
    min_people: int = 1,
    max_people: int = 4,
    videos: int = 0,
    video_frames: int = 30,
    fps: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic COCO keypoints dataset (and optional clips) under ``out_dir``.

    Writes ``images/000000.png``... and ``annotations.json`` (COCO keypoints:
    images with ``file_name`` relative to ``out_dir``; one annotation per figure
    that shows, with ``area`` its visible pixel count and ``bbox`` their extent),
    then for ``videos > 0`` ``videos/clip_000.mp4`` (H.264, else MPEG-4; the size
    is rounded down to even) with ``videos/clip_000.json`` (per-frame COCO ground
    truth in posecli's own output layout: images carry ``frame_index``,
    ``timestamp`` = index / fps and ``file_name`` ``clip_000.mp4#<index>``).

    Each image has a uniform random number of people in [min_people, max_people].
    Image ``i`` depends only on ``seed`` and ``i``; the same seed gives
    byte-identical JSON and PNG files. Every file is written atomically;
    ``annotations.json`` is written after all images. ``progress(n)`` is called
    with ``n`` newly finished items (images and video frames;
    ``images + videos * video_frames`` in all).

    Raises:
        UsageError: a bad argument (negative counts, size under 32, min > max...).
        PoseCliError: the output folder cannot be created or written.
    """
    _check_args(images, seed, width, height, min_people, max_people, videos, video_frames, fps)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
        if videos:
            (out_dir / "videos").mkdir(exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise PoseCliError(f"cannot create output folder {out_dir}: {reason}") from None
    image_seed, video_seed = np.random.SeedSequence(seed).spawn(2)
    info = {"description": "posecli synthetic people", "generator": GENERATOR,
            "version": __version__, "seed": seed}
    doc_images: list[dict[str, Any]] = []
    doc_annotations: list[dict[str, Any]] = []
    for index, child in enumerate(image_seed.spawn(images)):
        rng = np.random.default_rng(child)
        scene = render_people(rng, width, height, int(rng.integers(min_people, max_people + 1)))
        name = f"images/{index:06d}.png"
        write_atomic(out_dir / name, encode_png(scene.image))
        doc_images.append({"id": index + 1, "file_name": name, "width": width, "height": height})
        doc_annotations += _annotations(scene, index + 1, len(doc_annotations) + 1)
        if progress is not None:
            progress(1)
    annotations = out_dir / "annotations.json"
    write_atomic(annotations, _dumps({
        "info": {**info, "images": images, "width": width, "height": height,
                 "min_people": min_people, "max_people": max_people},
        "categories": coco_categories(),
        "images": doc_images,
        "annotations": doc_annotations,
    }))
    clips, clip_docs = [], []
    codec = _video_codec() if videos else None
    total_frames = total_people = 0
    for index, child in enumerate(video_seed.spawn(videos)):
        rng = np.random.default_rng(child)
        clip = out_dir / "videos" / f"clip_{index:03d}.mp4"
        people = _write_clip(clip, rng, codec, width - width % 2, height - height % 2,
                             video_frames, fps, min_people, max_people,
                             {**info, "clip": index}, progress)
        clips.append(clip)
        clip_docs.append(clip.with_suffix(".json"))
        total_frames += video_frames
        total_people += people
    return SynthSummary(out_dir=out_dir, annotations=annotations, images=images,
                        people=len(doc_annotations), videos=tuple(clips),
                        video_annotations=tuple(clip_docs), video_frames=total_frames,
                        video_people=total_people, video_codec=codec)


# --------------------------------------------------------------------------- videos


def _video_codec() -> str:
    """'libx264' when this FFmpeg can encode H.264 with it, else 'mpeg4'."""
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises different errors across versions
            continue
        return name
    raise PoseCliError("this FFmpeg build has neither a libx264 nor an mpeg4 encoder")


@dataclass(frozen=True)
class _Motion:
    """How one clip figure moves: its base figure and the parameters of its motion."""

    base: Figure
    kind: str
    phase: float
    rate: float  # cycles per second (turns per second for "turn")
    side: int  # walking direction (-1, 1) or the waving arm (0 left, 1 right)
    swing: float = 0.0  # walking: leg swing amplitude in degrees
    speed: float = 0.0  # walking: pixels per second


def _sample_motion(rng: np.random.Generator, width: int, height: int,
                   slot: float) -> _Motion:
    kind = str(rng.choice(["walk", "walk", "wave", "jacks", "turn", "raise"]))
    body, outfit = sample_body(rng), sample_outfit(rng)
    size = height * math.exp(rng.uniform(math.log(0.25), math.log(0.8)))
    pose = sample_pose(rng, "stand")
    if kind == "walk":
        direction = float(rng.choice([-1.0, 1.0]))
        pose = replace(pose, yaw=direction * rng.uniform(65, 115) * _DEG, roll=0.0,
                       head_yaw=rng.uniform(-20, 20) * _DEG)
        swing = rng.uniform(18, 30)
        leg = 0.49 * size
        speed = 4 * leg * math.sin(swing * _DEG) * rng.uniform(0.9, 1.1)  # px per cycle
        rate = rng.uniform(0.8, 1.1)
        start = rng.uniform(0.1, 0.5) * width
        x = start if direction > 0 else width - start
        side, phase = int(direction), rng.uniform(0, 2 * math.pi)
        speed = speed * rate  # px per second
    else:
        pose = replace(pose, yaw=rng.uniform(-35, 35) * _DEG, roll=rng.normal(0, 3) * _DEG)
        x, side, phase = slot * width, int(rng.integers(2)), rng.uniform(0, 2 * math.pi)
        rate = {"wave": rng.uniform(1.0, 2.0), "jacks": rng.uniform(0.7, 1.2),
                "turn": rng.uniform(-0.25, 0.25), "raise": rng.uniform(0.3, 0.6)}[kind]
        swing = speed = 0.0
    figure = Figure(body, pose, outfit, size, 0.0, 0.0)
    x0, y0, x1, y1 = figure_extent(figure)
    y = _place(rng, rng.uniform(0.4, 0.6) * height, y0 - 0.05 * size, y1, height)
    x = float(min(max(x, 1.0 - x0), width - 2.0 - x1)) if kind != "walk" else float(x)
    return _Motion(replace(figure, x=x, y=y), kind, phase, rate, side, swing, speed)


def _figure_at(motion: _Motion, time: float) -> Figure:
    """The motion's figure at ``time`` seconds."""
    base = motion.base
    pose = base.pose
    phase = motion.phase + 2 * math.pi * motion.rate * time
    x, y = base.x, base.y
    if motion.kind == "walk":
        swing = motion.swing
        limbs = {}
        for name, offset in (("left", 0.0), ("right", math.pi)):
            ph = phase + offset
            limbs[f"{name}_leg"] = _limb(swing * math.sin(ph), 3, 5,
                                         5 + 40 * max(0.0, math.cos(ph)) ** 1.5)
            limbs[f"{name}_arm"] = _limb(-0.9 * swing * math.sin(ph), 8, 10,
                                         18 + 12 * max(0.0, -math.sin(ph)))
        pose = replace(pose, **limbs)
        x += motion.side * motion.speed * time
        y -= 0.012 * base.height * math.cos(2 * phase)
    elif motion.kind == "wave":
        arm = _limb(0, 100, 85, 75 + 30 * math.sin(phase))
        pose = replace(pose, **{("left_arm", "right_arm")[motion.side]: arm})
    elif motion.kind == "jacks":
        s = 0.5 - 0.5 * math.cos(phase)
        arm = _limb(0, 12 + 150 * s, 20, 10)
        leg = _limb(0, 2 + 22 * s, 10, 6 * (1 - s))
        pose = replace(pose, left_arm=arm, right_arm=arm, left_leg=leg, right_leg=leg)
        y -= 0.03 * base.height * math.sin(math.pi * s)
    elif motion.kind == "turn":
        pose = replace(pose, yaw=pose.yaw + 2 * math.pi * motion.rate * time)
    elif motion.kind == "raise":
        s = 0.5 - 0.5 * math.cos(phase)
        arm = _limb(10 * s, 15 + 145 * s, 30 * s, 20 * (1 - s))
        pose = replace(pose, left_arm=arm, right_arm=arm)
    return replace(base, pose=pose.clipped(), x=x, y=y)


def _write_clip(path: Path, rng: np.random.Generator, codec: str, width: int, height: int,
                frames: int, fps: float, min_people: int, max_people: int,
                info: dict[str, Any], progress: Callable[[int], None] | None) -> int:
    """Render and encode one clip and its per-frame COCO ground truth; returns the
    number of annotations."""
    n_people = int(rng.integers(min_people, max_people + 1))
    background = render_background(rng, width, height)
    light = _random_light(rng)
    slots = (rng.permutation(n_people) + rng.uniform(0.25, 0.75, n_people)) / max(n_people, 1)
    motions = [_sample_motion(rng, width, height, float(slot)) for slot in slots]
    # Back to front by where the feet are at the start; the order is kept throughout.
    motions.sort(key=lambda m: m.base.y + figure_extent(replace(m.base, x=0.0, y=0.0))[3])
    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(f".{path.name}.part")
    doc_images: list[dict[str, Any]] = []
    doc_annotations: list[dict[str, Any]] = []
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18", "preset": "veryfast"}
            else:
                stream.bit_rate = max(int(width * height * float(rate) * 1.2), 200_000)
            for index in range(frames):
                time = index / fps
                figures = [_figure_at(m, time) for m in motions]
                scene = render_figures(background, figures, light=light, noise=1.5, rng=rng)
                frame = av.VideoFrame.from_ndarray(scene.image, format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                doc_images.append({"id": index + 1, "frame_index": index,
                                   "timestamp": round(time, 6), "width": width,
                                   "height": height, "file_name": f"{path.name}#{index}"})
                doc_annotations += _annotations(scene, index + 1, len(doc_annotations) + 1)
                if progress is not None:
                    progress(1)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, av.error.FFmpegError)):
            raise PoseCliError(f"cannot write video {path}: {exc}") from None
        raise
    write_atomic(path.with_suffix(".json"), _dumps({
        "info": {**info, "fps": fps, "frames": frames, "codec": codec, "width": width,
                 "height": height},
        "categories": coco_categories(),
        "images": doc_images,
        "annotations": doc_annotations,
    }))
    return len(doc_annotations)
