"""Limbs: the candidate pairs of every limb, and the greedy matching of the scored ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..skeleton import LIMBS, NUM_LIMBS
from .peaks import Peaks

_LIMB_A = np.array([a for a, _ in LIMBS])
_LIMB_B = np.array([b for _, b in LIMBS])


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
