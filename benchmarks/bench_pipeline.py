"""Throughput of every stage and of the whole pipeline, per model and precision.

    python benchmarks/bench_pipeline.py                  # CPU-sized defaults, ~3 min
    python benchmarks/bench_pipeline.py --device cuda --batch-size 32 --frames 256 \\
        --net-height 368

Prints two tables, titled with the machine (benchmarks/machine.py):

* per model and precision, on the first ``--frames`` frames of vtest.avi
  (../shared/media; a generated 768x576 clip where it is missing) at
  ``--net-height``: the network (resize, normalise and the network:
  ``Estimator.maps``), the parse (``Estimator.decode``), decoding
  (``VideoReader``) and end to end (``process_video``: the three overlapped,
  into a sink that discards), each in frames/s, wall ms and CPU ms per frame
  (each stage on the kind of thread process_video runs it on), and end to end
  as a share of the network alone. "bound" is what overlap can give at most:
  the slowest stage's rate, and on a CPU also cores / (the three stages' CPU
  ms per frame, summed), since overlap only fills idle cores; "e2e / bound"
  is how much of that the pipeline reaches. Network and end to end are measured in
  alternation, ``--rounds`` times each, and the medians are shown, so a load
  that comes and goes hits both alike.
* decoding: posecli's ``VideoReader`` against plain threaded PyAV
  (``thread_type="AUTO"``, ``to_ndarray("rgb24")``), alternating, on vtest.avi
  and a generated 1920x1080 H.264 clip.

Models: ``demo`` (the built-in demonstration model, CMU layout, trained
weights), ``lightweight`` (Lightweight OpenPose's network with random weights:
its published checkpoint is not redistributable here, and speed does not depend
on the weights' values; its maps from random weights make the decoding's work
unrepresentative) and ``cmu`` (the full CMU network, random weights; likewise).
So each of these two gets a second row, "demo's maps parsed": its network runs
as measured, and its parse gets the demo model's maps of the same frames (a real
scene, about 19 people per frame on vtest.avi), the load a trained model's parse
would put beside the network (the demo model first: ``--models`` in that order).
Precisions: fp32, bf16 where the device has it natively, fp16 on CUDA.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from machine import describe, sync
from rich.console import Console
from rich.table import Table

from posecli.families import LIGHTWEIGHT
from posecli.interrupts import run_interruptibly
from posecli.lightweight.network import LightweightNet
from posecli.model import PoseNet
from posecli.pipeline import (
    Estimator,
    NetworkMaps,
    PoseModel,
    load_model,
    process_video,
    start_parse_thread,
)
from posecli.precision import cast_network, native_bf16
from posecli.sinks import Sink
from posecli.video import FrameBatch, VideoReader

SHARED_VTEST = Path(__file__).resolve().parents[2] / "shared" / "media" / "vtest.avi"
MODELS = ("demo", "lightweight", "cmu")


def make_clip(folder: Path, name: str, width: int, height: int, frames: int,
              codec: str = "libx264") -> Path:
    """A generated clip of moving gradients (``frames`` frames, 30 fps, yuv420p)."""
    path = folder / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
        for i in range(frames):
            image = ((x + y + 8 * i) % 256).astype(np.uint8).repeat(3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def plain_pyav(path: Path) -> int:
    """Plain threaded PyAV decoding to RGB arrays: the frames decoded."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def posecli_reader(path: Path, batch_size: int = 8, frames: slice | None = None) -> int:
    """posecli's VideoReader: the frames decoded."""
    count = 0
    with VideoReader(str(path), batch_size, frames) as reader:
        for batch in reader:
            count += len(batch)
    return count


class Rate:
    """Frames/s of ``function()`` (which returns the frames it handled), and the CPU
    time it took per frame in ms (all threads of this process: the work done, which
    a load from other processes changes less than the wall time)."""

    def __init__(self, function: Callable[[], int]) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        count = function()
        self.fps = count / (time.perf_counter() - started)
        self.cpu_ms = (time.process_time() - cpu) / count * 1000


def median(rates: list[Rate]) -> Rate:
    """The run of median frames/s."""
    return sorted(rates, key=lambda r: r.fps)[len(rates) // 2]


def build(name: str, device: torch.device, precision: str) -> PoseModel:
    """The benchmarked model ``name`` on ``device``, cast to ``precision``."""
    if name == "demo":
        return load_model("demo", str(device), precision)
    torch.manual_seed(0)
    if name == "lightweight":
        network, family = LightweightNet(), LIGHTWEIGHT
    else:
        network, family = PoseNet(), None
    network = cast_network(network.eval().to(device), precision)
    return PoseModel(network, None, device, family, precision)


class _Discard(Sink):
    def add(self, batch: FrameBatch, frames: list) -> None:
        pass

    def finish(self, info: dict) -> None:
        pass


class SceneMaps(Estimator):
    """An Estimator whose network runs as usual but whose parse gets ``scene``'s maps,
    in turn (one per batch, in order): maps of a real scene for a network with random
    weights, whose own maps are noise (a parse's worst case, not a scene's)."""

    def __init__(self, model: PoseModel, net_height: int, scene: list[NetworkMaps]) -> None:
        super().__init__(model, net_height)
        self.scene, self.calls = scene, 0

    def maps(self, frames) -> NetworkMaps:
        super().maps(frames)
        self.calls += 1
        return self.scene[(self.calls - 1) % len(self.scene)]


def measure_model(model: PoseModel, path: Path, frames: int, batch_size: int,
                  net_height: int, rounds: int,
                  scene: list[NetworkMaps] | None = None
                  ) -> tuple[dict[str, Rate], list[NetworkMaps]]:
    """Frames/s of the network, the parse and end to end on ``path``'s first frames
    (parsing ``scene``'s maps instead of the network's when given: see SceneMaps),
    and the maps the parse got, one per batch."""
    estimator = (Estimator(model, net_height) if scene is None
                 else SceneMaps(model, net_height, scene))
    with VideoReader(str(path), batch_size, slice(0, frames)) as reader:
        batches = list(reader)
    count = sum(len(b) for b in batches)
    run_interruptibly(estimator.maps, batches[0].frames)  # warm-up (oneDNN picks kernels)
    maps: list[NetworkMaps] = []

    def network() -> int:  # on worker threads, as process_video runs it
        maps.clear()
        if scene is not None:
            estimator.calls = 0
        for batch in batches:
            maps.append(run_interruptibly(estimator.maps, batch.frames))
        sync(model.device)
        return count

    def end_to_end() -> int:
        if scene is not None:
            estimator.calls = 0
        with VideoReader(str(path), batch_size, slice(0, frames)) as reader:
            run = process_video(reader, estimator, [_Discard()])
        sync(model.device)
        return run.frames_processed

    network_runs, e2e_runs = [], []
    for _ in range(rounds):
        network_runs.append(Rate(network))
        e2e_runs.append(Rate(end_to_end))

    def parse() -> int:  # on a thread of its own, as process_video runs it
        with start_parse_thread() as thread:
            for batch_maps in maps:
                thread.submit(estimator.decode, batch_maps).result()
        return count

    return ({"network": median(network_runs), "parse": Rate(parse),
             "end to end": median(e2e_runs)}, list(maps))


def bound(network: Rate, parse: Rate, decode: Rate, device: torch.device) -> float:
    """The most frames/s the three stages can give overlapped: no more than the slowest
    stage alone (the parse runs on one thread), and on a CPU no more than the cores
    can do: cores / (the stages' CPU seconds per frame, summed)."""
    limit = min(network.fps, parse.fps, decode.fps)
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        limit = min(limit, cores * 1000 / (network.cpu_ms + parse.cpu_ms + decode.cpu_ms))
    return limit


def cell(result: Rate) -> str:
    """frames/s, wall ms per frame, CPU ms per frame."""
    return f"{result.fps:.1f} · {1000 / result.fps:.1f} · {result.cpu_ms:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default=None,
                        help="default: fp32, bf16 where native, fp16 on CUDA")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--net-height", type=int, default=184)
    parser.add_argument("--frames", type=int, default=None,
                        help="vtest frames per measurement (default: 32 on CPU, 256 on CUDA)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--decode-rounds", type=int, default=7)
    parser.add_argument("--decode-frames", type=int, default=120, help="1080p clip length")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the tables (plain text) to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = (args.precisions.split(",") if args.precisions else
                  ["fp32"] + (["bf16"] if native_bf16(device) else [])
                  + (["fp16"] if device.type == "cuda" else []))
    frames = args.frames or (256 if device.type == "cuda" else 32)
    console = Console(record=args.out is not None, width=160)
    machine = describe(device)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        vtest = SHARED_VTEST if SHARED_VTEST.is_file() else make_clip(
            folder, "vtest_like.avi", 768, 576, max(frames, 120), "mpeg4")
        clips = [(f"{vtest.name} 768x576", vtest),
                 ("1920x1080 H.264 (generated)",
                  make_clip(folder, "clip_1080p.mp4", 1920, 1080, args.decode_frames))]

        decode = Table(title=f"decoding to RGB, {args.decode_rounds} alternating rounds, "
                             f"median — {machine}", title_justify="left")
        for column in ("clip", "plain PyAV f/s · ms · cpu ms", "VideoReader f/s · ms · cpu ms",
                       "ratio f/s"):
            decode.add_column(column, justify="left" if column == "clip" else "right")
        for name, path in clips:
            plain, ours = [], []
            for _ in range(args.decode_rounds):
                plain.append(Rate(lambda path=path: plain_pyav(path)))
                ours.append(Rate(lambda path=path: posecli_reader(path)))
            plain_rate, our_rate = median(plain), median(ours)
            decode.add_row(name, cell(plain_rate), cell(our_rate),
                           f"{our_rate.fps / plain_rate.fps:.0%}")

        reader = median([Rate(lambda: posecli_reader(vtest, args.batch_size, slice(0, frames)))
                         for _ in range(args.decode_rounds)])
        stages = Table(title=f"{vtest.name}, first {frames} frames, net height "
                             f"{args.net_height}, batch {args.batch_size} — {machine}",
                       title_justify="left")
        for column in ("model", "precision", "network", "parse", "decode", "end to end",
                       "e2e / network", "bound", "e2e / bound"):
            stages.add_column(column, justify="left" if column in ("model", "precision")
                              else "right")
        demo_maps: dict[str, list[NetworkMaps]] = {}  # per precision
        for name in args.models.split(","):
            for precision in precisions:
                model = build(name, device, precision)
                runs = [(name, None)]
                if name != "demo" and precision in demo_maps:
                    runs.append((f"{name}, demo's maps parsed", demo_maps[precision]))
                for label, scene in runs:
                    result, maps = measure_model(model, vtest, frames, args.batch_size,
                                                 args.net_height, args.rounds, scene)
                    if name == "demo":
                        demo_maps[precision] = maps
                    e2e = result["end to end"].fps
                    limit = bound(result["network"], result["parse"], reader, device)
                    stages.add_row(label, precision, cell(result["network"]),
                                   cell(result["parse"]), cell(reader),
                                   cell(result["end to end"]),
                                   f"{e2e / result['network'].fps:.0%}", f"{limit:.1f}",
                                   f"{e2e / limit:.0%}")
                    console.print(f"measured {label} {precision}", style="dim")
    console.print(stages)
    console.print("cells: frames/s · wall ms per frame · CPU ms per frame (all threads)")
    console.print(decode)
    if args.out is not None:
        args.out.write_text(console.export_text())
        print(f"tables written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
