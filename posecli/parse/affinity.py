"""PAF line integrals of candidate pairs: an exact pre-check, then the exact scores.

A pair (a limb's part-A peak, part-B peak) is acceptable when more than
``paf_min_fraction`` of its ``paf_samples`` samples project the upsampled PAF onto
the limb's direction above ``paf_sample_threshold``, and its mean projection plus
the distance prior is > 0. Most pairs of a crowded frame join parts of different
people across empty field, so first a bound of every sample's projection is read
from a coarse table (two lookups per sample, see :func:`_bounds`); pairs that
cannot have enough supporting samples are rejected without reading the field.
The others are scored exactly (see :func:`field_reader`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..skeleton import PAF_CHANNELS
from .limbs import Candidates
from .params import ParseParams
from .peaks import Peaks
from .resample import Banded, banded, map_values, row_transform

_PAF_X = np.array([x for x, _ in PAF_CHANNELS])
_PAF_Y = np.array([y for _, y in PAF_CHANNELS])

#: log2 of the side of the square tiles (pixels) of the PAF magnitude bounds.
BOUND_TILE_BITS = 4
BOUND_TILE = 1 << BOUND_TILE_BITS
#: Candidate pairs handled at once: bounds memory at about 10 MB whatever the count.
PAIR_CHUNK = 8192


@dataclass(frozen=True)
class AffinityOperators:
    """The upsampling A (H x h) and B (W x w) as the PAF scoring uses them (float32).

    ``rows``: A, dense, and ``banded_rows`` its band; ``cols``: B, banded.
    ``row_tile_max``: (H / BOUND_TILE) x h, the largest ``|A|`` of each map row over
    each tile's pixel rows; ``col_tile_max``: w x (W / BOUND_TILE), the same for B,
    transposed.
    """

    rows: torch.Tensor
    banded_rows: Banded
    cols: Banded
    row_tile_max: torch.Tensor
    col_tile_max: torch.Tensor


def affinity_operators(a: np.ndarray, b: np.ndarray,
                       device: torch.device | str = "cpu") -> AffinityOperators:
    """:class:`AffinityOperators` of the upsampling matrices A (H x h) and B (W x w)."""
    def tile_max(matrix: np.ndarray) -> torch.Tensor:
        n = -(-matrix.shape[0] // BOUND_TILE)
        padded = np.zeros((n * BOUND_TILE, matrix.shape[1]), np.float32)
        padded[:matrix.shape[0]] = np.abs(matrix)
        return torch.from_numpy(padded.reshape(n, BOUND_TILE, -1).max(axis=1)).to(device)

    return AffinityOperators(torch.from_numpy(a.astype(np.float32)).to(device),
                             banded(a, device), banded(b, device), tile_max(a),
                             tile_max(b).T.contiguous())


def score_pairs(pairs: Candidates, peaks: Peaks, pafs: torch.Tensor,
                operators: AffinityOperators, frame_height: int,
                params: ParseParams) -> tuple[np.ndarray, np.ndarray]:
    """PAF line-integral score of each pair, and whether the pair is acceptable.

    pafs: (38, h, w) float32 network output, upsampled by ``operators`` to the
    original frame (the samples are read from the upsampled field at the rounded
    sample positions, as the reference does). Returns (P float64 scores, P bools);
    the score of a pair rejected by the pre-check is -inf.
    """
    return score_supported_pairs(
        pairs, peaks, pafs, operators, params.paf_samples, params.paf_sample_threshold,
        params.paf_min_fraction,
        lambda samples, read: _exact(samples, read, frame_height, params))


#: How the pairs that pass the pre-check are scored: (their samples, the field reader)
#: -> (P float64 scores, P bools: acceptable).
PairScorer = Callable[["LimbSamples", "FieldReader"], tuple[np.ndarray, np.ndarray]]


def score_supported_pairs(pairs: Candidates, peaks: Peaks, pafs: torch.Tensor,
                          operators: AffinityOperators, n_samples: int,
                          sample_threshold: float, min_fraction: float,
                          exact: PairScorer) -> tuple[np.ndarray, np.ndarray]:
    """Scores and acceptance of every pair, for a scoring in which a pair needs more
    than ``min_fraction`` of its ``n_samples`` samples above ``sample_threshold``:
    pairs that cannot have that many (see :func:`_may_pass`) get -inf and False
    without reading the field; ``exact`` scores the others."""
    score = np.full(pairs.limb.size, -np.inf)
    ok = np.zeros(pairs.limb.size, dtype=bool)
    device = pafs.device
    bounds = _bounds(pafs, operators)
    passed = []
    for first in range(0, pairs.limb.size, PAIR_CHUNK):
        chunk = slice(first, first + PAIR_CHUNK)
        samples = LimbSamples.of(peaks.xy[pairs.a[chunk]], peaks.xy[pairs.b[chunk]],
                                 pairs.limb[chunk], n_samples, device)
        may_pass = _may_pass(samples, bounds, operators, sample_threshold, min_fraction)
        passed.append(first + np.flatnonzero(may_pass.cpu().numpy()))
    index = np.concatenate(passed) if passed else np.zeros(0, dtype=np.int64)
    if index.size == 0:
        return score, ok
    read = field_reader(pafs, operators, index.size * n_samples)
    for first in range(0, index.size, PAIR_CHUNK):
        chunk = index[first:first + PAIR_CHUNK]
        samples = LimbSamples.of(peaks.xy[pairs.a[chunk]], peaks.xy[pairs.b[chunk]],
                                 pairs.limb[chunk], n_samples, device)
        score[chunk], ok[chunk] = exact(samples, read)
    return score, ok


#: Reading one map cell costs about as much as this many multiply-adds of a matrix
#: product (measured on CPU): :func:`field_reader` chooses its way by it.
GATHER_COST = 400

#: (y, x, channel) -> values: P x n pixel rows and columns, P channels -> P x n float32.
FieldReader = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def field_reader(pafs: torch.Tensor, operators: AffinityOperators,
                 samples: int) -> FieldReader:
    """How to read the upsampled PAFs at ``samples`` points, two channels each.

    Few points: each value from the ``banded_rows.width x cols.width`` map cells
    under it. Many: the PAFs are first upsampled along rows (A @ m, channels x H x
    h x w multiply-adds), then each value reads ``cols.width`` cells. Both give the
    values of ``A @ m @ B.T`` (up to float rounding).
    """
    channels, map_height, map_width = pafs.shape
    cells = 2 * samples * operators.banded_rows.width * operators.cols.width
    if cells * GATHER_COST < channels * operators.rows.shape[0] * map_height * map_width:
        def read_cells(y: torch.Tensor, x: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
            every = channel[:, None].expand_as(y).reshape(-1)
            return map_values(pafs, operators.banded_rows, operators.cols, every,
                              y.reshape(-1), x.reshape(-1)).view(y.shape)

        return read_cells
    flat = row_transform(pafs, operators.rows).view(-1)  # (H, 38, w)
    band = torch.arange(operators.cols.width, device=pafs.device)

    def read_rows(y: torch.Tensor, x: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        base = (y * channels + channel[:, None]) * map_width + operators.cols.start[x]
        cells = flat.take(base[..., None] + band)
        return (cells * operators.cols.weights[x]).sum(-1)

    return read_rows


@dataclass(frozen=True)
class LimbSamples:
    """The line-integral samples of P pairs: pixel positions and limb directions."""

    x: torch.Tensor  # P x n int64 pixel columns
    y: torch.Tensor  # P x n int64 pixel rows
    unit: torch.Tensor  # P x 2 float64 unit vector from part A to part B (0 if they meet)
    length: torch.Tensor  # P float64 distance between the parts (at least 0.001)
    chan_x: torch.Tensor  # P int64 PAF channel of the limb's x component
    chan_y: torch.Tensor  # P int64 PAF channel of the limb's y component

    @classmethod
    def of(cls, start_xy: np.ndarray, end_xy: np.ndarray, limbs: np.ndarray, n: int,
           device: torch.device) -> LimbSamples:
        """Samples of P pairs given by their end points (P x 2 pixels) and limbs."""
        start = torch.from_numpy(start_xy.T.copy()).to(device)  # 2 x P, float64
        end = torch.from_numpy(end_xy.T.copy()).to(device)
        delta = end - start
        length = (delta[0] * delta[0] + delta[1] * delta[1]).sqrt().clamp_min(0.001)
        # np.linspace's arithmetic: start + t * (delta / (n - 1)), the last one the end.
        steps = torch.arange(n, dtype=torch.float64, device=device)
        points = start[:, :, None] + steps * (delta / (n - 1))[:, :, None]  # 2 x P x n
        points[:, :, -1] = end
        points = points.round().long()  # half to even, like numpy
        return cls(points[0], points[1], (delta / length).T, length,
                   torch.from_numpy(_PAF_X[limbs]).to(device),
                   torch.from_numpy(_PAF_Y[limbs]).to(device))


def _bounds(pafs: torch.Tensor, operators: AffinityOperators) -> torch.Tensor:
    """Bound of |upsampled PAF| per tile and channel: (row tiles, 38, column tiles) float64.

    For a pixel (y, x) of a tile (R, C) and a channel with map m, the upsampled value
    is ``sum_ij A[y, i] m[i, j] B[x, j]``, so its magnitude is at most
    ``sum_ij max_R |A[., i]| |m[i, j]| max_C |B[., j]|``: the table's entry.
    """
    magnitude = row_transform(pafs.abs(), operators.row_tile_max)  # row tiles x 38 x w
    return (magnitude @ operators.col_tile_max).double()


def _may_pass(samples: LimbSamples, bounds: torch.Tensor, operators: AffinityOperators,
              sample_threshold: float, min_fraction: float) -> torch.Tensor:
    """P bools: False where the pair certainly has too few supporting samples.

    A sample's projection ``vx ux + vy uy`` is at most ``Bx |ux| + By |uy|`` with Bx,
    By the bounds of its tile in the limb's two channels (see :func:`_bounds`). A
    sample whose bound is <= ``sample_threshold`` cannot support the limb; a pair needs
    more than ``min_fraction`` of its samples to.

    Rounding: the exact samples are float32 sums of at most h + w + band products
    and the bounds float32 sums of non-negative products, each within ``(h + w +
    band) 2^-24`` of the real sum relative to the table's entry, which bounds the
    sum of the products' magnitudes; the bound is raised by twice that before the
    comparison, so a sample the exact score counts is never ruled out.
    """
    n_row_tiles, channels, n_col_tiles = bounds.shape
    tile = ((samples.y >> BOUND_TILE_BITS) * (channels * n_col_tiles)
            + (samples.x >> BOUND_TILE_BITS))
    flat = bounds.view(-1)
    bound_x = flat.take(tile + (samples.chan_x * n_col_tiles)[:, None])
    bound_y = flat.take(tile + (samples.chan_y * n_col_tiles)[:, None])
    unit = samples.unit.abs()
    bound = bound_x * unit[:, None, 0] + bound_y * unit[:, None, 1]
    map_size = operators.rows.shape[1] + operators.col_tile_max.shape[0]
    slack = 1.0 + 2.0 * (map_size + operators.cols.width) * 2.0 ** -24
    possible = (bound * slack > sample_threshold).sum(1)
    return possible > min_fraction * samples.x.shape[1]


def projections(samples: LimbSamples, read: FieldReader) -> torch.Tensor:
    """P x n float64: the upsampled PAF at each sample projected on its pair's direction."""
    unit = samples.unit
    return (read(samples.y, samples.x, samples.chan_x).double() * unit[:, None, 0]
            + read(samples.y, samples.x, samples.chan_y).double() * unit[:, None, 1])


def _exact(samples: LimbSamples, read: FieldReader, frame_height: int,
           params: ParseParams) -> tuple[np.ndarray, np.ndarray]:
    """(scores, acceptable) of P pairs, reading the upsampled PAFs at their samples."""
    along = projections(samples, read)
    prior = (params.distance_prior * frame_height / samples.length - 1.0).clamp(max=0.0)
    score = along.mean(1) + prior
    n = along.shape[1]
    supported = (along > params.paf_sample_threshold).sum(1) > params.paf_min_fraction * n
    return score.cpu().numpy(), (supported & (score > 0)).cpu().numpy()
