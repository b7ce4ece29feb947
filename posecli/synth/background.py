"""Random backdrops: a gradient, low-frequency colour noise and clutter shapes."""

from __future__ import annotations

import math

import numpy as np

from .figure import hsv
from .raster import LIGHT, Canvas, draw_capsule, pixel_grid


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int,
                  amplitude: float) -> np.ndarray:
    """Bilinearly upsampled random grid: (H, W, 3) float32 value noise."""
    gh = max(2, round(cells * height / max(width, height)) + 1)
    gw = max(2, round(cells * width / max(width, height)) + 1)
    grid = rng.normal(0.0, amplitude, (gh, gw, 3)).astype(np.float32)
    return _upsample(grid, width, height)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.95)).astype(np.float32)


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
    canvas = Canvas(np.clip(image, 0, 255))
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
            draw_capsule(canvas, centre - half, centre + half, r, r, colour, 0, LIGHT, depth=False)
            continue
        hw, hh = rng.uniform(0.03, 0.35) * size, rng.uniform(0.03, 0.35) * size
        a = rng.uniform(0, math.pi) if rng.random() < 0.35 else 0.0
        reach_x = math.hypot(hw, hh) + 1 if a else hw + 1
        reach_y = math.hypot(hw, hh) + 1 if a else hh + 1
        region = canvas.region(cx - reach_x, cx + reach_x, cy - reach_y, cy + reach_y)
        if region is None:
            continue
        px, py = pixel_grid(region, cx, cy)
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
