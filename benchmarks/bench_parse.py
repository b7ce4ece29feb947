"""Benchmark of the PAF parser (posecli.parse) on ideal network outputs.

For 1, 5, 20 and 50 people (rendered by ``tests/render_maps.py``, the maps a
perfect network would output) in a 768x576 and a 1920x1080 frame at 368-pixel
net height, prints the median time per frame of ``parse_batch`` and of each of
its stages: peaks (upsampling, smoothing, local maxima), pair scoring (PAF line
integrals of every candidate pair), matching (greedy per limb) and assembly.

    python benchmarks/bench_parse.py [--device cuda] [--repeats 9]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from machine import describe, sync  # noqa: E402
from render_maps import crowd, render_maps  # noqa: E402

from posecli.parse import ParseParams, parse_batch  # noqa: E402
from posecli.parse.assemble import assemble  # noqa: E402
from posecli.parse.limbs import enumerate_pairs, greedy_match, score_pairs  # noqa: E402
from posecli.parse.peaks import find_peaks  # noqa: E402
from posecli.parse.resample import map_operators, operators_on  # noqa: E402
from posecli.preprocess import plan_geometry  # noqa: E402
from posecli.skeleton import NUM_PARTS  # noqa: E402


def rows_for(count: int, height: int, width: int) -> int:
    """Rows of people so that they are about as tall as their row allows."""
    return max(1, round(math.sqrt(count * height / (2.67 * width))))


class Timer:
    """Wall-clock times of named stages, synchronising the device around each."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, list[float]] = {}


    def run(self, name: str, fn, *args):
        sync(self.device)
        start = time.perf_counter()
        result = fn(*args)
        sync(self.device)
        self.times.setdefault(name, []).append(time.perf_counter() - start)
        return result

    def median_ms(self, name: str) -> float:
        return 1000 * statistics.median(self.times[name])


def staged_parse(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry, params: ParseParams,
                 timer: Timer) -> tuple[int, int, int]:
    """parse_frame's stages one by one, timed. Returns (peaks, pairs, people)."""
    rows, cols, smooth_rows, smooth_cols = operators_on(geometry, params.smoothing_sigma,
                                                        heatmaps.device)
    parts = heatmaps[:NUM_PARTS].float()
    peaks = timer.run("peaks", find_peaks, parts, rows, cols, smooth_rows, smooth_cols,
                      params.peak_threshold)

    def scoring():
        pairs = enumerate_pairs(peaks)
        return pairs, *score_pairs(pairs, peaks, pafs.float(), rows, cols, geometry.height,
                                   params)

    pairs, score, ok = timer.run("scoring", scoring)
    connections = timer.run("matching", greedy_match, pairs, score, ok)
    people = timer.run("assembly", assemble, connections, peaks.score, params)
    return len(peaks.part), len(pairs.limb), len(people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--people", default="1,5,20,50", help="comma-separated counts")
    parser.add_argument("--frames", default="768x576,1920x1080", help="WIDTHxHEIGHT,...")
    parser.add_argument("--net-height", type=int, default=368)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = ParseParams()
    console = Console(width=max(Console().width, 150))
    console.print(describe(device))

    table = Table(title=f"parse time per frame, median of {args.repeats} runs (ms), "
                        f"net height {args.net_height}")
    for column in ("frame", "maps", "people", "found", "peaks", "pairs", "parse_batch",
                   "peaks", "scoring", "matching", "assembly", "operators*"):
        table.add_column(column, justify="right")

    for frame in args.frames.split(","):
        width, height = (int(v) for v in frame.lower().split("x"))
        geometry = plan_geometry(height, width, args.net_height)
        map_operators.cache_clear()
        start = time.perf_counter()
        map_operators(geometry, params.smoothing_sigma)
        operators_ms = 1000 * (time.perf_counter() - start)
        for count in (int(v) for v in args.people.split(",")):
            rng = np.random.default_rng(count)
            people = crowd(count, geometry, rng, rows=rows_for(count, height, width))
            heatmaps, pafs = (m.to(device) for m in render_maps(people, geometry))
            timer = Timer(device)
            found = parse_batch(heatmaps, pafs, geometry, params)[0]  # warm-up
            for _ in range(args.repeats):
                timer.run("total", parse_batch, heatmaps, pafs, geometry, params)
                n_peaks, n_pairs, _ = staged_parse(heatmaps[0], pafs[0], geometry, params,
                                                   timer)
            table.add_row(
                f"{width}x{height}", f"{geometry.map_width}x{geometry.map_height}", str(count),
                str(len(found)), str(n_peaks), str(n_pairs),
                *(f"{timer.median_ms(name):.1f}"
                  for name in ("total", "peaks", "scoring", "matching", "assembly")),
                f"{operators_ms:.0f}")
    console.print(table)
    console.print("* operators: one-off cost of building a frame size's upsampling and "
                  "smoothing matrices (cached afterwards, not in the other columns).")


if __name__ == "__main__":
    main()
