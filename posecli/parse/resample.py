"""Upsampling and smoothing of network maps, written as matrices.

The reference parser resizes each map twice with bicubic interpolation (x8 to
the padded input size, crop the padding, resize to the original frame) and then
smooths heatmaps with a Gaussian (sigma 3, scipy's ``reflect`` border). Every
one of these steps is linear and separable, so along each axis they compose into
one matrix: a full-resolution map is ``A @ m @ B.T`` with ``m`` the h x w map,
``A`` of shape H x h and ``B`` of shape W x w. Applying two small matrices is far
cheaper than resizing 57 channels, and gives the same numbers.

Each row of ``A`` and ``B`` has at most ~5 consecutive non-zero entries (the
bicubic taps, composed), and each row of the smoothing operators at most ~8 map
cells: :class:`Banded` keeps only that band, so that one full-resolution value
costs a handful of products instead of a whole row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..preprocess import Geometry

CUBIC_A = -0.75  # OpenCV's and torch's bicubic coefficient


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Bicubic convolution weights (..., 4) for fractional offsets ``t`` in [0, 1)."""
    a = CUBIC_A
    d = np.stack([t + 1.0, t, 1.0 - t, 2.0 - t], axis=-1)
    near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    return np.where(d <= 1.0, near, far)


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The n_out x n_in matrix of a bicubic resize along one axis.

    Half-pixel centres (``align_corners=False``), border pixels replicated, no
    antialiasing: OpenCV ``INTER_CUBIC`` and torch ``bicubic``.
    """
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base)  # n_out x 4
    taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, n_in - 1)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), 4), taps.ravel()), weights.ravel())
    return matrix


def gaussian_matrix(n: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The n x n matrix of ``scipy.ndimage.gaussian_filter1d(mode="reflect")``."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    cols = np.arange(n)[:, None] + offsets  # n x taps, before reflection
    cols = np.mod(cols, 2 * n)
    cols = np.where(cols >= n, 2 * n - 1 - cols, cols)
    matrix = np.zeros((n, n))
    np.add.at(matrix, (np.repeat(np.arange(n), offsets.size), cols.ravel()),
              np.tile(kernel, n))
    return matrix


def upsample_matrix(n_map: int, n_resized: int, n_original: int, stride: int) -> np.ndarray:
    """n_original x n_map: map cells -> original pixels (x stride, crop padding, resize)."""
    to_padded = bicubic_matrix(n_map, n_map * stride)[:n_resized]
    return bicubic_matrix(n_resized, n_original) @ to_padded


@lru_cache(maxsize=32)
def map_operators(geometry: Geometry, sigma: float) -> tuple[np.ndarray, ...]:
    """(A, B, GA, GB) as float32: upsampling along rows/columns, then also smoothing.

    A: H x h, B: W x w; GA = G_H @ A, GB = G_W @ B (smoothed when ``sigma`` > 0).
    """
    a = upsample_matrix(geometry.map_height, geometry.resized_height, geometry.height,
                        geometry.stride)
    b = upsample_matrix(geometry.map_width, geometry.resized_width, geometry.width,
                        geometry.stride)
    if sigma > 0:
        ga = gaussian_matrix(geometry.height, sigma) @ a
        gb = gaussian_matrix(geometry.width, sigma) @ b
    else:
        ga, gb = a, b
    return tuple(m.astype(np.float32) for m in (a, b, ga, gb))


def operators_on(geometry: Geometry, sigma: float,
                 device: torch.device) -> tuple[torch.Tensor, ...]:
    """:func:`map_operators` as float32 tensors on ``device`` (A, B, GA, GB)."""
    return tuple(torch.from_numpy(m).to(device) for m in map_operators(geometry, sigma))


@dataclass(frozen=True)
class Banded:
    """A matrix whose rows each hold their non-zeros in ``width`` consecutive columns.

    Row ``r`` of the n_out x n_in matrix equals ``weights[r]`` at columns
    ``start[r] .. start[r] + width - 1`` and 0 elsewhere. ``start``: n_out int64;
    ``weights``: n_out x width float32 (zeros where a row's band is narrower).
    """

    start: torch.Tensor
    weights: torch.Tensor

    @property
    def width(self) -> int:
        return self.weights.shape[1]


def band_of(matrix: np.ndarray) -> tuple[np.ndarray, int]:
    """(first non-zero column of each row, widest band): the band every row fits in.

    Starts are clamped so that ``start + width <= n_in``; an all-zero row gets 0.
    """
    nonzero = matrix != 0
    first = np.where(nonzero.any(1), nonzero.argmax(1), 0)
    last = np.where(nonzero.any(1), matrix.shape[1] - 1 - nonzero[:, ::-1].argmax(1), 0)
    width = max(int((last - first).max(initial=0)) + 1, 1)
    return np.minimum(first, matrix.shape[1] - width), width


def banded(matrix: np.ndarray, device: torch.device | str = "cpu") -> Banded:
    """The :class:`Banded` form of a dense n_out x n_in matrix (float32 on ``device``)."""
    start, width = band_of(matrix)
    weights = np.take_along_axis(matrix, start[:, None] + np.arange(width), axis=1)
    return Banded(torch.from_numpy(start).to(device),
                  torch.from_numpy(weights.astype(np.float32)).to(device))


def map_values(maps: torch.Tensor, rows: Banded, cols: Banded, channel: torch.Tensor,
               y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Values of the full-resolution maps ``rows @ maps[c] @ cols.T`` at K points.

    maps: (C, h, w) float32; channel, y, x: K int64 (channel, pixel row, pixel column).
    Only the ``rows.width`` x ``cols.width`` map cells under each point are read.
    Returns K float32.
    """
    _, map_height, map_width = maps.shape
    base = (channel * map_height + rows.start[y]) * map_width + cols.start[x]
    cells = (torch.arange(rows.width, device=maps.device)[:, None] * map_width
             + torch.arange(cols.width, device=maps.device)).view(-1)
    patch = maps.reshape(-1).take(base[:, None] + cells).view(-1, rows.width, cols.width)
    along_x = (patch * cols.weights[x][:, None, :]).sum(dim=2)
    return (along_x * rows.weights[y]).sum(dim=1)


def row_transform(maps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``rows @ maps[c]`` for every channel c: (C, h, w) maps, H x h rows -> (H, C, w)."""
    channels, map_height, map_width = maps.shape
    stacked = maps.permute(1, 0, 2).reshape(map_height, channels * map_width)
    return (rows @ stacked).view(rows.shape[0], channels, map_width)
