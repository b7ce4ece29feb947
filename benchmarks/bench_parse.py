"""Benchmark of the PAF parser (posecli.parse) on ideal network outputs.

For 1, 5, 20 and 50 people (rendered by ``tests/render_maps.py``, the maps a
perfect network would output) in a 768x576 and a 1920x1080 frame at 368-pixel
net height, prints the median time per frame of ``parse_batch`` and of each of
its stages: peaks (smoothing and local maxima over the tiles that can hold one),
pairs (enumerating candidate pairs and their PAF line integrals), matching
(greedy per limb) and assembly; and, side by side on the same maps, the time of
the reference parse (tests/test_parse.py's loop-by-loop port of pytorch-openpose's
``body.py``) with the speed-up over it.

    python benchmarks/bench_parse.py [--device cuda] [--repeats 9]

The functions (:func:`scene`, :func:`time_stages`, :func:`time_reference`) are
importable by other benchmarks.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from machine import describe, sync  # noqa: E402
from render_maps import crowd, render_maps  # noqa: E402

from posecli.parse import ParseParams, parse_batch  # noqa: E402
from posecli.parse.affinity import score_pairs  # noqa: E402
from posecli.parse.assemble import assemble  # noqa: E402
from posecli.parse.limbs import enumerate_pairs, greedy_match  # noqa: E402
from posecli.parse.parse import parse_operators, without_negligible  # noqa: E402
from posecli.parse.peaks import find_peaks  # noqa: E402
from posecli.preprocess import Geometry, plan_geometry  # noqa: E402
from posecli.skeleton import NUM_PARTS  # noqa: E402

STAGES = ("peaks", "pairs", "matching", "assembly")
#: Clocks: wall time, or the process's CPU time (all its threads), which other
#: processes' load hardly changes; with one torch thread (--threads 1) both agree on
#: a quiet machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def rows_for(count: int, height: int, width: int) -> int:
    """Rows of people so that they are about as tall as their row allows."""
    return max(1, round(math.sqrt(count * height / (2.67 * width))))


def scene(count: int, width: int, height: int, net_height: int = 368,
          device: torch.device | str = "cpu"
          ) -> tuple[Geometry, torch.Tensor, torch.Tensor, np.ndarray]:
    """``count`` people side by side in rows: (geometry, heatmaps 1 x 19 x h x w,
    pafs 1 x 38 x h x w on ``device``, the people P x 18 x 2 in pixels)."""
    geometry = plan_geometry(height, width, net_height)
    people = crowd(count, geometry, np.random.default_rng(count),
                   rows=rows_for(count, height, width))
    heatmaps, pafs = render_maps(people, geometry)
    return geometry, heatmaps.to(device), pafs.to(device), people


def _median_ms(fn: Callable[[], object], repeats: int, device: torch.device,
               clock: str = "wall") -> float:
    now = CLOCKS[clock]
    times = []
    for _ in range(repeats):
        sync(device)
        start = now()
        fn()
        sync(device)
        times.append(now() - start)
    return 1000 * statistics.median(times)


def time_stages(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                params: ParseParams | None = None, repeats: int = 5,
                clock: str = "wall") -> dict[str, float]:
    """Median ms per frame of ``parse_batch`` ("total") and of each stage of one
    frame's parse (:data:`STAGES`), for a 1-frame batch; also the counts of people,
    peaks and candidate pairs. Operators are built before timing."""
    params = params or ParseParams()
    device = heatmaps.device
    operators = parse_operators(geometry, params.smoothing_sigma, device)
    result: dict[str, float] = {
        "people": len(parse_batch(heatmaps, pafs, geometry, params)[0]),  # also a warm-up
        "total": _median_ms(lambda: parse_batch(heatmaps, pafs, geometry, params), repeats,
                            device, clock)}
    parts, paf_maps = without_negligible(heatmaps[0, :NUM_PARTS]), without_negligible(pafs[0])

    def find():
        return find_peaks(parts, operators.smoothing, operators.affinity.banded_rows,
                          operators.affinity.cols, params.peak_threshold,
                          params.max_peaks_per_part)

    def pairs_of(peaks):
        pairs = enumerate_pairs(peaks)
        return pairs, *score_pairs(pairs, peaks, paf_maps, operators.affinity,
                                   geometry.height, params)

    peaks = find()
    pairs, score, ok = pairs_of(peaks)
    connections = greedy_match(pairs, score, ok)
    result["peaks"] = _median_ms(find, repeats, device, clock)
    result["pairs"] = _median_ms(lambda: pairs_of(peaks), repeats, device, clock)
    result["matching"] = _median_ms(lambda: greedy_match(pairs, score, ok), repeats, device,
                                    clock)
    result["assembly"] = _median_ms(lambda: assemble(connections, peaks.score, params),
                                    repeats, device, clock)
    result["peak count"], result["pair count"] = len(peaks.part), len(pairs.limb)
    return result


def time_reference(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                   repeats: int = 3, clock: str = "wall") -> tuple[float, int]:
    """(median ms, people found) of the reference parse on the same maps (CPU)."""
    from test_parse import reference_parse

    heat, paf = heatmaps[0].cpu().numpy(), pafs[0].cpu().numpy()
    people = len(reference_parse(heat, paf, geometry))
    return _median_ms(lambda: reference_parse(heat, paf, geometry), repeats,
                      torch.device("cpu"), clock), people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per case")
    parser.add_argument("--people", default="1,5,20,50", help="comma-separated counts")
    parser.add_argument("--frames", default="768x576,1920x1080", help="WIDTHxHEIGHT,...")
    parser.add_argument("--net-height", type=int, default=368)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--reference", default="768x576:20",
                        help="cases (WIDTHxHEIGHT:PEOPLE,...) where the reference parse is "
                             "timed too ('all', or '' for none; it takes seconds a frame)")
    parser.add_argument("--reference-repeats", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (robust to other load; use "
                             "with --threads 1)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 150))
    console.print(describe(device))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    table = Table(title=f"parse time per frame ({args.clock} clock), median of {args.repeats} "
                        f"runs (ms), net height {args.net_height}; load average {load:.1f} "
                        "at start")
    for column in ("frame", "maps", "people", "found", "peaks#", "pairs#", "peaks", "pairs",
                   "matching", "assembly", "parse_batch", "reference", "speed-up"):
        table.add_column(column, justify="right")
    for frame in args.frames.split(","):
        width, height = (int(v) for v in frame.lower().split("x"))
        for count in (int(v) for v in args.people.split(",")):
            geometry, heatmaps, pafs, _ = scene(count, width, height, args.net_height, device)
            times = time_stages(heatmaps, pafs, geometry, repeats=args.repeats,
                                clock=args.clock)
            reference, speed_up = "", ""
            if args.reference == "all" or f"{width}x{height}:{count}" in args.reference:
                ms, found = time_reference(heatmaps, pafs, geometry, args.reference_repeats,
                                           args.clock)
                reference = f"{ms:.0f}" + ("" if found == times["people"] else " (differs!)")
                speed_up = f"{ms / times['total']:.0f}x"
            table.add_row(
                f"{width}x{height}", f"{geometry.map_width}x{geometry.map_height}", str(count),
                str(times["people"]), str(times["peak count"]), str(times["pair count"]),
                *(f"{times[name]:.1f}" for name in (*STAGES, "total")), reference, speed_up)
    console.print(table)
    console.print("Stages are timed one by one on one frame; parse_batch is the whole call "
                  "(1-frame batch). reference: tests/test_parse.py's port of pytorch-openpose's "
                  "parse (body.py, numpy loops), same maps, CPU.")
    console.print(f"load average at the end: {os.getloadavg()[0]:.1f}"
                  if hasattr(os, "getloadavg") else "")


if __name__ == "__main__":
    main()
