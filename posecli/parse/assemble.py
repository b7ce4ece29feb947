"""Greedy assembly of accepted limbs into people, as the reference parser does."""

from __future__ import annotations

from collections import defaultdict
from itertools import count

import numpy as np

from ..skeleton import LIMBS, NUM_PARTS, NUM_SEEDING_LIMBS
from .limbs import Connections
from .params import ParseParams

TOTAL = NUM_PARTS  # column of a person row holding its total score
COUNT = NUM_PARTS + 1  # column holding its number of parts


class _Person:
    """A person being assembled: a part slot per part (global peak index or -1), the
    total score, the part count, and its rank among people (creation order)."""

    __slots__ = ("slots", "total", "count", "rank")

    def __init__(self, rank: int) -> None:
        self.slots = [-1] * NUM_PARTS
        self.total = 0.0
        self.count = 0.0
        self.rank = rank


def assemble(connections: Connections, peak_scores: np.ndarray,
             params: ParseParams) -> np.ndarray:
    """Accepted limbs -> people, as a (people, 20) array.

    Columns 0..17 hold the global peak index of each part (-1 if missing),
    column 18 the total score (peak scores + limb scores), column 19 the number
    of parts. Limbs are visited in order; a limb sharing a part with one person
    extends it; one touching two people merges them when they share no part;
    otherwise a new person starts (only for the first 17 limbs). People with
    fewer than ``min_parts`` parts or a mean score below ``min_mean_score`` are
    dropped. Loops run over accepted limbs (about 19 per person), never pixels
    or candidate pairs; who holds a peak is looked up in an index, not searched.
    """
    people: list[_Person] = []  # in creation order, as the reference's rows
    holders: defaultdict[tuple[int, int], list[_Person]] = defaultdict(list)  # (part, peak)
    scores = peak_scores.tolist()
    ranks = count()

    def put(person: _Person, part: int, peak: int) -> None:
        old = person.slots[part]
        if old >= 0:
            holders[part, old].remove(person)
        person.slots[part] = peak
        holders[part, peak].append(person)

    for limb, peak_a, peak_b, limb_score in zip(connections.limb.tolist(),
                                                connections.a.tolist(),
                                                connections.b.tolist(),
                                                connections.score.tolist()):
        part_a, part_b = LIMBS[limb]
        # The first two people, in row order, holding part A's or part B's peak.
        owners = sorted({*holders[part_a, peak_a], *holders[part_b, peak_b]},
                        key=lambda person: person.rank)[:2]
        if len(owners) == 1 or (len(owners) == 2 and _overlap(*owners)):
            person = owners[0]
            # The reference only skips a part B the person already holds when one
            # person owns the limb; with two overlapping owners it always adds it
            # (counting it again), which changes the count, score and filter.
            if len(owners) == 2 or person.slots[part_b] != peak_b:
                put(person, part_b, peak_b)
                person.count += 1
                person.total += scores[peak_b] + limb_score
        elif len(owners) == 2:
            keep, gone = owners
            for part, peak in enumerate(gone.slots):
                if peak >= 0:  # keep holds no part of gone's (no overlap)
                    holders[part, peak].remove(gone)
                    put(keep, part, peak)
            keep.total += gone.total
            keep.count += gone.count
            keep.total += limb_score
            people.remove(gone)
        elif limb < NUM_SEEDING_LIMBS:
            person = _Person(next(ranks))
            put(person, part_a, peak_a)
            put(person, part_b, peak_b)
            person.count = 2
            person.total = scores[peak_a] + scores[peak_b] + limb_score
            people.append(person)
    rows = np.array([[*person.slots, person.total, person.count] for person in people],
                    dtype=np.float64).reshape(-1, NUM_PARTS + 2)
    keep = (rows[:, COUNT] >= params.min_parts) & (
        rows[:, TOTAL] / np.maximum(rows[:, COUNT], 1) >= params.min_mean_score)
    return rows[keep]


def _overlap(first: _Person, second: _Person) -> bool:
    """Whether two people have a part slot in common."""
    return any(a >= 0 and b >= 0 for a, b in zip(first.slots, second.slots))
