"""Greedy assembly of accepted limbs into people, as the reference parser does."""

from __future__ import annotations

import numpy as np

from ..skeleton import LIMBS, NUM_PARTS, NUM_SEEDING_LIMBS
from .limbs import Connections
from .params import ParseParams

TOTAL = NUM_PARTS  # column of a person row holding its total score
COUNT = NUM_PARTS + 1  # column holding its number of parts


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
    or candidate pairs.
    """
    people = np.full((0, NUM_PARTS + 2), -1.0)
    for limb, peak_a, peak_b, limb_score in zip(
            connections.limb, connections.a, connections.b, connections.score):
        part_a, part_b = LIMBS[limb]
        owners = np.nonzero((people[:, part_a] == peak_a) | (people[:, part_b] == peak_b))[0]
        if owners.size == 1 or (owners.size >= 2 and _overlap(people, owners[:2])):
            person = people[owners[0]]
            # The reference only skips a part B the person already holds when one
            # person owns the limb; with two overlapping owners it always adds it
            # (counting it again), which changes the count, score and filter.
            if owners.size >= 2 or person[part_b] != peak_b:
                person[part_b] = peak_b
                person[COUNT] += 1
                person[TOTAL] += peak_scores[peak_b] + limb_score
        elif owners.size >= 2:
            keep, gone = owners[:2]
            people[keep, :NUM_PARTS] += people[gone, :NUM_PARTS] + 1
            people[keep, TOTAL:] += people[gone, TOTAL:]
            people[keep, TOTAL] += limb_score
            people = np.delete(people, gone, axis=0)
        elif limb < NUM_SEEDING_LIMBS:
            row = np.full(NUM_PARTS + 2, -1.0)
            row[part_a], row[part_b] = peak_a, peak_b
            row[COUNT] = 2
            row[TOTAL] = peak_scores[peak_a] + peak_scores[peak_b] + limb_score
            people = np.vstack([people, row])
    keep = (people[:, COUNT] >= params.min_parts) & (
        people[:, TOTAL] / np.maximum(people[:, COUNT], 1) >= params.min_mean_score)
    return people[keep]


def _overlap(people: np.ndarray, pair: np.ndarray) -> bool:
    """Whether two people (rows of ``people``) have a part slot in common."""
    filled = people[pair, :NUM_PARTS] >= 0
    return bool((filled[0] & filled[1]).any())
