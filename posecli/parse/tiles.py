"""Local maxima of the smoothed heatmaps, computed only where they can exceed the threshold.

A part's smoothed full-resolution heatmap is ``S = GA @ m @ GB.T`` (H x W; ``m`` the
h x w network map, ``GA`` H x h and ``GB`` W x w the upsampling-and-smoothing
operators of :mod:`.resample`). Its peaks are the pixels above the threshold that are
>= their four neighbours (0 outside the frame). Computing ``S`` whole costs H*W*w
products per part and a full-resolution comparison pass per neighbour; yet on a real
frame most pixels are far below the threshold. So, for all parts at once:

1. ``T = GA @ m`` exactly (H x w per part: cheap, as w is 46..82 cells).
2. The frame is cut into tiles of :data:`TILE_ROWS` x :data:`TILE_COLS` pixels. Every
   (part, tile) gets an upper bound of ``S`` over the tile from the tile's extreme values
   of ``T`` and of ``GB`` (see :func:`_candidate_tiles` for the proof): two small
   matrix products.
3. Only on tiles whose bound can exceed the threshold, ``S`` is computed exactly, one
   tile row at a time, with one halo pixel on either side for the horizontal neighbour
   test. ``GB`` is banded, so a tile's columns depend on ``band_width`` (6..9) map
   columns of ``T`` only: one short dot product per pixel.
4. The pixels that are >= their left and right neighbours and above the threshold (a
   few per tile row) are compared with the pixels above and below them: in the tile,
   or, on a tile's first and last rows, computed one by one the same banded way.

The result is exactly the full search's: a pixel above the threshold lies in a tile
whose bound exceeds it, and all four of its neighbours are computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .resample import Banded, band_of, banded

#: log2 of the tile height in pixels: small, as the bound takes T's largest value over
#: the tile's rows.
TILE_ROWS_BITS = 3
TILE_ROWS = 1 << TILE_ROWS_BITS
#: log2 of the tile width in pixels (at least 8, see :func:`_nonzero_2d`).
TILE_COLS_BITS = 5
TILE_COLS = 1 << TILE_COLS_BITS
#: Tile rows whose exact values are computed at once: bounds the working memory (about
#: 2 MB) so that it stays in cache.
CHUNK_ROWS = 16384


@dataclass(frozen=True)
class SmoothingTiles:
    """The operators of ``S = GA @ m @ GB.T``, cut into column tiles (all float32).

    ``rows``: GA, H x h. ``band_start``: for each of the ``n`` column tiles, the first
    of the ``band_width`` consecutive map columns its pixels (and halo) depend on.
    ``tile_weights``: n x band_width x (TILE_COLS + 2), GB restricted to a tile's band
    (columns: one halo pixel, the tile's pixels, one halo pixel; 0 outside the frame).
    ``pos_max`` / ``neg_max``: w x n, the largest positive / negative part of GB over
    each tile's pixels; ``abs_max``: n, the largest ``pos_max + neg_max`` over the map
    columns. ``columns``: GB banded, for single pixels.
    """

    rows: torch.Tensor
    band_start: tuple[int, ...]
    tile_weights: torch.Tensor
    pos_max: torch.Tensor
    neg_max: torch.Tensor
    abs_max: torch.Tensor
    columns: Banded

    @property
    def height(self) -> int:
        return self.rows.shape[0]

    @property
    def width(self) -> int:
        return self.columns.start.shape[0]

    @property
    def band_width(self) -> int:
        return self.tile_weights.shape[1]


def smoothing_tiles(ga: np.ndarray, gb: np.ndarray,
                    device: torch.device | str = "cpu") -> SmoothingTiles:
    """:class:`SmoothingTiles` of the operators GA (H x h) and GB (W x w)."""
    ga, gb = ga.astype(np.float32), gb.astype(np.float32)
    width, map_width = gb.shape
    n = -(-width // TILE_COLS)
    padded = np.zeros((n * TILE_COLS + 2, map_width), np.float32)  # row c + 1: pixel c
    padded[1:width + 1] = gb
    with_halo = padded[np.arange(n)[:, None] * TILE_COLS + np.arange(TILE_COLS + 2)]
    start, band_width = band_of(np.abs(with_halo).max(axis=1))
    tile_weights = np.take_along_axis(
        with_halo, (start[:, None] + np.arange(band_width))[:, None, :], axis=2)
    inside = padded[1:n * TILE_COLS + 1].reshape(n, TILE_COLS, map_width)
    pos_max = np.maximum(inside, 0).max(axis=1).T
    neg_max = np.maximum(-inside, 0).max(axis=1).T

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return SmoothingTiles(tensor(ga), tuple(start.tolist()),
                          tensor(tile_weights.transpose(0, 2, 1)), tensor(pos_max),
                          tensor(neg_max), tensor((pos_max + neg_max).max(axis=0)),
                          banded(gb, device))


def smoothed_maxima(maps: torch.Tensor, tiles: SmoothingTiles, threshold: float,
                    strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of ``tiles.rows @ maps @ GB.T``: (K, 3) int64 (part, y, x) in that order,
    and their K float32 smoothed values.

    maps: (P, h, w) float32 network maps. A peak is a pixel >= each of its four
    neighbours (outside the frame counts as 0) and > ``threshold`` (>= 0); plateaus
    yield every pixel. ``strict``: a pixel > each of its neighbours and >= the
    threshold instead (Lightweight OpenPose's rule; plateaus yield none). Same result
    as the search over the whole smoothed maps.
    """
    parts, map_height, map_width = maps.shape
    height, width = tiles.height, tiles.width
    n_row_tiles = -(-height // TILE_ROWS)
    # T with frame row y at index y + 1, zero rows above and below: (rows, parts, w).
    padded_rows = n_row_tiles * TILE_ROWS + 2
    rows_t = maps.new_empty(padded_rows, parts, map_width)
    rows_t[0] = 0
    rows_t[height + 1:] = 0
    torch.mm(tiles.rows, maps.permute(1, 0, 2).reshape(map_height, parts * map_width),
             out=rows_t[1:height + 1].view(height, parts * map_width))
    col_tile, part, row_tile = _candidate_tiles(rows_t, tiles, threshold)
    if part.numel() == 0:
        return torch.zeros(0, 3, dtype=torch.long, device=maps.device), maps.new_zeros(0)

    # The candidates' tile rows as rows of T viewed as (padded_rows * parts, w), grouped
    # by column tile (nonzero returned them in that order).
    flat_rows = rows_t.view(padded_rows * parts, map_width)
    first_row = (row_tile * TILE_ROWS + 1) * parts + part
    row_index = (first_row[:, None] + parts * torch.arange(TILE_ROWS, device=maps.device))
    row_index = row_index.view(-1)
    counts = torch.bincount(col_tile, minlength=len(tiles.band_start)).tolist()
    found, offset, used = [], 0, 0
    chunk = maps.new_empty(CHUNK_ROWS + max(counts) * TILE_ROWS, TILE_COLS + 2)
    for tile, count in enumerate(counts):
        if count == 0:
            continue
        n = count * TILE_ROWS
        band = slice(tiles.band_start[tile], tiles.band_start[tile] + tiles.band_width)
        torch.mm(flat_rows[:, band].index_select(0, row_index[offset + used:offset + used + n]),
                 tiles.tile_weights[tile], out=chunk[used:used + n])
        used += n
        if used >= CHUNK_ROWS:
            found.append(_chunk_maxima(chunk[:used], threshold, offset, strict))
            offset, used = offset + used, 0
    if used:
        found.append(_chunk_maxima(chunk[:used], threshold, offset, strict))
    tile_row, x_in_tile, value, decided = (torch.cat(column) for column in zip(*found))

    candidate, y_in_tile = tile_row >> TILE_ROWS_BITS, tile_row & (TILE_ROWS - 1)
    part = part[candidate]
    y = row_tile[candidate] * TILE_ROWS + y_in_tile
    x = col_tile[candidate] * TILE_COLS + x_in_tile
    # A tile's first and last rows: the neighbour outside the tile, one pixel at a time.
    edge = torch.nonzero(~decided)[:, 0]
    part_e, y_e, x_e = part[edge], y[edge], x[edge]
    above = _pixel_values(rows_t, tiles.columns, part_e, y_e, x_e)  # T row y: index y + 1
    below = _pixel_values(rows_t, tiles.columns, part_e, y_e + 2, x_e)
    beats = torch.gt if strict else torch.ge
    decided[edge] = beats(value[edge], above) & beats(value[edge], below)
    peak = torch.nonzero(decided)[:, 0]
    part, y, x, value = part[peak], y[peak], x[peak], value[peak]
    order = torch.argsort((part * height + y) * width + x)
    return torch.stack([part[order], y[order], x[order]], dim=1), value[order]


def _candidate_tiles(rows_t: torch.Tensor, tiles: SmoothingTiles,
                     threshold: float) -> tuple[torch.Tensor, ...]:
    """(column tile, part, row tile) of every tile whose bound exceeds the threshold,
    ordered by column tile.

    The bound. For a tile of rows R and columns C and a part, ``S[r, c] = sum_j T[r, j]
    GB[c, j]``. Write every number as x = x+ - x- (x+ = max(x, 0), x- = max(-x, 0)):
    ``T G = T+ G+ + T- G- - T+ G- - T- G+ <= T+ G+ + T- G-``, the dropped terms being
    products of non-negative numbers. Each factor is at most its largest value over the
    tile: ``T+[r, j] <= U+_j = max(max_R T[., j], 0)``, ``T-[r, j] <= U-_j = max(-min_R
    T[., j], 0)``, ``G+[c, j] <= V+_j = max_C GB+[., j]``, ``G-[c, j] <= V-_j``. All are
    >= 0, hence for every pixel of the tile ``S[r, c] <= sum_j U+_j V+_j + U-_j V-_j``.

    Rounding. T is the same float32 tensor the exact values are computed from, so only
    the dot products round: a computed value exceeds the real sum by at most
    ``k 2^-24 sum_j |T||GB|`` (k <= w + band products), and the computed bound, a sum
    of w non-negative products, is below the real one by at most ``w 2^-24`` of itself;
    both are at most ``sum_j (U+ + U-)_j (V+ + V-)_j <= sum_j (U+ + U-)_j max_j (V+ +
    V-)_j``. A tile is searched when the bound plus ``2 (w + band) 2^-24`` times the
    latter exceeds the threshold, so no pixel whose computed value exceeds the
    threshold is ever left out.
    """
    parts, map_width = rows_t.shape[1], rows_t.shape[2]
    inside = rows_t[1:-1].view(-1, TILE_ROWS, parts, map_width)
    largest, smallest = inside.amax(dim=1), inside.amin(dim=1)  # row tiles x parts x w
    pos, neg = largest.clamp(min=0), (-smallest).clamp(min=0)
    bound = pos @ tiles.pos_max + neg @ tiles.neg_max  # row tiles x parts x column tiles
    magnitude = (pos + neg).sum(dim=2, keepdim=True) * tiles.abs_max
    slack = 2.0 * (map_width + tiles.band_width) * 2.0 ** -24
    searched = bound + slack * magnitude > threshold
    col_tile, part, row_tile = searched.permute(2, 1, 0).nonzero().unbind(1)
    return col_tile, part, row_tile


def _chunk_maxima(values: torch.Tensor, threshold: float, offset: int, strict: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidate peaks in whole tiles' rows: pixels >= their left and right neighbours,
    > threshold and, except in a tile's first and last rows, >= the pixels above and
    below (``strict``: > the neighbours, >= the threshold).

    values: n x (TILE_COLS + 2) exact smoothed values of n / TILE_ROWS tiles, row by row,
    with their halo. Returns (tile row index + ``offset``, column within the tile,
    value, vertical test done): the vertical test is left to the caller (False) in a
    tile's first and last rows.
    """
    stride = TILE_COLS + 2
    beats = torch.gt if strict else torch.ge
    inner = values[:, 1:-1]
    row, column = _nonzero_2d(beats(inner, torch.maximum(values[:, :-2], values[:, 2:])))
    flat = values.view(-1)
    at = row * stride + column + 1
    value = flat.take(at)
    above = torch.nonzero(value >= threshold if strict else value > threshold)[:, 0]
    row, column, at, value = row[above], column[above], at[above], value[above]
    y_in_tile = row & (TILE_ROWS - 1)  # offset is a multiple of TILE_ROWS
    inside = (y_in_tile > 0) & (y_in_tile < TILE_ROWS - 1)
    up = flat.take((at - stride).clamp(min=0))
    down = flat.take((at + stride).clamp(max=flat.numel() - 1))
    keep = torch.nonzero(~inside | (beats(value, up) & beats(value, down)))[:, 0]
    return row[keep] + offset, column[keep], value[keep], inside[keep]


def _pixel_values(rows_t: torch.Tensor, columns: Banded, part: torch.Tensor,
                  row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``rows_t[row, part] . GB[x]`` for K pixels, using GB's band only (K float32)."""
    parts, map_width = rows_t.shape[1], rows_t.shape[2]
    base = (row * parts + part) * map_width + columns.start[x]
    index = base[:, None] + torch.arange(columns.width, device=base.device)
    return (rows_t.view(-1).take(index) * columns.weights[x]).sum(dim=1)


def _nonzero_2d(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) indices of the True entries of a contiguous n x TILE_COLS bool
    mask, in row-major order; fast when they are few: the mask is first scanned 8
    entries at a time (as int64 words), then only the non-zero words."""
    words = mask.view(torch.int64).view(-1).nonzero()[:, 0]
    word, byte = mask.view(-1, 8)[words].nonzero().unbind(1)
    flat = (words[word] << 3) + byte
    return flat >> TILE_COLS_BITS, flat & (TILE_COLS - 1)

