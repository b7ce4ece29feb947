"""A figure in image space: its skeleton posed in 3-D, turned, leaned, scaled and placed.

Points are (x, y, z) in pixels, z away from the camera; the figure's left and
right are anatomical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .figure import DEG, Figure, Limb


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
FACE = {
    "nose": np.array([0.0, 0.3, 0.95]),
    "left_eye": np.array([0.38, -0.05, 0.92]),
    "right_eye": np.array([-0.38, -0.05, 0.92]),
    "left_ear": np.array([1.0, 0.05, -0.05]),
    "right_ear": np.array([-1.0, 0.05, -0.05]),
}
FACE_NAMES = tuple(FACE)


@dataclass
class FigureGeometry:
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


def figure_geometry(figure: Figure) -> FigureGeometry:
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
    for name, direction in FACE.items():
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
        ankle_angle = 82 * DEG
        sole = leg.flex - leg.bend + ankle_angle
        ankle_angle += min(max(sole, 45 * DEG), 100 * DEG) - sole
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
    normals = {name: turned[name] for name in FACE_NAMES}
    radii = {
        "neck": body.r_neck, "upper_arm": body.r_upper_arm, "forearm": body.r_forearm,
        "hand": body.r_hand, "thigh": body.r_thigh, "shin": body.r_shin, "foot": body.r_foot,
    }
    return FigureGeometry(
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
    geo = figure_geometry(figure)
    xy = np.array([p[:2] for p in geo.points.values()])
    pad = max(geo.radii["thigh"], geo.head_axes[1])
    low = np.minimum(xy.min(0) - pad, geo.torso_hull.min(0))
    high = np.maximum(xy.max(0) + pad, geo.torso_hull.max(0))
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])
