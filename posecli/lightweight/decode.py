"""Lightweight OpenPose's own decoding of heatmaps and PAFs into people.

Its published 40% AP was measured with its ``val.py``, which decodes differently
from the CMU reference parse (:mod:`posecli.parse`). As read from its code:

1. Maps are resized to the original image as the CMU reference does (bicubic x8,
   padding cropped, bicubic to the image): posecli's upsampling operators, but
   with no Gaussian smoothing.
2. Part candidates: values below 0.1 count as 0; a pixel strictly greater than
   its four neighbours (outside the map counts as 0) is a peak; visiting a part's
   peaks by x (then y), a peak closer than 6 pixels to one already kept is
   dropped. A peak's score is its map value.
3. Limbs: 10 points from part A to part B, rounded to pixels; a point is valid
   where the PAF projected on the unit vector A->B exceeds 0.05; the limb score is
   the mean projection over the valid points only (no distance prior); a pair is
   a candidate when more than 80% of its points are valid and its score is
   positive. Candidates are matched greedily by descending score (each peak
   once per limb).
4. People are assembled in limb order: a limb whose part-A peak belongs to a
   person gives that person its part B (adding B's peak score and the limb score,
   and one part), otherwise it starts a person (both peak scores + the limb score,
   two parts); people are never merged. The two ear-to-shoulder limbs only fill
   an empty ear or shoulder of a person holding the other end, adding no score
   and no part count.
5. People with fewer than 3 parts or a mean score (score / parts) below 0.2 are
   dropped.

Its ``demo.py`` instead finds peaks on maps upsampled only x4 (the network
stride becomes 2 pixels); posecli follows ``val.py``, the published number's
procedure. Two deliberate differences from ``val.py``'s output: keypoints are
pixel indices like posecli's other outputs (``val.py`` adds 0.5), and a
person's score is posecli's (total / parts; ``val.py`` ranks its COCO results by
total x (parts - 1)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..parse.affinity import (
    AffinityOperators,
    FieldReader,
    LimbSamples,
    projections,
    score_supported_pairs,
)
from ..parse.assemble import COUNT, TOTAL
from ..parse.limbs import Candidates, Connections, enumerate_pairs, greedy_match
from ..parse.parse import parse_operators, person_from_row, without_negligible
from ..parse.peaks import Peaks
from ..parse.tiles import SmoothingTiles, smoothed_maxima
from ..person import Person
from ..preprocess import Geometry
from ..skeleton import LIMBS, NUM_HEATMAPS, NUM_PAFS, NUM_PARTS

#: Indices of the ear-to-shoulder limbs in LIMBS: they only fill empty slots.
_FILL_ONLY_LIMBS = frozenset({LIMBS.index((2, 16)), LIMBS.index((5, 17))})


@dataclass(frozen=True)
class LightweightDecoding:
    """The constants of its decoding (its code hard-codes them); heatmap and PAF values
    are unitless, distances in pixels of the original frame."""

    peak_threshold: float = 0.1
    peak_min_distance: float = 6.0
    paf_samples: int = 10
    paf_sample_threshold: float = 0.05
    paf_min_fraction: float = 0.8
    min_parts: int = 3
    min_mean_score: float = 0.2

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def decode_batch(heatmaps: torch.Tensor, pafs: torch.Tensor,
                 geometry: Geometry | list[Geometry],
                 decoding: LightweightDecoding | None = None) -> list[list[Person]]:
    """People in each frame of a batch, decoded as Lightweight OpenPose's val.py does.

    heatmaps: N x 19 x h x w and pafs: N x 38 x h x w at stride 8 in posecli's
    channel layout (as :meth:`LightweightNet.predict` returns them), on any
    device; geometry: one for all frames or one per frame. Returns N lists of
    people, coordinates in original-frame pixels.
    """
    decoding = decoding or LightweightDecoding()
    n = heatmaps.shape[0]
    geometries = geometry if isinstance(geometry, list) else [geometry] * n
    if heatmaps.ndim != 4 or heatmaps.shape[1] != NUM_HEATMAPS or pafs.shape[1] != NUM_PAFS \
            or pafs.shape[0] != n or pafs.shape[2:] != heatmaps.shape[2:]:
        raise ValueError(f"expected N x {NUM_HEATMAPS} x h x w heatmaps and N x {NUM_PAFS} x "
                         f"h x w PAFs, got {tuple(heatmaps.shape)} and {tuple(pafs.shape)}")
    if len(geometries) != n:
        raise ValueError(f"{len(geometries)} geometries for {n} frames")
    return [decode_frame(heatmaps[k], pafs[k], geometries[k], decoding) for k in range(n)]


def decode_frame(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                 decoding: LightweightDecoding) -> list[Person]:
    """People of one frame: heatmaps 19 x h x w, pafs 38 x h x w (see decode_batch)."""
    operators = parse_operators(geometry, 0.0, heatmaps.device)  # upsampling, no smoothing
    heatmaps, pafs = without_negligible(heatmaps[:NUM_PARTS]), without_negligible(pafs)
    peaks = find_peaks(heatmaps, decoding, operators.smoothing)
    pairs = enumerate_pairs(peaks)
    score, ok = score_pairs(pairs, peaks, pafs, operators.affinity, decoding)
    people = assemble(greedy_match(pairs, score, ok), peaks.score, decoding)
    return [person_from_row(row, peaks.xy, peaks.score) for row in people]


def find_peaks(maps: torch.Tensor, decoding: LightweightDecoding,
               tiles: SmoothingTiles) -> Peaks:
    """Part candidates (step 2 above) of 18 x h x w heatmaps, upsampled by ``tiles``
    (the upsampling operators, no smoothing).

    Values below the threshold count as 0, so a peak is a pixel >= the threshold and
    > its four neighbours (one below the threshold is below the pixel too): the
    tiled search of :func:`~posecli.parse.tiles.smoothed_maxima` in its strict form,
    which computes the full-resolution maps only where they reach the threshold.
    """
    index, value = smoothed_maxima(maps.float(), tiles, decoding.peak_threshold, strict=True)
    part, y, x = index.cpu().numpy().T
    xy = np.stack([x, y], axis=1).astype(np.float64)
    score = value.double().cpu().numpy()
    order = np.lexsort((xy[:, 1], xy[:, 0], part))  # by part, then x, then y
    part, xy, score = part[order], xy[order], score[order]
    keep = _suppress_close(part, xy, decoding.peak_min_distance)
    return Peaks(part[keep], xy[keep], score[keep])


def _suppress_close(part: np.ndarray, xy: np.ndarray, min_distance: float) -> np.ndarray:
    """Which peaks survive the visit in order, where a peak closer than ``min_distance`` to
    an earlier kept peak of its part is dropped.

    ``part``, ``xy``: K peaks in visiting order (by part, then x, then y). Only peaks
    of one part less than ``min_distance`` apart in x can be close, so each peak is
    compared with the earlier ones in that window. The visit's outcome is the fixed
    point of "kept unless an earlier kept peak is close": computed in rounds over all
    peaks at once, each round settling at least the next peak of every chain (a few
    rounds in practice).
    """
    n = len(part)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    # (part, x) as one sorted number, parts further apart than any window.
    key = part * (np.ptp(xy[:, 0]) + 2 * min_distance + 1) + xy[:, 0]
    first = np.searchsorted(key, key - min_distance, side="right")
    counts = np.arange(n) - first  # earlier peaks in each one's window
    later = np.repeat(np.arange(n), counts)
    earlier = np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(
        np.cumsum(counts) - counts, counts)
    close = np.linalg.norm(xy[later] - xy[earlier], axis=1) < min_distance
    later, earlier = later[close], earlier[close]
    while True:
        update = np.bincount(later, weights=keep[earlier], minlength=n) == 0
        if (update == keep).all():
            return keep
        keep = update


def score_pairs(pairs: Candidates, peaks: Peaks, pafs: torch.Tensor,
                operators: AffinityOperators,
                decoding: LightweightDecoding) -> tuple[np.ndarray, np.ndarray]:
    """Mean PAF projection over the valid points of each candidate pair, and whether the
    pair is a candidate (step 3 above). ``pafs``: 38 x h x w float32 maps, upsampled by
    ``operators``. Returns (P scores, P bools); a pair that cannot have enough valid
    points is passed over without reading the field (score -inf)."""

    def exact(samples: LimbSamples, read: FieldReader) -> tuple[np.ndarray, np.ndarray]:
        # Coincident parts have a zero unit vector: no point supports them.
        along = projections(samples, read)
        valid = along > decoding.paf_sample_threshold
        count = valid.sum(1)
        score = (along * valid).sum(1) / count.clamp_min(1)
        ok = (count > decoding.paf_min_fraction * decoding.paf_samples) & (score > 0)
        return score.double().cpu().numpy(), ok.cpu().numpy()

    return score_supported_pairs(pairs, peaks, pafs, operators, decoding.paf_samples,
                                 decoding.paf_sample_threshold, decoding.paf_min_fraction,
                                 exact)


def assemble(connections: Connections, peak_scores: np.ndarray,
             decoding: LightweightDecoding) -> np.ndarray:
    """Accepted limbs -> people as a (people, 20) array (step 4-5 above): columns 0..17 the
    global peak index of each part (-1 if missing), 18 the total score, 19 the part count.

    Loops run over accepted limbs (about 19 per person), never pixels or pairs.
    """
    people = np.full((0, NUM_PARTS + 2), -1.0)
    for limb, peak_a, peak_b, limb_score in zip(
            connections.limb, connections.a, connections.b, connections.score):
        part_a, part_b = LIMBS[limb]
        if limb in _FILL_ONLY_LIMBS:
            fill_b = (people[:, part_a] == peak_a) & (people[:, part_b] == -1)
            fill_a = ~fill_b & (people[:, part_b] == peak_b) & (people[:, part_a] == -1)
            people[fill_b, part_b] = peak_b
            people[fill_a, part_a] = peak_a
            continue
        owners = people[:, part_a] == peak_a
        if owners.any():
            people[owners, part_b] = peak_b
            people[owners, COUNT] += 1
            people[owners, TOTAL] += peak_scores[peak_b] + limb_score
        else:
            row = np.full(NUM_PARTS + 2, -1.0)
            row[part_a], row[part_b] = peak_a, peak_b
            row[COUNT] = 2
            row[TOTAL] = peak_scores[peak_a] + peak_scores[peak_b] + limb_score
            people = np.vstack([people, row])
    keep = (people[:, COUNT] >= decoding.min_parts) & (
        people[:, TOTAL] / np.maximum(people[:, COUNT], 1) >= decoding.min_mean_score)
    return people[keep]
