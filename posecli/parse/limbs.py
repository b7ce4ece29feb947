"""Limbs: score every candidate pair by its PAF line integral, then match greedily."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..skeleton import LIMBS, NUM_LIMBS, PAF_CHANNELS
from .params import ParseParams
from .peaks import Peaks

_LIMB_A = np.array([a for a, _ in LIMBS])
_LIMB_B = np.array([b for _, b in LIMBS])
_PAF_X = np.array([x for x, _ in PAF_CHANNELS])
_PAF_Y = np.array([y for _, y in PAF_CHANNELS])


@dataclass(frozen=True)
class Connections:
    """Accepted limbs of one frame, in the order the assembly must visit them.

    Sorted by limb, then by descending score (the greedy matching's order).
    ``limb``: M limb indices; ``a``, ``b``: M global peak indices of the limb's
    two parts; ``score``: M float64 PAF scores with the distance prior.
    """

    limb: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """Every candidate pair of every limb: P pairs, indices into a frame's peaks."""

    limb: np.ndarray  # P limb indices
    i: np.ndarray  # P index among the limb's part-A peaks
    j: np.ndarray  # P index among the limb's part-B peaks
    a: np.ndarray  # P global peak index of part A
    b: np.ndarray  # P global peak index of part B


def enumerate_pairs(peaks: Peaks) -> Candidates:
    """All (part-A peak, part-B peak) pairs of all limbs, without Python loops."""
    counts = peaks.counts
    first = np.cumsum(counts) - counts
    n_a, n_b = counts[_LIMB_A], counts[_LIMB_B]
    n_pairs = n_a * n_b
    limb = np.repeat(np.arange(NUM_LIMBS), n_pairs)
    rank = np.arange(limb.size) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    i, j = rank // n_b[limb], rank % n_b[limb]
    return Candidates(limb, i, j, first[_LIMB_A[limb]] + i, first[_LIMB_B[limb]] + j)


#: Candidate pairs scored at once: bounds memory at about 40 MB whatever the count.
PAIR_CHUNK = 8192


def score_pairs(pairs: Candidates, peaks: Peaks, pafs: torch.Tensor, rows: torch.Tensor,
                cols: torch.Tensor, frame_height: int,
                params: ParseParams) -> tuple[np.ndarray, np.ndarray]:
    """PAF line-integral score of each pair, and whether the pair is acceptable.

    pafs: (38, h, w) network output; rows (H x h) and cols (W x w) upsample it to
    the original frame (the samples are read from the upsampled field at the
    rounded sample positions, as the reference does). Returns (P scores, P bools).
    """
    # Half the upsampling once per frame: (38, h, W) -> rows of length h per column.
    columns = (pafs @ cols.T).transpose(1, 2).contiguous()  # 38 x W x h
    scores, oks = [], []
    for first in range(0, max(pairs.limb.size, 1), PAIR_CHUNK):
        chunk = slice(first, first + PAIR_CHUNK)
        score, ok = _score_chunk(peaks.xy[pairs.a[chunk]], peaks.xy[pairs.b[chunk]],
                                 pairs.limb[chunk], columns, rows, frame_height, params)
        scores.append(score)
        oks.append(ok)
    return np.concatenate(scores), np.concatenate(oks)


def _score_chunk(start_xy: np.ndarray, end_xy: np.ndarray, limbs: np.ndarray,
                 columns: torch.Tensor, rows: torch.Tensor, frame_height: int,
                 params: ParseParams) -> tuple[np.ndarray, np.ndarray]:
    """score_pairs for P pairs given by their end points (P x 2 pixels) and limbs."""
    n = params.paf_samples
    along, length = paf_projections(start_xy, end_xy, limbs, columns, rows, n)
    prior = (params.distance_prior * frame_height / length - 1.0).clamp(max=0.0)
    score = along.mean(1) + prior
    supported = (along > params.paf_sample_threshold).sum(1) > params.paf_min_fraction * n
    return score.cpu().numpy(), (supported & (score > 0)).cpu().numpy()


def paf_projections(start_xy: np.ndarray, end_xy: np.ndarray, limbs: np.ndarray,
                    columns: torch.Tensor, rows: torch.Tensor,
                    samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The PAF along each of P candidate limbs, at ``samples`` evenly spaced points.

    start_xy, end_xy: P x 2 pixel coordinates in the original frame; limbs: P limb
    indices; columns: the PAFs upsampled along x only (38 x W x h); rows (H x h)
    finishes the upsampling at each sample's row. The points are rounded to
    pixels (half to even, like numpy) as the reference does. Returns (P x
    samples projections of the PAF on the unit vector from start to end, float64;
    P lengths in pixels, at least 0.001).
    """
    device = columns.device
    n = samples
    start = torch.from_numpy(start_xy).to(device)  # P x 2, float64
    end = torch.from_numpy(end_xy).to(device)
    delta = end - start
    length = delta.norm(dim=1).clamp_min(0.001)
    unit = delta / length[:, None]
    steps = torch.arange(n, dtype=torch.float64, device=device)
    points = start[:, None, :] + steps[None, :, None] * (delta / (n - 1))[:, None, :]
    points[:, -1] = end
    points = points.round().long()  # P x n x 2, half to even like numpy
    xs, ys = points[..., 0], points[..., 1]
    row_weights = rows[ys]  # P x n x h
    chan_x = torch.from_numpy(_PAF_X[limbs]).to(device)[:, None]  # each pair's PAF channels
    chan_y = torch.from_numpy(_PAF_Y[limbs]).to(device)[:, None]
    vx = (columns[chan_x, xs] * row_weights).sum(-1).double()
    vy = (columns[chan_y, xs] * row_weights).sum(-1).double()
    return vx * unit[:, None, 0] + vy * unit[:, None, 1], length


def greedy_match(pairs: Candidates, score: np.ndarray, ok: np.ndarray) -> Connections:
    """Per limb, the greedy matching by descending score over acceptable pairs.

    Equivalent to visiting pairs best-first (ties: lower A index, then lower B
    index) and keeping a pair when neither part is taken yet. Computed in rounds
    over all limbs at once: a pair that is the best of its row and of its column
    is taken, its row and column are cleared, and so on.
    """
    limb, i, j, s = pairs.limb[ok], pairs.i[ok], pairs.j[ok], score[ok]
    if limb.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Connections(empty, empty, empty, np.zeros(0))
    table = np.full((NUM_LIMBS, i.max() + 1, j.max() + 1), -np.inf)
    table[limb, i, j] = s
    taken = np.zeros(table.shape, dtype=bool)
    while True:
        live_l, live_i = np.nonzero(np.isfinite(table.max(axis=2)))
        if live_l.size == 0:
            break
        best_j = table.argmax(axis=2)[live_l, live_i]
        best_i = table.argmax(axis=1)[live_l, best_j]
        mutual = best_i == live_i
        l_m, i_m, j_m = live_l[mutual], live_i[mutual], best_j[mutual]
        taken[l_m, i_m, j_m] = True
        table[l_m, i_m, :] = -np.inf
        table[l_m, :, j_m] = -np.inf
    keep = taken[limb, i, j]
    order = np.lexsort((j[keep], i[keep], -s[keep], limb[keep]))
    index = np.nonzero(ok)[0][keep][order]
    return Connections(pairs.limb[index], pairs.a[index], pairs.b[index], score[index])
