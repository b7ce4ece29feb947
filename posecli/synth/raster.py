"""Drawing figures: shaded capsules, torso and head into a canvas with a z-buffer and an
owner-id map, and the COCO visibility of every keypoint that follows from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..skeleton import COCO17_NAMES
from .figure import Figure, Outfit
from .geometry import FACE, FigureGeometry, figure_geometry

# Light direction for the shading: x right, y down, z toward the camera.
LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])
_AMBIENT = 0.42


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


class Canvas:
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


def pixel_grid(region: tuple[int, int, int, int], ox: float,
               oy: float) -> tuple[np.ndarray, np.ndarray]:
    ya, yb, xa, xb = region
    return (np.arange(xa, xb, dtype=np.float32)[None, :] - np.float32(ox),
            np.arange(ya, yb, dtype=np.float32)[:, None] - np.float32(oy))


def _shade(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray, light: np.ndarray) -> np.ndarray:
    lit = nx * np.float32(light[0]) + ny * np.float32(light[1]) + nz * np.float32(light[2])
    return np.float32(_AMBIENT) + np.float32(1.0 - _AMBIENT) * np.clip(lit, 0.0, 1.0)


def draw_capsule(canvas: Canvas, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float,
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
    gx, gy = pixel_grid(region, p0[0], p0[1])
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


def _head(canvas: Canvas, geo: FigureGeometry, outfit: Outfit, owner: int,
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
    gx, gy = pixel_grid(region, centre[0], centre[1])
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


def _torso(canvas: Canvas, geo: FigureGeometry, colour: Sequence[float], owner: int,
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
    gx, gy = pixel_grid(region, 0.0, 0.0)
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


def _draw_figure(canvas: Canvas, figure: Figure, geo: FigureGeometry, owner: int,
                 light: np.ndarray) -> None:
    """All parts of one figure into the canvas, far parts first, with a fresh z-buffer."""
    canvas.zbuf.fill(np.inf)
    p, r, o = geo.points, geo.radii, figure.outfit
    draws: list[tuple[float, Callable[[], None]]] = []

    def capsule(a: str, b: str, ra: float, rb: float, colour: Sequence[float]) -> None:
        def draw() -> None:
            draw_capsule(canvas, p[a], p[b], ra, rb, colour, owner, light)
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
            draw_capsule(canvas, nose, nose, nose_r, nose_r, o.skin, owner, light)
        draws.append((float(nose[2]), draw_nose))
    if rx >= 5.0:  # eyes, when the head is big enough to show them
        eye_r = max(0.13 * rx, 0.8)
        for name in ("left_eye", "right_eye"):
            eye = p[name] - np.array([0.0, 0.0, 0.15 * rx])

            def draw_eye(eye: np.ndarray = eye) -> None:
                draw_capsule(canvas, eye, eye, eye_r, eye_r, (25.0, 20.0, 20.0), owner, light)
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


def _self_visible(canvas: Canvas, geo: FigureGeometry, owner: int) -> tuple[np.ndarray, np.ndarray]:
    """For each COCO-17 keypoint, right after drawing its figure: whether it is labelled,
    and whether its own figure shows it (nothing of the figure in front of it)."""
    xyz = np.array([geo.points[name] for name in COCO17_NAMES])
    labelled = np.ones(len(COCO17_NAMES), dtype=bool)
    hidden = np.zeros(len(COCO17_NAMES), dtype=bool)
    tol = np.zeros(len(COCO17_NAMES))
    rx = geo.head_axes[0]
    nose_away = geo.face_normals["nose"][2]
    for k, name in enumerate(COCO17_NAMES):
        if name in FACE:
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
    canvas = Canvas(background)
    light_dir = LIGHT if light is None else np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    states = []
    for index, figure in enumerate(figures):
        geo = figure_geometry(figure)
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
