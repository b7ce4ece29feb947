"""Benchmark of the batch engines: the local engine against ``--engine ray`` on this machine.

For each clip length, ``posecli synth`` draws 8 clips (256x192, 10 fps); the
demo model runs them at a small net height through the local engine (this
process, every torch thread) and through the Ray engine on a new local Ray
instance with 2 workers (one CPU each), the way ``posecli batch`` does. Prints
medians over the repeats of:

* totals: the local engine's model load + processing, against Ray's start,
  its workers' start and model load, processing, and shutdown;
* the Ray path's overhead per video, with one worker: the driver's processing
  time minus the time the worker spent in the jobs (handing a video out,
  returning its result, progress, idle gaps), per clip, and what share of a
  clip's own time that is, by clip length; beside it, a clip's time on the local
  engine on one torch thread (the same compute, in another process).

    python benchmarks/bench_engines.py [--lengths 5,20,80] [--repeats 3] [--net-height 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import describe  # benchmarks/, the script's folder
from rich.console import Console
from rich.table import Table

from posecli.batch import RunnerSpec, local_engine, plan_jobs, run_batch
from posecli.batch.ray_engine import RayEngine, RaySession, RaySettings
from posecli.parse import ParseParams
from posecli.weights.store import resolve_weights

CLIPS = 8


def make_clips(folder: Path, frames: int) -> Path:
    """8 synthetic clips of ``frames`` frames under ``folder``/videos."""
    subprocess.run([sys.executable, "-m", "posecli", "synth", str(folder), "--images", "0",
                    "--videos", str(CLIPS), "--video-frames", str(frames), "--width", "256",
                    "--height", "192", "--seed", "7"], check=True, capture_output=True)
    return folder / "videos"


def local_run(videos: Path, out: Path, spec: RunnerSpec, threads: int) -> dict[str, float]:
    """The local engine on ``threads`` torch threads: model load and processing (s)."""
    torch.set_num_threads(threads)
    jobs = plan_jobs([str(videos)], out, ".json")
    started = time.perf_counter()
    runner = spec.build()
    loaded = time.perf_counter()
    report = run_batch(jobs, local_engine(runner))
    assert report.count("ok") == CLIPS, report.results
    done = time.perf_counter()
    return {"load": loaded - started, "loop": done - loaded,
            "frames": report.totals()["frames"]}


def ray_run(videos: Path, out: Path, spec: RunnerSpec, workers: int) -> dict[str, float]:
    """The Ray engine (Ray already started): the driver's weights check, the workers'
    start and model load (until the first video is handed out), and processing (s)."""
    jobs = plan_jobs([str(videos)], out, ".json")
    started = time.perf_counter()
    runner = spec.build(device="cpu")  # as posecli batch: the driver checks the weights
    engine = RayEngine(spec, runner.model.weights.sha256, workers, 0.0)
    first: list[float] = []

    def timed(pending, on_start: Callable):
        def start(job):
            if not first:
                first.append(time.perf_counter())
            on_start(job)
        return engine(pending, start)

    checked = time.perf_counter()
    report = run_batch(jobs, timed)
    assert report.count("ok") == CLIPS, report.results
    done = time.perf_counter()
    return {"check": checked - started, "workers": first[0] - checked, "loop": done - first[0],
            "frames": report.totals()["frames"], "in_jobs": report.totals()["seconds"]}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="5,20,80", help="frames per clip, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--net-height", type=int, default=128)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    load_before = os.getloadavg()
    threads = torch.get_num_threads()
    spec = RunnerSpec(str(resolve_weights("demo")), "cpu", args.net_height, ParseParams(),
                      "coco", 8)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        videos = {n: make_clips(root / f"clips{n}", n) for n in lengths}
        local: dict[int, list] = {n: [] for n in lengths}
        one_thread: dict[int, list] = {n: [] for n in lengths}
        two_workers: dict[int, list] = {n: [] for n in lengths}
        one_worker: dict[int, list] = {n: [] for n in lengths}
        sessions: list[dict[str, float]] = []
        for repeat in range(args.repeats):
            for n in lengths:
                local[n].append(local_run(videos[n], root / f"l{repeat}_{n}", spec, threads))
                one_thread[n].append(local_run(videos[n], root / f"t{repeat}_{n}", spec, 1))
            torch.set_num_threads(threads)
            started = time.perf_counter()
            with RaySession(RaySettings()):
                up = time.perf_counter()
                for n in lengths:
                    two_workers[n].append(ray_run(videos[n], root / f"r{repeat}_{n}", spec, 2))
                    one_worker[n].append(ray_run(videos[n], root / f"o{repeat}_{n}", spec, 1))
                closing = time.perf_counter()
            sessions.append({"start": up - started, "stop": time.perf_counter() - closing})

    console = Console(width=130)
    load = os.getloadavg()
    console.print(f"{describe(torch.device('cpu'))}\nload average (1 min) {load_before[0]:.1f} "
                  f"before, {load[0]:.1f} after | {CLIPS} clips of 256x192 per length, demo "
                  f"model, net height {args.net_height}, batch 8 | medians of {args.repeats} "
                  "repeats")
    start, stop = median(sessions, "start"), median(sessions, "stop")
    totals = Table(title=f"Totals: local engine ({threads} torch threads) vs --engine ray "
                         f"--workers 2 (Ray start {start:.1f} s, shutdown {stop:.1f} s)")
    for column in ("frames/clip", "local: load + run s", "local fps", "ray: total s",
                   "ray: workers ready s", "ray: run s", "ray fps (run)", "ray / local"):
        totals.add_column(column, justify="right")
    for n in lengths:
        local_total = median(local[n], "load") + median(local[n], "loop")
        ray_total = (start + median(two_workers[n], "check") + median(two_workers[n], "workers")
                     + median(two_workers[n], "loop") + stop)
        frames = CLIPS * n
        totals.add_row(str(n), f"{local_total:.1f}", f"{frames / median(local[n], 'loop'):.1f}",
                       f"{ray_total:.1f}", f"{median(two_workers[n], 'workers'):.1f}",
                       f"{median(two_workers[n], 'loop'):.1f}",
                       f"{frames / median(two_workers[n], 'loop'):.1f}",
                       f"{ray_total / local_total:.2f}x")
    console.print(totals)
    overhead = Table(title="Ray path overhead per video (1 Ray worker): driver's run time "
                           "minus the worker's time in the jobs")
    for column in ("frames/clip", "local 1 thread: s/clip", "ray worker: s/clip in the job",
                   "overhead ms/clip", "overhead / clip time"):
        overhead.add_column(column, justify="right")
    for n in lengths:
        per_local = median(one_thread[n], "loop") / CLIPS
        in_job = median(one_worker[n], "in_jobs") / CLIPS
        gap = statistics.median(run["loop"] - run["in_jobs"] for run in one_worker[n]) / CLIPS
        overhead.add_row(str(n), f"{per_local:.3f}", f"{in_job:.3f}", f"{gap * 1000:.0f}",
                         f"{gap / in_job:.1%}")
    console.print(overhead)


if __name__ == "__main__":
    main()
